"""The server's connection protocol, run in process by uvicorn on a socket made as ``serve`` makes
it: every connection has Nagle's algorithm off, and the head deadline takes only real numbers."""

from __future__ import annotations

import contextlib
import re
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


def serve(
    app: Any,
    head_timeout: float,
    sock: socket.socket | None = None,
    access_log: bool = True,
    **options: Any,
) -> Iterator[tuple[uvicorn.Server, int]]:
    """uvicorn serving ``app`` with the protocol (and its ``options``), on a socket made as
    ``serve`` makes it unless one is given."""
    if sock is None:
        sock = socket.create_server(("127.0.0.1", 0))  # proto 0: asyncio leaves Nagle on for it
    config = uvicorn.Config(
        app,
        http=head_timeout_protocol(head_timeout, **options),
        log_config=None,
        log_level="warning",
        access_log=access_log,
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


def test_a_whole_response_goes_out_before_its_request_ends() -> None:
    """The last write of a response is sent at once, not when the event loop's step ends: the
    client reads it while the request's task is still busy with what follows its answer."""
    read = threading.Event()
    waited: list[bool] = []

    async def busy_after_answering(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]}
        )
        await send({"type": "http.response.body", "body": b"done"})
        waited.append(read.wait(5))  # blocks the event loop: its step does not end meanwhile

    for _, port in serve(busy_after_answering, 5):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"done"):
                answer += client.recv(65536)
            read.set()
        assert answer.startswith(b"HTTP/1.1 200 ")
    assert waited == [True]


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


@pytest.mark.parametrize("chunk", [1 << 20, 1024])
def test_r33_a_request_head_over_16_kib_is_answered_400_and_closed(chunk: int) -> None:
    """No head costs more memory than its limit, whether it comes at once or a piece at a time,
    in one header or in many; a head just under it is served."""
    from catalog_core.server.protocol import MAX_HEAD_BYTES

    big_value = b"x-pad: " + b"v" * MAX_HEAD_BYTES + b"\r\n"
    many = b"".join(b"x-pad-%d: %s\r\n" % (n, b"v" * 90) for n in range(200))
    endless = b"x-pad: " + b"v" * (4 * MAX_HEAD_BYTES)  # one value that never ends
    for _, port in serve(create_app(_one_product()), 5):
        for extra in (big_value + b"\r\n", many + b"\r\n", endless):
            head = _GET[:-2] + extra
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                with contextlib.suppress(OSError):  # the server may close before all is sent
                    for start in range(0, len(head), chunk):
                        sock.sendall(head[start : start + chunk])
                        time.sleep(0.001 if chunk < len(head) else 0)
                answer = _read_all(sock)
            assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        under = _GET[:-2] + b"x-pad: " + b"v" * (MAX_HEAD_BYTES - len(_GET) - 100) + b"\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(under)
            sock.settimeout(5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


class _Recorder:
    """An app that reads each request's body whole, then answers its path and body's size."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.headers: list[list[tuple[bytes, bytes]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(scope["path"])
        self.headers.append(list(scope["headers"]))
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = f"{scope['path']} {size}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _exchange(app: Any, data: bytes) -> bytes:
    """Send ``data`` on one connection to ``app`` served with a 5 s deadline; all it answers."""
    answer = b""
    for _, port in serve(app, 5):  # the server stops once this loop ends
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(data)
            answer = _read_all(sock)
    return answer


def _statuses(answer: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)


def test_pipelined_requests_are_read_one_at_a_time_so_a_connection_holds_one_read() -> None:
    """A client that pipelines requests faster than it reads their answers holds the server's
    memory to one read (256 KiB) and the requests parsed from one slice: the parser is not
    handed more while the latest request is not answered. (Handed every read whole, the parser
    queued every request in it, and the queue grew as long as the client sent.)"""
    from catalog_core.server import protocol

    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    flood = request * (4_000_000 // len(request))
    widest = {"queued": 0, "unparsed": 0}
    for server, port in serve(_answer_at_once, 5):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)

            def send() -> None:
                with contextlib.suppress(OSError):  # the socket closes before all is sent
                    sock.sendall(flood)

            threading.Thread(target=send, daemon=True).start()
            until = time.monotonic() + 1.5
            while time.monotonic() < until:  # the client reads nothing meanwhile
                connection: Any
                for connection in list(server.server_state.connections):
                    widest["queued"] = max(widest["queued"], len(connection.pipeline))
                    widest["unparsed"] = max(widest["unparsed"], len(connection._unparsed))
                time.sleep(0.001)
            sock.settimeout(10)
            answered = 0
            while answered < 2000:  # it goes on answering in order once the client reads
                answered += sock.recv(65536).count(b"HTTP/1.1 200 ")
            sock.shutdown(socket.SHUT_RDWR)
    assert 0 < widest["unparsed"] <= 256 * 1024, widest
    assert widest["queued"] <= protocol._SLICE // len(request), widest


def test_an_upgrade_request_without_a_body_is_served_as_a_plain_one_and_the_next_follows() -> None:
    """No protocol is switched to: a client offering one (``curl --http2`` offers h2c) gets a
    plain answer, and what it sends next is read as the next request."""
    app = _Recorder()
    offer = (
        b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQ\r\n"
    )
    answer = _exchange(
        app,
        b"GET /first HTTP/1.1\r\nHost: t\r\n" + offer + b"\r\n"
        b"GET /second HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    assert _statuses(answer) == [b"200", b"200"], answer
    assert app.paths == ["/first", "/second"]


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 48\r\n", b"Transfer-Encoding: chunked\r\n"],
    ids=["content-length", "chunked"],
)
@pytest.mark.parametrize("start", [b"POST /first", b"CONNECT t:443"], ids=["upgrade", "connect"])
def test_an_upgrade_or_connect_request_with_a_body_is_refused_and_its_body_never_served(
    framing: bytes, start: bytes
) -> None:
    """The parser does not read the body of a request that asks to switch protocols: served,
    its body would be read as the next request (one smuggled past whatever fronts the server).
    It is answered 400 and nothing after it is read."""
    app = _Recorder()
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    body = (
        smuggled.ljust(48, b" ")
        if b"Length" in framing
        else b"%x\r\n%s\r\n0\r\n\r\n"
        % (
            len(smuggled),
            smuggled,
        )
    )
    upgrade = b"Connection: upgrade\r\nUpgrade: websocket\r\n" if b"POST" in start else b""
    answer = _exchange(
        app, start + b" HTTP/1.1\r\nHost: t\r\n" + upgrade + framing + b"\r\n" + body
    )
    assert _statuses(answer) == [b"400"], answer
    assert app.paths == []


def test_a_chunked_body_is_served_with_its_trailers_dropped() -> None:
    app = _Recorder()
    answer = _exchange(
        app,
        b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n1;ext=1\r\nd\r\n0\r\nX-Trailer: 1\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    assert _statuses(answer) == [b"200", b"200"], answer
    assert b"/chunked 4" in answer
    assert app.paths == ["/chunked", "/next"]
    assert not any(name == b"x-trailer" for name, _ in app.headers[0])


@pytest.mark.parametrize(
    "tail",
    [
        b"0\r\nX-Trailer: " + b"t" * 200_000,  # a trailer that never ends
        b"0\r\n" + b"X-T: 1\r\n" * 20_000,  # trailers that never end
        b"1;" + b"e" * 200_000,  # a chunk line that never ends
    ],
    ids=["trailer", "trailers", "chunk-line"],
)
def test_bytes_between_pieces_of_a_body_are_bounded_then_answered_400(tail: bytes) -> None:
    """What arrives between two pieces of a chunked body (chunk lines, trailers) is at most
    ``MAX_HEAD_BYTES`` or so: past it the request is answered 400 and the connection closed."""
    app = _Recorder()
    for _, port in serve(app, 5):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            head = b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            with contextlib.suppress(OSError):
                sock.sendall(head + b"3\r\nabc\r\n")
                for start in range(0, len(tail), 4096):
                    sock.sendall(tail[start : start + 4096])
            started = time.monotonic()
            answer = _read_all(sock)
    assert _statuses(answer) == [b"400"], answer[:300]
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("served_first", [False, True], ids=["alone", "after-another"])
def test_a_malformed_body_is_answered_400_at_once(served_first: bool) -> None:
    """The request whose chunked body is malformed is the one being served: its 400 comes at
    once, not when the body's idle timeout ends (30 s); a request before it is answered first."""
    first = _GET if served_first else b""
    for _, port in serve(create_app(_one_product()), 5):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            started = time.monotonic()
            sock.sendall(
                first + b"POST /tryon/v1/products HTTP/1.1\r\nHost: t\r\nx-api-key: k1\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\n{}\r\nzz\r\n"
            )
            answer = _read_all(sock)
    assert _statuses(answer) == ([b"200"] if served_first else []) + [b"400"], answer
    assert time.monotonic() - started < 3


def test_a_shutdown_serves_no_request_read_ahead_of_the_one_being_served() -> None:
    """Requests pipelined behind the one being served when the server begins to stop are not
    served: that one is answered, then the connection closes."""
    import asyncio

    app = _Recorder()
    holder: dict[str, uvicorn.Server] = {}

    async def stopping(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/first":
            for connection in list(holder["server"].server_state.connections):
                connection.shutdown()
            await asyncio.sleep(0.2)
        await app(scope, receive, send)

    for server, port in serve(stopping, 5):
        holder["server"] = server
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
                + b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n" * 3
            )
            started = time.monotonic()
            answer = _read_all(sock)
            closed_after = time.monotonic() - started
    assert _statuses(answer) == [b"200"], answer
    assert b"connection: close" in answer.lower()  # no keep-alive is promised
    assert closed_after < 2  # closed after the answer, not by a timeout
    assert app.paths == ["/first"]


@pytest.mark.parametrize("count", [1, 5, 300])
def test_a_client_that_ends_its_side_after_its_requests_is_answered_them_all(count: int) -> None:
    """``shutdown(SHUT_WR)`` after pipelined requests (as ``nc -N`` does): every one is
    answered, in order, then the connection closes."""
    app = _Recorder()
    for _, port in serve(app, 5):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"".join(b"GET /r%d HTTP/1.1\r\nHost: t\r\n\r\n" % n for n in range(count))
            )
            sock.shutdown(socket.SHUT_WR)
            started = time.monotonic()
            answer = _read_all(sock)
            closed_after = time.monotonic() - started
    assert _statuses(answer) == [b"200"] * count
    assert app.paths == [f"/r{n}" for n in range(count)]
    assert closed_after < 4


@pytest.mark.parametrize(
    "malformed",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /r1 HTTP/1.1\r\nHost: t\r\nno colon\r\n\r\n",
        b"POST /r1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
    ],
    ids=["line", "header", "body"],
)
def test_a_half_closed_client_gets_the_answer_before_a_malformed_request_then_its_400(
    malformed: bytes,
) -> None:
    """The request being served when a malformed one follows it and the client ends its side
    is still answered (it may have written), then the 400, then the connection closes."""
    import asyncio

    app = _Recorder()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/slow":
            await asyncio.sleep(0.3)
        await app(scope, receive, send)

    for _, port in serve(slow, 5):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n" + malformed)
            sock.shutdown(socket.SHUT_WR)
            answer = _read_all(sock)
    assert _statuses(answer) == [b"200", b"400"], answer
    assert app.paths == ["/slow"]


@pytest.mark.parametrize(
    "cut",
    [b"GET /r1 HTTP/1.1\r\nHost:", b"POST /r1 HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nab"],
    ids=["head", "body"],
)
def test_a_client_that_ends_its_side_within_a_request_is_closed_at_once(cut: bytes) -> None:
    app = _Recorder()
    for _, port in serve(app, 5):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /r0 HTTP/1.1\r\nHost: t\r\n\r\n" + cut)
            sock.shutdown(socket.SHUT_WR)
            started = time.monotonic()
            answer = _read_all(sock)
            closed_after = time.monotonic() - started
    assert _statuses(answer) in ([], [b"200"]), answer  # the request before it may be answered
    assert closed_after < 2


@pytest.mark.parametrize(
    "request_",
    [
        b"GET /no-host HTTP/1.1\r\n\r\n",
        b"POST /gzip HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n",
    ],
    ids=["no-host", "gzip", "connect"],
)
def test_requests_h11_refused_are_refused_400(request_: bytes) -> None:
    """An HTTP/1.1 request without ``Host``, a transfer coding other than chunked (it would
    reach the application undecoded), and a ``CONNECT`` are answered 400, as h11 answered."""
    app = _Recorder()
    answer = _exchange(app, request_)
    assert _statuses(answer) == [b"400"], answer
    assert app.paths == []


def test_an_http_1_0_request_needs_no_host() -> None:
    app = _Recorder()
    answer = _exchange(app, b"GET /old HTTP/1.0\r\n\r\n")
    assert _statuses(answer) == [b"200"], answer
