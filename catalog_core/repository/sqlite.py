"""The SQLite repository, built on sqlite-utils: the embedded default.

Durability and concurrency:

- The database runs in WAL mode, so readers never wait for the writer.
- Every read-merge-write runs inside ``BEGIN IMMEDIATE``: the write lock is taken before the
  product is read, so two threads or two processes on one file serialise instead of losing an
  update (R27). A busy timeout makes a waiting writer sleep rather than fail, and a writer that
  still finds the lock taken retries with back-off: callers never see "database is locked".
- ``synchronous=NORMAL`` (the default) keeps the database consistent after any crash; a power
  loss may lose the last transactions. ``durability="full"`` (``synchronous=FULL``) makes every
  committed write survive a power loss too, at the price of one more sync per write.
- Uploaded image bytes live in the same database, written in the same transaction as the product
  that first names them (R15, R26).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import quote

import sqlite_utils

from catalog_core._json import loads
from catalog_core.images import Blob
from catalog_core.model import Product, from_epoch_ms, to_epoch_ms
from catalog_core.repository._batch import apply_changes
from catalog_core.repository._recognise import COMMON_TABLES, Found, foreign, recognise
from catalog_core.repository._rows import (
    blob_refs_of_images,
    dt_or_none,
    dumps,
    images_from_json,
    images_to_json,
    ms_or_none,
)
from catalog_core.repository.base import Change

__all__ = ["SQLiteRepository"]

SCHEMA_VERSION: Final = 1
_PURGE_BATCH: Final = 500
#: Keys read by one statement of a batch write (SQLite allows 32,766 parameters).
_READ_CHUNK: Final = 500
#: Connections kept open between operations; more are opened while more threads work at once.
_MAX_IDLE: Final = 8
_COLUMNS: Final = (
    "account, external_id, title, description, metadata, valid_for_days, expires_at, "
    "last_used_at, created_at, updated_at, images, version"
)
_INSERT: Final = (
    f"INSERT INTO products ({_COLUMNS}, one_shot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# An update in place rewrites only the indexes whose columns change (the expiry index, mostly);
# INSERT OR REPLACE would delete the row and rewrite every index.
# SQLite rewrites an index when the SET clause names one of its columns, whatever the values: the
# key (and one_shot, which follows from the id) stay out of it. Takes the first 12 insert params.
_UPDATE: Final = (
    "UPDATE products SET title = ?3, description = ?4, metadata = ?5, valid_for_days = ?6, "
    "expires_at = ?7, last_used_at = ?8, created_at = ?9, updated_at = ?10, images = ?11, "
    "version = ?12 WHERE account = ?1 AND external_id = ?2"
)
_INDEXES: Final = (
    # Listing walks one account's non-one-shot ids in order (R24): a partial index keeps
    # one-shot products out of the walk.
    "CREATE INDEX IF NOT EXISTS products_listing ON products (account, external_id) "
    "WHERE one_shot = 0",
    # The purge reads only what has expired (R21).
    "CREATE INDEX IF NOT EXISTS products_expiry ON products (expires_at) "
    "WHERE expires_at IS NOT NULL",
    # The purge finds orphan blobs without scanning the others.
    "CREATE INDEX IF NOT EXISTS blobs_orphans ON blobs (account, sha256) WHERE refs = 0",
)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _row_to_product(row: Sequence[Any]) -> Product:
    return Product(
        account=row[0],
        external_id=row[1],
        title=row[2],
        description=row[3],
        metadata=None if row[4] is None else loads(row[4]),
        valid_for_days=row[5],
        expires_at=dt_or_none(row[6]),
        last_used_at=dt_or_none(row[7]),
        created_at=from_epoch_ms(row[8]),
        updated_at=from_epoch_ms(row[9]),
        images=images_from_json(loads(row[10])),
        version=row[11],
    )


def _product_params(product: Product) -> tuple[Any, ...]:
    return (
        product.account,
        product.external_id,
        product.title,
        product.description,
        None if product.metadata is None else dumps(product.metadata),
        product.valid_for_days,
        ms_or_none(product.expires_at),
        ms_or_none(product.last_used_at),
        to_epoch_ms(product.created_at),
        to_epoch_ms(product.updated_at),
        dumps(images_to_json(product.images)),
        product.version,
        int(product.one_shot),
    )


_TABLES: Final = {
    "products": frozenset(c.strip() for c in f"{_COLUMNS}, one_shot".split(",")),
    **COMMON_TABLES,
}


def _is_read_only(exc: sqlite3.OperationalError) -> bool:
    return str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_READONLY")


def _cursor_secret_of(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM catalog_meta WHERE key = 'cursor_secret'").fetchone()
    return None if row is None else str(row[0])


def _recognise(conn: sqlite3.Connection) -> Found:
    """Tell what the database is, reading only: see :func:`recognise`.

    It is empty only when ``sqlite_master`` has no row at all and no application marked it
    (``application_id``, ``user_version``).

    Raises:
        RuntimeError: the database belongs to another application, or holds a catalog of
            another schema version.
        sqlite3.DatabaseError: the file is not an SQLite database (``SQLITE_NOTADB``).
    """
    tables: dict[str, list[str]] = {}
    indexes, others = [], []
    for name, kind in conn.execute("SELECT name, type FROM sqlite_master"):
        if kind == "table" and name[:7] != "sqlite_":
            columns = conn.execute("SELECT name FROM pragma_table_info(?)", (name,))
            tables[name] = [row[0] for row in columns]
        elif kind == "index":
            indexes.append(name)
        others.append(f"{kind} {name}")
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    mark = None
    if application_id or user_version:  # an application marked the file as its own
        mark = (
            f"it is another application's database (application_id {application_id}, "
            f"user_version {user_version})"
        )

    def schema_version() -> str | None:
        row = conn.execute("SELECT value FROM catalog_meta WHERE key = 'schema_version'").fetchone()
        return None if row is None else str(row[0])

    return recognise(
        "the database",
        tables=tables,
        others=others,
        indexes=indexes,
        columns=_TABLES,
        schema_version=schema_version,
        version=SCHEMA_VERSION,
        mark=mark,
    )


class SQLiteRepository:
    """Products and blobs in one SQLite file (or an existing ``sqlite_utils.Database``).

    Args:
        db: a path, or an open ``sqlite_utils.Database``. With a path the repository keeps a
            small pool of connections: each operation borrows one, so threads never share a
            connection and at most a few idle ones stay open. A ``Database`` you pass is one
            connection, shared under a lock (open it with ``check_same_thread=False`` to use it
            from several threads). ``":memory:"`` and ``""`` (a private temporary database) are
            one shared connection too.
        durability: ``"normal"`` (``synchronous=NORMAL``, the default) or ``"full"``
            (``synchronous=FULL``); see the module documentation.
        busy_timeout: seconds a writer waits for the write lock before this repository gives up
            with ``TimeoutError``; the default is generous because waiting is the normal case under
            many writers.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | sqlite_utils.Database,
        *,
        durability: Literal["normal", "full"] = "normal",
        busy_timeout: float = 60.0,
    ) -> None:
        if durability not in ("normal", "full"):
            raise ValueError(f"durability must be 'normal' or 'full', not {durability!r}")
        self._synchronous = durability.upper()
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._idle: list[sqlite3.Connection] = []
        self._connections: list[sqlite3.Connection] = []
        self._path: str | None
        self._shared: sqlite3.Connection | None
        self._path = None if isinstance(db, sqlite_utils.Database) else os.fspath(db)
        self._shared = None
        #: Set when the file is opened as immutable: a WAL database on a read-only medium.
        self._immutable = False
        try:
            if isinstance(db, sqlite_utils.Database):
                self._shared = db.conn
                self._configure(db.conn)
            elif self._path in ("", ":memory:"):
                self._shared = self._connect()
            try:
                self._open()
            except sqlite3.OperationalError as exc:
                if not self._can_open_immutable(exc):
                    raise
                self.close()
                self._immutable = True
                self._open()
        except sqlite3.DatabaseError as exc:
            self.close()
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
                raise foreign("the database", "it is not an SQLite database") from None
            raise
        except BaseException:
            self.close()
            raise

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        assert self._path is not None
        target = self._path
        if self._immutable:
            target = f"file:{quote(os.path.abspath(target))}?mode=ro&immutable=1"
        conn = sqlite3.connect(
            target,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=self._immutable,
        )
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._connections.append(conn)
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        """Set the connection's own settings; nothing here touches the file."""
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")

    @contextmanager
    def _borrow(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection for one operation: the shared one under the lock, else a pooled one."""
        if self._shared is not None:
            with self._lock:
                yield self._shared
            return
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._lock:
                if len(self._idle) < _MAX_IDLE and conn in self._connections:
                    self._idle.append(conn)
                else:
                    conn.close()
                    if conn in self._connections:
                        self._connections.remove(conn)

    def _retry(self, action: Any) -> Any:
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.001
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"the SQLite database stayed locked for {self._busy_timeout} s"
                    ) from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.1)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock from the first read to the commit (``BEGIN IMMEDIATE``).

        Raises:
            sqlite3.OperationalError: "the catalog is read-only" when the file, or the file
                system, refuses the write (``SQLITE_READONLY``).
        """
        with self._borrow() as conn:
            try:
                self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.rollback()
                    raise
                else:
                    self._retry(conn.commit)
            except sqlite3.OperationalError as exc:
                if not _is_read_only(exc):
                    raise
                clear = sqlite3.OperationalError(
                    f"the catalog is read-only (its file or file system refuses writes): {exc}"
                )
                clear.sqlite_errorcode, clear.sqlite_errorname = (
                    exc.sqlite_errorcode,
                    exc.sqlite_errorname,
                )
                raise clear from exc

    def _can_open_immutable(self, exc: sqlite3.OperationalError) -> bool:
        """Whether a file that cannot be opened is a WAL database to read as immutable.

        On a read-only medium SQLite reads a WAL database only when its ``-wal`` and ``-shm``
        files exist, since it cannot create them. Without a ``-wal`` every commit is in the
        database file itself, and nothing can change it: reading it as immutable is exact. With
        a ``-wal`` but no ``-shm``, immutable would miss the log's commits: that is refused.

        Raises:
            sqlite3.OperationalError: the file has a ``-wal`` but no ``-shm`` on a read-only
                medium.
        """
        # CANTOPEN: the -shm cannot be made; READONLY_DIRECTORY: nor can anything else there.
        error = getattr(exc, "sqlite_errorname", "")
        if error != "SQLITE_CANTOPEN" and not error.startswith("SQLITE_READONLY"):
            return False
        path = self._path
        if self._shared is not None or self._immutable or path is None:
            return False  # a connection of the embedder's, or tried already
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            return False  # nothing to read: the error stands
        directory = os.path.dirname(os.path.abspath(path))
        if os.access(path, os.W_OK) and os.access(directory, os.W_OK):
            return False  # writable after all: some other failure
        log = f"{path}-wal"
        if os.path.exists(log) and os.path.getsize(log) > 0:
            name = os.path.basename(path)
            raise sqlite3.OperationalError(
                f"unable to open database file: the catalog is read-only and has a write-ahead "
                f"log ({name}-wal) but no {name}-shm, which SQLite needs to read it; open it "
                "once where it is writable"
            ) from exc
        return True

    # -- schema -----------------------------------------------------------------------------

    def _open(self) -> None:
        """Recognise the database before changing anything, then create what is missing.

        A file that is neither empty nor a catalog of this schema is refused untouched: the
        first statements only read. WAL mode (which persists in the file) is switched on last,
        once the file is known to be a catalog. A catalog of an earlier version gets its cursor
        secret here; on a read-only one, this handle makes one of its own.
        """
        with self._borrow() as conn:
            found = _recognise(conn)
            secret = _cursor_secret_of(conn) if found == "whole" else None
        if secret is None:
            try:
                with self._transaction() as conn:
                    # Again under the write lock: another process may have made it meanwhile.
                    if _recognise(conn) != "whole" or _cursor_secret_of(conn) is None:
                        self._create_schema(sqlite_utils.Database(conn))
                    secret = _cursor_secret_of(conn)
            except sqlite3.OperationalError as exc:
                if found != "whole" or not _is_read_only(exc):
                    raise
        self._cursor_secret = (secret or secrets.token_hex(32)).encode("ascii")
        if self._immutable:
            return  # read-only: its mode, WAL, cannot change nor needs to
        with self._borrow() as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode not in ("wal", "memory"):
                self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))

    def _create_schema(self, db: sqlite_utils.Database) -> None:
        db.table("catalog_meta").create(
            {"key": str, "value": str}, pk="key", not_null={"value"}, if_not_exists=True
        )
        db.table("products").create(
            {
                "account": str,
                "external_id": str,
                "title": str,
                "description": str,
                "metadata": str,
                "valid_for_days": int,
                "expires_at": int,
                "last_used_at": int,
                "created_at": int,
                "updated_at": int,
                "images": str,
                "version": int,
                "one_shot": int,
            },
            pk=("account", "external_id"),
            not_null={"created_at", "updated_at", "images", "version", "one_shot"},
            if_not_exists=True,
        )
        db.table("blobs").create(
            {"account": str, "sha256": str, "mime_type": str, "data": bytes, "refs": int},
            pk=("account", "sha256"),
            not_null={"mime_type", "data", "refs"},
            if_not_exists=True,
        )
        for statement in _INDEXES:
            db.execute(statement)
        db.execute(
            "INSERT OR IGNORE INTO catalog_meta (key, value) VALUES ('schema_version', ?), "
            "('cursor_secret', ?)",
            [str(SCHEMA_VERSION), secrets.token_hex(32)],
        )

    # -- the contract -----------------------------------------------------------------------

    def cursor_secret(self) -> bytes:
        """See :class:`Repository`: the catalog's own, stored in ``catalog_meta``."""
        return self._cursor_secret

    def get(self, account: str, external_id: str) -> Product | None:
        """See :meth:`Repository.get`."""
        with self._borrow() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM products WHERE account = ? AND external_id = ?",
                (account, external_id),
            ).fetchone()
        return None if row is None else _row_to_product(row)

    def write(self, account: str, external_id: str, change: Change) -> Product | None:
        """See :meth:`Repository.write`."""
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM products WHERE account = ? AND external_id = ?",
                (account, external_id),
            ).fetchone()
            old = None if row is None else _row_to_product(row)
            result = change(old)
            new = result.product
            if new is not None and (new.account, new.external_id) != (account, external_id):
                raise ValueError("a write must keep the product's account and external id")
            conn.executemany(
                "INSERT OR IGNORE INTO blobs (account, sha256, mime_type, data, refs) "
                "VALUES (?, ?, ?, ?, 0)",
                [(account, b.sha256, b.mime_type, b.data) for b in result.blobs],
            )
            before = old.blob_refs if old else frozenset()
            after = new.blob_refs if new else frozenset()
            self._adjust_refs(conn, account, after - before, +1)
            self._adjust_refs(conn, account, before - after, -1)
            if new is None:
                conn.execute(
                    "DELETE FROM products WHERE account = ? AND external_id = ?",
                    (account, external_id),
                )
            elif row is None:
                conn.execute(_INSERT, _product_params(new))
            else:
                conn.execute(_UPDATE, _product_params(new)[:12])
            return new

    def write_many(
        self, account: str, changes: Sequence[tuple[str, Change]]
    ) -> list[Product | Exception | None]:
        """See :meth:`BatchRepository.write_many`.

        One ``BEGIN IMMEDIATE`` transaction: the stored products of every key are read with one
        statement per ``_READ_CHUNK`` keys, the changes run in order, and the rows are written with
        ``executemany``.
        """
        with self._transaction() as conn:
            found: dict[str, Product | None] = {}
            ids = list(dict.fromkeys(external_id for external_id, _ in changes))
            for start in range(0, len(ids), _READ_CHUNK):
                chunk = ids[start : start + _READ_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM products "
                    f"WHERE account = ? AND external_id IN ({marks})",
                    (account, *chunk),
                ).fetchall()
                found.update((row[1], _row_to_product(row)) for row in rows)
            outcomes, written, blobs, deltas = apply_changes(account, changes, found)
            conn.executemany(
                "INSERT OR IGNORE INTO blobs (account, sha256, mime_type, data, refs) "
                "VALUES (?, ?, ?, ?, 0)",
                [(account, b.sha256, b.mime_type, b.data) for b in blobs],
            )
            for sha, delta in deltas.items():
                self._adjust_refs(conn, account, {sha}, delta)
            conn.executemany(
                "DELETE FROM products WHERE account = ? AND external_id = ?",
                [(account, external_id) for external_id, new in written.items() if new is None],
            )
            conn.executemany(
                _INSERT,
                [_product_params(p) for i, p in written.items() if p and found.get(i) is None],
            )
            conn.executemany(
                _UPDATE,
                [_product_params(p)[:12] for i, p in written.items() if p and found.get(i)],
            )
            return outcomes

    @staticmethod
    def _adjust_refs(
        conn: sqlite3.Connection, account: str, shas: frozenset[str] | set[str], delta: int
    ) -> None:
        for sha in shas:
            cursor = conn.execute(
                "UPDATE blobs SET refs = refs + ? WHERE account = ? AND sha256 = ?",
                (delta, account, sha),
            )
            if cursor.rowcount != 1:
                raise ValueError(f"product refers to blob {sha} that was neither stored nor given")

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[Product]:
        """See :meth:`Repository.list_live`."""
        with self._borrow() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM products INDEXED BY products_listing "
                "WHERE account = ? AND one_shot = 0 AND external_id > ? "
                "AND (expires_at IS NULL OR expires_at > ?) "
                "ORDER BY external_id LIMIT ?",
                (account, after or "", to_epoch_ms(now), limit),
            ).fetchall()
        return [_row_to_product(row) for row in rows]

    def purge_expired(self, now: datetime) -> int:
        """See :meth:`Repository.purge_expired`."""
        removed = 0
        cutoff = to_epoch_ms(now)
        while True:
            with self._transaction() as conn:
                rows = conn.execute(
                    "SELECT account, external_id, images FROM products INDEXED BY products_expiry "
                    "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
                    (cutoff, _PURGE_BATCH),
                ).fetchall()
                for account, _, images in rows:
                    self._adjust_refs(conn, account, blob_refs_of_images(json.loads(images)), -1)
                conn.executemany(
                    "DELETE FROM products WHERE account = ? AND external_id = ?",
                    [(account, external_id) for account, external_id, _ in rows],
                )
            removed += len(rows)
            if len(rows) < _PURGE_BATCH:
                break
        while True:
            with self._transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM blobs WHERE rowid IN (SELECT rowid FROM blobs "
                    "INDEXED BY blobs_orphans WHERE refs = 0 LIMIT ?)",
                    (_PURGE_BATCH,),
                ).rowcount
            if deleted < _PURGE_BATCH:
                break
        return removed

    def get_blob(self, account: str, sha256: str) -> Blob | None:
        """See :meth:`Repository.get_blob`."""
        with self._borrow() as conn:
            row = conn.execute(
                "SELECT sha256, data, mime_type FROM blobs WHERE account = ? AND sha256 = ?",
                (account, sha256),
            ).fetchone()
        return None if row is None else Blob(row[0], bytes(row[1]), row[2])

    def close(self) -> None:
        """Close the connections this repository opened (a ``Database`` you passed stays open)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._idle.clear()
