"""The try-on operations of the OpenAPI document, checked against a real server (T21).

As ``test_openapi.py`` does for the products endpoints: schemathesis makes requests from the
document, valid and invalid, and no answer may be a 5xx or contradict the document. Each case
runs in an account of its own (a new account has 10 credits); a try-on is given the image and
product it names, and about half the cases that name a generation or a media URL are given one
that exists, so that the document's success answers are checked too, not only its errors.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import httpx
import pytest
import schemathesis
from schemathesis import Case, CheckContext, CheckFunction, Response

from catalog_core.server.openapi import OPENAPI_PATH, openapi_document
from tests.helpers import png
from tests.server.conftest import Server, start_server
from tests.server.test_openapi import (
    CONFIG,
    KEY,
    LIMITS,
    NEGATIVE_STATUSES,
    SETTINGS,
    _compact_size,
    _depth,
    _drop_noise,
    _error_body,
    _is_valid,
    _rejudge,
    error_bodies_are_r29_errors,
    requests_without_a_key_are_refused,
)

AnyCase = Case[Any]


class _HasClient(Protocol):
    http: httpx.Client


A = TypeVar("A", bound=_HasClient)
DOCUMENT: Final = openapi_document(LIMITS)
PERSON: Final = png(4, 4)
# A path parameter with a '/' or none at all names no route: 404 ROUTE_NOT_FOUND.
TRYON_CONFIG: Final = {
    "checks": {
        **CONFIG["checks"],
        "negative_data_rejection": {"expected-statuses": [*NEGATIVE_STATUSES, "404"]},
    }
}
schema = schemathesis.openapi.from_dict(
    DOCUMENT, config=schemathesis.Config.from_dict(TRYON_CONFIG)
).include(path_regex="^/tryon/v1/(images|try-on|generations|account|customers|media)")

# Codes a request the document calls valid may still get, for what it cannot state: what the
# account holds (an image, a product, a generation, credits, a media URL), a file part's bytes,
# the reserved prefix of an inline item, and hosts under .invalid, which can never be fetched.
STATE_OR_MEASURE_CODES: Final = frozenset(
    {
        "PRODUCT_NOT_FOUND",
        "PRODUCT_IMAGES_REQUIRED",
        "MULTIPART_FILE_NOT_FOUND",
        "INVALID_IMAGE",
        "FILE_TOO_LARGE",
        "INSUFFICIENT_CREDITS",
        "CUSTOMER_IMAGE_FETCH_FAILED",
        "RESERVED_EXTERNAL_ID",
        "GENERATION_NOT_FOUND",
        "MEDIA_NOT_FOUND",
    }
)
_ITEM: Final = re.compile(r"^(?:products\.0\.|product\.)")
_IMAGE_ID: Final = re.compile(r"(?:^|\.)(?:source\.)?id$")
_DAYS: Final = re.compile(r"^(?:output\.keepForDays|retentionDays)$")
_JSON_MAX_DEPTH: Final = 64


def _payload(case: AnyCase) -> object:
    body = case.body
    if case.media_type == "multipart/form-data" and isinstance(body, Mapping):
        data = body.get("data")
        if isinstance(data, str | bytes):
            try:
                return json.loads(data)
            except ValueError:
                return None
        return data
    return body


def _at(value: object, path: str) -> object:
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _explained(case: AnyCase, path: str) -> bool:
    """Whether a VALIDATION_FAILED at ``path`` of a valid try-on is one the document cannot foresee.

    An image id the account does not hold (state); days written as 1.0, which JSON Schema counts
    as an integer; a one-shot item's null validForDays; metadata and classifications measured in
    bytes of compact JSON or nested too deep.
    """
    payload = _payload(case)
    if _IMAGE_ID.search(path) and (path.startswith(("person.", "customer"))):
        return True
    value = _at(payload, path)
    if _DAYS.match(path):
        return isinstance(value, float)
    prefix = _ITEM.match(path)
    if prefix is None:
        return False
    field = path[prefix.end() :]
    if field == "validForDays":
        item = _at(payload, prefix[0].rstrip("."))
        one_shot = isinstance(item, Mapping) and item.get("externalId") is None
        return isinstance(value, float) or (value is None and one_shot)
    if field == "metadata":
        return _compact_size(value) > LIMITS.max_metadata_bytes or _depth(value) > _JSON_MAX_DEPTH
    if re.fullmatch(r"images\.\d+\.classifications", field):
        return (
            _compact_size(value) > LIMITS.max_classifications_bytes
            or _depth(value) > _JSON_MAX_DEPTH
        )
    return False


def valid_requests_fail_only_on_state_or_measures(
    ctx: CheckContext, response: Response, case: AnyCase
) -> None:
    """A request the document calls valid is refused only for state or a measure it cannot state."""
    if not _is_valid(case) or response.status_code < 400:
        return
    body = _error_body(response)
    if body["code"] == "VALIDATION_FAILED":
        paths = [detail["path"] for detail in body.get("details", [])]
        assert paths, f"a schema-valid request was refused with no detail: {body}"
        unexplained = [path for path in paths if not _explained(case, path)]
        assert not unexplained, f"a schema-valid request was refused at {unexplained}: {body}"
        return
    assert body["code"] in STATE_OR_MEASURE_CODES, f"a schema-valid request was refused: {body}"


CHECKS: Final[list[CheckFunction]] = [
    error_bodies_are_r29_errors,
    valid_requests_fail_only_on_state_or_measures,
    requests_without_a_key_are_refused,
]


class Api:
    """The server under test: each case gets an account, and what it names about half the time."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.base, timeout=30)
        owner = {KEY: f"gk_openapi_media_{uuid.uuid4().hex}"}
        uploaded = self._upload(owner)
        self.media_ref = uploaded["imageUrl"].rsplit("/", 1)[1]

    def _upload(self, headers: dict[str, str]) -> dict[str, Any]:
        answer = self.http.post(
            "/images/upload", headers=headers, files={"file": ("p.png", PERSON, "image/png")}
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def prepare(self, case: AnyCase) -> None:
        _drop_noise(case)
        if case.path.endswith("/media/{ref}"):
            if _half(case.path_parameters.get("ref")):
                case.path_parameters["ref"] = self.media_ref
            _rejudge(case)
            return
        if KEY not in case.headers:
            return
        key = case.headers[KEY] = f"gk_openapi_{uuid.uuid4().hex}"
        headers = {KEY: key}
        if case.path.endswith("/generations/{generationId}"):
            if _half(case.path_parameters.get("generationId")):
                image = self._upload(headers)["imageId"]
                started = self.http.post(
                    "/try-on",
                    headers=headers,
                    json={
                        "products": [{"title": "mock", "images": [{"source": {"url": _URL}}]}],
                        "person": {"image": {"source": {"id": image}}},
                    },
                )
                assert started.status_code == 200, started.text
                case.path_parameters["generationId"] = started.json()["generationId"]
        elif case.path.endswith(("/try-on", "/try-on/sync")):
            self._give(case, headers)
        _rejudge(case)

    def _give(self, case: AnyCase, headers: dict[str, str]) -> None:
        """Replace the image id the person names by one the account holds, and make the product
        a reference names: unknown ones are the generations' and media URLs' cases."""
        payload = _payload(case)
        if not isinstance(payload, dict):
            return
        for path in ("person.image.source", "customer.source", "customer"):
            source = _at(payload, path)
            if not isinstance(source, dict):
                continue
            if isinstance(source.get("id"), str):
                source["id"] = self._upload(headers)["imageId"]
            elif case.media_type == "application/json" and source.get("fileKey") is not None:
                del source["fileKey"]  # a JSON body has no file part to name
                source["id"] = self._upload(headers)["imageId"]
            break
        item = _at(payload, "products.0") or _at(payload, "product")
        if isinstance(item, dict) and set(item) == {"externalId"}:
            external_id = item["externalId"]
            if isinstance(external_id, str):
                self.http.post(
                    "/products",
                    headers=headers,
                    json={"externalId": external_id, "images": [{"source": {"url": _URL}}]},
                )  # an id the products endpoint refuses stays unknown: PRODUCT_NOT_FOUND
        if case.media_type == "multipart/form-data" and isinstance(case.body, dict):
            data = case.body.get("data")
            if isinstance(data, str | bytes):
                case.body["data"] = json.dumps(payload)


_URL: Final = "https://cdn.example/p.jpg"


def _half(value: object) -> bool:
    return zlib.crc32(repr(value).encode()) % 2 == 0


def serving_the_document(directory: Path, make: Callable[[Server], A], *args: str) -> Iterator[A]:
    """A server on a memory catalog, started with ``args``, that serves the document under test,
    and ``make`` of it (closed with the server)."""
    server = start_server(directory, "--db", "memory://", *args)
    try:
        served = httpx.get(server.root + OPENAPI_PATH, timeout=30)
        assert served.json() == DOCUMENT, "the server serves the document under test"
        made = make(server)
        yield made
        made.http.close()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from serving_the_document(
        tmp_path_factory.mktemp("openapi-tryon"),
        Api,
        "--generation-seconds",
        "0.2",
        "--sync-timeout",
        "0.2",
    )


@schema.parametrize()
@SETTINGS
def test_t21_every_try_on_answer_of_the_server_is_the_one_its_openapi_document_describes(
    case: AnyCase, api: Api
) -> None:
    api.prepare(case)
    case.call_and_validate(base_url=api.server.root, additional_checks=CHECKS)
