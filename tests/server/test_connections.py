"""What connections get from ``catalog-core serve`` when it stops, and when there are too many.

Real server processes, real sockets, and a machine kept busy by busy-loop processes beside the
server, because that is when the races these tests pin are lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import run_size
from tests.server.conftest import Server
from tests.server.test_http import read_all, status_of

CLIENT = Path(__file__).with_name("stop_race_client.py")


@pytest.fixture
def busy_machine() -> Iterator[None]:
    """Every core kept busy by a busy-loop process for the duration of the test."""
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    yield
    for loop in loops:
        loop.kill()
        loop.wait()


def test_after_sigterm_no_connection_starts_a_new_request_and_the_server_exits_at_once(
    start: Callable[..., Server], tmp_path: Path, busy_machine: None
) -> None:
    """docs/server.md, Stopping: SIGTERM ends every connection's run of requests.

    Connections are being accepted at every moment around the SIGTERM, each of them kept alive
    after it for as long as the server answers. A connection accepted as the shutdown began used
    to be overlooked and served new requests for the whole --shutdown-timeout. Several rounds in
    a row, on a loaded machine.
    """
    rounds = run_size("STOP_ROUNDS", 5, 30)
    connections = slowest = 0.0
    for round_ in range(rounds):
        server = start("--db", str(tmp_path / f"catalog{round_}.db"), "--shutdown-timeout", "60")
        flag = tmp_path / f"stopping{round_}"
        clients = subprocess.Popen(
            [sys.executable, str(CLIENT), str(server.port), str(flag), "12", "12"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert clients.stdout is not None
        assert clients.stdout.readline() == "warm\n"  # connections come and go
        flag.touch()
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            status = server.process.wait(timeout=30)
        finally:
            out, _ = clients.communicate(timeout=60)
        took = time.monotonic() - signalled
        stats = json.loads(out)
        assert status == -signal.SIGTERM
        assert stats["late"] == 0, f"round {round_}: {stats}"
        assert took < 5, f"round {round_}: exited {took:.1f} s after SIGTERM; {stats}"
        connections += stats["connections"]
        slowest = max(slowest, took)
    print(
        f"\nstop race: {rounds} rounds, {connections:.0f} connections, no request begun after "
        f"SIGTERM, slowest exit {slowest:.2f} s after it"
    )


def test_a_connection_over_max_connections_is_answered_503_at_once_and_closed(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """--max-connections: the connection past the limit gets 503 UNAVAILABLE, Retry-After and a
    close the moment it is accepted; once one of the others ends, a new one is served."""
    server = start("--db", str(tmp_path / "catalog.db"), "--max-connections", "3")
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(3)]
    try:
        time.sleep(0.2)  # all three made on the server's side
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            answer = read_all(extra)  # without a request: it is refused as it is accepted
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        head = answer.split(b"\r\n\r\n")[0].lower()
        assert b"connection: close" in head
        assert b"retry-after: 1" in head
        error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert (error["code"], error["status"]) == ("UNAVAILABLE", 503)
        assert "3 connections" in error["message"]
    finally:
        held.pop().close()
    time.sleep(0.2)
    with httpx.Client(base_url=server.base, headers={"x-api-key": "gk_k"}) as client:
        assert client.get("/products").status_code == 200
    for sock in held:
        sock.close()
    assert "connections refused with 503" in server.log()


def test_under_a_descriptor_limit_a_flood_of_trickling_bodies_leaves_requests_answered(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """1,100 connections each trickling a body, against a server limited to 1,024 descriptors.

    Without a connection limit the server ran out of descriptors (accept failed with EMFILE) and
    ordinary requests waited; without a minimum body rate, bodies sent a byte a second were
    never cut off. Now: every ordinary request gets an answer at once (503 while the limit is
    reached), the trickling bodies are dropped with 408 once they fall behind --body-min-rate,
    and then ordinary requests are served again.
    """
    flood = run_size("FLOOD_CONNECTIONS", 1100, 3000)
    server = start(
        "--db",
        str(tmp_path / "catalog.db"),
        "--body-timeout",
        "3",
        "--log-level",
        "warning",
        nofile=1024,
    )
    head = (
        b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: gk_flood\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
    )
    tricklers: list[socket.socket] = []
    try:
        for _ in range(flood):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # refused over the limit: its answer is read below
                sock.send(head + b"{")
            tricklers.append(sock)
        flooded = time.monotonic()
        during: list[tuple[int, float]] = []
        with httpx.Client(base_url=server.base, headers={"x-api-key": "gk_k"}, timeout=5) as client:
            while time.monotonic() - flooded < 1.5:
                asked = time.monotonic()
                response = client.get("/products")  # a request that waits fails the test
                during.append((response.status_code, time.monotonic() - asked))
                if response.status_code == 503:
                    assert response.json()["code"] == "UNAVAILABLE"
                _trickle(tricklers)
                time.sleep(0.1)
            descriptors = len(os.listdir(f"/proc/{server.process.pid}/fd"))
            assert {status for status, _ in during} <= {200, 503}, during
            assert 503 in {status for status, _ in during}, during  # the limit was reached...
            assert descriptors < 1024  # ...below the process's descriptor limit
            assert max(took for _, took in during) < 3, during  # answered at once
            # The trickling bodies fall behind 1,024 bytes a second after 3 s: each is dropped.
            while time.monotonic() - flooded < 4.5:
                _trickle(tricklers)
                time.sleep(1)
            # ...and then a write is served, once a place is free.
            deadline = time.monotonic() + 15
            while (after := client.post("/products", json=_PRODUCT)).status_code == 503:
                assert time.monotonic() < deadline, "no place came free"
                _trickle(tricklers)
                time.sleep(0.2)
            assert after.status_code == 201, after.text
        answers = Counter(_status_or_reset(sock) for sock in tricklers)
    finally:
        for sock in tricklers:
            sock.close()
    print(
        f"\nflood: {flood} trickling connections under 1,024 descriptors; {len(during)} ordinary "
        f"requests answered {dict(Counter(status for status, _ in during))}, slowest in "
        f"{max(took for _, took in during):.3f} s; server at {descriptors} descriptors; "
        f"the flood answered {dict(answers)}"
    )
    assert set(answers) <= {408, 503, "reset"}, answers
    assert answers[408] > 0, answers
    log = server.log()
    assert "out of system resource" not in log
    assert "Too many open files" not in log


_PRODUCT = {"externalId": "after", "images": [{"source": {"url": "https://x.example/a"}}]}


def _trickle(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.send(b" ")


def _status_or_reset(sock: socket.socket) -> int | str:
    sock.setblocking(True)
    sock.settimeout(10)
    try:
        answer = read_all(sock)
    except OSError:
        return "reset"
    return status_of(answer) if answer else "reset"


def _stuck_client(server: Server) -> socket.socket:
    """A connection that asks for 600 OpenAPI documents at once and never reads an answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /tryon/v1/openapi.json HTTP/1.1\r\nHost: test\r\n\r\n" * 600)
    return sock


def _answered(server: Server) -> int | str:
    """The status a new connection's request gets."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"GET /tryon/v1/openapi.json HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        try:
            answer = read_all(sock)
        except OSError:
            return "reset"
    return status_of(answer) if answer else "closed"


def test_a_client_that_never_reads_its_answers_is_cut_off_at_the_send_timeout(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """--send-timeout: a client that takes none of its answers' bytes for that long is closed.

    It held its connection, and its place under --max-connections, for as long as it liked.
    """
    server = start(
        "--db", str(tmp_path / "catalog.db"), "--send-timeout", "1", "--max-connections", "1"
    )
    with _stuck_client(server):
        time.sleep(0.3)
        assert _answered(server) == 503  # the one place is taken...
        deadline = time.monotonic() + 10
        while (status := _answered(server)) != 200:  # ...until the send timeout frees it
            assert status == 503
            assert time.monotonic() < deadline, "the client that never reads kept its place"
            time.sleep(0.2)
    assert "took nothing of its response for 1 s" in server.log()


def test_a_client_that_never_reads_its_answers_does_not_hold_up_the_shutdown(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """SIGTERM waited the whole --shutdown-timeout for an answer no one read."""
    server = start(
        "--db", str(tmp_path / "catalog.db"), "--send-timeout", "1", "--shutdown-timeout", "60"
    )
    with _stuck_client(server):
        time.sleep(0.5)
        signalled = time.monotonic()
        assert server.stop() == -signal.SIGTERM
        assert time.monotonic() - signalled < 6  # the send timeout, and a margin


def test_refused_connections_are_all_counted_in_the_log(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """The refusals are logged in few lines, but every one of them is counted."""
    server = start("--db", str(tmp_path / "catalog.db"), "--max-connections", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10):
        time.sleep(0.2)
        for _ in range(5):
            assert _answered(server) == 503
    assert server.stop() == -signal.SIGTERM
    counts = re.findall(r"(\d+) connections refused with 503", server.log())
    assert sum(map(int, counts)) == 5, counts


def test_serve_keeps_its_connection_limit_where_uvloop_is_installed() -> None:
    """uvicorn picks uvloop by default when it is installed, and uvloop accepts connections in
    its C core, where no limit can be kept: the server runs on asyncio's loop. (uvloop is in the
    test dependencies, so every test of the limit above runs where it is installed.)"""
    import uvicorn
    import uvloop

    from catalog_core.server.protocol import Server

    assert uvloop.__version__
    config = uvicorn.Config(_noop)
    assert Server(config).config.loop == "asyncio"
    for loop in ("uvloop", "none"):
        with pytest.raises(ValueError, match="asyncio's event loop"):
            Server(uvicorn.Config(_noop, loop=loop))


async def _noop(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI application that is never called."""


def test_a_connection_limit_past_what_the_descriptors_allow_is_warned_about(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    server = start("--db", str(tmp_path / "catalog.db"), "--max-connections", "5000", nofile=1024)
    assert server.stop() == -signal.SIGTERM
    assert "--max-connections 5000 leaves fewer than 200 descriptors" in server.log()


def test_all_the_sockets_of_a_server_share_its_connection_limit() -> None:
    """Server.run(sockets=[a, b]) keeps ``max_connections`` over both, not on each."""
    import uvicorn

    import catalog_core as cc
    from catalog_core.server import create_app
    from catalog_core.server.protocol import Server, head_timeout_protocol
    from tests.server.test_protocol import running

    app = create_app(cc.Catalog(cc.MemoryRepository()))
    config = uvicorn.Config(app, http=head_timeout_protocol(5), log_config=None)
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    ports = [sock.getsockname()[1] for sock in listeners]
    with (
        running(Server(config, max_connections=1), listeners),
        socket.create_connection(("127.0.0.1", ports[0]), timeout=10),
    ):
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", ports[1]), timeout=10) as second:
            assert read_all(second).startswith(b"HTTP/1.1 503 ")
