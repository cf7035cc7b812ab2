"""The server's front door: what a person who opens its address learns, with no API key.

``GET /`` and ``GET /tryon/v1`` answer a small page (or JSON, for a client that asks for
``application/json`` and not HTML) saying what the server is, where its OpenAPI document is,
and how to authenticate. The page loads nothing from elsewhere: it works offline.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from catalog_core.server.responses import json_response

__all__ = ["front_door"]

_DOCS = "docs/server.md and docs/tryon.md in catalog_core's repository"


def _facts(api_base: str, openapi_path: str, *, keys: bool, tryon: bool) -> dict[str, Any]:
    how = (
        "Send the header x-api-key with one of the keys the server was started with "
        "(--api-key KEY=ACCOUNT); the key's account owns what the request reads and writes."
        if keys
        else "Send the header x-api-key with any non-empty value: without --api-key the server "
        "takes each key as its own account, so two keys never see each other's products."
    )
    from catalog_core import __version__

    return {
        "name": "catalog_core",
        "version": __version__,
        "about": "A local, stateful stand-in for the Try-On API: the products endpoints"
        + (" and the try-on flow" if tryon else "")
        + f", under {api_base}.",
        "api": api_base,
        "openapi": openapi_path,
        "authentication": how,
        "docs": _DOCS,
    }


def _page(facts: dict[str, Any]) -> str:
    e = {key: html.escape(str(value)) for key, value in facts.items()}
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>catalog_core {e["version"]}: a stand-in for the Try-On API</title>
</head>
<body>
<h1>catalog_core {e["version"]}</h1>
<p id="about">{e["about"]}</p>
<h2>Authentication</h2>
<p id="authentication">{e["authentication"]}</p>
<h2>Reference</h2>
<ul>
<li><a id="openapi" href="{e["openapi"]}">The OpenAPI document</a> ({e["openapi"]}), which
needs no key.</li>
<li>The API's base: <code>{e["api"]}</code>, for example
<code>curl -H 'x-api-key: KEY' {e["api"]}/products</code>.</li>
<li>Documentation: {e["docs"]}.</li>
</ul>
</body>
</html>
"""


def front_door(
    api_base: str, openapi_path: str, *, keys: bool, tryon: bool
) -> Callable[[Request], Awaitable[Response]]:
    """Return the endpoint of the front door.

    Args:
        api_base: the path the API is served under.
        openapi_path: the path of the OpenAPI document.
        keys: whether the server was given its API keys (``--api-key``).
        tryon: whether it serves the try-on flow.
    """
    facts = _facts(api_base, openapi_path, keys=keys, tryon=tryon)
    page = _page(facts)

    async def endpoint(request: Request) -> Response:
        accept = request.headers.get("accept", "").lower()
        if "application/json" in accept and "text/html" not in accept:
            return json_response(facts)
        return HTMLResponse(page)

    return endpoint
