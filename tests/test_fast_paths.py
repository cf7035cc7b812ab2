"""The fast paths of the wire layer agree with the general code they shortcut.

Each fast path is kept for a benchmark case (`decode`): the URL check accepts plain URLs through a
regular expression and must never accept one that the full check refuses (R13); the canonical
image entry is read without the branches of the deprecated shapes and must be read as the general
code reads it (R12, R16, R17); the check that metadata and classifications are plain JSON skips a
call for the values JSON parsing makes most and must judge every value as a plain reading would
(R9, R16). The catalog resolves the images of a request without file parts (every JSON body,
so ``sqlite_upsert`` and ``sqlite_bulk``) in one pass, which must give what the general
resolution gives (R12, R14). The encoder has no fast path: ``to_wire`` is the converter's
generated hook, held here to a plain reading of R31; a listing page's body is its items' bytes
joined, which must be the bytes of the page's plain encoding (R24).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core import ImageInput, UpsertCommand
from catalog_core._json import MAX_INT_DIGITS, LongInt
from catalog_core.testing import strategies as cst
from catalog_core.wire import decode
from catalog_core.wire.encode import (
    format_timestamp,
    make_converter,
    page_to_wire,
    page_to_wire_json,
    parse_timestamp,
    to_wire,
    to_wire_json,
)
from tests.server.test_openapi import _URL_PIECES

CONVERTER = make_converter()
SHARING = make_converter(copy_json=False)


def plain_wire(product: cc.Product) -> dict[str, Any]:
    """R31 read plainly: these keys in this order, timestamps as text, ``classifications?``."""

    def stamp(moment: datetime | None) -> str | None:
        return None if moment is None else format_timestamp(moment)

    def image(image: cc.Image) -> dict[str, Any]:
        wire: dict[str, Any] = {"sourceUrl": image.source_url, "order": image.order}
        if image.classifications is not None:
            wire["classifications"] = image.classifications
        return wire

    return {
        "externalId": product.external_id,
        "title": product.title,
        "description": product.description,
        "metadata": product.metadata,
        "validForDays": product.valid_for_days,
        "expiresAt": stamp(product.expires_at),
        "lastUsedAt": stamp(product.last_used_at),
        "createdAt": stamp(product.created_at),
        "updatedAt": stamp(product.updated_at),
        "images": [image(item) for item in product.images],
    }


@given(cst.products())
def test_r31_to_wire_is_a_plain_reading_of_r31(product: cc.Product) -> None:
    expected = plain_wire(product)
    for wire in (to_wire(product), CONVERTER.unstructure(product), SHARING.unstructure(product)):
        assert wire == expected
        assert list(wire) == list(expected)  # key order too
        assert [list(image) for image in wire["images"]] == [
            list(image) for image in expected["images"]
        ]


@given(cst.products())
def test_r31_the_response_bytes_are_the_standard_librarys_compact_json(product: cc.Product) -> None:
    expected = json.dumps(to_wire(product), ensure_ascii=False, separators=(",", ":"))
    assert to_wire_json(product) == expected.encode("utf-8")


@given(
    st.lists(cst.products(), max_size=4),
    st.none() | st.text(max_size=40),
    st.booleans(),
)
def test_r24_r31_a_page_body_is_the_standard_librarys_compact_json_of_the_page(
    products: list[cc.Product], cursor: str | None, more: bool
) -> None:
    """The listing's body is written a product at a time, to the bytes of the plain encoding."""
    page = cc.Page(tuple(products), cursor, more)
    expected = json.dumps(page_to_wire(page), ensure_ascii=False, separators=(",", ":"))
    assert page_to_wire_json(page) == expected.encode("utf-8", "surrogatepass")


@given(
    st.datetimes(timezones=st.just(UTC))
    | st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.timezones()
    )
)
def test_r31_timestamps_are_utc_with_three_fractional_digits(moment: datetime) -> None:
    """R31, four-digit years included (year 999 is 0999, as the wire pattern requires)."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    expected = utc.isoformat(timespec="milliseconds") + "Z"
    assert format_timestamp(moment) == expected
    assert parse_timestamp(expected) == moment.astimezone(UTC).replace(
        microsecond=moment.microsecond // 1000 * 1000
    )


def test_r31_an_offset_timestamp_is_written_in_utc() -> None:
    moment = datetime(2026, 5, 13, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2026-05-13T10:00:00.123Z"


def full_check(url: str) -> bool:
    """The URL check with its fast path turned off."""
    fast, decode._PLAIN_URL = decode._PLAIN_URL, _NEVER  # type: ignore[misc]
    try:
        return _accepts(url)
    finally:
        decode._PLAIN_URL = fast  # type: ignore[misc]


class _Never:
    def fullmatch(self, _: str) -> None:
        return None


_NEVER = _Never()


def _accepts(url: str) -> bool:
    body = {"externalId": "p", "images": [{"source": {"url": url}}]}
    try:
        decode.decode_upsert(body, cc.Limits())
    except cc.CatalogError:
        return False
    return True


_AWKWARD = ["http://a..b/", "http://./", "https://-/x", "http://a/\\@b", "http://x#", "http://a:80/",
            "http://a:99999/", "http://a:/", "http://a:x/", "http://u@a/", "http://[::1]/",
            "http://[::1]x/", "HTTP://a/", "http://a\\b/", "http://é/"]  # fmt: skip


@given(
    st.from_regex(decode._PLAIN_URL, fullmatch=True)
    | st.lists(_URL_PIECES, max_size=14).map("".join)
    | st.sampled_from(_AWKWARD)
)
def test_r13_the_plain_url_shortcut_accepts_only_what_the_full_check_accepts(url: str) -> None:
    assert _accepts(url) == full_check(url)


_URLS = st.sampled_from(["https://cdn.example/a.jpg", "ftp://a/x", "http://[::1]/", "", 5, None])
_SOURCES = st.dictionaries(st.sampled_from(["url", "fileKey", "other"]), _URLS, max_size=3)
_CLASSIFICATIONS = (
    st.none()
    | st.dictionaries(st.sampled_from(["k", "v"]), st.integers() | st.text(max_size=2), max_size=2)
    | st.just([])
)
_ENTRIES = st.fixed_dictionaries(
    {},
    optional={
        "source": _SOURCES | _URLS,
        "classifications": _CLASSIFICATIONS,
        "url": _URLS,
        "fileKey": _URLS,
        "colour": st.just("red"),
    },
) | st.sampled_from([None, "https://cdn.example/a.jpg", []])


def read_image(entry: object, general: bool) -> tuple[Any, ...]:
    """Everything reading one image entry yields: the input, its path, details, warnings."""
    decoder = decode._Decoder(cc.Limits(), "products.0.", owned=False)
    image = decoder._any_image(entry, 3) if general else decoder.image(entry, 3)
    path = None if image is None else image.path
    return image, path, decoder.details, decoder.image_input, decoder.warnings


@given(_ENTRIES)
@example({"source": {"url": "https://cdn.example/a.jpg"}, "classifications": {"k": 1}})
@example({"source": {"url": "ftp://a/x"}, "classifications": {"k": float("nan")}})
@example({"source": {"url": "https://cdn.example/a.jpg"}, "classifications": {}})
def test_r12_r17_the_canonical_image_shortcut_reads_an_entry_as_the_general_code(
    entry: object,
) -> None:
    assert read_image(entry, general=False) == read_image(entry, general=True)


@given(
    st.lists(
        st.builds(
            ImageInput,
            url=st.sampled_from(["https://cdn.example/a.jpg", "https://cdn.example/b.jpg"]),
            classifications=st.none() | st.just({"view": "front"}),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_r12_r14_images_without_file_parts_resolve_as_the_general_code_resolves_them(
    images: list[ImageInput],
) -> None:
    catalog = cc.Catalog(cc.MemoryRepository())
    command = UpsertCommand(external_id="p1", images=tuple(images))
    fast = catalog._resolve_images(command, {})
    # A file part no image names sends the same command down the general path.
    general = catalog._resolve_images(command, {"spare": cc.Upload(b"x")})
    assert fast[:2] == general[:2]
    assert fast[2] == ()
    assert [w.code for w in general[2]] == ["UNUSED_FILE"]


def test_r31_changing_the_wire_dict_never_changes_the_product() -> None:
    """The frozen product keeps its metadata and classifications whatever is done to to_wire's."""
    catalog = cc.Catalog(cc.MemoryRepository())
    body = {
        "externalId": "p",
        "metadata": {"sizes": ["S", "M"], "nested": {"a": 1}},
        "images": [{"source": {"url": "https://cdn.example/a.jpg"}, "classifications": {"k": [1]}}],
    }
    product = catalog.upsert("acme", json.dumps(body)).product
    wire = to_wire(product)
    wire["metadata"]["sizes"].append("XL")
    wire["metadata"]["nested"]["a"] = 2
    wire["images"][0]["classifications"]["k"].append(2)
    assert product.metadata == {"sizes": ["S", "M"], "nested": {"a": 1}}
    assert product.images[0].classifications == {"k": [1]}
    assert json.loads(to_wire_json(product))["metadata"] == product.metadata


def plain_json_problem(value: object, depth: int = 0) -> str | None:
    """What ``decode._json_problem`` says, read plainly: a dict's keys before its values, then
    each value in order; 64 levels at most; integers of at most 4,300 digits."""
    if depth >= 64:
        return "must be nested at most 64 levels deep"
    if value is None or isinstance(value, str | bool):
        return None
    long_int = f"must hold only integers of at most {MAX_INT_DIGITS:,} digits"
    if isinstance(value, int):
        return None if abs(value) < 10**MAX_INT_DIGITS else long_int
    if isinstance(value, LongInt):
        return long_int
    if isinstance(value, float):
        return None if math.isfinite(value) else "must hold only finite numbers"
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return "must have only string keys"
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return f"must hold only JSON values, not {type(value).__name__}"
    return next(filter(None, (plain_json_problem(child, depth + 1) for child in children)), None)


_ODD_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    # 4,300 digits, or 4,301: built, since hypothesis cannot write such an int as text
    | st.builds(
        lambda sign, past: sign * (10**MAX_INT_DIGITS - 1 + past),
        st.sampled_from([1, -1]),
        st.booleans(),
    )
    | st.builds(LongInt, st.integers(4301, 10**6), st.booleans())
    | st.floats()
    | st.text(max_size=3)
    | st.sampled_from([(), frozenset(), b"x", 1j])
)
_ODD_JSON = st.recursive(
    _ODD_VALUES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=2) | st.integers() | st.none(), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_ODD_JSON)
def test_r9_r16_the_json_value_check_agrees_with_a_plain_reading(value: Any) -> None:
    assert decode._json_problem(value, 0) == plain_json_problem(value)


@pytest.mark.parametrize("levels", [62, 63, 64, 65])
@pytest.mark.parametrize(
    "leaf",
    ["x", 1, 10**MAX_INT_DIGITS, 0.5, [], {}, [1], {"a": 1}],
    ids=["str", "int", "long int", "float", "empty list", "empty dict", "list", "dict"],
)
@pytest.mark.parametrize("wrap", ["list", "dict"])
def test_r9_r16_the_json_value_check_counts_levels_as_a_plain_reading(
    levels: int, leaf: object, wrap: str
) -> None:
    value: object = leaf
    for _ in range(levels):
        value = [value] if wrap == "list" else {"k": value}
    assert decode._json_problem(value, 0) == plain_json_problem(value)
