"""Reads of the in-process backends run on the event loop; every other call in a worker thread.

A GET's read of a memory or SQLite-file catalog takes tens of microseconds, less than the hop to
a worker thread and back, which also made the tail of the latency. Reads that may wait (on the
network, or on a writer's transaction) keep the hop, and so do writes: a write may wait for the
key's lock. Either way the server knows which calls run, so a shutdown closes the catalog under
none (R26).
"""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

import catalog_core as cc
from catalog_core.server.common import CatalogCalls, reads_inline
from catalog_core.server.errors import ServiceUnavailable
from tests.conftest import fresh_schema, postgres_url


class _Subclass(cc.MemoryRepository):
    pass


def test_the_in_process_backends_read_inline_and_the_others_do_not(tmp_path: Path) -> None:
    assert reads_inline(cc.MemoryRepository())
    assert reads_inline(cc.SQLiteRepository(tmp_path / "c.db"))
    assert not reads_inline(cc.SQLiteRepository(":memory:"))  # one connection, under a lock
    assert not reads_inline(_Subclass())  # a subclass may read otherwise
    postgres = cc.PostgresRepository(postgres_url(), schema=fresh_schema())
    try:
        assert not reads_inline(postgres)  # a network round trip
    finally:
        postgres.drop_schema()
        postgres.close()


def _where(calls: CatalogCalls, use: str) -> tuple[int, int, int]:
    """Run a call through ``calls.<use>``: (loop thread, call thread, calls counted during it)."""

    def call() -> tuple[int, int]:
        return threading.get_ident(), calls.running

    async def main() -> tuple[int, int, int]:
        ran, running = await getattr(calls, use)(call)
        return threading.get_ident(), ran, running

    return anyio.run(main)


@pytest.mark.parametrize("inline", [True, False])
def test_a_read_runs_on_the_loop_only_when_reads_are_inline_and_is_counted(inline: bool) -> None:
    calls = CatalogCalls(inline_reads=inline)
    loop, ran, running = _where(calls, "read")
    assert (ran == loop) is inline
    assert running == 1  # counted while it runs, as a call in a thread is
    assert calls.running == 0
    loop, ran, _ = _where(calls, "run")  # any other call: a worker thread
    assert ran != loop


@pytest.mark.parametrize("inline", [True, False])
def test_r26_after_a_drain_a_read_is_refused_as_any_call(inline: bool) -> None:
    calls = CatalogCalls(inline_reads=inline)
    assert calls.drain(0)
    with pytest.raises(ServiceUnavailable):
        _where(calls, "read")
