"""The wire format: request payloads to commands, products and pages to response dicts.

The encoding half (:mod:`catalog_core.wire.encode`) is imported when one of its names is first
asked for, with cattrs: the catalog decodes requests without loading it.
"""

import typing as _typing

from catalog_core import _lazy
from catalog_core.wire.decode import (
    check_account,
    check_external_id,
    decode_try_on,
    decode_upsert,
    load_body,
    split_multipart,
)

if _typing.TYPE_CHECKING:
    from catalog_core.wire.encode import (
        format_timestamp,
        make_converter,
        page_to_wire,
        parse_timestamp,
        product_from_wire,
        to_wire,
    )

# Public names whose modules import cattrs, and the module each comes from (PEP 562).
_LAZY: _typing.Final = dict.fromkeys(
    (
        "format_timestamp",
        "make_converter",
        "page_to_wire",
        "parse_timestamp",
        "product_from_wire",
        "to_wire",
    ),
    "catalog_core.wire.encode",
)


# Hidden from type checkers, which see the imports above: a misspelt name stays an error.
if not _typing.TYPE_CHECKING:
    __getattr__, __dir__ = _lazy.attach(globals(), _LAZY)


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
