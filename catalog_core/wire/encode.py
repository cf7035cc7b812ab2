"""Products and pages to their wire form (R31), through one cattrs converter.

The converter is made by :func:`make_converter`, never cattrs' global one. Its structure hooks
are strict (no coercion of ``42`` to ``"42"`` or of ``True`` to ``1``), and every cattrs
exception is translated into ``VALIDATION_FAILED`` before it can leave this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from catalog_core._json import dumps
from catalog_core.errors import Detail, ValidationFailed
from catalog_core.limits import Limits
from catalog_core.model import Image, Page, Product
from catalog_core.wire.decode import check_external_id, json_value_problem

__all__ = [
    "format_timestamp",
    "make_converter",
    "page_to_wire",
    "parse_timestamp",
    "product_from_wire",
    "to_wire",
    "to_wire_json",
]

_TIMESTAMP: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

_WIRE_NAMES: Final = {
    "external_id": "externalId",
    "valid_for_days": "validForDays",
    "expires_at": "expiresAt",
    "last_used_at": "lastUsedAt",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
    "source_url": "sourceUrl",
}


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` as UTC ISO-8601 with exactly three fractional digits and ``Z`` (R31)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # %-formatting: measured at half the time of strftime or an f-string; every response uses it.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


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


def make_converter() -> cattrs.Converter:
    """Return the converter of the wire format: camelCase names, R31 timestamps, strict types."""
    converter = cattrs.Converter()
    converter.register_unstructure_hook(datetime, format_timestamp)
    converter.register_structure_hook(datetime, lambda value, _: parse_timestamp(value))
    for kind in (str, int):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], _structure_mapping)

    source_url = override(rename="sourceUrl")
    classifications = override(omit_if_default=True)
    converter.register_unstructure_hook(
        Image,
        make_dict_unstructure_fn(
            Image, converter, source_url=source_url, classifications=classifications
        ),
    )
    converter.register_structure_hook(
        Image,
        make_dict_structure_fn(
            Image,
            converter,
            _cattrs_forbid_extra_keys=True,
            source_url=source_url,
            classifications=classifications,
        ),
    )
    renamed = {
        name: override(rename=wire) for name, wire in _WIRE_NAMES.items() if name != "source_url"
    }
    converter.register_unstructure_hook(
        Product,
        make_dict_unstructure_fn(
            Product,
            converter,
            account=override(omit=True),
            version=override(omit=True),
            **renamed,  # type: ignore[arg-type]  # cattrs types **kwargs as overrides
        ),
    )
    converter.register_structure_hook(
        Product,
        make_dict_structure_fn(
            Product,
            converter,
            _cattrs_forbid_extra_keys=True,
            **renamed,  # type: ignore[arg-type]  # cattrs types **kwargs as overrides
        ),
    )
    return converter


_CONVERTER: Final = make_converter()
_LIMITS: Final = Limits()


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def _copy(value: Any) -> Any:
    """Return a copy of a JSON value that shares no dict or list with it."""
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item) for item in value]
    return value


def _image_to_wire(image: Image, copy: Callable[[Any], Any]) -> dict[str, Any]:
    if image.classifications is None:
        return {"sourceUrl": image.source_url, "order": image.order}
    return {
        "sourceUrl": image.source_url,
        "order": image.order,
        "classifications": copy(image.classifications),
    }


def _wire(product: Product, copy: Callable[[Any], Any]) -> dict[str, Any]:
    return {
        "externalId": product.external_id,
        "title": product.title,
        "description": product.description,
        "metadata": None if product.metadata is None else copy(product.metadata),
        "validForDays": product.valid_for_days,
        "expiresAt": _stamp(product.expires_at),
        "lastUsedAt": _stamp(product.last_used_at),
        "createdAt": _stamp(product.created_at),
        "updatedAt": _stamp(product.updated_at),
        "images": [_image_to_wire(image, copy) for image in product.images],
    }


def _same(value: Any) -> Any:
    return value


def to_wire(product: Product) -> dict[str, Any]:
    """Return ``product`` exactly as the public service sends it (R31).

    Written out by hand because every response goes through it; the converter of
    :func:`make_converter` unstructures a product to the same dict (the tests hold them equal).
    ``metadata`` and ``classifications`` are copies: changing the dict never changes the product.
    """
    return _wire(product, _copy)


def to_wire_json(product: Product) -> bytes:
    """Return the response body of ``product``: its wire form as compact UTF-8 JSON (R31)."""
    return dumps(_wire(product, _same))  # written at once: no copies needed


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
    if product.valid_for_days is not None and not 1 <= product.valid_for_days <= 365:
        details.append(Detail("validForDays", "must be from 1 to 365"))
    if product.version < 1:
        details.append(Detail("version", "must be at least 1"))
    if product.metadata is not None:
        problem = json_value_problem(product.metadata)
        if problem:
            details.append(Detail("metadata", problem))
    for index, image in enumerate(product.images):
        if image.order != index:
            details.append(Detail(f"images.{index}.order", f"must be {index}"))
        if image.classifications is not None:
            problem = json_value_problem(image.classifications)
            if problem:
                details.append(Detail(f"images.{index}.classifications", problem))
    return details


def _split_cattrs(message: str) -> tuple[str, str]:
    # transform_error yields "message @ $.images[0].sourceUrl"; make it a dotted detail path.
    text, _, where = message.partition(" @ ")
    path = re.sub(r"\[(\d+)\]", r".\1", where.removeprefix("$"))
    path = path.replace("['", ".").replace("']", "").lstrip(".")
    return ".".join(_WIRE_NAMES.get(seg, seg) for seg in path.split(".")), text
