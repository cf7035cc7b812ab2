"""Listing cursors (R24): opaque, bound to their account, and tamper-evident.

A cursor carries the last id of a page and a keyed BLAKE2b tag over the account and that id.
A cursor that is malformed, altered or made for another account fails the tag check. The tag
detects change; it does not hide the id (a caller can only list its own account with it anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

from catalog_core.errors import ValidationFailed

__all__ = ["decode_cursor", "encode_cursor"]

_KEY: Final = b"catalog_core listing cursor v1"
_TAG_BYTES: Final = 12
_MAX_CURSOR_CHARS: Final = 4096


def _tag(account: str, last_id: str) -> bytes:
    message = account.encode("utf-8") + b"\x00" + last_id.encode("utf-8")
    return hashlib.blake2b(message, key=_KEY, digest_size=_TAG_BYTES).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_cursor(account: str, last_id: str) -> str:
    """Return the cursor of the page that ends with ``last_id``."""
    return _b64(last_id.encode("utf-8")) + "." + _b64(_tag(account, last_id))


def decode_cursor(account: str, cursor: object) -> str:
    """Return the last id a cursor of ``account`` carries.

    Raises:
        ValidationFailed: at path ``cursor`` when it is not a string this catalog made for
            ``account``.
    """
    invalid = ValidationFailed.at("cursor", "is not a cursor of this listing")
    if not isinstance(cursor, str) or len(cursor) > _MAX_CURSOR_CHARS or cursor.count(".") != 1:
        raise invalid
    body, tag = cursor.split(".")
    try:
        last_id = base64.urlsafe_b64decode(_pad(body)).decode("utf-8")
        given = base64.urlsafe_b64decode(_pad(tag))
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid from None
    canonical = _b64(last_id.encode("utf-8")) == body and _b64(given) == tag
    if not last_id or not canonical or not hmac.compare_digest(given, _tag(account, last_id)):
        raise invalid
    return last_id


def _pad(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not ascii")
    return (text + "=" * (-len(text) % 4)).encode("ascii")
