"""How the SQL backends turn images and timestamps into column values and back."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from catalog_core._json import dumps as fast_dumps
from catalog_core.model import UPLOAD_SCHEME, Image, from_epoch_ms, to_epoch_ms

__all__ = [
    "blob_refs_of_images",
    "dt_or_none",
    "dumps",
    "images_from_json",
    "images_to_json",
    "ms_or_none",
]


def dumps(value: Any, *, ascii_only: bool = False) -> str:
    """Return compact JSON; ``ascii_only`` escapes every non-ASCII and control character."""
    if ascii_only:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    try:
        return fast_dumps(value).decode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: SQLite text can hold it, JSON text escapes it
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def images_to_json(images: Iterable[Image]) -> list[list[Any]]:
    """Return images as JSON-ready rows: ``[sourceUrl]`` or ``[sourceUrl, classifications]``."""
    return [
        [i.source_url, i.classifications] if i.classifications else [i.source_url] for i in images
    ]


def images_from_json(rows: Iterable[list[Any]]) -> tuple[Image, ...]:
    """Return the images of rows made by :func:`images_to_json`, ordered as stored."""
    return tuple(
        Image(row[0], order, row[1] if len(row) > 1 else None) for order, row in enumerate(rows)
    )


def blob_refs_of_images(rows: Iterable[list[Any]]) -> set[str]:
    """Return the SHA-256 of every uploaded blob the image rows refer to."""
    return {row[0][len(UPLOAD_SCHEME) :] for row in rows if row[0].startswith(UPLOAD_SCHEME)}


def ms_or_none(moment: datetime | None) -> int | None:
    """Return milliseconds since the epoch, or ``None``."""
    return None if moment is None else to_epoch_ms(moment)


def dt_or_none(ms: int | None) -> datetime | None:
    """Return the UTC datetime of epoch milliseconds, or ``None``."""
    return None if ms is None else from_epoch_ms(ms)
