"""The contract can fail: it catches backends with the faults it exists for, passes honest ones.

Each faulty backend below has one storage bug, written the way an embedder could write it: most
are a MemoryRepository with one method gone wrong, the joined-key ones a plain dict store of their
own. The harness runs the whole contract against each in a fresh pytest session (``pytester``)
and checks that the run fails, and that the tests pinning the broken rule are among the failures.
A fault that needs a race has its window widened by a short sleep inside the faulty backend only.
The same harness passes the honest MemoryRepository, and a correct backend that calls every change
twice, so the harness itself can go both ways.
"""

from __future__ import annotations

import copy
import heapq
import textwrap
import threading
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


class JoinedKeyRepository:
    """Fault 4: one flat dict keyed by ``account + "/" + external_id``, listed by prefix.

    The way a key-value store is often used: one namespace, keys joined with a separator nobody
    expected in an id. Account ``a``'s id ``b/c`` and account ``a/b``'s id ``c`` are then one
    key, so each reads, lists and overwrites the other's product. Everything else is right:
    copies handed out, reference-counted blobs, refused inconsistent writes, a purge of expired
    products and orphan blobs. Like many embedders' backends it has no ``write_many``.
    """

    separator = "/"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._products: dict[str, cc.Product] = {}
        self._blobs: dict[str, cc.Blob] = {}
        self._refs: dict[str, int] = {}

    def _key(self, account: str, name: str) -> str:
        return account + self.separator + name

    def _blob_keys(self, product: cc.Product | None) -> set[str]:
        if product is None:
            return set()
        return {self._key(product.account, sha) for sha in product.blob_refs}

    def get(self, account: str, external_id: str) -> cc.Product | None:
        with self._lock:
            return copy.deepcopy(self._products.get(self._key(account, external_id)))

    def write(self, account: str, external_id: str, change: Change) -> cc.Product | None:
        key = self._key(account, external_id)
        with self._lock:
            old = self._products.get(key)
            result = change(copy.deepcopy(old))
            new = result.product
            if new is not None and (new.account, new.external_id) != (account, external_id):
                raise ValueError("a write must keep the product's account and external id")
            given = {self._key(account, blob.sha256): blob for blob in result.blobs}
            before, after = self._blob_keys(old), self._blob_keys(new)
            for blob_key in after - before:
                if blob_key not in given and blob_key not in self._blobs:
                    raise ValueError(
                        f"product refers to blob {blob_key} that was neither stored nor given"
                    )
            for blob_key, blob in given.items():
                if blob_key not in self._blobs:
                    self._blobs[blob_key], self._refs[blob_key] = blob, 0
            for blob_key in after - before:
                self._refs[blob_key] += 1
            for blob_key in before - after:
                self._refs[blob_key] -= 1
            if new is None:
                self._products.pop(key, None)
            else:
                self._products[key] = copy.deepcopy(new)
            return copy.deepcopy(new)

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[cc.Product]:
        prefix = account + self.separator
        with self._lock:
            page: list[cc.Product] = []
            for key in sorted(k for k in self._products if k.startswith(prefix)):
                product = self._products[key]
                if after is not None and key[len(prefix) :] <= after:
                    continue
                if not product.one_shot and not product.is_expired(now):
                    page.append(copy.deepcopy(product))
                    if len(page) == limit:
                        break
            return page

    def purge_expired(self, now: datetime) -> int:
        with self._lock:
            expired = [key for key, p in self._products.items() if p.is_expired(now)]
            for key in expired:
                for blob_key in self._blob_keys(self._products.pop(key)):
                    self._refs[blob_key] -= 1
            for blob_key in [k for k, refs in self._refs.items() if refs == 0]:
                del self._blobs[blob_key], self._refs[blob_key]
            return len(expired)

    def get_blob(self, account: str, sha256: str) -> cc.Blob | None:
        with self._lock:
            return self._blobs.get(self._key(account, sha256))

    def close(self) -> None:
        pass


class ColonJoinedKeyRepository(JoinedKeyRepository):
    """Fault 4 again, with ``account + "::" + external_id``."""

    separator = "::"


class LateOrphanDeletingRepository(cc.MemoryRepository):
    """Fault 5: a purge that deletes the orphan blobs it found after letting go of the lock.

    The bytes are the slow part, so the purge finds the expired products and the orphan blobs
    under the lock, lets writers in again, and only then deletes the blobs it found. A writer that
    uploads the same bytes in between makes one of them named again, and the purge deletes it
    all the same: the product keeps an ``upload://`` image whose bytes are gone.
    """

    def purge_expired(self, now: datetime) -> int:
        removed = 0
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                expires, account, external_id = heapq.heappop(self._expiry)
                product = self._products.get(account, {}).get(external_id)
                if product is not None and product.expires_at == expires:
                    self._adjust_refs(account, product.blob_refs, frozenset())
                    self._store(account, external_id, product, None)
                    removed += 1
            orphans = list(self._orphans)
        time.sleep(0.002)  # the widened window: deleting the bytes of many blobs takes a while
        for key in orphans:
            self._blobs.pop(key, None)
            self._orphans.discard(key)
        return removed


class UnlockedImageWriteRepository(cc.MemoryRepository):
    """Fault 6: writes to a product holding uploaded images read and write without the lock.

    Products with uploads take their own path, which copies the bytes of their images out of the
    store before the change runs, and so was written without holding the lock across the
    read and the write. Writers on a product holding only URL images never lose an update;
    on one holding an upload, concurrent read-merge-writes overwrite each other.
    """

    def write(self, account: str, external_id: str, change: Change) -> cc.Product | None:
        stored = self.get(account, external_id)
        if stored is None or not stored.blob_refs:
            return super().write(account, external_id, change)
        for sha in sorted(stored.blob_refs):  # the bytes, read outside the lock
            self.get_blob(account, sha)
        time.sleep(0.0002)  # the widened window: another writer reads the same version meanwhile
        result = change(stored)
        return super().write(account, external_id, lambda _: result)


class DryRunRepository(cc.MemoryRepository):
    """Correct: calls each change once as a dry run, throws the result away, then for real.

    :meth:`Repository.write` says a change may be called more than once: this backend checks
    that a change succeeds before it stores anything (a real one might size a transaction or
    reserve space with the first result), under the same lock and with the same stored product,
    and stores the second result. ``write_many`` does the same for every change of a batch.
    """

    @staticmethod
    def _twice(change: Change) -> Change:
        def dry_run_first(stored: cc.Product | None) -> cc.Write:
            change(stored)  # the dry run: its result is thrown away
            return change(stored)

        return dry_run_first

    def write(self, account: str, external_id: str, change: Change) -> cc.Product | None:
        return super().write(account, external_id, self._twice(change))

    def write_many(
        self, account: str, changes: Sequence[tuple[str, Change]]
    ) -> list[cc.Product | Exception | None]:
        return super().write_many(account, [(i, self._twice(c)) for i, c in changes])


BACKEND_MODULE = """
from catalog_core.testing.contract import RepositoryContract
from tests.testing.test_contract_catches_faults import {backend}


class TestBackendUnderContract(RepositoryContract):
    def make_repository(self, tmp_path):
        return {backend}()
"""
HONEST_MODULE = """
from tests.repository.test_memory import TestMemoryRepository
"""


def run_contract(pytester: pytest.Pytester, source: str) -> tuple[set[str], set[str], set[str]]:
    """Run the contract module ``source``; return the names that passed, were skipped and failed.

    The only skip the contract has is that of the ``write_many`` tests, for a backend without it.
    """
    path = pytester.makepyfile(test_backend_under_contract=textwrap.dedent(source))
    recorder = pytester.inline_run(str(path), "-p", "no:cacheprovider", "-W", "error")
    passed, skipped, failed = recorder.listoutcomes()

    def names(reports: Sequence[pytest.TestReport | pytest.CollectReport]) -> set[str]:
        return {report.nodeid.rsplit("::", 1)[-1] for report in reports}

    assert not recorder.getfailedcollections()
    for report in skipped:
        assert "has no write_many" in str(report.longrepr), report.longrepr
    return names(passed), names(skipped), names(failed)


@pytest.mark.parametrize(
    ("backend", "caught_by"),
    [
        pytest.param(
            ForgetfulAccountRepository,
            {
                "test_r1_the_same_external_id_in_two_accounts_names_two_independent_products",
                "test_r1_a_product_of_one_account_is_invisible_from_another_in_every_method",
                "test_r1_an_account_and_an_id_are_two_parts_of_the_key_never_joined_into_one",
                "test_r1_accounts_and_ids_holding_any_separator_are_never_joined_into_one_key",
                "test_r24_list_live_is_in_code_point_order_of_external_id",
            },
            id="forgets-the-account",
        ),
        pytest.param(
            LostUpdateRepository,
            {
                "test_r27_concurrent_read_merge_writes_on_one_key_never_lose_an_update",
                "test_r27_catalog_writers_on_two_handles_of_the_same_storage_never_lose_an_update",
                "test_r27_r15_concurrent_read_merge_writes_on_a_product_holding_uploads_lose_no_update",
                "test_r27_r15_catalog_writers_uploading_images_on_two_handles_never_lose_an_update",
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
        pytest.param(
            JoinedKeyRepository,
            {"test_r1_accounts_and_ids_holding_any_separator_are_never_joined_into_one_key"},
            id="joins-keys-with-a-slash",
        ),
        pytest.param(
            ColonJoinedKeyRepository,
            {"test_r1_accounts_and_ids_holding_any_separator_are_never_joined_into_one_key"},
            id="joins-keys-with-two-colons",
        ),
        pytest.param(
            LateOrphanDeletingRepository,
            {
                "test_r21_r15_a_purge_racing_writers_that_upload_the_same_bytes_never_loses_a_live_image"
            },
            id="deletes-orphans-after-unlocking",
        ),
        pytest.param(
            UnlockedImageWriteRepository,
            {
                "test_r27_r15_concurrent_read_merge_writes_on_a_product_holding_uploads_lose_no_update",
                "test_r27_r15_catalog_writers_uploading_images_on_two_handles_never_lose_an_update",
            },
            id="loses-updates-on-products-with-uploads",
        ),
    ],
)
def test_the_contract_fails_a_backend_with_a_classic_storage_bug(
    pytester: pytest.Pytester, backend: type[cc.Repository], caught_by: set[str]
) -> None:
    passed, _, failed = run_contract(pytester, BACKEND_MODULE.format(backend=backend.__name__))
    assert failed, f"the contract passed {backend.__name__}"
    assert caught_by <= failed, f"not caught by {sorted(caught_by - failed)}"
    assert passed, "every contract test failed: the fault is not what they caught"
    print(f"{backend.__name__} failed: {sorted(failed)}")


def test_the_same_harness_passes_the_honest_memory_repository(pytester: pytest.Pytester) -> None:
    passed, skipped, failed = run_contract(pytester, HONEST_MODULE)
    assert failed == set()
    assert skipped == set()
    assert len(passed) >= 30


def test_r26_r27_the_contract_passes_a_correct_backend_that_calls_each_change_twice(
    pytester: pytest.Pytester,
) -> None:
    """R26, R27: ``Repository.write`` lets a backend call a change more than once; the contract
    accepts a backend that runs each change as a dry run first, and stores the second result."""
    module = BACKEND_MODULE.format(backend=DryRunRepository.__name__)
    passed, skipped, failed = run_contract(pytester, module)
    assert failed == set()
    assert skipped == set()
    assert len(passed) >= 30
