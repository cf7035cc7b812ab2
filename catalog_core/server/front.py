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

__all__ = ["facts_html", "front_door", "front_facts", "title_of", "wants_json"]

_DOCS = "docs/server.md and docs/tryon.md in catalog_core's repository"


def front_facts(api_base: str, openapi_path: str, *, keys: bool, tryon: bool) -> dict[str, Any]:
    """Return what the front door tells: the server, its API, how to authenticate."""
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


def title_of(facts: dict[str, Any]) -> str:
    """Return the pages' title, escaped for HTML."""
    return html.escape(f"catalog_core {facts['version']}: a stand-in for the Try-On API")


def facts_html(facts: dict[str, Any]) -> str:
    """Return the facts as HTML (escaped): the front door's body, and the dashboard's welcome."""
    e = {key: html.escape(str(value)) for key, value in facts.items()}
    return f"""<p id="about">{e["about"]}</p>
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
"""


def _page(facts: dict[str, Any]) -> str:
    version = html.escape(str(facts["version"]))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title_of(facts)}</title>
</head>
<body>
<h1>catalog_core {version}</h1>
{facts_html(facts)}</body>
</html>
"""


def wants_json(request: Request) -> bool:
    """Whether a request asks for ``application/json`` and not HTML."""
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


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
    facts = front_facts(api_base, openapi_path, keys=keys, tryon=tryon)
    page = _page(facts)

    async def endpoint(request: Request) -> Response:
        if wants_json(request):
            return json_response(facts)
        return HTMLResponse(page)

    return endpoint
