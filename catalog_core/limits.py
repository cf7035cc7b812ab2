"""The sizes the catalog accepts (R33), as one value the embedder can change."""

from __future__ import annotations

import attrs

__all__ = ["Limits"]


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Limits.{attribute.name} must be a positive integer, got {value!r}")


@attrs.frozen(kw_only=True)
class Limits:
    """Every size limit of the rule book (R33); the defaults are those of the public service.

    Each breach is reported as a :class:`~catalog_core.CatalogError`, never truncated.
    ``max_request_bytes`` bounds a whole request body and must exceed ``max_file_bytes``, so that
    one oversized file is reported as ``FILE_TOO_LARGE`` rather than ``PAYLOAD_TOO_LARGE``.
    """

    max_external_id_length: int = attrs.field(default=256, validator=_positive)
    max_title_length: int = attrs.field(default=1000, validator=_positive)
    max_description_length: int = attrs.field(default=10_000, validator=_positive)
    max_images: int = attrs.field(default=20, validator=_positive)
    max_metadata_bytes: int = attrs.field(default=16_384, validator=_positive)
    max_classifications_bytes: int = attrs.field(default=4096, validator=_positive)
    max_file_bytes: int = attrs.field(default=10 * 2**20, validator=_positive)
    max_request_bytes: int = attrs.field(default=32 * 2**20, validator=_positive)
    max_url_length: int = attrs.field(default=2048, validator=_positive)

    @property
    def max_decoded_bytes(self) -> int:
        """The memory that parsing one JSON body may take: twice the request limit, plus 16 MiB.

        Bounded before parsing, from the text (R33): JSON text of a few bytes a value (``[{},{},
        …]``) takes dozens of times its size once parsed, so a body well within the request limit
        could take gigabytes. With the body itself, a request at the default limit stays within
        four times it (112 of 128 MiB); the 16 MiB let small request limits take every body they
        let through.
        """
        return 2 * self.max_request_bytes + 16 * 2**20

    def __attrs_post_init__(self) -> None:
        if self.max_request_bytes <= self.max_file_bytes:
            raise ValueError("Limits.max_request_bytes must be larger than max_file_bytes (R33)")
