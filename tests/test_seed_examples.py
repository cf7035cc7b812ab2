"""The examples of the public "Upsert Product" page, replayed on every backend.

Each request below is the page's request body verbatim; each expected response is the page's
documented response (timestamps are the test clock's, which starts at the page's own time).
"""

from __future__ import annotations

import json

import pytest

import catalog_core as cc
from tests.helpers import JPEG, FakeClock

JSON_CREATE = b"""{
      "externalId": "shirt-42",
      "title": "Red tee",
      "description": "Soft cotton regular fit",
      "images": [
        { "source": { "url": "https://cdn.example/front.jpg" } },
        { "source": { "url": "https://cdn.example/back.jpg" } }
      ]
    }"""

MULTIPART_DATA = """{
          "externalId": "shirt-42",
          "title": "Red tee",
          "description": "Soft cotton regular fit",
          "images": [
            { "source": { "url": "https://cdn.example/front.jpg" } },
            { "source": { "fileKey": "back" } }
          ]
        }"""

PARTIAL_UPDATE = '{ "externalId": "shirt-42", "title": "Red tee — restocked" }'

OPT_IN_TTL = b"""{
      "externalId": "seasonal-001",
      "title": "Summer collection",
      "description": "...",
      "images": [{ "source": { "url": "https://cdn.example/summer.jpg" } }],
      "validForDays": 90
    }"""


def test_r31_the_json_create_returns_the_documented_product(catalog: cc.Catalog) -> None:
    result = catalog.upsert("acme", JSON_CREATE)

    assert result.created is True
    assert result.warnings == ()
    assert cc.to_wire(result.product) == {
        "externalId": "shirt-42",
        "title": "Red tee",
        "description": "Soft cotton regular fit",
        "metadata": None,
        "validForDays": None,
        "expiresAt": None,
        "lastUsedAt": None,
        "createdAt": "2026-05-13T10:00:00.000Z",
        "updatedAt": "2026-05-13T10:00:00.000Z",
        "images": [
            {"sourceUrl": "https://cdn.example/front.jpg", "order": 0},
            {"sourceUrl": "https://cdn.example/back.jpg", "order": 1},
        ],
    }


def test_r6_the_partial_title_update_keeps_images_description_and_ttl(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    created = catalog.upsert("acme", JSON_CREATE).product
    clock.advance(minutes=5)

    result = catalog.upsert("acme", PARTIAL_UPDATE)

    assert result.created is False
    wire = cc.to_wire(result.product)
    assert wire["title"] == "Red tee — restocked"
    assert wire["description"] == "Soft cotton regular fit"
    assert wire["images"] == cc.to_wire(created)["images"]
    assert wire["validForDays"] is None
    assert wire["expiresAt"] is None
    assert wire["createdAt"] == "2026-05-13T10:00:00.000Z"
    assert wire["updatedAt"] == "2026-05-13T10:05:00.000Z"
    assert result.product.version == 2


def test_r10_the_opt_in_ttl_sets_a_ninety_day_lifetime(catalog: cc.Catalog) -> None:
    result = catalog.upsert("acme", OPT_IN_TTL)

    wire = cc.to_wire(result.product)
    assert wire["validForDays"] == 90
    assert wire["expiresAt"] == "2026-08-11T10:00:00.000Z"
    assert wire["title"] == "Summer collection"
    assert wire["description"] == "..."


def test_r32_the_multipart_create_mixes_a_url_and_uploaded_bytes(
    catalog: cc.Catalog, repo: cc.Repository
) -> None:
    result = catalog.upsert("acme", MULTIPART_DATA, files={"back": cc.Upload(JPEG, "image/jpeg")})

    images = cc.to_wire(result.product)["images"]
    assert images[0] == {"sourceUrl": "https://cdn.example/front.jpg", "order": 0}
    assert images[1]["order"] == 1
    assert images[1]["sourceUrl"].startswith("upload://")
    blob = repo.get_blob("acme", images[1]["sourceUrl"].removeprefix("upload://"))
    assert blob is not None
    assert blob.data == JPEG
    assert blob.mime_type == "image/jpeg"


def test_r3_the_reserved_prefix_gives_the_documented_409_body(catalog: cc.Catalog) -> None:
    payload = {
        "externalId": "_anon_foo",
        "images": [{"source": {"url": "https://cdn.example/a.jpg"}}],
    }

    with pytest.raises(cc.ReservedExternalId) as caught:
        catalog.upsert("acme", payload)

    assert caught.value.to_wire() == {
        "code": "RESERVED_EXTERNAL_ID",
        "message": "externalId '_anon_foo' is reserved — the '_anon_' prefix is for "
        "server-generated IDs.",
        "status": 409,
    }
    assert json.dumps(caught.value.to_wire(), ensure_ascii=False)  # the body serialises as is


def test_r5_the_missing_image_on_create_gives_the_documented_400_body(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ProductImagesRequired) as caught:
        catalog.upsert("acme", PARTIAL_UPDATE)

    assert caught.value.to_wire() == {
        "code": "PRODUCT_IMAGES_REQUIRED",
        "message": "Product 'shirt-42' does not exist yet; at least one image is required to "
        "create it.",
        "status": 400,
    }
