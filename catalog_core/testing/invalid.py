"""Hypothesis strategies for upserts the catalog must refuse, each with the one code R30 gives.

:func:`invalid_upsert_payloads` is also importable from :mod:`catalog_core.testing.strategies`,
beside the valid strategies::

    from hypothesis import given
    from catalog_core.testing.invalid import invalid_upsert_payloads

    @given(case=invalid_upsert_payloads())
    def test_my_server_refuses_with_the_right_code(case):
        ...  # expect case.code and case.status

A case is built in slots (the id, each field, the image list or its entries, the files), each
holding one valid value or one problem; the code it must give is the first of its problems in
R30's order, which the kit's rule book states once (``R30_ORDER``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import catalog_core as cc
from catalog_core.testing._book import (
    ANON_PREFIX,
    EDITABLE_FIELDS,
    MAX_DAYS,
    MIN_DAYS,
    PAYLOAD_KEYS,
    R29_STATUS,
    RULE_BOOK_LIMITS,
    WireField,
    first_in_r30_order,
)
from catalog_core.testing._pieces import (
    ANY_PART_BYTES,
    CLAIMED,
    IMAGE_BYTES,
    IMAGE_HEADS,
    NOT_IMAGE_BYTES,
    copy_files,
    external_id_texts,
    field_values,
    id_texts,
    one_in,
    pick,
    strategy_option,
    unknown_fields,
    urls,
)

__all__ = ["InvalidUpsertRequest", "invalid_upsert_payloads"]


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
    files: Mapping[str, cc.Upload] = attrs.field(converter=copy_files)
    code: str
    requires_absent: bool = False

    @property
    def status(self) -> int:
        """The HTTP status of :attr:`code` (R29)."""
        return R29_STATUS[self.code]


_URL: Final = "https://cdn.example/a.jpg"
_ONE_IMAGE: Final = ({"source": {"url": _URL}},)


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def _big_image(size: int) -> bytes:
    head = IMAGE_HEADS[0]
    return head + b"\x00" * max(0, size - len(head))


def _refused_values(field: WireField, limits: cc.Limits) -> tuple[tuple[Any, bool], ...]:
    """Values of an editable field that fail validation, each with whether JSON text has it."""
    if field.kind == "days":  # R10
        low, high = field.bounds or (MIN_DAYS, MAX_DAYS)
        days = (low - 1, -1, high + 1, 10**20, 2.0, 1.5, True, False, "7", [7], {"days": 7})
        return tuple((value, True) for value in days)
    bound = int(getattr(limits, field.limit or ""))
    if field.kind == "text":  # R7, R2: lone surrogates
        refused = (
            42,
            True,
            False,
            ["text"],
            {"text": 1},
            "x" * (bound + 1),
            "\ud800",
            "bad\ud800text",
        )
        return tuple((value, True) for value in refused)
    return (  # R9
        ([], True),
        ("meta", True),
        (42, True),
        (True, True),
        ([{"a": 1}], True),
        ({"k": "x" * bound}, True),
        ({"text": "bad\ud800"}, True),
        (_nested(70), True),
        ({"n": float("nan")}, False),
        ({"n": float("inf")}, False),
        ({1: "an integer key"}, False),
        ({"t": (1, 2)}, False),
    )


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
            ANON_PREFIX + "\x00",  # a field problem outranks the reserved prefix (R30)
        )
        room = limits.max_external_id_length - len(ANON_PREFIX)
        rest = (st.just("") | id_texts(max_size=min(24, room))) if room > 0 else st.just("")
        self.reserved_ids = rest.map(ANON_PREFIX.__add__)  # R3
        #: By editable field: (refused value, whether JSON text can carry it).
        self.fields = {field.name: _refused_values(field, limits) for field in EDITABLE_FIELDS}
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
            free = {
                field.name: field_values(field, self.limits, small=True)
                for field in EDITABLE_FIELDS
                if field.name not in refused
            }
            self._optional[refused] = st.fixed_dictionaries({}, optional=free)
        return self._optional[refused]


@functools.cache
def _refused(limits: cc.Limits) -> _Refused:
    return _Refused(limits)


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
            case.id_slot = (code, pick(draw, (..., None, "")))
    elif code == "RESERVED_EXTERNAL_ID":
        if case.id_slot is None:
            case.id_slot = (code, draw(case.refused.reserved_ids))
    elif code == "VALIDATION_FAILED":
        slots = [field.name for field in EDITABLE_FIELDS if field.name not in case.fields]
        slots += ["id"] if case.id_slot is None else []
        slots += ["images"] if case.images is None else []
        slots += ["entry"] if case.entries_open else []
        if slots:
            _draw_validation_fault(draw, case, pick(draw, slots))
    elif code == "PRODUCT_IMAGES_REQUIRED":  # R5, R8
        if case.images is None:
            case.images = (pick(draw, ("omitted", "images", "imageUrls")), [])
    elif code == "PAYLOAD_TOO_LARGE":
        case.oversize = case.oversize or pick(draw, ("part", "body"))
    elif case.entries_open:
        case.images = ("entries", None)
        case.entries.append(_draw_entry_fault(draw, case, code))


def _draw_validation_fault(draw: st.DrawFn, case: _Case, slot: str) -> None:
    refused = case.refused
    if slot == "id":
        case.id_slot = ("VALIDATION_FAILED", pick(draw, refused.ids))
    elif slot in refused.fields:
        case.fields[slot], as_text = pick(draw, refused.fields[slot])
        case.python_only |= not as_text
    elif slot == "images":
        case.images = pick(draw, refused.image_lists)
    else:
        case.images = ("entries", None)
        case.entries.append(_draw_entry_fault(draw, case, "VALIDATION_FAILED"))


def _draw_entry_fault(draw: st.DrawFn, case: _Case, code: str) -> tuple[Any, str]:
    """Return one refused image entry and its code ("FILE" for a file that is checked later)."""
    refused = case.refused
    if code == "VALIDATION_FAILED":
        kind = pick(draw, ("entry", "url", "flat_url", "key", "source", "classifications"))
        if kind == "entry":
            return pick(draw, ("not an object", 42, None, [_URL])), code
        if kind == "url":  # R13
            return {"source": {"url": pick(draw, refused.urls)}}, code
        if kind == "flat_url":
            return {"url": pick(draw, refused.urls)}, code
        if kind == "key":  # decision table: a non-empty string without lone surrogates
            return {"source": {"fileKey": pick(draw, ("", 7, None, "\ud800"))}}, code
        if kind == "source":
            return {"source": pick(draw, (_URL, 42, None, [_URL]))}, code
        classifications, as_text = pick(draw, refused.classifications)
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
        return pick(draw, entries), code
    if code == "MULTIPART_FILE_NOT_FOUND":  # R14
        key = case.name("absent")
        return pick(draw, ({"source": {"fileKey": key}}, {"fileKey": key})), code
    if code == "INVALID_IMAGE":  # R15
        data = draw(NOT_IMAGE_BYTES)
        name = case.add_file("bad", data, draw(CLAIMED), image=False)
        return {"source": {"fileKey": name}}, "FILE"
    # FILE_TOO_LARGE (R15)
    data = _big_image(case.limits.max_file_bytes + 1)
    name = case.add_file("big", data, "image/jpeg", image=True)
    return {"source": {"fileKey": name}}, "FILE"


def _valid_entry(draw: st.DrawFn, case: _Case) -> dict[str, Any]:
    kind = pick(draw, ("canonical", "flat", "file"))
    if kind == "file":
        name = case.add_file("image", draw(IMAGE_BYTES), draw(CLAIMED), image=True)
        return {"source": {"fileKey": name}}
    url = draw(urls(max_length=case.limits.max_url_length))
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
    primary = pick(draw, ("BODY", *codes))
    if primary == "BODY":  # R30: a body that is not a JSON object
        body = pick(draw, _NOT_OBJECTS)
        too_large = len(body) > limits.max_request_bytes
        return InvalidUpsertRequest(
            body, {}, "PAYLOAD_TOO_LARGE" if too_large else "VALIDATION_FAILED"
        )

    case = _Case(limits)
    _draw_fault(draw, case, primary)
    for _ in range(draw(st.integers(0, 2))):  # more problems: R30 picks the error
        _draw_fault(draw, case, pick(draw, codes))
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

    images = case.images
    if images is None or images[0] == "entries":  # entries listed one by one
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
        state, value = images
        if state == "omitted":  # R5: a create without images
            found.add("PRODUCT_IMAGES_REQUIRED")
        elif state == "both":  # R17
            payload["images"], payload["imageUrls"] = value
            found.add("VALIDATION_FAILED")
        else:
            payload[state] = value
            found.add("PRODUCT_IMAGES_REQUIRED" if value == [] else "VALIDATION_FAILED")

    if one_in(draw, 4):  # a part no image names: ignored with a warning (R32)
        case.files[case.name("unused")] = cc.Upload(draw(ANY_PART_BYTES))
    payload.update(draw(unknown_fields(PAYLOAD_KEYS, 1)))  # R18: ignored with a warning
    # None: the only problem is the request's size, which the caller adds.
    return payload, first_in_r30_order(found)


def invalid_upsert_payloads(
    *,
    limits: cc.Limits | None = None,
    external_id: st.SearchStrategy[str] | None = None,
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
        external_id: a strategy of the ids used when a case's id is not itself the problem
            (``st.just("shirt-1")`` for one id); by default valid ids within the limit. They must
            be valid and not start with ``_anon_``.

    Raises:
        InvalidArgument: ``limits.max_url_length`` is under 64, or ``external_id`` is not a
            strategy.
    """
    checked = RULE_BOOK_LIMITS if limits is None else limits
    if checked.max_url_length < 64:
        raise InvalidArgument("limits.max_url_length must be at least 64 to draw valid URLs")
    default = external_id_texts(max_size=checked.max_external_id_length, allow_reserved=False)
    ids = strategy_option("external_id", external_id, default)
    return _invalid_requests(limits=checked, ids=ids, sized=limits is not None)
