"""The local dashboard in a real browser: Debian's Chromium, driven by Playwright.

One ``catalog-core serve`` process (SQLite, the example catalog imported) serves every test of
the module; each test signs in with its own key (without ``--api-key`` every key is its own
account, R1), so the tests neither see nor disturb each other's data. Screenshots of the main
pages are written to ``artifacts/dashboard/`` (``$CATALOG_CORE_ARTIFACTS/dashboard`` when set),
which CI keeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import catalog_core as cc
from tests.helpers import png
from tests.server.conftest import SCRIPT, Server, start_server
from tests.server.test_browser import chromium

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SHOP = "shop"  # the key (and account) holding the example catalog and 84 more products
LISTED = 120
ARTIFACTS = Path(os.environ.get("CATALOG_CORE_ARTIFACTS", ROOT / "artifacts")) / "dashboard"
PERSON = png(24, 32, (30, 90, 200))
#: An image URL that loads nowhere (offline) but is not ``.invalid`` (which fails a try-on, T14).
URL_IMAGE = "https://cdn.example/tee.jpg"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu"]


def _import(db: str, source: Path) -> dict[str, Any]:
    """Import ``source`` for ``shop`` as a user does; return the summary."""
    done = subprocess.run(
        [str(SCRIPT), "--db", db, "import", "--account", SHOP, "--json", str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


#: The ids the example catalog created, read back from the catalog before the server starts.
_EXAMPLE_IDS: list[str] = []


def _example_ids() -> list[str]:
    assert _EXAMPLE_IDS, "the server fixture reads them"
    return _EXAMPLE_IDS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on an SQLite catalog: the example catalog and more, 120 products of ``shop``."""
    directory = tmp_path_factory.mktemp("dashboard")
    db = str(directory / "catalog.db")
    examples = _import(db, EXAMPLES / "catalog.jsonl")  # a few lines a newcomer sees rejected
    repository = cc.SQLiteRepository(db)
    try:
        _EXAMPLE_IDS[:] = [p.external_id for p in cc.Catalog(repository).list(SHOP, 200).items]
    finally:
        repository.close()
    assert len(_EXAMPLE_IDS) == examples["created"] > 20
    more = directory / "more.jsonl"
    extra = LISTED - examples["created"] - 1  # and one with an uploaded image, below
    more.write_text(
        "".join(
            json.dumps(
                {
                    "externalId": f"zz-{n:03d}",
                    "title": f"Generated {n}",
                    "validForDays": 14,
                    "images": [{"source": {"url": f"https://images.invalid/{n}.jpg"}}],
                }
            )
            + "\n"
            for n in range(extra)
        ),
        encoding="utf-8",
    )
    assert _import(db, more)["created"] == extra
    # Generations take 5 s: a page that reads the first page of generations every 2 s sees one
    # before it ends.
    running = start_server(directory, "--db", db, "--generation-seconds", "5")
    with httpx.Client(base_url=running.base, headers={"x-api-key": SHOP}, timeout=30) as api:
        made = api.post(
            "/products",
            data={
                "data": json.dumps(
                    {
                        "externalId": "back-uploaded",
                        "title": "Uploaded back view",
                        "metadata": {"colour": "navy", "sizes": ["S", "M"]},
                        "images": [
                            {"source": {"fileKey": "back"}, "classifications": {"view": "back"}}
                        ],
                    }
                )
            },
            files={"back": ("back.jpg", (EXAMPLES / "back.jpg").read_bytes(), "image/jpeg")},
        )
        assert made.status_code == 201, made.text
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield launched
        launched.close()


def _signed_in(browser: Any, server: Server, key: str) -> Any:
    """A new browser context (its own session storage) signed in with ``key``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.requested = requested
    page.goto(server.root + "/")
    page.fill("#key", key)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")
    return page


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _ids_shown(page: Any) -> list[str]:
    return [row.get_attribute("data-id") for row in page.query_selector_all("#products tbody tr")]


def _api(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base, headers={"x-api-key": key}, timeout=30)


def _try_on(api: httpx.Client, person: dict[str, str], title: str, url: str) -> dict[str, Any]:
    """Start a try-on of a one-shot product (R22c) of one image; return the answer's body."""
    started = api.post(
        "/try-on",
        json={
            "products": [{"title": title, "images": [{"source": {"url": url}}]}],
            "person": {"image": {"source": person}},
        },
    )
    assert started.status_code == 200, started.text
    body: dict[str, Any] = started.json()
    return body


def test_r24_sign_in_see_the_example_catalog_and_page_through_120_products(
    server: Server, browser: Any
) -> None:
    """R24: 50 a page by cursor, in the listing's order, every product once; a prefix filter."""
    page = _signed_in(browser, server, SHOP)
    page.wait_for_selector("#products tbody tr")
    walked: list[str] = []
    pages = []
    while True:
        ids = _ids_shown(page)
        pages.append(len(ids))
        walked.extend(ids)
        if len(pages) == 1:
            # A URL image that does not load shows a placeholder, not a broken image.
            page.wait_for_selector("#products .placeholder:text('image did not load')")
            page.wait_for_function(  # every image loaded, or replaced by its placeholder
                "() => [...document.querySelectorAll('#products img')].every(i => i.complete)"
                " && !document.querySelector('#products .loading')"
            )
            _shot(page, "products")
        if page.is_disabled("#next"):
            break
        before = ids[0]
        page.click("#next")
        page.wait_for_function(
            "first => document.querySelector('#products tbody tr').dataset.id !== first", arg=before
        )
    assert pages == [50, 50, 20]
    assert walked == sorted(walked)
    assert len(set(walked)) == LISTED
    assert set(_example_ids()) <= set(walked)
    assert "(the last page)" in page.inner_text("#products-status")
    page.click("#previous")
    page.wait_for_function(
        "() => document.querySelector('#products-status').textContent.includes('51–100')"
    )
    assert _ids_shown(page) == walked[50:100]

    with _api(server, SHOP) as api:
        for external_id in walked[50:100:7]:  # each row: its id and version (the ETag, R28)
            row = page.query_selector(f"#products tr[data-id='{external_id}']")
            cells = [cell.inner_text() for cell in row.query_selector_all("td")]
            assert cells[1] == external_id
            assert f'"{cells[6]}"' == api.get(f"/products/{external_id}").headers["etag"]

    page.fill("#prefix", "tee-")
    page.click("#filter button")
    page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#products tbody tr')];"
        " return rows.length > 0 && rows.every(r => r.dataset.id.startsWith('tee-')); }"
    )
    shown = _ids_shown(page)
    assert shown == [i for i in walked if i.startswith("tee-")]
    assert shown
    page.fill("#prefix", "zz-00")
    page.click("#filter button")
    page.wait_for_selector("#products tr[data-id='zz-009']")
    expires = [cell.inner_text() for cell in page.query_selector_all("#products td:nth-child(5)")]
    assert expires == ["in 14 days"] * 10  # validForDays 14, as a relative time
    page.context.close()


def test_r31_a_product_page_shows_every_field_and_its_uploaded_image_decoded(
    server: Server, browser: Any
) -> None:
    """R31, R15: every field, metadata pretty-printed, the uploaded image decoded in the page."""
    page = _signed_in(browser, server, SHOP)
    page.goto(server.root + "/#/product/back-uploaded")
    page.wait_for_selector("#product-images img.large")
    page.wait_for_function(
        "() => { const i = document.querySelector('#product-images img.large');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    fields = {
        dt.inner_text(): dd.inner_text()
        for dt, dd in zip(
            page.query_selector_all("#product-fields dt"),
            page.query_selector_all("#product-fields dd"),
            strict=True,
        )
    }
    with _api(server, SHOP) as api:
        product = api.get("/products/back-uploaded").json()
    assert set(fields) == {"version", *(k for k in product if k != "images")}  # every field
    for name in ("externalId", "title", "createdAt", "updatedAt"):
        assert fields[name] == product[name]
    for name in ("description", "validForDays", "expiresAt", "lastUsedAt"):
        assert fields[name] == "null" == json.dumps(product[name])
    assert fields["version"] == "1"
    captions = page.inner_text("#product-images figcaption")
    assert f"order 0: {product['images'][0]['sourceUrl']}" in captions
    assert json.loads(page.inner_text("#metadata")) == product["metadata"]
    assert '\n  "colour": "navy"' in page.inner_text("#metadata")  # pretty-printed
    assert '"view": "back"' in page.inner_text("#product-images .classifications")
    _shot(page, "product")
    page.context.close()


def test_t12_a_try_on_started_through_the_api_completes_on_the_page_without_a_reload(
    server: Server, browser: Any
) -> None:
    """T12, T14: the generations page shows a new try-on, then its status change, live."""
    key = "tryer"
    with _api(server, key) as api:
        made = api.post(
            "/products",
            json={
                "externalId": "tee",
                "title": "Tee",
                "images": [{"source": {"url": URL_IMAGE}}],
            },
        )
        assert made.status_code == 201, made.text
        page = _signed_in(browser, server, key)
        page.goto(server.root + "/#/generations")
        page.wait_for_selector("#generations .note:text('No generations yet.')")
        page.evaluate("window.__stayed = true")  # gone if the page reloads
        photo = api.post("/images/upload", files={"file": ("me.png", PERSON, "image/png")})
        assert photo.status_code == 200, photo.text
        person = {"id": photo.json()["imageId"]}
        started = _try_on(api, person, "One-shot tee", URL_IMAGE)  # never listed, opened by id
        generation = started["generationId"]
        one_shot = started["productExternalId"]
        row = f"#generations tr[data-generation='{generation}']"
        first = page.wait_for_selector(f"{row} [data-status]").get_attribute("data-status")
        assert first in ("PENDING", "PROCESSING")
        page.wait_for_selector(f"{row} [data-status='COMPLETED']", timeout=30_000)
        assert page.evaluate("window.__stayed") is True
        page.wait_for_function(
            "sel => { const images = [...document.querySelectorAll(sel + ' img')];"
            " return images.length === 2 && images.every(i => i.complete && i.naturalWidth > 0); }",
            arg=row,
        )
        assert api.get(f"/generations/{generation}").json()["status"] == "COMPLETED"
        failing = _try_on(api, person, "Tee", "https://x.invalid/a.jpg")  # T14: unfetchable
        failed = f"#generations tr[data-generation='{failing['generationId']}']"
        page.wait_for_selector(f"{failed} [data-status='FAILED']", timeout=30_000)
        cells = [cell.inner_text() for cell in page.query_selector_all(f"{failed} td")]
        assert cells[4] == "failed"  # no result
        assert cells[5] == "PRODUCT_IMAGE_FETCH_FAILED"  # the error code
        assert page.evaluate("window.__stayed") is True
        _shot(page, "generations")
        page.click(f"{row} a.product-link")
        page.wait_for_selector(f"#product-generations tr[data-generation='{generation}']")
        assert page.inner_text("#product-fields dd[data-field='externalId']") == one_shot
        page.goto(server.root + "/#/products")
        page.wait_for_selector("#products tbody tr")
        assert _ids_shown(page) == ["tee"]  # the one-shot product is not listed
        page.fill("#open-id", one_shot)
        page.click("#open button")
        page.wait_for_selector(f"#product-fields dd[data-field='externalId']:text('{one_shot}')")
    page.context.close()


def test_r28_deleting_with_a_stale_version_is_explained_and_changes_nothing(
    server: Server, browser: Any
) -> None:
    """R28: the page's If-Match is the version it showed; a write since makes it a 412."""
    key = "deleter"
    with _api(server, key) as api:
        body = {
            "externalId": "old",
            "images": [{"source": {"url": "https://images.invalid/o.jpg"}}],
        }
        assert api.post("/products", json=body).status_code == 201
        page = _signed_in(browser, server, key)
        page.goto(server.root + "/#/product/old")
        page.wait_for_selector("#delete-button")
        assert (
            api.post("/products", json={"externalId": "old", "title": "changed"}).status_code == 200
        )
        page.click("#delete-button")
        page.wait_for_selector("#delete-outcome.error")
        explained = page.inner_text("#delete-outcome")
        assert "412" in explained
        assert "VERSION_CONFLICT" in explained
        assert "version 1" in explained
        assert api.get("/products/old").status_code == 200  # nothing deleted
        _shot(page, "delete-412")
        page.reload()
        page.wait_for_selector("#delete-button:text('version 2')")
        page.click("#delete-button")
        page.wait_for_selector("#delete-outcome:text('Deleted old.')")
        assert api.get("/products/old").status_code == 404
    page.context.close()


def test_t17_credits_show_the_balance_and_a_top_up_changes_it(server: Server, browser: Any) -> None:
    """T16, T17: the balance of a new account, a local top-up, a refused one explained."""
    key = "payer"
    page = _signed_in(browser, server, key)
    page.goto(server.root + "/#/credits")
    page.wait_for_selector("#balance:text('10')")
    page.fill("#amount", "5")
    page.click("#top-up button")
    page.wait_for_selector("#balance:text('15')")
    with _api(server, key) as api:
        assert api.get("/account/credits").json() == {"creditBalance": 15}
    page.fill("#amount", "-100")
    page.click("#top-up button")
    page.wait_for_selector("#credits-outcome.error")
    assert "VALIDATION_FAILED" in page.inner_text("#credits-outcome")
    with _api(server, key) as api:
        assert api.get("/account/credits").json() == {"creditBalance": 15}
    _shot(page, "credits")
    page.context.close()


def test_t18_t22_the_purge_and_a_customer_erasure_run_from_the_page(
    server: Server, browser: Any
) -> None:
    """T18, T22: both actions go through the API and say what they did."""
    key = "maintainer"
    with _api(server, key) as api:
        photo = api.post(
            "/images/upload",
            files={"file": ("me.png", PERSON, "image/png")},
            data={"customerId": "u-1"},
        )
        assert photo.status_code == 200, photo.text
        page = _signed_in(browser, server, key)
        page.goto(server.root + "/#/maintenance")
        page.fill("#customer-id", "u-1")
        page.click("#erase button")
        page.wait_for_selector("#erase-outcome:text('Erased customer u-1')")
        assert httpx.get(photo.json()["imageUrl"], timeout=30).status_code == 404
        page.click("#purge button")
        page.wait_for_selector("#purge-outcome:text('The purge ran')")
    page.context.close()


def test_r1_another_key_sees_none_of_the_first_accounts_data(server: Server, browser: Any) -> None:
    """R1: a second context signed in with another key sees nothing of the first account's."""
    first = _signed_in(browser, server, SHOP)
    first.wait_for_selector("#products tbody tr")
    other = _signed_in(browser, server, "outsider")
    other.wait_for_selector("#products-status:text('No products yet.')")
    assert _ids_shown(other) == []
    other.goto(server.root + "/#/product/tee-001")
    other.wait_for_selector("#view .error")
    assert "PRODUCT_NOT_FOUND" in other.inner_text("#view .error")
    other.goto(server.root + "/#/generations")
    other.wait_for_selector("#generations .note:text('No generations yet.')")
    other.goto(server.root + "/#/product/back-uploaded")
    other.wait_for_selector("#view .error")
    seen = other.content()
    for external_id in _example_ids():
        assert external_id not in seen
    # The first context is still signed in as itself: session storage is per tab.
    first.reload()
    first.wait_for_selector("#products tbody tr")
    # Neither key ever appears in a URL the pages requested.
    for url in first.requested + other.requested:
        assert "key=" not in url
        assert SHOP not in url.split("#")[0].split("?")[-1]
    assert "outsider" not in server.log()
    assert "x-api-key" not in server.log()
    _shot(other, "other-account")
    first.context.close()
    other.context.close()


def test_r1_with_api_keys_only_listed_keys_sign_in(start: Any, browser: Any) -> None:
    """R1: with ``--api-key`` an unlisted key is refused at sign-in, a listed one is taken."""
    server = start("--db", "memory://", "--api-key", "k-shop=shop")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(server.root + "/dashboard")
    page.fill("#key", "not-a-key")
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#sign-in-error:text('INVALID_API_KEY')")
    assert page.is_hidden("#nav")
    assert page.evaluate("sessionStorage.length") == 0
    page.fill("#key", "k-shop")
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#products-status:text('No products yet.')")
    assert page.evaluate("Object.values(sessionStorage)") == ["k-shop"]
    page.click("#sign-out")
    page.wait_for_selector("#sign-in")
    assert page.evaluate("sessionStorage.length") == 0
    context.close()


@pytest.mark.parametrize("path", ["/", "/dashboard", "/dashboard/static/dashboard.js"])
def test_the_dashboard_sends_the_headers_a_browser_page_should(server: Server, path: str) -> None:
    """Its own scripts only, images from anywhere, no sniffing; the page is never cached."""
    answer = httpx.get(server.root + path, timeout=30)
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "img-src * data: blob:" in policy
    assert "connect-src 'self'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    if not path.endswith(".js"):
        assert answer.headers["cache-control"] == "no-store"


def test_the_local_endpoints_answer_account_data_uncached_and_only_with_a_key(
    server: Server,
) -> None:
    """R1: the stand-in's own endpoints need a key and are never cached."""
    for path in ("/local/products", "/local/generations"):
        assert httpx.get(server.base + path, timeout=30).status_code == 401
        with _api(server, SHOP) as api:
            answer = api.get(path)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(server.root + "/dashboard/static/other.js", timeout=30).status_code == 404
    assert httpx.get(server.root + "/dashboard/static/..%2Fdashboard.py").status_code == 404


def test_a_late_answer_of_a_page_left_is_never_drawn_into_the_next_one(
    server: Server, browser: Any
) -> None:
    """R1: an answer that arrives after the page was left, even for another key, is dropped."""
    page = _signed_in(browser, server, SHOP)
    page.wait_for_selector("#products tbody tr")

    def slow(route: Any) -> None:
        time.sleep(1.5)
        route.continue_()

    page.route("**/tryon/v1/products/back-uploaded", slow)
    page.goto(server.root + "/#/product/back-uploaded")
    page.goto(server.root + "/#/credits")  # before the product arrives
    page.wait_for_selector("#balance:text('10')")
    page.click("#sign-out")  # and in again with another key, as the answer travels
    page.fill("#key", "late-reader")
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#balance:text('10')")  # back on the credits page, as the new key
    time.sleep(2.5)
    assert page.query_selector("#product-fields") is None
    assert "Uploaded back view" not in page.content()
    page.context.close()


def test_t12_a_failed_read_of_the_generations_is_tried_again_and_the_page_recovers(
    server: Server, browser: Any
) -> None:
    """A read that fails (a 503, say) says so and is tried again; the page then shows the list."""
    page = _signed_in(browser, server, "flaky")
    failures = {"left": 2}

    def failing(route: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            body = {"code": "UNAVAILABLE", "message": "shutting down", "status": 503}
            route.fulfill(status=503, json=body, headers={"Retry-After": "1"})
        else:
            route.continue_()

    page.route("**/tryon/v1/local/generations*", failing)
    page.goto(server.root + "/#/generations")
    page.wait_for_selector("#generations .error:text('trying again')")
    page.wait_for_selector("#generations .note:text('No generations yet.')", timeout=30_000)
    assert failures["left"] == 0
    page.context.close()


def test_r24_paging_twice_at_once_moves_one_page_at_a_time(server: Server, browser: Any) -> None:
    """R24: a double click on Next is one page on, labelled as it is; Previous goes back one."""
    page = _signed_in(browser, server, SHOP)
    page.wait_for_selector("#products tbody tr")
    first = _ids_shown(page)
    page.dblclick("#next")
    page.wait_for_selector("#products-status:text('Products 51–100')")
    second = _ids_shown(page)
    assert second[0] > first[-1]
    page.click("#previous")
    page.wait_for_selector("#products-status:text('Products 1–50')")
    assert _ids_shown(page) == first
    page.context.close()


def test_r1_r2_the_local_endpoints_reveal_nothing_of_other_accounts_and_read_ids_strictly(
    server: Server,
) -> None:
    """R1: the purge says nothing of what it removed; a person given by URL is not redirected
    to (a client following it would send its key there). R2: ids are UTF-8, strictly."""
    with _api(server, "strict") as api:
        purged = api.post("/local/purge")
        assert purged.status_code == 204
        assert purged.content == b""
        given = {"url": "https://elsewhere.example/me.jpg"}
        generation = _try_on(api, given, "mock", URL_IMAGE)["generationId"]
        listed = api.get("/local/generations").json()["items"]
        assert listed[0]["personImage"] == {"sourceUrl": "https://elsewhere.example/me.jpg"}
        person = api.get(f"/local/generations/{generation}/person")
        assert person.status_code == 404
        assert person.json()["code"] == "MEDIA_NOT_FOUND"
        for query in ("prefix=%FF", "prefix=%ED%A0%80"):
            refused = api.get("/local/products?" + query)
            assert refused.status_code == 400
            assert refused.json()["details"][0]["path"] == "prefix"
        with_zeros = api.get(
            "/local/product-image", params={"externalId": "back-uploaded", "order": "000"}
        )
        assert with_zeros.status_code == 404  # this account has no such product
    with _api(server, SHOP) as api:
        image = api.get(
            "/local/product-image", params={"externalId": "back-uploaded", "order": "000"}
        )
        assert image.status_code == 200
        assert image.content == (EXAMPLES / "back.jpg").read_bytes()
