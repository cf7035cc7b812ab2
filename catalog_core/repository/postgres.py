"""The PostgreSQL repository (psycopg 3, a connection pool): for catalogs that outgrow one machine.

Design:

- **Tenant first.** The account is the first column of every key and index, so the tables can be
  distributed by account (Citus: ``schema_sql(distributed=True)``) and every statement of one
  account is routed to one shard. The only exceptions are the purge indexes
  ``(expires_at, account, id)``, which the purge reads across accounts in plain statements that
  each shard runs on its own part. No statement holds a recursive CTE, or a subquery, join or
  row lock in a statement across shards: Citus runs none of those on distributed tables.
- **No lost update.** Every read-merge-write locks the product's row (``SELECT … FOR UPDATE``)
  before reading it. A create, which has no row to lock, inserts with ``ON CONFLICT DO NOTHING``
  and starts over when a concurrent writer created the row first. Blob reference counts are
  updated in SHA-256 order so that two writes never wait on each other in a cycle; a deadlock or
  serialization failure reported by the server is retried. Only standard SQL and
  ``ON CONFLICT`` are used (no advisory locks), so PostgreSQL-compatible engines run it too.
- **Exact text.** Titles, descriptions, metadata and images are kept as one JSON document with
  every control character escaped (and, in a document that holds a lone surrogate, every
  non-ASCII character), so that what PostgreSQL cannot hold in ``text`` (NUL, lone surrogates)
  round-trips too. Timestamps are integer milliseconds. Ids use the ``C``
  collation: listing order is code-point order whatever the database's locale.
- **Keyset listing** on ``(account, external_id)`` and a **purge in bounded batches** across
  accounts: each kind's first 500 expired keys are read in the order of its purge index, then
  the expired records up to the last of them are deleted in one transaction (a range of the same
  index), and their blobs' references dropped. Its cost follows what it removes, whatever the
  number of accounts.
- **Credit balances** are never overdrawn: a try-on write locks the account's balance row
  (``FOR UPDATE``); an account without one inserts it with ``ON CONFLICT DO NOTHING``, and the
  write that finds a concurrent writer made it first starts over and locks it.
- **Lost connections.** A read, or a write whose connection dies before its commit, runs again on
  a fresh connection from a checked pool; a connection lost during the commit is reported
  (``psycopg.OperationalError``), since that write may or may not have committed.
- **Schema.** Created on first use unless ``create_schema=False``; for databases where the
  application may not run DDL, :meth:`PostgresRepository.schema_sql` (or
  ``catalog-core schema-sql``) prints the statements for an administrator to run ahead of time.
"""

from __future__ import annotations

import functools
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from catalog_core.images import Blob
from catalog_core.model import Product, to_epoch_ms
from catalog_core.repository import _engine as engine
from catalog_core.repository._postgres_schema import (
    DEFAULT_SCHEMA,
    INDEXES,
    SCHEMA_VERSION,
    check_schema_name,
    schema_sql,
    schema_statements,
)
from catalog_core.repository._recognise import COMMON_TABLES, Contents, Found, read_meta, recognise
from catalog_core.repository._rows import (
    CREDIT_ROWS,
    GENERATIONS_PACKED,
    PACKED,
    PERSON_IMAGES_PACKED,
    SqlTable,
    Statements,
    customer_key,
    live_page,
    statements,
)
from catalog_core.repository.base import (
    Change,
    PurgeCounts,
    TryOnChange,
    TryOnKeys,
    TryOnWrite,
)
from catalog_core.tryon.model import Credits, Generation, PersonImage

__all__ = ["DEFAULT_SCHEMA", "PostgresRepository"]

_PURGE_BATCH: Final = 500
_T = TypeVar("_T")
_R = TypeVar("_R")
_RETRIED: Final = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
#: Runs of the DDL when processes migrating one schema at once deadlock.
_DDL_TRIES: Final = 5
#: Tries again after a lost connection, each on a fresh one from a checked pool.
_LOST_CONNECTION_RETRIES: Final = 3
logger = logging.getLogger("catalog_core.postgres")
#: The catalog's tables and the columns each must have, to tell a catalog from another schema.
_TABLE_COLUMNS: Final = {
    PACKED.name: PACKED.all_columns,
    PERSON_IMAGES_PACKED.name: PERSON_IMAGES_PACKED.all_columns,
    GENERATIONS_PACKED.name: GENERATIONS_PACKED.all_columns,
    **COMMON_TABLES,
}
#: The table of each kind of record.
_TABLES: Final[dict[str, SqlTable[Any]]] = {
    engine.PRODUCTS.name: PACKED,
    engine.PERSON_IMAGES.name: PERSON_IMAGES_PACKED,
    engine.GENERATIONS.name: GENERATIONS_PACKED,
    engine.CREDITS.name: CREDIT_ROWS,
}
# An object that belongs to an extension depends on it with deptype 'e'.
_NOT_IN_AN_EXTENSION: Final = (
    "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = {c} AND e.objid = {o} "
    "AND e.deptype = 'e')"
)
#: The schema's relations (with their columns), but an extension's.
_RELATIONS: Final = (
    "SELECT c.relname, c.relkind, a.attname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE n.nspname = %s AND " + _NOT_IN_AN_EXTENSION.format(c="'pg_class'::regclass", o="c.oid")
)
#: Every object in the schema (each depends on it: sequences, types, functions, collations ...),
#: but extensions and what belongs to them; at most six, described.
_OBJECTS: Final = (
    "SELECT pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_depend d "
    "JOIN pg_namespace n ON n.oid = d.refobjid "
    "WHERE d.refclassid = 'pg_namespace'::regclass AND n.nspname = %s "
    "AND d.classid <> 'pg_extension'::regclass AND "
    + _NOT_IN_AN_EXTENSION.format(c="d.classid", o="d.objid")
    + " ORDER BY 1 LIMIT 6"
)


def _run(conn: psycopg.Connection[Any], statement: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run ``statement`` once per row, pipelined; return the rows it affected.

    One row is one ``execute`` (a pipeline would cost it more than it saves); none, nothing.
    """
    if len(rows) == 1:
        return conn.execute(statement, rows[0]).rowcount
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(statement, rows)
        return cur.rowcount


def _connect_once(conninfo: str, timeout: float) -> None:
    """Connect once and close, so that a mistake in ``conninfo`` fails now with the driver's cause.

    A pool connects in the background and, on failure, only reports a timeout at the end of
    ``connect_timeout``; one plain connection first gives the cause at once (``database "x" does
    not exist``, ``Connection refused``, ``invalid URI query parameter``). A ``connect_timeout``
    in ``conninfo`` is the user's and wins.

    Raises:
        psycopg.OperationalError: the server refused or could not be reached.
        psycopg.ProgrammingError: ``conninfo`` is not a valid connection string or URL.
    """
    if "connect_timeout" not in conninfo_to_dict(conninfo):
        conninfo = make_conninfo(conninfo, connect_timeout=max(1, math.ceil(timeout)))
    psycopg.connect(conninfo).close()


class _CreatedConcurrently(Exception):
    """Another writer created the row between our read and our insert: run the change again."""


class PostgresRepository:
    """Products and blobs in PostgreSQL (or a compatible engine), through a psycopg pool.

    Args:
        conninfo: a libpq connection string or ``postgresql://`` URL.
        schema: the schema holding the tables (a lower-case SQL identifier).
        min_size: connections the pool keeps open.
        max_size: connections the pool opens at most.
        create_schema: create the schema and tables when missing; with ``False`` the repository
            only checks that an administrator created them (see :meth:`schema_sql`).
        pool: an existing ``psycopg_pool.ConnectionPool`` to use instead of opening one; it is
            left open on :meth:`close`.
        connect_timeout: seconds to wait for the first connection before giving up.

    Raises:
        psycopg.OperationalError: the first connection failed; the message is the driver's
            (``database "x" does not exist``, ``Connection refused``, a timeout after
            ``connect_timeout`` for a server that does not answer).
        psycopg.ProgrammingError: ``conninfo`` is not a valid connection string or URL.
        psycopg_pool.PoolTimeout: the pool's first connection did not come within
            ``connect_timeout``.
        RuntimeError: the tables are missing (with ``create_schema=False``), belong to another
            schema version, or the database does not store text as UTF-8.
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        schema: str = DEFAULT_SCHEMA,
        min_size: int = 1,
        max_size: int = 10,
        create_schema: bool = True,
        pool: ConnectionPool | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.schema = check_schema_name(schema)
        if pool is None:
            _connect_once(conninfo, connect_timeout)
        self._owns_pool = pool is None
        self._pool: ConnectionPool = pool or ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            open=True,
            name="catalog_core",
            # Reads are one statement each: autocommit saves them a COMMIT round trip. Writes
            # open their transaction explicitly.
            kwargs={"autocommit": True},
        )
        self._quoted = f'"{self.schema}"'  # quoted: a reserved word is a valid schema name
        self._statements: dict[SqlTable[Any], Statements] = {}
        self._products = self._statements_of(PACKED)
        self._page = live_page(
            PACKED, qualified=f"{self._quoted}.products", mark="%s", listed="NOT one_shot"
        )
        try:
            self._pool.wait(timeout=connect_timeout)
            self._prepare_schema(create_schema)
        except BaseException:
            self.close()
            raise

    def _statements_of(self, table: SqlTable[Any]) -> Statements:
        """Return the statements of ``table`` in this repository's schema (written once)."""
        sql = self._statements.get(table)
        if sql is None:
            sql = self._statements[table] = statements(
                table,
                qualified=f"{self._quoted}.{table.name}",
                mark="%s",
                insert_suffix=f" ON CONFLICT (account, {table.id_column}) DO NOTHING",
            )
        return sql

    @staticmethod
    def schema_sql(schema: str = DEFAULT_SCHEMA, *, distributed: bool = False) -> str:
        """Return the statements that create the schema, for an administrator to run beforehand.

        With ``distributed``, they end with the distribution step of a Citus coordinator (see
        :func:`catalog_core.repository._postgres_schema.schema_sql`).
        """
        return schema_sql(schema, distributed=distributed)

    def _prepare_schema(self, create: bool) -> None:
        """Recognise the schema before changing anything, then create what is missing.

        A schema that holds tables but no catalog of this version is refused untouched; a
        catalog that is whole is used without any DDL (so a role without DDL rights can open it).
        The DDL runs in one transaction: a catalog of schema 1 is migrated (its try-on tables
        created, its version raised) all at once or not at all. A catalog of schema 1 that this
        role may not migrate is used as it is, with a warning: its products as ever, while the
        try-on flow waits for an administrator to run ``catalog-core schema-sql``.
        """
        with self._pool.connection() as conn:
            encoding = conn.execute("SHOW server_encoding").fetchone()
            if encoding is None or encoding[0].upper() not in ("UTF8", "UTF-8"):
                found = encoding and encoding[0]
                raise RuntimeError(f"the database stores text as {found}; catalog_core needs UTF8")
            state = self._recognise(conn)
            deadlocks = 0
            while state != "whole" and create:
                try:
                    with conn.transaction():
                        for statement in schema_statements(self.schema):
                            conn.execute(statement.encode())
                except (pg_errors.UniqueViolation, pg_errors.DuplicateObject):
                    pass  # two processes created the same schema at once: the other one won
                except pg_errors.DeadlockDetected:
                    # Two processes migrated at once (dropping an old index locks its table):
                    # the DDL only creates what is missing, so it runs again.
                    deadlocks += 1
                    if deadlocks >= _DDL_TRIES:
                        raise
                    state = self._recognise(conn)
                    continue
                except (pg_errors.InsufficientPrivilege, pg_errors.ReadOnlySqlTransaction):
                    if state != "outdated":
                        raise
                state = self._recognise(conn)
                break
            if state != "empty":
                self._warn_when_local_on_citus(conn)
        if state == "empty":
            raise RuntimeError(
                f"the catalog tables do not exist in schema {self.schema!r}; create them with "
                "PostgresRepository.schema_sql() or `catalog-core schema-sql`"
            )
        #: Whether the schema has the try-on tables: not while it is of schema 1.
        self._tryon = state != "outdated"
        if not self._tryon:
            logger.warning(
                "schema %r holds catalog schema 1 and this role may not migrate it: products "
                "work, the try-on flow waits for `catalog-core schema-sql` to be run",
                self.schema,
            )
        self._cursor_secret = self._read_cursor_secret()

    def _warn_when_local_on_citus(self, conn: psycopg.Connection[Any]) -> None:
        """Warn when the database is a Citus coordinator and the catalog's tables are local.

        ``create_schema`` makes plain tables, which Citus keeps on the coordinator: the catalog
        works, on one machine. Distributing them is an administrator's step (``schema-sql
        --citus``), not something to do behind a user's back: it moves every row.
        """
        citus = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone()
        if citus is None:
            return
        distributed = conn.execute(
            "SELECT 1 FROM pg_dist_partition WHERE logicalrelid = %s::regclass",
            (f"{self._quoted}.products",),
        ).fetchone()
        if distributed is None:
            logger.warning(
                "schema %r is on a Citus coordinator, but its tables are not distributed: they "
                "stay on the coordinator; distribute them by account with the output of "
                "`catalog-core schema-sql --schema %s --citus`",
                self.schema,
                self.schema,
            )

    def _read_cursor_secret(self) -> bytes:
        """Return the schema's cursor secret, made now if the schema predates it.

        A schema made by an earlier version has none: it is added (a plain INSERT, no DDL). A
        role that may not insert into ``catalog_meta`` gets a secret of this handle's own, with
        a warning: cursors then last as long as the handle.
        """
        select = f"SELECT value FROM {self._quoted}.catalog_meta WHERE key = 'cursor_secret'"
        with self._pool.connection() as conn:
            row = conn.execute(select).fetchone()
            if row is None:
                try:
                    conn.execute(
                        f"INSERT INTO {self._quoted}.catalog_meta (key, value) "
                        "VALUES ('cursor_secret', %s) ON CONFLICT (key) DO NOTHING",
                        (secrets.token_hex(32),),
                    )
                except (pg_errors.InsufficientPrivilege, pg_errors.ReadOnlySqlTransaction):
                    logger.warning(
                        "schema %r has no cursor secret and this role may not add one: listing "
                        "cursors will be accepted only by this repository; run "
                        "`catalog-core schema-sql` again to add it",
                        self.schema,
                    )
                    if not conn.autocommit:
                        conn.rollback()
                    return secrets.token_hex(32).encode("ascii")
                row = conn.execute(select).fetchone()
        if row is None:  # inserted, yet gone: someone deletes catalog_meta rows meanwhile
            raise RuntimeError(f"schema {self.schema!r} lost its cursor secret while it was read")
        return str(row[0]).encode("ascii")

    def cursor_secret(self) -> bytes:
        """See :class:`Repository`: the schema's own, stored in ``catalog_meta``."""
        return self._cursor_secret

    def _recognise(self, conn: psycopg.Connection[Any]) -> Found:
        """Tell what the schema holds, reading only: ``"whole"``, ``"empty"`` or ``"incomplete"``.

        The schema is empty only when it holds no object at all, but for extensions installed in
        it (their types and functions are software, not another application's data).

        Raises:
            RuntimeError: the schema holds objects of another application, or a catalog of
                another schema version.
        """
        rows = conn.execute(_RELATIONS, (self.schema,)).fetchall()
        tables: dict[str, set[str]] = {}
        indexes = set()
        for name, kind, column in rows:
            if kind == "i":
                indexes.add(name)
            elif kind in ("r", "p", "v", "m", "f"):
                tables.setdefault(name, set()).add(column)
        others = [] if tables else [r[0] for r in conn.execute(_OBJECTS, (self.schema,))]
        meta = f"{self._quoted}.catalog_meta"
        version = functools.partial(read_meta, conn, meta, "schema_version")
        contents = Contents(tables, others, indexes, version)
        return recognise(
            f"schema {self.schema!r}",
            contents,
            columns=_TABLE_COLUMNS,
            version=SCHEMA_VERSION,
            indexes=INDEXES,
        )

    # -- the contract -----------------------------------------------------------------------

    def get(self, account: str, external_id: str) -> Product | None:
        """See :meth:`Repository.get`."""
        sql = self._products.get
        row = self._read(lambda conn: conn.execute(sql, (account, external_id)).fetchone())
        return None if row is None else PACKED.decode(row)

    def _lost(self, conn: psycopg.Connection[Any], attempt: int) -> bool:
        """Whether to run again after an error on ``conn``: the connection died, and tries are left.

        The pool is checked first, so that the next try does not take another connection that
        died the same way (a restarted server, or an administrator ending every session).
        """
        if not conn.broken or attempt >= _LOST_CONNECTION_RETRIES:
            return False
        logger.warning("lost a PostgreSQL connection (try %d); trying again", attempt + 1)
        self._pool.check()
        return True

    def _read(self, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run a read (one statement, autocommit); run it again on a fresh connection if lost."""
        attempt = 0
        while True:
            with self._pool.connection() as conn:
                try:
                    return work(conn)
                except psycopg.OperationalError:
                    if not self._lost(conn, attempt):
                        raise
            attempt += 1

    def _in_transaction(self, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``work`` in a transaction; run it again after a deadlock or a serialization failure.

        Also again when a concurrent create got in first (``_CreatedConcurrently``), and when the
        connection is lost before the commit (the server rolled the transaction back, and
        changes are pure). A connection lost during the commit raises ``psycopg.OperationalError``:
        the write may or may not have committed, and running it again could apply it twice.
        """
        delay = 0.001
        lost = 0
        while True:
            committing = False
            try:
                with self._pool.connection() as conn:
                    try:
                        with conn.transaction():
                            result = work(conn)
                            committing = True
                    except psycopg.OperationalError:
                        if committing or not self._lost(conn, lost):
                            raise
                        lost += 1
                        continue
                    return result
            except (_CreatedConcurrently, *_RETRIED):
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def write(self, account: str, external_id: str, change: Change) -> Product | None:
        """See :meth:`Repository.write`."""

        def once(conn: psycopg.Connection[Any]) -> Product | None:
            load, apply = self._session(conn, engine.PRODUCTS, PACKED)
            return engine.write_one(engine.PRODUCTS, account, external_id, change, load, apply)

        return self._in_transaction(once)

    def write_many(
        self, account: str, changes: Sequence[tuple[str, Change]]
    ) -> list[Product | Exception | None]:
        """See :meth:`BatchRepository.write_many`.

        One transaction: the batch's existing rows are locked in id order with one statement,
        the changes run in order, and the rows are written with pipelined ``executemany``. When
        a concurrent writer created one of the batch's new rows first, the whole batch runs again.
        """

        def once(conn: psycopg.Connection[Any]) -> list[Product | Exception | None]:
            load, apply = self._session(conn, engine.PRODUCTS, PACKED)
            return engine.write_batch(engine.PRODUCTS, account, changes, load, apply)

        return self._in_transaction(once)

    def _session(
        self, conn: psycopg.Connection[Any], kind: engine.RecordKind[_R, Any], table: SqlTable[_R]
    ) -> engine.Session[_R]:
        """Return the load and apply steps of the shared write algorithm for ``kind`` in ``table``.

        Both run in ``conn``'s transaction; see :mod:`catalog_core.repository._engine`. The load
        locks the stored rows in id order (``FOR UPDATE``); the apply inserts with ``ON CONFLICT
        DO NOTHING`` and raises ``_CreatedConcurrently`` when a concurrent writer created one of
        the rows first, then moves blob references in SHA-256 order.
        """
        sql = self._statements_of(table)

        def load(account: str, ids: list[str]) -> dict[str, _R]:
            if len(ids) == 1:  # the common case, a little faster as an equality
                rows = conn.execute(f"{sql.get} FOR UPDATE", (account, ids[0])).fetchall()
            else:
                rows = conn.execute(
                    f"{sql.select} AND {table.id_column} = ANY(%s) "
                    f"ORDER BY {table.id_column} FOR UPDATE",
                    (account, sorted(ids)),
                ).fetchall()
            return {row[1]: table.decode(row) for row in rows}

        def apply(account: str, plan: engine.Plan[_R]) -> None:
            inserts = [table.encode(r) for r in plan.inserts]
            if _run(conn, sql.insert, inserts) != len(inserts):
                raise _CreatedConcurrently
            _run(conn, sql.update, [table.update_params(table.encode(r)) for r in plan.updates])
            _run(conn, sql.delete, [(account, i) for i in plan.deletes])
            self._store_blobs(conn, kind, account, plan.deltas, plan.blobs)

        return load, apply

    def _store_blobs(
        self,
        conn: psycopg.Connection[Any],
        kind: engine.RecordKind[Any, Any],
        account: str,
        deltas: dict[str, int],
        blobs: Iterable[Blob],
    ) -> None:
        """Store the given blobs and move reference counts by ``deltas``."""
        given = {blob.sha256: blob for blob in blobs}
        # One pass in SHA-256 order over every blob the write touches, so that concurrent writes
        # and purges lock blob rows in one order and never wait on each other in a cycle.
        for sha in sorted(deltas.keys() | given.keys()):
            blob = given.get(sha)
            if blob is None:
                self._adjust_refs(conn, kind, {(account, sha): deltas[sha]})
                continue
            # DO UPDATE (not DO NOTHING) locks a blob that already exists, so a concurrent purge
            # cannot delete it as an orphan between this write and its commit.
            conn.execute(
                f"INSERT INTO {self._quoted}.blobs AS b (account, sha256, mime_type, data, refs) "
                "VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (account, sha256) DO UPDATE SET refs = b.refs + EXCLUDED.refs",
                (account, sha, blob.mime_type, blob.data, deltas.get(sha, 0)),
            )

    def _adjust_refs(
        self,
        conn: psycopg.Connection[Any],
        kind: engine.RecordKind[Any, Any],
        deltas: dict[tuple[str, str], int],
    ) -> None:
        """Move the reference counts of blobs by ``deltas`` (by account and SHA-256), pipelined.

        In account and SHA-256 order, so that concurrent writes and purges lock blob rows in one
        order (no deadlock); each statement names its account, so it runs on one shard.

        Raises:
            ValueError: a blob is not stored (``engine.missing_blob``): roll back.
        """
        rows = [(delta, account, sha) for (account, sha), delta in sorted(deltas.items())]
        changed = _run(
            conn,
            f"UPDATE {self._quoted}.blobs SET refs = refs + %s WHERE account = %s AND sha256 = %s",
            rows,
        )
        if changed == len(rows):
            return
        for _, account, sha in rows:  # which one: the transaction is rolled back anyway
            stored = conn.execute(
                f"SELECT 1 FROM {self._quoted}.blobs WHERE account = %s AND sha256 = %s",
                (account, sha),
            ).fetchone()
            if stored is None:
                raise engine.missing_blob(kind, sha)
        raise RuntimeError(f"{changed} of {len(rows)} blob reference counts moved")

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[Product]:
        """See :meth:`Repository.list_live`."""
        params = (account, after or "", to_epoch_ms(now), limit)
        rows = self._read(lambda conn: conn.execute(self._page, params).fetchall())
        return [PACKED.decode(row) for row in rows]

    def purge_expired(self, now: datetime) -> int:
        """See :meth:`Repository.purge_expired`: :meth:`purge`, counting the products."""
        return self.purge(now).products

    def purge(self, now: datetime) -> PurgeCounts:
        """See :meth:`TryOnRepository.purge`.

        Expired person images and generations first, then expired products, then orphan blobs;
        each in batches of at most ``_PURGE_BATCH`` records, across accounts (see
        :meth:`_purge_kind`).
        """
        cutoff = to_epoch_ms(now)
        images = generations = 0
        if self._has_tryon():
            images = self._purge_kind(engine.PERSON_IMAGES, cutoff)
            generations = self._purge_kind(engine.GENERATIONS, cutoff)
        products = self._purge_kind(engine.PRODUCTS, cutoff)
        self._purge_orphans()
        return PurgeCounts(products=products, person_images=images, generations=generations)

    def _purge_kind(self, kind: engine.RecordKind[Any, Any], cutoff: int) -> int:
        """Delete the records of ``kind`` expired at ``cutoff`` (ms) in batches; return how many.

        Every account at once, through the table's purge index ``(expires_at, account, id)``:
        one read finds the first ``_PURGE_BATCH`` expired keys in that order, and one
        transaction deletes the expired records up to the last of them (a range of the same
        index) and drops their blob references. Both are plain statements over the table, with no
        subquery and no row lock taken ahead: on a table distributed by account (Citus), every
        shard runs them on its own part of the index, in parallel. So a batch costs the same
        whether its records belong to one account or to 500, and the purge's cost follows what
        it removes, not the number of accounts or of records kept. A record renewed between
        the read and the delete (a use, a rewrite) no longer matches the delete, which reads it
        again once its writer commits.
        """
        table = _TABLES[kind.name]
        qualified = f"{self._quoted}.{table.name}"
        key = f"expires_at, account, {table.id_column}"
        find = f"SELECT {key} FROM {qualified} WHERE expires_at <= %s ORDER BY {key} LIMIT %s"
        delete = (
            f"DELETE FROM {qualified} WHERE expires_at <= %s AND ({key}) <= (%s, %s, %s) "
            f"RETURNING account, {table.refs_column}"
        )

        def purge_batch(conn: psycopg.Connection[Any], last: tuple[int, str, str]) -> int:
            rows = conn.execute(delete, (cutoff, *last)).fetchall()
            deltas: dict[tuple[str, str], int] = {}
            for account, refs in rows:
                for sha in table.refs_of(refs):
                    deltas[account, sha] = deltas.get((account, sha), 0) - 1
            self._adjust_refs(conn, kind, deltas)
            return len(rows)

        removed = 0
        while True:
            found = self._read(lambda conn: conn.execute(find, (cutoff, _PURGE_BATCH)).fetchall())
            if found:
                last = tuple(found[-1])
                removed += self._in_transaction(functools.partial(purge_batch, last=last))
            if len(found) < _PURGE_BATCH:
                return removed

    def _purge_orphans(self) -> None:
        """Delete the blobs nothing refers to, every account at once, in batches.

        As :meth:`_purge_kind`, through the partial index of orphans ``(account, sha256) WHERE
        refs = 0``. A blob a writer names again meanwhile has ``refs`` above 0 when the delete
        reads it (the writer's update locks it first), and stays.
        """
        qualified = f"{self._quoted}.blobs"
        find = (
            f"SELECT account, sha256 FROM {qualified} WHERE refs = 0 "
            "ORDER BY account, sha256 LIMIT %s"
        )
        delete = f"DELETE FROM {qualified} WHERE refs = 0 AND (account, sha256) <= (%s, %s)"

        def purge_batch(conn: psycopg.Connection[Any], last: tuple[str, str]) -> None:
            conn.execute(delete, last)

        while True:
            found = self._read(lambda conn: conn.execute(find, (_PURGE_BATCH,)).fetchall())
            if found:
                self._in_transaction(functools.partial(purge_batch, last=tuple(found[-1])))
            if len(found) < _PURGE_BATCH:
                return

    # -- the try-on flow ---------------------------------------------------------------------

    def _has_tryon(self) -> bool:
        """Whether the schema has the try-on tables.

        Only a schema 1 this role could not migrate has not; it is looked at again, since an
        administrator may have migrated it since.
        """
        if not self._tryon:
            meta = f"{self._quoted}.catalog_meta"
            version = self._read(lambda conn: read_meta(conn, meta, "schema_version"))
            self._tryon = version == str(SCHEMA_VERSION)
        return self._tryon

    def _not_migrated(self) -> RuntimeError:
        return RuntimeError(
            f"schema {self.schema!r} holds catalog schema 1, which has no try-on tables, and "
            "this role may not migrate it: run `catalog-core schema-sql` (or "
            "PostgresRepository.schema_sql()) as an administrator"
        )

    def _get(self, kind: engine.RecordKind[_R, Any], account: str, record_id: str) -> _R | None:
        if not self._has_tryon():
            return None  # a catalog of schema 1 holds no try-on record
        table = _TABLES[kind.name]
        sql = self._statements_of(table).get
        row = self._read(lambda conn: conn.execute(sql, (account, record_id)).fetchone())
        return None if row is None else table.decode(row)

    def get_person_image(self, account: str, image_id: str) -> PersonImage | None:
        """See :meth:`TryOnRepository.get_person_image`."""
        return self._get(engine.PERSON_IMAGES, account, image_id)

    def get_generation(self, account: str, generation_id: str) -> Generation | None:
        """See :meth:`TryOnRepository.get_generation`."""
        return self._get(engine.GENERATIONS, account, generation_id)

    def get_credits(self, account: str) -> Credits | None:
        """See :meth:`TryOnRepository.get_credits`."""
        return self._get(engine.CREDITS, account, engine.CREDITS_ID)

    def write_tryon(self, account: str, keys: TryOnKeys, change: TryOnChange) -> TryOnWrite:
        """See :meth:`TryOnRepository.write_tryon`.

        One transaction: the rows of every key are locked as they are read (``FOR UPDATE``: the
        product, the person images, the generations, the balance, in that order for every
        writer). A row that does not exist yet cannot be locked: two writers may both find an
        account without a balance, but only one inserts it (``ON CONFLICT DO NOTHING``); the
        other starts over and then locks it, so a balance is never overdrawn (T16).

        Raises:
            RuntimeError: the schema is of schema 1 and this role may not migrate it.
        """
        if not self._has_tryon():
            raise self._not_migrated()

        def once(conn: psycopg.Connection[Any]) -> TryOnWrite:
            def session(kind: engine.RecordKind[Any, Any]) -> engine.Session[Any]:
                return self._session(conn, kind, _TABLES[kind.name])

            return engine.write_tryon(account, keys, change, session)

        return self._in_transaction(once)

    def erase_customer(self, account: str, customer_id: str) -> int:
        """See :meth:`TryOnRepository.erase_customer`.

        One transaction; the customer's records are read and locked through the
        ``(account, customer_id)`` indexes, ``_PURGE_BATCH`` a statement, and each batch leaves
        the set it was read from (deleted, or stripped of the customer id), until none is left.
        """
        if not self._has_tryon():
            return 0  # a catalog of schema 1 holds no try-on record
        key = customer_key(customer_id)

        def steps(
            conn: psycopg.Connection[Any], kind: engine.RecordKind[_R, Any]
        ) -> engine.Erasing[_R]:
            table: SqlTable[_R] = _TABLES[kind.name]
            select = (
                f"{self._statements_of(table).select} AND customer_id = %s "
                f"ORDER BY {table.id_column} LIMIT %s FOR UPDATE"
            )

            def batch() -> dict[str, _R]:
                rows = conn.execute(select, (account, key, _PURGE_BATCH)).fetchall()
                return {row[1]: table.decode(row) for row in rows}

            return batch, self._session(conn, kind, table)[1]

        return self._in_transaction(
            lambda conn: engine.erase_customer(
                account, functools.partial(steps, conn), batch=_PURGE_BATCH
            )
        )

    def get_blob(self, account: str, sha256: str) -> Blob | None:
        """See :meth:`Repository.get_blob`."""
        row = self._read(
            lambda conn: conn.execute(
                f"SELECT sha256, data, mime_type FROM {self._quoted}.blobs "
                "WHERE account = %s AND sha256 = %s",
                (account, sha256),
            ).fetchone()
        )
        return None if row is None else Blob(row[0], bytes(row[1]), row[2])

    def drop_schema(self) -> None:
        """Drop the schema and everything in it: for tests and teardown, never undoable."""
        self._read(lambda conn: conn.execute(f"DROP SCHEMA IF EXISTS {self._quoted} CASCADE"))

    def close(self) -> None:
        """Close the pool this repository opened (a pool you passed stays open)."""
        if self._owns_pool:
            self._pool.close()
