"""The HTTP stand-in for the public Try-On API: a Starlette application on a Catalog.

Routes live under ``/tryon/v1``: the products endpoints here, the try-on flow's in
:mod:`catalog_core.server.tryon`. Every answer that is not a success is the error shape of R29
with the HTTP status equal to its ``status``. The catalog's calls that may take long or wait
run in Starlette's thread pool, so one slow write never stalls the event loop; short reads, and
small writes that find the lock free, run on the loop (:class:`CatalogCalls`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, TypeAlias
from urllib.parse import quote

import anyio
from starlette.applications import Starlette
from starlette.convertors import CONVERTOR_TYPES, PathConvertor, register_url_convertor
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog_core.catalog import AnyVersion, Catalog
from catalog_core.errors import CatalogError, UnsupportedMediaType
from catalog_core.model import PayloadWarning, Upload, UpsertResult
from catalog_core.server.body import (
    DEFAULT_BODY_MIN_RATE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_PARTS,
    Body,
    body_kind,
    check_declared_length,
    check_timeout,
    consume,
    declared_length,
    read_body,
)
from catalog_core.server.common import (
    LATER,
    STALLED_SCOPE_KEY,
    CatalogCalls,
    account_of,
    one_parameter,
    path_text,
    reads_bounded,
    reads_inline,
    unknown_parameters,
    writes_inline,
)
from catalog_core.server.conditions import etag, parse_if_match
from catalog_core.server.dashboard import DASHBOARD_PATH, STATIC_PATH, dashboard
from catalog_core.server.errors import (
    MethodNotAllowed,
    RequestTimeout,
    RouteNotFound,
    ServerError,
    ServiceUnavailable,
)
from catalog_core.server.front import front_door
from catalog_core.server.gate import Gate, account_of_keys
from catalog_core.server.local import LocalEndpoints, page_size
from catalog_core.server.openapi import OPENAPI_PATH, openapi_document
from catalog_core.server.responses import (
    encoded,
    error_response,
    json_bytes_response,
    json_response,
    warnings_headers,
)
from catalog_core.server.tryon import (
    DEFAULT_SYNC_TIMEOUT,
    MEDIA_PREFIX,
    ShutdownSignal,
    TryOnEndpoints,
    check_public_url,
    tryon_of,
)
from catalog_core.tryon.service import TryOn
from catalog_core.wire.decode import check_account, split_multipart
from catalog_core.wire.encode import page_to_wire, page_to_wire_json, to_wire, to_wire_json

__all__ = ["API_BASE", "create_app"]

API_BASE: Final = "/tryon/v1"
PRODUCTS_PATH: Final = f"{API_BASE}/products"
_ID_CONVERTOR: Final = "catalog_id"
PRODUCT_PATH: Final = f"{API_BASE}/products/{{external_id:{_ID_CONVERTOR}}}"

logger = logging.getLogger("catalog_core.server")


class _IdConvertor(PathConvertor):
    """Starlette's ``path`` convertor, line feeds included.

    ``.*`` stops at a line feed, so an id holding one would be no route at all (404) rather than
    the malformed id it is (400, R2). The id itself is read from the raw path (:func:`_path_id`).
    """

    regex = r"[\s\S]*"


_convertor_lock: Final = threading.Lock()


def _register_id_convertor() -> None:
    """Put the ``catalog_id`` convertor in Starlette's registry, unless it is there already.

    The registry is global to the process: it is filled by :func:`create_app`, never at import,
    so that importing this module changes nothing for another application. Routes read it when
    they are built, so this runs before the first route of the app is.
    """
    with _convertor_lock:
        if not isinstance(CONVERTOR_TYPES.get(_ID_CONVERTOR), _IdConvertor):
            register_url_convertor(_ID_CONVERTOR, _IdConvertor())


# The longest sync_timeout: a day, as the other timeouts of `catalog-core serve`.
_MAX_SYNC_TIMEOUT: Final = 86400.0
# How long a shutdown waits for catalog calls still running in worker threads.
_DRAIN_SECONDS: Final = 60.0
# How long an early answer waits for the rest of a body it will not use.
_DRAIN_BODY_SECONDS: Final = 10.0


def create_app(
    catalog: Catalog,
    *,
    api_keys: Mapping[str, str] | None = None,
    rate_limit: int | None = None,
    max_parts: int = DEFAULT_MAX_PARTS,
    close_on_shutdown: bool = False,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    body_min_rate: float = DEFAULT_BODY_MIN_RATE,
    tryon: TryOn | None = None,
    sync_timeout: float = DEFAULT_SYNC_TIMEOUT,
    public_url: str | None = None,
) -> Starlette:
    """Return the ASGI application that serves ``catalog`` under ``/tryon/v1``.

    Args:
        catalog: the catalog to serve; its limits bound request bodies (R33).
        api_keys: ``x-api-key`` value → account. ``None`` accepts any key as its own account.
        rate_limit: requests per account per minute (``RATE_LIMITED`` past it), or ``None``.
        max_parts: the most parts a multipart body may have.
        close_on_shutdown: close the catalog's repository when the server shuts down, after
            the requests in flight have completed.
        body_timeout: seconds a request body may go without a byte arriving; then the request
            is answered 408 ``REQUEST_TIMEOUT`` and its connection closed.
        body_min_rate: bytes a second a body must average once its first ``body_timeout``
            seconds are over: a body of ``n`` bytes must have arrived ``body_timeout + n /
            body_min_rate`` seconds after it began, else 408 ``REQUEST_TIMEOUT`` too.
        tryon: the try-on flow to serve, on ``catalog``. ``None``: a
            :class:`~catalog_core.tryon.TryOn` with its defaults when the catalog's repository
            stores the try-on state, else none, and the try-on endpoints answer 501.
        sync_timeout: seconds ``POST /try-on/sync`` waits for its generation (T11), 0 to 86400.
        public_url: the base of media URLs (``https://tryon.example.test``) when the server is
            reached through a proxy; ``None`` builds them from each request's scheme and host.

    Raises:
        ValueError: a key is not visible ASCII (no header could carry it), an account is not
            one the catalog takes, ``rate_limit``/``max_parts`` is not a positive integer, or
            ``body_timeout`` or ``body_min_rate`` is not a positive number, ``sync_timeout``
            is not a number of seconds from 0 to 86400, ``public_url`` is not an absolute
            http(s) URL, or ``tryon`` is on another catalog.
    """
    if api_keys is not None:
        for key, account in api_keys.items():
            if not _is_header_token(key):
                raise ValueError("API keys must be non-empty visible ASCII, without spaces")
            try:
                check_account(account)
            except CatalogError as exc:
                raise ValueError(f"the account of an API key is not valid: {exc.message}") from None
    for name, value in (("rate_limit", rate_limit), ("max_parts", max_parts)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    check_timeout("body_timeout", body_timeout)
    check_timeout("body_min_rate", body_min_rate)
    if (
        isinstance(sync_timeout, bool)
        or not isinstance(sync_timeout, int | float)
        or not 0 <= sync_timeout <= _MAX_SYNC_TIMEOUT
    ):
        raise ValueError(
            f"sync_timeout must be a number of seconds from 0 to {_MAX_SYNC_TIMEOUT:g}, "
            f"got {sync_timeout!r}"
        )
    if public_url is not None:
        public_url = check_public_url(public_url)
    served, unavailable = tryon_of(catalog, tryon)
    _register_id_convertor()
    calls = CatalogCalls(
        inline_reads=reads_inline(catalog.repository),
        bounds=reads_bounded(catalog.repository),
        no_wait=writes_inline(catalog.repository),
    )
    stopping = ShutdownSignal()
    endpoints = _Endpoints(catalog, calls, max_parts, (body_timeout, body_min_rate))
    upserts = (
        _PlainUpserts(catalog, calls, api_keys, (body_timeout, body_min_rate))
        if rate_limit is None
        else None
    )
    tryon_endpoints = TryOnEndpoints(
        served,
        calls,
        endpoints.read,
        api_base=API_BASE,
        sync_timeout=float(sync_timeout),
        public_url=public_url,
        stopping=stopping,
        unavailable=unavailable,
    )
    local = LocalEndpoints(catalog, calls, tryon_endpoints, endpoints.read)
    document = openapi_document(
        catalog.limits,
        rate_limited=rate_limit is not None,
        max_parts=max_parts,
        tryon=served is not None,
    )

    async def openapi(request: Request) -> Response:
        return json_response(document)

    front = front_door(API_BASE, OPENAPI_PATH, keys=api_keys is not None, tryon=served is not None)
    board = dashboard(API_BASE, OPENAPI_PATH, keys=api_keys is not None, tryon=served is not None)

    def close_catalog_if_idle() -> bool:
        """Close the catalog unless a call still runs in it; whether it was closed.

        Closing under a running call could crash the process (SQLite) or cut a transaction: a
        call left running is left to finish, and its transaction commits or rolls back whole.
        """
        if not calls.drain(0):
            logger.error(
                "%d catalog calls still running: the catalog is left open for them to end",
                calls.running,
            )
            return False
        catalog.repository.close()
        return True

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        calls.open()
        stopping.arm()
        yield
        stopping.set()  # under a server that did not say so as its shutdown began
        # A request the shutdown cancelled may still be writing in a worker thread: let it
        # commit or roll back before the catalog closes, and let no new call start.
        await anyio.to_thread.run_sync(calls.drain, _DRAIN_SECONDS)
        if close_on_shutdown:
            close_catalog_if_idle()

    app = Starlette(
        routes=[
            # One route per path, so that a 405 lists every method the path allows.
            Route(PRODUCTS_PATH, endpoints.products, methods=["GET", "POST"], name="products"),
            Route(PRODUCT_PATH, endpoints.product, methods=["GET", "DELETE"], name="product"),
            *tryon_endpoints.routes(),
            *local.routes(),
            Route(OPENAPI_PATH, openapi, methods=["GET"], name="openapi"),
            Route("/", board.page, methods=["GET"], name="front"),
            Route(DASHBOARD_PATH, board.page, methods=["GET"], name="dashboard"),
            Route(
                f"{STATIC_PATH}/{{name}}", board.static, methods=["GET"], name="dashboard_static"
            ),
            Route(API_BASE, front, methods=["GET"], name="front_of_the_api"),
        ],
        middleware=[
            *(
                [Middleware(_ProductReads, catalog=catalog, calls=calls, api_keys=api_keys)]
                if rate_limit is None and calls.inline_reads
                else []
            ),
            Middleware(_Guard, limit=catalog.limits.max_request_bytes),
            *([Middleware(_ProductWrites, upserts=upserts)] if upserts is not None else []),
            Middleware(
                Gate,
                api_keys=api_keys,
                rate_limit=rate_limit,
                public_paths=frozenset({OPENAPI_PATH, "/", API_BASE, DASHBOARD_PATH}),
                public_prefixes=(API_BASE + MEDIA_PREFIX, STATIC_PATH + "/"),
            ),
        ],
        exception_handlers={CatalogError: _catalog_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # an unknown path is a 404, never a redirect
    app.state.close_catalog_if_idle = close_catalog_if_idle
    # Called by protocol.Server as its shutdown begins: sync waits answer 202 at once.
    app.state.begin_shutdown = stopping.set
    app.state.tryon = served
    # For the connection (protocol.head_timeout_protocol): a plain upsert whose body came with
    # its head is answered at once, without a task or the layers (None under a rate limit).
    app.state.answer_at_once = None if upserts is None else upserts.at_once
    return app


class _Endpoints:
    """The endpoint functions, bound to one catalog."""

    def __init__(
        self,
        catalog: Catalog,
        calls: CatalogCalls,
        max_parts: int,
        body_pace: tuple[float, float],
    ) -> None:
        self.body_timeout, self.body_min_rate = body_pace
        self.catalog = catalog
        self.calls = calls
        self.max_parts = max_parts

    async def read(self, request: Request, *, multipart_only: bool = False) -> Body:
        """Read the request's body within the server's bounds (R32, R33).

        Args:
            request: the request.
            multipart_only: refuse a JSON body (``UNSUPPORTED_MEDIA_TYPE``) before reading it.

        Raises:
            PayloadTooLarge, UnsupportedMediaType, ValidationFailed, RequestTimeout: in that
                order, as the body's declared length, type and bytes are met.
        """
        limit = self.catalog.limits.max_request_bytes
        check_declared_length(declared_length(request.headers), limit)
        kind, boundary = body_kind(request.headers.get("content-type"))
        if multipart_only and kind != "multipart":
            raise UnsupportedMediaType(
                "Content-Type application/json is not supported here: send "
                "multipart/form-data with the image in a part named file."
            )
        try:
            return await read_body(
                request.stream(),
                kind,
                boundary,
                limit=limit,
                max_parts=self.max_parts,
                idle_timeout=self.body_timeout,
                min_rate=self.body_min_rate,
            )
        except RequestTimeout:
            request.scope[STALLED_SCOPE_KEY] = True  # the guard must not wait for the rest
            raise

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
        body = await self.read(request)
        if_version = parse_if_match(request.headers.getlist("if-match"))
        query_warnings = unknown_parameters(request.query_params, set())
        result = await self.calls.run(self._upsert, account_of(request), body, if_version)
        status, headers, answer = _upsert_answer(
            result, request.scope.get("root_path", ""), query_warnings
        )
        return json_bytes_response(answer, status, headers)

    def _upsert(
        self, account: str, body: Body, if_version: int | frozenset[int] | AnyVersion | None
    ) -> UpsertResult:
        files: dict[str, Upload] | None = None
        payload: Mapping[str, Any] | bytes = body.raw
        if body.kind == "multipart":
            payload, files = split_multipart(body.parts, self.catalog.limits)
        return self.catalog.upsert(account, payload, files, if_version=if_version)

    async def list_products(self, request: Request) -> Response:
        """``GET /products?limit=&cursor=``: one page in code-point order of id (R24)."""
        params = request.query_params
        warnings = unknown_parameters(params, {"limit", "cursor"})
        limit = page_size(one_parameter(params, "limit"))
        cursor = one_parameter(params, "cursor")
        # A page reads past the expired products not purged yet, however many: on the event loop
        # while that is short, else in a worker thread.
        account = account_of(request)
        body = await self.calls.read_bounded(
            account, _page_body, self.catalog, account, limit, cursor
        )
        return json_bytes_response(body, headers=warnings_headers(warnings))

    async def get(self, request: Request) -> Response:
        """``GET /products/{externalId}``: the live product, with its version as ETag (R23)."""
        warnings = unknown_parameters(request.query_params, set())
        external_id = _path_id(request)
        product = await self.calls.read(self.catalog.get, account_of(request), external_id)
        headers = {"ETag": etag(product.version), **warnings_headers(warnings)}
        return json_bytes_response(encoded(to_wire_json, to_wire, product), headers=headers)

    async def delete(self, request: Request) -> Response:
        """``DELETE /products/{externalId}``: 204, or 404 for an unknown id (R25)."""
        warnings = unknown_parameters(request.query_params, set())
        if_version = parse_if_match(request.headers.getlist("if-match"))
        external_id = _path_id(request)
        await self.calls.run(self.catalog.delete, account_of(request), external_id, if_version)
        return Response(status_code=204, headers=warnings_headers(warnings))


def _upsert_answer(
    result: UpsertResult, root_path: str, query_warnings: list[PayloadWarning]
) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and JSON body of an upsert's answer (R32).

    201 with ``Location`` when it created, else 200.
    """
    product = result.product
    headers = {
        "ETag": etag(product.version),
        **warnings_headers(
            [*result.warnings, *query_warnings], result.warning_count + len(query_warnings)
        ),
    }
    if result.created:
        headers["Location"] = f"{root_path}{PRODUCTS_PATH}/{_path_segment(product.external_id)}"
    return 201 if result.created else 200, headers, encoded(to_wire_json, to_wire, product)


def _page_body(catalog: Catalog, account: str, limit: int, cursor: str | None) -> bytes:
    """Return the body of a listing page: :meth:`Catalog.list_json`, or as :func:`encoded` does.

    A page holding a lone surrogate (which the catalog refuses, R2, but a store written by other
    means may hold) has no UTF-8 form: it is read again as products and written as ASCII JSON.
    """
    try:
        return catalog.list_json(account, limit, cursor)
    except UnicodeEncodeError:
        return encoded(page_to_wire_json, page_to_wire, catalog.list(account, limit, cursor))


def _path_segment(external_id: str) -> str:
    """Return ``external_id`` as one path segment, for ``Location``.

    Percent-encoded UTF-8, ``/`` included; and the ids ``.`` and ``..``, which every client would
    take for the dot segments it removes from a path (RFC 3986 §5.2.4), as ``%2E`` and
    ``%2E%2E``, which the server decodes back (:func:`_path_id`). Clients that follow RFC 3986
    (httpx, curl, urllib) keep those as they are; clients that follow the WHATWG URL standard
    (browsers, Node's fetch) remove them as dot segments too, and cannot reach these two ids.
    """
    segment = quote(external_id, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def _path_id(request: Request) -> str:
    """Return the ``{externalId}`` of the path, decoded as strict UTF-8 (R2).

    Raises:
        ValidationFailed: at ``externalId`` when the decoded bytes are not UTF-8.
    """
    return path_text(request, "external_id", PRODUCTS_PATH + "/", "externalId")


def _is_header_token(value: object) -> bool:
    """Whether ``value`` can arrive intact in a header: visible ASCII, at least one character."""
    return isinstance(value, str) and bool(value) and all("\x21" <= c <= "\x7e" for c in value)


async def _catalog_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, CatalogError):  # the app routes only CatalogError here
        raise TypeError(f"not a CatalogError: {exc!r}") from exc
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing failures in the catalog's error shape: an unknown path, a method not allowed."""
    if not isinstance(exc, HTTPException):  # the app routes only HTTPException here
        raise TypeError(f"not an HTTPException: {exc!r}") from exc
    if exc.status_code == 405:
        # Sorted: Starlette keeps a route's methods in a set, whose order varies by process.
        given = dict(exc.headers or {}).get("Allow", "")
        allowed = ", ".join(sorted(method.strip() for method in given.split(",") if method))
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
    """ASGI middleware: the last word on every answer, whatever went wrong.

    - An unexpected exception becomes a logged 500 in the error shape. Starlette's own error
      middleware would answer in plain text and re-raise; this one logs the traceback once, with
      the method and path but never the request's headers (where the API key is).
    - A request the shutdown cancels is answered 503 ``UNAVAILABLE`` when nothing was sent yet.
    - An answer ready before the request's body was read (a 401, a 415, a bad multipart part)
      first reads the rest of the body, so that the client, still sending, gets to read the
      answer, but never past the request limit, never for a client that waits for
      ``100 Continue``, and never for long: otherwise the answer carries ``Connection: close``
      and the connection ends, the body unread (R33).
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the application, guarding its answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = declared_length(headers)
        body_read = "transfer-encoding" not in headers and declared in (None, 0)
        waits_for_continue = headers.get("expect", "").lower() == "100-continue"
        received, asked, started, stopping = 0, False, False, False

        async def tracked_receive() -> Message:
            nonlocal body_read, received, asked
            asked = True
            message = await receive()
            received += len(message.get("body", b""))
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                body_read = True
            return message

        async def drain() -> bool:
            """Read what is left of the body, within bounds; whether all of it was read."""
            if stopping or (waits_for_continue and not asked) or (declared or 0) > self.limit:
                return False
            if scope.get(STALLED_SCOPE_KEY):  # the client stopped sending: close rather than wait
                return False
            with anyio.move_on_after(_DRAIN_BODY_SECONDS):
                while not body_read and received <= self.limit:
                    if (await tracked_receive())["type"] == "http.disconnect":
                        return False
            return body_read and received <= self.limit

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if not body_read and not await drain():
                    message = {**message, "headers": [*message["headers"], _CLOSE]}
                await send(message)
                started = True  # only now: a cancellation during the drain sent nothing yet
                return
            await send(message)

        try:
            await self.app(scope, tracked_receive, watch)
        except ClientDisconnect:
            logger.info("client went away during %s %s", scope["method"], scope["path"])
        except anyio.get_cancelled_exc_class():
            # Only the shutdown cancels a request. Answering ends this request's task: the
            # cancellation has done its work, and re-raising would only log a traceback.
            logger.warning("stopped by the shutdown: %s %s", scope["method"], scope["path"])
            stopping = True
            if not started:
                with anyio.CancelScope(shield=True):
                    await error_response(_STOPPED)(scope, receive, watch)
        except Exception:
            error = _failed(scope)
            if not started:
                await error_response(error)(scope, receive, watch)


def _failed(scope: Scope) -> ServerError:
    """Log the exception being handled and return the error it is answered with.

    The log names the request's method and path, never its headers (where the API key is).
    """
    logger.exception("request failed: %s %s", scope["method"], scope["path"])
    return ServerError("The server failed to handle the request.")


_CLOSE: Final = (b"connection", b"close")
_STOPPED: Final = ServiceUnavailable(
    "The server stopped before it finished this request. A write it was making was completed "
    "or rolled back whole: read the product to know which."
)


_PRODUCT_PREFIX: Final = (PRODUCTS_PATH + "/").encode("ascii")
_LISTING: Final = PRODUCTS_PATH.encode("ascii")
_JSON_TYPE: Final = (b"content-type", b"application/json")
# A cursor as the catalog writes it (base64url, a dot): the same text before and after a query
# string is decoded.
_CURSOR_TEXT: Final = re.compile(rb"[A-Za-z0-9_.-]+")
_Answer: TypeAlias = "tuple[list[tuple[bytes, bytes]], bytes]"


class _Layer:
    """An ASGI middleware answering the plainest products requests itself, on one catalog."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        catalog: Catalog,
        calls: CatalogCalls,
        api_keys: Mapping[str, str] | None,
    ) -> None:
        self.app = app
        self._catalog = catalog
        self._calls = calls
        self._api_keys = None if api_keys is None else dict(api_keys)


def _json_start(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Message:
    """The start of a JSON answer of ``body``, as ``json_bytes_response`` sends it."""
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode("ascii")), _JSON_TYPE],
    }


class _ProductReads(_Layer):
    """ASGI middleware: the GET of a live product, and of a listing page, answered at once.

    The read of one product is the server's most frequent request, and a listing page the next;
    the framework's layers (the guard, the gate, Starlette's routing, request and response) cost
    more than the read of a product itself. For the plainest such request of a catalog whose
    reads run on the event loop, with no rate limit, this layer reads and sends the very answer
    the endpoint sends (``tests/server/test_product_reads.py`` compares them): a GET without a
    body or ``Expect``, the application not mounted under a root path, and either
    ``/products/{externalId}`` without a query and an id without percent-encoding, or
    ``/products`` with at most ``limit`` (digits) and ``cursor`` (as the catalog writes them),
    each once. Every other request, and every one of these that does not find a live product or
    fails (a key that names no account, an unknown id, a bad limit or cursor, a shutdown), goes
    through the whole application, which answers it as it always has.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        answer = None
        try:
            if raw is not None and scope["method"] == "GET" and not scope.get("root_path"):
                if raw == _LISTING:
                    answer = await self._page(scope)  # may wait for a worker thread
                elif raw.startswith(_PRODUCT_PREFIX) and not scope["query_string"]:
                    answer = await self._product(scope, raw[len(_PRODUCT_PREFIX) :])
        except anyio.get_cancelled_exc_class():  # as the guard answers the shutdown
            logger.warning("stopped by the shutdown: %s %s", scope["method"], scope["path"])
            with anyio.CancelScope(shield=True):
                await error_response(_STOPPED)(scope, receive, send)
            return
        if answer is None:
            await self.app(scope, receive, send)
            return
        headers, body = answer
        start = _json_start(200, headers, body)
        started = False
        try:
            await send(start)
            started = True
            await send({"type": "http.response.body", "body": body})
        except anyio.get_cancelled_exc_class():  # as the guard answers the shutdown
            logger.warning("stopped by the shutdown: %s %s", scope["method"], scope["path"])
            if not started:
                with anyio.CancelScope(shield=True):
                    await error_response(_STOPPED)(scope, receive, send)

    async def _product(self, scope: Scope, external_id: bytes) -> _Answer | None:
        """The answer to a GET of one product, or ``None`` for the application to give."""
        keys = _plain_keys(scope)
        if not keys or not external_id.isascii() or b"%" in external_id:
            return None
        try:
            account = account_of_keys(self._api_keys, keys)
            product = await self._calls.read(self._catalog.get, account, external_id.decode())
            body = encoded(to_wire_json, to_wire, product)
        except Exception:  # a refusal or a failure: the whole application answers (and logs) it
            return None
        return [(b"etag", etag(product.version).encode("ascii"))], body

    async def _page(self, scope: Scope) -> _Answer | None:
        """The answer to a GET of a listing page, or ``None`` for the application to give."""
        keys = _plain_keys(scope)
        query = _page_query(scope["query_string"])
        if not keys or query is None:
            return None
        try:
            account = account_of_keys(self._api_keys, keys)
            limit = page_size(query[0])
            body = await self._calls.read_bounded(
                account, _page_body, self._catalog, account, limit, query[1]
            )
        except Exception:  # a refusal or a failure: the whole application answers (and logs) it
            return None
        return [], body


def _plain_keys(scope: Scope) -> list[str]:
    """The request's API keys, or none when it has a body (which the application reads)."""
    keys: list[str] = []
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            keys.append(value.decode("latin-1"))
        elif name in _BODY_HEADERS:
            return []  # the whole application reads (or drains) a body
    return keys


def _page_query(query: bytes) -> tuple[str | None, str | None] | None:
    """Return the ``limit`` and ``cursor`` of a plain listing query; ``None`` for another query.

    Plain: each at most once, given as text that decoding leaves alone.
    """
    limit = cursor = None
    if query:
        for part in query.split(b"&"):
            name, equals, value = part.partition(b"=")
            if name == b"limit" and limit is None and equals and value.isdigit():
                limit = value.decode("ascii")
            elif name == b"cursor" and cursor is None and _CURSOR_TEXT.fullmatch(value):
                cursor = value.decode("ascii")
            else:
                return None
    return limit, cursor


_BODY_HEADERS: Final = frozenset({b"content-length", b"transfer-encoding", b"expect"})


#: The largest body of an upsert made on the event loop (when the catalog's writes may be): its
#: decoding and rules then cost well under a millisecond. A larger one is written in a worker
#: thread.
LOOP_WRITE_BYTES: Final = 65_536


class _PlainUpserts:
    """The plainest upsert, answered without the gate and Starlette.

    An upsert is the server's most frequent write; the gate, Starlette's routing, request and
    response, and the hop to a worker thread cost more than the catalog's write itself. Plain:
    a ``POST /products`` without a query, with one ``Content-Type: application/json`` and one
    ``Content-Length`` within the request limit, and without ``Transfer-Encoding``, ``Expect``
    or ``If-Match``, from a key that names an account, on an application not mounted under a
    root path and without a rate limit. Such a request is answered as the endpoint answers it
    (``tests/server/test_product_writes.py`` compares them), in one of two ways:

    - by the write layer (:class:`_ProductWrites`), behind the guard;
    - at once by its connection (:meth:`at_once`), when its whole body came with its head and
      its write need not wait: no task, no layer, nothing to wait for.

    The write is made on the event loop when the catalog allows it and the body is small
    (``LOOP_WRITE_BYTES``), unless it would wait for the write lock
    (:meth:`CatalogCalls.write`); else in a worker thread, by the layer.
    """

    def __init__(
        self,
        catalog: Catalog,
        calls: CatalogCalls,
        api_keys: Mapping[str, str] | None,
        body_pace: tuple[float, float],
    ) -> None:
        self._catalog = catalog
        self._calls = calls
        self._api_keys = None if api_keys is None else dict(api_keys)
        #: The request limit, and how a body must keep coming (``create_app``'s ``body_pace``).
        self.limit = catalog.limits.max_request_bytes
        self.idle_timeout, self.min_rate = body_pace

    def plain(self, scope: Scope) -> tuple[str, int] | None:
        """The account and body length of a plain upsert; ``None`` for any other request."""
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("raw_path") != _LISTING
            or scope.get("root_path")
            or scope["query_string"]
        ):
            return None
        plain = _plain_upsert(scope["headers"])
        if plain is None or plain[1] > self.limit:
            return None
        keys, length = plain
        try:
            return account_of_keys(self._api_keys, keys), length
        except CatalogError:  # the gate answers it
            return None

    async def write(self, account: str, raw: bytes) -> tuple[Message, Message]:
        """Write a plain upsert's body, on the loop or in a worker thread; return its answer."""
        write = self._calls.write if len(raw) <= LOOP_WRITE_BYTES else self._calls.run
        try:
            return _upsert_messages(await write(self._catalog.upsert, account, raw))
        except CatalogError as exc:
            return _error_messages(exc)

    def at_once(self, scope: Scope, body: bytes) -> tuple[Message, Message] | None:
        """Answer a plain upsert whose whole body is here, now, with a write on the event loop.

        ``None``: the request is not plain, or its write cannot be made now (the body is over
        ``LOOP_WRITE_BYTES``, the write would wait for the lock, or the catalog's writes are not
        made on the loop); nothing was written, and the application answers it. An unexpected
        failure is logged and answered 500, as the guard does.
        """
        try:
            plain = self.plain(scope)
            if plain is None or plain[1] > LOOP_WRITE_BYTES or len(body) != plain[1]:
                return None
            result = self._calls.write_now(self._catalog.upsert, plain[0], body)
            return None if result is LATER else _upsert_messages(result)
        except CatalogError as exc:
            return _error_messages(exc)
        except Exception:  # never raised into the connection, which would only close
            return _error_messages(_failed(scope))


def _upsert_messages(result: UpsertResult) -> tuple[Message, Message]:
    """The messages of a plain upsert's answer, as ``json_bytes_response`` sends them.

    Made without building a Response (the endpoint's test compares the bytes).
    """
    status, headers, body = _upsert_answer(result, "", [])
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return _json_start(status, raw_headers, body), {"type": "http.response.body", "body": body}


def _error_messages(exc: CatalogError) -> tuple[Message, Message]:
    """The messages ``error_response(exc)`` sends."""
    answer = error_response(exc)
    start = {"type": "http.response.start", "status": answer.status_code}
    return {**start, "headers": answer.raw_headers}, {
        "type": "http.response.body",
        "body": answer.body,
    }


class _ProductWrites:
    """ASGI middleware: the plainest upsert (:class:`_PlainUpserts`), answered before the gate.

    It runs behind the guard, which still answers a shutdown, a failure and a client that went
    away. Every other request goes through the gate and the endpoint.
    """

    def __init__(self, app: ASGIApp, *, upserts: _PlainUpserts) -> None:
        self.app = app
        self._upserts = upserts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = self._upserts.plain(scope)
        if plain is None:
            await self.app(scope, receive, send)
            return
        try:
            raw = await self._body(scope, receive)
        except CatalogError as exc:
            start, body = _error_messages(exc)
        else:
            start, body = await self._upserts.write(plain[0], raw)
        await send(start)
        await send(body)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        """Read the body as the endpoint does, within the server's bounds.

        Raises:
            RequestTimeout: the body stopped coming (the guard then closes the connection).
            ClientDisconnect: the client went away (the guard logs it).
        """
        read: list[bytes] = []

        async def next_chunk() -> tuple[bytes, bool]:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            return message.get("body", b""), message.get("more_body", False)

        try:
            await consume(
                next_chunk,
                read.append,
                limit=self._upserts.limit,
                idle_timeout=self._upserts.idle_timeout,
                min_rate=self._upserts.min_rate,
            )
        except RequestTimeout:
            scope[STALLED_SCOPE_KEY] = True  # the guard must not wait for the rest
            raise
        return b"".join(read)


def _plain_upsert(headers: list[tuple[bytes, bytes]]) -> tuple[list[str], int] | None:
    """The API keys and the length of a plain upsert's head, or ``None`` for another head.

    Plain: one ``Content-Type: application/json``, one ``Content-Length`` of digits, and no
    ``Transfer-Encoding``, ``Expect`` or ``If-Match``.
    """
    keys: list[str] = []
    length = typed = None
    for name, value in headers:
        if name == b"x-api-key":
            keys.append(value.decode("latin-1"))
        elif name == b"content-length" and length is None and value.isdigit():
            length = int(value)
        elif name == b"content-type" and typed is None and value == b"application/json":
            typed = True
        elif name in _NOT_PLAIN:
            return None
    return (keys, length) if typed and length is not None else None


_NOT_PLAIN: Final = frozenset(
    {b"content-length", b"content-type", b"transfer-encoding", b"expect", b"if-match"}
)
