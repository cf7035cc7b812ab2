"""A full disk on SQLite: the write fails with the driver's error, nothing is corrupted or half
written, and the next write after space returns succeeds (R26).

The database is capped with ``PRAGMA max_page_count``, which makes SQLite report ``SQLITE_FULL``
("database or disk is full") exactly as a full file system does.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

import catalog_core as cc
from tests.helpers import JPEG

IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}


def capped(path: Path) -> tuple[cc.Catalog, sqlite_utils.Database]:
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None, check_same_thread=False))
    return cc.Catalog(cc.SQLiteRepository(db)), db


def fill_up(db: sqlite_utils.Database) -> None:
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 2}")


def big(external_id: str) -> dict[str, object]:
    return {"externalId": external_id, "description": "d" * 10_000, "images": [IMAGE]}


def write_until_full(catalog: cc.Catalog) -> None:
    for n in range(1000):
        catalog.upsert(
            "acme",
            {**big(f"new{n}"), "images": [{"source": {"fileKey": "f"}}]},
            files={"f": cc.Upload(JPEG + bytes([n % 256]) * 50_000)},
        )


def test_r26_a_full_disk_fails_the_write_whole_and_the_next_one_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    catalog, db = capped(path)
    kept = [catalog.upsert("acme", big(f"kept{n}")).product for n in range(5)]
    fill_up(db)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        write_until_full(catalog)
    # An update that needs no new page still goes through on the full disk.
    assert catalog.upsert("acme", {"externalId": "kept0", "title": "updated"}).product.version == 2
    full = [p.external_id for p in catalog.list("acme", limit=200).items]
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    for product in kept[1:]:  # the products written before are untouched
        assert catalog.get("acme", product.external_id) == product
    # Every product present is whole: its blob is there and every reference is counted.
    for product in catalog.list("acme", limit=200).items:
        for image in product.images:
            if image.blob_sha256:
                assert catalog.repository.get_blob("acme", image.blob_sha256) is not None
    refs = dict(db.execute("SELECT sha256, refs FROM blobs").fetchall())
    named = [i.blob_sha256 for p in catalog.list("acme", limit=200).items for i in p.images]
    assert refs == {sha: 1 for sha in named if sha}  # and no blob of the failed write is left
    # Space returns: the next write succeeds, and so does a bulk import.
    db.execute("PRAGMA max_page_count = 1073741823")
    assert catalog.upsert("acme", big("after")).created
    results = list(catalog.upsert_many("acme", [big(f"bulk{n}") for n in range(50)]))
    assert all(isinstance(r, cc.UpsertResult) for r in results)
    listed = [p.external_id for p in catalog.list("acme", limit=200).items]
    assert set(full) | {"after"} | {f"bulk{n}" for n in range(50)} == set(listed)
    db.conn.close()
    reopened = cc.SQLiteRepository(path)
    assert reopened.get("acme", "after") is not None
    reopened.close()


def test_r26_a_bulk_batch_that_meets_a_full_disk_is_rolled_back_whole(tmp_path: Path) -> None:
    catalog, db = capped(tmp_path / "catalog.db")
    catalog.upsert("acme", big("first"))
    fill_up(db)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        list(catalog.upsert_many("acme", [big(f"bulk{n}") for n in range(200)]))
    assert [p.external_id for p in catalog.list("acme").items] == ["first"]
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.execute("PRAGMA max_page_count = 1073741823")
    assert len(list(catalog.upsert_many("acme", [big(f"bulk{n}") for n in range(200)]))) == 200
    assert len(catalog.list("acme", limit=200).items) == 200
    db.conn.close()
