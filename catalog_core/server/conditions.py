"""ETags and ``If-Match`` (R28): a product's version as a strong entity tag, and preconditions.

A product at version 3 has the ETag ``"3"``. ``If-Match`` holds ``*`` (the product must exist) or
a list of entity tags compared strongly (RFC 9110 §13.1.1): weak tags and tags this server never
sends match nothing, so a request that carries only those fails with ``VERSION_CONFLICT``. Empty
list elements (``, "3"``, ``"1",,"3"``) are ignored, as RFC 9110 §5.6.1.2 asks of a recipient.
"""

from __future__ import annotations

import re
from typing import Final

from catalog_core.catalog import ANY_VERSION, AnyVersion
from catalog_core.errors import ValidationFailed

__all__ = ["etag", "parse_if_match"]

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text; lists by commas.
_TAG: Final = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|\Z)')
# What may come before a list element: spaces, tabs, and the commas of empty elements.
_EMPTY_ELEMENTS: Final = re.compile(r"[ \t,]*")
_VERSION: Final = re.compile(r"[1-9][0-9]{0,17}")


def etag(version: int) -> str:
    """Return the strong entity tag of a product version: ``"3"``."""
    return f'"{version}"'


def _skip_empty_elements(text: str, position: int) -> int:
    match = _EMPTY_ELEMENTS.match(text, position)
    # Never None (the pattern matches the empty string); if it were, nothing would be skipped.
    return position if match is None else match.end()


def parse_if_match(values: list[str]) -> int | frozenset[int] | AnyVersion | None:
    """Return the catalog's ``if_version`` for the ``If-Match`` header lines ``values``.

    ``None`` without the header; :data:`~catalog_core.ANY_VERSION` for ``*``; the one version a
    single usable tag names; else the set of versions the tags name (empty when none can match).

    Raises:
        ValidationFailed: at path ``If-Match`` when the header is not ``*`` or a list of entity
            tags (for example a bare ``3`` without quotes), or holds no element at all.
    """
    if not values:
        return None
    text = ", ".join(values).strip(" \t")
    if text == "*":
        return ANY_VERSION
    position = _skip_empty_elements(text, 0)
    if position == len(text):
        raise ValidationFailed.at("If-Match", "must not be empty")
    versions: set[int] = set()
    while position < len(text):
        match = _TAG.match(text, position)
        if match is None:
            raise ValidationFailed.at(
                "If-Match", 'must be * or a list of entity tags as sent in ETag, such as "3"'
            )
        weak, opaque = match.group(1), match.group(2)
        if not weak and _VERSION.fullmatch(opaque):
            versions.add(int(opaque))
        position = _skip_empty_elements(text, match.end())
    if len(versions) == 1:
        return versions.pop()  # one version: the catalog's message names it as such
    return frozenset(versions)
