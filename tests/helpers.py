"""Helpers shared by the tests: a controllable clock and minimal image bytes."""

from __future__ import annotations

from catalog_core.testing.clock import START, FakeClock

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

#: Every error code of R29 and its HTTP status.
R29_STATUS = {
    "VALIDATION_FAILED": 400,
    "EXTERNAL_ID_REQUIRED": 400,
    "PRODUCT_IMAGES_REQUIRED": 400,
    "INVALID_IMAGE_INPUT": 400,
    "MULTIPART_FILE_NOT_FOUND": 400,
    "INVALID_IMAGE": 400,
    "MISSING_API_KEY": 401,
    "INVALID_API_KEY": 401,
    "PRODUCT_NOT_FOUND": 404,
    "RESERVED_EXTERNAL_ID": 409,
    "VERSION_CONFLICT": 412,
    "FILE_TOO_LARGE": 413,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RATE_LIMITED": 429,
}
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
