"""Hypothesis strategies for what a catalog takes and gives: accounts, ids, requests and products.

Each function returns a :class:`~hypothesis.strategies.SearchStrategy`; options are keyword-only,
as in Hypothesis itself::

    from hypothesis import given
    from catalog_core.testing.strategies import invalid_upsert_payloads, upsert_payloads

    @given(request=upsert_payloads())
    def test_my_code_accepts_every_valid_upsert(request): ...

    @given(case=invalid_upsert_payloads())
    def test_my_server_refuses_with_the_right_code(case):
        ...  # expect case.code and case.status

The strategies are written from the rule book (``docs/rules.md``), not from the library's code:
the sizes are the rule book's defaults unless an option says otherwise, and every generated case
states what the rule book says the catalog must answer. Sizes stay moderate, so examples are cheap;
the rule book's boundaries (a 1,000-character title, a 2,048-character URL, a 12-byte image) are
drawn now and then.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeVar

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import catalog_core as cc

__all__ = [
    "IMAGE_HEADERS",
    "R29_STATUS",
    "RULE_BOOK_LIMITS",
    "InvalidUpsertRequest",
    "UpsertRequest",
    "UseRequest",
    "accounts",
    "external_ids",
    "invalid_upsert_payloads",
    "products",
    "upsert_payloads",
    "use_items",
]

# -- the rule book, as data -----------------------------------------------------------------------

#: The default limits of R33, spelled out from the rule book rather than read from ``cc.Limits()``.
RULE_BOOK_LIMITS: Final = cc.Limits(
    max_external_id_length=256,
    max_title_length=1000,
    max_description_length=10_000,
    max_images=20,
    max_metadata_bytes=16 * 1024,
    max_classifications_bytes=4 * 1024,
    max_file_bytes=10 * 2**20,
    max_request_bytes=32 * 2**20,
    max_url_length=2048,
)

#: Every error code of R29 and its HTTP status.
R29_STATUS: Final = {
    "VALIDATION_FAILED": 400,
    "EXTERNAL_ID_REQUIRED": 400,
    "PRODUCT_IMAGES_REQUIRED": 400,
    "INVALID_IMAGE_INPUT": 400,
    "MULTIPART_FILE_NOT_FOUND": 400,
    "INVALID_IMAGE": 400,
    "MISSING_API_KEY": 401,
    "INVALID_API_KEY": 401,
    "PRODUCT_NOT_FOUND": 404,
    "RESERVED_EXTERNAL_ID": 409,
    "VERSION_CONFLICT": 412,
    "FILE_TOO_LARGE": 413,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RATE_LIMITED": 429,
}

_ANON_PREFIX: Final = "_anon_"  # R3
_ONE_SHOT_ALPHABET: Final = string.ascii_lowercase + string.digits  # R22c
_PRODUCT_KEYS: Final = frozenset(
    {"externalId", "title", "description", "metadata", "validForDays", "images", "imageUrls"}
)
_ENTRY_KEYS: Final = frozenset({"source", "classifications", "url", "fileKey"})
_SOURCE_KEYS: Final = frozenset({"url", "fileKey"})
_CONTROLS: Final = [chr(c) for c in range(0x20)] + ["\x7f"]  # R2
_MAX_VALID_FOR_DAYS: Final = 365  # R10

#: The leading bytes each recognised image type is sniffed from (R15), by the MIME type the
#: catalog stores; each is 12 bytes or more. The kit's contract and strategies both draw on it.
IMAGE_HEADERS: Final[Mapping[str, bytes]] = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01",  # exactly 12 bytes
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "image/heic": b"\x00\x00\x00\x18ftypheic",
    "image/heif": b"\x00\x00\x00\x18ftypmif1",
    "image/avif": b"\x00\x00\x00\x1cftypavif",
}
_IMAGE_HEADS: Final = tuple(IMAGE_HEADERS.values())
# Bytes that are not one of those images (R15), all of them small.
_NOT_IMAGES: Final = (
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

# R30: the order in which one request's problems decide its single error.
_PRECEDENCE: Final = (
    "PAYLOAD_TOO_LARGE",
    "EXTERNAL_ID_REQUIRED",
    "VALIDATION_FAILED",
    "INVALID_IMAGE_INPUT",
    "RESERVED_EXTERNAL_ID",
    "MULTIPART_FILE_NOT_FOUND",
    # INVALID_IMAGE and FILE_TOO_LARGE share a rank: the first failing file in image order decides,
    # so a request only ever holds one of them (see _first_file_problem).
    "INVALID_IMAGE",
    "FILE_TOO_LARGE",
    "PRODUCT_IMAGES_REQUIRED",
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS_2000: Final = 946_684_800_000
_MS_2100: Final = 4_102_444_800_000
_DAY_MS: Final = 86_400_000


# -- the values drawn -----------------------------------------------------------------------------


def _copy_files(value: Mapping[str, cc.Upload]) -> Mapping[str, cc.Upload]:
    return dict(value)


@attrs.frozen
class _Request:
    payload: dict[str, Any]
    files: Mapping[str, cc.Upload] = attrs.field(factory=dict, converter=_copy_files)

    @property
    def multipart(self) -> bool:
        """Whether the request is ``multipart/form-data`` (it has file parts)."""
        return bool(self.files)

    @property
    def external_id(self) -> str | None:
        """The ``externalId`` of the payload (``None`` for a one-shot item)."""
        value = self.payload.get("externalId")
        return value if isinstance(value, str) else None

    def body(self) -> bytes:
        """Return the payload as the UTF-8 JSON text a client sends (the ``data`` part, R32)."""
        return json.dumps(self.payload, ensure_ascii=False).encode("utf-8")


@attrs.frozen
class UpsertRequest(_Request):
    """A valid upsert request: the JSON payload and, for multipart, its file parts.

    Attributes:
        payload: the JSON object, as a ``dict``; :meth:`body` gives it as raw JSON bytes.
        files: the file parts by part name; empty for a JSON request.
    """


@attrs.frozen
class UseRequest(_Request):
    """A valid try-on product item (R22) and its file parts.

    Attributes:
        payload: the product item, as a ``dict``.
        files: the file parts by part name; empty for a JSON request.
        kind: ``"reference"`` (``{externalId}`` alone, R22a), ``"inline"`` (an id and product
            fields, R22b) or ``"one_shot"`` (no id, R22c).
    """

    kind: Literal["reference", "inline", "one_shot"] = "inline"


@attrs.frozen
class InvalidUpsertRequest:
    """An upsert the catalog must refuse, and the one error code R30 says it refuses it with.

    Attributes:
        payload: the JSON object, or the raw body as ``bytes``.
        files: the file parts by part name.
        code: the error code of R29 the upsert must raise.
        requires_absent: the code holds only when no live product has the id: the request is a
            create without images (R5), which is a valid update of an existing product.
    """

    payload: dict[str, Any] | bytes
    files: Mapping[str, cc.Upload] = attrs.field(converter=_copy_files)
    code: str
    requires_absent: bool = False

    @property
    def status(self) -> int:
        """The HTTP status of :attr:`code` (R29)."""
        return R29_STATUS[self.code]


# -- small pieces ---------------------------------------------------------------------------------
#
# Every strategy is built once (module constants, or functions under functools.cache keyed by
# their hashable options): building and validating strategies inside a composite costs more than
# drawing from them.

_T = TypeVar("_T")


def _pick(draw: st.DrawFn, options: Sequence[_T]) -> _T:
    """Draw one of ``options``; shrinks towards the first."""
    return options[draw(st.integers(0, len(options) - 1))]


def _one_in(draw: st.DrawFn, n: int) -> bool:
    """Draw ``True`` about once in ``n`` draws."""
    return draw(st.integers(0, n - 1)) == 0


def _texts(*, min_size: int = 0, max_size: int) -> st.SearchStrategy[str]:
    """Valid text: any character but a lone surrogate (controls are fine in titles, R7)."""
    return st.text(st.characters(codec="utf-8"), min_size=min_size, max_size=max_size)


def _id_texts(*, max_size: int) -> st.SearchStrategy[str]:
    """Non-empty valid text without control characters (R2)."""
    return st.text(
        st.characters(codec="utf-8", exclude_characters=_CONTROLS), min_size=1, max_size=max_size
    )


def _compact_size(value: object) -> int:
    """Size as R9 measures it: compact UTF-8 JSON."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8"))


@functools.cache
def _json_values(*, max_leaves: int = 4) -> st.SearchStrategy[Any]:
    """Small JSON values: finite numbers, valid text."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        _texts(max_size=12),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(_texts(max_size=8), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def _json_objects(*, max_bytes: int, min_size: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Valid JSON objects within ``max_bytes`` as compact JSON (R9, R16)."""
    if max_bytes < 64:  # keep the filter cheap: tiny objects for tiny limits
        small = st.dictionaries(
            _texts(max_size=2), st.integers(0, 9), min_size=min_size, max_size=2
        )
        return small.filter(lambda value: _compact_size(value) <= max_bytes)
    return st.dictionaries(
        _texts(max_size=8), _json_values(), min_size=min_size, max_size=4
    ).filter(lambda value: _compact_size(value) <= max_bytes)


@functools.cache
def _unknown_keys(known: frozenset[str]) -> st.SearchStrategy[str]:
    """Keys the rule book does not know (R18)."""
    return st.one_of(
        st.sampled_from(["sku", "price", "alt", "Title", "external_id", "images ", "a.b"]),
        _texts(min_size=1, max_size=8),
    ).filter(lambda key: key not in known)


@functools.cache
def _unknown_fields(known: frozenset[str], max_size: int) -> st.SearchStrategy[dict[str, Any]]:
    """``{}`` three times in four, else unknown keys with small JSON values (R18)."""
    fields = st.dictionaries(
        _unknown_keys(known), _json_values(max_leaves=2), min_size=1, max_size=max_size
    )
    return st.one_of(st.just({}), st.just({}), st.just({}), fields)


@functools.cache
def _external_ids(*, max_size: int, allow_reserved: bool) -> st.SearchStrategy[str]:
    plain = _id_texts(max_size=max_size).filter(lambda text: not text.startswith(_ANON_PREFIX))
    if not allow_reserved or max_size < len(_ANON_PREFIX):
        return plain
    rest = st.text(
        st.characters(codec="utf-8", exclude_characters=_CONTROLS),
        max_size=min(24, max_size - len(_ANON_PREFIX)),
    )
    return plain | rest.map(_ANON_PREFIX.__add__)


def _as_strategy(value: str | st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.just(value) if isinstance(value, str) else value


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
def _urls(*, max_length: int = RULE_BOOK_LIMITS.max_url_length) -> st.SearchStrategy[str]:
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
def _texts_or_null(max_length: int) -> st.SearchStrategy[str | None]:
    """Valid titles or descriptions (R7): ``null``, short text, now and then a boundary."""
    boundary = ["", "x" * max_length, "line\nbreak\t", "😀😀😀"]
    return st.one_of(
        st.none(),
        _texts(max_size=min(40, max_length)),
        st.sampled_from([text for text in boundary if len(text) <= max_length]),
    )


_IMAGE_BYTES: Final = st.builds(
    bytes.__add__, st.sampled_from(_IMAGE_HEADS), st.binary(max_size=16)
)  # a recognised image (R15) of 12 bytes or more, with a varying tail
_CLAIMED: Final = st.sampled_from(_CLAIMED_TYPES)  # never trusted (R15), so drawn apart
_UPLOADS: Final = st.builds(cc.Upload, _IMAGE_BYTES, _CLAIMED)
_PART_NAME_LISTS: Final = st.lists(
    st.one_of(
        st.sampled_from(["front", "back", "side.jpg", "photo 1.png", "ünï"]),
        _texts(min_size=1, max_size=10),
    ).filter(lambda name: name != "data"),  # R32: ``data`` is the JSON part
    min_size=1,
    max_size=3,
    unique=True,
)
_NOT_IMAGE_BYTES: Final = st.sampled_from(_NOT_IMAGES) | st.binary(max_size=20).map(b"GIF8".__add__)
_ANY_PART_BYTES: Final = st.sampled_from(_NOT_IMAGES) | _IMAGE_BYTES


@functools.cache
def _metadata(max_bytes: int) -> st.SearchStrategy[dict[str, Any] | None]:
    """``null`` or a JSON object within ``max_bytes`` (R9)."""
    if max_bytes < 2:  # "{}" is the smallest object
        return st.none()
    return st.none() | _json_objects(max_bytes=max_bytes)


@functools.cache
def _valid_for_days(*, allow_null: bool = True) -> st.SearchStrategy[int | None]:
    """1-365, or also ``null`` (R10)."""
    days = st.integers(1, _MAX_VALID_FOR_DAYS)
    return (st.none() | days) if allow_null else days


def accounts() -> st.SearchStrategy[str]:
    """Valid accounts: non-empty strings of valid Unicode without control characters.

    The decision table refuses, as for an externalId, control characters (U+0000-U+001F, U+007F)
    and lone surrogates in an account; anything else is an opaque tenant name.
    """
    return _id_texts(max_size=32)


def external_ids(*, allow_reserved: bool = False) -> st.SearchStrategy[str]:
    """Valid upsert ids (R2, R3): 1-256 characters, no control character, no lone surrogate.

    C1 controls (U+0080-U+009F) are allowed: R2 refuses only U+0000-U+001F and U+007F.

    Args:
        allow_reserved: also draw ids starting with ``_anon_``; an upsert refuses those with
            ``RESERVED_EXTERNAL_ID``, while get, delete and reference uses accept them.
    """
    return _external_ids(
        max_size=RULE_BOOK_LIMITS.max_external_id_length, allow_reserved=allow_reserved
    )


# -- valid requests -------------------------------------------------------------------------------

#: One image entry before its file part is known: (shape, source, url, part index,
#: classifications or ``...`` for none, unknown entry keys, unknown source keys).
_EntrySpec = tuple[str, str, str, int, Any, dict[str, Any], dict[str, Any]]


@functools.cache
def _entry_spec_lists(*, deprecated: bool) -> st.SearchStrategy[list[_EntrySpec]]:
    classifications = st.one_of(
        st.just(...),
        st.none(),
        st.just({}),  # R16: null and {} both mean none
        _json_objects(max_bytes=RULE_BOOK_LIMITS.max_classifications_bytes, min_size=1),
    )
    spec = st.tuples(
        st.sampled_from(["canonical", "flat"] if deprecated else ["canonical"]),
        st.sampled_from(["url", "file"]),
        _urls(),
        st.integers(0, 3),
        classifications,
        _unknown_fields(_ENTRY_KEYS, 1),
        _unknown_fields(_SOURCE_KEYS, 1),
    )
    return st.lists(spec, min_size=1, max_size=4)


_URL_LISTS: Final = st.lists(_urls(), min_size=1, max_size=3)


def _entry(spec: _EntrySpec, part_names: list[str], *, use_file: bool = False) -> dict[str, Any]:
    shape, source_kind, url, index, classifications, unknown, source_unknown = spec
    if (use_file or source_kind == "file") and part_names:
        source: dict[str, Any] = {"fileKey": part_names[index % len(part_names)]}
    else:
        source = {"url": url}
    if shape == "canonical":
        entry: dict[str, Any] = {"source": {**source, **source_unknown}}
    else:
        entry = dict(source)  # R17: the deprecated flat entry is its own source
    if classifications is not ...:
        entry["classifications"] = classifications
    entry.update(unknown)
    return entry


def _uses_file(entry: Mapping[str, Any]) -> bool:
    source = entry.get("source", entry)
    return isinstance(source, Mapping) and "fileKey" in source


@functools.cache
def _product_fields(*, allow_null_days: bool) -> dict[str, st.SearchStrategy[Any]]:
    limits = RULE_BOOK_LIMITS
    return {
        "title": _texts_or_null(limits.max_title_length),
        "description": _texts_or_null(limits.max_description_length),
        "metadata": _metadata(limits.max_metadata_bytes),
        "validForDays": _valid_for_days(allow_null=allow_null_days),
    }


@functools.cache
def _optional_fields(*, allow_null_days: bool) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=_product_fields(allow_null_days=allow_null_days))


_Pair = tuple[dict[str, Any], dict[str, cc.Upload]]


@st.composite
def _product_requests(
    draw: st.DrawFn,
    *,
    ids: st.SearchStrategy[str] | None,
    multipart: bool | None,
    deprecated: bool,
    images_required: bool,
    require_field: bool,
    allow_null_days: bool,
) -> _Pair:
    payload: dict[str, Any] = {}
    if ids is not None:
        payload["externalId"] = draw(ids)
    elif draw(st.booleans()):
        payload["externalId"] = None  # R22c: missing or null both mean one-shot
    payload.update(draw(_optional_fields(allow_null_days=allow_null_days)))

    use_multipart = draw(st.booleans()) if multipart is None else multipart
    with_images = images_required or draw(st.booleans())
    files: dict[str, cc.Upload] = {}
    if use_multipart:
        files = {name: draw(_UPLOADS) for name in draw(_PART_NAME_LISTS)}
    if with_images:
        if deprecated and not use_multipart and _one_in(draw, 5):
            payload["imageUrls"] = draw(_URL_LISTS)  # R17
        else:
            specs = draw(_entry_spec_lists(deprecated=deprecated))
            entries = [_entry(spec, list(files)) for spec in specs]
            if files and not any(_uses_file(entry) for entry in entries):
                # A multipart request names at least one of its parts.
                entries[0] = _entry(specs[0], list(files), use_file=True)
            payload["images"] = entries

    if require_field and not (_PRODUCT_KEYS - {"externalId"}) & payload.keys():
        fields = _product_fields(allow_null_days=allow_null_days)
        key = _pick(draw, sorted(fields))
        payload[key] = draw(fields[key])
    payload.update(draw(_unknown_fields(_PRODUCT_KEYS, 2)))  # R18: ignored, with a warning each
    return payload, files


def upsert_payloads(
    *,
    multipart: bool | None = None,
    deprecated: bool = True,
    partial: bool = False,
    external_id: str | st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[UpsertRequest]:
    """Valid upsert requests, in every shape the rule book accepts (R2-R18, R32).

    Images are canonical (``{"source": {"url" | "fileKey"}, "classifications"?}``) or, with
    ``deprecated``, the flat ``{url}`` / ``{fileKey}`` entries and the top-level ``imageUrls``
    (R17). ``title`` and ``description`` are strings or ``null``, ``metadata`` an object or
    ``null``, ``validForDays`` 1-365, ``null`` or omitted; unknown keys appear now and then (each
    gives a warning, R18). A multipart request's ``files`` hold real image bytes (JPEG, PNG, WebP,
    HEIC/HEIF, AVIF headers) under the part names its ``fileKey`` values use; a part that no image
    names may be there too (a warning, R32).

    Args:
        multipart: ``True`` for multipart requests only, ``False`` for JSON only, ``None`` both.
        deprecated: also draw the deprecated image shapes.
        partial: draw updates: every product field may be omitted, images included, so a payload
            without images is valid only for an existing product (R6). ``False`` draws payloads
            that create as well as update.
        external_id: the id, or a strategy of ids; by default :func:`external_ids`. It must be a
            valid id that does not start with ``_anon_``.
    """
    ids = external_ids() if external_id is None else _as_strategy(external_id)
    pairs = _product_requests(
        ids=ids,
        multipart=multipart,
        deprecated=deprecated,
        images_required=not partial,
        require_field=False,
        allow_null_days=True,
    )
    return pairs.map(lambda pair: UpsertRequest(*pair))


def use_items(
    *,
    kind: Literal["reference", "inline", "one_shot"] | None = None,
    external_id: str | st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[UseRequest]:
    """Valid try-on product items (R22), of three kinds.

    - ``reference``: ``{externalId}`` alone (now and then with an unknown key, which is ignored
      with a warning). The product must be live, else ``PRODUCT_NOT_FOUND``.
    - ``inline``: an id and at least one product field, shaped as :func:`upsert_payloads` with
      ``partial=True``. An item without images creates nothing (``PRODUCT_IMAGES_REQUIRED``), so
      it is valid only for an existing product.
    - ``one_shot``: no ``externalId`` (missing or ``null``), images, and ``validForDays`` a number
      or omitted (``null`` is refused: a one-shot product always expires).

    Args:
        kind: one kind only; ``None`` draws all three.
        external_id: the id of reference and inline items, or a strategy of ids; by default
            :func:`external_ids`. It must be valid; only a reference may name an ``_anon_`` id.
    """
    if kind not in (None, "reference", "inline", "one_shot"):
        raise InvalidArgument(
            f"kind must be 'reference', 'inline', 'one_shot' or None, not {kind!r}"
        )
    ids = external_ids() if external_id is None else _as_strategy(external_id)
    by_kind = {
        "reference": st.builds(
            lambda identifier, extra: UseRequest(
                {"externalId": identifier, **extra}, kind="reference"
            ),
            ids,
            _unknown_fields(_PRODUCT_KEYS, 1),
        ),
        "inline": _product_requests(
            ids=ids,
            multipart=None,
            deprecated=True,
            images_required=False,
            require_field=True,
            allow_null_days=True,
        ).map(lambda pair: UseRequest(*pair, kind="inline")),
        "one_shot": _product_requests(
            ids=None,
            multipart=None,
            deprecated=True,
            images_required=True,
            require_field=False,
            allow_null_days=False,
        ).map(lambda pair: UseRequest(*pair, kind="one_shot")),
    }
    if kind is None:
        return st.one_of(by_kind["reference"], by_kind["inline"], by_kind["one_shot"])
    return by_kind[kind]


# -- invalid requests -----------------------------------------------------------------------------

_URL: Final = "https://cdn.example/a.jpg"
_ONE_IMAGE: Final = ({"source": {"url": _URL}},)


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def _big_image(size: int) -> bytes:
    head = _IMAGE_HEADS[0]
    return head + b"\x00" * max(0, size - len(head))


class _Refused:
    """The refused values for one ``Limits``, built once (see :func:`_refused`)."""

    def __init__(self, limits: cc.Limits) -> None:
        self.limits = limits
        self.ids: tuple[Any, ...] = (  # R2: VALIDATION_FAILED
            42,
            True,
            ["id"],
            {"id": 1},
            "x" * (limits.max_external_id_length + 1),
            "a\x00b",
            "tab\tid",
            "del\x7f",
            "\ud800",
            _ANON_PREFIX + "\x00",  # a field problem outranks the reserved prefix (R30)
        )
        room = limits.max_external_id_length - len(_ANON_PREFIX)
        rest = (st.just("") | _id_texts(max_size=min(24, room))) if room > 0 else st.just("")
        self.reserved_ids = rest.map(_ANON_PREFIX.__add__)  # R3
        self.titles: tuple[Any, ...] = (  # R7
            42,
            True,
            ["text"],
            {"text": 1},
            "x" * (limits.max_title_length + 1),
            "\ud800",
        )
        self.descriptions: tuple[Any, ...] = (  # R7
            42,
            False,
            ["text"],
            "x" * (limits.max_description_length + 1),
            "bad\ud800text",
        )
        self.metadata: tuple[tuple[Any, bool], ...] = (  # R9: (value, whether JSON text has it)
            ([], True),
            ("meta", True),
            (42, True),
            (True, True),
            ([{"a": 1}], True),
            ({"k": "x" * limits.max_metadata_bytes}, True),
            ({"text": "bad\ud800"}, True),
            (_nested(70), True),
            ({"n": float("nan")}, False),
            ({"n": float("inf")}, False),
            ({1: "an integer key"}, False),
            ({"t": (1, 2)}, False),
        )
        self.urls: tuple[Any, ...] = (  # R13
            42,
            None,
            "ftp://cdn.example/a.jpg",
            "//cdn.example/a.jpg",
            "cdn.example/a.jpg",
            "https://",
            "https:///a.jpg",
            "https://exa mple.com/a.jpg",
            "https://cdn.example/a\x00.jpg",
            "https://cdn.example/\ud800.jpg",
            "https://cdn.example:99999/a.jpg",
            "http://[::1/a.jpg",
            "https://cdn.example/" + "x" * limits.max_url_length,
        )
        images = list(_ONE_IMAGE)
        too_many = limits.max_images + 1
        self.image_lists: tuple[tuple[str, Any], ...] = (  # R8, R17; decision table: null
            ("images", _URL),
            ("images", None),
            ("images", 42),
            ("images", images[0]),
            ("images", images * too_many),
            ("imageUrls", _URL),
            ("imageUrls", None),
            ("imageUrls", [42]),
            ("imageUrls", images),
            ("imageUrls", [_URL] * too_many),
            *(("imageUrls", [bad]) for bad in self.urls),
            ("both", (images, [_URL])),
        )
        self.classifications: tuple[tuple[Any, bool], ...] = (  # R16
            ([1], True),
            ("top", True),
            (42, True),
            ({"k": "x" * limits.max_classifications_bytes}, True),
            (_nested(70), True),
            ({"n": float("nan")}, False),
        )
        self._optional: dict[frozenset[str], st.SearchStrategy[dict[str, Any]]] = {}

    def optional_fields(self, refused: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
        """Valid, optional values for the fields that hold no problem."""
        if refused not in self._optional:
            limits = self.limits
            fields = {
                "title": _texts_or_null(min(40, limits.max_title_length)),
                "description": _texts_or_null(min(40, limits.max_description_length)),
                "metadata": _metadata(min(64, limits.max_metadata_bytes)),
                "validForDays": _valid_for_days(),
            }
            free = {key: value for key, value in fields.items() if key not in refused}
            self._optional[refused] = st.fixed_dictionaries({}, optional=free)
        return self._optional[refused]


@functools.cache
def _refused(limits: cc.Limits) -> _Refused:
    return _Refused(limits)


_VALIDATION_DAYS: Final = (0, -1, 366, 10**20, 2.0, 1.5, True, False, "7", [7], {"days": 7})


class _Case:
    """An invalid request under construction: slots that each hold one value or one problem."""

    def __init__(self, limits: cc.Limits) -> None:
        self.limits = limits
        self.refused = _refused(limits)
        #: (code, value): ``...`` as the value omits the id.
        self.id_slot: tuple[str, Any] | None = None
        self.fields: dict[str, Any] = {}  # field -> a refused value
        #: (state, value) of the image list; "entries" when entries are listed one by one.
        self.images: tuple[str, Any] | None = None
        self.entries: list[tuple[Any, str]] = []  # (refused entry, its code)
        self.files: dict[str, cc.Upload] = {}
        self.file_codes: dict[str, str | None] = {}  # part name -> its problem, if any
        self.oversize: str | None = None  # "part" or "body": PAYLOAD_TOO_LARGE
        self.python_only = False  # holds values JSON text cannot carry
        self._names = 0

    def name(self, stem: str) -> str:
        self._names += 1
        return f"{stem}-{self._names}"

    def add_file(self, stem: str, data: bytes, mime_type: str | None, *, image: bool) -> str:
        """Add a part; its problem is its size first, then its bytes (R15)."""
        name = self.name(stem)
        self.files[name] = cc.Upload(data, mime_type)
        if len(data) > self.limits.max_file_bytes:
            self.file_codes[name] = "FILE_TOO_LARGE"
        else:
            self.file_codes[name] = None if image else "INVALID_IMAGE"
        return name

    @property
    def entries_open(self) -> bool:
        return self.images is None or self.images[0] == "entries"


def _draw_fault(draw: st.DrawFn, case: _Case, code: str) -> None:
    """Put one problem with ``code`` into a free slot of ``case``; do nothing if none is free."""
    if code == "EXTERNAL_ID_REQUIRED":  # R2: missing, null or ""
        if case.id_slot is None:
            case.id_slot = (code, _pick(draw, (..., None, "")))
    elif code == "RESERVED_EXTERNAL_ID":
        if case.id_slot is None:
            case.id_slot = (code, draw(case.refused.reserved_ids))
    elif code == "VALIDATION_FAILED":
        slots = [
            key
            for key in ("title", "description", "metadata", "validForDays")
            if key not in case.fields
        ]
        slots += ["id"] if case.id_slot is None else []
        slots += ["images"] if case.images is None else []
        slots += ["entry"] if case.entries_open else []
        if slots:
            _draw_validation_fault(draw, case, _pick(draw, slots))
    elif code == "PRODUCT_IMAGES_REQUIRED":  # R5, R8
        if case.images is None:
            case.images = (_pick(draw, ("omitted", "images", "imageUrls")), [])
    elif code == "PAYLOAD_TOO_LARGE":
        case.oversize = case.oversize or _pick(draw, ("part", "body"))
    elif case.entries_open:
        case.images = ("entries", None)
        case.entries.append(_draw_entry_fault(draw, case, code))


def _draw_validation_fault(draw: st.DrawFn, case: _Case, slot: str) -> None:
    refused = case.refused
    if slot == "id":
        case.id_slot = ("VALIDATION_FAILED", _pick(draw, refused.ids))
    elif slot == "title":
        case.fields[slot] = _pick(draw, refused.titles)
    elif slot == "description":
        case.fields[slot] = _pick(draw, refused.descriptions)
    elif slot == "metadata":
        case.fields[slot], as_text = _pick(draw, refused.metadata)
        case.python_only |= not as_text
    elif slot == "validForDays":  # R10
        case.fields[slot] = _pick(draw, _VALIDATION_DAYS)
    elif slot == "images":
        case.images = _pick(draw, refused.image_lists)
    else:
        case.images = ("entries", None)
        case.entries.append(_draw_entry_fault(draw, case, "VALIDATION_FAILED"))


def _draw_entry_fault(draw: st.DrawFn, case: _Case, code: str) -> tuple[Any, str]:
    """Return one refused image entry and its code ("FILE" for a file that is checked later)."""
    refused = case.refused
    if code == "VALIDATION_FAILED":
        kind = _pick(draw, ("entry", "url", "flat_url", "key", "source", "classifications"))
        if kind == "entry":
            return _pick(draw, ("not an object", 42, None, [_URL])), code
        if kind == "url":  # R13
            return {"source": {"url": _pick(draw, refused.urls)}}, code
        if kind == "flat_url":
            return {"url": _pick(draw, refused.urls)}, code
        if kind == "key":  # decision table: a non-empty string without lone surrogates
            return {"source": {"fileKey": _pick(draw, ("", 7, None, "\ud800"))}}, code
        if kind == "source":
            return {"source": _pick(draw, (_URL, 42, None, [_URL]))}, code
        classifications, as_text = _pick(draw, refused.classifications)
        case.python_only |= not as_text
        return {"source": {"url": _URL}, "classifications": classifications}, code
    if code == "INVALID_IMAGE_INPUT":  # R12, decision table
        key = case.name("key")
        entries: tuple[dict[str, Any], ...] = (
            {"source": {}},
            {"source": {"alt": "front"}},
            {"source": {"url": _URL, "fileKey": key}},
            {"source": {"url": _URL}, "url": _URL},
            {"source": {"fileKey": key}, "fileKey": key},
            {"url": _URL, "fileKey": key},
            {},
            {"classifications": {"kind": "top"}},
        )
        return _pick(draw, entries), code
    if code == "MULTIPART_FILE_NOT_FOUND":  # R14
        key = case.name("absent")
        return _pick(draw, ({"source": {"fileKey": key}}, {"fileKey": key})), code
    if code == "INVALID_IMAGE":  # R15
        data = draw(_NOT_IMAGE_BYTES)
        name = case.add_file("bad", data, draw(_CLAIMED), image=False)
        return {"source": {"fileKey": name}}, "FILE"
    # FILE_TOO_LARGE (R15)
    data = _big_image(case.limits.max_file_bytes + 1)
    name = case.add_file("big", data, "image/jpeg", image=True)
    return {"source": {"fileKey": name}}, "FILE"


def _valid_entry(draw: st.DrawFn, case: _Case) -> dict[str, Any]:
    kind = _pick(draw, ("canonical", "flat", "file"))
    if kind == "file":
        name = case.add_file("image", draw(_IMAGE_BYTES), draw(_CLAIMED), image=True)
        return {"source": {"fileKey": name}}
    url = draw(_urls(max_length=case.limits.max_url_length))
    return {"source": {"url": url}} if kind == "canonical" else {"url": url}


def _first_file_problem(case: _Case, entries: list[Any]) -> str | None:
    """The problem of the first failing file in image order (R30), if any."""
    for entry in entries:
        source = entry.get("source", entry) if isinstance(entry, Mapping) else None
        key = source.get("fileKey") if isinstance(source, Mapping) else None
        problem = case.file_codes.get(key) if isinstance(key, str) else None
        if problem is not None:
            return problem
    return None


def _json_safe(payload: dict[str, Any]) -> bool:
    """Whether JSON text carries ``payload`` unchanged, so it may also be sent as a raw body."""
    try:
        return bool(json.loads(json.dumps(payload, allow_nan=False)) == payload)
    except (ValueError, RecursionError):
        return False


_NOT_OBJECTS: Final = (
    b"",
    b"null",
    b"[]",
    b'[{"externalId": "shirt-1"}]',
    b"42",
    b'"shirt-1"',
    b"true",
    b"{",
    b'{"externalId": ',
    b"not json",
    b"\xff\xfe{}",
    b'{"externalId": "\xff"}',  # not UTF-8
    b'{"externalId": "shirt-1", "title": NaN}',  # not JSON
    b'{"externalId": "shirt-1", "validForDays": Infinity}',
)
_CODES: Final = (
    "EXTERNAL_ID_REQUIRED",
    "VALIDATION_FAILED",
    "INVALID_IMAGE_INPUT",
    "MULTIPART_FILE_NOT_FOUND",
    "INVALID_IMAGE",
    "PRODUCT_IMAGES_REQUIRED",
    "RESERVED_EXTERNAL_ID",
)
_SIZE_CODES: Final = ("FILE_TOO_LARGE", "PAYLOAD_TOO_LARGE")


@st.composite
def _invalid_requests(
    draw: st.DrawFn, *, limits: cc.Limits, ids: st.SearchStrategy[str], sized: bool
) -> InvalidUpsertRequest:
    codes = _CODES + _SIZE_CODES if sized else _CODES
    primary = _pick(draw, ("BODY", *codes))
    if primary == "BODY":  # R30: a body that is not a JSON object
        body = _pick(draw, _NOT_OBJECTS)
        too_large = len(body) > limits.max_request_bytes
        return InvalidUpsertRequest(
            body, {}, "PAYLOAD_TOO_LARGE" if too_large else "VALIDATION_FAILED"
        )

    case = _Case(limits)
    _draw_fault(draw, case, primary)
    for _ in range(draw(st.integers(0, 2))):  # more problems: R30 picks the error
        _draw_fault(draw, case, _pick(draw, codes))
    payload, found = _assemble(draw, case, ids)
    code = found or "PAYLOAD_TOO_LARGE"  # a request whose only problem is its size
    requires_absent = code == "PRODUCT_IMAGES_REQUIRED" and case.images == ("omitted", [])

    body_or_payload: dict[str, Any] | bytes = payload
    raw = case.oversize == "body" or (not case.python_only and draw(st.booleans()))
    if raw and _json_safe(payload):
        text = json.dumps(payload).encode("ascii")  # lone surrogates travel as \ud800 escapes
        if case.oversize == "body":
            text += b" " * (limits.max_request_bytes + 1 - len(text))
        body_or_payload = text
    if case.oversize == "part" or (case.oversize == "body" and isinstance(body_or_payload, dict)):
        case.files[case.name("padding")] = cc.Upload(_big_image(limits.max_request_bytes + 1))

    size = sum(len(upload.data) for upload in case.files.values())
    if isinstance(body_or_payload, bytes):
        size += len(body_or_payload)
    if size > limits.max_request_bytes:  # R30: checked before anything is parsed
        code, requires_absent = "PAYLOAD_TOO_LARGE", False
    return InvalidUpsertRequest(body_or_payload, case.files, code, requires_absent)


def _assemble(
    draw: st.DrawFn, case: _Case, ids: st.SearchStrategy[str]
) -> tuple[dict[str, Any], str | None]:
    """Fill the free slots of ``case`` with valid values; return the payload and its code."""
    found: set[str] = set()
    payload: dict[str, Any] = {}
    if case.id_slot is None:
        payload["externalId"] = draw(ids)
    else:
        code, value = case.id_slot
        if value is not ...:
            payload["externalId"] = value
        found.add(code)

    payload.update(draw(case.refused.optional_fields(frozenset(case.fields))))
    payload.update(case.fields)
    if case.fields:
        found.add("VALIDATION_FAILED")

    if case.entries_open:
        listed: list[tuple[Any, str | None]] = list(case.entries)
        for _ in range(draw(st.integers(0 if listed else 1, 2))):
            listed.append((_valid_entry(draw, case), None))
        if len(listed) > 1:
            listed = draw(st.permutations(listed))
        entries = [entry for entry, _ in listed]
        payload["images"] = entries
        if len(entries) > case.limits.max_images:
            found.add("VALIDATION_FAILED")  # R8: the list is refused before any entry is read
        else:
            found.update(code for _, code in listed if code is not None and code != "FILE")
            file_problem = _first_file_problem(case, entries)
            if file_problem is not None:
                found.add(file_problem)
    else:
        assert case.images is not None
        state, value = case.images
        if state == "omitted":  # R5: a create without images
            found.add("PRODUCT_IMAGES_REQUIRED")
        elif state == "both":  # R17
            payload["images"], payload["imageUrls"] = value
            found.add("VALIDATION_FAILED")
        else:
            payload[state] = value
            found.add("PRODUCT_IMAGES_REQUIRED" if value == [] else "VALIDATION_FAILED")

    if _one_in(draw, 4):  # a part no image names: ignored with a warning (R32)
        case.files[case.name("unused")] = cc.Upload(draw(_ANY_PART_BYTES))
    payload.update(draw(_unknown_fields(_PRODUCT_KEYS, 1)))  # R18: ignored with a warning
    # None: the only problem is the request's size, which the caller adds.
    return payload, next((code for code in _PRECEDENCE if code in found), None)


def invalid_upsert_payloads(
    *,
    limits: cc.Limits | None = None,
    external_id: str | st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[InvalidUpsertRequest]:
    """Upsert requests the catalog must refuse, each with the one code R30 says it gives.

    Every code that an upsert of one payload gives without depending on stored state is drawn:
    ``VALIDATION_FAILED`` (a body that is not a JSON object, and problems in every field: the id,
    title, description, metadata, validForDays, the image list, an entry, a URL, a file key, a
    source, classifications, ``images`` with ``imageUrls``), ``EXTERNAL_ID_REQUIRED``,
    ``INVALID_IMAGE_INPUT``, ``RESERVED_EXTERNAL_ID``, ``MULTIPART_FILE_NOT_FOUND``,
    ``INVALID_IMAGE`` and ``PRODUCT_IMAGES_REQUIRED`` (``images: []``, ``imageUrls: []``, or a
    create without images: see :attr:`InvalidUpsertRequest.requires_absent`). Problems are often
    combined, and the code is then the first in R30's order (for files, the first failing file in
    image order decides). Parts no image names are added now and then: they never change the code
    (R32). About half of the payloads that JSON text can carry come as raw bytes.

    Args:
        limits: the limits the catalog under test enforces. When given, ``FILE_TOO_LARGE`` and
            ``PAYLOAD_TOO_LARGE`` are drawn too, with a file (or body) one byte over the limit;
            pass small limits to keep examples cheap, e.g. ``cc.Limits(max_file_bytes=1024,
            max_request_bytes=4096)``, and give the catalog the same value. Without it the rule
            book's defaults apply and neither code is drawn (a 10 MiB file per example is not
            cheap). ``max_url_length`` must be at least 64.
        external_id: the id used when a case's id is not itself the problem, or a strategy of
            ids; by default valid ids within the limit. It must be valid and not ``_anon_``.
    """
    checked = RULE_BOOK_LIMITS if limits is None else limits
    if checked.max_url_length < 64:
        raise InvalidArgument("limits.max_url_length must be at least 64 to draw valid URLs")
    if external_id is None:
        ids = _external_ids(max_size=checked.max_external_id_length, allow_reserved=False)
    else:
        ids = _as_strategy(external_id)
    return _invalid_requests(limits=checked, ids=ids, sized=limits is not None)


# -- products -------------------------------------------------------------------------------------


def _moment(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


_ONE_SHOT_SUFFIXES: Final = st.text(_ONE_SHOT_ALPHABET, min_size=24, max_size=24)
_MOMENTS_MS: Final = st.integers(_MS_2000, _MS_2100)
_DELAYS_MS: Final = st.integers(0, 400 * _DAY_MS)
_SOURCE_LISTS: Final = st.lists(
    _urls() | st.binary(min_size=32, max_size=32).map(lambda digest: "upload://" + digest.hex()),
    min_size=1,
    max_size=4,
)
_STORED_CLASSIFICATIONS: Final = st.none() | _json_objects(
    max_bytes=RULE_BOOK_LIMITS.max_classifications_bytes, min_size=1
)
_VERSIONS: Final = st.integers(1, 10_000)


@st.composite
def _products(draw: st.DrawFn, *, owners: st.SearchStrategy[str]) -> cc.Product:
    limits = RULE_BOOK_LIMITS
    one_shot = _one_in(draw, 5)
    external_id = _ANON_PREFIX + draw(_ONE_SHOT_SUFFIXES) if one_shot else draw(external_ids())
    created = draw(_MOMENTS_MS)
    updated = created + draw(_DELAYS_MS)
    last_used: int | None = None
    if one_shot or draw(st.booleans()):  # a one-shot product is made by a use (R22c)
        last_used = created + draw(_DELAYS_MS)
    days = draw(_valid_for_days(allow_null=not one_shot))
    expires = None if days is None else max(updated, last_used or updated) + days * _DAY_MS  # R19
    sources = draw(_SOURCE_LISTS)
    return cc.Product(
        account=draw(owners),
        external_id=external_id,
        title=draw(_texts_or_null(limits.max_title_length)),
        description=draw(_texts_or_null(limits.max_description_length)),
        metadata=draw(_metadata(limits.max_metadata_bytes)),
        valid_for_days=days,
        expires_at=None if expires is None else _moment(expires),
        last_used_at=None if last_used is None else _moment(last_used),
        created_at=_moment(created),
        updated_at=_moment(updated),
        images=tuple(
            cc.Image(source, order, draw(_STORED_CLASSIFICATIONS))
            for order, source in enumerate(sources)
        ),
        version=draw(_VERSIONS),
    )


def products(
    *, account: str | st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[cc.Product]:
    """``cc.Product`` values that keep the model's invariants, for wire round-trip tests (R31).

    Timestamps are UTC whole milliseconds; ``updatedAt`` and ``lastUsedAt`` are not before
    ``createdAt``; ``version >= 1``; images are ordered 0..n-1, with URL or ``upload://<sha256>``
    sources and classifications that are ``None`` or a non-empty object (R16); ``expiresAt``
    follows R19. About one product in five is a one-shot product (an ``_anon_`` id, used, and
    always expiring: R22c).

    Args:
        account: the account, or a strategy of accounts; by default :func:`accounts`.
    """
    return _products(owners=accounts() if account is None else _as_strategy(account))
