"""The rule book as data, once for the whole kit: fields, limits, error statuses, error order.

The kit is the reference the library is checked against, so this table is written from
``docs/rules.md`` (the catalog, R1-R33) and the try-on rule book (T1-T24) alone, and never read
from the library's own field table, limits or status table: a mistake there must not be copied
here. The strategies, the invalid cases, the reference models of the state machines and the
contract all read it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final, Literal

import attrs

import catalog_core as cc

__all__ = [
    "ANON_PREFIX",
    "COMPLETED",
    "CONTROLS",
    "DAY_MS",
    "DEFAULT_CREDITS",
    "DEFAULT_GENERATION_SECONDS",
    "DEFAULT_KEEP_FOR_DAYS",
    "EDITABLE_FIELDS",
    "ENTRY_KEYS",
    "EPOCH",
    "FAILED",
    "GENERATION_ID",
    "IMAGE_HEADERS",
    "IMAGE_ID",
    "INLINE_DAYS",
    "KEEP_FOR_DAYS",
    "MAX_CUSTOMER_ID_LENGTH",
    "MAX_DAYS",
    "MIN_DAYS",
    "MOCK_TITLE",
    "ONE_SHOT_ALPHABET",
    "ONE_SHOT_DAYS",
    "ONE_SHOT_ID",
    "PAYLOAD_KEYS",
    "PENDING",
    "PROCESSING",
    "PRODUCT_FIELDS",
    "PRODUCT_IMAGE_FETCH_FAILED",
    "R29_STATUS",
    "R30_ORDER",
    "R31_PRODUCT_KEYS",
    "RULE_BOOK_LIMITS",
    "SOURCE_KEYS",
    "T9_ORDER",
    "T20_STATUS",
    "TRYON_STATUS",
    "UNFETCHABLE_TLD",
    "UPLOAD_ORDER",
    "WireField",
    "field",
    "first_in_r30_order",
    "first_in_t9_order",
]

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

# -- the product's fields (R2-R19, R31) -----------------------------------------------------------

#: What a field holds: an id (R2), text or ``null`` (R7), a JSON object or ``null`` (R9), a number
#: of days or ``null`` (R10), a timestamp (R31), an image list (R8, R12), a list of URLs (R17).
Kind = Literal["id", "text", "object", "days", "timestamp", "images", "urls"]


@attrs.frozen
class WireField:
    """One key of a product on the wire or in an upsert payload.

    Attributes:
        name: the key, as the wire spells it.
        kind: what it holds (see ``Kind``).
        rule: the rule that defines it.
        in_payload: an upsert payload may give it.
        on_wire: the product on the wire has it (R31).
        editable: a product field R6 merges: omitted keeps, given replaces whole, ``null`` clears.
        limit: the :class:`~catalog_core.Limits` attribute that bounds it (R33), if any.
        bounds: the smallest and largest number it takes, for a number.
    """

    name: str
    kind: Kind
    rule: str
    in_payload: bool = True
    on_wire: bool = True
    editable: bool = False
    limit: str | None = None
    bounds: tuple[int, int] | None = None


#: R10: the smallest and largest ``validForDays``.
_DAYS: Final = (1, 365)
MIN_DAYS, MAX_DAYS = _DAYS

#: Every field, in the order R31 lists a product's keys; ``imageUrls`` is only ever given (R17).
PRODUCT_FIELDS: Final = (
    WireField("externalId", "id", "R2", limit="max_external_id_length"),
    WireField("title", "text", "R7", editable=True, limit="max_title_length"),
    WireField("description", "text", "R7", editable=True, limit="max_description_length"),
    WireField("metadata", "object", "R9", editable=True, limit="max_metadata_bytes"),
    WireField("validForDays", "days", "R10", editable=True, bounds=_DAYS),
    WireField("expiresAt", "timestamp", "R19", in_payload=False),
    WireField("lastUsedAt", "timestamp", "R22", in_payload=False),
    WireField("createdAt", "timestamp", "R11", in_payload=False),
    WireField("updatedAt", "timestamp", "R11", in_payload=False),
    WireField("images", "images", "R8", limit="max_images"),
    WireField("imageUrls", "urls", "R17", on_wire=False, limit="max_images"),
)
_BY_NAME: Final = {field.name: field for field in PRODUCT_FIELDS}

#: The keys of a product on the wire, in order (R31); ``account`` and ``version`` are not there.
R31_PRODUCT_KEYS: Final = tuple(field.name for field in PRODUCT_FIELDS if field.on_wire)
#: The keys an upsert payload or an inline use item may hold; any other key is unknown (R18).
PAYLOAD_KEYS: Final = frozenset(field.name for field in PRODUCT_FIELDS if field.in_payload)
#: The fields R6 merges one by one: omitted keeps, given replaces whole, ``null`` clears.
EDITABLE_FIELDS: Final = tuple(field for field in PRODUCT_FIELDS if field.editable)
#: The keys of an image entry, canonical or flat (R12, R16, R17), and of a canonical source.
ENTRY_KEYS: Final = frozenset({"source", "classifications", "url", "fileKey"})
SOURCE_KEYS: Final = frozenset({"url", "fileKey"})


def field(name: str) -> WireField:
    """Return the field called ``name`` on the wire."""
    return _BY_NAME[name]


#: R22b, R22c: the lifetime a product created by a use gets when ``validForDays`` is omitted.
INLINE_DAYS: Final = 15
ONE_SHOT_DAYS: Final = 7

# -- ids ------------------------------------------------------------------------------------------

#: R3: an upsert may not use an id with this prefix (case-sensitive); one-shot ids have it.
ANON_PREFIX: Final = "_anon_"
#: R22c: a one-shot id is the prefix and 24 of these characters.
ONE_SHOT_ALPHABET: Final = string.ascii_lowercase + string.digits
ONE_SHOT_ID: Final = re.compile(r"_anon_[a-z0-9]{24}")
#: R2: the control characters an id or an account may not hold.
CONTROLS: Final = tuple([chr(c) for c in range(0x20)] + ["\x7f"])

# -- images (R15) ---------------------------------------------------------------------------------

#: The leading bytes each recognised image type is sniffed from (R15), by the MIME type the
#: catalog stores; each is 12 bytes or more.
IMAGE_HEADERS: Final[Mapping[str, bytes]] = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01",  # exactly 12 bytes
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "image/heic": b"\x00\x00\x00\x18ftypheic",
    "image/heif": b"\x00\x00\x00\x18ftypmif1",
    "image/avif": b"\x00\x00\x00\x1cftypavif",
}

# -- errors (R29, R30) ----------------------------------------------------------------------------

#: Every error code of R29 and its HTTP status.
R29_STATUS: Final[Mapping[str, int]] = {
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

#: R30: the order in which one request's problems decide its single error, step by step: what is
#: checked, and the codes it gives. ``INVALID_IMAGE`` and ``FILE_TOO_LARGE`` share a step: the
#: first failing file in image order decides, so a request only ever holds one of them.
R30_ORDER: Final = (
    ("a body over the request limit, before anything is parsed", ("PAYLOAD_TOO_LARGE",)),
    ("a body that is not a JSON object", ("VALIDATION_FAILED",)),
    ("the externalId is missing, null or empty", ("EXTERNAL_ID_REQUIRED",)),
    ("every field problem at once", ("VALIDATION_FAILED",)),
    ("an image entry without exactly one source", ("INVALID_IMAGE_INPUT",)),
    ("an externalId with the reserved prefix", ("RESERVED_EXTERNAL_ID",)),
    ("a fileKey that names no file part", ("MULTIPART_FILE_NOT_FOUND",)),
    ("the first failing file, in image order", ("INVALID_IMAGE", "FILE_TOO_LARGE")),
    ("a create, or an image list, without images", ("PRODUCT_IMAGES_REQUIRED",)),
    ("an expected version that does not match", ("VERSION_CONFLICT",)),
)
# A body that is a JSON object has passed the second step: VALIDATION_FAILED then ranks as a field
# problem, after EXTERNAL_ID_REQUIRED.
_OBJECT_CODES: Final = tuple(code for _, codes in R30_ORDER[2:] for code in codes)
_SIZE_CODE: Final = R30_ORDER[0][1][0]


def first_in_r30_order(codes: Iterable[str]) -> str | None:
    """Return the code R30 answers a request with, given every problem it has; ``None`` for none.

    Args:
        codes: the codes of the request's problems; the request's body is a JSON object, so a
            ``VALIDATION_FAILED`` among them is a field problem (a body that is not an object is
            refused before any of them is looked for).
    """
    found = set(codes)
    return next((code for code in (_SIZE_CODE, *_OBJECT_CODES) if code in found), None)


# -- time (R31) -----------------------------------------------------------------------------------

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DAY_MS: Final = 86_400_000

# -- the try-on flow (TRYON.md, T1-T24) -----------------------------------------------------------

#: T20: the codes the try-on flow adds to R29's, and their HTTP statuses.
T20_STATUS: Final[Mapping[str, int]] = {
    "FILE_REQUIRED": 400,
    "CUSTOMER_IMAGE_REQUIRED": 400,
    "CUSTOMER_IMAGE_FETCH_FAILED": 400,
    "INSUFFICIENT_CREDITS": 402,
    "GENERATION_NOT_FOUND": 404,
}
#: Every code a try-on call may answer with: R29's and T20's.
TRYON_STATUS: Final[Mapping[str, int]] = {**R29_STATUS, **T20_STATUS}

#: T2, T8: the retentions of a person image or a generation, in days, and the default.
KEEP_FOR_DAYS: Final = (1, 3, 7)
DEFAULT_KEEP_FOR_DAYS: Final = 7
#: T2: the longest ``externalUserId`` (1-256 characters, no control characters).
MAX_CUSTOMER_ID_LENGTH: Final = 256
#: T16: the balance of an account the first time it is seen.
DEFAULT_CREDITS: Final = 10
#: T14: a product titled exactly this completes at once; others take ``--generation-seconds``.
MOCK_TITLE: Final = "mock"
DEFAULT_GENERATION_SECONDS: Final = 2
#: T7, T14: a URL whose host is under this top-level domain can never be fetched (RFC 2606).
UNFETCHABLE_TLD: Final = "invalid"
#: T3, T10: person image ids and generation ids: a prefix and at least 20 of ``[a-z0-9]``.
IMAGE_ID: Final = re.compile(r"img_[a-z0-9]{20,}")
GENERATION_ID: Final = re.compile(r"gen_[a-z0-9]{20,}")
#: T12: a generation's statuses, in the order it goes through them.
PENDING, PROCESSING, COMPLETED, FAILED = "PENDING", "PROCESSING", "COMPLETED", "FAILED"
#: T14: the code of a generation whose product image cannot be fetched.
PRODUCT_IMAGE_FETCH_FAILED: Final = "PRODUCT_IMAGE_FETCH_FAILED"

#: T1, T2: the order of an upload's errors: the request's size, the file part, every field
#: problem at once, then the file's bytes (R15).
UPLOAD_ORDER: Final = (
    ("fields over the request limit, before anything is read", ("PAYLOAD_TOO_LARGE",)),
    ("no file part", ("FILE_REQUIRED",)),
    ("every field problem at once", ("VALIDATION_FAILED",)),
    ("the file's bytes", ("INVALID_IMAGE", "FILE_TOO_LARGE")),
)

#: T9: the order of a try-on's errors after R30's steps for the body and its product item (every
#: one but ``VERSION_CONFLICT``, which a try-on has no use for): the person's checks, then the
#: credits, then a reference to a product that is not live.
T9_ORDER: Final = (
    *R30_ORDER[:-1],
    (
        "the person: missing, not one source, malformed, unknown, unfetchable, or its file",
        (
            "CUSTOMER_IMAGE_REQUIRED",
            "INVALID_IMAGE_INPUT",
            "VALIDATION_FAILED",
            "CUSTOMER_IMAGE_FETCH_FAILED",
            "MULTIPART_FILE_NOT_FOUND",
            "INVALID_IMAGE",
            "FILE_TOO_LARGE",
        ),
    ),
    ("the account's balance is 0", ("INSUFFICIENT_CREDITS",)),
    ("a reference to a product that is not live", ("PRODUCT_NOT_FOUND",)),
)


def first_in_t9_order(
    body_and_item: Iterable[str],
    person: str | None = None,
    *,
    no_credit: bool = False,
    unknown_product: bool = False,
) -> str | None:
    """Return the code T9 answers a try-on with, given its problems; ``None`` for none.

    Args:
        body_and_item: the codes of the problems of the body's fields and of its product item, in
            R30's terms (the body is a JSON object).
        person: the code of the person's problem (a person has at most one: it is checked as a
            whole, after the product item).
        no_credit: the account's balance is 0.
        unknown_product: the item references a product that is not live.
    """
    code = first_in_r30_order(body_and_item)
    if code is not None or person is not None:
        return code or person
    if no_credit:
        return "INSUFFICIENT_CREDITS"
    return "PRODUCT_NOT_FOUND" if unknown_product else None
