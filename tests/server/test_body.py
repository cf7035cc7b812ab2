"""A request body is read within its two clocks and its limit (R33), by ``consume``, which both
the upsert endpoint and the write layer use."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from catalog_core.errors import PayloadTooLarge
from catalog_core.server import body
from catalog_core.server.body import consume
from catalog_core.server.errors import RequestTimeout

_IDLE = 0.5


def _read(source: Callable[[], Awaitable[tuple[bytes, bool]]], *, limit: int = 1000) -> bytes:
    read: list[bytes] = []

    async def main() -> None:
        await consume(source, read.append, limit=limit, idle_timeout=_IDLE, min_rate=100)

    asyncio.run(main())
    return b"".join(read)


def test_r33_a_chunk_that_beat_its_deadline_in_a_busy_step_is_taken_and_the_body_read_on() -> None:
    """R33: when the loop was busy past both a chunk's arrival (50 ms before its deadline) and
    the deadline itself, the chunk is taken, and the next one, 50 ms later, is waited for
    under a deadline of its own: the body is read, not answered 408."""
    pending: list[bytes] = [b'{"a":' + b" " * 200, b"1}"]
    first = [True]

    async def source() -> tuple[bytes, bool]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        chunk = pending.pop(0)
        if first[0]:
            first[0] = False
            loop.call_later(_IDLE - 0.05, future.set_result, chunk)
            loop.call_later(0.1, time.sleep, 0.6)  # the loop is busy past both
        else:
            loop.call_later(0.05, future.set_result, chunk)
        return await future, bool(pending)

    assert _read(source) == b'{"a":' + b" " * 200 + b"1}"


def test_r33_a_body_that_goes_silent_or_falls_behind_is_refused_with_its_clock() -> None:
    """R33: silence past the idle timeout (from the start: a body that never began), or a body
    behind the average rate once the first idle timeout is over, each end in 408
    ``REQUEST_TIMEOUT`` with its own message."""

    async def silent() -> tuple[bytes, bool]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    with pytest.raises(RequestTimeout, match=r"No part of the request body arrived for 0\.5 s"):
        _read(silent)

    async def trickle() -> tuple[bytes, bool]:  # a byte each 0.1 s: 10 a second, under 100
        await asyncio.sleep(0.1)
        return b" ", True

    with pytest.raises(RequestTimeout, match="slower than 100 bytes a second"):
        _read(trickle)


def test_r33_a_body_past_its_limit_is_refused_at_the_chunk_that_crosses_it() -> None:
    chunks = [b"x" * 600, b"x" * 600, b"never read"]

    async def source() -> tuple[bytes, bool]:
        return chunks.pop(0), True

    with pytest.raises(PayloadTooLarge):
        _read(source)
    assert chunks == [b"never read"]


def test_r33_chunks_already_come_are_taken_at_once_and_a_wait_after_them_is_timed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R33: a chunk that is there is taken without a wait (no cancel scope, no timer), and the
    first chunk that must be waited for is still timed: silence after it is a 408."""
    waits: list[str] = []
    scopes: list[float] = []
    chunks = [b'{"a":', b"1}"]

    real_scope = anyio.CancelScope

    def counted_scope(*, deadline: float = math.inf, shield: bool = False) -> anyio.CancelScope:
        scopes.append(deadline)
        return real_scope(deadline=deadline, shield=shield)

    monkeypatch.setattr(body.anyio, "CancelScope", counted_scope)

    async def ready() -> tuple[bytes, bool]:
        return chunks.pop(0), bool(chunks)

    assert _read(ready) == b'{"a":1}'
    assert scopes == []

    sent = [b'{"a":']

    async def then_silent() -> tuple[bytes, bool]:
        if sent:
            return sent.pop(), True
        waits.append("waiting")
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    with pytest.raises(RequestTimeout, match=r"No part of the request body arrived for 0\.5 s"):
        _read(then_silent)
    assert waits == ["waiting"]
    assert len(scopes) == 1  # the wait's, and only it


def test_r33_a_chunk_that_waits_more_than_once_or_is_a_future_is_awaited_to_its_end() -> None:
    """R33: a source that suspends several times before its chunk comes, and one that returns a
    bare future, are awaited as ``await`` would, each within the clocks."""
    steps: list[int] = []

    async def twice() -> tuple[bytes, bool]:
        await asyncio.sleep(0.01)
        steps.append(1)
        await asyncio.sleep(0)
        steps.append(2)
        return b"{}", False

    assert _read(twice) == b"{}"
    assert steps == [1, 2]

    def future() -> asyncio.Future[tuple[bytes, bool]]:
        done: asyncio.Future[tuple[bytes, bool]] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, done.set_result, (b"[]", False))
        return done

    assert _read(future) == b"[]"


def test_a_cancellation_while_a_chunk_is_awaited_is_thrown_into_the_source() -> None:
    """A shutdown cancels the request's task while it waits for a chunk: the source sees the
    cancellation (its cleanup runs) and ``consume`` raises it, as a plain ``await`` would."""
    seen: list[str] = []

    async def source() -> tuple[bytes, bool]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleaned up")
        raise AssertionError("unreachable")

    async def main() -> None:
        task = asyncio.create_task(
            consume(source, [].append, limit=1000, idle_timeout=_IDLE, min_rate=100)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled", "cleaned up"]


def test_a_source_that_handles_the_deadlines_cancellation_gives_its_chunk() -> None:
    """The clock's cancellation is thrown into the source as ``await`` would throw it: a source
    that handles it and still returns a chunk has that chunk taken."""

    async def stubborn() -> tuple[bytes, bool]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            return b"late", False
        raise AssertionError("unreachable")

    assert _read(stubborn) == b"late"


def _depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


def test_a_source_that_handles_many_cancellations_waits_on_as_under_a_plain_await() -> None:
    """As ``await`` would: a source that handles the deadline's cancellation, which anyio throws
    in again at each turn of the loop, and waits again, runs at the same depth of the stack each
    time, and outside the handled exception once it has handled it."""
    depths: list[int] = []
    after: list[object] = []

    async def source() -> tuple[bytes, bool]:
        loop = asyncio.get_running_loop()
        late: asyncio.Future[None] = loop.create_future()
        loop.call_later(0.3, late.set_result, None)
        while not late.done():
            try:
                await asyncio.shield(late)
            except asyncio.CancelledError:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                depths.append(_depth())
        after.append(sys.exc_info()[1])
        return b"late", False

    async def main() -> bytes:
        read: list[bytes] = []
        await consume(source, read.append, limit=1000, idle_timeout=0.05, min_rate=100)
        return b"".join(read)

    assert asyncio.run(main()) == b"late"
    assert len(depths) > 10
    assert set(depths) == {depths[0]}
    assert after == [None]
