"""Listing cursors (R24) tell nothing about their account without the store that made them.

A cursor's tag is keyed with a secret of the catalog's storage, made at random when the schema
is created and kept with it: every handle and process on the same storage shares it, and a
cursor seen in a URL cannot be checked against guessed accounts offline. Before, the key was a
constant of the source, and the owner's account (the API key, on the server) was found among
200,001 guesses in 0.35 s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import catalog_core as cc
from tests.conftest import BACKENDS, dispose_repository, fresh_schema, make_repository, postgres_url

IMAGES = [{"source": {"url": "https://cdn.example/a.jpg"}}]
# The constant key the tag had before, and what the source still names.
OLD_KEY = b"catalog_core listing cursor v1"


def fill(catalog: cc.Catalog, account: str = "gk_live_owner") -> None:
    for external_id in ("a", "b", "c"):
        catalog.upsert(account, {"externalId": external_id, "images": IMAGES})


def first_cursor(repository: cc.Repository, account: str = "gk_live_owner") -> str:
    catalog = cc.Catalog(repository)
    fill(catalog, account)
    cursor = catalog.list(account, limit=1).next_cursor
    assert cursor is not None
    return cursor


@pytest.fixture
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[cc.Repository]]:
    stores = [make_repository(request.param, tmp_path / str(n)) for n in range(2)]
    yield stores
    for store in stores:
        dispose_repository(store)


@pytest.fixture(autouse=True)
def _folders(tmp_path: Path) -> None:
    for n in range(2):
        (tmp_path / str(n)).mkdir()


@pytest.mark.parametrize("two_stores", BACKENDS, indirect=True)
def test_r24_two_stores_tag_the_same_account_and_id_differently(
    two_stores: list[cc.Repository],
) -> None:
    """R24: the tag depends on the store's secret, not only on the source's constants."""
    cursors = [first_cursor(store) for store in two_stores]
    assert cursors[0].split(".")[0] == cursors[1].split(".")[0]  # the same last id, "a"
    assert cursors[0] != cursors[1]
    # So a cursor of one store is refused by the other, for the very account it was made for.
    with pytest.raises(cc.ValidationFailed) as refused:
        cc.Catalog(two_stores[1]).list("gk_live_owner", cursor=cursors[0])
    assert refused.value.details[0].path == "cursor"


@pytest.mark.parametrize("two_stores", BACKENDS, indirect=True)
def test_r24_an_offline_guess_of_the_account_cannot_be_checked_against_a_cursor(
    two_stores: list[cc.Repository],
) -> None:
    """R24: the issue's attack, a tag computed from the source's constants for each guessed
    account, no longer finds the owner: not even the true account matches."""
    owner = "gk_live_owner"
    cursor = first_cursor(two_stores[0], owner)
    body, tag = cursor.split(".")
    last_id = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    given = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4))
    guesses = [f"gk_live_{n}" for n in range(20_000)] + [owner]
    found = [
        guess
        for guess in guesses
        if hmac.compare_digest(
            hashlib.blake2b(
                guess.encode() + b"\x00" + last_id, key=OLD_KEY, digest_size=len(given)
            ).digest(),
            given,
        )
    ]
    assert found == []


def test_r24_an_old_cursor_of_the_constant_key_is_refused(tmp_path: Path) -> None:
    """R24: cursors made before are refused as any foreign cursor is (VALIDATION_FAILED)."""
    old = (
        "YQ."
        + base64.urlsafe_b64encode(
            hashlib.blake2b(b"acme\x00a", key=OLD_KEY, digest_size=12).digest()
        )
        .rstrip(b"=")
        .decode()
    )
    catalog = cc.Catalog(cc.SQLiteRepository(tmp_path / "c.db"))
    fill(catalog, "acme")
    with pytest.raises(cc.ValidationFailed) as refused:
        catalog.list("acme", cursor=old)
    assert refused.value.details[0].path == "cursor"
    catalog.repository.close()


LIST_AFTER = (
    "import sys, catalog_core as cc\n"
    "repository = cc.open_repository(sys.argv[1])\n"
    "page = cc.Catalog(repository).list('gk_live_owner', limit=1, cursor=sys.argv[2])\n"
    "print(','.join(p.external_id for p in page.items))\n"
    "repository.close()\n"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_r24_a_cursor_is_read_by_another_process_on_the_same_store_and_after_reopening(
    tmp_path: Path, backend: str
) -> None:
    """R24: the secret is stored with the catalog, the same for every process sharing it."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = f"{postgres_url()}?schema={fresh_schema()}"
    repository = cc.open_repository(url)
    try:
        cursor = first_cursor(repository)
    finally:
        repository.close()
    ran = subprocess.run(
        [sys.executable, "-c", LIST_AFTER, url, cursor], capture_output=True, text=True, timeout=60
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "b\n", "")
    reopened = cc.open_repository(url)
    try:
        assert cc.Catalog(reopened).list("gk_live_owner", cursor=cursor).items[0].external_id == "b"
    finally:
        if isinstance(reopened, cc.PostgresRepository):
            reopened.drop_schema()
        reopened.close()


def test_r24_a_catalog_made_before_cursor_secrets_gets_one_when_opened(tmp_path: Path) -> None:
    """R24: a catalog of an earlier version (no secret row) gets one, shared from then on."""
    path = tmp_path / "old.db"
    cc.SQLiteRepository(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM catalog_meta WHERE key = 'cursor_secret'")
    conn.close()
    first, second = cc.SQLiteRepository(path), cc.SQLiteRepository(path)
    try:
        cursor = first_cursor(first)
        assert cc.Catalog(second).list("gk_live_owner", cursor=cursor).items[0].external_id == "b"
        with sqlite3.connect(path) as conn:
            keys = [k for (k,) in conn.execute("SELECT key FROM catalog_meta ORDER BY key")]
        conn.close()
        assert keys == ["cursor_secret", "schema_version"]
    finally:
        first.close()
        second.close()


def test_r24_a_locked_down_postgresql_schema_has_its_secret_from_schema_sql() -> None:
    """R24: the administrator's DDL makes the secret; the application needs no DDL for it."""
    url, schema = postgres_url(), fresh_schema()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(cc.PostgresRepository.schema_sql(schema).encode())
        (secret,) = conn.execute(
            f"SELECT value FROM {schema}.catalog_meta WHERE key = 'cursor_secret'"
        ).fetchone() or (None,)
    handles = [cc.PostgresRepository(url, schema=schema, create_schema=False) for _ in range(2)]
    try:
        assert secret is not None
        assert len(secret) >= 32
        cursor = first_cursor(handles[0])
        assert (
            cc.Catalog(handles[1]).list("gk_live_owner", cursor=cursor).items[0].external_id == "b"
        )
    finally:
        handles[0].drop_schema()
        for handle in handles:
            handle.close()


class WithoutSecret:
    """A third-party repository of the six protocol methods, without ``cursor_secret``."""

    def __init__(self, inner: cc.MemoryRepository) -> None:
        self.get = inner.get
        self.write = inner.write
        self.list_live = inner.list_live
        self.purge_expired = inner.purge_expired
        self.get_blob = inner.get_blob
        self.close = inner.close


def test_r24_without_cursor_secret_a_catalog_tags_cursors_with_a_secret_of_its_own() -> None:
    """R24: the documented fallback: cursors work with the Catalog that made them, only."""
    inner = cc.MemoryRepository()
    catalog = cc.Catalog(WithoutSecret(inner))  # type: ignore[arg-type]
    cursor = first_cursor(WithoutSecret(inner))  # type: ignore[arg-type]
    fill(catalog)
    own = catalog.list("gk_live_owner", limit=1).next_cursor
    assert catalog.list("gk_live_owner", cursor=own).items[0].external_id == "b"
    with pytest.raises(cc.ValidationFailed):
        catalog.list("gk_live_owner", cursor=cursor)  # another Catalog's cursor


def test_r24_a_postgresql_role_that_may_not_add_the_secret_still_lists_with_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """R24: a schema of an earlier version (no secret) opened by a role that may only read
    ``catalog_meta``: listing works, with cursors of this handle, and a warning says why."""
    url, schema, role = postgres_url(), fresh_schema(), f"cc_reader_{fresh_schema()[8:]}"
    admin = cc.PostgresRepository(url, schema=schema)
    fill(cc.Catalog(admin))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {schema}.catalog_meta WHERE key = 'cursor_secret'")
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON {schema}.catalog_meta TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.products TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.blobs TO {role}")
    try:
        reader = cc.PostgresRepository(
            psycopg.conninfo.make_conninfo(url, user=role), schema=schema, create_schema=False
        )
        try:
            catalog = cc.Catalog(reader)
            page = catalog.list("gk_live_owner", limit=1)
            assert catalog.list("gk_live_owner", cursor=page.next_cursor).count == 2
        finally:
            reader.close()
        assert "may not add one" in caplog.text
    finally:
        admin.drop_schema()
        admin.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
