"""The errors only the server can meet: a path it does not serve, a method a path does not allow.

They complete the tree of :mod:`catalog_core.errors` for HTTP and have the same wire shape, so a
client handles every answer of the server the same way.
"""

from __future__ import annotations

from catalog_core.errors import CatalogError

__all__ = [
    "MediaNotFound",
    "MethodNotAllowed",
    "RequestTimeout",
    "RouteNotFound",
    "ServerError",
    "ServiceUnavailable",
    "TryOnUnavailable",
]


class RouteNotFound(CatalogError, LookupError):
    """No endpoint has this path."""

    code = "ROUTE_NOT_FOUND"


class MethodNotAllowed(CatalogError):
    """The path exists but not with this method; the response's ``Allow`` header lists them."""

    code = "METHOD_NOT_ALLOWED"


class ServerError(CatalogError):
    """Something failed that is not the request's fault; the server's log has the traceback."""

    code = "INTERNAL"


class ServiceUnavailable(CatalogError):
    """The server is shutting down: it stopped before it could finish the request."""

    code = "UNAVAILABLE"


class RequestTimeout(CatalogError):
    """The client stopped sending: its head missed the header timeout, or its body the body one."""

    code = "REQUEST_TIMEOUT"


class MediaNotFound(CatalogError, LookupError):
    """A media URL serves nothing: unknown, a wrong token, expired or erased (T3, T15)."""

    code = "MEDIA_NOT_FOUND"


class TryOnUnavailable(CatalogError):
    """The served catalog's storage keeps no try-on state: the try-on endpoints are off."""

    code = "NOT_IMPLEMENTED"
