"""The wire format: request payloads to commands, products and pages to response dicts."""

from catalog_core.wire.decode import (
    check_account,
    check_external_id,
    decode_try_on,
    decode_upsert,
    load_body,
    split_multipart,
)
from catalog_core.wire.encode import (
    format_timestamp,
    make_converter,
    page_to_wire,
    parse_timestamp,
    product_from_wire,
    to_wire,
)

__all__ = [
    "check_account",
    "check_external_id",
    "decode_try_on",
    "decode_upsert",
    "format_timestamp",
    "load_body",
    "make_converter",
    "page_to_wire",
    "parse_timestamp",
    "product_from_wire",
    "split_multipart",
    "to_wire",
]
