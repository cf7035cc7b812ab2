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
  and starts over when a concurrent writer created the row first (a batch's creates are one
  ``COPY`` in a savepoint, which falls back to those inserts when it fails). Blob reference
  counts are updated in SHA-256 order so that two writes never wait on each other in a cycle; a
  deadlock or serialization failure reported by the server is retried. Only standard SQL,
  ``ON CONFLICT``, ``COPY`` and savepoints are used (no advisory locks): PostgreSQL-compatible
  engines that have those as PostgreSQL has them run it too (tested: PostgreSQL and Citus).
- **Exact text.** Titles, descriptions, metadata and images are kept as one JSON document with
  every control character escaped (and, in a document that holds a lone surrogate, every
  non-ASCII character), so that what PostgreSQL cannot hold in ``text`` (NUL, lone surrogates)
  round-trips too (but for a high surrogate followed by a low one: read back as their pair).
  Timestamps are integer milliseconds. Ids use the ``C`` collation: listing order is
  code-point order whatever the database's locale.
- **Keyset listing** on ``(account, external_id)`` and a **purge in bounded batches** across
  accounts: what each kind has to purge is counted through its purge index, then deleted in
  transactions of at most ``_PURGE_ACROSS`` records (a range of the same index), and their
  blobs' references dropped. Its cost follows what it removes, whatever the number of accounts.
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

import collections
import functools
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar, cast

import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from catalog_core.images import Blob
from catalog_core.model import Product, ProductRow, to_epoch_ms
from catalog_core.repository import _engine as engine
from catalog_core.repository._postgres_schema import (
    DEFAULT_SCHEMA,
    EARLIER_VERSIONS,
    INDEXES,
    PRODUCT_OF_GENERATION,
    SCHEMA_VERSION,
    TRYON_VERSION,
    UPLOADS_EXPRESSION,
    UPLOADS_VERSION,
    check_schema_name,
    schema_sql,
    schema_statements,
)
from catalog_core.repository._recognise import COMMON_TABLES, Contents, Found, read_meta, recognise
from catalog_core.repository._rows import (
    CREDIT_ROWS,
    GENERATIONS_PACKED,
    PACKED,
    PACKED_BEFORE_UPLOADS,
    PERSON_IMAGES_PACKED,
    SqlTable,
    Statements,
    customer_key,
    escaped_product_id,
    generation_pages,
    live_page,
    packed_product_row,
    scan_statements,
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

#: Records an erasure reads a statement.
_ERASE_BATCH: Final = 500
#: Records a purge deletes a transaction, across accounts. A batch has a fixed cost (a count, a
#: transaction; on Citus, statements on every shard) that stays a small part of the work of
#: deleting this many (about 1.3 µs a record, locally), and its rows stay locked for only the
#: few milliseconds its delete takes.
_PURGE_ACROSS: Final = 5_000
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
    PACKED.name: PACKED_BEFORE_UPLOADS.all_columns,
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
    in ``conninfo`` (or ``PGCONNECT_TIMEOUT``) is the user's and wins.

    Raises:
        psycopg.OperationalError: the server refused or could not be reached.
        psycopg.ProgrammingError: ``conninfo`` is not a valid connection string or URL.
    """
    given = "connect_timeout" in conninfo_to_dict(conninfo) or "PGCONNECT_TIMEOUT" in os.environ
    if not given and math.isfinite(timeout):
        conninfo = make_conninfo(conninfo, connect_timeout=max(1, math.ceil(timeout)))
    psycopg.connect(conninfo).close()


class _CreatedConcurrently(Exception):
    """Another writer created a row between our read and our write: run the change again.

    The row of a record our insert found taken, or a blob our update found deleted and that is
    there again.
    """


class _Migrated(Exception):
    """The catalog was migrated since the handle read its version: run the change again."""


@attrs.frozen
class _Purging:
    """How the purge finds and deletes one kind of record, across accounts, by its purge index.

    Each statement is plain and reads one table, with no subquery and no row lock taken ahead,
    so that on a table distributed by account (Citus) every shard runs it on its own part of
    the index, in parallel; a batch costs the same whatever the number of accounts it spans.
    What is to be purged is counted once (``count(*)`` through the index: each shard counts its
    own). Past ``_PURGE_ACROSS``, the purge goes in batches along the index: each ends at the
    ``_PURGE_ACROSS``-th key after the previous batch's last (:meth:`bound`), the last one at
    the end of what has expired, so that each batch reads only its own part of the index. The
    delete checks each record again as it deletes it: a record renewed in between (a use, a
    rewrite; a blob named again) no longer matches, once its writer commits, and stays.
    """

    #: The kind of record (for the message of a missing blob); ``None``: orphan blobs.
    kind: engine.RecordKind[Any, Any] | None
    #: How the delete learns what each record referred to: its table (whose ``refs_of`` reads
    #: it) and the value it sends back for that (``None`` for a record that refers to none);
    #: ``None``: what it deletes refers to nothing, and nothing is sent back.
    refs: tuple[SqlTable[Any], str] | None
    key: str  # the purge index's columns, in order
    table: str  # qualified
    where: str  # what is to be purged
    params: tuple[Any, ...]  # of ``where``
    #: What the delete adds to ``where``: the records another purge deletes are left to it
    #: (they are counted, and batches bounded, with these).
    leaving: str = ""

    @classmethod
    def expired(
        cls, schema: str, kind: engine.RecordKind[Any, Any], cutoff: int, *, uploads: bool
    ) -> list[_Purging]:
        """The purges of ``kind``'s records expired at ``cutoff`` (ms).

        ``uploads``: whether products have the stored ``uploads`` column (schema 3). Only a
        product whose images name an upload refers to a blob: the others are deleted without
        sending anything back, and the few that do by a purge of their own, along their own
        index. Without the column, each product's document is tested as it is deleted.
        """
        rows = _TABLES[kind.name]
        key = f"expires_at, account, {rows.id_column}"
        table = f"{schema}.{rows.name}"
        where = "expires_at <= %s"
        refs = rows.refs_column
        if refs is None:
            return [cls(kind, None, key, table, where, (cutoff,))]
        if kind is not engine.PRODUCTS:
            return [cls(kind, (rows, refs), key, table, where, (cutoff,))]
        if not uploads:
            sent = f"CASE WHEN {UPLOADS_EXPRESSION} THEN {refs} END"
            return [cls(kind, (rows, sent), key, table, where, (cutoff,))]
        # A product written before the column (NULL) may name one: its document is tested.
        sent = f"CASE WHEN uploads OR {UPLOADS_EXPRESSION} THEN {refs} END"
        return [
            cls(kind, None, key, table, where, (cutoff,), leaving="NOT uploads"),
            cls(kind, (rows, sent), key, table, f"{where} AND uploads IS NOT FALSE", (cutoff,)),
        ]

    @classmethod
    def orphans(cls, schema: str) -> _Purging:
        """The purge of the blobs nothing refers to."""
        return cls(None, None, "account, sha256", f"{schema}.blobs", "refs = 0", ())

    @staticmethod
    def count_all(conn: psycopg.Connection[Any], purges: Sequence[_Purging]) -> list[int]:
        """Count what each of ``purges`` is to purge, in one statement.

        A ``UNION ALL`` of one plain count per table: Citus runs each as a multi-shard
        aggregate (every shard counts its own through the index) and adds them up.
        """
        legs = [
            f"SELECT {n} AS purge, count(*) FROM {p.table} WHERE {p.where}"
            for n, p in enumerate(purges)
        ]
        params = [param for purging in purges for param in purging.params]
        found = dict(conn.execute(" UNION ALL ".join(legs), params).fetchall())
        return [int(found.get(n, 0)) for n in range(len(purges))]

    def count(self, conn: psycopg.Connection[Any]) -> int:
        """Count what is to be purged."""
        return self.count_all(conn, [self])[0]

    def _range(
        self, after: tuple[Any, ...] | None, last: tuple[Any, ...] | None = None
    ) -> tuple[str, tuple[Any, ...]]:
        """``where`` for the keys after ``after`` up to ``last`` (either ``None``: no bound)."""
        where, params = self.where, self.params
        marks = f"({', '.join(['%s'] * len(self.key.split(',')))})"
        if after is not None:
            where, params = f"{where} AND ({self.key}) > {marks}", (*params, *after)
        if last is not None:
            where, params = f"{where} AND ({self.key}) <= {marks}", (*params, *last)
        return where, params

    def bound(
        self, conn: psycopg.Connection[Any], after: tuple[Any, ...] | None
    ) -> tuple[Any, ...] | None:
        """Return the ``_PURGE_ACROSS``-th key to purge after ``after`` (``None``: fewer left)."""
        where, params = self._range(after)
        row = conn.execute(
            f"SELECT {self.key} FROM {self.table} WHERE {where} ORDER BY {self.key} "
            "OFFSET %s LIMIT 1",
            (*params, _PURGE_ACROSS - 1),
        ).fetchone()
        return None if row is None else tuple(row)

    def delete(
        self,
        conn: psycopg.Connection[Any],
        after: tuple[Any, ...] | None,
        last: tuple[Any, ...] | None,
    ) -> tuple[list[tuple[str, str]], int]:
        """Delete the records after ``after`` up to ``last``; return their blobs, and how many.

        Each blob is ``(account, sha256)``, once per record that referred to it.
        """
        where, params = self._range(after, last)
        statement = f"DELETE FROM {self.table} WHERE {where}"
        statement += f" AND {self.leaving}" if self.leaving else ""
        if self.refs is None:
            return [], conn.execute(statement, params).rowcount
        rows, referred = self.refs
        deleted = conn.execute(f"{statement} RETURNING account, {referred}", params).fetchall()
        refs = [
            (account, sha)
            for account, value in deleted
            if value is not None
            for sha in rows.refs_of(value)
        ]
        return refs, len(deleted)


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
        #: The schema version the catalog is of: an earlier one while this role may not
        #: migrate it.
        self._version = SCHEMA_VERSION
        if state == "outdated":
            self._version = self._read_version()
            missing = (
                "the try-on flow waits for"
                if self._version < TRYON_VERSION
                else "the purge sends back every expired product's document until"
            )
            logger.warning(
                "schema %r holds catalog schema %d and this role may not migrate it: products "
                "work, %s `catalog-core schema-sql` is run",
                self.schema,
                self._version,
                missing,
            )
        self._use_version(self._version)
        self._cursor_secret = self._read_cursor_secret()

    def _use_version(self, version: int) -> None:
        """Read and write the catalog as one of schema ``version``."""
        self._version = version
        #: How products are stored: with their ``uploads`` column from schema 3 on.
        self._packed = PACKED if version >= UPLOADS_VERSION else PACKED_BEFORE_UPLOADS
        self._products = self._statements_of(self._packed)
        self._page = live_page(
            self._packed, qualified=f"{self._quoted}.products", mark="%s", listed="NOT one_shot"
        )
        self._scan = scan_statements(self._packed, qualified=f"{self._quoted}.products", mark="%s")
        self._generation_pages = generation_pages(
            GENERATIONS_PACKED,
            qualified=f"{self._quoted}.generations",
            mark="%s",
            product_of=PRODUCT_OF_GENERATION,
        )

    def _read_version(self, conn: psycopg.Connection[Any] | None = None) -> int:
        """Read the schema version of the catalog (0 when ``catalog_meta`` holds none)."""
        meta = f"{self._quoted}.catalog_meta"
        if conn is None:
            version = self._read(lambda conn: read_meta(conn, meta, "schema_version"))
        else:
            version = read_meta(conn, meta, "schema_version")
        return int(version) if version is not None and version.isdigit() else 0

    def _at_least(self, version: int) -> bool:
        """Whether the catalog is of ``version`` or later.

        A catalog of an earlier version this role could not migrate is looked at again, since
        an administrator may have migrated it since; then it is read and written as migrated.
        """
        if self._version < version:
            found = self._read_version()
            if found > self._version:
                self._use_version(found)
        return self._version >= version

    def _check_not_migrated(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse to write products without their ``uploads`` column into a migrated catalog.

        A handle that opened a catalog of schema 2 writes products as schema 2 did; should the
        catalog be migrated meanwhile, an update of its would leave the column as it was (false
        where the product now names an upload, and the purge would then keep that upload's blob
        for good). Run in the write's transaction once it has locked products rows (or found
        none): the migration's ``ALTER TABLE`` waits for it, so the version read is the one the
        write lands in.

        Raises:
            _Migrated: the catalog was migrated; the handle now writes the column.
        """
        found = self._read_version(conn)
        if found >= UPLOADS_VERSION:
            self._use_version(found)
            raise _Migrated

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
            earlier=EARLIER_VERSIONS,
        )

    # -- the contract -----------------------------------------------------------------------

    def get(self, account: str, external_id: str) -> Product | None:
        """See :meth:`Repository.get`."""
        sql = self._products.get
        row = self._read(lambda conn: conn.execute(sql, (account, external_id)).fetchone())
        return None if row is None else self._packed.decode(row)

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

    def _in_transaction(
        self, work: Callable[[psycopg.Connection[Any]], _T], *, alone: bool = False
    ) -> _T:
        """Run ``work`` in a transaction; run it again after a deadlock or a serialization failure.

        Also again when a concurrent create got in first (``_CreatedConcurrently``) or the catalog
        was migrated meanwhile (``_Migrated``), and when the
        connection is lost before the commit (the server rolled the transaction back, and
        changes are pure). A connection lost during the commit raises ``psycopg.OperationalError``:
        the write may or may not have committed, and running it again could apply it twice.

        ``alone``: ``work`` is one statement that running again changes nothing more (a purge's
        delete that sends nothing back): it runs as its own transaction (autocommit), which
        saves the ``BEGIN`` and ``COMMIT`` round trips, and again whenever its connection is lost.
        """
        delay = 0.001
        lost = 0
        while True:
            committing = False
            try:
                with self._pool.connection() as conn:
                    try:
                        if alone:
                            result = work(conn)
                        else:
                            with conn.transaction():
                                result = work(conn)
                                committing = True
                    except psycopg.OperationalError:
                        if committing or not self._lost(conn, lost):
                            raise
                        lost += 1
                        continue
                    return result
            except _Migrated:
                continue
            except (_CreatedConcurrently, *_RETRIED):
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def write(self, account: str, external_id: str, change: Change) -> Product | None:
        """See :meth:`Repository.write`."""

        def once(conn: psycopg.Connection[Any]) -> Product | None:
            load, apply = self._session(conn, engine.PRODUCTS, self._packed)
            return engine.write_one(engine.PRODUCTS, account, external_id, change, load, apply)

        return self._in_transaction(once)

    def write_many(
        self, account: str, changes: Sequence[tuple[str, Change]]
    ) -> list[Product | Exception | None]:
        """See :meth:`BatchRepository.write_many`.

        One transaction: the batch's existing rows are locked in id order with one statement
        (a probe of the primary key per id, whatever the table's statistics say),
        the changes run in order, the new rows are written with one ``COPY`` and the others with
        pipelined ``executemany``. When a concurrent writer created one of the batch's new rows
        first, the whole batch runs again.
        """

        def once(conn: psycopg.Connection[Any]) -> list[Product | Exception | None]:
            load, apply = self._session(conn, engine.PRODUCTS, self._packed)
            return engine.write_batch(engine.PRODUCTS, account, changes, load, apply)

        return self._in_transaction(once)

    def _session(
        self, conn: psycopg.Connection[Any], kind: engine.RecordKind[_R, Any], table: SqlTable[_R]
    ) -> engine.Session[_R]:
        """Return the load and apply steps of the shared write algorithm for ``kind`` in ``table``.

        Both run in ``conn``'s transaction; see :mod:`catalog_core.repository._engine`. The load
        locks the stored rows in id order (``FOR UPDATE``); the apply inserts (see
        :meth:`_insert`), raising ``_CreatedConcurrently`` when a concurrent writer created one
        of the rows first, then moves blob references in SHA-256 order.
        """
        sql = self._statements_of(table)

        def load(account: str, ids: list[str]) -> dict[str, _R]:
            if len(ids) == 1:  # the common case, a little faster as an equality
                rows = conn.execute(f"{sql.get} FOR UPDATE", (account, ids[0])).fetchall()
            else:
                # One probe of the primary key per id, in id order (the order rows are locked
                # in): "= ANY" let the planner, with statistics older than a bulk import, filter
                # every row of the account instead, at each batch.
                rows = conn.execute(
                    f"SELECT found.* FROM unnest(%s::text[]) AS wanted(id) CROSS JOIN LATERAL "
                    f"({sql.select} AND {table.id_column} = wanted.id FOR UPDATE) AS found",
                    (sorted(ids), account),
                ).fetchall()
            return {row[1]: table.decode(row) for row in rows}

        def apply(account: str, plan: engine.Plan[_R]) -> None:
            if table is PACKED_BEFORE_UPLOADS and (plan.inserts or plan.updates):
                self._check_not_migrated(conn)
            self._insert(conn, table, sql, [table.encode(r) for r in plan.inserts])
            _run(conn, sql.update, [table.update_params(table.encode(r)) for r in plan.updates])
            _run(conn, sql.delete, [(account, i) for i in plan.deletes])
            self._store_blobs(conn, kind, account, plan.deltas, plan.blobs)

        return load, apply

    def _insert(
        self,
        conn: psycopg.Connection[Any],
        table: SqlTable[Any],
        sql: Statements,
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """Insert ``rows``; raise ``_CreatedConcurrently`` when one of them is stored already.

        Several rows are one ``COPY``, which costs PostgreSQL less than as many inserts,
        pipelined (each a statement and, for its ``ON CONFLICT``, a speculative insertion).
        ``COPY`` has no ``ON CONFLICT``: a row a concurrent writer created since the batch's
        read fails it, PostgreSQL says with a unique violation, Citus with an internal error
        (its ``COPY`` passes on a worker's message, not its code, whatever the worker's error
        was: a deadlock there comes here so too). So it runs in a savepoint, and when it fails
        so, the rows are inserted again as one row is, doing nothing on conflict: their count
        tells a row created meanwhile, and any other cause of the failure fails them too.
        """
        if len(rows) > 1:
            copying = f"COPY {self._quoted}.{table.name} ({table.written}) FROM STDIN"
            try:
                with conn.transaction(), conn.cursor() as cur, cur.copy(copying) as copy:
                    for row in rows:
                        copy.write_row(row)
                return
            except (psycopg.IntegrityError, pg_errors.InternalError_):
                pass
        if _run(conn, sql.insert, rows) != len(rows):
            raise _CreatedConcurrently

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
            _CreatedConcurrently: a blob was deleted and stored again meanwhile: run again.
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
        # Every blob is there, yet one did not move: the update found it deleted (an orphan the
        # purge removed as it waited) and another writer stored the same bytes again since.
        raise _CreatedConcurrently

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[Product]:
        """See :meth:`Repository.list_live`."""
        params = (account, after or "", to_epoch_ms(now), limit)
        rows = self._read(lambda conn: conn.execute(self._page, params).fetchall())
        return [self._packed.decode(row) for row in rows]

    def list_live_rows(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> list[ProductRow]:
        """See :meth:`RowListingRepository.list_live_rows`: the same statement as a page's."""
        params = (account, after or "", to_epoch_ms(now), limit)
        rows = self._read(lambda conn: conn.execute(self._page, params).fetchall())
        return [packed_product_row(row) for row in rows]

    def scan_live(
        self,
        *,
        account: str | None,
        after: tuple[str, str] | None,
        limit: int,
        now: datetime,
    ) -> Sequence[Product]:
        """See :meth:`ScanRepository.scan_live`."""
        statement, params = self._scan.page(account, after, now, limit)
        rows = self._read(lambda conn: conn.execute(statement, params).fetchall())
        return [self._packed.decode(row) for row in rows]

    def count_live(self, *, account: str | None, now: datetime) -> int:
        """See :meth:`ScanRepository.count_live`."""
        statement, params = self._scan.count(account, now)
        row = self._read(lambda conn: conn.execute(statement, params).fetchone())
        return int(row[0]) if row is not None else 0

    def purge_expired(self, now: datetime) -> int:
        """See :meth:`Repository.purge_expired`: :meth:`purge`, counting the products."""
        return self.purge(now).products

    def purge(self, now: datetime) -> PurgeCounts:
        """See :meth:`TryOnRepository.purge`.

        Expired person images and generations first, then expired products (those whose images
        name no upload, then those that do), then orphan blobs; each in batches of at most
        ``_PURGE_ACROSS`` records, every account at once (see :class:`_Purging`). What each has
        to purge is counted first, in one statement, orphans' included: they are counted again
        only when the purge dropped a reference.
        """
        cutoff = to_epoch_ms(now)
        s = self._quoted
        kinds: list[engine.RecordKind[Any, Any]] = [engine.PRODUCTS]
        if self._has_tryon():
            kinds[:0] = [engine.PERSON_IMAGES, engine.GENERATIONS]
        uploads = self._at_least(UPLOADS_VERSION)
        purges = [
            purging
            for kind in kinds
            for purging in _Purging.expired(s, kind, cutoff, uploads=uploads)
        ]
        orphans = _Purging.orphans(s)
        *found, orphaned = self._read(lambda conn: _Purging.count_all(conn, [*purges, orphans]))
        removed: collections.Counter[engine.RecordKind[Any, Any] | None] = collections.Counter()
        dropped = False
        for purging, count in zip(purges, found, strict=True):
            deleted, refs = self._purge_batches(purging, count)
            removed[purging.kind] += deleted
            dropped = dropped or refs
        if dropped:
            orphaned = self._read(orphans.count)
        self._purge_batches(orphans, orphaned)
        return PurgeCounts(
            products=removed[engine.PRODUCTS],
            person_images=removed[engine.PERSON_IMAGES],
            generations=removed[engine.GENERATIONS],
        )

    def _purge_batches(self, purging: _Purging, count: int) -> tuple[int, bool]:
        """Delete what ``purging`` finds (``count`` of them, as counted), a batch at a time.

        Return how many were deleted, and whether a blob reference was dropped. A batch is a
        transaction (its delete's own, when it sends nothing back); past ``_PURGE_ACROSS``
        records, its end is read first (outside it).
        """

        def delete(
            conn: psycopg.Connection[Any],
            after: tuple[Any, ...] | None,
            last: tuple[Any, ...] | None,
        ) -> tuple[int, bool]:
            refs, deleted = purging.delete(conn, after, last)
            deltas: dict[tuple[str, str], int] = {}
            for ref in refs:
                deltas[ref] = deltas.get(ref, 0) - 1
            if purging.kind is not None:
                self._adjust_refs(conn, purging.kind, deltas)
            return deleted, bool(deltas)

        removed = 0
        dropped = False
        after: tuple[Any, ...] | None = None
        batched = count > _PURGE_ACROSS
        while count > 0:
            last = self._read(functools.partial(purging.bound, after=after)) if batched else None
            batch = functools.partial(delete, after=after, last=last)
            deleted, refs = self._in_transaction(batch, alone=purging.refs is None)
            removed += deleted
            dropped = dropped or refs
            if last is None:  # the batch went to the end of what has expired
                return removed, dropped
            after = last
        return removed, dropped

    # -- the try-on flow ---------------------------------------------------------------------

    def _has_tryon(self) -> bool:
        """Whether the schema has the try-on tables (a schema 1 this role could not migrate not)."""
        return self._at_least(TRYON_VERSION)

    def _not_migrated(self) -> RuntimeError:
        return RuntimeError(
            f"schema {self.schema!r} holds catalog schema 1, which has no try-on tables, and "
            "this role may not migrate it: run `catalog-core schema-sql` (or "
            "PostgresRepository.schema_sql()) as an administrator"
        )

    def _table(self, kind: engine.RecordKind[_R, Any]) -> SqlTable[_R]:
        """How ``kind`` is stored in this catalog (products: by its schema version)."""
        if kind is engine.PRODUCTS:
            return cast("SqlTable[_R]", self._packed)
        table: SqlTable[_R] = _TABLES[kind.name]
        return table

    def _get(self, kind: engine.RecordKind[_R, Any], account: str, record_id: str) -> _R | None:
        if not self._has_tryon():
            return None  # a catalog of schema 1 holds no try-on record
        table = self._table(kind)
        sql = self._statements_of(table).get
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
        """See :meth:`GenerationsRepository.list_generations`.

        One statement on one account's rows (one shard on Citus); it walks the index
        ``generations_listing`` backwards where the schema has it (a schema made by an earlier
        release gains it with ``catalog-core schema-sql``).
        """
        if not self._has_tryon():
            return []  # a catalog of schema 1 holds no try-on record
        stored = None if product is None else escaped_product_id(product)
        sql, params = self._generation_pages.page(account, before, now, limit, stored)
        rows = self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [GENERATIONS_PACKED.decode(row) for row in rows]

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
                return self._session(conn, kind, self._table(kind))

            return engine.write_tryon(account, keys, change, session)

        return self._in_transaction(once)

    def erase_customer(self, account: str, customer_id: str) -> int:
        """See :meth:`TryOnRepository.erase_customer`.

        One transaction; the customer's records are read and locked through the
        ``(account, customer_id)`` indexes, ``_ERASE_BATCH`` a statement, and each batch leaves
        the set it was read from (deleted, or stripped of the customer id), until none is left.
        """
        if not self._has_tryon():
            return 0  # a catalog of schema 1 holds no try-on record
        key = customer_key(customer_id)

        def steps(
            conn: psycopg.Connection[Any], kind: engine.RecordKind[_R, Any]
        ) -> engine.Erasing[_R]:
            table: SqlTable[_R] = self._table(kind)
            select = (
                f"{self._statements_of(table).select} AND customer_id = %s "
                f"ORDER BY {table.id_column} LIMIT %s FOR UPDATE"
            )

            def batch() -> dict[str, _R]:
                rows = conn.execute(select, (account, key, _ERASE_BATCH)).fetchall()
                return {row[1]: table.decode(row) for row in rows}

            return batch, self._session(conn, kind, table)[1]

        return self._in_transaction(
            lambda conn: engine.erase_customer(
                account, functools.partial(steps, conn), batch=_ERASE_BATCH
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
