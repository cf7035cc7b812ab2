"""The plainest upsert answered before the gate and Starlette sends exactly what the endpoint
sends (R4-R18, R29, R32), and leaves every other request to the whole application; its write
runs on the event loop when it need not wait, and in a worker thread when it must.

Each request is run through two identical catalogs: through the write layer of one, and through
the layer below it (the gate, Starlette, the endpoint) of the other. The ASGI messages must be
equal, message for message, and the layer must have answered the plain requests itself.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

import catalog_core as cc
from catalog_core.repository.sqlite import WriteWouldWait
from catalog_core.server import common, create_app
from catalog_core.server.common import CatalogCalls, NoWait, writes_inline
from tests.conftest import fresh_schema, postgres_url
from tests.server.test_product_reads import _scope

_NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
_LISTING = "/tryon/v1/products"
_JSON = (b"content-type", b"application/json")
_IMAGE = {"source": {"url": "https://cdn.example.test/a.jpg"}}


def _body(**fields: Any) -> bytes:
    return json.dumps({"images": [_IMAGE], **fields}).encode()


def _length(body: bytes) -> tuple[bytes, bytes]:
    return b"content-length", str(len(body)).encode()


def _plain(body: bytes, key: bytes = b"acme") -> list[tuple[bytes, bytes]]:
    return [(b"x-api-key", key), _JSON, _length(body)]


_CREATE = _body(externalId="new/one ü", title="Crew tee", metadata={"a": [1, 2.5, None]})
_UPDATE = json.dumps({"externalId": "p1", "title": "renamed"}).encode()
_WARNED = json.dumps({"externalId": "p1", "imageUrls": ["https://x.test/a.jpg"], "z": 1}).encode()
_INVALID = json.dumps({"externalId": "", "images": []}).encode()
_MALFORMED = b'{"externalId": "p1",'
_LARGE = _body(externalId="large") + b" " * 70_000  # past LOOP_WRITE_BYTES: written in a thread

# (body, headers, extra scope settings, whether the write layer answers it itself); the body
# arrives in one message unless the case says "chunks".
_CASES: list[tuple[bytes, list[tuple[bytes, bytes]], dict[str, Any], bool]] = [
    (_CREATE, _plain(_CREATE), {}, True),  # 201 and a Location
    (_CREATE, _plain(_CREATE), {}, True),  # the same again: 200, version 2
    (_UPDATE, _plain(_UPDATE), {}, True),
    (_UPDATE, _plain(_UPDATE, b"globex"), {}, True),  # another account: 404-free, an update
    (_WARNED, _plain(_WARNED), {}, True),  # warnings headers
    (_INVALID, _plain(_INVALID), {}, True),  # 400, every error
    (_MALFORMED, _plain(_MALFORMED), {}, True),  # 400
    (b"", _plain(b""), {}, True),  # an empty body: 400
    (_LARGE, _plain(_LARGE), {}, True),
    (_UPDATE, _plain(_UPDATE), {"chunks": 3}, True),  # the body in three messages
    (_UPDATE, [_JSON, _length(_UPDATE)], {}, False),  # no key: 401
    (_UPDATE, _plain(_UPDATE, b""), {}, False),
    (_UPDATE, _plain(_UPDATE, b"bad\x01key"), {}, False),  # not an account: 401
    (_UPDATE, [(b"x-api-key", b"acme"), *_plain(_UPDATE, b"globex")], {}, False),  # two keys
    (_UPDATE, [(b"x-api-key", b"acme"), *_plain(_UPDATE)], {}, True),  # one key, twice
    (_UPDATE, [(b"x-api-key", b"acme"), _length(_UPDATE)], {}, False),  # no type: 415
    (
        _UPDATE,
        [(b"x-api-key", b"acme"), (b"content-type", b"text/plain"), _length(_UPDATE)],
        {},
        False,
    ),
    (
        _UPDATE,
        [
            (b"x-api-key", b"acme"),
            (b"content-type", b"application/json; charset=utf-8"),
            _length(_UPDATE),
        ],
        {},
        False,
    ),
    (
        _UPDATE,
        [(b"x-api-key", b"acme"), (b"content-type", b"Application/JSON"), _length(_UPDATE)],
        {},
        False,
    ),
    (_UPDATE, [*_plain(_UPDATE), _JSON], {}, False),  # the type twice
    (_UPDATE, [*_plain(_UPDATE), _length(_UPDATE)], {}, False),  # the length twice
    (_UPDATE, [(b"x-api-key", b"acme"), _JSON], {}, False),  # no length
    (_UPDATE, [(b"x-api-key", b"acme"), _JSON, (b"content-length", b"+12")], {}, False),
    (_UPDATE, [(b"x-api-key", b"acme"), _JSON, (b"transfer-encoding", b"chunked")], {}, False),
    (_UPDATE, [*_plain(_UPDATE), (b"expect", b"100-continue")], {}, False),
    (_UPDATE, [*_plain(_UPDATE), (b"if-match", b'"1"')], {}, False),  # 412: p1 is at 2 by now
    (_UPDATE, [*_plain(_UPDATE), (b"if-match", b"*")], {}, False),
    (_UPDATE, _plain(_UPDATE), {"query": "x=1"}, False),  # a warning for the parameter
    (_UPDATE, _plain(_UPDATE), {"root_path": "/mounted"}, False),  # Location under the root
    (_CREATE, _plain(_CREATE), {"target": _LISTING + "/"}, False),  # no such route: 405/400
    (_CREATE, _plain(_CREATE), {"method": "PUT"}, False),  # 405
]


async def _run(app: Any, scope: dict[str, Any], body: bytes, chunks: int) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    size = -(-len(body) // chunks) if body else 0
    pieces = [body[i : i + size] for i in range(0, len(body), size)] if body else [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": n < len(pieces) - 1}
        for n, piece in enumerate(pieces)
    ]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep(3600)  # as a server does: the client has sent everything
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent


def _layer(app: Any, name: str) -> Any:
    layer = app.build_middleware_stack()
    while type(layer).__name__ != name:
        layer = layer.app
    return layer


def _has_layer(app: Any, name: str) -> bool:
    layer = app.build_middleware_stack()
    while layer is not None:
        if type(layer).__name__ == name:
            return True
        layer = getattr(layer, "app", None)
    return False


def _catalog(repository: cc.Repository) -> cc.Catalog:
    catalog = cc.Catalog(repository, clock=lambda: _NOW)
    for account in ("acme", "globex"):
        catalog.upsert(account, {"externalId": "p1", "images": [_IMAGE]})
    return catalog


def _repository(tmp_path: Path, kind: str, name: str) -> cc.Repository:
    if kind == "memory":
        return cc.MemoryRepository()
    durability = "full" if kind == "sqlite-full" else "normal"
    return cc.SQLiteRepository(tmp_path / f"{name}.db", durability=durability)


def _requests() -> Iterator[tuple[bytes, dict[str, Any], int, bool]]:
    """Each case of ``_CASES`` as a request: its body, scope, chunks and whether it is plain."""
    for body, headers, settings, plain in _CASES:
        settings = dict(settings)
        chunks = settings.pop("chunks", 1)
        target = settings.pop("target", _LISTING)
        if "query" in settings:
            target += "?" + settings.pop("query")
        method = settings.pop("method", "POST")
        yield body, _scope(target, method=method, headers=headers, **settings), chunks, plain


@pytest.mark.parametrize("kind", ["memory", "sqlite", "sqlite-full"])
@pytest.mark.parametrize("keys", [None, {"acme": "acme", "globex": "globex"}])
def test_r32_the_fast_upsert_answers_as_the_endpoint_and_only_the_plain_requests(
    tmp_path: Path, kind: str, keys: dict[str, str] | None
) -> None:
    """R32, R29: created (201, ``Location``), updated (200), warned, refused (400 with every
    error, in R30's order): the layer's answer is the endpoint's, byte for byte; every request
    that is not plain goes through the gate and the endpoint."""

    def app(name: str) -> Any:
        return create_app(_catalog(_repository(tmp_path, kind, name)), api_keys=keys)

    fast = _layer(app("fast"), "_ProductWrites")
    whole = _layer(app("whole"), "_ProductWrites").app
    passed: list[str] = []
    below = fast.app

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        passed.append(scope["path"])
        await below(scope, receive, send)

    fast.app = recording

    async def main() -> None:
        for body, scope, chunks, answered_fast in _requests():
            passed.clear()
            answer = await _run(fast, scope, body, chunks)
            expected = await _run(whole, scope, body, chunks)
            assert answer == expected, (body[:80], scope)
            assert bool(passed) is not answered_fast, (body[:80], scope)
            assert answer[0]["status"] < 500, answer

    anyio.run(main)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "sqlite-full"])
@pytest.mark.parametrize("keys", [None, {"acme": "acme", "globex": "globex"}])
def test_r32_the_upsert_answered_at_once_is_the_endpoints_answer(
    tmp_path: Path, kind: str, keys: dict[str, str] | None
) -> None:
    """R32, R29: what the connection sends for a plain upsert whose body came with its head
    (``app.state.answer_at_once``) is the endpoint's answer, message for message; it declines
    every other request, a body past ``LOOP_WRITE_BYTES`` and a catalog whose writes are not
    made on the loop, having written nothing (the two catalogs stay equal)."""

    def app(name: str) -> Any:
        return create_app(_catalog(_repository(tmp_path, kind, name)), api_keys=keys)

    fast = app("fast")
    at_once = fast.state.answer_at_once
    layer = _layer(fast, "_ProductWrites")
    whole = _layer(app("whole"), "_ProductWrites").app

    async def main() -> None:
        answered = 0
        for body, scope, chunks, plain in _requests():
            answer = at_once(dict(scope), body)
            expected = await _run(whole, scope, body, chunks)
            now = plain and body is not _LARGE and kind != "sqlite-full"
            assert (answer is not None) is now, (body[:80], scope)
            if answer is None:  # the application answers it, as the server would then
                assert await _run(layer, scope, body, chunks) == expected
            else:
                assert list(answer) == expected, (body[:80], scope)
                answered += 1
        assert answered == (0 if kind == "sqlite-full" else 10)

    anyio.run(main)


def test_r32_no_upsert_is_answered_at_once_under_a_rate_limit() -> None:
    app = create_app(cc.Catalog(cc.MemoryRepository()), rate_limit=100)
    assert app.state.answer_at_once is None


def test_r32_the_fast_upsert_is_not_used_under_a_rate_limit() -> None:
    """The gate counts every request against the rate limit: no write layer then."""
    assert _has_layer(create_app(cc.Catalog(cc.MemoryRepository())), "_ProductWrites")
    assert not _has_layer(
        create_app(cc.Catalog(cc.MemoryRepository()), rate_limit=100), "_ProductWrites"
    )


def test_r33_a_body_that_stops_coming_is_answered_408_and_the_connection_closed() -> None:
    """R33: the layer keeps the body's clocks: a plain upsert whose body stops half-way is
    answered 408 ``REQUEST_TIMEOUT`` and its connection closed (the guard does not wait for the
    rest), as the endpoint does."""
    app = create_app(cc.Catalog(cc.MemoryRepository()), body_timeout=0.2)
    guard = _layer(app, "_Guard")
    assert type(guard.app).__name__ == "_ProductWrites"
    body = _body(externalId="slow")

    async def main() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        first = [{"type": "http.request", "body": body[:10], "more_body": True}]

        async def receive() -> dict[str, Any]:
            if first:
                return first.pop()
            await anyio.sleep(3600)
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        with anyio.fail_after(10):
            await guard(_scope(_LISTING, method="POST", headers=_plain(body)), receive, send)
        return sent

    start, end = anyio.run(main)
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(end["body"])["code"] == "REQUEST_TIMEOUT"


class _Subclass(cc.MemoryRepository):
    pass


def test_which_backends_write_on_the_loop(tmp_path: Path) -> None:
    """An in-process catalog whose commit does not sync writes on the event loop; a catalog
    whose commit syncs (``durability="full"``), one shared connection, a subclass and PostgreSQL
    (a network round trip) write in worker threads."""
    assert writes_inline(cc.MemoryRepository()) is not None
    found = writes_inline(cc.SQLiteRepository(tmp_path / "c.db"))
    assert found is not None
    assert found.checkpoint is not None
    assert writes_inline(cc.SQLiteRepository(tmp_path / "f.db", durability="full")) is None
    assert writes_inline(cc.SQLiteRepository(":memory:")) is None
    assert writes_inline(_Subclass()) is None
    postgres = cc.PostgresRepository(postgres_url(), schema=fresh_schema())
    try:
        assert writes_inline(postgres) is None
    finally:
        postgres.drop_schema()
        postgres.close()


def _calls_on(repository: cc.SQLiteRepository, checkpoints: list[int]) -> CatalogCalls:
    """The server's calls on ``repository``, counting its (real) checkpoints."""

    def checkpoint() -> int:
        frames = repository.checkpoint()
        checkpoints.append(frames)
        return frames

    no_wait = NoWait(repository.writes_without_waiting, WriteWouldWait, checkpoint)
    return CatalogCalls(inline_reads=True, no_wait=no_wait)


def test_r27_a_write_runs_on_the_loop_unless_it_would_wait_for_the_lock(tmp_path: Path) -> None:
    """R27: with the lock free, a write runs on the event loop; with the lock held by another
    connection, it runs in a worker thread, where it waits while the loop serves on, and writes
    once the lock is free."""
    path = tmp_path / "c.db"
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository)
    calls = _calls_on(repository, [])
    where: list[int] = []

    def upsert(title: str) -> cc.UpsertResult:
        where.append(threading.get_ident())
        return catalog.upsert("acme", {"externalId": "p1", "title": title, "images": [_IMAGE]})

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def main() -> None:
        loop = threading.get_ident()
        assert (await calls.write(upsert, "free")).product.version == 1
        assert where == [loop]
        where.clear()
        holder.execute("BEGIN IMMEDIATE")
        ticks = 0
        async with anyio.create_task_group() as group:

            async def write() -> None:
                result = await calls.write(upsert, "waited")
                assert result.product.version == 2

            group.start_soon(write)
            while ticks < 20:  # the loop serves on while the write waits in its thread
                await anyio.sleep(0.01)
                ticks += 1
            assert catalog.get("acme", "p1").title == "free"
            holder.rollback()
        assert where[0] == loop  # tried on the loop, found the lock taken, wrote nothing
        assert where[1:]
        assert all(ident != loop for ident in where[1:])
        assert catalog.get("acme", "p1").title == "waited"
        assert calls.running == 0

    try:
        anyio.run(main)
    finally:
        holder.close()
        repository.close()


def test_r26_writes_on_the_loop_are_checkpointed_in_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """R26: every ``CHECKPOINT_WRITES`` writes on the loop, one checkpoint runs in a thread of
    its own (never two at once); no write is lost and the file stays whole. A checkpoint that
    fails is logged, and the writes go on."""
    monkeypatch.setattr(common, "CHECKPOINT_WRITES", 10)
    path = tmp_path / "c.db"
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository)
    checkpoints: list[int] = []
    calls = _calls_on(repository, checkpoints)

    def upsert(n: int) -> cc.UpsertResult:
        return catalog.upsert("acme", {"externalId": f"p{n}", "images": [_IMAGE]})

    def settled(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(checkpoints) < count or calls.running:
            assert time.monotonic() < deadline, checkpoints
            time.sleep(0.01)

    async def writes(numbers: range) -> None:
        for n in numbers:
            await calls.write(upsert, n)

    for round_ in range(1, 4):  # each 10 writes, one checkpoint
        anyio.run(writes, range(10 * (round_ - 1), 10 * round_))
        settled(round_)
    assert len(checkpoints) == 3
    assert all(frames > 0 for frames in checkpoints)

    # While one runs, no other starts, however many writes are due; the next write after it
    # starts the next.
    started: list[bool] = []
    release = threading.Event()

    def slow() -> int:
        started.append(True)
        release.wait(30)
        return repository.checkpoint()

    calls.no_wait = NoWait(repository.writes_without_waiting, WriteWouldWait, slow)
    anyio.run(writes, range(30, 35))
    assert started == []
    anyio.run(writes, range(35, 65))
    deadline = time.monotonic() + 30
    while not started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert started == [True]
    release.set()
    while calls.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    anyio.run(writes, range(65, 66))
    while len(started) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    while calls.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    def failing() -> int:
        raise sqlite3.OperationalError("disk I/O error")

    calls.no_wait = NoWait(repository.writes_without_waiting, WriteWouldWait, failing)
    with caplog.at_level(logging.ERROR, logger="catalog_core.server"):
        anyio.run(writes, range(66, 80))
        deadline = time.monotonic() + 30
        while "a checkpoint of the catalog failed" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    repository.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert check.execute("SELECT count(*) FROM products").fetchone() == (80,)
    check.close()


def test_r26_a_checkpoint_after_the_shutdown_began_is_not_run(tmp_path: Path) -> None:
    """R26: once the server drains its calls to close the catalog, a checkpoint due then does
    not start: the catalog's last connection copies the log as it closes."""
    repository = cc.SQLiteRepository(tmp_path / "c.db")
    ran: list[bool] = []
    calls = CatalogCalls(
        no_wait=NoWait(repository.writes_without_waiting, WriteWouldWait, lambda: ran.append(True))
    )
    assert calls.drain(0)
    calls._checkpoint(lambda: ran.append(True))  # what the thread runs
    assert ran == []
    repository.close()


def test_r26_r27_many_upserts_over_http_keep_the_file_whole(tmp_path: Path) -> None:
    """R26, R27: 1,200 upserts over four connections, while a bulk import holds the lock now
    and then (the loop's writes go to threads then) and checkpoints run: every write is there,
    at its version, and the file is whole."""
    import httpx

    from tests.server.test_protocol import serve

    path = tmp_path / "c.db"
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository)
    importing = threading.Event()
    batches: list[int] = []

    def importer() -> None:  # another writer of the same file, in another thread
        other = cc.Catalog(cc.SQLiteRepository(path))
        while not importing.wait(0.02):
            lines = ({"externalId": f"bulk{k}", "images": [_IMAGE]} for k in range(300))
            assert all(isinstance(r, cc.UpsertResult) for r in other.upsert_many("acme", lines))
            batches.append(1)
        other.repository.close()

    def client(first: int, port: int) -> None:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": "acme"}
        ) as http:
            for n in range(first, 1200, 4):
                answer = http.post(
                    _LISTING,
                    content=_body(externalId=f"p{n % 500}", title=str(n)),
                    headers={"content-type": "application/json"},
                )
                assert answer.status_code in (200, 201), answer.text

    thread = threading.Thread(target=importer)
    thread.start()
    try:
        for _, port in serve(create_app(catalog), 5):
            clients = [threading.Thread(target=client, args=(k, port)) for k in range(4)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
    finally:
        importing.set()
        thread.join()
    repository.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    versions = dict(
        check.execute("SELECT external_id, version FROM products WHERE external_id LIKE 'p%'")
    )
    assert len(versions) == 500
    assert sum(versions.values()) == 1200  # each of the 1,200 writes made one version
    assert batches  # the import ran beside them
    check.close()


def test_r26_the_log_stays_bounded_while_writes_on_the_loop_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R26: writes on the loop go on while each checkpoint runs in its thread; the checkpoint
    lets the log begin again all the same, so the log file stays about one checkpoint's pages
    long (6,000 writes of 3 pages each would make a log of 74 MB, never begun again, with
    checkpoints that only copy)."""
    monkeypatch.setattr(common, "CHECKPOINT_WRITES", 200)
    path = tmp_path / "c.db"
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository)
    calls = _calls_on(repository, [])
    largest = 0

    async def main() -> None:
        nonlocal largest
        for n in range(6000):
            await calls.write(
                catalog.upsert, "acme", {"externalId": f"p{n % 100}", "images": [_IMAGE]}
            )
            if n % 500 == 0:
                largest = max(largest, (tmp_path / "c.db-wal").stat().st_size)

    anyio.run(main)
    deadline = time.monotonic() + 30
    while calls.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    largest = max(largest, (tmp_path / "c.db-wal").stat().st_size)
    assert largest < 20 * 2**20, largest
    repository.close()


def test_r26_a_checkpoint_thread_that_cannot_start_costs_the_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """R26: the write before a checkpoint has committed: a thread that cannot start is logged,
    the write's result is returned all the same, and the checkpoint is tried again after as
    many writes again."""
    monkeypatch.setattr(common, "CHECKPOINT_WRITES", 3)
    repository = cc.SQLiteRepository(tmp_path / "c.db")
    catalog = cc.Catalog(repository)
    checkpoints: list[int] = []
    calls = _calls_on(repository, checkpoints)
    starting = threading.Thread.start

    def cannot_start(self: threading.Thread) -> None:
        if self.name == "catalog-core checkpoint":
            raise RuntimeError("can't start new thread")
        starting(self)

    def upsert(n: int) -> cc.UpsertResult:
        return catalog.upsert("acme", {"externalId": "p", "title": str(n), "images": [_IMAGE]})

    async def writes(numbers: range) -> list[int]:
        return [(await calls.write(upsert, n)).product.version for n in numbers]

    monkeypatch.setattr(threading.Thread, "start", cannot_start)
    with caplog.at_level(logging.ERROR, logger="catalog_core.server"):
        assert anyio.run(writes, range(4)) == [1, 2, 3, 4]
    assert "a checkpoint of the catalog could not start" in caplog.text
    assert checkpoints == []
    monkeypatch.setattr(threading.Thread, "start", starting)
    assert anyio.run(writes, range(4, 6)) == [5, 6]
    deadline = time.monotonic() + 30
    while not checkpoints or calls.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    repository.close()


@pytest.mark.parametrize("held", [0.05, 0.5])
def test_r27_a_write_waits_on_the_loop_for_the_servers_own_checkpoint_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: float
) -> None:
    """R27: while the server's checkpoint holds the lock (it waits for the log's readers, and a
    writer waiting in a thread is one), a write waits on the loop, asleep and holding nothing,
    and is made there once the lock is free; past ``CHECKPOINT_PATIENCE`` it goes to a thread.
    The loop serves on meanwhile."""
    monkeypatch.setattr(common, "CHECKPOINT_PATIENCE", 0.2)
    path = tmp_path / "c.db"
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository)
    calls = _calls_on(repository, [])
    where: list[int] = []

    def upsert() -> cc.UpsertResult:
        where.append(threading.get_ident())
        return catalog.upsert("acme", {"externalId": "p1", "images": [_IMAGE]})

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def main() -> None:
        loop = threading.get_ident()
        holder.execute("BEGIN IMMEDIATE")  # as the checkpoint holds it
        calls._checkpointing = True
        ticks = 0
        async with anyio.create_task_group() as group:
            group.start_soon(calls.write, upsert)
            while ticks * 0.01 < held:
                await anyio.sleep(0.01)
                ticks += 1
            holder.rollback()
        assert ticks >= 5  # the loop went on while the write waited
        if held < 0.2:
            assert set(where) == {loop}  # tried on the loop until the lock was free
        else:
            assert where[0] == loop
            assert where[-1] != loop  # gave up on the loop: written in a thread
        assert catalog.get("acme", "p1").version == 1

    try:
        anyio.run(main)
    finally:
        holder.close()
        repository.close()


# -- answered at once by the connection ------------------------------------------------------


def _request(body: bytes, *extra: bytes) -> tuple[bytes, bytes]:
    """A plain upsert's head and body, as a client sends them."""
    head = b"".join(
        [
            b"POST /tryon/v1/products HTTP/1.1\r\nhost: test\r\nx-api-key: acme\r\n",
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            *(line + b"\r\n" for line in extra),
            b"\r\n",
        ]
    )
    return head, body


def _answers(sock: Any, count: int) -> list[bytes]:
    """Read ``count`` answers framed by their ``Content-Length``, each without its ``date``
    (an interim ``100 Continue`` is not one)."""
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, (answers, data)
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 100 "):
            continue  # the interim answer to Expect
        lines = [line for line in head.split(b"\r\n") if not line.startswith(b"date: ")]
        (length,) = [int(line[16:]) for line in lines if line.startswith(b"content-length: ")]
        while len(data) < length:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
        answers.append(b"\r\n".join(lines) + b"\r\n\r\n" + data[:length])
        data = data[length:]
    return answers


def test_r32_a_plain_upsert_whose_body_came_with_its_head_is_answered_without_the_application(
    tmp_path: Path,
) -> None:
    """R32: over a real connection, a plain upsert whose body came in the read of its head is
    answered at once, without the application (no task); one whose body comes later, one with
    ``Expect``, and every other request go to the application. Each answer is, byte for byte
    but the date, what a server without the answer at once sends on a twin catalog; pipelined
    requests are answered in order, and ``Connection: close`` is kept."""
    import socket

    from tests.server.test_protocol import serve

    def app_of(name: str) -> Any:
        return create_app(_catalog(cc.SQLiteRepository(tmp_path / f"{name}.db")))

    app, twin = app_of("at-once"), app_of("twin")
    reached: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            reached.append(scope["method"])
        await app(scope, receive, send)

    created, updated = _body(externalId="q1", title="a"), _body(externalId="q1", title="b")
    again = _body(externalId="q2")
    # (what the client sends, a pause between pieces; answers; what reaches the application,
    # None: either way)
    steps: list[tuple[list[bytes], int, list[str] | None]] = [
        ([b"".join(_request(created))], 1, []),  # 201 with Location
        # Pipelined: a request whose head came while the one before it was being answered goes
        # to the application when its turn comes; one read after that may be answered at once
        ([b"".join(_request(updated)) + b"".join(_request(again))], 2, None),
        (list(_request(updated)), 1, ["POST"]),  # the body in a later read: the application
        ([b"".join(_request(_UPDATE, b"expect: 100-continue"))], 1, ["POST"]),
        ([b"".join(_request(_INVALID))], 1, []),  # 400 with every error
        ([b"GET /tryon/v1/products/q1 HTTP/1.1\r\nhost: t\r\nx-api-key: acme\r\n\r\n"], 1, ["GET"]),
        ([b"".join(_request(_body(externalId="q3"), b"connection: close"))], 1, []),
    ]
    at_once = app.state.answer_at_once
    for _, port in serve(recording, 5, access_log=False, answer_at_once=at_once):
        for _, twin_port in serve(twin, 5, access_log=False):
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as ours,
                socket.create_connection(("127.0.0.1", twin_port), timeout=10) as theirs,
            ):
                for pieces, count, expected in steps:
                    reached.clear()
                    for sock in (ours, theirs):
                        for n, piece in enumerate(pieces):
                            if n:
                                time.sleep(0.3)
                            sock.sendall(piece)
                    answer = _answers(ours, count)
                    assert answer == _answers(theirs, count), pieces
                    assert expected is None or reached == expected, pieces
                assert answer[0].startswith(b"HTTP/1.1 201 ")
                assert b"connection: close" in answer[0]
                assert ours.recv(1) == b""  # and closed


def test_r32_a_failure_of_an_upsert_answered_at_once_is_logged_and_answered_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception of the write is answered 500 in the error shape and logged with
    the method and path (never the key), as the guard does; the connection serves on."""
    import socket

    from tests.server.test_protocol import serve

    app = create_app(_catalog(cc.SQLiteRepository(tmp_path / "c.db")))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(cc.Catalog, "upsert", broken)
    get = b"GET /tryon/v1/products/p1 HTTP/1.1\r\nhost: t\r\nx-api-key: acme\r\n\r\n"
    with caplog.at_level(logging.ERROR, logger="catalog_core.server"):
        for _, port in serve(app, 5, access_log=False, answer_at_once=app.state.answer_at_once):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(b"".join(_request(_UPDATE)))
                (failed,) = _answers(client, 1)
                client.sendall(get)
                (read,) = _answers(client, 1)
    assert failed.startswith(b"HTTP/1.1 500 ")
    assert json.loads(failed.partition(b"\r\n\r\n")[2])["code"] == "INTERNAL"
    assert read.startswith(b"HTTP/1.1 200 ")
    assert "request failed: POST /tryon/v1/products" in caplog.text
    assert "disk I/O error" in caplog.text
    assert "acme" not in caplog.text


def test_r32_an_answer_at_once_that_the_client_is_slow_to_take_is_sent_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer at once whose head fills the connection's buffers (the client takes nothing
    yet) pauses the connection's writes: its body then waits in a task of the connection's,
    as the application's send would, and the whole answer arrives once the client reads."""
    import socket

    from catalog_core.server import protocol
    from tests.server.test_protocol import serve

    later: list[bool] = []
    sent_later = protocol._sent_later

    async def spied(*args: Any) -> None:
        later.append(True)
        await sent_later(*args)

    monkeypatch.setattr(protocol, "_sent_later", spied)
    limits = cc.Limits(max_external_id_length=20_000)
    app = create_app(cc.Catalog(cc.SQLiteRepository(tmp_path / "c.db"), limits=limits))
    external_id = "é" * 15_000  # its Location is 90,000 bytes of percent-encoding
    body = json.dumps({"externalId": external_id, "images": [_IMAGE]}, ensure_ascii=False)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # its connections' too
    at_once = app.state.answer_at_once
    for _, port in serve(app, 5, listener, access_log=False, answer_at_once=at_once):
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with client:
            client.settimeout(10)
            client.connect(("127.0.0.1", port))
            client.sendall(b"".join(_request(body.encode())))
            deadline = time.monotonic() + 10
            while not later:  # nothing is read meanwhile
                assert time.monotonic() < deadline
                time.sleep(0.01)
            (answer,) = _answers(client, 1)
    head, _, sent = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 ")
    assert b"location: /tryon/v1/products/" + b"%C3%A9" * 15_000 in head
    assert json.loads(sent)["externalId"] == external_id


@pytest.mark.parametrize("first", ["get", "upsert"])
def test_r33_a_post_read_ahead_whose_body_has_not_come_is_timed_as_any_body(
    tmp_path: Path, first: str
) -> None:
    """R33: a POST read behind another request (pipelined), whose body has not all come when
    its turn comes, is started as any request: it gets its ``100 Continue`` when it asks, and
    its body's clock runs (a 408 and the connection closed), rather than waiting for bytes."""
    import socket

    from tests.server.test_protocol import serve

    app = create_app(_catalog(cc.SQLiteRepository(tmp_path / "c.db")), body_timeout=0.5)
    ahead = (
        b"GET /tryon/v1/products/p1 HTTP/1.1\r\nhost: t\r\nx-api-key: acme\r\n\r\n"
        if first == "get"
        else b"".join(_request(_UPDATE))
    )
    head, body = _request(_UPDATE)
    waiting = head[:-2] + b"expect: 100-continue\r\n\r\n"
    at_once = app.state.answer_at_once
    for _, port in serve(app, 5, access_log=False, answer_at_once=at_once):
        for behind in (head + body[:5], waiting):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(ahead + behind)
                sent = b""
                while chunk := client.recv(65536):  # until the server closes
                    sent += chunk
                assert sent.startswith(b"HTTP/1.1 200 "), sent
                answered = sent.index(b"\r\n\r\n{") + 4
                rest = sent[answered:].partition(b"HTTP/1.1 ")[2]
                if behind is waiting:
                    assert rest.startswith(b"100 Continue\r\n\r\nHTTP/1.1 408 "), sent
                else:
                    assert rest.startswith(b"408 "), sent
                assert b'"code":"REQUEST_TIMEOUT"' in rest
