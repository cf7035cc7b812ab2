"""``Catalog.list_json``: the server's listing body, written from rows, is the page's own bytes.

On a backend that lists rows (every shipped one) the body is written without a ``Product``; on
one that lists products only, from the page. Either way it must be ``page_to_wire_json`` of
``Catalog.list``'s page, its cursor must walk on as the page's does, and a bad argument must be
refused alike (R24, R31).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core.model import from_epoch_ms
from catalog_core.testing import strategies as cst
from catalog_core.wire.encode import page_to_wire_json
from tests.conftest import dispose_repository, make_repository

_FOUND = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: 2000-01-01 to 2100-01-01 in epoch milliseconds: where the generated products' times fall.
_NOW_MS = st.integers(946_684_800_000, 4_102_444_800_000)
_PRODUCTS = cst.products(account=st.just("x"))
#: Prefixes that are not valid ids (R2), or name no product.
_ODD_PREFIXES = st.sampled_from(["", "\x00", "_anon_", "zz"]) | st.text(max_size=2)


class ProductsOnly:
    """A backend that lists products only: everything but ``list_live_rows`` of another one."""

    def __init__(self, inner: cc.Repository) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        if name == "list_live_rows":
            raise AttributeError(name)
        return getattr(self._inner, name)


@pytest.fixture(params=["memory", "sqlite", "postgres", "products-only"])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[cc.Repository]:
    kind: str = request.param
    inner = make_repository("memory" if kind == "products-only" else kind, tmp_path)
    yield ProductsOnly(inner) if kind == "products-only" else inner  # type: ignore[misc]
    dispose_repository(inner)


def _store(repository: cc.Repository, products: Sequence[cc.Product]) -> None:
    for product in products:
        blobs = tuple(
            cc.Blob(sha256=image.blob_sha256, data=b"image bytes", mime_type="image/png")
            for image in product.images
            if image.blob_sha256 is not None
        )
        repository.write(
            product.account, product.external_id, lambda _, p=product, b=blobs: cc.Write(p, b)
        )


def _outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """What a listing call gives: its result, or the code and details of its refusal."""
    try:
        return call(*args, **kwargs)
    except cc.CatalogError as exc:
        return exc.code, exc.details


@_FOUND
@given(count=st.integers(0, 12), data=st.data(), limit=st.integers(1, 5))
def test_r24_r31_list_json_is_the_bytes_of_the_page_and_walks_on_as_list_does(
    repository: cc.Repository, count: int, data: st.DataObject, limit: int
) -> None:
    """R24, R31: at a time when all, some or none of the products are live, with and without
    a prefix, each page's body is the page's bytes and its cursor the page's."""
    products = data.draw(st.lists(_PRODUCTS, min_size=count, max_size=count), label="products")
    account = f"a{uuid.uuid4().hex[:12]}"  # each example its own tenant of the one store
    unique = {p.external_id: attrs.evolve(p, account=account) for p in products}
    _store(repository, list(unique.values()))
    _store(repository, [attrs.evolve(p, account=account + "-other") for p in products[:3]])
    first = min((p.created_at for p in products), default=from_epoch_ms(0))
    now = data.draw(st.just(first) | _NOW_MS.map(from_epoch_ms), label="now")
    heads = sorted({p.external_id[:n] for p in products for n in (1, 2)})
    prefixes = st.sampled_from(heads) if heads else st.nothing()
    prefix = data.draw(st.none() | prefixes | _ODD_PREFIXES, label="prefix")
    catalog = cc.Catalog(repository, clock=lambda: now)
    cursor = None
    while True:
        body = _outcome(catalog.list_json, account, limit, cursor, prefix=prefix)
        page = _outcome(catalog.list, account, limit, cursor, prefix=prefix)
        if isinstance(page, tuple):  # refused: alike, with the same details
            assert body == page
            return
        assert isinstance(body, bytes)
        assert body == page_to_wire_json(page)
        cursor = json.loads(body)["nextCursor"]
        assert cursor == page.next_cursor
        if cursor is None:
            return


def test_r24_list_json_refuses_a_bad_limit_and_cursor_as_list_does(
    repository: cc.Repository,
) -> None:
    catalog = cc.Catalog(repository)
    for limit, cursor in [(0, None), (201, None), (True, None), (5, "not-a-cursor")]:
        body = _outcome(catalog.list_json, "acme", limit, cursor)
        assert body == _outcome(catalog.list, "acme", limit, cursor)
        assert body[0] == "VALIDATION_FAILED"


def test_r24_an_empty_catalogs_body_is_an_empty_page(repository: cc.Repository) -> None:
    body = cc.Catalog(repository).list_json("acme")
    assert body == b'{"items":[],"nextCursor":null,"hasMore":false,"count":0}'


class _Drafts(cc.SQLiteRepository):
    """A backend that lists products its own way: its drafts are never listed."""

    def list_live(self, account: str, *, after: str | None, limit: int, now: Any) -> Any:
        listed = super().list_live(account, after=after, limit=limit, now=now)
        return [p for p in listed if p.title != "draft"]


def test_r24_a_subclass_that_lists_products_its_own_way_is_listed_its_way(
    tmp_path: Path,
) -> None:
    """R24: rows are read only where the class that lists products lists rows too."""
    repository = _Drafts(tmp_path / "c.db")
    catalog = cc.Catalog(repository)
    image = {"source": {"url": "https://cdn.example/a.jpg"}}
    catalog.upsert("acme", {"externalId": "a", "title": "draft", "images": [image]})
    catalog.upsert("acme", {"externalId": "b", "images": [image]})
    assert [p["externalId"] for p in json.loads(catalog.list_json("acme"))["items"]] == ["b"]
    assert catalog.list_json("acme") == page_to_wire_json(catalog.list("acme"))
    repository.close()


def test_r31_times_a_store_holds_as_reals_are_written_as_their_datetimes_are(
    tmp_path: Path,
) -> None:
    """R31: an SQLite catalog written by other means may hold a time as a REAL (with a
    fraction of a millisecond): the page from rows is still the page of products."""
    import sqlite3

    repository = cc.SQLiteRepository(tmp_path / "c.db")
    catalog = cc.Catalog(repository)
    image = {"source": {"url": "https://cdn.example/a.jpg"}}
    catalog.upsert("acme", {"externalId": "a", "images": [image], "validForDays": 30})
    catalog.upsert("acme", {"externalId": "b", "images": [image]})
    conn = sqlite3.connect(tmp_path / "c.db")
    with conn:
        conn.execute(
            "UPDATE products SET created_at = created_at + 0.5, updated_at = updated_at + 0.75,"
            " expires_at = expires_at + 0.25, last_used_at = updated_at + 1.5"
        )
    conn.close()
    assert catalog.list_json("acme") == page_to_wire_json(catalog.list("acme"))
    repository.close()
