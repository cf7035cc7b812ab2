"""A catalog's whole life through the real server, driven by httpx, on SQLite and PostgreSQL.

Create, partial updates, a listing walked page by page while other writes land, ETag conflicts,
delete, and two API keys that never see each other's products; and a try-on whose sync wait a
restart cuts short, finished by the next server on the same catalog.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.helpers import JPEG, PNG, R31_PRODUCT_KEYS
from tests.server.conftest import Server

FRONT = {"source": {"url": "https://cdn.example/front.jpg"}}
BACK = {"source": {"url": "https://cdn.example/back.jpg"}}


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_r4_r6_r8_r10_r24_r25_r28_r1_a_catalogs_life_over_http(
    start: Callable[..., Server], served_db: str, client: Callable[[Server, str], httpx.Client]
) -> None:
    server = start("--db", served_db)
    alice, bob = client(server, "gk_alice"), client(server, "gk_bob")

    # Create (201): the whole product, its version as ETag, its URL as Location.
    created = alice.post(
        "/products",
        json={"externalId": "shirt-42", "title": "Red tee", "images": [FRONT, BACK]},
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == "/tryon/v1/products/shirt-42"
    assert "catalog-warnings" not in created.headers
    body = created.json()
    assert list(body) == list(R31_PRODUCT_KEYS)
    assert body["validForDays"] is None
    assert body["expiresAt"] is None
    assert [i["sourceUrl"] for i in body["images"]] == [
        "https://cdn.example/front.jpg",
        "https://cdn.example/back.jpg",
    ]

    # Partial update (200): omitted fields keep their value (R6).
    updated = alice.post(
        "/products",
        json={"externalId": "shirt-42", "description": "Soft cotton", "metadata": {"sku": 7}},
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == '"2"'
    assert "location" not in updated.headers
    after = updated.json()
    assert after["title"] == "Red tee"
    assert after["images"] == body["images"]
    assert after["createdAt"] == body["createdAt"]
    assert stamp(after["updatedAt"]) >= stamp(body["updatedAt"])

    # Images replaced whole, by a multipart upload (R8, R15); a TTL opted into (R10, R19).
    multipart = alice.post(
        "/products",
        data={
            "data": json.dumps(
                {
                    "externalId": "shirt-42",
                    "validForDays": 30,
                    "images": [
                        {"source": {"fileKey": "side"}},
                        FRONT,
                    ],
                }
            )
        },
        files={"side": ("side.png", PNG, "image/png")},
    )
    assert multipart.status_code == 200, multipart.text
    assert multipart.headers["etag"] == '"3"'
    third = multipart.json()
    assert [i["order"] for i in third["images"]] == [0, 1]
    assert third["images"][0]["sourceUrl"].startswith("upload://")
    assert third["description"] == "Soft cotton"
    assert third["metadata"] == {"sku": 7}
    assert stamp(third["expiresAt"]) == stamp(third["updatedAt"]) + timedelta(days=30)

    # null clears (R7, R9, R10).
    cleared = alice.post(
        "/products",
        json={"externalId": "shirt-42", "metadata": None, "validForDays": None},
    )
    assert cleared.json()["metadata"] is None
    assert cleared.json()["expiresAt"] is None

    # GET gives the same product and ETag (R23, R28).
    got = alice.get("/products/shirt-42")
    assert got.status_code == 200
    assert got.json() == cleared.json()
    assert got.headers["etag"] == '"4"'

    # ETag conflicts: a stale If-Match writes nothing (R28).
    stale = alice.post(
        "/products", json={"externalId": "shirt-42", "title": "stale"}, headers={"If-Match": '"3"'}
    )
    assert stale.status_code == 412
    assert stale.json() == {
        "code": "VERSION_CONFLICT",
        "message": "Product 'shirt-42' is at version 4; expected version 3.",
        "status": 412,
        "details": [{"path": "version", "message": "current version is 4"}],
    }
    assert alice.get("/products/shirt-42").json()["title"] == "Red tee"
    fresh = alice.post(
        "/products", json={"externalId": "shirt-42", "title": "fresh"}, headers={"If-Match": '"4"'}
    )
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == '"5"'
    assert alice.delete("/products/shirt-42", headers={"If-Match": '"4"'}).status_code == 412

    # Tenant isolation (R1): bob sees nothing of alice's, and his own id is his own.
    assert bob.get("/products/shirt-42").json()["code"] == "PRODUCT_NOT_FOUND"
    assert bob.delete("/products/shirt-42").status_code == 404
    assert bob.get("/products").json() == {
        "items": [],
        "nextCursor": None,
        "hasMore": False,
        "count": 0,
    }
    assert bob.post("/products", json={"externalId": "shirt-42", "title": "x"}).status_code == 400
    bobs = bob.post("/products", json={"externalId": "shirt-42", "images": [BACK]})
    assert bobs.status_code == 201
    assert bobs.headers["etag"] == '"1"'
    assert alice.get("/products/shirt-42").json()["title"] == "fresh"

    # A cursor is bound to its account (R24): bob cannot walk alice's listing with hers.
    for n in range(5):
        alice.post("/products", json={"externalId": f"p-{n:02d}", "images": [FRONT]})
    first = alice.get("/products", params={"limit": 2}).json()
    foreign = bob.get("/products", params={"limit": 2, "cursor": first["nextCursor"]})
    assert foreign.status_code == 400
    assert foreign.json()["details"] == [
        {"path": "cursor", "message": "is not a cursor of this listing"}
    ]

    # Delete (204), then the product is gone (R25).
    deleted = alice.delete("/products/shirt-42", headers={"If-Match": '"5"'})
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert alice.get("/products/shirt-42").status_code == 404
    assert alice.delete("/products/shirt-42").json()["code"] == "PRODUCT_NOT_FOUND"
    assert bob.get("/products/shirt-42").status_code == 200


def test_r24_a_walk_across_pages_while_others_write_returns_each_survivor_exactly_once(
    start: Callable[..., Server], served_db: str, client: Callable[[Server, str], httpx.Client]
) -> None:
    server = start("--db", served_db)
    walker = client(server, "gk_walker")
    ids = [f"item-{n:03d}" for n in range(0, 60, 2)]  # even ids exist for the whole walk
    for external_id in ids:
        response = walker.post("/products", json={"externalId": external_id, "images": [FRONT]})
        assert response.status_code == 201
    doomed = ids[20:25]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor is not None:
            params["cursor"] = cursor
        page = walker.get("/products", params=params).json()
        pages += 1
        assert page["count"] == len(page["items"]) <= 7
        seen.extend(item["externalId"] for item in page["items"])
        # Between pages: new ids before and after the cursor, an update, deletes.
        walker.post(
            "/products", json={"externalId": f"item-{2 * pages + 1:03d}", "images": [FRONT]}
        )
        walker.post("/products", json={"externalId": ids[-1], "title": f"page {pages}"})
        if pages == 2:
            for external_id in doomed:
                assert walker.delete(f"/products/{external_id}").status_code == 204
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        cursor = page["nextCursor"]

    survivors = [i for i in ids if i not in doomed]
    assert len(seen) == len(set(seen))
    assert [s for s in seen if s in survivors] == survivors
    assert pages >= 4  # a walk across several pages


def test_r15_an_uploaded_image_and_the_same_bytes_again_are_one_blob(
    shared_server: Server, key: str, client: Callable[[Server, str], httpx.Client]
) -> None:
    uploader = client(shared_server, key)
    urls = []
    for external_id in ("a", "b"):
        response = uploader.post(
            "/products",
            data={
                "data": json.dumps(
                    {
                        "externalId": external_id,
                        "images": [
                            {"source": {"fileKey": "f"}, "classifications": {"view": "front"}}
                        ],
                    }
                )
            },
            files={"f": ("f.jpg", JPEG, "image/jpeg")},
        )
        assert response.status_code == 201, response.text
        urls.append(response.json()["images"][0])
    assert urls[0] == urls[1]
    assert urls[0]["classifications"] == {"view": "front"}


def test_r27_r28_concurrent_if_match_star_updates_all_land_and_none_is_lost(
    start: Callable[..., Server], served_db: str, client: Callable[[Server, str], httpx.Client]
) -> None:
    server = start("--db", served_db)
    setup = client(server, "gk_racer")
    assert setup.post("/products", json={"externalId": "hot", "images": [FRONT]}).status_code == 201
    writers, each = 8, 15

    def write(worker: int) -> list[int]:
        with httpx.Client(
            base_url=server.base, headers={"x-api-key": "gk_racer", "if-match": "*"}, timeout=60
        ) as http:
            return [
                http.post(
                    "/products", json={"externalId": "hot", "title": f"{worker}-{n}"}
                ).status_code
                for n in range(each)
            ]

    with ThreadPoolExecutor(writers) as pool:
        statuses = [s for batch in pool.map(write, range(writers)) for s in batch]
    assert statuses == [200] * (writers * each)
    assert setup.get("/products/hot").headers["etag"] == f'"{1 + writers * each}"'


def test_t11_t15_t21_a_try_on_outlives_a_restart_of_the_server(
    start: Callable[..., Server], served_db: str, client: Callable[[Server, str], httpx.Client]
) -> None:
    """A sync wait cut by SIGTERM answers 202; the next server on the catalog finishes the job."""
    first = start("--db", served_db, "--generation-seconds", "3")
    shop = client(first, "gk_shop")
    upload = shop.post("/images/upload", files={"file": ("me.png", PNG, "image/png")})
    assert upload.status_code == 200, upload.text
    body = {
        "products": [{"externalId": "tee", "images": [FRONT]}],
        "person": {"image": {"source": {"id": upload.json()["imageId"]}}},
    }
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(shop.post, "/try-on/sync", json=body)
        # Until the try-on is accepted and its wait has begun (or it was answered at once).
        while shop.get("/account/credits").json()["creditBalance"] == 10 and not waiting.done():
            time.sleep(0.02)
        first.stop()
        answer = waiting.result(timeout=10)
    assert answer.status_code == 202, answer.text
    generation_id = answer.json()["generationId"]

    second = start("--db", served_db)
    again = client(second, "gk_shop")
    assert again.get("/account/credits").json() == {"creditBalance": 9}
    deadline = datetime.now() + timedelta(seconds=30)
    while (done := again.get(f"/generations/{generation_id}").json())["status"] != "COMPLETED":
        assert datetime.now() < deadline, done
    image = httpx.get(upload.json()["imageUrl"].replace(first.root, second.root), timeout=30)
    assert image.content == PNG
    result = httpx.get(done["resultImageUrl"], timeout=30)
    assert result.status_code == 200
    assert result.content == PNG
