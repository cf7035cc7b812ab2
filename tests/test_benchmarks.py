"""The benchmark suite runs from a checkout and reports every case; its peers are fair.

Speed itself is never asserted here: the benchmarks measure it (``python -m benchmarks``), and
docs/performance.md holds the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pyperf
import pytest

from benchmarks import cases
from benchmarks.harness import QUICK, Case, Contender, Row, _sample_all, measure, render_table
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
    assert {r["baseline"] for r in speed} == {"pydantic", "sqlite3", "psycopg"}

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
