"""Credit balances: reservation, refusal, refunds, top-ups, concurrency (T16, T17)."""

from __future__ import annotations

import threading

import pytest

import catalog_core as cc
from catalog_core.tryon import TryOn
from tests.helpers import FakeClock
from tests.tryon.conftest import body, item


def test_t16_a_new_account_starts_with_the_initial_credits(catalog: cc.Catalog) -> None:
    assert TryOn(catalog).credits("new") == 10
    assert TryOn(catalog, initial_credits=3).credits("other") == 3
    with pytest.raises(ValueError, match="initial_credits"):
        TryOn(catalog, initial_credits=-1)


def test_t16_each_accepted_try_on_takes_one_credit_mock_ones_too(tryon: TryOn) -> None:
    tryon.start("acme", body(item("a")))
    tryon.start("acme", body(item("m", title="mock")))
    assert tryon.credits("acme") == 8
    assert tryon.credits("globex") == 10  # R1: balances are per account


def test_t16_a_zero_balance_refuses_with_402_and_takes_nothing(
    catalog: cc.Catalog, tryon: TryOn
) -> None:
    tryon.add_credits("acme", -10)
    with pytest.raises(cc.CatalogError) as caught:
        tryon.start("acme", body(item("a")))
    assert (caught.value.code, caught.value.status) == ("INSUFFICIENT_CREDITS", 402)
    assert tryon.credits("acme") == 0
    with pytest.raises(cc.ProductNotFound):
        catalog.get("acme", "a")


def test_t16_a_failed_generation_gives_its_credit_back_when_it_fails(
    tryon: TryOn, clock: FakeClock
) -> None:
    bad = item("x", images=[{"source": {"url": "https://cdn.invalid/x.jpg"}}])
    tryon.start("acme", body(bad))
    assert tryon.credits("acme") == 9
    clock.advance(milliseconds=1999)
    assert tryon.credits("acme") == 9
    clock.advance(milliseconds=1)
    assert tryon.credits("acme") == 10


def test_t16_a_refund_due_counts_toward_the_next_reservation(
    tryon: TryOn, clock: FakeClock
) -> None:
    tryon.add_credits("acme", -9)
    bad = item("x", images=[{"source": {"url": "https://cdn.invalid/x.jpg"}}])
    tryon.start("acme", body(bad))
    with pytest.raises(cc.CatalogError):
        tryon.start("acme", body())
    clock.advance(seconds=2)
    tryon.start("acme", body())  # the failed generation's credit paid for it
    assert tryon.credits("acme") == 0


def test_t16_concurrent_try_ons_never_overdraw(catalog: cc.Catalog) -> None:
    tryon = TryOn(catalog, initial_credits=10)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def run(n: int) -> None:
        barrier.wait()
        try:
            tryon.start("acme", body(item(f"sku-{n % 3}")))
            code = "OK"
        except cc.CatalogError as exc:
            code = exc.code
        with lock:
            outcomes.append(code)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["INSUFFICIENT_CREDITS"] * 10 + ["OK"] * 10
    assert tryon.credits("acme") == 0


def test_t17_credits_are_added_locally_and_never_go_below_zero(tryon: TryOn) -> None:
    assert tryon.add_credits("acme", 5) == 15
    assert tryon.credits("acme") == 15
    assert tryon.add_credits("acme", -15) == 0
    for bad in (-1, 1.5, True, "3", 10**16):
        with pytest.raises(cc.ValidationFailed) as caught:
            tryon.add_credits("acme", bad)  # type: ignore[arg-type]
        assert [d.path for d in caught.value.details] == ["amount"]
    assert tryon.credits("acme") == 0
