"""The server's front door: a person who opens its address learns what it is (issue: a newcomer's
first hour, item 14).

``GET /`` and ``GET /tryon/v1`` answer without an API key: a page in a browser (Debian's
Chromium, as in ``test_browser.py``), JSON for a client that asks for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

import catalog_core as cc
from tests.server.conftest import Server
from tests.server.test_browser import chromium


@pytest.mark.parametrize("path", ["/", "/dashboard", "/tryon/v1"])
def test_the_front_door_says_what_the_server_is_without_a_key(
    start: Callable[..., Server], path: str
) -> None:
    server = start("--db", "memory://")
    with httpx.Client(base_url=server.root, timeout=30) as web:
        page = web.get(path, headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert f"catalog_core {cc.__version__}" in page.text
        assert 'href="/tryon/v1/openapi.json"' in page.text
        assert "x-api-key" in page.text
        assert "any non-empty value" in page.text  # no --api-key: every key is an account
        # Nothing loaded from elsewhere: the dashboard's own script and style only, by path.
        sources = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]*)"', page.text)
        assert all(s.startswith(("/dashboard/static/", "data:")) for s in sources), sources
        assert ("<script" in page.text) == (path != "/tryon/v1")  # the dashboard's, at / only
        assert "http" not in page.text.replace("http-equiv", "")

        facts = web.get(path, headers={"accept": "application/json"})
        assert facts.status_code == 200
        assert facts.json() == {
            "name": "catalog_core",
            "version": cc.__version__,
            "about": "A local, stateful stand-in for the Try-On API: the products endpoints "
            "and the try-on flow, under /tryon/v1.",
            "api": "/tryon/v1",
            "openapi": "/tryon/v1/openapi.json",
            "authentication": facts.json()["authentication"],
            "docs": "docs/server.md and docs/tryon.md in catalog_core's repository",
        }
        assert web.get(facts.json()["openapi"]).status_code == 200  # the link works, keyless
        assert web.get("/tryon/v1/products").status_code == 401  # the API still needs a key


def test_with_api_keys_the_front_door_says_a_key_of_the_server_is_needed(
    start: Callable[..., Server],
) -> None:
    server = start("--db", "memory://", "--api-key", "gk_shop=acme")
    with httpx.Client(base_url=server.root, timeout=30) as web:
        facts = web.get("/", headers={"accept": "application/json"}).json()
    assert facts["authentication"].startswith(
        "Send the header x-api-key with one of the keys the server was started with"
    )


def test_a_browser_shows_the_front_door_and_follows_its_link_to_the_openapi_document(
    start: Callable[..., Server],
) -> None:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    server = start("--db", "memory://")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(server.root + "/")
            title = page.title()
            about = page.inner_text("#about")
            page.click("#openapi")
            page.wait_for_url("**/openapi.json")
            document = page.inner_text("body")
        finally:
            browser.close()
    assert title == f"catalog_core {cc.__version__}: a stand-in for the Try-On API"
    assert about.startswith("A local, stateful stand-in for the Try-On API")
    assert '"openapi"' in document
