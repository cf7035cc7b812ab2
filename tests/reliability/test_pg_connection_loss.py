"""PostgreSQL connections lost mid-work: retried when that is safe, never half-written (R26, R27).

Another session ends the repository's connections (``pg_terminate_backend``) while it works.
A read, and a write whose connection dies before its commit, are run again on a fresh connection
from a checked pool; only a connection lost during the commit itself is reported, as
``psycopg.OperationalError``, since that write may or may not have committed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import catalog_core as cc
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG, run_size

IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}
WRITES = run_size("LOSS_WRITES", 300, 3000)


@pytest.fixture
def named() -> Iterator[tuple[cc.Catalog, str]]:
    """A catalog whose connections carry an application name of their own, and that name."""
    name = f"cc_loss_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in postgres_url() else "?"
    repository = cc.PostgresRepository(
        f"{postgres_url()}{separator}application_name={name}",
        schema=fresh_schema(),
        min_size=4,
        max_size=8,
    )
    yield cc.Catalog(repository), name
    repository.drop_schema()
    repository.close()


def end_sessions(name: str) -> int:
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        ).fetchall()
    return len(rows)


def test_r26_after_every_connection_is_ended_the_next_reads_and_writes_just_work(
    named: tuple[cc.Catalog, str],
) -> None:
    catalog, name = named
    product = catalog.upsert("acme", {"externalId": "p", "images": [IMAGE]}).product
    for _ in range(3):
        assert end_sessions(name) >= 1
        assert catalog.get("acme", "p").external_id == "p"
        assert end_sessions(name) >= 1
        assert [p.external_id for p in catalog.list("acme").items] == ["p"]
        assert end_sessions(name) >= 1
        product = catalog.upsert("acme", {"externalId": "p", "title": "again"}).product
        assert end_sessions(name) >= 1
        results = list(catalog.upsert_many("acme", [b'{"externalId": "p", "title": "bulk"}']))
        assert isinstance(results[0], cc.UpsertResult)
        assert end_sessions(name) >= 1
        catalog.purge_expired()
    assert catalog.get("acme", "p").version == product.version + 1 == 7


def test_r26_r27_writes_while_sessions_are_ended_again_and_again_lose_nothing(
    named: tuple[cc.Catalog, str],
) -> None:
    """Every write is applied once, or reported; a reported one was applied at most once."""
    catalog, name = named
    catalog.upsert("acme", {"externalId": "hot", "metadata": {"n": 0}, "images": [IMAGE]})
    stop = threading.Event()
    kills = 0

    def killer() -> None:
        nonlocal kills
        while not stop.is_set():
            kills += end_sessions(name)
            time.sleep(0.02)

    thread = threading.Thread(target=killer)
    thread.start()
    applied = reported = 0
    try:
        for n in range(1, WRITES + 1):
            files = {"f": cc.Upload(JPEG + n.to_bytes(4, "big"))} if n % 3 == 0 else None
            images = [{"source": {"fileKey": "f"}}] if files else [IMAGE]
            try:
                catalog.upsert(
                    "acme",
                    {"externalId": "hot", "metadata": {"n": n}, "images": images},
                    files=files,
                )
            except psycopg.OperationalError:
                reported += 1  # lost during the commit: it may or may not have committed
            else:
                applied += 1
    finally:
        stop.set()
        thread.join()
    assert kills > 10
    hot = catalog.get("acme", "hot")
    assert applied <= hot.version - 1 <= applied + reported
    assert reported <= kills
    sha = hot.images[0].blob_sha256
    if sha is not None:  # the product and its blob agree
        blob = catalog.repository.get_blob("acme", sha)
        assert blob is not None
        assert blob.data == JPEG + hot.metadata["n"].to_bytes(4, "big")  # type: ignore[index]
    assert isinstance(catalog.repository, cc.PostgresRepository)
    with psycopg.connect(postgres_url()) as conn:
        refs = conn.execute(f'SELECT sum(refs) FROM "{catalog.repository.schema}".blobs').fetchone()
    assert (refs[0] or 0) == (1 if sha else 0)
    # The figures of docs/reliability.md come from this line of the long form (pytest -s).
    print(f"\nconnection loss: {kills} sessions ended, {applied} writes applied, ", end="")
    print(f"{reported} reported, final version {hot.version}")
