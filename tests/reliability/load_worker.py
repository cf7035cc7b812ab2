"""One process of the load test: 4 threads of upserts, uses, deletes and list walks for a while.

``python -m tests.reliability.load_worker TARGET SECONDS SEED`` prints one JSON object: how many
writes each product accepted, how many walks were checked, and every error met.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from typing import Any

import catalog_core as cc
from tests.helpers import listed

HOT, COLD, CHURN = 50, 10_000, 20
THREADS = 4
IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}


def hot_id(n: int) -> str:
    return f"hot-{n:02d}"


def cold_id(n: int) -> str:
    return f"cold-{n:05d}"


def lasting_ids() -> list[str]:
    """The products that exist throughout the test, in listing order."""
    return sorted([hot_id(n) for n in range(HOT)] + [cold_id(n) for n in range(COLD)])


def main() -> None:
    target, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    catalog = cc.Catalog(cc.open_repository(target))
    deadline = time.monotonic() + seconds
    accepted: Counter[str] = Counter()
    errors: list[str] = []
    walks = 0
    lock = threading.Lock()
    expected = lasting_ids()

    def walk() -> None:
        nonlocal walks
        seen = [p.external_id for p in listed(catalog, "acme")]
        lasting = [i for i in seen if not i.startswith("churn-")]
        if lasting != expected or seen != sorted(seen) or len(set(seen)) != len(seen):
            raise AssertionError(f"a walk saw {len(lasting)} lasting products, not {len(expected)}")
        with lock:
            walks += 1

    def work(thread: int) -> None:
        rng = random.Random(seed * 100 + thread)
        mine: Counter[str] = Counter()
        try:
            while time.monotonic() < deadline:
                roll = rng.random()
                if roll < 0.5:
                    target_id = (
                        hot_id(rng.randrange(HOT))
                        if rng.random() < 0.8
                        else cold_id(rng.randrange(COLD))
                    )
                    catalog.upsert("acme", {"externalId": target_id, "title": f"t{roll}"})
                    mine[target_id] += 1
                elif roll < 0.75:
                    target_id = hot_id(rng.randrange(HOT))
                    catalog.use("acme", {"externalId": target_id})
                    mine[target_id] += 1
                elif roll < 0.95:
                    churn = f"churn-{rng.randrange(CHURN)}"
                    try:
                        catalog.delete("acme", churn)
                    except cc.ProductNotFound:
                        catalog.upsert("acme", {"externalId": churn, "images": [IMAGE]})
                elif roll < 0.995:
                    catalog.get("acme", hot_id(rng.randrange(HOT)))
                else:
                    walk()
        except Exception as exc:  # every error is reported: the test expects none
            errors.append(f"{type(exc).__name__}: {exc}")
        with lock:
            accepted.update(mine)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        walk()  # at least one per process
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    catalog.repository.close()
    report: dict[str, Any] = {"accepted": accepted, "walks": walks, "errors": errors}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
