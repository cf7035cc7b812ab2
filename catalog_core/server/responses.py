"""Responses of the server: JSON bodies, the error shape of R29, and the warnings header."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from starlette.responses import JSONResponse, Response

from catalog_core._json import dumps
from catalog_core.errors import CatalogError
from catalog_core.model import PayloadWarning
from catalog_core.wire.errors import error_to_wire, status_of

__all__ = [
    "WARNINGS_COUNT_HEADER",
    "WARNINGS_HEADER",
    "encoded",
    "error_response",
    "json_bytes_response",
    "json_response",
    "warnings_headers",
]

#: The header that carries an accepted request's warnings (R17, R18, R32) as a JSON array.
WARNINGS_HEADER: Final = "Catalog-Warnings"
#: How many warnings the request had; more than the header holds when it had to be cut short.
WARNINGS_COUNT_HEADER: Final = "Catalog-Warnings-Count"
#: The warnings header stays under this many bytes (common clients refuse header lines of 8 KiB+).
MAX_WARNINGS_HEADER_BYTES: Final = 4096
_MAX_PATH_CHARS: Final = 200
_V = TypeVar("_V")


class _CompactJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return dumps(content)
        except UnicodeEncodeError:  # a lone surrogate the caller sent, echoed: escape it
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Return ``body`` as compact UTF-8 JSON (``application/json``)."""
    return _CompactJSON(body, status_code=status, headers=dict(headers or {}))


def encoded(encode: Callable[[_V], bytes], plain: Callable[[_V], Any], value: _V) -> bytes:
    """Return ``encode(value)``: a body's compact UTF-8 JSON, written straight to bytes.

    A text holding a lone surrogate (which the catalog refuses, R2, but a store written by
    other means may hold) has no UTF-8 form: its body is then ``plain(value)`` as ASCII JSON,
    the character escaped, as error bodies do.
    """
    try:
        return encode(value)
    except UnicodeEncodeError:
        return json.dumps(plain(value), allow_nan=False, separators=(",", ":")).encode("ascii")


def json_bytes_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Return JSON ``body`` already encoded (``application/json``), as it is."""
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(exc: CatalogError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Return ``{code, message, status, details?}`` with the error's HTTP status (R29)."""
    return json_response(error_to_wire(exc), status_of(exc), headers)


def warnings_headers(
    warnings: Iterable[PayloadWarning], count: int | None = None
) -> dict[str, str]:
    """Return the warnings headers of a response, or none when there are no warnings.

    ``Catalog-Warnings`` holds ``[{"code", "path", "message"}, ...]`` as ASCII JSON (so any
    field name survives a header), in the order the catalog reported them, cut to stay under
    4 KiB; ``Catalog-Warnings-Count`` always holds the full count: ``count`` when the catalog
    kept only the first of them (``warning_count`` of a result), else how many are given.
    """
    items = list(warnings)
    total = len(items) if count is None else count
    if not total:
        return {}
    shown: list[str] = []
    size = 2
    for warning in items:
        path = warning.path
        if len(path) > _MAX_PATH_CHARS:
            path = path[:_MAX_PATH_CHARS] + "…"
        entry = json.dumps(
            {"code": warning.code, "path": path, "message": warning.message},
            ensure_ascii=True,
            separators=(",", ":"),
        )
        if size + len(entry) + 1 > MAX_WARNINGS_HEADER_BYTES:
            break
        shown.append(entry)
        size += len(entry) + 1
    return {
        WARNINGS_HEADER: "[" + ",".join(shown) + "]",
        WARNINGS_COUNT_HEADER: str(total),
    }
