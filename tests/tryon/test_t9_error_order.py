"""T9: a try-on's product item is validated before its person, even where that needs the store.

A product item that would create a product without images (a one-shot item, or an inline item
whose product does not exist) is refused with ``PRODUCT_IMAGES_REQUIRED`` (R5, R22): that is the
product item's own validation, which T9 puts before every check of the person.
"""

from __future__ import annotations

from typing import Any

import pytest

import catalog_core as cc
from catalog_core.tryon import TryOn
from tests.helpers import JPEG, FakeClock

URL = "https://cdn.example/person.jpg"
NOT_AN_IMAGE = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"

#: A person with one problem, the files it comes with, and the code it gives on its own (T7).
PERSON_PROBLEMS = [
    pytest.param({}, {}, "CUSTOMER_IMAGE_REQUIRED", id="missing"),
    pytest.param({"person": {"image": {"source": {}}}}, {}, "INVALID_IMAGE_INPUT", id="no-source"),
    pytest.param(
        {"person": {"image": {"source": {"url": "ftp://a/b.jpg"}}}},
        {},
        "VALIDATION_FAILED",
        id="malformed-url",
    ),
    pytest.param(
        {"person": {"image": {"source": {"url": "https://me.invalid/a.jpg"}}}},
        {},
        "CUSTOMER_IMAGE_FETCH_FAILED",
        id="unfetchable-url",
    ),
    pytest.param(
        {"person": {"image": {"source": {"fileKey": "me"}}}},
        {},
        "MULTIPART_FILE_NOT_FOUND",
        id="missing-part",
    ),
    pytest.param(
        {"person": {"image": {"source": {"fileKey": "me"}}}},
        {"me": cc.Upload(NOT_AN_IMAGE)},
        "INVALID_IMAGE",
        id="not-an-image",
    ),
    pytest.param(
        {"person": {"image": {"source": {"id": "img_" + "0" * 24}}}},
        {},
        "VALIDATION_FAILED",
        id="unknown-id",
    ),
]


def code_of(tryon: TryOn, body: dict[str, Any], files: dict[str, cc.Upload]) -> str | None:
    try:
        tryon.start("acme", body, files)
    except cc.CatalogError as error:
        return error.code
    return None


@pytest.fixture
def tryon() -> TryOn:
    return TryOn(cc.Catalog(cc.MemoryRepository(), clock=FakeClock()))


@pytest.mark.parametrize(("person", "files", "alone"), PERSON_PROBLEMS)
@pytest.mark.parametrize(
    "item",
    [{"title": "one-shot"}, {"externalId": "shirt", "title": "new"}],
    ids=["one-shot", "inline"],
)
def test_t9_an_item_that_would_create_a_product_without_images_outranks_the_persons_problem(
    tryon: TryOn,
    item: dict[str, Any],
    person: dict[str, Any],
    files: dict[str, cc.Upload],
    alone: str,
) -> None:
    """T9, R5, R22: ``PRODUCT_IMAGES_REQUIRED`` first, whatever is wrong with the person; the
    person's own code once the item is valid; and a refused try-on takes no credit."""
    assert code_of(tryon, {"products": [item], **person}, files) == "PRODUCT_IMAGES_REQUIRED"
    with_images = {**item, "images": [{"source": {"url": "https://cdn.example/a.jpg"}}]}
    assert code_of(tryon, {"products": [with_images], **person}, files) == alone
    assert tryon.credits("acme") == 10


@pytest.mark.parametrize(("person", "files", "alone"), PERSON_PROBLEMS)
def test_t9_an_inline_item_without_images_on_a_live_product_leaves_the_person_to_decide(
    tryon: TryOn, person: dict[str, Any], files: dict[str, cc.Upload], alone: str
) -> None:
    """T9, R22b: on a live product the same item is a valid update, so the person decides."""
    tryon.catalog.upsert("acme", {"externalId": "shirt", "images": [{"source": {"url": URL}}]})
    body = {"products": [{"externalId": "shirt", "title": "new"}], **person}
    assert code_of(tryon, body, files) == alone
    assert tryon.catalog.get("acme", "shirt").title is None  # nothing written
    accepted = {**body, "person": {"image": {"source": {"fileKey": "me"}}}}
    assert code_of(tryon, accepted, {"me": cc.Upload(JPEG)}) is None
    assert tryon.catalog.get("acme", "shirt").title == "new"
