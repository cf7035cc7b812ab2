"""Listing cursors (R24): opaque, bound to their account and their store, and tamper-evident.

A cursor carries the last id of a page and a keyed BLAKE2b tag over the account and that id. The
key is derived from the store's cursor secret (``Repository.cursor_secret()``, made at random
with the store's schema), so a cursor that is malformed, altered, made for another account or by
another store fails the tag check, and a cursor seen in a URL cannot be checked against guessed
accounts without the store. The tag detects change; it does not hide the id (a caller can only
list its own account with it anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

from catalog_core.errors import ValidationFailed

__all__ = ["cursor_key", "decode_cursor", "encode_cursor"]

_PERSON: Final = b"cc list cursor 2"  # BLAKE2b personalisation: this use of the secret only
_MIN_SECRET_BYTES: Final = 16
_TAG_BYTES: Final = 12
_MAX_CURSOR_CHARS: Final = 4096


def cursor_key(secret: bytes) -> bytes:
    """Return the key that tags cursors, from a store's secret of at least 16 bytes.

    Raises:
        ValueError: ``secret`` is not bytes of at least 16 bytes (a defect of the repository).
    """
    if not isinstance(secret, bytes) or len(secret) < _MIN_SECRET_BYTES:
        raise ValueError(f"a cursor secret is bytes of at least {_MIN_SECRET_BYTES} bytes")
    return hashlib.blake2b(secret, digest_size=32, person=_PERSON).digest()


def _tag(account: str, last_id: str, key: bytes) -> bytes:
    message = account.encode("utf-8") + b"\x00" + last_id.encode("utf-8")
    return hashlib.blake2b(message, key=key, digest_size=_TAG_BYTES).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_cursor(account: str, last_id: str, key: bytes) -> str:
    """Return the cursor of the page that ends with ``last_id``, tagged with ``key``."""
    return _b64(last_id.encode("utf-8")) + "." + _b64(_tag(account, last_id, key))


def decode_cursor(account: str, cursor: object, key: bytes) -> str:
    """Return the last id a cursor of ``account``, tagged with ``key``, carries.

    Raises:
        ValidationFailed: at path ``cursor`` when it is not a string this store made for
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
    if not last_id or not canonical or not hmac.compare_digest(given, _tag(account, last_id, key)):
        raise invalid
    return last_id


def _pad(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not ascii")
    return (text + "=" * (-len(text) % 4)).encode("ascii")
