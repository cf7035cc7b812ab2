"""The try-on flow through real ``catalog-core serve`` processes, as client code drives it (T1-T24).

The servers keep their catalog in memory (``--db memory://``) except where a test is about a
backend; one server per module serves the tests that allow it, each test in accounts of its own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import catalog_core as cc
from catalog_core.server.responses import WARNINGS_COUNT_HEADER, WARNINGS_HEADER
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG, FakeClock, png
from tests.server.conftest import Server, start_server

PERSON = png(12, 16, (30, 90, 200))
CDN_IMAGE = "https://cdn.example/p.jpg"
GARMENT = png(8, 8, (220, 40, 40))
MEMORY = "memory://"
FINISHED = ("COMPLETED", "FAILED")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Generations of 1 s, sync waits of 0.3 s: a sync try-on of a real product answers 202."""
    server = start_server(
        tmp_path_factory.mktemp("quick"),
        "--db",
        MEMORY,
        "--generation-seconds",
        "1",
        "--sync-timeout",
        "0.3",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Generations of 2 s, sync waits of 30 s: a sync try-on waits for its generation."""
    server = start_server(
        tmp_path_factory.mktemp("waiting"),
        "--db",
        MEMORY,
        "--generation-seconds",
        "2",
        "--sync-timeout",
        "30",
    )
    yield server
    server.stop()


def new_key() -> str:
    return f"gk_tryon_{uuid.uuid4().hex}"


class App:
    """An integrating app's calls, as the official example app makes them: base URL and key."""

    def __init__(self, server: Server, key: str | None = None) -> None:
        self.server = server
        self.key = key or new_key()
        self.http = httpx.Client(base_url=server.base, headers={"x-api-key": self.key}, timeout=60)

    def close(self) -> None:
        self.http.close()

    def upload(self, data: bytes = PERSON, **fields: str) -> httpx.Response:
        return self.http.post(
            "/images/upload", data=fields, files={"file": ("me.png", data, "image/png")}
        )

    def image_id(self, **fields: str) -> tuple[str, str]:
        answer = self.upload(**fields)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body["imageId"], body["imageUrl"]

    def try_on(self, body: dict[str, Any], *, sync: bool = False) -> httpx.Response:
        return self.http.post("/try-on/sync" if sync else "/try-on", json=body)

    def poll(self, generation_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.http.get(f"/generations/{generation_id}")
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            if body["status"] in FINISHED or time.monotonic() > deadline:
                return body
            time.sleep(0.1)

    def credits(self) -> int:
        answer = self.http.get("/account/credits")
        assert answer.status_code == 200, answer.text
        balance: int = answer.json()["creditBalance"]
        return balance


@pytest.fixture
def app() -> Iterator[Callable[..., App]]:
    made: list[App] = []

    def make(server: Server, key: str | None = None) -> App:
        made.append(App(server, key))
        return made[-1]

    yield make
    for each in made:
        each.close()


def fetch(url: str) -> httpx.Response:
    """What a browser's <img> does: a GET without the API key."""
    return httpx.get(url, timeout=30)


def person(image_id: str) -> dict[str, Any]:
    return {"image": {"source": {"id": image_id}}}


def mock_item(external_id: str) -> dict[str, Any]:
    return {
        "externalId": external_id,
        "title": "mock",
        "images": [{"source": {"url": "https://cdn.example/mock.jpg"}}],
    }


# -- T24: the official example app's flows ----------------------------------------------------


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgres"])
def example_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """As ``quick`` (1 s generations, 0.3 s sync waits), on each backend (T23, T24)."""
    folder = tmp_path_factory.mktemp(f"example-{request.param}")
    schema = None
    if request.param == "memory":
        db = MEMORY
    elif request.param == "sqlite":
        db = str(folder / "catalog.db")
    else:
        url, schema = postgres_url(), fresh_schema()
        db = f"{url}?schema={schema}"
    server = start_server(folder, "--db", db, "--generation-seconds", "1", "--sync-timeout", "0.3")
    yield server
    server.stop()
    if schema is not None:
        repository = cc.PostgresRepository(postgres_url(), schema=schema)
        repository.drop_schema()
        repository.close()


def test_t24_the_example_apps_newest_flow_runs_with_only_the_base_url_changed(
    example_server: Server, app: Callable[..., App]
) -> None:
    client = app(example_server)
    image_id, image_url = client.image_id()
    body = {"products": [{"externalId": "shirt-42"}], "person": person(image_id)}

    refused = client.try_on(body, sync=True)
    assert refused.status_code == 404, refused.text
    assert refused.json()["code"] == "PRODUCT_NOT_FOUND"
    assert client.credits() == 10  # a refused try-on takes nothing (T9)

    created = client.http.post(
        "/products",
        data={
            "data": json.dumps(
                {
                    "externalId": "shirt-42",
                    "title": "Red tee",
                    "images": [{"source": {"fileKey": "product"}}],
                }
            )
        },
        files={"product": ("shirt.png", GARMENT, "image/png")},
    )
    assert created.status_code == 201, created.text

    started = client.try_on(body, sync=True)
    assert started.status_code == 202, started.text  # 1 s of generation, 0.3 s of patience
    accepted = started.json()
    assert set(accepted) == {"generationId", "status", "productExternalId"}
    assert accepted["productExternalId"] == "shirt-42"
    assert accepted["status"] in ("PENDING", "PROCESSING")

    done = client.poll(accepted["generationId"])
    assert done["status"] == "COMPLETED", done
    assert set(done) == {"generationId", "status", "resultImageUrl", "createdAt", "updatedAt"}
    result = fetch(done["resultImageUrl"])
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    assert result.content == PERSON  # the stand-in returns the person image unchanged (T14)
    assert fetch(image_url).content == PERSON
    assert client.credits() == 9


def test_t24_t6_the_example_apps_older_flow_runs_too(
    example_server: Server, app: Callable[..., App]
) -> None:
    client = app(example_server)
    image_id, _ = client.image_id()
    started = client.http.post(
        "/try-on",
        data={
            "data": json.dumps(
                {
                    "product": {
                        "externalId": "dress-7",
                        "title": "Blue dress",
                        "images": [{"source": {"fileKey": "productImage"}}],
                    },
                    "customer": {"id": image_id},
                }
            )
        },
        files={"productImage": ("dress.png", GARMENT, "image/png")},
    )
    assert started.status_code == 200, started.text
    accepted = started.json()
    assert accepted["status"] == "PENDING"
    assert accepted["productExternalId"] == "dress-7"
    warnings = json.loads(started.headers[WARNINGS_HEADER])
    assert {w["path"] for w in warnings} == {"product", "customer"}  # deprecated, accepted (T6)
    assert started.headers[WARNINGS_COUNT_HEADER] == "2"

    done = client.poll(accepted["generationId"])
    assert done["status"] == "COMPLETED", done
    assert fetch(done["resultImageUrl"]).content == PERSON
    product = client.http.get("/products/dress-7").json()
    assert product["validForDays"] == 15  # created inline (R22b)
    assert product["lastUsedAt"] is not None


# -- T11: sync ----------------------------------------------------------------------------------


def test_t11_t14_a_sync_try_on_of_a_mock_product_answers_200_completed_at_once(
    quick: Server, app: Callable[..., App]
) -> None:
    client = app(quick)
    image_id, _ = client.image_id()
    began = time.monotonic()
    answer = client.try_on({"products": [mock_item("m")], "person": person(image_id)}, sync=True)
    assert time.monotonic() - began < 1
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "COMPLETED"
    assert body["productExternalId"] == "m"
    assert list(body) == [
        "generationId",
        "status",
        "resultImageUrl",
        "createdAt",
        "updatedAt",
        "productExternalId",
    ]
    assert fetch(body["resultImageUrl"]).content == PERSON


def test_t11_a_sync_try_on_waits_for_its_generation_and_answers_200(
    waiting: Server, app: Callable[..., App]
) -> None:
    client = app(waiting)
    image_id, _ = client.image_id()
    body = {
        "products": [{"externalId": "tee", "images": [{"source": {"fileKey": "g"}}]}],
        "person": person(image_id),
    }
    began = time.monotonic()
    answer = client.http.post(
        "/try-on/sync",
        data={"data": json.dumps(body)},
        files={"g": ("g.png", GARMENT, "image/png")},
    )
    took = time.monotonic() - began
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "COMPLETED"
    assert 1.9 < took < 5, took  # the generation's 2 s, and not a poll interval more


def test_t11_t14_t16_a_sync_try_on_that_fails_answers_200_failed_and_refunds(
    waiting: Server, app: Callable[..., App]
) -> None:
    client = app(waiting)
    answer = client.try_on(
        {
            "products": [{"images": [{"source": {"url": "https://cdn.shop.invalid/x.jpg"}}]}],
            "person": {"image": {"source": {"url": "https://cdn.example/me.jpg"}}},
        },
        sync=True,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "FAILED"
    assert body["errorCode"] == "PRODUCT_IMAGE_FETCH_FAILED"
    assert "resultImageUrl" not in body
    assert body["productExternalId"].startswith("_anon_")
    assert client.credits() == 10  # the failed generation's credit came back


def test_t11_a_sync_try_on_still_running_at_the_timeout_answers_202_and_goes_on(
    quick: Server, app: Callable[..., App]
) -> None:
    client = app(quick)
    image_id, _ = client.image_id()
    began = time.monotonic()
    answer = client.try_on(
        {
            "products": [{"images": [{"source": {"url": "https://cdn.example/x.jpg"}}]}],
            "person": person(image_id),
        },
        sync=True,
    )
    assert 0.3 <= time.monotonic() - began < 1
    assert answer.status_code == 202, answer.text
    assert client.poll(answer.json()["generationId"])["status"] == "COMPLETED"


def test_t11_many_sync_waits_hold_no_worker_thread(
    waiting: Server, app: Callable[..., App]
) -> None:
    """50 sync try-ons wait at once (Starlette's thread pool has 40 threads): others still run."""
    images = {}
    for _ in range(50):
        client = app(waiting)
        images[client.key] = client.image_id()[0]
    probe = app(waiting)

    async def sync(key: str, http: httpx.AsyncClient) -> httpx.Response:
        body = {
            "products": [{"images": [{"source": {"url": "https://cdn.example/x.jpg"}}]}],
            "person": person(images[key]),
        }
        return await http.post("/try-on/sync", json=body, headers={"x-api-key": key})

    async def run() -> tuple[list[httpx.Response], list[float]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=waiting.base, timeout=60, limits=limits) as http:
            waits = [asyncio.create_task(sync(key, http)) for key in images]
            await asyncio.sleep(0.8)  # all accepted, all waiting
            took = []
            for _ in range(3):
                began = time.monotonic()
                await asyncio.to_thread(probe.credits)
                took.append(time.monotonic() - began)
            return list(await asyncio.gather(*waits)), took

    answers, took = asyncio.run(run())
    assert max(took) < 0.5, took
    assert [a.status_code for a in answers] == [200] * 50
    assert {a.json()["status"] for a in answers} == {"COMPLETED"}


def test_t11_a_sync_wait_answers_202_at_once_when_the_server_stops(
    start: Callable[..., Server], app: Callable[..., App]
) -> None:
    server = start("--db", MEMORY, "--generation-seconds", "60", "--shutdown-timeout", "30")
    client = app(server)
    image_id, _ = client.image_id()
    answers: list[httpx.Response] = []
    body = {
        "products": [{"images": [{"source": {"url": "https://cdn.example/x.jpg"}}]}],
        "person": person(image_id),
    }
    waiter = threading.Thread(target=lambda: answers.append(client.try_on(body, sync=True)))
    waiter.start()
    deadline = time.monotonic() + 10
    while client.credits() == 10:  # the try-on was accepted: its wait has begun
        assert time.monotonic() < deadline
        time.sleep(0.05)
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    waiter.join(timeout=10)
    assert answers, "the sync request was not answered"
    assert time.monotonic() - began < 3
    assert answers[0].status_code == 202, answers[0].text
    assert answers[0].json()["status"] == "PENDING"
    assert server.process.wait(timeout=10) == -signal.SIGTERM
    assert "Application shutdown complete" in server.log()


# -- T16: credits, concurrently, on every backend -----------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def tryon_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ``--db`` of a served catalog on each backend (PostgreSQL in a schema of its own)."""
    if request.param == "memory":
        yield MEMORY
    elif request.param == "sqlite":
        yield str(tmp_path / "catalog.db")
    else:
        url, schema = postgres_url(), fresh_schema()
        yield f"{url}?schema={schema}"
        repository = cc.PostgresRepository(url, schema=schema)
        repository.drop_schema()
        repository.close()


def test_t16_twenty_concurrent_try_ons_on_ten_credits_accept_exactly_ten(
    start: Callable[..., Server], tryon_db: str, app: Callable[..., App]
) -> None:
    server = start("--db", tryon_db)
    client = app(server)
    assert client.credits() == 10, "a new account starts with --credits (default 10)"
    image_id, _ = client.image_id()
    body = {"products": [mock_item("hot")], "person": person(image_id)}
    barrier = threading.Barrier(20)

    def one(_: int) -> httpx.Response:
        with httpx.Client(
            base_url=server.base, headers={"x-api-key": client.key}, timeout=60
        ) as http:
            barrier.wait()
            return http.post("/try-on", json=body)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 10 + [402] * 10, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 402} == {"INSUFFICIENT_CREDITS"}
    assert client.credits() == 0
    generations = {a.json()["generationId"] for a in answers if a.status_code == 200}
    assert len(generations) == 10
    product = client.http.get("/products/hot")
    assert product.headers["etag"] == '"10"'  # created by one, used by nine: no refusal wrote


def test_t16_serve_credits_sets_a_new_accounts_balance(
    start: Callable[..., Server], app: Callable[..., App]
) -> None:
    server = start("--db", MEMORY, "--credits", "1")
    client = app(server)
    image_id, _ = client.image_id()
    body = {"products": [mock_item("m")], "person": person(image_id)}
    assert client.try_on(body).status_code == 200
    refused = client.try_on(body)
    assert refused.status_code == 402, refused.text
    assert refused.json() == {
        "code": "INSUFFICIENT_CREDITS",
        "message": "Insufficient credits: the account's credit balance is 0.",
        "status": 402,
    }
    assert client.credits() == 0


# -- T3, T15, T18: media URLs -------------------------------------------------------------------


def test_t3_an_image_url_serves_the_bytes_with_their_type_and_without_a_key(
    quick: Server, app: Callable[..., App]
) -> None:
    client = app(quick)
    answer = client.upload(JPEG)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body) == ["imageId", "imageUrl"]
    assert body["imageId"].startswith("img_")
    assert body["imageUrl"].startswith(quick.base + "/media/")
    assert body["imageId"] in body["imageUrl"]
    served = fetch(body["imageUrl"])
    assert served.status_code == 200
    assert served.content == JPEG
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "private"
    assert served.headers["cross-origin-resource-policy"] == "cross-origin"
    assert served.headers["access-control-allow-origin"] == "*"
    assert served.headers["x-content-type-options"] == "nosniff"


def test_t3_t4_a_media_url_with_a_wrong_token_or_another_accounts_serves_nothing(
    quick: Server, app: Callable[..., App]
) -> None:
    client, other = app(quick), app(quick)
    image_id, image_url = client.image_id()
    assert fetch(image_url).status_code == 200
    ref = image_url.rsplit("/", 1)[1]
    record, token, sealed = ref.split(".")
    # Neither the API key nor the account shows in the URL, in any encoding it could be in.
    for shown in (client.key, base64.urlsafe_b64encode(client.key.encode()).decode().rstrip("=")):
        assert shown not in image_url
    wrong_token = f"{record}.{'a' * len(token)}.{sealed}"
    _, others_url = other.image_id()
    other_sealed = others_url.rsplit(".", 1)[1]
    # Another account's sealed part (for another id), and one bit flipped in this one's.
    moved = f"{record}.{token}.{other_sealed}"
    flipped = f"{record}.{token}.{sealed[:-2]}{'A' if sealed[-2] != 'A' else 'B'}{sealed[-1]}"
    for bad in (wrong_token, moved, flipped, f"{record}.{token}", "nothing", "a.b.c"):
        answer = fetch(f"{quick.base}/media/{bad}")
        assert answer.status_code == 404, bad
        assert answer.json()["code"] == "MEDIA_NOT_FOUND"
    # Nor is the image id known to another account (T4).
    refused = other.try_on({"products": [mock_item("m")], "person": person(image_id)})
    assert refused.status_code == 400
    assert refused.json()["details"] == [
        {"path": "person.image.source.id", "message": "unknown or expired image"}
    ]


def test_t18_t19_erasing_a_customer_takes_down_its_media_urls_and_only_its_own(
    quick: Server, app: Callable[..., App]
) -> None:
    client, other = app(quick), app(quick)
    image_id, image_url = client.image_id(externalUserId="bob")
    _, kept_url = client.image_id(externalUserId="alice")
    _, others_url = other.image_id(externalUserId="bob")
    started = client.try_on(
        {"products": [mock_item("m")], "person": person(image_id), "externalUserId": "bob"},
        sync=True,
    )
    result_url = started.json()["resultImageUrl"]
    assert fetch(result_url).status_code == 200

    for _ in range(2):  # idempotent: 204 with no body, the second time too
        erased = client.http.delete("/customers/bob")
        assert erased.status_code == 204
        assert erased.content == b""
    assert fetch(image_url).status_code == 404
    assert fetch(result_url).status_code == 404
    generation = client.http.get(f"/generations/{started.json()['generationId']}").json()
    assert generation["status"] == "COMPLETED"
    assert "resultImageUrl" not in generation
    assert fetch(kept_url).status_code == 200
    assert fetch(others_url).status_code == 200
    assert client.http.delete("/customers/nobody").status_code == 204


def test_t3_public_url_sets_the_base_of_media_urls(
    start: Callable[..., Server], app: Callable[..., App]
) -> None:
    server = start("--db", MEMORY, "--public-url", "https://tryon.example.test/edge/")
    client = app(server)
    _, image_url = client.image_id()
    assert image_url.startswith("https://tryon.example.test/edge/tryon/v1/media/")
    path = image_url.removeprefix("https://tryon.example.test/edge")
    assert fetch(server.root + path).content == PERSON  # what the proxy forwards


def test_t7_t14_a_person_given_by_url_comes_back_as_a_redirect(
    quick: Server, app: Callable[..., App]
) -> None:
    client = app(quick)
    answer = client.try_on(
        {
            "products": [mock_item("m")],
            "person": {"image": {"source": {"url": "https://cdn.example/me.jpg"}}},
        },
        sync=True,
    )
    result = httpx.get(answer.json()["resultImageUrl"], timeout=30, follow_redirects=False)
    assert result.status_code == 302
    assert result.headers["location"] == "https://cdn.example/me.jpg"


class _InProcess:
    """create_app on a catalog with a fake clock, under a real uvicorn on a loopback port."""

    def __init__(self, clock: FakeClock | None, **options: Any) -> None:
        import uvicorn

        from catalog_core.server import create_app

        catalog = options.pop("catalog", None) or cc.Catalog(cc.MemoryRepository(), clock=clock)
        self.app = create_app(catalog, **options)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the in-process server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}/tryon/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_t3_t4_t15_t22_media_urls_stop_working_when_their_retention_ends() -> None:
    clock = FakeClock()
    served = _InProcess(clock)
    try:
        with httpx.Client(base_url=served.base, headers={"x-api-key": "gk_a"}, timeout=30) as http:
            upload = http.post(
                "/images/upload",
                data={"keepForDays": "3"},
                files={"file": ("me.png", PERSON, "image/png")},
            ).json()
            started = http.post(
                "/try-on/sync",
                json={
                    "products": [mock_item("m")],
                    "person": person(upload["imageId"]),
                    "output": {"keepForDays": 1},
                },
            ).json()
            assert fetch(upload["imageUrl"]).status_code == 200
            assert fetch(started["resultImageUrl"]).status_code == 200

            clock.advance(days=1)  # the generation's day is over, the image's three are not
            assert fetch(started["resultImageUrl"]).status_code == 404
            gone = http.get(f"/generations/{started['generationId']}")
            assert gone.status_code == 404
            assert gone.json()["code"] == "GENERATION_NOT_FOUND"
            assert fetch(upload["imageUrl"]).status_code == 200

            clock.advance(days=2)
            assert fetch(upload["imageUrl"]).status_code == 404
            again = http.post(
                "/try-on", json={"products": [mock_item("m")], "person": person(upload["imageId"])}
            )
            assert again.status_code == 400
            assert again.json()["details"][0]["path"] == "person.image.source.id"
    finally:
        served.stop()


class _CountingRepository(cc.MemoryRepository):
    """A memory repository that counts the reads of generations."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_generation(self, account: str, generation_id: str) -> Any:
        self.reads += 1
        return super().get_generation(account, generation_id)


def test_t11_a_sync_wait_ends_when_its_client_goes_away() -> None:
    """A client that gives up does not leave a wait reading its generation until the timeout."""
    from catalog_core.tryon import LocalEngine, TryOn

    repository = _CountingRepository()
    catalog = cc.Catalog(repository)
    served = _InProcess(
        None,
        catalog=catalog,
        tryon=TryOn(catalog, engine=LocalEngine(generation_seconds=60)),
        sync_timeout=30,
    )
    try:
        body = {
            "products": [{"externalId": "p", "images": [{"source": {"url": CDN_IMAGE}}]}],
            "person": {"image": {"source": {"url": CDN_IMAGE}}},
        }
        with pytest.raises(httpx.TimeoutException):
            httpx.post(
                f"{served.base}/try-on/sync", json=body, headers={"x-api-key": "gk_a"}, timeout=1
            )
        time.sleep(1.5)  # at most one nap after the client left
        settled = repository.reads
        time.sleep(2.5)
        assert repository.reads == settled
        assert settled >= 1  # it did wait, and read, while the client was there
    finally:
        served.stop()


# -- T21: what holds for products holds here ----------------------------------------------------


def test_t1_t21_upload_takes_multipart_only_and_needs_a_file(
    quick: Server, app: Callable[..., App]
) -> None:
    client = app(quick)
    as_json = client.http.post("/images/upload", json={"file": "x"})
    assert as_json.status_code == 415
    assert as_json.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    without = client.http.post("/images/upload", data={"crop": "false"}, files={"x": ("x", b"")})
    assert without.status_code == 400
    assert without.json()["code"] == "FILE_REQUIRED"
    not_an_image = client.upload(b"GIF89a" + b"\x00" * 20)
    assert not_an_image.status_code == 400
    assert not_an_image.json()["code"] == "INVALID_IMAGE"
    bad_fields = client.upload(crop="maybe", keepForDays="2")
    assert bad_fields.status_code == 400
    assert [d["path"] for d in bad_fields.json()["details"]] == ["crop", "keepForDays"]
    deprecated = client.upload(retentionDays="3", customerId="c-1", extra="x")
    assert deprecated.status_code == 200, deprecated.text
    assert [w["path"] for w in json.loads(deprecated.headers[WARNINGS_HEADER])] == [
        "extra",
        "retentionDays",
        "customerId",
    ]
    assert client.credits() == 10


def test_t21_every_try_on_endpoint_needs_a_key_but_media_urls(
    quick: Server, app: Callable[..., App]
) -> None:
    client = app(quick)
    _, image_url = client.image_id()
    for method, path in (
        ("POST", "/images/upload"),
        ("POST", "/try-on"),
        ("POST", "/try-on/sync"),
        ("GET", "/generations/gen_x"),
        ("GET", "/account/credits"),
        ("DELETE", "/customers/bob"),
    ):
        answer = httpx.request(method, quick.base + path, timeout=30)
        assert answer.status_code == 401, (path, answer.text)
        assert answer.json()["code"] == "MISSING_API_KEY"
    assert fetch(image_url).status_code == 200


def test_t9_t13_t21_errors_come_one_at_a_time_in_the_rule_books_order(
    quick: Server, app: Callable[..., App]
) -> None:
    client, other = app(quick), app(quick)
    image_id, _ = client.image_id()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"person": person(image_id)}, "VALIDATION_FAILED"),
        ({"products": [{"externalId": "x"}]}, "CUSTOMER_IMAGE_REQUIRED"),
        (
            {"products": [{"externalId": "x"}], "person": {"image": {"source": {}}}},
            "INVALID_IMAGE_INPUT",
        ),
        (
            {
                "products": [{"externalId": "x"}],
                "person": {"image": {"source": {"url": "https://me.invalid/a.jpg"}}},
            },
            "CUSTOMER_IMAGE_FETCH_FAILED",
        ),
        ({"products": [{"externalId": "x"}], "person": person(image_id)}, "PRODUCT_NOT_FOUND"),
        (
            {"products": [{"externalId": "_anon_x", "title": "t"}], "person": person(image_id)},
            "RESERVED_EXTERNAL_ID",
        ),
    ]
    for body, code in cases:
        for sync in (False, True):
            answer = client.try_on(body, sync=sync)
            assert answer.json()["code"] == code, (body, answer.text)
            assert answer.status_code == answer.json()["status"]
    assert client.credits() == 10
    assert client.http.get("/products").json()["count"] == 0  # nothing was written (T9)
    started = client.try_on({"products": [mock_item("m")], "person": person(image_id)})
    generation_id = started.json()["generationId"]
    for probe, path in ((other, generation_id), (client, "gen_nothing")):
        missing = probe.http.get(f"/generations/{path}")
        assert missing.status_code == 404
        assert missing.json() == {
            "code": "GENERATION_NOT_FOUND",
            "message": f"Generation '{path}' not found.",
            "status": 404,
        }
    too_long = client.http.delete("/customers/" + "c" * 257)
    assert too_long.status_code == 400
    assert too_long.json()["details"][0]["path"] == "customerId"


def test_t21_r33_a_try_on_body_over_the_request_limit_is_413_before_it_is_read(
    quick: Server,
) -> None:
    for path in (b"/try-on", b"/try-on/sync", b"/images/upload"):
        head = (
            b"POST /tryon/v1" + path + b" HTTP/1.1\r\nHost: test\r\nx-api-key: k\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 33554433\r\n\r\n-"
        )
        with socket.create_connection(("127.0.0.1", quick.port), timeout=30) as sock:
            sock.sendall(head)  # one byte of the 32 MiB + 1 is sent: no waiting for it
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.split(b" ", 2)[1] == b"413", answer
        assert b"connection: close" in answer.lower()
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "PAYLOAD_TOO_LARGE"


def test_t21_the_rate_limit_counts_try_on_requests_and_never_media_urls(
    start: Callable[..., Server], app: Callable[..., App]
) -> None:
    server = start("--db", MEMORY, "--rate-limit", "2")
    client = app(server)
    _, image_url = client.image_id()
    assert client.http.get("/account/credits").status_code == 200
    limited = client.http.get("/account/credits")
    assert limited.status_code == 429
    assert limited.json()["code"] == "RATE_LIMITED"
    assert limited.headers["retry-after"]
    assert [fetch(image_url).status_code for _ in range(5)] == [200] * 5


def test_t21_unknown_query_parameters_are_warned_about(
    quick: Server, app: Callable[..., App]
) -> None:
    client = app(quick)
    answer = client.http.get("/account/credits", params={"verbose": "1"})
    assert answer.status_code == 200
    assert json.loads(answer.headers[WARNINGS_HEADER]) == [
        {"code": "UNKNOWN_FIELD", "path": "verbose", "message": "unknown query parameter ignored"}
    ]
