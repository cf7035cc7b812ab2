"""The fast paths of the wire layer agree with the general code they shortcut.

Each fast path is kept for a benchmark case (`decode`): the URL check accepts plain URLs through a
regular expression and must never accept one that the full check refuses (R13); the canonical
image entry is read without the branches of the deprecated shapes and must be read as the general
code reads it (R12, R16, R17); the check that metadata and classifications are plain JSON skips a
call for the values JSON parsing makes most and must judge every value as a plain reading would
(R9, R16). The catalog resolves the images of a request without file parts (every JSON body,
so ``sqlite_upsert`` and ``sqlite_bulk``) in one pass, which must give what the general
resolution gives (R12, R14). ``to_wire`` is the converter's generated hook, held here to a plain
reading of R31; its timestamps are written from tables and a memo of days' texts, which must give
the plain ISO text whether a day is remembered, new or met after the memo was emptied (R31, for
``encode``); a listing page's body is one orjson call when its text is surely the plain bytes,
else its items' bytes joined, which must both be the bytes of the page's plain encoding (R24);
and without orjson every product and page must be the same bytes as with it.

``decode_upsert`` reads a valid canonical body on a fast path and everything else on its full
pass: the fast path must give exactly what the full pass gives (the command, the images' paths,
metadata kept or copied alike, no warnings), or decline; it is run beside the full pass on
generated valid and invalid bodies, on valid ones with values made odd at every slot and bound,
and on parsed values orjson cannot carry as they are. An update is built as ``attrs.evolve``
would build it, and the arithmetic of time (epoch milliseconds, lifetimes) as the plain
arithmetic gives it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core import ImageInput, UpsertCommand
from catalog_core._json import MAX_INT_DIGITS, LongInt, quick_dumps
from catalog_core._unset import UNSET
from catalog_core.model import from_epoch_ms, product_row
from catalog_core.testing import strategies as cst
from catalog_core.testing.invalid import InvalidUpsertRequest, invalid_upsert_payloads
from catalog_core.wire import decode, encode
from catalog_core.wire.encode import (
    format_epoch_ms,
    format_timestamp,
    make_converter,
    page_to_wire,
    page_to_wire_json,
    parse_timestamp,
    row_to_wire,
    rows_page_json,
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


@given(cst.products())
def test_r31_a_products_row_is_written_as_the_product_is(product: cc.Product) -> None:
    """R31: a listing written from rows (no Product made) writes the converter's dict of the
    product, keys in the same order, shared JSON values and all."""
    wire = row_to_wire(product_row(product))
    expected = SHARING.unstructure(product)
    assert wire == expected
    assert list(wire) == list(expected)
    assert [list(image) for image in wire["images"]] == [list(i) for i in expected["images"]]


@given(
    st.lists(cst.products(), max_size=4),
    st.none() | st.text(max_size=40),
    st.booleans(),
)
def test_r24_r31_a_page_written_from_rows_is_the_bytes_of_the_page_of_products(
    products: list[cc.Product], cursor: str | None, more: bool
) -> None:
    """R24, R31: the server's listing body, written from rows, is page_to_wire_json's bytes."""
    page = cc.Page(tuple(products), cursor, more)
    rows = [product_row(product) for product in products]
    try:
        expected = page_to_wire_json(page)
    except UnicodeEncodeError:  # a lone surrogate in the cursor: neither has UTF-8 bytes
        with pytest.raises(UnicodeEncodeError):
            rows_page_json(rows, cursor, more)
        return
    assert rows_page_json(rows, cursor, more) == expected


def _page_product(number: int, metadata: dict[str, Any], classifications: Any = None) -> cc.Product:
    moment = datetime(2026, 5, 13, 10, 0, 0, 7000 * number, tzinfo=UTC)
    image = cc.Image(f"https://cdn.example/{number}.jpg", 0, classifications)
    return cc.Product(
        account="acme",
        external_id=f"p{number}",
        description="One-size, wide-leg e-mail",
        metadata=metadata,
        created_at=moment,
        updated_at=moment,
        images=(image,),
    )


@pytest.mark.parametrize(
    ("metadata", "classifications", "whole"),
    [
        ({"price": 19.9, "sizes": ["S", "M"]}, {"view": "front"}, True),
        ({"weight": 1e-07}, None, False),
        ({"weight": 2.5e-05}, None, False),
        ({"stock": 2**70}, None, False),
        ({"price": 19.9}, {"score": 3e-06}, False),
    ],
    ids=["plain", "exponent", "four-zeros", "beyond-64-bits", "in-image"],
)
def test_r24_r31_a_page_with_a_product_orjson_writes_otherwise_is_written_an_item_at_a_time(
    metadata: dict[str, Any], classifications: Any, whole: bool
) -> None:
    """R24, R31: a page is one orjson call only when its text is surely the plain bytes; else
    each item is written on its own, and the page is still the plain encoding's bytes."""
    odd = _page_product(1, metadata, classifications)
    page = cc.Page((_page_product(0, {"a": 1}), odd, _page_product(2, {"b": [0.5]})), "c", True)
    items = [to_wire(item) for item in page.items]
    assert (quick_dumps(items) is not None) == whole
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


def plain_timestamp(moment: datetime) -> str:
    """R31 read plainly: the UTC ISO text to the millisecond, then ``Z``."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


@given(
    st.lists(
        st.datetimes(timezones=st.just(UTC))
        | st.datetimes(
            min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.timezones()
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 4),
)
@example([datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)], 1)
def test_r31_a_timestamp_is_the_same_text_whether_its_day_is_remembered_or_not(
    moments: list[datetime], most_days: int
) -> None:
    """R31: each timestamp written twice (its day new, then remembered) is the plain text, also
    when the memo of days is emptied at its bound between them; the memo never passes it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encode, "_DATES", {})
        patch.setattr(encode, "_MAX_DATES", most_days)
        for moment in moments:
            expected = plain_timestamp(moment)
            assert format_timestamp(moment) == expected
            assert format_timestamp(moment) == expected
            assert len(encode._DATES) <= most_days


_MS_RANGE: Final = (
    (datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1),
    (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
    // timedelta(milliseconds=1),
)


@given(st.lists(st.integers(*_MS_RANGE), min_size=1, max_size=12), st.integers(1, 4))
@example([_MS_RANGE[0], -1, 0, 86_399_999, 86_400_000, _MS_RANGE[1]], 1)
def test_r31_a_timestamp_from_epoch_milliseconds_is_the_datetimes_text(
    moments: list[int], most_days: int
) -> None:
    """R31: a stored time written from its number is the text of its datetime, days before the
    epoch and at both ends of the calendar included, whether its day is remembered or not."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encode, "_DATES", {})
        patch.setattr(encode, "_MAX_DATES", most_days)
        for ms in moments:
            expected = plain_timestamp(from_epoch_ms(ms))
            assert format_epoch_ms(ms) == expected
            assert format_timestamp(from_epoch_ms(ms)) == expected
            assert format_epoch_ms(ms) == expected
            assert len(encode._DATES) <= most_days


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


# -- the fast path of decode_upsert ---------------------------------------------------------------
#
# decode_upsert reads a valid canonical body on a fast path and every other body on its full pass;
# the fast path must give exactly what the full pass gives, or decline. These tests run both on
# every body (valid, invalid, and valid ones with one value made odd) and compare.

SMALL = cc.Limits(
    max_external_id_length=12,
    max_title_length=6,
    max_description_length=8,
    max_images=2,
    max_metadata_bytes=48,
    max_classifications_bytes=24,
    max_url_length=64,
    max_file_bytes=1024,
    max_request_bytes=4096,
)
_DEFAULTS = cc.Limits()


def full_decode(
    body: Any, limits: cc.Limits, *, for_use: bool, prefix: str, owned: bool
) -> tuple[UpsertCommand, tuple[cc.PayloadWarning, ...], int] | cc.CatalogError:
    try:
        return decode._decode_upsert(body, limits, for_use=for_use, prefix=prefix, owned=owned)
    except cc.CatalogError as exc:
        return exc


def fast_agrees(
    body: Any, limits: cc.Limits, *, for_use: bool = False, prefix: str = "", owned: bool
) -> bool:
    """Assert that the fast path gives what the full pass gives; return whether it was taken."""
    fast = decode._fast_upsert(body, limits, prefix, owned)
    full = full_decode(body, limits, for_use=for_use, prefix=prefix, owned=owned)
    if fast is None:
        assert decode.fast_fields(body, limits, owned=owned) is None
        return False
    assert not isinstance(full, cc.CatalogError), (body, full)
    command, warnings, count = full
    assert (warnings, count) == ((), 0)
    assert fast == command
    assert repr(fast) == repr(command)  # the same types too: True == 1, 2.0 == 2
    # What equality leaves out: each image's path, and whether metadata and classifications are
    # the body's own objects (owned) or copies.
    assert fast.images is UNSET or [i.path for i in fast.images] == [
        i.path
        for i in command.images  # type: ignore[union-attr]
    ]

    def kept(c: UpsertCommand) -> list[bool]:
        given = [body.get("metadata")]
        taken = [c.metadata]
        if c.images is not UNSET:
            given += [entry.get("classifications") for entry in body["images"]]
            taken += [image.classifications for image in c.images]
        return [t is g for t, g in zip(taken, given, strict=True) if t is not None]

    assert kept(fast) == kept(command)
    fields_agree(body, limits, owned, command)
    return True


def fields_agree(body: Any, limits: cc.Limits, owned: bool, command: UpsertCommand) -> None:
    """The catalog's fast lane (``fast_fields``) reads the body as the command reads, its images
    as the catalog resolves the command's (R12, R16), sharing the same objects."""
    fields = decode.fast_fields(body, limits, owned=owned)
    assert fields is not None
    external_id, title, description, metadata, days, images = fields
    assert (external_id, title, description, metadata, days) == (
        command.external_id,
        command.title,
        command.description,
        command.metadata,
        command.valid_for_days,
    )
    assert repr(fields[:5]) == repr(
        (external_id, command.title, command.description, command.metadata, days)
    )
    assert metadata is command.metadata or not owned
    resolved = cc.Catalog(cc.MemoryRepository())._resolve_images(command, {})[0]
    if command.images is UNSET:
        assert images is UNSET
        assert resolved is None
    else:
        assert images == resolved
        assert [type(i) for i in images] == [cc.Image] * len(images)


def _parsed(payload: dict[str, Any]) -> dict[str, Any]:
    """The body as ``Catalog.upsert`` reads a raw one: parsed by ``load_body``, so owned."""
    raw = json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return dict(decode.load_body(raw, cc.Limits()))


def _both_ways(body: dict[str, Any], limits: cc.Limits) -> bool:
    """Check a body as a caller's mapping and as a parsed body (JSON text permitting)."""
    taken = fast_agrees(body, limits, owned=False)
    taken = fast_agrees(body, limits, prefix="products.0.", for_use=True, owned=False) or taken
    try:
        parsed = _parsed(body)
    except (ValueError, TypeError, cc.CatalogError):  # NaN, a tuple key: no JSON text of it
        return taken
    return fast_agrees(parsed, limits, owned=True) or taken


@given(cst.upsert_payloads(multipart=False) | cst.upsert_payloads(multipart=False, partial=True))
def test_r2_r18_the_fast_path_decodes_valid_bodies_as_the_full_pass(
    request: cst.UpsertRequest,
) -> None:
    _both_ways(request.payload, _DEFAULTS)


@given(cst.use_items())
def test_r22_the_fast_path_decodes_use_items_as_the_full_pass(item: cst.UseRequest) -> None:
    fast_agrees(item.payload, _DEFAULTS, for_use=True, prefix="products.0.", owned=False)


@given(
    st.tuples(st.just(_DEFAULTS), invalid_upsert_payloads())
    | st.tuples(st.just(SMALL), invalid_upsert_payloads(limits=SMALL))
)
def test_r30_the_fast_path_takes_no_body_the_full_pass_refuses(
    limits_and_case: tuple[cc.Limits, InvalidUpsertRequest],
) -> None:
    """An invalid body is declined; what is refused after decoding (files, a create without
    images) may go the fast way, and must decode the same."""
    limits, case = limits_and_case
    if isinstance(case.payload, bytes):
        try:
            body = dict(decode.load_body(case.payload, limits))
        except cc.CatalogError:
            return
        fast_agrees(body, limits, owned=True)
    else:
        _both_ways(case.payload, limits)


def _nest(levels: int, leaf: object = 1) -> object:
    value = leaf
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


_CANONICAL: Final = {
    "externalId": "p1",
    "title": "Tee",
    "description": "Soft",
    "metadata": {"a": 1},
    "validForDays": 30,
    "images": [
        {"source": {"url": "https://cdn.example/a.jpg"}, "classifications": {"v": "f"}},
        {"source": {"url": "http://b/c"}},
    ],
}
# Where a value may be made odd: a key path into _CANONICAL.
_SLOTS: Final = [
    ("externalId",),
    ("title",),
    ("description",),
    ("metadata",),
    ("metadata", "a"),
    ("validForDays",),
    ("images",),
    ("images", 0),
    ("images", 0, "source"),
    ("images", 0, "source", "url"),
    ("images", 0, "classifications"),
    ("images", 0, "classifications", "v"),
    ("images", 1, "source", "fileKey"),
    ("images", 1, "url"),
    ("images", 1, "colour"),
    ("imageUrls",),
    ("colour",),
]
_ODD_TEXTS = st.sampled_from(
    ["", "x" * 6, "x" * 7, "x" * 8, "x" * 9, "x" * 12, "x" * 13, "é" * 6, "é" * 7, "\ud800",
     "a\udfff", "a\x00", "a\x1f", "a\x7f", "_anon_", "_anon_x", "_Anon_x", "null", "—", "😀" * 3]
)  # fmt: skip
_ODD_URLS = (
    st.sampled_from(_AWKWARD)
    | st.lists(_URL_PIECES, max_size=14).map("".join)
    | st.integers(0, 70).map(lambda n: "https://a.b/" + "x" * n)
)
_ODD = (
    _ODD_TEXTS
    | _ODD_URLS
    | _ODD_JSON
    | st.sampled_from([0, 1, 365, 366, -1, True, False, 2.0, 1e-5, float("nan"), [], {}])
    | st.sampled_from([62, 63, 64, 65]).map(_nest)
    | st.integers(0, 60).map(lambda n: {"k": "x" * n})
    | st.lists(st.just({"source": {"url": "https://a/"}}), max_size=4)
)


def _with(body: Any, path: tuple[Any, ...], value: object) -> Any:
    """A copy of ``body`` with ``value`` at ``path`` (made where it is missing)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(body, list):
        copy = list(body)
        if isinstance(head, int) and head < len(copy):
            copy[head] = _with(copy[head], rest, value)
        return copy
    if isinstance(body, dict):
        return {**body, head: _with(body.get(head, {}), rest, value)}
    return body


@given(
    st.lists(st.tuples(st.sampled_from(_SLOTS), _ODD), max_size=3),
    st.sampled_from([_DEFAULTS, SMALL]),
)
@example([], _DEFAULTS)
@example([(("metadata",), _nest(63))], _DEFAULTS)
@example([(("metadata",), _nest(64))], _DEFAULTS)
@example([(("metadata",), {"k": 1e-5})], _DEFAULTS)
@example([(("images", 0, "classifications"), {})], _DEFAULTS)
def test_r2_r18_the_fast_path_agrees_on_bodies_made_odd(
    changes: list[tuple[tuple[Any, ...], object]], limits: cc.Limits
) -> None:
    body: Any = _CANONICAL
    for path, value in changes:
        body = _with(body, path, value)
    _both_ways(body, limits)


# Raw JSON whose parsed value is what orjson cannot read or write as it is: the fast path's check
# of metadata and classifications must send each to the full check.
_RAW_VALUES = [b"1e400", b"-1e400", b"1" * 5000, b"1" * 20, b"-" + b"9" * 19, b"1e-5",
               b"0.00001", b"-0.0", b"1.5e300", b'"\\ud800"', b'"\\u0000"', b"null", b"[null]",
               b'{"null":1}', b'"e-"', b'"0.0000"', b"[" * 63 + b"]" * 63,
               b"[" * 64 + b"]" * 64, b"[" * 63 + b"1" + b"]" * 63, b"[" * 64 + b"1" + b"]" * 64,
               b'"' + b"x" * 40 + b'"']  # fmt: skip


@pytest.mark.parametrize("raw", _RAW_VALUES)
@pytest.mark.parametrize("slot", ["metadata", "classifications"])
@pytest.mark.parametrize("limits", [_DEFAULTS, SMALL], ids=["defaults", "small"])
def test_r9_r16_the_fast_path_sends_odd_parsed_json_to_the_full_check(
    raw: bytes, slot: str, limits: cc.Limits
) -> None:
    body = json.dumps(_with(_CANONICAL, _slot_path(slot), {"k": "@@"})).encode()
    body = body.replace(b'"@@"', raw)
    try:
        parsed = dict(decode.load_body(body, _DEFAULTS))
    except cc.CatalogError:
        return
    fast_agrees(parsed, limits, owned=True)


def _slot_path(slot: str) -> tuple[Any, ...]:
    return ("metadata",) if slot == "metadata" else ("images", 0, "classifications")


@pytest.mark.parametrize("i", range(20))
def test_the_benchmark_bodies_take_the_fast_path(i: int) -> None:
    """The fast path serves the common body: the `decode` and bulk cases' bodies take it."""
    from benchmarks.peers.sample import upsert_body

    body = _parsed(upsert_body(i))
    assert fast_agrees(body, _DEFAULTS, owned=True)
    assert fast_agrees(upsert_body(i), _DEFAULTS, owned=False)


def _sized(size: int) -> dict[str, str]:
    """An object of ``size`` bytes as compact JSON."""
    return {"k": "x" * (size - len('{"k":""}'))}


def _url(length: int) -> str:
    return "https://a.b/" + "x" * (length - len("https://a.b/"))


# Each value at each slot, under both limits: every bound met and passed by one.
_BOUNDARY_VALUES = [
    *[0, 1, 365, 366, -1, True, False, 2.0, 30.0, None, [], {}, "x", 10**30],
    *["", "x" * 6, "x" * 7, "x" * 8, "x" * 9, "x" * 12, "x" * 13, "é" * 8, "é" * 9, "\ud800"],
    *["a\x00", "a\x7f", "_anon_", "_anon_x", "—", "x" * 256, "x" * 257, "x" * 1000, "x" * 1001],
    *["x" * 10_000, "x" * 10_001, *_AWKWARD, *map(_url, [63, 64, 65, 2048, 2049])],
    *map(_sized, [24, 25, 48, 49, 4096, 4097, 16_384, 16_385]),
    *map(_nest, [62, 63, 64, 65]),
    *[[{"source": {"url": "https://a/"}}] * n for n in (2, 3, 20, 21)],
    {"a": float("nan")},
    {"a": float("inf")},
    {"a": 1e-5},
    {"a": (1, 2)},
    {1: "a"},
]


@pytest.mark.parametrize("limits", [_DEFAULTS, SMALL], ids=["defaults", "small"])
@pytest.mark.parametrize("slot", _SLOTS, ids=lambda slot: ".".join(map(str, slot)))
def test_r2_r18_r33_the_fast_path_agrees_at_every_bound(
    slot: tuple[Any, ...], limits: cc.Limits
) -> None:
    for value in _BOUNDARY_VALUES:
        _both_ways(_with(_CANONICAL, slot, value), limits)


# -- merge builds an updated product whole ------------------------------------------------------


class _StoredProduct(cc.Product):
    """A product class of a repository's own: merge keeps it, as attrs.evolve does."""


@given(cst.products(), st.booleans())
def test_r6_r11_r28_an_update_is_built_whole_as_attrs_evolve_builds_it(
    product: cc.Product, subclass: bool
) -> None:
    from catalog_core import rules

    if subclass:
        product = _StoredProduct(**attrs.asdict(product, recurse=False))
    now = product.updated_at + timedelta(seconds=1)
    command = UpsertCommand(external_id=product.external_id, title="new")
    merged = rules.merge(
        product, command, None, now, account=product.account, external_id=product.external_id
    )
    expected = attrs.evolve(
        product,
        title="new",
        updated_at=now,
        version=product.version + 1,
        expires_at=rules.expires_at(product.valid_for_days, now, product.last_used_at),
    )
    assert type(merged) is type(product)
    assert merged == expected


# -- the arithmetic of time -----------------------------------------------------------------------


@given(st.datetimes(timezones=st.just(UTC)))
def test_r31_epoch_milliseconds_are_the_timedelta_division(moment: datetime) -> None:
    from catalog_core.model import from_epoch_ms, to_epoch_ms

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert to_epoch_ms(moment) == (moment - epoch) // timedelta(milliseconds=1)
    assert from_epoch_ms(to_epoch_ms(moment)) == moment.replace(
        microsecond=moment.microsecond // 1000 * 1000
    )


@pytest.mark.parametrize("days", [1, 2, 30, 364, 365, 366, 10_000])
def test_r19_an_expiry_is_the_lifetime_in_days_after_the_later_time(days: int) -> None:
    from catalog_core.rules import expires_at

    start = datetime(2026, 5, 13, 10, 0, tzinfo=UTC)
    assert expires_at(days, start, None) == start + timedelta(days=days)
    assert expires_at(days, start, start + timedelta(hours=1)) == start + timedelta(
        days=days, hours=1
    )


#: Writes products and a page of them, one hex line each, then whether orjson was used.
_ENCODE_SCRIPT = """
import sys
if sys.argv[1] == "without":
    sys.modules["orjson"] = None
from datetime import UTC, datetime
import catalog_core as cc
from catalog_core import _json
from catalog_core.wire.encode import page_to_wire_json, to_wire_json

def product(number, metadata, title=None, last_used=None):
    moment = datetime(2026 - number, 5, 13, 10, 0, 0, 123456 * number % 1_000_000, tzinfo=UTC)
    return cc.Product(
        account="acme", external_id=f"p{number}", title=title, metadata=metadata,
        valid_for_days=30, expires_at=moment, last_used_at=last_used, created_at=moment,
        updated_at=moment, images=(cc.Image("https://cdn.example/a.jpg", 0, {"view": "front"}),
                                   cc.Image("upload://" + "0" * 64, 1)),
    )

products = [
    product(0, {"brand": "Northfold", "sizes": ["S", "M"], "price": 19.9}, "Tee \\u2014 é 🙂"),
    product(1, None, 'Tab\\there "quoted" \\\\ \\u2028', datetime(999, 1, 2, tzinfo=UTC)),
    product(2, {"weight": 1e-07, "four": 2.5e-05, "big": 1e16, "n": [0, -1, True, None]}),
    product(3, {"stock": 2**70, "one-size": "e-mail 3e-1"}),
]
for item in products:
    print(to_wire_json(item).hex())
for items in (products[:1], products):
    print(page_to_wire_json(cc.Page(tuple(items), "cursor", True)).hex())
print(_json.HAS_ORJSON)
"""


def test_r24_r31_without_orjson_products_and_pages_are_written_to_the_same_bytes() -> None:
    """R24, R31: a base install (no orjson) writes every product and page as orjson's path does:
    texts to escape, floats that the two write differently, an integer beyond 64 bits."""
    outputs = {}
    for mode in ("with", "without"):
        done = subprocess.run(
            [sys.executable, "-c", _ENCODE_SCRIPT, mode],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outputs[mode] = done.stdout.splitlines()
    assert outputs["with"][-1] == "True"
    assert outputs["without"][-1] == "False"
    assert outputs["with"][:-1] == outputs["without"][:-1]


# -- plain bodies: values that need no measuring -------------------------------------------------

_NUMBER_TEXTS = st.from_regex(
    r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
_STRING_TEXTS = st.text(max_size=6).map(lambda t: json.dumps(t, ensure_ascii=False)) | (
    st.text(max_size=6).map(json.dumps)  # \u escapes
)
_SPACES = st.sampled_from(["", " ", "\n  "])


def _joined(parts: list[str], spaces: str, left: str, right: str) -> str:
    return left + spaces + ("," + spaces).join(parts) + spaces + right


_VALUE_TEXTS = st.recursive(
    _NUMBER_TEXTS | _STRING_TEXTS | st.sampled_from(["true", "false", "null"]),
    lambda inner: (
        st.builds(_joined, st.lists(inner, max_size=4), _SPACES, st.just("["), st.just("]"))
        | st.builds(
            _joined,
            st.lists(st.builds(lambda k, v: f"{k}:{v}", _STRING_TEXTS, inner), max_size=4),
            _SPACES,
            st.just("{"),
            st.just("}"),
        )
    ),
    max_leaves=12,
)


@given(_VALUE_TEXTS)
@example("1e15")
@example("[-1E+15,9e15,0.1e16]")
def test_r9_r16_a_value_orjson_reads_is_written_in_at_most_four_and_a_half_times_its_text(
    text: str,
) -> None:
    """R9, R16: the bound a plain body's values are not measured by: json writes a number in
    at most 4.5 times its text (1e15 as 1000000000000000.0), and everything else in no more."""
    import orjson

    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return  # not plain: a number beyond a double's range, or a lone surrogate
    written, problem = decode._compact_json(value)
    assert problem is None
    assert written is not None
    assert 2 * len(written) <= 9 * len(text.encode("utf-8"))


@given(_VALUE_TEXTS, _VALUE_TEXTS, st.integers(1, 28), st.integers(0, 3))
@example('{"a":1e15}', "1e15", 20, 0)
@example('{"a":"' + "x" * 40 + '"}', "{}", 1, 0)
def test_r9_r16_a_plain_bodys_fast_fields_are_the_measured_ones_at_every_limit(
    metadata: str, classifications: str, quarters: int, slack: int
) -> None:
    """R9, R16: a plain body's metadata and classifications are taken unmeasured only where
    measuring could not refuse them: at limits from a quarter of the body's size to seven
    times it, the fields are those of the measured pass (which agrees with the full pass), or
    neither takes the body."""
    text = (
        '{"externalId":"p","metadata":' + metadata + ',"images":[{"source":{"url":'
        '"https://cdn.example/a.jpg"},"classifications":' + classifications + "}]}"
    ).encode()
    try:
        body, plain = decode.load_plain_body(text, _DEFAULTS)
    except cc.CatalogError:
        return
    if not plain:
        return
    assert plain == len(text)
    bound = max(1, plain * quarters // 4 + slack)
    limits = attrs.evolve(_DEFAULTS, max_metadata_bytes=bound, max_classifications_bytes=bound)
    fast = decode.fast_fields(body, limits, owned=True, plain=plain)
    measured = decode.fast_fields(body, limits, owned=True)
    assert repr(fast) == repr(measured)


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        (b'{"a":1}', True),
        (b'{"a":"\\u00e9"}', True),
        (b'{"a":1e400}', False),  # json reads an infinity
        (b'{"a":"\\udc80"}', False),  # a lone surrogate
        (b'{"a":123456789012345678901234}', False),  # beyond 64 bits
        (b'{"a":' + b"[" * 64 + b"]" * 64 + b"}", False),  # as deep as a value may be
        (b'{"a":' + b"[" * 62 + b"]" * 62 + b"}", True),
    ],
)
def test_r9_a_body_is_plain_only_when_its_values_need_no_asking(text: bytes, plain: bool) -> None:
    body, size = decode.load_plain_body(text, _DEFAULTS)
    assert body == json.loads(text)
    assert size == (len(text) if plain else 0)
    assert decode.load_plain_body(text.decode(), _DEFAULTS)[1] == size  # a str, as its UTF-8
    assert decode.load_plain_body(body, _DEFAULTS) == (body, 0)  # a mapping: not read at all
    # A str holding a lone surrogate has no UTF-8: it is read as it is, by json.
    assert decode.load_plain_body('{"a":"\udc80"}', _DEFAULTS)[1] == 0
