"""A catalog that may not be written can be read, and a write fails with a clear error.

Tests run as root, whom a file's mode 444 does not stop, so "read-only" is made two ways:

- **a read-only mount**: the catalog is made on a tmpfs in a private mount namespace
  (``unshare --mount --map-root-user``), which is then remounted read-only. Where the system
  forbids the namespace the test is skipped, unless ``CATALOG_CORE_REQUIRE_TMPFS=1`` (set by CI);
- **permissions**: the files are made mode 444 in a directory of mode 555, and read by root
  without the capabilities that override file modes (``setpriv --bounding-set``; a test run by
  another user reads them as it is).

``read_only_worker`` makes the catalog, then reads and writes it and reports. A WAL-mode
database needs care: SQLite reads it read-only when its ``-wal`` and ``-shm`` files exist
(since 3.22.0) but cannot create them where it may not write, so a catalog closed cleanly (which
removed them) is read through immutable connections under a guard that sees a writer come; one
with a ``-wal`` but no ``-shm`` cannot be read without losing the log's commits, and is refused
with a clear error. A writer elsewhere (root; a read-write view of the mount) changes the
catalog while a reader holds it open, and the reader must see it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import private_mount_namespace

ROOT = Path(__file__).resolve().parents[2]
WORKER = "tests.reliability.read_only_worker"
# The writer's view is read-write, the reader's a read-only bind mount of it.
_WRITTEN_BESIDE_A_READ_ONLY_MOUNT = (
    'mkdir "$1/rw" "$1/ro" && mount -t tmpfs -o size=32m tmpfs "$1/rw" '
    '&& "$2" -m "$3" make-race "$1/rw" && mount --bind "$1/rw" "$1/ro" '
    '&& mount -o remount,bind,ro "$1/ro" && exec "$2" -m "$3" race "$1/ro" "$1/rw"'
)
_ON_A_READ_ONLY_MOUNT = (
    'mount -t tmpfs -o size=8m tmpfs "$1" && "$2" -m "$3" make "$4" "$1" '
    '&& mount -o remount,ro "$1" && exec "$2" -m "$3" check "$1"'
)

pytestmark = pytest.mark.slow


def _judged(ran: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert ran.returncode == 0, ran.stdout + ran.stderr
    seen: dict[str, Any] = json.loads(ran.stdout)
    assert seen["read_only"]  # the directory really refused a write
    return seen


def on_a_read_only_mount(mode: str, directory: Path) -> dict[str, Any]:
    command = [*private_mount_namespace("the read-only mount"), "sh", "-c", _ON_A_READ_ONLY_MOUNT]
    command += ["sh", str(directory), sys.executable, WORKER, mode]
    return _judged(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300))


def without_permission(mode: str, directory: Path) -> dict[str, Any]:
    make = [sys.executable, "-m", WORKER, "make", mode, str(directory)]
    subprocess.run(make, cwd=ROOT, check=True, timeout=120)
    catalog = directory / "catalog"
    catalog.mkdir()
    for name in os.listdir(directory):
        if name.startswith("catalog.db"):
            (directory / name).rename(catalog / name)
            (catalog / name).chmod(0o444)
    catalog.chmod(0o555)
    try:
        command = [*_unprivileged(), sys.executable, "-m", WORKER, "check", str(catalog)]
        ran = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        catalog.chmod(0o755)  # so that the test's directory can be removed
    return _judged(ran)


def _unprivileged() -> list[str]:
    """A command prefix under which file modes apply: root without its override capabilities."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        why = "root ignores file modes, and util-linux's setpriv is not here to drop that right"
        if os.environ.get("CATALOG_CORE_REQUIRE_TMPFS") == "1":
            pytest.fail(why + " (CATALOG_CORE_REQUIRE_TMPFS=1 forbids skipping)")
        pytest.skip(why)
    # Still root, with the same interpreter and files, but file modes now apply.
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def assert_clean_refusal(result: dict[str, Any], *words: str) -> None:
    """Exit status 1, one line on stderr that says why, nothing on stdout, no traceback."""
    assert result["status"] == 1, result
    assert result["stdout"] == ""
    assert "Traceback" not in result["stderr"]
    assert len(result["stderr"].splitlines()) == 1, result["stderr"]
    for word in words:
        assert word in result["stderr"], result["stderr"]


CASES = [
    ("mount", "closed", ["p1", "p2", "p3"], ["catalog.db"]),
    (
        "mount",
        "wal",
        ["late", "p1", "p2", "p3"],
        ["catalog.db", "catalog.db-shm", "catalog.db-wal"],
    ),
    ("mount", "legacy", ["p1", "p2", "p3"], ["catalog.db"]),
    ("permissions", "closed", ["p1", "p2", "p3"], ["catalog.db"]),
    (
        "permissions",
        "wal",
        ["late", "p1", "p2", "p3"],
        ["catalog.db", "catalog.db-shm", "catalog.db-wal"],
    ),
]


@pytest.mark.parametrize(
    ("how", "mode", "ids", "files"),
    CASES,
    ids=[
        f"{how}, {'with' if mode == 'wal' else 'without'} -wal and -shm"
        + (", no cursor secret" if mode == "legacy" else "")
        for how, mode, *_ in CASES
    ],
)
def test_a_read_only_catalog_is_read_and_a_write_fails_with_a_clear_error(
    tmp_path: Path, how: str, mode: str, ids: list[str], files: list[str]
) -> None:
    if how == "mount":
        seen = on_a_read_only_mount(mode, tmp_path)
    else:
        seen = without_permission(mode, tmp_path)
    assert seen["files"] == seen["files_after"] == files  # nothing made beside it, nothing lost

    listed = seen["cli_list"]
    assert (listed["status"], listed["stderr"]) == (0, ""), listed
    assert [json.loads(line)["externalId"] for line in listed["stdout"].splitlines()] == ids
    got = seen["cli_get"]
    assert (got["status"], json.loads(got["stdout"])["externalId"]) == (0, "p1"), got
    for write in ("cli_import", "cli_delete"):
        assert_clean_refusal(seen[write], "the catalog is read-only")

    library = seen["library"]
    assert library["ids"] == library["walk"] == library["ids_after"] == ids
    assert library["get"] == "p1"
    for write in ("upsert", "bulk", "delete", "purge"):
        assert library[write]["type"] == "sqlite3.OperationalError", library[write]
        assert "the catalog is read-only" in library[write]["message"]


@pytest.mark.parametrize("how", ["mount", "permissions"])
def test_a_read_only_catalog_with_a_log_but_no_shared_memory_file_is_refused_clearly(
    tmp_path: Path, how: str
) -> None:
    """Opened as immutable it would read without the log's last commits: it is refused."""
    if how == "mount":
        seen = on_a_read_only_mount("wal-without-shm", tmp_path)
    else:
        seen = without_permission("wal-without-shm", tmp_path)
    assert seen["files"] == seen["files_after"] == ["catalog.db", "catalog.db-wal"]
    for command in ("cli_list", "cli_get", "cli_import"):
        assert_clean_refusal(seen[command], "cannot open the catalog database", "-shm")
    assert seen["library"]["open"]["type"] == "sqlite3.OperationalError"
    assert "-shm" in seen["library"]["open"]["message"]


@pytest.mark.parametrize("how", ["mount", "permissions", "file mode only"])
def test_a_reader_of_a_read_only_catalog_sees_what_a_writer_elsewhere_writes(
    tmp_path: Path, how: str
) -> None:
    """What may not be written here may be written elsewhere: no stale or torn reads.

    A reader that may not write (a read-only bind mount of a read-write mount; files of mode
    444 in a directory of mode 555 for a reader without the right to ignore them, while root
    writes) opens a catalog closed cleanly, which SQLite cannot read in place there. Writers in
    other processes then add 1,700 products, rewrite one twice and checkpoint the log into the
    file; then delete 100 and rewrite it again. After each, the reader, still open, must see
    every change. With the file of mode 444 in a directory the reader may write, SQLite makes
    the ``-wal`` and ``-shm`` itself and reads the catalog in place, as usual.
    """
    if how == "mount":
        command = [*private_mount_namespace("the read-only bind mount"), "sh", "-c"]
        command += [_WRITTEN_BESIDE_A_READ_ONLY_MOUNT, "sh", str(tmp_path), sys.executable, WORKER]
    else:
        subprocess.run([sys.executable, "-m", WORKER, "make-race", str(tmp_path)], check=True)
        for name in os.listdir(tmp_path):
            (tmp_path / name).chmod(0o444)
        if how == "permissions":
            tmp_path.chmod(0o555)
        command = [sys.executable, "-m", WORKER, "race", str(tmp_path), str(tmp_path)]
        command += _unprivileged()
    try:
        ran = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        tmp_path.chmod(0o755)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    seen = json.loads(ran.stdout)

    assert seen["opened"]["count"] == 300
    if how == "file mode only":
        assert seen["opened"]["files"] == ["catalog.db", "catalog.db-shm", "catalog.db-wal"]
    else:
        assert seen["opened"]["files"] == ["catalog.db"]  # SQLite cannot read it in place
    assert (seen["opened"]["p000"], seen["opened"]["n1699"]) == ([1, None], "PRODUCT_NOT_FOUND")
    first = seen["after 1"]
    assert (first["count"], first["n1699"], first["p000"]) == (2000, [1, None], [3, "third"])
    second = seen["after 2"]
    assert (second["count"], second["p001"], second["p000"]) == (
        1900,
        "PRODUCT_NOT_FOUND",
        [4, "fourth"],
    )
    assert seen["status"] == 0
