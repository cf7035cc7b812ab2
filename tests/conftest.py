"""Shared fixtures: a controllable clock, and every backend under the same behavioural tests.

Hypothesis profiles are chosen by ``CATALOG_CORE_HYPOTHESIS_PROFILE`` (``dev`` by default, ``ci``
in CI). Expensive property tests scale their example count from ``settings.default.max_examples``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import catalog_core as cc
from tests.helpers import FakeClock

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=2000,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("CATALOG_CORE_HYPOTHESIS_PROFILE", "dev"))

BACKENDS = ["memory", "sqlite"]


def make_repository(kind: str, path: Path) -> cc.Repository:
    if kind == "memory":
        return cc.MemoryRepository()
    if kind == "sqlite":
        return cc.SQLiteRepository(path / "catalog.db")
    raise ValueError(kind)


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
    repository.close()


@pytest.fixture
def catalog(repo: cc.Repository, clock: FakeClock) -> cc.Catalog:
    return cc.Catalog(repo, clock=clock)
