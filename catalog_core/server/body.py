"""Request bodies for the server: the content type, a size-bounded read, and multipart parts.

The body is read from the ASGI stream and never past the request limit (R33): a declared
``Content-Length`` over the limit is refused before a byte is read, and a body that grows past it
is refused at the chunk that crosses it. Multipart bodies are parsed by python-multipart as they
arrive; this module only collects the parts as raw bytes, so that the JSON of ``data`` is decoded
strictly as UTF-8 by the wire layer rather than guessed at.
"""

from __future__ import annotations

import functools
import re
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast

import anyio
import attrs
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from catalog_core.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from catalog_core.model import Upload
from catalog_core.server.errors import RequestTimeout

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = [
    "DEFAULT_BODY_MIN_RATE",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_PARTS",
    "BodyKind",
    "body_kind",
    "check_declared_length",
    "check_timeout",
    "consume",
    "declared_length",
    "go_on",
    "read_body",
]

#: The most parts a multipart body may have; each part is a file the request could name.
DEFAULT_MAX_PARTS: Final = 1000
#: Seconds a request body may go without a byte arriving before it is dropped (408).
DEFAULT_BODY_TIMEOUT: Final = 30.0
#: Bytes a second a request body must average once its first ``body_timeout`` seconds are over.
DEFAULT_BODY_MIN_RATE: Final = 1024.0

# RFC 2046 §5.1.1 allows 70; python-multipart takes up to 256, and clients never need more.
_MAX_BOUNDARY: Final = 256

BodyKind = Literal["json", "multipart"]
_T = TypeVar("_T")


def check_timeout(name: str, seconds: object) -> None:
    """Refuse a timeout that is not a positive, finite number of seconds.

    Raises:
        ValueError: naming the setting ``name``.
    """
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds < float("inf")
    ):
        raise ValueError(f"{name} must be a positive number, got {seconds!r}")


# An RFC 2231 parameter (``name*=``, ``name*0*=``...), which RFC 7578 forbids in form data.
_EXTENDED_PARAMETER: Final = re.compile(rb"\*[0-9]*\*?\s*=")


def _quoted_parameters(value: str) -> dict[str, str] | None:
    r"""The parameters of a header value ``type; k=v; k="q\"s"`` (RFC 9110 5.6.6), or ``None``.

    A quoted value is read to its closing quote, each backslash taking the character after it
    as it is (5.6.4). ``None`` for a value that does not follow the grammar that far: a quoted
    value without its closing quote, or text after one.
    """
    params: dict[str, str] = {}
    end = len(value)
    at = value.find(";")
    while 0 <= at < end:
        at += 1
        equals = value.find("=", at)
        semicolon = value.find(";", at)
        if equals < 0 or 0 <= semicolon < equals:  # a parameter without a value
            at = semicolon
            continue
        key = value[at:equals].strip(" \t").lower()
        at = equals + 1
        while at < end and value[at] in " \t":
            at += 1
        if at < end and value[at] == '"':
            chars: list[str] = []
            at += 1
            while at < end and value[at] != '"':
                if value[at] == "\\" and at + 1 < end:
                    at += 1
                chars.append(value[at])
                at += 1
            if at >= end:
                return None
            at += 1
            while at < end and value[at] in " \t":
                at += 1
            if at < end and value[at] != ";":
                return None
            text = "".join(chars)
        else:
            stop = value.find(";", at)
            stop = end if stop < 0 else stop
            text = value[at:stop].strip(" \t")
            at = stop
        params.setdefault(key, text)
    return params


def _disposition_name(value: bytes) -> bytes | None:
    r"""The ``name`` parameter of a part's ``Content-Disposition``.

    python-multipart splits the parameters before it unescapes them, and so takes the escaped
    backslash that ends ``name="a\\"`` for an escaped quote: the name runs on into the next
    parameter. When the header holds a backslash, it is read by :func:`_quoted_parameters`,
    which unescapes as it splits, as long as it finds the header well formed and no RFC 2231
    ``*`` parameter is there (RFC 7578 forbids them).
    """
    if b"\\" in value and not _EXTENDED_PARAMETER.search(value):
        params = _quoted_parameters(value.decode("latin-1"))
        if params is not None and "name" in params:
            return params["name"].encode("latin-1")
    _, options = parse_options_header(value)
    return options.get(b"name")


@attrs.frozen
class Body:
    """A read request body: the raw JSON, or the multipart parts by name."""

    kind: BodyKind
    raw: bytes = b""
    parts: dict[str, Upload] = attrs.field(factory=dict)


def body_kind(content_type: str | None) -> tuple[BodyKind, bytes]:
    """Return what a ``Content-Type`` announces, and the multipart boundary (else ``b""``).

    Raises:
        UnsupportedMediaType: the type is missing, or neither JSON nor multipart form data.
        ValidationFailed: a multipart type without a boundary (path ``body``).
    """
    media_type, options = parse_options_header(content_type or "")
    if media_type == b"application/json":
        return "json", b""
    if media_type == b"multipart/form-data":
        boundary = options.get(b"boundary", b"")
        if not 1 <= len(boundary) <= _MAX_BOUNDARY:
            raise ValidationFailed.at(
                "body", f"a multipart/form-data body needs a boundary of 1 to {_MAX_BOUNDARY} bytes"
            )
        return "multipart", boundary
    shown = media_type.decode("latin-1") or "none"
    raise UnsupportedMediaType(
        f"Content-Type {shown} is not supported: send application/json, or "
        "multipart/form-data with the JSON in a field named data."
    )


def declared_length(headers: Mapping[str, str]) -> int | None:
    """Return the ``Content-Length`` a request declares, or ``None`` when it declares none."""
    text = headers.get("content-length")
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


def check_declared_length(declared: int | None, limit: int) -> None:
    """Refuse a body whose declared length is over ``limit``, before reading it.

    Raises:
        PayloadTooLarge: the declared length is over the limit.
    """
    if declared is not None and declared > limit:
        raise PayloadTooLarge.for_size(declared, limit)


async def consume(
    next_chunk: Callable[[], Awaitable[tuple[bytes, bool]]],
    sink: Callable[[bytes], object],
    *,
    limit: int,
    idle_timeout: float,
    min_rate: float,
) -> None:
    """Hand each chunk of a body to ``sink``, never past ``limit`` bytes, never slower than allowed.

    ``next_chunk`` returns the body's next chunk and whether more may follow (``False``: the
    body has ended; the chunk may be empty). Two clocks run:
    no chunk may take longer than ``idle_timeout`` seconds to come, and the whole body must have
    come by ``idle_timeout + size / min_rate`` seconds after it began (``size`` counting what
    came so far). The first stops a client that went silent, the second one that sends a byte
    now and then to keep a connection forever. Both are asked before each chunk is taken; a
    chunk that has already come (as the whole of a small body usually has, read with its head)
    is taken at once, and only a wait is timed, by a cancel scope of its own: setting one up
    cost twenty times as much as taking a chunk that is there.

    Raises:
        PayloadTooLarge: the body is over ``limit``.
        RequestTimeout: a clock ran out.
    """
    size = 0
    started = time.monotonic()
    more = True
    while more:
        now = time.monotonic()
        left = started + idle_timeout + size / min_rate - now
        wait = min(idle_timeout, left)
        if wait <= 0:
            raise _too_slow(size > 0 and left < idle_timeout, idle_timeout, min_rate)
        step = next_chunk().__await__()
        try:
            waiting = step.send(None)  # as far as the chunk has come, without waiting
        except StopIteration as taken:
            chunk, more = taken.value
        else:
            # A scope whose deadline passes in the very step its chunk comes (a busy loop) does
            # not cancel the wait: the chunk is taken, and the next wait has a scope of its own.
            with anyio.CancelScope(deadline=now + wait) as scope:
                chunk, more = await go_on(step, waiting)
            if scope.cancelled_caught:
                raise _too_slow(size > 0 and left < idle_timeout, idle_timeout, min_rate)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"The request body is over the limit of {limit} bytes; it was not read further."
            )
        if chunk:
            sink(chunk)


@types.coroutine
def go_on(step: Generator[Any, Any, _T], waiting: Any) -> Generator[Any, Any, _T]:
    """Await the rest of ``step``, an awaitable's iterator that has just yielded ``waiting``.

    What ``await`` would have done from there (PEP 380's ``yield from``, from its first yield
    on): each value the step yields goes to the task, and what the task sends or throws in (a
    cancellation) goes to the step, which may handle it and wait again; closing closes it.
    """
    while True:
        thrown: BaseException | None = None
        try:
            sent = yield waiting
        except GeneratorExit:
            step.close()
            raise
        except BaseException as exc:  # thrown in by the task: the step decides what it does
            thrown = exc
        try:
            # Outside the except clause: the step does not run inside an exception handled here.
            waiting = step.send(sent) if thrown is None else step.throw(thrown)
        except StopIteration as done:
            return cast("_T", done.value)


def _too_slow(by_rate: bool, idle_timeout: float, min_rate: float) -> RequestTimeout:
    """The timeout of a body that fell behind the average rate, or went silent.

    Before its first byte both clocks end together (the average's a moment earlier): a body
    that never began is a silent one.
    """
    if by_rate:
        return RequestTimeout(
            f"The request body came slower than {min_rate:g} bytes a second on average "
            f"after its first {idle_timeout:g} s; the request was dropped and nothing "
            "was written."
        )
    return RequestTimeout(
        f"No part of the request body arrived for {idle_timeout:g} s; "
        "the request was dropped and nothing was written."
    )


async def read_body(
    chunks: AsyncIterator[bytes],
    kind: BodyKind,
    boundary: bytes,
    *,
    limit: int,
    max_parts: int = DEFAULT_MAX_PARTS,
    idle_timeout: float = DEFAULT_BODY_TIMEOUT,
    min_rate: float = DEFAULT_BODY_MIN_RATE,
) -> Body:
    """Read a body of ``kind`` from ``chunks``, never past ``limit`` bytes.

    Raises:
        PayloadTooLarge: the body is over ``limit``.
        RequestTimeout: nothing arrived for ``idle_timeout`` seconds before the body ended, or
            the body had not all arrived ``idle_timeout + size / min_rate`` seconds after it
            began.
        ValidationFailed: a multipart body is malformed, ends early, repeats a part name, or has
            more than ``max_parts`` parts (path ``body``, or the repeated part's name).
    """
    pending = aiter(chunks)

    async def next_chunk() -> tuple[bytes, bool]:
        chunk = await anext(pending, None)
        return (b"", False) if chunk is None else (chunk, True)

    feed = functools.partial(
        consume, next_chunk, limit=limit, idle_timeout=idle_timeout, min_rate=min_rate
    )
    if kind == "json":
        read: list[bytes] = []
        await feed(read.append)
        return Body("json", raw=b"".join(read))
    collector = _PartCollector(max_parts)
    try:  # every failure of the parser is the body's: FormParserError is the base of them all
        parser = MultipartParser(boundary, collector.callbacks())
        await feed(parser.write)
        parser.finalize()
    except FormParserError as exc:
        raise ValidationFailed.at("body", f"is not valid multipart/form-data ({exc})") from None
    if not collector.ended:
        raise ValidationFailed.at("body", "the multipart body ends before its closing boundary")
    return Body("multipart", parts=collector.parts)


class _PartCollector:
    """python-multipart callbacks that keep each part's name, type and bytes."""

    def __init__(self, max_parts: int) -> None:
        self.max_parts = max_parts
        self.parts: dict[str, Upload] = {}
        self.ended = False
        self._count = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._data = bytearray()
        self._name = ""
        self._type: str | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._count += 1
        if self._count > self.max_parts:
            raise ValidationFailed.at("body", f"must hold at most {self.max_parts} parts")
        self._headers = {}
        self._data = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field = bytearray()
        self._value = bytearray()

    def _headers_finished(self) -> None:
        raw_name = _disposition_name(self._headers.get(b"content-disposition", b""))
        if not raw_name:
            raise ValidationFailed.at("body", "every part needs a Content-Disposition name")
        try:
            self._name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed.at("body", "part names must be UTF-8") from None
        if self._name in self.parts:
            raise ValidationFailed.at(self._name, "is given more than once")
        content_type = self._headers.get(b"content-type")
        self._type = None if content_type is None else content_type.decode("latin-1")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def _part_end(self) -> None:
        self.parts[self._name] = Upload(bytes(self._data), self._type)

    def _end(self) -> None:
        self.ended = True
