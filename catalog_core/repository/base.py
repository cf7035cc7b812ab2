"""The repository contract: the little a storage backend must do for the rules to hold.

A backend stores products keyed by ``(account, external_id)`` and uploaded blobs keyed by
``(account, sha256)``. It knows nothing of the rules beyond expiry (to skip and purge expired
products) and blob references (a product refers to the blobs of its ``upload://`` images). Every
rule-bearing decision is taken by :class:`~catalog_core.Catalog` inside :meth:`Repository.write`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from catalog_core.images import Blob
from catalog_core.model import Product, ProductRow

if TYPE_CHECKING:
    from catalog_core.tryon.model import Credits, Generation, PersonImage

__all__ = [
    "BatchRepository",
    "Change",
    "GenerationsRepository",
    "PurgeCounts",
    "Repository",
    "RowListingRepository",
    "ScanRepository",
    "TryOnChange",
    "TryOnKeys",
    "TryOnRepository",
    "TryOnState",
    "TryOnWrite",
    "Write",
]


@attrs.frozen
class Write:
    """What a change asks the repository to store for its key.

    Attributes:
        product: the new state of the product, or ``None`` to delete it.
        blobs: uploaded blobs the product names; stored (once per account and SHA-256) in the same
            transaction as the product.
    """

    product: Product | None
    blobs: tuple[Blob, ...] = ()


#: A change: given the stored product of a key (expired or not, ``None`` when there is none),
#: return what to store, or raise to store nothing.
Change = Callable[[Product | None], Write]


@runtime_checkable
class Repository(Protocol):
    """Storage for a catalog. Every method is safe to call from several threads at once.

    A repository may also have ``cursor_secret() -> bytes``, which is optional (so that
    backends written before it keep working) and which every shipped backend has: at least 16
    bytes of secret randomness, made once with the storage (stored with its schema) and the same
    for every handle and process that opens that storage. :meth:`Catalog.list
    <catalog_core.Catalog.list>` keys its cursors with it, so a cursor read by another process
    on the same storage is accepted, while one seen outside cannot be checked against guessed
    accounts. Without it, a :class:`~catalog_core.Catalog` keys its cursors with a random secret
    of its own: they are then accepted only by the ``Catalog`` object that made them.
    """

    def get(self, account: str, external_id: str) -> Product | None:
        """Return the stored product of the key, expired or not, or ``None``.

        Never returns a product of another account (R1).
        """
        ...

    def write(self, account: str, external_id: str, change: Change) -> Product | None:
        """Apply ``change`` to the key atomically and return what was stored.

        The backend reads the stored product, calls ``change`` with it and stores the result, all
        in one transaction: concurrent writes to one key are serialised, so no update is lost
        (R27), and the product, its blob references and its new blobs change together or not at
        all (R26). When ``change`` raises, nothing is stored and the exception propagates
        unchanged. ``change`` is pure and may be called more than once when a backend retries.
        Blob reference counts follow the products: a blob that no stored product refers to any
        more stays until :meth:`purge_expired` removes it.

        Returns:
            The stored product, or ``None`` when the change deleted it.
        """
        ...

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[Product]:
        """Return up to ``limit`` products of ``account`` whose id sorts after ``after``.

        Only live products (not expired at ``now``, R20) that are not one-shot (R22c) are listed,
        in ascending code-point order of ``external_id`` (R24). The cost grows with ``limit``,
        not with the size of the catalog.
        """
        ...

    def purge_expired(self, now: datetime) -> int:
        """Delete the products expired at ``now``, then the blobs no product refers to (R21).

        Works in bounded batches, costs time in proportion to what it removes, and returns the
        number of products removed. A :class:`TryOnRepository` (every shipped backend) deletes
        the expired try-on records too: this is :meth:`TryOnRepository.purge`'s product count.
        """
        ...

    def get_blob(self, account: str, sha256: str) -> Blob | None:
        """Return the stored blob of ``account`` with that SHA-256, or ``None``."""
        ...

    def close(self) -> None:
        """Release connections; the repository is not used afterwards."""
        ...


@runtime_checkable
class BatchRepository(Repository, Protocol):
    """A repository that can also apply many writes of one account in one transaction.

    Optional: :meth:`Catalog.upsert_many <catalog_core.Catalog.upsert_many>` uses it when the
    repository has it, and one :meth:`Repository.write` per item otherwise. All three shipped
    backends have it; a batch costs the SQL ones one transaction and a few statements instead of
    a transaction per product.
    """

    def write_many(
        self, account: str, changes: Sequence[tuple[str, Change]]
    ) -> list[Product | Exception | None]:
        """Apply ``(external_id, change)`` pairs of ``account`` in order, in one transaction.

        Each change is what :meth:`Repository.write` takes, and sees the stored product of its key
        as left by the earlier changes of the batch. A change that raises an ``Exception``
        leaves its key untouched, its exception is its outcome, and the others still apply. If
        storing fails, nothing of the batch is stored and the error propagates.

        Returns:
            One outcome per change, in order: the stored product, ``None`` for a delete, or the
            exception the change raised.
        """
        ...


@runtime_checkable
class ScanRepository(Repository, Protocol):
    """A repository that can also walk every live product of every account, in key order.

    Optional: ``catalog-core export`` and ``copy`` (:mod:`catalog_core.transfer`) need it, and
    refuse a repository without it; the rules never use it. All three shipped backends have it.
    It crosses accounts by design: it is for the operator who moves a whole catalog, never for
    a tenant's request (R1).
    """

    def scan_live(
        self,
        *,
        account: str | None,
        after: tuple[str, str] | None,
        limit: int,
        now: datetime,
    ) -> Sequence[Product]:
        """Return up to ``limit`` live products whose key sorts after ``after``.

        Every live product (not expired at ``now``, R20), one-shot ones (R22c) included, of
        ``account``, or of every account when it is ``None``, in ascending code-point order of
        ``(account, external_id)``. ``after`` is the key of the previous page's last product
        (``None`` for the first page). A product that exists for the whole walk is returned
        exactly once. The cost grows with ``limit``, not with the size of the catalog.
        """
        ...

    def count_live(self, *, account: str | None, now: datetime) -> int:
        """Return how many products :meth:`scan_live` would walk; it may read them all."""
        ...


@runtime_checkable
class RowListingRepository(Repository, Protocol):
    """A repository that can also list a page as plain rows, making no ``Product``.

    Optional: :meth:`Catalog.list_json <catalog_core.Catalog.list_json>` (the server's listing)
    uses it when the class that defines the repository's ``list_live`` defines it too, and
    :meth:`Repository.list_live` otherwise; a page written out at once then costs no
    ``Product``, ``Image`` or ``datetime`` objects. The SQL backends have it; the memory
    backend, which holds products as they were written, lists them.
    """

    def list_live_rows(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[ProductRow]:
        """Return what :meth:`Repository.list_live` returns, each product as its row.

        The row of a product is :func:`~catalog_core.model.product_row` of it, which numbers
        the images in order and leaves out empty classifications, as the SQL backends store
        them; the contract suite checks that the two agree.
        """
        ...


# -- the try-on flow's state (T1-T24) --------------------------------------------------------


@attrs.frozen
class TryOnKeys:
    """The records of one account a try-on write reads and may write, in one transaction.

    Attributes:
        product: the product's external id, or ``None`` for none.
        person_images: the ids of person images to read (and the id of a new one to write).
        generations: the ids of generations to read (and the id of a new one to write).
        credits: whether the account's credit balance is read (and may be written).
    """

    product: str | None = None
    person_images: tuple[str, ...] = ()
    generations: tuple[str, ...] = ()
    credits: bool = False


@attrs.frozen
class TryOnState:
    """What a try-on write reads: the stored records of its keys (expired or not; ``None``: none).

    ``person_images`` and ``generations`` hold only the ids that have a stored record.
    """

    product: Product | None = None
    person_images: dict[str, PersonImage] = attrs.Factory(dict)
    generations: dict[str, Generation] = attrs.Factory(dict)
    credits: Credits | None = None


@attrs.frozen
class TryOnWrite:
    """What a try-on write stores; every record must be one of the write's keys.

    Attributes:
        product: the product's new state (a :class:`Write`, which may delete it), or ``None`` to
            leave it as it is.
        person_images: person images to store (inserted or replaced).
        generations: generations to store (inserted or replaced).
        credits: the new balance, or ``None`` to leave it.
        blobs: blobs the person images and generations name, stored once per account and
            SHA-256 in the same transaction.
    """

    product: Write | None = None
    person_images: tuple[PersonImage, ...] = ()
    generations: tuple[Generation, ...] = ()
    credits: Credits | None = None
    blobs: tuple[Blob, ...] = ()


#: A try-on change: given the stored records of its keys, return what to store, or raise to
#: store nothing. Pure: a backend may call it more than once when it retries.
TryOnChange = Callable[[TryOnState], TryOnWrite]


@attrs.frozen
class PurgeCounts:
    """What one purge removed (R21, T22)."""

    products: int = 0
    person_images: int = 0
    generations: int = 0


@runtime_checkable
class TryOnRepository(Repository, Protocol):
    """A repository that also stores the try-on flow's state.

    Person images, generations and credit balances, each keyed by account (R1). All three
    shipped backends are one.

    Person images and generations refer to blobs of the account's blob store, counted like a
    product's (a blob stays while any product, person image or generation names it).
    """

    def get_person_image(self, account: str, image_id: str) -> PersonImage | None:
        """Return the stored person image, expired or not, or ``None``."""
        ...

    def get_generation(self, account: str, generation_id: str) -> Generation | None:
        """Return the stored generation, expired or not, or ``None``."""
        ...

    def get_credits(self, account: str) -> Credits | None:
        """Return the account's stored balance, or ``None`` when it has none yet."""
        ...

    def write_tryon(self, account: str, keys: TryOnKeys, change: TryOnChange) -> TryOnWrite:
        """Apply ``change`` to the records of ``keys`` atomically and return what it stored.

        As :meth:`Repository.write`: the records are read and locked, ``change`` runs, and what
        it returns is stored in the same transaction, all of it or nothing (T10, R26); concurrent
        writes to the same records (the account's balance, say) are serialised, so a balance is
        never overdrawn (T16). When ``change`` raises, nothing is stored and the exception
        propagates unchanged.

        Raises:
            ValueError: the write stores a record that is not one of ``keys``, or names a blob
                neither stored nor given.
        """
        ...

    def erase_customer(self, account: str, customer_id: str) -> int:
        """Erase a customer's data (T18).

        Delete the account's person images tagged with ``customer_id``; strip its generations of
        the customer id, person snapshot and result.

        Atomic, idempotent, and only ``account`` is touched (T19). Returns the number of records
        deleted or changed.
        """
        ...

    def purge(self, now: datetime) -> PurgeCounts:
        """Delete what has expired at ``now``, then the blobs nothing refers to (R21, T22).

        Products, person images and generations; :meth:`Repository.purge_expired` is its product
        count.

        Works in bounded batches and costs time in proportion to what it removes.
        """
        ...


@runtime_checkable
class GenerationsRepository(TryOnRepository, Protocol):
    """A try-on repository that can also list an account's generations, newest first.

    Optional: the server's local listing of generations (the dashboard's) needs it, and answers
    without it that the storage cannot list them; the rules never use it. All three shipped
    backends have it.
    """

    def list_generations(
        self,
        account: str,
        *,
        before: tuple[datetime, str] | None,
        limit: int,
        now: datetime,
        product: str | None = None,
    ) -> Sequence[Generation]:
        """Return up to ``limit`` live generations of ``account``, newest first.

        Live: not expired at ``now`` (T22). Newest first: descending ``(created_at,
        generation_id)``; ``before`` is that pair of the previous page's last generation
        (``None`` for the first page), and a page holds only generations that sort after it. With
        ``product`` (a valid external id, R2, as every snapshot's is), only the generations of
        that product (their snapshot's, T15). A generation that exists for the whole walk is
        returned exactly once. A page's cost grows with ``limit``, not with the account's
        generations (expired ones not purged yet aside, as R24's listing).
        """
        ...
