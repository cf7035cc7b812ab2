"""PostgreSQL catalogs of schema 2 (before products said if they name an upload) open and purge.

Schema 3 adds one column to products, ``uploads``, which every write sets (whether the
product's images name an upload), and an index on the expired products whose column is not
false: the purge deletes the others without sending anything back (R21). A catalog of schema 2
opened where it may be written is migrated in place without rewriting a row: the products it
holds have no value (``NULL``), and the purge tests their documents as it deletes them, as
schema 2 did. One that may not be written purges as schema 2 did, until an administrator runs
``schema-sql``; the same handle then purges by the column.

A catalog of schema 2 is made the way the schema 2 code made it: the current DDL less the
column and its index, with its ``schema_version`` at 2 (the rows are the same but the column).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

import catalog_core as cc
from catalog_core.repository._postgres_schema import SCHEMA_VERSION
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG, FakeClock
from tests.repository.distribution import Recorded, recording_pool

URL_IMAGE = [{"source": {"url": "https://cdn.example/a.jpg"}}]
SHARED = JPEG + b"shared"
OWN = JPEG + b"own"


def _upload(key: str) -> list[dict[str, object]]:
    return [{"source": {"fileKey": key}}]


@pytest.fixture
def schema() -> Iterator[str]:
    name = fresh_schema()
    yield name
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def schema_2_catalog(schema: str, clock: FakeClock, url: str | None = None) -> None:
    """Write products of two accounts, then take the catalog back to schema 2.

    Expiring tomorrow: ``own`` (an upload no other product names), ``shared`` (an upload
    ``kept`` names too) and ``plain`` (an image by URL), in each account; ``kept`` never expires.
    ``url``: the database (the test server's by default), where ``schema`` may already hold a
    catalog.
    """
    url = url or postgres_url()
    repository = cc.PostgresRepository(url, schema=schema)
    try:
        catalog = cc.Catalog(repository, clock=clock)
        for account in ("acme", "beta"):
            files = {"s": cc.Upload(SHARED), "o": cc.Upload(OWN)}
            day = {"validForDays": 1}
            catalog.upsert(account, {"externalId": "own", "images": _upload("o"), **day}, files)
            catalog.upsert(account, {"externalId": "shared", "images": _upload("s"), **day}, files)
            catalog.upsert(account, {"externalId": "plain", "images": URL_IMAGE, **day})
            catalog.upsert(account, {"externalId": "kept", "images": _upload("s")}, files)
    finally:
        repository.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP INDEX {schema}.products_purge_uploads")
        conn.execute(f"ALTER TABLE {schema}.products DROP COLUMN uploads")
        conn.execute(f"UPDATE {schema}.catalog_meta SET value = '2' WHERE key = 'schema_version'")


def _layout(schema: str) -> tuple[str, dict[tuple[str, str], bool] | None]:
    """The schema version, and each product's ``uploads`` (``None``: no such column)."""
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        (version,) = conn.execute(
            f"SELECT value FROM {schema}.catalog_meta WHERE key = 'schema_version'"
        ).fetchone() or ("",)
        column = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'products' AND column_name = 'uploads'",
            (schema,),
        ).fetchone()
        if column is None:
            return version, None
        rows = conn.execute(f"SELECT account, external_id, uploads FROM {schema}.products")
        return version, {(a, e): u for a, e, u in rows.fetchall()}


def check_purge(
    repository: cc.PostgresRepository, clock: FakeClock, url: str | None = None
) -> None:
    """The purge two days on: the expired products go, and the blob only they named."""
    counts = repository.purge(clock() + timedelta(days=2))
    assert (counts.products, counts.person_images, counts.generations) == (6, 0, 0)
    for account in ("acme", "beta"):
        live = repository.list_live(account, after=None, limit=10, now=clock())
        assert [p.external_id for p in live] == ["kept"]
        kept = repository.get(account, "kept")
        assert kept is not None
        sha = kept.images[0].blob_sha256
        assert sha is not None
        shared = repository.get_blob(account, sha)
        assert shared is not None
        assert shared.data == SHARED
    with psycopg.connect(url or postgres_url(), autocommit=True) as conn:
        blobs = conn.execute(
            f"SELECT account, refs, data FROM {repository._quoted}.blobs ORDER BY account"
        ).fetchall()
    assert blobs == [("acme", 1, SHARED), ("beta", 1, SHARED)]


def test_r21_a_catalog_of_schema_2_is_migrated_and_purges_products_with_uploads(
    schema: str,
) -> None:
    """Opened writable, it is of schema 3: each stored product says whether it names an upload."""
    clock = FakeClock()
    schema_2_catalog(schema, clock)
    assert _layout(schema) == ("2", None)
    recorded = Recorded()
    pool = recording_pool(postgres_url(), recorded, 2)
    repository = cc.PostgresRepository(schema=schema, pool=pool)
    try:
        version, uploads = _layout(schema)
        assert version == str(SCHEMA_VERSION)
        assert uploads == {
            (account, name): None
            for account in ("acme", "beta")
            for name in ("own", "shared", "plain", "kept")
        }
        check_purge(repository, clock)
        deletes = [s for s in recorded.statements if s.startswith("DELETE FROM")]
        assert any(s.endswith("AND NOT uploads") for s in deletes), deletes
        assert any("AND uploads IS NOT FALSE RETURNING" in s for s in deletes), deletes

        # Every write says it: an update of a product written before, and a new one.
        catalog = cc.Catalog(repository, clock=clock)
        catalog.upsert("acme", {"externalId": "kept", "images": URL_IMAGE})
        catalog.upsert("acme", {"externalId": "new", "images": _upload("o")}, {"o": cc.Upload(OWN)})
        _, uploads = _layout(schema)
        assert uploads == {("acme", "kept"): False, ("acme", "new"): True, ("beta", "kept"): None}
    finally:
        repository.close()
        pool.close()


def test_r21_a_catalog_of_schema_2_this_role_may_not_migrate_purges_as_before(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Read as it is: the purge tests each document as it deletes it, with the same outcome;
    once an administrator runs ``schema-sql``, the same handle purges by the stored column."""
    clock = FakeClock()
    schema_2_catalog(schema, clock)
    recorded = Recorded()
    pool = recording_pool(postgres_url(), recorded, 2)
    with caplog.at_level(logging.WARNING, "catalog_core.postgres"):
        repository = cc.PostgresRepository(schema=schema, pool=pool, create_schema=False)
    try:
        assert "holds catalog schema 2 and this role may not migrate it" in caplog.text
        check_purge(repository, clock)
        assert _layout(schema) == ("2", None)
        deletes = [s for s in recorded.statements if s.startswith("DELETE FROM")]
        assert any("strpos" in s for s in deletes), deletes
        assert not any("uploads" in s for s in deletes), deletes

        with psycopg.connect(postgres_url()) as admin, admin.transaction():
            admin.execute(cc.PostgresRepository.schema_sql(schema).encode())
        catalog = cc.Catalog(repository, clock=clock)
        files = {"o": cc.Upload(OWN)}
        catalog.upsert(
            "acme", {"externalId": "own", "images": _upload("o"), "validForDays": 1}, files
        )
        before = set(recorded.statements)
        counts = repository.purge(clock() + timedelta(days=2))
        assert counts.products == 1
        deletes = [s for s in recorded.statements if s not in before and s.startswith("DELETE")]
        assert any("AND uploads IS NOT FALSE RETURNING" in s for s in deletes), deletes
        assert any(s.endswith("AND NOT uploads") for s in deletes), deletes
    finally:
        repository.close()
        pool.close()


def test_r21_r15_a_handle_opened_before_the_migration_writes_the_column_after_it(
    schema: str,
) -> None:
    """A handle that opened schema 2 and outlives a migration made elsewhere does not leave a
    product's ``uploads`` false where its images now name an upload: its next write of products
    notices the migration (in its own transaction) and writes the column, so the purge drops the
    upload's reference and the blob goes with the product."""
    clock = FakeClock()
    schema_2_catalog(schema, clock)
    old = cc.PostgresRepository(postgres_url(), schema=schema, create_schema=False)
    try:
        with psycopg.connect(postgres_url()) as admin, admin.transaction():
            admin.execute(cc.PostgresRepository.schema_sql(schema).encode())
        new = cc.PostgresRepository(postgres_url(), schema=schema, create_schema=False)
        try:
            day = {"validForDays": 1}
            cc.Catalog(new, clock=clock).upsert(
                "acme", {"externalId": "p", "images": URL_IMAGE, **day}
            )
        finally:
            new.close()
        assert _layout(schema)[1] is not None
        assert (_layout(schema)[1] or {})[("acme", "p")] is False

        files = {"late": cc.Upload(JPEG + b"late")}
        cc.Catalog(old, clock=clock).upsert(
            "acme", {"externalId": "p", "images": _upload("late")}, files
        )
        assert (_layout(schema)[1] or {})[("acme", "p")] is True
        counts = old.purge(clock() + timedelta(days=2))
        assert counts.products == 7  # the six of schema_2_catalog, and p
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            late = conn.execute(
                f"SELECT count(*) FROM {schema}.blobs WHERE data = %s", (JPEG + b"late",)
            ).fetchone()
        assert late == (0,)
    finally:
        old.close()
