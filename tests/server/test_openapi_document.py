"""The OpenAPI document without a server: its cost at import, and its product schemas (R31)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import catalog_core as cc
from catalog_core.server import openapi
from tests.helpers import R31_PRODUCT_KEYS

IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}, "classifications": {"view": "front"}}


def test_importing_the_module_leaves_the_unicode_scan_to_the_first_use_of_the_url_pattern() -> None:
    script = (
        "import catalog_core.server.openapi as o\n"
        "assert o._normalising_to_delimiters.cache_info().currsize == 0\n"
        "pattern = o.URL_PATTERN\n"
        "assert o._normalising_to_delimiters.cache_info().currsize == 1\n"
        "assert o.URL_PATTERN is pattern\n"
        "assert o._normalising_to_delimiters.cache_info().misses == 1\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_the_module_has_no_other_lazy_name() -> None:
    with pytest.raises(AttributeError, match="NO_SUCH_NAME"):
        openapi.NO_SUCH_NAME  # noqa: B018 - the attribute access is the test


def test_r31_the_product_schema_lists_the_keys_to_wire_writes_in_its_order() -> None:
    catalog = cc.Catalog(cc.MemoryRepository())
    product = catalog.upsert("acme", {"externalId": "p", "images": [IMAGE]}).product
    wire = cc.to_wire(product)
    schemas = openapi.openapi_document(cc.Limits())["components"]["schemas"]
    assert list(schemas["Product"]["properties"]) == list(wire) == list(R31_PRODUCT_KEYS)
    assert schemas["Product"]["required"] == list(R31_PRODUCT_KEYS)
    assert list(schemas["Image"]["properties"]) == list(wire["images"][0])
    assert schemas["Image"]["required"] == ["sourceUrl", "order"]  # classifications? (R31)


def test_r10_r33_the_body_schema_takes_its_bounds_from_the_limits() -> None:
    limits = cc.Limits(max_title_length=7, max_images=3, max_external_id_length=9)
    schemas = openapi.openapi_document(limits)["components"]["schemas"]
    body = schemas["UpsertBody"]["properties"]
    assert body["title"]["maxLength"] == 7
    assert body["images"]["maxItems"] == body["imageUrls"]["maxItems"] == 3
    assert schemas["ExternalId"]["maxLength"] == 9
    assert (body["validForDays"]["minimum"], body["validForDays"]["maximum"]) == (1, 365)
    assert schemas["UpsertBody"]["required"] == ["externalId"]
    assert schemas["UpsertBody"]["not"] == {"required": ["images", "imageUrls"]}
