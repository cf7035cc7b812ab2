"""Every failure the catalog reports, as one exception tree with stable codes (R29).

An error is a code, a message and field details. The HTTP status of each code is the wire
format's business: :mod:`catalog_core.wire.errors` holds that table.

The tree::

    CatalogError (Exception)
    ├── ValidationFailed            VALIDATION_FAILED         (also ValueError)
    ├── ExternalIdRequired          EXTERNAL_ID_REQUIRED      (also ValueError)
    ├── ProductImagesRequired       PRODUCT_IMAGES_REQUIRED   (also ValueError)
    ├── InvalidImageInput           INVALID_IMAGE_INPUT       (also ValueError)
    ├── MultipartFileNotFound       MULTIPART_FILE_NOT_FOUND  (also LookupError)
    ├── InvalidImage                INVALID_IMAGE             (also ValueError)
    ├── MissingApiKey               MISSING_API_KEY           (also PermissionError)
    ├── InvalidApiKey               INVALID_API_KEY           (also PermissionError)
    ├── ProductNotFound             PRODUCT_NOT_FOUND         (also LookupError)
    ├── ReservedExternalId          RESERVED_EXTERNAL_ID      (also ValueError)
    ├── VersionConflict             VERSION_CONFLICT
    ├── FileTooLarge                FILE_TOO_LARGE            (also ValueError)
    ├── PayloadTooLarge             PAYLOAD_TOO_LARGE         (also ValueError)
    ├── UnsupportedMediaType        UNSUPPORTED_MEDIA_TYPE    (also ValueError)
    ├── RateLimited                 RATE_LIMITED
    │   the try-on flow's codes (T20):
    ├── FileRequired                FILE_REQUIRED             (also ValueError)
    ├── CustomerImageRequired       CUSTOMER_IMAGE_REQUIRED   (also ValueError)
    ├── CustomerImageFetchFailed    CUSTOMER_IMAGE_FETCH_FAILED (also ValueError)
    ├── InsufficientCredits         INSUFFICIENT_CREDITS
    └── GenerationNotFound          GENERATION_NOT_FOUND      (also LookupError)

A caller that catches :class:`CatalogError` sees every failure a bad input can cause.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

__all__ = [
    "CatalogError",
    "CustomerImageFetchFailed",
    "CustomerImageRequired",
    "Detail",
    "ExternalIdRequired",
    "FileRequired",
    "FileTooLarge",
    "GenerationNotFound",
    "InsufficientCredits",
    "InvalidApiKey",
    "InvalidImage",
    "InvalidImageInput",
    "MissingApiKey",
    "MultipartFileNotFound",
    "PayloadTooLarge",
    "ProductImagesRequired",
    "ProductNotFound",
    "RateLimited",
    "ReservedExternalId",
    "UnsupportedMediaType",
    "ValidationFailed",
    "VersionConflict",
    "error_classes",
    "error_for_code",
    "sort_details",
    "tryon_error_classes",
]


@attrs.frozen
class Detail:
    """One field problem: a dotted ``path`` (``images.0.source.url``) and what is wrong with it."""

    path: str
    message: str

    def to_wire(self) -> dict[str, str]:
        """Return the ``{path, message}`` object of the wire format."""
        return {"path": self.path, "message": self.message}


_SEGMENT = re.compile(r"[^.]+")


def _path_key(detail: Detail) -> tuple[tuple[int, int, str], ...]:
    # Numeric segments compare as numbers and sort before names at the same depth (R30).
    return tuple(
        (0, int(seg), "") if seg.isdigit() else (1, 0, seg) for seg in _SEGMENT.findall(detail.path)
    )


def sort_details(details: Iterable[Detail]) -> tuple[Detail, ...]:
    """Sort details by path, numeric segments compared as numbers (R30)."""
    return tuple(sorted(details, key=lambda d: (_path_key(d), d.message)))


class _WireStatus:
    """``status`` of an error class or instance: the HTTP status of its code.

    The table is the wire format's (:data:`catalog_core.wire.errors.STATUS_BY_CODE`); it is
    imported when first read, so that the domain loads nothing of the wire.
    """

    def __get__(self, instance: object, owner: type[CatalogError]) -> int:
        from catalog_core.wire.errors import status_of

        return status_of(owner)


class CatalogError(Exception):
    """The base of every catalog failure.

    Attributes:
        code: the stable error code (``VALIDATION_FAILED``...).
        status: the HTTP status the server answers with.
        message: a sentence for people.
        details: field problems, sorted by path; empty when there are none.
    """

    code: ClassVar[str] = "INTERNAL"
    status = _WireStatus()

    def __init__(self, message: str, details: Iterable[Detail] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details: tuple[Detail, ...] = sort_details(details)

    def to_wire(self) -> dict[str, Any]:
        """Return ``{code, message, status, details?}``; ``details`` only when there are some.

        The body is made by :func:`catalog_core.wire.errors.error_to_wire`.
        """
        from catalog_core.wire.errors import error_to_wire

        return error_to_wire(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, details={list(self.details)!r})"


class ValidationFailed(CatalogError, ValueError):
    """A field has the wrong type, size or form; ``details`` lists every such field at once."""

    code = "VALIDATION_FAILED"

    @classmethod
    def at(cls, path: str, message: str) -> ValidationFailed:
        """Return the error for a single field problem."""
        return cls(f"Validation failed: {path}: {message}", [Detail(path, message)])

    @classmethod
    def of(cls, details: Iterable[Detail]) -> ValidationFailed:
        """Return the error listing all of ``details``."""
        ordered = sort_details(details)
        summary = "; ".join(f"{d.path}: {d.message}" for d in ordered[:3])
        more = f" (and {len(ordered) - 3} more)" if len(ordered) > 3 else ""
        return cls(f"Validation failed: {summary}{more}", ordered)


class ExternalIdRequired(CatalogError, ValueError):
    """The upsert has no ``externalId`` (missing, ``null`` or empty)."""

    code = "EXTERNAL_ID_REQUIRED"


class ProductImagesRequired(CatalogError, ValueError):
    """A product would be created, or left, with no image."""

    code = "PRODUCT_IMAGES_REQUIRED"


class InvalidImageInput(CatalogError, ValueError):
    """An image source holds neither or both of ``url`` and ``fileKey``."""

    code = "INVALID_IMAGE_INPUT"


class MultipartFileNotFound(CatalogError, LookupError):
    """An image names a ``fileKey`` that is not a file part of the request."""

    code = "MULTIPART_FILE_NOT_FOUND"


class InvalidImage(CatalogError, ValueError):
    """Uploaded bytes are not a JPEG, PNG, WebP, HEIC/HEIF or AVIF image."""

    code = "INVALID_IMAGE"


class MissingApiKey(CatalogError, PermissionError):
    """The request carries no API key."""

    code = "MISSING_API_KEY"


class InvalidApiKey(CatalogError, PermissionError):
    """The request's API key is not known."""

    code = "INVALID_API_KEY"


class ProductNotFound(CatalogError, LookupError):
    """No live product has that id in the account."""

    code = "PRODUCT_NOT_FOUND"

    @classmethod
    def for_id(cls, external_id: str) -> ProductNotFound:
        """Return the error for ``external_id``, with the public service's message."""
        return cls(f"Product '{external_id}' not found.")


class ReservedExternalId(CatalogError, ValueError):
    """An upsert names an id with the ``_anon_`` prefix."""

    code = "RESERVED_EXTERNAL_ID"


class VersionConflict(CatalogError):
    """The expected version does not match the product's current version."""

    code = "VERSION_CONFLICT"


class FileTooLarge(CatalogError, ValueError):
    """An uploaded file is over the file limit."""

    code = "FILE_TOO_LARGE"


class PayloadTooLarge(CatalogError, ValueError):
    """The whole request body is over the request limit."""

    code = "PAYLOAD_TOO_LARGE"

    @classmethod
    def for_size(cls, size: int, limit: int) -> PayloadTooLarge:
        """Return the error for a request body of ``size`` bytes over a limit of ``limit`` bytes.

        Every refusal of a measured body builds its message here, so they all read alike.
        """
        return cls(f"The request body is {size} bytes; the limit is {limit} bytes.")


class UnsupportedMediaType(CatalogError, ValueError):
    """The request body is neither JSON nor multipart."""

    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(CatalogError):
    """The account has sent too many requests."""

    code = "RATE_LIMITED"


class FileRequired(CatalogError, ValueError):
    """A person-image upload has no ``file`` part (T1)."""

    code = "FILE_REQUIRED"


class CustomerImageRequired(CatalogError, ValueError):
    """A try-on names no person image (T7)."""

    code = "CUSTOMER_IMAGE_REQUIRED"


class CustomerImageFetchFailed(CatalogError, ValueError):
    """A try-on's person image URL cannot be fetched (T7)."""

    code = "CUSTOMER_IMAGE_FETCH_FAILED"


class InsufficientCredits(CatalogError):
    """The account has no credit left for a try-on (T16)."""

    code = "INSUFFICIENT_CREDITS"


class GenerationNotFound(CatalogError, LookupError):
    """No generation of the account has that id (T13)."""

    code = "GENERATION_NOT_FOUND"

    @classmethod
    def for_id(cls, generation_id: str) -> GenerationNotFound:
        """Return the error for ``generation_id``."""
        return cls(f"Generation '{generation_id}' not found.")


_TRYON_CLASSES: tuple[type[CatalogError], ...] = (
    FileRequired,
    CustomerImageRequired,
    CustomerImageFetchFailed,
    InsufficientCredits,
    GenerationNotFound,
)

_BY_CODE: dict[str, type[CatalogError]] = {
    cls.code: cls
    for cls in (
        ValidationFailed,
        ExternalIdRequired,
        ProductImagesRequired,
        InvalidImageInput,
        MultipartFileNotFound,
        InvalidImage,
        MissingApiKey,
        InvalidApiKey,
        ProductNotFound,
        ReservedExternalId,
        VersionConflict,
        FileTooLarge,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
    )
}


def error_classes() -> tuple[type[CatalogError], ...]:
    """Return the class of every code of R29, in the rule book's order."""
    return tuple(_BY_CODE.values())


def tryon_error_classes() -> tuple[type[CatalogError], ...]:
    """Return the class of every code the try-on flow adds (T20), in the rule book's order."""
    return _TRYON_CLASSES


def error_for_code(code: str) -> type[CatalogError]:
    """Return the exception class of a wire ``code``.

    Raises:
        KeyError: ``code`` is neither one of the codes of R29 nor one of T20.
    """
    found = _BY_CODE.get(code)
    if found is None:
        found = {cls.code: cls for cls in _TRYON_CLASSES}[code]
    return found
