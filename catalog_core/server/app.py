"""The HTTP stand-in for the public products endpoints: a Starlette application on a Catalog.

Routes live under ``/tryon/v1``. Every answer that is not a success is the error shape of R29
with the HTTP status equal to its ``status``; the catalog's blocking calls run in Starlette's
thread pool, so one slow write never stalls the event loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog_core.catalog import DEFAULT_PAGE_SIZE, Catalog
from catalog_core.errors import (
    CatalogError,
    PayloadTooLarge,
    ValidationFailed,
    VersionConflict,
)
from catalog_core.model import PayloadWarning, Product, Upload, UpsertResult
from catalog_core.server.body import (
    DEFAULT_MAX_PARTS,
    Body,
    body_kind,
    check_declared_length,
    read_body,
)
from catalog_core.server.conditions import ANY, IfMatch, etag, parse_if_match
from catalog_core.server.errors import MethodNotAllowed, RouteNotFound, ServerError
from catalog_core.server.gate import ACCOUNT_SCOPE_KEY, Gate
from catalog_core.server.openapi import OPENAPI_PATH, openapi_document
from catalog_core.server.responses import error_response, json_response, warnings_headers
from catalog_core.wire.decode import load_body, split_multipart
from catalog_core.wire.encode import page_to_wire, to_wire

__all__ = ["API_BASE", "create_app"]

API_BASE: Final = "/tryon/v1"
PRODUCTS_PATH: Final = f"{API_BASE}/products"
PRODUCT_PATH: Final = f"{API_BASE}/products/{{external_id:path}}"

logger = logging.getLogger("catalog_core.server")

# How often an `If-Match: *` upsert re-reads a product that changed under it before giving up.
_ANY_MATCH_ATTEMPTS: Final = 8


def create_app(
    catalog: Catalog,
    *,
    api_keys: Mapping[str, str] | None = None,
    rate_limit: int | None = None,
    max_parts: int = DEFAULT_MAX_PARTS,
    close_on_shutdown: bool = False,
) -> Starlette:
    """Return the ASGI application that serves ``catalog`` under ``/tryon/v1``.

    Args:
        catalog: the catalog to serve; its limits bound request bodies (R33).
        api_keys: ``x-api-key`` value → account. ``None`` accepts any key as its own account.
        rate_limit: requests per account per minute (``RATE_LIMITED`` past it), or ``None``.
        max_parts: the most parts a multipart body may have.
        close_on_shutdown: close the catalog's repository when the server shuts down, after
            the requests in flight have completed.

    Raises:
        ValueError: a key or an account is empty, or ``rate_limit``/``max_parts`` is not positive.
    """
    if api_keys is not None:
        for key, account in api_keys.items():
            if not key or not account:
                raise ValueError("API keys and the accounts they map to must be non-empty")
    for name, value in (("rate_limit", rate_limit), ("max_parts", max_parts)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    endpoints = _Endpoints(catalog, max_parts)
    document = openapi_document(catalog.limits, rate_limited=rate_limit is not None)

    async def openapi(request: Request) -> Response:
        return json_response(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            await run_in_threadpool(catalog.repository.close)

    app = Starlette(
        routes=[
            # One route per path, so that a 405 lists every method the path allows.
            Route(PRODUCTS_PATH, endpoints.products, methods=["GET", "POST"], name="products"),
            Route(PRODUCT_PATH, endpoints.product, methods=["GET", "DELETE"], name="product"),
            Route(OPENAPI_PATH, openapi, methods=["GET"], name="openapi"),
        ],
        middleware=[
            Middleware(_Guard),
            Middleware(
                Gate,
                api_keys=api_keys,
                rate_limit=rate_limit,
                public_paths=frozenset({OPENAPI_PATH}),
            ),
        ],
        exception_handlers={CatalogError: _catalog_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # an unknown path is a 404, never a redirect
    return app


class _Endpoints:
    """The endpoint functions, bound to one catalog."""

    def __init__(self, catalog: Catalog, max_parts: int) -> None:
        self.catalog = catalog
        self.max_parts = max_parts

    async def products(self, request: Request) -> Response:
        """``/products``: list on GET (and HEAD), upsert on POST."""
        if request.method == "POST":
            return await self.upsert(request)
        return await self.list_products(request)

    async def product(self, request: Request) -> Response:
        """``/products/{externalId}``: get on GET (and HEAD), delete on DELETE."""
        if request.method == "DELETE":
            return await self.delete(request)
        return await self.get(request)

    async def upsert(self, request: Request) -> Response:
        """``POST /products``: create (201) or update (200) from JSON or multipart (R32)."""
        limit = self.catalog.limits.max_request_bytes
        check_declared_length(request.headers.get("content-length"), limit)
        kind, boundary = body_kind(request.headers.get("content-type"))
        body = await read_body(
            request.stream(), kind, boundary, limit=limit, max_parts=self.max_parts
        )
        condition = parse_if_match(request.headers.getlist("if-match"))
        result = await run_in_threadpool(self._upsert, _account(request), body, condition)
        product = result.product
        headers = {"ETag": etag(product.version), **warnings_headers(result.warnings)}
        if result.created:
            headers["Location"] = f"{PRODUCTS_PATH}/{quote(product.external_id, safe='')}"
        return json_response(to_wire(product), 201 if result.created else 200, headers)

    def _upsert(self, account: str, body: Body, condition: IfMatch) -> UpsertResult:
        files: dict[str, Upload] | None = None
        payload: Mapping[str, Any] | bytes = body.raw
        if body.kind == "multipart":
            payload, files = split_multipart(body.parts, self.catalog.limits)
        if condition != ANY:
            return self.catalog.upsert(account, payload, files, if_version=_versions(condition))
        return self._upsert_if_exists(account, load_body(payload, self.catalog.limits), files)

    def _upsert_if_exists(
        self, account: str, payload: Mapping[str, Any], files: dict[str, Upload] | None
    ) -> UpsertResult:
        """Upsert under ``If-Match: *``: only a product that exists may be written.

        The catalog's guard takes a version, so this reads the current one and writes against
        it, reading again when a concurrent write moved it; a missing product is written against
        no version at all, which fails with ``VERSION_CONFLICT`` after every other check (R30).
        """
        external_id = payload.get("externalId")
        conflict: VersionConflict | None = None
        for _ in range(_ANY_MATCH_ATTEMPTS):
            current = self._current(account, external_id)
            expected: int | frozenset[int] = frozenset() if current is None else current.version
            try:
                return self.catalog.upsert(account, payload, files, if_version=expected)
            except VersionConflict as exc:
                if current is None and self._current(account, external_id) is None:
                    raise
                conflict = exc
        assert conflict is not None
        raise conflict

    def _current(self, account: str, external_id: object) -> Product | None:
        if not isinstance(external_id, str):
            return None
        try:
            return self.catalog.get(account, external_id)
        except CatalogError:
            return None

    async def list_products(self, request: Request) -> Response:
        """``GET /products?limit=&cursor=``: one page in code-point order of id (R24)."""
        params = request.query_params
        warnings = _unknown_parameters(params, {"limit", "cursor"})
        limit_text = _one_parameter(params, "limit")
        cursor = _one_parameter(params, "cursor")
        limit = DEFAULT_PAGE_SIZE if limit_text is None else _page_size(limit_text)
        page = await run_in_threadpool(self.catalog.list, _account(request), limit, cursor)
        return json_response(page_to_wire(page), headers=warnings_headers(warnings))

    async def get(self, request: Request) -> Response:
        """``GET /products/{externalId}``: the live product, with its version as ETag (R23)."""
        warnings = _unknown_parameters(request.query_params, set())
        external_id = request.path_params["external_id"]
        product = await run_in_threadpool(self.catalog.get, _account(request), external_id)
        headers = {"ETag": etag(product.version), **warnings_headers(warnings)}
        return json_response(to_wire(product), headers=headers)

    async def delete(self, request: Request) -> Response:
        """``DELETE /products/{externalId}``: 204, or 404 for an unknown id (R25)."""
        warnings = _unknown_parameters(request.query_params, set())
        condition = parse_if_match(request.headers.getlist("if-match"))
        # A delete needs a live product anyway, so `*` adds nothing to it.
        versions = None if condition == ANY else _versions(condition)
        external_id = request.path_params["external_id"]
        await run_in_threadpool(self.catalog.delete, _account(request), external_id, versions)
        return Response(status_code=204, headers=warnings_headers(warnings))


def _account(request: Request) -> str:
    account: str = request.scope[ACCOUNT_SCOPE_KEY]
    return account


def _versions(condition: IfMatch) -> int | frozenset[int] | None:
    """Return ``if_version`` for the catalog: one version as an int, several as a set."""
    if condition is None or condition == ANY:
        return None
    assert isinstance(condition, frozenset)
    if len(condition) == 1:
        (version,) = condition
        return version
    return condition


def _one_parameter(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise ValidationFailed.at(name, "must be given at most once")
    return values[0] if values else None


def _page_size(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 4:
        raise ValidationFailed.at("limit", "must be an integer from 1 to 200")
    return int(text)


def _unknown_parameters(params: QueryParams, known: set[str]) -> list[PayloadWarning]:
    return [
        PayloadWarning("UNKNOWN_FIELD", name, "unknown query parameter ignored")
        for name in dict.fromkeys(params.keys())
        if name not in known
    ]


async def _catalog_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CatalogError)
    if isinstance(exc, PayloadTooLarge):
        # The rest of the body is never read: end the connection rather than drain it.
        return error_response(exc, {"Connection": "close"})
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing failures in the catalog's error shape: an unknown path, a method not allowed."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = dict(exc.headers or {}).get("Allow", "")
        error: CatalogError = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}; use {allowed}."
        )
        return error_response(error, {"Allow": allowed})
    if exc.status_code == 404:
        error = RouteNotFound(f"No endpoint at {request.url.path}.")
        return error_response(error)
    logger.error("unexpected HTTP error %s on %s", exc.status_code, request.url.path)
    return error_response(ServerError("The server failed to handle the request."))


class _Guard:
    """ASGI middleware: an unexpected exception becomes a logged 500 in the error shape.

    Starlette's own error middleware would answer in plain text and re-raise; this one answers
    as every other error does and logs the traceback once, with the method and path but never
    the request's headers (where the API key is).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ClientDisconnect:
            logger.info("client went away during %s %s", scope["method"], scope["path"])
        except Exception:
            logger.exception("request failed: %s %s", scope["method"], scope["path"])
            if not started:
                error = ServerError("The server failed to handle the request.")
                await error_response(error)(scope, receive, send)
