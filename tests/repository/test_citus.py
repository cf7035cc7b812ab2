"""The PostgreSQL backend on a real Citus cluster, tables distributed by account (issue: scale).

Collected only when ``CATALOG_CORE_CITUS_URL`` names a Citus coordinator (for example
``postgresql://postgres@127.0.0.1:5433/test``, with workers added); CI has no Citus, so there
these tests are not collected rather than skipped. docs/storage.md, "Scaling out with Citus",
says how to run them and what they found.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

import catalog_core as cc
from catalog_core.repository import postgres
from catalog_core.repository._postgres_schema import DISTRIBUTED_TABLES, schema_sql
from catalog_core.testing.contract import RepositoryContract
from tests.conftest import fresh_schema
from tests.helpers import FakeClock
from tests.repository.distribution import Recorded, multi_shard, problems, recording_pool
from tests.repository.test_postgres import check_a_row_created_during_the_copy
from tests.repository.test_postgres_schema_2 import check_purge, schema_2_catalog
from tests.repository.test_stored_layout import POSTGRES_SCHEMA_1

URL = os.environ["CATALOG_CORE_CITUS_URL"]
SCRIPT = Path(sys.executable).parent / "catalog-core"


def _distributed(schema: str) -> None:
    """Create ``schema`` as an administrator would: ``schema-sql --citus``, run by psql."""
    ddl = subprocess.run(
        [str(SCRIPT), "schema-sql", "--schema", schema, "--citus"],
        capture_output=True,
        check=True,
    ).stdout
    assert ddl.decode() == schema_sql(schema, distributed=True)
    subprocess.run(
        ["psql", URL, "--single-transaction", "-v", "ON_ERROR_STOP=1", "-q", "-o", "/dev/null"],
        input=ddl,
        capture_output=True,
        check=True,
    )


def _placement(schema: str) -> dict[str, tuple[str, int]]:
    with psycopg.connect(URL) as conn:
        rows = conn.execute(
            "SELECT logicalrelid::text, partmethod, colocationid FROM pg_dist_partition "
            "WHERE logicalrelid::text LIKE %s",
            (f"{schema}.%",),
        ).fetchall()
    return {name.split(".", 1)[1]: (method, colocation) for name, method, colocation in rows}


class TestCitusRepository(RepositoryContract):
    """The whole contract on distributed tables, every statement checked against the rules."""

    @pytest.fixture(autouse=True)
    def own_schema(self) -> Iterator[None]:
        self.schema = fresh_schema()
        _distributed(self.schema)
        self.recorded = Recorded()
        self.pools: list[ConnectionPool] = []
        yield
        for pool in self.pools:
            pool.close()
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        refused = {s: p for s in self.recorded.statements if (p := problems(s))}
        assert not refused, refused

    def _open(self, max_size: int) -> cc.PostgresRepository:
        pool = recording_pool(URL, self.recorded, max_size)
        self.pools.append(pool)
        return cc.PostgresRepository(schema=self.schema, pool=pool, create_schema=False)

    def make_repository(self, tmp_path: Path) -> cc.Repository:
        return self._open(16)

    def make_second_repository(self, first: cc.Repository, tmp_path: Path) -> cc.Repository:
        return self._open(8)


class TestCitusRepositoryInSmallPurgeBatches(TestCitusRepository):
    """The contract again with purge batches of 3, so that the bounded batches (the end read
    across shards, the range delete) run on distributed tables too."""

    @pytest.fixture(autouse=True)
    def small_batches(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(postgres, "_PURGE_ACROSS", 3)


def test_schema_sql_citus_distributes_every_table_colocated_and_runs_again() -> None:
    schema = fresh_schema()
    try:
        _distributed(schema)
        _distributed(schema)  # again: nothing to do, no error
        placement = _placement(schema)
        assert placement["catalog_meta"][0] == "n"  # a reference table
        colocations = {placement[table] for table in DISTRIBUTED_TABLES}
        assert len(colocations) == 1
        assert next(iter(colocations))[0] == "h"  # hash-distributed
    finally:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_distributed_catalog_of_schema_1_is_migrated_and_its_new_tables_distributed() -> None:
    schema = fresh_schema()
    try:
        with psycopg.connect(URL) as conn, conn.transaction():
            for statement in POSTGRES_SCHEMA_1.format(s=schema).split(";\n"):
                if statement.strip():
                    conn.execute(statement.encode())
            conn.execute(f"SELECT create_reference_table('{schema}.catalog_meta')")
            conn.execute(f"SELECT create_distributed_table('{schema}.products', 'account')")
            conn.execute(
                f"SELECT create_distributed_table('{schema}.blobs', 'account', "
                f"colocate_with => '{schema}.products')"
            )
        _distributed(schema)
        assert set(_placement(schema)) == {"catalog_meta", *DISTRIBUTED_TABLES}
        repository = cc.PostgresRepository(URL, schema=schema, create_schema=False)
        try:
            catalog = cc.Catalog(repository)
            catalog.upsert(
                "acme", {"externalId": "p", "images": [{"source": {"url": "https://x"}}]}
            )
            assert repository.get_credits("acme") is None
        finally:
            repository.close()
    finally:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_r21_a_distributed_catalog_of_schema_2_is_migrated_by_schema_sql_and_purges() -> None:
    """``schema-sql --citus`` adds the stored ``uploads`` column to distributed products that
    hold rows (each shard computes it), and the purge deletes by it on every shard."""
    schema = fresh_schema()
    clock = FakeClock()
    try:
        _distributed(schema)
        schema_2_catalog(schema, clock, URL)
        _distributed(schema)
        recorded = Recorded()
        pool = recording_pool(URL, recorded, 4)
        try:
            repository = cc.PostgresRepository(schema=schema, pool=pool, create_schema=False)
            check_purge(repository, clock, URL)
            repository.close()
            deletes = [s for s in recorded.statements if s.startswith("DELETE")]
            assert any(s.endswith("AND NOT uploads") for s in deletes), deletes
            assert not {s: p for s in recorded.statements if (p := problems(s))}
        finally:
            pool.close()
    finally:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_tables_a_repository_creates_on_a_coordinator_are_local_and_it_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = fresh_schema()
    try:
        with caplog.at_level(logging.WARNING, logger="catalog_core.postgres"):
            cc.PostgresRepository(URL, schema=schema).close()
        assert f"schema-sql --schema {schema} --citus" in caplog.text
        assert _placement(schema) == {}
        caplog.clear()
        _distributed(schema)
        with caplog.at_level(logging.WARNING, logger="catalog_core.postgres"):
            cc.PostgresRepository(URL, schema=schema).close()
        assert "citus" not in caplog.text.lower()
    finally:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_one_accounts_operations_each_run_on_one_shard() -> None:
    """Every single-account statement Citus routes to one shard (its plan has one task)."""
    schema = fresh_schema()
    recorded = Recorded()
    pool = recording_pool(URL, recorded, 4)
    try:
        _distributed(schema)
        repository = cc.PostgresRepository(schema=schema, pool=pool, create_schema=False)
        catalog = cc.Catalog(repository)
        tryon = cc.TryOn(catalog)
        catalog.upsert("acme", {"externalId": "p", "images": [{"source": {"url": "https://x"}}]})
        catalog.use("acme", {"externalId": "p"})
        catalog.list("acme")
        tryon.add_credits("acme", 3)
        tryon.start(
            "acme",
            {
                "products": [{"externalId": "p"}],
                "person": {"image": {"source": {"url": "https://y"}}},
            },
        )
        checked = 0
        with psycopg.connect(URL, autocommit=True) as conn:
            for statement, params in recorded.statements.items():
                if multi_shard(statement) or not statement.startswith(("SELECT", "UPDATE")):
                    continue
                if f'"{schema}".' not in statement or "catalog_meta" in statement:
                    continue
                plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + statement, params))
                assert "Task Count: 1" in plan, (statement, plan)
                checked += 1
        assert checked >= 5  # reads of the product, listing page, balance, blob counts ...
    finally:
        pool.close()
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_r27_a_batch_whose_new_row_a_concurrent_writer_created_first_runs_again() -> None:
    """R27 on distributed tables: a batch's COPY fails there with Citus's internal error (it
    passes on the worker's message, not its unique violation), and the batch is written all
    the same. The COPY waits on a worker, where the test watches for it."""
    schema = fresh_schema()
    _distributed(schema)
    repository = cc.PostgresRepository(URL, schema=schema, create_schema=False, max_size=4)
    try:
        with psycopg.connect(URL) as conn:
            nodes = conn.execute("SELECT nodename, nodeport FROM pg_dist_node").fetchall()
        servers = [
            psycopg.conninfo.make_conninfo(URL, host=host, port=port) for host, port in nodes
        ]
        check_a_row_created_during_the_copy(repository, URL, schema, servers)
    finally:
        repository.close()
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
