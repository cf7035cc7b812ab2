"""The try-on flow's values: person images, generations, credit balances (T1-T24).

Frozen attrs classes, like the product's. Timestamps are aware UTC ``datetime`` values truncated
to whole milliseconds. A generation's status is not stored as such: it is a function of its
record and the time (:func:`catalog_core.tryon.rules.status_at`), as a product's expiry is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import attrs

from catalog_core.model import Image

__all__ = [
    "COMPLETED",
    "FAILED",
    "GENERATION_ID_PREFIX",
    "IMAGE_ID_PREFIX",
    "PENDING",
    "PROCESSING",
    "Credits",
    "Generation",
    "GenerationView",
    "Person",
    "PersonImage",
    "ProductSnapshot",
    "Status",
]

#: Person image ids are ``img_`` and 24 random characters of ``[a-z0-9]`` (T3).
IMAGE_ID_PREFIX: Final = "img_"
#: Generation ids are ``gen_`` and 24 random characters of ``[a-z0-9]`` (T10).
GENERATION_ID_PREFIX: Final = "gen_"

Status = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
PENDING: Final = "PENDING"
PROCESSING: Final = "PROCESSING"
COMPLETED: Final = "COMPLETED"
FAILED: Final = "FAILED"


@attrs.frozen(kw_only=True)
class PersonImage:
    """A stored photo of a shopper (T1-T4).

    Attributes:
        account: the owner (R1).
        image_id: ``img_…``, opaque and unguessable.
        sha256: the blob holding its bytes (in the account's blob store).
        mime_type: the type recognised from its leading bytes (R15).
        token: the secret of its URL (T3): random, not derived from the id.
        crop: what the upload asked for (recorded; the stand-in stores the bytes as sent).
        customer_id: the caller's end-user id, or ``None``.
        created_at: when it was uploaded.
        expires_at: when it is gone (``keep_for_days`` after the upload).
    """

    account: str
    image_id: str
    sha256: str
    mime_type: str
    token: str
    crop: bool = True
    customer_id: str | None = None
    created_at: datetime
    expires_at: datetime

    @property
    def blob_refs(self) -> frozenset[str]:
        """The blob this image refers to."""
        return frozenset((self.sha256,))

    def is_expired(self, now: datetime) -> bool:
        """Whether the image is gone at ``now`` (T4)."""
        return now >= self.expires_at


@attrs.frozen
class ProductSnapshot:
    """What a generation keeps of its product (T15): later changes to the product miss it."""

    external_id: str
    title: str | None
    description: str | None
    images: tuple[Image, ...]

    @property
    def blob_refs(self) -> frozenset[str]:
        """The SHA-256 of every uploaded image of the snapshot: kept while it is (T15)."""
        return frozenset(
            sha for sha in (image.blob_sha256 for image in self.images) if sha is not None
        )


@attrs.frozen
class Person:
    """What a generation keeps of its person image: stored bytes, or a URL never fetched (T7).

    Exactly one of ``sha256`` and ``url``; both ``None`` once the customer is erased (T18).
    """

    sha256: str | None = None
    mime_type: str | None = None
    url: str | None = None


@attrs.frozen(kw_only=True)
class Generation:
    """One try-on run (T10-T15), with the timeline its engine gave it.

    Its status at a time ``t`` is ``PENDING`` before ``processing_at``, ``PROCESSING`` until
    ``finished_at`` (forever while that is ``None``: an engine that reports later), and ``outcome``
    from then on.

    Attributes:
        account: the owner (R1).
        generation_id: ``gen_…``, opaque and unguessable.
        product: the product snapshot.
        person: the person snapshot.
        customer_id: the caller's end-user id, or ``None`` (cleared by an erasure, T18).
        watermark: what ``output.watermark`` asked for (recorded).
        keep_for_days: the retention of its images and of itself (T8, T22).
        created_at: when it was accepted.
        processing_at: when it leaves ``PENDING``.
        finished_at: when it ends, or ``None`` while its engine has not said.
        outcome: ``COMPLETED`` or ``FAILED`` once it ends.
        result: the result image: stored bytes, or a URL (the person image unchanged, T14).
        error_code: why it failed (``PRODUCT_IMAGE_FETCH_FAILED``), when it did.
        error_message: the same for people.
        token: the secret of its result URL (T15).
        expires_at: ``keep_for_days`` after its creation: then it is gone (T22).
    """

    account: str
    generation_id: str
    product: ProductSnapshot
    person: Person
    customer_id: str | None = None
    watermark: bool = True
    keep_for_days: int = 7
    created_at: datetime
    processing_at: datetime
    finished_at: datetime | None = None
    outcome: Literal["COMPLETED", "FAILED"] | None = None
    result: Person | None = None
    error_code: str | None = None
    error_message: str | None = None
    token: str
    expires_at: datetime

    @property
    def blob_refs(self) -> frozenset[str]:
        """The blobs of its product snapshot's uploaded images, person snapshot and result."""
        refs = set(self.product.blob_refs)
        if self.person.sha256 is not None:
            refs.add(self.person.sha256)
        if self.result is not None and self.result.sha256 is not None:
            refs.add(self.result.sha256)
        return frozenset(refs)

    def is_expired(self, now: datetime) -> bool:
        """Whether the generation is gone at ``now`` (T22)."""
        return now >= self.expires_at


@attrs.frozen
class GenerationView:
    """A generation as its account sees it at one time (T12).

    ``result`` is set only when ``status`` is ``COMPLETED`` and the result is still kept;
    ``error_code`` and ``error_message`` only when ``FAILED``.
    """

    generation_id: str
    status: Status
    product_external_id: str
    created_at: datetime
    updated_at: datetime
    result: Person | None = None
    error_code: str | None = None
    error_message: str | None = None
    token: str = attrs.field(default="", repr=False)


@attrs.frozen
class Credits:
    """An account's credit balance (T16).

    ``balance`` is what is settled; ``refunds`` are the times at which credits reserved by
    generations that end ``FAILED`` come back. The balance at ``t`` is ``balance`` plus the
    refunds due by ``t`` (:func:`catalog_core.tryon.rules.balance_at`): exact without a worker.
    """

    account: str
    balance: int
    refunds: tuple[datetime, ...] = ()
