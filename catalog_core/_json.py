"""Compact JSON in and out, through orjson when it is installed and the standard library otherwise.

For JSON values (what the catalog reads, stores and sends) both paths give the same values and the
same bytes: orjson is used only where it agrees with ``json``, and anything else goes to ``json``,
so that every answer and every error message is the standard library's. Where they differ:
orjson writes floats below 1e-4 without an exponent (``0.00001`` where ``json`` writes ``1e-05``);
it refuses to write integers beyond 64 bits and reads them as floats; it neither writes nor reads
lone surrogates; it reads nesting up to 1,024 levels where ``json`` stops near 1,000 (the
recursion limit); and it writes subclasses of the JSON types, datetimes and dataclasses its own
way. For values that are not JSON at all (NaN, infinities, UUIDs, enums) the two differ and
neither result is promised: the catalog refuses such values before it writes anything (R9, R16).

An integer of more than :data:`MAX_INT_DIGITS` digits is read as a :class:`LongInt`, its digits
never converted: ``int()`` of a long digit string costs time quadratic in its length, and Python
refuses it past its own int-to-text limit (``sys.get_int_max_str_digits()``, 4,300 digits by
default), which would make a valid JSON text unreadable. No field takes such a number, and an
unknown key holding one is ignored (R18), so the number itself is never needed. Reading an
integer that way costs a Python call, so the standard library's parser does it only for a text
holding a run of more digits than ``int()`` reads; the scan for one looks at one character in
4,301.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, Final, final

__all__ = [
    "HAS_ORJSON",
    "MAX_BYTE_COST",
    "MAX_INT_DIGITS",
    "VALUE_BYTES",
    "LongInt",
    "decoded_size",
    "dumps",
    "dumps_for_storage",
    "loads",
    "quick_dumps",
]

try:
    import orjson
except ImportError:  # pragma: no cover - the test extra installs orjson; CI runs both paths
    orjson = None  # type: ignore[assignment]

HAS_ORJSON = orjson is not None
# Subclasses of the JSON types, datetimes and dataclasses go to _refuse, hence to json.
_OPTIONS: Final = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    if HAS_ORJSON
    else 0
)
# A text with fewer brackets than this is nested less deeply than json's recursion limit allows.
_SHALLOW: Final = 500
# Digits become "0" and every other byte "x": a run of 19 zeros is a number of 19 digits or more.
_DIGITS_AS_ZERO: Final = bytes(48 if 48 <= byte <= 57 else 120 for byte in range(256))
_DIGIT_RUN: Final = b"0" * 19
_DIGITS: Final = "0123456789"
_EXPONENT_MINUS: Final = re.compile(rb"e-\d").search


#: The most digits of an integer read as an ``int``; Python's default int-to-text limit.
MAX_INT_DIGITS: Final = 4300


@final
class LongInt:
    """An integer of JSON text with more than :data:`MAX_INT_DIGITS` digits, left unconverted.

    Not an ``int``, so that every rule that wants a number refuses it as it refuses any other
    value of the wrong kind; it keeps only its sign and its number of digits.
    """

    __slots__ = ("digits", "negative")

    def __init__(self, digits: int, negative: bool) -> None:
        self.digits = digits
        self.negative = negative

    def __repr__(self) -> str:
        return f"LongInt({'-' if self.negative else ''}{self.digits} digits)"


def _parse_int(text: str) -> int | LongInt:
    negative = text.startswith("-")
    digits = len(text) - negative
    if digits <= MAX_INT_DIGITS:
        try:
            return int(text)
        except ValueError:  # the process lowered Python's limit below MAX_INT_DIGITS
            pass
    return LongInt(digits, negative)


#: What one value or key of JSON text may take once parsed, at most: its object, its place in its
#: container, the parser's own record of it. Measured at 45 to 115 bytes on CPython 3.11, with
#: orjson and ``json`` alike, for the costliest shapes (``[{},{},…]``, ``[{"a":0},…]``, short
#: strings, distinct keys); see docs/reliability.md.
VALUE_BYTES: Final = 128
#: The most that :func:`decoded_size` counts for one byte of text: a text of ``n`` bytes is never
#: counted as more than ``n * MAX_BYTE_COST``, so a short one needs no counting.
MAX_BYTE_COST: Final = 2 * 4 + VALUE_BYTES
# Long texts are scanned in pieces of this size: as fast, without a transient copy of a whole body.
_PIECE: Final = 2**20
# A value or key either opens a container or follows one of these (the first value of a text
# follows nothing: one more).
_STARTS: Final = b",:[{"


def decoded_size(text: str | bytes) -> int:
    r"""Return a bound of the memory that parsing ``text`` takes, in bytes, without parsing it.

    :data:`VALUE_BYTES` for each value and key, counted as the commas, colons and opening
    brackets of the text plus one (those inside strings too, so the count is never short); and
    for each byte of text, twice what one of its characters may take in a ``str`` (the text
    decoded whole, or the parser's copy of it, and the strings made of it): 1 byte for ASCII
    text without ``\u`` escapes, else 4. A few passes over the text at the speed of memory.
    """
    if isinstance(text, str):
        wide = not text.isascii() or ("\\" in text and "\\u" in text)
        length = len(text.encode("utf-8", "surrogatepass")) if wide else len(text)
        starts = sum(text.count(start) for start in ",:[{")
    else:
        wide = not text.isascii() or (b"\\" in text and b"\\u" in text)
        length = len(text)
        starts = _count_starts(text)
    return 2 * (4 if wide else 1) * length + VALUE_BYTES * (starts + 1)


def _count_starts(raw: bytes) -> int:
    if len(raw) <= _PIECE:
        return len(raw) - len(raw.translate(None, _STARTS))
    return sum(len(piece) - len(piece.translate(None, _STARTS)) for piece in _pieces(raw, 0))


def _has_long_number(raw: bytes) -> bool:
    """Whether ``raw`` holds a run of 19 digits (a number orjson may read as a float)."""
    if len(raw) <= _PIECE:  # find: `in` first tries its operand as an int
        return raw.translate(_DIGITS_AS_ZERO).find(_DIGIT_RUN) >= 0
    overlap = len(_DIGIT_RUN) - 1
    return any(_DIGIT_RUN in piece.translate(_DIGITS_AS_ZERO) for piece in _pieces(raw, overlap))


def _pieces(raw: bytes, overlap: int) -> Iterator[bytes]:
    """``raw`` in pieces of :data:`_PIECE` bytes, each with ``overlap`` bytes before it."""
    for start in range(0, len(raw), _PIECE):
        yield raw[max(0, start - overlap) : start + _PIECE]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Made once: json.loads makes a decoder at each call that passes it an option.
_DECODE: Final = json.JSONDecoder(parse_constant=_reject_constant).decode
_DECODE_LONG: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int).decode


def _std_loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if text.startswith("\ufeff"):  # refused by json.loads before its decoder sees the text
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    # parse_int costs a Python call for every integer: only a text with a longer run of digits
    # than int() reads may need it (so no stored row, whose numbers the catalog checked).
    limit = sys.get_int_max_str_digits()
    longest = limit if 0 < limit < MAX_INT_DIGITS else MAX_INT_DIGITS
    return (_DECODE_LONG if _has_digit_run(text, longest + 1) else _DECODE)(text)


def _has_digit_run(text: str, length: int) -> bool:
    """Whether ``text`` holds a run of ``length`` ASCII digits or more.

    Such a run covers one index that is a multiple of ``length``: only the characters there are
    looked at, and around each one that is a digit, the run it belongs to.
    """
    for index, char in enumerate(text[::length]):
        if char in _DIGITS:
            at = index * length
            before = text[max(0, at - length + 1) : at + 1]
            after = text[at + 1 : at + length]
            run = len(before) - len(before.rstrip(_DIGITS))  # the digits up to ``at``
            run += len(after) - len(after.lstrip(_DIGITS))  # and after it
            if run >= length:
                return True
    return False


def _std_dumps(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def _tiny_float(value: Any) -> bool:
    """Whether ``value`` holds a float that orjson and ``json`` would write differently."""
    kind = type(value)
    if kind is float:
        return bool(value != 0.0 and -1e-4 < value < 1e-4)
    if kind is dict:
        return any(_tiny_float(v) for v in value.values())
    if kind is list or kind is tuple:
        return any(_tiny_float(v) for v in value)
    return False


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is written by json")


def _orjson_may_read(raw: bytes) -> bool:
    """Whether orjson reads ``raw`` as ``json`` does, if it reads it at all.

    orjson reads an integer outside 64 bits as a float; such a number has 19 digits or more.
    Much faster than a regular expression, and than counting the depth in Python. A text that
    orjson reads is valid JSON, two bytes a level at least: a short one needs no counting.
    """
    return (
        len(raw) < 2 * _SHALLOW or raw.count(b"[") + raw.count(b"{") < _SHALLOW
    ) and not _has_long_number(raw)


def _fast_loads(text: str | bytes) -> Any:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _orjson_may_read(raw):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return _std_loads(text)  # the same value, or the standard library's error


def loads_plain(raw: bytes) -> tuple[Any, bool]:
    """Return :data:`loads` of ``raw``, and whether orjson read it.

    A value orjson read holds JSON's types only, with no NaN or infinity (orjson refuses a
    number beyond a double's range, which ``json`` reads as an infinity), no lone surrogate
    (orjson refuses its escape), and no integer beyond 64 bits (a text with one goes to
    ``json``): what a plain JSON value holds.
    """
    if HAS_ORJSON and _orjson_may_read(raw):
        try:
            return orjson.loads(raw), True
        except orjson.JSONDecodeError:
            pass
    return _std_loads(raw), False


def _orjson_dumps(value: Any) -> bytes | None:
    """Orjson's text, or ``None`` for a surrogate, an integer beyond 64 bits or a subclass."""
    try:
        text: bytes = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except TypeError:
        return None
    return text


def _may_hold_tiny_float(text: bytes) -> bool:
    """Whether orjson's ``text`` may hold a float that ``json`` would write differently.

    Every such float has a negative exponent, which orjson writes ``e-`` and a digit, or four
    zeros after the point. A digit, not ``e-`` alone: English text is full of ``e-`` (``one-size``,
    ``e-mail``), and each text that has one costs a walk through its value, which doubles the time
    of writing a product. The regular expression finds ``e-`` and a digit as fast as ``e-``, in
    half the time ``bytes.find`` takes for ``e-`` (which stops at each of English text's many
    ``e``); ``find`` is as fast for the zeros, and ``in`` slower than either.
    """
    return _EXPONENT_MINUS(text) is not None or text.find(b"0.0000") >= 0


def _fast_dumps(value: Any) -> bytes:
    text = _orjson_dumps(value)
    # Only when the text may hold a float written differently is the value looked through.
    if text is None or (_may_hold_tiny_float(text) and _tiny_float(value)):
        return _std_dumps(value)
    return text


def quick_dumps(value: Any) -> bytes | None:
    """Return :func:`dumps` of ``value`` when orjson's text is surely it, else ``None``.

    Surely: without a look through ``value``. ``None`` also without orjson: then ask
    :func:`dumps`. orjson writes NaN and the infinities as ``null``, and the types it knows
    beyond JSON's (tuples, enums, UUIDs) its own way: a caller that must refuse those looks for
    ``null`` in the text and passes only values parsed from JSON text.
    """
    if not HAS_ORJSON:
        return None
    try:  # _orjson_dumps, inline: this runs for every JSON value of every body
        text: bytes = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except TypeError:
        return None
    if _may_hold_tiny_float(text):  # as _fast_dumps, without the walk
        return None
    return text


#: Parse JSON text (``str`` or UTF-8 ``bytes``) as ``json.loads`` does, refusing NaN and Infinity.
loads: Callable[[str | bytes], Any] = _fast_loads if HAS_ORJSON else _std_loads
#: Write compact UTF-8 JSON bytes as ``json.dumps(ensure_ascii=False, allow_nan=False)`` does.
dumps: Callable[[Any], bytes] = _fast_dumps if HAS_ORJSON else _std_dumps


def dumps_for_storage(value: Any) -> bytes | None:
    """Return compact UTF-8 JSON that reads back as ``value``, or ``None``.

    orjson's text, floats spelled its way (``0.00001``): for storage, where only the value read
    back matters. ``None`` without orjson, or for what orjson cannot write or would write its own
    way (a lone surrogate, an integer beyond 64 bits, a subclass of a JSON type).
    """
    return _orjson_dumps(value) if HAS_ORJSON else None
