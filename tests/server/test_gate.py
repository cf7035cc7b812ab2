"""The gate's rate limit (``--rate-limit``): a moving window per account, O(1) per request.

These run the gate in process, as an ASGI middleware in front of a minimal application, so that
the work a request costs can be counted: every Python and C function called, in every thread.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import pytest

from catalog_core.server.gate import ACCOUNT_SCOPE_KEY, Gate, MovingWindow


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope[ACCOUNT_SCOPE_KEY].encode()})


def _requests(gate: Gate, keys: list[str]) -> list[tuple[int, dict[bytes, bytes]]]:
    """GETs through ``gate``, one per key (as ``x-api-key``), in turn: statuses and headers."""
    answers: list[tuple[int, dict[bytes, bytes]]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answers.append((message["status"], dict(message.get("headers", []))))

    async def run() -> None:
        for key in keys:
            scope = {
                "type": "http",
                "method": "GET",
                "path": "/tryon/v1/products",
                "root_path": "",
                "headers": [(b"x-api-key", key.encode())],
            }
            await gate(scope, receive, send)

    asyncio.run(run())
    return answers


def _request(gate: Gate, key: str) -> tuple[int, dict[bytes, bytes]]:
    return _requests(gate, [key])[0]


def _calls_per_request(accounts: int, requests: int = 3000) -> float:
    """Function calls, in every thread, per request of 10 busy accounts among ``accounts``."""
    gate = Gate(_ok, api_keys=None, rate_limit=100_000, public_paths=frozenset())
    populated = _requests(gate, [f"gk_{index}" for index in range(accounts)])
    assert {status for status, _ in populated} == {200}
    calls = 0
    lock = threading.Lock()

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            with lock:
                calls += 1

    threading.setprofile(count)
    sys.setprofile(count)
    try:
        answered = _requests(gate, [f"gk_{index % 10}" for index in range(requests)])
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    assert {status for status, _ in answered} == {200}
    return calls / requests


def test_r29_the_rate_limit_costs_a_request_the_same_work_whatever_the_number_of_accounts() -> None:
    """With 12,000 accounts in the window, a request costs what it costs with 10.

    The limits library's in-memory storage scanned every account every 10 ms, in a thread of its
    own: with --rate-limit, a request's cost doubled over 12,000 accounts (2.5 to 5.1 ms).
    """
    few, many = _calls_per_request(10), _calls_per_request(12_000)
    print(f"\nrate limit: {few:.0f} calls per request with 10 accounts, {many:.0f} with 12,000")
    assert many <= few * 1.1, (few, many)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_r29_the_window_moves_a_refused_hit_does_not_count_and_the_wait_is_exact() -> None:
    clock = Clock()
    window = MovingWindow(3, 60, clock)
    for at in (0, 10, 20):
        clock.now = 1000 + at
        assert window.hit("acme") is None
    clock.now = 1030
    assert window.hit("acme") == pytest.approx(30)  # the hit at 0 leaves the window at 60
    clock.now = 1059.5
    assert window.hit("acme") == pytest.approx(0.5)  # refused hits were not counted
    clock.now = 1060
    assert window.hit("acme") is None  # any 60 s holds at most 3: 10, 20 and 60
    assert window.hit("acme") == pytest.approx(10)
    assert window.hit("globex") is None  # per key


def test_r29_keys_whose_window_emptied_are_forgotten_a_few_at_each_hit() -> None:
    clock = Clock()
    window = MovingWindow(5, 60, clock)
    for index in range(12_000):
        window.hit(f"gk_{index}")
    assert len(window) == 12_000
    clock.now += 59
    window.hit("gk_0")  # still in the window: nothing to forget
    assert len(window) == 12_000
    clock.now += 1
    for _ in range(6_000):
        window.hit("gk_busy")
    assert len(window) == 2  # gk_0 (hit at 59 s) and gk_busy


@pytest.mark.parametrize("rate", [1, 7])
def test_r29_the_gate_answers_429_with_the_whole_seconds_to_wait(rate: int) -> None:
    gate = Gate(_ok, api_keys=None, rate_limit=rate, public_paths=frozenset())
    assert [_request(gate, "gk_a")[0] for _ in range(rate)] == [200] * rate
    status, headers = _request(gate, "gk_a")
    assert status == 429
    assert 59 <= int(headers[b"retry-after"]) <= 60
    assert _request(gate, "gk_b")[0] == 200
