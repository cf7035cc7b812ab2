"""The connection of ``catalog-core serve``: uvicorn's h11, with a head deadline and no Nagle.

uvicorn waits for a request's line and headers for as long as the client takes: a client that
sends them a byte at a time, or opens a connection and sends nothing, holds the connection and its
memory indefinitely. Here the head must arrive whole within ``head_timeout`` seconds of the
connection opening, or of the previous response ending. A started head that misses the deadline
gets ``408 REQUEST_TIMEOUT``; a connection that sent nothing is closed silently, as uvicorn's own
keep-alive timeout closes an idle one. The body has its own idle timeout (``create_app``).

asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on sockets made with
``IPPROTO_TCP``; a socket from :func:`socket.create_server` is not, and with Nagle on, the small
body after a response's headers waited for the client's delayed ACK: about 40 ms for every
response on a kept-alive connection. Each connection turns it off here.

:class:`Server` is uvicorn's server with two more guarantees:

- At most ``max_connections`` connections are open at once. One more is answered
  ``503 UNAVAILABLE`` and closed the moment it is accepted, before it takes a descriptor for longer
  than that: however many connections a client opens, the process keeps descriptors for those it
  serves, its database and its logs. (asyncio accepts every pending connection before any of them
  reaches a protocol, so the limit is kept by the listening socket's ``accept``, not by the
  protocol; at the process's descriptor limit accept failed with ``EMFILE``, asyncio stopped
  accepting for a second at a time, and every new client waited.) The default leaves
  :data:`DESCRIPTOR_RESERVE` descriptors of the process's limit free.
- Its shutdown ends every connection's run of requests. uvicorn tells the connections it knows of
  to close, but a connection accepted in the same turn of the event loop is made only after that,
  and was then served new requests, kept alive, until the shutdown timed out. The server marks
  itself stopping before uvicorn looks at its connections, and this protocol closes a connection
  made after that at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import socket
import time
from typing import Any, Final

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from catalog_core._json import dumps
from catalog_core.errors import CatalogError
from catalog_core.server.body import check_timeout
from catalog_core.server.errors import RequestTimeout, ServiceUnavailable

__all__ = [
    "DEFAULT_HEAD_TIMEOUT",
    "DESCRIPTOR_RESERVE",
    "Server",
    "default_max_connections",
    "head_timeout_protocol",
]

#: Seconds a connection may take to send a request's line and headers.
DEFAULT_HEAD_TIMEOUT = 10.0
#: Descriptors the default connection limit keeps free for everything else the server opens:
#: database files (three per SQLite connection, one connection per worker thread at most, and
#: Starlette runs 40), a PostgreSQL pool's sockets, logs, the event loop's own.
DESCRIPTOR_RESERVE: Final = 200
# Seconds between two log lines about connections refused over the limit.
_REFUSAL_LOG_SECONDS: Final = 10.0


def default_max_connections() -> int:
    """The connection limit of ``catalog-core serve`` when none is given.

    The process's descriptor limit (its soft ``RLIMIT_NOFILE``) less :data:`DESCRIPTOR_RESERVE`,
    or half of it when the limit is smaller than twice the reserve.
    """
    import resource  # Unix only, as uvicorn's descriptor limits are

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, soft - min(DESCRIPTOR_RESERVE, soft // 2))


def _canned(error: CatalogError, *headers: str) -> bytes:
    """A whole HTTP/1.1 answer in the error shape, for a connection no request cycle runs on."""
    body = dumps(error.to_wire())
    lines = [
        f"HTTP/1.1 {error.status} {http.HTTPStatus(error.status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *headers,
        "connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class _Gauge:
    """How many accepted connections are open: counted at accept, released at their close."""

    def __init__(self) -> None:
        self.open = 0

    def release(self) -> None:
        self.open -= 1


class _CountedSocket(socket.socket):
    """An accepted connection's socket, which gives its place back when it is closed."""

    def __init__(self, *args: Any, gauge: _Gauge, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gauge: _Gauge | None = gauge

    def close(self) -> None:
        gauge, self._gauge = self._gauge, None
        if gauge is not None:
            gauge.release()
        super().close()


class _CappedListener(socket.socket):
    """A listening socket whose ``accept`` keeps at most ``limit`` accepted connections open.

    asyncio calls ``accept`` until it would block; past the limit, each pending connection is
    answered 503 and closed here, so it never reaches the event loop, and asyncio sees only the
    connections it may serve.
    """

    def __init__(self, sock: socket.socket, limit: int, logger: logging.Logger) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.limit = limit
        self.gauge = _Gauge()
        self._logger = logger
        self._refused = 0
        self._logged_at = -_REFUSAL_LOG_SECONDS
        self._busy = _canned(
            ServiceUnavailable(
                f"The server has {limit} connections open, its limit; retry shortly."
            ),
            "retry-after: 1",
        )

    def accept(self) -> tuple[socket.socket, Any]:
        """Accept the next connection the server may serve; refuse the ones before it.

        Raises:
            BlockingIOError: no connection is pending (as ``socket.accept`` raises).
        """
        while True:
            fd, address = self._accept()  # type: ignore[attr-defined]
            if self.gauge.open < self.limit:
                self.gauge.open += 1
                kind = (self.family, self.type, self.proto)
                return _CountedSocket(*kind, fileno=fd, gauge=self.gauge), address
            self._refuse(socket.socket(self.family, self.type, self.proto, fileno=fd))

    def _refuse(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # a peer that left already: nothing to say
            conn.setblocking(False)
            conn.send(self._busy)  # a new socket's buffer takes it whole
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= _REFUSAL_LOG_SECONDS:
            self._logger.warning(
                "%d connections refused with 503: %d are open, the limit (--max-connections)",
                self._refused,
                self.limit,
            )
            self._refused, self._logged_at = 0, now


class _ServingState(ServerState):
    """uvicorn's state shared by a server's connections, and whether the server is stopping."""

    def __init__(self) -> None:
        super().__init__()
        self.stopping = False


class Server(uvicorn.Server):
    """uvicorn's server, with a connection limit and a shutdown no connection outlives.

    Run it as ``uvicorn.Server``, with :func:`head_timeout_protocol`'s connections (the shutdown
    needs them to close a connection made as it began)::

        config = uvicorn.Config(app, http=head_timeout_protocol(10))
        Server(config, max_connections=1000).run()

    Args:
        config: uvicorn's configuration.
        max_connections: connections open at once; past it a new one is answered 503 and
            closed. ``None``: :func:`default_max_connections`.

    Raises:
        ValueError: ``max_connections`` is not a positive integer.
    """

    def __init__(self, config: uvicorn.Config, *, max_connections: int | None = None) -> None:
        if max_connections is not None and (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
        super().__init__(config)
        self.server_state = _ServingState()
        self.max_connections = max_connections or default_max_connections()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, on listening sockets that keep the connection limit."""
        if sockets is None:
            sockets = [self.config.bind_socket()]
        logger = logging.getLogger("uvicorn.error")
        capped: list[socket.socket] = [
            _CappedListener(sock, self.max_connections, logger) for sock in sockets
        ]
        await super().startup(sockets=capped)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Mark the server stopping, then shut down as uvicorn does."""
        assert isinstance(self.server_state, _ServingState)
        self.server_state.stopping = True
        await super().shutdown(sockets=sockets)


def head_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """Return an h11 protocol class for uvicorn (``Config(http=...)``) with a head deadline.

    Its connections also send without delay (``TCP_NODELAY``), and under a :class:`Server` one
    made after the server began to stop is closed at once.

    Raises:
        ValueError: ``seconds`` is not a positive, finite number.
    """
    check_timeout("head_timeout", seconds)
    response = _canned(
        RequestTimeout(
            f"The request's line and headers did not arrive within {seconds:g} s; the request "
            "was dropped and nothing was written."
        )
    )

    class HeadDeadlineProtocol(H11Protocol):
        """uvicorn's h11 protocol, closing connections whose request head does not arrive."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            state = self.server_state
            if isinstance(state, _ServingState) and state.stopping:
                self.shutdown()  # no request has begun on it: it closes at once
                return
            self._sync()
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # Some systems refuse it on a socket the peer has already closed: no matter.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._sync()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._sync()

        def _waiting(self) -> bool:
            """No request is being served: none has begun, or its response has been sent.

            A response can end before its request's body does (an early answer), so the rest
            of that body and the next head share the deadline that starts when it ends.
            """
            ours, theirs = self.conn.our_state, self.conn.their_state
            return ours is h11.DONE or (ours is h11.IDLE and theirs is h11.IDLE)

        def _sync(self) -> None:
            """Run the deadline while waiting (never restarting it); stop it while serving."""
            if self.transport.is_closing() or not self._waiting():
                self._disarm()
            elif self._deadline is None:
                self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or not self._waiting():
                return
            if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
                self.logger.info("A request's head did not arrive within %g s: 408", seconds)
                self.transport.write(response)  # part of a head arrived: say why it ends
            self.transport.close()

    return HeadDeadlineProtocol
