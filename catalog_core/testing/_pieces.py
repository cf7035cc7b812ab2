"""The small strategies every part of the kit draws from: texts, ids, JSON values, URLs, images.

Every strategy is built once (module constants, or functions under ``functools.cache`` keyed by
their hashable options): building and validating strategies inside a composite costs more than
drawing from them. The valid values follow the kit's rule book (:mod:`._book`).
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import catalog_core as cc
from catalog_core.testing._book import (
    ANON_PREFIX,
    CONTROLS,
    IMAGE_HEADERS,
    MAX_DAYS,
    MIN_DAYS,
    RULE_BOOK_LIMITS,
    WireField,
)


def copy_files(value: Mapping[str, cc.Upload]) -> Mapping[str, cc.Upload]:
    """Copy a request's file parts, so that a drawn request never shares its mapping."""
    return dict(value)


def strategy_option(name: str, value: object, default: st.SearchStrategy[Any] | None) -> Any:
    """Return the strategy an option was given, or ``default`` when it was not given.

    Options take strategies only, as Hypothesis' own do: one value is ``st.just(value)``.

    Raises:
        InvalidArgument: ``value`` is neither ``None`` nor a strategy.
    """
    if value is None:
        return default
    if not isinstance(value, st.SearchStrategy):
        raise InvalidArgument(
            f"{name}={value!r} must be a strategy; for this one value, pass st.just({value!r})"
        )
    return value


_T = TypeVar("_T")


def pick(draw: st.DrawFn, options: Sequence[_T]) -> _T:
    """Draw one of ``options``; shrinks towards the first."""
    return options[draw(st.integers(0, len(options) - 1))]


def one_in(draw: st.DrawFn, n: int) -> bool:
    """Draw ``True`` about once in ``n`` draws."""
    return draw(st.integers(0, n - 1)) == 0


def texts(*, min_size: int = 0, max_size: int) -> st.SearchStrategy[str]:
    """Valid text: any character but a lone surrogate (controls are fine in titles, R7)."""
    return st.text(st.characters(codec="utf-8"), min_size=min_size, max_size=max_size)


def id_texts(*, max_size: int) -> st.SearchStrategy[str]:
    """Non-empty valid text without control characters (R2)."""
    return st.text(
        st.characters(codec="utf-8", exclude_characters=CONTROLS), min_size=1, max_size=max_size
    )


# Hypothesis shrinks a ``one_of`` towards its first branch. Ids and accounts are drawn from a plain
# branch first, then from all of Unicode: a failing example then reads ``p0`` in account ``a``,
# reached in a shrink or two, where a random Unicode id takes many, each a rerun of the example.
_PLAIN_ID_PREFIXES: Final = ("p", "shirt-", "SKU-", "item.")


@functools.cache
def plain_ids(*, max_size: int) -> st.SearchStrategy[str]:
    """Short ASCII ids such as ``p0``, ``shirt-12``, ``SKU-7``, ``item.999``; shrinks to ``p0``."""
    prefixes = [prefix for prefix in _PLAIN_ID_PREFIXES if len(prefix) + 3 <= max_size]
    if not prefixes:
        return st.nothing()
    return st.builds("{}{}".format, st.sampled_from(prefixes), st.integers(0, 999))


@functools.cache
def plain_accounts(*, max_size: int = 8) -> st.SearchStrategy[str]:
    """Short lowercase ASCII accounts; shrinks to ``a`` (and a second one to ``b``)."""
    return st.text(string.ascii_lowercase, min_size=1, max_size=max_size)


@functools.cache
def account_texts(*, max_size: int) -> st.SearchStrategy[str]:
    """Valid accounts: plain ones first (so that they shrink to ``a``), then any valid text."""
    return st.one_of(plain_accounts(max_size=min(8, max_size)), id_texts(max_size=max_size))


@functools.cache
def unicode_external_ids(*, max_size: int) -> st.SearchStrategy[str]:
    """Valid ids of any characters R2 allows (no controls, no lone surrogates), not ``_anon_``."""
    return id_texts(max_size=max_size).filter(lambda text: not text.startswith(ANON_PREFIX))


def compact_size(value: object) -> int:
    """Size as R9 measures it: compact UTF-8 JSON."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8"))


@functools.cache
def json_values(*, max_leaves: int = 4) -> st.SearchStrategy[Any]:
    """Small JSON values: finite numbers, valid text."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(max_size=12),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(texts(max_size=8), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def json_objects(*, max_bytes: int, min_size: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Valid JSON objects within ``max_bytes`` as compact JSON (R9, R16)."""
    if max_bytes < 64:  # keep the filter cheap: tiny objects for tiny limits
        small = st.dictionaries(texts(max_size=2), st.integers(0, 9), min_size=min_size, max_size=2)
        return small.filter(lambda value: compact_size(value) <= max_bytes)
    return st.dictionaries(texts(max_size=8), json_values(), min_size=min_size, max_size=4).filter(
        lambda value: compact_size(value) <= max_bytes
    )


@functools.cache
def unknown_keys(known: frozenset[str]) -> st.SearchStrategy[str]:
    """Keys the rule book does not know (R18)."""
    return st.one_of(
        st.sampled_from(["sku", "price", "alt", "Title", "external_id", "images ", "a.b"]),
        texts(min_size=1, max_size=8),
    ).filter(lambda key: key not in known)


@functools.cache
def unknown_fields(known: frozenset[str], max_size: int) -> st.SearchStrategy[dict[str, Any]]:
    """``{}`` three times in four, else unknown keys with small JSON values (R18)."""
    fields = st.dictionaries(
        unknown_keys(known), json_values(max_leaves=2), min_size=1, max_size=max_size
    )
    return st.one_of(st.just({}), st.just({}), st.just({}), fields)


@functools.cache
def external_id_texts(*, max_size: int, allow_reserved: bool) -> st.SearchStrategy[str]:
    """Valid ids: plain ones first (they shrink to ``p0``), then any text R2 allows."""
    plain = plain_ids(max_size=max_size) | unicode_external_ids(max_size=max_size)
    if not allow_reserved or max_size < len(ANON_PREFIX):
        return plain
    rest = st.text(
        st.characters(codec="utf-8", exclude_characters=CONTROLS),
        max_size=min(24, max_size - len(ANON_PREFIX)),
    )
    return plain | rest.map(ANON_PREFIX.__add__)


_SPECIAL_URLS: Final = (
    "HTTPS://CDN.EXAMPLE/FRONT.JPG",  # schemes are case-insensitive (decision table)
    "https://user:secret@cdn.example/a.jpg",
    "http://[::1]:8080/a.jpg",
    "https://cdn.example/ä/ö.jpg?size=1#top",
    "https://münchen.example/x",
    "https://cdn.example",
    "https://a.b/" + "x" * 2036,  # exactly 2,048 characters (R13)
)


@functools.cache
def urls(*, max_length: int = RULE_BOOK_LIMITS.max_url_length) -> st.SearchStrategy[str]:
    """Valid image URLs (R13): absolute http(s) with a host, no spaces or controls."""
    plain = st.builds(
        "{}://{}{}/{}".format,
        st.sampled_from(["https", "http", "HTTP"]),
        st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12),
        st.sampled_from(["", ".example", ".com", ".co.uk", ":8080", ":443"]),
        st.text(string.ascii_letters + string.digits + "._~/%-?=&#", max_size=30),
    )
    special = [url for url in _SPECIAL_URLS if len(url) <= max_length]
    return st.one_of(plain.filter(lambda url: len(url) <= max_length), st.sampled_from(special))


@functools.cache
def texts_or_null(max_length: int) -> st.SearchStrategy[str | None]:
    """Valid titles or descriptions (R7): ``null``, short text, now and then a boundary."""
    boundary = ["", "x" * max_length, "line\nbreak\t", "😀😀😀"]
    return st.one_of(
        st.none(),
        texts(max_size=min(40, max_length)),
        st.sampled_from([text for text in boundary if len(text) <= max_length]),
    )


# Bytes that are not one of those images (R15), all of them small.
NOT_IMAGES: Final = (
    b"",
    b"\xff\xd8\xff",  # a JPEG start, but fewer than 12 bytes
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",  # 11 bytes of JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00",
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00",
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    b"BM\x1e\x00\x00\x00\x00\x00\x00\x00\x1a\x00\x00\x00",
)
_CLAIMED_TYPES: Final = (None, "image/jpeg", "image/png", "application/octet-stream", "text/plain")
IMAGE_HEADS: Final = tuple(IMAGE_HEADERS.values())
IMAGE_BYTES: Final = st.builds(
    bytes.__add__, st.sampled_from(IMAGE_HEADS), st.binary(max_size=16)
)  # a recognised image (R15) of 12 bytes or more, with a varying tail
CLAIMED: Final = st.sampled_from(_CLAIMED_TYPES)  # never trusted (R15), so drawn apart
UPLOADS: Final = st.builds(cc.Upload, IMAGE_BYTES, CLAIMED)
PART_NAME_LISTS: Final = st.lists(
    st.one_of(
        st.sampled_from(["front", "back", "side.jpg", "photo 1.png", "ünï"]),
        texts(min_size=1, max_size=10),
    ).filter(lambda name: name != "data"),  # R32: ``data`` is the JSON part
    min_size=1,
    max_size=3,
    unique=True,
)
NOT_IMAGE_BYTES: Final = st.sampled_from(NOT_IMAGES) | st.binary(max_size=20).map(b"GIF8".__add__)
ANY_PART_BYTES: Final = st.sampled_from(NOT_IMAGES) | IMAGE_BYTES


@functools.cache
def metadata(max_bytes: int) -> st.SearchStrategy[dict[str, Any] | None]:
    """``null`` or a JSON object within ``max_bytes`` (R9)."""
    if max_bytes < 2:  # "{}" is the smallest object
        return st.none()
    return st.none() | json_objects(max_bytes=max_bytes)


@functools.cache
def valid_for_days(*, allow_null: bool = True) -> st.SearchStrategy[int | None]:
    """1-365, or also ``null`` (R10)."""
    days = st.integers(MIN_DAYS, MAX_DAYS)
    return (st.none() | days) if allow_null else days


#: The most a valid value of a field is drawn with when a request must stay small, by kind.
_SMALL: Final = {"text": 40, "object": 64}


def field_values(
    field: WireField, limits: cc.Limits, *, small: bool = False, allow_null: bool = True
) -> st.SearchStrategy[Any]:
    """Valid values of an editable product field (R7, R9, R10), within ``limits``.

    Args:
        field: a field of the rule book whose ``kind`` is text, object or days.
        limits: the limits the values keep to (R33).
        small: keep text and objects small (at most 40 characters, 64 bytes).
        allow_null: also draw ``null`` for ``validForDays``.
    """
    bound = 0 if field.limit is None else int(getattr(limits, field.limit))
    if small:
        bound = min(bound, _SMALL.get(field.kind, bound))
    if field.kind == "text":
        return texts_or_null(bound)
    if field.kind == "object":
        return metadata(bound)
    if field.kind == "days":
        return valid_for_days(allow_null=allow_null)
    raise ValueError(f"the kit draws no values of {field.name}, a field of kind {field.kind}")
