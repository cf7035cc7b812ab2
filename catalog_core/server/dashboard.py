"""The local dashboard: the catalog and its try-ons in a browser, at ``/`` and ``/dashboard``.

One page, shipped in the wheel with its script and style (``dashboard_static/``): no build
step, nothing loaded from elsewhere, so it works offline. The page holds the front door's facts
and a sign-in form; once a key is given (kept in the tab's ``sessionStorage``, sent as
``x-api-key``, never in a URL), its script reads and writes through the same HTTP API any
client uses (``/tryon/v1/...`` and the stand-in's own ``/tryon/v1/local/...``), so the
dashboard can do nothing a client cannot, and sees only its key's account (R1).

Every answer carries a Content-Security-Policy that runs only the page's own script and style
and loads images from anywhere (a product's image URLs are the merchant's), with
``X-Content-Type-Options: nosniff``; the page itself is never cached (its script fetches the
account's data, which is ``no-store`` too).
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Final

import attrs
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from catalog_core.server.errors import RouteNotFound
from catalog_core.server.front import facts_html, front_facts, title_of, wants_json
from catalog_core.server.responses import json_response

__all__ = ["DASHBOARD_PATH", "STATIC_PATH", "Dashboard", "dashboard"]

DASHBOARD_PATH: Final = "/dashboard"
#: Where the page's script and style are served from (without a key).
STATIC_PATH: Final = "/dashboard/static"
#: The files of ``dashboard_static/`` that are served, and their types: nothing else is.
_STATIC: Final = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src * data: blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
#: What every answer of the dashboard carries.
HEADERS: Final = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page(title: str, version: str, facts: str, api_base: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{STATIC_PATH}/dashboard.css">
<script src="{STATIC_PATH}/dashboard.js" defer></script>
</head>
<body data-api="{html.escape(api_base)}">
<header>
<h1>catalog_core {version}</h1>
<nav id="nav" hidden>
<a href="#/products">Products</a>
<a href="#/generations">Generations</a>
<a href="#/credits">Credits</a>
<a href="#/maintenance">Maintenance</a>
<button type="button" id="sign-out">Sign out</button>
</nav>
</header>
<main>
<section id="welcome">
<form id="sign-in" method="post">
<h2>Sign in</h2>
<label for="key">API key</label>
<input id="key" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
<p id="sign-in-error" class="error" role="alert"></p>
</form>
{facts}</section>
<section id="view" hidden></section>
</main>
</body>
</html>
"""


@attrs.frozen
class Dashboard:
    """The dashboard's two endpoints: its page and its static files."""

    page: Callable[[Request], Awaitable[Response]]
    static: Callable[[Request], Awaitable[Response]]


def dashboard(api_base: str, openapi_path: str, *, keys: bool, tryon: bool) -> Dashboard:
    """Return the dashboard's endpoints.

    Args:
        api_base: the path the API is served under.
        openapi_path: the path of the OpenAPI document.
        keys: whether the server was given its API keys (``--api-key``).
        tryon: whether it serves the try-on flow.
    """
    facts = front_facts(api_base, openapi_path, keys=keys, tryon=tryon)
    version = html.escape(str(facts["version"]))
    body = _page(title_of(facts), version, facts_html(facts), api_base)
    files = resources.files("catalog_core.server") / "dashboard_static"
    static = {name: (files / name).read_bytes() for name in _STATIC}
    page_headers = {**HEADERS, "Cache-Control": "no-store"}
    static_headers = {**HEADERS, "Cache-Control": "no-cache"}

    async def page(request: Request) -> Response:
        """``GET /`` and ``GET /dashboard``: the page (the facts as JSON when asked for)."""
        if wants_json(request):
            return json_response(facts)
        return HTMLResponse(body, headers=page_headers)

    async def static_file(request: Request) -> Response:
        """``GET /dashboard/static/{name}``: the page's script and style."""
        name = request.path_params["name"]
        if name not in static:
            raise RouteNotFound(f"No endpoint at {request.url.path}.")
        return Response(static[name], media_type=_STATIC[name], headers=static_headers)

    return Dashboard(page, static_file)
