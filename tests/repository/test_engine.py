"""The shared write algorithm: its plan, and a second kind of record stored by every backend.

The plan is pure and tested alone. The second kind (``Note``, a made-up record with an optional
blob) is stored by each shipped backend through the same load and apply steps its products use,
with no code of its own but its description and its table: what adding a kind takes.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import attrs
import pytest

import catalog_core as cc
from catalog_core.repository import sqlite as sqlite_backend
from catalog_core.repository._engine import (
    Plan,
    RecordKind,
    plan_one,
    plan_writes,
    write_batch,
    write_one,
)
from catalog_core.repository._rows import SqlTable
from tests.conftest import BACKENDS, dispose_repository, make_repository

# -- a second kind of record ------------------------------------------------------------------


@attrs.frozen
class Note:
    account: str
    note_id: str
    text: str
    blob: str | None = None


@attrs.frozen
class NoteWrite:
    note: Note | None
    blobs: tuple[cc.Blob, ...] = ()


NOTES: RecordKind[Note, NoteWrite] = RecordKind(
    name="note",
    id_name="note id",
    key=lambda note: (note.account, note.note_id),
    blob_refs=lambda note: frozenset([note.blob] if note.blob else []),
    record_of=lambda write: write.note,
    blobs_of=lambda write: write.blobs,
)
NOTE_ROWS: SqlTable[Note] = SqlTable(
    name="notes",
    id_column="note_id",
    columns=("text", "blob"),
    fixed=(),
    encode=lambda note: (note.account, note.note_id, note.text, note.blob),
    decode=lambda row: Note(row[0], row[1], row[2], row[3]),
    refs_column="blob",
    refs_of=lambda blob: [blob] if blob else [],
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOTES_DDL = (
    "CREATE TABLE {s}notes (account text NOT NULL, note_id text NOT NULL, text text NOT NULL, "
    "blob text, PRIMARY KEY (account, note_id))"
)

Load = Callable[[str, list[str]], Mapping[str, Any]]
Apply = Callable[[str, Plan[Any]], object]


class NoteStore(Protocol):
    """Runs ``work`` with a backend's load and apply steps for notes, in one transaction."""

    def __call__(self, work: Callable[[Load, Apply], Any]) -> Any: ...


def blob(data: bytes) -> cc.Blob:
    return cc.Blob(hashlib.sha256(data).hexdigest(), data, "image/png")


def put(note: Note | None, *blobs: cc.Blob) -> Callable[[Note | None], NoteWrite]:
    return lambda _: NoteWrite(note, blobs)


@pytest.fixture(params=BACKENDS)
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[cc.Repository]:
    repository = make_repository(request.param, tmp_path)
    yield repository
    dispose_repository(repository)


@pytest.fixture
def notes(repository: cc.Repository) -> NoteStore:
    """The backend's own load and apply for the notes kind, the table made as DDL would make it."""
    if isinstance(repository, cc.MemoryRepository):

        def in_memory(work: Callable[[Load, Apply], Any]) -> Any:
            with repository._lock:
                return work(*repository._session(NOTES))

        return in_memory
    if isinstance(repository, cc.SQLiteRepository):
        with repository._transaction() as conn:
            conn.execute(NOTES_DDL.format(s=""))

        def in_sqlite(work: Callable[[Load, Apply], Any]) -> Any:
            with repository._transaction() as conn:
                return work(*sqlite_backend._session(conn, NOTES, NOTE_ROWS))

        return in_sqlite
    if isinstance(repository, cc.PostgresRepository):
        postgres = repository
        postgres._read(lambda conn: conn.execute(NOTES_DDL.format(s=f"{postgres._quoted}.")))

        def in_postgres(work: Callable[[Load, Apply], Any]) -> Any:
            return postgres._in_transaction(
                lambda conn: work(*postgres._session(conn, NOTES, NOTE_ROWS))
            )

        return in_postgres
    raise TypeError(repository)


def write_note(notes: NoteStore, note_id: str, change: Callable[[Note | None], NoteWrite]) -> Any:
    return notes(lambda load, apply: write_one(NOTES, "acme", note_id, change, load, apply))


def write_notes(
    notes: NoteStore, changes: Sequence[tuple[str, Callable[[Note | None], NoteWrite]]]
) -> Any:
    return notes(lambda load, apply: write_batch(NOTES, "acme", changes, load, apply))


def stored(notes: NoteStore, *ids: str) -> dict[str, Note]:
    return dict(notes(lambda load, _: load("acme", list(ids))))


def test_a_second_kind_is_written_read_and_deleted_by_every_backend(
    repository: cc.Repository, notes: NoteStore
) -> None:
    image = blob(b"a note's image")
    first = Note("acme", "n1", "hello", image.sha256)
    assert write_note(notes, "n1", put(first, image)) == first
    assert stored(notes, "n1", "n2") == {"n1": first}
    assert repository.get_blob("acme", image.sha256) == image
    assert repository.get("acme", "n1") is None  # another kind: products do not see it
    assert write_note(notes, "n1", put(None)) is None
    assert stored(notes, "n1") == {}


def test_a_second_kinds_batch_sees_its_own_earlier_writes_and_keeps_refusals_as_outcomes(
    notes: NoteStore,
) -> None:
    refusal = cc.ProductNotFound("no such note")

    def refuse(_: Note | None) -> NoteWrite:
        raise refusal

    def append(stored: Note | None) -> NoteWrite:
        assert stored is not None
        return NoteWrite(attrs.evolve(stored, text=stored.text + "!"))

    outcomes = write_notes(
        notes,
        [("n1", put(Note("acme", "n1", "a"))), ("n1", append), ("n2", refuse), ("n1", append)],
    )
    assert outcomes == [
        Note("acme", "n1", "a"),
        Note("acme", "n1", "a!"),
        refusal,
        Note("acme", "n1", "a!!"),
    ]
    assert stored(notes, "n1", "n2") == {"n1": Note("acme", "n1", "a!!")}


def test_a_second_kind_refuses_a_blob_neither_stored_nor_given_and_stores_nothing(
    repository: cc.Repository, notes: NoteStore
) -> None:
    image = blob(b"given")
    with pytest.raises(
        ValueError, match=r"note refers to blob \w+ that was neither stored nor given"
    ):
        write_notes(
            notes,
            [
                ("n1", put(Note("acme", "n1", "fine", image.sha256), image)),
                ("n2", put(Note("acme", "n2", "dangling", "0" * 64))),
            ],
        )
    assert stored(notes, "n1", "n2") == {}
    assert repository.get_blob("acme", image.sha256) is None


def test_a_second_kind_refuses_a_record_moved_to_another_key(notes: NoteStore) -> None:
    with pytest.raises(ValueError, match="a write must keep the note's account and note id"):
        write_note(notes, "n1", put(Note("acme", "n2", "moved")))
    with pytest.raises(ValueError, match="a write must keep the note's account and note id"):
        write_note(notes, "n1", put(Note("other", "n1", "moved")))
    assert stored(notes, "n1", "n2") == {}


def test_a_second_kinds_blob_lives_while_a_record_refers_to_it(
    repository: cc.Repository, notes: NoteStore
) -> None:
    """R21: a blob goes at the purge after the last record that referred to it."""
    image = blob(b"shared")
    write_note(notes, "n1", put(Note("acme", "n1", "gives", image.sha256), image))
    write_note(notes, "n2", put(Note("acme", "n2", "names", image.sha256)))  # stored: not given
    write_note(notes, "n1", put(None))
    repository.purge_expired(NOW)
    assert repository.get_blob("acme", image.sha256) == image
    write_note(notes, "n2", put(Note("acme", "n2", "forgets")))
    repository.purge_expired(NOW)
    assert repository.get_blob("acme", image.sha256) is None


# -- the plan, alone ----------------------------------------------------------------------------


def note_plan(
    changes: Sequence[tuple[str, Callable[[Note | None], NoteWrite]]],
    stored: Mapping[str, Note] | None = None,
    *,
    capture: bool = True,
) -> Plan[Note]:
    return plan_writes(NOTES, "acme", changes, stored or {}, capture=capture)


def test_a_plan_sorts_what_its_writes_leave_into_inserts_updates_and_deletes() -> None:
    before = {"kept": Note("acme", "kept", "k"), "gone": Note("acme", "gone", "g")}
    plan = note_plan(
        [
            ("new", put(Note("acme", "new", "n"))),
            ("kept", put(Note("acme", "kept", "k2"))),
            ("gone", put(None)),
            ("brief", put(Note("acme", "brief", "b"))),
            ("brief", put(None)),  # created and deleted in one batch: nothing to store
        ],
        before,
    )
    assert plan.inserts == [Note("acme", "new", "n")]
    assert plan.updates == [Note("acme", "kept", "k2")]
    assert plan.deletes == ["gone"]
    new, kept, brief = (
        Note("acme", "new", "n"),
        Note("acme", "kept", "k2"),
        Note("acme", "brief", "b"),
    )
    assert plan.outcomes == [new, kept, None, brief, None]


def test_a_plan_nets_blob_references_over_the_batch_and_requires_only_what_it_does_not_give() -> (
    None
):
    given, kept, dropped, named = blob(b"given"), "1" * 64, "2" * 64, "3" * 64
    before = {"a": Note("acme", "a", "a", kept), "b": Note("acme", "b", "b", dropped)}
    plan = note_plan(
        [
            ("a", put(Note("acme", "a", "a2", named))),  # kept: -1 ...
            ("c", put(Note("acme", "c", "c", kept))),  # ... +1: no change
            ("b", put(Note("acme", "b", "b", given.sha256), given, given)),
            ("d", put(Note("acme", "d", "d", given.sha256), given)),
        ],
        before,
    )
    assert plan.deltas == {named: 1, dropped: -1, given.sha256: 2}
    assert plan.blobs == [given]  # once, however often given
    assert plan.required == [named]


def test_a_plan_that_captures_keeps_each_refusal_without_its_traceback_and_defects_whole() -> None:
    refusal, defect = cc.ProductNotFound("no"), KeyError("bug")

    def refuse(_: Note | None) -> NoteWrite:
        raise refusal

    def crash(_: Note | None) -> NoteWrite:
        raise defect

    plan = note_plan([("a", refuse), ("b", crash), ("c", put(Note("acme", "c", "c")))])
    assert plan.outcomes == [refusal, defect, Note("acme", "c", "c")]
    assert refusal.__traceback__ is None
    assert defect.__traceback__ is not None
    assert "crash" in "".join(traceback.format_tb(defect.__traceback__))
    assert list(plan.written) == ["c"]


def test_a_plan_without_capture_lets_the_change_raise() -> None:
    def refuse(_: Note | None) -> NoteWrite:
        raise cc.VersionConflict("stale")

    with pytest.raises(cc.VersionConflict):
        note_plan([("a", refuse)], capture=False)


def test_a_moved_key_is_refused_even_in_a_batch_that_captures() -> None:
    with pytest.raises(ValueError, match="a write must keep the note's account and note id"):
        note_plan([("a", put(Note("acme", "b", "moved")))])


def test_a_single_write_is_planned_as_a_batch_of_one() -> None:
    """plan_one, which every single write runs, plans what plan_writes plans for it."""
    a, b = blob(b"a"), blob(b"b")
    olds = [
        None,
        Note("acme", "n", "plain"),
        Note("acme", "n", "with a", a.sha256),
        Note("acme", "n", "with b", b.sha256),
    ]
    results = [
        NoteWrite(None),
        NoteWrite(Note("acme", "n", "plain")),
        NoteWrite(Note("acme", "n", "with a", a.sha256)),
        NoteWrite(Note("acme", "n", "with a", a.sha256), (a,)),
        NoteWrite(Note("acme", "n", "with b", b.sha256), (b, a, b)),
        NoteWrite(Note("acme", "n", "stored b", b.sha256)),
        NoteWrite(Note("acme", "n", "given", "0" * 64), (b,)),
    ]
    for old in olds:
        stored = {} if old is None else {"n": old}
        for result in results:
            batch = note_plan([("n", lambda _, result=result: result)], stored, capture=False)
            one = plan_one(NOTES, "acme", "n", lambda _, result=result: result, old)
            assert one == batch
            assert list(one.deltas) == list(batch.deltas)
            assert one.required == batch.required

    for moved in (Note("acme", "m", "moved"), Note("other", "n", "moved")):
        with pytest.raises(ValueError, match="a write must keep the note's account and note id"):
            plan_one(NOTES, "acme", "n", put(moved), None)

    def refuse(_: Note | None) -> NoteWrite:
        raise cc.VersionConflict("stale")

    with pytest.raises(cc.VersionConflict):
        plan_one(NOTES, "acme", "n", refuse, olds[1])


def test_r31_json_columns_keep_a_lone_surrogate_written_through_the_repository(
    repository: cc.Repository,
) -> None:
    """R31: what a repository stores it reads back, whatever JSON values it is handed.

    The catalog refuses lone surrogates (R9), so only a direct write reaches this: every backend
    stores metadata and classifications holding one, and reads them back as they were.
    """
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    product = cc.Product(
        account="acme",
        external_id="sku-1",
        title="t",
        description=None,
        metadata={"note\ud800": ["\udfff", 1, "é"]},
        valid_for_days=None,
        expires_at=None,
        last_used_at=None,
        created_at=at,
        updated_at=at,
        images=(cc.Image("https://cdn.example/a.jpg", 0, {"v": "\ud83d"}),),
        version=1,
    )
    repository.write("acme", "sku-1", lambda stored: cc.Write(product))
    assert repository.get("acme", "sku-1") == product


def test_r31_a_high_surrogate_then_a_low_one_reads_back_as_their_pair_on_every_backend(
    repository: cc.Repository,
) -> None:
    """R31's limit, as docs/storage.md states it: JSON text spells two lone surrogates in a row
    (high, then low) as the escapes of the one character they pair into, and every backend keeps
    JSON values as JSON text (the memory backend's copies too): each reads that character back."""
    at = datetime(2026, 1, 2, tzinfo=UTC)
    product = cc.Product(
        account="acme",
        external_id="sku-1",
        metadata={"k": "\ud83d\ude00"},
        created_at=at,
        updated_at=at,
        images=(cc.Image("https://cdn.example/a.jpg", 0),),
    )
    repository.write("acme", "sku-1", lambda stored: cc.Write(product))
    stored = repository.get("acme", "sku-1")
    assert stored is not None
    assert stored.metadata is not None
    assert stored.metadata["k"] == "\U0001f600"
