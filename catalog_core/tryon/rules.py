"""The try-on flow's pure rules: statuses, lifetimes, credits, ids and media references.

Nothing here reads a clock or touches storage; ``now`` is always a parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final, TypeGuard

import attrs

from catalog_core.errors import InsufficientCredits
from catalog_core.model import Product
from catalog_core.tryon.model import (
    COMPLETED,
    FAILED,
    GENERATION_ID_PREFIX,
    IMAGE_ID_PREFIX,
    PENDING,
    PROCESSING,
    Credits,
    Generation,
    GenerationView,
    PersonImage,
    ProductSnapshot,
    Status,
)

__all__ = [
    "ID_ALPHABET",
    "ID_RANDOM_LENGTH",
    "MAX_MEDIA_REF_LENGTH",
    "TOKEN_LENGTH",
    "balance_at",
    "erased",
    "is_record_id",
    "live_generation",
    "live_image",
    "media_key",
    "media_ref",
    "new_generation_id",
    "new_image_id",
    "new_token",
    "parse_media_ref",
    "reserve",
    "settle",
    "snapshot",
    "status_at",
    "updated_at",
    "view",
]

ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
#: Random characters after an id's prefix (T3, T10): 24 of 36, about 124 bits.
ID_RANDOM_LENGTH: Final = 24
#: Random characters of a media URL's token (T3, T15): 32 of 36, about 165 bits.
TOKEN_LENGTH: Final = 32


def _random(length: int, choice: Callable[[str], str] | None) -> str:
    pick = secrets.choice if choice is None else choice
    return "".join(pick(ID_ALPHABET) for _ in range(length))


def new_image_id(choice: Callable[[str], str] | None = None) -> str:
    """Return a fresh person image id: ``img_`` and 24 random ``[a-z0-9]`` characters (T3)."""
    return IMAGE_ID_PREFIX + _random(ID_RANDOM_LENGTH, choice)


def new_generation_id(choice: Callable[[str], str] | None = None) -> str:
    """Return a fresh generation id: ``gen_`` and 24 random ``[a-z0-9]`` characters (T10)."""
    return GENERATION_ID_PREFIX + _random(ID_RANDOM_LENGTH, choice)


def new_token(choice: Callable[[str], str] | None = None) -> str:
    """Return a media URL's secret: 32 random characters, independent of any id (T3, T15)."""
    return _random(TOKEN_LENGTH, choice)


def live_image(image: PersonImage | None, now: datetime) -> PersonImage | None:
    """Return ``image`` when it is kept at ``now``, else ``None`` (T4)."""
    if image is None or image.is_expired(now):
        return None
    return image


def live_generation(generation: Generation | None, now: datetime) -> Generation | None:
    """Return ``generation`` when it is kept at ``now``, else ``None`` (T22)."""
    if generation is None or generation.is_expired(now):
        return None
    return generation


def status_at(generation: Generation, now: datetime) -> Status:
    """Return the generation's status at ``now``: a function of its record and the time (T14)."""
    if now < generation.processing_at:
        return PENDING
    if generation.finished_at is None or now < generation.finished_at:
        return PROCESSING
    return generation.outcome or PROCESSING


def updated_at(generation: Generation, now: datetime) -> datetime:
    """Return the time of the generation's last status change up to ``now`` (T12)."""
    status = status_at(generation, now)
    if status == PENDING:
        return generation.created_at
    if status == PROCESSING:
        return generation.processing_at
    return generation.finished_at or generation.processing_at


def view(generation: Generation, now: datetime) -> GenerationView:
    """Return the generation as its account sees it at ``now`` (T12, T15, T18)."""
    status = status_at(generation, now)
    result = generation.result if status == COMPLETED else None
    if result is not None and result.sha256 is None and result.url is None:
        result = None  # erased (T18)
    failed = status == FAILED
    return GenerationView(
        generation_id=generation.generation_id,
        status=status,
        product_external_id=generation.product.external_id,
        created_at=generation.created_at,
        updated_at=updated_at(generation, now),
        result=result,
        error_code=generation.error_code if failed else None,
        error_message=generation.error_message if failed else None,
        token=generation.token,
    )


def snapshot(product: Product) -> ProductSnapshot:
    """Return what a generation keeps of ``product`` (T15)."""
    return ProductSnapshot(product.external_id, product.title, product.description, product.images)


def balance_at(credits: Credits, now: datetime) -> int:
    """Return the balance at ``now``: the settled balance plus the refunds due (T16)."""
    return credits.balance + sum(1 for moment in credits.refunds if moment <= now)


def settle(credits: Credits, now: datetime) -> Credits:
    """Return ``credits`` with the refunds due by ``now`` folded into the balance."""
    due = sum(1 for moment in credits.refunds if moment <= now)
    if not due:
        return credits
    return Credits(
        credits.account,
        credits.balance + due,
        tuple(moment for moment in credits.refunds if moment > now),
    )


def reserve(credits: Credits, now: datetime, refund_at: datetime | None) -> Credits:
    """Take one credit for a try-on accepted at ``now`` (T16).

    Args:
        credits: the stored balance.
        now: the time of the try-on.
        refund_at: when the credit comes back (the generation ends ``FAILED`` then), or ``None``.

    Raises:
        InsufficientCredits: the balance at ``now`` is 0.
    """
    settled = settle(credits, now)
    if settled.balance < 1:
        raise InsufficientCredits("Insufficient credits: the account's credit balance is 0.")
    refunds = settled.refunds if refund_at is None else (*settled.refunds, refund_at)
    return Credits(credits.account, settled.balance - 1, refunds)


def erased(generation: Generation) -> Generation:
    """Return ``generation`` without its customer id, person snapshot and result image (T18)."""
    gone = (
        None
        if generation.result is None
        else attrs.evolve(generation.result, sha256=None, mime_type=None, url=None)
    )
    return attrs.evolve(
        generation,
        customer_id=None,
        person=attrs.evolve(generation.person, sha256=None, mime_type=None, url=None),
        result=gone,
    )


#: The media reference's sealed account is padded to a multiple of this many bytes, so that its
#: length tells little of the account's.
_SEAL_BLOCK: Final = 16
#: The longest reference :func:`parse_media_ref` reads: longer ones are no reference.
MAX_MEDIA_REF_LENGTH: Final = 4096


def media_key(secret: bytes) -> bytes:
    """Return the key that seals media references, derived from a storage's secret (T3, T15)."""
    return hmac.new(secret, b"catalog_core media references v1", hashlib.sha256).digest()


def _keystream(key: bytes, record_id: str, length: int) -> bytes:
    """HMAC-SHA256 in counter mode, keyed by ``key`` and nonced by the record's random id."""
    blocks = []
    nonce = record_id.encode("utf-8", "surrogatepass")
    for counter in range(-(-length // 32)):
        blocks.append(hmac.new(key, b"%s:%d" % (nonce, counter), hashlib.sha256).digest())
    return b"".join(blocks)[:length]


def media_ref(key: bytes, account: str, record_id: str, token: str) -> str:
    """Return the path segment of a media URL: ``<id>.<token>.<sealed account>`` (T3, T15).

    The URL must name the account (so that serving it reads one account's records, R1) without
    showing it: on a server without ``--api-key`` the account is the caller's API key. It is
    sealed with ``key`` (:func:`media_key`): XORed with an HMAC-SHA256 keystream whose nonce is
    the record's random id, after a length prefix and padding. The token, random and kept with
    the record, is the secret that authenticates the URL: a reference whose sealed part was
    altered opens another account's record of the same random id, which does not exist, or
    whose token differs.
    """
    raw = account.encode("utf-8")
    plain = len(raw).to_bytes(4, "big") + raw
    plain += b"\0" * (-len(plain) % _SEAL_BLOCK)
    stream = _keystream(key, record_id, len(plain))
    sealed = bytes(a ^ b for a, b in zip(plain, stream, strict=True))
    encoded = base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")
    return f"{record_id}.{token}.{encoded}"


def parse_media_ref(key: bytes, ref: str) -> tuple[str, str, str] | None:
    """Return ``(account, id, token)`` of a media reference, or ``None`` when it is none.

    ``None`` for anything :func:`media_ref` could not have made with ``key``: a wrong shape, an
    id or token of other characters, a sealed part that does not open to an account.
    """
    if len(ref) > MAX_MEDIA_REF_LENGTH:
        return None
    parts = ref.split(".")
    if len(parts) != 3:
        return None
    record_id, token, encoded = parts
    if not (is_record_id(record_id) and _TOKEN.fullmatch(token)):
        return None
    try:
        sealed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if not sealed or len(sealed) % _SEAL_BLOCK:
        return None
    plain = bytes(
        a ^ b for a, b in zip(sealed, _keystream(key, record_id, len(sealed)), strict=True)
    )
    length = int.from_bytes(plain[:4], "big")
    if not 0 < length <= len(plain) - 4 or plain[4 + length :].strip(b"\0"):
        return None
    try:
        account = plain[4 : 4 + length].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(account):
        return None
    return account, record_id, token


#: What an id made by :func:`new_image_id` or :func:`new_generation_id` looks like (a little
#: more freely: any length up to 64 random characters).
_RECORD_ID: Final = re.compile(r"(?:img|gen)_[a-z0-9]{1,64}")
_TOKEN: Final = re.compile(r"[a-z0-9]{1,64}")
_CONTROL: Final = re.compile("[\x00-\x1f\x7f]")


def is_record_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be a person image's or a generation's id.

    Anything else is unknown without a read: no storage sees text it cannot hold (NUL, lone
    surrogates) or of unbounded length.
    """
    return isinstance(value, str) and _RECORD_ID.fullmatch(value) is not None


def after(moment: datetime, seconds: float) -> datetime:
    """Return ``moment`` plus ``seconds``, truncated to whole milliseconds."""
    return moment + timedelta(milliseconds=int(seconds * 1000))
