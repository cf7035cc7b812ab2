"""A request body is read within its two clocks and its limit (R33), by ``consume``, which both
the upsert endpoint and the write layer use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from catalog_core.errors import PayloadTooLarge
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
