"""The PostgreSQL backend is ready to be distributed by account (Citus), and its purge scales.

CI runs plain PostgreSQL: these tests check the rules Citus sets (``distribution.py``) on what
the backend really sends, that each multi-shard statement of the purge reads an index on what
expired, that the purge's work does not grow with the number of accounts, and the distribution
step ``schema-sql --citus`` prints. ``test_citus.py`` runs on a real Citus cluster when one is
given (``CATALOG_CORE_CITUS_URL``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

import catalog_core as cc
from catalog_core.repository import postgres
from catalog_core.repository._postgres_schema import DISTRIBUTED_TABLES, schema_sql
from catalog_core.repository.base import PurgeCounts
from catalog_core.tryon import LocalEngine, TryOn
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG, FakeClock, png
from tests.repository.distribution import (
    DISTRIBUTED,
    Recorded,
    multi_shard,
    problems,
    recording_pool,
)

SCRIPT = Path(sys.executable).parent / "catalog-core"
IMAGES = [{"source": {"url": "https://cdn.example/a.jpg"}}]

#: The loose index scan the purge used to find accounts: Citus refuses it ("recursive CTEs are
#: only supported when they contain a filter on the distribution column").
OLD_ACCOUNTS_SCAN = (
    'WITH RECURSIVE a(account) AS ( (SELECT account FROM "s".products ORDER BY account LIMIT 1)'
    ' UNION ALL SELECT (SELECT t.account FROM "s".products t WHERE t.account > a.account'
    " ORDER BY t.account LIMIT 1) FROM a WHERE a.account IS NOT NULL)"
    " SELECT account FROM a WHERE account IS NOT NULL"
)


def test_the_rules_refuse_what_citus_refuses_and_accept_what_it_runs() -> None:
    """The checker can fail: each statement here was sent to a real Citus 13.2 cluster."""
    refused = {
        OLD_ACCOUNTS_SCAN: "recursive CTE",
        # "could not run distributed query with FOR UPDATE/SHARE commands"
        'DELETE FROM "s".products p USING (SELECT account, external_id FROM "s".products'
        " WHERE expires_at <= %s FOR UPDATE SKIP LOCKED) x WHERE p.account = x.account"
        " AND p.external_id = x.external_id": "several distributed tables",
        'SELECT account FROM "s".blobs WHERE refs = 0 FOR UPDATE': "locks rows ahead",
        'UPDATE "s".blobs SET refs = 0 WHERE sha256 IN (SELECT sha256 FROM "s".products)': (
            "several distributed tables"
        ),
    }
    for statement, reason in refused.items():
        found = problems(statement)
        assert any(reason in problem for problem in found), (statement, found)
    accepted = [
        # single-shard: every distributed table filtered on its account
        'DELETE FROM "s".products p USING (SELECT external_id FROM "s".products WHERE account = %s'
        " AND expires_at <= %s ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED) x"
        " WHERE p.account = %s AND p.external_id = x.external_id",
        'SELECT * FROM "s".products WHERE account = %s AND external_id = %s FOR UPDATE',
        'INSERT INTO "s".blobs AS b (account, sha256) VALUES (%s, %s) ON CONFLICT (account, '
        "sha256) DO UPDATE SET refs = b.refs + EXCLUDED.refs",
        # plain multi-shard: one table, no subquery, no row lock taken ahead
        'SELECT expires_at, account, external_id FROM "s".products WHERE expires_at <= %s'
        " ORDER BY expires_at, account, external_id LIMIT %s",
        'DELETE FROM "s".products WHERE expires_at <= %s AND (expires_at, account, external_id)'
        " <= (%s, %s, %s) RETURNING account, data",
        # not distributed
        'SELECT value FROM "s".catalog_meta WHERE key = %s',
    ]
    for statement in accepted:
        assert problems(statement) == [], statement


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def repo(recorded: Recorded) -> Iterator[cc.PostgresRepository]:
    pool = recording_pool(postgres_url(), recorded, 4)
    repository = cc.PostgresRepository(schema=fresh_schema(), pool=pool)
    try:
        yield repository
    finally:
        repository.drop_schema()
        pool.close()


def _expire_everything(repo: cc.PostgresRepository, accounts: list[str]) -> FakeClock:
    """Give each account an expiring product with an upload, a person image and a generation."""
    clock = FakeClock()
    catalog = cc.Catalog(repo, clock=clock)
    tryon = TryOn(catalog, engine=LocalEngine(generation_seconds=2), initial_credits=10)
    for n, account in enumerate(accounts):
        files = {"f": cc.Upload(JPEG + n.to_bytes(4, "big"))}
        body = {"externalId": "ttl", "images": [{"source": {"fileKey": "f"}}], "validForDays": 1}
        catalog.upsert(account, body, files=files)
        catalog.upsert(account, {"externalId": "kept", "images": IMAGES})
        image = tryon.upload_image(account, png(rgb=(n % 256, 1, 2)), keep_for_days=1)
        start = {
            "products": [{"externalId": "ttl"}],
            "person": {"image": {"source": {"id": image.image_id}}},
            "keepForDays": 1,
        }
        tryon.start(account, start)
    clock.advance(days=8)
    return clock


def test_t22_r21_each_multi_shard_statement_of_the_purge_reads_an_index_on_what_expired(
    repo: cc.PostgresRepository, recorded: Recorded
) -> None:
    """The purge's statements across accounts each read the table's purge index, never a scan.

    On a distributed table every shard runs them on its own part of that index. Sequential
    scans are switched off so that the planner shows the index it can use even on tables this
    small; a statement no index serves still shows its sequential scan.
    """
    clock = _expire_everything(repo, ["a", "b", "c"])
    before = set(recorded.statements)
    counts = repo.purge(clock())
    assert counts == PurgeCounts(products=3, person_images=3, generations=3)
    spread = [s for s in recorded.statements if s not in before and multi_shard(s)]
    indexes = {
        "products": ("products_purge",),
        "person_images": ("person_images_purge",),
        "generations": ("generations_purge",),
        "blobs": ("blobs_orphans",),
    }
    # One count of every kind, then a delete of each (products: those whose images name no
    # upload, then those that do, along their own index), then the orphans (counted again: the
    # purge dropped references).
    deleted = {
        t for t in indexes for s in spread if s.startswith(f'DELETE FROM "{repo.schema}".{t} ')
    }
    assert deleted == set(indexes)
    assert len([s for s in spread if s.startswith("DELETE")]) == 5
    uploads = [s for s in spread if s.startswith("DELETE") and "AND uploads" in s]
    assert len(uploads) == 1
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        for statement in spread:
            assert problems(statement) == []
            plan = conn.execute("EXPLAIN " + statement, recorded.statements[statement])
            text = "\n".join(row[0] for row in plan)
            assert "Seq Scan" not in text, (statement, text)
            for table, names in indexes.items():
                if f".{table} " in statement:
                    assert any(name in text for name in names), (statement, text)
            if statement in uploads:
                assert "products_purge_uploads" in text, text


def test_r24_export_and_copy_walk_the_primary_key_in_statements_citus_runs(
    repo: cc.PostgresRepository, recorded: Recorded
) -> None:
    """The walk of export and copy across accounts keeps the Citus rules and reads the key.

    Across accounts it is one table, ordered and limited: each shard runs it on its part of the
    primary key and the coordinator merges the pages. Within an account it is single-shard.
    """
    from catalog_core import transfer

    catalog = cc.Catalog(repo, clock=FakeClock())
    for account in ("a", "b", "c"):
        for n in range(3):
            files = {"f": cc.Upload(JPEG + n.to_bytes(4, "big"))}
            body = {"externalId": f"p{n}", "images": [{"source": {"fileKey": "f"}}]}
            catalog.upsert(account, body, files=files)
    before = set(recorded.statements)
    target = cc.MemoryRepository()
    copied = sum(s.products for s in transfer.copy(repo, target, now=catalog.now(), batch_size=2))
    assert copied == 9
    assert len(list(transfer.export_records(repo, "b", now=catalog.now(), page_size=2))) == 3
    assert repo.count_live(account=None, now=catalog.now()) == 9
    walked = [s for s in recorded.statements if s not in before]
    scans = [s for s in walked if "ORDER BY" in s]
    assert len(scans) == 2
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        for statement in walked:
            assert problems(statement) == [], statement
        for statement in scans:
            plan = conn.execute("EXPLAIN " + statement, recorded.statements[statement])
            text = "\n".join(row[0] for row in plan)
            assert "products_pkey" in text, (statement, text)
            assert "Sort" not in text, (statement, text)


def _purge_statements(accounts: int) -> tuple[int, int]:
    """Purge one expired product of each of ``accounts`` accounts; return (removed, statements).

    The products are written in one go (the repository's own rows), to keep the test fast.
    """
    recorded = Recorded()
    pool = recording_pool(postgres_url(), recorded, 2)
    repo = cc.PostgresRepository(schema=fresh_schema(), pool=pool)
    try:
        with psycopg.connect(postgres_url(), autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {repo.schema}.products (account, external_id, one_shot, data, "
                "valid_for_days, expires_at, last_used_at, created_at, updated_at, version, "
                "uploads) VALUES (%s, %s, false, %s, 1, 0, NULL, 0, 0, 1, false)",
                [
                    (f"acct-{n % accounts:04d}", f"p{n:04d}", '{"images":[["https://x.example"]]}')
                    for n in range(1_200)
                ],
            )
        sent = recorded.sent
        removed = repo.purge_expired(cc.Catalog(repo).now() + timedelta(seconds=1))
        return removed, recorded.sent - sent
    finally:
        repo.drop_schema()
        pool.close()


def test_r21_the_purges_work_does_not_grow_with_the_number_of_accounts() -> None:
    """1,200 expired products in 1 account or spread over 600: the same statements, as many.

    The purge reads and deletes what expired across accounts, a batch at a time; it never
    walks the accounts (which cost a step per account, and a recursive CTE Citus refuses).
    """
    one = _purge_statements(1)
    many = _purge_statements(600)
    assert one[0] == many[0] == 1_200
    assert one[1] == many[1]
    assert one[1] <= 20  # three batches of 500, a find and a delete each, and the other kinds


def test_r21_a_backlog_is_purged_in_batches_each_reading_only_its_part_of_the_index(
    repo: cc.PostgresRepository, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 expired products in batches of 50: counted once, 20 batches, each bounded by index.

    The products are the repository's rows: their images name no upload (``uploads`` false), so
    the purge of those that do finds none, and costs no batch.

    The end of each batch is read after the previous batch's last key, and nothing is counted
    again between batches, so the purge is linear in what it removes (a recount per batch, or a
    probe from the start of the index each time, would make it quadratic).
    """
    monkeypatch.setattr(postgres, "_PURGE_ACROSS", 50)
    with psycopg.connect(postgres_url(), autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {repo.schema}.products (account, external_id, one_shot, data, "
            "valid_for_days, expires_at, last_used_at, created_at, updated_at, version, "
            "uploads) VALUES (%s, %s, false, %s, 1, %s, NULL, 0, 0, 1, false)",
            [
                (f"acct-{n % 7}", f"p{n:04d}", '{"images":[["https://x.example"]]}', n % 13)
                for n in range(1_000)
            ],
        )
    recorded.times.clear()
    assert repo.purge_expired(cc.Catalog(repo).now()) == 1_000
    sent = {s: n for s, n in recorded.times.items() if f'"{repo.schema}".products' in s}
    counts = [n for s, n in sent.items() if "count(*)" in s]
    bounds = [(s, n) for s, n in sent.items() if "OFFSET" in s]
    deletes = [(s, n) for s, n in sent.items() if s.startswith("DELETE")]
    assert counts == [1]
    assert sum(n for _, n in bounds) == 21  # the 20th batch's end, then none: the last batch
    assert sum(n for _, n in deletes) == 21
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        for statement, _ in bounds + deletes:
            params = recorded.statements[statement]
            text = "\n".join(r[0] for r in conn.execute("EXPLAIN " + statement, params))
            assert "products_purge" in text, text
            if "> (" in statement:  # after a previous batch: the index range starts there
                assert "ROW(expires_at, account, external_id) >" in text, text


def test_schema_sql_for_citus_adds_the_distribution_step_to_the_same_ddl() -> None:
    plain = schema_sql("shop")
    distributed = schema_sql("shop", distributed=True)
    assert distributed.startswith(plain)
    step = distributed[len(plain) :].splitlines()
    calls = [line for line in step if line.startswith("SELECT ")]
    assert calls[0].startswith("SELECT create_reference_table('\"shop\".catalog_meta')")
    assert calls[1].startswith("SELECT create_distributed_table('\"shop\".products', 'account')")
    for table, call in zip(DISTRIBUTED_TABLES[1:], calls[2:], strict=True):
        assert call.startswith(
            f"SELECT create_distributed_table('\"shop\".{table}', 'account', "
            "colocate_with => '\"shop\".products')"
        )
    for table, call in zip(("catalog_meta", *DISTRIBUTED_TABLES), calls, strict=True):
        # Only what is not distributed yet: the output can be run again.
        assert call.endswith(
            f"WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition "
            f"WHERE logicalrelid = '\"shop\".{table}'::regclass);"
        )
    assert set(DISTRIBUTED_TABLES) == set(DISTRIBUTED)


def test_schema_sql_citus_on_the_command_line_prints_the_same() -> None:
    ran = subprocess.run(
        [str(SCRIPT), "schema-sql", "--schema", "shop", "--citus"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout == schema_sql("shop", distributed=True)
    plain = subprocess.run(
        [str(SCRIPT), "schema-sql", "--schema", "shop"], capture_output=True, text=True, check=True
    )
    assert plain.stdout == schema_sql("shop")


def test_every_key_and_index_of_the_schema_is_one_citus_can_distribute(
    repo: cc.PostgresRepository,
) -> None:
    """Unique keys must hold the distribution column: every primary key starts with the account."""
    with psycopg.connect(postgres_url()) as conn:
        rows = conn.execute(
            "SELECT t.relname, a.attname FROM pg_index x "
            "JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] "
            "WHERE n.nspname = %s AND x.indisunique AND t.relname <> 'catalog_meta'",
            (repo.schema,),
        ).fetchall()
    assert {table for table, _ in rows} == set(DISTRIBUTED)
    assert {column for _, column in rows} == {"account"}
