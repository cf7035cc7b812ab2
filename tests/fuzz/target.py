"""The fuzz target: one request body, decoded and applied as the server does, then judged.

The first byte of an input chooses the mode (the byte modulo 4, so that every mutation of it is
still an input); the seeds start with ``0`` to ``3`` and read as text:

- ``0`` upsert: the rest is a JSON body: ``load_body``, ``decode_upsert``, then
  ``Catalog.upsert`` of the same bytes.
- ``1`` try-on: the rest is a ``POST /try-on`` body: ``decode_try_on``,
  ``decode_upsert(for_use=True)``, then ``Catalog.try_on``.
- ``2`` use: the rest is one try-on product item: ``decode_upsert(for_use=True)``, then
  ``Catalog.use``.
- ``3`` server: the rest is a ``Content-Type`` value, a line feed and the body, read as
  ``POST /products`` reads it: ``body_kind``, then ``read_body`` from an async stream of 1 to 64
  chunks (the first byte's upper bits say how many), ``split_multipart`` for a multipart body,
  ``decode_upsert``, and ``Catalog.upsert`` with the file parts.

Each input runs on a fresh in-memory catalog that holds the page's ``shirt-42`` (a URL image and
an uploaded one), so updates, references and blobs are reached as well as creates. Its limits are
small (:data:`LIMITS`), so that an input of a few KiB can cross every limit of R33, the request
and file sizes included; the code that checks them is the same at any size.

The answer must be (R29-R31):

- a product, which renders as the server sends it and reads back as itself; or
- a :class:`~catalog_core.CatalogError` whose code is one of R29, with R29's status, which renders
  too; an error the decoder gives must be the catalog's error, and one the decoder does not give
  must come later in R30's order (file parts, stored state).

Anything else raises, and a fuzzer reports the input as a crash.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast
from urllib.parse import quote

import catalog_core as cc
from catalog_core.errors import error_classes, error_for_code
from catalog_core.server.body import body_kind, read_body
from catalog_core.server.conditions import etag
from catalog_core.server.responses import error_response, json_response, warnings_headers
from catalog_core.testing.strategies import IMAGE_HEADERS
from catalog_core.wire.decode import decode_try_on, decode_upsert, load_body, split_multipart

__all__ = ["ACCOUNT", "LIMITS", "MODES", "NOW", "R29_CODES", "Target"]

MODES: Final = ("upsert", "try_on", "use", "server")
ACCOUNT: Final = "gk_fuzz"
NOW: Final = datetime(2026, 5, 13, 10, tzinfo=UTC)  # the page's example time
#: Every limit of R33 within reach of a fuzzer's inputs (libFuzzer's are 4 KiB at most).
LIMITS: Final = cc.Limits(
    max_external_id_length=64,
    max_title_length=100,
    max_description_length=200,
    max_images=5,
    max_metadata_bytes=256,
    max_classifications_bytes=128,
    max_file_bytes=1024,
    max_request_bytes=3072,
    max_url_length=100,
)
#: Every code of R29 and its status: the only errors an input may give.
R29_CODES: Final = {cls.code: cls.status for cls in error_classes()}
# The codes R30 puts after everything the decoder checks: they depend on file parts or state.
_AFTER_DECODING: Final = frozenset(
    {
        "MULTIPART_FILE_NOT_FOUND",
        "INVALID_IMAGE",
        "FILE_TOO_LARGE",
        "PRODUCT_IMAGES_REQUIRED",
        "PRODUCT_NOT_FOUND",
        "VERSION_CONFLICT",
    }
)
# The verdict of a body refused before the decoder saw it (its content type or multipart framing).
_NOT_DECODED: Final = "not decoded"
_JPEG: Final = IMAGE_HEADERS["image/jpeg"] + b"\x00" * 20
_SEED: Final = {
    "externalId": "shirt-42",
    "title": "Red tee",
    "images": [
        {"source": {"url": "https://cdn.example/front.jpg"}},
        {"source": {"fileKey": "back"}},
    ],
}
_PRODUCTS_PATH: Final = "/tryon/v1/products"


class Target:
    """Runs inputs on fresh seeded catalogs; holds the event loop the body reader needs.

    Args:
        limits: the catalog's limits; :data:`LIMITS` for the fuzzer's inputs.
    """

    def __init__(self, limits: cc.Limits = LIMITS) -> None:
        self.limits = limits
        self._runner = asyncio.Runner()

    def close(self) -> None:
        """Close the event loop."""
        self._runner.close()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def catalog(self) -> cc.Catalog:
        """Return a fresh in-memory catalog holding the page's ``shirt-42``, at :data:`NOW`."""
        catalog = cc.Catalog(cc.MemoryRepository(), clock=lambda: NOW, limits=self.limits)
        catalog.upsert(ACCOUNT, _SEED, {"back": cc.Upload(_JPEG, "image/jpeg")})
        return catalog

    def __call__(self, data: bytes) -> str:
        """Run one fuzzer input; return what came of it (``upsert: created``, ``use: ...``).

        Raises:
            Exception: what :meth:`answer` raises, but a ``CatalogError`` of R29.
        """
        if not data:
            return "empty"
        mode = MODES[data[0] % len(MODES)]
        body, content_type = data[1:], b""
        if mode == "server":
            content_type, _, body = body.partition(b"\n")
        try:
            result = self.answer(mode, body, content_type=content_type, chunks=1 + (data[0] >> 2))
        except cc.CatalogError as exc:
            return f"{mode}: {exc.code}"
        return f"{mode}: {'created' if result.created else 'updated'}"

    def answer(
        self,
        mode: str,
        body: bytes,
        *,
        content_type: bytes = b"",
        chunks: int = 1,
        files: Mapping[str, cc.Upload] | None = None,
    ) -> cc.UpsertResult | cc.UseResult:
        """Answer one request body in ``mode`` on a fresh :meth:`catalog`, and check the answer.

        Args:
            mode: one of :data:`MODES`: ``upsert``, ``try_on`` or ``use`` (a JSON body), or
                ``server`` (a body behind its ``content_type``, read from an async stream of
                ``chunks`` chunks).
            body: the request body.
            content_type: the ``Content-Type`` header of a ``server`` request, as sent.
            chunks: how many chunks the body of a ``server`` request arrives in.
            files: the file parts beside a JSON body (not for ``server``, whose body has them).

        Returns:
            The result, once checked: it renders as the server sends it and reads back (R31).

        Raises:
            CatalogError: a code of R29 with its status, once checked: it renders, and it is
                the decoder's own error or a later one in R30's order.
            AssertionError: a broken promise of R29-R31.
            Exception: any other exception, unchecked: a defect.
        """
        catalog = self.catalog()
        decoded: str | None = _NOT_DECODED
        try:
            if mode == "server":
                decoded, result = self._server(catalog, content_type, body, chunks)
            else:
                decoded = self._decoded(mode, body)
                call: Callable[..., Any] = getattr(catalog, mode)
                result = call(ACCOUNT, body, files)
        except cc.CatalogError as exc:
            if files and exc.code == "PAYLOAD_TOO_LARGE":
                decoded = _NOT_DECODED  # the files count too, before anything is parsed (R30)
            _check_error(exc, decoded)
            raise
        if decoded is not None:
            raise AssertionError(f"the decoder refused with {decoded}; the catalog accepted")
        _check_product(result.product, result.warnings, created=result.created)
        return cast("cc.UpsertResult | cc.UseResult", result)

    def _server(
        self, catalog: cc.Catalog, content_type: bytes, raw: bytes, chunks: int
    ) -> tuple[str | None, Any]:
        """``POST /products`` as the server runs it: the decoder's verdict, then the result.

        An error before the body is a JSON object propagates (its verdict is ``_NOT_DECODED``).
        """
        kind, boundary = body_kind(content_type.decode("latin-1"))  # as Starlette decodes it
        limit = self.limits.max_request_bytes
        body = self._runner.run(read_body(_stream(raw, chunks), kind, boundary, limit=limit))
        if body.kind == "json":
            return self._decoded("upsert", body.raw), catalog.upsert(ACCOUNT, body.raw)
        payload, files = split_multipart(body.parts, self.limits)
        return self._decoded("upsert", payload), catalog.upsert(ACCOUNT, payload, files)

    def _decoded(self, mode: str, body: Any) -> str | None:
        """Return the code the wire layer alone refuses ``body`` with; ``None`` if it decodes."""
        limits = self.limits
        try:
            loaded = load_body(body, limits)
            if mode == "upsert":
                decode_upsert(loaded, limits)
            elif mode == "use":
                decode_upsert(loaded, limits, for_use=True)
            else:
                item, prefix, _ = decode_try_on(loaded)
                decode_upsert(item, limits, for_use=True, prefix=prefix)
        except cc.CatalogError as exc:
            return exc.code
        return None


async def _stream(raw: bytes, chunks: int) -> AsyncIterator[bytes]:
    size = max(1, -(-len(raw) // chunks))
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def _check_error(exc: cc.CatalogError, decoded: str | None) -> None:
    """An error of R29 with R29's status that renders as the server sends it, in R30's order."""
    assert exc.code in R29_CODES, f"{exc.code} is not a code of R29: {exc!r}"
    assert isinstance(exc, error_for_code(exc.code)), repr(exc)
    assert exc.status == R29_CODES[exc.code], repr(exc)
    assert isinstance(exc.message, str), repr(exc)
    assert exc.message, repr(exc)
    sent = json.loads(error_response(exc).body)
    assert sent == json.loads(json.dumps(exc.to_wire())), repr(exc)
    if decoded == _NOT_DECODED:
        return
    if decoded is None:
        assert exc.code in _AFTER_DECODING, f"the decoder accepted; the catalog refused {exc!r}"
    else:
        assert exc.code == decoded, f"the decoder refused with {decoded}; the catalog {exc!r}"


def _check_product(
    product: cc.Product, warnings: tuple[cc.PayloadWarning, ...], *, created: bool
) -> None:
    """The product renders as the server sends it, headers included, and reads back (R31)."""
    headers = {"ETag": etag(product.version), **warnings_headers(warnings)}
    if created:
        headers["Location"] = f"{_PRODUCTS_PATH}/{quote(product.external_id, safe='')}"
    response = json_response(cc.to_wire(product), 201 if created else 200, headers)
    sent = json.loads(response.body)
    back = cc.product_from_wire(sent, account=product.account, version=product.version)
    assert back == product, (back, product)
