"""What a caller asks for: typed commands whose omitted fields are ``UNSET``.

The wire decodes JSON payloads into these; an embedder may build them directly and pass them to
:meth:`Catalog.apply_upsert <catalog_core.Catalog.apply_upsert>` and
:meth:`Catalog.apply_use <catalog_core.Catalog.apply_use>`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

from catalog_core._unset import UNSET, Unset

__all__ = [
    "ANY_VERSION",
    "AnyVersion",
    "ImageInput",
    "ProductFields",
    "UpsertCommand",
    "UseCommand",
]


@attrs.frozen
class ImageInput:
    """One requested image: exactly one of ``url`` and ``file_key``, plus classifications (R12)."""

    url: str | None = None
    file_key: str | None = None
    classifications: Mapping[str, Any] | None = None
    #: Where the entry was in the payload (``images.0.source``), for error details.
    path: str = attrs.field(default="", eq=False)


@attrs.frozen(kw_only=True)
class ProductFields:
    """The product fields a command may give: each one ``UNSET`` when omitted (R6).

    ``None`` clears a field that may be ``null`` (``title``, ``description``, ``metadata``,
    ``validForDays``); ``images`` replaces the whole list when given (R8).
    """

    title: str | Unset | None = UNSET
    description: str | Unset | None = UNSET
    metadata: Mapping[str, Any] | Unset | None = UNSET
    valid_for_days: int | Unset | None = UNSET
    images: tuple[ImageInput, ...] | Unset = UNSET

    @property
    def file_keys(self) -> tuple[str, ...]:
        """The ``fileKey`` of every uploaded image, in image order."""
        if self.images is UNSET:
            return ()
        return tuple(i.file_key for i in self.images if i.file_key is not None)

    @property
    def is_reference(self) -> bool:
        """Whether no product field is given: a use of this shape only references (R22a)."""
        return all(getattr(self, name) is UNSET for name in _PRODUCT_FIELD_NAMES)


#: The names of the fields of :class:`ProductFields`, in order.
_PRODUCT_FIELD_NAMES: Final = tuple(field.name for field in attrs.fields(ProductFields))


@attrs.frozen(kw_only=True)
class UpsertCommand(ProductFields):
    """An upsert of the product ``external_id`` (R4-R18).

    ``external_id`` is ``None`` only where the wire decoded a try-on item without one; an upsert
    refuses it (``EXTERNAL_ID_REQUIRED``).
    """

    external_id: str | None


@attrs.frozen(kw_only=True)
class UseCommand(ProductFields):
    """The product item of a try-on (R22).

    With only ``external_id``, a reference to a live product (R22a); with product fields too, an
    inline upsert (R22b); without ``external_id``, a new one-shot product with a generated id
    (R22c).
    """

    external_id: str | None = None


class AnyVersion(enum.Enum):
    """The type of :data:`ANY_VERSION`."""

    ANY_VERSION = "*"

    def __repr__(self) -> str:
        return "ANY_VERSION"


#: ``if_version=ANY_VERSION``: the product must exist, at whatever version (HTTP ``If-Match: *``).
ANY_VERSION: Final = AnyVersion.ANY_VERSION
