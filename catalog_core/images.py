"""Uploaded image bytes: type sniffing, size checks and content addressing (R15).

The catalog checks each upload here and hands the resulting :class:`Blob` to the repository, which
stores it in the same transaction as the product that names it (R26).
"""

from __future__ import annotations

from typing import Final

import attrs

from catalog_core.errors import FileTooLarge, InvalidImage
from catalog_core.model import UPLOAD_SCHEME

__all__ = ["Blob", "make_blob", "sniff_image_type"]

_MIN_BYTES: Final = 12
_HEIF_BRANDS: Final = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"hevc": "image/heic-sequence",
    b"hevx": "image/heic-sequence",
    b"mif1": "image/heif",
    b"msf1": "image/heif-sequence",
    b"avif": "image/avif",
    b"avis": "image/avif",
}


@attrs.frozen
class Blob:
    """Uploaded image bytes, addressed by their SHA-256 within an account."""

    sha256: str
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    mime_type: str

    @property
    def source_url(self) -> str:
        """The opaque ``upload://<sha256>`` a product image points at."""
        return UPLOAD_SCHEME + self.sha256


def sniff_image_type(data: bytes) -> str | None:
    """Return the MIME type recognised from the leading bytes, or ``None`` when not an image."""
    if len(data) < _MIN_BYTES:
        return None
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(bytes(data[8:12]))
    return None


def make_blob(name: str, data: bytes, *, max_bytes: int) -> Blob:
    """Check the upload ``name`` and return it as a content-addressed blob (R15).

    Raises:
        FileTooLarge: ``data`` is longer than ``max_bytes``.
        InvalidImage: ``data`` is not a recognised image type, or shorter than 12 bytes.
    """
    if len(data) > max_bytes:
        raise FileTooLarge(
            f"File '{name}' is {len(data)} bytes; the limit is {max_bytes} bytes.",
        )
    mime_type = sniff_image_type(data)
    if mime_type is None:
        raise InvalidImage(
            f"File '{name}' is not a JPEG, PNG, WebP, HEIC/HEIF or AVIF image.",
        )
    import hashlib  # on first use: its C module is a good part of the package's import time

    return Blob(hashlib.sha256(data).hexdigest(), bytes(data), mime_type)
