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

A writer elsewhere (the file's owner, a read-write view of the same mount) may change a catalog
this process may only read, while a reader holds it open:

- ``make-race DIRECTORY`` makes a catalog of 300 products (``p000`` to ``p299``), closed cleanly;
- ``race READER_DIRECTORY WRITER_DIRECTORY [PREFIX...]`` starts a reader on the first directory
  (its command prefixed by ``PREFIX``: ``setpriv`` without the right to ignore file modes), and
  between its reads runs two writers on the second, each a process of its own: 1,700 products
  added, ``p000`` rewritten twice and a checkpoint; then 100 products deleted and ``p000``
  rewritten again. It prints what the reader saw after each step, one JSON object.
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


def make_race(directory: Path) -> None:
    repository = cc.SQLiteRepository(directory / "catalog.db")
    catalog = cc.Catalog(repository)
    list(catalog.upsert_many("acme", [{"externalId": f"p{n:03}", **IMAGES} for n in range(300)]))
    repository.close()


def write(directory: Path, step: str) -> None:
    path = directory / "catalog.db"
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository)
    if step == "1":
        added = [{"externalId": f"n{n:04}", **IMAGES} for n in range(1700)]
        list(catalog.upsert_many("acme", added))
        catalog.upsert("acme", {"externalId": "p000", "title": "second"})
        catalog.upsert("acme", {"externalId": "p000", "title": "third"})
        with sqlite3.connect(path) as conn:  # the log into the file, under the reader's feet
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    else:
        for n in range(1, 101):
            catalog.delete("acme", f"p{n:03}")
        catalog.upsert("acme", {"externalId": "p000", "title": "fourth"})
    repository.close()


def read_while_written(directory: Path) -> None:
    """Hold the catalog open; read it whenever a line comes on stdin, until stdin closes."""
    repository = cc.SQLiteRepository(directory / "catalog.db")
    catalog = cc.Catalog(repository)
    try:
        while True:
            products = listed(catalog, "acme")
            seen: dict[str, Any] = {"count": len(products), "files": sorted(os.listdir(directory))}
            for external_id in ("p000", "p001", "n1699"):
                try:
                    product = catalog.get("acme", external_id)
                    seen[external_id] = [product.version, product.title]
                except cc.CatalogError as exc:
                    seen[external_id] = exc.code
            print(json.dumps(seen), flush=True)
            if not sys.stdin.readline():
                return
    finally:
        repository.close()


def race(reading: Path, writing: Path, prefix: list[str]) -> None:
    module = [sys.executable, "-m", "tests.reliability.read_only_worker"]
    reader = subprocess.Popen(
        [*prefix, *module, "read", str(reading)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdin is not None
    assert reader.stdout is not None
    seen: dict[str, Any] = {}
    try:
        seen["opened"] = json.loads(reader.stdout.readline() or "null")
        for step in ("1", "2"):
            subprocess.run([*module, "write", str(writing), step], check=True, timeout=120)
            reader.stdin.write("\n")
            reader.stdin.flush()
            seen[f"after {step}"] = json.loads(reader.stdout.readline() or "null")
    finally:
        reader.stdin.close()
        seen["status"] = reader.wait(timeout=120)
    seen["files"] = sorted(os.listdir(writing))
    print(json.dumps(seen))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], Path(sys.argv[3]))
    elif sys.argv[1] == "make-race":
        make_race(Path(sys.argv[2]))
    elif sys.argv[1] == "write":
        write(Path(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "read":
        read_while_written(Path(sys.argv[2]))
    elif sys.argv[1] == "race":
        race(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
    else:
        check(Path(sys.argv[2]))
