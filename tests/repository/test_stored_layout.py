"""Catalogs of schema 1, written before the try-on flow, open and work on both SQL backends.

``tests/data/catalog_schema1.json`` holds the rows the earlier code wrote (commit 75d393b, through
``Catalog.upsert``): a title and metadata holding NUL, non-ASCII text, an uploaded image, a
product that expires, and a second account. Schema 2 only adds the try-on flow's tables, so a
catalog of schema 1 opened where it may be written is migrated in place, in one transaction: its
products stay as they are, read back exactly, take writes, and the codec writes each of them back
to the very row it was read from. One that may not be written is read as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
import sqlite_utils

import catalog_core as cc
from catalog_core.repository._postgres_schema import SCHEMA_VERSION as POSTGRES_VERSION
from catalog_core.repository._rows import PACKED_BEFORE_UPLOADS, SPLIT, SqlTable
from catalog_core.repository.base import TryOnKeys, TryOnWrite
from catalog_core.tryon.model import Credits, PersonImage
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG

FIXTURE = json.loads((Path(__file__).parent.parent / "data" / "catalog_schema1.json").read_text())
#: When the fixture was written (its clock).
THEN = datetime(2026, 5, 13, 10, 0, tzinfo=UTC)


#: The DDL of schema 1 on PostgreSQL (``schema_sql()`` before the try-on tables).
POSTGRES_SCHEMA_1 = """\
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.catalog_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.products (
    account text COLLATE "C" NOT NULL,
    external_id text COLLATE "C" NOT NULL,
    one_shot boolean NOT NULL,
    data text NOT NULL,
    valid_for_days integer,
    expires_at bigint,
    last_used_at bigint,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (account, external_id)
);
CREATE INDEX IF NOT EXISTS products_listing ON {s}.products (account, external_id)
    WHERE NOT one_shot;
CREATE INDEX IF NOT EXISTS products_expiry ON {s}.products (account, expires_at)
    WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.blobs (
    account text COLLATE "C" NOT NULL,
    sha256 text COLLATE "C" NOT NULL,
    mime_type text NOT NULL,
    data bytea NOT NULL,
    refs integer NOT NULL,
    PRIMARY KEY (account, sha256)
);
CREATE INDEX IF NOT EXISTS blobs_orphans ON {s}.blobs (account, sha256) WHERE refs = 0;
INSERT INTO {s}.catalog_meta (key, value) VALUES ('schema_version', '1')
    ON CONFLICT (key) DO NOTHING;
INSERT INTO {s}.catalog_meta (key, value)
    VALUES ('cursor_secret', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
    ON CONFLICT (key) DO NOTHING;
"""
TRY_ON_TABLES = {"person_images", "generations", "credits"}


def cells(row: list[Any]) -> tuple[Any, ...]:
    return tuple(bytes.fromhex(v["hex"]) if isinstance(v, dict) else v for v in row)


def sqlite_catalog(path: Path) -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in FIXTURE["sqlite"]["schema"]:
        conn.execute(statement)
    for table, rows in FIXTURE["sqlite"]["rows"].items():
        for row in rows:
            conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", cells(row))
    conn.close()
    return path


def postgres_catalog(schema: str) -> str:
    """Make a catalog of schema 1 in ``schema``, as the earlier code made and wrote it."""
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(POSTGRES_SCHEMA_1.format(s=schema).encode())
        for table, stored in FIXTURE["postgres"]["rows"].items():
            names = ", ".join(stored["columns"])
            marks = ", ".join(["%s"] * len(stored["columns"]))
            for row in stored["rows"]:
                conn.execute(f"INSERT INTO {schema}.{table} ({names}) VALUES ({marks})", cells(row))
    return schema


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A schema name of the test's own, dropped afterwards."""
    schema = fresh_schema()
    url = postgres_url()
    yield schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def postgres_layout(schema: str) -> tuple[str | None, set[str]]:
    """The schema version and the tables of a PostgreSQL catalog."""
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        version = conn.execute(
            f"SELECT value FROM {schema}.catalog_meta WHERE key = 'schema_version'"
        ).fetchone()
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return (None if version is None else version[0]), {name for (name,) in tables}


def sqlite_layout(path: Path) -> tuple[str | None, set[str]]:
    """The schema version and the tables of an SQLite catalog, read without writing."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        version = conn.execute(
            "SELECT value FROM catalog_meta WHERE key = 'schema_version'"
        ).fetchone()
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    return (None if version is None else version[0]), {name for (name,) in tables}


@pytest.fixture(params=["sqlite", "postgres"])
def before(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[cc.Repository]:
    """A repository opened (so migrated) on a catalog of schema 1 the earlier code wrote."""
    if request.param == "sqlite":
        path = sqlite_catalog(tmp_path / "before.db")
        assert sqlite_layout(path)[0] == "1"
        repository: cc.Repository = cc.SQLiteRepository(path)
        assert sqlite_layout(path) == ("2", {"products", "blobs", "catalog_meta", *TRY_ON_TABLES})
        yield repository
        repository.close()
        return
    postgres_schema = postgres_catalog(request.getfixturevalue("postgres_schema"))
    assert postgres_layout(postgres_schema)[0] == "1"
    postgres = cc.PostgresRepository(postgres_url(), schema=postgres_schema)
    try:
        assert postgres_layout(postgres_schema) == (
            str(POSTGRES_VERSION),
            {"products", "blobs", "catalog_meta", *TRY_ON_TABLES},
        )
        yield postgres
    finally:
        postgres.close()


def test_a_catalog_written_before_reads_back_exactly(before: cc.Repository) -> None:
    text = before.get("acme", "text")
    assert text is not None
    assert text.title == "nul \x00 and \u00e9\u2603"
    assert text.description == "tab\tline\n"
    assert text.metadata == {"k": ["\x00", 1.5, None, True, {"x": "\U0001f600"}]}
    assert [(i.source_url, i.classifications) for i in text.images] == [
        ("https://cdn.example/a.jpg", {"kind": "top"})
    ]
    assert (text.created_at, text.version) == (THEN, 1)
    upload = before.get("acme", "upload")
    assert upload is not None
    (sha,) = upload.blob_refs
    blob = before.get_blob("acme", sha)
    assert blob is not None
    assert (blob.data, blob.mime_type) == (JPEG, "image/jpeg")
    page = before.list_live("acme", after=None, limit=10, now=THEN)
    assert [p.external_id for p in page] == ["brief", "text", "upload"]
    other = before.get("other", "text")
    assert other is not None
    assert other.title == "other account"


def test_a_catalog_written_before_takes_writes_and_purges(before: cc.Repository) -> None:
    catalog = cc.Catalog(before, clock=lambda: THEN + timedelta(days=2))
    updated = catalog.upsert("acme", {"externalId": "text", "title": "renamed"}).product
    assert (updated.title, updated.version, updated.metadata) == (
        "renamed",
        2,
        {"k": ["\x00", 1.5, None, True, {"x": "\U0001f600"}]},
    )
    upload = before.get("acme", "upload")
    assert upload is not None
    (sha,) = upload.blob_refs
    # The stored upload, named again without its bytes.
    again = attrs.evolve(upload, external_id="again")
    assert before.write("acme", "again", lambda _: cc.Write(again)) == again
    assert before.purge_expired(THEN + timedelta(days=2)) == 1  # "brief"
    assert before.get("acme", "brief") is None
    for external_id in ("upload", "again"):
        assert before.get_blob("acme", sha) is not None
        before.write("acme", external_id, lambda _: cc.Write(None))
        before.purge_expired(THEN + timedelta(days=2))
    assert before.get_blob("acme", sha) is None


@pytest.mark.parametrize(
    ("table", "rows"),
    [
        pytest.param(SPLIT, FIXTURE["sqlite"]["rows"]["products"], id="sqlite"),
        pytest.param(
            PACKED_BEFORE_UPLOADS,
            [
                dict(zip(FIXTURE["postgres"]["rows"]["products"]["columns"], row, strict=True))
                for row in FIXTURE["postgres"]["rows"]["products"]["rows"]
            ],
            id="postgres",
        ),
    ],
)
def test_the_codec_writes_each_product_back_to_the_row_it_was_read_from(
    table: SqlTable[cc.Product], rows: list[Any]
) -> None:
    names = ("account", table.id_column, *table.columns, *table.fixed)
    for raw in rows:
        # PostgreSQL's rows are by column name; SQLite's in its table's order, the codec's.
        row = tuple(raw[name] for name in names) if isinstance(raw, dict) else cells(raw)
        product = table.decode(row[: 2 + len(table.columns)])
        assert table.encode(product) == row


def person_image(image_id: str) -> PersonImage:
    return PersonImage(
        account="acme",
        image_id=image_id,
        sha256=hashlib.sha256(JPEG).hexdigest(),
        mime_type="image/jpeg",
        token="t" * 32,
        customer_id="c",
        created_at=THEN,
        expires_at=THEN + timedelta(days=1),
    )


def test_a_migrated_catalog_stores_the_try_on_flow_and_shares_its_uploads(
    before: cc.Repository,
) -> None:
    """The migrated catalog is whole: try-on records go in, and count references to the blobs
    its products stored before."""
    assert isinstance(before, cc.SQLiteRepository | cc.PostgresRepository)
    image = person_image("img_1")  # names the stored upload without giving it
    write = TryOnWrite(person_images=(image,), credits=Credits("acme", 3))
    keys = TryOnKeys(person_images=("img_1",), credits=True)
    assert before.write_tryon("acme", keys, lambda _: write) == write
    assert before.get_person_image("acme", "img_1") == image
    assert before.get_credits("acme") == Credits("acme", 3)
    before.write("acme", "upload", lambda _: cc.Write(None))
    assert before.purge(THEN).person_images == 0
    assert before.get_blob("acme", image.sha256) is not None  # the person image names it
    assert before.erase_customer("acme", "c") == 1
    before.purge(THEN)
    assert before.get_blob("acme", image.sha256) is None


def test_a_read_only_sqlite_catalog_of_schema_1_is_read_as_it_is(tmp_path: Path) -> None:
    """A catalog the process may not write keeps its schema; its products read as ever, it
    holds no try-on record, and a try-on write fails with the read-only error. Once a writer
    elsewhere migrates it, the same handle reads what the writer stores."""
    path = sqlite_catalog(tmp_path / "before.db")
    fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()
    read_only = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    reader = cc.SQLiteRepository(sqlite_utils.Database(read_only))
    try:
        text = reader.get("acme", "text")
        assert text is not None
        assert text.title == "nul \x00 and \u00e9\u2603"
        assert reader.get_person_image("acme", "img_1") is None
        assert reader.get_generation("acme", "gen_1") is None
        assert reader.get_credits("acme") is None
        assert reader.erase_customer("acme", "c") == 0
        with pytest.raises(sqlite3.OperationalError, match="read-only"):
            reader.write_tryon(
                "acme",
                TryOnKeys(credits=True),
                lambda _: TryOnWrite(credits=Credits("acme", 1)),
            )
        assert sqlite_layout(path) == ("1", {"products", "blobs", "catalog_meta"})
        assert hashlib.sha256(path.read_bytes()).hexdigest() == fingerprint

        writer = cc.SQLiteRepository(path)
        writer.write_tryon(
            "acme", TryOnKeys(credits=True), lambda _: TryOnWrite(credits=Credits("acme", 1))
        )
        writer.close()
        assert reader.get_credits("acme") == Credits("acme", 1)
    finally:
        reader.close()
        read_only.close()


def test_a_sqlite_migration_that_fails_leaves_the_catalog_of_schema_1_as_it_was(
    tmp_path: Path,
) -> None:
    """The migration is one transaction: when its last statement fails (here a trigger of the
    catalog's owner refuses the new version), none of its tables is left behind."""
    path = sqlite_catalog(tmp_path / "before.db")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER keep_version BEFORE UPDATE ON catalog_meta "
            "BEGIN SELECT RAISE(ABORT, 'the version stays'); END"
        )
    conn.close()
    with pytest.raises(sqlite3.IntegrityError, match="the version stays"):
        cc.SQLiteRepository(path)
    assert sqlite_layout(path) == ("1", {"products", "blobs", "catalog_meta"})


def test_a_postgres_migration_that_fails_leaves_the_catalog_of_schema_1_as_it_was(
    postgres_schema: str,
) -> None:
    """The PostgreSQL twin: the DDL and the new version commit together or not at all."""
    schema = postgres_catalog(postgres_schema)
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION {schema}.keep_version() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the version stays'; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER keep_version BEFORE UPDATE ON {schema}.catalog_meta "
            f"FOR EACH ROW EXECUTE FUNCTION {schema}.keep_version()"
        )
    with pytest.raises(psycopg.errors.RaiseException, match="the version stays"):
        cc.PostgresRepository(postgres_url(), schema=schema)
    assert postgres_layout(schema) == ("1", {"products", "blobs", "catalog_meta"})


@pytest.mark.parametrize("how", ["create_schema=False", "a read-only role"])
def test_a_postgres_catalog_of_schema_1_this_role_may_not_migrate_is_read_as_it_is(
    postgres_schema: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its products work as ever, it holds no try-on record, and a try-on write says what to
    do; once an administrator runs ``schema-sql``, the same handle stores the try-on flow."""
    schema = postgres_catalog(postgres_schema)
    url = postgres_url()
    if how == "create_schema=False":
        repository = cc.PostgresRepository(url, schema=schema, create_schema=False)
    else:
        # Every transaction read-only, as on a standby: the DDL fails (ReadOnlySqlTransaction).
        separator = "&" if "?" in url else "?"
        read_only = f"{url}{separator}options=-c%20default_transaction_read_only%3Don"
        with caplog.at_level(logging.WARNING, "catalog_core.postgres"):
            repository = cc.PostgresRepository(read_only, schema=schema)
        assert "may not migrate" in caplog.text
    try:
        text = repository.get("acme", "text")
        assert text is not None
        assert text.title == "nul \x00 and \u00e9\u2603"
        assert repository.get_person_image("acme", "img_1") is None
        assert repository.get_credits("acme") is None
        assert repository.erase_customer("acme", "c") == 0
        keys = TryOnKeys(credits=True)
        write = TryOnWrite(credits=Credits("acme", 1))
        with pytest.raises(RuntimeError, match="schema-sql"):
            repository.write_tryon("acme", keys, lambda _: write)
        assert postgres_layout(schema) == ("1", {"products", "blobs", "catalog_meta"})

        with psycopg.connect(url) as admin, admin.transaction():
            admin.execute(cc.PostgresRepository.schema_sql(schema).encode())
        assert postgres_layout(schema)[0] == str(POSTGRES_VERSION)
        assert repository.get_credits("acme") is None
        if how == "create_schema=False":
            assert repository.write_tryon("acme", keys, lambda _: write) == write
            assert repository.get_credits("acme") == Credits("acme", 1)
    finally:
        repository.close()


def test_schema_sql_migrates_schema_1_and_leaves_a_later_version_alone(
    postgres_schema: str,
) -> None:
    """What an administrator runs to migrate by hand: it raises only an earlier version."""
    schema = postgres_catalog(postgres_schema)
    with psycopg.connect(postgres_url()) as conn, conn.transaction():
        conn.execute(cc.PostgresRepository.schema_sql(schema).encode())
    layout = (str(POSTGRES_VERSION), {"products", "blobs", "catalog_meta", *TRY_ON_TABLES})
    assert postgres_layout(schema) == layout
    later = str(POSTGRES_VERSION + 1)
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(
            f"UPDATE {schema}.catalog_meta SET value = '{later}' WHERE key = 'schema_version'"
        )
        conn.execute(cc.PostgresRepository.schema_sql(schema).encode())
    assert postgres_layout(schema)[0] == later


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_handles_opening_a_catalog_of_schema_1_at_once_migrate_it_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Six handles opening the same catalog of schema 1 together all open it, migrated once."""
    if backend == "sqlite":
        path = sqlite_catalog(tmp_path / "before.db")

        def open_one() -> cc.Repository:
            return cc.SQLiteRepository(path)

    else:
        schema = postgres_catalog(request.getfixturevalue("postgres_schema"))

        def open_one() -> cc.Repository:
            return cc.PostgresRepository(postgres_url(), schema=schema, max_size=2)

    start = threading.Barrier(6, timeout=30)

    def opened(_: int) -> None:
        start.wait()
        open_one().close()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(opened, range(6)))
    if backend == "sqlite":
        assert sqlite_layout(path) == ("2", {"products", "blobs", "catalog_meta", *TRY_ON_TABLES})
    else:
        tables = {"products", "blobs", "catalog_meta", *TRY_ON_TABLES}
        assert postgres_layout(schema) == (str(POSTGRES_VERSION), tables)
