"""Crash safety: a writer killed (SIGKILL) at random moments loses no acknowledged write and leaves
nothing half-written, on SQLite and on PostgreSQL (R26, R27).

Each round starts ``crash_writer`` (one upsert per transaction, or ``upsert_many`` batches of
50), lets it write for a random 50-400 ms, and kills it. Then the store must open, SQLite's
``integrity_check`` must be clean, every product must be whole (its title, metadata, image URL and
uploaded blob all name the same write), every blob's reference count must equal the number of
products naming it, and every write the killed process printed as acknowledged must be there (its
version or a later one). ``CATALOG_CORE_CRASH_KILLS`` sets the rounds (6 here; the long form in
docs/reliability.md runs hundreds).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import catalog_core as cc
from tests.helpers import run_size
from tests.reliability.crash_writer import image_bytes

ROOT = Path(__file__).resolve().parents[2]
KILLS = run_size("CRASH_KILLS", 6, 100)

pytestmark = pytest.mark.slow


def run_and_kill(
    target: str, mode: str, seed: int, rng: random.Random
) -> list[tuple[str, int, int]]:
    """Start the writer, kill it at a random moment, and return the writes it acknowledged."""
    errors = Path(os.environ.get("TMPDIR", "/tmp")) / f"crash-writer-{os.getpid()}-{seed}.err"
    with errors.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.crash_writer", target, mode, str(seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert process.stdout is not None
    lines: list[bytes] = []
    first = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not first.wait(60):
        process.kill()
        process.wait()
        pytest.fail(f"the writer wrote nothing: {errors.read_text()[-2000:]}")
    time.sleep(rng.uniform(0.05, 0.4))
    process.send_signal(signal.SIGKILL)
    process.wait()
    reader.join(10)
    process.stdout.close()
    errors.unlink()
    assert process.returncode == -signal.SIGKILL
    acked = []
    for line in lines:
        if line.endswith(b"\n"):  # a line cut by the kill was never fully acknowledged
            _, external_id, version, n = line.decode().split()
            acked.append((external_id, int(version), int(n)))
    return acked


def all_products(repository: cc.Repository) -> list[cc.Product]:
    later = datetime.now(UTC) + timedelta(days=3650)  # nothing expires in these tests anyway
    products: list[cc.Product] = []
    after = None
    while True:
        page = repository.list_live("acme", after=after, limit=500, now=later)
        products += page
        if len(page) < 500:
            return products
        after = page[-1].external_id


def stored_refs(target: str) -> dict[str, int]:
    """The blob reference counts as the database holds them."""
    if target.startswith("postgresql://"):
        import psycopg

        url, schema = target.split("?schema=")
        with psycopg.connect(url) as conn:
            rows = conn.execute(f'SELECT sha256, refs FROM "{schema}".blobs').fetchall()
    else:
        with sqlite3.connect(target) as conn:
            rows = conn.execute("SELECT sha256, refs FROM blobs").fetchall()
    return dict(rows)


def check(target: str, last_acked: dict[str, tuple[int, int]]) -> int:
    """Check the store after a kill; return the number of products checked."""
    if not target.startswith("postgresql://"):
        repository: Any = cc.SQLiteRepository(target)  # opening recovers the WAL
        with sqlite3.connect(target) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    else:
        repository = cc.open_repository(target)
    try:
        products = all_products(repository)
        by_id = {p.external_id: p for p in products}
        expected_refs: dict[str, int] = {}
        for product in products:
            n = product.metadata["n"]  # type: ignore[index]
            assert product.title == f"write {n}", product
            assert product.metadata == {"n": n, "filler": "x" * (n % 997)}
            assert (
                product.images[0].source_url == f"https://cdn.example/{product.external_id}/{n}.jpg"
            )
            for image in product.images[1:]:
                sha = hashlib.sha256(image_bytes(n)).hexdigest()
                assert image.source_url == f"upload://{sha}"
                blob = repository.get_blob("acme", sha)
                assert blob is not None
                assert blob.data == image_bytes(n)
                expected_refs[sha] = expected_refs.get(sha, 0) + 1
        refs = stored_refs(target)
        assert {sha: refs.get(sha) for sha in expected_refs} == expected_refs
        assert all(count == 0 for sha, count in refs.items() if sha not in expected_refs)
        for external_id, (version, n) in last_acked.items():
            stored = by_id.get(external_id)
            assert stored is not None, f"acknowledged {external_id} v{version} is gone"
            assert stored.version >= version, (external_id, stored.version, version)
            if stored.version == version:
                assert stored.metadata["n"] == n  # type: ignore[index]
        return len(products)
    finally:
        repository.close()


@pytest.mark.parametrize("mode", ["single", "bulk"])
def test_r26_r27_a_writer_killed_at_random_moments_loses_no_acknowledged_write_or_half_one(
    target: str, mode: str
) -> None:
    rng = random.Random(f"{target[-12:]}-{mode}")
    last_acked: dict[str, tuple[int, int]] = {}
    writes = checked = 0
    for round_ in range(KILLS):
        acked = run_and_kill(target, mode, round_ + 1, rng)
        assert acked, "the writer was killed before acknowledging anything"
        writes += len(acked)
        for external_id, version, n in acked:
            last_acked[external_id] = (version, n)
        checked += check(target, last_acked)
    assert writes > KILLS
    # The figures of docs/reliability.md come from this line of the long form (pytest -s).
    backend = "postgres" if target.startswith("postgresql://") else "sqlite"
    print(f"\ncrash {backend} {mode}: {KILLS} kills, {writes} acknowledged writes, ", end="")
    print(f"{checked} product checks")
