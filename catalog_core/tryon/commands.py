"""What a try-on caller asks for, typed: the wire decodes JSON bodies into these (T2, T5-T8)."""

from __future__ import annotations

from typing import Final

import attrs

from catalog_core.commands import UseCommand

__all__ = [
    "DEFAULT_KEEP_FOR_DAYS",
    "KEEP_FOR_DAYS",
    "PersonSource",
    "StartCommand",
    "UploadOptions",
]

#: The retentions a person image or a generation may ask for (T2, T8).
KEEP_FOR_DAYS: Final = (1, 3, 7)
DEFAULT_KEEP_FOR_DAYS: Final = 7


@attrs.frozen
class PersonSource:
    """The person image of a try-on: exactly one of ``image_id``, ``url`` and ``file_key`` (T7)."""

    image_id: str | None = None
    url: str | None = None
    file_key: str | None = None
    #: Where the source was in the body (``person.image.source``), for error details.
    path: str = attrs.field(default="person.image.source", eq=False)


@attrs.frozen(kw_only=True)
class UploadOptions:
    """The fields of a person-image upload besides its file (T2)."""

    crop: bool = True
    keep_for_days: int = DEFAULT_KEEP_FOR_DAYS
    customer_id: str | None = None


@attrs.frozen(kw_only=True)
class StartCommand:
    """A try-on (T5-T8): one product item (R22), a person image, and output options.

    ``person`` is ``None`` when the body named none (``CUSTOMER_IMAGE_REQUIRED``).
    """

    product: UseCommand
    person: PersonSource | None
    customer_id: str | None = None
    watermark: bool = True
    keep_for_days: int = DEFAULT_KEEP_FOR_DAYS
