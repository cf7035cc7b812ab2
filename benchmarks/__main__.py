"""``python -m benchmarks [--quick] [--only CASE] [--json PATH] [--postgres URL]``.

The server cases need ``wrk`` (Debian's package: ``apt-get install wrk``); without it they are
listed as not run.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

from benchmarks import cases, serving
from benchmarks.harness import FULL, QUICK, Row, measure, render_table, write_results


@click.command()
@click.option("--quick", is_flag=True, help="Smaller data and fewer samples: under two minutes.")
@click.option("--only", multiple=True, help="Run only these cases (repeatable).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the table as JSON, the samples beside it as a pyperf suite "
    "(default: benchmarks/results/full.json, or quick.json with --quick).",
)
@click.option(
    "--postgres",
    envvar="CATALOG_CORE_POSTGRES_URL",
    default=None,
    help="PostgreSQL URL for the PostgreSQL cases (default: $CATALOG_CORE_POSTGRES_URL); "
    "without it they are listed as not run.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to keep generated databases and files between runs (default: a temporary folder).",
)
def main(
    quick: bool,
    only: tuple[str, ...],
    json_path: Path | None,
    postgres: str | None,
    workdir: Path | None,
) -> None:
    """Run every case, contenders in alternation, and print medians and ratios as a table."""
    scale = QUICK if quick else FULL
    if json_path is None:
        json_path = Path(__file__).parent / "results" / f"{scale.name}.json"
    known = {case.name for case in cases.CASES}
    unknown = set(only) - known
    if unknown:
        raise click.BadParameter(f"unknown case(s) {sorted(unknown)}; known: {sorted(known)}")
    cases.POSTGRES_URL[0] = postgres
    rows: list[Row] = []
    benchmarks = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="catalog-core-bench-") as tmp:
        where = workdir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for case in cases.CASES:
            if only and case.name not in only:
                continue
            if case.needs_postgres and not postgres:
                skipped.append(f"{case.name}: not run (no --postgres URL)")
                continue
            if case.needs_wrk and shutil.which("wrk") is None:
                skipped.append(f"{case.name}: not run (wrk not installed: {serving.WRK_INSTALL})")
                continue
            started = time.perf_counter()
            click.echo(f"{case.name}: {case.title} …", err=True, nl=False)
            case_rows, case_benchmarks = measure(case, scale, where)
            rows += case_rows
            benchmarks += case_benchmarks
            click.echo(f" {time.perf_counter() - started:.1f} s", err=True)
    kinds = {case.name: case.kind for case in cases.CASES}
    click.echo(f"\ncatalog_core benchmarks, {scale.name} scale\n")
    click.echo(render_table(rows, kinds))
    for line in skipped:
        click.echo(f"\n{line}")
    suite = write_results(json_path, scale, rows, benchmarks, _server_version(postgres))
    click.echo(f"\nwritten: {json_path} and {suite}")


def _server_version(url: str | None) -> str | None:
    if not url:
        return None
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return None if row is None else str(row[0])


if __name__ == "__main__":
    sys.exit(main())
