"""The storage that reliability tests hand their worker processes: an SQLite file, or a schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import catalog_core as cc
from tests.conftest import fresh_schema, postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A repository URL or path for other processes; a PostgreSQL schema is dropped afterwards."""
    if request.param == "sqlite":
        yield str(tmp_path / "catalog.db")
        return
    schema = fresh_schema()
    yield f"{postgres_url()}?schema={schema}"
    repository = cc.PostgresRepository(postgres_url(), schema=schema)
    repository.drop_schema()
    repository.close()
