"""Side-by-side timing: contenders sampled in alternation, medians, ratios, a table and JSON.

pyperf's ``Runner`` times one benchmark after another in worker processes; the cases here need
the contenders interleaved in one process (so that a noisy moment of the machine hits both), with
state built once and shared. So the samples are taken here, in ABBA order, and pyperf keeps them:
each contender's samples become a ``pyperf.Benchmark`` (median, spread, and a file that
``python -m pyperf stats`` / ``compare_to`` read).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import attrs
import pyperf

from benchmarks import serving

__all__ = [
    "Case",
    "Contender",
    "LoadSample",
    "Row",
    "Scale",
    "measure",
    "render_table",
    "write_results",
]


@attrs.frozen
class Scale:
    """How big and how long: ``quick`` (< 2 minutes on 2 cores) or ``full`` (< 20 minutes)."""

    name: str
    repetitions: int  # samples per contender, after one warm-up sample
    micro_ops: int  # operations per sample of the per-operation cases
    bulk_products: int  # products per bulk import (SQLite and PostgreSQL)
    bulk_repetitions: int
    catalog_sizes: tuple[int, ...]  # for the flat-cost case; the first is the baseline
    purge_size: int  # catalog size of the purge case; 0.1% of it expires
    import_sizes: tuple[int, ...]  # JSON Lines files of the memory case
    copy_sizes: tuple[int, ...]  # catalogs the memory of ``catalog-core copy`` is measured on
    server_seconds: int  # the length of one sample of a server case (a wrk run)
    server_repetitions: int  # samples per contender of a server case


QUICK = Scale(
    "quick",
    5,
    300,
    10_000,
    2,
    (10_000, 100_000),
    100_000,
    (20_000, 100_000),
    (5_000, 20_000),
    server_seconds=1,
    server_repetitions=3,
)
FULL = Scale(
    "full",
    9,
    1_000,
    100_000,
    3,
    (10_000, 100_000, 1_000_000),
    1_000_000,
    (100_000, 1_000_000),
    (100_000, 400_000),
    server_seconds=10,
    server_repetitions=5,
)


@attrs.frozen
class LoadSample:
    """A sample of a server under load: seconds per request (1 / throughput) and the p99."""

    per_request: float
    p99: float  # seconds: the 99th percentile of the requests' latencies


@attrs.frozen
class Contender:
    """One side of a case: ``sample()`` runs it once and returns seconds (or bytes) per op.

    A server case's contender returns a :class:`LoadSample`: its p99 latencies are kept as a
    series of their own, ``"<name> p99"``, with a row of their own in the table.
    """

    name: str
    sample: Callable[[], float | LoadSample]


#: "speed": ratio = peer time / our time, higher is better. "flat": ratio = our time at a size /
#: our time at the first size, lower is better. "memory": the value is peak bytes, not time.
Kind = Literal["speed", "flat", "memory"]


@attrs.frozen
class Case:
    """A benchmark case: what is compared, the target, and how to set it up."""

    name: str
    title: str
    kind: Kind
    target: float
    setup: Callable[[Scale, Path], AbstractContextManager[Sequence[Contender]]]
    needs_postgres: bool = False
    needs_wrk: bool = False
    #: "each": ``scale.repetitions`` samples; "bulk": ``scale.bulk_repetitions``; "once": one;
    #: "load": ``scale.server_repetitions`` of a server case, whose setup warms its servers up
    #: (with shorter runs than a sample's), so the harness takes no warm-up sample.
    samples: Literal["each", "bulk", "once", "load"] = "each"
    #: For a server case: the most our p99 latency may be, in seconds (``None``: no target).
    p99_target: float | None = None

    def repetitions(self, scale: Scale) -> int:
        """Return how many samples of each contender to take at ``scale``."""
        return {
            "each": scale.repetitions,
            "bulk": scale.bulk_repetitions,
            "once": 1,
            "load": scale.server_repetitions,
        }[self.samples]


@attrs.frozen
class Row:
    """One line of the table."""

    case: str
    title: str
    contender: str
    median: float
    baseline: str | None
    ratio: float | None
    target: str
    met: bool | None
    samples: int
    note: str = ""


def _sample_all(
    contenders: Sequence[Contender], repetitions: int, *, warm_up: bool
) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {c.name: [] for c in contenders}
    if warm_up:  # caches, prepared statements, the first connection: not measured
        for c in contenders:
            c.sample()
    for rep in range(repetitions):
        order = contenders if rep % 2 == 0 else list(reversed(contenders))
        for c in order:
            value = c.sample()
            if isinstance(value, LoadSample):
                values[c.name].append(value.per_request)
                values.setdefault(f"{c.name} p99", []).append(value.p99)
            else:
                values[c.name].append(value)
    return values


def measure(case: Case, scale: Scale, workdir: Path) -> tuple[list[Row], list[pyperf.Benchmark]]:
    """Run ``case`` at ``scale``: alternate its contenders, and return its rows and benchmarks."""
    with case.setup(scale, workdir) as contenders:
        warm_up = case.samples not in ("once", "load")
        values = _sample_all(contenders, case.repetitions(scale), warm_up=warm_up)
    benchmarks = []
    medians: dict[str, float] = {}
    for name, samples in values.items():
        unit = "byte" if case.kind == "memory" else "second"
        run = pyperf.Run(
            samples,
            metadata={"name": f"{case.name}/{name}", "unit": unit},
            collect_metadata=False,
        )
        bench = pyperf.Benchmark([run])
        benchmarks.append(bench)
        medians[name] = bench.median()
    return _rows(case, contenders, medians, {n: len(v) for n, v in values.items()}), benchmarks


def _rows(
    case: Case,
    contenders: Sequence[Contender],
    medians: dict[str, float],
    counts: dict[str, int],
) -> list[Row]:
    names = [c.name for c in contenders]

    def row(
        name: str, baseline: str | None, ratio: float | None, target: str, met: bool | None
    ) -> Row:
        return Row(
            case=case.name,
            title=case.title,
            contender=name,
            median=medians[name],
            baseline=baseline,
            ratio=ratio,
            target=target,
            met=met,
            samples=counts[name],
            # A server case's median is seconds per request: its throughput reads better.
            note=f"{1 / medians[name]:,.0f} rps" if f"{name} p99" in medians else "",
        )

    if case.kind == "speed":  # ours first, the peer second
        ours, peer = names
        ratio = medians[peer] / medians[ours]
        rows = [
            row(ours, peer, ratio, f">= {case.target}", ratio >= case.target),
            row(peer, None, None, "", None),
        ]
        if f"{ours} p99" in medians:  # a server case: the p99 latencies, ours first
            most = case.p99_target
            if most is None:
                rows.append(row(f"{ours} p99", None, None, "", None))
            else:
                met = medians[f"{ours} p99"] <= most
                rows.append(row(f"{ours} p99", None, None, f"<= {_human(most, 'speed')}", met))
            rows.append(row(f"{peer} p99", None, None, "", None))
        return rows
    first, *others = names
    if case.kind == "flat":  # the first size is the baseline
        rows = [row(first, None, None, "", None)]
        for name in others:
            ratio = medians[name] / medians[first]
            rows.append(row(name, first, ratio, f"<= {case.target}", ratio <= case.target))
        return rows
    limit = f"<= {case.target / 2**20:.0f} MiB"  # memory: each size under the limit
    rows = [row(first, None, None, limit, medians[first] <= case.target)]
    for name in others:
        growth = medians[name] / medians[first]
        rows.append(row(name, first, growth, limit, medians[name] <= case.target))
    return rows


def _human(value: float, kind: Kind) -> str:
    if kind == "memory":
        return f"{value / 2**20:.1f} MiB"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def render_table(rows: Sequence[Row], kinds: dict[str, Kind]) -> str:
    """Return the rows as a Markdown table."""
    lines = [
        "| case | contender | median | ratio | target | met |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        if row.baseline:
            ratio += f" (vs {row.baseline})"
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        median = _human(row.median, kinds[row.case])
        if row.note:
            median += f" ({row.note})"
        lines.append(
            f"| {row.case} | {row.contender} | {median} | {ratio} | {row.target} | {met} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Return what the results depend on: the machine, Python and the peers' versions."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for package in (
        "catalog-core",
        "pydantic",
        "pydantic-core",
        "orjson",
        "psycopg",
        "pyperf",
        "fastapi",
        "starlette",
        "uvicorn",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), "")
    except OSError:
        pass
    import os
    import sqlite3

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "servers": serving.transports(),
        "wrk": serving.wrk_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_results(
    path: Path,
    scale: Scale,
    rows: Sequence[Row],
    benchmarks: Sequence[pyperf.Benchmark],
    postgres_version: str | None = None,
) -> Path:
    """Write the table as JSON at ``path``, and the samples as a pyperf suite beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "scale": attrs.asdict(scale),
        "machine": {**machine(), "postgresql": postgres_version},
        "rows": [attrs.asdict(row) for row in rows],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    suite_path = path.with_suffix(".pyperf.json")
    suite_path.unlink(missing_ok=True)
    if benchmarks:
        pyperf.BenchmarkSuite(list(benchmarks)).dump(str(suite_path))
    return suite_path


def timed(operation: Callable[[], object], ops: int) -> float:
    """Return the seconds per call of ``operation`` over ``ops`` calls."""
    start = time.perf_counter()
    for _ in range(ops):
        operation()
    return (time.perf_counter() - start) / ops


def timed_over(operation: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Return the seconds per call of ``operation`` applied to each of ``items`` once."""
    each = iter(items)
    return timed(lambda: operation(next(each)), len(items))


def cycling(items: Sequence[Any]) -> Iterator[Any]:
    """Yield ``items`` over and over, so every sample works on fresh but fixed inputs."""
    while True:
        yield from items
