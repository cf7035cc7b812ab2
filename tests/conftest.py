"""Shared fixtures: a controllable clock, and a ``catalog`` on every backend.

``tests/test_rules.py`` pins ``backend`` to memory (rules do not depend on storage; the contract
in ``tests/repository`` runs storage behaviour on every backend).

Hypothesis profiles are chosen by ``CATALOG_CORE_HYPOTHESIS_PROFILE`` (``dev`` by default, ``ci``
in CI, ``long`` by default under ``CATALOG_CORE_LONG=1``). Expensive property tests scale their
example count from ``settings.default.max_examples``.

PostgreSQL tests connect to ``CATALOG_CORE_POSTGRES_URL``; without it they are skipped, unless
``CATALOG_CORE_REQUIRE_POSTGRES=1`` (set by CI), which turns the skip into a failure. Each test
gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import catalog_core as cc
from tests.helpers import FakeClock

settings.register_profile("dev", max_examples=100, deadline=None)
# CI's count keeps the whole run (2 workers) well under 15 minutes on the slowest machine of
# the kind it runs on: 2,000 took it to 15 on a slow day (the same suite ran in 8 on a faster
# one), and 1,000 to 13.5 on a machine at about half the speed of the usual one (2026-12-06).
settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# The long form of docs/reliability.md: forty times CI's examples.
settings.register_profile("long", parent=settings.get_profile("ci"), max_examples=20_000)
_LONG = os.environ.get("CATALOG_CORE_LONG") == "1"
settings.load_profile(os.environ.get("CATALOG_CORE_HYPOTHESIS_PROFILE", "long" if _LONG else "dev"))

BACKENDS = ["memory", "sqlite", "postgres"]
POSTGRES_HOWTO = (
    "PostgreSQL tests are off: set CATALOG_CORE_POSTGRES_URL (for example "
    "postgresql://postgres@127.0.0.1:5432/test) to run them"
)


def postgres_url() -> str:
    """Return the test server's URL, or skip (fail, when CI requires PostgreSQL)."""
    url = os.environ.get("CATALOG_CORE_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CATALOG_CORE_REQUIRE_POSTGRES") == "1":
        pytest.fail(POSTGRES_HOWTO + " (CATALOG_CORE_REQUIRE_POSTGRES=1 forbids skipping)")
    pytest.skip(POSTGRES_HOWTO)


def fresh_schema() -> str:
    return f"cc_test_{uuid.uuid4().hex[:16]}"


def make_repository(kind: str, path: Path) -> cc.Repository:
    if kind == "memory":
        return cc.MemoryRepository()
    if kind == "sqlite":
        return cc.SQLiteRepository(path / "catalog.db")
    if kind == "postgres":
        return cc.PostgresRepository(postgres_url(), schema=fresh_schema(), max_size=16)
    raise ValueError(kind)


def dispose_repository(repository: cc.Repository) -> None:
    if isinstance(repository, cc.PostgresRepository):
        repository.drop_schema()
    repository.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def repo(backend: str, tmp_path: Path) -> Iterator[cc.Repository]:
    repository = make_repository(backend, tmp_path)
    yield repository
    dispose_repository(repository)


@pytest.fixture
def catalog(repo: cc.Repository, clock: FakeClock) -> cc.Catalog:
    return cc.Catalog(repo, clock=clock)


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """``test_citus.py`` needs a Citus cluster: collected only when one is given."""
    if collection_path.name == "test_citus.py" and not os.environ.get("CATALOG_CORE_CITUS_URL"):
        return True
    return None
