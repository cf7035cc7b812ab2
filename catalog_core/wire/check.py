"""Typed commands checked by the same field rules as JSON payloads.

An embedder that builds an :class:`~catalog_core.UpsertCommand` or a
:class:`~catalog_core.UseCommand` itself has had its types checked by mypy at best; its values
(lengths, ranges, URLs, JSON-ness, exactly one image source) still need every check of R2-R16.
A command is checked in its canonical wire form (``{source: {url | fileKey}}`` images, nothing
deprecated, nothing unknown), so it meets exactly the checks, messages, detail paths and R30
order of a JSON payload, and comes back with its JSON values copied (the catalog never keeps a
caller's mutable objects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from catalog_core._unset import UNSET
from catalog_core.commands import ImageInput, UpsertCommand, UseCommand
from catalog_core.errors import Detail, ValidationFailed
from catalog_core.limits import Limits
from catalog_core.wire.decode import decode_upsert
from catalog_core.wire.fields import PRODUCT_FIELDS, Kind

__all__ = ["check_upsert_command", "check_use_command"]

#: Attribute of a command -> its key on the wire, for the fields a body sets as they are (the
#: id and the images have their own forms).
_PLAIN_FIELDS: Final = tuple(
    (field.attribute, field.wire)
    for field in PRODUCT_FIELDS
    if field.read and field.kind in (Kind.TEXT, Kind.JSON, Kind.DAYS)
)


def check_upsert_command(command: object, limits: Limits) -> UpsertCommand:
    """Return ``command`` checked as an upsert body would be, its JSON values copied.

    Raises:
        CatalogError: as for the same upsert sent as JSON, in R30 order (``VALIDATION_FAILED``
            at ``command`` when it is not an :class:`~catalog_core.UpsertCommand`).
    """
    if not isinstance(command, UpsertCommand):
        raise ValidationFailed.at("command", "must be an UpsertCommand")
    return _checked(command, limits, for_use=False)


def check_use_command(command: object, limits: Limits) -> UseCommand:
    """Return ``command`` checked as a try-on product item would be, its JSON values copied.

    Raises:
        CatalogError: as for the same item sent as JSON, in R30 order (``VALIDATION_FAILED`` at
            ``command`` when it is not a :class:`~catalog_core.UseCommand`).
    """
    if not isinstance(command, UseCommand):
        raise ValidationFailed.at("command", "must be a UseCommand")
    return UseCommand(**attrs.asdict(_checked(command, limits, for_use=True), recurse=False))


def _checked(
    command: UpsertCommand | UseCommand, limits: Limits, *, for_use: bool
) -> UpsertCommand:
    """Decode the command's canonical body; say "must be an ImageInput" where the wire cannot."""
    typed: list[Detail] = []
    body = _canonical(command, typed)
    try:
        checked, _, _ = decode_upsert(body, limits, for_use=for_use)
    except ValidationFailed as exc:
        if not typed:
            raise
        paths = {d.path for d in typed}
        raise ValidationFailed.of(
            [*typed, *(d for d in exc.details if d.path not in paths)]
        ) from None
    return checked


def _canonical(command: UpsertCommand | UseCommand, typed: list[Detail]) -> dict[str, Any]:
    """Return the command as the canonical JSON body of the same request.

    What has no JSON form (an image that is not an :class:`~catalog_core.ImageInput`) is put
    in ``typed`` and given a form the wire refuses at the same path, so the error is one
    ``VALIDATION_FAILED`` in its place in R30's order.
    """
    body: dict[str, Any] = {}
    if command.external_id is not None:
        body["externalId"] = command.external_id
    for attribute, key in _PLAIN_FIELDS:
        value = getattr(command, attribute)
        if value is not UNSET:
            body[key] = _plain(value, key, typed)
    images: object = command.images
    if images is UNSET:
        return body
    if isinstance(images, str | bytes) or not isinstance(images, Sequence):
        typed.append(Detail("images", "must be a tuple of ImageInput"))
        body["images"] = None  # refused at ``images`` by the wire too
        return body
    body["images"] = [_canonical_image(entry, index, typed) for index, entry in enumerate(images)]
    return body


def _canonical_image(entry: object, index: int, typed: list[Detail]) -> object:
    if not isinstance(entry, ImageInput):
        typed.append(Detail(f"images.{index}", "must be an ImageInput"))
        return None  # refused at ``images.N`` by the wire too
    source: dict[str, Any] = {}
    if entry.url is not None:
        source["url"] = entry.url
    if entry.file_key is not None:
        source["fileKey"] = entry.file_key
    image: dict[str, Any] = {"source": source}
    if entry.classifications is not None:
        image["classifications"] = _plain(
            entry.classifications, f"images.{index}.classifications", typed
        )
    return image


def _plain(value: object, path: str, typed: list[Detail]) -> object:
    """Return a mapping as the ``dict`` a body would hold (others as they are, for the wire)."""
    if not isinstance(value, Mapping) or type(value) is dict:
        return value
    try:
        return dict(value)
    except Exception:  # a caller's own Mapping that cannot be read is no JSON object
        typed.append(Detail(path, "must be a JSON object that can be read"))
        return []  # refused at the same path by the wire too
