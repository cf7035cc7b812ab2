"""Operating the PostgreSQL backend as a new user does: connection mistakes and locked-down roles.

Against the real PostgreSQL of CI, through the library and the real command line.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import catalog_core as cc
from tests.conftest import fresh_schema, postgres_url

SCRIPT = Path(sys.executable).parent / "catalog-core"
#: A timeout far longer than any test waits: a mistake must fail with its cause, not time out.
LONG = 60.0


@pytest.fixture
def url() -> str:
    return postgres_url()


def _with(
    url: str,
    *,
    user: str | None = None,
    port: int | None = None,
    path: str | None = None,
    query: str = "",
) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{user or parts.username}@{host}:{port or parts.port or 5432}"
    joined = "&".join(q for q in (parts.query, query) if q)
    return urlunsplit((parts.scheme, netloc, path or parts.path, joined, ""))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=LONG, check=False
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mistakes(url: str) -> list[tuple[str, str]]:
    """Each connection mistake a new user makes, with what the driver says about it."""
    return [
        (_with(url, path="/nosuchdb"), 'database "nosuchdb" does not exist'),
        (_with(url, port=_free_port()), "Connection refused"),
        (_with(url, user="no_such_role_cc"), 'role "no_such_role_cc" does not exist'),
        (_with(url, query="no_such_option=1"), 'invalid URI query parameter: "no_such_option"'),
    ]


def test_a_connection_mistake_fails_with_the_drivers_cause_not_a_pool_timeout(url: str) -> None:
    """The first connection is made before the pool's, so its error is the driver's own.

    With a pool alone, every one of these waited ``connect_timeout`` and said only "pool
    initialization incomplete"; the timeout here is long, so a pool timeout would be its
    message, not the cause.
    """
    for target, cause in _mistakes(url):
        with pytest.raises(psycopg.Error) as raised:
            cc.PostgresRepository(target, connect_timeout=LONG)
        assert cause in str(raised.value), target
        assert "pool" not in str(raised.value)
        with pytest.raises(psycopg.Error, match=cause):
            cc.open_repository(target)


def test_a_connection_mistake_on_the_command_line_is_one_line_with_the_cause(url: str) -> None:
    for target, cause in _mistakes(url):
        ran = _cli("--db", target, "get", "p")
        assert ran.returncode == 1, ran
        assert cause in ran.stderr, ran.stderr
        assert ran.stderr.startswith("Error: cannot open the catalog database")
        assert "Traceback" not in ran.stderr


def test_a_connect_timeout_in_the_url_is_the_users() -> None:
    """``connect_timeout`` in the URL wins over the constructor's (it is libpq's own parameter).

    The server here accepts the connection and never answers, so only a timeout ends the
    attempt: the URL's 2 s one, long before the constructor's 60 s (the thread's generous join
    tells the two apart).
    """
    outcome: list[BaseException] = []
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]

        def attempt() -> None:
            try:
                cc.PostgresRepository(
                    f"postgresql://u@127.0.0.1:{port}/x?connect_timeout=2", connect_timeout=LONG
                )
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        thread.join(LONG / 2)
    assert not thread.is_alive(), "the URL's connect_timeout was not used"
    assert len(outcome) == 1
    assert isinstance(outcome[0], psycopg.OperationalError)
    assert "timeout" in str(outcome[0])


@pytest.fixture
def locked_down(url: str) -> Iterator[tuple[str, str]]:
    """A schema an administrator made with ``schema-sql``, and a role that may use but not alter it.

    The role may read and write the tables, and create nothing: no schema in the database, no
    object in the schema. Yields the role's URL and the schema.
    """
    schema = fresh_schema()
    role = f"cc_app_{uuid.uuid4().hex[:12]}"
    ddl = _cli("schema-sql", "--schema", schema)
    assert ddl.returncode == 0, ddl.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ddl.stdout.encode())
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
        )
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        can_create = conn.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE'), "
            "has_schema_privilege(%s, %s, 'CREATE')",
            (role, role, schema),
        ).fetchone()
        assert can_create == (False, False)
    try:
        yield _with(url, user=role), schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_schema_made_with_schema_sql_is_used_from_the_command_line_by_a_role_without_create(
    locked_down: tuple[str, str], tmp_path: Path
) -> None:
    """``?create_schema=false`` reaches the repository, not libpq: no DDL, a version check."""
    role_url, schema = locked_down
    target = _with(role_url, query=f"schema={schema}&create_schema=false")
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        '{"externalId": "p", "images": [{"source": {"url": "https://x.example/a"}}]}\n'
    )
    made = _cli("--db", target, "import", "--account", "acme", str(lines))
    assert made.returncode == 0, made.stderr
    got = _cli("--db", target, "get", "--account", "acme", "p")
    assert got.returncode == 0, got.stderr
    assert '"externalId": "p"' in got.stdout
    credits = _cli("--db", target, "credits", "acme", "--add", "5")
    assert credits.returncode == 0, credits.stderr
    purged = _cli("--db", target, "purge")
    assert purged.returncode == 0, purged.stderr
    repository = cc.open_repository(target)
    try:
        assert isinstance(repository, cc.PostgresRepository)
        assert cc.Catalog(repository).get("acme", "p").version == 1
    finally:
        repository.close()


def test_create_schema_false_on_a_missing_schema_says_to_run_schema_sql(url: str) -> None:
    target = _with(url, query=f"schema={fresh_schema()}&create_schema=false")
    ran = _cli("--db", target, "get", "p")
    assert ran.returncode == 1
    assert "schema-sql" in ran.stderr
    with pytest.raises(RuntimeError, match="schema-sql"):
        cc.open_repository(target)


@pytest.mark.parametrize("value", ["no", "0", ""])
def test_create_schema_is_true_or_false(url: str, value: str) -> None:
    target = _with(url, query=f"schema={fresh_schema()}&create_schema={value}")
    with pytest.raises(ValueError, match="true or false"):
        cc.open_repository(target)
    ran = _cli("--db", target, "get", "p")
    assert ran.returncode == 1
    assert "true or false" in ran.stderr
