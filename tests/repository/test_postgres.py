"""What only the PostgreSQL backend has: pools, processes, schema management, tenant-first keys."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

import catalog_core as cc
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG, FakeClock

IMAGES = [{"source": {"url": "https://cdn.example/a.jpg"}}]


@pytest.fixture
def url() -> str:
    return postgres_url()


@pytest.fixture
def schema(url: str) -> Iterator[str]:
    name = fresh_schema()
    yield name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def repo(url: str, schema: str) -> Iterator[cc.PostgresRepository]:
    repository = cc.PostgresRepository(url, schema=schema, max_size=16)
    yield repository
    repository.close()


def race_for(seconds: float, *steps: Callable[[], None]) -> list[BaseException]:
    """Run each step in a loop on a thread of its own for ``seconds``; return what they raised.

    Every loop stops at the first failure of any of them.
    """
    stop = time.monotonic() + seconds
    errors: list[BaseException] = []

    def loop(step: Callable[[], None]) -> None:
        while time.monotonic() < stop and not errors:
            try:
                step()
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=loop, args=(step,)) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


WORKER = textwrap.dedent(
    """
    import sys
    import catalog_core as cc

    url, schema, worker, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    repo = cc.PostgresRepository(url, schema=schema, max_size=4)
    catalog = cc.Catalog(repo)
    for k in range(rounds):
        for external_id in ("hot-1", "hot-2"):
            catalog.upsert("acme", {"externalId": external_id, "title": f"{worker}-{k}"})
            catalog.use("acme", {"externalId": external_id})
        catalog.upsert("acme", {"externalId": f"new-{k}", "images": IMAGES})
    repo.close()
    print("done")
    """
).replace("IMAGES", repr(IMAGES))


def test_r27_several_processes_never_lose_an_update(
    repo: cc.PostgresRepository, url: str, schema: str
) -> None:
    """R27: processes with pools of their own write the same products, and create the same ids."""
    catalog = cc.Catalog(repo)
    for external_id in ("hot-1", "hot-2"):
        catalog.upsert("acme", {"externalId": external_id, "images": IMAGES})
    processes, rounds = 4, 40
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, schema, str(n), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(processes)
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        assert out.strip() == "done"
    for external_id in ("hot-1", "hot-2"):
        assert catalog.get("acme", external_id).version == 1 + processes * rounds * 2
    # Every process created or updated new-k: one create and (processes - 1) updates each.
    for k in range(rounds):
        assert catalog.get("acme", f"new-{k}").version == processes


def test_r27_many_threads_on_many_connections_never_lose_an_update(
    repo: cc.PostgresRepository,
) -> None:
    catalog = cc.Catalog(repo)
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    threads, rounds = 12, 15

    def work(n: int) -> None:
        for k in range(rounds):
            catalog.upsert("acme", {"externalId": "p", "metadata": {"by": n, "k": k}})
            catalog.upsert("acme", {"externalId": f"race-{k}", "images": IMAGES})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    assert catalog.get("acme", "p").version == 1 + threads * rounds
    assert {catalog.get("acme", f"race-{k}").version for k in range(rounds)} == {threads}


def test_r27_writes_sharing_blobs_in_opposite_orders_do_not_deadlock(
    repo: cc.PostgresRepository,
) -> None:
    """Blob reference counts are locked in one order, whatever the order of the images."""
    catalog = cc.Catalog(repo)
    files = {"a": cc.Upload(JPEG), "b": cc.Upload(JPEG + b"\x01")}
    forward = [{"source": {"fileKey": "a"}}, {"source": {"fileKey": "b"}}]

    def work(n: int) -> None:
        images = forward if n % 2 else forward[::-1]
        for k in range(10):
            catalog.upsert("acme", {"externalId": f"p{n}-{k % 3}", "images": images}, files=files)
            catalog.upsert("acme", {"externalId": f"p{n}-{k % 3}", "images": IMAGES})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert catalog.purge_expired() == 0


#: The indexes a purge reads across accounts, in plain statements that each shard of a
#: distributed table runs on its own part (T22, R21): by expiry first, then the key, so that it
#: finds what has expired at a cost that follows it. Every other one leads with the account.
ACROSS_ACCOUNTS = {
    ("products", "products_purge"): ["expires_at", "account", "external_id"],
    ("products", "products_purge_uploads"): ["expires_at", "account", "external_id"],
    ("person_images", "person_images_purge"): ["expires_at", "account", "image_id"],
    ("generations", "generations_purge"): ["expires_at", "account", "generation_id"],
}


def test_every_key_and_index_starts_with_the_account_but_the_purges(
    repo: cc.PostgresRepository, url: str, schema: str
) -> None:
    """Tables can be distributed by account: the tenant column leads every key and index.

    But the purge indexes, which lead with the expiry: the purge reads them across accounts.
    """
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT t.relname, i.relname, array_agg(a.attname ORDER BY k.n) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE n.nspname = %s AND t.relname <> 'catalog_meta' GROUP BY 1, 2",
            (schema,),
        ).fetchall()
    assert {(table, index) for table, index, _ in rows} == {
        ("products", "products_pkey"),
        ("products", "products_listing"),
        ("products", "products_purge"),
        ("products", "products_purge_uploads"),
        ("blobs", "blobs_pkey"),
        ("blobs", "blobs_orphans"),
        ("person_images", "person_images_pkey"),
        ("person_images", "person_images_purge"),
        ("person_images", "person_images_customer"),
        ("generations", "generations_pkey"),
        ("generations", "generations_purge"),
        ("generations", "generations_customer"),
        ("generations", "generations_listing"),
        ("generations", "generations_product"),
        ("credits", "credits_pkey"),
    }
    for table, index, columns in rows:
        if (table, index) in ACROSS_ACCOUNTS:
            assert columns == ACROSS_ACCOUNTS[table, index]
        else:
            assert columns[0] == "account", (table, index)


def test_t18_an_erasure_reads_through_the_customer_indexes_not_scans(
    repo: cc.PostgresRepository, url: str, schema: str
) -> None:
    """T18: an erasure finds the customer's records by index (the purge's own statements are
    checked in ``test_postgres_distribution.py``).

    Sequential scans are switched off so that the planner shows the index it can use even on
    tables this small.
    """
    with psycopg.connect(url) as conn:
        conn.execute("SET enable_seqscan = off")
        for table in ("person_images", "generations"):
            erase = conn.execute(
                f"EXPLAIN SELECT account FROM {schema}.{table} "
                "WHERE account = 'acme' AND customer_id = '\"c\"' LIMIT 500"
            ).fetchall()
            assert f"{table}_customer" in str(erase)


def test_r24_ids_sort_in_code_point_order_whatever_the_database_locale(
    repo: cc.PostgresRepository,
) -> None:
    catalog = cc.Catalog(repo)
    ids = ["b", "B", "a", "Z", "é", "e", "ä", "😀", "ｚ", "a b", "a-b", "a_b", "10", "9"]
    for external_id in ids:
        catalog.upsert("acme", {"externalId": external_id, "images": IMAGES})
    assert [p.external_id for p in catalog.list("acme").items] == sorted(ids)


def test_r7_r9_text_postgresql_cannot_hold_still_round_trips(repo: cc.PostgresRepository) -> None:
    """NUL and other control characters are valid in titles and metadata (R7, R9)."""
    catalog = cc.Catalog(repo, clock=FakeClock())
    product = catalog.upsert(
        "acme",
        {
            "externalId": "p",
            "title": "nul\x00 tab\t bell\x07",
            "description": "line\nbreak \u2028 é 😀",
            "metadata": {"k\x00": ["\x00", "\x1f"], "n": 10**300, "f": 0.1},
            "images": [
                {"source": {"url": "https://cdn.example/a.jpg"}, "classifications": {"x": "\x00"}}
            ],
        },
    ).product
    assert catalog.get("acme", "p") == product


def test_a_schema_created_ahead_of_time_is_used_without_ddl(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(cc.PostgresRepository.schema_sql(schema).encode())
    repository = cc.PostgresRepository(url, schema=schema, create_schema=False)
    catalog = cc.Catalog(repository)
    catalog.upsert("acme", {"externalId": "p", "images": IMAGES})
    assert catalog.get("acme", "p").version == 1
    repository.close()


def test_a_missing_schema_without_ddl_rights_is_a_clear_error(url: str, schema: str) -> None:
    with pytest.raises(RuntimeError, match="schema-sql"):
        cc.PostgresRepository(url, schema=schema, create_schema=False)


def test_a_schema_of_another_version_is_refused(
    repo: cc.PostgresRepository, url: str, schema: str
) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.catalog_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="schema 999"):
        cc.PostgresRepository(url, schema=schema)


@pytest.mark.parametrize("bad", ["Shop", "1shop", "shop;drop", "", "a" * 64])
def test_a_schema_name_must_be_a_plain_identifier(url: str, bad: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        cc.PostgresRepository(url, schema=bad)


def test_an_unreachable_server_fails_within_the_connect_timeout() -> None:
    with pytest.raises(psycopg.OperationalError):
        cc.PostgresRepository("postgresql://postgres@127.0.0.1:1/test", connect_timeout=0.5)


def test_open_repository_reads_the_schema_from_the_url(url: str, schema: str) -> None:
    separator = "&" if "?" in url else "?"
    repository = cc.open_repository(f"{url}{separator}schema={schema}")
    assert isinstance(repository, cc.PostgresRepository)
    assert repository.schema == schema
    repository.close()


def test_r21_the_purge_works_per_account_in_batches(repo: cc.PostgresRepository) -> None:
    clock = FakeClock()
    catalog = cc.Catalog(repo, clock=clock)
    with repo._pool.connection() as conn, conn.cursor() as cur:
        # 1,203 expired products in one account, written in one go to keep the test fast.
        cur.executemany(
            f"INSERT INTO {repo.schema}.products (account, external_id, one_shot, data, "
            "valid_for_days, expires_at, last_used_at, created_at, updated_at, version) "
            "VALUES ('bulk', %s, false, %s, 1, 0, NULL, 0, 0, 1)",
            [
                (
                    f"p{n:04d}",
                    '{"title":null,"description":null,"metadata":null,"images":[["https://x.example/a"]]}',
                )
                for n in range(1203)
            ],
        )
    for account in ("a", "b", "c"):
        catalog.upsert(account, {"externalId": "ttl", "images": IMAGES, "validForDays": 1})
        catalog.upsert(account, {"externalId": "kept", "images": IMAGES})
    clock.advance(days=1)
    assert catalog.purge_expired() == 1203 + 3
    assert [p.external_id for p in catalog.list("a").items] == ["kept"]
    assert catalog.list("bulk").items == ()


def test_the_command_line_works_on_a_postgresql_url(url: str, schema: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from catalog_core.cli import main

    separator = "&" if "?" in url else "?"
    target = f"{url}{separator}schema={schema}"
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        '{"externalId": "p", "images": [{"source": {"url": "https://x.example/a"}}]}\n'
    )
    runner = CliRunner()
    imported = runner.invoke(main, ["--db", target, "import", "--account", "acme", str(lines)])
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.startswith("created 1, updated 0, rejected 0")
    listed = runner.invoke(main, ["--db", target, "list", "--account", "acme"])
    assert listed.exit_code == 0
    assert [line[:17] for line in listed.stdout.splitlines()] == ['{"externalId": "p']


def _run_without_url(**extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_CORE_")}
    env.update(extra)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_every_key_and_index_starts_with_the_account_but_the_purges",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_without_a_url_the_postgresql_tests_skip_and_say_how_to_enable_them(url: str) -> None:
    result = _run_without_url()
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "set CATALOG_CORE_POSTGRES_URL" in result.stdout


def test_when_ci_requires_postgresql_a_missing_url_fails_instead(url: str) -> None:
    result = _run_without_url(CATALOG_CORE_REQUIRE_POSTGRES="1")
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout or "1 failed" in result.stdout
    assert "forbids skipping" in result.stdout


def test_r26_r27_writes_and_purges_racing_over_one_blob_never_fail(
    repo: cc.PostgresRepository,
) -> None:
    """A purge deleting an orphan blob cannot pull it from under a write that names it again."""
    catalog = cc.Catalog(repo)
    uploaded = {"images": [{"source": {"fileKey": "f"}}]}

    def writer(n: int) -> Callable[[], None]:
        def step() -> None:
            catalog.upsert(
                "acme", {**uploaded, "externalId": f"p{n}"}, files={"f": cc.Upload(JPEG)}
            )
            catalog.upsert("acme", {"externalId": f"p{n}", "images": IMAGES})

        return step

    purges = [catalog.purge_expired, catalog.purge_expired]
    assert race_for(3, *(writer(n) for n in range(3)), *purges) == []


def test_open_repository_keeps_a_socket_style_url_and_escaped_parameters(url: str) -> None:
    """postgresql:///db has an empty host; %20 is a space to libpq, never a +."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    schema = fresh_schema()
    socketless = (
        f"postgresql:///{parts.path.lstrip('/')}?host={parts.hostname}&port={parts.port or 5432}"
        f"&user={parts.username}&application_name=catalog%20core&schema={schema}"
    )
    repository = cc.open_repository(socketless)
    assert isinstance(repository, cc.PostgresRepository)
    try:
        with repository._pool.connection() as conn:
            row = conn.execute("SHOW application_name").fetchone()
        assert row == ("catalog core",)
        assert repository.schema == schema
    finally:
        repository.drop_schema()
        repository.close()


def test_a_reserved_word_is_a_valid_schema_name_and_pg_names_are_refused(url: str) -> None:
    repository = cc.PostgresRepository(url, schema="order")
    try:
        cc.Catalog(repository).upsert("acme", {"externalId": "p", "images": IMAGES})
        assert cc.Catalog(repository).get("acme", "p").version == 1
    finally:
        repository.drop_schema()
        repository.close()
    with pytest.raises(ValueError, match="pg_"):
        cc.PostgresRepository(url, schema="pg_catalog_core")


def test_r21_r27_purges_racing_writers_that_shuffle_shared_images_never_fail(
    repo: cc.PostgresRepository,
) -> None:
    """Blob rows are locked in one order by writes and purges alike: no deadlock escapes."""
    import random

    clock = FakeClock()
    catalog = cc.Catalog(repo, clock=clock)
    files = {f"f{n}": cc.Upload(JPEG + bytes([n])) for n in range(6)}

    def writer(seed: int) -> Callable[[], None]:
        chance = random.Random(seed)

        def step() -> None:
            keys = chance.sample(sorted(files), k=chance.randint(1, 4))
            payload = {
                "externalId": f"p{chance.randrange(8)}",
                "images": [{"source": {"fileKey": key}} for key in keys],
                "validForDays": chance.choice([None, 1]),
            }
            catalog.upsert(chance.choice(["a", "b"]), payload, files=files)

        return step

    def purge() -> None:
        repo.purge_expired(clock.now + timedelta(days=2))

    assert race_for(3, *(writer(n) for n in range(8)), purge, purge) == []
    with psycopg.connect(repo._pool.conninfo) as conn:
        drift = conn.execute(
            f'SELECT b.sha256, b.refs, (SELECT count(*) FROM "{repo.schema}".products p '
            "WHERE p.account = b.account AND p.data LIKE '%' || b.sha256 || '%') "
            f'FROM "{repo.schema}".blobs b'
        ).fetchall()
    assert [row for row in drift if row[1] != row[2]] == []


def _schema_state(url: str, schema: str) -> list[object]:
    """Every table, column, index and row of ``schema``."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY 1, 2",
            (schema,),
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s ORDER BY 1", (schema,)
        ).fetchall()
        rows = [
            conn.execute(f"SELECT * FROM {schema}.{name} ORDER BY 1").fetchall()
            for name in sorted({t[0] for t in tables})
        ]
        objects = conn.execute(  # every object in the schema: sequences, types, functions ...
            "SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend "
            "WHERE refclassid = 'pg_namespace'::regclass AND refobjid = %s::regnamespace "
            "ORDER BY 1",
            (schema,),
        ).fetchall()
    return [tables, indexes, rows, objects]


FOREIGN_SCHEMAS = {
    "another application's products table": (
        "CREATE TABLE {s}.products (id serial PRIMARY KEY, name text, price numeric);"
        "INSERT INTO {s}.products (name, price) VALUES ('socks', 4.5)",
        "tables of another application (products)",
    ),
    "unrelated tables": (
        "CREATE TABLE {s}.notes (id serial PRIMARY KEY, body text);"
        "INSERT INTO {s}.notes (body) VALUES ('buy socks')",
        "tables of another application (notes)",
    ),
    "a catalog_meta without our schema_version": (
        "CREATE TABLE {s}.catalog_meta (key text PRIMARY KEY, value text NOT NULL);"
        "INSERT INTO {s}.catalog_meta VALUES ('owner', 'another app')",
        "holds no catalog schema_version",
    ),
    "a sequence and no table": (
        "CREATE SEQUENCE {s}.invoice_numbers",
        "objects of another application (sequence {s}.invoice_numbers)",
    ),
    "types and a function and no table": (
        "CREATE TYPE {s}.mood AS ENUM ('happy', 'sad');"
        "CREATE DOMAIN {s}.positive AS integer CHECK (VALUE > 0);"
        "CREATE FUNCTION {s}.answer() RETURNS integer LANGUAGE sql AS 'SELECT 42'",
        "objects of another application (function {s}.answer(), type {s}.mood, type {s}.positive)",
    ),
}


@pytest.mark.parametrize("create_schema", [True, False])
@pytest.mark.parametrize("kind", FOREIGN_SCHEMAS)
def test_a_schema_of_another_application_is_refused_and_left_as_it_was(
    url: str, schema: str, kind: str, create_schema: bool
) -> None:
    """The PostgreSQL twin of the SQLite test: recognise the catalog before any DDL."""
    statements, reason = FOREIGN_SCHEMAS[kind]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(statements.format(s=schema).encode())
    before = _schema_state(url, schema)

    with pytest.raises(RuntimeError) as refused:
        cc.PostgresRepository(url, schema=schema, create_schema=create_schema)

    assert f"schema '{schema}' is not a catalog_core catalog" in str(refused.value)
    assert reason.format(s=schema) in str(refused.value)
    assert _schema_state(url, schema) == before


def test_a_schema_holding_only_an_extension_is_the_catalogs_to_create(
    url: str, schema: str
) -> None:
    """An extension's types and functions are installed software, not another application's data
    (``public`` often holds some): the catalog is created beside them."""
    # An extension exists once per database: runs sharing the server take turns.
    with psycopg.connect(url, autocommit=True) as turn:
        turn.execute("SELECT pg_advisory_lock(hashtext('catalog_core citext test'))")
        turn.execute(f"CREATE SCHEMA {schema}")
        turn.execute(f"CREATE EXTENSION citext SCHEMA {schema}")
        repository = cc.PostgresRepository(url, schema=schema)
        try:
            cc.Catalog(repository).upsert("acme", {"externalId": "p", "images": IMAGES})
            assert cc.Catalog(repository).get("acme", "p").version == 1
        finally:
            repository.close()
            turn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_r15_t22_a_write_naming_a_blob_deleted_and_stored_again_meanwhile_runs_again(
    repo: cc.PostgresRepository, url: str, schema: str
) -> None:
    """A write that names a stored blob (without its bytes) waits on a purge deleting it as an
    orphan; before that purge commits, the same bytes are stored again. The write's update then
    finds the old row gone and the new one there: it runs again and names the new one (it used
    to fail with "0 of 1 blob reference counts moved")."""
    import hashlib

    from catalog_core.repository.base import TryOnKeys, TryOnWrite
    from catalog_core.tryon.model import PersonImage

    sha = hashlib.sha256(JPEG).hexdigest()
    blob = f"INSERT INTO {schema}.blobs VALUES ('acme', %s, 'image/jpeg', %s, 0)"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(blob, (sha, JPEG))
    now = cc.Catalog(repo).now()
    image = PersonImage(
        account="acme",
        image_id="img_1",
        sha256=sha,
        mime_type="image/jpeg",
        token="t" * 32,
        customer_id=None,
        created_at=now,
        expires_at=now + timedelta(days=1),
    )
    write = TryOnWrite(person_images=(image,))
    done: list[object] = []
    with psycopg.connect(url) as purge:  # one transaction, until the commit below
        purge.execute(f"DELETE FROM {schema}.blobs WHERE refs = 0")
        purge.execute(blob, (sha, JPEG))
        writer = threading.Thread(
            target=lambda: done.append(
                repo.write_tryon("acme", TryOnKeys(person_images=("img_1",)), lambda _: write)
            )
        )
        writer.start()
        until_waiting([url], "UPDATE %.blobs SET refs = refs%", "the write")
        purge.commit()
    writer.join(10)
    assert done == [write]
    with psycopg.connect(url, autocommit=True) as conn:
        refs = conn.execute(f"SELECT refs FROM {schema}.blobs WHERE sha256 = %s", (sha,)).fetchone()
    assert refs == (1,)


def test_r27_a_batch_reads_its_stored_rows_by_key_whatever_the_statistics_say(url: str) -> None:
    """R27: a bulk batch reads (and locks) its stored rows with one probe of the primary key per
    id. Its earlier statement (``external_id = ANY(%s)``) let the planner, with statistics older
    than an import of the account (no ANALYZE has run yet), filter every row of the account at
    each batch: 28 ms a batch at 100,000 products against 3 ms, growing with the account."""
    from tests.repository.distribution import Recorded, recording_pool

    recorded = Recorded()
    pool = recording_pool(url, recorded, 2)
    repository = cc.PostgresRepository(schema=fresh_schema(), pool=pool)
    catalog = cc.Catalog(repository)
    try:
        image = [{"source": {"url": "https://cdn.example/a.jpg"}}]
        first = ({"externalId": f"p{n:05d}", "images": image} for n in range(3000))
        assert all(isinstance(r, cc.UpsertResult) for r in catalog.upsert_many("acme", first))
        again = [{"externalId": f"p{n:05d}", "title": "b"} for n in range(0, 3000, 10)]
        again += [{"externalId": f"q{n:05d}", "images": image} for n in range(300)]
        results = list(catalog.upsert_many("acme", again))
        assert [r.created for r in results if isinstance(r, cc.UpsertResult)] == (
            [False] * 300 + [True] * 300
        )
        # The batch's read: the statement locking the stored rows of many ids at once.
        loads = [
            (s, p)
            for s, p in recorded.statements.items()
            if "FOR UPDATE" in s and any(isinstance(value, list) for value in p)
        ]
        assert len(loads) == 1
        statement, params = loads[0]
        ids = sorted(item["externalId"] for item in again)
        given = tuple(ids if isinstance(value, list) else value for value in params)
        with psycopg.connect(url) as conn:
            never_analyzed = conn.execute(
                "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL "
                "FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'products'",
                (repository.schema,),
            ).fetchone()
            plan = "\n".join(
                row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {statement}", given)
            )
        assert never_analyzed == (True,)
        assert "Rows Removed by Filter" not in plan, plan  # no row of the account read in vain
        assert "products_pkey" in plan, plan
    finally:
        repository.drop_schema()
        pool.close()


def test_r27_a_batch_whose_new_row_a_concurrent_writer_created_first_runs_again(
    repo: cc.PostgresRepository, url: str, schema: str
) -> None:
    """R27: a batch inserts its new rows with one COPY, which has no ``ON CONFLICT``; see
    :func:`check_a_row_created_during_the_copy`."""
    check_a_row_created_during_the_copy(repo, url, schema, [url])


def check_a_row_created_during_the_copy(
    repo: cc.PostgresRepository, url: str, schema: str, servers: list[str]
) -> None:
    """Another transaction inserts one of a batch's new rows after the batch's read, and
    commits while the batch's COPY waits on it (on one of ``servers``): the COPY fails, and the
    batch is written all the same, the row the other writer made updated, nothing lost or
    written twice."""
    catalog = cc.Catalog(repo)
    catalog.upsert("acme", {"externalId": "template", "title": "theirs", "images": IMAGES})
    batch = [{"externalId": f"p{n:02d}", "title": "mine", "images": IMAGES} for n in range(20)]
    results: list[object] = []
    with psycopg.connect(url) as other:  # one transaction, until the commit below
        other.execute(
            f"INSERT INTO {schema}.products SELECT account, 'p07', one_shot, data, valid_for_days, "
            "expires_at, last_used_at, created_at, updated_at, version, uploads "
            f"FROM {schema}.products WHERE external_id = 'template'"
        )
        writer = threading.Thread(target=lambda: results.extend(catalog.upsert_many("acme", batch)))
        writer.start()
        until_waiting(servers, "COPY %", "the batch's COPY")
        other.commit()
    writer.join(10)
    assert [r.created for r in results if isinstance(r, cc.UpsertResult)] == (
        [True] * 7 + [False] + [True] * 12
    )
    taken = catalog.get("acme", "p07")
    assert (taken.title, taken.version) == ("mine", 2)
    assert {catalog.get("acme", f"p{n:02d}").version for n in range(20) if n != 7} == {1}
    assert repo.count_live(account="acme", now=catalog.now()) == 21


def until_waiting(servers: list[str], statement: str, what: str) -> None:
    """Return once a statement ``LIKE statement`` waits for a lock on one of ``servers``."""
    watches = [psycopg.connect(server, autocommit=True) for server in servers]
    try:
        for _ in range(500):
            for watch in watches:
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE %s",
                    (statement,),
                ).fetchone()
                if waiting and waiting[0]:
                    return
            time.sleep(0.01)
        pytest.fail(f"{what} never waited for a lock")
    finally:
        for watch in watches:
            watch.close()
