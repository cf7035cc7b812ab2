"""The local HTTP stand-in for the public Try-On API: products and try-ons (the ``server`` extra).

``create_app(catalog)`` returns the Starlette application; ``catalog-core serve`` runs it under
uvicorn. See ``docs/server.md`` for the endpoints, headers and the choices made where the public
service is silent.
"""

from catalog_core.server.app import API_BASE, create_app
from catalog_core.server.errors import MethodNotAllowed, RouteNotFound, ServerError
from catalog_core.server.openapi import OPENAPI_PATH, openapi_document
from catalog_core.server.responses import WARNINGS_COUNT_HEADER, WARNINGS_HEADER

__all__ = [
    "API_BASE",
    "OPENAPI_PATH",
    "WARNINGS_COUNT_HEADER",
    "WARNINGS_HEADER",
    "MethodNotAllowed",
    "RouteNotFound",
    "ServerError",
    "create_app",
    "openapi_document",
]
