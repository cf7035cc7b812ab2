"""Request payloads to commands: strict types, every field problem collected, errors in R30 order.

This layer is hand-written rather than a cattrs structure hook because the rules need things a
structuring converter does not give: three states per field (omitted, ``null``, value), the
deprecated image shapes recognised and normalised with a warning, unknown keys warned about rather
than refused, and one request yielding exactly one error chosen by the order of R30.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias

from catalog_core._json import (
    MAX_BYTE_COST,
    MAX_INT_DIGITS,
    VALUE_BYTES,
    LongInt,
    decoded_size,
    dumps,
    loads,
    loads_plain,
    quick_dumps,
)
from catalog_core._unset import UNSET, Unset
from catalog_core.commands import ImageInput, UpsertCommand
from catalog_core.errors import (
    Detail,
    ExternalIdRequired,
    InvalidImageInput,
    PayloadTooLarge,
    ValidationFailed,
)
from catalog_core.limits import Limits
from catalog_core.model import (
    ANON_PREFIX,
    MAX_WARNINGS,
    PayloadWarning,
    Upload,
    new_image,
)
from catalog_core.rules import check_reserved_id, one_shot_days_problem
from catalog_core.wire.fields import (
    IMAGE_ENTRY_KEYS,
    IMAGE_FIELDS,
    MAX_VALID_FOR_DAYS,
    PRODUCT_FIELDS,
    SOURCE_KEYS,
    UPSERT_KEYS,
    Field,
    Kind,
)

__all__ = [
    "MAX_VALID_FOR_DAYS",
    "FastFields",
    "check_account",
    "check_external_id",
    "check_parts_size",
    "check_request_size",
    "days_problem",
    "decode_try_on",
    "decode_upsert",
    "fast_fields",
    "json_value_problem",
    "load_body",
    "load_plain_body",
    "split_multipart",
]

# The fields a body sets beside its id, read in the order of the table; imageUrls is read with
# images, which it replaces.
_READ_FIELDS: Final = tuple(
    field for field in PRODUCT_FIELDS if field.read and field.kind not in (Kind.ID, Kind.IMAGE_URLS)
)
_ID: Final = next(field for field in PRODUCT_FIELDS if field.kind is Kind.ID)
_DAYS: Final = next(field for field in PRODUCT_FIELDS if field.kind is Kind.DAYS)
_IMAGES: Final = next(field for field in PRODUCT_FIELDS if field.kind is Kind.IMAGES)
_IMAGES_KEY: Final = _IMAGES.wire
_IMAGE_URLS: Final = next(field for field in PRODUCT_FIELDS if field.kind is Kind.IMAGE_URLS)
_CLASSIFICATIONS: Final = next(field for field in IMAGE_FIELDS if field.kind is Kind.JSON)
_CLASSIFICATIONS_KEY: Final = _CLASSIFICATIONS.wire
# Bounds asked for at every id and image: module constants spare an attribute lookup each.
_ID_BOUND: Final = _ID.bound
_CLASSIFICATIONS_BOUND: Final = _CLASSIFICATIONS.bound
_ENTRY_KEYS: Final = frozenset(IMAGE_ENTRY_KEYS)
_SOURCE_KEYS: Final = frozenset(SOURCE_KEYS)
_CONTROL: Final = re.compile("[\x00-\x1f\x7f]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_CONTROL_OR_SURROGATE: Final = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_URL_FORBIDDEN: Final = re.compile("[\x00-\x20\x7f\ud800-\udfff]")
_JSON_MAX_DEPTH: Final = 64
# A lower-case http(s) URL whose host is letters, digits, dots and hyphens, with no port or user:
# accepted by the full check of _Decoder.url without urlsplit. A fast path for the URLs of the
# `decode` benchmark case, which takes 60% longer without it (tested to agree).
_PLAIN_URL: Final = re.compile(r"https?://[A-Za-z0-9.-]+(?:[/?#].*)?", re.ASCII | re.DOTALL)
# A host and port with no brackets, or one bracketed literal (an IPv6 address) and a port.
_BRACKETS_WHOLE: Final = re.compile(r"[^\[\]]*|\[[^\[\]]*\](?::[^\[\]]*)?")


def check_request_size(size: int, limits: Limits) -> None:
    """Refuse a request of ``size`` bytes over the request limit, before anything is parsed.

    The one comparison of R33's request limit, made once at each entry point: a body with its
    file parts (:func:`load_body`), the parts of a multipart body (:func:`split_multipart`), the
    files of a typed command (:meth:`Catalog.apply_upsert <catalog_core.Catalog.apply_upsert>`).
    It comes before every other check of the request but the account (R30).

    Raises:
        PayloadTooLarge: ``size`` is over ``limits.max_request_bytes``.
    """
    if size > limits.max_request_bytes:
        raise PayloadTooLarge.for_size(size, limits.max_request_bytes)


def load_body(
    payload: object, limits: Limits, *, path: str = "body", files_bytes: int = 0
) -> Mapping[str, Any]:
    """Return the JSON object of a request body, after checking the request's size.

    Args:
        payload: a mapping (used as it is), or the raw body as ``bytes`` or ``str``.
        limits: the request limit applies to the raw body and ``files_bytes`` together, before
            anything is parsed (R30, R33).
        path: the detail path naming the body (``data`` for the field of a multipart body).
        files_bytes: the size of the request's file parts, which count toward its limit.

    Raises:
        PayloadTooLarge: the raw body and the files are over ``limits.max_request_bytes``.
        ValidationFailed: the body is not valid UTF-8 JSON, or not a JSON object, or parsing it
            could take more memory than ``limits.max_decoded_bytes`` (judged from the text,
            before any of it is parsed).
    """
    return _load(payload, limits, path, files_bytes, sized=False)[0]


def load_plain_body(
    payload: object, limits: Limits, *, path: str = "body", files_bytes: int = 0
) -> tuple[Mapping[str, Any], int]:
    """Return :func:`load_body` of ``payload``, and its size when it is plain JSON (else 0).

    Plain: UTF-8 text that orjson read (:func:`~catalog_core._json.loads_plain`), with fewer
    brackets than a JSON value of the body may have levels. No value of a plain body holds a
    NaN, an infinity, a lone surrogate or an integer beyond 64 bits, is nested too deeply, or
    is written by ``json`` in more than 4.5 times the bytes of the text (a number's digits
    spelled out, ``1e15`` as ``1000000000000000.0``): what :func:`fast_fields` need not ask.
    """
    return _load(payload, limits, path, files_bytes, sized=True)


def _load(
    payload: object, limits: Limits, path: str, files_bytes: int, *, sized: bool
) -> tuple[Mapping[str, Any], int]:
    """:func:`load_plain_body`; its plain size only when ``sized`` (0 otherwise)."""
    if type(payload) is not bytes and isinstance(payload, Mapping):
        check_request_size(files_bytes, limits)
        return payload, 0
    raw: bytes | str
    if isinstance(payload, str):
        try:
            # Encoded once, here, rather than again by each step after (the decode bound, the
            # parser); a str holding a lone surrogate has no UTF-8 form: it is read as it is.
            raw = payload.encode("utf-8")
            size = len(raw)
        except UnicodeEncodeError:
            raw, size = payload, len(payload.encode("utf-8", "surrogatepass"))
    elif isinstance(payload, bytes | bytearray | memoryview):
        raw = payload if type(payload) is bytes else bytes(payload)
        size = len(raw)
    else:
        check_request_size(files_bytes, limits)
        raise ValidationFailed.at(path, "must be a JSON object")
    check_request_size(size + files_bytes, limits)
    return _parse_body(raw, size, limits, path, sized=sized)


def _parse_body(
    raw: bytes | str, size: int, limits: Limits, path: str, *, sized: bool
) -> tuple[Mapping[str, Any], int]:
    """Parse a raw body of ``size`` bytes whose request size is checked; and its plain size.

    The plain size only when ``sized`` (else 0): telling it counts the text's brackets, a
    twentieth of reading and checking a body of a few hundred bytes.
    """
    bound = limits.max_decoded_bytes
    cost = decoded_size(raw) if size * MAX_BYTE_COST > bound else 0
    if cost > bound:
        raise ValidationFailed.at(
            path,
            f"must be a JSON object that parses within {bound} bytes of "
            f"memory; this one could take {cost} ({VALUE_BYTES} a value or key, and 2 a "
            "byte of text, or 8 when it holds non-ASCII characters or \\u escapes)",
        )
    try:
        if type(raw) is bytes:
            value, by_orjson = loads_plain(raw)
        else:
            value, by_orjson = loads(raw), False
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
        raise ValidationFailed.at(path, f"must be a JSON object ({_short(exc)})") from None
    if isinstance(value, dict):
        # A text is nested no deeper than it has brackets, and a level takes two bytes.
        plain = (
            sized
            and by_orjson
            and (
                size < 2 * _JSON_MAX_DEPTH or raw.count(b"[") + raw.count(b"{") < _JSON_MAX_DEPTH  # type: ignore[arg-type]
            )
        )
        return value, size if plain else 0
    raise ValidationFailed.at(path, "must be a JSON object")


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "not valid UTF-8"
    return str(exc).split(":")[0]


def _bad_text(value: str) -> str | None:
    if value.isascii():  # known to the str object: no search for plain text
        return None
    if _SURROGATE.search(value):
        return "must be valid Unicode (no lone surrogates)"
    return None


def check_external_id(value: object, limits: Limits, *, path: str = _ID.wire) -> list[Detail]:
    """Return the problems of an ``externalId`` value under R2 (an empty list when it is valid)."""
    if not isinstance(value, str):
        return [Detail(path, "must be a string")]
    if not value:
        return [Detail(path, "must not be empty")]
    max_length = _ID_BOUND(limits)
    if len(value) > max_length:
        return [Detail(path, f"must be at most {max_length} characters")]
    if _CONTROL_OR_SURROGATE.search(value) is None:  # one search for both; a hit is told apart
        return []
    if _CONTROL.search(value):
        return [Detail(path, "must not contain control characters")]
    problem = _bad_text(value)
    return [Detail(path, problem)] if problem else []


def check_account(account: object) -> str:
    """Return ``account`` when it is a non-empty string without control characters or surrogates.

    Raises:
        ValidationFailed: at path ``account``.
    """
    if not isinstance(account, str) or not account:
        raise ValidationFailed.at("account", "must be a non-empty string")
    if _CONTROL.search(account):
        raise ValidationFailed.at("account", "must not contain control characters")
    problem = _bad_text(account)
    if problem:
        raise ValidationFailed.at("account", problem)
    return account


class _Decoder:
    """One pass over a product payload, collecting details, image-input problems and warnings."""

    def __init__(self, limits: Limits, prefix: str, owned: bool) -> None:
        self.limits = limits
        self.owned = owned
        self.prefix = prefix
        self.details: list[Detail] = []
        self.image_input: list[Detail] = []
        self.warnings: list[PayloadWarning] = []  # the first MAX_WARNINGS
        self.warning_count = 0

    def path(self, *parts: object) -> str:
        return self.prefix + ".".join(map(str, parts))

    def fail(self, message: str, *parts: object) -> None:
        self.details.append(Detail(self.path(*parts), message))

    def warn(self, code: str, message: str, *parts: object) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(PayloadWarning(code, self.path(*parts), message))

    def text(self, value: object, field: Field) -> str | Unset:
        """Return a title or description: a string within its length, no lone surrogates (R7)."""
        if not isinstance(value, str):
            self.fail("must be a string or null", field.wire)
            return UNSET
        max_length = field.bound(self.limits)
        if len(value) > max_length:
            self.fail(f"must be at most {max_length} characters", field.wire)
            return UNSET
        problem = _bad_text(value)
        if problem:
            self.fail(problem, field.wire)
            return UNSET
        return value

    def json_object(self, value: object, max_bytes: int, *parts: object) -> dict[str, Any] | None:
        """Return a JSON object within ``max_bytes`` that no caller holds, else ``None``.

        A copy, unless the body is ``owned``: parsed here, so no one else holds its objects.
        """
        if not isinstance(value, dict):
            self.fail("must be a JSON object or null", *parts)
            return None
        encoded, problem = _compact_json(value)
        if encoded is not None and len(encoded) > max_bytes:
            problem = f"must be at most {max_bytes} bytes as compact JSON (is {len(encoded)})"
        if problem is not None or encoded is None:
            self.fail(problem or "must be JSON", *parts)
            return None
        if self.owned:
            return value
        copy: dict[str, Any] = loads(encoded)
        return copy

    def json_field(self, value: object, field: Field) -> dict[str, Any] | Unset:
        """Return ``metadata``: a JSON object within its byte bound (R9)."""
        result = self.json_object(value, field.bound(self.limits), field.wire)
        return UNSET if result is None else result

    def days(self, value: object, field: Field) -> int | Unset:
        problem = days_problem(value)
        if problem is not None:
            self.fail(problem, field.wire)
            return UNSET
        return value  # type: ignore[return-value]  # days_problem found an int

    def url(self, value: object, *parts: object) -> str | None:
        """Return an image URL: absolute http(s) with a host, within its length (R13)."""
        if not isinstance(value, str):
            self.fail("must be a string", *parts)
            return None
        limit = self.limits.max_url_length
        if len(value) > limit:
            self.fail(f"must be at most {limit} characters", *parts)
            return None
        if _URL_FORBIDDEN.search(value):
            self.fail("must not contain spaces, control characters or lone surrogates", *parts)
            return None
        if _PLAIN_URL.fullmatch(value):  # accepted by the checks below
            return value
        try:
            from urllib.parse import urlsplit  # on first use: plain URLs never need it

            split = urlsplit(value)
            host = split.hostname
            split.port  # noqa: B018 - parsing the port is the check: it raises on a bad one
        except ValueError:
            host = None
            split = None
        if split is not None and not _BRACKETS_WHOLE.fullmatch(split.netloc.rpartition("@")[2]):
            host = None  # urlsplit reads the first [...] of a host and overlooks text around it
        if split is None or split.scheme.lower() not in ("http", "https") or not host:
            self.fail("must be an absolute http or https URL with a host", *parts)
            return None
        return value

    def file_key(self, value: object, *parts: object) -> str | None:
        if not isinstance(value, str) or not value:
            self.fail("must be a non-empty string", *parts)
            return None
        problem = _bad_text(value)
        if problem:
            self.fail(problem, *parts)
            return None
        return value

    def classifications(self, entry: Mapping[str, Any], index: int) -> Mapping[str, Any] | None:
        """Return classifications: a JSON object within its bound; ``{}`` is none (R16)."""
        value = entry.get(_CLASSIFICATIONS_KEY)
        if value is None:
            return None
        result = self.json_object(
            value, _CLASSIFICATIONS_BOUND(self.limits), _IMAGES_KEY, index, _CLASSIFICATIONS_KEY
        )
        return result or None  # {} means none (R16)

    def source(
        self, holder: Mapping[str, Any], index: int, parts: tuple[object, ...]
    ) -> tuple[str | None, str | None] | None:
        """Return ``(url, file_key)`` of a source object, or ``None`` after recording why not."""
        has_url, has_key = "url" in holder, "fileKey" in holder
        if has_url == has_key:
            which = "both" if has_url else "neither"
            self.image_input.append(
                Detail(self.path(*parts), f"must hold exactly one of url and fileKey, not {which}")
            )
            return None
        if has_url:
            url = self.url(holder["url"], *parts, "url")
            return None if url is None else (url, None)
        key = self.file_key(holder["fileKey"], *parts, "fileKey")
        return None if key is None else (None, key)

    def image(self, entry: object, index: int) -> ImageInput | None:
        """Return one entry ``{source: {url | fileKey}, classifications?}`` as an input (R12)."""
        source = entry.get("source") if type(entry) is dict else None
        if (
            type(source) is dict
            and len(source) == 1
            and "url" in source
            and "url" not in entry  # type: ignore[operator]
            and "fileKey" not in entry  # type: ignore[operator]
            and _ENTRY_KEYS.issuperset(entry)  # type: ignore[arg-type]
        ):
            # {source: {url}, classifications?}: the canonical shape, with nothing to warn about.
            # The same checks in the same order as _any_image, without the branches it cannot
            # take: a fast path for the images of the `decode` benchmark case, which takes 7-10%
            # longer without it (tested to agree).
            url = self.url(source["url"], _IMAGES_KEY, index, "source", "url")
            classifications = self.classifications(entry, index)  # type: ignore[arg-type]
            if url is None:
                return None
            return ImageInput(
                url=url,
                file_key=None,
                classifications=classifications,
                path=f"{self.prefix}{_IMAGES_KEY}.{index}.source",
            )
        return self._any_image(entry, index)

    def _any_image(self, entry: object, index: int) -> ImageInput | None:
        """Read an entry of any accepted shape, the deprecated flat ones with a warning (R17)."""
        if type(entry) is not dict and not isinstance(entry, Mapping):
            self.fail("must be an object", _IMAGES_KEY, index)
            return None
        if not _ENTRY_KEYS.issuperset(entry):
            for key in entry:
                if key not in _ENTRY_KEYS:
                    self.warn("UNKNOWN_FIELD", "unknown field ignored", _IMAGES_KEY, index, key)
        if "source" in entry:
            source = entry["source"]
            if "url" in entry or "fileKey" in entry:
                self.image_input.append(
                    Detail(
                        self.path(_IMAGES_KEY, index, "source"),
                        "give url or fileKey inside source, not beside it",
                    )
                )
                found = None
            elif type(source) is not dict and not isinstance(source, Mapping):
                self.fail("must be an object", _IMAGES_KEY, index, "source")
                found = None
            else:
                if not _SOURCE_KEYS.issuperset(source):
                    for key in source:
                        if key not in _SOURCE_KEYS:
                            self.warn(
                                "UNKNOWN_FIELD",
                                "unknown field ignored",
                                _IMAGES_KEY,
                                index,
                                "source",
                                key,
                            )
                found = self.source(source, index, (_IMAGES_KEY, index, "source"))
        elif "url" in entry or "fileKey" in entry:
            self.warn(
                "DEPRECATED_IMAGE_SHAPE",
                "the flat {url} / {fileKey} image is deprecated; use {source: {url | fileKey}}",
                _IMAGES_KEY,
                index,
            )
            found = self.source(entry, index, (_IMAGES_KEY, index))
        else:
            found = self.source({}, index, (_IMAGES_KEY, index, "source"))
        classifications = self.classifications(entry, index)
        if found is None:
            return None
        source_path = (
            self.path(_IMAGES_KEY, index, "source")
            if "source" in entry
            else self.path(_IMAGES_KEY, index)
        )
        return ImageInput(
            url=found[0], file_key=found[1], classifications=classifications, path=source_path
        )

    def images(self, body: Mapping[str, Any], field: Field) -> tuple[ImageInput, ...] | Unset:
        """Return the images of ``images``, or of the deprecated ``imageUrls`` (R12, R17)."""
        has_images, has_urls = field.wire in body, _IMAGE_URLS.wire in body
        if has_images and has_urls:
            self.fail(
                f"{field.wire} and {_IMAGE_URLS.wire} cannot be used together", _IMAGE_URLS.wire
            )
            return UNSET
        if not (has_images or has_urls):
            return UNSET
        key = field.wire if has_images else _IMAGE_URLS.wire
        entries = body[key]
        if not isinstance(entries, list):
            self.fail("must be a list", key)
            return UNSET
        max_images = field.bound(self.limits)
        if len(entries) > max_images:
            self.fail(f"must hold at most {max_images} images", key)
            return UNSET
        errors_before = len(self.details) + len(self.image_input)
        result: list[ImageInput] = []
        if has_urls:
            self.warn(
                "DEPRECATED_IMAGE_URLS",
                "imageUrls is deprecated; use images: [{source: {url}}]",
                key,
            )
            for index, value in enumerate(entries):
                url = self.url(value, key, index)
                if url is not None:
                    result.append(ImageInput(url=url, path=self.path(key, index)))
        else:
            for index, entry in enumerate(entries):
                image = self.image(entry, index)
                if image is not None:
                    result.append(image)
        if len(self.details) + len(self.image_input) > errors_before:
            return UNSET
        return tuple(result)


# How the value of each field of _READ_FIELDS is read, when it is given and not null; images are
# read whole, with the deprecated imageUrls.
_Reader = Callable[[_Decoder, object, Field], Any]
_READERS: Final[dict[Kind, _Reader]] = {
    Kind.TEXT: _Decoder.text,
    Kind.JSON: _Decoder.json_field,
    Kind.DAYS: _Decoder.days,
}
# (key, attribute, nullable, reader, field) of each field read by value, in the table's order.
_VALUE_FIELDS: Final[tuple[tuple[str, str, bool, _Reader, Field], ...]] = tuple(
    (field.wire, field.attribute, field.nullable, _READERS[field.kind], field)
    for field in _READ_FIELDS
    if field.kind is not Kind.IMAGES
)


def days_problem(value: object) -> str | None:
    """Return why ``value`` is not a number of days from 1 to ``MAX_VALID_FOR_DAYS`` (R10)."""
    if type(value) is LongInt:  # an integer too long to read: out of range, whatever it is
        return f"must be from 1 to {MAX_VALID_FOR_DAYS}"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer from 1 to {MAX_VALID_FOR_DAYS}, or null"
    if not 1 <= value <= MAX_VALID_FOR_DAYS:
        return f"must be from 1 to {MAX_VALID_FOR_DAYS}"
    return None


def json_value_problem(value: object) -> str | None:
    """Return why ``value`` is not plain JSON that compact UTF-8 text can carry, else ``None``."""
    return _compact_json(value)[1]


def _compact_json(value: object) -> tuple[bytes | None, str | None]:
    """Return ``value`` as compact UTF-8 JSON (how sizes are measured), or why it cannot be."""
    problem = _json_problem(value, 0)
    if problem is not None:
        return None, problem
    try:
        return dumps(value), None
    except UnicodeEncodeError:
        return None, "must be valid Unicode (no lone surrogates)"
    except ValueError:  # an int past Python's int-to-text limit (4,300 digits)
        return None, "must hold only numbers that JSON text can carry"


_SCALARS: Final = frozenset({str, bool, type(None)})
# Integers of at most MAX_INT_DIGITS digits lie strictly between -_INT_BOUND and _INT_BOUND; the
# comparison costs nothing for an int of ordinary size.
_INT_BOUND: Final = 10**MAX_INT_DIGITS
_LONG_INT: Final = f"must hold only integers of at most {MAX_INT_DIGITS:,} digits"


def _json_problem(value: object, depth: int) -> str | None:
    """Return why ``value`` is not a plain JSON value, or ``None`` when it is.

    Integers past :data:`~catalog_core._json.MAX_INT_DIGITS` digits are refused whatever Python's
    own int-to-text limit is, so that whatever is stored reads back as the same number.
    """
    if depth >= _JSON_MAX_DEPTH:  # depth 0 is the first level
        return f"must be nested at most {_JSON_MAX_DEPTH} levels deep"
    if value is None or isinstance(value, str | bool):
        return None
    if isinstance(value, int):
        return None if -_INT_BOUND < value < _INT_BOUND else _LONG_INT
    if type(value) is LongInt:
        return _LONG_INT
    if isinstance(value, float):
        return None if math.isfinite(value) else "must hold only finite numbers"
    if isinstance(value, dict):
        for key in value:  # as quick as checking each key beside its value, below
            if not isinstance(key, str):
                return "must have only string keys"
        items: Iterable[Any] = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return f"must hold only JSON values, not {type(value).__name__}"
    shallow = depth + 1 < _JSON_MAX_DEPTH
    for item in items:
        kind = type(item)
        # The values JSON parsing makes most, judged without a call: a fast path for the
        # metadata and classifications of the `decode` benchmark case (tested to agree).
        if shallow and (kind in _SCALARS or (kind is int and -_INT_BOUND < item < _INT_BOUND)):
            continue
        problem = _json_problem(item, depth + 1)
        if problem:
            return problem
    return None


# -- the fast path -------------------------------------------------------------------------------
#
# Most bodies are valid and in the canonical shape: known keys only, ``images`` of
# ``{source: {url}, classifications?}`` entries with plain URLs, an id that is not reserved.
# ``_fast_upsert`` reads such a body in one straight pass, with no details to collect, no paths
# to build and no warnings to count; it returns what ``decode_upsert``'s full pass returns for
# it, or ``None`` at the first thing it does not take for granted, and the full pass runs. It
# never raises and never refuses a body for good: every error comes from the full pass, so the
# errors, their order (R30) and their messages are the full pass's alone. Its condition for
# each value implies the full pass's, which tests/test_fast_paths.py checks on generated bodies.

# The keys of a body the fast path reads; imageUrls is deprecated (a warning, R17). It names
# them, their attributes and their limits as literals, as fast as a constant; a field added to
# the table and not to the fast path makes the differential test of tests/test_fast_paths.py fail.
_FAST_KEYS: Final = frozenset(UPSERT_KEYS - {_IMAGE_URLS.wire})
# A plain URL (_PLAIN_URL) with none of the characters _URL_FORBIDDEN refuses: one match for both.
_FAST_URL: Final = re.compile(
    r"https?://[A-Za-z0-9.-]+(?:[/?#][^\x00-\x20\x7f\ud800-\udfff]*)?", re.ASCII
)


def _fast_text(value: object, max_length: int) -> bool:
    """Whether ``value`` is a title or description that ``_Decoder.text`` accepts."""
    if type(value) is not str or len(value) > max_length:
        return False
    if value.isascii():
        return True
    try:  # UTF-8 refuses every surrogate, as _SURROGATE finds it, a few times as fast
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fast_json(value: object, max_bytes: int, owned: bool) -> dict[str, Any] | None:
    """Return what ``_Decoder.json_object`` returns for ``value``, or ``None`` if it refuses.

    For a body just parsed (``owned``), orjson's compact text is the check: it holds only the
    JSON types, with string keys and valid Unicode, so what is left to ask is whether it held a
    NaN or an infinity (written ``null``) and how deep it goes (no deeper than it has brackets,
    and a text of ``n`` bytes has at most ``n / 2``), both asked of the text; the full check walks
    the value only when the text cannot tell.
    """
    if type(value) is not dict:
        return None
    text = quick_dumps(value) if owned else None
    if (
        text is None
        or text.find(b"null") >= 0  # find: `in` first tries the operand as an int, slower
        or (
            len(text) >= 2 * _JSON_MAX_DEPTH
            and text.count(b"[") + text.count(b"{") >= _JSON_MAX_DEPTH
        )
    ):
        text, _ = _compact_json(value)
        if text is None:
            return None
    if len(text) > max_bytes:
        return None
    if owned:
        return value
    copy: dict[str, Any] = loads(text)
    return copy


def _fast_upsert(
    body: Mapping[str, Any], limits: Limits, prefix: str, owned: bool
) -> UpsertCommand | None:
    """Return the command of a valid canonical body, or ``None`` for the full pass to decide."""

    def image_input(url: str, index: int, classifications: Any) -> ImageInput:
        # Positional: a third faster than by keyword.
        return ImageInput(url, None, classifications, f"{prefix}images.{index}.source")

    fields = _fast_fields(body, limits, owned, image_input, 0)
    if fields is None:
        return None
    external_id, title, description, metadata, days, images = fields
    return UpsertCommand(
        external_id=external_id,
        title=title,
        description=description,
        metadata=metadata,
        valid_for_days=days,
        images=images,
    )


#: What :func:`fast_fields` returns: an upsert's id, then its :data:`MERGED_FIELDS
#: <catalog_core.rules.MERGED_FIELDS>` in order, images made.
FastFields: TypeAlias = "tuple[str, Any, Any, Any, Any, Any]"


def fast_fields(
    body: Mapping[str, Any], limits: Limits, *, owned: bool, plain: int = 0
) -> FastFields | None:
    """Return the fields of a valid canonical upsert body, its images made, or ``None``.

    What :func:`decode_upsert` gives for such a body (which gets no warning), without the
    command: ``(external_id, title, description, metadata, valid_for_days, images)``, each
    ``UNSET`` where omitted, and ``images`` the stored :class:`~catalog_core.model.Image`
    values the image inputs resolve to (R12, R16). ``None`` for any other body: then
    :func:`decode_upsert` decides, and is the one to refuse it. For a caller with no file
    parts, which keeps what is written rather than the command (a bulk import holds hundreds).

    ``plain``: the body's size when it is plain JSON (:func:`load_plain_body`): a value of a
    body so small that 4.5 times its size is within a limit is within it, and is not measured.
    """
    return _fast_fields(body, limits, owned, new_image, plain)


def _fast_fields(
    body: Mapping[str, Any],
    limits: Limits,
    owned: bool,
    make_image: Callable[[str, int, Any], Any],
    plain: int,
) -> FastFields | None:
    """The one straight pass of the fast path; ``make_image(url, index, classifications)``."""
    # A plain body's values are JSON's, within 4.5 times its size and nested less deeply than
    # it has brackets: within a limit of at least 5 times its size, they need no measuring.
    small = 5 * plain if plain else None
    if type(body) is not dict or not _FAST_KEYS.issuperset(body):
        return None
    external_id = body.get("externalId")
    if (
        type(external_id) is not str
        or not external_id
        or len(external_id) > limits.max_external_id_length
        # An ASCII text is printable exactly when it has no control character (U+0000-U+001F,
        # U+007F), and holds no surrogate: two scans in C, a third of the regex's time.
        or not (
            (external_id.isascii() and external_id.isprintable())
            or _CONTROL_OR_SURROGATE.search(external_id) is None
        )
        or external_id.startswith(ANON_PREFIX)
    ):
        return None
    # An omitted field is UNSET, as the command's default.
    title = body.get("title", UNSET)
    if title is not UNSET and title is not None and not _fast_text(title, limits.max_title_length):
        return None
    description = body.get("description", UNSET)
    if (
        description is not UNSET
        and description is not None
        and not _fast_text(description, limits.max_description_length)
    ):
        return None
    metadata = body.get("metadata", UNSET)
    if (
        metadata is not UNSET
        and metadata is not None
        and (small is None or small > limits.max_metadata_bytes or type(metadata) is not dict)
    ):
        metadata = _fast_json(metadata, limits.max_metadata_bytes, owned)
        if metadata is None:
            return None
    days = body.get("validForDays", UNSET)
    if (
        days is not UNSET
        and days is not None
        and not (type(days) is int and 1 <= days <= MAX_VALID_FOR_DAYS)
    ):
        return None
    entries = body.get("images", UNSET)
    images: tuple[Any, ...] | Unset = UNSET
    if entries is not UNSET:
        if type(entries) is not list or len(entries) > limits.max_images:
            return None
        made = []
        max_url = limits.max_url_length
        max_classifications = limits.max_classifications_bytes
        measured = small is None or small > max_classifications
        for index, entry in enumerate(entries):
            if type(entry) is not dict:
                return None
            source = entry.get("source")
            if type(source) is not dict or len(source) != 1:
                return None
            url = source.get("url")
            if type(url) is not str or len(url) > max_url or _FAST_URL.fullmatch(url) is None:
                return None
            if len(entry) == 1:
                classifications = None
            elif len(entry) == 2 and "classifications" in entry:
                classifications = entry["classifications"]
                if classifications is not None:
                    if measured or type(classifications) is not dict:
                        classifications = _fast_json(classifications, max_classifications, owned)
                        if classifications is None:
                            return None
                    classifications = classifications or None  # {} means none (R16)
            else:
                return None
            made.append(make_image(url, index, classifications))
        images = tuple(made)
    return external_id, title, description, metadata, days, images


def decode_upsert(
    body: Mapping[str, Any],
    limits: Limits,
    *,
    for_use: bool = False,
    prefix: str = "",
    owned: bool = False,
) -> tuple[UpsertCommand, tuple[PayloadWarning, ...], int]:
    """Decode a product payload (an upsert body, or a use item when ``for_use``).

    Args:
        body: the JSON object.
        limits: the sizes to enforce (R33).
        for_use: decode a try-on product item: a missing or ``null`` id means one-shot (R22c) and
            a reference to an ``_anon_`` id is allowed (R3).
        prefix: prepended to every detail and warning path (``products.0.``).
        owned: ``body`` was just parsed from JSON text and no one else holds its objects, so the
            command may keep them rather than copies (``metadata``, ``classifications``), and
            they hold only what JSON parsing makes.

    Returns:
        The command, the first :data:`~catalog_core.model.MAX_WARNINGS` warnings of deprecated
        shapes and unknown keys (R17, R18), and how many warnings there were in all.

    Raises:
        ExternalIdRequired, ValidationFailed, InvalidImageInput, ReservedExternalId: in R30 order.
    """
    command = _fast_upsert(body, limits, prefix, owned)
    if command is not None:
        return command, (), 0
    return _decode_upsert(body, limits, for_use=for_use, prefix=prefix, owned=owned)


def _decode_upsert(
    body: Mapping[str, Any], limits: Limits, *, for_use: bool, prefix: str, owned: bool
) -> tuple[UpsertCommand, tuple[PayloadWarning, ...], int]:
    """The full pass of :func:`decode_upsert`: every check, every detail, every warning."""
    decoder = _Decoder(limits, prefix, owned)
    id_key = _ID.wire
    external_id: Any = body.get(id_key)
    if (external_id is None and not for_use) or external_id == "":
        raise ExternalIdRequired(
            f"{id_key} is required.", [Detail(decoder.path(id_key), "is required")]
        )
    if external_id is not None:
        decoder.details.extend(check_external_id(external_id, limits, path=decoder.prefix + id_key))
    if not UPSERT_KEYS.issuperset(body):
        for key in body:
            if key not in UPSERT_KEYS:
                decoder.warn("UNKNOWN_FIELD", "unknown field ignored", key)
    values: dict[str, Any] = {}  # what the body gives; the command leaves the rest UNSET (R6)
    for key, attribute, nullable, read, field in _VALUE_FIELDS:
        if key in body:
            value = body[key]
            values[attribute] = None if value is None and nullable else read(decoder, value, field)
    values[_IMAGES.attribute] = decoder.images(body, _IMAGES)
    if for_use and external_id is None:
        problem = one_shot_days_problem(values.get(_DAYS.attribute, UNSET))
        if problem:
            decoder.fail(problem, _DAYS.wire)
    command = UpsertCommand(external_id=external_id, **values)
    if decoder.details:
        raise ValidationFailed.of(decoder.details)
    if decoder.image_input:
        first = decoder.image_input[0]
        raise InvalidImageInput(
            f"Image source at {first.path} {first.message}.", decoder.image_input
        )
    check_reserved_id(command, for_use=for_use)
    return command, tuple(decoder.warnings), decoder.warning_count


def decode_try_on(
    body: Mapping[str, Any],
) -> tuple[Mapping[str, Any], str, tuple[PayloadWarning, ...]]:
    """Find the one product item of a try-on body (R22).

    Returns:
        The item, the path prefix of its fields (``products.0.`` or ``product.``), and a warning
        when the deprecated single ``product`` object was used.

    Raises:
        ValidationFailed: ``products`` does not hold exactly one object, both forms are present,
            or neither is.
    """
    has_list, has_single = "products" in body, "product" in body
    if has_list and has_single:
        raise ValidationFailed.at("product", "products and product cannot be used together")
    if has_single:
        item = body["product"]
        if not isinstance(item, Mapping):
            raise ValidationFailed.at("product", "must be an object")
        warning = PayloadWarning(
            "DEPRECATED_PRODUCT_FIELD", "product", "product is deprecated; use products: [item]"
        )
        return item, "product.", (warning,)
    items = body.get("products")
    if not isinstance(items, list) or len(items) != 1:
        raise ValidationFailed.at("products", "must be a list holding exactly one product item")
    if not isinstance(items[0], Mapping):
        raise ValidationFailed.at("products.0", "must be an object")
    return items[0], "products.0.", ()


def check_parts_size(fields: object, limits: Limits) -> None:
    """Check the parts of a multipart body together against the request limit (R33).

    Raises:
        ValidationFailed: ``fields`` is not a mapping of parts (path ``body``).
        PayloadTooLarge: the text, bytes and uploads together are over the limit.
    """
    if not isinstance(fields, Mapping):
        raise ValidationFailed.at("body", "must be the parts of a multipart body")
    check_request_size(
        sum(
            len(part.data) if isinstance(part, Upload) else len(part)
            for part in fields.values()
            if isinstance(part, str | bytes | Upload)
        ),
        limits,
    )


def split_multipart(
    fields: Mapping[str, str | bytes | Upload], limits: Limits
) -> tuple[Mapping[str, Any], dict[str, Upload]]:
    """Split the parts of a ``multipart/form-data`` body into its JSON ``data`` and its files (R32).

    Args:
        fields: every part by name: text parts as ``str`` or ``bytes``, file parts as
            :class:`~catalog_core.Upload`. A ``data`` part sent as a file is read as JSON too.
        limits: the request limit.

    Returns:
        The JSON object of ``data`` and the other parts as uploads.

    Raises:
        PayloadTooLarge: the parts together are over ``limits.max_request_bytes``.
        ValidationFailed: ``data`` is missing or is not a JSON object (path ``data``), or a part
            is not text, bytes or an upload.
    """
    check_parts_size(fields, limits)
    if "data" not in fields:
        raise ValidationFailed.at("data", "is required: the JSON payload goes in the data field")
    files: dict[str, Upload] = {}
    for name, part in fields.items():
        if not isinstance(name, str) or not name:
            raise ValidationFailed.at("body", "part names must be non-empty strings")
        if isinstance(part, Upload):
            files[name] = part
        elif isinstance(part, bytes):
            files[name] = Upload(part)
        elif isinstance(part, str):
            try:
                files[name] = Upload(part.encode("utf-8"))
            except UnicodeEncodeError:
                raise ValidationFailed.at(name, "must be valid Unicode text") from None
        else:
            raise ValidationFailed.at(name, "must be text, bytes or an Upload")
    data = files.pop("data").data
    raw = data if type(data) is bytes else bytes(data)  # an Upload may hold any bytes-like value
    return _parse_body(raw, len(raw), limits, "data", sized=False)[0], files
