"""The stand-in's own endpoints, under ``/tryon/v1/local``: what a developer needs while testing.

The public API has no listing of generations, no prefix filter, no top-up and no purge; the
stand-in has, for the dashboard and for any client (every one needs an API key and reads or
reveals only its account, R1; the purge removes what has expired in every account, which no read
could see any more, and says nothing of it):

- ``GET /local/products?limit=&cursor=&prefix=``: R24's page, ids starting with ``prefix``
  only, each product with its ``version`` (the ETag of R28).
- ``GET /local/product-image?externalId=&order=``: the bytes of a live product's uploaded
  image (R15), read with the key (an ``upload://`` URL is not one a browser can load).
- ``GET /local/generations?limit=&cursor=&productExternalId=``: the account's live generations,
  newest first, each as T12's object with ``productExternalId`` and ``personImage``.
- ``GET /local/generations/{generationId}/person``: the bytes of a generation's stored person
  image (404 for one given by URL, which the listing gives, or an erased one).
- ``POST /local/credits`` with ``{"amount": N}``: a top-up (T17's local one); ``{creditBalance}``.
- ``POST /local/purge``: the purge of T22 now; 204, saying nothing of other accounts.

Every answer is ``Cache-Control: no-store`` (it is account data) and ``X-Content-Type-Options:
nosniff`` (an image is served with the type its bytes were recognised as).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from catalog_core.catalog import DEFAULT_PAGE_SIZE, Catalog
from catalog_core.errors import UnsupportedMediaType, ValidationFailed
from catalog_core.model import UPLOAD_SCHEME, Product
from catalog_core.server.body import Body
from catalog_core.server.common import (
    CatalogCalls,
    account_of,
    one_parameter,
    text_parameter,
    unknown_parameters,
)
from catalog_core.server.errors import MediaNotFound, TryOnUnavailable
from catalog_core.server.responses import json_response, warnings_headers
from catalog_core.server.tryon import TryOnEndpoints
from catalog_core.tryon.model import GenerationView
from catalog_core.tryon.service import GenerationPage, TryOn
from catalog_core.wire.decode import load_body
from catalog_core.wire.encode import to_wire
from catalog_core.wire.tryon import generation_to_wire

__all__ = ["LOCAL_PREFIX", "LocalEndpoints", "page_size"]

#: Where the stand-in's own endpoints live, below the API's base.
LOCAL_PREFIX: Final = "/local"
#: Account data: never kept by a browser or a proxy, never taken for another type than it says.
_NO_STORE: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def page_size(text: str | None) -> int:
    """Return the ``limit`` parameter of a listing (R24), ``DEFAULT_PAGE_SIZE`` when absent.

    Raises:
        ValidationFailed: at ``limit`` when it is not an integer from 1 to 200.
    """
    if text is None:
        return DEFAULT_PAGE_SIZE
    # Leading zeros are fine (0050 is 50); a run of digits long enough to be costly is not.
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 4:
        raise ValidationFailed.at("limit", "must be an integer from 1 to 200")
    return int(text.lstrip("0") or "0")


def _answer(body: Any, warnings: list[Any]) -> Response:
    return json_response(body, headers={**_NO_STORE, **warnings_headers(warnings)})


class LocalEndpoints:
    """The endpoints of the stand-in's own, on one catalog and its try-on flow."""

    def __init__(
        self,
        catalog: Catalog,
        calls: CatalogCalls,
        tryon: TryOnEndpoints,
        read: Callable[[Request], Any],
    ) -> None:
        self.catalog = catalog
        self.calls = calls
        self.tryon = tryon
        self.read = read
        self.base = tryon.api_base + LOCAL_PREFIX

    def routes(self) -> list[Route]:
        """The routes, one per path."""
        base = self.base
        return [
            Route(f"{base}/products", self.products, methods=["GET"], name="local_products"),
            Route(f"{base}/product-image", self.product_image, methods=["GET"], name="local_image"),
            Route(
                f"{base}/generations", self.generations, methods=["GET"], name="local_generations"
            ),
            Route(
                f"{base}/generations/{{generation_id}}/person",
                self.person,
                methods=["GET"],
                name="local_person",
            ),
            Route(f"{base}/credits", self.top_up, methods=["POST"], name="local_credits"),
            Route(f"{base}/purge", self.purge, methods=["POST"], name="local_purge"),
        ]

    def _flow(self) -> TryOn:
        flow: TryOn = self.tryon._flow()
        return flow

    async def products(self, request: Request) -> Response:
        """``GET /local/products``: R24's page, by id prefix, with each product's version."""
        params = request.query_params
        warnings = unknown_parameters(params, {"limit", "cursor", "prefix"})
        limit = page_size(one_parameter(params, "limit"))
        cursor = one_parameter(params, "cursor")
        prefix = text_parameter(request, "prefix") or None
        page = await self.calls.run(
            partial(self.catalog.list, prefix=prefix), account_of(request), limit, cursor
        )
        items = [{**to_wire(product), "version": product.version} for product in page.items]
        body = {
            "items": items,
            "nextCursor": page.next_cursor,
            "hasMore": page.has_more,
            "count": page.count,
        }
        return _answer(body, warnings)

    async def product_image(self, request: Request) -> Response:
        """``GET /local/product-image``: an uploaded image of a live product, its bytes."""
        params = request.query_params
        external_id = text_parameter(request, "externalId")
        order_text = one_parameter(params, "order")
        if external_id is None:
            raise ValidationFailed.at("externalId", "is required")
        if order_text is None or not (order_text.isascii() and order_text.isdigit()):
            raise ValidationFailed.at("order", "must be an image's order, an integer from 0")
        # Leading zeros are fine (007 is 7); a run of digits long enough to be costly is not.
        significant = order_text.lstrip("0") or "0"
        order = int(significant) if len(significant) <= 4 else 10_000  # no image has that order
        account = account_of(request)
        product: Product = await self.calls.run(self.catalog.get, account, external_id)
        image = next((i for i in product.images if i.order == order), None)
        sha = None
        if image is not None and image.source_url.startswith(UPLOAD_SCHEME):
            sha = image.source_url[len(UPLOAD_SCHEME) :]
        blob = None if sha is None else await self.calls.run(self._blob, account, sha)
        if blob is None:
            raise MediaNotFound(f"Product {external_id!r} has no uploaded image at order {order}.")
        return Response(blob.data, media_type=blob.mime_type, headers=_NO_STORE)

    def _blob(self, account: str, sha256: str) -> Any:
        return self.catalog.repository.get_blob(account, sha256)

    async def generations(self, request: Request) -> Response:
        """``GET /local/generations``: the account's live generations, newest first."""
        flow = self._flow()
        params = request.query_params
        warnings = unknown_parameters(params, {"limit", "cursor", "productExternalId"})
        limit = page_size(one_parameter(params, "limit"))
        cursor = one_parameter(params, "cursor")
        product = text_parameter(request, "productExternalId") or None
        account = account_of(request)
        try:
            page: GenerationPage = await self.calls.run(
                partial(flow.list_generations, product_external_id=product), account, limit, cursor
            )
        except TypeError as exc:  # a repository of an embedder's that cannot list them
            raise TryOnUnavailable(f"This server cannot list generations: {exc}.") from None
        result_url = self.tryon._result_url(request, account)
        items = []
        for listed in page.items:
            wire = generation_to_wire(listed.view, result_url)
            wire["productExternalId"] = listed.view.product_external_id
            wire["personImage"] = self._person_of(request, listed.view, listed.person)
            items.append(wire)
        body = {
            "items": items,
            "nextCursor": page.next_cursor,
            "hasMore": page.has_more,
            "count": len(items),
        }
        return _answer(body, warnings)

    def _person_of(self, request: Request, seen: GenerationView, person: Any) -> Any:
        """Where a listed generation's person image is: a URL, a keyed path, or ``None``."""
        if person.url is not None:
            return {"sourceUrl": person.url}
        if person.sha256 is not None:
            root = request.scope.get("root_path", "")
            return {"path": f"{root}{self.base}/generations/{seen.generation_id}/person"}
        return None  # erased (T18)

    async def person(self, request: Request) -> Response:
        """``GET /local/generations/{id}/person``: the stored person image of a generation."""
        flow = self._flow()
        account = account_of(request)
        generation_id: str = request.path_params["generation_id"]
        stored = await self.calls.run(flow._generation, account, generation_id, flow.now())
        person = stored.person
        # A person given by URL is not redirected to: a client that follows redirects would
        # send its x-api-key to that host. The listing gives the URL (personImage.sourceUrl).
        blob = None
        if person.sha256 is not None:
            blob = await self.calls.run(self._blob, account, person.sha256)
        if blob is None:
            raise MediaNotFound(
                f"Generation {generation_id!r} keeps no stored person image (one given by URL "
                "is at its personImage.sourceUrl; an erased customer's is gone)."
            )
        return Response(blob.data, media_type=blob.mime_type, headers=_NO_STORE)

    async def top_up(self, request: Request) -> Response:
        """``POST /local/credits``: add ``amount`` credits (negative: take them away)."""
        flow = self._flow()
        body: Body = await self.read(request)
        if body.kind != "json":
            raise UnsupportedMediaType('Send the top-up as JSON: {"amount": N}.')
        fields = load_body(body.raw, self.catalog.limits)
        if "amount" not in fields:
            raise ValidationFailed.at("amount", "is required")
        balance = await self.calls.run(flow.add_credits, account_of(request), fields["amount"])
        return _answer({"creditBalance": balance}, [])

    async def purge(self, request: Request) -> Response:
        """``POST /local/purge``: delete what has expired, in every account (R21, T22); 204.

        Nothing is said of what was removed: the counts would tell one account of the others'
        expired records (R1). What it removes was already invisible to every read.
        """
        warnings = unknown_parameters(request.query_params, set())
        tryon = self.tryon.tryon
        if tryon is not None:
            await self.calls.run(tryon.purge_expired)
        else:
            await self.calls.run(self.catalog.purge_expired)
        return Response(status_code=204, headers={**_NO_STORE, **warnings_headers(warnings)})
