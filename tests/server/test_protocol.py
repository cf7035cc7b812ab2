"""The server's connection protocol, run in process by uvicorn on a socket made as ``serve`` makes
it: every connection has Nagle's algorithm off, and the head deadline takes only real numbers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

import catalog_core as cc
from catalog_core.server import create_app
from catalog_core.server.protocol import head_timeout_protocol


@pytest.fixture
def served() -> Iterator[tuple[uvicorn.Server, int]]:
    """uvicorn serving a memory catalog with the protocol, on ``socket.create_server``'s socket."""
    sock = socket.create_server(("127.0.0.1", 0))  # proto 0: asyncio leaves Nagle on for it
    config = uvicorn.Config(
        create_app(cc.Catalog(cc.MemoryRepository())),
        http=head_timeout_protocol(5),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield server, sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


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
