"""Products and pages to their wire form (R31), through the cattrs converter of the field table.

The converter is made by :func:`make_converter`, never cattrs' global one, with hooks generated
from :mod:`catalog_core.wire.fields`; it is the only encoder. Its structure hooks
are strict (no coercion of ``42`` to ``"42"`` or of ``True`` to ``1``), and every cattrs
exception is translated into ``VALIDATION_FAILED`` before it can leave this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import cattrs
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from catalog_core._json import dumps, quick_dumps
from catalog_core.errors import Detail, ValidationFailed
from catalog_core.limits import Limits
from catalog_core.model import Image, Page, Product, ProductRow, from_epoch_ms
from catalog_core.wire.decode import check_external_id, days_problem, json_value_problem
from catalog_core.wire.fields import WRITTEN_IMAGE_FIELDS, WRITTEN_PRODUCT_FIELDS, Field, Kind

__all__ = [
    "format_epoch_ms",
    "format_timestamp",
    "make_converter",
    "page_to_wire",
    "page_to_wire_json",
    "parse_timestamp",
    "product_from_wire",
    "row_to_wire",
    "rows_page_json",
    "to_wire",
    "to_wire_json",
]

# "00" to "59" and "000" to "999": the hours, minutes, seconds and milliseconds of a timestamp.
_TWO_DIGITS: Final = tuple(f"{number:02d}" for number in range(60))
_THREE_DIGITS: Final = tuple(f"{number:03d}" for number in range(1000))
# The ISO text of the days timestamps fell on, by proleptic ordinal; at most _MAX_DATES of them
# (about 11 years).
_DATES: Final[dict[int, str]] = {}
_MAX_DATES: Final = 4096
# The ordinal of 1970-01-01, and the milliseconds of a day: epoch milliseconds to days.
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_DAY_MS: Final = 86_400_000
_TIMESTAMP: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
# Attribute names to wire names, for the paths of cattrs' errors.
_WIRE_NAMES: Final = {
    field.attribute: field.wire for field in (*WRITTEN_PRODUCT_FIELDS, *WRITTEN_IMAGE_FIELDS)
}


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` as UTC ISO-8601 with exactly three fractional digits and ``Z`` (R31)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # Every response writes three or four of these. The C isoformat of a date or a time parses
    # a format string at each call: the time's pieces looked up in tables take under half the
    # time of the time's isoformat (%-formatting them, or an f-string with widths, is slower
    # still), and a day's text is remembered, for a catalog's timestamps fall on few days. On a
    # remembered day this takes two fifths of the time of the two isoformats; on a new day,
    # about the same time.
    day = moment.toordinal()
    date_text = _DATES.get(day)
    if date_text is None:
        date_text = _date_text(day)
    return (
        f"{date_text}T{_TWO_DIGITS[moment.hour]}:{_TWO_DIGITS[moment.minute]}"
        f":{_TWO_DIGITS[moment.second]}.{_THREE_DIGITS[moment.microsecond // 1000]}Z"
    )


def format_epoch_ms(ms: int) -> str:
    """Return :func:`format_timestamp` of the moment ``ms`` milliseconds after the epoch.

    The same text, written from the number: a listing read as rows makes no ``datetime``.
    """
    if type(ms) is not int:  # a time stored as a REAL by other means: as a datetime reads it
        return format_timestamp(from_epoch_ms(ms))
    days, rest = divmod(ms, _DAY_MS)
    date_text = _DATES.get(days + _EPOCH_ORDINAL)
    if date_text is None:
        date_text = _date_text(days + _EPOCH_ORDINAL)
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return (
        f"{date_text}T{_TWO_DIGITS[hour]}:{_TWO_DIGITS[minute]}"
        f":{_TWO_DIGITS[second]}.{_THREE_DIGITS[millis]}Z"
    )


def _date_text(ordinal: int) -> str:
    """Return the ISO text of the day of ``ordinal``, and remember it."""
    if len(_DATES) >= _MAX_DATES:  # a bound, not an eviction policy: rarely reached
        _DATES.clear()
    text = _DATES[ordinal] = date.fromordinal(ordinal).isoformat()
    return text


def parse_timestamp(text: object) -> datetime:
    """Parse a wire timestamp (``2026-05-13T10:00:00.000Z``).

    Raises:
        ValueError: ``text`` is not in exactly that form.
    """
    if not isinstance(text, str) or not _TIMESTAMP.fullmatch(text):
        raise ValueError(f"not a wire timestamp: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def _strict(kind: type[Any]) -> Any:
    def structure(value: object, _: object) -> Any:
        # bool is an int subclass; the rules never want it where a number or string goes.
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _structure_mapping(value: object, _: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _copy(value: Any) -> Any:
    """Return a copy of a JSON value that shares no dict or list with it."""
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item) for item in value]
    return value


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def _unstructure_hook(field: Field, copy_json: bool, image: Callable[[Image], Any]) -> Any:
    """Return how ``field``'s value is written: ``identity`` is inlined by cattrs."""
    if field.kind is Kind.TIMESTAMP:
        return _stamp if field.nullable else format_timestamp
    if field.kind is Kind.JSON:
        return _copy if copy_json else identity  # _copy(None) is None
    if field.kind is Kind.IMAGES:
        return lambda images: [image(item) for item in images]
    return identity


def _overrides(
    fields: tuple[Field, ...], copy_json: bool, image: Callable[[Image], Any] = identity
) -> dict[str, Any]:  # Any: cattrs types **overrides beside its own bool options
    """Return the cattrs overrides of ``fields``: wire names, hooks, omitted ``None`` values."""
    return {
        field.attribute: override(
            rename=field.wire,
            omit_if_default=field.omit_none or None,  # the attribute's default is None
            unstruct_hook=_unstructure_hook(field, copy_json, image),
        )
        for field in fields
    }


def _structure_overrides(fields: tuple[Field, ...]) -> dict[str, Any]:
    return {field.attribute: override(rename=field.wire) for field in fields}


def make_converter(*, copy_json: bool = True) -> cattrs.Converter:
    """Return the converter of the wire format: camelCase names, R31 timestamps, strict types.

    Its hooks are generated from the field table (:mod:`catalog_core.wire.fields`), specialised
    for each class: a product unstructures to the dict of :func:`to_wire`, keys in R31 order.

    Args:
        copy_json: give the unstructured dict copies of ``metadata`` and ``classifications``;
            ``False`` shares them with the product, for a dict written out at once and dropped.
    """
    converter = cattrs.Converter()
    converter.register_unstructure_hook(datetime, format_timestamp)
    converter.register_structure_hook(datetime, lambda value, _: parse_timestamp(value))
    for kind in (str, int):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], _structure_mapping)

    image = make_dict_unstructure_fn(
        Image, converter, **_overrides(WRITTEN_IMAGE_FIELDS, copy_json)
    )
    converter.register_unstructure_hook(Image, image)
    converter.register_structure_hook(
        Image,
        make_dict_structure_fn(
            Image,
            converter,
            _cattrs_forbid_extra_keys=True,
            **_structure_overrides(WRITTEN_IMAGE_FIELDS),
        ),
    )
    converter.register_unstructure_hook(
        Product,
        make_dict_unstructure_fn(
            Product,
            converter,
            account=override(omit=True),
            version=override(omit=True),
            **_overrides(WRITTEN_PRODUCT_FIELDS, copy_json, image),
        ),
    )
    converter.register_structure_hook(
        Product,
        make_dict_structure_fn(
            Product,
            converter,
            _cattrs_forbid_extra_keys=True,
            **_structure_overrides(WRITTEN_PRODUCT_FIELDS),
        ),
    )
    return converter


# Two converters of the same table: the response bytes are written at once, so they need no
# copies of metadata and classifications, and copying them would double the time of the
# `encode` benchmark case (measured 11.4 µs against 5.7 µs a product).
_CONVERTER: Final = make_converter()
_SHARING: Final = make_converter(copy_json=False)
_TO_WIRE: Final[Callable[[Product], dict[str, Any]]] = _CONVERTER.get_unstructure_hook(Product)
_TO_WIRE_SHARED: Final[Callable[[Product], dict[str, Any]]] = _SHARING.get_unstructure_hook(Product)
_LIMITS: Final = Limits()


def to_wire(product: Product) -> dict[str, Any]:
    """Return ``product`` exactly as the public service sends it (R31).

    ``metadata`` and ``classifications`` are copies: changing the dict never changes the product.
    """
    return _TO_WIRE(product)


def to_wire_json(product: Product) -> bytes:
    """Return the response body of ``product``: its wire form as compact UTF-8 JSON (R31)."""
    return dumps(_TO_WIRE_SHARED(product))


def page_to_wire_json(page: Page) -> bytes:
    """Return the response body of a listing page: :func:`page_to_wire` as compact UTF-8 JSON.

    The same bytes as ``dumps(page_to_wire(page))``, the items' dicts sharing metadata and
    classifications with the products rather than copying them.
    """
    items = [_TO_WIRE_SHARED(item) for item in page.items]
    return _page_json(items, page.next_cursor, page.has_more)


def rows_page_json(rows: Sequence[ProductRow], next_cursor: str | None, has_more: bool) -> bytes:
    """Return :func:`page_to_wire_json` of the page of the products of ``rows``.

    The same bytes, written from the rows (:data:`~catalog_core.model.ProductRow`) with no
    ``Product``, ``Image`` or ``datetime`` made: what a listing read as rows is written with.
    """
    # The products of a page often share their times (a batch of an import is written at one
    # time): each time's text is written once a page.
    stamps: dict[int | None, str | None] = {None: None}
    return _page_json([_row_wire(row, stamps) for row in rows], next_cursor, has_more)


def row_to_wire(row: ProductRow) -> dict[str, Any]:
    """Return :func:`to_wire` of the product of ``row``, sharing its metadata and classifications.

    Written out here rather than made from the field table: ``tests/test_fast_paths.py`` checks
    that it is the converter's dict, keys in the same order, for generated products, so a field
    added to the table and not here fails there.
    """
    return _row_wire(row, {None: None})


def _row_wire(row: ProductRow, stamps: dict[int | None, str | None]) -> dict[str, Any]:
    """Return :func:`row_to_wire` of ``row``, each time's text from the memo ``stamps``.

    ``stamps`` maps a time in epoch milliseconds to its text, and ``None`` to ``None``; a time
    it does not hold yet is written into it.
    """
    external_id, title, description, metadata, days, expires, used, created, updated, images = row
    for ms in (expires, used, created, updated):
        if ms not in stamps:
            stamps[ms] = format_epoch_ms(ms)  # type: ignore[arg-type]  # None is in it
    return {
        "externalId": external_id,
        "title": title,
        "description": description,
        "metadata": metadata,
        "validForDays": days,
        "expiresAt": stamps[expires],
        "lastUsedAt": stamps[used],
        "createdAt": stamps[created],
        "updatedAt": stamps[updated],
        "images": [
            {"sourceUrl": image[0], "order": order, "classifications": image[1]}
            if len(image) > 1 and image[1] is not None  # as a stored row decodes: R16
            else {"sourceUrl": image[0], "order": order}
            for order, image in enumerate(images)
        ],
    }


def _page_json(items: list[dict[str, Any]], next_cursor: str | None, has_more: bool) -> bytes:
    """Return the response body of a listing page of the items' wire dicts."""
    # One orjson call for the whole page when its text is surely dumps': an eighth less time
    # than a call an item, for a page of 50. Else each item on its own, so that only an item
    # whose text may hold a float json writes otherwise is walked, and only one orjson cannot
    # write is left to json (such a page pays for the wasted call: about 5% more).
    text = quick_dumps(items)
    if text is None:
        text = b"[%b]" % b",".join([dumps(item) for item in items])
    cursor = b"null" if next_cursor is None else dumps(next_cursor)
    more = b"true" if has_more else b"false"
    return b'{"items":%b,"nextCursor":%b,"hasMore":%b,"count":%d}' % (
        text,
        cursor,
        more,
        len(items),
    )


def page_to_wire(page: Page) -> dict[str, Any]:
    """Return a listing page as ``{items, nextCursor, hasMore, count}`` (R24)."""
    return {
        "items": [to_wire(item) for item in page.items],
        "nextCursor": page.next_cursor,
        "hasMore": page.has_more,
        "count": page.count,
    }


def product_from_wire(data: Mapping[str, Any], *, account: str, version: int = 1) -> Product:
    """Read a product back from its wire form; the account and version are not in it (R31).

    The result must be a product the rules could have made: a valid id, ``validForDays`` in
    range, images ordered ``0, 1, …`` and plain JSON metadata and classifications.

    Raises:
        ValidationFailed: ``data`` is not such a product; details name the fields.
    """
    if not isinstance(data, Mapping) or not all(isinstance(key, str) for key in data):
        raise ValidationFailed.at("body", "must be a JSON object")
    if "account" in data or "version" in data:
        raise ValidationFailed.at("body", "account and version are not part of the wire form")
    try:
        product: Product = _CONVERTER.structure(
            {**data, "account": account, "version": version}, Product
        )
    except cattrs.BaseValidationError as exc:
        raise ValidationFailed.of(
            Detail(path or "body", message)
            for path, message in map(_split_cattrs, cattrs.transform_error(exc))
        ) from None
    details = _product_problems(product)
    if details:
        raise ValidationFailed.of(details)
    return product


def _product_problems(product: Product) -> list[Detail]:
    details = check_external_id(product.external_id, _LIMITS)
    if product.version < 1:
        details.append(Detail("version", "must be at least 1"))
    details += _value_problems(product, WRITTEN_PRODUCT_FIELDS, "")
    for index, image in enumerate(product.images):
        prefix = f"{_WIRE_NAMES['images']}.{index}."
        if image.order != index:
            details.append(Detail(prefix + _WIRE_NAMES["order"], f"must be {index}"))
        details += _value_problems(image, WRITTEN_IMAGE_FIELDS, prefix)
    return details


def _value_problems(value: object, fields: tuple[Field, ...], prefix: str) -> list[Detail]:
    """Return what the rules refuse in the values cattrs' types let through (R9, R10, R16)."""
    details = []
    for field in fields:
        item = getattr(value, field.attribute)
        if item is None:
            continue
        if field.kind is Kind.DAYS:
            problem = days_problem(item)
        elif field.kind is Kind.JSON:
            problem = json_value_problem(item)
        else:
            continue
        if problem:
            details.append(Detail(prefix + field.wire, problem))
    return details


def _split_cattrs(message: str) -> tuple[str, str]:
    # transform_error yields "message @ $.images[0].sourceUrl"; make it a dotted detail path.
    text, _, where = message.partition(" @ ")
    path = re.sub(r"\[(\d+)\]", r".\1", where.removeprefix("$"))
    path = path.replace("['", ".").replace("']", "").lstrip(".")
    return ".".join(_WIRE_NAMES.get(seg, seg) for seg in path.split(".")), text
