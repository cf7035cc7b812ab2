"""The server's HTTP surface, against real server processes: routes, errors, keys, limits, headers.

Every answer that is not a success must be the R29 error shape with the HTTP status equal to its
``status``; these tests send what clients get wrong (methods, paths, types, sizes, keys, headers,
query strings, multipart bodies) and what they rely on (ETags, warnings, graceful shutdown).
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import catalog_core as cc
from catalog_core.server import create_app
from tests.conftest import fresh_schema, postgres_url
from tests.helpers import JPEG, PNG, R29_STATUS
from tests.server.conftest import SCRIPT, Server

IMAGE = {"source": {"url": "https://cdn.example/front.jpg"}}
MiB = 2**20
LIMIT = cc.Limits().max_request_bytes  # what `catalog-core serve` reads of a body at most
Client = Callable[[Server, str], httpx.Client]
SERVER_CODES = {"ROUTE_NOT_FOUND": 404, "METHOD_NOT_ALLOWED": 405, "INTERNAL": 500}


def assert_error(response: httpx.Response, code: str, *paths: str) -> dict[str, Any]:
    """The response is the R29 error ``code``, its HTTP status is its ``status``, as JSON."""
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == response.status_code == {**R29_STATUS, **SERVER_CODES}[code]
    assert set(body) <= {"code", "message", "status", "details"}
    assert isinstance(body["message"], str)
    assert body["message"]
    if paths:
        assert [d["path"] for d in body["details"]] == list(paths), body
    return body


def raw(server: Server, request: bytes, timeout: float = 30) -> bytes:
    """Send ``request`` bytes on a fresh connection and return everything until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def posting(server: Server, payload: dict[str, Any]) -> Iterator[tuple[socket.socket, bytes]]:
    """Open a JSON upsert whose body the server is ready to read, and hand it over unsent.

    The request asks ``Expect: 100-continue``, so once ``100 Continue`` arrives the server is
    in the endpoint, reading the body: the moment to act on a request in flight.
    """
    body = json.dumps(payload).encode()
    head = (
        b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: gk_k\r\n"
        b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head)
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 ")
        yield sock, body


@contextlib.contextmanager
def write_waiting_for_a_lock(server: Server, db: Path) -> Iterator[socket.socket]:
    """An upsert of ``slow`` that is in the catalog, waiting for the SQLite write lock held here.

    The lock is released when the block ends, and the write then goes on.
    """
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with posting(server, {"externalId": "slow", "images": [IMAGE]}) as (sock, body):
            sock.sendall(body)
            time.sleep(0.5)  # the body is read at once: the request is in the catalog by now
            yield sock
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def closing_json_upsert_head(length: int) -> bytes:
    """The head of a JSON upsert of ``length`` bytes by ``gk_k``, on a connection then closed."""
    return (
        b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: gk_k\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


def read_all(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def trickle(sock: socket.socket, data: bytes, *, every: float, give_up_after: float) -> bytes:
    """Send ``data`` a byte every ``every`` seconds until the server stops taking it (or for
    ``give_up_after`` seconds), then read everything it answers."""
    started = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # the server closed the connection: read what it said
            break
        time.sleep(every)
        if time.monotonic() - started > give_up_after:
            break
    return read_all(sock)


def timed_out(answer: bytes) -> dict[str, Any]:
    """The answer is ``408 REQUEST_TIMEOUT`` in the error shape, closing the connection."""
    assert status_of(answer) == 408, answer
    assert b"connection: close" in answer.lower()
    error: dict[str, Any] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert (error["code"], error["status"]) == ("REQUEST_TIMEOUT", 408)
    return error


# -- routes and methods -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    # "/" and "/tryon/v1" are the front door (test_front_door.py); "/tryon/v1/" is not.
    ["/tryon/v1/", "/tryon/v1/productz", "/tryon/v2/products", "/products", "/index.html"],
)
def test_r29_an_unknown_path_is_404_route_not_found(
    shared_server: Server, key: str, client: Client, path: str
) -> None:
    response = client(shared_server, key).get(shared_server.root + path)
    body = assert_error(response, "ROUTE_NOT_FOUND")
    assert path in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/products", "GET, HEAD, POST"),
        ("PATCH", "/products", "GET, HEAD, POST"),
        ("DELETE", "/products", "GET, HEAD, POST"),
        ("POST", "/products/p1", "DELETE, GET, HEAD"),
        ("PUT", "/products/p1", "DELETE, GET, HEAD"),
        ("OPTIONS", "/products/p1", "DELETE, GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
def test_r29_a_method_a_path_does_not_serve_is_405_with_allow(
    shared_server: Server, key: str, client: Client, method: str, path: str, allowed: str
) -> None:
    response = client(shared_server, key).request(method, path)
    assert_error(response, "METHOD_NOT_ALLOWED")
    assert sorted(response.headers["allow"].split(", ")) == allowed.split(", ")


def test_r23_head_of_a_product_sends_its_etag_and_no_body(
    shared_server: Server, key: str, client: Client
) -> None:
    http = client(shared_server, key)
    http.post("/products", json={"externalId": "p1", "images": [IMAGE]})
    head = http.head("/products/p1")
    assert head.status_code == 200
    assert head.headers["etag"] == '"1"'
    assert head.content == b""


# -- the API key ------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"x-api-key": ""}], ids=["absent", "empty"])
def test_r29_a_request_without_an_api_key_is_401_missing_api_key(
    shared_server: Server, headers: dict[str, str]
) -> None:
    for method, path in (("GET", "/products"), ("GET", "/products/p"), ("DELETE", "/products/p")):
        response = httpx.request(method, shared_server.base + path, headers=headers)
        assert_error(response, "MISSING_API_KEY")
    response = httpx.post(shared_server.base + "/products", json={}, headers=headers)
    assert_error(response, "MISSING_API_KEY")
    assert "connection" not in response.headers  # a small body is read: the connection lives
    assert_error(httpx.get(shared_server.root + "/nowhere"), "MISSING_API_KEY")


def test_r1_without_a_key_table_each_key_is_its_own_account(
    shared_server: Server, key: str, client: Client
) -> None:
    mine, theirs = client(shared_server, key), client(shared_server, key + "-other")
    assert mine.post("/products", json={"externalId": "p", "images": [IMAGE]}).status_code == 201
    assert_error(theirs.get("/products/p"), "PRODUCT_NOT_FOUND")
    assert theirs.get("/products").json()["count"] == 0
    # Keys differ only in case: still two accounts, never one.
    assert_error(client(shared_server, key.upper()).get("/products/p"), "PRODUCT_NOT_FOUND")


def test_r1_with_a_key_table_only_its_keys_pass_each_to_its_account_and_none_is_logged(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    server = start(
        "--db",
        str(tmp_path / "catalog.db"),
        "--api-key",
        "sekrit-key-one=acme",
        "--api-key",
        "sekrit-key-two=acme",
        "--api-key",
        "sekrit-key-three=globex",
        "--log-level",
        "debug",
        "--access-log",
    )
    one, two = client(server, "sekrit-key-one"), client(server, "sekrit-key-two")
    three = client(server, "sekrit-key-three")
    assert one.post("/products", json={"externalId": "p", "images": [IMAGE]}).status_code == 201
    assert two.get("/products/p").status_code == 200  # the same account, acme
    assert_error(three.get("/products/p"), "PRODUCT_NOT_FOUND")  # globex
    unknown = client(server, "sekrit-key-unknown")
    assert_error(unknown.get("/products"), "INVALID_API_KEY")
    assert_error(unknown.post("/products", json={"externalId": "q"}), "INVALID_API_KEY")
    two_keys = httpx.get(
        server.base + "/products",
        headers=[("x-api-key", "sekrit-key-one"), ("x-api-key", "sekrit-key-three")],
    )
    assert_error(two_keys, "INVALID_API_KEY")
    assert_error(httpx.get(server.base + "/products"), "MISSING_API_KEY")
    assert_error(three.get("/products/%00"), "VALIDATION_FAILED", "externalId")
    assert server.stop() == -signal.SIGTERM
    log = server.log()
    assert "GET /tryon/v1/products" in log  # the access log is on...
    assert "sekrit" not in log  # ...and no key, known or not, is in it


# -- content types and sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/xml", "image/jpeg"],
)
def test_r29_r32_a_body_neither_json_nor_multipart_is_415(
    shared_server: Server, key: str, client: Client, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps({"externalId": "p", "images": [IMAGE]})
    response = client(shared_server, key).post("/products", content=body, headers=headers)
    assert_error(response, "UNSUPPORTED_MEDIA_TYPE")
    assert_error(client(shared_server, key).get("/products/p"), "PRODUCT_NOT_FOUND")


def test_r32_json_with_a_charset_parameter_is_json(
    shared_server: Server, key: str, client: Client
) -> None:
    response = client(shared_server, key).post(
        "/products",
        content=json.dumps({"externalId": "p", "images": [IMAGE]}),
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("body", "path"),
    [(b"[1]", "body"), (b"{", "body"), (b"", "body"), (b'{"externalId": "\xff"}', "body")],
)
def test_r30_a_json_body_that_is_not_a_json_object_is_400_at_body(
    shared_server: Server, key: str, client: Client, body: bytes, path: str
) -> None:
    response = client(shared_server, key).post(
        "/products", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, "VALIDATION_FAILED", path)


def test_r30_r33_a_declared_length_over_the_limit_is_413_before_the_body_is_read(
    shared_server: Server,
) -> None:
    head = (
        b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: k\r\n"
        b"Content-Type: application/json\r\nContent-Length: 33554433\r\n\r\n{"
    )
    answer = raw(shared_server, head)  # one byte of the 32 MiB + 1 is sent: no waiting for it
    assert status_of(answer) == 413
    assert b"connection: close" in answer.lower()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "PAYLOAD_TOO_LARGE"


def test_r30_r33_a_streamed_body_over_the_limit_is_413_and_is_not_read_further(
    shared_server: Server,
) -> None:
    head = (
        b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: k\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n" % MiB + b" " * MiB + b"\r\n"
    sent, answer, refused = 0, b"", False
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            while sent < 128 * MiB:  # four times the limit, if the server kept reading
                sock.sendall(chunk)
                sent += MiB
                if select.select([sock], [], [], 0)[0]:
                    answer += sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            refused = True
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            refused = True
    assert refused, "the server read the whole oversized body"
    assert sent <= LIMIT + 16 * MiB
    assert status_of(answer) == 413
    assert b'"code":"PAYLOAD_TOO_LARGE"' in answer


def test_r15_r33_one_file_over_the_file_limit_is_413_file_too_large(
    shared_server: Server, key: str, client: Client
) -> None:
    big = JPEG + b"\x00" * (10 * MiB)
    response = client(shared_server, key).post(
        "/products",
        data={"data": json.dumps({"externalId": "p", "images": [{"source": {"fileKey": "f"}}]})},
        files={"f": ("f.jpg", big, "image/jpeg")},
    )
    assert_error(response, "FILE_TOO_LARGE", "images.0.source.fileKey")


# -- multipart ----------------------------------------------------------------------------------


def multipart(*parts: tuple[bytes, bytes], boundary: bytes = b"XyZ", close: bool = True) -> bytes:
    """A multipart body of (headers, content) parts, closed by its final boundary or not."""
    body = b"".join(b"--" + boundary + b"\r\n" + h + b"\r\n\r\n" + c + b"\r\n" for h, c in parts)
    return body + (b"--" + boundary + b"--\r\n" if close else b"")


def field(name: bytes, content: bytes, extra: bytes = b"") -> tuple[bytes, bytes]:
    return b'Content-Disposition: form-data; name="' + name + b'"' + extra, content


def post_multipart(http: httpx.Client, body: bytes, boundary: str = "XyZ") -> httpx.Response:
    return http.post(
        "/products",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )


DATA = json.dumps({"externalId": "p", "images": [{"source": {"fileKey": "f"}}]}).encode()


@pytest.mark.parametrize("name", ["\\", "a\\", "*\\", 'a"b', 'a\\"b', "\x08\\", "\t;=\\"])
def test_r32_a_part_name_with_an_escaped_backslash_or_quote_is_read_as_sent(
    shared_server: Server, key: str, client: Client, name: str
) -> None:
    """RFC 9110 quoted-string escapes (``\\`` and ``\"``), as curl sends them, with a filename
    after the name. python-multipart alone read ``name="\\"; filename="f"`` as the name
    ``"; filename="f``, and the image's fileKey then named no part."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').encode()
    payload = json.dumps({"externalId": "escaped", "images": [{"source": {"fileKey": name}}]})
    body = multipart(field(b"data", payload.encode()), field(quoted, PNG, b'; filename="f.png"'))
    response = post_multipart(client(shared_server, key), body)
    assert response.status_code == 201, response.text
    assert "catalog-warnings" not in response.headers  # the part was the image, not unused


def test_r32_a_data_part_sent_as_a_file_is_read_as_json_and_parts_keep_their_bytes(
    shared_server: Server, key: str, client: Client
) -> None:
    http = client(shared_server, key)
    body = multipart(
        field(b"data", DATA, b'; filename="data.json"\r\nContent-Type: application/json'),
        field(b"f", PNG, b'; filename="f.png"\r\nContent-Type: image/png'),
    )
    response = post_multipart(http, body)
    assert response.status_code == 201, response.text
    assert response.json()["images"][0]["sourceUrl"].startswith("upload://")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (multipart(field(b"f", PNG)), "data"),
        (multipart(field(b"data", b"[1]"), field(b"f", PNG)), "data"),
        (multipart(field(b"data", b'{"externalId": "\xff"}')), "data"),
        (multipart(field(b"data", DATA), field(b"f", PNG), close=False), "body"),
        (multipart(field(b"data", DATA), field(b"f", PNG), field(b"f", JPEG)), "f"),
        (multipart((b"Content-Type: text/plain", DATA)), "body"),
        (multipart(field(b"\xff", DATA)), "body"),
        (b"not multipart at all", "body"),
    ],
    ids=[
        "no data",
        "data not an object",
        "data not utf-8",
        "no closing boundary",
        "a part name twice",
        "a part without a name",
        "a part name not utf-8",
        "garbage",
    ],
)
def test_r32_a_malformed_multipart_body_is_400_validation_failed(
    shared_server: Server, key: str, client: Client, body: bytes, path: str
) -> None:
    http = client(shared_server, key)
    assert_error(post_multipart(http, body), "VALIDATION_FAILED", path)
    assert_error(http.get("/products/p"), "PRODUCT_NOT_FOUND")


def test_r32_multipart_without_a_boundary_is_400_at_body(
    shared_server: Server, key: str, client: Client
) -> None:
    response = client(shared_server, key).post(
        "/products", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert_error(response, "VALIDATION_FAILED", "body")


def test_r32_a_multipart_body_of_thousands_of_parts_is_refused_past_one_thousand(
    shared_server: Server, key: str, client: Client
) -> None:
    http = client(shared_server, key)
    parts = [field(b"data", DATA), field(b"f", PNG)]
    accepted = post_multipart(
        http, multipart(*parts, *(field(b"x%d" % n, b"") for n in range(998)))
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.headers["catalog-warnings-count"] == "998"  # UNUSED_FILE, one per part
    refused = post_multipart(
        http, multipart(*parts, *(field(b"x%d" % n, b"") for n in range(5000)))
    )
    body = assert_error(refused, "VALIDATION_FAILED", "body")
    assert body["details"][0]["message"] == "must hold at most 1000 parts"


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-H%d: v\r\n" % n for n in range(5000)) + b"Content-Disposition: form-data",
        b"Content-Disposition: form-data; name=data; x=" + b"a" * 100_000,
    ],
    ids=["thousands of header lines", "a header line of 100 KB"],
)
def test_r32_a_part_with_thousands_of_headers_or_a_huge_one_is_refused(
    shared_server: Server, key: str, client: Client, headers: bytes
) -> None:
    """python-multipart bounds a part's headers (8 lines of 4 KiB): past that, the body is bad."""
    body = multipart((headers, DATA), field(b"f", PNG))
    refused = post_multipart(client(shared_server, key), body)
    error = assert_error(refused, "VALIDATION_FAILED", "body")
    assert "header" in error["details"][0]["message"]


def test_r14_a_file_key_in_a_json_request_is_multipart_file_not_found(
    shared_server: Server, key: str, client: Client
) -> None:
    response = client(shared_server, key).post(
        "/products", content=DATA, headers={"content-type": "application/json"}
    )
    assert_error(response, "MULTIPART_FILE_NOT_FOUND", "images.0.source.fileKey")


# -- ids in paths, query strings ----------------------------------------------------------------


@pytest.mark.parametrize("external_id", ["a/b", "ü ß", "50%", "a?b#c", "_ANON_x", "x" * 256])
def test_r2_any_id_round_trips_through_the_path_percent_encoded(
    shared_server: Server, key: str, client: Client, external_id: str
) -> None:
    http = client(shared_server, key)
    created = http.post("/products", json={"externalId": external_id, "images": [IMAGE]})
    assert created.status_code == 201, created.text
    path = shared_server.root + created.headers["location"]
    assert http.get(path).json()["externalId"] == external_id
    assert http.delete(path).status_code == 204
    assert_error(http.get(path), "PRODUCT_NOT_FOUND")


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/products/", "VALIDATION_FAILED"),
        ("/products/a%00b", "VALIDATION_FAILED"),
        ("/products/" + "x" * 257, "VALIDATION_FAILED"),
        ("/products/_anon_abc", "PRODUCT_NOT_FOUND"),
    ],
)
def test_r2_r3_r23_a_malformed_id_in_the_path_is_400_and_an_anon_id_may_be_read(
    shared_server: Server, key: str, client: Client, path: str, code: str
) -> None:
    http = client(shared_server, key)
    assert_error(http.get(path), code)
    assert_error(http.delete(path), code)


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("limit=-1", "limit"),
        ("limit=%EF%BC%91", "limit"),  # a full-width digit one
        ("limit=99999999999999999999", "limit"),
        ("limit=" + "0" * 5000, "limit"),  # past Python's int-from-text limit: still a 400
        ("limit=00000201", "limit"),
        ("limit=1&limit=2", "limit"),
        ("cursor=", "cursor"),
        ("cursor=abc.def", "cursor"),
        ("cursor=a&cursor=b", "cursor"),
    ],
)
def test_r24_a_bad_limit_or_cursor_is_400_at_its_name(
    shared_server: Server, key: str, client: Client, query: str, path: str
) -> None:
    response = client(shared_server, key).get(f"/products?{query}")
    assert_error(response, "VALIDATION_FAILED", path)


def test_r24_a_limit_with_leading_zeros_is_that_number(
    shared_server: Server, key: str, client: Client
) -> None:
    http = client(shared_server, key)
    for n in range(3):
        http.post("/products", json={"externalId": f"p{n}", "images": [IMAGE]})
    assert http.get("/products?limit=0002").json()["count"] == 2
    assert http.get("/products?limit=00000000000000000001").json()["count"] == 1


def test_r18_r24_unknown_query_parameters_are_ignored_with_a_warning(
    shared_server: Server, key: str, client: Client
) -> None:
    response = client(shared_server, key).get("/products?limit=5&sort=desc&sort=asc")
    assert response.status_code == 200
    assert json.loads(response.headers["catalog-warnings"]) == [
        {"code": "UNKNOWN_FIELD", "path": "sort", "message": "unknown query parameter ignored"}
    ]


# -- warnings and ETags -------------------------------------------------------------------------


def test_r17_r18_r32_warnings_of_an_accepted_request_are_in_its_headers(
    shared_server: Server, key: str, client: Client
) -> None:
    http = client(shared_server, key)
    data = {
        "externalId": "p",
        "images": [{"url": "https://cdn.example/a.jpg", "alt": "x"}],
        'colour\u00e9,"': 1,
    }
    response = http.post(
        "/products",
        data={"data": json.dumps(data)},
        files={"spare": ("s.jpg", JPEG, "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    warnings = json.loads(response.headers["catalog-warnings"])
    assert [(w["code"], w["path"]) for w in warnings] == [
        ("UNKNOWN_FIELD", 'colour\u00e9,"'),
        ("UNKNOWN_FIELD", "images.0.alt"),
        ("DEPRECATED_IMAGE_SHAPE", "images.0"),
        ("UNUSED_FILE", "spare"),
    ]
    assert response.headers["catalog-warnings-count"] == "4"
    quiet = http.post("/products", json={"externalId": "p", "title": "t"})
    assert "catalog-warnings" not in quiet.headers
    urls = http.post("/products", json={"externalId": "q", "imageUrls": ["https://a.example/"]})
    assert json.loads(urls.headers["catalog-warnings"])[0]["code"] == "DEPRECATED_IMAGE_URLS"


def test_r18_thousands_of_warnings_are_cut_to_a_header_clients_accept_and_counted_in_full(
    shared_server: Server, key: str, client: Client
) -> None:
    body = {"externalId": "p", "images": [IMAGE]} | {
        f"unknown-{n}-" + "x" * 300: n for n in range(3000)
    }
    response = client(shared_server, key).post("/products", json=body)
    assert response.status_code == 201
    header = response.headers["catalog-warnings"]
    assert len(header.encode()) <= 4096
    shown = json.loads(header)
    assert 0 < len(shown) < 3000
    assert all(w["path"].endswith("…") for w in shown)  # long paths are cut too
    assert response.headers["catalog-warnings-count"] == "3000"


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        ('"2"', 200),
        ('"1", "2"', 200),
        ('"9", "2", "x"', 200),
        ("*", 200),
        ('W/"2"', 412),
        ('"1"', 412),
        ('"abc"', 412),
        ('"02"', 412),
        ("2", 400),
        ('"2', 400),
        ("", 400),
        ('"2",,x', 400),
    ],
)
def test_r28_if_match_on_an_upsert(
    shared_server: Server, key: str, client: Client, if_match: str, status: int
) -> None:
    http = client(shared_server, key)
    http.post("/products", json={"externalId": "p", "images": [IMAGE]})
    http.post("/products", json={"externalId": "p", "title": "v2"})
    response = http.post(
        "/products", json={"externalId": "p", "title": "v3"}, headers={"if-match": if_match}
    )
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["etag"] == '"3"'
        return
    if status == 412:
        assert_error(response, "VERSION_CONFLICT", "version")
    else:
        assert_error(response, "VALIDATION_FAILED", "If-Match")
    assert http.get("/products/p").json()["title"] == "v2"


def test_r28_r30_if_match_star_on_a_missing_product_fails_last(
    shared_server: Server, key: str, client: Client
) -> None:
    http = client(shared_server, key)
    star = {"if-match": "*"}
    assert_error(
        http.post("/products", json={"externalId": "p"}, headers=star), "PRODUCT_IMAGES_REQUIRED"
    )
    assert_error(
        http.post("/products", json={"externalId": "p", "title": 1}, headers=star),
        "VALIDATION_FAILED",
        "title",
    )
    refused = http.post("/products", json={"externalId": "p", "images": [IMAGE]}, headers=star)
    assert assert_error(refused, "VERSION_CONFLICT")["details"] == [
        {"path": "version", "message": "no live product has this id"}
    ]
    assert_error(http.get("/products/p"), "PRODUCT_NOT_FOUND")


def test_r25_r28_if_match_on_a_delete(shared_server: Server, key: str, client: Client) -> None:
    http = client(shared_server, key)
    http.post("/products", json={"externalId": "p", "images": [IMAGE]})
    assert_error(http.delete("/products/p", headers={"if-match": '"2"'}), "VERSION_CONFLICT")
    assert_error(http.delete("/products/p", headers={"if-match": "2"}), "VALIDATION_FAILED")
    assert http.delete("/products/p", headers={"if-match": "*"}).status_code == 204
    assert_error(http.delete("/products/p", headers={"if-match": "*"}), "PRODUCT_NOT_FOUND")
    assert_error(http.delete("/products/p", headers={"if-match": '"1"'}), "PRODUCT_NOT_FOUND")


# -- rate limit ---------------------------------------------------------------------------------


def test_r29_past_the_rate_limit_an_account_gets_429_with_retry_after(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    server = start("--db", str(tmp_path / "catalog.db"), "--rate-limit", "3")
    first, second = client(server, "gk_first"), client(server, "gk_second")
    statuses = [first.get("/products").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = first.post("/products", json={"externalId": "p", "images": [IMAGE]})
    assert_error(limited, "RATE_LIMITED")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert_error(first.get("/products"), "RATE_LIMITED")
    assert_error(first.get("/products/p"), "RATE_LIMITED")  # nothing was written
    assert second.get("/products").status_code == 200  # the limit is per account
    assert httpx.get(server.base + "/openapi.json").status_code == 200  # and not for the document


# -- the embedded default, shutdown and failures ------------------------------------------------


def test_without_db_the_server_keeps_its_catalog_in_catalog_db_of_the_working_directory(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    server = start()
    http = client(server, "gk_default")
    assert http.post("/products", json={"externalId": "p", "images": [IMAGE]}).status_code == 201
    assert server.stop() == -signal.SIGTERM
    repository = cc.SQLiteRepository(tmp_path / "catalog.db")
    try:
        assert cc.Catalog(repository).get("gk_default", "p").version == 1
    finally:
        repository.close()


def test_r26_on_sigterm_a_request_in_flight_completes_and_is_kept(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    db = str(tmp_path / "catalog.db")
    server = start("--db", db)
    with posting(server, {"externalId": "in-flight", "images": [IMAGE]}) as (sock, body):
        sock.sendall(body[:10])
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "Shutting down" in server.log(), "the shutdown to begin")
        with pytest.raises(ConnectionRefusedError):  # no new connections...
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        sock.sendall(body[10:])  # ...but the one in flight completes
        answer = read_all(sock)
    assert status_of(answer) == 201, answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["externalId"] == "in-flight"
    assert server.process.wait(timeout=30) == -signal.SIGTERM
    assert "Application shutdown complete" in server.log()

    again = start("--db", db)
    assert client(again, "gk_k").get("/products/in-flight").status_code == 200


def test_r26_a_body_still_arriving_when_the_shutdown_times_out_is_dropped_and_writes_nothing(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    db = str(tmp_path / "catalog.db")
    server = start("--db", db, "--shutdown-timeout", "1")
    with posting(server, {"externalId": "never", "images": [IMAGE]}) as (sock, body):
        sock.sendall(body[:-1])  # one byte short, for ever
        server.process.send_signal(signal.SIGTERM)
        answer = read_all(sock)
        assert server.process.wait(timeout=30) == -signal.SIGTERM
    assert status_of(answer) == 503
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "UNAVAILABLE"
    again = start("--db", db)
    assert_error(client(again, "gk_k").get("/products/never"), "PRODUCT_NOT_FOUND")


class _BrokenRepository(cc.MemoryRepository):
    """A repository whose reads fail as a broken disk would: not the request's fault."""

    def get(self, account: str, external_id: str) -> cc.Product | None:
        raise OSError("disk on fire")


def test_r29_an_unexpected_failure_is_500_internal_in_the_error_shape_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(cc.Catalog(_BrokenRepository()))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get("/tryon/v1/products/p", headers={"x-api-key": "sekrit-500"})

    response = anyio.run(call)
    body = assert_error(response, "INTERNAL")
    assert "disk" not in body["message"]  # the cause is in the log, not in the answer
    failures = [r for r in caplog.records if r.name == "catalog_core.server"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "GET /tryon/v1/products/p" in failures[0].getMessage()
    assert "sekrit" not in caplog.text


def test_serve_refuses_bad_options_with_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from catalog_core.cli import main

    runner = CliRunner()
    for args in (
        ["--api-key", "sekrit-without-equals-sign"],
        ["--api-key", "=acme"],
        ["--api-key", "sekrit-key="],
        ["--api-key", "sekrit-key=a", "--api-key", "sekrit-key=b"],
        ["--api-key", "sekrit-key=bad\naccount"],
        ["--rate-limit", "0"],
        ["--port", "70000"],
    ):
        result = runner.invoke(main, ["--db", str(tmp_path / "c.db"), "serve", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "sekrit" not in result.output  # a key is never echoed, even a malformed one
    assert not (tmp_path / "c.db").exists()


def test_serve_on_a_port_in_use_exits_1_with_one_clean_line(tmp_path: Path) -> None:
    from tests.server.conftest import SCRIPT

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(SCRIPT), "serve", "--db", str(tmp_path / "c.db"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert re.fullmatch(rf"Error: cannot listen on 127\.0\.0\.1:{port}: .+\n", result.stderr)


def test_r2_an_id_with_a_slash_may_be_sent_raw_or_percent_encoded(
    shared_server: Server, key: str, client: Client
) -> None:
    http = client(shared_server, key)
    http.post("/products", json={"externalId": "shirts/red", "images": [IMAGE]})
    assert http.get("/products/shirts/red").json()["externalId"] == "shirts/red"
    assert http.get("/products/shirts%2Fred").json()["externalId"] == "shirts/red"


def test_a_password_in_the_database_url_is_never_printed(
    start: Callable[..., Server], client: Client
) -> None:
    url, schema = postgres_url(), fresh_schema()
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    with_password = (
        f"{scheme}://{user}:hunter2-sekrit@{host}?schema={schema}&password=hunter3"
        "&pass%77ord=hunter4"
    )
    server = start("--db", with_password)
    try:
        assert client(server, "gk_k").get("/products").status_code == 200
        assert server.stop() == -signal.SIGTERM
        log = server.log()
        assert f"{user}:***@" in log.splitlines()[0]
        assert "&password=***&pass%77ord=***" in log.splitlines()[0]
        assert "hunter" not in log
    finally:
        repository = cc.PostgresRepository(url, schema=schema)
        repository.drop_schema()
        repository.close()


@pytest.mark.parametrize("encoded", ["%ff", "%fe", "%ed%a0%80", "a%c3"])
def test_r2_a_path_id_that_is_not_utf8_is_400_and_never_another_products_id(
    shared_server: Server, key: str, client: Client, encoded: str
) -> None:
    http = client(shared_server, key)
    http.post("/products", json={"externalId": "\ufffd", "images": [IMAGE]})
    http.post("/products", json={"externalId": "a\ufffd", "images": [IMAGE]})
    for method in ("GET", "DELETE", "HEAD"):
        response = http.request(method, f"/products/{encoded}")
        assert response.status_code == 400, (method, response.text)
        if method != "HEAD":
            assert_error(response, "VALIDATION_FAILED", "externalId")
    assert http.get("/products/%EF%BF%BD").status_code == 200  # U+FFFD itself, sent as UTF-8
    assert http.get("/products/a%EF%BF%BD").status_code == 200


def test_r32_a_boundary_longer_than_the_parser_takes_is_400_at_body(
    shared_server: Server, key: str, client: Client
) -> None:
    http = client(shared_server, key)
    for boundary in ("B" * 257, "B" * 5000):
        response = post_multipart(http, multipart(field(b"data", DATA)), boundary=boundary)
        assert_error(response, "VALIDATION_FAILED", "body")
    longest = "B" * 256
    body = multipart(field(b"data", DATA), field(b"f", PNG), boundary=longest.encode())
    assert post_multipart(http, body, boundary=longest).status_code == 201


@pytest.mark.parametrize(
    ("content_type", "api_key", "path", "code"),
    [
        ("text/plain", "k", "/products", "UNSUPPORTED_MEDIA_TYPE"),
        ("application/json", None, "/products", "MISSING_API_KEY"),
        ("application/json", "k", "/nowhere", "ROUTE_NOT_FOUND"),
        ("application/json", "k", "/products/p", "METHOD_NOT_ALLOWED"),
    ],
)
def test_r33_a_body_answered_before_it_is_read_is_never_read_past_the_request_limit(
    shared_server: Server, content_type: str, api_key: str | None, path: str, code: str
) -> None:
    """Whatever refuses a request early, its body is read to the limit at most (R33)."""
    head = (
        f"POST /tryon/v1{path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
        + ("" if api_key is None else f"x-api-key: {api_key}\r\n")
    ).encode()

    # A client that asks before it sends (Expect: 100-continue, as curl does for big bodies)
    # gets the answer at once, and is never asked for the body.
    answer = raw(
        shared_server, head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (16 * MiB)
    )
    assert answer.startswith(b"HTTP/1.1 %d " % {**R29_STATUS, **SERVER_CODES}[code])
    assert b'"code":"' + code.encode() + b'"' in answer
    assert b"connection: close" in answer.lower()

    # A client that streams its body regardless has it read up to the request limit, then the
    # connection closed. (The answer may then be lost to the reset: that is what the Expect
    # header above is for.) Socket buffers take a few MiB more than the server reads.
    chunk = b"%x\r\n" % MiB + b" " * MiB + b"\r\n"
    sent, answer, refused = 0, b"", False
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=30) as sock:
        sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < 256 * MiB:
                sock.sendall(chunk)
                sent += MiB
            while data := sock.recv(65536):
                answer += data
        except (BrokenPipeError, ConnectionResetError):
            refused = True
    assert refused, f"the server read all {sent >> 20} MiB of a body it had refused"
    assert sent <= LIMIT + 16 * MiB, f"{sent >> 20} MiB went in before the connection closed"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4")


def test_a_get_with_a_body_answers_and_closes_rather_than_read_it(
    shared_server: Server, key: str
) -> None:
    head = (
        f"GET /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: {key}\r\n"
        "Content-Length: 1000000000\r\n\r\n"
    ).encode()
    answer = raw(shared_server, head)  # no byte of the body is sent: the answer must not wait
    assert status_of(answer) == 200
    assert b"connection: close" in answer.lower()


def test_r1_a_key_that_cannot_be_an_account_is_401_invalid_api_key(shared_server: Server) -> None:
    answer = raw(
        shared_server,
        b"GET /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: a\tb\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert status_of(answer) == 401
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "INVALID_API_KEY"


def test_r1_a_key_table_key_may_hold_equals_signs_as_base64_keys_do(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    server = start("--db", str(tmp_path / "catalog.db"), "--api-key", "Zm9vYmFy===acme")
    assert client(server, "Zm9vYmFy==").get("/products").status_code == 200
    assert_error(client(server, "Zm9vYmFy").get("/products"), "INVALID_API_KEY")


def test_serve_refuses_a_key_no_header_could_carry(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from catalog_core.cli import main

    for key in ("sekrit ké", "sekrit key", "sekrit\tkey"):
        result = CliRunner().invoke(
            main, ["--db", str(tmp_path / "c.db"), "serve", "--api-key", f"{key}=acme"]
        )
        assert result.exit_code == 2
        assert "visible ASCII" in result.output
        assert "sekrit" not in result.output


def test_create_app_refuses_keys_and_accounts_it_could_never_serve() -> None:
    catalog = cc.Catalog(cc.MemoryRepository())
    for keys in ({"": "acme"}, {"ké": "acme"}, {"k": ""}, {"k": "a\nb"}):
        with pytest.raises(ValueError, match="API key"):
            create_app(catalog, api_keys=keys)
    for bad in ({"rate_limit": 0}, {"max_parts": 0}, {"rate_limit": True}):
        with pytest.raises(ValueError, match="positive"):
            create_app(catalog, **bad)  # type: ignore[arg-type]


def test_r18_unknown_query_parameters_of_a_post_are_warned_about_too(
    shared_server: Server, key: str, client: Client
) -> None:
    response = client(shared_server, key).post(
        "/products?dryRun=1", json={"externalId": "p", "images": [IMAGE]}
    )
    assert response.status_code == 201
    assert json.loads(response.headers["catalog-warnings"]) == [
        {"code": "UNKNOWN_FIELD", "path": "dryRun", "message": "unknown query parameter ignored"}
    ]


def test_listing_cursors_are_cut_out_of_the_access_log(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    server = start("--db", str(tmp_path / "catalog.db"), "--access-log")
    http = client(server, "gk_logged")
    for n in range(3):
        http.post("/products", json={"externalId": f"p{n}", "images": [IMAGE]})
    cursor = http.get("/products", params={"limit": 1}).json()["nextCursor"]
    assert http.get("/products", params={"limit": 1, "cursor": cursor}).status_code == 200
    assert http.get(f"/products?cursor={cursor}&limit=1").status_code == 200
    assert http.get(f"/products?%63ursor={cursor}&limit=1").json()["items"][0]["externalId"] == "p1"
    server.stop()
    log = server.log()
    assert "GET /tryon/v1/products?limit=1&cursor=… HTTP/1.1" in log
    assert "GET /tryon/v1/products?cursor=…&limit=1 HTTP/1.1" in log
    assert "GET /tryon/v1/products?%63ursor=…&limit=1 HTTP/1.1" in log
    assert cursor not in log


def test_the_access_log_names_the_client_a_trusted_proxy_forwards_for_every_upsert(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    """With the access log on, a plain upsert (which is otherwise answered by its connection,
    before the application sees it) goes through the application, whose proxy headers give
    the log the address the local proxy forwards."""
    server = start("--db", str(tmp_path / "catalog.db"), "--access-log")
    http = client(server, "gk_logged")
    forwarded = {"x-forwarded-for": "203.0.113.7"}
    answer = http.post("/products", json={"externalId": "p", "images": [IMAGE]}, headers=forwarded)
    assert answer.status_code == 201
    server.stop()
    assert '203.0.113.7:0 - "POST /tryon/v1/products HTTP/1.1" 201' in server.log()


def test_the_access_log_is_off_unless_asked_for(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    """A line per request costs a share of a small request's time: it is there on request."""
    server = start("--db", str(tmp_path / "catalog.db"))
    assert client(server, "gk_quiet").get("/products").status_code == 200
    server.stop()
    assert "GET /tryon/v1/products" not in server.log()


def test_the_log_level_applies_to_the_server_and_its_parser(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    server = start("--db", str(tmp_path / "catalog.db"), "--log-level", "error")
    http = client(server, "gk_quiet")
    assert http.get("/products").status_code == 200
    garbage = post_multipart(http, b"--XyZ\r\nno headers end here")
    assert_error(garbage, "VALIDATION_FAILED", "body")
    server.stop()
    assert server.log().splitlines()[1:] == []  # only the start line, on stdout


def test_ctrl_c_stops_the_server_gracefully_with_status_0(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    server = start("--db", str(tmp_path / "catalog.db"))
    assert server.stop(signal.SIGINT) == 0
    assert "Application shutdown complete" in server.log()
    assert "Traceback" not in server.log()


def test_ctrl_c_the_moment_the_server_says_it_is_serving_still_stops_it_cleanly(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """The line is printed once uvicorn handles signals: an interrupt never lands mid-start."""
    for attempt in range(5):
        server = start("--db", str(tmp_path / f"catalog{attempt}.db"))
        assert server.stop(signal.SIGINT, timeout=15) == 0, server.log()
        assert "Traceback" not in server.log()


def test_r26_a_write_still_running_when_the_shutdown_times_out_is_answered_503_and_kept_whole(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    """The answer cannot wait past the timeout; the write itself is never cut in half."""
    db = tmp_path / "catalog.db"
    server = start("--db", str(db), "--shutdown-timeout", "1")
    with write_waiting_for_a_lock(server, db) as sock:
        server.process.send_signal(signal.SIGTERM)
        answer = read_all(sock)
        assert status_of(answer) == 503, answer
        error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert error["code"] == "UNAVAILABLE"
        assert error["status"] == 503
        time.sleep(0.5)
        assert server.process.poll() is None  # still waiting for the write to end
    assert server.process.wait(timeout=60) == -signal.SIGTERM
    assert "Traceback" not in server.log()
    again = start("--db", str(db))
    assert client(again, "gk_k").get("/products/slow").status_code == 200  # whole, not half


def test_r26_a_second_ctrl_c_during_a_write_ends_the_server_cleanly_and_the_write_whole(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    """A second Ctrl+C skips the graceful wait, never the end of a write already running."""
    db = tmp_path / "catalog.db"
    server = start("--db", str(db))
    with write_waiting_for_a_lock(server, db) as sock:
        server.process.send_signal(signal.SIGINT)
        wait_for(lambda: "Shutting down" in server.log(), "the shutdown to begin")
        server.process.send_signal(signal.SIGINT)  # the second Ctrl+C
        read_all(sock)
        time.sleep(0.5)
        assert server.process.poll() is None  # the write still runs: the process waits for it
    assert server.process.wait(timeout=60) == 0
    log = server.log()
    assert "catalog calls still running" in log
    again = start("--db", str(db))
    assert client(again, "gk_k").get("/products/slow").status_code == 200
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_shutdown_during_the_read_of_an_unused_body_still_answers_in_the_error_shape(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    server = start("--db", str(tmp_path / "catalog.db"), "--shutdown-timeout", "1")
    head = (
        b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\n"  # no key: a 401 is ready at once
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b"{" * 10
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)  # 90 bytes short: the server reads on, to keep the connection usable
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        answer = read_all(sock)
    assert status_of(answer) in (401, 503), answer
    assert b"connection: close" in answer.lower()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] in ("MISSING_API_KEY", "UNAVAILABLE")
    assert server.process.wait(timeout=30) == -signal.SIGTERM
    assert "ASGI callable returned without" not in server.log()


async def _lifespan(app: Any, phase: str) -> None:
    """Run one phase (``startup`` or ``shutdown``) of an application's lifespan to its end."""
    to_app, from_test = anyio.create_memory_object_stream[dict[str, Any]](2)
    to_test, from_app = anyio.create_memory_object_stream[dict[str, Any]](2)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with to_app, from_test, to_test, from_app, anyio.create_task_group() as tasks:
        tasks.start_soon(app, scope, from_test.receive, to_test.send)
        await to_app.send({"type": "lifespan.startup"})
        assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        if phase == "shutdown":
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"
        else:
            tasks.cancel_scope.cancel()


def test_an_embedded_app_serves_again_after_a_lifespan_has_ended() -> None:
    app = create_app(cc.Catalog(cc.MemoryRepository()))

    async def cycle() -> int:
        await _lifespan(app, "shutdown")  # startup, then shutdown: the catalog calls drained
        await _lifespan(app, "startup")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/tryon/v1/products", headers={"x-api-key": "k"})
        return response.status_code

    assert anyio.run(cycle) == 200


def test_an_app_mounted_under_a_prefix_reads_ids_and_builds_locations_below_it() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/api", app=create_app(cc.Catalog(cc.MemoryRepository())))])

    async def walk() -> None:
        transport = httpx.ASGITransport(app=outer)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            headers = {"x-api-key": "k"}
            created = await http.post(
                "/api/tryon/v1/products",
                json={"externalId": "a/ü", "images": [IMAGE]},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            assert created.headers["location"] == "/api/tryon/v1/products/a%2F%C3%BC"
            got = await http.get(created.headers["location"], headers=headers)
            assert got.json()["externalId"] == "a/ü"
            assert (
                await http.get("/api/tryon/v1/products/%FF", headers=headers)
            ).status_code == 400
            assert (await http.get("/api/tryon/v1/openapi.json")).status_code == 200  # no key

    anyio.run(walk)


# -- a body that stops arriving ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["json", "multipart", "chunked"])
def test_r33_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed(
    start: Callable[..., Server], tmp_path: Path, client: Client, kind: str
) -> None:
    """A client that stops sending is dropped after --body-timeout; nothing is written."""
    server = start("--db", str(tmp_path / "catalog.db"), "--body-timeout", "1")
    body = json.dumps({"externalId": "stalled", "images": [IMAGE]}).encode()
    if kind == "multipart":
        content_type = b"multipart/form-data; boundary=XyZ"
        body = b'--XyZ\r\nContent-Disposition: form-data; name="data"\r\n\r\n' + body
    else:
        content_type = b"application/json"
    length = b"Transfer-Encoding: chunked" if kind == "chunked" else b"Content-Length: 100000"
    sent = b"%x\r\n%s\r\n" % (len(body), body) if kind == "chunked" else body
    head = (
        b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: gk_k\r\n"
        b"Content-Type: " + content_type + b"\r\n" + length + b"\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + sent)  # ...and then nothing more
        answer = read_all(sock)  # returns: the server closed the connection
    waited = time.monotonic() - started
    assert status_of(answer) == 408, answer
    assert b"connection: close" in answer.lower()
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert (error["code"], error["status"]) == ("REQUEST_TIMEOUT", 408)
    assert 0.9 < waited < 6  # the timeout; not forever, nor the 10 s drain on top of it
    assert client(server, "gk_k").get("/products/stalled").status_code == 404


def test_r33_a_slow_body_whose_bytes_keep_coming_is_read_whole(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    """The timeout is for silence, not for slowness: a byte every 0.3 s never times out at 1 s
    (while the body keeps above --body-min-rate, here 10 bytes a second)."""
    server = start(
        "--db", str(tmp_path / "catalog.db"), "--body-timeout", "1", "--body-min-rate", "10"
    )
    body = json.dumps({"externalId": "slow", "images": [IMAGE]}).encode()
    head = closing_json_upsert_head(len(body))
    pieces = [body[i : i + len(body) // 6 + 1] for i in range(0, len(body), len(body) // 6 + 1)]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        for piece in pieces:
            time.sleep(0.3)
            sock.sendall(piece)
        answer = read_all(sock)
    assert status_of(answer) == 201, answer
    assert client(server, "gk_k").get("/products/slow").status_code == 200


@pytest.mark.parametrize("kind", ["json", "multipart"])
def test_r33_a_body_that_trickles_in_below_the_minimum_rate_is_answered_408(
    start: Callable[..., Server], tmp_path: Path, client: Client, kind: str
) -> None:
    """A byte every 0.2 s never trips the 1 s --body-timeout, but a body must average
    --body-min-rate bytes a second after its first --body-timeout seconds: 1 + n/100 s here."""
    server = start(
        "--db", str(tmp_path / "catalog.db"), "--body-timeout", "1", "--body-min-rate", "100"
    )
    body = json.dumps({"externalId": "trickled", "images": [IMAGE]}).encode()
    content_type = b"application/json"
    if kind == "multipart":
        content_type = b"multipart/form-data; boundary=XyZ"
        body = b'--XyZ\r\nContent-Disposition: form-data; name="data"\r\n\r\n' + body
    head = (
        b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: gk_k\r\n"
        b"Content-Type: " + content_type + b"\r\nContent-Length: 100000\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        answer = trickle(sock, body, every=0.2, give_up_after=15)
    waited = time.monotonic() - started
    assert "100 bytes a second" in timed_out(answer)["message"]
    assert 0.9 < waited < 6  # 1 s, and 1/100 s for each of the few bytes that came
    assert client(server, "gk_k").get("/products/trickled").status_code == 404


# -- a head that never finishes arriving -------------------------------------------------------

_TRICKLED_HEAD = (
    b"POST /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: gk_k\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\n" + b"X-Pad: " + b"a" * 200
)


@pytest.mark.parametrize("when", ["first request", "after a response"])
def test_r33_a_head_sent_a_byte_at_a_time_is_answered_408_at_the_header_timeout(
    start: Callable[..., Server], tmp_path: Path, when: str
) -> None:
    """Slowly sent headers (slowloris) hold a connection only until --header-timeout.

    The deadline is for the whole head, so a byte every 0.1 s does not keep it alive; on a
    keep-alive connection it starts again when the previous response ends.
    """
    server = start("--db", str(tmp_path / "catalog.db"), "--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        if when == "after a response":
            sock.sendall(b"GET /tryon/v1/products HTTP/1.1\r\nHost: test\r\nx-api-key: k\r\n\r\n")
            first = b""
            while b"\r\n\r\n" not in first:  # the head, then exactly its Content-Length
                first += sock.recv(65536)
            head, _, body = first.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head.lower())[1])  # type: ignore[index]
            while len(body) < length:
                body += sock.recv(65536)
            assert status_of(first) == 200, first
        started = time.monotonic()
        # Never the blank line that ends a head.
        answer = trickle(sock, _TRICKLED_HEAD, every=0.1, give_up_after=10)
    waited = time.monotonic() - started
    assert "headers" in timed_out(answer)["message"]
    assert 0.9 < waited < 6


def test_r33_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    """An idle connection is closed without an answer: there is no request to answer."""
    server = start("--db", str(tmp_path / "catalog.db"), "--header-timeout", "1")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        assert read_all(sock) == b""
    assert 0.9 < time.monotonic() - started < 6


def test_r33_a_head_in_pieces_within_the_header_timeout_is_served(
    start: Callable[..., Server], tmp_path: Path, client: Client
) -> None:
    """A head that arrives in slow pieces, but whole before the deadline, is an ordinary request;
    so is a request whose body takes longer than the header timeout (that is the body's own)."""
    server = start("--db", str(tmp_path / "catalog.db"), "--header-timeout", "2")
    body = json.dumps({"externalId": "pieces", "images": [IMAGE]}).encode()
    head = closing_json_upsert_head(len(body))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        for i in range(0, len(head), len(head) // 4 + 1):
            sock.sendall(head[i : i + len(head) // 4 + 1])
            time.sleep(0.2)
        for i in range(0, len(body), len(body) // 5 + 1):  # 5 x 0.6 s: past the 2 s deadline
            time.sleep(0.6)
            sock.sendall(body[i : i + len(body) // 5 + 1])
        answer = read_all(sock)
    assert status_of(answer) == 201, answer
    assert client(server, "gk_k").get("/products/pieces").status_code == 200


@pytest.mark.parametrize(
    "option",
    [
        "--body-timeout",
        "--header-timeout",
        "--send-timeout",
        "--body-min-rate",
        "--max-connections",
    ],
)
@pytest.mark.parametrize("value", ["0", "-1", "nan", "abc", "inf"])
def test_a_timeout_a_rate_or_a_limit_that_is_not_a_positive_number_is_a_usage_error(
    option: str, value: str, tmp_path: Path
) -> None:
    ran = subprocess.run(
        [str(SCRIPT), "--db", str(tmp_path / "c.db"), "serve", option, value],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ran.returncode == 2, ran.stderr
    assert option in ran.stderr
