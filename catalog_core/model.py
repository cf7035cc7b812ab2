"""The product and the values around it, as frozen attrs classes.

Timestamps are timezone-aware UTC ``datetime`` values truncated to whole milliseconds, so what a
backend writes is exactly what it reads back. ``metadata`` and ``classifications`` are plain JSON
values: treat them as read-only (the backends hand out copies, never their own state).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

import attrs

__all__ = [
    "ANON_PREFIX",
    "MAX_WARNINGS",
    "UPLOAD_SCHEME",
    "Image",
    "Page",
    "PayloadWarning",
    "Product",
    "ProductRow",
    "Upload",
    "UpsertResult",
    "UseResult",
    "from_epoch_ms",
    "image_rows",
    "product_row",
    "to_epoch_ms",
    "truncate_to_ms",
]

#: Ids with this prefix are made by the catalog for one-shot products (R3, R22c).
ANON_PREFIX = "_anon_"
#: The most warnings a result keeps: the first ones, in the order they arose. Its
#: ``warning_count`` counts every one, so a body of a million unknown keys costs no more memory
#: than one of a hundred.
MAX_WARNINGS: Final = 100
#: ``sourceUrl`` of an uploaded image: ``upload://<sha256-hex>`` (R15).
UPLOAD_SCHEME = "upload://"
_UPLOAD_SCHEME_LENGTH: Final = len(UPLOAD_SCHEME)

_NO_BLOB_REFS: Final[frozenset[str]] = frozenset()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def truncate_to_ms(moment: datetime) -> datetime:
    """Return ``moment`` in UTC with the microseconds cut to whole milliseconds.

    Raises:
        ValueError: ``moment`` is naive (has no time zone).
    """
    if moment.tzinfo is UTC:  # what a clock of UTC datetimes returns: nothing to convert
        return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the catalog's clock must return timezone-aware datetimes")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def to_epoch_ms(moment: datetime) -> int:
    """Return ``moment`` as whole milliseconds since the Unix epoch."""
    # ``// timedelta(milliseconds=1)`` exactly (a timedelta's seconds and microseconds are never
    # negative), in two thirds of the time: every row written holds three or four of these.
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_epoch_ms(ms: int) -> datetime:
    """Return the UTC datetime ``ms`` milliseconds after the Unix epoch."""
    if 0 <= ms < _FLOAT_EXACT_MS:
        # ``fromtimestamp`` rounds a float's fraction to the nearest microsecond. Within 2**33
        # seconds after the epoch (until 2242) ``ms / 1000`` is within half a microsecond of
        # the exact time, so that is the exact time: in two thirds of the instructions of
        # adding a timedelta, and every stored product read makes three. (Not before the
        # epoch: some platforms' ``fromtimestamp`` refuses negative times.)
        return _from_timestamp(ms / 1000, UTC)
    return _EPOCH + timedelta(0, 0, 0, ms)


_from_timestamp: Final = datetime.fromtimestamp
_FLOAT_EXACT_MS: Final = 2**33 * 1000


@attrs.frozen
class Image:
    """One image of a product: where it is, its position, and optional classifications (R12-R16)."""

    source_url: str
    order: int
    classifications: Mapping[str, Any] | None = None

    @property
    def blob_sha256(self) -> str | None:
        """The SHA-256 of the uploaded bytes, or ``None`` for a remote URL."""
        if self.source_url.startswith(UPLOAD_SCHEME):
            return self.source_url[len(UPLOAD_SCHEME) :]
        return None


@attrs.frozen(kw_only=True)
class Product:
    """A product as stored: its key, fields, timestamps and write ``version`` (R28)."""

    account: str
    external_id: str
    title: str | None = None
    description: str | None = None
    metadata: Mapping[str, Any] | None = None
    valid_for_days: int | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    images: tuple[Image, ...] = ()
    version: int = 1

    @property
    def one_shot(self) -> bool:
        """Whether the catalog made this product's id (R22c); such products are never listed."""
        return self.external_id.startswith(ANON_PREFIX)

    @property
    def blob_refs(self) -> frozenset[str]:
        """The SHA-256 of every uploaded blob this product refers to."""
        # A list comprehension, not a generator: every write asks this of the old and the new.
        refs = [
            image.source_url[_UPLOAD_SCHEME_LENGTH:]
            for image in self.images
            if image.source_url.startswith(UPLOAD_SCHEME)
        ]
        return frozenset(refs) if refs else _NO_BLOB_REFS

    def is_expired(self, now: datetime) -> bool:
        """Whether the product is expired at ``now`` (R20)."""
        return self.expires_at is not None and now >= self.expires_at


# Made by setting their slots straight: attrs' generated ``__init__`` of a frozen class sets each
# field through ``object.__setattr__`` (and ``Product``'s takes them by keyword), which made the
# two products and four images of every upsert a seventh of its instructions. The slots' own
# descriptors set the same values in about half the time. Neither class has a validator, a
# converter or a post-init hook that this would skip: tests/test_model.py checks that, and that
# both ways make equal values of every field.
_new_object = object.__new__
_SET_SOURCE_URL, _SET_ORDER, _SET_CLASSIFICATIONS = (
    Image.__dict__[field.name].__set__ for field in attrs.fields(Image)
)
(
    _SET_ACCOUNT,
    _SET_EXTERNAL_ID,
    _SET_TITLE,
    _SET_DESCRIPTION,
    _SET_METADATA,
    _SET_VALID_FOR_DAYS,
    _SET_EXPIRES_AT,
    _SET_LAST_USED_AT,
    _SET_CREATED_AT,
    _SET_UPDATED_AT,
    _SET_IMAGES,
    _SET_VERSION,
) = (Product.__dict__[field.name].__set__ for field in attrs.fields(Product))


def new_image(source_url: str, order: int, classifications: Mapping[str, Any] | None) -> Image:
    """Return ``Image(source_url, order, classifications)``, made faster (see above)."""
    image: Image = _new_object(Image)
    _SET_SOURCE_URL(image, source_url)
    _SET_ORDER(image, order)
    _SET_CLASSIFICATIONS(image, classifications)
    return image


def new_product(
    account: str,
    external_id: str,
    title: str | None,
    description: str | None,
    metadata: Mapping[str, Any] | None,
    valid_for_days: int | None,
    expires_at: datetime | None,
    last_used_at: datetime | None,
    created_at: datetime,
    updated_at: datetime,
    images: tuple[Image, ...],
    version: int,
) -> Product:
    """Return the :class:`Product` of every field, in the class's order, made faster (see above)."""
    product: Product = _new_object(Product)
    _SET_ACCOUNT(product, account)
    _SET_EXTERNAL_ID(product, external_id)
    _SET_TITLE(product, title)
    _SET_DESCRIPTION(product, description)
    _SET_METADATA(product, metadata)
    _SET_VALID_FOR_DAYS(product, valid_for_days)
    _SET_EXPIRES_AT(product, expires_at)
    _SET_LAST_USED_AT(product, last_used_at)
    _SET_CREATED_AT(product, created_at)
    _SET_UPDATED_AT(product, updated_at)
    _SET_IMAGES(product, images)
    _SET_VERSION(product, version)
    return product


#: A product as plain values, the way a listing written out at once reads it from storage
#: without making a :class:`Product`: ``(external_id, title, description, metadata,
#: valid_for_days, expires_at, last_used_at, created_at, updated_at, images)``, each timestamp in
#: epoch milliseconds (:func:`to_epoch_ms`, ``None`` where the product's is ``None``) and each image
#: ``[source_url]``, or ``[source_url, classifications]`` when it has classifications, in order.
ProductRow: TypeAlias = tuple[
    str, str | None, str | None, Any, int | None, int | None, int | None, int, int, list[list[Any]]
]


def product_row(product: Product) -> ProductRow:
    """Return ``product`` as a :data:`ProductRow`: what a listing of rows holds for it."""
    expires_at, last_used_at = product.expires_at, product.last_used_at
    return (
        product.external_id,
        product.title,
        product.description,
        product.metadata,
        product.valid_for_days,
        None if expires_at is None else to_epoch_ms(expires_at),
        None if last_used_at is None else to_epoch_ms(last_used_at),
        to_epoch_ms(product.created_at),
        to_epoch_ms(product.updated_at),
        image_rows(product.images),
    )


def image_rows(images: tuple[Image, ...]) -> list[list[Any]]:
    """Return images as a :data:`ProductRow` holds them, and as the SQL backends store them."""
    return [
        [i.source_url, i.classifications] if i.classifications else [i.source_url] for i in images
    ]


@attrs.frozen
class PayloadWarning:
    """Something the catalog accepted but the caller should change (R17, R18, R32).

    ``code`` is one of ``DEPRECATED_IMAGE_SHAPE``, ``DEPRECATED_IMAGE_URLS``,
    ``DEPRECATED_PRODUCT_FIELD``, ``DEPRECATED_FIELD`` (a try-on field's old name, T6),
    ``UNKNOWN_FIELD`` and ``UNUSED_FILE``; ``path`` is the dotted
    path of the field or the name of the file part.
    """

    code: str
    path: str
    message: str = ""


@attrs.frozen
class Upload:
    """The bytes of one uploaded file part; ``mime_type`` is what the client claimed."""

    data: bytes
    mime_type: str | None = None


def _count_of(result: _WriteResult) -> int:
    return len(result.warnings)


@attrs.frozen
class _WriteResult:
    """What a write returns: the product, whether it was created, and the request's warnings.

    ``warnings`` holds the first :data:`MAX_WARNINGS` of them, ``warning_count`` all of them.
    """

    product: Product
    created: bool
    warnings: tuple[PayloadWarning, ...] = ()
    warning_count: int = attrs.field(default=attrs.Factory(_count_of, takes_self=True))


@attrs.frozen
class UpsertResult(_WriteResult):
    """The product after an accepted upsert, whether it was created, and any warnings.

    ``warnings`` holds the first :data:`MAX_WARNINGS` of them, ``warning_count`` all of them.
    """


@attrs.frozen
class UseResult(_WriteResult):
    """The product a try-on used, whether the use created it, and any warnings (R22).

    ``warnings`` holds the first :data:`MAX_WARNINGS` of them, ``warning_count`` all of them.
    """


@attrs.frozen
class Page:
    """One page of a listing (R24); ``count`` is the number of items on this page."""

    items: tuple[Product, ...]
    next_cursor: str | None
    has_more: bool

    @property
    def count(self) -> int:
        """The number of products on this page."""
        return len(self.items)
