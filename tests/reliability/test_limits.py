"""Every limit of R33 at, just under and just over its bound, and other hostile input (R29, R33).

At and under the bound the write is accepted whole; one over it gives its documented error and
writes nothing. Then other hostile input: deep nesting, huge numbers, invalid UTF-8, lone
surrogates, control characters. Runs on every backend with the default limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import catalog_core as cc
from tests.helpers import JPEG

LIMITS = cc.Limits()
URL = "https://cdn.example/a.jpg"
IMAGE = {"source": {"url": URL}}


def sized_object(size: int) -> dict[str, str]:
    """A JSON object whose compact UTF-8 form is exactly ``size`` bytes (``{"k":"…"}``)."""
    return {"k": "x" * (size - 8)}


def url_of(length: int) -> str:
    return "https://cdn.example/" + "a" * (length - len("https://cdn.example/"))


# (name, bound, payload of a given size, expected (code, detail path) one over the bound)
BOUNDS: list[tuple[str, int, Callable[[int], dict[str, Any]], tuple[str, str]]] = [
    (
        "externalId length",
        LIMITS.max_external_id_length,
        lambda n: {"externalId": "i" * n, "images": [IMAGE]},
        ("VALIDATION_FAILED", "externalId"),
    ),
    (
        "title length",
        LIMITS.max_title_length,
        lambda n: {"externalId": "p", "title": "é" * n, "images": [IMAGE]},
        ("VALIDATION_FAILED", "title"),
    ),
    (
        "description length",
        LIMITS.max_description_length,
        lambda n: {"externalId": "p", "description": "d" * n, "images": [IMAGE]},
        ("VALIDATION_FAILED", "description"),
    ),
    (
        "images",
        LIMITS.max_images,
        lambda n: {
            "externalId": "p",
            "images": [{"source": {"url": f"{URL}?{i}"}} for i in range(n)],
        },
        ("VALIDATION_FAILED", "images"),
    ),
    (
        "metadata bytes",
        LIMITS.max_metadata_bytes,
        lambda n: {"externalId": "p", "metadata": sized_object(n), "images": [IMAGE]},
        ("VALIDATION_FAILED", "metadata"),
    ),
    (
        "classifications bytes",
        LIMITS.max_classifications_bytes,
        lambda n: {"externalId": "p", "images": [{**IMAGE, "classifications": sized_object(n)}]},
        ("VALIDATION_FAILED", "images.0.classifications"),
    ),
    (
        "URL length",
        LIMITS.max_url_length,
        lambda n: {"externalId": "p", "images": [{"source": {"url": url_of(n)}}]},
        ("VALIDATION_FAILED", "images.0.source.url"),
    ),
]


def error_of(action: Callable[[], object]) -> tuple[str, str | None]:
    with pytest.raises(cc.CatalogError) as caught:
        action()
    details = caught.value.details
    return caught.value.code, details[0].path if details else None


def nothing_written(catalog: cc.Catalog) -> bool:
    return catalog.list("acme").items == ()


@pytest.mark.parametrize(("name", "bound", "make", "over"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_r33_each_limit_takes_its_bound_and_refuses_one_more(
    catalog: cc.Catalog,
    name: str,
    bound: int,
    make: Callable[[int], dict[str, Any]],
    over: tuple[str, str],
) -> None:
    assert error_of(lambda: catalog.upsert("acme", make(bound + 1))) == over
    assert error_of(lambda: catalog.upsert("acme", json.dumps(make(bound + 1)))) == over
    assert nothing_written(catalog)
    for size in (bound - 1, bound):
        payload = make(size)
        stored = catalog.upsert("acme", json.dumps(payload, ensure_ascii=False)).product
        assert catalog.get("acme", stored.external_id) == stored
        assert cc.to_wire(stored)["externalId"] == payload["externalId"]


def test_r33_a_file_of_exactly_the_file_limit_is_stored_and_one_byte_more_is_refused(
    catalog: cc.Catalog,
) -> None:
    payload = {"externalId": "p", "images": [{"source": {"fileKey": "f"}}]}
    at = JPEG + b"\0" * (LIMITS.max_file_bytes - len(JPEG))
    over = at + b"\0"
    code, _ = error_of(lambda: catalog.upsert("acme", payload, files={"f": cc.Upload(over)}))
    assert code == "FILE_TOO_LARGE"
    assert nothing_written(catalog)
    stored = catalog.upsert("acme", payload, files={"f": cc.Upload(at)}).product
    sha = stored.images[0].blob_sha256
    assert sha is not None
    blob = catalog.repository.get_blob("acme", sha)
    assert blob is not None
    assert len(blob.data) == LIMITS.max_file_bytes


def test_r33_a_body_of_exactly_the_request_limit_is_read_and_one_byte_more_is_refused(
    catalog: cc.Catalog,
) -> None:
    """The request limit counts the raw body; an unknown field pads it (and is warned about)."""
    head = json.dumps({"externalId": "p", "images": [IMAGE], "pad": ""}).encode()
    at = head[:-2] + b"x" * (LIMITS.max_request_bytes - len(head)) + head[-2:]
    assert len(at) == LIMITS.max_request_bytes
    over = at[:-2] + b"x" + at[-2:]
    assert error_of(lambda: catalog.upsert("acme", over)) == ("PAYLOAD_TOO_LARGE", None)
    assert nothing_written(catalog)
    result = catalog.upsert("acme", at)
    assert [w.code for w in result.warnings] == ["UNKNOWN_FIELD"]


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"externalId": "p", "metadata": {"k": nested(62)}, "images": [IMAGE]}, None),
        (
            {"externalId": "p", "metadata": {"k": nested(63)}, "images": [IMAGE]},
            ("VALIDATION_FAILED", "metadata"),
        ),
        ({"externalId": "p", "metadata": {"n": 10**300}, "images": [IMAGE]}, None),
        (
            {"externalId": "p", "metadata": {"n": 10**5000}, "images": [IMAGE]},
            ("VALIDATION_FAILED", "metadata"),
        ),
        (
            {"externalId": "p", "metadata": {"n": float("inf")}, "images": [IMAGE]},
            ("VALIDATION_FAILED", "metadata"),
        ),
        ({"externalId": "p", "title": "nul\0 in a title", "images": [IMAGE]}, None),
        ({"externalId": "p\0", "images": [IMAGE]}, ("VALIDATION_FAILED", "externalId")),
        ({"externalId": "p\ud800", "images": [IMAGE]}, ("VALIDATION_FAILED", "externalId")),
        ({"externalId": "p", "title": "\udfff", "images": [IMAGE]}, ("VALIDATION_FAILED", "title")),
        (
            {"externalId": "p", "metadata": {"\ud800": 1}, "images": [IMAGE]},
            ("VALIDATION_FAILED", "metadata"),
        ),
    ],
    ids=[
        "depth 64",
        "depth 65",
        "a 301-digit number",
        "a 5001-digit number",
        "infinity",
        "NUL in a title",
        "NUL in an id",
        "surrogate in an id",
        "surrogate in a title",
        "surrogate in a metadata key",
    ],
)
def test_r29_r33_hostile_values_get_their_documented_answer(
    catalog: cc.Catalog, body: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    """As a mapping; the same answer from the body as JSON text where JSON can carry it."""
    if expected is None:
        stored = catalog.upsert("acme", body).product
        assert catalog.get("acme", "p") == stored
        return
    assert error_of(lambda: catalog.upsert("acme", body)) == expected
    try:
        text = json.dumps(body, ensure_ascii=True)
    except ValueError:  # a number past Python's int-to-text limit: no JSON text can carry it
        return
    if "Infinity" not in text:
        assert error_of(lambda: catalog.upsert("acme", text.encode())) == expected
    assert nothing_written(catalog)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        b'{"externalId": "p\xc3", "images": []}',
        b"\xed\xa0\x80",
        b"",
        b"[]",
        b"nul\0l",
    ],
    ids=["UTF-16 BOM", "a cut UTF-8 sequence", "an encoded surrogate", "empty", "an array", "NUL"],
)
def test_r29_r30_a_body_that_is_not_a_utf8_json_object_is_refused_at_body(
    catalog: cc.Catalog, raw: bytes
) -> None:
    assert error_of(lambda: catalog.upsert("acme", raw)) == ("VALIDATION_FAILED", "body")
    assert nothing_written(catalog)
