"""Make a catalog, then (once the test made it read-only) read it and try to write it.

Run by ``test_read_only`` in two steps, each a process of its own:

- ``python -m tests.reliability.read_only_worker make MODE DIRECTORY`` makes the catalog and
  leaves it as ``MODE`` says:

  - ``closed``: closed cleanly, so its ``-wal`` and ``-shm`` files are gone (SQLite cannot create
    them where it may not write, so reading needs the database opened as immutable);
  - ``wal``: a writer died after its last commit, leaving ``-wal`` (which holds that commit) and
    ``-shm`` beside the database (SQLite reads both, read-only);
  - ``wal-without-shm``: the same with ``-shm`` removed, which SQLite cannot read without
    writing;
  - ``legacy``: closed cleanly, as made by a version before cursor secrets (none is stored, and
    none can be added: listing must work with a secret of the reader's own).

- ``python -m tests.reliability.read_only_worker check DIRECTORY`` reads the catalog and tries
  to write it, through the command line and the library, and prints one JSON object of what it
  saw; the test judges it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import catalog_core as cc
from tests.helpers import listed

IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}
IMAGES = {"images": [IMAGE]}
# A writer that commits one more product and dies without closing: -wal and -shm stay.
_DIE_AFTER_A_WRITE = (
    "import os, sys, catalog_core as cc\n"
    "catalog = cc.Catalog(cc.SQLiteRepository(sys.argv[1]))\n"
    f"catalog.upsert('acme', {{'externalId': 'late', 'images': [{IMAGE!r}]}})\n"
    "os._exit(0)\n"
)


def failure(exc: BaseException) -> dict[str, str]:
    return {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc)}


def make(mode: str, directory: Path) -> None:
    path = directory / "catalog.db"
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository)
    for n in range(1, 4):
        lifetime = {"validForDays": 365} if n == 3 else {}
        catalog.upsert("acme", {"externalId": f"p{n}", **IMAGES, **lifetime})
    repository.close()
    if mode == "legacy":  # made by a version before cursor secrets: a write would add one
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM catalog_meta WHERE key = 'cursor_secret'")
        conn.close()
    elif mode != "closed":
        subprocess.run([sys.executable, "-c", _DIE_AFTER_A_WRITE, str(path)], check=True)
    if mode == "wal-without-shm":
        Path(f"{path}-shm").unlink()


def command_line(path: Path, *args: str, stdin: str = "") -> dict[str, Any]:
    command = [sys.executable, "-c", "from catalog_core.cli import main; main()"]
    ran = subprocess.run(
        [*command, "--db", str(path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return {"status": ran.returncode, "stdout": ran.stdout, "stderr": ran.stderr}


def listed_in_pages(catalog: cc.Catalog) -> list[cc.Product]:
    """A walk of one product per page: every cursor made and read on the read-only catalog."""
    products: list[cc.Product] = []
    cursor = None
    while True:
        page = catalog.list("acme", limit=1, cursor=cursor)
        products += page.items
        if page.next_cursor is None:
            return products
        cursor = page.next_cursor


def library(path: Path) -> dict[str, Any]:
    """Read and try to write through the library, as an embedder would."""
    seen: dict[str, Any] = {}
    try:
        repository = cc.SQLiteRepository(path)
    except Exception as exc:
        return {"open": failure(exc)}
    catalog = cc.Catalog(repository)
    later = cc.Catalog(repository, clock=lambda: datetime.now(UTC) + timedelta(days=400))
    try:
        seen["ids"] = [p.external_id for p in listed(catalog, "acme")]
        seen["walk"] = [p.external_id for p in listed_in_pages(catalog)]
        seen["get"] = catalog.get("acme", "p1").external_id
        for name, write in {
            "upsert": lambda: catalog.upsert("acme", {"externalId": "new", **IMAGES}),
            "bulk": lambda: list(catalog.upsert_many("acme", [{"externalId": "b", **IMAGES}])),
            "delete": lambda: catalog.delete("acme", "p1"),
            "purge": later.purge_expired,  # p3 has expired by then: the purge must delete it
        }.items():
            try:
                write()
                seen[name] = "written"
            except Exception as exc:
                seen[name] = failure(exc)
        seen["ids_after"] = [p.external_id for p in listed(catalog, "acme")]
    finally:
        repository.close()
    return seen


def check(directory: Path) -> None:
    path = directory / "catalog.db"
    seen: dict[str, Any] = {"files": sorted(os.listdir(directory))}
    try:
        (directory / "probe").write_text("")
    except OSError:
        seen["read_only"] = True  # EROFS on a read-only mount, EACCES without permission
    else:
        seen["read_only"] = False
    seen["cli_list"] = command_line(path, "list", "--account", "acme", "--page-size", "1")
    seen["cli_get"] = command_line(path, "get", "p1", "--account", "acme")
    line = json.dumps({"externalId": "new", **IMAGES}) + "\n"
    seen["cli_import"] = command_line(path, "import", "-", "--account", "acme", stdin=line)
    seen["cli_delete"] = command_line(path, "delete", "p1", "--account", "acme")
    seen["library"] = library(path)
    seen["files_after"] = sorted(os.listdir(directory))
    print(json.dumps(seen))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], Path(sys.argv[3]))
    else:
        check(Path(sys.argv[2]))
