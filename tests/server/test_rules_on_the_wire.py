"""Rules the HTTP layer carries, against a real server process: ``If-Match`` lists as RFC 9110
writes them (R28), ``Location`` for every id a client can follow (R2), and long numbers in JSON and
multipart bodies (R10, R18)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest

from tests.server.conftest import Server

IMAGE = {"source": {"url": "https://cdn.example/front.jpg"}}
Client = Callable[[Server, str], httpx.Client]


def code_and_paths(response: httpx.Response) -> tuple[int, str, list[str]]:
    body = response.json()
    return response.status_code, body["code"], [d["path"] for d in body.get("details", [])]


# -- If-Match: empty list elements (RFC 9110 §5.6.1.2) ------------------------------------------


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        (', "3"', 200),
        ('"999",,"3"', 200),
        ('"3",', 200),
        (',  ,"3" , ,', 200),
        ('"999",, "1"', 412),
        (",", 400),
        (", ,", 400),
        ('"3",,x', 400),
        ('"3" "4"', 400),
    ],
)
def test_r28_if_match_ignores_empty_list_elements(
    shared_server: Server, key: str, client: Client, if_match: str, status: int
) -> None:
    """RFC 9110 §5.6.1.2: a recipient accepts empty list elements and ignores them. A list of
    nothing but empty elements holds no tag: refused as an empty If-Match is."""
    http = client(shared_server, key)
    for title in ("v1", "v2", "v3"):
        http.post("/products", json={"externalId": "p", "title": title, "images": [IMAGE]})
    response = http.post(
        "/products", json={"externalId": "p", "title": "v4"}, headers={"if-match": if_match}
    )
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["etag"] == '"4"'
        deleted = http.delete("/products/p", headers={"if-match": if_match.replace("3", "4")})
        assert deleted.status_code == 204
        return
    expected = (
        ("VERSION_CONFLICT", ["version"]) if status == 412 else ("VALIDATION_FAILED", ["If-Match"])
    )
    assert code_and_paths(response)[1:] == expected
    assert (
        code_and_paths(http.delete("/products/p", headers={"if-match": if_match}))[1:] == expected
    )
    assert http.get("/products/p").json()["title"] == "v3"


def test_r28_an_empty_if_match_line_beside_a_tag_is_an_empty_element(
    shared_server: Server, key: str, client: Client
) -> None:
    """Several header lines are one comma-separated list (RFC 9110 §5.3): an empty line is an
    empty element."""
    http = client(shared_server, key)
    http.post("/products", json={"externalId": "p", "images": [IMAGE]})
    headers = [("if-match", ""), ("if-match", '"1"')]
    response = http.post("/products", json={"externalId": "p", "title": "t"}, headers=headers)
    assert response.status_code == 200, response.text


# -- Location: ids that are dot segments --------------------------------------------------------


@pytest.mark.parametrize(
    "external_id", [".", "..", "a.b", "...", ".a", "a.", "%2E", "./..", "x/.."]
)
def test_r2_the_location_of_any_id_leads_httpx_and_curl_back_to_the_product(
    shared_server: Server, key: str, client: Client, external_id: str
) -> None:
    """RFC 3986 §5.2.4: a client removes the path segments ``.`` and ``..`` of a URL it resolves
    or sends. ``Location`` percent-encodes the dots of an id that would be one, so that following
    it (httpx resolves it against the request's URL; curl sends the URL it is given) reads the
    product and not the listing or another path."""
    http = client(shared_server, key)
    created = http.post("/products", json={"externalId": external_id, "images": [IMAGE]})
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    url = httpx.URL(shared_server.base + "/products").join(location)
    assert url.raw_path.startswith(b"/tryon/v1/products/")
    assert http.get(url).json()["externalId"] == external_id
    curl = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-H", f"x-api-key: {key}", str(url)],
        capture_output=True,
        check=True,
    )
    assert json.loads(curl.stdout)["externalId"] == external_id, curl.stdout[:200]
    assert http.delete(url).status_code == 204


@pytest.mark.parametrize(
    ("path", "external_id"), [("%2E", "."), ("%2e", "."), ("%2E%2E", ".."), (".%2e", "..")]
)
def test_r2_a_percent_encoded_dot_segment_in_the_path_names_its_id(
    shared_server: Server, key: str, client: Client, path: str, external_id: str
) -> None:
    http = client(shared_server, key)
    http.post("/products", json={"externalId": external_id, "title": "dots", "images": [IMAGE]})
    response = http.get("/products/" + path)
    assert response.status_code == 200, response.text
    assert response.json()["externalId"] == external_id
    assert http.delete("/products/" + path).status_code == 204


# -- long numbers in bodies ----------------------------------------------------------------------

DIGITS_5000 = "1" + "0" * 4999


def multipart(data: str) -> dict[str, tuple[None, bytes, str]]:
    return {"data": (None, data.encode(), "application/json")}


def test_r10_r18_an_integer_of_5000_digits_in_a_json_or_multipart_body(
    shared_server: Server, key: str, client: Client
) -> None:
    """The issue's examples over HTTP: ignored with a warning under an unknown key, refused at
    ``validForDays``, and an id still required first, in a JSON body and in a ``data`` part."""
    http = client(shared_server, key)
    head = f'{{"externalId": "p", "images": [{json.dumps(IMAGE)}], '
    junk = head + f'"junk": {DIGITS_5000}}}'
    days = head + f'"validForDays": -{DIGITS_5000}}}'
    no_id = f'{{"images": [{json.dumps(IMAGE)}], "validForDays": {DIGITS_5000}}}'
    for send in (
        lambda text: http.post(
            "/products", content=text, headers={"content-type": "application/json"}
        ),
        lambda text: http.post("/products", files=multipart(text)),
    ):
        accepted = send(junk)
        assert accepted.status_code in (200, 201), accepted.text
        assert json.loads(accepted.headers["catalog-warnings"])[0]["path"] == "junk"
        assert code_and_paths(send(days)) == (400, "VALIDATION_FAILED", ["validForDays"])
        assert code_and_paths(send(no_id)) == (400, "EXTERNAL_ID_REQUIRED", ["externalId"])


def test_r10_a_30_mib_integer_is_refused_at_its_field_in_linear_time(
    shared_server: Server, key: str, client: Client
) -> None:
    """A number of 30 MiB of digits, within the request limit: answered at once, never by an
    int() that takes time quadratic in its length. The bound on time is generous."""
    body = b'{"externalId": "p", "images": [], "validForDays": ' + b"9" * (30 * 2**20) + b"}"
    started = time.monotonic()
    response = client(shared_server, key).post(
        "/products", content=body, headers={"content-type": "application/json"}
    )
    took = time.monotonic() - started
    assert code_and_paths(response) == (400, "VALIDATION_FAILED", ["validForDays"])
    assert took < 30
    print(f"a 30 MiB integer answered in {took:.2f} s")
