"""The try-on flow on the wire: upload fields and try-on bodies to commands, results to JSON.

Decoding follows the rule book's order (T9): the body and its product item are decoded as R30
says (:func:`~catalog_core.wire.decode.decode_upsert`), the person checks come after them and are
kept aside (:attr:`DecodedStart.person_error`) so that the product item's file checks, which the
use case runs, come first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from catalog_core.commands import UseCommand
from catalog_core.errors import (
    CatalogError,
    CustomerImageRequired,
    Detail,
    ExternalIdRequired,
    FileRequired,
    InvalidImageInput,
    ValidationFailed,
)
from catalog_core.limits import Limits
from catalog_core.model import MAX_WARNINGS, PayloadWarning, Upload
from catalog_core.tryon.commands import (
    DEFAULT_KEEP_FOR_DAYS,
    KEEP_FOR_DAYS,
    PersonSource,
    StartCommand,
    UploadOptions,
)
from catalog_core.tryon.model import GenerationView, PersonImage
from catalog_core.wire.decode import _Decoder, check_parts_size, decode_try_on, decode_upsert

__all__ = [
    "MAX_CUSTOMER_ID_LENGTH",
    "DecodedStart",
    "check_customer_id",
    "check_keep_for_days",
    "decode_start",
    "decode_upload",
    "generation_to_wire",
    "start_to_wire",
    "sync_to_wire",
    "upload_to_wire",
]

#: The longest ``externalUserId`` (T2).
MAX_CUSTOMER_ID_LENGTH: Final = 256
_CONTROL_OR_SURROGATE: Final = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_TOP_KEYS: Final = frozenset(
    (
        "products",
        "product",
        "person",
        "customer",
        "externalUserId",
        "customerId",
        "output",
        "useWatermark",
        "retentionDays",
    )
)
_UPLOAD_KEYS: Final = frozenset(
    ("file", "crop", "keepForDays", "retentionDays", "externalUserId", "customerId")
)
_SOURCE_KEYS: Final = ("id", "url", "fileKey")
_OUTPUT_KEYS: Final = frozenset(("watermark", "keepForDays"))


def check_customer_id(value: object) -> str | None:
    """Return why ``value`` is not a customer id (1-256 characters, no control ones), or None."""
    if not isinstance(value, str):
        return "must be a string"
    if not 1 <= len(value) <= MAX_CUSTOMER_ID_LENGTH:
        return f"must be 1 to {MAX_CUSTOMER_ID_LENGTH} characters"
    if _CONTROL_OR_SURROGATE.search(value):
        return "must not contain control characters or lone surrogates"
    return None


def check_keep_for_days(value: object) -> str | None:
    """Return why ``value`` is not a retention of 1, 3 or 7 days, or ``None`` (T2, T8)."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in KEEP_FOR_DAYS:
        return "must be 1, 3 or 7"
    return None


class _Fields:
    """Collects the details and warnings of one try-on request's own fields."""

    def __init__(self) -> None:
        self.details: list[Detail] = []
        self.warnings: list[PayloadWarning] = []
        self.count = 0

    def fail(self, path: str, message: str) -> None:
        self.details.append(Detail(path, message))

    def warn(self, code: str, path: str, message: str) -> None:
        self.count += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(PayloadWarning(code, path, message))

    def renamed(
        self, body: Mapping[str, Any], new: str, old: str, *, new_path: str = ""
    ) -> tuple[str, Any] | None:
        """Return ``(path, value)`` of a field that has a deprecated name, or ``None`` if absent.

        ``null`` is absent, as for every optional field of a try-on or an upload.
        """
        has_new, has_old = body.get(new) is not None, body.get(old) is not None
        if has_new and has_old:
            self.fail(old, f"{new_path or new} and {old} cannot be used together")
            return None
        if has_old:
            self.warn("DEPRECATED_FIELD", old, f"{old} is deprecated; use {new_path or new}")
            return old, body[old]
        if has_new:
            return new_path or new, body[new]
        return None


# -- uploads (T1, T2) -------------------------------------------------------------------------


def _form_text(part: str | bytes | Upload) -> str | None:
    if isinstance(part, str):
        return part
    data = part.data if isinstance(part, Upload) else part
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_upload(
    fields: Mapping[str, str | bytes | Upload | bool | int | None], limits: Limits
) -> tuple[Upload, UploadOptions, tuple[PayloadWarning, ...], int]:
    """Decode the parts of a person-image upload (T1, T2).

    Args:
        fields: every part by name: ``file`` as an :class:`~catalog_core.Upload` (or bytes), the
            others as text (or, from Python, as ``bool``/``int`` values; ``None`` means absent).
        limits: the request limit.

    Returns:
        The file, the options, the first warnings and their count.

    Raises:
        PayloadTooLarge, FileRequired, ValidationFailed: in that order. The file's bytes are
        checked by the use case (``INVALID_IMAGE``, ``FILE_TOO_LARGE``).
    """
    check_parts_size(fields, limits)
    present = {k: v for k, v in fields.items() if v is not None}
    file = present.get("file")
    if file is None:
        raise FileRequired("The file part is required: the person image goes in a part named file.")
    if isinstance(file, str):
        file = Upload(file.encode("utf-8", "surrogatepass"))
    elif isinstance(file, bytes | bytearray):
        file = Upload(bytes(file))
    elif not isinstance(file, Upload):
        raise ValidationFailed.at("file", "must be a file part")
    found = _Fields()
    for key in present:
        if key not in _UPLOAD_KEYS:
            found.warn("UNKNOWN_FIELD", str(key), "unknown field ignored")
    crop = True
    if "crop" in present:
        value = present["crop"]
        text = value if isinstance(value, bool) else _text_value(value)
        if text is True or text == "true":
            crop = True
        elif text is False or text == "false":
            crop = False
        else:
            found.fail("crop", 'must be true or false (or the strings "true" and "false")')
    keep = DEFAULT_KEEP_FOR_DAYS
    days = found.renamed(present, "keepForDays", "retentionDays")
    if days is not None:
        path, value = days
        number = _days_value(value)
        problem = check_keep_for_days(number)
        if problem:
            found.fail(path, problem)
        else:
            keep = number  # type: ignore[assignment]
    customer_id: str | None = None
    customer = found.renamed(present, "externalUserId", "customerId")
    if customer is not None:
        path, value = customer
        text = _text_value(value)
        problem = check_customer_id(text)
        if problem or not isinstance(text, str):
            found.fail(path, problem or "must be a string")
        else:
            customer_id = text
    if found.details:
        raise ValidationFailed.of(found.details)
    options = UploadOptions(crop=crop, keep_for_days=keep, customer_id=customer_id)
    return file, options, tuple(found.warnings), found.count


def _text_value(value: object) -> object:
    if isinstance(value, str | bytes | bytearray | Upload):
        text = _form_text(value)  # type: ignore[arg-type]
        return value if text is None else text
    return value


def _days_value(value: object) -> object:
    value = _text_value(value)
    if isinstance(value, str) and value in ("1", "3", "7"):
        return int(value)
    return value


# -- try-on bodies (T5-T9) --------------------------------------------------------------------


@attrs.frozen
class DecodedStart:
    """A decoded try-on body.

    Attributes:
        command: the try-on; its ``person`` is ``None`` when :attr:`person_error` is set.
        warnings: the first warnings (deprecated shapes, unknown fields).
        warning_count: how many warnings there were.
        person_error: the person's first problem (T7), raised after the product item's own
            checks (T9); ``None`` when the person is well formed.
    """

    command: StartCommand
    warnings: tuple[PayloadWarning, ...]
    warning_count: int
    person_error: CatalogError | None


def decode_start(body: Mapping[str, Any], limits: Limits) -> DecodedStart:
    """Decode a try-on body (T5-T8): its product item as R22, its person, its output options.

    Raises:
        ExternalIdRequired, ValidationFailed, InvalidImageInput, ReservedExternalId: for the
            body and the product item, in the order of R30, every field problem of the body's
            own fields (``externalUserId``, ``output``…) in the same ``VALIDATION_FAILED``.
    """
    found = _Fields()
    for key in body:
        if key not in _TOP_KEYS:
            found.warn("UNKNOWN_FIELD", str(key), "unknown field ignored")
    item: Mapping[str, Any] | None = None
    prefix = ""
    try:
        item, prefix, item_warnings = decode_try_on(body)
    except ValidationFailed as exc:
        found.details.extend(exc.details)
        item_warnings = ()
    customer_id = None
    customer = found.renamed(body, "externalUserId", "customerId")
    if customer is not None:
        path, value = customer
        problem = check_customer_id(value)
        if problem:
            found.fail(path, problem)
        else:
            customer_id = value
    watermark, keep = _output(body, found)
    if body.get("person") is not None and body.get("customer") is not None:
        # A field problem of the body's own: with the others, at once (R30, T6).
        found.fail("customer", "person and customer cannot be used together")
    command: UseCommand | None = None
    item_error: CatalogError | None = None
    warnings: list[PayloadWarning] = list(item_warnings)
    count = len(item_warnings)
    if item is not None:
        try:
            decoded, more, more_count = decode_upsert(item, limits, for_use=True, prefix=prefix)
        except ValidationFailed as exc:
            found.details.extend(exc.details)
        except ExternalIdRequired:
            raise  # before every field problem (R30)
        except CatalogError as exc:
            item_error = exc
        else:
            command = UseCommand(
                external_id=decoded.external_id,
                title=decoded.title,
                description=decoded.description,
                metadata=decoded.metadata,
                valid_for_days=decoded.valid_for_days,
                images=decoded.images,
            )
            warnings.extend(more)
            count += more_count
    if found.details:
        raise ValidationFailed.of(found.details)
    if item_error is not None:
        raise item_error
    person, person_error = _person(body, limits, found)
    all_warnings = (tuple(warnings) + tuple(found.warnings))[:MAX_WARNINGS]
    assert command is not None  # every path that leaves it None raised
    return DecodedStart(
        StartCommand(
            product=command,
            person=person,
            customer_id=customer_id,
            watermark=watermark,
            keep_for_days=keep,
        ),
        all_warnings,
        count + found.count,
        person_error,
    )


def _output(body: Mapping[str, Any], found: _Fields) -> tuple[bool, int]:
    watermark, keep = True, DEFAULT_KEEP_FOR_DAYS
    output = body.get("output")
    if output is not None and not isinstance(output, Mapping):
        found.fail("output", "must be an object")
        output = None
    output = output or {}
    for key in output:
        if key not in _OUTPUT_KEYS:
            found.warn("UNKNOWN_FIELD", f"output.{key}", "unknown field ignored")
    merged: dict[str, Any] = {}
    if "watermark" in output:
        merged["watermark"] = output["watermark"]
    if "keepForDays" in output:
        merged["keepForDays"] = output["keepForDays"]
    for old in ("useWatermark", "retentionDays"):
        if old in body:
            merged[old] = body[old]
    mark = found.renamed(merged, "watermark", "useWatermark", new_path="output.watermark")
    if mark is not None:
        path, value = mark
        if not isinstance(value, bool):
            found.fail(path, "must be a boolean")
        else:
            watermark = value
    days = found.renamed(merged, "keepForDays", "retentionDays", new_path="output.keepForDays")
    if days is not None:
        path, value = days
        problem = check_keep_for_days(value)
        if problem:
            found.fail(path, problem)
        else:
            keep = value
    return watermark, keep


def _person(
    body: Mapping[str, Any], limits: Limits, found: _Fields
) -> tuple[PersonSource | None, CatalogError | None]:
    """Decode the person (T7) or its deprecated ``customer`` shapes (T6)."""
    has_person, has_customer = body.get("person") is not None, body.get("customer") is not None
    if has_person and has_customer:
        return None, ValidationFailed.at("customer", "person and customer cannot be used together")
    if has_customer:
        found.warn("DEPRECATED_FIELD", "customer", "customer is deprecated; use person.image")
        customer = body["customer"]
        if not isinstance(customer, Mapping):
            return None, ValidationFailed.at("customer", "must be an object")
        if "source" in customer:
            _warn_unknown(found, customer, ("source",), "customer")
            return _source(customer["source"], "customer.source", limits, found)
        return _source(customer, "customer", limits, found)
    if not has_person:
        return None, CustomerImageRequired(
            "A person image is required: give person.image.source with id, url or fileKey.",
            [Detail("person", "is required")],
        )
    person = body["person"]
    if not isinstance(person, Mapping):
        return None, ValidationFailed.at("person", "must be an object")
    _warn_unknown(found, person, ("image",), "person")
    image = person.get("image")
    if image is None:
        return None, CustomerImageRequired(
            "A person image is required: give person.image.source with id, url or fileKey.",
            [Detail("person.image", "is required")],
        )
    if not isinstance(image, Mapping):
        return None, ValidationFailed.at("person.image", "must be an object")
    _warn_unknown(found, image, ("source",), "person.image")
    return _source(image.get("source"), "person.image.source", limits, found)


def _warn_unknown(
    found: _Fields | None, holder: Mapping[str, Any], known: tuple[str, ...], path: str
) -> None:
    """Warn about every key of ``holder`` that is not ``known`` (``UNKNOWN_FIELD``)."""
    if found is None:
        return
    for key in holder:
        if key not in known:
            found.warn("UNKNOWN_FIELD", f"{path}.{key}", "unknown field ignored")


def _source(
    source: object, path: str, limits: Limits, found: _Fields | None = None
) -> tuple[PersonSource | None, CatalogError | None]:
    if source is None:
        source = {}
    if not isinstance(source, Mapping):
        return None, ValidationFailed.at(path, "must be an object")
    _warn_unknown(found, source, _SOURCE_KEYS, path)
    given = [key for key in _SOURCE_KEYS if source.get(key) is not None]
    if len(given) != 1:
        which = "none" if not given else " and ".join(given)
        return None, InvalidImageInput(
            f"Image source at {path} must hold exactly one of id, url and fileKey.",
            [Detail(path, f"must hold exactly one of id, url and fileKey, not {which}")],
        )
    key = given[0]
    value = source[key]
    decoder = _Decoder(limits, "", owned=False)
    if key == "url":
        url = decoder.url(value, path, "url")
        if url is None:
            return None, ValidationFailed.of(decoder.details)
        return PersonSource(url=url, path=path), None
    checked = decoder.file_key(value, path, key)
    if checked is None:
        return None, ValidationFailed.of(decoder.details)
    if key == "id":
        return PersonSource(image_id=checked, path=path), None
    return PersonSource(file_key=checked, path=path), None


# -- answers (T3, T10-T12) --------------------------------------------------------------------


def upload_to_wire(image: PersonImage, url: str) -> dict[str, Any]:
    """Return ``{imageId, imageUrl}`` (T3)."""
    return {"imageId": image.image_id, "imageUrl": url}


def start_to_wire(view: GenerationView) -> dict[str, Any]:
    """Return ``{generationId, status, productExternalId}`` (T10): the status at acceptance."""
    return {
        "generationId": view.generation_id,
        "status": "PENDING",
        "productExternalId": view.product_external_id,
    }


def generation_to_wire(
    view: GenerationView, result_url: Callable[[GenerationView], str]
) -> dict[str, Any]:
    """Return the generation object of T12; ``resultImageUrl`` only when ``COMPLETED``.

    Args:
        view: the generation at one time.
        result_url: the absolute URL of its result (T15).
    """
    from catalog_core.wire.encode import format_timestamp

    wire: dict[str, Any] = {"generationId": view.generation_id, "status": view.status}
    if view.result is not None:
        wire["resultImageUrl"] = result_url(view)
    if view.error_code is not None:
        wire["errorMessage"] = view.error_message or view.error_code
        wire["errorCode"] = view.error_code
    wire["createdAt"] = format_timestamp(view.created_at)
    wire["updatedAt"] = format_timestamp(view.updated_at)
    return wire


def sync_to_wire(
    view: GenerationView, result_url: Callable[[GenerationView], str], *, finished: bool
) -> dict[str, Any]:
    """Return the answer of ``/try-on/sync`` (T11).

    Finished: the generation and its product; else ``{generationId, status, productExternalId}``.
    """
    if not finished:
        return {
            "generationId": view.generation_id,
            "status": view.status,
            "productExternalId": view.product_external_id,
        }
    wire = generation_to_wire(view, result_url)
    wire["productExternalId"] = view.product_external_id
    return wire
