"""The OpenAPI 3.1 document of the server, generated from the catalog's limits and error codes.

Sizes come from the served catalog's :class:`~catalog_core.Limits` and error codes from the error
classes, so the document cannot drift from what the server enforces. Where a rule depends on
state (a create needs an image, a ``fileKey`` must name a part of the same request, an ``If-Match``
must name the current version) or on a measure JSON Schema has no word for (metadata bytes as
compact UTF-8, an integer written ``2.0``), the schema describes the shape and a description
names the rule. Every URL and If-Match value the patterns admit, the server accepts.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from typing import Any, Final

from catalog_core import __version__
from catalog_core.catalog import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from catalog_core.errors import CatalogError, error_classes, tryon_error_classes
from catalog_core.limits import Limits
from catalog_core.model import ANON_PREFIX
from catalog_core.server.body import DEFAULT_MAX_PARTS
from catalog_core.server.errors import (
    MediaNotFound,
    MethodNotAllowed,
    RequestTimeout,
    RouteNotFound,
    ServerError,
    ServiceUnavailable,
    TryOnUnavailable,
)
from catalog_core.tryon.commands import KEEP_FOR_DAYS
from catalog_core.tryon.model import GENERATION_ID_PREFIX, IMAGE_ID_PREFIX
from catalog_core.tryon.rules import ID_RANDOM_LENGTH
from catalog_core.wire.fields import (
    MAX_VALID_FOR_DAYS,
    PRODUCT_FIELDS,
    WRITTEN_IMAGE_FIELDS,
    WRITTEN_PRODUCT_FIELDS,
    Field,
    Kind,
)
from catalog_core.wire.tryon import MAX_CUSTOMER_ID_LENGTH

__all__ = [
    "IF_MATCH_PATTERN",
    "OPENAPI_PATH",
    "URL_PATTERN",  # noqa: F822 - made on first use by the module's __getattr__
    "openapi_document",
    "server_error_classes",
]

OPENAPI_PATH: Final = "/tryon/v1/openapi.json"

_TEXT: Final = r"[^\x00-\x1f\x7f]"


@functools.cache
def _normalising_to_delimiters() -> str:
    """Return, as a regex class body, the characters whose NFKC form holds / ? # @ or :.

    The URL parser refuses a host or user part that holds one (``urllib.parse`` checks the NFKC
    form of every non-ASCII netloc), so the URL pattern leaves them out; they are computed from
    the same Unicode tables the parser uses. A scan of every code point (0.2 s): made once, when
    the pattern is first asked for, so that importing this module costs nothing of it.
    """
    found: list[str] = []
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.decomposition(char) and any(
            delimiter in unicodedata.normalize("NFKC", char) for delimiter in "/?#@:"
        ):
            found.append(f"\\u{code:04x}" if code <= 0xFFFF else char)
    return "".join(found)


_H16: Final = r"[0-9A-Fa-f]{1,4}"
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32: Final = rf"(?:{_H16}:{_H16}|{_OCTET}(?:\.{_OCTET}){{3}})"
_IPV6: Final = (
    "(?:"
    + "|".join(  # RFC 3986, section 3.2.2
        [
            rf"(?:{_H16}:){{6}}{_LS32}",
            rf"::(?:{_H16}:){{5}}{_LS32}",
            rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
            rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
            rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
            rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
        ]
    )
    + ")"
)
_PORT: Final = (
    r"0*(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)


@functools.cache
def _url_pattern() -> str:
    """Return the pattern of an absolute http(s) URL with a host (R13), as the server reads it.

    No spaces or controls; a host that is a name or a bracketed IPv6 (or IPvFuture) literal; a
    port from 0 to 65535, possibly empty. A URL this pattern admits is accepted, and one it
    refuses is refused except when the URL parser overlooks text around a bracketed literal.
    The module's ``URL_PATTERN``; computed on first use.
    """
    not_in_netloc = r"\x00-\x20\x7f/?#\[\]" + _normalising_to_delimiters()
    ip_literal = rf"\[(?:{_IPV6}(?:%[^{not_in_netloc}@%]+)?|v[0-9A-Fa-f]+\.[^{not_in_netloc}@]+)\]"
    return (
        r"^[Hh][Tt][Tt][Pp][Ss]?://"
        rf"(?:[^{not_in_netloc}]*@)?"
        rf"(?:[^{not_in_netloc}@:]+|{ip_literal})"
        rf"(?::(?:{_PORT})?)?"
        r"(?:[/?#][^\x00-\x20\x7f]*)?$"
    )


def __getattr__(name: str) -> str:
    # URL_PATTERN is made on first use (PEP 562): importing the module does not scan Unicode.
    if name == "URL_PATTERN":
        return _url_pattern()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "URL_PATTERN"})


_TIMESTAMP: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
# If-Match as the server reads it (conditions.parse_if_match): `*`, or a list of at least one entity
# tag separated by commas, with empty elements (RFC 9110 §5.6.1.2) before, between and after them.
_ENTITY_TAG: Final = r'(W/)?"[!#-~\x80-\xff]*"[ \t]*'
IF_MATCH_PATTERN: Final = (
    rf"^([ \t]*\*[ \t]*|[ \t,]*{_ENTITY_TAG}(,[ \t,]*{_ENTITY_TAG})*(,[ \t,]*)?)$"
)


def _product_error_classes() -> tuple[type[CatalogError], ...]:
    """The error classes the products endpoints can answer with: R29's and the server's own."""
    return (
        *error_classes(),
        RouteNotFound,
        MethodNotAllowed,
        RequestTimeout,
        ServerError,
        ServiceUnavailable,
    )


def server_error_classes() -> tuple[type[CatalogError], ...]:
    """Return every error class the server can answer with: R29's, T20's and the server's own."""
    return (*_product_error_classes(), *tryon_error_classes(), MediaNotFound, TryOnUnavailable)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page_parameters(of: str = "") -> list[dict[str, Any]]:
    """The ``limit`` and ``cursor`` of a listing (R24)."""
    return [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_PAGE_SIZE,
                "default": DEFAULT_PAGE_SIZE,
            },
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": f"nextCursor of the previous page{of}; opaque.",
            "schema": {"type": "string"},
        },
    ]


def _error(
    status: int, description: str, classes: tuple[type[CatalogError], ...] | None = None
) -> dict[str, Any]:
    """The answer of the error codes of ``status`` (those of ``classes``; the products' ones)."""
    chosen = _product_error_classes() if classes is None else classes
    codes = [cls.code for cls in chosen if cls.status == status]
    return {
        "description": f"{description} Codes: {', '.join(codes)}.",
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        _ref("Error"),
                        {
                            "properties": {
                                "code": {"enum": codes},
                                "status": {"const": status},
                            }
                        },
                    ]
                }
            }
        },
    }


_WARNING_HEADERS: Final = {
    "Catalog-Warnings": {
        "description": (
            "The request's warnings (deprecated shapes, unknown fields, unused file parts) as a "
            "JSON array of {code, path, message}, cut to 4 KiB; absent when there are none."
        ),
        "schema": {"type": "string"},
    },
    "Catalog-Warnings-Count": {
        "description": "How many warnings the request had; absent when there are none.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}
_ETAG_HEADER: Final = {
    "description": 'The product\'s version as a strong entity tag ("3"), for If-Match (R28).',
    "required": True,
    "schema": {"type": "string", "pattern": '^"[1-9][0-9]*"$'},
}
_IF_MATCH: Final = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": (
        'Write only when the product is at one of these versions ("3", as sent in ETag), or '
        "exists at all (*). Weak and foreign tags match nothing. A mismatch answers 412 "
        "VERSION_CONFLICT and writes nothing."
    ),
    "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
}
_EXTERNAL_ID_PARAMETER: Final = {
    "name": "externalId",
    "in": "path",
    "required": True,
    "description": "The product's id, percent-encoded. Ids starting with _anon_ are one-shot.",
    "schema": {"$ref": "#/components/schemas/ExternalId"},
}


# What the schema of a field read from a body adds to its schema as written, by kind.
_READ_NOTES: Final = {
    Kind.DAYS: (
        "Days, written as a JSON integer: 30.0 and 3e1 are refused (R10), though JSON Schema "
        "counts them as integers."
    ),
    Kind.IMAGES: "Replaces the whole list, in this order (R8).",
}


def _nullable(kind: str, field: Field) -> str | list[str]:
    return [kind, "null"] if field.nullable else kind


def _images(field: Field, limits: Limits, items: str) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": field.bound(limits), "items": _ref(items)}


def _written_schema(field: Field, limits: Limits) -> dict[str, Any]:
    """Return the schema of ``field`` in a product or image on the wire (R31)."""
    kind = field.kind
    if kind is Kind.ID:
        return _ref("ExternalId")
    if kind is Kind.TEXT:
        return {"type": _nullable("string", field), "maxLength": field.bound(limits)}
    if kind is Kind.JSON:  # an image's {} is written as no classifications (R16)
        return (
            {"type": "object", "minProperties": 1}
            if field.omit_none
            else {"type": _nullable("object", field)}
        )
    if kind is Kind.DAYS:
        return {"type": _nullable("integer", field), "minimum": 1, "maximum": MAX_VALID_FOR_DAYS}
    if kind is Kind.TIMESTAMP:
        timestamp = {"type": "string", "format": "date-time", "pattern": _TIMESTAMP}
        return {"oneOf": [timestamp, {"type": "null"}]} if field.nullable else timestamp
    if kind is Kind.IMAGES:
        return _images(field, limits, "Image")
    if kind is Kind.URL:
        return {
            "type": "string",
            "description": "The URL as given, or upload://<sha256> for uploaded bytes.",
        }
    if kind is Kind.ORDER:
        return {"type": "integer", "minimum": 0}
    raise TypeError(f"{field.wire} is never written")


def _read_schema(field: Field, limits: Limits) -> dict[str, Any]:
    """Return the schema of ``field`` in an upsert body."""
    if field.kind is Kind.ID:
        return {
            "allOf": [_ref("ExternalId")],
            "not": {"pattern": f"^{ANON_PREFIX}"},
            "description": f"Ids starting with {ANON_PREFIX} are reserved (409, R3).",
        }
    if field.kind is Kind.IMAGE_URLS:
        return {"type": "array", "deprecated": True, **_images(field, limits, "Url")}
    if field.kind is Kind.IMAGES:
        schema = _images(field, limits, "ImageInput")
    else:
        schema = _written_schema(field, limits)
    note = _READ_NOTES.get(field.kind)
    return schema if note is None else {**schema, "description": note}


def _object(fields: tuple[Field, ...], limits: Limits, **extra: Any) -> dict[str, Any]:
    """Return the schema of a product or an image on the wire: exactly these keys (R31)."""
    return {
        "type": "object",
        **extra,
        "required": [field.wire for field in fields if not field.omit_none],
        "properties": {field.wire: _written_schema(field, limits) for field in fields},
        "additionalProperties": False,
    }


def _schemas(limits: Limits, max_parts: int) -> dict[str, Any]:
    read = tuple(field for field in PRODUCT_FIELDS if field.read)
    (external_id,) = (field for field in read if field.kind is Kind.ID)
    return {
        "ExternalId": {
            "type": "string",
            "minLength": 1,
            "maxLength": external_id.bound(limits),
            "pattern": f"^{_TEXT}*$",
        },
        "Error": {
            "type": "object",
            "required": ["code", "message", "status"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "status": {"type": "integer"},
                "details": {"type": "array", "minItems": 1, "items": _ref("Detail")},
            },
            "additionalProperties": False,
        },
        "Detail": {
            "type": "object",
            "required": ["path", "message"],
            "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": False,
        },
        "Image": _object(WRITTEN_IMAGE_FIELDS, limits),
        "Product": _object(
            WRITTEN_PRODUCT_FIELDS,
            limits,
            description="The product on the wire (R31): exactly these keys, in this order.",
        ),
        "Page": {
            "type": "object",
            "required": ["items", "nextCursor", "hasMore", "count"],
            "properties": {
                "items": {"type": "array", "maxItems": MAX_PAGE_SIZE, "items": _ref("Product")},
                "nextCursor": {"type": ["string", "null"]},
                "hasMore": {"type": "boolean"},
                "count": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE_SIZE},
            },
            "additionalProperties": False,
        },
        "Url": {"type": "string", "maxLength": limits.max_url_length, "pattern": _url_pattern()},
        "FileKey": {"type": "string", "minLength": 1},
        "ImageSource": {
            "type": "object",
            "description": "Exactly one of url and fileKey (R12); other keys are ignored.",
            "properties": {"url": _ref("Url"), "fileKey": _ref("FileKey")},
            "oneOf": [{"required": ["url"]}, {"required": ["fileKey"]}],
        },
        "Classifications": {"type": ["object", "null"]},
        "ImageInput": {
            "description": (
                "{source, classifications?}; the flat {url} / {fileKey} entry is deprecated "
                "and answered with a warning (R17)."
            ),
            "oneOf": [
                {
                    "type": "object",
                    "required": ["source"],
                    "properties": {
                        "source": _ref("ImageSource"),
                        "classifications": _ref("Classifications"),
                    },
                    "not": {"anyOf": [{"required": ["url"]}, {"required": ["fileKey"]}]},
                },
                {
                    "type": "object",
                    "deprecated": True,
                    "properties": {
                        "url": _ref("Url"),
                        "fileKey": _ref("FileKey"),
                        "classifications": _ref("Classifications"),
                    },
                    "oneOf": [{"required": ["url"]}, {"required": ["fileKey"]}],
                    "not": {"required": ["source"]},
                },
            ],
        },
        "UpsertBody": {
            "type": "object",
            "description": (
                "Omitted fields keep their value on update (R6); null clears title, description "
                "and metadata and makes validForDays lifetime (R10). Unknown keys are ignored "
                "with a warning (R18). A create needs at least one image (R5). metadata is at "
                f"most {limits.max_metadata_bytes} bytes and each classifications object at "
                f"most {limits.max_classifications_bytes} bytes, as compact UTF-8 JSON (R9, R16)."
            ),
            "required": [external_id.wire],
            "properties": {field.wire: _read_schema(field, limits) for field in read},
            "not": {
                "required": [
                    field.wire for field in read if field.kind in (Kind.IMAGES, Kind.IMAGE_URLS)
                ]
            },
        },
        "MultipartUpsertBody": {
            "type": "object",
            "description": (
                "The JSON payload in the data field; every other part is a file that an image "
                "names by fileKey (R14, R32). Parts no image names are ignored with a warning. "
                f"Every part has a non-empty name; there are at most {max_parts} parts."
            ),
            "required": ["data"],
            "properties": {"data": _ref("UpsertBody")},
            "additionalProperties": {"type": "string", "contentMediaType": "image/*"},
            "propertyNames": {"minLength": 1},
            "maxProperties": max_parts,
        },
    }


def _product_response(description: str, *, created: bool) -> dict[str, Any]:
    headers: dict[str, Any] = {"ETag": _ETAG_HEADER, **_WARNING_HEADERS}
    if created:
        headers["Location"] = {
            "description": "The new product's URL.",
            "required": True,
            "schema": {"type": "string"},
        }
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": _ref("Product")}},
    }


def openapi_document(
    limits: Limits,
    *,
    rate_limited: bool = False,
    max_parts: int = DEFAULT_MAX_PARTS,
    tryon: bool = True,
) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of a server on a catalog with ``limits``.

    Args:
        limits: the served catalog's limits, which bound every size in the document.
        rate_limited: whether the server answers ``429 RATE_LIMITED`` (``--rate-limit``).
        max_parts: the most parts the server reads in a multipart body.
        tryon: whether the server runs try-ons; without, every try-on operation answers
            ``501 NOT_IMPLEMENTED``.
    """
    common = {
        "400": _error(400, "A malformed request."),
        "401": _error(401, "No x-api-key, or one the server does not know."),
    }
    if rate_limited:
        common["429"] = _error(429, "Over the account's rate limit; see Retry-After.")
        common["429"]["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait.",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    common["500"] = _error(500, "A failure of the server, logged with its traceback.")
    common["503"] = _error(
        503,
        "The server is shutting down and stopped before it finished the request (a write it "
        "was making was completed or rolled back whole), or (under catalog-core serve, on any "
        "route) it has its limit of connections open; see Retry-After.",
    )
    not_found = {"404": _error(404, "No live product has this id in the account.")}
    conflict = {"412": _error(412, "If-Match names no current version of the product.")}
    too_large = {
        "413": _error(
            413,
            f"A file over {limits.max_file_bytes} bytes, or a body over "
            f"{limits.max_request_bytes} bytes.",
        )
    }
    upsert_responses = {
        "200": _product_response("Updated: the whole product after the write.", created=False),
        "201": _product_response("Created: the whole product.", created=True),
        **common,
        "409": _error(409, "The id starts with the reserved _anon_ prefix."),
        **conflict,
        "408": _error(
            408,
            "The request stopped arriving: nothing of its body came for the body timeout, its "
            "body fell behind the minimum body rate, or (under catalog-core serve, on any "
            "route) its line and headers were not whole within the header timeout.",
        ),
        **too_large,
        "415": _error(415, "A body that is neither JSON nor multipart/form-data."),
    }
    tryon_paths = _tryon_paths(limits, common, served=tryon)
    local_paths = _local_paths(limits, common, served=tryon)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "catalog_core: the Try-On API's products and try-on endpoints",
            "version": __version__,
            "description": (
                "A local, stateful stand-in for the public Try-On API, served by "
                "`catalog-core serve`. Every error is {code, message, status, details?} with the "
                "HTTP status equal to status."
            ),
        },
        "security": [{"ApiKey": []}],
        "paths": {
            "/tryon/v1/products": {
                "post": {
                    "operationId": "upsertProduct",
                    "summary": "Create or update a product, matched on (account, externalId).",
                    "parameters": [_IF_MATCH],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _ref("UpsertBody")},
                            "multipart/form-data": {
                                "schema": _ref("MultipartUpsertBody"),
                                "encoding": {"data": {"contentType": "application/json"}},
                            },
                        },
                    },
                    "responses": upsert_responses,
                },
                "get": {
                    "operationId": "listProducts",
                    "summary": "One page of the account's live products, in order of id (R24).",
                    "parameters": _page_parameters(),
                    "responses": {
                        "200": {
                            "description": "One page.",
                            "headers": _WARNING_HEADERS,
                            "content": {"application/json": {"schema": _ref("Page")}},
                        },
                        **common,
                    },
                },
            },
            "/tryon/v1/products/{externalId}": {
                "parameters": [_EXTERNAL_ID_PARAMETER],
                "get": {
                    "operationId": "getProduct",
                    "summary": "The live product (R23).",
                    "responses": {
                        "200": {
                            "description": "The product.",
                            "headers": {"ETag": _ETAG_HEADER, **_WARNING_HEADERS},
                            "content": {"application/json": {"schema": _ref("Product")}},
                        },
                        **common,
                        **not_found,
                    },
                },
                "delete": {
                    "operationId": "deleteProduct",
                    "summary": "Delete the live product (R25).",
                    "parameters": [_IF_MATCH],
                    "responses": {
                        "204": {"description": "Deleted.", "headers": _WARNING_HEADERS},
                        **common,
                        **not_found,
                        **conflict,
                    },
                },
            },
            **tryon_paths,
            **local_paths,
            OPENAPI_PATH: {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": (
                        "Names the account. Without --api-key any key is its own account."
                    ),
                }
            },
            "schemas": _local_schemas(
                {**_schemas(limits, max_parts), **_tryon_schemas(limits, max_parts)}, limits
            ),
        },
    }


# -- the try-on flow (T1-T24) -----------------------------------------------------------------

_TRYON_CLASSES: Final = server_error_classes()


def _generation_id_parameter() -> dict[str, Any]:
    """A generation's id in a path: any text without a '/' (unknown: GENERATION_NOT_FOUND)."""
    return {
        "name": "generationId",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]*$"},
    }


_STATUSES: Final = ["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
_MEDIA_TYPES: Final = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heic",
    "image/heic-sequence",
    "image/heif",
    "image/heif-sequence",
    "image/avif",
)


def _id_pattern(prefix: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{prefix}[a-z0-9]{{{ID_RANDOM_LENGTH},}}$"}


def _nullable_ref(name: str) -> dict[str, Any]:
    return {"anyOf": [_ref(name), {"type": "null"}]}


def _one_of_present(keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Exactly one of ``keys`` holds a value (``null`` counts as absent)."""
    return [{"required": [key], "properties": {key: {"not": {"type": "null"}}}} for key in keys]


def _generation(limits: Limits, *, with_product: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "generationId": _id_pattern(GENERATION_ID_PREFIX),
        "status": {"enum": _STATUSES},
        "resultImageUrl": {
            "type": "string",
            "format": "uri",
            "description": "Served without an API key while the generation is kept (T15).",
        },
        "errorMessage": {"type": "string"},
        "errorCode": {"type": "string"},
        "createdAt": {"type": "string", "format": "date-time", "pattern": _TIMESTAMP},
        "updatedAt": {"type": "string", "format": "date-time", "pattern": _TIMESTAMP},
    }
    required = ["generationId", "status", "createdAt", "updatedAt"]
    if with_product:
        properties["productExternalId"] = _ref("ExternalId")
        required.append("productExternalId")
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
        "allOf": [
            {  # errorCode and errorMessage only when FAILED, and then both (T12)
                "if": {"properties": {"status": {"const": "FAILED"}}},
                "then": {"required": ["errorCode", "errorMessage"]},
                "else": {
                    "not": {"anyOf": [{"required": ["errorCode"]}, {"required": ["errorMessage"]}]}
                },
            },
            {  # resultImageUrl only when COMPLETED (and absent once erased or expired)
                "if": {"not": {"properties": {"status": {"const": "COMPLETED"}}}},
                "then": {"not": {"required": ["resultImageUrl"]}},
            },
        ],
    }


def _tryon_schemas(limits: Limits, max_parts: int) -> dict[str, Any]:
    read = tuple(field for field in PRODUCT_FIELDS if field.read)
    item_properties = {
        field.wire: _nullable_ref("ExternalId")
        if field.kind is Kind.ID
        else _read_schema(field, limits)
        for field in read
    }
    source_properties = {
        "id": {"type": ["string", "null"], "minLength": 1, "pattern": f"^{_TEXT}*$"},
        "url": _nullable_ref("Url"),
        "fileKey": {"anyOf": [_ref("FileKey"), {"type": "null"}]},
    }
    days = {"enum": list(KEEP_FOR_DAYS)}
    form_days = {"type": "string", "enum": [str(d) for d in KEEP_FOR_DAYS]}
    return {
        "CustomerId": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CUSTOMER_ID_LENGTH,
            "pattern": f"^{_TEXT}*$",
        },
        "PersonSource": {
            "type": "object",
            "description": (
                "Exactly one of id (an uploaded image of the account, not expired), url (never "
                "fetched; a host under .invalid is CUSTOMER_IMAGE_FETCH_FAILED) and fileKey (a "
                "file part of the same multipart request) (T7)."
            ),
            "properties": source_properties,
            "oneOf": _one_of_present(("id", "url", "fileKey")),
        },
        "PersonInput": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {
                    "type": "object",
                    "required": ["source"],
                    "properties": {"source": _ref("PersonSource")},
                }
            },
        },
        "CustomerInput": {
            "description": "Deprecated: {id | url | fileKey} or {source: {...}} (T6).",
            "deprecated": True,
            "oneOf": [
                {
                    "type": "object",
                    "required": ["source"],
                    "properties": {"source": _ref("PersonSource")},
                },
                {"allOf": [_ref("PersonSource"), {"not": {"required": ["source"]}}]},
            ],
        },
        "TryOnItem": {
            "type": "object",
            "description": (
                "The product item (R22): {externalId} alone uses a live product; with other "
                "fields it is an upsert (a product it creates lives 15 days unless validForDays "
                "says otherwise; the _anon_ prefix is reserved, 409); without externalId it is a "
                "one-shot product with a generated _anon_ id, which needs images and a "
                "validForDays that is not null (7 by default)."
            ),
            "properties": item_properties,
            "not": {
                "required": [
                    field.wire for field in read if field.kind in (Kind.IMAGES, Kind.IMAGE_URLS)
                ]
            },
        },
        "Output": {
            "type": ["object", "null"],
            "properties": {"watermark": {"type": "boolean"}, "keepForDays": days},
        },
        "TryOnBody": {
            "type": "object",
            "description": (
                "products holds exactly one item; the deprecated product, customer, customerId, "
                "useWatermark and retentionDays are accepted with a warning, and a new and an "
                "old name together are VALIDATION_FAILED (T5-T8). Unknown keys are ignored with "
                "a warning."
            ),
            "properties": {
                "products": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": _ref("TryOnItem"),
                },
                "product": {"deprecated": True, "allOf": [_ref("TryOnItem")]},
                "person": {"anyOf": [_ref("PersonInput"), {"type": "null"}]},
                "customer": {"anyOf": [_ref("CustomerInput"), {"type": "null"}]},
                "externalUserId": _ref("CustomerId"),
                "customerId": {"deprecated": True, "allOf": [_ref("CustomerId")]},
                "output": _ref("Output"),
                "useWatermark": {"deprecated": True, "type": "boolean"},
                "retentionDays": {"deprecated": True, **days},
            },
            "oneOf": [{"required": ["products"]}, {"required": ["product"]}],
            "anyOf": _one_of_present(("person", "customer")),
            "not": {
                "anyOf": [
                    {"required": ["externalUserId", "customerId"]},
                    {
                        "required": ["person", "customer"],
                        "properties": {
                            "person": {"not": {"type": "null"}},
                            "customer": {"not": {"type": "null"}},
                        },
                    },
                    {
                        "required": ["useWatermark", "output"],
                        "properties": {"output": {"type": "object", "required": ["watermark"]}},
                    },
                    {
                        "required": ["retentionDays", "output"],
                        "properties": {"output": {"type": "object", "required": ["keepForDays"]}},
                    },
                ]
            },
        },
        "MultipartTryOnBody": {
            "type": "object",
            "description": (
                "The JSON try-on in the data field; every other part is a file that the person "
                "source or a product image names by fileKey (R32, T5). Parts nothing names are "
                f"ignored with a warning. There are at most {max_parts} parts."
            ),
            "required": ["data"],
            "properties": {"data": _ref("TryOnBody")},
            "additionalProperties": {"type": "string", "contentMediaType": "image/*"},
            "propertyNames": {"minLength": 1},
            "maxProperties": max_parts,
        },
        "UploadForm": {
            "type": "object",
            "description": (
                "file holds the image's bytes (R15); the stand-in keeps them as sent and records "
                "crop (T1, T2). Unknown fields are ignored with a warning."
            ),
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "contentMediaType": "image/*"},
                "crop": {"type": "string", "enum": ["true", "false"]},
                "keepForDays": form_days,
                "externalUserId": _ref("CustomerId"),
                "retentionDays": {"deprecated": True, **form_days},
                "customerId": {"deprecated": True, "allOf": [_ref("CustomerId")]},
            },
            "not": {
                "anyOf": [
                    {"required": ["externalUserId", "customerId"]},
                    {"required": ["keepForDays", "retentionDays"]},
                ]
            },
            "additionalProperties": {"type": "string"},
            "propertyNames": {"minLength": 1},
            "maxProperties": max_parts,
        },
        "Upload": {
            "type": "object",
            "required": ["imageId", "imageUrl"],
            "properties": {
                "imageId": _id_pattern(IMAGE_ID_PREFIX),
                "imageUrl": {
                    "type": "string",
                    "format": "uri",
                    "description": "Served without an API key until the image expires (T3).",
                },
            },
            "additionalProperties": False,
        },
        "TryOnAccepted": {
            "type": "object",
            "required": ["generationId", "status", "productExternalId"],
            "properties": {
                "generationId": _id_pattern(GENERATION_ID_PREFIX),
                "status": {"enum": ["PENDING", "PROCESSING"]},
                "productExternalId": _ref("ExternalId"),
            },
            "additionalProperties": False,
        },
        "Generation": _generation(limits, with_product=False),
        "SyncGeneration": _generation(limits, with_product=True),
        "Credits": {
            "type": "object",
            "required": ["creditBalance"],
            "properties": {"creditBalance": {"type": "integer", "minimum": 0}},
            "additionalProperties": False,
        },
    }


def _tryon_paths(limits: Limits, common: dict[str, Any], *, served: bool) -> dict[str, Any]:
    """The try-on operations; ``common`` holds the answers every operation with a key has."""

    def error(status: int, description: str) -> dict[str, Any]:
        return _error(status, description, _TRYON_CLASSES)

    shared = {
        "400": error(400, "A malformed request."),
        **{k: v for k, v in common.items() if k != "400"},
    }
    if not served:
        shared["501"] = error(
            501, "The served catalog's storage keeps no try-on state: try-ons are off."
        )
    body_errors = {
        "408": error(
            408,
            "The request stopped arriving: its body went silent for the body timeout or fell "
            "behind the minimum body rate, or its head missed the header timeout.",
        ),
        "413": error(
            413,
            f"A file over {limits.max_file_bytes} bytes, or a body over "
            f"{limits.max_request_bytes} bytes.",
        ),
        "415": error(415, "A body of a type the operation does not take."),
    }
    try_on_body = {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("TryOnBody")},
            "multipart/form-data": {
                "schema": _ref("MultipartTryOnBody"),
                "encoding": {"data": {"contentType": "application/json"}},
            },
        },
    }
    try_on_errors = {
        **shared,
        "402": error(402, "The account's credit balance is 0; nothing was written (T16)."),
        "404": _error(404, "The item names no live product of the account (R22a)."),
        "409": error(409, "An inline item's id starts with the reserved _anon_ prefix."),
        **body_errors,
    }
    accepted = {
        "description": "Accepted: the generation runs (T10).",
        "headers": _WARNING_HEADERS,
        "content": {"application/json": {"schema": _ref("TryOnAccepted")}},
    }
    media_headers = {
        name: {"description": description, "required": True, "schema": {"const": value}}
        for name, description, value in (
            ("Cache-Control", "Kept in the browser's cache only.", "private"),
            (
                "Cross-Origin-Resource-Policy",
                "Usable in an <img> of any origin.",
                "cross-origin",
            ),
            ("Access-Control-Allow-Origin", "Readable by scripts of any origin.", "*"),
        )
    }
    not_served = (
        {"501": error(501, "The served catalog's storage keeps no try-on state.")}
        if not served
        else {}
    )
    return {
        "/tryon/v1/images/upload": {
            "post": {
                "operationId": "uploadImage",
                "summary": "Upload a person image (T1-T4).",
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _ref("UploadForm")}},
                },
                "responses": {
                    "200": {
                        "description": "Stored: its id and a URL that serves it without a key.",
                        "headers": _WARNING_HEADERS,
                        "content": {"application/json": {"schema": _ref("Upload")}},
                    },
                    **shared,
                    **body_errors,
                },
            }
        },
        "/tryon/v1/try-on": {
            "post": {
                "operationId": "startTryOn",
                "summary": "Start a try-on; poll its generation (T5-T10).",
                "requestBody": try_on_body,
                "responses": {"200": accepted, **try_on_errors},
            }
        },
        "/tryon/v1/try-on/sync": {
            "post": {
                "operationId": "startTryOnSync",
                "summary": "Start a try-on and wait for it, up to the sync timeout (T11).",
                "requestBody": try_on_body,
                "responses": {
                    "200": {
                        "description": "Finished: COMPLETED with resultImageUrl, or FAILED.",
                        "headers": _WARNING_HEADERS,
                        "content": {"application/json": {"schema": _ref("SyncGeneration")}},
                    },
                    "202": {
                        **accepted,
                        "description": "Still running at the sync timeout, or the server is "
                        "stopping: poll the generation.",
                    },
                    **try_on_errors,
                },
            }
        },
        "/tryon/v1/generations/{generationId}": {
            "parameters": [_generation_id_parameter()],
            "get": {
                "operationId": "getGeneration",
                "summary": "The generation now (T12).",
                "responses": {
                    "200": {
                        "description": "The generation.",
                        "headers": _WARNING_HEADERS,
                        "content": {"application/json": {"schema": _ref("Generation")}},
                    },
                    **shared,
                    "404": error(404, "No generation of the account has this id (T13)."),
                },
            },
        },
        "/tryon/v1/account/credits": {
            "get": {
                "operationId": "getCredits",
                "summary": "The account's credit balance (T17).",
                "responses": {
                    "200": {
                        "description": "The balance.",
                        "headers": _WARNING_HEADERS,
                        "content": {"application/json": {"schema": _ref("Credits")}},
                    },
                    **shared,
                },
            }
        },
        "/tryon/v1/customers/{customerId}": {
            "parameters": [
                {
                    "name": "customerId",
                    "in": "path",
                    "required": True,
                    "description": "The customer id, percent-encoded.",
                    "schema": _ref("CustomerId"),
                }
            ],
            "delete": {
                "operationId": "eraseCustomer",
                "summary": "Erase a customer's images (T18); 204 even when nothing matched.",
                "responses": {
                    "204": {"description": "Erased.", "headers": _WARNING_HEADERS},
                    **shared,
                },
            },
        },
        "/tryon/v1/media/{ref}": {
            "parameters": [
                {
                    "name": "ref",
                    "in": "path",
                    "required": True,
                    "description": "The reference in an imageUrl or resultImageUrl.",
                    "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]*$"},
                }
            ],
            "get": {
                "operationId": "getMedia",
                "summary": "A person image or result, without an API key (T3, T15).",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The image's bytes, with their type.",
                        "headers": media_headers,
                        "content": {
                            media_type: {"schema": {"type": "string", "format": "binary"}}
                            for media_type in _MEDIA_TYPES
                        },
                    },
                    "302": {
                        "description": "The result is the person image given by URL (T14).",
                        "headers": {
                            "Location": {"required": True, "schema": {"type": "string"}},
                            **media_headers,
                        },
                    },
                    "404": error(
                        404, "Unknown, a wrong token, expired or erased: nothing is served."
                    ),
                    **{k: v for k, v in common.items() if k in ("500", "503")},
                    **not_served,
                },
            },
        },
    }


# -- the stand-in's own endpoints (``/tryon/v1/local``) ---------------------------------------


def _local_schemas(schemas: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """``schemas`` with the local endpoints' own: a product with its version, and so on."""
    product = schemas["Product"]
    local_product = {
        **product,
        "description": "The product of R31 and its version (the ETag of R28).",
        "required": [*product["required"], "version"],
        "properties": {**product["properties"], "version": {"type": "integer", "minimum": 1}},
    }
    generation = _generation(limits, with_product=True)
    person = {
        "description": "Its person image: a URL given to the try-on, the path (under the API's "
        "base, read with the key) of the stored one, or null once its customer was erased.",
        "oneOf": [
            {
                "type": "object",
                "required": ["sourceUrl"],
                "properties": {"sourceUrl": {"type": "string"}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["path"],
                "properties": {"path": {"type": "string", "pattern": "^/"}},
                "additionalProperties": False,
            },
            {"type": "null"},
        ],
    }
    local_generation = {
        **generation,
        "required": [*generation["required"], "personImage"],
        "properties": {**generation["properties"], "personImage": person},
    }

    def page(item: str) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["items", "nextCursor", "hasMore", "count"],
            "properties": {
                "items": {"type": "array", "maxItems": MAX_PAGE_SIZE, "items": _ref(item)},
                "nextCursor": {"type": ["string", "null"]},
                "hasMore": {"type": "boolean"},
                "count": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE_SIZE},
            },
            "additionalProperties": False,
        }

    return {
        **schemas,
        "LocalProduct": local_product,
        "LocalPage": page("LocalProduct"),
        "LocalGeneration": local_generation,
        "LocalGenerationPage": page("LocalGeneration"),
        "TopUp": {
            "type": "object",
            "required": ["amount"],
            "properties": {
                "amount": {
                    "type": "integer",
                    "description": "Credits to add; negative takes them away. The balance "
                    "must stay from 0 to 10^15.",
                }
            },
        },
    }


def _local_paths(limits: Limits, common: dict[str, Any], *, served: bool) -> dict[str, Any]:
    """The stand-in's own operations (not the public API's): the dashboard's, any client's."""

    def error(status: int, description: str) -> dict[str, Any]:
        return _error(status, description, _TRYON_CLASSES)

    shared = {**common, "400": error(400, "A malformed request.")}
    flow = {} if served else {"501": error(501, "The served catalog keeps no try-on state.")}
    no_store = {
        "Cache-Control": {
            "description": "Account data: never cached.",
            "required": True,
            "schema": {"const": "no-store"},
        },
        "X-Content-Type-Options": {
            "description": "Never taken for another type than it says.",
            "required": True,
            "schema": {"const": "nosniff"},
        },
    }
    page_parameters = _page_parameters(" of this listing")

    def answer(description: str, schema: str) -> dict[str, Any]:
        return {
            "description": description,
            "headers": {**_WARNING_HEADERS, **no_store},
            "content": {"application/json": {"schema": _ref(schema)}},
        }

    image = {
        "description": "The image's bytes, with their type.",
        "headers": no_store,
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in _MEDIA_TYPES
        },
    }
    base = "/tryon/v1/local"
    return {
        f"{base}/products": {
            "get": {
                "operationId": "localListProducts",
                "summary": "R24's page, of the ids that start with prefix, with each version "
                "(the stand-in's own).",
                "parameters": [
                    *page_parameters,
                    {
                        "name": "prefix",
                        "in": "query",
                        "required": False,
                        "description": "Only the ids that start with it; empty: every id.",
                        "schema": {"anyOf": [_ref("ExternalId"), {"const": ""}]},
                    },
                ],
                "responses": {"200": answer("One page.", "LocalPage"), **shared},
            }
        },
        f"{base}/product-image": {
            "get": {
                "operationId": "localProductImage",
                "summary": "An uploaded image of a live product, read with the key (R15).",
                "parameters": [
                    {
                        "name": "externalId",
                        "in": "query",
                        "required": True,
                        "schema": _ref("ExternalId"),
                    },
                    {
                        "name": "order",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": image,
                    **shared,
                    "404": error(
                        404, "No live product has this id, or no uploaded image this order."
                    ),
                },
            }
        },
        f"{base}/generations": {
            "get": {
                "operationId": "localListGenerations",
                "summary": "The account's live generations, newest first (the stand-in's own).",
                "parameters": [
                    *page_parameters,
                    {
                        "name": "productExternalId",
                        "in": "query",
                        "required": False,
                        "description": "Only the generations of this product; empty: all.",
                        "schema": {"anyOf": [_ref("ExternalId"), {"const": ""}]},
                    },
                ],
                "responses": {
                    "200": answer("One page.", "LocalGenerationPage"),
                    **shared,
                    **flow,
                },
            }
        },
        f"{base}/generations/{{generationId}}/person": {
            "parameters": [_generation_id_parameter()],
            "get": {
                "operationId": "localGenerationPerson",
                "summary": "A generation's stored person image, read with the key.",
                "responses": {
                    "200": image,
                    **shared,
                    "404": error(
                        404,
                        "No live generation has this id, or it keeps no stored image (one "
                        "given by URL is its listing's personImage.sourceUrl).",
                    ),
                    **flow,
                },
            },
        },
        f"{base}/credits": {
            "post": {
                "operationId": "localTopUp",
                "summary": "Add credits to the account (the local top-up of T17).",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("TopUp")}},
                },
                "responses": {
                    "200": answer("The new balance.", "Credits"),
                    **shared,
                    "408": error(408, "The body stopped arriving."),
                    "413": error(413, f"A body over {limits.max_request_bytes} bytes."),
                    "415": error(415, "A body that is not JSON."),
                    **flow,
                },
            }
        },
        f"{base}/purge": {
            "post": {
                "operationId": "localPurge",
                "summary": "Delete what has expired now, in every account (R21, T22); nothing "
                "is said of what was removed, which would tell of other accounts (R1).",
                "responses": {
                    "204": {"description": "Purged.", "headers": {**_WARNING_HEADERS, **no_store}},
                    **shared,
                },
            }
        },
    }
