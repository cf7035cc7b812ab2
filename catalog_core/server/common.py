"""What the products and the try-on endpoints share: catalog calls, the account, query warnings.

The catalog's calls run through :class:`CatalogCalls`, in Starlette's thread pool or, when they
are short and need not wait, on the event loop; it knows which still run, so that a shutdown
closes the catalog under no one (R26).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final, TypeAlias, TypeVar
from urllib.parse import unquote_to_bytes

import anyio
import attrs
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request

from catalog_core.errors import ValidationFailed
from catalog_core.model import PayloadWarning
from catalog_core.server.errors import ServiceUnavailable
from catalog_core.server.gate import ACCOUNT_SCOPE_KEY

__all__ = [
    "LATER",
    "STALLED_SCOPE_KEY",
    "CatalogCalls",
    "Later",
    "NoWait",
    "account_of",
    "one_parameter",
    "path_text",
    "reads_bounded",
    "reads_inline",
    "unknown_parameters",
    "writes_inline",
]

_T = TypeVar("_T")

logger = logging.getLogger("catalog_core.server")

#: Set in the scope when the body stopped arriving (408): the guard closes, it does not drain.
STALLED_SCOPE_KEY: Final = "catalog_core.body_stalled"
#: How many of SQLite's steps a read whose cost is not bounded may take on the event loop before
#: it is stopped and run in a worker thread instead: a page of 200 and a walk past about 2,000
#: expired products (about half a millisecond here).
LOOP_READ_STEPS: Final = 20_000
#: For how long the reads of a key (an account) that was stopped on the event loop run in worker
#: threads, before the loop tries again: its expired products are not purged in a moment.
SLOW_SECONDS: Final = 60.0
#: The most keys remembered as slow; past it they are all forgotten (a bound, not an eviction).
_MAX_SLOW: Final = 4096

#: A repository's ``bounded_reads``, and the exception a read it stops raises.
Bounds: TypeAlias = tuple[Callable[[int], AbstractContextManager[None]], type[Exception]]
#: How many writes on the event loop go between two checkpoints in a worker thread. An upsert
#: appends about three pages to the log, so about 3,000 pages (12 MiB) are copied at a time:
#: three times SQLite's own threshold, for a third of its syncs, and a page written many times
#: in between is copied once (every 200 writes cost each write 14 µs here, every 1,000 5 µs).
CHECKPOINT_WRITES: Final = 1000
#: How long a write on the loop waits there for the server's own checkpoint before it goes to a
#: worker thread (the checkpoint gives up waiting for the log's readers after 0.1 s).
CHECKPOINT_PATIENCE: Final = 0.25


class Later(enum.Enum):
    """The answer of :meth:`CatalogCalls.write_now` when the write cannot be made now."""

    LATER = "later"


#: Nothing was written: the write must be made another way (see :meth:`CatalogCalls.write_now`).
LATER: Final = Later.LATER


@attrs.frozen
class NoWait:
    """How a repository's writes are made on the event loop (see :func:`writes_inline`)."""

    #: Within it, a write that would wait for the write lock raises :attr:`would_wait`.
    without_waiting: Callable[[], AbstractContextManager[None]]
    would_wait: type[Exception]
    #: Copies the log into the database, which those writes leave to it; ``None``: no need.
    checkpoint: Callable[[], object] | None = None


class CatalogCalls:
    """Runs the catalog's calls, in Starlette's thread pool or on the loop; knows which still run.

    A cancelled request stops waiting for its thread, but the thread goes on; :meth:`drain`
    waits for every running call to end and refuses new ones, so the catalog is closed under
    no one (R26).
    """

    def __init__(
        self,
        *,
        inline_reads: bool = False,
        bounds: Bounds | None = None,
        no_wait: NoWait | None = None,
    ) -> None:
        self._idle = threading.Condition()
        self._running = 0
        self._closing = False
        #: Whether :meth:`read` runs its call on the event loop (see :func:`reads_inline`).
        self.inline_reads = inline_reads
        #: How :meth:`read_bounded` stops a read on the event loop (see :func:`reads_bounded`).
        self.bounds = bounds
        #: Until when each key's bounded reads run in worker threads (read on the loop only).
        self._slow: dict[str, float] = {}
        #: How :meth:`write` makes a write on the event loop without waiting (see
        #: :func:`writes_inline`).
        self.no_wait = no_wait
        #: Writes made on the event loop since the last checkpoint began.
        self._unchecked = 0
        self._checkpointing = False

    def open(self) -> None:
        """Take calls again (a new lifespan of the same application)."""
        with self._idle:
            self._closing = False

    async def run(self, func: Callable[..., _T], *args: Any) -> _T:
        """Run ``func(*args)`` in a worker thread and return what it returns.

        Raises:
            ServiceUnavailable: the server is shutting down and takes no new call.
        """
        return await run_in_threadpool(self._counted, func, *args)

    async def read(self, func: Callable[..., _T], *args: Any) -> _T:
        """Run a read, ``func(*args)``: on the event loop when reads are inline, else in a thread.

        For reads whose cost is bounded, of one key: a read of a repository whose reads never
        wait on a writer (see :func:`reads_inline`) then costs tens of microseconds; the hop to
        a worker thread and back cost more than that, and made the tail of the latency. A
        listing page is not such a read: it walks past every expired product not purged yet.

        Raises:
            ServiceUnavailable: the server is shutting down and takes no new call.
        """
        if not self.inline_reads:
            return await self.run(func, *args)
        return self._counted(func, *args)

    async def read_bounded(self, key: str, func: Callable[..., _T], *args: Any) -> _T:
        """Run a read whose cost is not bounded: on the event loop while it is short.

        With :attr:`bounds`, the read runs on the event loop for up to :data:`LOOP_READ_STEPS`
        of SQLite's steps; one that takes more (a listing page past many expired products not
        purged yet) is stopped and run again in a worker thread, in whole, and the reads of its
        ``key`` (the account) run in worker threads for :data:`SLOW_SECONDS`, so that a catalog
        full of expired products does not cost the loop a bound's steps a request. Without
        :attr:`bounds`, the read runs in a worker thread.

        Raises:
            ServiceUnavailable: the server is shutting down and takes no new call.
        """
        if self.bounds is None:
            return await self.run(func, *args)
        until = self._slow.get(key)
        if until is not None:
            if time.monotonic() < until:
                return await self.run(func, *args)
            del self._slow[key]
        bounded_reads, interrupted = self.bounds
        try:
            result: _T = self._counted(_within, bounded_reads, func, *args)
        except interrupted:
            if len(self._slow) >= _MAX_SLOW:
                self._slow.clear()
            self._slow[key] = time.monotonic() + SLOW_SECONDS
            return await self.run(func, *args)
        return result

    async def write(self, func: Callable[..., _T], *args: Any) -> _T:
        """Run a write of bounded cost, ``func(*args)``: on the event loop when it need not wait.

        With :attr:`no_wait`, the write runs on the event loop unless it would wait for the
        write lock (another transaction holds it: a bulk import, a purge, another process); then
        it runs in a worker thread, where it may wait. For writes whose own cost is small and
        bounded (one product of a small body): the hop to a worker thread and back cost more.
        While the server's own checkpoint holds the lock (it needs a moment with no writer and
        no reader of the log, and a writer waiting in a thread reads the log as it waits), the
        write waits on the loop instead, asleep and holding nothing, for up to
        :data:`CHECKPOINT_PATIENCE` seconds.

        Raises:
            ServiceUnavailable: the server is shutting down and takes no new call.
        """
        if self.no_wait is None:
            return await self.run(func, *args)
        try:
            patience = time.monotonic() + CHECKPOINT_PATIENCE
            while (result := self._try_now(func, *args)) is LATER:
                if not self._checkpointing or time.monotonic() >= patience:
                    return await self.run(func, *args)
                await anyio.sleep(0.001)
        finally:
            self._written()
        return result

    def write_now(self, func: Callable[..., _T], *args: Any) -> _T | Later:
        """Make a write of bounded cost, ``func(*args)``, on the event loop now if it need not wait.

        As :meth:`write` does on the event loop, without waiting for anything: :data:`LATER`
        (nothing written) when it would wait for the write lock, or when the repository's writes
        cannot be made on the loop.

        Raises:
            ServiceUnavailable: the server is shutting down and takes no new call.
        """
        if self.no_wait is None:
            return LATER
        counted = True  # a write that failed counts, as in write; one not made is not counted
        try:
            result = self._try_now(func, *args)
            counted = result is not LATER
            return result
        finally:
            if counted:
                self._written()

    def _try_now(self, func: Callable[..., _T], *args: Any) -> _T | Later:
        """One try of a write on the loop: its result, or :data:`LATER` if it would wait."""
        no_wait = self.no_wait
        assert no_wait is not None
        try:
            result: _T = self._counted(_unwaited, no_wait.without_waiting, func, *args)
        except no_wait.would_wait:
            return LATER
        return result

    def _written(self) -> None:
        """Count a write on the loop; start a checkpoint when enough have been made."""
        # A write refused on the loop and made in a thread, or one that failed, counts too: it
        # may have written nothing here, but the count is a bound.
        self._unchecked += 1
        no_wait = self.no_wait
        if (
            no_wait is not None
            and no_wait.checkpoint is not None
            and self._unchecked >= CHECKPOINT_WRITES
            and not self._checkpointing
        ):
            self._start_checkpoint(no_wait.checkpoint)

    def _start_checkpoint(self, checkpoint: Callable[[], object]) -> None:
        """Start ``checkpoint`` in a thread of its own; a thread that cannot start is logged.

        Never raises: the write before it has committed, and its answer must be sent.
        """
        self._unchecked = 0
        self._checkpointing = True
        try:
            threading.Thread(
                target=self._checkpoint,
                args=(checkpoint,),
                name="catalog-core checkpoint",
                daemon=True,
            ).start()
        except Exception:
            self._checkpointing = False
            logger.exception("a checkpoint of the catalog could not start")

    def _checkpoint(self, checkpoint: Callable[[], object]) -> None:
        """Run ``checkpoint`` in this worker thread, counted as a call; log a failure."""
        try:
            self._counted(checkpoint)
        except ServiceUnavailable:
            pass  # the server is closing the catalog: its last connection checkpoints
        except Exception:
            logger.exception("a checkpoint of the catalog failed")
        finally:
            self._checkpointing = False

    def _counted(self, func: Callable[..., _T], *args: Any) -> _T:
        """Call ``func(*args)``, counted as running while it runs, unless the server is closing."""
        with self._idle:
            if self._closing:
                raise ServiceUnavailable("The server is shutting down.")
            self._running += 1
        try:
            return func(*args)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Refuse new calls, wait up to ``timeout`` seconds for running ones; whether none runs."""
        with self._idle:
            self._closing = True
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    @property
    def running(self) -> int:
        """How many calls run now."""
        with self._idle:
            return self._running


def reads_inline(repository: object) -> bool:
    """Whether the repository's reads may run on the event loop.

    Yes for the in-process backends whose reads never wait on a writer's transaction:
    :class:`~catalog_core.MemoryRepository` (a lock held for microseconds) and an
    :class:`~catalog_core.SQLiteRepository` on a file (each read borrows a connection of its
    own, and WAL readers do not wait for writers). Not for PostgreSQL (a network round trip),
    an SQLite catalog on one shared connection (a read waits for a write's transaction), nor any
    other backend, subclasses included: their reads run in worker threads.
    """
    from catalog_core.repository.memory import MemoryRepository
    from catalog_core.repository.sqlite import SQLiteRepository

    if type(repository) is MemoryRepository:
        return True
    return type(repository) is SQLiteRepository and repository._shared is None


def reads_bounded(repository: object) -> Bounds | None:
    """Return how a read of the repository is stopped on the event loop, if it can be.

    An :class:`~catalog_core.SQLiteRepository` whose reads run on the event loop
    (:func:`reads_inline`) stops a read past a number of steps (``bounded_reads``); no other
    backend can, and its reads of unbounded cost run in worker threads.
    """
    if not reads_inline(repository):
        return None
    from catalog_core.repository.sqlite import ReadInterrupted, SQLiteRepository

    if type(repository) is not SQLiteRepository:
        return None
    return repository.bounded_reads, ReadInterrupted


def writes_inline(repository: object) -> NoWait | None:
    """Return how a write of the repository is made on the event loop without waiting, if it can.

    A :class:`~catalog_core.MemoryRepository` (its lock is held for microseconds) and an
    :class:`~catalog_core.SQLiteRepository` on a file whose commits do not sync
    (``durability="normal"``: a commit appends to the write-ahead log) try the write lock once
    (``writes_without_waiting``); no other backend can, subclasses included, and its writes run
    in worker threads.
    """
    from catalog_core.repository.memory import MemoryRepository
    from catalog_core.repository.sqlite import SQLiteRepository, WriteWouldWait

    if type(repository) is MemoryRepository:
        return NoWait(contextlib.nullcontext, _NeverRaised)
    if (
        type(repository) is SQLiteRepository
        and reads_inline(repository)
        and repository.durability == "normal"
    ):
        return NoWait(repository.writes_without_waiting, WriteWouldWait, repository.checkpoint)
    return None


class _NeverRaised(Exception):
    """The exception of a write that never waits: none is raised."""


def _unwaited(
    without_waiting: Callable[[], AbstractContextManager[None]],
    func: Callable[..., _T],
    *args: Any,
) -> _T:
    with without_waiting():
        return func(*args)


def _within(
    bounded_reads: Callable[[int], AbstractContextManager[None]],
    func: Callable[..., _T],
    *args: Any,
) -> _T:
    with bounded_reads(LOOP_READ_STEPS):  # read here, so that a test may change it
        return func(*args)


def account_of(request: Request) -> str:
    """Return the caller's account, as the gate left it in the scope."""
    account: str = request.scope[ACCOUNT_SCOPE_KEY]
    return account


def one_parameter(params: QueryParams, name: str) -> str | None:
    """Return a query parameter given at most once, or ``None``.

    Raises:
        ValidationFailed: at ``name`` when it is given more than once.
    """
    values = params.getlist(name)
    if len(values) > 1:
        raise ValidationFailed.at(name, "must be given at most once")
    return values[0] if values else None


def text_parameter(request: Request, name: str) -> str | None:
    """Return a text query parameter given at most once, decoded as strict UTF-8, or ``None``.

    The server's own decoding replaces bytes that are not UTF-8, so that ``%FF`` and ``%FE``
    would name the same id; the raw query string tells them apart (R2), as
    :func:`path_text` does for paths.

    Raises:
        ValidationFailed: at ``name`` when it is given more than once, or its bytes are not
            UTF-8.
    """
    raw = request.scope.get("query_string", b"")
    values = []
    for pair in raw.split(b"&") if isinstance(raw, bytes) else ():
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == name.encode("utf-8"):
            values.append(value)
    if not values:
        return one_parameter(request.query_params, name)  # an ASGI server without the raw one
    if len(values) > 1:
        raise ValidationFailed.at(name, "must be given at most once")
    try:
        return unquote_to_bytes(values[0].replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed.at(name, "must be UTF-8 text, percent-encoded") from None


def unknown_parameters(params: QueryParams, known: set[str]) -> list[PayloadWarning]:
    """Return a warning for each query parameter that is not ``known`` (R18)."""
    return [
        PayloadWarning("UNKNOWN_FIELD", name, "unknown query parameter ignored")
        for name in dict.fromkeys(params.keys())
        if name not in known
    ]


def path_text(request: Request, param: str, prefix: str, field: str) -> str:
    """Return the path parameter ``param``, its percent-encoding decoded as strict UTF-8.

    The server's own decoding replaces bytes that are not UTF-8, which would let ``%FF`` and
    ``%FE`` name the same record; the raw path tells them apart (R2).

    Args:
        request: the request.
        param: the path parameter (one that runs to the end of the path).
        prefix: the route's path before the parameter, below the application's root path.
        field: the name the error's detail gives the parameter.

    Raises:
        ValidationFailed: at ``field`` when the decoded bytes are not UTF-8.
    """
    decoded: str = request.path_params[param]
    raw = request.scope.get("raw_path")
    if not isinstance(raw, bytes):  # an ASGI server that does not send it
        return decoded
    try:
        path = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed.at(field, "must be UTF-8 text, percent-encoded") from None
    # The raw path holds the prefix the application is mounted under (root_path) too.
    full = request.scope.get("root_path", "") + prefix
    return path.removeprefix(full) if path.startswith(full) else decoded
