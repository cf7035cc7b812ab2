"""``catalog-core import`` runs in flat memory, however large its file and its lines.

The import is measured as benchmarks/ measure it (docs/performance.md): a small launcher
(``tests.helpers.from_a_fresh_process``) starts it and reports its own peak RSS, since Linux
carries a parent's peak across fork and exec. The CI form imports files of tens of MiB made of
4 MiB lines; the long form (``CATALOG_CORE_IMPORT_MIB``) a file of 1 GiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

import catalog_core as cc
from tests.helpers import from_a_fresh_process, run_size

pytestmark = pytest.mark.slow

MIB = 2**20
LINE_BYTES = 4 * MIB
IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}


def peak_rss_of_import(path: Path, db: Path, *extra: str) -> int:
    """Import ``path`` into ``db`` with the real command line; return its peak RSS in bytes."""
    command = [sys.executable, "-c", "from catalog_core.cli import main; main()"]
    command += ["--db", str(db), "import", str(path), *extra]
    ran = subprocess.run(
        from_a_fresh_process(command, report_peak=True),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    return int(ran.stdout.splitlines()[-1].removeprefix("peak-rss-kib=")) * 1024


def padded(head: dict[str, object], size: int, *, key: bool = False) -> Iterator[bytes]:
    """A JSON line of exactly ``size`` bytes, its newline included, in pieces of at most 1 MiB:
    ``head`` plus one unknown field of padding (so that a line of a GiB never sits in the test's
    memory).

    The padding is the field's value, or with ``key`` its name, which the warning then names.
    """
    start = json.dumps(head)[:-1].encode() + b', "' + (b"" if key else b'padding": "')
    end = b'": 1}\n' if key else b'"}\n'
    yield start
    left = size - len(start) - len(end)
    while left > 0:
        yield b"k" * min(left, MIB)
        left -= MIB
    yield end


def large_lines(count: int) -> Iterator[Iterable[bytes]]:
    """Lines of ``LINE_BYTES`` each, in turn: accepted (padding in a value), accepted (padding as
    the name of an unknown field, kept by its warning), rejected (no image on a create), blank.
    """
    kinds: list[Callable[[int], Iterable[bytes]]] = [
        lambda n: padded({"externalId": f"v{n}", "images": [IMAGE]}, LINE_BYTES),
        lambda n: padded({"externalId": f"k{n}", "images": [IMAGE]}, LINE_BYTES, key=True),
        lambda n: padded({"externalId": f"r{n}"}, LINE_BYTES),
        lambda n: [b" " * (LINE_BYTES - 1) + b"\n"],
    ]
    return (kinds[n % len(kinds)](n) for n in range(count))


def write_lines(path: Path, lines: Iterable[Iterable[bytes]]) -> int:
    with path.open("wb") as out:
        for line in lines:
            out.writelines(line)
    return path.stat().st_size


def test_the_peak_memory_of_an_import_does_not_grow_with_a_file_of_large_lines(
    tmp_path: Path,
) -> None:
    """docs/performance.md's flat memory: the peak does not follow the file's size.

    Before, every line's bytes stayed queued until its batch of 500 committed, so the peak grew
    with the file (40 MiB of 20 MiB lines: 121 MiB; 480 MiB: 562 MiB).
    """
    small_count = 4
    large_count = max(run_size("IMPORT_MIB", 64, 1024) * MIB // LINE_BYTES, 2 * small_count)
    peaks = {}
    for count in (small_count, large_count):
        path = tmp_path / f"{count}.jsonl"
        size = write_lines(path, large_lines(count))
        peaks[size] = peak_rss_of_import(path, tmp_path / f"{count}.db", "--json")
        path.unlink()
    (small_size, small_peak), (large_size, large_peak) = sorted(peaks.items())
    print(
        f"\nimport of {LINE_BYTES // MIB} MiB lines: {small_size / MIB:.0f} MiB file -> peak "
        f"{small_peak / MIB:.1f} MiB; {large_size / MIB:.0f} MiB file -> {large_peak / MIB:.1f} MiB"
    )
    # Flat: a few lines' worth of slack, however many lines more the large file holds.
    assert large_peak < small_peak + 2 * LINE_BYTES
    repository = cc.SQLiteRepository(tmp_path / f"{large_count}.db")
    try:
        assert repository.get("default", f"v{large_count - 4}") is not None  # it did import
    finally:
        repository.close()


def test_r30_r33_a_line_over_the_request_limit_is_refused_without_being_read_whole(
    tmp_path: Path,
) -> None:
    """R30, R33: such a line is PAYLOAD_TOO_LARGE, the lines around it are imported, and it
    costs no more memory than the largest line the import accepts.

    Before, the whole line was read into memory first: a 64 MiB line took the import to 171 MiB,
    a 128 MiB one to 301 MiB.
    """
    limit = cc.Limits().max_request_bytes
    image = {"images": [IMAGE]}
    small = [[json.dumps({"externalId": f"s{n}", **image}).encode() + b"\n"] for n in range(2)]
    at_limit = tmp_path / "at-limit.jsonl"
    # A line of limit + 1 bytes: a payload at the limit, and its newline (which does not count).
    write_lines(at_limit, [small[0], padded({"externalId": "big", **image}, limit + 1), small[1]])
    accepted_peak = peak_rss_of_import(at_limit, tmp_path / "at-limit.db")
    at_limit.unlink()

    over = run_size("IMPORT_OVERLONG_MIB", 2 * limit // MIB, 1024) * MIB
    overlong = tmp_path / "overlong.jsonl"
    write_lines(overlong, [small[0], padded({"externalId": "big", **image}, over), small[1]])
    db = tmp_path / "overlong.db"
    refused_peak = peak_rss_of_import(overlong, db)
    overlong.unlink()
    print(
        f"\nimport peak: a line at the limit ({limit / MIB:.0f} MiB) {accepted_peak / MIB:.1f} "
        f"MiB; a line of {over / MIB:.0f} MiB {refused_peak / MIB:.1f} MiB"
    )
    assert refused_peak <= accepted_peak

    from click.testing import CliRunner

    from catalog_core.cli import main

    # The report, from a file of the same shape read through the same code in this process.
    runner = CliRunner(env={"CATALOG_CORE_DB": None, "CATALOG_CORE_ACCOUNT": None})
    line = b"".join(padded({"externalId": "big", **image}, limit + 2))  # one over, and "\n"
    result = runner.invoke(
        main,
        ["--db", str(tmp_path / "report.db"), "import", "--json", "-"],
        input=small[0][0] + line + small[1][0],
    )
    assert json.loads(result.stdout) == {
        "created": 2,
        "updated": 0,
        "rejected": [
            {
                "line": 2,
                "code": "PAYLOAD_TOO_LARGE",
                "message": f"The request body is {limit + 1} bytes; the limit is {limit} bytes.",
            }
        ],
        "warnings": [],
    }
    repository = cc.SQLiteRepository(db)
    try:
        assert [p.external_id for p in cc.Catalog(repository).list("default").items] == [
            "s0",
            "s1",
        ]
    finally:
        repository.close()
