"""Export, import of exports, and copy: a catalog moves whole, through the real command.

``catalog-core export`` writes export records that ``catalog-core import`` restores exactly, and
``catalog-core copy`` moves every account from one store to another. What must hold: every live
product comes back with the same wire form (R31), version (R28) and uploaded bytes (R15); a bad
record is refused with a ``CatalogError`` and changes nothing (R26, R29); a copy run twice leaves
what one run leaves.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core import transfer
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG, PNG, WEBP, FakeClock

SCRIPT = Path(sys.executable).parent / "catalog-core"
URL = "https://cdn.example/a.jpg"


def run(
    *args: str, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_CORE_")}
    return subprocess.run(
        [str(SCRIPT), *args], input=stdin, capture_output=True, env=env, check=check, timeout=600
    )


def image(n: int, head: bytes = JPEG) -> bytes:
    return head + n.to_bytes(4, "big")


def everything(
    repository: cc.Repository,
) -> dict[tuple[str, str], tuple[Any, int, dict[str, bytes]]]:
    """Every live product: its wire form, version and uploaded bytes, by key."""
    assert isinstance(repository, cc.ScanRepository)
    now = cc.Catalog(repository).now()
    found: dict[tuple[str, str], tuple[Any, int, dict[str, bytes]]] = {}
    after: tuple[str, str] | None = None
    while page := repository.scan_live(account=None, after=after, limit=1000, now=now):
        for product in page:
            uploads = {}
            for sha in product.blob_refs:
                blob = repository.get_blob(product.account, sha)
                assert blob is not None
                uploads[sha] = blob.data
            found[product.account, product.external_id] = (
                cc.to_wire(product),
                product.version,
                uploads,
            )
        after = (page[-1].account, page[-1].external_id)
    return found


def fill(catalog: cc.Catalog, clock: FakeClock, account: str, count: int) -> None:
    """Products of every kind the rules make: uploads (shared too), metadata, classifications,
    lifetimes, uses, one-shot products, updates (versions past 1), and expired ones."""
    payloads = []
    for n in range(count):
        body: dict[str, Any] = {
            "externalId": f"p{n:06d}-é",
            "title": f"Product {n}" if n % 3 else None,
            "images": [{"source": {"url": f"{URL}?n={n}"}, "classifications": {"n": n}}],
        }
        if n % 5 == 0:
            body["metadata"] = {"n": n, "tags": ["a", "ü", "😀"], "price": {"amount": n / 4}}
        if n % 7 == 0:
            body["validForDays"] = 30
        payloads.append(body)
    for result in catalog.upsert_many(account, payloads):
        assert isinstance(result, cc.UpsertResult)
    clock.advance(seconds=1.5)
    for n in range(0, count, 97):  # uploads: a few distinct bytes, shared by many products
        files = {"f": cc.Upload(image(n % 5)), "g": cc.Upload(image(n % 3, PNG))}
        body = {
            "externalId": f"p{n:06d}-é",
            "images": [
                {"source": {"fileKey": "f"}},
                {"source": {"url": URL}},
                {"source": {"fileKey": "g"}},
            ],
        }
        catalog.upsert(account, body, files=files)
    for n in range(0, count, 11):
        catalog.use(account, {"externalId": f"p{n:06d}-é"})
    catalog.use(account, {"images": [{"source": {"url": URL}}]})  # a one-shot product
    # Expired by the time of the export (the clock is three days behind): not moved.
    catalog.upsert(
        account, {"externalId": "gone", "images": [{"source": {"url": URL}}], "validForDays": 1}
    )


def behind() -> FakeClock:
    """A clock three days behind the wall clock, which export and copy read: what ``fill``
    writes with it is live then, but for its products of one day."""
    return FakeClock(datetime.now(UTC) - timedelta(days=3))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.db"
    clock = behind()
    catalog = cc.Catalog(cc.SQLiteRepository(path), clock=clock)
    for account in ("acme", "globex"):
        fill(catalog, clock, account, 300)
    catalog.repository.close()
    return path


# -- export, then import --------------------------------------------------------------------


def test_r31_r28_r15_an_export_imported_elsewhere_gives_back_every_product_exactly(
    source: Path, tmp_path: Path
) -> None:
    """R31, R28, R15: wire form, version and uploaded bytes, one-shot products included."""
    target = tmp_path / "target.db"
    for account in ("acme", "globex"):
        exported = run("--db", str(source), "export", "--account", account).stdout
        lines = exported.splitlines()
        assert all(json.loads(line)["catalogCoreExport"] == 1 for line in lines)
        summary = run("--db", str(target), "import", "--account", account, "-", stdin=exported)
        assert summary.stdout.decode() == f"created {len(lines)}, updated 0, rejected 0\n"
    before = everything(cc.SQLiteRepository(source))
    after = everything(cc.SQLiteRepository(target))
    assert after == before
    assert len(before) == 2 * 301  # 300 each, and a one-shot product each; the expired left out
    assert any(key[1].startswith("_anon_") for key in before)
    assert sum(bool(uploads) for _, _, uploads in before.values()) == 2 * 4
    assert {version for _, version, _ in before.values()} >= {1, 2, 3}


def test_r28_importing_an_export_twice_restores_it_over_itself_and_changes_nothing(
    source: Path, tmp_path: Path
) -> None:
    """Restoring is idempotent: the second import 'updates' every product to what it was."""
    target = tmp_path / "target.db"
    exported = run(
        "--db", str(source), "export", "--account", "acme", "-o", str(tmp_path / "acme.jsonl")
    )
    assert exported.stdout == b""
    run("--db", str(target), "import", "--account", "acme", str(tmp_path / "acme.jsonl"))
    first = everything(cc.SQLiteRepository(target))
    again = run("--db", str(target), "import", "--account", "acme", str(tmp_path / "acme.jsonl"))
    assert again.stdout.decode() == "created 0, updated 301, rejected 0\n"
    assert everything(cc.SQLiteRepository(target)) == first


def test_r1_an_export_is_restored_under_the_account_it_is_imported_into(tmp_path: Path) -> None:
    """R1: a record holds no account; import puts it where ``--account`` says."""
    db = tmp_path / "c.db"
    catalog = cc.Catalog(cc.SQLiteRepository(db))
    catalog.upsert("acme", {"externalId": "x", "images": [{"source": {"url": URL}}]})
    exported = run("--db", str(db), "export", "--account", "acme").stdout
    assert b"acme" not in exported
    run("--db", str(db), "import", "--account", "initech", "-", stdin=exported)
    copy = catalog.get("initech", "x")
    assert cc.to_wire(copy) == cc.to_wire(catalog.get("acme", "x"))
    assert run("--db", str(db), "export", "--account", "nobody").stdout == b""


def test_r18_a_payload_that_only_mentions_the_marker_is_an_ordinary_upsert(tmp_path: Path) -> None:
    """Only a record's own top-level marker makes it a record; a title may hold the word."""
    db = tmp_path / "c.db"
    line = {"externalId": "x", "title": '"catalogCoreExport"', "images": [{"source": {"url": URL}}]}
    result = run("--db", str(db), "import", "-", stdin=json.dumps(line).encode())
    assert result.stdout.decode() == "created 1, updated 0, rejected 0\n"
    nested = {"externalId": "y", "metadata": {"catalogCoreExport": 1}, "images": line["images"]}
    result = run("--db", str(db), "import", "-", stdin=json.dumps(nested).encode())
    assert result.stdout.decode() == "created 1, updated 0, rejected 0\n"


def test_r30_without_restore_a_record_is_an_upsert_payload_and_is_refused_as_one() -> None:
    """``upsert_many`` restores only when asked: a record has no top-level ``externalId``."""
    catalog = cc.Catalog(cc.MemoryRepository())
    catalog.upsert("acme", {"externalId": "x", "images": [{"source": {"url": URL}}]})
    record = next(transfer.export_records(catalog.repository, "acme", now=catalog.now()))
    (refused,) = catalog.upsert_many("other", [record])
    assert isinstance(refused, cc.ExternalIdRequired)
    (restored,) = catalog.upsert_many("other", [json.dumps(record)], restore=True)
    assert isinstance(restored, cc.UpsertResult)
    assert restored.created
    assert restored.product == attrs.evolve(catalog.get("acme", "x"), account="other")


# -- bad records ------------------------------------------------------------------------------


def _record() -> dict[str, Any]:
    return json.loads(_record_text())


@functools.cache
def _record_text() -> str:
    catalog = cc.Catalog(cc.MemoryRepository(), clock=behind())
    files = {"f": cc.Upload(JPEG)}
    body = {
        "externalId": "x",
        "title": "T",
        "validForDays": 30,
        "images": [
            {"source": {"fileKey": "f"}},
            {"source": {"url": URL}, "classifications": {"a": 1}},
        ],
    }
    catalog.upsert("acme", body, files=files)
    catalog.use("acme", {"externalId": "x"})
    return json.dumps(next(transfer.export_records(catalog.repository, "acme", now=catalog.now())))


SHA = hashlib.sha256(JPEG).hexdigest()


def _with(change: Any) -> dict[str, Any]:
    record = _record()
    change(record)
    return record


BAD_RECORDS = {
    "format": (lambda r: r.update(catalogCoreExport=2), "VALIDATION_FAILED", "catalogCoreExport"),
    "unknown key": (lambda r: r.update(extra=1), "VALIDATION_FAILED", "extra"),
    "no version": (lambda r: r.pop("version"), "VALIDATION_FAILED", "version"),
    "version 0": (lambda r: r.update(version=0), "VALIDATION_FAILED", "version"),
    "version true": (lambda r: r.update(version=True), "VALIDATION_FAILED", "version"),
    "huge version": (lambda r: r.update(version=2**63), "VALIDATION_FAILED", "version"),
    "no product": (lambda r: r.pop("product"), "VALIDATION_FAILED", "product"),
    "uploads list": (lambda r: r.update(uploads=[]), "VALIDATION_FAILED", "uploads"),
    "bad id": (
        lambda r: r["product"].update(externalId="a\x00"),
        "VALIDATION_FAILED",
        "product.externalId",
    ),
    "long title": (
        lambda r: r["product"].update(title="t" * 1001),
        "VALIDATION_FAILED",
        "product.title",
    ),
    "ftp url": (
        lambda r: r["product"]["images"][1].update(sourceUrl="ftp://x/y"),
        "VALIDATION_FAILED",
        "product.images.1.source.url",
    ),
    "bad order": (
        lambda r: r["product"]["images"][1].update(order=5),
        "VALIDATION_FAILED",
        "product.images.1.order",
    ),
    "no images": (lambda r: r["product"].update(images=[]), "VALIDATION_FAILED", "product.images"),
    "bad stamp": (
        lambda r: r["product"].update(createdAt="2026-01-01"),
        "VALIDATION_FAILED",
        "product.createdAt",
    ),
    "created late": (
        lambda r: r["product"].update(createdAt="2999-01-01T00:00:00.000Z"),
        "VALIDATION_FAILED",
        "product.createdAt",
    ),
    "expiry": (
        lambda r: r["product"].update(expiresAt="2999-01-01T00:00:00.000Z"),
        "VALIDATION_FAILED",
        "product.expiresAt",
    ),
    "days 400": (
        lambda r: r["product"].update(validForDays=400),
        "VALIDATION_FAILED",
        "product.validForDays",
    ),
    "missing upload": (lambda r: r.pop("uploads"), "VALIDATION_FAILED", f"uploads.{SHA}"),
    "stray upload": (
        lambda r: r["uploads"].update({"0" * 64: "AAAA"}),
        "VALIDATION_FAILED",
        f"uploads.{'0' * 64}",
    ),
    "not base64": (
        lambda r: r["uploads"].update({SHA: "***"}),
        "VALIDATION_FAILED",
        f"uploads.{SHA}",
    ),
    "other bytes": (
        lambda r: r["uploads"].update({SHA: base64.b64encode(PNG).decode()}),
        "VALIDATION_FAILED",
        f"uploads.{SHA}",
    ),
    "not an image": (
        lambda r: r["uploads"].update({SHA: base64.b64encode(b"x" * 40).decode()}),
        "INVALID_IMAGE",
        None,
    ),
    "future": (
        lambda r: r["product"].update(createdAt="9999-12-31T00:00:00.000Z"),
        "VALIDATION_FAILED",
        "product.createdAt",
    ),
    "far future": (
        lambda r: r["product"].update(
            createdAt="9999-12-31T00:00:00.000Z",
            updatedAt="9999-12-31T00:00:00.000Z",
            lastUsedAt=None,
            expiresAt="9999-12-31T00:00:00.000Z",
        ),
        "VALIDATION_FAILED",
        "product.updatedAt",
    ),
    "used before made": (
        lambda r: r["product"].update(lastUsedAt="2000-01-01T00:00:00.000Z"),
        "VALIDATION_FAILED",
        "product.lastUsedAt",
    ),
    "expired since": (
        lambda r: r["product"].update(
            createdAt="2020-01-01T00:00:00.000Z",
            updatedAt="2020-01-01T00:00:00.000Z",
            lastUsedAt=None,
            validForDays=1,
            expiresAt="2020-01-02T00:00:00.000Z",
        ),
        "VALIDATION_FAILED",
        "product.expiresAt",
    ),
    "version past 2**53": (
        lambda r: r.update(version=2**53),
        "VALIDATION_FAILED",
        "version",
    ),
    "marker true": (lambda r: r.update(catalogCoreExport=True), "VALIDATION_FAILED", None),
    "marker 1.0": (lambda r: r.update(catalogCoreExport=1.0), "VALIDATION_FAILED", None),
    "odd one-shot id": (
        lambda r: r["product"].update(externalId="_anon_Hello World!"),
        "VALIDATION_FAILED",
        "product.externalId",
    ),
    "endless one-shot": (
        lambda r: r["product"].update(
            externalId="_anon_" + "a" * 24, validForDays=None, expiresAt=None
        ),
        "VALIDATION_FAILED",
        "product.validForDays",
    ),
    "many uploads": (
        lambda r: r["uploads"].update({f"{n:064x}": "AAAA" for n in range(50)}),
        "VALIDATION_FAILED",
        "uploads",
    ),
    "upper sha": (
        lambda r: r["product"]["images"][0].update(sourceUrl="upload://" + SHA.upper()),
        "VALIDATION_FAILED",
        None,
    ),
}


@pytest.mark.parametrize("name", BAD_RECORDS)
def test_r29_r26_a_bad_record_is_refused_with_its_code_and_changes_nothing(name: str) -> None:
    """R29, R26: every malformed record is a CatalogError naming the field; nothing stored."""
    change, code, path = BAD_RECORDS[name]
    catalog = cc.Catalog(cc.MemoryRepository())
    (outcome,) = catalog.upsert_many("acme", [json.dumps(_with(change))], restore=True)
    assert isinstance(outcome, cc.CatalogError), outcome
    assert outcome.code == code, outcome.to_wire()
    if path is not None:
        assert path in {d.path for d in outcome.details}, outcome.to_wire()
    assert catalog.repository.get("acme", "x") is None


def test_r16_an_empty_classifications_object_is_restored_as_none() -> None:
    record = _record()
    record["product"]["images"][1]["classifications"] = {}
    catalog = cc.Catalog(cc.MemoryRepository())
    (restored,) = catalog.upsert_many("acme", [record], restore=True)
    assert isinstance(restored, cc.UpsertResult)
    assert restored.product.images[1].classifications is None
    assert "classifications" not in cc.to_wire(restored.product)["images"][1]


def test_r28_the_highest_version_a_record_restores_leaves_room_for_writes(tmp_path: Path) -> None:
    """A record may hold up to 2**53 - 1; the writes after it fit what the stores hold."""
    record = _record()
    record["version"] = transfer.MAX_RESTORED_VERSION
    catalog = cc.Catalog(cc.SQLiteRepository(tmp_path / "c.db"))
    (restored,) = catalog.upsert_many("acme", [record], restore=True)
    assert isinstance(restored, cc.UpsertResult)
    after = catalog.upsert("acme", {"externalId": "x", "title": "again"}).product
    assert after.version == 2**53


def test_r14_r33_uploads_over_the_request_limit_in_all_are_refused() -> None:
    """A product's uploads came in one request: together they fit the request limit."""
    roomy = cc.Limits(max_request_bytes=2**17, max_file_bytes=2**15)
    catalog = cc.Catalog(cc.MemoryRepository(), clock=behind(), limits=roomy)
    files = {k: cc.Upload(image(n) + bytes(30_000)) for n, k in enumerate("abc")}
    body = {"externalId": "x", "images": [{"source": {"fileKey": k}} for k in "abc"]}
    catalog.upsert("acme", body, files=files)  # 90 kB of uploads in a request of 128 KiB
    (record,) = transfer.export_records(catalog.repository, "acme", now=catalog.now())
    same = cc.Catalog(cc.MemoryRepository(), limits=roomy)
    assert isinstance(next(same.upsert_many("acme", [record], restore=True)), cc.UpsertResult)
    tight = cc.Limits(max_request_bytes=2**16, max_file_bytes=2**15)
    smaller = cc.Catalog(cc.MemoryRepository(), limits=tight)
    (refused,) = smaller.upsert_many("acme", [record], restore=True)
    assert isinstance(refused, cc.ValidationFailed), refused
    assert [d.path for d in refused.details] == ["uploads"]
    assert smaller.repository.get("acme", "x") is None


@pytest.mark.parametrize(
    "payload",
    [
        bytearray(b'{"catalogCoreExport": 2}'),
        memoryview(b'{"catalogCoreExport": 2}'),
        7,
        None,
        {1: 2},
    ],
    ids=["bytearray", "memoryview", "int", "none", "int key"],
)
def test_r29_a_payload_of_any_type_is_refused_with_a_catalog_error_when_restoring(
    payload: Any,
) -> None:
    catalog = cc.Catalog(cc.MemoryRepository())
    (outcome,) = catalog.upsert_many("acme", [payload], restore=True)
    assert isinstance(outcome, cc.CatalogError), outcome


def test_export_and_copy_refuse_bad_arguments_before_reading() -> None:
    repository = cc.MemoryRepository()
    now = cc.Catalog(repository).now()
    for size in (0, -1, 2.5, True):
        with pytest.raises(cc.ValidationFailed):
            transfer.copy(repository, cc.MemoryRepository(), now=now, batch_size=size)  # type: ignore[arg-type]
        with pytest.raises(cc.ValidationFailed):
            transfer.export_records(repository, "acme", now=now, page_size=size)  # type: ignore[arg-type]
    with pytest.raises(cc.ValidationFailed):
        transfer.export_records(repository, None, now=now)  # type: ignore[arg-type]


@pytest.mark.parametrize("walk", ["export", "copy"])
def test_r15_r21_a_product_rewritten_and_purged_during_the_walk_is_moved_as_it_is_now(
    walk: str,
) -> None:
    """The page is read before the blobs: a writer replaces a product's upload and a purge
    removes the old blob in between. The product is read again and moved in its new state."""
    clock = behind()
    catalog = cc.Catalog(cc.MemoryRepository(), clock=clock)
    for n in range(3):
        body = {"externalId": f"p{n}", "images": [{"source": {"fileKey": "f"}}]}
        catalog.upsert("acme", body, files={"f": cc.Upload(image(n))})
    now = catalog.now()
    target = cc.MemoryRepository()
    if walk == "export":
        steps: Iterator[Any] = transfer.export_records(catalog.repository, "acme", now=now)
    else:
        steps = transfer.copy(catalog.repository, target, now=now, batch_size=100, batch_bytes=1)
    next(steps)  # the page of three is read, and p0 moved
    body = {"externalId": "p2", "images": [{"source": {"fileKey": "f"}}]}
    catalog.upsert("acme", body, files={"f": cc.Upload(image(99))})
    assert catalog.purge_expired() == 0  # removes p2's old blob, an orphan now
    rest = list(steps)
    if walk == "export":
        new = hashlib.sha256(image(99)).hexdigest()
        assert [r["product"]["externalId"] for r in rest] == ["p1", "p2"]
        assert list(rest[1]["uploads"]) == [new]
        assert rest[1]["version"] == 2
    else:
        assert everything(target) == everything(catalog.repository)


def test_an_export_that_fails_leaves_no_partial_file(tmp_path: Path) -> None:
    """The records go to a file beside --output, which takes its name once they are all there."""
    out = tmp_path / "out.jsonl"
    failed = run("--db", str(tmp_path / "nope.db"), "export", "-o", str(out), check=False)
    assert failed.returncode == 1
    assert list(tmp_path.iterdir()) == []
    db = tmp_path / "c.db"
    cc.Catalog(cc.SQLiteRepository(db)).upsert(
        "default", {"externalId": "x", "images": [{"source": {"url": URL}}]}
    )
    run("--db", str(db), "export", "-o", str(out))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("c.db")) == [
        "out.jsonl"
    ]
    assert json.loads(out.read_text())["product"]["externalId"] == "x"


def test_r33_a_record_over_twice_the_request_limit_is_refused_unparsed() -> None:
    """R33: a record may be twice the request limit (its uploads in base64), not more."""
    limits = cc.Limits(max_request_bytes=2**20, max_file_bytes=2**19)
    catalog = cc.Catalog(cc.MemoryRepository(), limits=limits)
    record = _record()
    record["product"]["description"] = "d" * (2 * 2**20)
    (outcome,) = catalog.upsert_many("acme", [json.dumps(record)], restore=True)
    assert isinstance(outcome, cc.PayloadTooLarge)


@given(
    path=st.lists(
        st.sampled_from(
            [
                "product",
                "images",
                0,
                1,
                "uploads",
                "version",
                "order",
                "sourceUrl",
                "title",
                "expiresAt",
            ]
        ),
        min_size=1,
        max_size=4,
    ),
    value=st.one_of(
        st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.just({}), st.just([])
    ),
)
def test_r29_any_record_is_restored_or_refused_with_a_catalog_error(
    path: list[Any], value: Any
) -> None:
    """R29: whatever a record holds, the outcome is a product or a CatalogError, never a crash."""
    record: Any = _record()
    node = record
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            break
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        return
    catalog = cc.Catalog(cc.MemoryRepository())
    (outcome,) = catalog.upsert_many("acme", [json.dumps(record)], restore=True)
    assert isinstance(outcome, cc.UpsertResult | cc.CatalogError)


# -- copy ---------------------------------------------------------------------------------------


def test_copy_moves_every_account_and_running_it_again_changes_nothing(
    source: Path, tmp_path: Path
) -> None:
    """Every live product of every account, exactly; a second run leaves the same."""
    target = tmp_path / "target.db"
    first = run("copy", "--from", str(source), "--to", str(target), "--batch-size", "64")
    assert json.loads(first.stdout) == {"copied": 602}
    expected = everything(cc.SQLiteRepository(source))
    assert everything(cc.SQLiteRepository(target)) == expected
    run("copy", "--from", str(source), "--to", str(target))
    assert everything(cc.SQLiteRepository(target)) == expected


def test_copy_finishes_an_interrupted_copy_exactly(source: Path, tmp_path: Path) -> None:
    """A copy stopped after its first batch is finished, exactly, by running it again."""
    target = tmp_path / "target.db"
    origin, into = cc.SQLiteRepository(source), cc.SQLiteRepository(target)
    steps = transfer.copy(origin, into, now=cc.Catalog(origin).now(), batch_size=50)
    assert next(steps).products == 50
    steps.close()  # interrupted
    origin.close()
    into.close()
    assert len(everything(cc.SQLiteRepository(target))) == 50
    assert json.loads(run("copy", "--from", str(source), "--to", str(target)).stdout) == {
        "copied": 602
    }
    assert everything(cc.SQLiteRepository(target)) == everything(cc.SQLiteRepository(source))


def test_r28_copy_over_other_states_never_reuses_a_version_and_keeps_the_targets_own(
    source: Path, tmp_path: Path
) -> None:
    """R28: over a live product of other content, the copy takes the next version when the
    source's is not higher, so an old ETag never names the copied state; products only the
    target holds stay."""
    target = tmp_path / "target.db"
    repo = cc.SQLiteRepository(target)
    clock = behind()
    mine = cc.Catalog(repo, clock=clock)
    fill(mine, clock, "acme", 40)  # the same ids, other versions and times
    mine.upsert("initech", {"externalId": "own", "images": [{"source": {"url": URL}}]})
    before = everything(repo)
    repo.close()
    run("copy", "--from", str(source), "--to", str(target))
    copied = everything(cc.SQLiteRepository(target))
    expected = everything(cc.SQLiteRepository(source))
    assert copied.pop(("initech", "own")) == before[("initech", "own")]
    (one_shot,) = set(copied) - set(expected)  # the target's own one-shot product, kept too
    assert copied.pop(one_shot) == before[one_shot]
    assert set(copied) == set(expected)
    for key, (wire, version, uploads) in copied.items():
        assert (wire, uploads) == (expected[key][0], expected[key][2])
        if key in before and before[key][0] != wire:
            assert version == max(expected[key][1], before[key][1] + 1), key
        else:
            assert version == expected[key][1], key
    assert any(version != expected[key][1] for key, (_, version, _) in copied.items())


def test_copy_refuses_to_copy_a_catalog_onto_itself_or_from_nowhere(
    tmp_path: Path, source: Path
) -> None:
    same = run(
        "copy", "--from", str(source), "--to", f"{source.parent}/./{source.name}", check=False
    )
    assert same.returncode == 2
    assert b"--from and --to name the same catalog" in same.stderr
    missing = run(
        "copy", "--from", str(tmp_path / "nope.db"), "--to", str(tmp_path / "t.db"), check=False
    )
    assert missing.returncode == 1
    assert b"no catalog at" in missing.stderr
    assert not (tmp_path / "t.db").exists()


def test_copy_draws_a_progress_bar_on_a_terminal(source: Path, tmp_path: Path) -> None:
    """On a terminal, stderr shows the bar counting products up to the total."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_CORE_")}
    process = subprocess.run(
        [str(SCRIPT), "copy", "--from", str(source), "--to", str(tmp_path / "t.db")],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
        check=True,
        timeout=120,
    )
    os.close(follower)
    drawn = b""
    try:
        while chunk := os.read(leader, 65536):
            drawn += chunk
    except OSError:
        pass
    os.close(leader)
    assert json.loads(process.stdout) == {"copied": 602}
    assert b"Copying" in drawn
    assert b"602/602" in drawn


def test_copy_from_sqlite_to_postgres_of_100000_products_is_exact(tmp_path: Path) -> None:
    """SQLite to PostgreSQL, 100,000 products of three accounts, some with uploads: exact."""
    path = tmp_path / "big.db"
    clock = behind()
    catalog = cc.Catalog(cc.SQLiteRepository(path), clock=clock)
    fill(catalog, clock, "acme", 60_000)
    fill(catalog, clock, "globex", 30_000)
    fill(catalog, clock, "initech", 9_997)
    catalog.repository.close()
    schema = fresh_schema()
    url = f"{postgres_url()}?schema={schema}"
    try:
        result = run("copy", "--from", str(path), "--to", url)
        assert json.loads(result.stdout) == {"copied": 100_000}
        target = cc.PostgresRepository(postgres_url(), schema=schema)
        try:
            expected = everything(cc.SQLiteRepository(path))
            assert len(expected) == 100_000
            assert sum(bool(u) for _, _, u in expected.values()) > 1000
            assert everything(target) == expected
        finally:
            target.close()
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_copy_refuses_a_repository_that_cannot_walk_its_products() -> None:
    class Plain:
        pass

    with pytest.raises(TypeError, match="cannot walk its products"):
        list(
            transfer.copy(
                Plain(), cc.MemoryRepository(), now=cc.Catalog(cc.MemoryRepository()).now()
            )
        )  # type: ignore[arg-type]


def test_copy_writes_a_batch_once_its_blobs_reach_the_byte_bound() -> None:
    """Memory holds one batch: a batch ends when its blobs reach ``batch_bytes``."""
    source = cc.MemoryRepository()
    catalog = cc.Catalog(source)
    for n in range(10):
        files = {"f": cc.Upload(image(n, WEBP) + b"\x00" * 1000)}
        catalog.upsert(
            "acme", {"externalId": f"p{n}", "images": [{"source": {"fileKey": "f"}}]}, files=files
        )
    target = cc.MemoryRepository()
    steps = list(transfer.copy(source, target, now=catalog.now(), batch_size=500, batch_bytes=3000))
    assert [s.products for s in steps] == [3, 3, 3, 1]
    size = len(image(0, WEBP)) + 1000
    assert [s.blob_bytes for s in steps] == [3 * size, 3 * size, 3 * size, size]
    assert everything(target) == everything(source)


# -- records longer than a request ------------------------------------------------------------


def test_r33_only_a_line_that_starts_as_a_record_may_be_longer_than_the_request_limit() -> None:
    """The reader holds a record line up to its own limit; any other line stays at the request
    limit and is read past unheld; a record over its limit is read past too."""
    import io

    from catalog_core.cli import _lines

    record = b'{"catalogCoreExport":1,"x":"' + b"r" * 20 + b'"}\n'  # 50 bytes
    plain = b'{"externalId":"' + b"p" * 33 + b'"}\n'  # 50 bytes
    huge = b' {"catalogCoreExport":1,"x":"' + b"h" * 100 + b'"}\r\n'
    data = record + plain + huge + b'{"a":1}\n'
    got = list(_lines(io.BufferedReader(io.BytesIO(data), buffer_size=4), 16, 64))
    assert got == [
        (1, record, len(record)),
        (2, len(plain) - 1, len(plain)),
        (3, len(huge) - 2, len(huge)),
        (4, b'{"a":1}\n', 8),
    ]
    assert list(_lines(io.BytesIO(record), 16)) == [(1, len(record) - 1, len(record))]
    # Just over the request limit, whole at the first read: still a record within its limit.
    short = b'{"catalogCoreExport":1}\n'  # 23 bytes and the newline
    assert list(_lines(io.BytesIO(short), 22, 64)) == [(1, short, len(short))]
    (over,) = _lines(io.BytesIO(huge), 16, 64)
    assert type(over[1]).__name__ == "_OverlongRecord"  # refused against the record limit


def test_r15_r33_a_product_whose_uploads_fill_a_request_goes_through_export_and_import(
    tmp_path: Path,
) -> None:
    """Three uploads of almost 10 MiB came in one request; in base64 their record is larger
    than a request, and import still restores it."""
    db = tmp_path / "c.db"
    catalog = cc.Catalog(cc.SQLiteRepository(db))
    size = 10 * 2**20 - 64
    files = {k: cc.Upload(image(n) + bytes([n]) * (size - 8)) for n, k in enumerate("abc")}
    body = {"externalId": "big", "images": [{"source": {"fileKey": k}} for k in "abc"]}
    catalog.upsert("acme", body, files=files)
    exported = tmp_path / "big.jsonl"
    run("--db", str(db), "export", "--account", "acme", "-o", str(exported))
    assert exported.stat().st_size > cc.Limits().max_request_bytes
    target = tmp_path / "t.db"
    result = run("--db", str(target), "import", "--account", "acme", str(exported))
    assert result.stdout.decode() == "created 1, updated 0, rejected 0\n"
    assert everything(cc.SQLiteRepository(target)) == everything(catalog.repository)


def test_r26_a_bad_record_between_good_lines_is_reported_and_the_others_imported(
    tmp_path: Path,
) -> None:
    """A record of any content is one line's refusal: the lines around it are imported."""
    good = json.dumps({"externalId": "y", "images": [{"source": {"url": URL}}]})
    far = _record()
    far["product"].update(updatedAt="9999-12-31T00:00:00.000Z")
    lines = f"{good}\n{json.dumps(far)}\n{_record_text()}\n".encode()
    result = run("--db", str(tmp_path / "c.db"), "import", "-", stdin=lines)
    out = result.stdout.decode().splitlines()
    assert out[0] == "created 2, updated 0, rejected 1"
    assert out[1].startswith("line 2: VALIDATION_FAILED:")
    assert "product.updatedAt" in out[1]
