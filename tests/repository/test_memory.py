"""The in-memory backend against the backend conformance suite."""

from __future__ import annotations

from pathlib import Path

import catalog_core as cc
from catalog_core.testing.contract import RepositoryContract


class TestMemoryRepository(RepositoryContract):
    def make_repository(self, tmp_path: Path) -> cc.Repository:
        return cc.MemoryRepository()
