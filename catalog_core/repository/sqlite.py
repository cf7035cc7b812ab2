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
- The try-on flow's state (person images, generations, credit balances) lives in tables of its
  own, written through the same transaction and write algorithm; a catalog of schema 1 gets
  them in one transaction when it is first opened where it may be written.
- A file is recognised, read-only, before anything is written to it: another application's is
  refused untouched.
- A catalog the process may not write is read; where SQLite cannot make its ``-wal`` and
  ``-shm`` files, through immutable connections under a guard that sees writers come
  (``_sqlite_guard``).
"""

from __future__ import annotations

import functools
import os
import random
import secrets
import sqlite3
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote

import sqlite_utils

from catalog_core.images import Blob
from catalog_core.model import Product, ProductRow, to_epoch_ms
from catalog_core.repository import _engine as engine
from catalog_core.repository._recognise import (
    COMMON_TABLES,
    EARLIER_VERSIONS,
    SQLITE_INDEXES,
    Contents,
    Found,
    foreign,
    read_meta,
    recognise,
)
from catalog_core.repository._rows import (
    CREDIT_ROWS,
    GENERATIONS_SPLIT,
    PERSON_IMAGES_SPLIT,
    SPLIT,
    SqlTable,
    Statements,
    generation_pages,
    live_page,
    scan_statements,
    split_product_row,
    statements,
)
from catalog_core.repository._sqlite_guard import Guard
from catalog_core.repository.base import (
    Change,
    PurgeCounts,
    TryOnChange,
    TryOnKeys,
    TryOnWrite,
)
from catalog_core.tryon.model import Credits, Generation, PersonImage

__all__ = ["ReadInterrupted", "SQLiteRepository", "WriteWouldWait"]

#: 2: the try-on flow's tables (person_images, generations, credits) beside schema 1's.
SCHEMA_VERSION: Final = 2
_PURGE_BATCH: Final = 500
#: Keys read by one statement of a batch write (SQLite allows 32,766 parameters).
_READ_CHUNK: Final = 500
#: Connections kept open between operations; more are opened while more threads work at once.
_MAX_IDLE: Final = 8
#: How many of SQLite's virtual machine steps a bounded read takes between two counts (a page
#: of 50 takes about 1,100).
_STEPS_A_COUNT: Final = 1000
#: How long a checkpoint waits for the write lock and for the log's readers, in milliseconds:
#: the length of many writes, and short enough that writes do not queue behind it for long.
_CHECKPOINT_WAIT_MS: Final = 100


class ReadInterrupted(Exception):
    """A read ran past the steps of :meth:`SQLiteRepository.bounded_reads` and was stopped."""


class WriteWouldWait(Exception):
    """A write under :meth:`SQLiteRepository.writes_without_waiting` found the lock taken."""


@functools.cache
def _statements_of(table: SqlTable[Any]) -> Statements:
    return statements(table, qualified=table.name, mark="?")


_PRODUCTS: Final = _statements_of(SPLIT)
_PAGE: Final = live_page(
    SPLIT, qualified="products INDEXED BY products_listing", mark="?", listed="one_shot = 0"
)
#: A page of an account's generations, newest first.
#: A row's product id, as the index of one product's generations states it.
_PRODUCT_OF: Final = "json_extract(product, '$[0]')"
_GENERATION_PAGES: Final = generation_pages(
    GENERATIONS_SPLIT, qualified="generations", mark="?", product_of=_PRODUCT_OF
)
#: The walk of export and copy: the primary key's index, in its order.
_SCAN: Final = scan_statements(
    SPLIT,
    qualified="products",
    mark="?",
    walked="products INDEXED BY sqlite_autoindex_products_1",
)
#: A product's row and its insert: the benchmarks build their fixtures with them.
_product_params: Final = SPLIT.encode
_INSERT: Final = _PRODUCTS.insert
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
    # The purge reads only what has expired (T22); erasure only the customer's records (T18).
    "CREATE INDEX IF NOT EXISTS person_images_expiry ON person_images (expires_at)",
    "CREATE INDEX IF NOT EXISTS person_images_customer ON person_images (account, customer_id) "
    "WHERE customer_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS generations_expiry ON generations (expires_at)",
    "CREATE INDEX IF NOT EXISTS generations_customer ON generations (account, customer_id) "
    "WHERE customer_id IS NOT NULL",
    # The account's generations, newest first (the server's local listing). Not required of a
    # catalog (one made by an earlier release lists them without it, sorting the account's).
    "CREATE INDEX IF NOT EXISTS generations_listing ON generations "
    "(account, created_at, generation_id)",
    # One product's generations, newest first (the same; and for the same catalogs).
    "CREATE INDEX IF NOT EXISTS generations_product ON generations "
    "(account, json_extract(product, '$[0]'), created_at, generation_id)",
)
#: The table of each kind of record, and the index its purge reads (``None``: never purged).
_KINDS: Final[dict[str, tuple[SqlTable[Any], str | None]]] = {
    engine.PRODUCTS.name: (SPLIT, "products_expiry"),
    engine.PERSON_IMAGES.name: (PERSON_IMAGES_SPLIT, "person_images_expiry"),
    engine.GENERATIONS.name: (GENERATIONS_SPLIT, "generations_expiry"),
    engine.CREDITS.name: (CREDIT_ROWS, None),
}


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


_TABLES: Final = {
    SPLIT.name: SPLIT.all_columns,
    PERSON_IMAGES_SPLIT.name: PERSON_IMAGES_SPLIT.all_columns,
    GENERATIONS_SPLIT.name: GENERATIONS_SPLIT.all_columns,
    **COMMON_TABLES,
}
#: What :func:`_recognise` finds of a catalog that can be read: this version's, or an earlier one.
_READABLE: Final = ("whole", "outdated")


def _is_read_only(exc: sqlite3.OperationalError) -> bool:
    return str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_READONLY")


def _cursor_secret_of(conn: sqlite3.Connection) -> str | None:
    return read_meta(conn, "catalog_meta", "cursor_secret")


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

    version = functools.partial(read_meta, conn, "catalog_meta", "schema_version")
    contents = Contents(tables, others, indexes, version, mark)
    return recognise(
        "the database", contents, columns=_TABLES, version=SCHEMA_VERSION, indexes=SQLITE_INDEXES
    )


_READ_ONLY: Final = "the catalog is read-only"
#: How many times a read is tried again as writers come and go, before giving up.
_REOPENS: Final = 8
_T = TypeVar("_T")
_R = TypeVar("_R")


def _try_begin(conn: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE``: whether it took the write lock (``False``: busy, taken elsewhere)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            return False
        raise
    return True


def _begin_the_log(conn: sqlite3.Connection) -> None:
    """Write the first frame of a log a checkpoint emptied: the same ``user_version`` again.

    A lock taken meanwhile (busy) leaves it to that writer.
    """
    if not _try_begin(conn):
        return
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.rollback()


def _begin_without_waiting(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` tried once, on a connection without a busy handler.

    Raises:
        WriteWouldWait: the lock is taken.
    """
    if not _try_begin(conn):
        raise WriteWouldWait("the write lock is taken")


def _open_connection(
    path: str, timeout: float, kind: Literal["", "ro", "immutable"]
) -> sqlite3.Connection:
    """Open a connection: plain (read-write where allowed), read-only, or read-only immutable."""
    if not kind:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    query = "mode=ro&immutable=1" if kind == "immutable" else "mode=ro"
    return sqlite3.connect(
        f"file:{quote(os.path.abspath(path))}?{query}",
        timeout=timeout,
        isolation_level=None,
        check_same_thread=False,
        uri=True,
    )


def _recognised(conn: sqlite3.Connection) -> tuple[Found, str | None]:
    """Recognise the database in one read transaction, and its cursor secret; close ``conn``."""
    try:
        conn.execute("BEGIN")
        found = _recognise(conn)
        return found, _cursor_secret_of(conn) if found in _READABLE else None
    finally:
        conn.close()


def _has_log_without_index(path: str) -> bool:
    try:
        return os.path.getsize(f"{path}-wal") > 0 and not os.path.exists(f"{path}-shm")
    except FileNotFoundError:
        return False


def _log_without_index(path: str) -> sqlite3.OperationalError:
    name = os.path.basename(path)
    return sqlite3.OperationalError(
        f"unable to open database file: the catalog is read-only and has a write-ahead log "
        f"({name}-wal) but no {name}-shm, which SQLite needs to read it; open it once where "
        "it is writable"
    )


def _run(conn: sqlite3.Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``statement`` once per row: nothing for none, ``execute`` for one (a little faster)."""
    if len(rows) == 1:
        conn.execute(statement, rows[0])
    elif rows:
        conn.executemany(statement, rows)


def _move_refs(
    conn: sqlite3.Connection,
    kind: engine.RecordKind[Any, Any],
    account: str,
    deltas: dict[str, int],
) -> None:
    """Move the reference count of each blob by its delta, for records of ``kind``.

    Raises:
        ValueError: a blob is not stored (the engine's ``missing_blob``).
    """
    for sha, delta in deltas.items():
        cursor = conn.execute(
            "UPDATE blobs SET refs = refs + ? WHERE account = ? AND sha256 = ?",
            (delta, account, sha),
        )
        if cursor.rowcount != 1:
            raise engine.missing_blob(kind, sha)


def _session(
    conn: sqlite3.Connection, kind: engine.RecordKind[_R, Any], table: SqlTable[_R]
) -> engine.Session[_R]:
    """Return the load and apply steps of the shared write algorithm for ``kind`` in ``table``.

    Both run in ``conn``'s transaction; see :mod:`catalog_core.repository._engine`.
    """
    sql = _statements_of(table)

    def load(account: str, ids: list[str]) -> dict[str, _R]:
        if len(ids) == 1:  # a write: one statement, no list to build
            row = conn.execute(sql.get, (account, ids[0])).fetchone()
            return {} if row is None else {ids[0]: table.decode(row)}
        found: dict[str, _R] = {}
        for start in range(0, len(ids), _READ_CHUNK):
            chunk = ids[start : start + _READ_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"{sql.select} AND {table.id_column} IN ({marks})", (account, *chunk)
            ).fetchall()
            found.update((row[1], table.decode(row)) for row in rows)
        return found

    def apply(account: str, plan: engine.Plan[_R]) -> None:
        if plan.blobs:
            _run(
                conn,
                "INSERT OR IGNORE INTO blobs (account, sha256, mime_type, data, refs) "
                "VALUES (?, ?, ?, ?, 0)",
                [(account, b.sha256, b.mime_type, b.data) for b in plan.blobs],
            )
        if plan.deltas:
            _move_refs(conn, kind, account, plan.deltas)
        if plan.deletes:
            _run(conn, sql.delete, [(account, i) for i in plan.deletes])
        if plan.inserts:
            _run(conn, sql.insert, [table.encode(r) for r in plan.inserts])
        if plan.updates:
            _run(conn, sql.update, [table.update_params(table.encode(r)) for r in plan.updates])

    return load, apply


def _customer_batches(
    conn: sqlite3.Connection,
    kind: engine.RecordKind[_R, Any],
    account: str,
    customer_id: str,
) -> engine.Erasing[_R]:
    """The erasure steps of ``kind``: the next batch of the customer's records; the apply."""
    table = _KINDS[kind.name][0]
    select = (
        f"SELECT {table.selected} FROM {table.name} WHERE account = ? AND customer_id = ? LIMIT ?"
    )

    def batch() -> dict[str, _R]:
        rows = conn.execute(select, (account, customer_id, _PURGE_BATCH)).fetchall()
        return {row[1]: table.decode(row) for row in rows}

    return batch, _session(conn, kind, table)[1]


def _bounded(
    conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T], left: list[int]
) -> _T:
    """Run ``work`` on ``conn``, stopped once its statements have taken ``left[0]`` steps.

    ``left`` is the steps left to the bound, counted down in thousands by this read.

    Raises:
        ReadInterrupted: a statement was stopped.
    """

    def spent() -> bool:
        left[0] -= _STEPS_A_COUNT
        return left[0] <= 0

    conn.set_progress_handler(spent, _STEPS_A_COUNT)
    try:
        return work(conn)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_INTERRUPT:
            raise ReadInterrupted("the read ran past its steps and was stopped") from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


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

    Raises:
        RuntimeError: ``db`` is not a catalog, and was left unchanged: a directory, a file that
            is not an SQLite database, another application's database; or it holds a catalog
            of a schema this version cannot read.
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
        #: The idle connections of writes that do not wait (``writes_without_waiting``), and
        #: every open connection of that kind: no busy handler, no automatic checkpoint.
        self._idle_unwaiting: list[sqlite3.Connection] = []
        self._unwaiting: set[sqlite3.Connection] = set()
        #: Every connection this repository opened, with the guard it reads under (``None``: a
        #: connection SQLite coordinates with writers itself).
        self._connections: dict[sqlite3.Connection, Guard | None] = {}
        self._path: str | None
        self._shared: sqlite3.Connection | None
        self._path = None if isinstance(db, sqlite_utils.Database) else os.fspath(db)
        self._shared = None
        #: Set while reads go through immutable connections: see ``_sqlite_guard``.
        self._guard: Guard | None = None
        #: Each thread's own state: the steps left to its bounded reads (``left``), while it
        #: has a bound, and whether its writes do not wait (``no_wait``).
        self._per_thread = threading.local()
        try:
            if isinstance(db, sqlite_utils.Database):
                self._shared = db.conn
                self._configure(db.conn)
            elif self._path in ("", ":memory:"):
                self._shared = self._connect()
            self._open()
        except sqlite3.DatabaseError as exc:
            self.close()
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
                raise foreign(self._subject(), "it is not an SQLite database") from None
            raise
        except BaseException:
            self.close()
            raise

    @property
    def durability(self) -> Literal["normal", "full"]:
        """The durability it was opened with: ``"normal"`` or ``"full"``."""
        return "full" if self._synchronous == "FULL" else "normal"

    # -- connections ------------------------------------------------------------------------

    def _subject(self) -> str:
        """Name the database in a refusal: by its path, when the repository was given one."""
        return "the database" if self._path in (None, "", ":memory:") else f"'{self._path}'"

    def _file(self) -> str:
        """Return the catalog file's path; only a repository opened on a path pools connections.

        Raises:
            RuntimeError: the repository reads a connection it was given (it has no path).
        """
        if self._path is None:
            raise RuntimeError("this SQLiteRepository reads a connection it was given, not a path")
        return self._path

    def _connect(self, *, waits: bool = True) -> sqlite3.Connection:
        """Open a pooled connection: a plain one, or an immutable one while a guard is held.

        One that does not wait (``waits=False``) has no busy handler and leaves checkpoints to
        :meth:`checkpoint` and to the other connections.
        """
        path = self._file()
        with self._lock:
            guard = self._guard
        timeout = self._busy_timeout if waits else 0.0
        conn = _open_connection(path, timeout, "immutable" if guard else "")
        try:
            self._configure(conn, timeout)
            if not waits:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._connections[conn] = guard
            if not waits:
                self._unwaiting.add(conn)
        return conn

    def _configure(self, conn: sqlite3.Connection, busy_timeout: float | None = None) -> None:
        """Set the connection's own settings; nothing here touches the file."""
        timeout = self._busy_timeout if busy_timeout is None else busy_timeout
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")

    @contextmanager
    def _borrow(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection for one operation: see :meth:`_take`."""
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _take(self, *, waits: bool = True) -> sqlite3.Connection:
        """Take a connection for one operation: the shared one under the lock, else a pooled one.

        A pooled connection of another kind than the current one (opened before the catalog
        began or stopped reading under a guard) is closed rather than lent or kept. Every
        connection taken is given back with :meth:`_give_back`. ``waits=False``: a connection
        without a busy handler (see :meth:`_connect`); the shared one always waits.
        """
        if self._shared is not None:
            self._lock.acquire()
            return self._shared
        conn = None
        with self._lock:
            idle = self._idle if waits else self._idle_unwaiting
            while idle and conn is None:
                conn = idle.pop()
                if self._connections.get(conn, False) is not self._guard:
                    self._discard(conn)
                    conn = None
        return self._connect(waits=waits) if conn is None else conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """Give back a connection of :meth:`_take`: keep it idle, or close it."""
        if self._shared is not None:
            self._lock.release()
            return
        with self._lock:
            kept = self._connections.get(conn, False) is self._guard
            idle = self._idle_unwaiting if conn in self._unwaiting else self._idle
            if kept and len(idle) < _MAX_IDLE:
                idle.append(conn)
            else:
                self._discard(conn)

    def _discard(self, conn: sqlite3.Connection) -> None:
        conn.close()
        self._connections.pop(conn, None)
        self._unwaiting.discard(conn)

    def _retry(self, action: Callable[..., _T], *args: Any) -> _T:
        """Return ``action(*args)``, tried again with back-off while the database is busy."""
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.001
        while True:
            try:
                return action(*args)
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
    def bounded_reads(self, steps: int) -> Iterator[None]:
        """Within it, the reads of this thread are stopped once they take ``steps`` in all.

        Steps of SQLite's virtual machine, counted a thousand at a time (a page of 50 products
        takes about 1,100; a page walking past expired products about 7 more for each). For a
        caller on an event loop, which runs a read in place when it is short and elsewhere when
        it is not: a listing page walks past every expired product not purged yet, however
        many there are. The same read is stopped or not whatever the machine's load; a read
        that is never stopped is the same read as without the bound.

        Raises:
            ReadInterrupted: from a read past the bound, which read nothing (it changes nothing
                in any case).
        """
        before = getattr(self._per_thread, "left", None)
        self._per_thread.left = [steps]
        try:
            yield
        finally:
            self._per_thread.left = before

    @contextmanager
    def writes_without_waiting(self) -> Iterator[None]:
        """Within it, a write of this thread that would wait for the write lock is not made.

        For a caller on an event loop, which makes a write in place when the lock is free and
        elsewhere when it is not: another connection's transaction (a bulk import, a purge,
        another process) may hold the lock for as long as it runs. The lock is tried once, on
        a connection without SQLite's busy handler; a write that takes it is the same write as
        without this. Nor does such a write copy the write-ahead log into the database when
        the log grows (an automatic checkpoint, which syncs the file): call :meth:`checkpoint`
        now and then, away from the event loop (``catalog-core serve`` does); writes outside
        this context still checkpoint as SQLite does.

        Raises:
            WriteWouldWait: from a write that found the lock taken; it wrote nothing.
            RuntimeError: the repository is one shared connection (its writes wait for its
                lock): a ``Database`` it was given, ``":memory:"`` or ``""``.
        """
        if self._shared is not None:
            raise RuntimeError("a repository on one shared connection cannot write without waiting")
        before = getattr(self._per_thread, "no_wait", False)
        self._per_thread.no_wait = True
        try:
            yield
        finally:
            self._per_thread.no_wait = before

    def checkpoint(self) -> int:
        """Copy the write-ahead log into the database, and let the log begin again.

        A passive checkpoint, which copies the bulk of the log without the write lock, then a
        restarting one (``PRAGMA wal_checkpoint(RESTART)``), which waits at most 100 ms for the
        write lock and for the log's readers and copies what came meanwhile: the writes that
        did not wait (:meth:`writes_without_waiting`) leave it to this. A passive
        one, run while writes go on, would never let the log begin again, and the file would
        grow without end. When it copied the whole log, it makes the log's first write itself
        (the same ``user_version``, written again), so that the sync of the new log's header
        is not made by the next caller's write.

        Returns:
            How many frames the log held (0 when it held none, or the catalog is not in
            write-ahead mode).
        """
        if self._guard is not None:
            return 0  # read-only: nothing of its own to copy
        with self._borrow() as conn:
            if self._shared is None:
                conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
            try:
                # The bulk of the log first, without the write lock; then what came meanwhile,
                # with it, which is short.
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                busy, frames, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                if not busy and frames > 0:
                    _begin_the_log(conn)
            finally:
                if self._shared is None:
                    self._configure(conn)  # its own busy timeout again
        return max(0, int(frames))

    def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a read on a borrowed connection, and check that it read the catalog as it is.

        Under a guard, a read after which the guard finds a writer came (whether it returned
        rows or failed on a page the writer's checkpoint tore) is read again, the way SQLite then
        allows. A plain connection that cannot make the ``-wal`` or ``-shm`` (a writer that made
        them has gone and removed them) makes the catalog choose again.
        """
        failure: sqlite3.DatabaseError | None = None
        left: list[int] | None = getattr(self._per_thread, "left", None)
        for _ in range(_REOPENS):
            with self._borrow() as conn:
                guard = self._connections.get(conn)
                try:
                    result = work(conn) if left is None else _bounded(conn, work, left)
                except sqlite3.DatabaseError as exc:
                    if guard is None and not self._cannot_make_sidecars(exc):
                        raise
                    if guard is not None and guard.unchanged():
                        raise  # not torn: no writer came
                    failure = exc
                else:
                    if guard is None or guard.unchanged():
                        return result
            self._reopen(guard)
        if failure is not None:
            raise failure
        raise sqlite3.OperationalError(  # writers came and went _REOPENS times in a row
            "the catalog kept changing under a read-only reader; try again"
        )

    def _transaction(self) -> _Transaction:
        """Hold the write lock from the first read to the commit (``BEGIN IMMEDIATE``).

        Used as ``with self._transaction() as conn:``; see :class:`_Transaction`.
        """
        return _Transaction(self)

    def _refused_write(self, exc: sqlite3.OperationalError) -> sqlite3.OperationalError | None:
        """Return the clear error of a write the file refuses, or ``None`` for any other error.

        "the catalog is read-only" when the file, or the file system, refuses the write
        (``SQLITE_READONLY``), or SQLite may not make the ``-wal`` and ``-shm`` files it needs
        to write.
        """
        if not _is_read_only(exc) and not self._cannot_make_sidecars(exc):
            return None
        clear = sqlite3.OperationalError(
            f"{_READ_ONLY} (its file or file system refuses writes): {exc}"
        )
        clear.sqlite_errorcode, clear.sqlite_errorname = exc.sqlite_errorcode, exc.sqlite_errorname
        return clear

    # -- reading a file SQLite cannot read in place --------------------------------------------

    def _cannot_make_sidecars(self, exc: sqlite3.Error) -> bool:
        """Whether SQLite failed because it may not make a ``-wal`` or ``-shm`` file here."""
        # CANTOPEN: on a read-only file system; READONLY_DIRECTORY: in a directory it may not
        # write; READONLY_CANTINIT: a read-only -shm no writer has set up.
        error = getattr(exc, "sqlite_errorname", "")
        if error != "SQLITE_CANTOPEN" and not error.startswith("SQLITE_READONLY"):
            return False
        path = self._path
        if self._shared is not None or path is None or not os.path.isfile(path):
            return False
        directory = os.path.dirname(os.path.abspath(path))
        return not (os.access(path, os.W_OK) and os.access(directory, os.W_OK))

    def _choose_reading(self) -> None:
        """Read through plain connections where SQLite can; else through guarded immutable ones.

        Raises:
            sqlite3.OperationalError: SQLite cannot read the file here, and it cannot be read
                exactly as immutable either: a ``-wal`` that may hold commits has no ``-shm``,
                or this system has no open file description locks.
        """
        path = self._file()
        with self._lock:
            for _ in range(_REOPENS):
                self._set_guard(None)
                try:
                    with self._borrow() as conn:
                        conn.execute("SELECT 1 FROM sqlite_master").fetchall()
                    return
                except sqlite3.OperationalError as exc:
                    if not self._cannot_make_sidecars(exc):
                        raise
                    refused = exc
                guard = Guard.take(path, self._busy_timeout)
                if guard is None:
                    raise sqlite3.OperationalError(
                        f"{refused}: the catalog is read-only and SQLite cannot make its -wal "
                        "and -shm files here; reading it as immutable needs open file "
                        "description locks (Linux), to see writers come"
                    ) from refused
                if guard.usable:
                    self._set_guard(guard)
                    return
                guard.release()
                if guard.log_without_index:
                    raise _log_without_index(path) from refused
                # A writer made the -wal and -shm meanwhile: SQLite reads them now.
            raise refused

    def _reopen(self, stale: Guard | None) -> None:
        """Choose again how to read, unless another thread already did since ``stale``."""
        with self._lock:
            if stale is not None and self._guard is not stale:
                return
            self._choose_reading()

    def _set_guard(self, guard: Guard | None) -> None:
        """Read under ``guard`` from now on: release the old one and close idle connections."""
        with self._lock:
            old, self._guard = self._guard, guard
            if old is not None:
                old.release()
            for conn in [*self._idle, *self._idle_unwaiting]:
                self._discard(conn)
            self._idle.clear()
            self._idle_unwaiting.clear()

    # -- schema -----------------------------------------------------------------------------

    def _open(self) -> None:
        """Recognise the database before changing anything, then create what is missing.

        A file that is neither empty nor a catalog of this schema is refused untouched: it is
        recognised over a read-only connection (an immutable one under a guard for a WAL file
        without its -wal and -shm, so that none is left beside it). WAL mode (which persists
        in the file) is switched on last, once the file is known to be a catalog. A catalog of
        an earlier version gets its cursor secret here; on a read-only one, this handle makes
        one of its own. A catalog of an earlier schema version is migrated here, in the same one
        transaction (see :meth:`_create_schema`); a read-only one is read as it is.
        """
        if self._shared is not None:
            with self._borrow() as conn:
                found = _recognise(conn)
                secret = _cursor_secret_of(conn) if found in _READABLE else None
        else:
            found, secret = self._recognise_file()
            if found in _READABLE:
                self._choose_reading()
        #: Whether the catalog has the try-on tables: not while an earlier schema is read-only.
        self._tryon = found != "outdated"
        if secret is None or found == "outdated":
            try:
                with self._transaction() as conn:
                    # Again under the write lock: another process may have made it meanwhile.
                    if _recognise(conn) != "whole" or _cursor_secret_of(conn) is None:
                        self._create_schema(sqlite_utils.Database(conn))
                    secret = _cursor_secret_of(conn)
                self._tryon = True
            except sqlite3.OperationalError as exc:
                if found not in _READABLE or not str(exc).startswith(_READ_ONLY):
                    raise
        self._cursor_secret = (secret or secrets.token_hex(32)).encode("ascii")
        if self._guard is not None:
            return  # read-only: its mode, WAL, cannot change nor needs to
        with self._borrow() as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode not in ("wal", "memory"):
                self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))

    def _recognise_file(self) -> tuple[Found, str | None]:
        """Recognise the file at the path without writing to it; return it and its cursor secret.

        A missing or zero-byte file is empty; a directory, or a file without SQLite's header,
        is refused before SQLite opens it. A WAL file without its ``-wal`` and ``-shm`` is
        read as immutable under a guard (a plain or read-only connection would make them and,
        read-only, leave them); any other through a read-only connection, which cannot
        checkpoint another application's log into its file when it closes. A rollback journal
        left by a writer that died is rolled back first, as by any SQLite reader.

        Raises:
            RuntimeError: the path is a directory, or the file is not an SQLite database or
                not a catalog (see :func:`_recognise`).
        """
        path = self._file()
        try:
            with open(path, "rb") as file:
                header = file.read(100)
        except FileNotFoundError:
            return "empty", None
        except OSError:
            if os.path.isdir(path):  # else SQLite says "disk I/O error"
                raise foreign(self._subject(), "it is a directory") from None
            header = b"SQLite format 3\x00"  # a file it may not read, say: SQLite says so
        if not header:
            return "empty", None
        if not header.startswith(b"SQLite format 3\x00"):
            raise foreign(self._subject(), "it is not an SQLite database")
        wal = len(header) > 19 and header[19] == 2
        for _ in range(_REOPENS):
            if wal and not os.path.exists(f"{path}-shm"):
                guard = Guard.take(path, self._busy_timeout)
                if guard is not None and guard.usable:
                    try:
                        seen = _recognised(_open_connection(path, self._busy_timeout, "immutable"))
                    except sqlite3.DatabaseError:
                        if guard.unchanged():
                            raise
                        continue  # torn by a writer that came: read what it wrote
                    else:
                        if guard.unchanged():
                            return seen
                        continue  # a writer came: read what it wrote
                    finally:
                        guard.release()
                if guard is not None:
                    guard.release()
            try:
                return _recognised(_open_connection(path, self._busy_timeout, "ro"))
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_ROLLBACK":
                    return _recognised(_open_connection(path, self._busy_timeout, ""))
                if self._cannot_make_sidecars(exc) and _has_log_without_index(path):
                    raise _log_without_index(path) from exc
                raise
        raise sqlite3.OperationalError("the catalog kept changing while it was recognised")

    def _create_schema(self, db: sqlite_utils.Database) -> None:
        """Create what is missing of the schema, in the caller's transaction.

        Every statement creates only what does not exist, so this also completes a catalog
        missing parts and migrates one of an earlier version (whose schema_version it raises):
        either all of it or, if anything fails, none of it.
        """
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
        db.table(PERSON_IMAGES_SPLIT.name).create(
            {
                "account": str,
                "image_id": str,
                "sha256": str,
                "mime_type": str,
                "token": str,
                "crop": int,
                "customer_id": str,
                "created_at": int,
                "expires_at": int,
            },
            pk=("account", "image_id"),
            not_null={"sha256", "mime_type", "token", "crop", "created_at", "expires_at"},
            if_not_exists=True,
        )
        db.table(GENERATIONS_SPLIT.name).create(
            {
                "account": str,
                "generation_id": str,
                "product": str,
                "images": str,
                "customer_id": str,
                "watermark": int,
                "keep_for_days": int,
                "created_at": int,
                "processing_at": int,
                "finished_at": int,
                "outcome": str,
                "error_code": str,
                "error_message": str,
                "token": str,
                "expires_at": int,
            },
            pk=("account", "generation_id"),
            not_null={
                "product",
                "images",
                "watermark",
                "keep_for_days",
                "created_at",
                "processing_at",
                "token",
                "expires_at",
            },
            if_not_exists=True,
        )
        db.table(CREDIT_ROWS.name).create(
            {"account": str, "id": str, "balance": int, "refunds": str},
            pk=("account", "id"),
            not_null={"balance", "refunds"},
            if_not_exists=True,
        )
        for statement in _INDEXES:
            db.execute(statement)
        db.execute(
            "INSERT OR IGNORE INTO catalog_meta (key, value) VALUES ('schema_version', ?), "
            "('cursor_secret', ?)",
            [str(SCHEMA_VERSION), secrets.token_hex(32)],
        )
        earlier = ", ".join(f"'{version}'" for version in sorted(EARLIER_VERSIONS))
        db.execute(
            "UPDATE catalog_meta SET value = ? "
            f"WHERE key = 'schema_version' AND value IN ({earlier})",
            [str(SCHEMA_VERSION)],
        )

    # -- the contract -----------------------------------------------------------------------

    def cursor_secret(self) -> bytes:
        """See :class:`Repository`: the catalog's own, stored in ``catalog_meta``."""
        return self._cursor_secret

    def get(self, account: str, external_id: str) -> Product | None:
        """See :meth:`Repository.get`."""
        row = self._read(
            lambda conn: conn.execute(_PRODUCTS.get, (account, external_id)).fetchone()
        )
        return None if row is None else SPLIT.decode(row)

    def write(self, account: str, external_id: str, change: Change) -> Product | None:
        """See :meth:`Repository.write`."""
        with self._transaction() as conn:
            load, apply = _session(conn, engine.PRODUCTS, SPLIT)
            return engine.write_one(engine.PRODUCTS, account, external_id, change, load, apply)

    def write_many(
        self, account: str, changes: Sequence[tuple[str, Change]]
    ) -> list[Product | Exception | None]:
        """See :meth:`BatchRepository.write_many`.

        One ``BEGIN IMMEDIATE`` transaction: the stored products of every key are read with one
        statement per ``_READ_CHUNK`` keys, the changes run in order, and the rows are written with
        ``executemany``.
        """
        with self._transaction() as conn:
            load, apply = _session(conn, engine.PRODUCTS, SPLIT)
            return engine.write_batch(engine.PRODUCTS, account, changes, load, apply)

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[Product]:
        """See :meth:`Repository.list_live`."""
        params = (account, after or "", to_epoch_ms(now), limit)
        rows = self._read(lambda conn: conn.execute(_PAGE, params).fetchall())
        return [SPLIT.decode(row) for row in rows]

    def list_live_rows(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> list[ProductRow]:
        """See :meth:`RowListingRepository.list_live_rows`: the same statement as a page's."""
        params = (account, after or "", to_epoch_ms(now), limit)
        rows = self._read(lambda conn: conn.execute(_PAGE, params).fetchall())
        return [split_product_row(row) for row in rows]

    def scan_live(
        self,
        *,
        account: str | None,
        after: tuple[str, str] | None,
        limit: int,
        now: datetime,
    ) -> Sequence[Product]:
        """See :meth:`ScanRepository.scan_live`."""
        statement, params = _SCAN.page(account, after, now, limit)
        rows = self._read(lambda conn: conn.execute(statement, params).fetchall())
        return [SPLIT.decode(row) for row in rows]

    def count_live(self, *, account: str | None, now: datetime) -> int:
        """See :meth:`ScanRepository.count_live`."""
        statement, params = _SCAN.count(account, now)
        row = self._read(lambda conn: conn.execute(statement, params).fetchone())
        return int(row[0]) if row is not None else 0

    def purge_expired(self, now: datetime) -> int:
        """See :meth:`Repository.purge_expired`: :meth:`purge`, counting the products."""
        return self.purge(now).products

    def purge(self, now: datetime) -> PurgeCounts:
        """See :meth:`TryOnRepository.purge`.

        Each kind's expired records are read through its expiry index and deleted, their blob
        references dropped, ``_PURGE_BATCH`` at a time, a transaction each; then the orphan blobs
        the same way.
        """
        cutoff = to_epoch_ms(now)
        images = generations = 0
        if self._has_tryon():
            images = self._purge_kind(engine.PERSON_IMAGES, cutoff)
            generations = self._purge_kind(engine.GENERATIONS, cutoff)
        products = self._purge_kind(engine.PRODUCTS, cutoff)
        while True:
            with self._transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM blobs WHERE rowid IN (SELECT rowid FROM blobs "
                    "INDEXED BY blobs_orphans WHERE refs = 0 LIMIT ?)",
                    (_PURGE_BATCH,),
                ).rowcount
            if deleted < _PURGE_BATCH:
                break
        return PurgeCounts(products=products, person_images=images, generations=generations)

    def _purge_kind(self, kind: engine.RecordKind[Any, Any], cutoff: int) -> int:
        """Delete the records of ``kind`` expired at ``cutoff`` (ms) in batches; return how many."""
        table, index = _KINDS[kind.name]
        sql = _statements_of(table)
        removed = 0
        while True:
            with self._transaction() as conn:
                rows = conn.execute(
                    f"SELECT account, {table.id_column}, {table.refs_column} FROM {table.name} "
                    f"INDEXED BY {index} "
                    "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
                    (cutoff, _PURGE_BATCH),
                ).fetchall()
                for account, _, refs in rows:
                    _move_refs(conn, kind, account, dict.fromkeys(table.refs_of(refs), -1))
                conn.executemany(
                    sql.delete, [(account, record_id) for account, record_id, _ in rows]
                )
            removed += len(rows)
            if len(rows) < _PURGE_BATCH:
                return removed

    # -- the try-on flow ---------------------------------------------------------------------

    def _has_tryon(self) -> bool:
        """Whether the catalog has the try-on tables.

        Only a catalog of schema 1 that this handle could not migrate (it is read-only) has not;
        it is looked at again, since a writer elsewhere may have migrated it since.
        """
        if not self._tryon:
            version = self._read(lambda conn: read_meta(conn, "catalog_meta", "schema_version"))
            self._tryon = version == str(SCHEMA_VERSION)
        return self._tryon

    def _migrated(self, conn: sqlite3.Connection) -> None:
        """In a write transaction: migrate a catalog of schema 1 first if it still is one."""
        if not self._tryon:
            if _recognise(conn) != "whole":
                self._create_schema(sqlite_utils.Database(conn))
            self._tryon = True

    def _get(self, kind: engine.RecordKind[_R, Any], account: str, record_id: str) -> _R | None:
        table = _KINDS[kind.name][0]
        if not self._has_tryon():
            return None  # a catalog of schema 1 holds no try-on record
        sql = _statements_of(table).get
        row = self._read(lambda conn: conn.execute(sql, (account, record_id)).fetchone())
        return None if row is None else table.decode(row)

    def get_person_image(self, account: str, image_id: str) -> PersonImage | None:
        """See :meth:`TryOnRepository.get_person_image`."""
        return self._get(engine.PERSON_IMAGES, account, image_id)

    def get_generation(self, account: str, generation_id: str) -> Generation | None:
        """See :meth:`TryOnRepository.get_generation`."""
        return self._get(engine.GENERATIONS, account, generation_id)

    def list_generations(
        self,
        account: str,
        *,
        before: tuple[datetime, str] | None,
        limit: int,
        now: datetime,
        product: str | None = None,
    ) -> Sequence[Generation]:
        """See :meth:`GenerationsRepository.list_generations`: the listing index, backwards."""
        if not self._has_tryon():
            return []  # a catalog of schema 1 holds no try-on record

        sql, params = _GENERATION_PAGES.page(account, before, now, limit, product)
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [GENERATIONS_SPLIT.decode(row) for row in rows]

    def get_credits(self, account: str) -> Credits | None:
        """See :meth:`TryOnRepository.get_credits`."""
        return self._get(engine.CREDITS, account, engine.CREDITS_ID)

    def write_tryon(self, account: str, keys: TryOnKeys, change: TryOnChange) -> TryOnWrite:
        """See :meth:`TryOnRepository.write_tryon`.

        One ``BEGIN IMMEDIATE`` transaction: the write lock is held from the first read, so
        writers of one balance are serialised (T16), and a refusal rolls all of it back (T10).
        """
        with self._transaction() as conn:
            self._migrated(conn)

            def session(kind: engine.RecordKind[Any, Any]) -> engine.Session[Any]:
                return _session(conn, kind, _KINDS[kind.name][0])

            return engine.write_tryon(account, keys, change, session)

    def erase_customer(self, account: str, customer_id: str) -> int:
        """See :meth:`TryOnRepository.erase_customer`.

        One transaction; the customer's records are read through the ``(account, customer_id)``
        indexes, ``_PURGE_BATCH`` a statement, and each batch leaves the set it was read from
        (deleted, or stripped of the customer id), until none is left.
        """
        if not self._has_tryon():
            return 0  # a catalog of schema 1 holds no try-on record
        with self._transaction() as conn:
            self._migrated(conn)
            return engine.erase_customer(
                account,
                lambda kind: _customer_batches(conn, kind, account, customer_id),
                batch=_PURGE_BATCH,
            )

    def get_blob(self, account: str, sha256: str) -> Blob | None:
        """See :meth:`Repository.get_blob`."""
        row = self._read(
            lambda conn: conn.execute(
                "SELECT sha256, data, mime_type FROM blobs WHERE account = ? AND sha256 = ?",
                (account, sha256),
            ).fetchone()
        )
        return None if row is None else Blob(row[0], bytes(row[1]), row[2])

    def close(self) -> None:
        """Close the connections this repository opened (a ``Database`` you passed stays open)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._idle.clear()
            self._idle_unwaiting.clear()
            self._unwaiting.clear()
            guard, self._guard = self._guard, None
            if guard is not None:
                guard.release()


class _Transaction:
    """One write transaction of a repository: ``BEGIN IMMEDIATE`` on entry, commit on exit.

    The write lock is held from the first read to the commit. ``BEGIN`` and ``COMMIT`` are tried
    again while the database is busy (:meth:`SQLiteRepository._retry`); an exception from the
    body, or a commit that fails, rolls everything back and propagates. An ``OperationalError``
    of a file that refuses writes becomes "the catalog is read-only"
    (:meth:`SQLiteRepository._refused_write`).

    A class rather than a ``contextmanager`` generator: every write enters one, and the
    generator's machinery cost about as much as the ``BEGIN`` and ``COMMIT`` themselves.
    """

    __slots__ = ("_conn", "_repository")

    def __init__(self, repository: SQLiteRepository) -> None:
        self._repository = repository
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        repository = self._repository
        guard = repository._guard
        if guard is not None and not guard.unchanged():
            repository._reopen(guard)
        waits = not getattr(repository._per_thread, "no_wait", False)
        conn = repository._take(waits=waits)
        try:
            if waits:
                repository._retry(conn.execute, "BEGIN IMMEDIATE")
            else:
                _begin_without_waiting(conn)
        except sqlite3.OperationalError as exc:
            repository._give_back(conn)
            clear = repository._refused_write(exc)
            if clear is None:
                raise
            raise clear from exc
        except BaseException:
            repository._give_back(conn)
            raise
        self._conn = conn
        return conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        repository, conn = self._repository, self._conn
        if conn is None:  # pragma: no cover - only a with statement enters and exits it
            return
        self._conn = None
        try:
            if exc is None:
                try:
                    repository._retry(conn.commit)
                except BaseException:
                    # A commit refused (a full disk, a deferred constraint, a lock held past
                    # the timeout) leaves the transaction open: roll it back, or the connection
                    # would go back to the pool holding the write lock and writes no one commits.
                    if conn.in_transaction:
                        conn.rollback()
                    raise
            elif conn.in_transaction:
                conn.rollback()
        except sqlite3.OperationalError as error:
            clear = repository._refused_write(error)
            if clear is None:
                raise
            raise clear from error
        finally:
            repository._give_back(conn)
        if isinstance(exc, sqlite3.OperationalError):
            clear = repository._refused_write(exc)
            if clear is not None:
                raise clear from exc
