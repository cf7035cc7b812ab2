"""``Catalog.list(..., prefix=)``: R24's listing of the ids starting with a prefix, every backend.

The stand-in's own extension (the dashboard's filter): the same pages, order, cursors and costs
as R24, of a subset of the ids.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import catalog_core as cc
from tests.helpers import FakeClock

IMAGE = {"images": [{"source": {"url": "https://cdn.example/p.jpg"}}]}
# Ids over a few characters, so that prefixes share them; code-point order is what R24 sorts by.
# "e" and a combining accent make "é" in two code points, beside the one-code-point "é".
ALPHABET = st.sampled_from(["a", "b", "e", "\u0301", "é", "/", "😀"])
IDS = st.lists(st.text(ALPHABET, min_size=1, max_size=4), unique=True, max_size=25)


def _walk(catalog: cc.Catalog, prefix: str, limit: int, cursor: str | None = None) -> list[str]:
    seen: list[str] = []
    while True:
        page = catalog.list("acme", limit, cursor, prefix=prefix)
        assert page.count <= limit
        seen.extend(p.external_id for p in page.items)
        if not page.has_more:
            assert page.next_cursor is None
            return seen
        cursor = page.next_cursor


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=IDS, prefix=st.text(ALPHABET, min_size=1, max_size=3), limit=st.integers(1, 6))
def test_r24_a_prefix_walk_lists_exactly_the_ids_that_start_with_it_in_order(
    repo: cc.Repository, ids: list[str], prefix: str, limit: int
) -> None:
    catalog = cc.Catalog(repo)
    account = f"acme-{len(repr((ids, prefix, limit)))}-{abs(hash((tuple(ids), prefix, limit)))}"
    for external_id in ids:
        catalog.upsert(account, {"externalId": external_id, **IMAGE})
    expected = sorted(i for i in ids if i.startswith(prefix))
    seen: list[str] = []
    cursor = None
    while True:
        page = catalog.list(account, limit, cursor, prefix=prefix)
        seen.extend(p.external_id for p in page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == expected


def test_r24_r22c_r20_one_shot_and_expired_products_are_not_listed_by_prefix(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    """R22c, R20: the prefix itself may be an id: listed only when live and not one-shot."""
    catalog.upsert("acme", {"externalId": "tee", "validForDays": 1, **IMAGE})
    catalog.upsert("acme", {"externalId": "tee-1", **IMAGE})
    one_shot = catalog.use("acme", {"images": IMAGE["images"]}).product.external_id
    assert _walk(catalog, "tee", 1) == ["tee", "tee-1"]
    assert _walk(catalog, one_shot, 5) == []
    assert _walk(catalog, "_anon_", 5) == []
    clock.advance(days=2)
    assert _walk(catalog, "tee", 1) == ["tee-1"]


def test_r24_a_cursor_of_the_unfiltered_listing_continues_a_prefix_walk(
    catalog: cc.Catalog,
) -> None:
    """R24: a cursor names a place in the account's order; a prefix walk goes on from it."""
    for external_id in ("a", "b", "b1", "b2", "c"):
        catalog.upsert("acme", {"externalId": external_id, **IMAGE})
    before_b = catalog.list("acme", 1).next_cursor  # after "a"
    assert _walk(catalog, "b", 2, before_b) == ["b", "b1", "b2"]
    after_b1 = catalog.list("acme", 3).next_cursor  # after "b1"
    assert _walk(catalog, "b", 2, after_b1) == ["b2"]
    past = catalog.list("acme", 4).next_cursor  # after "b2"
    assert _walk(catalog, "b", 2, past) == []


@pytest.mark.parametrize("prefix", ["", "a\x00", "x" * 10_000, 7, "\ud800"])
def test_r2_a_prefix_that_no_id_could_start_with_is_validation_failed_at_prefix(
    catalog: cc.Catalog, prefix: object
) -> None:
    with pytest.raises(cc.ValidationFailed) as raised:
        catalog.list("acme", prefix=prefix)  # type: ignore[arg-type]
    assert [detail.path for detail in raised.value.details] == ["prefix"]
