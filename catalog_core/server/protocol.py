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
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from catalog_core._json import dumps
from catalog_core.server.body import check_timeout
from catalog_core.server.errors import RequestTimeout

__all__ = ["DEFAULT_HEAD_TIMEOUT", "head_timeout_protocol"]

#: Seconds a connection may take to send a request's line and headers.
DEFAULT_HEAD_TIMEOUT = 10.0


def _timeout_response(seconds: float) -> bytes:
    error = RequestTimeout(
        f"The request's line and headers did not arrive within {seconds:g} s; the request was "
        "dropped and nothing was written."
    )
    body = dumps(error.to_wire())
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def head_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """Return an h11 protocol class for uvicorn (``Config(http=...)``) with a head deadline.

    Its connections also send without delay (``TCP_NODELAY``).

    Raises:
        ValueError: ``seconds`` is not a positive, finite number.
    """
    check_timeout("head_timeout", seconds)
    response = _timeout_response(seconds)

    class HeadDeadlineProtocol(H11Protocol):
        """uvicorn's h11 protocol, closing connections whose request head does not arrive."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
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
