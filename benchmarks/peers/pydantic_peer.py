"""The pydantic v2 peer of the wire benchmarks: an upsert body decoded, a product encoded.

This is how a competent user would write catalog_core's wire layer with pydantic instead: strict
models with camelCase aliases, ``Annotated`` constraints where pydantic has one, and short
validators for the rules it has none for. It applies the same rules as
``catalog_core.wire.decode.load_body`` + ``decode_upsert`` (R2-R18, R33 with the default limits)
and produces the same bytes as the server's encoding of ``to_wire(product)`` (R31). It reports
errors pydantic's way; only what is accepted and what is refused has to agree.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Self
from urllib.parse import urlsplit

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

import catalog_core

__all__ = [
    "ImageIn",
    "ImageOut",
    "ProductOut",
    "SourceIn",
    "UpsertBody",
    "decode_upsert_pydantic",
    "encode_product_pydantic",
    "product_out_from",
]

# The defaults of catalog_core.Limits (R33).
MAX_REQUEST_BYTES: Final = 32 * 2**20
MAX_EXTERNAL_ID_LENGTH: Final = 256
MAX_TITLE_LENGTH: Final = 1000
MAX_DESCRIPTION_LENGTH: Final = 10_000
MAX_IMAGES: Final = 20
MAX_METADATA_BYTES: Final = 16_384
MAX_CLASSIFICATIONS_BYTES: Final = 4096
MAX_URL_LENGTH: Final = 2048
MAX_JSON_DEPTH: Final = 64
ANON_PREFIX: Final = "_anon_"

# Lone surrogates need no check of their own: pydantic's JSON parser refuses them.
_NO_CONTROL: Final = r"^[^\x00-\x1f\x7f]*$"
_NO_SPACE_OR_CONTROL: Final = r"^[^\x00-\x20\x7f]*$"
# urlsplit reads the first [...] of a host and overlooks text around it: the host and port must
# be unbracketed, or one bracketed literal (an IPv6 address) and a port.
_BRACKETS_WHOLE: Final = re.compile(r"[^\[\]]*|\[[^\[\]]*\](?::[^\[\]]*)?")


def _not_reserved(value: str) -> str:
    if value.startswith(ANON_PREFIX):
        raise ValueError(f"the {ANON_PREFIX!r} prefix is for server-generated ids")
    return value


def _http_url(value: str) -> str:
    # pydantic's HttpUrl would normalise the URL (R13 stores it as given), strip tabs and
    # newlines instead of refusing them, and allow 2083 characters: check it the standard way.
    try:
        split = urlsplit(value)
        host = split.hostname
        split.port  # noqa: B018 - reading the port is the check: it raises on a bad one
    except ValueError:
        raise ValueError("must be an absolute http or https URL with a host") from None
    if (
        split.scheme.lower() not in ("http", "https")
        or not host
        or not _BRACKETS_WHOLE.fullmatch(split.netloc.rpartition("@")[2])
    ):
        raise ValueError("must be an absolute http or https URL with a host")
    return value


def _not_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_not_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_not_finite(item) for item in value)
    return False


def _too_deep(value: object, depth: int) -> bool:
    if depth >= MAX_JSON_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_too_deep(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return any(_too_deep(item, depth + 1) for item in value)
    return False


def _compact_json_within(max_bytes: int) -> AfterValidator:
    """Return a validator that a JSON object is finite, at most 64 deep and ``max_bytes`` long."""

    def check(value: dict[str, Any]) -> dict[str, Any]:
        if _too_deep(value, 0):
            raise ValueError(f"must be nested at most {MAX_JSON_DEPTH} levels deep")
        if _not_finite(value):  # pydantic's parser lets NaN and the infinities through
            raise ValueError("must hold only finite numbers")
        # orjson, as catalog_core measures with it when it is installed (the bench extra); json
        # for what orjson cannot write (integers beyond 64 bits).
        try:
            size = len(orjson.dumps(value))
        except TypeError:
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > max_bytes:
            raise ValueError(f"must be at most {max_bytes} bytes as compact JSON (is {size})")
        return value

    return AfterValidator(check)


ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_EXTERNAL_ID_LENGTH, pattern=_NO_CONTROL),
    AfterValidator(_not_reserved),
]
Title = Annotated[str, StringConstraints(max_length=MAX_TITLE_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_LENGTH)]
Url = Annotated[
    str,
    StringConstraints(max_length=MAX_URL_LENGTH, pattern=_NO_SPACE_OR_CONTROL),
    AfterValidator(_http_url),
]
FileKey = Annotated[str, StringConstraints(min_length=1)]
Metadata = Annotated[dict[str, Any], _compact_json_within(MAX_METADATA_BYTES)]
Classifications = Annotated[dict[str, Any], _compact_json_within(MAX_CLASSIFICATIONS_BYTES)]
ValidForDays = Annotated[int, Field(ge=1, le=365)]

# Unknown keys are ignored (R18); only the camelCase names are read; no coercion at all.
_STRICT_CAMEL: Final = ConfigDict(strict=True, alias_generator=to_camel, extra="ignore")


class SourceIn(BaseModel):
    """An image source: exactly one of ``url`` and ``fileKey`` (R12-R14).

    The ``None`` defaults only mark a key as omitted: an explicit ``null`` is still refused,
    because pydantic never validates a default but always validates what was sent.
    """

    model_config = _STRICT_CAMEL

    # Optional but not nullable: the default is never validated, an explicit null is refused.
    url: Url = Field(default=None)  # type: ignore[assignment]
    file_key: FileKey = Field(default=None)  # type: ignore[assignment]

    @model_validator(mode="after")
    def exactly_one(self) -> Self:
        """Refuse a source with neither or both of ``url`` and ``fileKey``."""
        if ("url" in self.model_fields_set) == ("file_key" in self.model_fields_set):
            raise ValueError("must hold exactly one of url and fileKey")
        return self


class ImageIn(BaseModel):
    """One ``images`` entry: ``{source, classifications?}``, or the deprecated flat shape (R17)."""

    model_config = _STRICT_CAMEL

    # Optional but not nullable, as above.
    source: SourceIn = Field(default=None)  # type: ignore[assignment]
    url: Url = Field(default=None)  # type: ignore[assignment]  # the deprecated flat {url}
    file_key: FileKey = Field(default=None)  # type: ignore[assignment]  # the flat {fileKey}
    classifications: Classifications | None = None

    @model_validator(mode="after")
    def one_shape(self) -> Self:
        """Refuse an entry that is neither ``{source}`` nor exactly one of ``url``, ``fileKey``."""
        given = self.model_fields_set
        flat = ("url" in given) + ("file_key" in given)
        if flat != (0 if "source" in given else 1):
            raise ValueError("must hold a source, or (deprecated) exactly one of url and fileKey")
        return self


class UpsertBody(BaseModel):
    """The body of ``POST /products``; ``model_fields_set`` tells omitted from ``null`` (R6)."""

    model_config = _STRICT_CAMEL

    external_id: ExternalId
    title: Title | None = None
    description: Description | None = None
    metadata: Metadata | None = None
    valid_for_days: ValidForDays | None = None
    # Present means "replace the list": null is refused, omitted keeps the stored images.
    images: list[ImageIn] = Field(default_factory=list, max_length=MAX_IMAGES)
    image_urls: list[Url] = Field(default_factory=list, max_length=MAX_IMAGES)

    @model_validator(mode="after")
    def one_image_list(self) -> Self:
        """Refuse ``images`` and the deprecated ``imageUrls`` together (R17)."""
        if {"images", "image_urls"} <= self.model_fields_set:
            raise ValueError("images and imageUrls cannot be used together")
        return self


def decode_upsert_pydantic(raw: bytes) -> UpsertBody:
    """Decode and validate the raw JSON body of an upsert.

    Args:
        raw: the request body, UTF-8 JSON.

    Returns:
        The validated body.

    Raises:
        ValueError: the body is over the request limit (R33), or is refused by the model (a
            ``pydantic.ValidationError``, which is a ``ValueError``).
    """
    if len(raw) > MAX_REQUEST_BYTES:
        raise ValueError(f"the request body is over {MAX_REQUEST_BYTES} bytes")
    return UpsertBody.model_validate_json(raw, strict=True)


def _timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    # UTC, exactly three fractional digits and "Z" (R31), not pydantic's default ISO form.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ImageOut(BaseModel):
    """One image of a product on the wire; no ``classifications`` key when there are none (R16)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True)

    source_url: str
    order: int
    classifications: dict[str, Any] | None = Field(default=None, exclude_if=lambda v: v is None)


class ProductOut(BaseModel):
    """A product on the wire (R31): the fields in this order, account and version left out."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True)

    external_id: str
    title: str | None
    description: str | None
    metadata: dict[str, Any] | None
    valid_for_days: int | None
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime
    images: list[ImageOut]

    @field_serializer("expires_at", "last_used_at", "created_at", "updated_at")
    def timestamp(self, moment: datetime | None) -> str | None:
        """Write a timestamp as ``2026-05-13T10:00:00.000Z``."""
        return _timestamp(moment)


_PRODUCT_OUT: Final = TypeAdapter(ProductOut)


def product_out_from(product: catalog_core.Product) -> ProductOut:
    """Return the pydantic form of a catalog_core product.

    Args:
        product: a product as the catalog returns it.

    Returns:
        The same fields as a validated :class:`ProductOut`.
    """
    return ProductOut(
        external_id=product.external_id,
        title=product.title,
        description=product.description,
        metadata=None if product.metadata is None else dict(product.metadata),
        valid_for_days=product.valid_for_days,
        expires_at=product.expires_at,
        last_used_at=product.last_used_at,
        created_at=product.created_at,
        updated_at=product.updated_at,
        images=[
            ImageOut(
                source_url=image.source_url,
                order=image.order,
                classifications=(
                    None if image.classifications is None else dict(image.classifications)
                ),
            )
            for image in product.images
        ],
    )


def encode_product_pydantic(p: ProductOut) -> bytes:
    """Encode a product as the body of a response: compact UTF-8 JSON (R31).

    Args:
        p: the product.

    Returns:
        The response bytes.
    """
    # model_dump_json(by_alias=True) makes the same JSON as a str; a response wants bytes, which
    # the TypeAdapter gives directly (about 1 us less per product than encoding the str).
    return _PRODUCT_OUT.dump_json(p, by_alias=True)
