"""The try-on endpoints of the server (T1-T24): uploads, try-ons, generations, credits, media.

Each endpoint is :class:`~catalog_core.tryon.TryOn` behind HTTP, as the products endpoints are
:class:`~catalog_core.Catalog`: the same gate, body reading, error shape and warnings headers
(T21). Two things are the server's own:

- ``POST /try-on/sync`` waits for its generation on the event loop, never in a worker thread:
  it sleeps until the generation's end by the catalog's clock (at most :data:`MAX_NAP` seconds at
  a time), re-reads the generation in the thread pool for a moment, and answers 202 at once when
  the server begins to stop (:class:`ShutdownSignal`).
- Media URLs (``GET /media/{ref}``) serve person images and results without an API key, like
  signed URLs: the reference holds a random token, and the image is served only while it is kept
  (T3, T15).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from catalog_core.model import Upload
from catalog_core.repository.base import TryOnRepository
from catalog_core.server.body import Body
from catalog_core.server.common import account_of, path_text, unknown_parameters
from catalog_core.server.errors import MediaNotFound, TryOnUnavailable
from catalog_core.server.responses import json_response, warnings_headers
from catalog_core.tryon.model import COMPLETED, FAILED, GenerationView
from catalog_core.tryon.rules import live_generation, view
from catalog_core.tryon.service import StartResult, TryOn
from catalog_core.wire.decode import split_multipart
from catalog_core.wire.tryon import (
    generation_to_wire,
    start_to_wire,
    sync_to_wire,
    upload_to_wire,
)

__all__ = [
    "DEFAULT_SYNC_TIMEOUT",
    "MAX_NAP",
    "MEDIA_PREFIX",
    "ShutdownSignal",
    "TryOnEndpoints",
    "check_public_url",
    "tryon_of",
]

_T = TypeVar("_T")

#: Seconds ``POST /try-on/sync`` waits for its generation, as the public service does (T11).
DEFAULT_SYNC_TIMEOUT: Final = 90.0
#: The longest a sync wait sleeps before it reads its generation again (an engine that reports
#: its end later, a clock that moves differently from the event loop's).
MAX_NAP: Final = 1.0
# A sync wait wakes this long after the generation's end, so that it reads it finished.
_SETTLE: Final = 0.005
_FINISHED: Final = frozenset((COMPLETED, FAILED))
#: Media URLs are under this path, below the API's base.
MEDIA_PREFIX: Final = "/media/"
#: What a media answer says about where it may be used and kept: in an ``<img>`` of any origin,
#: in the browser's own cache only.
_MEDIA_HEADERS: Final = {
    "Cache-Control": "private",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Access-Control-Allow-Origin": "*",
    "X-Content-Type-Options": "nosniff",
}


class Calls(Protocol):
    """Runs a blocking call in the thread pool, as :class:`~.common.CatalogCalls` does."""

    async def run(self, func: Callable[..., _T], *args: Any) -> _T: ...


class ShutdownSignal:
    """Tells waiting sync requests that the server has begun to stop.

    Armed when the application's lifespan starts (its event lives on that event loop), set by
    :meth:`Server.shutdown <catalog_core.server.protocol.Server.shutdown>` as the shutdown begins,
    before the server waits for the requests in flight.
    """

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._set = False

    def arm(self) -> None:
        """Start a new lifespan: not stopping, with an event on the running loop."""
        self._event = anyio.Event()
        self._set = False

    def set(self) -> None:
        """The server is stopping: every wait ends now (call it on the application's loop)."""
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        """Whether the server is stopping."""
        return self._set

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the server begins to stop meanwhile."""
        if self._event is None:  # served without a lifespan: nothing will set it
            await anyio.sleep(seconds)
            return
        with anyio.move_on_after(seconds):
            await self._event.wait()


def check_public_url(url: str) -> str:
    """Return the base of media URLs a proxy gives, without its trailing ``/``.

    Raises:
        ValueError: not an absolute http(s) URL with a host, or it has a query or fragment.
    """
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port >= 0
    except ValueError:
        port_ok = False
    if (
        not port_ok
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "?" in url
        or "#" in url
        or any(c <= " " or c == "\x7f" for c in url)
    ):
        raise ValueError(
            "the public URL must be an absolute http(s) URL with a host and no query or "
            f"fragment, such as https://tryon.example.test: got {url!r}"
        )
    return url.rstrip("/")


class TryOnEndpoints:
    """The try-on endpoints, bound to one :class:`~catalog_core.tryon.TryOn` (or to none).

    Args:
        tryon: the flow to serve; ``None`` when the catalog's repository stores no try-on state:
            then every try-on endpoint answers ``501 NOT_IMPLEMENTED`` saying so.
        calls: runs the blocking calls.
        read: reads a request's body within the server's bounds; ``multipart_only`` refuses JSON
            with ``UNSUPPORTED_MEDIA_TYPE`` before reading it.
        api_base: the API's path (``/tryon/v1``).
        sync_timeout: seconds a sync try-on waits for its generation (T11).
        public_url: the base of media URLs, when the server sits behind a proxy; else the
            request's own scheme and host.
        stopping: the server's shutdown signal.
        unavailable: why there is no try-on, for the 501's message.
    """

    def __init__(
        self,
        tryon: TryOn | None,
        calls: Calls,
        read: Callable[..., Awaitable[Body]],
        *,
        api_base: str,
        sync_timeout: float,
        public_url: str | None,
        stopping: ShutdownSignal,
        unavailable: str = "",
    ) -> None:
        self.tryon = tryon
        self.calls = calls
        self.read = read
        self.api_base = api_base
        self.sync_timeout = sync_timeout
        self.public_url = public_url
        self.stopping = stopping
        self.unavailable = unavailable

    def routes(self) -> list[Route]:
        """The routes, one per path (so that a 405 lists every method the path allows)."""
        base = self.api_base
        return [
            Route(f"{base}/images/upload", self.upload, methods=["POST"], name="upload"),
            Route(f"{base}/try-on", self.start, methods=["POST"], name="try_on"),
            Route(f"{base}/try-on/sync", self.start_sync, methods=["POST"], name="try_on_sync"),
            Route(
                f"{base}/generations/{{generation_id}}",
                self.generation,
                methods=["GET"],
                name="generation",
            ),
            Route(f"{base}/account/credits", self.credits, methods=["GET"], name="credits"),
            Route(
                f"{base}/customers/{{customer_id:catalog_id}}",
                self.erase,
                methods=["DELETE"],
                name="customer",
            ),
            Route(f"{base}{MEDIA_PREFIX}{{ref}}", self.media, methods=["GET"], name="media"),
        ]

    def _flow(self) -> TryOn:
        if self.tryon is None:
            raise TryOnUnavailable(
                f"This server does not run try-ons: {self.unavailable}. The products endpoints "
                "work; serve a catalog whose storage keeps the try-on state for the rest."
            )
        return self.tryon

    def media_url(self, request: Request, ref: str) -> str:
        """Return the absolute URL of a media reference (T3, T15)."""
        base = self.public_url
        if base is None:
            base = str(request.base_url).rstrip("/")  # the request's scheme, host and root path
        return f"{base}{self.api_base}{MEDIA_PREFIX}{ref}"

    # -- person images (T1-T4) ------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        """``POST /images/upload``: store a person image from a multipart body (T1-T3)."""
        tryon = self._flow()
        body = await self.read(request, multipart_only=True)
        warnings = unknown_parameters(request.query_params, set())
        parts: Mapping[str, str | bytes | Upload | None] = body.parts
        result = await self.calls.run(tryon.upload_form, account_of(request), parts)
        url = self.media_url(request, tryon.image_ref(result.image))
        headers = warnings_headers(
            [*result.warnings, *warnings], result.warning_count + len(warnings)
        )
        return json_response(upload_to_wire(result.image, url), headers=headers)

    # -- try-ons (T5-T11) -----------------------------------------------------------------

    async def _start(self, request: Request) -> tuple[TryOn, StartResult, dict[str, str]]:
        tryon = self._flow()
        body = await self.read(request)
        warnings = unknown_parameters(request.query_params, set())
        result = await self.calls.run(self._start_call, tryon, account_of(request), body)
        headers = warnings_headers(
            [*result.warnings, *warnings], result.warning_count + len(warnings)
        )
        return tryon, result, headers

    @staticmethod
    def _start_call(tryon: TryOn, account: str, body: Body) -> StartResult:
        files: dict[str, Upload] | None = None
        payload: Mapping[str, Any] | bytes = body.raw
        if body.kind == "multipart":
            payload, files = split_multipart(body.parts, tryon.catalog.limits)
        return tryon.start(account, payload, files)

    async def start(self, request: Request) -> Response:
        """``POST /try-on``: start a try-on; ``200 {generationId, status, productExternalId}``."""
        _, result, headers = await self._start(request)
        return json_response(start_to_wire(result.generation), headers=headers)

    async def start_sync(self, request: Request) -> Response:
        """``POST /try-on/sync``: start a try-on and wait for it, up to the sync timeout (T11).

        Finished: 200 with the generation and ``productExternalId``. Still running when the
        timeout comes or the server begins to stop: 202 ``{generationId, status,
        productExternalId}``, and the generation goes on. A client that disconnects ends its
        wait at the next nap (at most :data:`MAX_NAP` seconds later).
        """
        tryon, result, headers = await self._start(request)
        deadline = anyio.current_time() + self.sync_timeout  # from the acceptance on
        account = account_of(request)
        seen = result.generation
        wait: float | None = 0.0
        while seen.status not in _FINISHED:
            left = deadline - anyio.current_time()
            if left <= 0 or self.stopping.is_set():
                return json_response(
                    sync_to_wire(seen, self._result_url(request, account), finished=False),
                    202,
                    headers,
                )
            nap = MAX_NAP if wait is None else min(wait + _SETTLE, MAX_NAP)
            await self.stopping.wait(min(nap, left))
            if self.stopping.is_set():
                continue  # answer now: the catalog may already refuse new calls
            if await request.is_disconnected():
                # The client gave up: stop reading for it (the generation goes on).
                return Response(status_code=202)
            now_seen, wait = await self.calls.run(self._progress, tryon, account, seen)
            seen = now_seen
        wire = sync_to_wire(seen, self._result_url(request, account), finished=True)
        return json_response(wire, headers=headers)

    @staticmethod
    def _progress(
        tryon: TryOn, account: str, seen: GenerationView
    ) -> tuple[GenerationView, float | None]:
        """The generation now, and the seconds until it ends (``None``: its engine will say).

        A generation gone meanwhile (its retention ended) stays as last seen.
        """
        now = tryon.now()
        stored = tryon.repository.get_generation(account, seen.generation_id)
        generation = live_generation(stored, now)
        if generation is None:
            return seen, MAX_NAP
        if generation.finished_at is None:
            return view(generation, now), None
        return view(generation, now), max(0.0, (generation.finished_at - now).total_seconds())

    def _result_url(self, request: Request, account: str) -> Callable[[GenerationView], str]:
        tryon = self._flow()
        return lambda seen: self.media_url(request, tryon.result_ref(account, seen))

    # -- generations, credits, customers (T12-T19) ----------------------------------------

    async def generation(self, request: Request) -> Response:
        """``GET /generations/{generationId}``: the generation now (T12, T13)."""
        tryon = self._flow()
        warnings = unknown_parameters(request.query_params, set())
        account = account_of(request)
        generation_id: str = request.path_params["generation_id"]
        seen = await self.calls.run(tryon.get_generation, account, generation_id)
        wire = generation_to_wire(seen, self._result_url(request, account))
        return json_response(wire, headers=warnings_headers(warnings))

    async def credits(self, request: Request) -> Response:
        """``GET /account/credits``: ``{creditBalance}`` (T17)."""
        tryon = self._flow()
        warnings = unknown_parameters(request.query_params, set())
        balance = await self.calls.run(tryon.credits, account_of(request))
        return json_response({"creditBalance": balance}, headers=warnings_headers(warnings))

    async def erase(self, request: Request) -> Response:
        """``DELETE /customers/{customerId}``: erase the customer's images; always 204 (T18)."""
        tryon = self._flow()
        warnings = unknown_parameters(request.query_params, set())
        customer_id = path_text(request, "customer_id", f"{self.api_base}/customers/", "customerId")
        await self.calls.run(tryon.erase_customer, account_of(request), customer_id)
        return Response(status_code=204, headers=warnings_headers(warnings))

    # -- media (T3, T15) ------------------------------------------------------------------

    async def media(self, request: Request) -> Response:
        """``GET /media/{ref}``: a person image or result, without an API key (T3, T15).

        The image's bytes with their type, or a redirect to the URL a result is (a person image
        given by URL comes back unchanged, T14); ``404 MEDIA_NOT_FOUND`` for a reference that is
        malformed, unknown, of a wrong token, expired or erased.
        """
        tryon = self._flow()
        ref: str = request.path_params["ref"]
        media = await self.calls.run(tryon.open_media, ref)
        if media is None:
            raise MediaNotFound(
                "No image at this URL: it is unknown, expired or erased, or its token is wrong."
            )
        if media.redirect is not None:
            return Response(status_code=302, headers={"Location": media.redirect, **_MEDIA_HEADERS})
        return Response(media.data, media_type=media.mime_type, headers=_MEDIA_HEADERS)


def tryon_of(catalog: Any, initial: TryOn | None) -> tuple[TryOn | None, str]:
    """Return the flow to serve on ``catalog`` and, when there is none, why.

    Raises:
        ValueError: ``initial`` is a flow on another catalog.
    """
    if initial is not None:
        if initial.catalog is not catalog:
            raise ValueError("the TryOn must be on the catalog the application serves")
        return initial, ""
    repository = catalog.repository
    if not isinstance(repository, TryOnRepository):
        return None, (
            f"the catalog's repository ({type(repository).__name__}) does not store the try-on "
            "flow's state (it is not a TryOnRepository)"
        )
    return TryOn(catalog), ""
