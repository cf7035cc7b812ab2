"""The SQLite backend against the backend conformance suite, two handles on one file."""

from __future__ import annotations

from pathlib import Path

import catalog_core as cc
from catalog_core.testing.contract import RepositoryContract


class TestSQLiteRepository(RepositoryContract):
    def make_repository(self, tmp_path: Path) -> cc.Repository:
        return cc.SQLiteRepository(tmp_path / "contract.db")

    def make_second_repository(self, first: cc.Repository, tmp_path: Path) -> cc.Repository:
        return cc.SQLiteRepository(tmp_path / "contract.db")
