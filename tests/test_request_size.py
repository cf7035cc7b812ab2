"""R33's request limit: one comparison, made once at each entry point, before anything is parsed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import catalog_core as cc
import catalog_core.catalog
import catalog_core.wire.decode
from catalog_core import ImageInput, UpsertCommand, UseCommand
from catalog_core.wire.decode import split_multipart
from tests.helpers import JPEG

BODY = b'{"externalId": "p1", "images": [{"source": {"fileKey": "f"}}]}'
ITEM = {"externalId": "p1", "images": [{"source": {"fileKey": "f"}}]}
FILES = {"f": cc.Upload(JPEG)}

ENTRIES: dict[str, Callable[[cc.Catalog], Any]] = {
    "upsert bytes": lambda c: c.upsert("acme", BODY, FILES),
    "upsert str": lambda c: c.upsert("acme", BODY.decode(), FILES),
    "upsert mapping": lambda c: c.upsert("acme", ITEM, FILES),
    "use": lambda c: c.use("acme", BODY, FILES),
    "try_on": lambda c: c.try_on("acme", {"products": [ITEM]}, FILES),
    "apply_upsert": lambda c: c.apply_upsert(
        "acme", UpsertCommand(external_id="p1", images=(ImageInput(file_key="f"),)), files=FILES
    ),
    "apply_use": lambda c: c.apply_use(
        "acme", UseCommand(external_id="p1", images=(ImageInput(file_key="f"),)), files=FILES
    ),
    "upsert_many": lambda c: list(c.upsert_many("acme", [BODY])),
    "split_multipart": lambda c: split_multipart({"data": BODY, "f": JPEG}, c.limits),
}


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size each call of the one check is asked about."""
    seen: list[int] = []
    real = catalog_core.wire.decode.check_request_size

    def counted(size: int, limits: cc.Limits) -> None:
        seen.append(size)
        real(size, limits)

    monkeypatch.setattr(catalog_core.wire.decode, "check_request_size", counted)
    monkeypatch.setattr(catalog_core.catalog, "check_request_size", counted)
    return seen


#: What each entry counts: the raw body with the files; a mapping or a command only its files.
SIZES = {
    "upsert bytes": len(BODY) + len(JPEG),
    "upsert str": len(BODY) + len(JPEG),
    "upsert mapping": len(JPEG),
    "use": len(BODY) + len(JPEG),
    "try_on": len(JPEG),
    "apply_upsert": len(JPEG),
    "apply_use": len(JPEG),
    "upsert_many": len(BODY),
    "split_multipart": len(BODY) + len(JPEG),
}


@pytest.mark.parametrize("name", ENTRIES)
def test_r33_each_entry_point_checks_the_request_size_once(name: str, checks: list[int]) -> None:
    entry = ENTRIES[name]
    entry(cc.Catalog(cc.MemoryRepository()))
    assert checks == [SIZES[name]]


RAW = ["upsert bytes", "upsert str", "use", "split_multipart"]


@pytest.mark.parametrize("entry", [ENTRIES[n] for n in RAW], ids=RAW)
def test_r33_r30_the_body_and_the_files_together_are_over_the_limit_before_anything_is_read(
    entry: Callable[[cc.Catalog], Any],
) -> None:
    """Each fits alone; together they do not (a mapping or a command counts only its files)."""
    tight = cc.Limits(max_file_bytes=len(JPEG), max_request_bytes=len(JPEG) + 8)
    catalog = cc.Catalog(cc.MemoryRepository(), limits=tight)
    with pytest.raises(cc.PayloadTooLarge):
        entry(catalog)
    assert catalog.list("acme").items == ()
