"""Errors on the wire: the HTTP status of every code (R29) and the error body's shape.

The domain error (:class:`~catalog_core.CatalogError`) carries a code, a message and details;
which HTTP status a code is answered with is a fact of the wire format, kept here once. The
server, the command line and :attr:`CatalogError.status <catalog_core.CatalogError.status>`
all read this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from catalog_core.errors import CatalogError

__all__ = ["STATUS_BY_CODE", "error_to_wire", "status_of"]

#: The HTTP status of each error code: the codes of R29, in the rule book's order, those the try-on
#: flow adds (T20), then the codes
#: only the server meets (a path it does not serve, a method a path does not allow, a request
#: too slow, a media URL that serves nothing, a defect, try-on endpoints a server does not run, a
#: server at its connection limit).
STATUS_BY_CODE: Final[Mapping[str, int]] = MappingProxyType(
    {
        "VALIDATION_FAILED": 400,
        "EXTERNAL_ID_REQUIRED": 400,
        "PRODUCT_IMAGES_REQUIRED": 400,
        "INVALID_IMAGE_INPUT": 400,
        "MULTIPART_FILE_NOT_FOUND": 400,
        "INVALID_IMAGE": 400,
        "MISSING_API_KEY": 401,
        "INVALID_API_KEY": 401,
        "PRODUCT_NOT_FOUND": 404,
        "RESERVED_EXTERNAL_ID": 409,
        "VERSION_CONFLICT": 412,
        "FILE_TOO_LARGE": 413,
        "PAYLOAD_TOO_LARGE": 413,
        "UNSUPPORTED_MEDIA_TYPE": 415,
        "RATE_LIMITED": 429,
        "FILE_REQUIRED": 400,
        "CUSTOMER_IMAGE_REQUIRED": 400,
        "CUSTOMER_IMAGE_FETCH_FAILED": 400,
        "INSUFFICIENT_CREDITS": 402,
        "GENERATION_NOT_FOUND": 404,
        "ROUTE_NOT_FOUND": 404,
        "MEDIA_NOT_FOUND": 404,
        "METHOD_NOT_ALLOWED": 405,
        "REQUEST_TIMEOUT": 408,
        "INTERNAL": 500,
        "NOT_IMPLEMENTED": 501,
        "UNAVAILABLE": 503,
    }
)
_DEFECT: Final = 500


def status_of(error: CatalogError | type[CatalogError]) -> int:
    """Return the HTTP status of an error (or error class) (R29).

    A subclass that sets ``status`` itself (an embedder's ``class Teapot(CatalogError): code =
    "TEAPOT"; status = 418``) is answered with it; otherwise the status is its code's in
    :data:`STATUS_BY_CODE`, and 500 for a code not there.
    """
    cls = error if isinstance(error, type) else type(error)
    for klass in cls.__mro__:
        own = klass.__dict__.get("status")
        if own is not None:
            if type(own) is int:
                return own
            break  # CatalogError's own: the table's
    return STATUS_BY_CODE.get(cls.code, _DEFECT)


def error_to_wire(error: CatalogError) -> dict[str, Any]:
    """Return ``{code, message, status, details?}``; ``details`` only when there are some."""
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "status": status_of(error),
    }
    if error.details:
        body["details"] = [d.to_wire() for d in error.details]
    return body
