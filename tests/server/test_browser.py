"""A real browser shows the try-on's images in a page of another origin (T3, T15, T24).

The browser is Debian's ``chromium`` (``/usr/bin/chromium``), driven by Playwright without a
browser download of its own. Without it the test is skipped, unless
``CATALOG_CORE_REQUIRE_BROWSER=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import png
from tests.server.conftest import Server

CHROMIUM = os.environ.get("CATALOG_CORE_CHROMIUM", "/usr/bin/chromium")
PERSON = png(24, 32, (30, 90, 200))
GARMENT = png(16, 16, (220, 40, 40))


def chromium() -> str:
    """Return the browser's path, or skip (fail, when CI requires the browser)."""
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
        return CHROMIUM
    why = f"no Chromium at {CHROMIUM}: apt-get install -y chromium to run the browser test"
    if os.environ.get("CATALOG_CORE_REQUIRE_BROWSER") == "1":
        pytest.fail(why + " (CATALOG_CORE_REQUIRE_BROWSER=1 forbids skipping)")
    pytest.skip(why)


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """Serve pages from a plain http.server on another port: another origin than the API's."""
    pages = tmp_path / "site"
    pages.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(pages))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()

    def page(name: str, html: str) -> str:
        (pages / name).write_text(html, encoding="utf-8")
        return f"http://127.0.0.1:{site.server_address[1]}/{name}"

    yield page
    site.shutdown()
    site.server_close()
    thread.join(timeout=10)


def test_t3_t15_t24_a_browser_shows_the_image_and_result_urls_in_a_page_of_another_origin(
    start: Callable[..., Server], other_origin: Callable[[str, str], str]
) -> None:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    server = start("--db", "memory://", "--generation-seconds", "0")
    with httpx.Client(base_url=server.base, headers={"x-api-key": "gk_shop"}, timeout=30) as api:
        upload = api.post("/images/upload", files={"file": ("me.png", PERSON, "image/png")})
        assert upload.status_code == 200, upload.text
        image_url = upload.json()["imageUrl"]
        product = api.post(
            "/products",
            data={"data": '{"externalId": "tee", "images": [{"source": {"fileKey": "product"}}]}'},
            files={"product": ("tee.png", GARMENT, "image/png")},
        )
        assert product.status_code == 201, product.text
        done = api.post(
            "/try-on/sync",
            json={
                "products": [{"externalId": "tee"}],
                "person": {"image": {"source": {"id": upload.json()["imageId"]}}},
            },
        )
        assert done.status_code == 200, done.text
        result_url = done.json()["resultImageUrl"]

    page_url = other_origin(
        "shop.html",
        f"""<!doctype html><html><body>
<img id="person" src="{image_url}" crossorigin="anonymous">
<img id="result" src="{result_url}">
<img id="missing" src="{server.base}/media/nothing.here.at-all">
</body></html>""",
    )
    assert not page_url.startswith(server.root)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(page_url)
            page.wait_for_function(
                "() => [...document.images].every(i => i.complete)", timeout=15_000
            )
            sizes = page.evaluate(
                "() => Object.fromEntries([...document.images].map("
                "i => [i.id, [i.naturalWidth, i.naturalHeight]]))"
            )
        finally:
            browser.close()
    assert sizes == {"person": [24, 32], "result": [24, 32], "missing": [0, 0]}
