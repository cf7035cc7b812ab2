"""The differential state machine on all three shipped backends, and proof it catches faults.

The CI profile (``CATALOG_CORE_HYPOTHESIS_PROFILE=ci``) runs 50 examples of up to 50 steps per
backend; the dev profile runs 20.
"""

from __future__ import annotations

import ast
import inspect
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

import catalog_core as cc
from catalog_core.repository.base import Change
from catalog_core.testing import state_machine
from catalog_core.testing.clock import FakeClock
from catalog_core.testing.state_machine import (
    KIT_SETTINGS,
    CatalogStateMachine,
    ReferenceCatalog,
    make_catalog_state_machine,
)
from tests.conftest import fresh_schema, postgres_url
from tests.testing.test_contract_catches_faults import DryRunRepository, JoinedKeyRepository

STATE_MACHINE = settings(
    # a tenth of the profile's examples: 20 in dev, 50 in CI, 2,000 in the long form
    max_examples=max(20, settings.default.max_examples // 10),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

# -- the shipped backends -------------------------------------------------------------------------

_DIRECTORIES: dict[int, Path] = {}


def sqlite_repository() -> cc.Repository:
    """A fresh SQLite file in a directory of its own, for one example."""
    directory = Path(tempfile.mkdtemp(prefix="catalog-state-machine-"))
    repository = cc.SQLiteRepository(directory / "catalog.db")
    _DIRECTORIES[id(repository)] = directory
    return repository


def dispose_sqlite(repository: cc.Repository) -> None:
    repository.close()
    shutil.rmtree(_DIRECTORIES.pop(id(repository)), ignore_errors=True)


TestMemoryRepositoryAgreesWithTheReferenceModel = make_catalog_state_machine(
    cc.MemoryRepository
).TestCase
TestMemoryRepositoryAgreesWithTheReferenceModel.settings = STATE_MACHINE

TestSQLiteRepositoryAgreesWithTheReferenceModel = make_catalog_state_machine(
    sqlite_repository, dispose=dispose_sqlite
).TestCase
TestSQLiteRepositoryAgreesWithTheReferenceModel.settings = STATE_MACHINE


def test_the_postgresql_repository_agrees_with_the_reference_model() -> None:
    """The same differential test on PostgreSQL, in a schema of its own emptied before each
    example (cheaper than a schema per example) and dropped at the end."""
    url = postgres_url()
    schema = fresh_schema()
    keeper = cc.PostgresRepository(url, schema=schema, max_size=1)

    def postgres_repository() -> cc.Repository:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {schema}.products, {schema}.blobs")
        return cc.PostgresRepository(url, schema=schema, max_size=2)

    try:
        machine = make_catalog_state_machine(postgres_repository)
        run_state_machine_as_test(machine, settings=STATE_MACHINE)
    finally:
        keeper.drop_schema()
        keeper.close()


# -- faulty backends ------------------------------------------------------------------------------

THE_BEGINNING_OF_TIME = datetime(1, 1, 1, tzinfo=UTC)


class ExpiredListingRepository(cc.MemoryRepository):
    """Lists expired products: its listing ignores ``now`` (breaks R20, R24)."""

    def list_live(
        self, account: str, *, after: str | None, limit: int, now: datetime
    ) -> Sequence[cc.Product]:
        return super().list_live(account, after=after, limit=limit, now=THE_BEGINNING_OF_TIME)


class StaleVersionRepository(cc.MemoryRepository):
    """Stores every update but keeps the old version number (breaks R28)."""

    def write(self, account: str, external_id: str, change: Change) -> cc.Product | None:
        def stale(stored: cc.Product | None) -> cc.Write:
            result = change(stored)
            if stored is None or result.product is None:
                return result
            return cc.Write(attrs.evolve(result.product, version=stored.version), result.blobs)

        return super().write(account, external_id, stale)


class StaleMetadataRepository(cc.MemoryRepository):
    """Loses the metadata of an update: it keeps what was stored before (breaks R6, R9)."""

    def write(self, account: str, external_id: str, change: Change) -> cc.Product | None:
        def stale(stored: cc.Product | None) -> cc.Write:
            result = change(stored)
            if stored is None or result.product is None:
                return result
            kept = attrs.evolve(result.product, metadata=stored.metadata)
            return cc.Write(kept, result.blobs)

        return super().write(account, external_id, stale)


class OrphanKeepingRepository(cc.MemoryRepository):
    """A purge that removes expired products but keeps orphan blobs (breaks R15, R21)."""

    def purge_expired(self, now: datetime) -> int:
        with self._lock:
            orphans, self._orphans = self._orphans, set()
            removed = super().purge_expired(now)
            self._orphans |= orphans
        return removed


#: Generation only (no shrinking), nothing saved. A run stops at its first failure: each fault
#: here is found within a few dozen examples (most often under ten), so the generous bound costs
#: nothing unless the machine stops catching it. The honest backends above pass the same machine.
CATCHING = settings(
    max_examples=500,
    stateful_step_count=50,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize(
    "faulty",
    [
        ExpiredListingRepository,
        StaleVersionRepository,
        StaleMetadataRepository,
        OrphanKeepingRepository,
        JoinedKeyRepository,
    ],
)
def test_the_state_machine_catches_a_faulty_backend(faulty: type[cc.Repository]) -> None:
    """R20, R24 (expired products listed), R28 (versions lost), R6/R9 (an update lost), R21
    (orphan blobs kept), R1 (keys joined as ``account + "/" + id``, listed by prefix): each backend
    fault makes the machine fail."""
    machine = make_catalog_state_machine(faulty)
    with pytest.raises(AssertionError, match="disagrees with the reference model"):
        run_state_machine_as_test(machine, settings=CATCHING)


# -- what a failure shows -------------------------------------------------------------------------

#: The kit's profile as an embedder runs it, shrinking included; nothing saved, and derandomized, so
#: that every run shrinks the same failure. How long that takes is measured (docs/testing.md), not
#: asserted here.
REPORTING = settings(KIT_SETTINGS, database=None, derandomize=True)
#: A step of the program hypothesis reports: ``state.rule(...)`` or ``name, ... = state.rule(...)``.
_STEP = re.compile(r"^(?:\w+(?:, \w+)* = )?state\.(\w+)\(")
_NOT_STEPS = {"teardown", CatalogStateMachine.agrees_on_every_product_listing_and_blob.__name__}


def reported_program(machine: type[CatalogStateMachine]) -> list[str]:
    """Run ``machine`` with :data:`REPORTING` and return the failing program hypothesis reports."""
    printed: list[object] = []
    with (
        with_reporter(printed.append),
        pytest.raises(AssertionError, match="disagrees with the reference model") as failure,
    ):
        run_state_machine_as_test(machine, settings=REPORTING)
    # Hypothesis 6.170 attaches the program to the exception as notes; a version that prints it
    # instead does so through the reporter.
    notes = [str(note) for note in getattr(failure.value, "__notes__", [])]
    reported = notes if any("state = " in note for note in notes) else [str(p) for p in printed]
    return "\n".join(reported).splitlines()


@pytest.mark.parametrize(
    "faulty",
    [
        ExpiredListingRepository,
        StaleVersionRepository,
        StaleMetadataRepository,
        OrphanKeepingRepository,
    ],
)
def test_a_faulty_backend_is_reported_as_a_short_program_of_plain_accounts_and_ids(
    faulty: type[cc.Repository],
) -> None:
    """R20, R24 (expired products listed), R28 (versions lost), R6/R9 (an update lost), R15/R21
    (orphan blobs kept): with the kit's profile, shrinking included, each fault is reported as a
    program of at most ten steps, the two that set up included, whose accounts and ids are plain
    ASCII (``a``, ``b``; ``p0``) and whose values print as ASCII: the kit draws plain ones first,
    and hypothesis shrinks to them. R1 and R2 allow any Unicode and separators, which the machine
    still draws (in one example of four, and one of two)."""
    program = reported_program(make_catalog_state_machine(faulty))
    shown = "\n".join(program)
    steps = [
        found.group(1)
        for line in program
        if (found := _STEP.match(line)) and found.group(1) not in _NOT_STEPS
    ]
    assert "choose_accounts_and_ids" in steps, shown
    assert len(steps) <= 10, shown
    keys = next(line for line in program if "choose_accounts_and_ids(keys=" in line)
    accounts, ids = ast.literal_eval(keys.split("keys=", 1)[1].removesuffix(")"))
    assert all(key.isascii() and key.isalnum() for key in [*accounts, *ids]), keys
    assert shown.isascii(), shown


def test_the_kits_profile_bounds_the_steps_and_sets_no_deadline() -> None:
    """The profile docs/testing.md documents: bounded steps, no deadline, no tracing phase."""
    assert KIT_SETTINGS.stateful_step_count == 30
    assert KIT_SETTINGS.max_examples == 300
    assert KIT_SETTINGS.deadline is None
    assert Phase.shrink in KIT_SETTINGS.phases
    assert Phase.explain not in KIT_SETTINGS.phases


def test_r26_the_state_machine_passes_a_correct_backend_that_calls_each_change_twice() -> None:
    """R26, R27: ``Repository.write`` lets a backend call a change more than once; the machine
    agrees with a backend that runs every change as a dry run first and stores the second result."""
    machine = make_catalog_state_machine(DryRunRepository)
    # 20 examples in dev and CI, 200 in the long form: the contract runs this backend in full.
    examples = max(20, settings.default.max_examples // 100)
    run_state_machine_as_test(machine, settings=settings(STATE_MACHINE, max_examples=examples))


# -- the machine itself ---------------------------------------------------------------------------


def test_the_reference_model_shares_no_code_with_the_library() -> None:
    """The model is written from the rule book: the state machine module imports none of the
    library's rules, wire, catalog or repository modules, and the model's class touches the
    library only for the ``Upload`` values it is handed."""
    tree = ast.parse(inspect.getsource(state_machine))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    forbidden = ("catalog_core.rules", "catalog_core.wire", "catalog_core.catalog")
    assert not [name for name in imported if name and name.startswith(forbidden)]
    assert not [name for name in imported if name and "repository" in name]
    model_source = inspect.getsource(ReferenceCatalog)
    assert set(re.findall(r"\bcc\.\w+", model_source)) == {"cc.Upload"}


def test_make_catalog_state_machine_returns_a_subclass_with_a_test_case() -> None:
    machine = make_catalog_state_machine(cc.MemoryRepository)
    assert issubclass(machine, CatalogStateMachine)
    assert machine.__name__ == "CatalogStateMachineOnMemoryRepository"
    assert hasattr(machine.TestCase, "runTest")


def test_the_dispose_callback_receives_every_repository_it_was_given() -> None:
    made: list[cc.Repository] = []
    disposed: list[cc.Repository] = []

    def factory() -> cc.Repository:
        made.append(cc.MemoryRepository())
        return made[-1]

    machine = make_catalog_state_machine(factory, dispose=disposed.append)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=3, stateful_step_count=5, database=None, phases=[Phase.generate]
        ),
    )
    assert made
    assert disposed == made


def test_r19_r20_the_model_expires_at_max_of_updated_and_used_plus_days() -> None:
    """R19, R20: the model's own arithmetic on a hand-made history."""
    day = 86_400_000
    model = ReferenceCatalog(max_request_bytes=1000)
    image = {"images": [{"source": {"url": "https://cdn.example/a.jpg"}}]}
    created = model.use("acme", {"externalId": "a", **image}, {}, now=0)
    assert created[1]["product"]["validForDays"] == 15  # R22b
    assert created[1]["product"]["expiresAt"] == "1970-01-16T00:00:00.000Z"
    assert model.use("acme", {"externalId": "a"}, {}, now=day)[1]["version"] == 2  # R22a
    assert model.get("acme", "a", now=16 * day - 1)[0] == "ok"
    assert model.get("acme", "a", now=16 * day) == ("error", "PRODUCT_NOT_FOUND", 404)
    assert model.purge(now=16 * day) == 1


@pytest.mark.parametrize("second_write", ["upsert", "reference use"])
def test_r11_r22_a_write_after_the_clock_steps_back_keeps_the_history_in_order(
    second_write: str,
) -> None:
    """R11, R22 and the decision for a clock that steps back (docs/rules.md): the write is stamped
    no earlier than the product's own timestamps, in the library and in the model alike."""
    start = datetime(2001, 1, 1, tzinfo=UTC)
    clock = FakeClock(start)
    catalog = cc.Catalog(cc.MemoryRepository(), clock=clock)
    model = ReferenceCatalog(max_request_bytes=catalog.limits.max_request_bytes)
    payload = {"externalId": "x", "images": [{"source": {"url": "https://cdn.example/a.jpg"}}]}
    catalog.upsert("acme", payload)
    model.upsert("acme", payload, {}, now=state_machine.epoch_ms(start))

    clock.advance(milliseconds=-1)  # an NTP step back
    now = state_machine.epoch_ms(clock.now)
    if second_write == "upsert":
        product = catalog.upsert("acme", {"externalId": "x"}).product
        expected = model.upsert("acme", {"externalId": "x"}, {}, now=now)
    else:
        product = catalog.use("acme", {"externalId": "x"}).product
        expected = model.use("acme", {"externalId": "x"}, {}, now=now)

    assert cc.to_wire(product) == expected[1]["product"]
    assert product.updated_at >= start
    assert (product.last_used_at or start) >= start
