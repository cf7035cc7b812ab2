"""Catalogs written before the shared write algorithm open and work on both SQL backends.

``tests/data/catalog_schema1.json`` holds the rows the earlier code wrote (commit 75d393b, through
``Catalog.upsert``): a title and metadata holding NUL, non-ASCII text, an uploaded image, a
product that expires, and a second account. The stored layout did not change, so there is no
migration: the catalog is opened as it is, reads back exactly, takes writes, and the codec writes
each of those products back to the very row it was read from.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

import catalog_core as cc
from catalog_core.repository._rows import PACKED, SPLIT, SqlTable
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG

FIXTURE = json.loads((Path(__file__).parent.parent / "data" / "catalog_schema1.json").read_text())
#: When the fixture was written (its clock).
THEN = datetime(2026, 5, 13, 10, 0, tzinfo=UTC)


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


@pytest.fixture(params=["sqlite", "postgres"])
def before(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[cc.Repository]:
    """A repository opened on a catalog the earlier code wrote."""
    if request.param == "sqlite":
        repository: cc.Repository = cc.SQLiteRepository(sqlite_catalog(tmp_path / "before.db"))
        yield repository
        repository.close()
        return
    schema = fresh_schema()
    postgres = cc.PostgresRepository(postgres_url(), schema=schema)  # the DDL of schema 1
    try:
        for table, stored in FIXTURE["postgres"]["rows"].items():
            names = ", ".join(stored["columns"])
            marks = ", ".join(["%s"] * len(stored["columns"]))
            for row in stored["rows"]:
                postgres._read(
                    lambda conn, row=row, table=table, names=names, marks=marks: conn.execute(
                        f"INSERT INTO {schema}.{table} ({names}) VALUES ({marks})", cells(row)
                    )
                )
        yield postgres
    finally:
        postgres.drop_schema()
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
            PACKED,
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
