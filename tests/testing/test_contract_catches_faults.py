"""The contract can fail: it catches backends with the faults it exists for, passes honest ones.

Each faulty backend below is a MemoryRepository with one classic storage bug. The harness runs the
whole contract against it in a fresh pytest session (``pytester``) and checks that the run fails,
and that the tests pinning the broken rule are among the failures. The same harness run on the
honest MemoryRepository passes, so the harness itself can go both ways.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

import catalog_core as cc
from catalog_core.repository.base import Change

pytest_plugins = ["pytester"]

THE_BEGINNING_OF_TIME = datetime(1, 1, 1, tzinfo=UTC)


class ForgetfulAccountRepository(cc.MemoryRepository):
    """Fault 1: reads that forgot the account (``WHERE external_id = ?`` without the account)."""

    def get(self, account: str, external_id: str) -> cc.Product | None:
        for owner in [account, *self._products]:
            found = super().get(owner, external_id)
            if found is not None:
                return found
        return None

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[cc.Product]:
        everyone: list[cc.Product] = []
        for owner in list(self._products):
            everyone += super().list_live(owner, after=after, limit=limit, now=now)
        return sorted(everyone, key=lambda p: p.external_id)[:limit]


class LostUpdateRepository(cc.MemoryRepository):
    """Fault 2: a read-modify-write that lets go of the lock between the read and the write."""

    def write(self, account: str, external_id: str, change: Change) -> cc.Product | None:
        stored = self.get(account, external_id)  # read under the lock...
        time.sleep(0.0002)  # ...released: another writer may write in between
        result = change(stored)
        return super().write(account, external_id, lambda _: result)


class ExpiredListingRepository(cc.MemoryRepository):
    """Fault 3: a listing that ignores ``now`` and so shows expired products."""

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[cc.Product]:
        return super().list_live(account, after=after, limit=limit, now=THE_BEGINNING_OF_TIME)


FAULTY_MODULE = """
from catalog_core.testing.contract import RepositoryContract
from tests.testing.test_contract_catches_faults import {backend}


class TestFaultyBackend(RepositoryContract):
    def make_repository(self, tmp_path):
        return {backend}()
"""
HONEST_MODULE = """
from tests.repository.test_memory import TestMemoryRepository
"""


def run_contract(pytester: pytest.Pytester, source: str) -> tuple[set[str], set[str], set[str]]:
    """Run the contract module ``source``; return the names that passed, xfailed and failed."""
    path = pytester.makepyfile(test_backend_under_contract=textwrap.dedent(source))
    recorder = pytester.inline_run(str(path), "-p", "no:cacheprovider", "-W", "error")
    passed, skipped, failed = recorder.listoutcomes()

    def names(reports: Sequence[pytest.TestReport | pytest.CollectReport]) -> set[str]:
        return {report.nodeid.rsplit("::", 1)[-1] for report in reports}

    assert not recorder.getfailedcollections()
    xfailed = {r for r in skipped if hasattr(r, "wasxfail")}
    assert len(xfailed) == len(skipped)  # the contract skips nothing
    return names(passed), names(list(xfailed)), names(failed)


@pytest.mark.parametrize(
    ("backend", "caught_by"),
    [
        pytest.param(
            ForgetfulAccountRepository,
            {
                "test_r1_the_same_external_id_in_two_accounts_names_two_independent_products",
                "test_r1_a_product_of_one_account_is_invisible_from_another_in_every_method",
                "test_r1_an_account_and_an_id_are_two_parts_of_the_key_never_joined_into_one",
                "test_r24_list_live_is_in_code_point_order_of_external_id",
            },
            id="forgets-the-account",
        ),
        pytest.param(
            LostUpdateRepository,
            {
                "test_r27_concurrent_read_merge_writes_on_one_key_never_lose_an_update",
                "test_r27_catalog_writers_on_two_handles_of_the_same_storage_never_lose_an_update",
            },
            id="loses-updates",
        ),
        pytest.param(
            ExpiredListingRepository,
            {
                "test_r20_list_live_skips_products_expired_at_now_from_expires_at_on",
                "test_r20_the_catalog_treats_an_expired_product_as_absent_before_any_purge",
            },
            id="lists-expired-products",
        ),
    ],
)
def test_the_contract_fails_a_backend_with_a_classic_storage_bug(
    pytester: pytest.Pytester, backend: type[cc.MemoryRepository], caught_by: set[str]
) -> None:
    passed, _, failed = run_contract(pytester, FAULTY_MODULE.format(backend=backend.__name__))
    assert failed, f"the contract passed {backend.__name__}"
    assert caught_by <= failed, f"not caught by {sorted(caught_by - failed)}"
    assert passed, "every contract test failed: the fault is not what they caught"
    print(f"{backend.__name__} failed: {sorted(failed)}")


def test_the_same_harness_passes_the_honest_memory_repository(pytester: pytest.Pytester) -> None:
    passed, xfailed, failed = run_contract(pytester, HONEST_MODULE)
    assert failed == set()
    assert xfailed == set()
    assert len(passed) >= 30
    assert len(passed) >= 30
