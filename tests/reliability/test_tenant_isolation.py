"""Tenant isolation: no operation of one account reaches, or tells of, another's products (R1).

For every operation, an account that names another account's product gets exactly the answer it
would get in a catalog where that product does not exist at all (same result or same error: code,
message, details), whether it names it by id, by case or Unicode variants of the id, by a cursor
made for the other account (taken, replayed or forged), or by the ``upload://`` address of the
other account's blob. Every check runs on every backend.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import pytest

import catalog_core as cc
from catalog_core.cursor import cursor_key, encode_cursor
from tests.helpers import JPEG, FakeClock

THEM, US = "them", "us"
IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}
IDS = ["p1", "Shirt-Ä", "café", "x" * 256, "_anon_abcdefghijklmnopqrstuvwx"]


def variants(external_id: str) -> list[str]:
    """The id itself, and ids a careless store might confuse with it."""
    found = {
        external_id,
        external_id.upper(),
        external_id.lower(),
        unicodedata.normalize("NFD", external_id),
        unicodedata.normalize("NFKC", external_id),
        external_id.translate({ord(c): ord(c) + 0xFEE0 for c in "px"}),  # fullwidth p, x
        external_id + " ",
    }
    return sorted(v for v in found if 0 < len(v) <= 256)


def outcome(action: Callable[[], Any]) -> Any:
    """What the caller learns: the result in wire form, or the error in wire form."""
    try:
        result = action()
    except cc.CatalogError as exc:
        return ("error", exc.to_wire())
    if isinstance(result, cc.UpsertResult | cc.UseResult):
        wire = cc.to_wire(result.product)
        return ("ok", result.created, {k: v for k, v in wire.items() if not k.endswith("At")})
    if isinstance(result, cc.Page):
        return ("page", [p.external_id for p in result.items], result.has_more)
    if isinstance(result, cc.Product):
        return ("product", result.external_id)
    return ("ok", result)


@pytest.fixture
def theirs(catalog: cc.Catalog) -> dict[str, cc.Product]:
    """Products of the other account, one with an uploaded blob, some expired-proof."""
    made = {}
    for external_id in IDS:
        if external_id.startswith("_anon_"):
            continue
        made[external_id] = catalog.upsert(
            THEM,
            {"externalId": external_id, "title": "secret", "images": [IMAGE]},
        ).product
    made["blobbed"] = catalog.upsert(
        THEM,
        {"externalId": "blobbed", "images": [{"source": {"fileKey": "f"}}]},
        files={"f": cc.Upload(JPEG, "image/jpeg")},
    ).product
    one_shot = catalog.use(THEM, {"images": [IMAGE]}).product
    made[one_shot.external_id] = one_shot
    return made


def operations(external_id: str) -> dict[str, Callable[[cc.Catalog], Any]]:
    """Every operation that names a product by id, as account US."""
    return {
        "get": lambda c: c.get(US, external_id),
        "delete": lambda c: c.delete(US, external_id),
        "delete if_version": lambda c: c.delete(US, external_id, if_version=1),
        "use reference": lambda c: c.use(US, {"externalId": external_id}),
        "partial upsert": lambda c: c.upsert(US, {"externalId": external_id, "title": "x"}),
        "upsert if_version": lambda c: c.upsert(
            US, {"externalId": external_id, "images": [IMAGE]}, if_version=1
        ),
        "upsert any version": lambda c: c.upsert(
            US, {"externalId": external_id, "images": [IMAGE]}, if_version=cc.ANY_VERSION
        ),
    }


def test_r1_naming_another_accounts_product_answers_as_if_it_did_not_exist(
    catalog: cc.Catalog, theirs: dict[str, cc.Product], clock: FakeClock
) -> None:
    """R1, R23, R25, R28, R22a: by id and by every variant of it, for every operation."""
    names = sorted({v for external_id in theirs for v in variants(external_id)})
    for name in names:
        for label, operation in operations(name).items():
            empty = cc.Catalog(cc.MemoryRepository(), clock=clock)
            expected = outcome(lambda: operation(empty))  # noqa: B023 - called at once
            got = outcome(lambda: operation(catalog))  # noqa: B023 - called at once
            assert got == expected, (label, name)
    for product in theirs.values():  # and theirs are untouched
        assert catalog.repository.get(THEM, product.external_id) == product


# The scheme is public; the store's secret is not: a forger can only guess it.
GUESSED = cursor_key(b"catalog_core listing cursor v1")


def test_r1_r24_listing_and_cursors_never_cross_accounts(
    catalog: cc.Catalog, theirs: dict[str, cc.Product], clock: FakeClock
) -> None:
    """R1, R24: our listing is empty; their cursors (taken, replayed, forged) are refused alike."""
    assert outcome(lambda: catalog.list(US)) == ("page", [], False)
    page = catalog.list(THEM, limit=1)
    assert page.next_cursor is not None
    forged = [
        page.next_cursor,  # taken from their listing
        encode_cursor(THEM, "p1", GUESSED),  # made for them by anyone who knows the scheme
        encode_cursor(US.upper(), "p1", GUESSED),  # made for a case variant of our account
        page.next_cursor[:-2] + "AA",  # their cursor with its tag changed
    ]
    refusal = outcome(lambda: catalog.list(US, cursor="not-a-cursor"))
    assert refusal[0] == "error"
    for cursor in forged:
        assert outcome(lambda: catalog.list(US, cursor=cursor)) == refusal  # noqa: B023
    # Our own cursor, replayed after their writes and deletes, still lists only ours.
    catalog.upsert(US, {"externalId": "a", "images": [IMAGE]})
    catalog.upsert(US, {"externalId": "b", "images": [IMAGE]})
    ours = catalog.list(US, limit=1)
    assert ours.next_cursor is not None
    catalog.delete(THEM, "p1")
    catalog.upsert(THEM, {"externalId": "a2", "images": [IMAGE]})
    for _ in range(2):
        replay = catalog.list(US, cursor=ours.next_cursor)
        assert [p.external_id for p in replay.items] == ["b"]


def test_r1_r15_another_accounts_blob_is_neither_reachable_nor_shared(
    catalog: cc.Catalog, theirs: dict[str, cc.Product]
) -> None:
    """R1, R15: their upload:// address means nothing to us; the same bytes make our own blob."""
    sha = theirs["blobbed"].images[0].blob_sha256
    assert sha is not None
    assert catalog.repository.get_blob(US, sha) is None
    by_address = {"externalId": "mine", "images": [{"source": {"url": f"upload://{sha}"}}]}
    with pytest.raises(cc.ValidationFailed):
        catalog.upsert(US, by_address)  # an upload:// address is not a URL a caller may give
    mine = catalog.upsert(
        US,
        {"externalId": "mine", "images": [{"source": {"fileKey": "f"}}]},
        files={"f": cc.Upload(JPEG, "image/jpeg")},
    ).product
    assert mine.images[0].blob_sha256 == sha  # content-addressed: the same address...
    catalog.delete(THEM, "blobbed")
    catalog.purge_expired()
    assert catalog.repository.get_blob(THEM, sha) is None  # ...but their copy went with them
    blob = catalog.repository.get_blob(US, sha)
    assert blob is not None
    assert blob.data == JPEG  # and ours stayed
