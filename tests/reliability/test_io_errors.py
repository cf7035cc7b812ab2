"""I/O errors on SQLite beyond ``max_page_count``: a full tmpfs and a file-size limit (R26).

Each runs ``io_fault_worker`` in a process of its own. On a full tmpfs, SQLite's write fails
with ``ENOSPC`` ("database or disk is full"); past ``RLIMIT_FSIZE`` it fails with ``EFBIG``,
which SQLite reports as "disk I/O error". Either way the failed upsert and the failed bulk
batch must leave nothing behind, the store must stay intact, and the next writes after space
returns must succeed, before and after the store is reopened.

The tmpfs needs a private mount namespace (util-linux's ``unshare``, Linux). Where the system
forbids one, the test is skipped, unless ``CATALOG_CORE_REQUIRE_TMPFS=1`` (set by CI) makes that
a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import private_mount_namespace

ROOT = Path(__file__).resolve().parents[2]
_MOUNT_AND_RUN = 'mount -t tmpfs -o size=4m tmpfs "$1" && exec "$2" -m "$3" tmpfs "$1"'

pytestmark = pytest.mark.slow


def run_worker(mode: str, directory: Path) -> dict[str, Any]:
    worker = "tests.reliability.io_fault_worker"
    if mode == "tmpfs":
        # A tmpfs of the worker's own, in a private mount namespace: nothing outside sees it, and
        # it goes when the worker ends.
        unshare = private_mount_namespace("the tmpfs")
        command = [*unshare, "sh", "-c", _MOUNT_AND_RUN]
        command += ["sh", str(directory), sys.executable, worker]
    else:
        command = [sys.executable, "-m", worker, mode, str(directory)]
    ran = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    seen: dict[str, Any] = json.loads(ran.stdout)
    return seen


@pytest.mark.parametrize(
    ("mode", "message"),
    [("tmpfs", "database or disk is full"), ("fsize", "disk I/O error")],
    ids=["full tmpfs", "file-size limit"],
)
def test_r26_an_io_error_fails_the_write_whole_and_writes_resume_when_space_returns(
    tmp_path: Path, mode: str, message: str
) -> None:
    seen = run_worker(mode, tmp_path)
    written = seen["written_before_failure"]
    assert written >= 1  # the store worked until the file system refused
    for attempt in ("single", "bulk"):
        assert seen[attempt] == {"type": "sqlite3.OperationalError", "message": message}
    kept = [f"kept{n}" for n in range(5)]
    before = sorted(kept + [f"new{n}" for n in range(written)])
    during = seen["during"]
    assert during["ids"] == before  # no part of the failed upsert or bulk batch is there
    assert (during["integrity"], during["refs_exact"], during["blobs_present"]) == (
        "ok",
        True,
        True,
    )
    assert seen["kept_untouched"]
    assert seen["after_single_created"]
    assert seen["after_bulk_accepted"] == 200
    after = sorted(before + ["new999999"] + [f"bulk{n}" for n in range(200)])
    for state in (seen["after"], seen["reopened"]):
        assert state["ids"] == after
        assert (state["integrity"], state["refs_exact"], state["blobs_present"]) == (
            "ok",
            True,
            True,
        )
