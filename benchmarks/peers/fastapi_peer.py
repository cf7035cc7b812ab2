"""The FastAPI peer of the server cases: the products endpoints as a user would write them instead.

FastAPI with pydantic v2 models (the decode and encode peer's, ``pydantic_peer``: the same rules
for bodies, the same response format), the standard library's ``sqlite3`` with one connection per
worker thread (WAL, ``synchronous=NORMAL``), written as FastAPI's documentation shows: plain
``def`` endpoints (FastAPI runs them in its thread pool, as blocking database code should be),
response models, the API key as a ``Header()``. Run it as FastAPI's documentation does::

    FASTAPI_PEER_DB=peer.db uvicorn benchmarks.peers.fastapi_peer:app

It answers ``GET /tryon/v1/products/{externalId}``, ``GET /tryon/v1/products?limit=&cursor=`` and
``POST /tryon/v1/products`` (JSON) with the bodies ``catalog-core serve`` sends, for the account
named by ``x-api-key``. Its table is its own (:data:`SCHEMA`: the images stored as the JSON of
their response form, the primary key its only index); :func:`create_schema` makes it. Its cursor
is the last id in base64, unsigned.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import FastAPI, Header, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from benchmarks.peers.pydantic_peer import ImageIn, ImageOut, ProductOut, UpsertBody

__all__ = ["SCHEMA", "PageOut", "app", "create_schema", "product_from_row"]

API: Final = "/tryon/v1"
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS products (
    account TEXT NOT NULL, external_id TEXT NOT NULL, title TEXT, description TEXT,
    metadata TEXT, valid_for_days INTEGER, expires_at INTEGER, last_used_at INTEGER,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, images TEXT NOT NULL,
    version INTEGER NOT NULL, PRIMARY KEY (account, external_id)
)
"""
_COLUMNS: Final = (
    "external_id, title, description, metadata, valid_for_days, expires_at, last_used_at, "
    "created_at, updated_at, images, version"
)
_LIVE: Final = "(expires_at IS NULL OR expires_at > ?)"
_GET: Final = f"SELECT {_COLUMNS} FROM products WHERE account = ? AND external_id = ? AND {_LIVE}"
_PAGE: Final = (
    f"SELECT {_COLUMNS} FROM products WHERE account = ? AND external_id > ? AND {_LIVE} "
    "ORDER BY external_id LIMIT ?"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

app = FastAPI(title="catalog peer", openapi_url=None, docs_url=None, redoc_url=None)
_local = threading.local()


class PageOut(BaseModel):
    """A page of products (R24's ``{items, nextCursor, hasMore, count}``)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True)

    items: list[ProductOut]
    next_cursor: str | None
    has_more: bool
    count: int


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the peer's table in ``conn``'s database (WAL, as the peer opens it)."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(SCHEMA)


def _db() -> sqlite3.Connection:
    """Return this thread's connection (sqlite3 connections stay in their thread)."""
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(os.environ["FASTAPI_PEER_DB"], isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 5000")
        _local.conn = conn
    return conn


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def _now() -> datetime:
    """Now, to the millisecond, as the rows keep it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def product_from_row(row: tuple[Any, ...]) -> ProductOut:
    """Return the product of a row of :data:`_COLUMNS`."""
    return ProductOut(
        external_id=row[0],
        title=row[1],
        description=row[2],
        metadata=None if row[3] is None else json.loads(row[3]),
        valid_for_days=row[4],
        expires_at=_moment(row[5]),
        last_used_at=_moment(row[6]),
        created_at=_EPOCH + timedelta(milliseconds=row[7]),
        updated_at=_EPOCH + timedelta(milliseconds=row[8]),
        images=[ImageOut.model_validate(image) for image in json.loads(row[9])],
    )


ApiKey = Annotated[str, Header(min_length=1)]


@app.get(f"{API}/products/{{external_id}}")
def get_product(external_id: str, x_api_key: ApiKey, response: Response) -> ProductOut:
    """Return a live product, with its version as ETag."""
    row = _db().execute(_GET, (x_api_key, external_id, _ms(_now()))).fetchone()
    if row is None:
        raise HTTPException(404, f"No product {external_id!r}.")
    response.headers["ETag"] = f'"{row[10]}"'
    return product_from_row(row)


def _cursor(external_id: str) -> str:
    return base64.urlsafe_b64encode(external_id.encode()).decode()


def _after(cursor: str | None) -> str:
    if cursor is None:
        return ""
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise HTTPException(400, "The cursor is not valid.") from None


@app.get(f"{API}/products")
def list_products(
    x_api_key: ApiKey,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> PageOut:
    """Return a page of live products in id order, and the cursor of the next one."""
    params = (x_api_key, _after(cursor), _ms(_now()), limit + 1)
    rows = _db().execute(_PAGE, params).fetchall()
    items = [product_from_row(row) for row in rows[:limit]]
    more = len(rows) > limit
    return PageOut(
        items=items,
        next_cursor=_cursor(items[-1].external_id) if more else None,
        has_more=more,
        count=len(items),
    )


def _image_out(image: ImageIn, order: int) -> ImageOut:
    source = image.source if "source" in image.model_fields_set else image
    if "file_key" in source.model_fields_set:  # files come in multipart requests, not here
        raise HTTPException(422, "fileKey needs a multipart request with the file.")
    return ImageOut(
        source_url=source.url, order=order, classifications=image.classifications or None
    )


@app.post(f"{API}/products")
def upsert_product(body: UpsertBody, x_api_key: ApiKey, response: Response) -> ProductOut:
    """Create (201) or update (200) a product: the fields sent replace the stored ones."""
    given = body.model_fields_set
    images: list[ImageOut] | None = None
    if "images" in given:
        images = [_image_out(image, n) for n, image in enumerate(body.images)]
    elif "image_urls" in given:
        images = [ImageOut(source_url=url, order=n) for n, url in enumerate(body.image_urls)]
    now = _now()
    db = _db()
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(_GET, (x_api_key, body.external_id, _ms(now))).fetchone()
        old = None if row is None else product_from_row(row)
        merged: dict[str, Any] = {
            name: getattr(body if name in given else old, name, None)
            for name in ("title", "description", "metadata", "valid_for_days")
        }
        images = images if images is not None else (old.images if old else [])
        if not images:
            raise HTTPException(422, "A product needs at least one image.")
        days = merged["valid_for_days"]
        last_used = old.last_used_at if old else None
        start = now if last_used is None else max(now, last_used)
        product = ProductOut(
            external_id=body.external_id,
            **merged,
            expires_at=None if days is None else start + timedelta(days=days),
            last_used_at=last_used,
            created_at=old.created_at if old else now,
            updated_at=now,
            images=images,
        )
        version = 1 if row is None else row[10] + 1
        db.execute(
            "INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                x_api_key,
                product.external_id,
                product.title,
                product.description,
                None if product.metadata is None else json.dumps(product.metadata),
                days,
                None if product.expires_at is None else _ms(product.expires_at),
                None if last_used is None else _ms(last_used),
                _ms(product.created_at),
                _ms(now),
                json.dumps([image.model_dump(by_alias=True) for image in images]),
                version,
            ),
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    response.headers["ETag"] = f'"{version}"'
    if row is None:
        response.status_code = 201
        response.headers["Location"] = f"{API}/products/{product.external_id}"
    return product
