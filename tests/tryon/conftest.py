"""A ``tryon`` on every backend (the ``catalog`` fixture's), with the fake clock and 10 credits."""

from __future__ import annotations

from typing import Any

import pytest

import catalog_core as cc
from catalog_core.tryon import LocalEngine, TryOn
from tests.helpers import FakeClock

#: The base of every product URL the tests use.
CDN = "https://cdn.example"


@pytest.fixture
def tryon(catalog: cc.Catalog) -> TryOn:
    return TryOn(catalog, engine=LocalEngine(generation_seconds=2), initial_credits=10)


def item(external_id: str | None = "sku-1", **fields: Any) -> dict[str, Any]:
    """A product item: inline with one image by default; ``reference=True`` for ``{externalId}``."""
    if fields.pop("reference", False):
        return {"externalId": external_id}
    body: dict[str, Any] = {"images": [{"source": {"url": f"{CDN}/{external_id}.jpg"}}]}
    if external_id is not None:
        body["externalId"] = external_id
    body.update(fields)
    return body


def body(product: dict[str, Any] | None = None, **person: Any) -> dict[str, Any]:
    """A try-on body of one item and a person source (``id=``, ``url=`` or ``fileKey=``)."""
    source = person or {"url": f"{CDN}/person.jpg"}
    return {"products": [product or item()], "person": {"image": {"source": source}}}


def advance(clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds=seconds)
