"""The GET of one product and of a listing page answered before the framework's layers sends
exactly what the endpoint sends (R23, R24, R29), and leaves every other request to the whole
application.

Each request is run through the server's stack from the fast layer down, and again from the
layer below it (the guard, the gate, Starlette, the endpoint): the ASGI messages must be equal,
message for message, and the fast layer must have answered the plain requests itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import pytest

import catalog_core as cc
from catalog_core.server import create_app

_NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
_PREFIX = "/tryon/v1/products/"


def _catalog(repository: cc.Repository, clock: list[datetime]) -> cc.Catalog:
    catalog = cc.Catalog(repository, clock=lambda: clock[0])
    image = {"source": {"url": "https://cdn.example.test/a.jpg"}}
    for account in ("acme", "globex"):
        catalog.upsert(account, {"externalId": "p1", "images": [image]})
    catalog.upsert(
        "acme",
        {
            "externalId": "full/with slash",
            "title": "Crew tee — white",
            "description": "é" * 40,
            "metadata": {"sizes": ["S", "M"], "price": 12.5, "nested": {"a": None}},
            "validForDays": 30,
            "images": [
                image,
                {
                    "source": {"url": "https://cdn.example.test/b.jpg"},
                    "classifications": {"kind": "top"},
                },
            ],
        },
    )
    catalog.upsert("acme", {"externalId": "short", "validForDays": 1, "images": [image]})
    catalog.upsert("acme", {"externalId": "ünï", "images": [image]})
    catalog.upsert("acme", {"externalId": "p1", "title": "second version"})  # version 2
    return catalog


def _scope(
    target: str,
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
) -> dict[str, Any]:
    path, _, query = target.partition("?")
    raw = path.encode("utf-8")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + unquote(path),
        "raw_path": (root_path + path).encode("utf-8") if root_path else raw,
        "query_string": query.encode("ascii"),
        "root_path": root_path,
        "headers": [(b"host", b"test")]
        + ([(b"x-api-key", b"acme")] if headers is None else headers),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


# (target, extra scope settings, whether the fast layer answers it itself)
_CASES: list[tuple[str, dict[str, Any], bool]] = [
    (_PREFIX + "p1", {}, True),
    (_PREFIX + "p1", {"headers": [(b"x-api-key", b"globex")]}, True),  # another account's p1
    (_PREFIX + "full/with slash", {}, True),
    (_PREFIX + "short", {}, True),
    (_PREFIX + "missing", {}, False),  # 404
    (_PREFIX, {}, False),  # no id: 400
    (_PREFIX + "%C3%BCn%C3%AF", {}, False),  # percent-encoded: the endpoint decodes it
    (_PREFIX + "%FF", {}, False),  # not UTF-8: 400
    (_PREFIX + "p1?x=1", {}, False),  # an unknown parameter: a warning header
    (_PREFIX + "p1", {"method": "HEAD"}, False),
    (_PREFIX + "p1", {"headers": []}, False),  # 401 without a key
    (_PREFIX + "p1", {"headers": [(b"x-api-key", b"")]}, False),
    (_PREFIX + "p1", {"headers": [(b"x-api-key", b"acme"), (b"x-api-key", b"globex")]}, False),
    (_PREFIX + "p1", {"headers": [(b"x-api-key", b"acme"), (b"x-api-key", b"acme")]}, True),
    (_PREFIX + "p1", {"headers": [(b"x-api-key", b"bad key")]}, False),  # not an account: 401
    (
        _PREFIX + "p1",
        {"headers": [(b"x-api-key", b"acme"), (b"content-length", b"0")]},
        False,
    ),
    (_PREFIX + "p1", {"headers": [(b"x-api-key", b"acme"), (b"expect", b"100-continue")]}, False),
    (_PREFIX + "p1", {"root_path": "/mounted"}, False),
    ("/tryon/v1/openapi.json", {}, False),
]
_LISTING = "/tryon/v1/products"
# The listing: the plain pages are answered by the layer; "{cursor}" is a cursor of acme's.
_PAGE_CASES: list[tuple[str, dict[str, Any], bool]] = [
    (_LISTING, {}, True),
    (_LISTING, {"headers": [(b"x-api-key", b"globex")]}, True),
    (_LISTING + "?limit=2", {}, True),
    (_LISTING + "?limit=0002", {}, True),  # leading zeros: 2
    (_LISTING + "?limit=2&cursor={cursor}", {}, True),
    (_LISTING + "?cursor={cursor}&limit=1", {}, True),
    (_LISTING + "?cursor={cursor}", {}, True),
    (_LISTING + "?limit=2&cursor={cursor}", {"headers": [(b"x-api-key", b"globex")]}, False),
    (_LISTING + "?cursor=bogus", {}, False),  # not a cursor of this listing: 400
    (_LISTING + "?cursor=", {}, False),
    (_LISTING + "?limit=0", {}, False),  # 400
    (_LISTING + "?limit=201", {}, False),
    (_LISTING + "?limit=000000000000000000000050", {}, True),  # leading zeros: 50
    (_LISTING + "?limit=123456", {}, False),  # too long a run of digits: 400
    (_LISTING + "?limit=", {}, False),
    (_LISTING + "?limit=-1", {}, False),
    (_LISTING + "?limit=%32", {}, False),  # percent-encoded: the endpoint decodes it
    (_LISTING + "?limit=2&limit=2", {}, False),  # given twice: 400
    (_LISTING + "?cursor={cursor}&cursor={cursor}", {}, False),
    (_LISTING + "?limit=2&", {}, False),
    (_LISTING + "?limit=2&x=1", {}, False),  # an unknown parameter: a warning header
    (_LISTING + "?limit=2;x=1", {}, False),
    (_LISTING, {"method": "HEAD"}, False),
    (_LISTING, {"method": "POST"}, False),
    (_LISTING, {"headers": []}, False),  # 401 without a key
    (_LISTING, {"headers": [(b"x-api-key", b"")]}, False),  # not an account: 401
    (_LISTING, {"headers": [(b"x-api-key", b"acme"), (b"x-api-key", b"globex")]}, False),
    (_LISTING, {"headers": [(b"x-api-key", b"acme"), (b"content-length", b"0")]}, False),
    (_LISTING, {"root_path": "/mounted"}, False),
    (_LISTING + "/", {}, False),  # the GET of one product, without an id: 400
]


async def _run(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent


def _fast_layer(app: Any) -> Any:
    layer = app.build_middleware_stack()
    while type(layer).__name__ != "_ProductReads":
        layer = layer.app
    return layer


@pytest.fixture(params=["memory", "sqlite"])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> cc.Repository:
    if request.param == "memory":
        return cc.MemoryRepository()
    return cc.SQLiteRepository(tmp_path / "c.db")


@pytest.mark.parametrize("keys", [None, {"acme": "acme", "globex": "globex"}])
def test_r23_r24_the_fast_reads_answer_as_the_endpoints_and_only_the_plain_requests(
    repository: cc.Repository, keys: dict[str, str] | None
) -> None:
    clock = [_NOW]
    catalog = _catalog(repository, clock)
    app = create_app(catalog, api_keys=keys)
    fast = _fast_layer(app)
    whole = fast.app
    passed: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        passed.append(scope["path"])
        await whole(scope, receive, send)

    fast.app = recording

    cursor = catalog.list("acme", 2).next_cursor
    assert cursor is not None
    cases = _CASES + [(t.format(cursor=cursor), s, fast) for t, s, fast in _PAGE_CASES]

    async def main() -> None:
        for when in (_NOW, _NOW + timedelta(days=2)):  # "short" has expired at the second
            clock[0] = when
            for target, settings, answered_fast in cases:
                scope = _scope(target, **settings)
                passed.clear()
                answer = await _run(fast, scope)
                went_through = bool(passed)
                expected = await _run(whole, scope)
                assert answer == expected, (target, settings)
                live = not (target.endswith("short") and when > _NOW)
                assert went_through is not (answered_fast and live), (target, settings, when)

    anyio.run(main)


def test_r23_the_fast_get_is_not_used_where_its_conditions_fail(tmp_path: Path) -> None:
    """A rate limit counts each request in the gate, and reads that leave the event loop
    (PostgreSQL, a shared SQLite connection) keep the worker thread: no fast layer for them."""
    assert _has_fast_layer(create_app(cc.Catalog(cc.MemoryRepository())))
    assert not _has_fast_layer(create_app(cc.Catalog(cc.MemoryRepository()), rate_limit=100))
    assert not _has_fast_layer(create_app(cc.Catalog(cc.SQLiteRepository(":memory:"))))


def _has_fast_layer(app: Any) -> bool:
    layer = app.build_middleware_stack()
    while layer is not None:
        if type(layer).__name__ == "_ProductReads":
            return True
        layer = getattr(layer, "app", None)
    return False


def test_r29_a_page_the_shutdown_cancels_in_its_thread_is_answered_503_as_the_endpoint_does() -> (
    None
):
    """R29: a listing page that waits for a worker thread (memory's, or a page stopped on the
    loop) and that the shutdown cancels is answered ``503 UNAVAILABLE`` by the layer, as by the
    guard behind it, not left to escape as a bare 500."""
    import json

    fast = _fast_layer(create_app(_catalog(cc.MemoryRepository(), [_NOW])))

    async def waiting(*args: Any) -> bytes:  # the page's wait for its thread, cancellable
        await anyio.sleep(10)
        raise AssertionError("not cancelled")

    fast._calls.read_bounded = waiting  # shared with the endpoints behind the layer

    async def cancelled(app: Any) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async with anyio.create_task_group() as group:
            group.start_soon(app, _scope(_LISTING + "?limit=2"), receive, send)
            await anyio.sleep(0.05)
            group.cancel_scope.cancel()  # what the shutdown does to the request's task
        return sent

    async def main() -> None:
        answer = await cancelled(fast)
        assert answer == await cancelled(fast.app)  # the guard's answer behind the layer
        assert answer[0]["status"] == 503
        assert json.loads(answer[1]["body"])["code"] == "UNAVAILABLE"

    anyio.run(main)


def test_r29_a_method_not_allowed_lists_the_allowed_methods_in_one_order() -> None:
    """R29: the ``Allow`` of a 405, and its message, name the methods sorted, whatever order
    the process keeps them in."""
    import json

    app = create_app(cc.Catalog(cc.MemoryRepository()))

    async def main() -> None:
        for method in ("PUT", "DELETE", "PATCH"):
            start, body = await _run(app, _scope(_LISTING, method=method))
            assert start["status"] == 405
            assert dict(start["headers"])[b"allow"] == b"GET, HEAD, POST"
            assert "use GET, HEAD, POST." in json.loads(body["body"])["message"]

    anyio.run(main)
