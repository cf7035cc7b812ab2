"""The served OpenAPI document, checked against a real server by schemathesis (R28–R33).

Schemathesis makes requests from the document, valid and invalid, and sends them to a running
``catalog-core serve``. No answer may be a 5xx or contradict the document: its status is
documented, its content type, body and headers are as documented, invalid data is refused with a
4xx, a method the document does not list answers 405, and a request without a key answers 401.

The schema is loaded from the document the code generates, and the fixture that starts the
server checks that the server serves exactly that document. (``schemathesis.pytest.from_fixture``
would load it from the server itself, but schemathesis 4.32 reads ``Function._nodeid``, which
pytest 9.2 no longer has; a loaded schema also gives each operation a test item of its own,
which pytest-xdist can spread over the cores.)
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, Final, TypeGuard
from urllib.parse import unquote

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, CheckFunction, Response
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import CoveragePhaseData

import catalog_core as cc
from catalog_core.server.conditions import parse_if_match
from catalog_core.server.openapi import (
    IF_MATCH_PATTERN,
    OPENAPI_PATH,
    URL_PATTERN,
    openapi_document,
    server_error_classes,
)
from catalog_core.wire.decode import decode_upsert
from tests.helpers import JPEG, PNG, R31_PRODUCT_KEYS
from tests.server.conftest import Server, start_server

AnyCase = Case[Any]
LIMITS: Final = cc.Limits()  # `catalog-core serve` serves a catalog with the default limits
KEY: Final = "x-api-key"
PRODUCTS: Final = "/tryon/v1/products"
FRONT: Final = {"source": {"url": "https://cdn.example/front.jpg"}}
CODE_STATUS: Final = {cls.code: cls.status for cls in server_error_classes()}

# The error codes a request the document calls valid may still get, each for a reason JSON
# Schema cannot state: it depends on what the catalog holds, or on a measure it has no word for.
STATE_OR_MEASURE_CODES: Final = frozenset(
    {
        # A create needs an image (R5), and whether an upsert creates depends on what is stored.
        "PRODUCT_IMAGES_REQUIRED",
        # Get and delete need a live product with that id (R23, R25).
        "PRODUCT_NOT_FOUND",
        # If-Match must name the product's current version (R28).
        "VERSION_CONFLICT",
        # A fileKey must name a part of the same request (R14): JSON Schema cannot tie a value
        # to the name of a sibling part, and a JSON body has no parts at all.
        "MULTIPART_FILE_NOT_FOUND",
        # A named part must hold image bytes, recognised by their leading bytes, and at most
        # max_file_bytes of them (R15): the document can only say "image/*".
        "INVALID_IMAGE",
        "FILE_TOO_LARGE",
    }
)
# VALIDATION_FAILED details a valid request may still get, by path; `_measure_explains` then
# checks the value that was sent against the reason.
_MEASURED_PATH: Final = re.compile(
    r"^(?:cursor|validForDays|metadata|images\.\d+\.classifications)$"
)
_URL: Final = re.compile(URL_PATTERN)
_IF_MATCH: Final = re.compile(IF_MATCH_PATTERN)
_FRAMING_HEADERS: Final = frozenset(
    {"connection", "content-length", "expect", "host", "te", "transfer-encoding", "upgrade"}
)
_JSON_MAX_DEPTH: Final = 64  # catalog_core.wire.decode refuses JSON nested deeper than this

# Statuses the server answers to a request the document calls invalid (negative_data_rejection).
NEGATIVE_STATUSES: Final = [
    "400",  # VALIDATION_FAILED, EXTERNAL_ID_REQUIRED, INVALID_IMAGE_INPUT: a malformed request
    "401",  # MISSING_API_KEY: the x-api-key header is missing or empty
    "409",  # RESERVED_EXTERNAL_ID: the document refuses _anon_ ids in an upsert; the server
    #         tells the caller why with 409 (R3, R30)
    "415",  # UNSUPPORTED_MEDIA_TYPE: an upsert without a body has no Content-Type either (R32)
]
CONFIG: Final = {
    "checks": {
        # Replaced by `valid_requests_fail_only_on_state_or_measures` and
        # `requests_without_a_key_are_refused`: see their docstrings.
        "positive_data_acceptance": {"enabled": False},
        "ignored_auth": {"enabled": False},
        "negative_data_rejection": {"expected-statuses": NEGATIVE_STATUSES},
        "missing_required_header": {"expected-statuses": ["401"]},
    },
}
# One test per operation, with settings of its own whatever the profile: examples are
# derandomized, so every run sends the same requests, and a real server over HTTP is slower than
# Hypothesis' health checks expect.
SETTINGS: Final = settings(
    settings.get_profile("default"),
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _compact_size(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def _payload(case: AnyCase) -> object:
    """The JSON object of an upsert as the case holds it (``data`` of a multipart body)."""
    body = case.body
    if case.media_type == "multipart/form-data" and isinstance(body, Mapping):
        data = body.get("data")
        if isinstance(data, str | bytes):
            try:
                return json.loads(data)
            except ValueError:  # an invalid case's data that is not JSON
                return None
        return data
    return body


def _path_id(case: AnyCase) -> object:
    """The externalId of the path as the server reads it (the case holds it percent-encoded)."""
    raw = case.path_parameters.get("externalId")
    return unquote(raw) if isinstance(raw, str) else raw


def _at(value: object, path: str) -> object:
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _measure_explains(case: AnyCase, path: str) -> bool:
    """Whether a VALIDATION_FAILED at ``path`` is one the document cannot foresee.

    - ``cursor``: the cursor is opaque; one the client made up is refused (R24).
    - ``validForDays``: JSON Schema's integers include ``2.0``, which R10 refuses.
    - ``metadata`` and ``images.N.classifications``: their size is counted in bytes of compact
      UTF-8 JSON (R9, R16), and JSON may be nested at most 64 levels deep.

    A URL is never among them: the document's pattern admits exactly the URLs the server
    accepts (``test_r13_the_documents_url_pattern_...``).
    """
    if path == "cursor":
        return "cursor" in case.query
    value = _at(_payload(case), path)
    if path == "validForDays":
        return isinstance(value, float)
    limit = LIMITS.max_metadata_bytes if path == "metadata" else LIMITS.max_classifications_bytes
    return _compact_size(value) > limit or _depth(value) > _JSON_MAX_DEPTH


def _is_valid(case: AnyCase) -> bool:
    """Whether every part of the request is valid under the document.

    A case of the positive mode may still hold an invalid part: the coverage phase fills the
    headers it does not test with values of its own, which the If-Match pattern may refuse.
    """
    meta = case.meta
    return (
        meta is not None
        and meta.generation.mode.is_positive
        and all(component.mode.is_positive for component in meta.components.values())
    )


def _error_body(response: Response) -> dict[str, Any]:
    body = json.loads(response.content)
    assert isinstance(body, dict), f"an error body is a JSON object, got {body!r}"
    return body


def error_bodies_are_r29_errors(ctx: CheckContext, response: Response, case: AnyCase) -> None:
    """R29: every failure is ``{code, message, status, details?}`` with HTTP status == status.

    This holds for the answers the document does not describe too (a 405, for instance).
    """
    if response.status_code < 400:
        return
    assert response.headers.get("content-type") == ["application/json"], response.headers
    body = _error_body(response)
    assert {"code", "message", "status"} <= body.keys() <= {"code", "message", "status", "details"}
    assert body["status"] == response.status_code, body
    assert CODE_STATUS.get(body["code"]) == response.status_code, body
    if response.status_code == 405:
        assert response.headers.get("allow"), "a 405 lists the allowed methods in Allow"


def valid_requests_fail_only_on_state_or_measures(
    ctx: CheckContext, response: Response, case: AnyCase
) -> None:
    """A request the document calls valid is refused only for state or a size it cannot state.

    This replaces schemathesis' ``positive_data_acceptance``, which a stateful upsert API cannot
    satisfy literally: a create without images is refused though its body is schema-valid, an
    If-Match must name the current version, a cursor the client makes up is refused.
    """
    if not _is_valid(case) or response.status_code < 400:
        return
    body = _error_body(response)
    if body["code"] == "VALIDATION_FAILED":
        paths = [detail["path"] for detail in body.get("details", [])]
        unexplained = [
            path
            for path in paths
            if not (_MEASURED_PATH.match(path) and _measure_explains(case, path))
        ]
        assert paths, f"a schema-valid request was refused with no detail: {body}"
        assert not unexplained, f"a schema-valid request was refused at {unexplained}: {body}"
        return
    assert body["code"] in STATE_OR_MEASURE_CODES, f"a schema-valid request was refused: {body}"


def requests_without_a_key_are_refused(
    ctx: CheckContext, response: Response, case: AnyCase
) -> None:
    """An accepted request, sent again without its key, is refused: 401 MISSING_API_KEY.

    This replaces schemathesis' ``ignored_auth``: without ``--api-key`` every key is a valid
    account of its own, so there is no invalid key to probe with, only a missing one. (The
    coverage phase also sends each operation once without the key: ``missing_required_header``.)
    """
    if not 200 <= response.status_code < 300 or KEY not in response.request.headers:
        return
    request = response.request.copy()
    del request.headers[KEY]
    with requests.Session() as session:
        again = session.send(request, timeout=30)
    assert again.status_code == 401, again.text
    assert again.json()["code"] == "MISSING_API_KEY", again.text


CHECKS: Final[list[CheckFunction]] = [
    error_bodies_are_r29_errors,
    valid_requests_fail_only_on_state_or_measures,
    requests_without_a_key_are_refused,
]


class Api:
    """The server under test, and the account each case runs in."""

    def __init__(self, server: Server) -> None:
        self.server = server
        run = uuid.uuid4().hex
        self.listing_key = f"gk_openapi_list_{run}"
        self.upsert_key = f"gk_openapi_upsert_{run}"
        self.http = httpx.Client(base_url=server.base, timeout=30)
        # Whether the account of a get or delete case holds the product it names, by case id.
        self.holds: dict[str, bool] = {}

    def seed(self) -> None:
        """Products of every shape for the listing (R31), and "0" in the upserts' account.

        The coverage phase names "0" in nearly every upsert: as an update, a valid case is
        accepted and an invalid one is refused for what makes it invalid, not for a missing image.
        """
        created = self.http.post(
            "/products", json={"externalId": "0", "images": [FRONT]}, headers={KEY: self.upsert_key}
        )
        assert created.status_code == 201, created.text
        headers = {KEY: self.listing_key}
        # Over several pages of the listing.
        payloads: list[dict[str, Any]] = [
            {"externalId": f"item-{n:02d}", "images": [FRONT]} for n in range(12)
        ]
        payloads += [
            {
                "externalId": "full",
                "title": "Red tee",
                "description": "Soft cotton",
                "metadata": {"sku": 7, "tags": ["a", "b"]},
                "validForDays": 30,
                "images": [
                    {"source": {"url": "https://cdn.example/a.jpg"}, "classifications": {"v": 1}},
                    {"url": "https://cdn.example/flat.jpg"},
                ],
            },
            {"externalId": "legacy", "imageUrls": ["http://cdn.example/b.png"], "title": None},
            {"externalId": "ünïcödé ✓", "images": [FRONT], "validForDays": None},
        ]
        for payload in payloads:
            response = self.http.post("/products", json=payload, headers=headers)
            assert response.status_code == 201, response.text
        uploaded = self.http.post(
            "/products",
            headers=headers,
            data={
                "data": json.dumps(
                    {
                        "externalId": "uploaded",
                        "images": [{"source": {"fileKey": "f"}}, {"source": {"fileKey": "g"}}],
                    }
                )
            },
            files={"f": ("f.jpg", JPEG, "image/jpeg"), "g": ("g.png", PNG, "image/png")},
        )
        assert uploaded.status_code == 201, uploaded.text

    def prepare(self, case: AnyCase) -> None:
        """Give the case the key of its operation's account, and the product it names.

        The listing reads the seeded account; upserts share one account, so that later cases
        update what earlier ones created; a get or delete runs in an account of its own, which
        holds the product it names for about half of the ids. A case without a key keeps none:
        it is the probe of a missing key.
        """
        self._edit(case)
        _rejudge(case)

    def _edit(self, case: AnyCase) -> None:
        _drop_noise(case)
        if KEY not in case.headers:
            return
        if case.path == PRODUCTS:
            case.headers[KEY] = self.listing_key if case.method == "GET" else self.upsert_key
            return
        key = case.headers[KEY] = f"gk_openapi_{uuid.uuid4().hex}"
        external_id = _path_id(case)
        holds = _creatable(external_id) and zlib.crc32(external_id.encode()) % 2 == 0
        if holds:
            created = self.http.post(
                "/products",
                json={"externalId": external_id, "images": [FRONT]},
                headers={KEY: key},
            )
            assert created.status_code == 201, created.text
        self.holds[case.id] = holds

    def finds_what_the_account_holds(
        self, ctx: CheckContext, response: Response, case: AnyCase
    ) -> None:
        """R1, R23, R25: a get or delete finds the product exactly when its account holds it.

        The account is the case's own, so no other case's product can be found in it.
        """
        holds = self.holds.get(case.id)
        if holds is None or case.method not in ("GET", "DELETE"):
            return
        if holds:
            assert response.status_code != 404, f"the account holds the product: {response.text}"
        else:
            assert not 200 <= response.status_code < 300, "the account holds no product"


def _drop_noise(case: AnyCase) -> None:
    """Take out of a case what the generator adds that is not about the document."""
    data = case.meta.phase.data if case.meta is not None else None
    if (
        isinstance(data, CoveragePhaseData)
        and data.parameter_location != ParameterLocation.HEADER
        and not _IF_MATCH.fullmatch(case.headers.get("If-Match", "*"))
    ):
        # The coverage phase sends every case with If-Match: 0, which the pattern refuses and
        # the server reads before the body; a case about another part goes without it.
        del case.headers["If-Match"]
    for name in [name for name in case.headers if name.lower() in _FRAMING_HEADERS]:
        # An extra header of HTTP framing (a Content-Length of "x") is refused by uvicorn
        # itself, in plain text, before the application and its document are involved.
        del case.headers[name]


def _rejudge(case: AnyCase) -> None:
    """Have schemathesis judge the case as edited, valid or not, rather than as generated.

    Schemathesis takes what is edited before ``call`` as the case's starting point; reading
    ``meta`` first revalidates the edited parts.
    """
    case.meta  # noqa: B018


def _creatable(external_id: object) -> TypeGuard[str]:
    return (
        isinstance(external_id, str)
        and 0 < len(external_id) <= LIMITS.max_external_id_length
        and not re.search("[\x00-\x1f\x7f\ud800-\udfff]", external_id)
        and not external_id.startswith("_anon_")
    )


DOCUMENT: Final = openapi_document(LIMITS)
# The products endpoints' operations (and the document's own) on an SQLite catalog; the try-on
# operations have a module of their own (test_openapi_tryon.py).
schema = schemathesis.openapi.from_dict(
    DOCUMENT, config=schemathesis.Config.from_dict(CONFIG)
).include(path_regex="^/tryon/v1/(products|openapi)")


def runs_try_ons(server: Server) -> bool:
    """Whether the server's catalog keeps the try-on state (else its try-on answers are 501)."""
    answer = httpx.get(server.base + "/account/credits", headers={KEY: "gk_probe"}, timeout=30)
    assert answer.status_code in (200, 501), answer.text
    return answer.status_code == 200


@pytest.fixture(scope="module")
def api(shared_server: Server) -> Iterator[Api]:
    made = Api(shared_server)
    try:
        served = made.http.get(shared_server.root + OPENAPI_PATH)
        assert served.status_code == 200
        expected = openapi_document(LIMITS, tryon=runs_try_ons(shared_server))
        assert served.json() == expected, "the server serves the document under test"
        made.seed()
        yield made
    finally:
        made.http.close()


@schema.parametrize()
@SETTINGS
def test_r29_r31_r33_every_answer_of_the_server_is_the_one_its_openapi_document_describes(
    case: AnyCase, api: Api
) -> None:
    api.prepare(case)
    case.call_and_validate(
        base_url=api.server.root, additional_checks=[*CHECKS, api.finds_what_the_account_holds]
    )


# With --rate-limit the document adds 429 RATE_LIMITED and its Retry-After header to every
# operation; one operation, mostly over its limit, is enough to hold the server to it.
RATE_LIMIT: Final = 3
RATE_LIMITED_DOCUMENT: Final = openapi_document(LIMITS, rate_limited=True)
rate_limited_schema = schemathesis.openapi.from_dict(
    RATE_LIMITED_DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "checks": {
                **CONFIG["checks"],
                "negative_data_rejection": {
                    "enabled": False,
                    "expected-statuses": [*NEGATIVE_STATUSES, "429"],
                },
            }
        }
    ),
).include(operation_id="listProducts")


def rate_limited_or_valid(ctx: CheckContext, response: Response, case: AnyCase) -> None:
    """429 RATE_LIMITED, or what `valid_requests_fail_only_on_state_or_measures` allows."""
    if response.status_code != 429:
        valid_requests_fail_only_on_state_or_measures(ctx, response, case)


RATE_LIMITED_CHECKS: Final[list[CheckFunction]] = [
    error_bodies_are_r29_errors,
    rate_limited_or_valid,
    requests_without_a_key_are_refused,
]


@pytest.fixture(scope="module")
def rate_limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("rate-limited")
    server = start_server(
        directory, "--db", str(directory / "catalog.db"), "--rate-limit", str(RATE_LIMIT)
    )
    try:
        served = httpx.get(server.root + OPENAPI_PATH, timeout=30)
        expected = openapi_document(LIMITS, rate_limited=True, tryon=runs_try_ons(server))
        assert served.json() == expected, "the server serves the document under test"
        yield server
    finally:
        server.stop()


@rate_limited_schema.parametrize()
@settings(SETTINGS, max_examples=30)
def test_r29_a_rate_limited_server_answers_as_its_openapi_document_describes(
    case: AnyCase, rate_limited_server: Server
) -> None:
    _drop_noise(case)
    if KEY in case.headers:
        case.headers[KEY] = "gk_openapi_rate_limited"  # one account, soon over its limit
    _rejudge(case)
    case.call_and_validate(
        base_url=rate_limited_server.root,
        additional_checks=RATE_LIMITED_CHECKS,
    )


def test_r2_an_id_with_a_line_feed_is_refused_like_any_control_character(api: Api) -> None:
    headers = {KEY: f"gk_openapi_{uuid.uuid4().hex}"}
    created = api.http.post(
        "/products", json={"externalId": "shirt", "images": [FRONT]}, headers=headers
    )
    assert created.status_code == 201, created.text
    for path in ("/products/shirt%0A", "/products/sh%0Airt", "/products/%0Ashirt"):
        for send in (api.http.get, api.http.delete):
            response = send(path, headers=headers)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["details"][0]["path"] == "externalId"
    assert api.http.get("/products/shirt", headers=headers).status_code == 200


@given(st.text(alphabet=' \t"W/*,0123456789a!#~\x7f\x80\xff\x00', max_size=24))
def test_r28_the_documents_if_match_pattern_admits_exactly_what_the_server_reads(
    value: str,
) -> None:
    """The pattern is held to the server's own parsing, one header value at a time."""
    try:
        parse_if_match([value])
        read = True
    except cc.ValidationFailed:
        read = False
    assert bool(_IF_MATCH.fullmatch(value)) == read


_URL_PIECES: Final = st.sampled_from(
    ["http", "HTTPS", "ftp", ":", "//", "/", "?", "#", "@", "[", "]", "::1", "1.2.3.4", "v1.x",
     "V1.x", "fe80::1%eth0", "::ffff:1.2.3.4", "%", "%25", "a", "b.example", "80", "65536", "0",
     " ", "\t", "\x7f", "＠", "／", "℀", "é", "-", "_", "\\", "."]
)  # fmt: skip


@given(st.lists(_URL_PIECES, max_size=14).map("".join) | st.from_regex(URL_PATTERN, fullmatch=True))
def test_r13_the_documents_url_pattern_admits_exactly_the_urls_the_server_accepts(url: str) -> None:
    try:
        decode_upsert({"externalId": "x", "imageUrls": [url]}, LIMITS)
        accepted = True
    except cc.ValidationFailed:
        accepted = False
    admitted = bool(_URL.fullmatch(url)) and len(url) <= LIMITS.max_url_length
    assert accepted == admitted, url


@pytest.mark.parametrize(
    "url", ["http://[::1]x/", "http://x[::1]/", "http://[::1][x]/", "http://[v1.a@b]/"]
)
def test_r13_text_around_a_bracketed_host_is_refused(url: str) -> None:
    with pytest.raises(cc.ValidationFailed):
        decode_upsert({"externalId": "x", "imageUrls": [url]}, LIMITS)


def test_r31_the_documents_product_has_the_wire_keys_in_their_order() -> None:
    product = openapi_document(LIMITS)["components"]["schemas"]["Product"]
    assert list(product["properties"]) == product["required"] == list(R31_PRODUCT_KEYS)
    assert product["additionalProperties"] is False


def test_the_document_lists_exactly_the_routes_and_methods_the_server_serves() -> None:
    from starlette.routing import Route

    from catalog_core.server import create_app

    app = create_app(cc.Catalog(cc.MemoryRepository()))
    names = {
        "external_id": "externalId",
        "generation_id": "generationId",
        "customer_id": "customerId",
    }
    served = {
        re.sub(
            r"\{(\w+)(?::\w+)?\}", lambda m: "{" + names.get(m[1], m[1]) + "}", route.path
        ): sorted(m.lower() for m in (route.methods or ()) if m != "HEAD")
        for route in app.routes
        # The front door and the dashboard are pages for people, not operations of the API.
        if isinstance(route, Route)
        and route.name not in ("front", "front_of_the_api", "dashboard", "dashboard_static")
    }
    document = openapi_document(LIMITS)["paths"]
    assert {
        path: sorted(k for k in ops if k != "parameters") for path, ops in document.items()
    } == (served)
