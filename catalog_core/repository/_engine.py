"""The write algorithm of the shipped backends, written once for every kind of record.

A write, or a batch of writes, runs in three steps inside the backend's transaction:

1. the backend **loads** the stored records of the batch's keys (locking them where it locks);
2. :func:`plan_writes` runs the changes in order against them and computes a :class:`Plan`: the
   records to insert, update or delete, the blobs given with the writes, and the change of every
   blob's reference count; it refuses a write that moves a record to another key;
3. the backend **applies** the plan, and refuses it with :func:`missing_blob` when a blob the plan
   needs (:attr:`Plan.required`) is neither stored nor given.

:meth:`Repository.write <catalog_core.repository.base.Repository.write>` is a batch of one whose
change's exception propagates; ``write_many`` keeps each change's exception as its outcome. What
a backend writes is described by a :class:`RecordKind`, so a new kind of record reuses all of this.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Generic, TypeAlias, TypeVar, cast

import attrs

from catalog_core.errors import CatalogError
from catalog_core.images import Blob
from catalog_core.model import Product
from catalog_core.repository.base import TryOnChange, TryOnKeys, TryOnState, TryOnWrite, Write
from catalog_core.tryon.model import Credits, Generation, PersonImage
from catalog_core.tryon.rules import erased

__all__ = [
    "CREDITS",
    "GENERATIONS",
    "PERSON_IMAGES",
    "PRODUCTS",
    "Apply",
    "Erasing",
    "Load",
    "Plan",
    "RecordKind",
    "Session",
    "erase_customer",
    "missing_blob",
    "plan_one",
    "plan_writes",
    "write_batch",
    "write_one",
    "write_tryon",
]

R = TypeVar("R")
W = TypeVar("W")

_NO_REFS: Final[frozenset[str]] = frozenset()


@attrs.frozen
class RecordKind(Generic[R, W]):
    """One kind of record a repository stores: what the shared write algorithm needs of it.

    Every record is keyed by ``(account, id)``, the account first. A change of this kind takes the
    stored record (or ``None``) and returns a ``W`` that names the new record and its new blobs.

    Attributes:
        name: how messages name a record (``"product"``).
        id_name: how messages name its id (``"external id"``).
        key: the ``(account, id)`` of a record.
        blob_refs: the SHA-256 of every blob a record refers to (none: an empty set).
        record_of: the record a change's result stores (``None``: delete it).
        blobs_of: the blobs a change's result gives.
    """

    name: str
    id_name: str
    key: Callable[[R], tuple[str, str]]
    blob_refs: Callable[[R], frozenset[str]]
    record_of: Callable[[W], R | None]
    blobs_of: Callable[[W], Sequence[Blob]]


#: Products, keyed by ``(account, external_id)``; a product refers to its ``upload://`` images.
PRODUCTS: Final[RecordKind[Product, Write]] = RecordKind(
    name="product",
    id_name="external id",
    # attrgetter: these run for every write, and a getter written in C costs less than a call.
    key=operator.attrgetter("account", "external_id"),
    blob_refs=operator.attrgetter("blob_refs"),
    record_of=operator.attrgetter("product"),
    blobs_of=operator.attrgetter("blobs"),
)


#: A stored record of a kind without change objects, and the blobs it is given with.
Stored: TypeAlias = "tuple[Any, tuple[Blob, ...]]"

_NO_BLOBS: Final[tuple[Blob, ...]] = ()


def _no_refs(record: object) -> frozenset[str]:
    return _NO_REFS


#: Person images (T1-T4), keyed by ``(account, image_id)``; each refers to its blob.
PERSON_IMAGES: Final[RecordKind[PersonImage, Stored]] = RecordKind(
    name="person image",
    id_name="image id",
    key=operator.attrgetter("account", "image_id"),
    blob_refs=operator.attrgetter("blob_refs"),
    record_of=operator.itemgetter(0),
    blobs_of=operator.itemgetter(1),
)

#: Generations (T10-T15), keyed by ``(account, generation_id)``; each refers to the blobs of its
#: person snapshot and result.
GENERATIONS: Final[RecordKind[Generation, Stored]] = RecordKind(
    name="generation",
    id_name="generation id",
    key=operator.attrgetter("account", "generation_id"),
    blob_refs=operator.attrgetter("blob_refs"),
    record_of=operator.itemgetter(0),
    blobs_of=operator.itemgetter(1),
)

#: The id of an account's one credit balance record.
CREDITS_ID: Final = "credits"

#: Credit balances (T16), one per account, keyed by ``(account, "credits")``.
CREDITS: Final[RecordKind[Credits, Stored]] = RecordKind(
    name="credit balance",
    id_name="id",
    key=lambda credits: (credits.account, CREDITS_ID),
    blob_refs=_no_refs,
    record_of=operator.itemgetter(0),
    blobs_of=operator.itemgetter(1),
)


def missing_blob(kind: RecordKind[Any, Any], sha256: str) -> ValueError:
    """Return the error refusing a write whose record names a blob neither stored nor given."""
    return ValueError(f"{kind.name} refers to blob {sha256} that was neither stored nor given")


@attrs.define(slots=True)
class Plan(Generic[R]):
    """What a batch of changes asks the backend to store, computed by :func:`plan_writes`.

    Attributes:
        outcomes: one per change, in order: the record stored, ``None`` for a delete, or the
            exception the change raised.
        written: the final state of every id a change wrote (``None``: deleted).
        inserts: the records to insert: written, and not stored before.
        updates: the records to update in place.
        deletes: the ids of the stored records to delete.
        blobs: the blobs given with the writes, one per SHA-256, to insert where missing.
        deltas: the non-zero change of each blob's reference count.
    """

    outcomes: list[R | Exception | None]
    written: dict[str, R | None]
    inserts: list[R]
    updates: list[R]
    deletes: list[str]
    blobs: list[Blob]
    deltas: dict[str, int]

    @property
    def required(self) -> list[str]:
        """The blobs the writes newly refer to without giving them: they must be stored already."""
        given = {blob.sha256 for blob in self.blobs}
        return [sha for sha, delta in self.deltas.items() if delta > 0 and sha not in given]


#: A backend's load step: given the account and ids (each once, in order of first appearance),
#: read (and, where the backend locks, lock) their stored records.
Load: TypeAlias = Callable[[str, list[str]], Mapping[str, R]]
#: A backend's apply step: given the account and the plan, store it, or raise (then the backend
#: stores none of it).
Apply: TypeAlias = Callable[[str, Plan[R]], object]
#: The two steps of one backend for one record kind, in one transaction.
Session: TypeAlias = tuple[Load[R], Apply[R]]


def plan_writes(
    kind: RecordKind[R, W],
    account: str,
    changes: Sequence[tuple[str, Callable[[R | None], W]]],
    stored: Mapping[str, R],
    *,
    capture: bool,
) -> Plan[R]:
    """Run the changes in order against the stored records; return what to store.

    A change sees the record as left by the earlier changes of the batch to its key.

    Args:
        kind: what the records are.
        account: the account of every key.
        changes: ``(id, change)`` pairs, in order.
        stored: the stored record of each id that has one.
        capture: keep a change's exception as its outcome (and leave its key as it was), as
            ``write_many`` does; otherwise let it propagate, as ``write`` does.

    Raises:
        ValueError: a change stored a record under another key.
    """
    outcomes: list[R | Exception | None] = []
    written: dict[str, R | None] = {}
    blobs: dict[str, Blob] = {}
    for record_id, change in changes:
        old = written[record_id] if record_id in written else stored.get(record_id)
        if capture:
            try:
                result = change(old)
            except CatalogError as exc:  # the change refused: its key stays as it was
                # Without its traceback: that would hold this frame (and so the whole batch) in
                # a cycle with ``outcomes`` until the garbage collector ran.
                outcomes.append(exc.with_traceback(None))
                continue
            except Exception as exc:  # a defect of the change: kept whole, for the caller to raise
                outcomes.append(exc)
                continue
        else:
            result = change(old)
        new = kind.record_of(result)
        if new is not None and kind.key(new) != (account, record_id):
            raise ValueError(f"a write must keep the {kind.name}'s account and {kind.id_name}")
        for blob in kind.blobs_of(result):
            blobs.setdefault(blob.sha256, blob)
        written[record_id] = new
        outcomes.append(new)
    plan: Plan[R] = Plan(outcomes, written, [], [], [], list(blobs.values()), {})
    deltas = plan.deltas
    for record_id, new in written.items():
        old = stored.get(record_id)
        _place(plan, record_id, old, new)
        before = _NO_REFS if old is None else kind.blob_refs(old)
        after = _NO_REFS if new is None else kind.blob_refs(new)
        if before != after:
            for sha in after - before:
                deltas[sha] = deltas.get(sha, 0) + 1
            for sha in before - after:
                deltas[sha] = deltas.get(sha, 0) - 1
    for sha in [sha for sha, delta in deltas.items() if not delta]:
        del deltas[sha]
    return plan


def write_batch(
    kind: RecordKind[R, W],
    account: str,
    changes: Sequence[tuple[str, Callable[[R | None], W]]],
    load: Load[R],
    apply: Apply[R],
    *,
    capture: bool = True,
) -> list[R | Exception | None]:
    """Load the batch's stored records, plan the changes, apply the plan; return the outcomes.

    Args:
        kind: what the records are.
        account: the account of every key.
        changes: ``(id, change)`` pairs, in order.
        load: the backend's :data:`Load` step.
        apply: the backend's :data:`Apply` step.
        capture: see :func:`plan_writes`.
    """
    ids = list(dict.fromkeys(record_id for record_id, _ in changes))
    plan = plan_writes(kind, account, changes, load(account, ids), capture=capture)
    apply(account, plan)
    return plan.outcomes


def write_one(
    kind: RecordKind[R, W],
    account: str,
    record_id: str,
    change: Callable[[R | None], W],
    load: Load[R],
    apply: Apply[R],
) -> R | None:
    """Apply one change as a batch of one whose exception propagates; return what was stored."""
    plan = plan_one(kind, account, record_id, change, load(account, [record_id]).get(record_id))
    apply(account, plan)
    return cast("R | None", plan.outcomes[0])  # without capture, no outcome is an exception


def plan_one(
    kind: RecordKind[R, W],
    account: str,
    record_id: str,
    change: Callable[[R | None], W],
    old: R | None,
) -> Plan[R]:
    """Return :func:`plan_writes` of the one change ``(record_id, change)``, without capture.

    The same plan, built straight: every single write runs this, and the loops, dictionaries
    and passes that a batch needs cost a single write more than its planning itself.
    ``tests/repository/test_engine.py`` checks that both plan alike.

    Raises:
        ValueError: the change stored a record under another key.
    """
    result = change(old)
    new = kind.record_of(result)
    if new is not None and kind.key(new) != (account, record_id):
        raise ValueError(f"a write must keep the {kind.name}'s account and {kind.id_name}")
    blobs: list[Blob] = []
    given = kind.blobs_of(result)
    if given:
        unique: dict[str, Blob] = {}
        for blob in given:
            unique.setdefault(blob.sha256, blob)
        blobs = list(unique.values())
    plan: Plan[R] = Plan([new], {record_id: new}, [], [], [], blobs, {})
    _place(plan, record_id, old, new)
    before = _NO_REFS if old is None else kind.blob_refs(old)
    after = _NO_REFS if new is None else kind.blob_refs(new)
    if before != after:
        # One record: what it gains and what it loses are apart, so no delta is zero.
        deltas = plan.deltas
        for sha in after - before:
            deltas[sha] = 1
        for sha in before - after:
            deltas[sha] = -1
    return plan


def write_tryon(
    account: str,
    keys: TryOnKeys,
    change: TryOnChange,
    session: Callable[[RecordKind[Any, Any]], Session[Any]],
) -> TryOnWrite:
    """Run a try-on change over several kinds of records in one transaction (T10, R26).

    ``session`` gives the backend's load and apply steps of a kind, all in the one transaction
    the caller holds. Every record is loaded first (the product, person images, generations, then
    the balance: one order for every writer), ``change`` runs once, and each kind's plan is
    applied: products, person images, generations, credits. A blob given with the person images
    and generations is given to both plans (a backend inserts a blob only where it is missing).

    Raises:
        ValueError: ``change`` stored a record that is not one of ``keys``.
    """
    steps: dict[str, Session[Any]] = {}

    def step(kind: RecordKind[Any, Any]) -> Session[Any]:
        found = steps.get(kind.name)
        if found is None:
            found = steps[kind.name] = session(kind)
        return found

    product = None
    if keys.product is not None:
        product = step(PRODUCTS)[0](account, [keys.product]).get(keys.product)
    images = (
        dict(step(PERSON_IMAGES)[0](account, list(keys.person_images)))
        if keys.person_images
        else {}
    )
    generations = (
        dict(step(GENERATIONS)[0](account, list(keys.generations))) if keys.generations else {}
    )
    credits = step(CREDITS)[0](account, [CREDITS_ID]).get(CREDITS_ID) if keys.credits else None
    state = TryOnState(product, dict(images), dict(generations), credits)
    result = change(state)
    if result.product is not None:
        if keys.product is None:
            raise ValueError("a try-on write stored a product it did not read")
        written = result.product
        plan = plan_writes(
            PRODUCTS,
            account,
            ((keys.product, lambda _: written),),
            {keys.product: product} if product is not None else {},
            capture=False,
        )
        step(PRODUCTS)[1](account, plan)
    _apply_records(
        account, PERSON_IMAGES, keys.person_images, images, result.person_images, result.blobs, step
    )
    _apply_records(
        account, GENERATIONS, keys.generations, generations, result.generations, result.blobs, step
    )
    if result.credits is not None:
        if not keys.credits:
            raise ValueError("a try-on write stored a credit balance it did not read")
        _apply_records(
            account,
            CREDITS,
            (CREDITS_ID,),
            {} if credits is None else {CREDITS_ID: credits},
            ((CREDITS_ID, result.credits),),
            (),
            step,
            keyed=True,
        )
    return result


def _apply_records(
    account: str,
    kind: RecordKind[Any, Stored],
    allowed: tuple[str, ...],
    stored: Mapping[str, Any],
    records: Sequence[Any],
    blobs: tuple[Blob, ...],
    step: Callable[[RecordKind[Any, Any]], Session[Any]],
    *,
    keyed: bool = False,
) -> None:
    """Plan and apply the records of one kind a try-on write stores."""
    if not records:
        return
    pairs = list(records) if keyed else [(kind.key(r)[1], r) for r in records]
    for record_id, _ in pairs:
        if record_id not in allowed:
            raise ValueError(f"a try-on write stored a {kind.name} it did not read: {record_id}")
    changes = [
        (record_id, lambda _old, record=record: (record, blobs)) for record_id, record in pairs
    ]
    plan = plan_writes(kind, account, changes, stored, capture=False)
    step(kind)[1](account, plan)


#: A backend's steps of an erasure for one kind, in one transaction: read (and, where the backend
#: locks, lock) the next batch of the customer's records, by id; apply a plan.
Erasing: TypeAlias = tuple[Callable[[], Mapping[str, R]], Apply[R]]


def erase_customer(
    account: str, steps: Callable[[RecordKind[Any, Any]], Erasing[Any]], *, batch: int
) -> int:
    """Erase a customer's data (T18) with a backend's steps, in the transaction the caller holds.

    Person images tagged with the customer are deleted; generations are stripped of the customer
    id, person snapshot and result (:func:`catalog_core.tryon.rules.erased`). Each batch is
    planned and applied as any write (blob references follow) and leaves the set the next one is
    read from, so the walk ends; a batch smaller than ``batch`` is the last.

    Returns:
        How many records were deleted or changed.
    """
    touched = 0
    kinds: tuple[tuple[RecordKind[Any, Stored], Callable[[Any], Any] | None], ...] = (
        (PERSON_IMAGES, None),
        (GENERATIONS, erased),
    )
    for kind, strip in kinds:
        read, apply = steps(kind)
        while found := read():
            changes = [
                (record_id, lambda old, strip=strip: (None if strip is None else strip(old), ()))
                for record_id in found
            ]
            apply(account, plan_writes(kind, account, changes, found, capture=False))
            touched += len(found)
            if len(found) < batch:
                break
    return touched


def _place(plan: Plan[R], record_id: str, old: R | None, new: R | None) -> None:
    """Put the write of ``record_id`` among the plan's deletes, inserts or updates, if any."""
    if new is None:
        if old is not None:
            plan.deletes.append(record_id)
    elif old is None:
        plan.inserts.append(new)
    else:
        plan.updates.append(new)
