"""Helpers shared by the tests: a controllable clock and minimal image bytes."""

from __future__ import annotations

from catalog_core.testing.clock import START, FakeClock
from catalog_core.testing.strategies import IMAGE_HEADERS, R29_STATUS

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

# Small images of each recognised type (R15): the kit's leading bytes, then some padding.
JPEG = IMAGE_HEADERS["image/jpeg"] + b"\x00" * 32
PNG = IMAGE_HEADERS["image/png"] + b"\x00" * 32
WEBP = IMAGE_HEADERS["image/webp"] + b"\x00" * 32
HEIC = IMAGE_HEADERS["image/heic"] + b"\x00" * 32
AVIF = IMAGE_HEADERS["image/avif"] + b"\x00" * 32

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
