"""Hypothesis strategies for what a catalog and its try-on flow take: requests, products, ids.

Each function returns a :class:`~hypothesis.strategies.SearchStrategy`; options are keyword-only,
and an option that says which values to draw takes a strategy only (``st.just("shirt-1")`` for
one value), as in Hypothesis itself. The invalid cases are in :mod:`catalog_core.testing.invalid`
and :mod:`catalog_core.testing.invalid_tryon`, and exported here too::

    from hypothesis import given
    from catalog_core.testing.strategies import invalid_upsert_payloads, upsert_payloads

    @given(request=upsert_payloads())
    def test_my_code_accepts_every_valid_upsert(request): ...

    @given(case=invalid_upsert_payloads())
    def test_my_server_refuses_with_the_right_code(case):
        ...  # expect case.code and case.status

The strategies are written from the rule books (``docs/rules.md`` and the try-on rules T1-T24,
kept as data in the kit's own ``_book`` module), not from the library's code:
the sizes are the rule book's defaults unless an option says otherwise, and every generated case
states what the rule book says the catalog must answer. Sizes stay moderate, so examples are cheap;
the rule book's boundaries (a 1,000-character title, a 2,048-character URL, a 12-byte image) are
drawn now and then.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import attrs
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import catalog_core as cc
from catalog_core.testing._book import (
    ANON_PREFIX,
    DAY_MS,
    DEFAULT_KEEP_FOR_DAYS,
    EDITABLE_FIELDS,
    ENTRY_KEYS,
    EPOCH,
    IMAGE_HEADERS,
    KEEP_FOR_DAYS,
    MAX_CUSTOMER_ID_LENGTH,
    ONE_SHOT_ALPHABET,
    PAYLOAD_KEYS,
    R29_STATUS,
    RULE_BOOK_LIMITS,
    SOURCE_KEYS,
    TRYON_STATUS,
)
from catalog_core.testing._pieces import (
    PART_NAME_LISTS,
    UPLOADS,
    account_texts,
    copy_files,
    external_id_texts,
    field_values,
    id_texts,
    json_objects,
    one_in,
    pick,
    strategy_option,
    unknown_fields,
    urls,
)
from catalog_core.testing.invalid import InvalidUpsertRequest, invalid_upsert_payloads
from catalog_core.testing.invalid_tryon import (
    InvalidTryOnRequest,
    InvalidUploadRequest,
    invalid_tryon_bodies,
    invalid_upload_fields,
)

__all__ = [
    "IMAGE_HEADERS",
    "R29_STATUS",
    "RULE_BOOK_LIMITS",
    "TRYON_STATUS",
    "InvalidTryOnRequest",
    "InvalidUploadRequest",
    "InvalidUpsertRequest",
    "TryOnRequest",
    "UploadRequest",
    "UpsertRequest",
    "UseRequest",
    "accounts",
    "customer_ids",
    "external_ids",
    "invalid_tryon_bodies",
    "invalid_upload_fields",
    "invalid_upsert_payloads",
    "products",
    "tryon_bodies",
    "upload_fields",
    "upsert_payloads",
    "use_items",
]

#: The earliest and latest creation times :func:`products` draws: 2000 and 2100, in epoch ms.
_MS_2000: Final = 946_684_800_000
_MS_2100: Final = 4_102_444_800_000


# -- the values drawn -----------------------------------------------------------------------------


@attrs.frozen
class _Request:
    payload: dict[str, Any]
    files: Mapping[str, cc.Upload] = attrs.field(factory=dict, converter=copy_files)

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


# -- accounts and ids ---------------------------------------------------------------------------


def accounts() -> st.SearchStrategy[str]:
    """Valid accounts: non-empty strings of valid Unicode without control characters.

    The decision table refuses, as for an externalId, control characters (U+0000-U+001F, U+007F)
    and lone surrogates in an account; anything else is an opaque tenant name. About half are
    short lowercase ASCII names, which a failing example shrinks to (``a``); the rest are any
    valid text.
    """
    return account_texts(max_size=32)


def external_ids(*, allow_reserved: bool = False) -> st.SearchStrategy[str]:
    """Valid upsert ids (R2, R3): 1-256 characters, no control character, no lone surrogate.

    C1 controls (U+0080-U+009F) are allowed: R2 refuses only U+0000-U+001F and U+007F. About
    half are short ASCII ids (``p0``, ``shirt-12``, ``SKU-7``), which a failing example shrinks
    to; the rest are any text R2 allows.

    Args:
        allow_reserved: also draw ids starting with ``_anon_``; an upsert refuses those with
            ``RESERVED_EXTERNAL_ID``, while get, delete and reference uses accept them.
    """
    return external_id_texts(
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
        json_objects(max_bytes=RULE_BOOK_LIMITS.max_classifications_bytes, min_size=1),
    )
    spec = st.tuples(
        st.sampled_from(["canonical", "flat"] if deprecated else ["canonical"]),
        st.sampled_from(["url", "file"]),
        urls(),
        st.integers(0, 3),
        classifications,
        unknown_fields(ENTRY_KEYS, 1),
        unknown_fields(SOURCE_KEYS, 1),
    )
    return st.lists(spec, min_size=1, max_size=4)


_URL_LISTS: Final = st.lists(urls(), min_size=1, max_size=3)


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
    return {
        field.name: field_values(field, RULE_BOOK_LIMITS, allow_null=allow_null_days)
        for field in EDITABLE_FIELDS
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
    images_required: bool,
    multipart: bool | None = None,
    deprecated: bool = True,
    require_field: bool = False,
    allow_null_days: bool = True,
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
        files = {name: draw(UPLOADS) for name in draw(PART_NAME_LISTS)}
    if with_images:
        if deprecated and not use_multipart and one_in(draw, 5):
            payload["imageUrls"] = draw(_URL_LISTS)  # R17
        else:
            specs = draw(_entry_spec_lists(deprecated=deprecated))
            entries = [_entry(spec, list(files)) for spec in specs]
            if files and not any(_uses_file(entry) for entry in entries):
                # A multipart request names at least one of its parts.
                entries[0] = _entry(specs[0], list(files), use_file=True)
            payload["images"] = entries

    if require_field and not (PAYLOAD_KEYS - {"externalId"}) & payload.keys():
        fields = _product_fields(allow_null_days=allow_null_days)
        key = pick(draw, sorted(fields))
        payload[key] = draw(fields[key])
    payload.update(draw(unknown_fields(PAYLOAD_KEYS, 2)))  # R18: ignored, with a warning each
    return payload, files


def upsert_payloads(
    *,
    multipart: bool | None = None,
    deprecated: bool = True,
    partial: bool = False,
    external_id: st.SearchStrategy[str] | None = None,
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
        external_id: a strategy of ids (``st.just("shirt-1")`` for one); by default
            :func:`external_ids`. They must be valid and not start with ``_anon_``.

    Raises:
        InvalidArgument: ``external_id`` is not a strategy.
    """
    ids = strategy_option("external_id", external_id, external_ids())
    pairs = _product_requests(
        ids=ids, multipart=multipart, deprecated=deprecated, images_required=not partial
    )
    return pairs.map(lambda pair: UpsertRequest(*pair))


def use_items(
    *,
    kind: Literal["reference", "inline", "one_shot"] | None = None,
    external_id: st.SearchStrategy[str] | None = None,
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
        external_id: a strategy of the ids of reference and inline items
            (``st.just("shirt-1")`` for one); by default :func:`external_ids`. They must be
            valid; only a reference may name an ``_anon_`` id.

    Raises:
        InvalidArgument: ``kind`` is not one of the three, or ``external_id`` is not a strategy.
    """
    if kind not in (None, "reference", "inline", "one_shot"):
        raise InvalidArgument(
            f"kind must be 'reference', 'inline', 'one_shot' or None, not {kind!r}"
        )
    ids = strategy_option("external_id", external_id, external_ids())
    by_kind = {
        "reference": st.builds(
            lambda identifier, extra: UseRequest(
                {"externalId": identifier, **extra}, kind="reference"
            ),
            ids,
            unknown_fields(PAYLOAD_KEYS, 1),
        ),
        # R22b: an inline item gives at least one field; R22c: a one-shot product always expires.
        "inline": _product_requests(ids=ids, images_required=False, require_field=True).map(
            lambda pair: UseRequest(*pair, kind="inline")
        ),
        "one_shot": _product_requests(ids=None, images_required=True, allow_null_days=False).map(
            lambda pair: UseRequest(*pair, kind="one_shot")
        ),
    }
    if kind is None:
        return st.one_of(by_kind["reference"], by_kind["inline"], by_kind["one_shot"])
    return by_kind[kind]


# -- products -------------------------------------------------------------------------------------


def _moment(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


_ONE_SHOT_SUFFIXES: Final = st.text(ONE_SHOT_ALPHABET, min_size=24, max_size=24)
_MOMENTS_MS: Final = st.integers(_MS_2000, _MS_2100)
_DELAYS_MS: Final = st.integers(0, 400 * DAY_MS)
_SOURCE_LISTS: Final = st.lists(
    urls() | st.binary(min_size=32, max_size=32).map(lambda digest: "upload://" + digest.hex()),
    min_size=1,
    max_size=4,
)
_STORED_CLASSIFICATIONS: Final = st.none() | json_objects(
    max_bytes=RULE_BOOK_LIMITS.max_classifications_bytes, min_size=1
)
_VERSIONS: Final = st.integers(1, 10_000)


@st.composite
def _products(draw: st.DrawFn, *, owners: st.SearchStrategy[str]) -> cc.Product:
    one_shot = one_in(draw, 5)
    external_id = ANON_PREFIX + draw(_ONE_SHOT_SUFFIXES) if one_shot else draw(external_ids())
    created = draw(_MOMENTS_MS)
    updated = created + draw(_DELAYS_MS)
    last_used: int | None = None
    if one_shot or draw(st.booleans()):  # a one-shot product is made by a use (R22c)
        last_used = created + draw(_DELAYS_MS)
    fields = draw(st.fixed_dictionaries(_product_fields(allow_null_days=not one_shot)))
    days = fields["validForDays"]
    expires = None if days is None else max(updated, last_used or updated) + days * DAY_MS  # R19
    sources = draw(_SOURCE_LISTS)
    return cc.Product(
        account=draw(owners),
        external_id=external_id,
        title=fields["title"],
        description=fields["description"],
        metadata=fields["metadata"],
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


def products(*, account: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[cc.Product]:
    """``cc.Product`` values that keep the model's invariants, for wire round-trip tests (R31).

    Timestamps are UTC whole milliseconds; ``updatedAt`` and ``lastUsedAt`` are not before
    ``createdAt``; ``version >= 1``; images are ordered 0..n-1, with URL or ``upload://<sha256>``
    sources and classifications that are ``None`` or a non-empty object (R16); ``expiresAt``
    follows R19. About one product in five is a one-shot product (an ``_anon_`` id, used, and
    always expiring: R22c).

    Args:
        account: a strategy of accounts (``st.just("acme")`` for one); by default
            :func:`accounts`.

    Raises:
        InvalidArgument: ``account`` is not a strategy.
    """
    return _products(owners=strategy_option("account", account, accounts()))


# -- the try-on flow (T1-T8) ----------------------------------------------------------------------


@attrs.frozen
class TryOnRequest(_Request):
    """A valid try-on body (T5-T8) and its file parts.

    Attributes:
        payload: the body, as a ``dict``; :meth:`body` gives it as raw JSON bytes.
        files: the file parts by part name: the product item's and the person image's.
        item: the product item the body holds (R22): its ``kind`` says what the catalog must hold
            for the body to be accepted (a reference needs a live product).
        person: how the body gives the person image: ``"id"`` (an uploaded image), ``"url"`` or
            ``"fileKey"`` (a file part of the request).
        deprecated: the deprecated names the body uses (``product``, ``customer``,
            ``customerId``, ``useWatermark``, ``retentionDays``), each a warning (T6).
    """

    item: UseRequest = attrs.field(kw_only=True)
    person: Literal["id", "url", "fileKey"] = attrs.field(default="url", kw_only=True)
    deprecated: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @property
    def external_id(self) -> str | None:
        """The product item's ``externalId`` (``None`` for a one-shot item)."""
        return self.item.external_id


@attrs.frozen
class UploadRequest:
    """Valid parts of a person-image upload (T1, T2) and what they ask for.

    Attributes:
        fields: the parts by name, as ``TryOn.upload_form`` takes them: ``file`` an upload of
            real image bytes; the text fields as a multipart parser hands them (``str`` or
            ``bytes``), or as Python values (``crop`` a ``bool``, ``keepForDays`` an ``int``).
        crop: what ``crop`` asks for (``True`` when omitted).
        keep_for_days: the image's retention in days (7 when omitted).
        customer_id: the ``externalUserId`` (or deprecated ``customerId``), or ``None``.
        deprecated: the deprecated names used (``retentionDays``, ``customerId``), each a
            warning (T2).
    """

    fields: Mapping[str, Any] = attrs.field(converter=dict)
    crop: bool = True
    keep_for_days: int = DEFAULT_KEEP_FOR_DAYS
    customer_id: str | None = None
    deprecated: tuple[str, ...] = ()

    @property
    def file(self) -> cc.Upload:
        """The ``file`` part."""
        upload: cc.Upload = self.fields["file"]
        return upload


# The plain ones first: a failing example shrinks to "shopper-1".
_CUSTOMER_IDS: Final = st.one_of(
    st.sampled_from(["shopper-1", "user@example.com", "x" * MAX_CUSTOMER_ID_LENGTH, "ü 😀"]),
    id_texts(max_size=24),
)


def customer_ids() -> st.SearchStrategy[str]:
    """Valid end-user ids (``externalUserId``, T2): 1-256 characters, no control characters.

    Lone surrogates are refused too, as in every text field (R2); the 256-character boundary is
    drawn now and then.
    """
    return _CUSTOMER_IDS


def _as_part(draw: st.DrawFn, text: str) -> str | bytes:
    """A text field as a multipart parser may hand it: ``str``, or now and then UTF-8 bytes."""
    return text.encode("utf-8") if one_in(draw, 4) else text


@st.composite
def _upload_requests(
    draw: st.DrawFn, *, customers: st.SearchStrategy[str], deprecated: bool
) -> UploadRequest:
    fields: dict[str, Any] = {"file": draw(UPLOADS)}
    old: list[str] = []
    crop = True
    if draw(st.booleans()):  # T2: true/false, or the strings "true"/"false"
        crop = draw(st.booleans())
        text = "true" if crop else "false"
        fields["crop"] = crop if draw(st.booleans()) else _as_part(draw, text)
    keep = DEFAULT_KEEP_FOR_DAYS
    if draw(st.booleans()):
        keep = draw(st.sampled_from(KEEP_FOR_DAYS))
        name = "retentionDays" if deprecated and one_in(draw, 3) else "keepForDays"
        fields[name] = keep if draw(st.booleans()) else _as_part(draw, str(keep))
        if name == "retentionDays":
            old.append(name)
    customer = None
    if draw(st.booleans()):
        customer = draw(customers)
        name = "customerId" if deprecated and one_in(draw, 3) else "externalUserId"
        fields[name] = _as_part(draw, customer)
        if name == "customerId":
            old.append(name)
    order = draw(st.permutations(list(fields)))  # a form's parts come in any order
    return UploadRequest(
        {name: fields[name] for name in order},
        crop=crop,
        keep_for_days=keep,
        customer_id=customer,
        deprecated=tuple(old),
    )


def upload_fields(
    *, external_user_id: st.SearchStrategy[str] | None = None, deprecated: bool = True
) -> st.SearchStrategy[UploadRequest]:
    """Valid parts of ``POST /images/upload`` (T1, T2), for ``TryOn.upload_form``.

    ``file`` holds real image bytes (JPEG, PNG, WebP, HEIC/HEIF or AVIF headers); ``crop`` is a
    boolean or the string ``"true"``/``"false"``; ``keepForDays`` is 1, 3 or 7, as an integer
    or as text; ``externalUserId`` is a customer id; each may be omitted. Text fields come as
    ``str`` or, now and then, UTF-8 ``bytes``, as a multipart parser may hand them.

    Args:
        external_user_id: a strategy of customer ids (``st.just("shopper-1")`` for one); by
            default :func:`customer_ids`. They must be valid.
        deprecated: also draw the deprecated names ``retentionDays`` and ``customerId`` (never
            beside their new names, which is refused).

    Raises:
        InvalidArgument: ``external_user_id`` is not a strategy.
    """
    customers = strategy_option("external_user_id", external_user_id, customer_ids())
    return _upload_requests(customers=customers, deprecated=deprecated)


_PERSON_PARTS: Final = st.sampled_from(["person", "photo", "selfie.jpg", "me 1.png", "ïmage"])
_WATERMARKS: Final = st.booleans()
_KEEPS: Final = st.sampled_from(KEEP_FOR_DAYS)


@st.composite
def _tryon_requests(
    draw: st.DrawFn,
    *,
    items: st.SearchStrategy[UseRequest],
    image_ids: st.SearchStrategy[str] | None,
    customers: st.SearchStrategy[str],
    deprecated: bool,
) -> TryOnRequest:
    item = draw(items)
    files = dict(item.files)
    old: list[str] = []
    body: dict[str, Any] = {}
    if deprecated and one_in(draw, 4):  # T6: the single product object
        body["product"] = dict(item.payload)
        old.append("product")
    else:
        body["products"] = [dict(item.payload)]

    kinds: tuple[Literal["id", "url", "fileKey"], ...] = ("url", "fileKey")
    person = pick(draw, kinds if image_ids is None else (*kinds, "id"))
    source: dict[str, Any]
    if person == "id" and image_ids is not None:
        source = {"id": draw(image_ids)}
    elif person == "url":
        source = {"url": draw(urls())}  # never under .invalid: that is refused (T7)
    else:
        name = draw(_PERSON_PARTS)
        while name in files:  # the person's part is its own
            name += "'"
        files[name] = draw(UPLOADS)
        source = {"fileKey": name}
    shape = pick(draw, ("person", "customer", "customer.source") if deprecated else ("person",))
    if shape == "person":
        body["person"] = {"image": {"source": source}}
    else:  # T6: customer: {id | url | fileKey} and customer: {source: {...}}
        body["customer"] = source if shape == "customer" else {"source": source}
        old.append("customer")

    if draw(st.booleans()):
        name = "customerId" if deprecated and one_in(draw, 3) else "externalUserId"
        body[name] = draw(customers)
        if name == "customerId":
            old.append(name)
    output: dict[str, Any] = {}
    for new, deprecated_name, values in (
        ("watermark", "useWatermark", _WATERMARKS),
        ("keepForDays", "retentionDays", _KEEPS),
    ):
        if draw(st.booleans()):
            if deprecated and one_in(draw, 3):  # T6: top-level useWatermark, retentionDays
                body[deprecated_name] = draw(values)
                old.append(deprecated_name)
            else:
                output[new] = draw(values)
    if output or one_in(draw, 8):
        body["output"] = output
    return TryOnRequest(body, files, item=item, person=person, deprecated=tuple(old))


def tryon_bodies(
    *,
    item: st.SearchStrategy[UseRequest] | None = None,
    image_id: st.SearchStrategy[str] | None = None,
    external_user_id: st.SearchStrategy[str] | None = None,
    deprecated: bool = True,
) -> st.SearchStrategy[TryOnRequest]:
    """Valid try-on bodies (T5-T8), for ``TryOn.start``, in every shape the rule book accepts.

    ``products: [item]`` (or, with ``deprecated``, the single ``product`` object) holds one
    product item of :func:`use_items`; the person image is ``person.image.source`` with ``url``
    or ``fileKey`` (its bytes in a file part of its own), or ``id`` when ``image_id`` is given
    (with ``deprecated``, also ``customer: {…}`` and ``customer: {source: {…}}``); and now and
    then ``externalUserId`` (or ``customerId``) and ``output: {watermark?, keepForDays?}`` (or
    the top-level ``useWatermark`` and ``retentionDays``). A new name is never drawn beside its
    old one, which is refused. Person URLs are never under ``.invalid`` (T7).

    What the catalog must hold for a body to be accepted is the product item's (a reference needs
    a live product: see :attr:`TryOnRequest.item`) and, for an ``id``, a live person image of the
    account; and a credit (T16).

    Args:
        item: a strategy of product items; by default :func:`use_items`.
        image_id: a strategy of the ids of person images uploaded beforehand
            (``st.just(image.image_id)``); without it no body names its person by ``id``.
        external_user_id: a strategy of customer ids; by default :func:`customer_ids`.
        deprecated: also draw the deprecated shapes of T6.

    Raises:
        InvalidArgument: an option that takes a strategy was given something else.
    """
    items = strategy_option("item", item, use_items())
    image_ids = strategy_option("image_id", image_id, None)
    customers = strategy_option("external_user_id", external_user_id, customer_ids())
    return _tryon_requests(
        items=items, image_ids=image_ids, customers=customers, deprecated=deprecated
    )
