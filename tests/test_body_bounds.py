"""What one body may cost: the warnings a result keeps (R18) and the decode bound (R30, R33).

The memory a real server spends on the costliest bodies is measured in
``tests/reliability/test_body_memory.py``; these tests pin the rules behind it in the library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import catalog_core as cc
from catalog_core import model
from catalog_core.cli import main
from catalog_core.wire import split_multipart
from tests.helpers import JPEG

IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}
MiB = 2**20


def unknown(count: int, start: int = 0) -> dict[str, int]:
    return {f"k{n}": n for n in range(start, start + count)}


def test_r18_r32_a_result_keeps_the_first_100_warnings_and_counts_them_all() -> None:
    """However many unknown keys and unused file parts a request has, its result holds the first
    100 warnings, in the order they arose, and ``warning_count`` counts every one."""
    catalog = cc.Catalog(cc.MemoryRepository())
    result = catalog.upsert("acme", {"externalId": "p", "images": [IMAGE], **unknown(250)})
    assert result.warning_count == 250
    assert [w.path for w in result.warnings] == [f"k{n}" for n in range(100)]

    files = {f"f{n}": cc.Upload(JPEG) for n in range(150)}
    body = {"externalId": "p", "images": [{**IMAGE, "alt": 1}], **unknown(20)}
    result = catalog.upsert("acme", body, files)
    assert result.warning_count == 1 + 20 + 150
    paths = [w.path for w in result.warnings]
    assert paths == [f"k{n}" for n in range(20)] + ["images.0.alt"] + [f"f{n}" for n in range(79)]

    used = catalog.use("acme", {"externalId": "p", "title": "t", **unknown(120)})
    assert (len(used.warnings), used.warning_count) == (100, 120)
    tried = catalog.try_on("acme", {"product": {"externalId": "p", **unknown(300)}})
    assert (len(tried.warnings), tried.warning_count) == (100, 301)
    assert tried.warnings[0].code == "DEPRECATED_PRODUCT_FIELD"
    few = catalog.upsert("acme", {"externalId": "p", **unknown(3)})
    assert (len(few.warnings), few.warning_count) == (3, 3)
    assert cc.UpsertResult(few.product, False).warning_count == 0
    assert model.MAX_WARNINGS == 100


def test_r18_the_import_lists_100_warnings_of_a_line_and_says_how_many_more(
    tmp_path: Path,
) -> None:
    line = json.dumps({"externalId": "p", "images": [IMAGE], **unknown(130)})
    source = tmp_path / "one.jsonl"
    source.write_text(line + "\n", encoding="utf-8")
    runner = CliRunner(env={"CATALOG_CORE_DB": None, "CATALOG_CORE_ACCOUNT": None})
    db = str(tmp_path / "catalog.db")
    plain = runner.invoke(main, ["--db", db, "import", str(source)]).stdout.splitlines()
    assert plain[0] == "created 1, updated 0, rejected 0"
    assert plain[1:101] == [f"line 1: warning: UNKNOWN_FIELD at k{n}" for n in range(100)]
    assert plain[101:] == ["line 1: 30 more warnings not listed"]
    as_json = json.loads(runner.invoke(main, ["--db", db, "import", "--json", str(source)]).stdout)
    assert len(as_json["warnings"]) == 101
    assert as_json["warnings"][-1] == {"line": 1, "more": 30}


def documented_cost(text: bytes) -> int:
    """docs/rules.md: 128 bytes a value or key, 2 a byte of ASCII text, 8 of any other."""
    wide = not text.isascii() or b"\\u" in text
    starts = sum(text.count(c) for c in (b",", b":", b"[", b"{"))
    return 2 * (4 if wide else 1) * len(text) + 128 * (starts + 1)


def largest(limits: cc.Limits, head: bytes, item: bytes) -> tuple[bytes, bytes]:
    """``head + [item,…]}`` at the decode bound of ``limits``, and with one item more."""

    def body(count: int) -> bytes:
        return head + b"[" + (item + b",") * (count - 1) + item + b"]}"

    step = documented_cost(body(2)) - documented_cost(body(1))
    count = 1 + (limits.max_decoded_bytes - documented_cost(body(1))) // step
    return body(count), body(count + 1)


@pytest.mark.parametrize(
    "limits",
    [cc.Limits(), cc.Limits(max_file_bytes=1024, max_request_bytes=64 * MiB)],
    ids=["default", "64 MiB"],
)
@pytest.mark.parametrize(
    ("name", "item"),
    [("values", b"{}"), ("keys", b'{"a":0}'), ("wide strings", '"é"'.encode())],
)
def test_r30_r33_a_body_that_parsing_could_blow_up_is_refused_at_body_before_it_is_parsed(
    limits: cc.Limits, name: str, item: bytes
) -> None:
    """The bound of docs/rules.md follows the request limit (twice it, plus 16 MiB); a body at it
    is parsed, one value more is VALIDATION_FAILED at ``body`` (``data`` for a multipart part),
    as a body that is not a JSON object is (R30), from bytes and from ``str`` alike."""
    assert limits.max_decoded_bytes == 2 * limits.max_request_bytes + 16 * MiB
    head = b'{"externalId": "p", "images": [{"source": {"url": "https://a.example/"}}], "junk": '
    at, over = largest(limits, head, item)
    assert len(over) <= limits.max_request_bytes
    catalog = cc.Catalog(cc.MemoryRepository(), limits=limits)
    for payload in (at, at.decode()):
        assert catalog.upsert("acme", payload).warning_count == 1
    for payload, path in ((over, "body"), (over.decode(), "body")):
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.upsert("acme", payload)
        within = f"within {limits.max_decoded_bytes} bytes of memory"
        assert [d.path for d in caught.value.details] == [path]
        assert within in caught.value.details[0].message
    with pytest.raises(cc.ValidationFailed) as caught:
        split_multipart({"data": over}, limits)
    assert [d.path for d in caught.value.details] == ["data"]


def test_r33_small_request_limits_take_every_body_they_let_through() -> None:
    """16 MiB of the bound do not depend on the request limit: with a limit of a few KiB, no
    body within it is refused for what parsing it could take."""
    limits = cc.Limits(max_file_bytes=1024, max_request_bytes=3072)
    catalog = cc.Catalog(cc.MemoryRepository(), limits=limits)
    body: dict[str, Any] = {"externalId": "p", "images": [IMAGE], "junk": [{}] * 900}
    text = json.dumps(body, separators=(",", ":")).encode()
    assert len(text) <= 3072
    assert catalog.upsert("acme", text).warning_count == 1


def test_r30_the_decode_bound_comes_after_the_request_limit_and_before_the_id() -> None:
    """docs/rules.md: a body past the decode bound is the R30 step of a body that is not a JSON
    object, VALIDATION_FAILED at ``body``. A body or a request over the request limit is
    PAYLOAD_TOO_LARGE first; past the bound, neither the id nor the JSON itself is looked at."""
    limits = cc.Limits(max_file_bytes=MiB, max_request_bytes=2 * MiB)  # a bound of 20 MiB
    catalog = cc.Catalog(cc.MemoryRepository(), limits=limits)
    over_bound = b'{"junk": [' + b"{}," * 100_000 + b"{}]}"  # 0.3 MiB, some 25 MiB to parse
    for payload in (over_bound, over_bound[:-1], over_bound.decode()):  # no id; not JSON; a str
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.upsert("acme", payload)
        assert [d.path for d in caught.value.details] == ["body"]
        assert "bytes of memory" in caught.value.details[0].message
    over_request = b'{"junk": [' + b"{}," * (MiB * 2 // 3) + b"{}]}"
    with pytest.raises(cc.PayloadTooLarge):
        catalog.upsert("acme", over_request)
    upload = cc.Upload(JPEG + b"\0" * (MiB * 9 // 10 - len(JPEG)))  # within the file limit
    with pytest.raises(cc.PayloadTooLarge):  # the body and its two files are over 2 MiB
        catalog.upsert("acme", over_bound, {"f": upload, "g": upload})
    assert catalog.list("acme").items == ()
