"""What only the SQLite backend has: files, connections, locking, durability and its indexes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import sqlite_utils

import catalog_core as cc
from catalog_core.repository.sqlite import ReadInterrupted, WriteWouldWait
from tests.helpers import JPEG, FakeClock

IMAGES = [{"source": {"url": "https://cdn.example/a.jpg"}}]

WORKER = textwrap.dedent(
    """
    import sys
    import catalog_core as cc

    path, worker, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    catalog = cc.Catalog(cc.SQLiteRepository(path))
    for k in range(rounds):
        for external_id in ("hot-1", "hot-2"):
            catalog.upsert("acme", {"externalId": external_id, "title": f"{worker}-{k}"})
            catalog.use("acme", {"externalId": external_id})
        catalog.upsert("acme", {"externalId": f"own-{worker}-{k}", "images": IMAGES})
    print("done")
    """
).replace("IMAGES", repr(IMAGES))


def test_r27_several_processes_on_one_file_never_lose_an_update(tmp_path: Path) -> None:
    """R27: four processes write the same two products; every write counts, none fails."""
    path = tmp_path / "shared.db"
    catalog = cc.Catalog(cc.SQLiteRepository(path))
    for external_id in ("hot-1", "hot-2"):
        catalog.upsert("acme", {"externalId": external_id, "images": IMAGES})
    processes, rounds = 4, 100

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(n), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]

    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert out.strip() == "done"
        assert "locked" not in err
    for external_id in ("hot-1", "hot-2"):
        assert catalog.get("acme", external_id).version == 1 + processes * rounds * 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] == 2 + processes * rounds


def test_r27_separate_repositories_on_one_file_in_threads_never_lose_an_update(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    cc.Catalog(cc.SQLiteRepository(path)).upsert("acme", {"externalId": "p", "images": IMAGES})
    threads, rounds = 6, 30

    def work(n: int) -> None:
        catalog = cc.Catalog(cc.SQLiteRepository(path))
        for k in range(rounds):
            catalog.upsert("acme", {"externalId": "p", "metadata": {"by": n, "k": k}})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    assert cc.Catalog(cc.SQLiteRepository(path)).get("acme", "p").version == 1 + threads * rounds


def test_r27_a_writer_waits_for_a_held_lock_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    catalog = cc.Catalog(cc.SQLiteRepository(path))
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, other.commit).start()

    started = time.monotonic()
    product = catalog.upsert("acme", {"externalId": "p", "title": "after the lock"}).product

    assert time.monotonic() - started >= 0.4
    assert product.version == 2
    other.close()


def _upsert_past_a_held_lock(path: Path, catalog: cc.Catalog) -> None:
    """An upsert of ``p`` while another connection holds the write lock: a ``TimeoutError``."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TimeoutError, match="locked"):
            catalog.upsert("acme", {"externalId": "p", "title": "blocked"})
    finally:
        other.rollback()
        other.close()


def test_a_lock_held_past_the_busy_timeout_is_a_timeout_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "held.db"
    catalog = cc.Catalog(cc.SQLiteRepository(path, busy_timeout=0.3))
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    _upsert_past_a_held_lock(path, catalog)
    assert catalog.get("acme", "p").version == 1


def test_a_write_that_fails_gives_its_connection_back_out_of_any_transaction(
    tmp_path: Path,
) -> None:
    """A refused change, a failing statement and a timed-out lock each leave the pool usable."""
    path = tmp_path / "back.db"
    repo = cc.SQLiteRepository(path, busy_timeout=0.2)
    catalog = cc.Catalog(repo)
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})

    def fails_in_sql(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO products (account) VALUES ('acme')")  # NOT NULL columns

    with pytest.raises(cc.VersionConflict):  # refused inside the transaction
        catalog.upsert("acme", {"externalId": "p", "title": "t"}, if_version=7)
    with pytest.raises(sqlite3.IntegrityError), repo._transaction() as conn:
        fails_in_sql(conn)
    _upsert_past_a_held_lock(path, catalog)

    assert len(repo._idle) == len(repo._connections) == 1
    assert not repo._idle[0].in_transaction
    assert catalog.upsert("acme", {"externalId": "p", "title": "after"}).product.version == 2


def test_a_shared_connection_is_released_after_a_write_that_fails(tmp_path: Path) -> None:
    """The lock around a given connection is let go whatever the write did: other threads write."""
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "s.db", check_same_thread=False))
    repo = cc.SQLiteRepository(db)
    catalog = cc.Catalog(repo)
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    with pytest.raises(cc.ProductImagesRequired):  # refused inside the transaction
        catalog.upsert("acme", {"externalId": "p", "images": []})
    with pytest.raises(sqlite3.IntegrityError), repo._transaction() as conn:
        conn.execute("INSERT INTO products (account) VALUES ('acme')")

    with ThreadPoolExecutor(1) as pool:
        written = pool.submit(catalog.upsert, "acme", {"externalId": "p", "title": "t"}).result(5)
    assert written.product.version == 2
    assert not db.conn.in_transaction


def test_a_commit_that_fails_is_rolled_back_and_its_connection_writes_again(
    tmp_path: Path,
) -> None:
    """Nothing half-written: a refused commit leaves no open transaction holding the lock."""
    repo = cc.SQLiteRepository(tmp_path / "commit.db")
    catalog = cc.Catalog(repo)
    with repo._transaction() as conn:  # a deferred constraint: checked by the commit alone
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (parent INTEGER REFERENCES parent (id) "
            "DEFERRABLE INITIALLY DEFERRED)"
        )
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    with repo._borrow() as conn:
        conn.execute("PRAGMA foreign_keys = ON")

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), repo._transaction() as conn:
        conn.execute("INSERT INTO child VALUES (1)")

    assert len(repo._idle) == len(repo._connections) == 1
    assert not repo._idle[0].in_transaction
    with sqlite3.connect(tmp_path / "commit.db") as other:
        assert other.execute("SELECT count(*) FROM child").fetchone()[0] == 0
    assert catalog.upsert("acme", {"externalId": "p", "title": "t"}).product.version == 2


def test_the_catalog_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    clock = FakeClock()
    first = cc.SQLiteRepository(path)
    written = cc.Catalog(first, clock=clock).upsert(
        "acme", {"externalId": "p", "images": IMAGES, "metadata": {"k": "v"}, "validForDays": 3}
    )
    first.close()

    reopened = cc.Catalog(cc.SQLiteRepository(str(path)), clock=clock)
    assert reopened.get("acme", "p") == written.product


def test_an_existing_sqlite_utils_database_can_be_shared_across_threads(tmp_path: Path) -> None:
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "u.db", check_same_thread=False))
    catalog = cc.Catalog(cc.SQLiteRepository(db))
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})

    def work(n: int) -> None:
        for _ in range(20):
            catalog.use("acme", {"externalId": "p"})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert catalog.get("acme", "p").version == 81
    assert {"products", "blobs", "catalog_meta"} <= set(db.table_names())


def test_an_in_memory_database_is_one_shared_catalog_across_threads() -> None:
    catalog = cc.Catalog(cc.SQLiteRepository(":memory:"))
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: catalog.get("acme", "p").version, range(4))) == [1] * 4


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_the_file_runs_in_wal_mode_with_normal_sync_by_default(tmp_path: Path) -> None:
    repo = cc.SQLiteRepository(tmp_path / "d.db")
    assert _pragma(tmp_path / "d.db", "journal_mode") == "wal"
    with repo._borrow() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    full = cc.SQLiteRepository(tmp_path / "f.db", durability="full")
    with full._borrow() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(ValueError, match="durability"):
        cc.SQLiteRepository(tmp_path / "x.db", durability="extra")  # type: ignore[arg-type]


def _plan(repo: cc.SQLiteRepository, sql: str, params: tuple[object, ...]) -> str:
    with repo._borrow() as conn:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


def test_r21_r24_listing_and_purging_read_through_indexes_not_scans(tmp_path: Path) -> None:
    """R21, R24: the cost follows the page or what is purged, not the catalog's size."""
    repo = cc.SQLiteRepository(tmp_path / "i.db")
    catalog = cc.Catalog(repo)
    for n in range(50):
        catalog.upsert("acme", {"externalId": f"p{n}", "images": IMAGES, "validForDays": 1 + n % 3})
    with repo._borrow() as conn:
        conn.execute("ANALYZE")

    listing = _plan(
        repo,
        "SELECT * FROM products INDEXED BY products_listing WHERE account = ? AND one_shot = 0 "
        "AND external_id > ? AND (expires_at IS NULL OR expires_at > ?) "
        "ORDER BY external_id LIMIT ?",
        ("acme", "", 0, 10),
    )
    assert "products_listing" in listing
    assert "TEMP B-TREE" not in listing  # no sort of the whole account
    purge = _plan(
        repo,
        "SELECT account FROM products INDEXED BY products_expiry "
        "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
        (0, 500),
    )
    assert "products_expiry" in purge
    orphans = _plan(repo, "SELECT rowid FROM blobs INDEXED BY blobs_orphans WHERE refs = 0", ())
    assert "blobs_orphans" in orphans


def test_r21_the_purge_works_through_more_than_one_batch(tmp_path: Path) -> None:
    clock = FakeClock()
    repo = cc.SQLiteRepository(tmp_path / "b.db")
    catalog = cc.Catalog(repo, clock=clock)
    for n in range(1203):
        catalog.upsert("acme", {"externalId": f"p{n:04d}", "images": IMAGES, "validForDays": 1})
    catalog.upsert("acme", {"externalId": "kept", "images": IMAGES})
    clock.advance(days=1)
    assert catalog.purge_expired() == 1203
    assert [p.external_id for p in catalog.list("acme").items] == ["kept"]


def test_r26_blobs_are_written_in_the_products_transaction(tmp_path: Path) -> None:
    """R26: a write that fails after its blob was given leaves no blob behind."""
    repo = cc.SQLiteRepository(tmp_path / "t.db")
    catalog = cc.Catalog(repo)
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    payload = {"externalId": "p", "images": [{"source": {"fileKey": "f"}}]}

    with pytest.raises(cc.VersionConflict):
        catalog.upsert("acme", payload, files={"f": cc.Upload(JPEG)}, if_version=5)

    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0
    catalog.upsert("acme", payload, files={"f": cc.Upload(JPEG)}, if_version=1)
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT refs FROM blobs").fetchall() == [(1,)]


def test_a_database_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    cc.SQLiteRepository(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE catalog_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="schema 999"):
        cc.SQLiteRepository(path)


def test_close_releases_every_connection(tmp_path: Path) -> None:
    repo = cc.SQLiteRepository(tmp_path / "c.db")
    catalog = cc.Catalog(repo)
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: catalog.get("acme", "p"), range(6)))
    opened = list(repo._connections)
    assert opened
    repo.close()
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")


def test_threads_that_come_and_go_do_not_pile_up_connections(tmp_path: Path) -> None:
    """A thread-per-request server must not leave one open connection per thread it ever ran."""
    repo = cc.SQLiteRepository(tmp_path / "t.db")
    catalog = cc.Catalog(repo)
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    for _ in range(60):
        thread = threading.Thread(target=catalog.get, args=("acme", "p"))
        thread.start()
        thread.join()
    assert len(repo._connections) <= 8


def test_an_empty_path_is_one_private_database_shared_by_all_threads() -> None:
    catalog = cc.Catalog(cc.SQLiteRepository(""))
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: catalog.get("acme", "p").version, range(4))) == [1] * 4


def test_t18_t22_the_try_on_purge_and_erasure_read_through_indexes_not_scans(
    tmp_path: Path,
) -> None:
    """T18, T22: the purge reads only what has expired, an erasure only the customer's records."""
    from catalog_core.repository.sqlite import _KINDS

    repo = cc.SQLiteRepository(tmp_path / "i.db")
    for table, index in _KINDS.values():
        if index is None:
            continue
        purge = _plan(
            repo,
            f"SELECT account, {table.id_column}, {table.refs_column} FROM {table.name} "
            f"INDEXED BY {index} WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
            (0, 500),
        )
        assert index in purge
        if table.name == "products":
            continue
        erase = _plan(
            repo,
            f"SELECT {table.selected} FROM {table.name} "
            "WHERE account = ? AND customer_id = ? LIMIT ?",
            ("acme", "c", 500),
        )
        assert f"{table.name}_customer" in erase


# -- bounded reads: what lets the server run a listing page on its event loop -------------------


def _expired_then_live(path: Path, expired: int) -> tuple[cc.SQLiteRepository, datetime]:
    """A catalog of ``expired`` products expired and not purged, then five live ones after them;
    and a time at which that holds."""
    clock = FakeClock()
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository, clock=clock)
    lines = (
        {"externalId": f"a{n:06d}", "images": IMAGES, "validForDays": 1} for n in range(expired)
    )
    assert all(isinstance(r, cc.UpsertResult) for r in catalog.upsert_many("acme", lines))
    clock.advance(days=2)
    for n in range(5):
        catalog.upsert("acme", {"externalId": f"z{n}", "images": IMAGES})
    return repository, clock.now


def _live_ids(repository: cc.SQLiteRepository, now: datetime) -> list[str]:
    return [row[0] for row in repository.list_live_rows("acme", after=None, limit=5, now=now)]


def test_r24_a_bounded_read_past_its_steps_is_stopped_and_the_repository_reads_on(
    tmp_path: Path,
) -> None:
    """A page walking 20,000 expired products not purged (140,000 steps) is stopped by a bound of
    none; without the bound, or within a large one, it reads the live products after them. The
    connection it ran on reads on, and a bound ends with its block, nested or not."""
    repository, now = _expired_then_live(tmp_path / "c.db", 20_000)
    live = ["z0", "z1", "z2", "z3", "z4"]
    try:
        for _ in range(3):  # each time on a pooled connection, stopped before
            with repository.bounded_reads(0), pytest.raises(ReadInterrupted):
                _live_ids(repository, now)
            assert _live_ids(repository, now) == live
        with repository.bounded_reads(10**9):
            assert _live_ids(repository, now) == live
            with repository.bounded_reads(0), pytest.raises(ReadInterrupted):
                _live_ids(repository, now)
            assert _live_ids(repository, now) == live  # the outer bound again
        # A read shorter than SQLite's steps between two counts is never stopped.
        with repository.bounded_reads(0):
            assert repository.get("acme", "z0") is not None
            # The bound is this thread's: another thread's reads are not stopped.
            with ThreadPoolExecutor(1) as pool:
                assert pool.submit(_live_ids, repository, now).result() == live
    finally:
        repository.close()


def _lock_holder(path: Path) -> sqlite3.Connection:
    """Another connection to the file, holding its write lock (as a bulk import or a purge of
    another thread or process would) until it is rolled back."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_r27_a_write_without_waiting_that_finds_the_lock_taken_writes_nothing(
    tmp_path: Path,
) -> None:
    """R27: within ``writes_without_waiting``, a write that would wait for the write lock raises
    ``WriteWouldWait`` at once and writes nothing; the same write, made once the lock is free,
    writes as without it. Outside it, this thread's writes wait again."""
    repository = cc.SQLiteRepository(tmp_path / "c.db")
    catalog = cc.Catalog(repository)
    catalog.upsert("acme", {"externalId": "p1", "title": "first", "images": IMAGES})
    holder = _lock_holder(tmp_path / "c.db")
    try:
        with ThreadPoolExecutor(1) as pool:

            def attempt() -> object:
                with repository.writes_without_waiting():
                    return catalog.upsert("acme", {"externalId": "p1", "title": "second"})

            # Within the busy timeout of 60 s: a write that waited would not be back in 10.
            with pytest.raises(WriteWouldWait):
                pool.submit(attempt).result(timeout=10)
        assert catalog.get("acme", "p1").title == "first"
        assert catalog.get("acme", "p1").version == 1
        holder.rollback()
        with repository.writes_without_waiting():
            result = catalog.upsert("acme", {"externalId": "p1", "title": "second"})
        assert (result.product.title, result.product.version) == ("second", 2)
        # Outside the block, a write waits for the lock and then writes.
        holder.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(catalog.upsert, "acme", {"externalId": "p1", "title": "third"})
            time.sleep(0.2)
            assert not waiting.done()
            holder.rollback()
            assert waiting.result(timeout=30).product.version == 3
    finally:
        holder.close()
        repository.close()


def test_r26_writes_without_waiting_leave_the_log_to_checkpoint(tmp_path: Path) -> None:
    """R26: writes that do not wait never copy the write-ahead log into the database themselves
    (a checkpoint syncs the file: on an event loop it would stall every connection); the log
    holds all of their pages until ``checkpoint``, and no write is lost either way."""
    path = tmp_path / "c.db"
    repository = cc.SQLiteRepository(path)
    catalog = cc.Catalog(repository)
    try:
        repository.checkpoint()
        with repository.writes_without_waiting():
            for n in range(500):  # about 1,500 pages: past SQLite's own threshold of 1,000
                catalog.upsert("acme", {"externalId": f"p{n}", "images": IMAGES})
        # The log file holds every page the writes appended: none began it again after a
        # checkpoint (SQLite's own, at 1,000 pages, would have let the log restart from its
        # start, and the file would hold about 1,000 frames at most).
        frames = (os.path.getsize(f"{path}-wal") - 32) // (24 + 4096)
        assert frames >= 1400, frames
        assert repository.checkpoint() == frames  # the log holds them all, now copied
        # The checkpoint began the log again, with a first frame of its own (so that the sync
        # of the new log's header was the checkpoint's, not the next write's).
        with sqlite3.connect(path) as peek:
            assert peek.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] == 1
        with repository.writes_without_waiting():
            catalog.upsert("acme", {"externalId": "after", "images": IMAGES})
        assert 1 < repository.checkpoint() < frames  # it goes on from there
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT count(*) FROM products").fetchone() == (501,)
        check.close()
    finally:
        repository.close()


def test_writes_without_waiting_need_a_pool_of_connections(tmp_path: Path) -> None:
    """A repository on one shared connection serialises its calls under its own lock: its
    writes cannot avoid waiting, and the block says so before any write."""
    for db in (":memory:", sqlite_utils.Database(tmp_path / "shared.db")):
        repository = cc.SQLiteRepository(db)
        try:
            with (
                pytest.raises(RuntimeError, match="shared connection"),
                repository.writes_without_waiting(),
            ):
                pass
            assert repository.checkpoint() >= 0
        finally:
            repository.close()


def test_the_durability_is_the_one_opened_with(tmp_path: Path) -> None:
    assert cc.SQLiteRepository(tmp_path / "a.db").durability == "normal"
    assert cc.SQLiteRepository(tmp_path / "b.db", durability="full").durability == "full"
