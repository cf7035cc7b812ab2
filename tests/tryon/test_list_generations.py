"""``TryOn.list_generations``: the stand-in's listing of an account's generations, on every backend.

Newest first, by an opaque cursor bound to the account and to this listing (T12, T22, R1).
"""

from __future__ import annotations

import pytest

import catalog_core as cc
from catalog_core.tryon import TryOn
from tests.helpers import FakeClock
from tests.tryon.conftest import body, item


def _started(tryon: TryOn, clock: FakeClock, account: str, products: list[str]) -> list[str]:
    """Start one try-on per product id, a millisecond apart; return the generation ids."""
    ids = []
    for external_id in products:
        tryon.add_credits(account, 1)
        ids.append(tryon.start(account, body(item(external_id))).generation.generation_id)
        clock.advance(milliseconds=1)
    return ids


def _walk(tryon: TryOn, account: str, limit: int, **filters: str) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = tryon.list_generations(account, limit, cursor, **filters)
        assert len(page.items) <= limit
        seen.extend(listed.view.generation_id for listed in page.items)
        assert page.has_more == (page.next_cursor is not None)
        if not page.has_more:
            return seen
        cursor = page.next_cursor


def test_t12_generations_are_listed_newest_first_across_pages_each_once(
    tryon: TryOn, clock: FakeClock
) -> None:
    """T12: every live generation once, newest first, whatever the page size."""
    made = _started(tryon, clock, "acme", [f"sku-{n % 3}" for n in range(11)])
    for limit in (1, 4, 11, 50):
        assert _walk(tryon, "acme", limit) == made[::-1]
    first = tryon.list_generations("acme", 2).items
    assert [listed.view.status for listed in first] == ["PENDING", "PENDING"]
    assert first[0].person.url == "https://cdn.example/person.jpg"


def test_t15_the_generations_of_one_product_are_those_of_its_snapshot(
    tryon: TryOn, clock: FakeClock
) -> None:
    """T15: ``product_external_id`` picks the generations whose snapshot is that product's."""
    made = _started(tryon, clock, "acme", ["tee", "top", "tee", "teeshirt", "tee"])
    assert _walk(tryon, "acme", 2, product_external_id="tee") == [made[4], made[2], made[0]]
    assert _walk(tryon, "acme", 2, product_external_id="te") == []


def test_t22_r1_expired_generations_and_other_accounts_are_not_listed(
    tryon: TryOn, clock: FakeClock
) -> None:
    """T22, R1: a generation past its retention is gone; another account's never shows."""
    old = _started(tryon, clock, "acme", ["tee"])
    clock.advance(days=3)
    new = _started(tryon, clock, "acme", ["tee"])
    other = _started(tryon, clock, "globex", ["tee"])
    assert _walk(tryon, "acme", 50) == [*new, *old]
    clock.advance(days=7, seconds=-1)  # old is 10 days old: past the default 7
    assert _walk(tryon, "acme", 50) == new
    assert _walk(tryon, "globex", 50) == other
    assert _walk(tryon, "initech", 50) == []


@pytest.mark.parametrize(
    ("arguments", "path"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": True}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"product_external_id": ""}, "productExternalId"),
        ({"product_external_id": "a\x00b"}, "productExternalId"),
        ({"product_external_id": "x" * 10_000}, "productExternalId"),
    ],
)
def test_t12_bad_arguments_are_validation_failed_at_their_path(
    tryon: TryOn, arguments: dict[str, object], path: str
) -> None:
    with pytest.raises(cc.ValidationFailed) as raised:
        tryon.list_generations("acme", **arguments)  # type: ignore[arg-type]
    assert [detail.path for detail in raised.value.details] == [path]


def test_r1_r24_a_cursor_is_bound_to_its_account_and_to_this_listing(
    tryon: TryOn, catalog: cc.Catalog, clock: FakeClock
) -> None:
    """R1, R24: another account's cursor, or a product listing's, is refused at ``cursor``."""
    _started(tryon, clock, "acme", ["a", "b", "c"])
    _started(tryon, clock, "globex", ["a", "b", "c"])
    cursor = tryon.list_generations("acme", 1).next_cursor
    assert cursor is not None
    with pytest.raises(cc.ValidationFailed) as raised:
        tryon.list_generations("globex", 1, cursor)
    assert raised.value.details[0].path == "cursor"
    products = catalog.list("acme", 1).next_cursor
    assert products is not None
    with pytest.raises(cc.ValidationFailed):
        tryon.list_generations("acme", 1, products)
    with pytest.raises(cc.ValidationFailed):
        catalog.list("acme", 1, cursor)


def test_a_repository_that_cannot_list_generations_is_a_type_error() -> None:
    class Plain(cc.MemoryRepository):
        list_generations = None  # type: ignore[assignment]

    tryon = TryOn(cc.Catalog(Plain()))
    with pytest.raises(TypeError, match="cannot list generations"):
        tryon.list_generations("acme")
