"""The try-on flow's differential state machine on every backend that stores the try-on state,
and proof that it catches faults.

A backend runs the machine once it implements ``TryOnRepository``: the in-memory one does, and
SQLite and PostgreSQL join here as soon as they do, without a change to this file. The CI profile
runs 50 examples of up to 50 steps on memory and 25 on SQLite and PostgreSQL, whose every step
costs queries; the dev profile 20 on each.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

import catalog_core as cc
from catalog_core.repository.base import TryOnChange, TryOnKeys, TryOnRepository, TryOnWrite
from catalog_core.testing import tryon_state_machine
from catalog_core.testing.tryon_state_machine import (
    ReferenceTryOn,
    TryOnStateMachine,
    make_tryon_state_machine,
)
from tests.conftest import BACKENDS, fresh_schema, postgres_url
from tests.testing.test_state_machine import dispose_sqlite, sqlite_repository

TRYON_MACHINE = settings(
    # a tenth of the profile's examples: 20 in dev, 50 in CI, 2,000 in the long form
    max_examples=max(20, settings.default.max_examples // 10),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
#: The SQL backends run half as many: 20 in dev, 25 in CI, 1,000 in the long form.
TRYON_MACHINE_SQL = settings(
    TRYON_MACHINE, max_examples=max(20, settings.default.max_examples // 20)
)

# -- the shipped backends -------------------------------------------------------------------------

BACKEND_CLASSES: dict[str, type[Any]] = {
    "memory": cc.MemoryRepository,
    "sqlite": cc.SQLiteRepository,
    "postgres": cc.PostgresRepository,
}
#: The shipped backends that store the try-on state (T23): the machine runs on each of them.
TRYON_BACKENDS = [kind for kind in BACKENDS if issubclass(BACKEND_CLASSES[kind], TryOnRepository)]


def backend_factory(
    kind: str,
) -> tuple[Callable[[], cc.Repository], Callable[[cc.Repository], None] | None]:
    """A fresh, empty repository of ``kind`` per example, and how to dispose of it."""
    if kind == "memory":
        return cc.MemoryRepository, None
    if kind == "sqlite":
        return sqlite_repository, dispose_sqlite
    url = postgres_url()

    def postgres_repository() -> cc.Repository:
        return cc.PostgresRepository(url, schema=fresh_schema(), max_size=2)

    def dispose_postgres(repository: cc.Repository) -> None:
        assert isinstance(repository, cc.PostgresRepository)
        repository.drop_schema()
        repository.close()

    return postgres_repository, dispose_postgres


@pytest.mark.parametrize("backend", TRYON_BACKENDS)
def test_t23_the_try_on_flow_agrees_with_the_reference_model(backend: str) -> None:
    """T1-T23: every backend that stores the try-on state gives the model's answers."""
    factory, dispose = backend_factory(backend)
    machine = make_tryon_state_machine(factory, dispose=dispose)
    chosen = TRYON_MACHINE if backend == "memory" else TRYON_MACHINE_SQL
    run_state_machine_as_test(machine, settings=chosen)


def test_the_in_memory_backend_stores_the_try_on_state_so_the_machine_runs_somewhere() -> None:
    assert "memory" in TRYON_BACKENDS


# -- faulty backends ------------------------------------------------------------------------------


class _ChangedWrites(cc.MemoryRepository):
    """A MemoryRepository that alters what every try-on write stores (see :meth:`altered`)."""

    def altered(self, write: TryOnWrite) -> TryOnWrite:
        raise NotImplementedError

    def write_tryon(self, account: str, keys: TryOnKeys, change: TryOnChange) -> TryOnWrite:
        return super().write_tryon(account, keys, lambda state: self.altered(change(state)))


class RefundForgettingRepository(_ChangedWrites):
    """Stores a balance without the refunds due to it: failed generations keep the credit (T16)."""

    def altered(self, write: TryOnWrite) -> TryOnWrite:
        if write.credits is None:
            return write
        return attrs.evolve(write, credits=attrs.evolve(write.credits, refunds=()))


class OneTickLateRepository(_ChangedWrites):
    """Stores a generation's status changes one millisecond late, as a column rounding up
    would: each status lasts a tick too long (T12, T14)."""

    def altered(self, write: TryOnWrite) -> TryOnWrite:
        tick = timedelta(milliseconds=1)
        late = tuple(
            attrs.evolve(
                generation,
                processing_at=generation.processing_at + tick,
                finished_at=None
                if generation.finished_at is None
                else generation.finished_at + tick,
            )
            for generation in write.generations
        )
        return attrs.evolve(write, generations=late)


class EveryAccountErasingRepository(cc.MemoryRepository):
    """Erases a customer id in every account, as a query that forgot the account would (T19)."""

    def erase_customer(self, account: str, customer_id: str) -> int:
        accounts = {account}
        for table in self._tables.values():
            accounts.update(table)
        return sum(
            super(EveryAccountErasingRepository, self).erase_customer(a, customer_id)
            for a in sorted(accounts)
        )


#: Generation only (no shrinking), nothing saved; a run stops at its first failure. Each fault is
#: found within a few dozen examples; the honest backend passes the same machine above.
CATCHING = settings(
    max_examples=1000,
    stateful_step_count=50,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize(
    "faulty",
    [RefundForgettingRepository, OneTickLateRepository, EveryAccountErasingRepository],
)
def test_the_try_on_machine_catches_a_faulty_backend(faulty: type[cc.Repository]) -> None:
    """T16 (no refund for a failed generation), T12/T14 (a status a tick late), T19 (an
    erasure in every account): each fault makes the machine fail."""
    machine = make_tryon_state_machine(faulty)
    with pytest.raises(AssertionError, match="disagrees with the reference model"):
        run_state_machine_as_test(machine, settings=CATCHING)


# -- the machine itself ---------------------------------------------------------------------------


def test_the_try_on_model_shares_no_code_with_the_library() -> None:
    """The model is written from the rule book: the module imports none of the try-on flow's
    rules, values, engines, use cases or wire, nor the catalog or a backend; it uses the library
    only as the thing under test (``TryOn``, ``LocalEngine``) and the model touches ``cc`` only
    for the ``Upload`` values it is handed."""
    tree = ast.parse(inspect.getsource(tryon_state_machine))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    library = {name for name in imported if name and name.startswith("catalog_core")}
    assert library <= {
        "catalog_core",
        "catalog_core.tryon",
        "catalog_core.testing._book",
        "catalog_core.testing._pieces",
        "catalog_core.testing.state_machine",
        "catalog_core.testing.strategies",
    }
    tryon_names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "catalog_core.tryon"
        for alias in node.names
    }
    assert tryon_names == {"LocalEngine", "TryOn"}
    model_source = inspect.getsource(ReferenceTryOn)
    assert set(re.findall(r"\bcc\.\w+", model_source)) == {"cc.Upload"}
    assert "TryOn" not in model_source.replace("ReferenceTryOn", "")


def test_make_tryon_state_machine_returns_a_subclass_with_a_test_case() -> None:
    machine = make_tryon_state_machine(cc.MemoryRepository)
    assert issubclass(machine, TryOnStateMachine)
    assert machine.__name__ == "TryOnStateMachineOnMemoryRepository"
    assert hasattr(machine.TestCase, "runTest")


DAY = 86_400_000
URL = "https://cdn.example/a.jpg"
PERSON = {"person": {"image": {"source": {"url": "https://cdn.example/me.jpg"}}}}


def test_t14_t16_the_model_schedules_a_failing_generation_and_refunds_it_at_its_end() -> None:
    """T12, T14, T16: the model's own arithmetic on a hand-made history: PENDING for a quarter,
    PROCESSING to the end, then FAILED (an image under .invalid) and the credit back."""
    model = ReferenceTryOn(max_request_bytes=10_000, initial_credits=1, generation_ms=2000)
    item = {"externalId": "a", "images": [{"source": {"url": "https://x.invalid/a.jpg"}}]}
    started = model.start("acme", {"products": [item], **PERSON}, {}, now=0, generation_id="gen_1")
    assert started[0] == "ok"
    assert model.balance("acme", 1999) == 0
    assert [
        model.get_generation("acme", "gen_1", now=t)[1]["status"] for t in (0, 499, 500, 1999, 2000)
    ] == [
        "PENDING",
        "PENDING",
        "PROCESSING",
        "PROCESSING",
        "FAILED",
    ]
    assert model.balance("acme", 2000) == 1
    assert model.start("acme", {"products": [{"externalId": "a"}], **PERSON}, {}, now=1000) == (
        "error",
        "INSUFFICIENT_CREDITS",
        402,
    )
    assert model.get_generation("other", "gen_1", now=0) == ("error", "GENERATION_NOT_FOUND", 404)
    assert model.get_generation("acme", "gen_1", now=7 * DAY)[0] == "error"  # T22: 7 days kept
    assert model.purge_all(now=7 * DAY) == (0, 0, 1)


def test_t14_the_model_completes_a_mock_product_at_once_and_serves_the_person_back() -> None:
    model = ReferenceTryOn(max_request_bytes=10_000)
    item = {"title": "mock", "images": [{"source": {"url": URL}}]}
    body = {"products": [item], **PERSON, "externalUserId": "c"}
    model.start("acme", body, {}, now=0, generation_id="gen_1", one_shot_id="_anon_" + "a" * 24)
    assert model.get_generation("acme", "gen_1", now=0)[1]["result"] == (
        "url",
        "https://cdn.example/me.jpg",
    )
    assert model.erase_customer("acme", "c") == 1  # T18: the generation stays, stripped
    assert model.get_generation("acme", "gen_1", now=0)[1]["result"] is None
    assert model.erase_customer("acme", "c") == 0
