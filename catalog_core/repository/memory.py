"""The in-memory repository: the reference backend for tests and short-lived catalogs."""

from __future__ import annotations

import bisect
import functools
import heapq
import json
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar, cast

import attrs

from catalog_core.images import Blob
from catalog_core.model import Image, Product
from catalog_core.repository import _engine as engine
from catalog_core.repository.base import (
    Change,
    PurgeCounts,
    TryOnChange,
    TryOnKeys,
    TryOnWrite,
)
from catalog_core.tryon.model import Credits, Generation, PersonImage
from catalog_core.tryon.rules import erased

__all__ = ["MemoryRepository"]

R = TypeVar("R")


def _copy_json(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None:
        return None
    copy: dict[str, Any] = json.loads(json.dumps(value))
    return copy


def _detached_images(images: tuple[Image, ...]) -> tuple[Image, ...]:
    return tuple(
        Image(i.source_url, i.order, _copy_json(i.classifications)) if i.classifications else i
        for i in images
    )


def _detached(product: Product) -> Product:
    """Return a copy of ``product`` that shares no mutable JSON with the stored one."""
    return attrs.evolve(
        product, metadata=_copy_json(product.metadata), images=_detached_images(product.images)
    )


def _detached_generation(generation: Generation) -> Generation:
    """Return a copy of ``generation`` whose product snapshot shares no mutable JSON."""
    snapshot = generation.product
    if not any(image.classifications for image in snapshot.images):
        return generation
    images = _detached_images(snapshot.images)
    return attrs.evolve(generation, product=attrs.evolve(snapshot, images=images))


def _same(record: R) -> R:
    return record


#: How to copy a record of a kind holding mutable JSON; records of other kinds are handed out.
_COPIES: Final[dict[str, Callable[[Any], Any]]] = {
    engine.PRODUCTS.name: _detached,
    engine.GENERATIONS.name: _detached_generation,
}


def _put(
    table: dict[str, dict[str, R]], account: str, record_id: str, old: R | None, new: R | None
) -> None:
    """Store ``new`` under the key (``None``: delete the stored record)."""
    if new is None:
        del table[account][record_id]
    else:
        table.setdefault(account, {})[record_id] = new


class MemoryRepository:
    """Products and blobs in dictionaries, guarded by one lock.

    It behaves like the SQL backends: the same contract, the same errors, copies handed out (never
    its own state), listing in code-point order, and a purge whose cost follows what it removes
    (an expiry heap and an orphan set, rather than a scan).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._products: dict[str, dict[str, Product]] = {}
        #: The records of each kind, by account then id; products are ``_products``.
        self._tables: dict[str, dict[str, dict[str, Any]]] = {engine.PRODUCTS.name: self._products}
        self._listed_ids: dict[str, list[str]] = {}
        #: The one-shot ids of each account, sorted: with ``_listed_ids``, every id in order.
        self._one_shot_ids: dict[str, list[str]] = {}
        self._expiry: list[tuple[datetime, str, str]] = []
        self._expiry_floor = 1024  # compact the heap when it doubles past this
        self._blobs: dict[tuple[str, str], Blob] = {}
        self._refs: dict[tuple[str, str], int] = {}
        self._orphans: set[tuple[str, str]] = set()
        self._cursor_secret = secrets.token_bytes(32)
        #: Person images and generations: expiry heaps and customer indexes, by kind.
        self._tryon_expiry: dict[str, list[tuple[datetime, str, str]]] = {
            engine.PERSON_IMAGES.name: [],
            engine.GENERATIONS.name: [],
        }
        self._customers: dict[str, dict[tuple[str, str], set[str]]] = {
            engine.PERSON_IMAGES.name: {},
            engine.GENERATIONS.name: {},
        }
        #: The generations of each account, and of each ``(account, product id)``, by
        #: ``(created_at, generation_id)``, sorted: the listing walks them from the end.
        self._generation_order: dict[Any, list[tuple[datetime, str]]] = {}

    def cursor_secret(self) -> bytes:
        """See :meth:`Repository.cursor_secret`: random, for this repository's lifetime."""
        return self._cursor_secret

    def get(self, account: str, external_id: str) -> Product | None:
        """See :meth:`Repository.get`."""
        with self._lock:
            product = self._products.get(account, {}).get(external_id)
            return None if product is None else _detached(product)

    def write(self, account: str, external_id: str, change: Change) -> Product | None:
        """See :meth:`Repository.write`."""
        with self._lock:
            load, apply = self._session(engine.PRODUCTS)
            new = engine.write_one(engine.PRODUCTS, account, external_id, change, load, apply)
            return None if new is None else _detached(new)

    def write_many(
        self, account: str, changes: Sequence[tuple[str, Change]]
    ) -> list[Product | Exception | None]:
        """See :meth:`BatchRepository.write_many`."""
        with self._lock:
            load, apply = self._session(engine.PRODUCTS)
            outcomes = engine.write_batch(engine.PRODUCTS, account, changes, load, apply)
            return [_detached(o) if isinstance(o, Product) else o for o in outcomes]

    def _session(self, kind: engine.RecordKind[R, Any]) -> engine.Session[R]:
        """Return the load and apply steps of the shared write algorithm for ``kind``.

        Both run under the lock; see :mod:`catalog_core.repository._engine`. Products keep
        their listing and expiry indexes up to date; a kind without indexes is a plain table.
        """
        table = cast("dict[str, dict[str, R]]", self._tables.setdefault(kind.name, {}))
        copy = cast("Callable[[R], R]", _COPIES.get(kind.name, _same))
        put = cast(
            "Callable[[str, str, R | None, R | None], None]",
            self._store
            if kind is engine.PRODUCTS
            else functools.partial(self._store_tryon, kind.name, table)
            if kind.name in self._tryon_expiry
            else functools.partial(_put, table),
        )

        def load(account: str, ids: list[str]) -> dict[str, R]:
            # Copies: a change may not alter the store through what it was given.
            records = table.get(account, {})
            return {i: copy(records[i]) for i in ids if i in records}

        def apply(account: str, plan: engine.Plan[R]) -> None:
            # Checked first, so that nothing raises once the store changes (R26).
            for sha in plan.required:
                if (account, sha) not in self._blobs:
                    raise engine.missing_blob(kind, sha)
            for blob in plan.blobs:
                key = (account, blob.sha256)
                if key not in self._blobs:
                    self._blobs[key] = blob
                    self._refs[key] = 0
                    self._orphans.add(key)  # until a record refers to it
            self._move_refs(account, plan.deltas)
            records = table.get(account, {})
            for record_id, new in plan.written.items():
                old = records.get(record_id)
                if old is not None or new is not None:
                    put(account, record_id, old, new)

        return load, apply

    def _adjust_refs(self, account: str, before: frozenset[str], after: frozenset[str]) -> None:
        """Move reference counts as a product's blobs go from ``before`` to ``after``."""
        self._move_refs(
            account, dict.fromkeys(after - before, 1) | dict.fromkeys(before - after, -1)
        )

    def _move_refs(self, account: str, deltas: Mapping[str, int]) -> None:
        for sha, delta in deltas.items():
            key = (account, sha)
            refs = self._refs[key] = self._refs[key] + delta
            if refs == 0:
                self._orphans.add(key)
            else:
                self._orphans.discard(key)

    def _store(
        self, account: str, external_id: str, old: Product | None, new: Product | None
    ) -> None:
        products = self._products.setdefault(account, {})
        listed = self._listed_ids.setdefault(account, [])
        if new is None:
            del products[external_id]
        else:
            products[external_id] = new
            if new.expires_at is not None and (old is None or old.expires_at != new.expires_at):
                heapq.heappush(self._expiry, (new.expires_at, account, external_id))
                if len(self._expiry) > 2 * self._expiry_floor:
                    self._compact_expiry()
        kept = new if new is not None else old
        if kept is not None and kept.one_shot:  # the same key: one-shot before and after
            listed = self._one_shot_ids.setdefault(account, [])
        if new is not None and old is None:
            bisect.insort(listed, external_id)
        elif new is None and old is not None:
            del listed[bisect.bisect_left(listed, external_id)]

    def _compact_expiry(self) -> None:
        """Drop the heap entries later writes left stale, so its size follows the products."""
        self._expiry = [
            (product.expires_at, account, external_id)
            for account, products in self._products.items()
            for external_id, product in products.items()
            if product.expires_at is not None
        ]
        heapq.heapify(self._expiry)
        self._expiry_floor = max(1024, len(self._expiry))

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[Product]:
        """See :meth:`Repository.list_live`."""
        with self._lock:
            listed = self._listed_ids.get(account, [])
            products = self._products.get(account, {})
            start = 0 if after is None else bisect.bisect_right(listed, after)
            page: list[Product] = []
            for index in range(start, len(listed)):  # no slice: a page must not copy the index
                product = products[listed[index]]
                if not product.is_expired(now):
                    page.append(_detached(product))
                    if len(page) == limit:
                        break
            return page

    def scan_live(
        self,
        *,
        account: str | None,
        after: tuple[str, str] | None,
        limit: int,
        now: datetime,
    ) -> Sequence[Product]:
        """See :meth:`ScanRepository.scan_live`: the two sorted id lists of each account, merged."""
        with self._lock:
            accounts = self._products if account is None else (account,)
            page: list[Product] = []
            for name in sorted(a for a in accounts if after is None or a >= after[0]):
                products = self._products.get(name, {})
                start = after[1] if after is not None and name == after[0] else None
                walks = []
                for ids in (self._listed_ids.get(name, []), self._one_shot_ids.get(name, [])):
                    first = 0 if start is None else bisect.bisect_right(ids, start)
                    walks.append(map(ids.__getitem__, range(first, len(ids))))  # no copy
                for external_id in heapq.merge(*walks):
                    product = products[external_id]
                    if not product.is_expired(now):
                        page.append(_detached(product))
                        if len(page) == limit:
                            return page
            return page

    def count_live(self, *, account: str | None, now: datetime) -> int:
        """See :meth:`ScanRepository.count_live`."""
        with self._lock:
            accounts = (
                self._products.values() if account is None else [self._products.get(account, {})]
            )
            return sum(not p.is_expired(now) for products in accounts for p in products.values())

    def purge_expired(self, now: datetime) -> int:
        """See :meth:`Repository.purge_expired`: :meth:`purge`, counting the products."""
        return self.purge(now).products

    def _purge_products(self, now: datetime) -> int:
        """Delete the expired products, then every blob nothing refers to."""
        removed = 0
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                expires, account, external_id = heapq.heappop(self._expiry)
                product = self._products.get(account, {}).get(external_id)
                # Entries left by later writes are stale: only the current expiry counts.
                if product is not None and product.expires_at == expires:
                    self._adjust_refs(account, product.blob_refs, frozenset())
                    self._store(account, external_id, product, None)
                    removed += 1
            for key in self._orphans:
                del self._blobs[key]
                del self._refs[key]
            self._orphans.clear()
        return removed

    # -- the try-on flow ---------------------------------------------------------------------

    def _store_tryon(
        self,
        kind: str,
        table: dict[str, dict[str, Any]],
        account: str,
        record_id: str,
        old: PersonImage | Generation | None,
        new: PersonImage | Generation | None,
    ) -> None:
        """Store a person image or generation, keeping its expiry heap and customer index."""
        _put(table, account, record_id, old, new)
        if kind == engine.GENERATIONS.name and (old is None) != (new is None):
            record = cast("Generation", new or old)
            entry = (record.created_at, record_id)
            for key in (account, (account, record.product.external_id)):
                order = self._generation_order.setdefault(key, [])
                if new is not None:
                    bisect.insort(order, entry)  # new generations are the newest: an append
                else:
                    del order[bisect.bisect_left(order, entry)]
                    if not order:
                        del self._generation_order[key]
        customers = self._customers[kind]
        if old is not None and old.customer_id is not None:
            ids = customers.get((account, old.customer_id))
            if ids is not None:
                ids.discard(record_id)
                if not ids:
                    del customers[(account, old.customer_id)]
        if new is not None:
            if new.customer_id is not None:
                customers.setdefault((account, new.customer_id), set()).add(record_id)
            if old is None or old.expires_at != new.expires_at:
                heapq.heappush(self._tryon_expiry[kind], (new.expires_at, account, record_id))

    def get_person_image(self, account: str, image_id: str) -> PersonImage | None:
        """See :meth:`TryOnRepository.get_person_image`."""
        with self._lock:
            table = self._tables.get(engine.PERSON_IMAGES.name, {})
            return cast("PersonImage | None", table.get(account, {}).get(image_id))

    def get_generation(self, account: str, generation_id: str) -> Generation | None:
        """See :meth:`TryOnRepository.get_generation`."""
        with self._lock:
            table = self._tables.get(engine.GENERATIONS.name, {})
            generation = cast("Generation | None", table.get(account, {}).get(generation_id))
            return None if generation is None else _detached_generation(generation)

    def list_generations(
        self,
        account: str,
        *,
        before: tuple[datetime, str] | None,
        limit: int,
        now: datetime,
        product: str | None = None,
    ) -> Sequence[Generation]:
        """See :meth:`GenerationsRepository.list_generations`: a sorted list, from its end."""
        with self._lock:
            key = account if product is None else (account, product)
            order = self._generation_order.get(key, [])
            records = self._tables.get(engine.GENERATIONS.name, {}).get(account, {})
            end = len(order) if before is None else bisect.bisect_left(order, before)
            page: list[Generation] = []
            for index in range(end - 1, -1, -1):  # no slice: a page must not copy the list
                generation = cast("Generation", records[order[index][1]])
                if generation.expires_at <= now:
                    continue
                page.append(_detached_generation(generation))
                if len(page) == limit:
                    break
            return page

    def get_credits(self, account: str) -> Credits | None:
        """See :meth:`TryOnRepository.get_credits`."""
        with self._lock:
            table = self._tables.get(engine.CREDITS.name, {})
            return cast("Credits | None", table.get(account, {}).get(engine.CREDITS_ID))

    def write_tryon(self, account: str, keys: TryOnKeys, change: TryOnChange) -> TryOnWrite:
        """See :meth:`TryOnRepository.write_tryon`: under the lock, every plan checked first.

        The plans of every kind are collected, their blobs checked together, and only then
        applied, so that a refused write leaves nothing half-written (R26).
        """
        with self._lock:
            deferred: list[tuple[engine.RecordKind[Any, Any], Any, engine.Plan[Any]]] = []

            def session(kind: engine.RecordKind[Any, Any]) -> engine.Session[Any]:
                load, apply = self._session(kind)
                return load, lambda _account, plan: deferred.append((kind, apply, plan))

            result = engine.write_tryon(account, keys, change, session)
            given = {blob.sha256 for _, _, plan in deferred for blob in plan.blobs}
            for kind, _, plan in deferred:
                for sha in plan.required:
                    if (account, sha) not in self._blobs and sha not in given:
                        raise engine.missing_blob(kind, sha)
            for _, apply, plan in deferred:
                apply(account, plan)
            if result.product is not None and result.product.product is not None:
                result = attrs.evolve(
                    result,
                    product=attrs.evolve(result.product, product=_detached(result.product.product)),
                )
            if result.generations:
                generations = tuple(_detached_generation(g) for g in result.generations)
                result = attrs.evolve(result, generations=generations)
            return result

    def erase_customer(self, account: str, customer_id: str) -> int:
        """See :meth:`TryOnRepository.erase_customer`."""
        touched = 0
        with self._lock:
            images_kind, generations_kind = engine.PERSON_IMAGES, engine.GENERATIONS
            images = self._tables.setdefault(images_kind.name, {})
            generations = self._tables.setdefault(generations_kind.name, {})
            for record_id in sorted(
                self._customers[images_kind.name].get((account, customer_id), ())
            ):
                image = images[account][record_id]
                self._adjust_refs(account, image.blob_refs, frozenset())
                self._store_tryon(images_kind.name, images, account, record_id, image, None)
                touched += 1
            for record_id in sorted(
                self._customers[generations_kind.name].get((account, customer_id), ())
            ):
                old = generations[account][record_id]
                new = erased(old)
                self._adjust_refs(account, old.blob_refs, new.blob_refs)
                self._store_tryon(generations_kind.name, generations, account, record_id, old, new)
                touched += 1
        return touched

    def purge(self, now: datetime) -> PurgeCounts:
        """See :meth:`TryOnRepository.purge`."""
        with self._lock:
            counts = {}
            for kind in (engine.PERSON_IMAGES, engine.GENERATIONS):
                heap = self._tryon_expiry[kind.name]
                table = self._tables.setdefault(kind.name, {})
                removed = 0
                while heap and heap[0][0] <= now:
                    expires, account, record_id = heapq.heappop(heap)
                    record = table.get(account, {}).get(record_id)
                    if record is not None and record.expires_at == expires:
                        self._adjust_refs(account, record.blob_refs, frozenset())
                        self._store_tryon(kind.name, table, account, record_id, record, None)
                        removed += 1
                counts[kind.name] = removed
            products = self._purge_products(now)
        return PurgeCounts(
            products=products,
            person_images=counts[engine.PERSON_IMAGES.name],
            generations=counts[engine.GENERATIONS.name],
        )

    def get_blob(self, account: str, sha256: str) -> Blob | None:
        """See :meth:`Repository.get_blob`."""
        with self._lock:
            return self._blobs.get((account, sha256))

    def close(self) -> None:
        """Nothing to release."""
