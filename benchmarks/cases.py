"""The cases: catalog_core beside what a user would write or pick instead, on the same data.

Every peer is written plainly, the way the documentation of its library shows, with the same
pragmas, the same rows and the same batch sizes as catalog_core's side.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import catalog_core as cc
from benchmarks import serving
from benchmarks.harness import Case, Contender, LoadSample, Scale, cycling, timed, timed_over
from benchmarks.peers import fastapi_peer
from benchmarks.peers.pydantic_peer import (
    decode_upsert_pydantic,
    encode_product_pydantic,
    product_out_from,
)
from benchmarks.peers.sample import upsert_body
from catalog_core.cursor import cursor_key, encode_cursor
from catalog_core.model import to_epoch_ms
from catalog_core.repository.sqlite import _product_params
from catalog_core.wire.decode import decode_upsert, load_body
from catalog_core.wire.encode import to_wire_json

__all__ = [
    "CASES",
    "build_catalog",
    "line",
    "lines",
    "peak_memory_of_copy",
    "peak_memory_of_import",
]

ACCOUNT = "acme"
NOW = datetime(2026, 5, 13, 10, 0, tzinfo=UTC)
LIMITS = cc.Limits()
_COLUMNS = (
    "account, external_id, title, description, metadata, valid_for_days, expires_at, "
    "last_used_at, created_at, updated_at, images, version, one_shot"
)


def line(i: int, **changes: Any) -> bytes:
    """Return upsert payload ``i`` as one line of JSON (UTF-8, no newline)."""
    return json.dumps({**upsert_body(i), **changes}, ensure_ascii=False).encode()


def lines(n: int) -> list[bytes]:
    """Return payloads 0 … n-1 as JSON lines."""
    return [line(i) for i in range(n)]


# -- the wire layer -------------------------------------------------------------------------


def _decode_ours(raw: bytes) -> object:
    """What ``Catalog.upsert`` does with a raw body before its transaction."""
    return decode_upsert(load_body(raw, LIMITS), LIMITS, owned=True)


@contextmanager
def _decode(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    bodies = lines(scale.micro_ops)

    yield [
        Contender("catalog_core", functools.partial(timed_over, _decode_ours, bodies)),
        Contender("pydantic", functools.partial(timed_over, decode_upsert_pydantic, bodies)),
    ]


@contextmanager
def _encode(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    catalog = cc.Catalog(cc.MemoryRepository(), clock=lambda: NOW)
    products = [catalog.upsert(ACCOUNT, upsert_body(i)).product for i in range(scale.micro_ops)]
    models = [product_out_from(p) for p in products]
    assert all(
        to_wire_json(p) == encode_product_pydantic(m) for p, m in zip(products, models, strict=True)
    )

    yield [
        Contender("catalog_core", functools.partial(timed_over, to_wire_json, products)),
        Contender("pydantic", functools.partial(timed_over, encode_product_pydantic, models)),
    ]


# -- SQLite ---------------------------------------------------------------------------------

_PEER_SQLITE_TABLE = """
CREATE TABLE IF NOT EXISTS products (
    account TEXT NOT NULL, external_id TEXT NOT NULL, title TEXT, description TEXT,
    metadata TEXT, valid_for_days INTEGER, expires_at INTEGER, last_used_at INTEGER,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, images TEXT NOT NULL,
    version INTEGER NOT NULL, PRIMARY KEY (account, external_id)
)
"""


def _peer_sqlite(path: Path) -> sqlite3.Connection:
    """The plain sqlite3 connection a user would open: WAL, synchronous=NORMAL, autocommit."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(_PEER_SQLITE_TABLE)
    return conn


def _peer_row(body: dict[str, Any], old: dict[str, Any] | None, now_ms: int) -> tuple[Any, ...]:
    """The peer's merge: the body's fields over the stored ones, one more version."""
    merged = dict(old or {})
    merged.update(body)
    days = merged.get("validForDays")
    return (
        ACCOUNT,
        merged["externalId"],
        merged.get("title"),
        merged.get("description"),
        json.dumps(merged.get("metadata"), ensure_ascii=False),
        days,
        None if days is None else now_ms + days * 86_400_000,
        None,
        (old or {}).get("createdAt", now_ms),
        now_ms,
        json.dumps(merged.get("images", []), ensure_ascii=False),
        (old or {}).get("version", 0) + 1,
    )


def _peer_sqlite_upsert(conn: sqlite3.Connection, raw: bytes) -> None:
    body = json.loads(raw)
    now_ms = to_epoch_ms(datetime.now(UTC))
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT title, description, metadata, valid_for_days, created_at, images, version "
            "FROM products WHERE account = ? AND external_id = ?",
            (ACCOUNT, body["externalId"]),
        ).fetchone()
        old = None
        if row is not None:
            old = {
                "title": row[0],
                "description": row[1],
                "metadata": json.loads(row[2]),
                "validForDays": row[3],
                "createdAt": row[4],
                "images": json.loads(row[5]),
                "version": row[6],
            }
        conn.execute(
            "INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _peer_row(body, old, now_ms),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _peer_sqlite_bulk(conn: sqlite3.Connection, payloads: Sequence[bytes]) -> None:
    now_ms = to_epoch_ms(datetime.now(UTC))
    for start in range(0, len(payloads), 500):
        rows = [_peer_row(json.loads(raw), None, now_ms) for raw in payloads[start : start + 500]]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
        conn.execute("COMMIT")


def _one_upsert_each(
    scale: Scale, catalog: cc.Catalog, peer: str, peer_upsert: Callable[[bytes], None]
) -> list[Contender]:
    """catalog_core and a peer, each updating the 1,000 seeded products one upsert at a time."""
    updates = [line(i, title=f"Restocked {i}") for i in range(1000)]
    ours_inputs, peer_inputs = cycling(updates), cycling(updates)
    return [
        Contender(
            "catalog_core",
            lambda: timed(lambda: catalog.upsert(ACCOUNT, next(ours_inputs)), scale.micro_ops),
        ),
        Contender(peer, lambda: timed(lambda: peer_upsert(next(peer_inputs)), scale.micro_ops)),
    ]


@contextmanager
def _sqlite_upsert(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    seeded = lines(1000)
    repository = cc.SQLiteRepository(workdir / "upsert-ours.db")
    catalog = cc.Catalog(repository)
    for result in catalog.upsert_many(ACCOUNT, seeded):
        assert isinstance(result, cc.UpsertResult)
    conn = _peer_sqlite(workdir / "upsert-peer.db")
    _peer_sqlite_bulk(conn, seeded)
    try:
        yield _one_upsert_each(
            scale, catalog, "sqlite3", functools.partial(_peer_sqlite_upsert, conn)
        )
    finally:
        repository.close()
        conn.close()


@contextmanager
def _sqlite_bulk(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    payloads = lines(scale.bulk_products)
    runs = iter(range(1_000_000))

    def fresh(name: str) -> Path:
        return workdir / f"bulk-{name}-{next(runs)}.db"

    def ours() -> float:
        path = fresh("ours")
        repository = cc.SQLiteRepository(path)
        try:
            catalog = cc.Catalog(repository)
            seconds = timed(lambda: _drain(catalog.upsert_many(ACCOUNT, payloads)), 1)
        finally:
            repository.close()
            _remove_db(path)
        return seconds / len(payloads)

    def peer() -> float:
        path = fresh("peer")
        conn = _peer_sqlite(path)
        try:
            seconds = timed(lambda: _peer_sqlite_bulk(conn, payloads), 1)
        finally:
            conn.close()
            _remove_db(path)
        return seconds / len(payloads)

    yield [Contender("catalog_core", ours), Contender("sqlite3", peer)]


def _drain(results: Iterator[cc.UpsertResult | cc.CatalogError]) -> None:
    for result in results:
        if isinstance(result, cc.CatalogError):
            raise result


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _template_row(i: int, expires_at: int | None) -> tuple[Any, ...]:
    """Return the stored row of product ``i`` as the SQLite repository writes it."""
    catalog = cc.Catalog(cc.MemoryRepository(), clock=lambda: NOW)
    product = catalog.upsert(ACCOUNT, upsert_body(i)).product
    params = list(_product_params(product))
    params[6] = expires_at
    return tuple(params)


def build_catalog(path: Path, size: int, expired_every: int | None = None) -> list[str]:
    """Fill an SQLite catalog with ``size`` products; return their ids.

    The rows are the repository's own (``_product_params`` of a product the catalog made), written
    with ``executemany`` because building a million-product fixture through the catalog would
    take longer than the measurements. With ``expired_every``, every that-many-th product has
    expired an hour before :data:`NOW`; the others expire in 30 days.
    """
    if path.exists():
        return [f"sku-{i:07d}" for i in range(size)]
    tmp = path.with_suffix(".tmp")
    _remove_db(tmp)
    cc.SQLiteRepository(tmp).close()
    template = _template_row(0, None)
    later = to_epoch_ms(NOW + timedelta(days=30))
    earlier = to_epoch_ms(NOW - timedelta(hours=1))
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    ids = []
    for start in range(0, size, 50_000):
        rows = []
        for i in range(start, min(size, start + 50_000)):
            external_id = f"sku-{i:07d}"
            ids.append(external_id)
            expired = expired_every is not None and i % expired_every == 0
            row = list(template)
            row[1] = external_id
            row[6] = earlier if expired else later
            row[10] = template[10].replace("sku-0000000", external_id)
            rows.append(tuple(row))
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO products ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", rows)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    _remove_db(path)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{tmp}{suffix}").exists():
            os.replace(f"{tmp}{suffix}", f"{path}{suffix}")
    return ids


@contextmanager
def _get_and_page(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    contenders = []
    repositories = []
    for size in scale.catalog_sizes:
        ids = build_catalog(workdir / f"catalog-{size}.db", size)
        repository = cc.SQLiteRepository(workdir / f"catalog-{size}.db")
        repositories.append(repository)
        catalog = cc.Catalog(repository, clock=lambda: NOW)
        assert cc.to_wire(catalog.get(ACCOUNT, ids[-1]))["externalId"] == ids[-1]
        picks = random.Random(size).sample(ids[:-60], 1000)
        key = cursor_key(repository.cursor_secret())
        work = cycling([(i, encode_cursor(ACCOUNT, i, key)) for i in picks])

        def op(catalog: cc.Catalog = catalog, work: Iterator[tuple[str, str]] = work) -> None:
            external_id, cursor = next(work)
            catalog.get(ACCOUNT, external_id)
            page = catalog.list(ACCOUNT, limit=50, cursor=cursor)
            assert page.count == 50

        label = f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M"
        contenders.append(Contender(label, functools.partial(timed, op, scale.micro_ops)))
    try:
        yield contenders
    finally:
        for repository in repositories:
            repository.close()


@contextmanager
def _purge(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    source = workdir / f"purge-{scale.purge_size}.db"
    build_catalog(source, scale.purge_size, expired_every=1000)
    copies = {}
    for name in ("ours", "peer"):
        copies[name] = workdir / f"purge-{name}.db"
        _remove_db(copies[name])
        shutil.copy(source, copies[name])
    conn = sqlite3.connect(copies["ours"])
    expired = conn.execute(
        f"SELECT {_COLUMNS} FROM products WHERE expires_at <= ?", (to_epoch_ms(NOW),)
    ).fetchall()
    conn.close()
    assert len(expired) == scale.purge_size // 1000
    repository = cc.SQLiteRepository(copies["ours"])
    catalog = cc.Catalog(repository, clock=lambda: NOW)
    peer = _peer_sqlite(copies["peer"])

    def restore(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT OR REPLACE INTO products ({_COLUMNS}) VALUES ({', '.join('?' * 13)})",
            expired,
        )
        conn.execute("COMMIT")

    def ours() -> float:
        with repository._borrow() as conn:
            restore(conn)
        return timed(lambda: _expect(catalog.purge_expired(), len(expired)), 1)

    def peer_purge() -> None:
        peer.execute("BEGIN IMMEDIATE")
        removed = peer.execute(
            "DELETE FROM products WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (to_epoch_ms(NOW),),
        ).rowcount
        peer.execute("COMMIT")
        _expect(removed, len(expired))

    def theirs() -> float:
        restore(peer)
        return timed(peer_purge, 1)

    try:
        yield [Contender("catalog_core", ours), Contender("sqlite3", theirs)]
    finally:
        repository.close()
        peer.close()
        for path in copies.values():
            _remove_db(path)


def _expect(got: int, expected: int) -> None:
    if got != expected:
        raise AssertionError(f"removed {got}, expected {expected}")


# -- PostgreSQL -----------------------------------------------------------------------------

POSTGRES_URL: list[str | None] = [None]  # set by the runner


# One pair of schemas per run, so that two runs on one server never meet.
OURS_SCHEMA = f"bench_ours_{os.getpid()}"
PEER_SCHEMA = f"bench_peer_{os.getpid()}"


def _peer_pg_schema(conn: Any) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {PEER_SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {PEER_SCHEMA}")
    conn.execute(
        f'CREATE TABLE {PEER_SCHEMA}.products (account text COLLATE "C" NOT NULL, '
        'external_id text COLLATE "C" NOT NULL, data text NOT NULL, valid_for_days integer, '
        "expires_at bigint, last_used_at bigint, created_at bigint NOT NULL, "
        "updated_at bigint NOT NULL, version integer NOT NULL, "
        "PRIMARY KEY (account, external_id))"
    )


def _peer_pg_params(
    body: dict[str, Any], old: dict[str, Any] | None, now_ms: int
) -> tuple[Any, ...]:
    merged = dict(old or {})
    merged.update(body)
    days = merged.get("validForDays")
    data = {k: merged.get(k) for k in ("title", "description", "metadata", "images")}
    return (
        ACCOUNT,
        merged["externalId"],
        json.dumps(data),
        days,
        None if days is None else now_ms + days * 86_400_000,
        None,
        (old or {}).get("createdAt", now_ms),
        now_ms,
        (old or {}).get("version", 0) + 1,
    )


_PG_UPSERT = (
    f"INSERT INTO {PEER_SCHEMA}.products VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (account, external_id) DO UPDATE SET data = EXCLUDED.data, "
    "valid_for_days = EXCLUDED.valid_for_days, expires_at = EXCLUDED.expires_at, "
    "updated_at = EXCLUDED.updated_at, version = EXCLUDED.version"
)


def _peer_pg_upsert(conn: Any, raw: bytes) -> None:
    body = json.loads(raw)
    now_ms = to_epoch_ms(datetime.now(UTC))
    with conn.transaction():
        row = conn.execute(
            f"SELECT data, valid_for_days, created_at, version FROM {PEER_SCHEMA}.products "
            "WHERE account = %s AND external_id = %s FOR UPDATE",
            (ACCOUNT, body["externalId"]),
        ).fetchone()
        old = None
        if row is not None:
            old = {**json.loads(row[0]), "validForDays": row[1], "createdAt": row[2]}
            old["version"] = row[3]
        conn.execute(_PG_UPSERT, _peer_pg_params(body, old, now_ms))


def _peer_pg_bulk(conn: Any, payloads: Sequence[bytes]) -> None:
    now_ms = to_epoch_ms(datetime.now(UTC))
    for start in range(0, len(payloads), 500):
        params = [
            _peer_pg_params(json.loads(r), None, now_ms) for r in payloads[start : start + 500]
        ]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_PG_UPSERT, params)  # psycopg pipelines executemany


@contextmanager
def _postgres(scale: Scale, workdir: Path, bulk: bool) -> Iterator[Sequence[Contender]]:
    import psycopg

    url = POSTGRES_URL[0]
    assert url is not None
    repository = cc.PostgresRepository(url, schema=OURS_SCHEMA)
    repository.drop_schema()
    repository.close()
    repository = cc.PostgresRepository(url, schema=OURS_SCHEMA)
    catalog = cc.Catalog(repository)
    conn = psycopg.connect(url, autocommit=True)
    _peer_pg_schema(conn)
    try:
        if bulk:
            payloads = lines(scale.bulk_products)

            def ours() -> float:
                with repository._pool.connection() as c:
                    c.execute(f"TRUNCATE {OURS_SCHEMA}.products, {OURS_SCHEMA}.blobs")
                seconds = timed(lambda: _drain(catalog.upsert_many(ACCOUNT, payloads)), 1)
                return seconds / len(payloads)

            def peer() -> float:
                conn.execute(f"TRUNCATE {PEER_SCHEMA}.products")
                return timed(lambda: _peer_pg_bulk(conn, payloads), 1) / len(payloads)

            yield [Contender("catalog_core", ours), Contender("psycopg", peer)]
            return
        seeded = lines(1000)
        _drain(catalog.upsert_many(ACCOUNT, seeded))
        _peer_pg_bulk(conn, seeded)
        yield _one_upsert_each(scale, catalog, "psycopg", functools.partial(_peer_pg_upsert, conn))
    finally:
        repository.drop_schema()
        repository.close()
        conn.execute(f"DROP SCHEMA IF EXISTS {PEER_SCHEMA} CASCADE")
        conn.close()


def _postgres_upsert(scale: Scale, workdir: Path) -> Any:
    return _postgres(scale, workdir, bulk=False)


def _postgres_bulk(scale: Scale, workdir: Path) -> Any:
    return _postgres(scale, workdir, bulk=True)


#: The columns of a product row, as the repository writes them.
_PG_PRODUCT_COLUMNS = (
    "account, external_id, one_shot, data, valid_for_days, expires_at, last_used_at, "
    "created_at, updated_at, version, uploads"
)


def _pg_fill(conn: Any, schema: str, size: int, accounts: int, template: tuple[Any, ...]) -> None:
    """Fill ``schema``.products with ``size`` products over ``accounts`` accounts, in the server.

    Every product is the repository's own row (``template``: a product the catalog made) under
    its id and account; every 1,000th has expired an hour before :data:`NOW`, the others expire
    in 30 days. Written with one ``INSERT … SELECT`` because building a million products through
    the catalog would take longer than the measurements.
    """
    later = to_epoch_ms(NOW + timedelta(days=30))
    earlier = to_epoch_ms(NOW - timedelta(hours=1))
    one_shot, data, days, _, last_used, created, updated, version, uploads = template
    conn.execute(
        f"INSERT INTO {schema}.products ({_PG_PRODUCT_COLUMNS}) "
        "SELECT 'acct-' || lpad((i %% %s)::text, 4, '0'), 'sku-' || lpad(i::text, 7, '0'), "
        "%s, %s, %s, CASE WHEN i %% 1000 = 0 THEN %s ELSE %s END, %s, %s, %s, %s, %s "
        "FROM generate_series(0, %s - 1) AS i",
        (
            accounts,
            one_shot,
            data,
            days,
            earlier,
            later,
            last_used,
            created,
            updated,
            version,
            uploads,
            size,
        ),
    )
    conn.execute(f"VACUUM ANALYZE {schema}.products")


def _pg_template(repository: cc.PostgresRepository) -> tuple[Any, ...]:
    """Return the columns after the key of a product the catalog made, as PostgreSQL stores it."""
    catalog = cc.Catalog(repository, clock=lambda: NOW)
    catalog.upsert(ACCOUNT, upsert_body(0))
    with repository._pool.connection() as conn:
        row = conn.execute(
            f"SELECT one_shot, data, valid_for_days, expires_at, last_used_at, created_at, "
            f"updated_at, version, uploads FROM {repository._quoted}.products"
        ).fetchone()
        conn.execute(f"TRUNCATE {repository._quoted}.products, {repository._quoted}.blobs")
    assert row is not None
    return tuple(row)


def _put_back(conn: Any, schema: str, rows: Sequence[Sequence[Any]]) -> None:
    """Put ``rows`` back into ``schema``.products, then vacuum it (see :func:`_pg_purge_side`)."""
    marks = ", ".join(["%s"] * len(rows[0]))
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {schema}.products ({_PG_PRODUCT_COLUMNS}) VALUES ({marks}) "
            "ON CONFLICT DO NOTHING",
            rows,
        )
    conn.execute(f"VACUUM (INDEX_CLEANUP ON) {schema}.products")


@contextmanager
def _pg_purge_side(
    url: str, schema: str, size: int, accounts: int
) -> Iterator[Callable[[], float]]:
    """A sampler of the purge of a catalog of ``size`` products over ``accounts`` accounts.

    Each sample puts back the expired products and vacuums the table (outside the timing),
    then times ``Catalog.purge_expired()`` at :data:`NOW`. The vacuum stands for the age of
    what expires: a product expires a day or more after it was last written, long after
    autovacuum has marked its page all-visible, so an index-only scan of expired keys reads no
    row. (Without it, every sample would find the rows it put back moments before, and the
    dead ones of the samples before.) It cleans the indexes whatever it finds
    (``INDEX_CLEANUP ON``): left to decide, a vacuum that finds dead rows on fewer than 2% of
    the pages (the previous sample's 1,000) skips the indexes, and then leaves those pages,
    where the rows were put back, not all-visible, which a day of autovacuum on a table that
    takes writes does not. The peer's table gets the same.
    """
    import psycopg

    repository = cc.PostgresRepository(url, schema=schema)
    repository.drop_schema()
    repository.close()
    repository = cc.PostgresRepository(url, schema=schema)
    conn = psycopg.connect(url, autocommit=True)
    try:
        _pg_fill(conn, schema, size, accounts, _pg_template(repository))
        expired = conn.execute(
            f"SELECT {_PG_PRODUCT_COLUMNS} FROM {schema}.products WHERE expires_at <= %s",
            (to_epoch_ms(NOW),),
        ).fetchall()
        assert len(expired) == size // 1000
        catalog = cc.Catalog(repository, clock=lambda: NOW)

        def sample() -> float:
            _put_back(conn, schema, expired)
            return timed(lambda: _expect(catalog.purge_expired(), len(expired)), 1)

        yield sample
    finally:
        repository.drop_schema()
        repository.close()
        conn.close()


@contextmanager
def _pg_purge(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    """The purge on PostgreSQL beside a raw ``DELETE`` through an index on ``expires_at``."""
    import psycopg

    url = POSTGRES_URL[0]
    assert url is not None
    size = scale.purge_size
    with _pg_purge_side(url, OURS_SCHEMA, size, 10) as ours:
        conn = psycopg.connect(url, autocommit=True)
        try:
            conn.execute(f"DROP SCHEMA IF EXISTS {PEER_SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {PEER_SCHEMA}")
            conn.execute(
                f"CREATE TABLE {PEER_SCHEMA}.products (LIKE {OURS_SCHEMA}.products INCLUDING ALL)"
            )
            # The peer's one index beside its key: the one its DELETE reads.
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname NOT LIKE "
                "'%%pkey'",
                (PEER_SCHEMA,),
            ).fetchall():
                conn.execute(f"DROP INDEX {PEER_SCHEMA}.{name}")
            conn.execute(f"CREATE INDEX ON {PEER_SCHEMA}.products (expires_at)")
            conn.execute(
                f"INSERT INTO {PEER_SCHEMA}.products ({_PG_PRODUCT_COLUMNS}) "
                f"SELECT {_PG_PRODUCT_COLUMNS} FROM {OURS_SCHEMA}.products"
            )
            conn.execute(f"VACUUM ANALYZE {PEER_SCHEMA}.products")
            expired = conn.execute(
                f"SELECT {_PG_PRODUCT_COLUMNS} FROM {PEER_SCHEMA}.products WHERE expires_at <= %s",
                (to_epoch_ms(NOW),),
            ).fetchall()

            def peer_purge() -> None:
                # One statement, committed on its own (the connection is in autocommit).
                removed = conn.execute(
                    f"DELETE FROM {PEER_SCHEMA}.products WHERE expires_at <= %s",
                    (to_epoch_ms(NOW),),
                ).rowcount
                _expect(removed, len(expired))

            def theirs() -> float:
                _put_back(conn, PEER_SCHEMA, expired)
                return timed(peer_purge, 1)

            yield [Contender("catalog_core", ours), Contender("psycopg", theirs)]
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {PEER_SCHEMA} CASCADE")
            conn.close()


@contextmanager
def _pg_purge_accounts(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    """The same purge with the catalog's products spread over 10 accounts, then over 1,000."""
    url = POSTGRES_URL[0]
    assert url is not None
    size = scale.purge_size
    with (
        _pg_purge_side(url, f"{OURS_SCHEMA}_10", size, 10) as ten,
        _pg_purge_side(url, f"{OURS_SCHEMA}_1000", size, 1000) as thousand,
    ):
        yield [Contender("10 accounts", ten), Contender("1,000 accounts", thousand)]


# -- memory of the command-line import ------------------------------------------------------


# Linux carries a process's peak RSS across fork and exec, so a child forked from this (large)
# process would report at least this process's size. A small launcher forks the import instead
# and prints the import's own peak, in kilobytes, on its last line.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(f'peak-rss-kib={usage.ru_maxrss}')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def peak_memory_of_import(path: Path, db: Path) -> int:
    """Run ``catalog-core import`` on ``path`` in a child process; return its peak RSS in bytes."""
    command = [sys.executable, "-c", _LAUNCHER, sys.executable, "-c"]
    command += ["from catalog_core.cli import main; main()"]
    command += ["--db", str(db), "import", str(path), "--account", ACCOUNT]
    ran = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = ran.stdout.splitlines()
    if ran.returncode != 0 or not lines or not lines[0].startswith("created "):
        raise RuntimeError(
            f"the import failed ({ran.returncode}): {ran.stdout} {ran.stderr[-500:]}"
        )
    return int(lines[-1].removeprefix("peak-rss-kib=")) * 1024  # kilobytes on Linux


@contextmanager
def _import_memory(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    contenders = []
    for size in scale.import_sizes:
        path = workdir / f"import-{size}.jsonl"
        if not path.exists():
            with path.open("wb") as out:
                for start in range(0, size, 10_000):
                    chunk = range(start, min(size, start + 10_000))
                    out.write(b"".join(line(i) + b"\n" for i in chunk))

        def sample(path: Path = path, size: int = size) -> float:
            db = workdir / f"import-{size}.db"
            _remove_db(db)
            try:
                return float(peak_memory_of_import(path, db))
            finally:
                _remove_db(db)

        label = f"{size // 1000}k lines" if size < 1_000_000 else f"{size // 1_000_000}M lines"
        contenders.append(Contender(label, sample))
    yield contenders


# -- moving a catalog: copy -----------------------------------------------------------------


def _copy_source(workdir: Path, size: int, *, uploads: bool) -> Path:
    """Return an SQLite catalog of ``size`` products that never expire.

    With ``uploads``, one in 100 names an uploaded image (100 distinct ones, 4 KiB each), as in a
    catalog of products made by multipart requests.
    """
    path = workdir / f"copy-{size}{'-uploads' if uploads else ''}.db"
    if path.exists():
        return path
    build_catalog(path.with_suffix(".base.db"), size)
    shutil.copy(path.with_suffix(".base.db"), path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE products SET valid_for_days = NULL, expires_at = NULL")
    conn.close()
    if uploads:
        repository = cc.SQLiteRepository(path)
        catalog = cc.Catalog(repository, clock=lambda: NOW)
        payloads = []
        files = {}
        for n in range(0, size, 100):
            data = cc.Upload(b"\xff\xd8\xff" + (n // 100 % 100).to_bytes(4, "big") * 1024)
            files[n] = data
            payloads.append(n)
        for n in payloads:
            body = {
                "externalId": f"sku-{n:07d}",
                "images": [
                    {"source": {"fileKey": "f"}},
                    {"source": {"url": "https://x.example/a"}},
                ],
            }
            catalog.upsert(ACCOUNT, body, files={"f": files[n]})
        repository.close()
    return path


def _peer_copy(source: Path, conn: Any) -> int:
    """Copy the rows as a user would write it: read them in key order, insert them in batches.

    Batches of 500, with psycopg's pipelined ``executemany``; blobs are left out.
    """
    lite = sqlite3.connect(source)
    rows = lite.execute(
        "SELECT account, external_id, title, description, metadata, images, valid_for_days, "
        "expires_at, last_used_at, created_at, updated_at, version FROM products "
        "ORDER BY account, external_id"
    )
    copied = 0
    while batch := rows.fetchmany(500):
        params = [
            (
                r[0],
                r[1],
                json.dumps(
                    {
                        "title": r[2],
                        "description": r[3],
                        "metadata": None if r[4] is None else json.loads(r[4]),
                        "images": json.loads(r[5]),
                    }
                ),
                *r[6:],
            )
            for r in batch
        ]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_PG_UPSERT, params)
        copied += len(batch)
    lite.close()
    return copied


@contextmanager
def _copy_speed(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    import psycopg

    from catalog_core import transfer

    url = POSTGRES_URL[0]
    assert url is not None
    size = scale.bulk_products
    source_path = _copy_source(workdir, size, uploads=False)
    source = cc.SQLiteRepository(source_path)
    target = cc.PostgresRepository(url, schema=OURS_SCHEMA)
    target.drop_schema()
    target.close()
    target = cc.PostgresRepository(url, schema=OURS_SCHEMA)
    conn = psycopg.connect(url, autocommit=True)
    _peer_pg_schema(conn)
    try:

        def ours() -> float:
            with target._pool.connection() as c:
                c.execute(f"TRUNCATE {OURS_SCHEMA}.products, {OURS_SCHEMA}.blobs")

            def run() -> None:
                copied = sum(s.products for s in transfer.copy(source, target, now=NOW))
                _expect(copied, size)

            return timed(run, 1) / size

        def peer() -> float:
            conn.execute(f"TRUNCATE {PEER_SCHEMA}.products")
            return timed(lambda: _expect(_peer_copy(source_path, conn), size), 1) / size

        yield [Contender("catalog_core", ours), Contender("sqlite3+psycopg", peer)]
    finally:
        source.close()
        target.drop_schema()
        target.close()
        conn.execute(f"DROP SCHEMA IF EXISTS {PEER_SCHEMA} CASCADE")
        conn.close()


def peak_memory_of_copy(source: Path, url: str) -> int:
    """Run ``catalog-core copy`` into ``url`` in a child process; return its peak RSS in bytes."""
    command = [sys.executable, "-c", _LAUNCHER, sys.executable, "-c"]
    command += ["from catalog_core.cli import main; main()"]
    command += ["copy", "--from", str(source), "--to", url]
    ran = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = ran.stdout.splitlines()
    if ran.returncode != 0 or not lines or not lines[0].startswith('{"copied"'):
        raise RuntimeError(f"the copy failed ({ran.returncode}): {ran.stdout} {ran.stderr[-500:]}")
    return int(lines[-1].removeprefix("peak-rss-kib=")) * 1024  # kilobytes on Linux


@contextmanager
def _copy_memory(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    url = POSTGRES_URL[0]
    assert url is not None
    contenders = []
    for size in scale.copy_sizes:
        source = _copy_source(workdir, size, uploads=True)

        def sample(source: Path = source) -> float:
            target = cc.PostgresRepository(url, schema=OURS_SCHEMA)
            target.drop_schema()
            target.close()
            sep = "&" if "?" in url else "?"
            try:
                return float(peak_memory_of_copy(source, f"{url}{sep}schema={OURS_SCHEMA}"))
            finally:
                target = cc.PostgresRepository(url, schema=OURS_SCHEMA)
                target.drop_schema()
                target.close()

        label = f"{size // 1000}k products"
        contenders.append(Contender(label, sample))
    yield contenders


# -- the server: catalog-core serve beside a FastAPI peer, under wrk -------------------------

#: Products of the catalog both servers serve.
SERVER_CATALOG_SIZE = 10_000
#: Without --api-key, serve takes any key as the account of its own name.
API_KEY = ACCOUNT
PRODUCTS_PATH = "/tryon/v1/products"
_ROOT = Path(__file__).resolve().parent.parent


def _server_catalogs(workdir: Path) -> tuple[Path, Path]:
    """Return catalog_core's catalog of the server cases and the FastAPI peer's, made once.

    Both hold the same :data:`SERVER_CATALOG_SIZE` products, which never expire (the built
    catalog's expire 30 days after :data:`NOW`, and the servers read the wall clock). The peer's
    rows are made from what catalog_core serves (``to_wire``), in the peer's own table.
    """
    ours = _copy_source(workdir, SERVER_CATALOG_SIZE, uploads=False)
    peer = workdir / f"server-peer-{SERVER_CATALOG_SIZE}.db"
    if peer.exists():
        return ours, peer
    tmp = peer.with_suffix(".tmp")
    _remove_db(tmp)
    repository = cc.SQLiteRepository(ours)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        fastapi_peer.create_schema(conn)
        catalog = cc.Catalog(repository)
        cursor = None
        conn.execute("BEGIN")
        while True:
            page = catalog.list(ACCOUNT, limit=200, cursor=cursor)
            conn.executemany(
                f"INSERT INTO products VALUES ({', '.join('?' * 12)})",
                [_peer_server_row(product) for product in page.items],
            )
            if not page.has_more:
                break
            cursor = page.next_cursor
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
        repository.close()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{tmp}{suffix}").exists():
            os.replace(f"{tmp}{suffix}", f"{peer}{suffix}")
    return ours, peer


def _peer_server_row(product: cc.Product) -> tuple[Any, ...]:
    wire = cc.to_wire(product)

    def ms(moment: datetime | None) -> int | None:
        return None if moment is None else to_epoch_ms(moment)

    return (
        product.account,
        product.external_id,
        product.title,
        product.description,
        None if wire["metadata"] is None else json.dumps(wire["metadata"]),
        product.valid_for_days,
        ms(product.expires_at),
        ms(product.last_used_at),
        ms(product.created_at),
        ms(product.updated_at),
        json.dumps(wire["images"]),
        product.version,
    )


def _fresh_copy(source: Path, path: Path) -> Path:
    """Copy the SQLite database ``source`` to ``path`` (SQLite's backup: a consistent copy)."""
    _remove_db(path)
    src, dst = sqlite3.connect(source), sqlite3.connect(path)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return path


@contextmanager
def _servers(
    case: str, workdir: Path
) -> Iterator[tuple[serving.ServerProcess, serving.ServerProcess]]:
    """Start ``catalog-core serve`` and the FastAPI peer on copies of the catalog; stop them after.

    Each runs as its users run it (``catalog-core serve --db``; ``uvicorn module:app``), with the
    logging they get by default (uvicorn's access log: a line a request, to a file here), on the
    servers' core. Before anything is measured, both must send the same JSON for the same
    product and for the first page.
    """
    ours_db, peer_db = _server_catalogs(workdir)
    ours_db = _fresh_copy(ours_db, workdir / f"{case}-ours.db")
    peer_db = _fresh_copy(peer_db, workdir / f"{case}-peer.db")
    # The servers choose their database from their arguments, whatever the environment says.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_CORE_")}
    serve = serving.console_script("catalog-core", "from catalog_core.cli import main; main()")
    uvicorn = serving.console_script("uvicorn", "import uvicorn; uvicorn.main()")
    ours_port, peer_port = serving.free_port(), serving.free_port()
    with ExitStack() as stack:
        ours = serving.start_server(
            "catalog-core serve",
            [*serve, "serve", "--db", str(ours_db), "--port", str(ours_port)],
            port=ours_port,
            log=workdir / f"{case}-ours.log",
            env=env,
        )
        stack.callback(ours.stop)
        peer = serving.start_server(
            "fastapi",
            [*uvicorn, "benchmarks.peers.fastapi_peer:app", "--port", str(peer_port)],
            port=peer_port,
            log=workdir / f"{case}-peer.log",
            cwd=_ROOT,  # uvicorn imports the app from its working directory
            env={**env, "FASTAPI_PEER_DB": str(peer_db)},
        )
        stack.callback(peer.stop)
        probe = f"{PRODUCTS_PATH}/sku-{SERVER_CATALOG_SIZE - 1:07d}"
        ours.wait_ready(probe, API_KEY)
        peer.wait_ready(probe, API_KEY)
        for path in (f"{PRODUCTS_PATH}/sku-0000042", f"{PRODUCTS_PATH}?limit=50"):
            ours_answer, peer_answer = (
                serving.request_json(server.base, "GET", path, API_KEY) for server in (ours, peer)
            )
            for _, body in (ours_answer, peer_answer):
                body.pop("nextCursor", None)  # opaque, each server's own
            if ours_answer != peer_answer:
                raise AssertionError(f"the peer answers GET {path} differently from catalog_core")
        yield ours, peer


def _requests_file(path: Path, requests: Sequence[tuple[str, str, bytes | None]]) -> Path:
    """Write requests (method, target, body) as ``wrk_requests.lua`` reads them: one a line."""
    with path.open("wb") as out:
        for method, target, body in requests:
            out.write(f"{method}\t{target}".encode())
            if body is not None:
                out.write(b"\t" + body)
            out.write(b"\n")
    return path


def _load_contenders(
    case: str,
    scale: Scale,
    sides: Sequence[tuple[str, serving.ServerProcess, Path]],
    connections: int,
) -> list[Contender]:
    """Return a contender per (name, server, requests file): each sample is a wrk run.

    Each server is warmed up first by a shorter wrk run (a fifth of a sample, at least a
    second), so that a mistake in the requests fails before anything is measured.
    """
    contenders = []
    for name, server, requests in sides:

        def run(
            seconds: int, server: serving.ServerProcess = server, requests: Path = requests
        ) -> serving.LoadRun:
            return serving.run_wrk(
                server.base,
                requests,
                connections=connections,
                seconds=seconds,
                api_key=API_KEY,
                what=f"{case} on {server.name}",
            )

        run(max(1, scale.server_seconds // 5))

        def sample(run: Callable[[int], serving.LoadRun] = run) -> LoadSample:
            done = run(scale.server_seconds)
            return LoadSample(done.per_request, done.p99)

        contenders.append(Contender(name, sample))
    return contenders


@contextmanager
def _server_get(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    """GET one product, 16 connections, the catalog's ids in a random order."""
    ids = [f"sku-{i:07d}" for i in range(SERVER_CATALOG_SIZE)]
    random.Random(15).shuffle(ids)
    requests = _requests_file(
        workdir / "server_get.requests", [("GET", f"{PRODUCTS_PATH}/{i}", None) for i in ids]
    )
    with _servers("server_get", workdir) as (ours, peer):
        sides = [("catalog_core", ours, requests), ("fastapi", peer, requests)]
        yield _load_contenders("server_get", scale, sides, 16)


def _page_targets(server: serving.ServerProcess) -> list[str]:
    """Return the target of every page of 50 of the catalog: the first, then by each cursor."""
    first = f"{PRODUCTS_PATH}?limit=50"
    targets = [first]
    while True:
        status, page = serving.request_json(server.base, "GET", targets[-1], API_KEY)
        if status != 200 or page["count"] != 50:
            raise AssertionError(f"{server.name} answered {status} {page!r:.300}")
        if not page["hasMore"]:
            return targets
        targets.append(f"{first}&cursor={quote(page['nextCursor'], safe='')}")


@contextmanager
def _server_list(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    """A page of 50, 1 connection, every page of the catalog in a random order.

    Cursors are opaque, each server's own: each server's are read from it first.
    """
    with _servers("server_list", workdir) as (ours, peer):
        sides = []
        for name, server in (("catalog_core", ours), ("fastapi", peer)):
            targets = _page_targets(server)
            assert len(targets) == SERVER_CATALOG_SIZE // 50
            random.Random(15).shuffle(targets)  # the same order of pages on both
            requests = [("GET", target, None) for target in targets]
            sides.append(
                (name, server, _requests_file(workdir / f"server_list-{name}.requests", requests))
            )
        yield _load_contenders("server_list", scale, sides, 1)


@contextmanager
def _server_upsert(scale: Scale, workdir: Path) -> Iterator[Sequence[Contender]]:
    """Upsert (JSON, 2 images), 1 connection: updates of 1,000 of the catalog's products."""
    picks = random.Random(15).sample(range(SERVER_CATALOG_SIZE), 1000)
    requests = _requests_file(
        workdir / "server_upsert.requests",
        [("POST", PRODUCTS_PATH, line(i, title=f"Restocked {i}")) for i in picks],
    )
    with _servers("server_upsert", workdir) as (ours, peer):
        sides = [("catalog_core", ours, requests), ("fastapi", peer, requests)]
        yield _load_contenders("server_upsert", scale, sides, 1)


CASES: list[Case] = [
    # The library's targets are issue 15's: decode 2x and encode 1.5x pydantic, and 0.7 of the
    # raw drivers for one upsert on SQLite and bulk imports on SQLite and PostgreSQL.
    Case("decode", "decode + validate an upsert body", "speed", 2.0, _decode),
    Case("encode", "encode a product to response bytes (R31)", "speed", 1.5, _encode),
    Case("sqlite_upsert", "one upsert on SQLite, one transaction", "speed", 0.7, _sqlite_upsert),
    Case(
        "sqlite_bulk",
        "bulk import on SQLite (per product)",
        "speed",
        0.7,
        _sqlite_bulk,
        samples="bulk",
    ),
    Case("get_and_page", "get + a page of 50 as the catalog grows", "flat", 1.3, _get_and_page),
    Case("purge", "purge 0.1% expired", "speed", 0.5, _purge),
    Case(
        "pg_upsert",
        "one upsert on PostgreSQL",
        "speed",
        0.7,
        _postgres_upsert,
        needs_postgres=True,
    ),
    Case(
        "pg_bulk",
        "bulk import on PostgreSQL (per product)",
        "speed",
        0.7,
        _postgres_bulk,
        needs_postgres=True,
        samples="bulk",
    ),
    Case(
        "pg_purge",
        "purge 0.1% expired on PostgreSQL",
        "speed",
        0.5,
        _pg_purge,
        needs_postgres=True,
    ),
    Case(
        "pg_purge_accounts",
        "PostgreSQL purge: 1,000 accounts vs 10",
        "flat",
        1.5,
        _pg_purge_accounts,
        needs_postgres=True,
    ),
    Case(
        "copy_sqlite_to_pg",
        "catalog-core copy, SQLite to PostgreSQL (per product)",
        "speed",
        0.5,
        _copy_speed,
        needs_postgres=True,
        samples="bulk",
    ),
    Case(
        "copy_memory",
        "CLI copy SQLite to PostgreSQL, 1% with uploads: peak RSS",
        "memory",
        200 * 2**20,
        _copy_memory,
        needs_postgres=True,
        samples="once",
    ),
    Case(
        "import_memory",
        "CLI import of JSON Lines: peak RSS",
        "memory",
        200 * 2**20,
        _import_memory,
        samples="once",
    ),
    Case(
        "server_get",
        "catalog-core serve: GET one product, 16 connections",
        "speed",
        3.0,
        _server_get,
        needs_wrk=True,
        samples="load",
        p99_target=0.010,
    ),
    Case(
        "server_list",
        "catalog-core serve: a page of 50, 1 connection",
        "speed",
        2.0,
        _server_list,
        needs_wrk=True,
        samples="load",
    ),
    Case(
        "server_upsert",
        "catalog-core serve: upsert, JSON with 2 images, 1 connection",
        "speed",
        2.0,
        _server_upsert,
        needs_wrk=True,
        samples="load",
    ),
]
