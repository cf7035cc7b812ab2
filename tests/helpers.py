"""Helpers shared by the tests: a controllable clock and minimal image bytes."""

from __future__ import annotations

from catalog_core.testing.clock import START, FakeClock
from catalog_core.testing.strategies import R29_STATUS

__all__ = [
    "AVIF",
    "HEIC",
    "JPEG",
    "PNG",
    "R29_STATUS",
    "R31_PRODUCT_KEYS",
    "START",
    "WEBP",
    "FakeClock",
]

# Smallest byte strings each recognised image type is sniffed from (R15).
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00\x01" + b"\x00" * 32
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
HEIC = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 32
AVIF = b"\x00\x00\x00\x1cftypavif" + b"\x00" * 32

#: The keys of a product on the wire, in order (R31); ``account`` and ``version`` are not there.
R31_PRODUCT_KEYS = (
    "externalId",
    "title",
    "description",
    "metadata",
    "validForDays",
    "expiresAt",
    "lastUsedAt",
    "createdAt",
    "updatedAt",
    "images",
)
