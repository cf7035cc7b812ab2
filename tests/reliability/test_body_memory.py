"""What one request body can cost a real server in memory (R18, R33).

JSON text takes many times its size once parsed: ``[{},{},…]`` is a dict of about 70 bytes for
every 3 bytes of text, and each unknown key was a kept warning besides. A real
``catalog-core serve`` (SQLite, default limits: 32 MiB a request) is sent the costliest bodies
within the request limit, found by measuring each shape's peak (docs/reliability.md): those the
decode bound refuses (the issue's 2,400,000 unknown keys, ``[{},…]`` filling the limit), and those
it lets through at its very edge (unknown keys, empty objects, a 32 MiB string, a 10 MiB string
with one astral character and a 20-digit number, which the standard library parses, and the same
in a multipart ``data`` part). Its RSS is read from ``/proc/PID/status``; the peak (``VmHWM``) is
reset before each request.

- One at a time, the server's peak stays within four times the request limit above its RSS when
  idle.
- Four at once, its peak stays under 512 MiB.

The CI form sends the costliest bodies; ``CATALOG_CORE_BODY_SHAPES=all`` (or
``CATALOG_CORE_LONG=1``) adds the other shapes measured, one at a time and four at once. Each
prints its figures.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import catalog_core as cc
from tests.helpers import run_size
from tests.server.conftest import Server, start_server

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the server's memory from /proc"
)

MiB = 2**20
LIMIT = cc.Limits().max_request_bytes
#: The bound of docs/rules.md, as documented: what parsing a body may take.
DECODE_BOUND = 2 * LIMIT + 16 * MiB
ONE_AT_A_TIME_MIB = 4 * LIMIT // MiB
FOUR_AT_ONCE_MIB = 512
HEAD = b'{"externalId":"p","images":[{"source":{"url":"https://cdn.example/a.jpg"}}]'


def documented_cost(body: bytes) -> int:
    """The decode cost of docs/rules.md: 128 bytes a value or key, 2 a byte of ASCII text (8
    with any other character or a \\u escape)."""
    wide = not body.isascii() or b"\\u" in body
    starts = sum(body.count(c) for c in (b",", b":", b"[", b"{"))
    return 2 * (4 if wide else 1) * len(body) + 128 * (starts + 1)


def at_the_bound(make: Callable[[int], bytes]) -> bytes:
    """The body ``make(n)`` of the largest ``n`` that the bound and the request limit let in.

    ``make(n)``'s size and cost grow by the same amount with each ``n``.
    """
    one, two = make(1), make(2)
    by_cost = (DECODE_BOUND - documented_cost(one)) // (documented_cost(two) - documented_cost(one))
    by_size = (LIMIT - 1024 - len(one)) // (len(two) - len(one))
    body = make(1 + min(by_cost, by_size))
    assert len(body) <= LIMIT - 1024
    assert documented_cost(body) <= DECODE_BOUND
    return body


def unknown_keys(count: int) -> bytes:
    return HEAD + b"".join(b',"k%06x":0' % n for n in range(count)) + b"}"


def junk(value: bytes) -> bytes:
    return HEAD + b',"junk":' + value + b"}"


def items(item: bytes, count: int) -> bytes:
    return b"[" + (item + b",") * (count - 1) + item + b"]"


# name -> (the body, sent as multipart, accepted)
Shape = tuple[Callable[[], bytes], bool, bool]
COSTLIEST: dict[str, Shape] = {
    "the issue's 2,400,000 unknown keys": (lambda: unknown_keys(2_400_000), False, False),
    "[{},…] filling the limit": (lambda: junk(items(b"{}", (LIMIT - 200) // 3)), False, False),
    "unknown keys at the bound": (lambda: at_the_bound(unknown_keys), False, True),
    "[{},…] at the bound": (lambda: at_the_bound(lambda n: junk(items(b"{}", n))), False, True),
    "a 32 MiB string": (lambda: junk(b'"' + b"a" * (LIMIT - 1024) + b'"'), False, True),
    "a wide string and a long number at the bound": (
        lambda: at_the_bound(
            lambda n: junk(b'["\xf0\x9f\x98\x80' + b"a" * n + b'",12345678901234567890]')
        ),
        False,
        True,
    ),
    "a multipart data part of a 32 MiB string": (
        lambda: junk(b'"' + b"a" * (LIMIT - 2048) + b'"'),
        True,
        True,
    ),
}
OTHERS: dict[str, Shape] = {
    "[[],…] at the bound": (lambda: at_the_bound(lambda n: junk(items(b"[]", n))), False, True),
    '["ab",…] at the bound': (lambda: at_the_bound(lambda n: junk(items(b'"ab"', n))), False, True),
    '[{"a":0},…] at the bound': (
        lambda: at_the_bound(lambda n: junk(items(b'{"a":0}', n))),
        False,
        True,
    ),
    "[0.5,…] at the bound": (lambda: at_the_bound(lambda n: junk(items(b"0.5", n))), False, True),
    '["\\u0100",…] at the bound': (
        lambda: at_the_bound(lambda n: junk(items(b'"\\u0100"', n))),
        False,
        True,
    ),
    "[0,…] filling the limit": (lambda: junk(items(b"0", (LIMIT - 200) // 2)), False, False),
    "unknown keys at the bound, in a multipart data part": (
        lambda: at_the_bound(unknown_keys),
        True,
        True,
    ),
}
FOUR_AT_ONCE = ["a 32 MiB string"]  # the costliest four at once


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real ``catalog-core serve`` on SQLite with the default limits."""
    started = start_server(tmp_path, "--db", str(tmp_path / "catalog.db"), "--log-level", "warning")
    yield started
    started.stop()


def memory_mib(server: Server) -> tuple[int, int]:
    """The server's ``VmRSS`` and ``VmHWM`` (its peak since the last reset), in MiB."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    found = {k: int(v) // 1024 for k, v in re.findall(r"(VmRSS|VmHWM):\s+(\d+) kB", status)}
    return found["VmRSS"], found["VmHWM"]


def reset_peak(server: Server) -> None:
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS


def send(server: Server, body: bytes, multipart: bool) -> httpx.Response:
    with httpx.Client(
        base_url=server.base, headers={"x-api-key": "gk_memory"}, timeout=120
    ) as http:
        if multipart:
            return http.post("/products", files={"data": (None, body, "application/json")})
        return http.post("/products", content=body, headers={"content-type": "application/json"})


def check_answer(response: httpx.Response, accepted: bool, multipart: bool) -> None:
    if accepted:
        assert response.status_code in (200, 201), response.text[:300]
        assert int(response.headers["catalog-warnings-count"]) >= 1
        assert len(json.loads(response.headers["catalog-warnings"])) <= 100
        return
    body: dict[str, Any] = response.json()
    assert (response.status_code, body["code"]) == (400, "VALIDATION_FAILED"), body
    assert [d["path"] for d in body["details"]] == ["data" if multipart else "body"]


def test_r33_no_body_within_the_request_limit_costs_the_server_more_than_4x_the_limit(
    server: Server,
) -> None:
    """R33: a request within the limits costs the server at most four times the request limit in
    memory above its idle RSS, one at a time, and four at once stay under 512 MiB; R18: a body
    of unknown keys keeps the first 100 warnings and counts them all."""
    shapes = dict(COSTLIEST)
    if run_size("BODY_SHAPES", "costliest", "all") == "all":
        shapes |= OTHERS
    check_answer(send(server, junk(b"1"), False), True, False)  # warm: every module loaded
    idle, _ = memory_mib(server)
    figures = [f"idle RSS {idle} MiB"]
    for name, (make, multipart, accepted) in shapes.items():
        body = make()
        before, _ = memory_mib(server)
        reset_peak(server)
        check_answer(send(server, body, multipart), accepted, multipart)
        rss, peak = memory_mib(server)
        figures.append(f"{name} ({len(body) / MiB:.1f} MiB): {before} -> peak {peak} -> {rss} MiB")
        assert peak - before <= ONE_AT_A_TIME_MIB, figures
    # What the allocator keeps for the next request is bounded too.
    assert rss - idle <= ONE_AT_A_TIME_MIB, figures
    four = FOUR_AT_ONCE if len(shapes) == len(COSTLIEST) else list(shapes)
    for name in four:
        make, multipart, accepted = shapes[name]
        body = make()
        answers: list[httpx.Response] = []

        def post(
            body: bytes = body, multipart: bool = multipart, answers: list[Any] = answers
        ) -> None:
            answers.append(send(server, body, multipart))

        reset_peak(server)
        threads = [threading.Thread(target=post) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rss, peak = memory_mib(server)
        figures.append(f"four of {name}: peak {peak}, then {rss} MiB")
        assert len(answers) == 4
        for answer in answers:
            check_answer(answer, accepted, multipart)
        assert peak < FOUR_AT_ONCE_MIB, figures
    print("\n".join(figures))


def test_r33_a_body_one_value_past_the_decode_bound_is_refused_at_body(server: Server) -> None:
    """The bound of docs/rules.md, exactly: at it the body is parsed, one value more and it is
    refused before any of it is, at ``body`` (``data`` for a multipart part)."""
    body = at_the_bound(lambda n: junk(items(b"0", n)))
    over = body[: -len(b"]}")] + b",0]}"
    assert documented_cost(body) <= DECODE_BOUND < documented_cost(over)
    for multipart in (False, True):
        check_answer(send(server, body, multipart), True, multipart)
        refused = send(server, over, multipart)
        check_answer(refused, False, multipart)
        assert f"within {DECODE_BOUND} bytes" in refused.json()["message"]
