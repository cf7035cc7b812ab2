"""The PostgreSQL backend against the backend conformance suite, two pools on one schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import catalog_core as cc
from catalog_core.testing.contract import RepositoryContract
from tests.conftest import fresh_schema, postgres_url


class TestPostgresRepository(RepositoryContract):
    @pytest.fixture(autouse=True)
    def own_schema(self) -> Iterator[None]:
        self.schema = fresh_schema()
        yield
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    def make_repository(self, tmp_path: Path) -> cc.Repository:
        return cc.PostgresRepository(postgres_url(), schema=self.schema, max_size=16)

    def make_second_repository(self, first: cc.Repository, tmp_path: Path) -> cc.Repository:
        return cc.PostgresRepository(postgres_url(), schema=self.schema, max_size=8)
