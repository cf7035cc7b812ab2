"""Write to an SQLite catalog until the file system refuses, check it, give space back, write again.

Run by ``test_io_errors`` as ``python -m tests.reliability.io_fault_worker MODE DIRECTORY``:

- ``tmpfs``: ``DIRECTORY`` is a small tmpfs of the worker's own (mounted in a private mount
  namespace by the test), nearly filled by another file; writes end with ``ENOSPC``, and space
  returns when that file is removed.
- ``fsize``: the process's file-size limit (``RLIMIT_FSIZE``) is lowered just above the database's
  size, with ``SIGXFSZ`` ignored; writes end with ``EFBIG``, which SQLite reports as an I/O error,
  and the limit is then raised again.

It prints one JSON object of what it saw; the test judges it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import sqlite_utils

import catalog_core as cc
from tests.helpers import JPEG, listed

IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}
HEADROOM = 256 * 1024


def big(external_id: str) -> dict[str, Any]:
    return {"externalId": external_id, "description": "d" * 10_000, "images": [IMAGE]}


def uploaded(n: int) -> tuple[dict[str, Any], dict[str, cc.Upload]]:
    payload = {**big(f"new{n}"), "images": [{"source": {"fileKey": "f"}}]}
    return payload, {"f": cc.Upload(JPEG + bytes([n % 256]) * 50_000)}


def failure(exc: BaseException) -> dict[str, str]:
    return {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc)}


def take_space(mode: str, directory: Path) -> None:
    """Leave the database about ``HEADROOM`` bytes to grow into."""
    if mode == "tmpfs":
        stat = os.statvfs(directory)
        free = stat.f_bavail * stat.f_frsize
        with (directory / "filler").open("wb") as filler:
            filler.write(b"\0" * max(free - HEADROOM, 0))
        return
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
    largest = max(p.stat().st_size for p in directory.iterdir() if p.name.startswith("catalog"))
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (largest + HEADROOM, hard))


def give_space_back(mode: str, directory: Path) -> None:
    if mode == "tmpfs":
        (directory / "filler").unlink()
        return
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))


def state(catalog: cc.Catalog, db: sqlite_utils.Database) -> dict[str, Any]:
    """Integrity, products, and whether every blob is present with exact reference counts."""
    products = listed(catalog, "acme")
    named = [i.blob_sha256 for p in products for i in p.images if i.blob_sha256]
    refs = dict(db.execute("SELECT sha256, refs FROM blobs").fetchall())
    return {
        "integrity": db.execute("PRAGMA integrity_check").fetchall()[0][0],
        "ids": sorted(p.external_id for p in products),
        "refs_exact": refs == dict.fromkeys(named, 1) and len(set(named)) == len(named),
        "blobs_present": all(catalog.repository.get_blob("acme", sha) for sha in named),
    }


def main(mode: str, directory: Path) -> dict[str, Any]:
    path = directory / "catalog.db"
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None, check_same_thread=False))
    catalog = cc.Catalog(cc.SQLiteRepository(db))
    kept = [catalog.upsert("acme", big(f"kept{n}")).product for n in range(5)]
    take_space(mode, directory)
    seen: dict[str, Any] = {"mode": mode, "written_before_failure": 0}
    try:
        for n in range(10_000):
            payload, files = uploaded(n)
            catalog.upsert("acme", payload, files=files)
            seen["written_before_failure"] += 1
    except Exception as exc:  # reported to the test, which judges it
        seen["single"] = failure(exc)
    try:
        list(catalog.upsert_many("acme", [big(f"bulk{n}") for n in range(200)]))
    except Exception as exc:
        seen["bulk"] = failure(exc)
    seen["during"] = state(catalog, db)
    seen["kept_untouched"] = all(catalog.get("acme", p.external_id) == p for p in kept)
    give_space_back(mode, directory)
    payload, files = uploaded(999_999)
    seen["after_single_created"] = catalog.upsert("acme", payload, files=files).created
    results = list(catalog.upsert_many("acme", [big(f"bulk{n}") for n in range(200)]))
    seen["after_bulk_accepted"] = sum(isinstance(r, cc.UpsertResult) for r in results)
    seen["after"] = state(catalog, db)
    db.conn.close()
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    reopened = cc.Catalog(cc.SQLiteRepository(db))  # opens the store and checks its schema
    seen["reopened"] = state(reopened, db)
    db.conn.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
