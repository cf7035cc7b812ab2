"""An SQLite file that is not a catalog is refused before anything is written to it.

The catalog recognises its own schema by the ``schema_version`` row of ``catalog_meta`` (and
tables of its own shape); an empty or new file (no object at all) is its to create. Anything
else (another application's database, a file that is not SQLite at all, a directory) is refused
with a clear error and left byte for byte as it was, with no ``-wal``, ``-shm`` or ``-journal``
file beside it, whether it is opened by the library, by URL, through a ``sqlite_utils.Database``
or by the command line. It is recognised over a read-only connection, so another application's
commits still in its ``-wal`` stay there; only a hot rollback journal is rolled back first, as
any SQLite reader must.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlite_utils

import catalog_core as cc

SCRIPT = Path(sys.executable).parent / "catalog-core"
IMAGES = [{"source": {"url": "https://cdn.example/a.jpg"}}]


def _sqlite(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


FOREIGN: dict[str, tuple[Callable[[Path], None], str]] = {
    # kind: (how to make it, what the refusal says)
    "another application's products table": (
        lambda p: _sqlite(
            p,
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL)",
            "INSERT INTO products (name, price) VALUES ('socks', 4.5), ('raincoat', 80)",
        ),
        "tables of another application (products)",
    ),
    "unrelated tables": (
        lambda p: _sqlite(
            p,
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
            "CREATE TABLE tags (note INTEGER, tag TEXT)",
            "INSERT INTO notes (body) VALUES ('buy socks')",
        ),
        "tables of another application (notes, tags)",
    ),
    "a catalog_meta without our schema_version": (
        lambda p: _sqlite(
            p,
            "CREATE TABLE catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "INSERT INTO catalog_meta VALUES ('owner', 'another app')",
        ),
        "no catalog schema_version",
    ),
    "our schema_version over a products table of another shape": (
        lambda p: _sqlite(
            p,
            "CREATE TABLE catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "INSERT INTO catalog_meta VALUES ('schema_version', '1')",
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT)",
        ),
        "products table lacks the catalog's columns",
    ),
    "another application's database in WAL mode": (
        lambda p: _sqlite(
            p,
            "PRAGMA journal_mode = WAL",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY)",
            "INSERT INTO orders DEFAULT VALUES",
        ),
        "tables of another application (orders)",
    ),
    "an empty database another application marked as its own": (
        lambda p: _sqlite(p, "PRAGMA application_id = 1234", "PRAGMA user_version = 7"),
        "another application's database (application_id 1234, user_version 7)",
    ),
    "views of another application and no table": (
        lambda p: _sqlite(p, "CREATE VIEW answers AS SELECT 42 AS answer"),
        "objects of another application (view answers)",
    ),
    "a file that is not SQLite": (
        lambda p: p.write_text("shopping list: socks, a raincoat, and more socks\n" * 200),
        "not an SQLite database",
    ),
}


def _open_by_path(path: Path) -> None:
    cc.SQLiteRepository(path).close()


def _open_by_url(path: Path) -> None:
    cc.open_repository(f"sqlite:///{path}").close()


def _open_through_sqlite_utils(path: Path) -> None:
    db = sqlite_utils.Database(path)
    try:
        cc.SQLiteRepository(db).close()
    finally:
        db.close()


OPENERS = {"path": _open_by_path, "url": _open_by_url, "sqlite_utils": _open_through_sqlite_utils}


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize("kind", FOREIGN)
def test_a_foreign_file_is_refused_and_left_byte_for_byte_as_it_was(
    tmp_path: Path, kind: str, opener: str
) -> None:
    make, reason = FOREIGN[kind]
    path = tmp_path / "theirs.db"
    make(path)
    before = _snapshot(tmp_path)
    assert list(before) == ["theirs.db"]  # no -wal or -shm left by the file's own application

    with pytest.raises(RuntimeError) as refused:
        OPENERS[opener](path)

    message = str(refused.value)
    assert "is not a catalog_core catalog" in message
    assert reason in message
    assert "left unchanged" in message
    assert _snapshot(tmp_path) == before  # the same bytes, and nothing beside it


def _a_directory(path: Path) -> None:
    path.mkdir()
    (path / "front.jpg").write_bytes(b"\xff\xd8\xff\xe0 not much of a photo")


def _sqlites_header_over_random_bytes(path: Path) -> None:
    data = bytearray(b"SQLite format 3\x00" + random.Random(16).randbytes(8192 - 16))
    data[18:20] = b"\x02\x02"  # marked as a WAL file: read as immutable, under a guard
    path.write_bytes(bytes(data))


NOT_SQLITE: dict[str, tuple[Callable[[Path], None], str]] = {
    # kind: (how to make it, what the refusal says)
    "a directory": (_a_directory, "it is a directory"),
    "a text file": (
        lambda p: p.write_text("shopping list: socks, a raincoat\n"),
        "it is not an SQLite database",
    ),
    "random bytes": (
        lambda p: p.write_bytes(random.Random(16).randbytes(64 * 1024)),
        "it is not an SQLite database",
    ),
    "SQLite's header over random bytes": (
        _sqlites_header_over_random_bytes,
        "it is not an SQLite database",
    ),
}
BY_PATH: dict[str, Callable[[Path], None]] = {
    "SQLiteRepository": _open_by_path,
    "open_repository": lambda path: cc.open_repository(str(path)).close(),
    "sqlite:/// URL": _open_by_url,
}


def _tree(directory: Path) -> dict[str, bytes | None]:
    """Every file and directory under ``directory``: a file's bytes, ``None`` for a directory."""
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None
        for p in sorted(directory.rglob("*"))
    }


@pytest.mark.parametrize("opener", BY_PATH)
@pytest.mark.parametrize("kind", NOT_SQLITE)
def test_a_directory_or_a_file_that_is_not_sqlite_is_refused_by_its_path_and_left_as_it_was(
    tmp_path: Path, kind: str, opener: str
) -> None:
    """Refused by the library, by path, before SQLite opens it: nothing written in or beside it.

    SQLite itself said "disk I/O error" of a directory, and "file is not a database".
    """
    make, reason = NOT_SQLITE[kind]
    path = tmp_path / "theirs.db"
    make(path)
    before = _tree(tmp_path)

    with pytest.raises(RuntimeError) as refused:
        BY_PATH[opener](path)

    assert str(refused.value) == (
        f"'{path}' is not a catalog_core catalog: {reason}; it was left unchanged"
    )
    assert not isinstance(refused.value, sqlite3.Error)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("command", [["list"], ["import", "-"]])
@pytest.mark.parametrize("kind", FOREIGN)
def test_the_command_line_refuses_a_foreign_file_in_one_line_and_leaves_it_as_it_was(
    tmp_path: Path, kind: str, command: list[str]
) -> None:
    make, reason = FOREIGN[kind]
    path = tmp_path / "theirs.db"
    make(path)
    before = _snapshot(tmp_path)

    result = subprocess.run(
        [str(SCRIPT), "--db", str(path), *command],
        input='{"externalId": "x", "images": [{"source": {"url": "https://a.example/x.jpg"}}]}\n',
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: cannot open the catalog database '{path}': ")
    assert reason in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert _snapshot(tmp_path) == before


# Another application's WAL database whose last commits are still in its -wal: its writer died
# (or is still running), so the -wal and -shm files are there.
_DIE_AFTER_A_COMMIT = (
    "import os, sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('PRAGMA journal_mode = WAL')\n"
    "conn.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)')\n"
    "conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
    "conn.execute(\"INSERT INTO orders (item) VALUES ('socks'), ('a raincoat')\")\n"
    "os._exit(0)\n"
)


def _cli_list(path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "--db", str(path), "list"], capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout) == (1, ""), result
    raise RuntimeError(result.stderr)


@pytest.mark.parametrize("opener", ["path", "url", "command line"])
def test_a_foreign_database_with_commits_in_its_log_is_refused_without_a_checkpoint(
    tmp_path: Path, opener: str
) -> None:
    """Recognised over a read-only connection: closing it cannot move the log into the file.

    The ``-shm`` file is SQLite's shared index of the log, rewritten by every reader: only its
    presence is compared.
    """
    path = tmp_path / "theirs.db"
    subprocess.run([sys.executable, "-c", _DIE_AFTER_A_COMMIT, str(path)], check=True)
    before = _snapshot(tmp_path)
    assert list(before) == ["theirs.db", "theirs.db-shm", "theirs.db-wal"]
    assert len(before["theirs.db-wal"]) > 0  # the two orders are only there

    with pytest.raises(RuntimeError, match="tables of another application \\(orders\\)"):
        {"path": _open_by_path, "url": _open_by_url, "command line": _cli_list}[opener](path)

    after = _snapshot(tmp_path)
    assert list(after) == list(before)
    assert after["theirs.db"] == before["theirs.db"]
    assert after["theirs.db-wal"] == before["theirs.db-wal"]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert conn.execute("SELECT item FROM orders ORDER BY id").fetchall() == [
        ("socks",),
        ("a raincoat",),
    ]
    conn.close()


# Another application's database in rollback-journal mode whose writer died mid-transaction,
# after writing pages of the file: the hot -journal holds what they were.
_DIE_IN_A_TRANSACTION = (
    "import os, sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('CREATE TABLE notes (body TEXT)')\n"
    "conn.execute(\"INSERT INTO notes VALUES ('buy socks')\")\n"
    "conn.execute('PRAGMA cache_size = 1')\n"
    "conn.execute('BEGIN')\n"
    "conn.executemany('INSERT INTO notes VALUES (?)', [('x' * 1000,)] * 500)\n"
    "os._exit(0)\n"
)


def test_a_foreign_database_left_with_a_hot_journal_is_rolled_back_as_by_any_reader(
    tmp_path: Path,
) -> None:
    """A read-only connection cannot read it: SQLite must first undo the dead transaction.

    That is what the application's own next reader would do; the file is then refused with its
    committed contents, and no journal is left.
    """
    path = tmp_path / "theirs.db"
    subprocess.run([sys.executable, "-c", _DIE_IN_A_TRANSACTION, str(path)], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db", "theirs.db-journal"]

    with pytest.raises(RuntimeError, match="tables of another application \\(notes\\)"):
        cc.SQLiteRepository(path)

    assert [p.name for p in tmp_path.iterdir()] == ["theirs.db"]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT body FROM notes").fetchall() == [("buy socks",)]
    conn.close()


@pytest.mark.parametrize("kind", ["missing", "zero bytes", "empty SQLite database"])
def test_a_new_or_empty_file_is_the_catalogs_to_create(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "catalog.db"
    if kind == "zero bytes":
        path.write_bytes(b"")
    elif kind == "empty SQLite database":
        _sqlite(path, "PRAGMA user_version = 0")  # a database with no table at all
    catalog = cc.Catalog(cc.SQLiteRepository(path))
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    catalog.repository.close()
    reopened = cc.SQLiteRepository(path)  # and it is recognised as the catalog it now is
    try:
        assert cc.Catalog(reopened).get("acme", "p").version == 1
    finally:
        reopened.close()


def test_a_catalog_is_recognised_and_opened_without_being_rewritten(tmp_path: Path) -> None:
    """Opening a catalog that is whole writes nothing: its bytes do not change."""
    path = tmp_path / "catalog.db"
    first = cc.SQLiteRepository(path)
    cc.Catalog(first).upsert("acme", {"externalId": "p", "images": IMAGES})
    first.close()
    before = _snapshot(tmp_path)
    assert list(before) == ["catalog.db"]  # the last connection checkpointed and removed the WAL
    again = cc.SQLiteRepository(path)
    again.close()
    assert _snapshot(tmp_path) == before
