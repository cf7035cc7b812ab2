"""The fields of the wire format, in one table: wire name, attribute, kind, limit, nullability.

Decoding (:mod:`catalog_core.wire.decode`), encoding (:mod:`catalog_core.wire.encode`) and the
server's OpenAPI document read these tables, so a field is named, bounded and ordered here once.
A field added to the product is added here, to :class:`~catalog_core.model.Product` and, when a
body may set it, to :class:`~catalog_core.commands.UpsertCommand`; a new :class:`Kind` also needs
its reader in ``decode``, its hook in ``encode`` and its schema in ``server/openapi.py``.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from typing import Final

import attrs

from catalog_core.limits import Limits

__all__ = [
    "IMAGE_ENTRY_KEYS",
    "IMAGE_FIELDS",
    "MAX_VALID_FOR_DAYS",
    "PRODUCT_FIELDS",
    "SOURCE_KEYS",
    "UPSERT_KEYS",
    "WRITTEN_IMAGE_FIELDS",
    "WRITTEN_PRODUCT_FIELDS",
    "Field",
    "Kind",
]

#: The longest lifetime a product may have, in days (R10).
MAX_VALID_FOR_DAYS: Final = 365


class Kind(enum.Enum):
    """What a field holds, which decides how it is read, written and described."""

    ID = "id"  # a product id (R2)
    TEXT = "text"  # a string of at most a limit of characters (R7)
    JSON = "json"  # a JSON object of at most a limit of bytes as compact JSON (R9, R16)
    DAYS = "days"  # a whole number of days from 1 to MAX_VALID_FOR_DAYS (R10)
    TIMESTAMP = "timestamp"  # a UTC instant, written with three fractional digits (R31)
    IMAGES = "images"  # the product's images, replaced whole (R8, R12)
    IMAGE_URLS = "image_urls"  # the deprecated list of plain URLs (R17)
    URL = "url"  # an image's URL as given, or upload://<sha256>
    ORDER = "order"  # an image's position from 0


def _bound_of(field: Field) -> Callable[[Limits], int]:
    if field.limit is None:

        def no_limit(limits: Limits) -> int:
            raise TypeError(f"{field.wire} has no limit")

        return no_limit
    # A C getter: decoding asks a field's bound several times a body.
    return operator.attrgetter(field.limit)


@attrs.frozen
class Field:
    """One key of a wire object.

    Attributes:
        wire: the key on the wire.
        attribute: the attribute of the product (or image) it is read into and written from.
        kind: what it holds.
        nullable: whether ``null`` is a value of it.
        limit: the :class:`~catalog_core.Limits` attribute that bounds it, if one does.
        read: whether a request body may set it.
        written: whether the product on the wire holds it (R31).
        omit_none: written only when it is not ``None`` (an image's ``classifications``).
    """

    wire: str
    attribute: str
    kind: Kind
    nullable: bool = False
    limit: str | None = None
    read: bool = True
    written: bool = True
    omit_none: bool = False
    #: ``bound(limits)`` is this field's limit under ``limits`` (a TypeError if it has none).
    bound: Callable[[Limits], int] = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_bound_of, takes_self=True)
    )


#: The keys of a product, in the order of R31; ``imageUrls`` is only read, into ``images``.
PRODUCT_FIELDS: Final = (
    Field("externalId", "external_id", Kind.ID, limit="max_external_id_length"),
    Field("title", "title", Kind.TEXT, nullable=True, limit="max_title_length"),
    Field("description", "description", Kind.TEXT, nullable=True, limit="max_description_length"),
    Field("metadata", "metadata", Kind.JSON, nullable=True, limit="max_metadata_bytes"),
    Field("validForDays", "valid_for_days", Kind.DAYS, nullable=True),
    Field("expiresAt", "expires_at", Kind.TIMESTAMP, nullable=True, read=False),
    Field("lastUsedAt", "last_used_at", Kind.TIMESTAMP, nullable=True, read=False),
    Field("createdAt", "created_at", Kind.TIMESTAMP, read=False),
    Field("updatedAt", "updated_at", Kind.TIMESTAMP, read=False),
    Field("images", "images", Kind.IMAGES, limit="max_images"),
    Field("imageUrls", "images", Kind.IMAGE_URLS, limit="max_images", written=False),
)
#: The keys of an image on the wire (R31); an image entry of a body is read by its own shape.
IMAGE_FIELDS: Final = (
    Field("sourceUrl", "source_url", Kind.URL, read=False),
    Field("order", "order", Kind.ORDER, read=False),
    Field(
        "classifications",
        "classifications",
        Kind.JSON,
        nullable=True,
        limit="max_classifications_bytes",
        omit_none=True,
    ),
)
WRITTEN_PRODUCT_FIELDS: Final = tuple(field for field in PRODUCT_FIELDS if field.written)
WRITTEN_IMAGE_FIELDS: Final = tuple(field for field in IMAGE_FIELDS if field.written)
#: The keys an upsert body or a use item may hold; any other is ignored with a warning (R18).
UPSERT_KEYS: Final = frozenset(field.wire for field in PRODUCT_FIELDS if field.read)
#: The keys of a source object (R12), and of an image entry: ``{source, classifications?}`` or
#: the deprecated flat ``{url | fileKey, classifications?}`` (R17).
SOURCE_KEYS: Final = ("url", "fileKey")
IMAGE_ENTRY_KEYS: Final = ("source", *(f.wire for f in IMAGE_FIELDS if f.read), *SOURCE_KEYS)
