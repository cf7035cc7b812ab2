"""The benchmark suite runs from a checkout and reports every case; its peers are fair.

Speed itself is never asserted here: the benchmarks measure it (``python -m benchmarks``), and
docs/performance.md holds the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pyperf
import pytest

from benchmarks import cases, serving
from benchmarks.harness import (
    QUICK,
    Case,
    Contender,
    LoadSample,
    Row,
    _sample_all,
    measure,
    render_table,
)
from benchmarks.peers import check_pydantic_peer
from tests.conftest import postgres_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_quick_benchmarks_run_every_case_and_print_and_write_the_table(tmp_path: Path) -> None:
    """``python -m benchmarks --quick``, as the README runs it, in a real process."""
    url = postgres_url()
    out = tmp_path / "quick.json"
    env = {**os.environ, "CATALOG_CORE_POSTGRES_URL": url}
    ran = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    table = [line for line in ran.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| case | contender | median | ratio | target | met |"
    names = [case.name for case in cases.CASES]
    assert {line.split("|")[1].strip() for line in table[2:]} == set(names)
    assert "not run" not in ran.stdout  # PostgreSQL was given: every case ran

    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["scale"]["name"] == "quick"
    assert document["machine"]["cpus"] == os.cpu_count()
    rows = document["rows"]
    assert {r["case"] for r in rows} == set(names)
    for row in rows:
        assert row["median"] > 0
        assert row["samples"] >= 1
        if row["ratio"] is not None:
            assert row["ratio"] > 0
            assert isinstance(row["met"], bool)
    speed = [r for r in rows if r["target"].startswith(">=")]
    assert {r["contender"] for r in speed} == {"catalog_core"}
    baselines = {"pydantic", "sqlite3", "psycopg", "sqlite3+psycopg", "fastapi"}
    assert {r["baseline"] for r in speed} == baselines
    servers = [r for r in rows if r["case"].startswith("server_")]  # wrk was there: they ran
    assert [r["contender"] for r in servers] == 3 * [
        "catalog_core",
        "fastapi",
        "catalog_core p99",
        "fastapi p99",
    ]
    assert [r["target"] for r in servers if r["contender"] == "catalog_core p99"] == [
        "<= 10 ms",
        "",
        "",
    ]
    assert all(r["note"].endswith(" rps") for r in servers if "p99" not in r["contender"])

    suite = pyperf.BenchmarkSuite.load(str(out.with_suffix(".pyperf.json")))
    assert len(suite.get_benchmarks()) == len(rows)
    for bench in suite.get_benchmarks():
        assert bench.get_nvalue() >= 1


def test_the_contenders_are_sampled_in_alternation_after_one_warm_up_each() -> None:
    """ABBA order, so that a slow moment of the machine falls on both sides."""
    calls: list[str] = []

    def contender(name: str) -> Contender:
        return Contender(name, lambda: calls.append(name) or 1.0)

    values = _sample_all([contender("a"), contender("b")], 4, warm_up=True)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert values == {"a": [1.0] * 4, "b": [1.0] * 4}


def test_a_speed_ratio_is_the_peers_median_over_ours(tmp_path: Path) -> None:
    samples = {"ours": iter([2.0, 1.0, 1.0, 9.0]), "peer": iter([4.0, 3.0, 3.0, 3.0])}

    @contextmanager
    def setup(scale: object, workdir: Path) -> Iterator[list[Contender]]:
        yield [Contender(n, lambda n=n: next(samples[n])) for n in ("ours", "peer")]

    case = Case("fake", "a fake case", "speed", 1.5, setup, samples="each")
    small = attrs.evolve(QUICK, repetitions=3)
    rows, benchmarks = measure(case, small, tmp_path)
    ours, peer = rows
    assert (ours.median, peer.median, ours.ratio, ours.met) == (1.0, 3.0, 3.0, True)
    assert [b.get_name() for b in benchmarks] == ["fake/ours", "fake/peer"]


def test_a_server_case_reports_throughput_and_a_p99_row_for_each_side(tmp_path: Path) -> None:
    samples = {
        "ours": iter([LoadSample(0.001, 0.020), LoadSample(0.002, 0.008)]),
        "peer": iter([LoadSample(0.004, 0.030), LoadSample(0.004, 0.050)]),
    }

    @contextmanager
    def setup(scale: object, workdir: Path) -> Iterator[list[Contender]]:
        yield [Contender(n, lambda n=n: next(samples[n])) for n in ("ours", "peer")]

    case = Case("srv", "a server", "speed", 3.0, setup, samples="load", p99_target=0.010)
    rows, benchmarks = measure(case, attrs.evolve(QUICK, server_repetitions=2), tmp_path)
    # No warm-up sample (the setup warms servers up): two samples each, medians of two.
    assert [(r.contender, r.median, r.samples) for r in rows] == [
        ("ours", 0.0015, 2),
        ("peer", 0.004, 2),
        ("ours p99", 0.014, 2),
        ("peer p99", 0.04, 2),
    ]
    assert [b.get_name() for b in benchmarks] == [
        "srv/ours",
        "srv/peer",
        "srv/ours p99",
        "srv/peer p99",
    ]
    assert render_table(rows, {"srv": "speed"}).splitlines()[2:] == [
        "| srv | ours | 1.5 ms (667 rps) | 2.67 (vs peer) | >= 3.0 | **no** |",
        "| srv | peer | 4 ms (250 rps) |  |  |  |",
        "| srv | ours p99 | 14 ms |  | <= 10 ms | **no** |",
        "| srv | peer p99 | 40 ms |  |  |  |",
    ]


#: What ``wrk -t1 -c2 -d1s -s benchmarks/wrk_requests.lua`` printed for a run of GETs of a
#: product ``catalog-core serve`` did not have (wrk 4.1.0, Debian).
WRK_OUTPUT_404 = """\
Running 1s test @ http://127.0.0.1:18777
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.12ms    1.16ms  15.22ms   95.71%
    Req/Sec     2.06k   258.01     2.48k    70.00%
  2063 requests in 1.01s, 390.84KB read
  Non-2xx or 3xx responses: 2063
Requests/sec:   2046.60
Transfer/sec:    387.73KB
wrk-json: {"requests": 2063, "duration_us": 1008014, "bytes": 400222, "errors": {"connect": 0, \
"read": 0, "write": 0, "timeout": 0, "status": 2063, "non_2xx": 2063}, "a_non_2xx_status": 404, \
"latency_us": {"min": 506, "mean": 1124.4, "max": 15222, "p50": 896, "p90": 1282, "p99": 7245}}
"""


def test_wrk_figures_are_read_from_the_json_line_of_the_script_and_errors_refuse_the_run() -> None:
    run = serving.parse_wrk(WRK_OUTPUT_404)
    assert (run.requests, run.seconds, run.p99, run.max) == (2063, 1.008014, 0.007245, 0.015222)
    assert (run.p50, run.p90) == (0.000896, 0.001282)
    assert run.rps == pytest.approx(2046.6, abs=0.1)
    assert run.errors["non_2xx"] == 2063
    with pytest.raises(serving.LoadFailed, match=r"'non_2xx': 2063}, e\.g\. HTTP 404"):
        run.check("GET")
    with pytest.raises(serving.LoadFailed, match="wrk printed no figures"):
        serving.parse_wrk(WRK_OUTPUT_404.rsplit("wrk-json", 1)[0])


def _needs_wrk() -> None:
    if shutil.which("wrk") is None:
        pytest.skip(f"wrk is not installed ({serving.WRK_INSTALL}); .ci/run installs it")


def test_a_real_wrk_run_is_measured_only_when_every_response_is_2xx(tmp_path: Path) -> None:
    """wrk_requests.lua against a real server: 2xx runs are read, any other status fails."""
    _needs_wrk()
    port = serving.free_port()
    command = serving.console_script("catalog-core", "from catalog_core.cli import main; main()")
    server = serving.start_server(
        "catalog-core serve",
        [*command, "serve", "--db", str(tmp_path / "c.db"), "--port", str(port)],
        port=port,
        log=tmp_path / "serve.log",
    )
    try:
        server.wait_ready("/tryon/v1/products", "acme")
        good = tmp_path / "good.requests"
        body = cases.line(1).decode()
        good.write_text(
            f"GET\t/tryon/v1/products?limit=5\nPOST\t/tryon/v1/products\t{body}\n",
            encoding="utf-8",
        )
        run = serving.run_wrk(
            server.base, good, connections=2, seconds=1, api_key="acme", what="good"
        )
        assert run.requests > 10
        assert 0 < run.p50 <= run.p99 <= run.max
        status, product = serving.request_json(
            server.base, "GET", "/tryon/v1/products/sku-0000001", "acme"
        )
        assert (status, product["externalId"]) == (200, "sku-0000001")  # the POSTs were sent

        missing = tmp_path / "missing.requests"
        missing.write_bytes(good.read_bytes() + b"GET\t/tryon/v1/products/nothing-here\n")
        with pytest.raises(serving.LoadFailed, match="HTTP 404"):
            serving.run_wrk(
                server.base, missing, connections=2, seconds=1, api_key="acme", what="missing"
            )
    finally:
        server.stop()
    with pytest.raises(serving.LoadFailed, match="wrk exited"):  # nothing listens any more
        serving.run_wrk(server.base, good, connections=1, seconds=1, api_key="acme", what="down")


def test_the_fastapi_peer_answers_as_catalog_core_serve_does(tmp_path: Path) -> None:
    """The server cases' peer: the same bodies for a product, a page, and an upsert."""
    with cases._servers("check", tmp_path) as (ours, peer):

        def both(method: str, path: str, body: bytes | None = None) -> list[tuple[int, dict]]:
            return [
                serving.request_json(server.base, method, path, cases.API_KEY, body)
                for server in (ours, peer)
            ]

        for i in (0, 42, cases.SERVER_CATALOG_SIZE - 1):
            ours_get, peer_get = both("GET", f"/tryon/v1/products/sku-{i:07d}")
            assert ours_get == peer_get
            assert ours_get[0] == 200
        assert [status for status, _ in both("GET", "/tryon/v1/products/nothing-here")] == [404] * 2

        # Pages: the same products, each server's own cursor to the next page.
        firsts = both("GET", "/tryon/v1/products?limit=50")
        seconds = [
            serving.request_json(
                server.base,
                "GET",
                f"/tryon/v1/products?limit=50&cursor={page['nextCursor']}",
                cases.API_KEY,
            )
            for server, (_, page) in zip((ours, peer), firsts, strict=True)
        ]
        for status, page in seconds:
            assert status == 200
            page.pop("nextCursor")
        assert seconds[0] == seconds[1]
        assert seconds[0][1]["items"][0]["externalId"] == "sku-0000050"

        # Upserts: an update (200) and a creation (201) answer the same but for the clock.
        def timeless(answer: tuple[int, dict], created: bool) -> tuple[int, dict]:
            status, body = answer
            clock = (
                ("createdAt", "updatedAt", "expiresAt") if created else ("updatedAt", "expiresAt")
            )
            return status, {k: v for k, v in body.items() if k not in clock}

        for i, status in ((7, 200), (cases.SERVER_CATALOG_SIZE + 7, 201)):
            created = status == 201
            answers = both("POST", "/tryon/v1/products", cases.line(i, title=f"Restocked {i}"))
            assert timeless(answers[0], created) == timeless(answers[1], created)
            assert answers[0][0] == status
            assert answers[0][1]["title"] == f"Restocked {i}"
            assert answers[0][1]["images"][1]["classifications"]["view"] == "back"
            gets = both("GET", f"/tryon/v1/products/sku-{i:07d}")
            assert gets == [(200, body) for _, body in answers]
        # Both refuse what the rules refuse (each in its own error format).
        refused = both("POST", "/tryon/v1/products", cases.line(8, validForDays=0))
        assert [status // 100 for status, _ in refused] == [4, 4]


def test_the_pydantic_peer_accepts_and_refuses_what_the_wire_layer_does() -> None:
    """R2-R18, R31, R33: the decode peer has the same rules; the encode peer, the same bytes."""
    assert check_pydantic_peer.check_decode() > 200
    assert check_pydantic_peer.check_encode() > 20


def test_docs_performance_shows_the_latest_full_run_as_the_runner_prints_it() -> None:
    """docs/performance.md's table is benchmarks/results/full.json, rendered by the runner."""
    document = json.loads((ROOT / "benchmarks/results/full.json").read_text(encoding="utf-8"))
    assert document["scale"]["name"] == "full"
    rows = [Row(**row) for row in document["rows"]]
    kinds = {case.name: case.kind for case in cases.CASES}
    docs = (ROOT / "docs/performance.md").read_text(encoding="utf-8")
    assert render_table(rows, kinds) in docs
    assert {row.case for row in rows} == set(kinds)  # every case, PostgreSQL included
    machine = document["machine"]
    for fact in (machine["python"], machine["sqlite"], machine["postgresql"]):
        assert fact in docs
    for package, version in machine["packages"].items():
        if package != "catalog-core":
            assert f"{package} {version}" in docs
