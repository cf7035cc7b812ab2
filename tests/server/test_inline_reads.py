"""The read of one product of an in-process backend runs on the event loop, and so does a
listing page of an SQLite file while it is short; every other call runs in a worker thread.

A GET's read of a memory or SQLite-file catalog takes tens of microseconds, less than the hop to
a worker thread and back, which also made the tail of the latency. A page walks past the expired
products not purged yet, however many: on an SQLite file it runs on the loop under a bound,
and one stopped there runs again in a thread. Reads that may wait (on the network, or on a
writer's transaction) keep the hop; writes are in ``test_product_writes.py``. Either way the
server knows which calls run, so a shutdown closes the catalog under none (R26).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

import catalog_core as cc
from catalog_core.server import common
from catalog_core.server.common import CatalogCalls, reads_bounded, reads_inline
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


def test_r2_a_stored_lone_surrogate_is_escaped_in_the_body_rather_than_a_500() -> None:
    """The catalog refuses lone surrogates (R2), but a store written by other means may hold
    one: its product and its page are answered, the character escaped, as error bodies are."""
    import httpx

    from catalog_core.server import create_app
    from tests.server.test_protocol import serve

    repository = cc.MemoryRepository()
    catalog = cc.Catalog(repository)
    stored = catalog.upsert(
        "k", {"externalId": "p", "images": [{"source": {"url": "https://x.test/a"}}]}
    )
    odd = attrs.evolve(stored.product, title="a\udc80b")
    repository.write("k", "p", lambda _: cc.Write(odd))
    for _, port in serve(create_app(catalog), 5):
        base = f"http://127.0.0.1:{port}/tryon/v1"
        one = httpx.get(f"{base}/products/p", headers={"x-api-key": "k"})
        page = httpx.get(f"{base}/products", headers={"x-api-key": "k"})
    assert one.status_code == page.status_code == 200
    assert b'"title":"a\\udc80b"' in one.content
    assert b'"title":"a\\udc80b"' in page.content


def test_only_an_sqlite_file_catalog_bounds_its_reads_on_the_loop(tmp_path: Path) -> None:
    assert reads_bounded(cc.SQLiteRepository(tmp_path / "c.db")) is not None
    assert reads_bounded(cc.SQLiteRepository(":memory:")) is None  # its reads are not inline
    assert reads_bounded(cc.MemoryRepository()) is None  # its walk cannot be stopped
    postgres = cc.PostgresRepository(postgres_url(), schema=fresh_schema())
    try:
        assert reads_bounded(postgres) is None
    finally:
        postgres.drop_schema()
        postgres.close()


@pytest.mark.parametrize("expired", [0, 20_000])
def test_r24_a_page_runs_on_the_loop_while_short_and_in_a_thread_once_stopped(
    tmp_path: Path, expired: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R24: a page of live products is read on the event loop; one that walks past 20,000
    expired products not purged yet is stopped there and read again, whole, in a thread. Then
    that account's pages go to a thread at once for a while, and other accounts' do not.

    The bound is 0 steps here: a walk of a few products (fewer of SQLite's steps than it takes
    between two counts) is never stopped, and one past 20,000 always is.
    """
    from tests.repository.test_sqlite import _expired_then_live

    monkeypatch.setattr(common, "LOOP_READ_STEPS", 0)
    repository, now = _expired_then_live(tmp_path / "c.db", expired)
    catalog = cc.Catalog(repository, clock=lambda: now)
    calls = CatalogCalls(inline_reads=True, bounds=reads_bounded(repository))
    started: list[int] = []

    def page(account: str) -> bytes:
        started.append(threading.get_ident())
        return catalog.list_json(account, 5)

    def read(account: str) -> tuple[int, bytes]:
        async def main() -> tuple[int, bytes]:
            return threading.get_ident(), await calls.read_bounded(account, page, account)

        started.clear()
        return anyio.run(main)

    loop, body = read("acme")
    assert body == catalog.list_json("acme", 5)
    assert [item["externalId"] for item in json.loads(body)["items"]] == [f"z{n}" for n in range(5)]
    if not expired:
        assert started == [loop]
        assert read("acme")[1] == body
        assert started == [loop]
        return
    assert len(started) == 2
    assert started[0] == loop
    assert started[1] != loop
    loop, again = read("acme")  # remembered as slow: straight to a thread
    assert again == body
    assert len(started) == 1
    assert started[0] != loop
    loop, other = read("globex")  # another account: on the loop (a page of nothing)
    assert started == [loop]
    assert json.loads(other)["count"] == 0
    assert calls.running == 0
    monkeypatch.setattr(common, "SLOW_SECONDS", 0.0)  # remembered until the moment it is stopped
    calls = CatalogCalls(inline_reads=True, bounds=reads_bounded(repository))
    for _ in range(2):  # each time past that moment: the loop tries again, and is stopped
        loop, again = read("acme")
        assert again == body
        assert len(started) == 2
        assert started[0] == loop
    repository.close()


def test_r24_the_server_answers_a_page_past_many_expired_products(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R24: over HTTP, the page that was stopped on the loop is the whole page, once."""
    import httpx

    from catalog_core.repository import sqlite
    from catalog_core.server import create_app
    from tests.repository.test_sqlite import _expired_then_live
    from tests.server.test_protocol import serve

    stopped: list[bool] = []
    bounded = sqlite._bounded

    def counting(*args: Any) -> Any:
        try:
            return bounded(*args)
        except sqlite.ReadInterrupted:
            stopped.append(True)
            raise

    monkeypatch.setattr(sqlite, "_bounded", counting)
    monkeypatch.setattr(common, "LOOP_READ_STEPS", 0)
    repository, now = _expired_then_live(tmp_path / "c.db", 20_000)
    catalog = cc.Catalog(repository, clock=lambda: now)
    for _, port in serve(create_app(catalog), 5):
        url = f"http://127.0.0.1:{port}/tryon/v1/products?limit=3"
        first = httpx.get(url, headers={"x-api-key": "acme"})
        cursor = first.json()["nextCursor"]
        second = httpx.get(url, params={"cursor": cursor}, headers={"x-api-key": "acme"})
    assert stopped == [True]  # the first page, on the loop; then the account's go to a thread
    assert first.status_code == second.status_code == 200
    assert first.content == catalog.list_json("acme", 3)
    assert [p["externalId"] for p in first.json()["items"] + second.json()["items"]] == [
        f"z{n}" for n in range(5)
    ]
