"""The stand-in's own operations (``/tryon/v1/local``) of the OpenAPI document, on a real server.

As ``test_openapi_tryon.py`` does for the try-on flow: schemathesis makes requests from the
document, valid and invalid, and no answer may be a 5xx or contradict it. Each case runs in an
account of its own; about half the cases that name a product image or a generation's person are
given one that exists, so the document's success answers are checked too, not only its errors.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest
import schemathesis
from schemathesis import Case, CheckContext, CheckFunction, Response

from catalog_core.server.openapi import openapi_document
from tests.helpers import png
from tests.server.conftest import Server
from tests.server.test_openapi import (
    CONFIG,
    KEY,
    LIMITS,
    SETTINGS,
    _drop_noise,
    _error_body,
    _is_valid,
    _rejudge,
    error_bodies_are_r29_errors,
    requests_without_a_key_are_refused,
)
from tests.server.test_openapi_tryon import serving_the_document

AnyCase = Case[Any]
DOCUMENT: Final = openapi_document(LIMITS)
IMAGE: Final = png(4, 4)
schema = schemathesis.openapi.from_dict(
    DOCUMENT, config=schemathesis.Config.from_dict(CONFIG)
).include(path_regex="^/tryon/v1/local/")

# Codes a request the document calls valid may still get: what the account holds (a product, an
# uploaded image, a generation), and, at VALIDATION_FAILED, a cursor (opaque: only the server's
# own are valid) or an amount that would take the balance out of its bounds.
STATE_CODES: Final = frozenset({"PRODUCT_NOT_FOUND", "MEDIA_NOT_FOUND", "GENERATION_NOT_FOUND"})
STATE_PATHS: Final = frozenset({"cursor", "amount"})


def valid_requests_fail_only_on_state(ctx: CheckContext, response: Response, case: AnyCase) -> None:
    """A request the document calls valid is refused only for what the account holds."""
    if not _is_valid(case) or response.status_code < 400:
        return
    body = _error_body(response)
    if body["code"] == "VALIDATION_FAILED":
        paths = {detail["path"] for detail in body.get("details", [])}
        assert paths, f"a schema-valid request was refused with no detail: {body}"
        assert paths <= STATE_PATHS, f"a schema-valid request was refused: {body}"
        return
    assert body["code"] in STATE_CODES, f"a schema-valid request was refused: {body}"


CHECKS: Final[list[CheckFunction]] = [
    error_bodies_are_r29_errors,
    valid_requests_fail_only_on_state,
    requests_without_a_key_are_refused,
]


def _half(value: object) -> bool:
    return zlib.crc32(repr(value).encode()) % 2 == 0


class Api:
    """The server under test: each case gets an account, and what it names about half the time."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.base, timeout=30)

    def prepare(self, case: AnyCase) -> None:
        _drop_noise(case)
        if KEY not in case.headers:
            return
        key = case.headers[KEY] = f"gk_openapi_local_{uuid.uuid4().hex}"
        headers = {KEY: key}
        if case.path.endswith("/product-image") and _half(case.query):
            made = self.http.post(
                "/products",
                headers=headers,
                data={"data": '{"externalId": "p", "images": [{"source": {"fileKey": "f"}}]}'},
                files={"f": ("f.png", IMAGE, "image/png")},
            )
            assert made.status_code == 201, made.text
            case.query = {**(case.query or {}), "externalId": "p", "order": 0}
        elif case.path.endswith("/person") and _half(case.path_parameters):
            photo = self.http.post(
                "/images/upload", headers=headers, files={"file": ("p.png", IMAGE, "image/png")}
            )
            assert photo.status_code == 200, photo.text
            started = self.http.post(
                "/try-on",
                headers=headers,
                json={
                    "products": [
                        {"title": "mock", "images": [{"source": {"url": "https://cdn.example/t"}}]}
                    ],
                    "person": {"image": {"source": {"id": photo.json()["imageId"]}}},
                },
            )
            assert started.status_code == 200, started.text
            case.path_parameters["generationId"] = started.json()["generationId"]
        _rejudge(case)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from serving_the_document(tmp_path_factory.mktemp("openapi-local"), Api)


@schema.parametrize()
@SETTINGS
def test_every_local_answer_of_the_server_is_the_one_its_openapi_document_describes(
    case: AnyCase, api: Api
) -> None:
    api.prepare(case)
    case.call_and_validate(base_url=api.server.root, additional_checks=CHECKS)
