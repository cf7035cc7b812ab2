"""The in-memory backend against the backend conformance suite."""

from __future__ import annotations

from pathlib import Path

import catalog_core as cc
from catalog_core.testing.contract import RepositoryContract


class TestMemoryRepository(RepositoryContract):
    def make_repository(self, tmp_path: Path) -> cc.Repository:
        return cc.MemoryRepository()


def test_r21_the_expiry_heap_follows_the_products_not_the_writes() -> None:
    """R21: the purge's cost follows what it removes, so stale expiry entries are compacted."""
    from catalog_core.testing import FakeClock

    repository = cc.MemoryRepository()
    clock = FakeClock()
    catalog = cc.Catalog(repository, clock=clock)
    image = {"source": {"url": "https://cdn.example/a.jpg"}}
    catalog.upsert("acme", {"externalId": "p", "images": [image], "validForDays": 1})
    for _ in range(5000):
        clock.advance(milliseconds=1)
        catalog.use("acme", {"externalId": "p"})
    assert len(repository._expiry) <= 2048
    clock.advance(days=1)
    assert catalog.purge_expired() == 1
