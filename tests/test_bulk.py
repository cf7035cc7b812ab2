"""``Catalog.upsert_many``: each payload its own upsert (R4-R18, R26, R30), batched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import catalog_core as cc
from tests.helpers import FakeClock


def body(external_id: str, **fields: Any) -> bytes:
    payload = {"externalId": external_id, **fields}
    return json.dumps(payload).encode()


def image(name: str) -> dict[str, Any]:
    return {"source": {"url": f"https://cdn.example/{name}.jpg"}}


PAYLOADS: list[Any] = [
    body("a", title="A", images=[image("a")]),
    b"{not json",
    body("b", images=[image("b1"), image("b2")], validForDays=30),
    body("a", title="A2"),  # same id in the same batch: sees the create
    {"externalId": "c", "images": [image("c")], "bogus": 1},  # a mapping, with a warning
    body("_anon_x", images=[image("x")]),  # reserved prefix
    body("d", title="no images yet"),  # a create without images
    body("b", validForDays=None),
    "   ",
    body("a", images=[image("a3")], metadata={"k": [1, 2]}),
]


class WithoutBatches:
    """A third-party repository: the protocol's six methods, and no ``write_many``."""

    def __init__(self) -> None:
        self._inner = cc.MemoryRepository()
        self.get = self._inner.get
        self.write = self._inner.write
        self.list_live = self._inner.list_live
        self.purge_expired = self._inner.purge_expired
        self.get_blob = self._inner.get_blob
        self.close = self._inner.close


def outcome(result: cc.UpsertResult | cc.CatalogError) -> tuple[Any, ...]:
    if isinstance(result, cc.CatalogError):
        return ("error", result.code, result.message, result.details)
    return ("ok", result.created, cc.to_wire(result.product), result.warnings)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 500])
def test_r4_r26_r30_upsert_many_answers_each_payload_as_upsert_one_by_one_would(
    catalog: cc.Catalog, batch_size: int
) -> None:
    """R4-R18, R26, R30: same results, same errors, same stored state, in payload order."""
    reference = cc.Catalog(cc.MemoryRepository(), clock=FakeClock())
    expected = []
    for payload in PAYLOADS:
        try:
            expected.append(outcome(reference.upsert("acme", payload)))
        except cc.CatalogError as exc:
            expected.append(outcome(exc))
    got = [outcome(r) for r in catalog.upsert_many("acme", PAYLOADS, batch_size=batch_size)]
    assert got == expected
    assert [g[1] for g in got if g[0] == "error"] == [
        "VALIDATION_FAILED",
        "RESERVED_EXTERNAL_ID",
        "PRODUCT_IMAGES_REQUIRED",
        "VALIDATION_FAILED",
    ]
    assert cc.page_to_wire(catalog.list("acme")) == cc.page_to_wire(reference.list("acme"))
    a = catalog.get("acme", "a")
    assert (a.version, a.title, a.metadata) == (3, "A2", {"k": [1, 2]})


def test_r26_upsert_many_on_a_repository_without_write_many_writes_one_by_one() -> None:
    """R26: the optional BatchRepository method is optional; the answers are the same."""
    repository = WithoutBatches()
    assert isinstance(repository, cc.Repository)
    assert not isinstance(repository, cc.BatchRepository)
    batched = cc.Catalog(cc.MemoryRepository(), clock=FakeClock())
    plain = cc.Catalog(repository, clock=FakeClock())
    assert [outcome(r) for r in plain.upsert_many("acme", PAYLOADS, batch_size=4)] == [
        outcome(r) for r in batched.upsert_many("acme", PAYLOADS, batch_size=4)
    ]


def test_r1_upsert_many_writes_only_its_account(catalog: cc.Catalog) -> None:
    """R1: the same ids in another account are neither seen nor changed."""
    catalog.upsert("other", body("a", title="theirs", images=[image("o")]))
    results = list(catalog.upsert_many("acme", [body("a", images=[image("a")])]))
    assert isinstance(results[0], cc.UpsertResult)
    assert results[0].created
    assert catalog.get("other", "a").title == "theirs"
    assert catalog.get("other", "a").version == 1


def test_r30_a_bad_account_or_batch_size_is_refused_before_anything_is_read(
    catalog: cc.Catalog,
) -> None:
    """R30: ValidationFailed at once, the payloads untouched, nothing written."""
    read = []

    def payloads() -> Iterator[bytes]:
        read.append(1)
        yield body("a", images=[image("a")])

    for account, size, path in [("", 10, "account"), ("acme", 0, "batchSize")]:
        for bad_size in (size, True, 2.5) if path == "batchSize" else (size,):
            with pytest.raises(cc.ValidationFailed) as caught:
                catalog.upsert_many(account, payloads(), batch_size=bad_size)  # type: ignore[arg-type]
            assert caught.value.details[0].path == path
    for bad_bytes in (0, -1, True, 2.5, "1"):
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.upsert_many("acme", payloads(), batch_bytes=bad_bytes)  # type: ignore[arg-type]
        assert caught.value.details[0].path == "batchBytes"
    assert read == []
    assert catalog.list("acme").items == ()


def test_r26_payloads_are_read_a_batch_at_a_time_and_each_result_follows_its_commit(
    catalog: cc.Catalog,
) -> None:
    """R26: lazily: the first result comes after the first batch, not after the whole input."""
    read: list[int] = []

    def payloads() -> Iterator[bytes]:
        for n in range(10):
            read.append(n)
            yield body(f"p{n}", images=[image(str(n))])

    results = catalog.upsert_many("acme", payloads(), batch_size=3)
    assert read == []
    first = next(results)
    assert isinstance(first, cc.UpsertResult)
    assert read == [0, 1, 2]
    assert [p.external_id for p in catalog.list("acme").items] == ["p0", "p1", "p2"]
    assert len(list(results)) == 9
    assert len(catalog.list("acme").items) == 10


@pytest.mark.parametrize("kind", [bytes, str])
def test_r26_a_batch_holds_at_most_batch_bytes_of_payloads_however_few_they_are(
    catalog: cc.Catalog, kind: type
) -> None:
    """R26: large payloads close a batch before ``batch_size``, so memory does not grow with them.

    A payload larger than ``batch_bytes`` is a batch of its own; small ones still go 500 at a time.
    """
    read: list[int] = []
    padding = "x" * 100_000

    def payloads() -> Iterator[bytes | str]:
        for n in range(10):
            read.append(n)
            data = body(f"p{n}", images=[image(str(n))], padding=padding)
            yield data if kind is bytes else data.decode()

    results = catalog.upsert_many("acme", payloads(), batch_bytes=250_000)
    first = next(results)
    assert isinstance(first, cc.UpsertResult)
    assert first.warnings[0].path == "padding"
    assert read == [0, 1, 2]  # the third payload takes the batch past 250,000 bytes
    assert len(list(results)) == 9
    assert len(catalog.list("acme").items) == 10

    read.clear()
    alone = catalog.upsert_many("acme", payloads(), batch_bytes=1)
    next(alone)
    assert read == [0]  # each payload over the bound is a batch of its own
