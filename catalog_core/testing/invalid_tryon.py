"""Hypothesis strategies for try-ons and uploads the try-on flow must refuse, each with its code.

Both are also importable from :mod:`catalog_core.testing.strategies`::

    from hypothesis import given
    from catalog_core.testing.strategies import invalid_tryon_bodies

    @given(case=invalid_tryon_bodies())
    def test_my_server_refuses_with_the_right_code(case):
        ...  # expect case.code and case.status

A case is built in slots, as :mod:`catalog_core.testing.invalid` builds upserts: for a try-on, the
product list, its one item, the customer id, the output options, the person and the request's
size; for an upload, the file and each text field. Each slot holds a valid value or one problem,
and the code a case must give is the first of its problems in the rule book's order (``T9_ORDER``
for a try-on, ``UPLOAD_ORDER`` for an upload, both kept as data in the kit's ``_book``). Only
problems that need no stored state are drawn, so every case is refused the same way by every
catalog (a person ``id`` is drawn that no catalog holds: ``img_`` and 24 random characters).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import catalog_core as cc
from catalog_core.testing._book import (
    ANON_PREFIX,
    MAX_CUSTOMER_ID_LENGTH,
    ONE_SHOT_ALPHABET,
    RULE_BOOK_LIMITS,
    TRYON_STATUS,
    UPLOAD_ORDER,
    first_in_t9_order,
)
from catalog_core.testing._pieces import (
    CLAIMED,
    IMAGE_BYTES,
    IMAGE_HEADS,
    NOT_IMAGE_BYTES,
    copy_files,
    external_id_texts,
    one_in,
    pick,
    strategy_option,
    urls,
)

__all__ = [
    "InvalidTryOnRequest",
    "InvalidUploadRequest",
    "invalid_tryon_bodies",
    "invalid_upload_fields",
]


def _copy(problems: Mapping[str, str]) -> dict[str, str]:
    return dict(problems)


@attrs.frozen
class InvalidTryOnRequest:
    """A try-on the flow must refuse, and the one error code T9 says it refuses it with.

    Attributes:
        payload: the body as a ``dict``, or the raw body as ``bytes``.
        files: the file parts by part name.
        code: the code the try-on must raise (R29, T20); it changes nothing (T9).
        problems: every problem the case holds, by where it is: ``"body"`` (not a JSON object),
            ``"size"``, ``"products"``, ``"item"``, ``"customer"``, ``"output"`` or ``"person"``,
            each with the code it would give on its own.
    """

    payload: dict[str, Any] | bytes
    files: Mapping[str, cc.Upload] = attrs.field(converter=copy_files)
    code: str
    problems: Mapping[str, str] = attrs.field(factory=dict, converter=_copy)

    @property
    def status(self) -> int:
        """The HTTP status of :attr:`code` (R29, T20)."""
        return TRYON_STATUS[self.code]


@attrs.frozen
class InvalidUploadRequest:
    """Parts of ``POST /images/upload`` the flow must refuse, and the one code they give (T1, T2).

    Attributes:
        fields: the parts by name, as ``TryOn.upload_form`` takes them.
        code: the code the upload must raise; it stores nothing.
    """

    fields: Mapping[str, Any] = attrs.field(converter=dict)
    code: str

    @property
    def status(self) -> int:
        """The HTTP status of :attr:`code` (R29, T20)."""
        return TRYON_STATUS[self.code]


_URL: Final = "https://cdn.example/a.jpg"
_URL_IMAGE: Final = {"source": {"url": _URL}}
_RANDOM_IDS: Final = st.text(ONE_SHOT_ALPHABET, min_size=24, max_size=24).map("img_".__add__)
#: T2: customer ids a try-on or an upload refuses (not a string where JSON allows it).
_BAD_CUSTOMER_IDS: Final = (
    "",
    "x" * (MAX_CUSTOMER_ID_LENGTH + 1),
    "a\x00b",
    "tab\tid",
    "del\x7f",
    "\ud800",
)
#: T7: URLs whose host is under ``.invalid``: they can never be fetched.
_UNFETCHABLE_URLS: Final = (
    "https://photos.invalid/me.jpg",
    "http://cdn.shop.INVALID/p.png",
    "https://me.invalid./a.jpg",
    "https://invalid/a.jpg",
)
#: R13, T7: person URLs that are not absolute http(s) URLs with a host.
_BAD_URLS: Final = ("ftp://cdn.example/a.jpg", "cdn.example/a.jpg", "https://", 42, "")
#: T8: output options that are not a boolean, or not 1, 3 or 7.
_BAD_WATERMARKS: Final = (1, 0, "true", "false", [True])
_BAD_KEEPS: Final = (0, 2, 5, 8, 30, -1, "7", 7.5, True, [7])
#: R32: bodies that are not a JSON object.
_NOT_OBJECTS: Final = (b"", b"null", b"[]", b"42", b'"try-on"', b"{", b"not json", b"\xff{}")


def _big_image(size: int) -> bytes:
    head = IMAGE_HEADS[0]
    return head + b"\x00" * max(0, size - len(head))


class _Case:
    """A refused try-on under construction: the body's parts, the files, and each problem."""

    def __init__(self, limits: cc.Limits) -> None:
        self.limits = limits
        self.body: dict[str, Any] = {}
        self.files: dict[str, cc.Upload] = {}
        self.field_codes: set[str] = set()  # the body's fields and its item: R30's steps
        self.person_code: str | None = None
        self.problems: dict[str, str] = {}
        self._names = 0

    def name(self, stem: str) -> str:
        self._names += 1
        return f"{stem}-{self._names}"

    def add_file(self, stem: str, data: bytes, mime_type: str | None = None) -> str:
        name = self.name(stem)
        self.files[name] = cc.Upload(data, mime_type)
        return name


def _item(draw: st.DrawFn, case: _Case, ids: st.SearchStrategy[str], fault: bool) -> dict[str, Any]:
    """Return the product item: valid, or with one problem whose code goes to ``case``."""
    external_id = draw(ids)
    if not fault:
        kind = pick(draw, ("reference", "inline", "one_shot", "file"))
        if kind == "reference":  # its product need not exist: PRODUCT_NOT_FOUND comes last
            return {"externalId": external_id}
        if kind == "file":
            name = case.add_file("product", draw(IMAGE_BYTES), draw(CLAIMED))
            return {"externalId": external_id, "images": [{"source": {"fileKey": name}}]}
        item: dict[str, Any] = {"images": [{"source": {"url": draw(urls())}}]}
        if kind == "inline":
            item["externalId"] = external_id
        return item
    code = pick(
        draw,
        (
            "EXTERNAL_ID_REQUIRED",
            "VALIDATION_FAILED",
            "INVALID_IMAGE_INPUT",
            "RESERVED_EXTERNAL_ID",
            "MULTIPART_FILE_NOT_FOUND",
            "INVALID_IMAGE",
            "PRODUCT_IMAGES_REQUIRED",
        )
        + (("FILE_TOO_LARGE",) if case.limits.max_file_bytes < 2**16 else ()),
    )
    case.field_codes.add(code)
    case.problems["item"] = code
    if code == "EXTERNAL_ID_REQUIRED":  # only "" is refused: missing or null means one-shot
        return {"externalId": "", "images": [_URL_IMAGE]}
    if code == "VALIDATION_FAILED":
        return pick(
            draw,
            (
                {"externalId": 42},
                {"externalId": external_id, "title": "x" * (case.limits.max_title_length + 1)},
                {"externalId": external_id, "images": [{"source": {"url": "ftp://a/b.jpg"}}]},
                {"images": [_URL_IMAGE], "validForDays": None},  # R22c: a one-shot always expires
                {"externalId": external_id, "validForDays": 0},
            ),
        )
    if code == "INVALID_IMAGE_INPUT":
        return {"externalId": external_id, "images": [pick(draw, ({"source": {}}, {}))]}
    if code == "RESERVED_EXTERNAL_ID":  # R3: an inline item is an upsert
        return {"externalId": ANON_PREFIX + "x", "images": [_URL_IMAGE]}
    if code == "MULTIPART_FILE_NOT_FOUND":
        return {"externalId": external_id, "images": [{"source": {"fileKey": case.name("absent")}}]}
    if code == "PRODUCT_IMAGES_REQUIRED":  # R8: an empty list; R22c: a one-shot needs images
        return pick(draw, ({"externalId": external_id, "images": []}, {"title": "one-shot"}))
    if code == "INVALID_IMAGE":
        name = case.add_file("bad", draw(NOT_IMAGE_BYTES), draw(CLAIMED))
    else:  # FILE_TOO_LARGE
        name = case.add_file("big", _big_image(case.limits.max_file_bytes + 1), "image/jpeg")
    return {"externalId": external_id, "images": [{"source": {"fileKey": name}}]}


def _products(draw: st.DrawFn, case: _Case, item: dict[str, Any], fault: bool) -> None:
    """T5, T6: the product list: one item, or a shape refused with ``VALIDATION_FAILED``."""
    if not fault:
        if one_in(draw, 4):
            case.body["product"] = item  # T6: deprecated, with a warning
        else:
            case.body["products"] = [item]
        return
    case.field_codes = {"VALIDATION_FAILED"}  # the item is never read: its problems do not count
    case.problems["products"] = "VALIDATION_FAILED"
    shape = pick(draw, ("neither", "empty", "two", "object", "not an object", "null", "both"))
    if shape == "empty":
        case.body["products"] = []
    elif shape == "two":
        case.body["products"] = [item, {"externalId": "another"}]
    elif shape == "object":
        case.body["products"] = item
    elif shape == "not an object":
        key = pick(draw, ("products", "product"))
        case.body[key] = [42] if key == "products" else 42
    elif shape == "null":
        case.body["products"] = None
    elif shape == "both":
        case.body["products"], case.body["product"] = [item], item


def _customer_id(draw: st.DrawFn, case: _Case, fault: bool) -> None:
    """T2, T6: ``externalUserId`` (deprecated ``customerId``): absent, valid, or refused."""
    name = pick(draw, ("externalUserId", "customerId"))
    if not fault:
        if draw(st.booleans()):
            case.body[name] = "shopper-1"
        return
    case.field_codes.add("VALIDATION_FAILED")
    case.problems["customer"] = "VALIDATION_FAILED"
    if one_in(draw, 4):  # T6: a new and an old name together
        case.body["externalUserId"], case.body["customerId"] = "shopper-1", "shopper-1"
    else:
        case.body[name] = pick(draw, (*_BAD_CUSTOMER_IDS, 42))


def _output(draw: st.DrawFn, case: _Case, fault: bool) -> None:
    """T6, T8: the output options: absent, valid, or refused."""
    if not fault:
        if draw(st.booleans()):
            case.body["output"] = {"watermark": draw(st.booleans())}
        return
    case.field_codes.add("VALIDATION_FAILED")
    case.problems["output"] = "VALIDATION_FAILED"
    kind = pick(draw, ("output", "watermark", "keep", "useWatermark", "retentionDays", "both"))
    if kind == "output":
        case.body["output"] = pick(draw, ("watermark", 42, [], True))
    elif kind == "watermark":
        case.body["output"] = {"watermark": pick(draw, _BAD_WATERMARKS)}
    elif kind == "keep":
        case.body["output"] = {"keepForDays": pick(draw, _BAD_KEEPS)}
    elif kind == "useWatermark":
        case.body["useWatermark"] = pick(draw, _BAD_WATERMARKS)
    elif kind == "retentionDays":
        case.body["retentionDays"] = pick(draw, _BAD_KEEPS)
    elif one_in(draw, 2):  # T6: a new and an old name together
        case.body["output"], case.body["useWatermark"] = {"watermark": True}, False
    else:
        case.body["output"], case.body["retentionDays"] = {"keepForDays": 3}, 3


def _person(draw: st.DrawFn, case: _Case, fault: bool) -> None:
    """T6, T7: the person image: valid, or one problem."""
    if not fault:
        kind = pick(draw, ("url", "fileKey", "customer"))
        if kind == "fileKey":
            source: dict[str, Any] = {"fileKey": case.add_file("person", draw(IMAGE_BYTES))}
        else:
            source = {"url": draw(urls())}
        if kind == "customer":
            case.body["customer"] = source
        else:
            case.body["person"] = {"image": {"source": source}}
        return
    code = pick(
        draw,
        (
            "CUSTOMER_IMAGE_REQUIRED",
            "INVALID_IMAGE_INPUT",
            "VALIDATION_FAILED",
            "CUSTOMER_IMAGE_FETCH_FAILED",
            "MULTIPART_FILE_NOT_FOUND",
            "INVALID_IMAGE",
        )
        + (("FILE_TOO_LARGE",) if case.limits.max_file_bytes < 2**16 else ()),
    )
    case.person_code = code
    wrap = pick(draw, ("person", "customer", "customer.source"))

    def put(source: Any) -> None:
        if wrap == "person":
            case.body["person"] = {"image": {"source": source}}
        elif wrap == "customer":
            case.body["customer"] = source
        else:
            case.body["customer"] = {"source": source}

    if code == "CUSTOMER_IMAGE_REQUIRED":
        shape = pick(draw, ("absent", "null", "empty", "no image", "null customer"))
        if shape != "absent":
            key = "customer" if shape == "null customer" else "person"
            case.body[key] = {"null": None, "empty": {}, "no image": {"image": None}}.get(shape)
    elif code == "INVALID_IMAGE_INPUT":
        shape = pick(draw, ("empty", "null", "two", "no source"))
        if shape == "no source":
            case.body["person"] = {"image": {}}
        elif shape == "two":
            put({"id": draw(_RANDOM_IDS), "url": _URL})
        else:
            put({} if shape == "empty" else None)
            if shape == "null" and wrap == "customer":  # customer: null is no person at all
                case.person_code = "CUSTOMER_IMAGE_REQUIRED"
    elif code == "VALIDATION_FAILED":
        shape = pick(draw, ("url", "id", "fileKey", "unknown id", "not an object", "both"))
        if shape == "url":
            put({"url": pick(draw, _BAD_URLS)})
        elif shape == "id":
            put({"id": pick(draw, ("", 42, ["img"]))})
        elif shape == "fileKey":
            put({"fileKey": pick(draw, ("", 7))})
        elif shape == "unknown id":  # T7: not a live image of this account
            put({"id": draw(_RANDOM_IDS)})
        elif shape == "not an object":
            key = pick(draw, ("person", "person.image", "customer"))
            if key == "person.image":
                case.body["person"] = {"image": "me.jpg"}
            else:
                case.body[key] = "me.jpg"
        else:  # T6: person and its deprecated customer together, a problem of the body's own
            case.body["person"] = {"image": {"source": {"url": _URL}}}
            case.body["customer"] = {"url": _URL}
            case.person_code = None
            case.field_codes.add("VALIDATION_FAILED")
            case.problems["customer"] = "VALIDATION_FAILED"
    elif code == "CUSTOMER_IMAGE_FETCH_FAILED":
        put({"url": pick(draw, _UNFETCHABLE_URLS)})
    elif code == "MULTIPART_FILE_NOT_FOUND":
        put({"fileKey": case.name("absent")})
    elif code == "INVALID_IMAGE":
        put({"fileKey": case.add_file("bad-person", draw(NOT_IMAGE_BYTES), draw(CLAIMED))})
    else:  # FILE_TOO_LARGE
        put({"fileKey": case.add_file("big-person", _big_image(case.limits.max_file_bytes + 1))})


def _json_safe(payload: dict[str, Any]) -> bool:
    try:
        return bool(json.loads(json.dumps(payload, allow_nan=False)) == payload)
    except (ValueError, RecursionError):
        return False


_SLOTS: Final = ("products", "item", "customer", "output", "person")
#: The slot of a case's first problem. The item and the person have the most codes between them
#: (eight and seven), the other slots one each: they are drawn three and four times as often.
_PRIMARY: Final = ("BODY", *_SLOTS, "item", "item", "person", "person", "person")
_PRIMARY_SIZED: Final = (*_PRIMARY, "SIZE")


@st.composite
def _invalid_tryons(
    draw: st.DrawFn, *, limits: cc.Limits, ids: st.SearchStrategy[str], sized: bool
) -> InvalidTryOnRequest:
    primary = pick(draw, _PRIMARY_SIZED if sized else _PRIMARY)
    if primary == "BODY":  # R30: a body that is not a JSON object
        body = pick(draw, _NOT_OBJECTS)
        return InvalidTryOnRequest(body, {}, "VALIDATION_FAILED", {"body": "VALIDATION_FAILED"})
    # In one case of three, one or two more problems: T9's order picks the code.
    more = (
        draw(st.lists(st.sampled_from(_SLOTS), min_size=1, max_size=2)) if one_in(draw, 3) else []
    )
    faulty = {primary, *more}
    case = _Case(limits)
    item = _item(draw, case, ids, "item" in faulty)
    _products(draw, case, item, "products" in faulty)
    _customer_id(draw, case, "customer" in faulty)
    _output(draw, case, "output" in faulty)
    _person(draw, case, "person" in faulty)
    code = first_in_t9_order(case.field_codes, case.person_code)
    if case.person_code is not None:
        case.problems["person"] = case.person_code

    payload: dict[str, Any] | bytes = case.body
    oversize = pick(draw, ("part", "body")) if primary == "SIZE" else None
    if (oversize == "body" or draw(st.booleans())) and _json_safe(case.body):
        payload = json.dumps(case.body).encode("ascii")  # lone surrogates as \ud800 escapes
        if oversize == "body":
            payload += b" " * (limits.max_request_bytes + 1 - len(payload))
    if oversize == "part" or (oversize == "body" and not isinstance(payload, bytes)):
        case.files[case.name("padding")] = cc.Upload(_big_image(limits.max_request_bytes + 1))
    size = sum(len(upload.data) for upload in case.files.values())
    size += len(payload) if isinstance(payload, bytes) else 0
    if size > limits.max_request_bytes:  # R30: before anything is parsed
        code = case.problems["size"] = "PAYLOAD_TOO_LARGE"
    assert code is not None  # every drawn case has a problem, or is over the request limit
    return InvalidTryOnRequest(payload, case.files, code, case.problems)


def _check_limits(limits: cc.Limits | None) -> cc.Limits:
    checked = RULE_BOOK_LIMITS if limits is None else limits
    if checked.max_url_length < 64:
        raise InvalidArgument("limits.max_url_length must be at least 64 to draw valid URLs")
    return checked


def invalid_tryon_bodies(
    *,
    limits: cc.Limits | None = None,
    external_id: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[InvalidTryOnRequest]:
    """Try-on requests (T5-T9) that must be refused, each with the one code T9 says it gives.

    Problems of the try-on's own checks are drawn: ``products`` without exactly one item, or with
    ``product`` beside it; a refused ``externalUserId``, ``output`` or deprecated option, or a new
    name beside its old one, ``person`` beside ``customer`` (``VALIDATION_FAILED``, with the
    body's own field problems); a missing person (``CUSTOMER_IMAGE_REQUIRED``), a source without
    exactly one of ``id``, ``url`` and ``fileKey`` (``INVALID_IMAGE_INPUT``), a malformed source
    or an ``id`` no catalog holds (``VALIDATION_FAILED``), a URL under ``.invalid``
    (``CUSTOMER_IMAGE_FETCH_FAILED``), a missing, non-image or (with ``limits``) oversized person
    file; and, to pin T9's order, problems of the product item (each code of R30 that needs no
    stored state) and bodies that are not JSON objects. Problems are often combined: the code is
    the first in T9's order, the person's after the product item's. About half of the payloads
    come as raw JSON bytes. The product item, when valid, is a reference (to a product that need
    not exist: ``PRODUCT_NOT_FOUND`` comes after every problem drawn here), or an inline or
    one-shot item with images.

    Args:
        limits: the limits the flow under test enforces. When given, ``FILE_TOO_LARGE`` and
            ``PAYLOAD_TOO_LARGE`` are drawn too, one byte over them; pass small limits
            (``cc.Limits(max_file_bytes=1024, max_request_bytes=4096)``) and give the catalog the
            same value. ``max_url_length`` must be at least 64.
        external_id: a strategy of the product item's ids where the id is not the problem; by
            default valid ids. They must be valid and not start with ``_anon_``.

    Raises:
        InvalidArgument: ``limits.max_url_length`` is under 64, or ``external_id`` is not a
            strategy.
    """
    checked = _check_limits(limits)
    default = external_id_texts(max_size=checked.max_external_id_length, allow_reserved=False)
    ids = strategy_option("external_id", external_id, default)
    return _invalid_tryons(limits=checked, ids=ids, sized=limits is not None)


# -- uploads (T1, T2) -----------------------------------------------------------------------------

_BAD_CROPS: Final = ("yes", "True", "TRUE", "1", "", 1, 0, b"maybe", b"\xff")
_BAD_UPLOAD_KEEPS: Final = (0, 2, 8, -1, "2", "seven", "7.0", " 7", "", True, b"\xff")
_UPLOAD_SLOTS: Final = ("file", "crop", "keep", "customer")


@st.composite
def _invalid_uploads(draw: st.DrawFn, *, limits: cc.Limits, sized: bool) -> InvalidUploadRequest:
    # The file has three codes, each other slot one: it comes first twice as often.
    primary = pick(draw, (*_UPLOAD_SLOTS, "file", *(("SIZE",) if sized else ())))
    more = draw(st.lists(st.sampled_from(_UPLOAD_SLOTS), max_size=2)) if one_in(draw, 3) else []
    faulty = {primary, *more}
    fields: dict[str, Any] = {}
    codes: set[str] = set()
    if "file" not in faulty:
        fields["file"] = cc.Upload(draw(IMAGE_BYTES), draw(CLAIMED))
    else:
        codes.add(
            pick(
                draw,
                ("FILE_REQUIRED", "INVALID_IMAGE")
                + (("FILE_TOO_LARGE",) if limits.max_file_bytes < 2**16 else ()),
            )
        )
        if "INVALID_IMAGE" in codes:
            fields["file"] = cc.Upload(draw(NOT_IMAGE_BYTES), draw(CLAIMED))
        elif "FILE_TOO_LARGE" in codes:
            fields["file"] = cc.Upload(_big_image(limits.max_file_bytes + 1), "image/jpeg")
        elif draw(st.booleans()):
            fields["file"] = None  # None is an absent part
    if "crop" in faulty:
        fields["crop"] = pick(draw, _BAD_CROPS)
        codes.add("VALIDATION_FAILED")
    elif draw(st.booleans()):
        fields["crop"] = pick(draw, (True, False, "true", "false"))
    if "keep" in faulty:
        codes.add("VALIDATION_FAILED")
        if one_in(draw, 4):  # a new and an old name together
            fields["keepForDays"], fields["retentionDays"] = "3", "3"
        else:
            fields[pick(draw, ("keepForDays", "retentionDays"))] = pick(draw, _BAD_UPLOAD_KEEPS)
    elif draw(st.booleans()):
        fields[pick(draw, ("keepForDays", "retentionDays"))] = pick(draw, (1, 3, 7, "1", "7"))
    if "customer" in faulty:
        codes.add("VALIDATION_FAILED")
        if one_in(draw, 4):
            fields["externalUserId"], fields["customerId"] = "shopper-1", "shopper-1"
        else:
            fields[pick(draw, ("externalUserId", "customerId"))] = pick(draw, _BAD_CUSTOMER_IDS)
    elif draw(st.booleans()):
        fields[pick(draw, ("externalUserId", "customerId"))] = "shopper-1"
    if primary == "SIZE":
        fields["padding"] = _big_image(limits.max_request_bytes + 1)
        codes.add("PAYLOAD_TOO_LARGE")
    order = draw(st.permutations(list(fields)))
    code = next(code for _, step in UPLOAD_ORDER for code in step if code in codes)
    return InvalidUploadRequest({name: fields[name] for name in order}, code)


def invalid_upload_fields(
    *, limits: cc.Limits | None = None
) -> st.SearchStrategy[InvalidUploadRequest]:
    """Parts of ``POST /images/upload`` that must be refused, each with the code T1/T2 give.

    A missing ``file`` (``FILE_REQUIRED``); a refused ``crop`` (anything but ``true``, ``false``
    and their strings), ``keepForDays`` or ``retentionDays`` (anything but 1, 3 and 7, as
    numbers or text), ``externalUserId`` or ``customerId``, or a new name beside its old one
    (``VALIDATION_FAILED``); bytes that are not an image (``INVALID_IMAGE``). Problems are
    combined; the code is the first in the order of ``UPLOAD_ORDER``: the request's size, the
    file part, every field at once, then the file's bytes.

    Args:
        limits: the limits the flow under test enforces; when given, ``FILE_TOO_LARGE`` and
            ``PAYLOAD_TOO_LARGE`` are drawn too, one byte over them. Pass small limits and give
            the catalog the same value.
    """
    checked = _check_limits(limits)
    return _invalid_uploads(limits=checked, sized=limits is not None)
