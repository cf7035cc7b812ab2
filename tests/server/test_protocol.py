"""The server's connection protocol, run in process by uvicorn on a socket made as ``serve`` makes
it: every connection has Nagle's algorithm off, and the head deadline takes only real numbers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

import catalog_core as cc
from catalog_core.server import create_app
from catalog_core.server.body import DEFAULT_BODY_MIN_RATE, DEFAULT_BODY_TIMEOUT
from catalog_core.server.protocol import (
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_SEND_TIMEOUT,
    DESCRIPTOR_RESERVE,
    Server,
    default_max_connections,
    head_timeout_protocol,
)


@contextlib.contextmanager
def running(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> Iterator[None]:
    """``server`` run in a thread of its own until the block ends, started when it begins."""
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serve(app: Any, head_timeout: float) -> Iterator[tuple[uvicorn.Server, int]]:
    """uvicorn serving ``app`` with the protocol, on a socket made as ``serve`` makes it."""
    sock = socket.create_server(("127.0.0.1", 0))  # proto 0: asyncio leaves Nagle on for it
    config = uvicorn.Config(
        app, http=head_timeout_protocol(head_timeout), log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    with running(server, [sock]):
        yield server, sock.getsockname()[1]
    sock.close()


@pytest.fixture
def served() -> Iterator[tuple[uvicorn.Server, int]]:
    """The server's app on a memory catalog."""
    yield from serve(create_app(cc.Catalog(cc.MemoryRepository())), 5)


async def _answer_at_once(scope: Any, receive: Any, send: Any) -> None:
    """An app that answers without reading the request's body."""
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"early"})


@pytest.fixture
def early() -> Iterator[tuple[uvicorn.Server, int]]:
    yield from serve(_answer_at_once, 1)


def test_every_connection_sends_without_delay(served: tuple[uvicorn.Server, int]) -> None:
    """With Nagle on, each response on a kept-alive connection waited ~40 ms for a delayed ACK."""
    server, port = served
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": "k"}) as http:
        for _ in range(3):  # one kept-alive connection, several responses
            assert http.get("/tryon/v1/products").status_code == 200
        connections = list(server.server_state.connections)
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), True, "5", None])
def test_a_head_timeout_that_is_not_a_positive_number_is_refused(seconds: object) -> None:
    with pytest.raises(ValueError, match="head_timeout must be a positive number"):
        head_timeout_protocol(seconds)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="send_timeout must be a positive number"):
        head_timeout_protocol(5, send_timeout=seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("trickled", ["the rest of the body", "the next head"])
def test_r33_after_an_early_answer_the_deadline_covers_the_rest_of_the_body_and_the_next_head(
    early: tuple[uvicorn.Server, int], trickled: str
) -> None:
    """An app may answer before it reads the body; the connection then waits for the rest of that
    body and the next request's head under the one deadline that started when the answer ended.
    """
    _, port = early
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n"
    rest = b"b" * 30 if trickled == "the rest of the body" else b"b" * 30 + b"GET / HTTP/1.1\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + b"b" * 10)
        answer = b""
        while not answer.endswith(b"early"):
            answer += sock.recv(65536)
        if trickled == "the next head":
            sock.sendall(rest[:30])  # the body ends at once: h11 starts the next cycle
            rest = rest[30:]
        started = time.monotonic()
        closed = False
        for byte in rest * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > 8:
                break
        sock.settimeout(2)
        try:
            while sock.recv(65536):  # a 408 may come first; then the end of the stream
                pass
            closed = True
        except TimeoutError:
            closed = False
        except OSError:  # reset
            closed = True
    assert closed, "the connection outlived the 1 s deadline"
    assert time.monotonic() - started < 6


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("header_timeout", DEFAULT_HEAD_TIMEOUT),
        ("send_timeout", DEFAULT_SEND_TIMEOUT),
        ("body_timeout", DEFAULT_BODY_TIMEOUT),
        ("body_min_rate", DEFAULT_BODY_MIN_RATE),
    ],
)
def test_the_serve_commands_defaults_are_the_servers(name: str, default: float) -> None:
    """The CLI spells the defaults out, since it must not import the server extra."""
    from catalog_core.cli import main

    serve_command = main.commands["serve"]  # type: ignore[attr-defined]
    (option,) = [p for p in serve_command.params if p.name == name]
    assert option.default == default


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "10"])
def test_a_connection_limit_that_is_not_a_positive_integer_is_refused(limit: object) -> None:
    config = uvicorn.Config(create_app(cc.Catalog(cc.MemoryRepository())))
    with pytest.raises(ValueError, match="max_connections must be a positive integer"):
        Server(config, max_connections=limit)  # type: ignore[arg-type]


def test_the_default_connection_limit_keeps_descriptors_free_below_the_processs_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert default_max_connections() == soft - min(DESCRIPTOR_RESERVE, soft // 2)


def test_the_server_keeps_its_connection_limit_on_a_socket_it_binds_itself() -> None:
    """Without sockets given, Server binds the configured host and port, capped as well."""
    config = uvicorn.Config(
        create_app(cc.Catalog(cc.MemoryRepository())),
        http=head_timeout_protocol(5),
        port=0,
        log_config=None,
        log_level="warning",
    )
    with socket.create_server(("127.0.0.1", 0)) as probe:
        config.port = probe.getsockname()[1]
    with (
        running(Server(config, max_connections=1)),
        socket.create_connection(("127.0.0.1", config.port), timeout=10) as first,
    ):
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", config.port), timeout=10) as second:
            assert second.recv(65536).startswith(b"HTTP/1.1 503 ")
        first.sendall(b"GET /tryon/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        assert first.recv(65536).startswith(b"HTTP/1.1 200 ")


def _written_through(steps: list[list[bytes]], close: bool) -> tuple[list[bytes], bytes]:
    """Write ``steps`` (each a step of the event loop's writes) through a request cycle's
    transport on one end of a real socket pair; return the transport's own writes and what the
    other end read."""
    import asyncio

    from catalog_core.server.protocol import _OneWritePerStep

    ours, theirs = socket.socketpair()

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        sent: list[bytes] = []
        real_write = transport.write

        def write(data: bytes) -> None:  # the real write, counted
            sent.append(bytes(data))
            real_write(data)

        transport.write = write  # type: ignore[method-assign]
        cycle = _OneWritePerStep(transport, loop)  # type: ignore[arg-type]
        for step in steps:
            for data in step:
                cycle.write(data)
            await asyncio.sleep(0)  # the step ends
        if close:
            cycle.write(b"last")
            cycle.close()  # in the same step: what is held goes first
        else:
            transport.close()
        await asyncio.sleep(0.05)
        return sent

    sent = asyncio.run(main())
    received = b""
    while chunk := theirs.recv(65536):
        received += chunk
    theirs.close()
    return sent, received


def test_a_responses_head_and_body_written_in_one_step_go_out_as_one_write() -> None:
    """uvicorn writes a head, then a body: one system call and one packet, not two."""
    sent, received = _written_through([[b"HTTP/1.1 200 OK\r\n\r\n", b"", b'{"a":1}']], False)
    assert sent == [b'HTTP/1.1 200 OK\r\n\r\n{"a":1}']
    assert received == b'HTTP/1.1 200 OK\r\n\r\n{"a":1}'


def test_writes_of_separate_steps_keep_their_order_and_closing_sends_what_is_held() -> None:
    sent, received = _written_through([[b"HTTP/1.1 100 Continue\r\n\r\n"], [b"a", b"b"]], True)
    assert sent == [b"HTTP/1.1 100 Continue\r\n\r\n", b"ab", b"last"]
    assert received == b"HTTP/1.1 100 Continue\r\n\r\nablast"


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


_GET = b"GET /tryon/v1/products/p1 HTTP/1.1\r\nHost: test\r\nx-api-key: k1\r\n\r\n"


def _one_product() -> cc.Catalog:
    catalog = cc.Catalog(cc.MemoryRepository())
    catalog.upsert("k1", {"externalId": "p1", "images": [{"source": {"url": "https://x.test/a"}}]})
    return catalog


def test_a_response_written_as_the_connection_closes_is_sent_before_the_close() -> None:
    """A request after which the connection is closed in the same step (here a shutdown of
    every connection, queued as the request began) still gets its whole answer."""
    import asyncio

    holder: dict[str, uvicorn.Server] = {}
    inner = create_app(_one_product())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            state = holder["server"].server_state
            asyncio.get_running_loop().call_soon(
                lambda: [connection.shutdown() for connection in list(state.connections)]
            )
        await inner(scope, receive, send)

    for server, port in serve(app, 5):
        holder["server"] = server
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_GET)
            answer = _read_all(sock)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert answer.endswith(b"}"), answer


def test_a_pipelined_answer_is_sent_before_the_400_of_a_malformed_request_after_it() -> None:
    for _, port in serve(create_app(_one_product()), 5):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_GET + b"BOGUS\x00 / HTTP/1.1\r\n\r\n")
            answer = _read_all(sock)
        assert answer.count(b"HTTP/1.1 ") == 2, answer
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert b"HTTP/1.1 400 " in answer


def test_a_large_body_is_written_as_it_comes_so_flow_control_holds_it() -> None:
    """Past 64 KiB held, writes go to the transport at once: a client that reads nothing makes
    a streaming app wait, rather than the whole body pile up in the server's memory."""
    chunks_sent = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal chunks_sent
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(2048):  # 128 MiB in chunks of 64 KiB, all ready at once
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
            chunks_sent += 1
        await send({"type": "http.response.body", "body": b""})

    for _, port in serve(app, 5):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            time.sleep(1)  # the client reads nothing
            assert chunks_sent < 512, chunks_sent  # held back by flow control, far from 2,048
