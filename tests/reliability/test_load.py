"""Load: 8 processes × 4 threads of upserts, uses, deletes and list walks on 50 hot products and
10,000 cold ones, on SQLite and on PostgreSQL, for a bounded time (R24, R27).

Then: no lost update (each product's version is 1 + the writes accepted for it, summed over every
thread of every process), every list walk returned each lasting product exactly once and in
order, and no error surfaced ("database is locked", a deadlock, anything). The CI form runs for
3 seconds; ``CATALOG_CORE_LOAD_SECONDS`` sets a longer one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import catalog_core as cc
from tests.helpers import run_size
from tests.reliability.load_worker import COLD, HOT, IMAGE, cold_id, hot_id, lasting_ids

ROOT = Path(__file__).resolve().parents[2]
SECONDS = run_size("LOAD_SECONDS", 3.0, 60.0)
PROCESSES = 8

pytestmark = pytest.mark.slow


def test_r24_r27_eight_processes_of_four_threads_lose_no_update_and_walk_every_product_once(
    target: str,
) -> None:
    setup = cc.Catalog(cc.open_repository(target))
    ids = [hot_id(n) for n in range(HOT)] + [cold_id(n) for n in range(COLD)]
    payloads = [{"externalId": i, "images": [IMAGE]} for i in ids]
    assert all(r.created for r in setup.upsert_many("acme", payloads))  # type: ignore[union-attr]
    setup.repository.close()

    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.load_worker", target, str(SECONDS), str(n)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    accepted: Counter[str] = Counter()
    walks = 0
    errors: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=SECONDS + 120)
        assert worker.returncode == 0, err[-3000:]
        report = json.loads(out)
        accepted.update(report["accepted"])
        walks += report["walks"]
        errors += report["errors"]
    assert errors == []
    assert walks >= PROCESSES

    check = cc.Catalog(cc.open_repository(target))
    versions: dict[str, int] = {}
    page = check.list("acme", limit=200)
    versions.update((p.external_id, p.version) for p in page.items)
    while page.has_more:
        page = check.list("acme", limit=200, cursor=page.next_cursor)
        versions.update((p.external_id, p.version) for p in page.items)
    check.repository.close()
    lasting = lasting_ids()
    assert [i for i in sorted(versions) if not i.startswith("churn-")] == lasting
    lost = {i: (versions[i], 1 + accepted[i]) for i in lasting if versions[i] != 1 + accepted[i]}
    assert lost == {}
    writes = sum(accepted.values())
    assert writes > PROCESSES  # the load did run
    backend = "postgres" if target.startswith("postgresql://") else "sqlite"
    # The figures of docs/reliability.md come from this line of the long form (pytest -s).
    print(f"\nload {backend}: {SECONDS:g} s, {writes} versioned writes, {walks} walks")
