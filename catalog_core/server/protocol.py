"""The connection of ``catalog-core serve``: uvicorn's httptools, bounded, with a head deadline.

httptools (llhttp, the parser of Node.js, in C) reads requests several times faster than h11,
which uvicorn runs in Python: on a GET of one product it doubled the requests a second. uvicorn's
protocol for it reads ahead without a bound; :class:`_BoundedConnection` keeps the bounds h11 kept.

A request's writes of one step of the event loop go out as one (:class:`_OneWritePerStep`): a
small response is one system call and one packet, not a head and a body apart. A response that
is whole goes out at once, before the connection's bookkeeping and the end of its request's task.

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
- Its shutdown tells the application first (``app.state.begin_shutdown``), so that requests
  that only wait answer at once, and it ends every connection's run of requests. uvicorn tells
  the connections it knows of to close, but a connection accepted in the same turn of the
  event loop is made only after that, and was then served new requests, kept alive, until the
  shutdown timed out. The server marks itself stopping before uvicorn looks at its connections,
  and this protocol closes a connection made after that at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import socket
import time
from collections.abc import Callable, MutableSet
from typing import Any, Final, TypeAlias

import httptools
import uvicorn
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from catalog_core._json import dumps
from catalog_core.errors import CatalogError
from catalog_core.server.body import check_timeout, go_on
from catalog_core.server.errors import RequestTimeout, ServiceUnavailable
from catalog_core.wire.errors import error_to_wire, status_of

__all__ = [
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_SEND_TIMEOUT",
    "DESCRIPTOR_RESERVE",
    "MAX_HEAD_BYTES",
    "AnswerAtOnce",
    "Server",
    "default_max_connections",
    "head_timeout_protocol",
]

#: Seconds a connection may take to send a request's line and headers.
DEFAULT_HEAD_TIMEOUT = 10.0
#: Seconds a client may leave a response's bytes waiting without taking any.
DEFAULT_SEND_TIMEOUT = 30.0
#: Descriptors the default connection limit keeps free for everything else the server opens:
#: database files (three per SQLite connection, one connection per worker thread at most, and
#: Starlette runs 40), a PostgreSQL pool's sockets, refused connections while they linger (64 at
#: most), logs, the event loop's own.
DESCRIPTOR_RESERVE: Final = 200
# Seconds between two log lines about connections refused over the limit.
_REFUSAL_LOG_SECONDS: Final = 10.0
# Connections one call of accept refuses at most, before the event loop gets a turn.
_REFUSALS_PER_ACCEPT: Final = 64
# Seconds a refused connection's last bytes are read and dropped, and how many at once.
_LINGER_SECONDS: Final = 2.0
_MAX_LINGERING: Final = 64


#: What a connection asks of the application to answer a request at once: given the request's
#: scope (as uvicorn makes it, before any middleware) and its whole body, the ASGI messages of
#: its answer (a start, then the body), or ``None`` for the application to answer it as any
#: other. It runs on the event loop, in the read that brought the body: it must not wait, and it
#: must have done nothing when it declines (``create_app``'s ``app.state.answer_at_once``: a
#: plain upsert whose write need not wait).
_Message: TypeAlias = "dict[str, Any]"
AnswerAtOnce: TypeAlias = "Callable[[Any, bytes], tuple[_Message, _Message] | None]"


def _send_now(
    cycle: RequestResponseCycle,
    messages: tuple[_Message, ...],
    loop: asyncio.AbstractEventLoop,
    tasks: MutableSet[asyncio.Task[None]],
) -> None:
    """Send ``messages`` through the request's cycle now; what must wait goes on in a task.

    A send waits only while the client takes no bytes (flow control); the rest of that send and
    the messages after it then go on in a task of the connection's, as they would in the
    application's.
    """
    for n, message in enumerate(messages):
        step = cycle.send(message).__await__()  # type: ignore[arg-type]  # a plain dict
        try:
            waiting = step.send(None)
        except StopIteration:
            continue
        task = loop.create_task(_sent_later(cycle, step, waiting, messages[n + 1 :]))
        task.add_done_callback(tasks.discard)
        tasks.add(task)
        return


async def _sent_later(
    cycle: RequestResponseCycle, step: Any, waiting: Any, rest: tuple[_Message, ...]
) -> None:
    await go_on(step, waiting)
    for message in rest:
        await cycle.send(message)  # type: ignore[arg-type]  # a plain dict


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
    body = dumps(error_to_wire(error))
    status = status_of(error)
    lines = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *headers,
        "connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class _ConnectionLimit:
    """The connections a server's listeners accepted and have not closed yet, and their limit.

    Refusals are logged in one line per :data:`_REFUSAL_LOG_SECONDS` at most, with their count:
    the first at once, the others when that time is up, and what is left at the shutdown.
    """

    def __init__(self, limit: int, logger: logging.Logger) -> None:
        self.limit = limit
        self.open = 0
        self.lingering = 0
        self.busy = _canned(
            ServiceUnavailable(
                f"The server has {limit} connections open, its limit; retry shortly."
            ),
            "retry-after: 1",
        )
        self._logger = logger
        self._refused = 0
        self._logged_at = -_REFUSAL_LOG_SECONDS
        self._report: asyncio.TimerHandle | None = None

    def take(self) -> bool:
        """Count one more open connection, if the limit allows it; whether it did."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def refuse(self, conn: socket.socket) -> None:
        """Answer ``conn`` 503 and close it, then count it, to be logged soon.

        The answer is followed by the end of the stream, and what the client still sends (its
        request, sent as it connected) is read and dropped for up to :data:`_LINGER_SECONDS`
        before the socket closes: closed at once with unread bytes, it would be reset, and the
        client could lose the answer. Past :data:`_MAX_LINGERING` such sockets at once, a
        refused one is closed at once, to keep the descriptors.
        """
        try:
            conn.setblocking(False)
            conn.send(self.busy)  # a new socket's buffer takes it whole
            conn.shutdown(socket.SHUT_WR)
        except OSError:  # a peer that left already: nothing to say
            conn.close()
        else:
            if self.lingering < _MAX_LINGERING:
                self.lingering += 1
                _Lingering(conn, self)
            else:
                conn.close()
        self._refused += 1
        if self._report is None:
            wait = max(0.0, self._logged_at + _REFUSAL_LOG_SECONDS - time.monotonic())
            self._report = asyncio.get_running_loop().call_later(wait, self.report)

    def report(self) -> None:
        """Log the refusals not logged yet."""
        if self._report is not None:
            self._report.cancel()
            self._report = None
        if self._refused:
            self._logger.warning(
                "%d connections refused with 503: %d were open, the limit (--max-connections)",
                self._refused,
                self.limit,
            )
            self._refused, self._logged_at = 0, time.monotonic()


class _Lingering:
    """A refused connection, answered and half-closed, whose last bytes are read and dropped."""

    def __init__(self, conn: socket.socket, limit: _ConnectionLimit) -> None:
        self._conn = conn
        self._limit = limit
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._drain)
        self._timer = self._loop.call_later(_LINGER_SECONDS, self._close)

    def _drain(self) -> None:
        try:
            data = self._conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client has read the answer and closed, or left
            self._close()

    def _close(self) -> None:
        self._timer.cancel()
        self._loop.remove_reader(self._conn.fileno())
        self._conn.close()
        self._limit.lingering -= 1


class _CountedSocket(socket.socket):
    """An accepted connection's socket, which gives its place back when it is closed."""

    def __init__(self, *args: Any, limit: _ConnectionLimit, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit: _ConnectionLimit | None = limit

    def close(self) -> None:
        limit, self._limit = self._limit, None
        if limit is not None:
            limit.release()
        super().close()


class _CappedListener(socket.socket):
    """A listening socket whose ``accept`` keeps a server's connections within its limit.

    asyncio calls ``accept`` until it would block; past the limit, each pending connection is
    answered 503 and closed here, so it never reaches the event loop, and asyncio sees only the
    connections it may serve. A flood is refused :data:`_REFUSALS_PER_ACCEPT` at a time, so the
    event loop goes on serving in between.
    """

    def __init__(self, sock: socket.socket, limit: _ConnectionLimit) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.limit = limit

    def accept(self) -> tuple[socket.socket, Any]:
        """Accept the next connection the server may serve; refuse the ones before it.

        Raises:
            BlockingIOError: no connection is pending (as ``socket.accept`` raises), or this
                call refused its share of them.
        """
        kind = (self.family, self.type, self.proto)
        for _ in range(_REFUSALS_PER_ACCEPT):
            fd, address = self._accept()  # type: ignore[attr-defined]
            if self.limit.take():
                return _CountedSocket(*kind, fileno=fd, limit=self.limit), address
            self.limit.refuse(socket.socket(*kind, fileno=fd))
        raise BlockingIOError("refused enough for one turn of the event loop")


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

    It runs on asyncio's own event loop, whose ``accept`` keeps the limit: uvloop accepts
    connections in its C core, where no limit could be kept, so ``loop="auto"`` (uvicorn's
    default, which picks uvloop when it is installed) means asyncio here.

    Args:
        config: uvicorn's configuration.
        max_connections: connections open at once, on all the server's sockets together;
            past it a new one is answered 503 and closed. ``None``:
            :func:`default_max_connections`.

    Raises:
        ValueError: ``max_connections`` is not a positive integer, or ``config`` asks for an
            event loop other than asyncio's.
    """

    def __init__(self, config: uvicorn.Config, *, max_connections: int | None = None) -> None:
        if max_connections is not None and (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
        if config.loop not in ("auto", "asyncio"):
            raise ValueError(
                "the server keeps its connection limit on asyncio's event loop, not "
                f"{config.loop!r}"
            )
        config.loop = "asyncio"
        super().__init__(config)
        self.server_state = _ServingState()
        self.max_connections = max_connections or default_max_connections()
        self._limit = _ConnectionLimit(self.max_connections, logging.getLogger("uvicorn.error"))

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, on listening sockets that keep the connection limit.

        Raises:
            RuntimeError: the event loop is not asyncio's own (an event loop policy replaced
                it), so the limit could not be kept.
        """
        if not isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
            raise RuntimeError(
                "catalog_core's server needs asyncio's own event loop to keep its connection "
                f"limit, not {type(asyncio.get_running_loop()).__name__}"
            )
        if self.max_connections > default_max_connections():
            logging.getLogger("uvicorn.error").warning(
                "--max-connections %d leaves fewer than %d descriptors of the process's limit "
                "for the catalog and the server: at the limit, accept may fail (raise ulimit -n)",
                self.max_connections,
                DESCRIPTOR_RESERVE,
            )
        if sockets is None:
            sockets = [self.config.bind_socket()]
        capped: list[socket.socket] = [_CappedListener(sock, self._limit) for sock in sockets]
        await super().startup(sockets=capped)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Mark the server stopping, tell the application, then shut down as uvicorn does.

        An application that offers ``app.state.begin_shutdown`` (as ``create_app``'s does) has
        it called first, before the server waits for the requests in flight: requests that
        only wait (a sync try-on) answer at once instead of holding the shutdown.
        """
        if isinstance(self.server_state, _ServingState):
            self.server_state.stopping = True
        begin = getattr(getattr(self.config.app, "state", None), "begin_shutdown", None)
        if callable(begin):
            begin()
        self._limit.report()
        await super().shutdown(sockets=sockets)


class _OneWritePerStep:
    """A connection's transport: what is written in one step of the event loop goes out as one.

    uvicorn writes a response's head and its body with two calls, and with Nagle off (as it is
    here) each is a system call and a packet of its own. Here the writes of one step are joined
    and sent at the end of the step: a small response is one ``send``. It is the transport of
    the whole connection, the protocol's as well as each request's, so that every write and
    every close goes through it in order: closing sends what is held first. Once
    :data:`_HELD_BYTES` are held they are sent at once, so the transport's flow control sees a
    large body as it is written.
    """

    __slots__ = ("_flush", "_held", "_loop", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._held.append(data)
        self._size += len(data)
        if self._size >= _HELD_BYTES:
            self.flush()
        elif self._flush is None:
            self._flush = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send what is held, in one write."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        held, self._held, self._size = self._held, [], 0
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._held, self._size = [], 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


#: Bytes a connection holds back before it writes them without waiting for the step's end.
_HELD_BYTES: Final = 64 * 1024


#: The most bytes a request's line and headers may take (h11's default, which this server used
#: before): past it the request is answered 400 and its connection closed, so that no head,
#: however slowly or quickly sent, costs more memory than this (and one slice, below). Trailers
#: and chunk lines are bounded alike: at most this many bytes between two pieces of a body.
MAX_HEAD_BYTES: Final = 16 * 1024
# Bytes handed to the parser at once. The parser reads every request in what it is handed, so
# this bounds the requests read ahead of the one being served (a request takes 18 bytes at
# least: about thirty); the rest of a read waits unparsed, and the socket is not read again
# until it is parsed. A body of a known length is handed over in slices of up to
# :data:`_BODY_SLICE`, never past its end.
_SLICE: Final = 512
_BODY_SLICE: Final = 64 * 1024
_MALFORMED: Final = "Invalid HTTP request received."


class _Refused(Exception):
    """Raised from a parser callback to end the parse: the request is not served."""


class _Reading(FlowControl):
    """uvicorn's flow control, with reading paused and resumed by the connection alone.

    uvicorn pauses reading while a body waits to be taken or a request was read ahead, and
    resumes it when the application takes the body or a response ends. Here the connection
    parses what it holds first, and reads again only when it holds nothing unparsed.
    """

    def __init__(self, transport: asyncio.Transport, connection: _BoundedConnection) -> None:
        super().__init__(transport)
        self._connection = connection

    def pause_reading(self) -> None:
        """Nothing: the connection pauses reading itself after each slice it parses."""

    def resume_reading(self) -> None:
        self._connection.proceed()


class _BoundedConnection(HttpToolsProtocol):
    """uvicorn's httptools protocol, reading no further ahead than h11 did.

    httptools (llhttp, the parser of Node.js, in C) reads requests several times faster than
    h11, which uvicorn runs in Python. uvicorn hands the parser each whole read, and the parser
    reads every request in it: pipelined requests piled up without a bound. Here:

    - The parser is handed :data:`_SLICE` bytes at a time, and nothing more once the latest
      request is read whole and not answered yet, or its body waits to be taken; the rest waits,
      and the socket is not read while it does. So a connection holds one read at most, and the
      requests parsed from one slice.
    - A request's head is at most :data:`MAX_HEAD_BYTES`, counted both by the parts the parser
      hands over and by the bytes it was handed while the head stayed unfinished; a body's
      trailers and chunk lines at most as many between two pieces of body. Past either, 400.
    - A malformed request is answered 400 after the requests before it; a malformed body at
      once, for the request it belongs to is being served.
    - No protocol is switched to: a request with ``Upgrade`` is served as a plain one when it
      has no body, and what follows it is read as the next request; one with a body is refused
      400 (the parser would not read its body, which is not the next request), and so is a
      ``CONNECT``.
    - As h11 did, an HTTP/1.1 request without ``Host``, or with a ``Transfer-Encoding`` other
      than ``chunked``, is refused 400.
    - Once the server stops, no request is read after the one being served.
    - A client that ends its side of the connection after its requests is answered them all
      before the connection closes (unless it ended within one, which is then dropped).
    - With :attr:`answer_at_once`, a ``POST`` whose whole body came in the same read as its head
      may be answered by it at once, in that read, without starting the application's task:
      see :data:`AnswerAtOnce`.
    """

    #: What answers a request at once, if anything (``head_timeout_protocol``).
    answer_at_once: AnswerAtOnce | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: A request whose task waits for the end of the parse: answered at once then, or
        #: started; and whether a parse runs (only a head read in it is held back).
        self._held_back: tuple[RequestResponseCycle, Any] | None = None
        self._in_parse = False
        #: Bytes received and not handed to the parser yet.
        self._unparsed = b""
        self._reading = True
        self._parsing: asyncio.Handle | None = None
        #: The 400 owed to a malformed request, held until the requests before it are answered
        #: (``None``: none is owed); once set, nothing more is parsed.
        self._refusal: str | None = None
        self._stopping = False
        #: The head being read: the bytes handed to the parser while it was unfinished (at most
        #: its size and one slice; ``None`` between heads), the bytes of its parts handed over,
        #: and how many heads began.
        self._head: int | None = None
        self._parts = 0
        self._heads = 0
        #: Whether a request's body is being read, whether the last slice gave it any, and the
        #: bytes handed over since a slice last did.
        self._in_body = False
        self._progress = False
        self._stall = 0
        #: The body's bytes still to come, when its length is known.
        self._remaining = 0
        #: The latest request before the one being read, and the one being served.
        self._before: RequestResponseCycle | None = None
        self._serving: RequestResponseCycle | None = None
        #: Whether the client has ended its side of the connection.
        self._eof = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._socket = transport
        self.flow = _Reading(transport, self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._unparsed = b""
        if self._parsing is not None:
            self._parsing.cancel()
            self._parsing = None
        super().connection_lost(exc)

    def _should_upgrade(self) -> bool:
        return False  # no protocol is switched to: the request is served as a plain one

    def shutdown(self) -> None:
        """Serve no request after the one being served (nor those read ahead of it)."""
        self._stopping = True
        if self.pipeline:
            self.pipeline.clear()
            self.cycle = self._serving  # type: ignore[assignment]  # the latest one left
        super().shutdown()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._serving = cycle
        if (
            self.answer_at_once is not None
            # Its head was just read, in this parse: not a request read ahead and started now
            # that the one before it is answered (its body may never come; its task times it).
            and self._in_parse
            and app is self.app
            and cycle.scope["method"] == "POST"
            and not self.access_log  # the application's scope has the proxy's client address
        ):
            self._held_back = (cycle, app)  # until this read is parsed: _serve_held_back
            return
        super()._start_asgi_task(cycle, app)

    def _parse_and_serve(self) -> None:
        """Parse what is held, then answer or start the request held back meanwhile."""
        self._in_parse = True
        try:
            self._parse()
        finally:
            self._in_parse = False
        self._serve_held_back()

    def _serve_held_back(self) -> None:
        """Answer the request held back at once, if its whole body is read; else start it.

        Its task would have started in the next step of the event loop anyway. Nothing is
        answered at once after the connection began to close, while the client takes no bytes,
        or once the server stops; then, and when ``answer_at_once`` declines, the request goes
        to the application as any other, its body read already.
        """
        held, self._held_back = self._held_back, None
        if held is None:
            return
        cycle, app = held
        answer = None
        if not (
            cycle.more_body
            or cycle.disconnected
            or self._stopping
            or self.flow.write_paused
            or self.transport.is_closing()
        ):
            assert self.answer_at_once is not None
            answer = self.answer_at_once(cycle.scope, bytes(cycle.body))
        if answer is None:
            super()._start_asgi_task(cycle, app)
            return
        _send_now(cycle, answer, self.loop, self.tasks)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio's takes a bool
        """The client sends no more: answer what it asked, then close.

        A request it ended within (a head or a body cut short) is dropped, and the connection
        closes at once, as it did when every end of stream closed it.
        """
        self._eof = True
        cut_short = self._refusal is None and (self._in_body or self._head is not None)
        if cut_short or self._done():
            self.transport.close()  # after what is written and held
        # A malformed request's 400 is owed after the answers before it, as without the end.
        # Otherwise kept open to write the answers, and closed after the last: _close_if_done.
        return True

    def _done(self) -> bool:
        """Whether nothing is left to answer: no request served, read ahead or unparsed."""
        return self._waiting() and not self.pipeline and not self._unparsed

    def _close_if_done(self) -> None:
        if self._eof and self._done() and not self.transport.is_closing():
            self.transport.close()

    def _waiting(self) -> bool:
        """No request is being served: none has begun, or the latest one's response was sent.

        A response can end before its request's body does (an early answer), so the rest of
        that body and the next head share the time that starts when it ends. Pipelined
        requests are served in order: the latest request's response is the last one sent.
        """
        return self.cycle is None or self.cycle.response_complete

    def _sync(self) -> None:
        """Called after the connection's state may have changed (head deadline, below)."""

    # -- reading -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._refusal is not None or self.parser is None:
            return  # after a malformed request nothing is read
        self._unparsed = self._unparsed + data if self._unparsed else data
        self._parse_and_serve()
        self._sync()

    def proceed(self) -> None:
        """Parse what is held, soon, if anything is; otherwise read again if nothing holds it."""
        if self._unparsed:
            if self._parsing is None:
                self._parsing = self.loop.call_soon(self._parse_held)
        else:
            self._settle()

    def _parse_held(self) -> None:
        self._parsing = None
        if self._refusal is None and self.parser is not None and not self.transport.is_closing():
            self._parse_and_serve()
            self._sync()
            if self._eof and (self._head is not None or self._in_body):
                self.transport.close()  # the client ended within this request: it never ends
            self._close_if_done()

    def _held(self) -> bool:
        """Whether the parser must wait.

        It waits while the latest request is read whole and not answered, or one read ahead
        waits its turn, or a body waits to be taken.
        """
        if self.pipeline:
            return True
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return False
        return not cycle.more_body or len(cycle.body) > HIGH_WATER_LIMIT

    def _parse(self) -> None:
        data, start = self._unparsed, 0
        while start < len(data) and not self._held():
            size = min(self._remaining, _BODY_SLICE) if self._remaining > _SLICE else _SLICE
            piece = data[start : start + size]
            start += len(piece)
            try:
                self._feed(piece)
            except httptools.HttpParserUpgrade as switch:
                # A request with Upgrade and no body was served as a plain one; the parser
                # stops at its end, and a new one reads what follows.
                start -= len(piece) - switch.args[0]
                self.parser = httptools.HttpRequestParser(self)
                self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
            except httptools.HttpParserError:
                self._unparsed = b""
                self._malformed()
                return
        self._unparsed = data[start:]
        self._settle()

    def _feed(self, piece: bytes) -> None:
        """Hand ``piece`` to the parser, and count what it leaves unfinished."""
        heads, ongoing = self._heads, self._head is not None
        self._progress = False
        self.parser.feed_data(piece)
        if self._head is not None:  # a head is unfinished: it began in this piece or before
            self._head = self._head + len(piece) if ongoing and heads == self._heads else len(piece)
            if self._head > MAX_HEAD_BYTES + _SLICE:  # at most _SLICE over: never a whole head
                raise httptools.HttpParserError("request head too large")
        elif self._in_body:
            self._stall = 0 if self._progress else self._stall + len(piece)
            if self._stall > MAX_HEAD_BYTES + _SLICE:
                raise httptools.HttpParserError("too many bytes between pieces of the body")

    def _settle(self) -> None:
        """Read from the socket only when nothing is held unparsed and no body waits."""
        cycle = self.cycle
        waits = bool(self._unparsed) or (
            cycle is not None and not cycle.response_complete and len(cycle.body) > HIGH_WATER_LIMIT
        )
        if waits == self._reading and not self._eof and not self._socket.is_closing():
            self._reading = not waits
            if waits:
                self._socket.pause_reading()
            else:
                self._socket.resume_reading()

    def _malformed(self) -> None:
        """The parser failed: answer 400, at once if the request is the one being served."""
        if self._stopping and not self._in_body:
            # The server stops: the request that began after the last one is not read.
            self._refusal = ""
            if self._waiting():
                self.transport.close()
            return
        self.logger.warning(_MALFORMED)
        cycle = self.cycle
        if self._in_body and cycle is not None and not cycle.response_complete:
            # The body of the latest request is malformed.
            if self.pipeline and self.pipeline[0][0] is cycle:
                # It waited its turn: it will not be served, and the latest request is again
                # the one before it, whose answer the 400 follows.
                self.pipeline.popleft()
                self.cycle = self._before  # type: ignore[assignment]  # uvicorn's starts None
            else:  # it is being served: it hears of a disconnection, and the client of a 400
                cycle.disconnected = True
                cycle.message_event.set()
                if cycle.response_started:
                    self._refusal = ""
                    self.transport.close()
                else:
                    self._refusal = _MALFORMED
                    super().send_400_response(_MALFORMED)
                return
        self.send_400_response(_MALFORMED)

    def send_400_response(self, msg: str) -> None:
        """Answer a malformed request 400 and close, once the requests before it are answered.

        Requests pipelined before it in the same bytes have begun (or wait their turn): their
        answers go first, as they would have had the malformed one come later.
        """
        self._refusal = msg
        if self._waiting() and not self.pipeline:
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal and self._waiting() and not self.pipeline:
            super().send_400_response(self._refusal)
        elif self._stopping and self._waiting():
            self.transport.close()
        self._sync()
        if not self._unparsed:  # else it is parsed first (proceed)
            self._close_if_done()

    # -- the parser's callbacks ----------------------------------------------------------------

    def _count(self, size: int) -> None:
        """Count a part of the head the parser handed over; over the limit, fail the parse."""
        self._parts += size
        if self._parts > MAX_HEAD_BYTES:
            raise _Refused

    def on_message_begin(self) -> None:
        if self._stopping:
            raise _Refused
        self._unset_keepalive_if_required()  # a request read ahead begins: the connection is busy
        super().on_message_begin()
        self._head = self._parts = 0
        self._heads += 1

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_body:
            return  # a trailer: counted with the body's framing, and not kept (h11 kept none)
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head = None
        host, length, chunked = False, 0, False
        for name, value in self.headers:
            if name == b"host":
                host = True
            elif name == b"content-length":
                length = int(value)  # the parser took only digits, once
            elif name == b"transfer-encoding":
                if value.strip().lower() != b"chunked":
                    raise _Refused  # as h11: no other coding is read
                chunked = True
        if (
            (not host and self.parser.get_http_version() == "1.1")
            or self.parser.get_method() == b"CONNECT"
            or (self.parser.should_upgrade() and (length or chunked))
        ):
            # Without Host, as h11. A CONNECT, or an Upgrade with a body: the parser would
            # not read that body, which would then be read as requests.
            raise _Refused
        self._before = self.cycle
        super().on_headers_complete()
        self._in_body, self._stall, self._remaining = True, 0, length

    def on_body(self, body: bytes) -> None:
        self._progress = True
        self._remaining -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body, self._remaining = False, 0
        super().on_message_complete()


def head_timeout_protocol(
    seconds: float,
    *,
    send_timeout: float = DEFAULT_SEND_TIMEOUT,
    answer_at_once: AnswerAtOnce | None = None,
) -> type[HttpToolsProtocol]:
    """Return an httptools protocol class for uvicorn (``Config(http=...)``) with a head deadline.

    Its connections read requests within the bounds of :class:`_BoundedConnection` (a head over
    :data:`MAX_HEAD_BYTES` is answered 400, pipelined requests are read one at a time); they
    send without delay (``TCP_NODELAY``); a client that takes none of a response's bytes for
    ``send_timeout`` seconds, while they wait to be sent, has its connection aborted; and under
    a :class:`Server` a connection made after the server began to stop is closed at once.
    With ``answer_at_once`` (see :data:`AnswerAtOnce`), a ``POST`` whose whole body came with
    its head is offered to it first, and answered without a task when it answers.

    Raises:
        ValueError: ``seconds`` or ``send_timeout`` is not a positive, finite number.
    """
    check_timeout("head_timeout", seconds)
    check_timeout("send_timeout", send_timeout)
    response = _canned(
        RequestTimeout(
            f"The request's line and headers did not arrive within {seconds:g} s; the request "
            "was dropped and nothing was written."
        )
    )

    class HeadDeadlineProtocol(_BoundedConnection):
        """A connection whose request heads must arrive within the deadline.

        A request's head is being read from the parser's first byte of it (``on_message_begin``)
        to the end of its headers; the connection waits, for the deadline, while no request is
        being served: none has begun, or the latest one's response has been sent.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.answer_at_once = answer_at_once
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            self._unread: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # Every write and close of the connection, the protocol's and each request's.
            self.transport = _OneWritePerStep(transport, self.loop)  # type: ignore[assignment]
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
            self._read_again()
            super().connection_lost(exc)

        def pause_writing(self) -> None:
            """The client has stopped taking bytes: it has ``send_timeout`` seconds to resume."""
            super().pause_writing()
            if self._unread is None:
                self._unread = self.loop.call_later(send_timeout, self._not_read)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._read_again()

        def _read_again(self) -> None:
            if self._unread is not None:
                self._unread.cancel()
                self._unread = None

        def _not_read(self) -> None:
            # Its response (and so its request, and the server's shutdown) would wait forever.
            self._unread = None
            self.logger.info("A client took nothing of its response for %g s: closed", send_timeout)
            self.transport.abort()

        def on_response_complete(self) -> None:
            # The response is whole: it goes out now, not at the end of the step, after the
            # connection's bookkeeping and the unwinding of the request's task. The client reads
            # it (and sends its next request) while this process does the rest.
            self.transport.flush()  # type: ignore[attr-defined]  # a _OneWritePerStep
            super().on_response_complete()

        def _sync(self) -> None:
            """Run the deadline while waiting (never restarting it); stop it while serving."""
            if self.transport.is_closing() or self._refusal is not None or not self._waiting():
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
            if self._head is not None:
                self.logger.info("A request's head did not arrive within %g s: 408", seconds)
                self.transport.write(response)  # part of a head arrived: say why it ends
            self.transport.close()

    return HeadDeadlineProtocol
