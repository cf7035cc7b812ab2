"""The PostgreSQL backend against the backend conformance suite, two pools on one schema.

Every statement the backend sends meanwhile is recorded, and each test fails if one of them is
a statement Citus would refuse on tables distributed by account (``distribution.problems``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

import catalog_core as cc
from catalog_core.repository import postgres
from catalog_core.testing.contract import RepositoryContract
from tests.conftest import fresh_schema, postgres_url
from tests.repository.distribution import Recorded, problems, recording_pool


class TestPostgresRepository(RepositoryContract):
    @pytest.fixture(autouse=True)
    def own_schema(self) -> Iterator[None]:
        self.schema = fresh_schema()
        self.recorded = Recorded()
        self.pools: list[ConnectionPool] = []
        yield
        for pool in self.pools:
            pool.close()
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        refused = {s: p for s in self.recorded.statements if (p := problems(s))}
        assert not refused, f"statements Citus refuses on distributed tables: {refused}"

    def _open(self, max_size: int) -> cc.PostgresRepository:
        pool = recording_pool(postgres_url(), self.recorded, max_size)
        self.pools.append(pool)
        return cc.PostgresRepository(schema=self.schema, pool=pool)

    def make_repository(self, tmp_path: Path) -> cc.Repository:
        return self._open(16)

    def make_second_repository(self, first: cc.Repository, tmp_path: Path) -> cc.Repository:
        return self._open(8)


class TestPostgresRepositoryInSmallPurgeBatches(TestPostgresRepository):
    """The contract again with purge batches of 3 records, so that every purge (the racing
    ones included) works through several batches of every kind: counted, bounded by the third
    key in index order (ties in ``expires_at`` broken by the key), deleted, counted again."""

    @pytest.fixture(autouse=True)
    def small_batches(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(postgres, "_PURGE_ACROSS", 3)
