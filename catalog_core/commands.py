"""What a caller asked for, decoded from the wire: fields the caller omitted are ``UNSET``."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

from catalog_core._unset import UNSET, Unset

__all__ = ["ANY_VERSION", "AnyVersion", "ImageInput", "UpsertCommand"]


@attrs.frozen
class ImageInput:
    """One requested image: exactly one of ``url`` and ``file_key``, plus classifications (R12)."""

    url: str | None = None
    file_key: str | None = None
    classifications: Mapping[str, Any] | None = None
    #: Where the entry was in the payload (``images.0.source``), for error details.
    path: str = attrs.field(default="", eq=False)


@attrs.frozen(kw_only=True)
class UpsertCommand:
    """An upsert, or the product item of a use (R22): every product field may be ``UNSET``.

    ``external_id`` is ``None`` only in a one-shot use item (R22c).
    """

    external_id: str | None
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
        return all(
            value is UNSET
            for value in (
                self.title,
                self.description,
                self.metadata,
                self.valid_for_days,
                self.images,
            )
        )


class AnyVersion(enum.Enum):
    """The type of :data:`ANY_VERSION`."""

    ANY_VERSION = "*"

    def __repr__(self) -> str:
        return "ANY_VERSION"


#: ``if_version=ANY_VERSION``: the product must exist, at whatever version (HTTP ``If-Match: *``).
ANY_VERSION: Final = AnyVersion.ANY_VERSION
