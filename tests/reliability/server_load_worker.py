"""One process of the server load generator: asyncio tasks sending a mix of requests to a server.

``python -m tests.reliability.server_load_worker CONFIG`` (CONFIG: a JSON object with ``base``,
``seconds``, ``seed`` and ``tasks``) prints ``ready``, waits for a line on stdin, then runs
``tasks`` concurrent tasks, each with an ``httpx.AsyncClient`` of its own, for ``seconds`` and
prints one JSON object:

- ``outcomes``: for every kind of request (:data:`KINDS`), how many answers had each outcome,
  ``"200"`` or ``"412 VERSION_CONFLICT"`` (the status, then the error code of an error);
- ``accepted``: the versioned writes each lasting product accepted, by ``account/externalId``;
- ``abandoned``: the writes to each lasting product whose client gave up before the answer
  (each may or may not have been applied, but whole: R26);
- ``walks``: how many whole listings were walked and checked;
- ``seconds``: how long the tasks ran, the last walk included;
- ``problems``: every answer that broke a rule the generator checks on the spot (an error body
  not in the R29 shape, an ETag that does not follow from the If-Match that was met, a walk that
  missed, repeated or misordered a product, a warning header missing);
- ``transport``: every request that got no answer at all (a dropped or reset connection, a
  timeout).

Versions are counted only on products that are never deleted (hot and cold ids); deletes and
re-creates run on churning ids of their own, whose versions start again at 1.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import ssl
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Final, NamedTuple
from urllib.parse import quote

# httpcore 1.0 imports sniffio on every request; where sniffio is not installed (recent anyio no
# longer depends on it) each of those imports is a failed search of sys.path, about a fifth of the
# generator's time. Marked absent, it fails at once, and httpcore assumes asyncio, as it is.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

import httpx

from tests.helpers import JPEG, PNG

API: Final = "/tryon/v1"
#: The server's key table (``--api-key KEY=ACCOUNT``): two keys share one account.
KEYS: Final = {
    "gk_load_acme_1": "acme",
    "gk_load_acme_2": "acme",
    "gk_load_globex": "globex",
    "gk_load_initech": "initech",
}
ACCOUNTS: Final = sorted(set(KEYS.values()))
HOT, COLD, CHURN = 10, 1000, 6
#: The share of requests sent with ``Connection: close``, so connections come and go too.
CLOSE_SHARE: Final = 0.05

#: The outcome of a request whose client gave up waiting and closed the connection.
ABANDONED: Final = "abandoned"

UPSERT: Final = f"post {API}/products"
LIST: Final = f"get {API}/products"
GET: Final = f"get {API}/products/{{externalId}}"
DELETE: Final = f"delete {API}/products/{{externalId}}"


def hot_id(n: int) -> str:
    # The last hot id holds what a path must carry percent-encoded: non-ASCII, "/" and a space.
    return f"hot-{n:02d}" if n < HOT - 1 else f"hot-{n:02d}/ünï cödé"


def cold_id(n: int) -> str:
    return f"cold-{n:04d}"


def churn_id(n: int) -> str:
    return f"churn-{n}"


def own_id(account: str) -> str:
    """A product only ``account`` has: the others must not see it (R1)."""
    return f"own-{account}"


def lasting_ids(account: str) -> list[str]:
    """The products of ``account`` that exist throughout the run, in listing order."""
    ids = [hot_id(n) for n in range(HOT)] + [cold_id(n) for n in range(COLD)] + [own_id(account)]
    return sorted(ids)


def product_path(external_id: str) -> str:
    """The path of a product, its id percent-encoded as UTF-8."""
    return "/products/" + quote(external_id, safe="")


def image(n: int) -> dict[str, Any]:
    return {"source": {"url": f"https://cdn.example/p/{n}.jpg"}}


def seed_payloads(account: str) -> list[dict[str, Any]]:
    """The upserts that create every lasting product of ``account``, before the load starts."""
    return [{"externalId": i, "title": i, "images": [image(0)]} for i in lasting_ids(account)]


class Kind(NamedTuple):
    """One kind of request: the OpenAPI operation it calls and the outcomes it may have."""

    operation: str | None  # None: no operation (an unknown path, a method a path lacks)
    allowed: frozenset[str]


def _kind(operation: str | None, *allowed: str) -> Kind:
    return Kind(operation, frozenset(allowed))


_BAD = "400 VALIDATION_FAILED"
#: Every kind of request the generator sends, with the only outcomes it may get.
KINDS: Final = {
    # Versioned writes to lasting products: each accepted one adds 1 to the version.
    "upsert_full": _kind(UPSERT, "200"),
    "upsert_partial": _kind(UPSERT, "200"),
    "upsert_cold": _kind(UPSERT, "200"),
    "upsert_image_urls": _kind(UPSERT, "200"),
    "upsert_multipart": _kind(UPSERT, "200"),
    "if_match.get": _kind(GET, "200"),
    "if_match.post": _kind(UPSERT, "200", "412 VERSION_CONFLICT"),
    "if_match_any": _kind(UPSERT, "200"),
    # Reads.
    "get_hot": _kind(GET, "200"),
    "get_cold": _kind(GET, "200"),
    "head_hot": _kind(GET, "200"),
    "page": _kind(LIST, "200"),
    "walk": _kind(LIST, "200"),
    # Clients that give up: the connection is dropped a few milliseconds after sending.
    "abandon_get": _kind(GET, "200", ABANDONED),
    "abandon_upsert": _kind(UPSERT, "200", ABANDONED),
    # Deletes and re-creates, on churning ids only.
    "churn.delete": _kind(DELETE, "204", "404 PRODUCT_NOT_FOUND"),
    "churn.create": _kind(UPSERT, "201", "200"),
    "churn_if_match.get": _kind(GET, "200", "404 PRODUCT_NOT_FOUND"),
    "churn_if_match.delete": _kind(DELETE, "204", "404 PRODUCT_NOT_FOUND", "412 VERSION_CONFLICT"),
    # Bad requests: each has exactly one documented answer, and writes nothing.
    "bad_json": _kind(UPSERT, _BAD),
    "bad_not_object": _kind(UPSERT, _BAD),
    "bad_missing_id": _kind(UPSERT, "400 EXTERNAL_ID_REQUIRED"),
    "bad_id_too_long": _kind(UPSERT, _BAD),
    "bad_wrong_type": _kind(UPSERT, _BAD),
    "bad_valid_for_days": _kind(UPSERT, _BAD),
    "bad_title_too_long": _kind(UPSERT, _BAD),
    "bad_metadata_type": _kind(UPSERT, _BAD),
    "bad_metadata_too_big": _kind(UPSERT, _BAD),
    "bad_too_many_images": _kind(UPSERT, _BAD),
    "bad_url": _kind(UPSERT, _BAD),
    "bad_image_input": _kind(UPSERT, "400 INVALID_IMAGE_INPUT"),
    "bad_file_key_json": _kind(UPSERT, "400 MULTIPART_FILE_NOT_FOUND"),
    "bad_file_key_multipart": _kind(UPSERT, "400 MULTIPART_FILE_NOT_FOUND"),
    "bad_image_bytes": _kind(UPSERT, "400 INVALID_IMAGE"),
    "bad_multipart_no_data": _kind(UPSERT, _BAD),
    "bad_no_images": _kind(UPSERT, "400 PRODUCT_IMAGES_REQUIRED"),
    "bad_empty_images": _kind(UPSERT, "400 PRODUCT_IMAGES_REQUIRED"),
    "bad_reserved_id": _kind(UPSERT, "409 RESERVED_EXTERNAL_ID"),
    "bad_if_match_weak": _kind(UPSERT, "412 VERSION_CONFLICT"),
    "bad_if_match_syntax": _kind(UPSERT, _BAD),
    "bad_content_type": _kind(UPSERT, "415 UNSUPPORTED_MEDIA_TYPE"),
    "bad_no_content_type": _kind(UPSERT, "415 UNSUPPORTED_MEDIA_TYPE"),
    "bad_missing_key": _kind(UPSERT, "401 MISSING_API_KEY"),
    "bad_invalid_key": _kind(UPSERT, "401 INVALID_API_KEY"),
    "bad_invalid_key_get": _kind(GET, "401 INVALID_API_KEY"),
    "bad_get_unknown": _kind(GET, "404 PRODUCT_NOT_FOUND"),
    "bad_get_other_account": _kind(GET, "404 PRODUCT_NOT_FOUND"),
    "bad_get_anon": _kind(GET, "404 PRODUCT_NOT_FOUND"),
    "bad_delete_unknown": _kind(DELETE, "404 PRODUCT_NOT_FOUND"),
    "bad_id_not_utf8": _kind(GET, _BAD),
    "bad_limit": _kind(LIST, _BAD),
    "bad_cursor": _kind(LIST, _BAD),
    "bad_foreign_cursor": _kind(LIST, _BAD),
    "bad_route": _kind(None, "404 ROUTE_NOT_FOUND"),
    "bad_method": _kind(None, "405 METHOD_NOT_ALLOWED"),
}
_ERROR_KEYS: Final = {"code", "message", "status", "details"}


class Generator:
    """The load of one process: its tasks, each with a client of its own, and their counts."""

    def __init__(self, base: str, seed: int) -> None:
        self.base = base
        self.seed = seed
        # One SSL context for every client: each would otherwise build its own (40 ms of CPU).
        self.tls = ssl.create_default_context()
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.accepted: Counter[str] = Counter()
        self.abandoned: Counter[str] = Counter()  # writes that may or may not have been applied
        self.problems: list[str] = []
        self.transport: list[str] = []
        self.walks = 0
        self.serial = 0
        # The last cursor seen for each account, for cursors replayed by another account.
        self.cursors: dict[str, str] = {}
        self.flows: dict[str, tuple[int, Callable[[random.Random], Awaitable[None]]]] = {
            "upsert_full": (90, self.upsert_full),
            "upsert_partial": (100, self.upsert_partial),
            "upsert_cold": (50, self.upsert_cold),
            "upsert_image_urls": (20, self.upsert_image_urls),
            "upsert_multipart": (70, self.upsert_multipart),
            "if_match": (60, self.if_match),
            "if_match_any": (20, self.if_match_any),
            "get_hot": (90, self.get_hot),
            "get_cold": (40, self.get_cold),
            "head_hot": (20, self.head_hot),
            "page": (30, self.page),
            "walk": (6, self.walk),
            "abandon_get": (10, self.abandon_get),
            "abandon_upsert": (10, self.abandon_upsert),
            "churn": (60, self.churn),
            "churn_if_match": (20, self.churn_if_match),
            **{name: (7, self.bad(name)) for name in KINDS if name.startswith("bad_")},
        }
        self.names = list(self.flows)
        self.weights = [weight for weight, _ in self.flows.values()]

    # -- sending and recording -------------------------------------------------------------

    async def send(
        self,
        rng: random.Random,
        kind: str,
        method: str,
        path: str,
        *,
        key: str | None = "",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """Send one request and record its outcome; ``None`` when no answer came.

        ``key`` is the API key to send: ``""`` picks one of :data:`KEYS`, ``None`` sends none.
        """
        sent = dict(headers or {})
        if key is not None:
            sent["x-api-key"] = key or rng.choice(list(KEYS))
        if rng.random() < CLOSE_SHARE:
            sent["connection"] = "close"
        try:
            response = await _CLIENT.get().request(method, API + path, headers=sent, **kwargs)
        except httpx.TransportError as exc:
            self.transport.append(f"{kind}: {method} {path}: {type(exc).__name__}: {exc!r}")
            return None
        outcome = str(response.status_code)
        if response.status_code >= 400:
            outcome += f" {self.error_code(kind, method, response)}"
        self.outcomes[kind][outcome] += 1
        return response

    def error_code(self, kind: str, method: str, response: httpx.Response) -> str:
        """The code of an error answer, after checking its body is the R29 shape."""
        if method == "HEAD":
            return "?"
        try:
            body = response.json()
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or not {"code", "message", "status"} <= body.keys() <= _ERROR_KEYS
            or not isinstance(body["code"], str)
            or not isinstance(body["message"], str)
            or body["status"] != response.status_code
        ):
            self.problems.append(f"{kind}: not an R29 error body: {response.text[:300]!r}")
            return "?"
        code: str = body["code"]
        return code

    def accept(self, key: str, external_id: str, response: httpx.Response | None) -> None:
        """Count a versioned write the server accepted."""
        if response is not None and response.status_code in (200, 201):
            self.accepted[f"{KEYS[key]}/{external_id}"] += 1

    def check_etag(self, kind: str, response: httpx.Response, expected: int | None) -> int | None:
        """The version an answer's ETag names (checked against ``expected`` when given)."""
        tag = response.headers.get("etag", "")
        version = int(tag[1:-1]) if tag[1:-1].isdigit() and tag[:1] == tag[-1:] == '"' else None
        if version is None or (expected is not None and version != expected):
            self.problems.append(f"{kind}: ETag {tag!r}, expected version {expected}")
        return version

    async def post(
        self, rng: random.Random, kind: str, key: str, target: str, **kwargs: Any
    ) -> httpx.Response | None:
        """POST an upsert of ``target`` and count it if the server accepted it."""
        response = await self.send(rng, kind, "POST", "/products", key=key, **kwargs)
        self.accept(key, target, response)
        return response

    # -- versioned writes to lasting products ---------------------------------------------

    async def upsert_full(self, rng: random.Random) -> None:
        key, target = rng.choice(list(KEYS)), hot_id(rng.randrange(HOT))
        images = [image(rng.randrange(100)) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.5:
            images[0]["classifications"] = {"category": "tops", "n": rng.randrange(10)}
        payload = {
            "externalId": target,
            "title": f"Tee {rng.randrange(10**6)}",
            "description": "Soft cotton, regular fit. " * rng.randint(1, 20),
            "metadata": {"sku": rng.randrange(10**6), "tags": ["a", "b"], "writer": self.seed},
            "validForDays": rng.choice([None, 30, 365]),
            "images": images,
        }
        await self.post(rng, "upsert_full", key, target, json=payload)

    async def upsert_partial(self, rng: random.Random) -> None:
        key, target = rng.choice(list(KEYS)), hot_id(rng.randrange(HOT))
        payload = {"externalId": target, "title": f"Tee {rng.randrange(10**6)}"}
        await self.post(rng, "upsert_partial", key, target, json=payload)

    async def upsert_cold(self, rng: random.Random) -> None:
        key, target = rng.choice(list(KEYS)), cold_id(rng.randrange(COLD))
        payload = {"externalId": target, "description": f"restocked {rng.randrange(10**6)}"}
        await self.post(rng, "upsert_cold", key, target, json=payload)

    async def upsert_image_urls(self, rng: random.Random) -> None:
        key, target = rng.choice(list(KEYS)), hot_id(rng.randrange(HOT))
        payload = {"externalId": target, "imageUrls": ["https://cdn.example/legacy.jpg"]}
        response = await self.post(rng, "upsert_image_urls", key, target, json=payload)
        if (
            response is not None
            and response.status_code == 200
            and response.headers.get("catalog-warnings-count") != "1"
        ):
            self.problems.append("upsert_image_urls: no deprecation warning header")

    async def upsert_multipart(self, rng: random.Random) -> None:
        key, target = rng.choice(list(KEYS)), hot_id(rng.randrange(HOT))
        # A few distinct byte strings: the same bytes twice are stored once (R15).
        jpeg = JPEG + bytes([rng.randrange(8)]) * 16
        files: dict[str, tuple[str, bytes, str]] = {"front": ("front.jpg", jpeg, "image/jpeg")}
        images: list[dict[str, Any]] = [{"source": {"fileKey": "front"}}, image(1)]
        if rng.random() < 0.5:
            files["back"] = ("back.png", PNG, "image/png")
            images.append({"source": {"fileKey": "back"}})
        payload = {
            "externalId": target,
            "title": f"Uploaded {rng.randrange(10**6)}",
            "images": images,
        }
        data = {"data": json.dumps(payload)}
        await self.post(rng, "upsert_multipart", key, target, data=data, files=files)

    async def if_match(self, rng: random.Random) -> None:
        key, target = rng.choice(list(KEYS)), hot_id(rng.randrange(HOT))
        got = await self.send(rng, "if_match.get", "GET", product_path(target), key=key)
        if got is None or got.status_code != 200:
            return
        version = self.check_etag("if_match.get", got, None)
        if version is None:
            return
        payload = {"externalId": target, "title": f"Checked {rng.randrange(10**6)}"}
        headers = {"if-match": f'"{version}"'}
        response = await self.post(rng, "if_match.post", key, target, json=payload, headers=headers)
        if response is not None and response.status_code == 200:
            self.check_etag("if_match.post", response, version + 1)

    async def if_match_any(self, rng: random.Random) -> None:
        key, target = rng.choice(list(KEYS)), hot_id(rng.randrange(HOT))
        payload = {"externalId": target, "metadata": {"any": rng.randrange(10**6)}}
        headers = {"if-match": "*"}
        await self.post(rng, "if_match_any", key, target, json=payload, headers=headers)

    # -- reads ----------------------------------------------------------------------------

    async def get_hot(self, rng: random.Random) -> None:
        response = await self.send(rng, "get_hot", "GET", product_path(hot_id(rng.randrange(HOT))))
        if response is not None and response.status_code == 200:
            self.check_etag("get_hot", response, None)

    async def get_cold(self, rng: random.Random) -> None:
        await self.send(rng, "get_cold", "GET", product_path(cold_id(rng.randrange(COLD))))

    async def head_hot(self, rng: random.Random) -> None:
        await self.send(rng, "head_hot", "HEAD", product_path(hot_id(rng.randrange(HOT))))

    async def page(self, rng: random.Random) -> None:
        key = rng.choice(list(KEYS))
        params = {"limit": str(rng.choice([1, 10, 50]))}
        if rng.random() < 0.2:  # an unknown parameter: ignored, with a warning
            params["sort"] = "title"
        response = await self.send(rng, "page", "GET", "/products", key=key, params=params)
        if response is None or response.status_code != 200:
            return
        if response.json()["nextCursor"]:
            self.cursors[KEYS[key]] = response.json()["nextCursor"]
        if ("sort" in params) != ("catalog-warnings" in response.headers):
            self.problems.append(f"page: warnings {response.headers.get('catalog-warnings')!r}")

    async def walk(self, rng: random.Random) -> None:
        """Walk an account's whole listing; each lasting product must come once, in order (R24)."""
        key, limit = rng.choice(list(KEYS)), rng.choice([50, 100, 200])
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params = (
                {"limit": str(limit)} if cursor is None else {"limit": str(limit), "cursor": cursor}
            )
            response = await self.send(rng, "walk", "GET", "/products", key=key, params=params)
            if response is None or response.status_code != 200:
                return
            page = response.json()
            seen += [item["externalId"] for item in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
            self.cursors[KEYS[key]] = cursor
        lasting = [i for i in seen if not i.startswith("churn-")]
        if lasting != lasting_ids(KEYS[key]) or seen != sorted(set(seen)):
            self.problems.append(
                f"walk: {len(lasting)} lasting products seen, in order: {seen == sorted(set(seen))}"
            )
        self.walks += 1

    # -- clients that give up -------------------------------------------------------------

    async def abandon(
        self, rng: random.Random, kind: str, *args: Any, **kwargs: Any
    ) -> tuple[bool, httpx.Response | None]:
        """Send a request but give up on it after 0.5 to 5 ms: whether it was, and the answer.

        Cancelling the request makes httpx drop its connection, as a client that times out does.
        The task then goes on with a new client: httpcore 1.0.9 can keep a connection cancelled
        while it was being opened in its pool for good, so that the pool's only slot stays taken
        and every later request fails with ``PoolTimeout`` (encode/httpcore#1093).
        """
        try:
            async with asyncio.timeout(rng.uniform(0.0005, 0.005)):
                return False, await self.send(rng, kind, *args, **kwargs)
        except TimeoutError:
            self.outcomes[kind][ABANDONED] += 1
            given_up = _CLIENT.get()
            _CLIENT.set(self.client())
            await given_up.aclose()
            return True, None

    async def abandon_get(self, rng: random.Random) -> None:
        await self.abandon(rng, "abandon_get", "GET", product_path(hot_id(rng.randrange(HOT))))

    async def abandon_upsert(self, rng: random.Random) -> None:
        """A partial upsert given up on: it is applied whole or not at all (R26)."""
        key, target = rng.choice(list(KEYS)), cold_id(rng.randrange(COLD))
        payload = {"externalId": target, "title": f"abandoned {rng.randrange(10**6)}"}
        abandoned, response = await self.abandon(
            rng, "abandon_upsert", "POST", "/products", key=key, json=payload
        )
        if abandoned:
            self.abandoned[f"{KEYS[key]}/{target}"] += 1
        self.accept(key, target, response)

    # -- deletes and re-creates -----------------------------------------------------------

    async def churn(self, rng: random.Random, target: str = "") -> None:
        """Delete a churning product, and create it when it was not there."""
        key, target = rng.choice(list(KEYS)), target or churn_id(rng.randrange(CHURN))
        deleted = await self.send(rng, "churn.delete", "DELETE", product_path(target), key=key)
        if deleted is None or deleted.status_code != 404:
            return
        if rng.random() < 0.5:
            payload = {"externalId": target, "images": [image(2)], "validForDays": 1}
            await self.send(rng, "churn.create", "POST", "/products", key=key, json=payload)
            return
        data = {
            "data": json.dumps({"externalId": target, "images": [{"source": {"fileKey": "f"}}]})
        }
        files = {"f": ("f.png", PNG, "image/png")}
        await self.send(rng, "churn.create", "POST", "/products", key=key, data=data, files=files)

    async def churn_if_match(self, rng: random.Random, target: str = "") -> None:
        """Read a churning product and delete it if it is still at the version read."""
        key, target = rng.choice(list(KEYS)), target or churn_id(rng.randrange(CHURN))
        got = await self.send(rng, "churn_if_match.get", "GET", product_path(target), key=key)
        if got is None or got.status_code != 200:
            return
        tag = got.headers.get("etag", "")
        await self.send(
            rng,
            "churn_if_match.delete",
            "DELETE",
            product_path(target),
            key=key,
            headers={"if-match": tag},
        )

    # -- bad requests ---------------------------------------------------------------------

    def bad(self, name: str) -> Callable[[random.Random], Awaitable[None]]:
        async def flow(rng: random.Random) -> None:
            await self.send_bad(rng, name)

        return flow

    async def send_bad(self, rng: random.Random, name: str) -> None:
        """Send the bad request ``name``; most aim at a hot product, which must not change."""
        hot = hot_id(rng.randrange(HOT))
        valid = {"externalId": hot, "title": "never written"}
        post = "/products"
        match name:
            case "bad_json":
                await self.send(
                    rng, name, "POST", post, content=b'{"externalId": "hot-0', headers=_JSON
                )
            case "bad_not_object":
                await self.send(rng, name, "POST", post, json=[valid])
            case "bad_missing_id":
                await self.send(
                    rng, name, "POST", post, json={"title": "no id", "images": [image(3)]}
                )
            case "bad_id_too_long":
                await self.send(
                    rng, name, "POST", post, json={"externalId": "x" * 257, "images": [image(3)]}
                )
            case "bad_wrong_type":
                await self.send(rng, name, "POST", post, json={"externalId": hot, "title": 42})
            case "bad_valid_for_days":
                await self.send(
                    rng, name, "POST", post, json={"externalId": hot, "validForDays": 2.0}
                )
            case "bad_title_too_long":
                await self.send(
                    rng, name, "POST", post, json={"externalId": hot, "title": "t" * 1001}
                )
            case "bad_metadata_type":
                await self.send(
                    rng, name, "POST", post, json={"externalId": hot, "metadata": "big"}
                )
            case "bad_metadata_too_big":
                metadata = {"blob": "m" * (16 * 1024)}
                await self.send(
                    rng, name, "POST", post, json={"externalId": hot, "metadata": metadata}
                )
            case "bad_too_many_images":
                images = [image(n) for n in range(21)]
                await self.send(rng, name, "POST", post, json={"externalId": hot, "images": images})
            case "bad_url":
                images = [{"source": {"url": "ftp://cdn.example/a.jpg"}}]
                await self.send(rng, name, "POST", post, json={"externalId": hot, "images": images})
            case "bad_image_input":
                images = [{"source": {"url": "https://cdn.example/a.jpg", "fileKey": "f"}}]
                await self.send(rng, name, "POST", post, json={"externalId": hot, "images": images})
            case "bad_file_key_json":
                images = [{"source": {"fileKey": "front"}}]
                await self.send(rng, name, "POST", post, json={"externalId": hot, "images": images})
            case "bad_file_key_multipart":
                data = {
                    "data": json.dumps(
                        {"externalId": hot, "images": [{"source": {"fileKey": "front"}}]}
                    )
                }
                files = {"back": ("back.jpg", JPEG, "image/jpeg")}
                await self.send(rng, name, "POST", post, data=data, files=files)
            case "bad_image_bytes":
                data = {
                    "data": json.dumps(
                        {"externalId": hot, "images": [{"source": {"fileKey": "f"}}]}
                    )
                }
                files = {"f": ("f.jpg", b"this is not an image at all", "image/jpeg")}
                await self.send(rng, name, "POST", post, data=data, files=files)
            case "bad_multipart_no_data":
                files = {"f": ("f.jpg", JPEG, "image/jpeg")}
                await self.send(rng, name, "POST", post, data={"title": "x"}, files=files)
            case "bad_no_images":
                self.serial += 1
                payload = {"externalId": f"noimg-{self.seed}-{self.serial}", "title": "no image"}
                await self.send(rng, name, "POST", post, json=payload)
            case "bad_empty_images":
                await self.send(rng, name, "POST", post, json={"externalId": hot, "images": []})
            case "bad_reserved_id":
                reserved = {"externalId": "_anon_" + "a" * 24, "images": [image(3)]}
                await self.send(rng, name, "POST", post, json=reserved)
            case "bad_if_match_weak":
                await self.send(rng, name, "POST", post, json=valid, headers={"if-match": 'W/"1"'})
            case "bad_if_match_syntax":
                await self.send(rng, name, "POST", post, json=valid, headers={"if-match": "1"})
            case "bad_content_type":
                body = json.dumps(valid).encode()
                await self.send(
                    rng, name, "POST", post, content=body, headers={"content-type": "text/plain"}
                )
            case "bad_no_content_type":
                await self.send(rng, name, "POST", post, content=json.dumps(valid).encode())
            case "bad_missing_key":
                await self.send(rng, name, "POST", post, key=None, json=valid)
            case "bad_invalid_key":
                await self.send(rng, name, "POST", post, key="gk_load_nobody", json=valid)
            case "bad_invalid_key_get":
                await self.send(rng, name, "GET", product_path(hot), key="gk_load_nobody")
            case "bad_get_unknown":
                await self.send(rng, name, "GET", f"/products/unknown-{rng.randrange(10**6)}")
            case "bad_get_other_account":
                key = rng.choice(list(KEYS))
                other = rng.choice([a for a in ACCOUNTS if a != KEYS[key]])
                await self.send(rng, name, "GET", product_path(own_id(other)), key=key)
            case "bad_get_anon":
                await self.send(rng, name, "GET", "/products/_anon_" + "z" * 24)
            case "bad_delete_unknown":
                await self.send(rng, name, "DELETE", f"/products/unknown-{rng.randrange(10**6)}")
            case "bad_id_not_utf8":
                await self.send(rng, name, "GET", "/products/hot-%FF")
            case "bad_limit":
                await self.send(
                    rng, name, "GET", "/products", params={"limit": rng.choice(["0", "201", "x"])}
                )
            case "bad_cursor":
                await self.send(rng, name, "GET", "/products", params={"cursor": "not-a-cursor"})
            case "bad_foreign_cursor":
                owner = rng.choice(ACCOUNTS)
                cursor = self.cursors.get(owner)
                if cursor is None:  # no listing of that account seen yet: get one of its cursors
                    owner_key = next(k for k, a in KEYS.items() if a == owner)
                    params = {"limit": "1"}
                    response = await self.send(
                        rng, "page", "GET", "/products", key=owner_key, params=params
                    )
                    if response is None or response.status_code != 200:
                        return
                    cursor = self.cursors[owner] = response.json()["nextCursor"]
                key = rng.choice([k for k, a in KEYS.items() if a != owner])
                await self.send(rng, name, "GET", "/products", key=key, params={"cursor": cursor})
            case "bad_route":
                await self.send(rng, name, "GET", "/productz")
            case "bad_method":
                await self.send(rng, name, "PUT", post, json=valid)
            case _:
                raise AssertionError(name)

    # -- running --------------------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        """A client for one task: one connection, kept alive between requests."""
        return httpx.AsyncClient(base_url=self.base, timeout=60, limits=_ONE, verify=self.tls)

    async def task(self, number: int, client: httpx.AsyncClient, deadline: float) -> None:
        """One task, on a client of its own, sending until the deadline."""
        rng = random.Random(self.seed * 1000 + number)
        _CLIENT.set(client)  # in this task's context only
        try:
            if number == 0:  # every kind at least once per process, however slow the run
                for name in self.names:
                    await self.flows[name][1](rng)
                # On an id of this task's own, every step of the churn comes: create, delete.
                await self.churn(rng, churn_id(100 + self.seed))
                await self.churn_if_match(rng, churn_id(100 + self.seed))
            while time.monotonic() < deadline:
                (name,) = rng.choices(self.names, self.weights)
                await self.flows[name][1](rng)
        finally:
            await _CLIENT.get().aclose()

    def report(self) -> dict[str, Any]:
        return {
            "outcomes": {kind: dict(counts) for kind, counts in self.outcomes.items()},
            "accepted": dict(self.accepted),
            "abandoned": dict(self.abandoned),
            "walks": self.walks,
            "problems": self.problems,
            "transport": self.transport,
        }


_JSON: Final = {"content-type": "application/json"}
# A client per task, one connection each: httpcore's pool does work in proportion to its
# connections times its waiting requests on every request, so one client shared by all tasks
# spends more time in its pool than on the wire.
_ONE: Final = httpx.Limits(max_connections=1, max_keepalive_connections=1)
_CLIENT: ContextVar[httpx.AsyncClient] = ContextVar("_CLIENT")


async def run(config: dict[str, Any]) -> dict[str, Any]:
    generator = Generator(config["base"], int(config["seed"]))
    clients = [generator.client() for _ in range(int(config["tasks"]))]  # before the clock starts
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    began = time.monotonic()
    deadline = began + float(config["seconds"])
    await asyncio.gather(*(generator.task(n, c, deadline) for n, c in enumerate(clients)))
    return {**generator.report(), "seconds": time.monotonic() - began}


def main() -> None:
    report = asyncio.run(run(json.loads(sys.argv[1])))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
