"""The instrument of the server cases: server processes on one core, ``wrk`` on another.

A server is started once per case (:func:`start_server`), pinned with ``taskset`` to the first
core this process may use, and stopped at the end (SIGTERM, then SIGKILL). Each sample is one run
of ``wrk`` (:func:`run_wrk`), pinned to the second core, sending the lines of a requests file in
turn through ``wrk_requests.lua``, which prints the run's figures as JSON (:func:`parse_wrk`). A
run with any socket error, timeout or response outside 2xx raises :class:`LoadFailed`: it is
never measured.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = [
    "WRK_INSTALL",
    "WRK_SCRIPT",
    "LoadFailed",
    "LoadRun",
    "ServerProcess",
    "console_script",
    "cores",
    "free_port",
    "parse_wrk",
    "request_json",
    "run_wrk",
    "start_server",
    "transports",
    "wrk_version",
]

WRK_SCRIPT: Final = Path(__file__).with_name("wrk_requests.lua")
WRK_INSTALL: Final = "apt-get install wrk"
_WRK_JSON: Final = re.compile(r"^wrk-json: (\{.*\})$", re.MULTILINE)


class LoadFailed(RuntimeError):
    """A load run met an error (socket, timeout, a status outside 2xx): it is not a sample."""


@attrs.frozen
class LoadRun:
    """What one ``wrk`` run measured; times in seconds."""

    requests: int
    seconds: float
    p50: float
    p90: float
    p99: float
    max: float
    errors: Mapping[str, int]  # connect, read, write, timeout, status (> 399), non_2xx
    a_non_2xx_status: int  # one of the statuses outside 2xx, 0 when there was none

    @property
    def rps(self) -> float:
        """Requests completed per second."""
        return self.requests / self.seconds

    @property
    def per_request(self) -> float:
        """Seconds per request (1 / throughput; not the latency when connections overlap)."""
        return self.seconds / self.requests

    def check(self, what: str) -> LoadRun:
        """Return this run, or raise :class:`LoadFailed` if it met any error or no response.

        Raises:
            LoadFailed: a socket error, a timeout, a response outside 2xx, or no request done.
        """
        failed = {name: count for name, count in self.errors.items() if count}
        if failed or self.requests == 0:
            status = f", e.g. HTTP {self.a_non_2xx_status}" if self.a_non_2xx_status else ""
            raise LoadFailed(
                f"{what}: {self.requests} requests, errors {failed or 'none'}{status}; "
                "a run with errors is not measured"
            )
        return self


def parse_wrk(output: str) -> LoadRun:
    """Read the figures ``wrk_requests.lua`` prints at the end of a ``wrk`` run.

    Args:
        output: wrk's standard output (its report, then the ``wrk-json:`` line).

    Returns:
        The run's figures, errors included (see :meth:`LoadRun.check`).

    Raises:
        LoadFailed: the output holds no ``wrk-json:`` line (wrk failed before the end).
    """
    found = _WRK_JSON.findall(output)
    if not found:
        raise LoadFailed(f"wrk printed no figures:\n{output[-2000:]}")
    data: dict[str, Any] = json.loads(found[-1])
    latency = data["latency_us"]
    return LoadRun(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50=latency["p50"] / 1e6,
        p90=latency["p90"] / 1e6,
        p99=latency["p99"] / 1e6,
        max=latency["max"] / 1e6,
        errors={name: int(count) for name, count in data["errors"].items()},
        a_non_2xx_status=int(data["a_non_2xx_status"]),
    )


@functools.cache
def cores() -> tuple[int, int]:
    """Return the core for the servers and the core for ``wrk`` (the same on a 1-core machine)."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[min(1, len(allowed) - 1)]


def transports() -> dict[str, str]:
    """Return the HTTP parser and event loop of each server of the server cases."""
    from importlib.util import find_spec

    parser = "httptools" if find_spec("httptools") else "h11"
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    return {
        # serve runs uvicorn with httptools (its own protocol class) on asyncio's loop, whatever
        # is installed (catalog_core.server.protocol).
        "catalog-core serve": "uvicorn, httptools on asyncio",
        # uvicorn's defaults ("auto") take httptools and uvloop when they are installed.
        "fastapi": f"uvicorn, {parser} on {loop}",
    }


def _pinned(core: int, command: Sequence[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command]


@functools.cache
def wrk_version() -> str | None:
    """Return the first line of ``wrk --version`` (``wrk debian/4.1.0-3 …``), or ``None``."""
    if shutil.which("wrk") is None:
        return None
    ran = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (ran.stdout + ran.stderr).splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def run_wrk(
    base: str,
    requests_file: Path,
    *,
    connections: int,
    seconds: int,
    api_key: str,
    what: str,
) -> LoadRun:
    """Run ``wrk`` on its core for ``seconds`` over ``connections`` keep-alive connections.

    Args:
        base: the server's root, ``http://127.0.0.1:PORT``.
        requests_file: the requests to send in turn (see ``wrk_requests.lua``).
        connections: connections kept open, each with one request in flight; one wrk thread.
        seconds: how long to run.
        api_key: the ``x-api-key`` of every request.
        what: what is run, for the error message.

    Returns:
        The run's figures.

    Raises:
        LoadFailed: wrk failed, or the run met an error (:meth:`LoadRun.check`).
    """
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(WRK_SCRIPT), base, "--", str(requests_file), api_key]
    ran = subprocess.run(
        _pinned(cores()[1], command),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if ran.returncode != 0:
        raise LoadFailed(f"{what}: wrk exited with {ran.returncode}:\n{ran.stderr[-2000:]}")
    return parse_wrk(ran.stdout).check(what)


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def request_json(
    base: str,
    method: str,
    path: str,
    api_key: str,
    body: bytes | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    """Send one request; return its status and its JSON body (``None`` when it has none)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"x-api-key": api_key}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return response.status, json.loads(data) if data else None


@attrs.define
class ServerProcess:
    """A server started by :func:`start_server`; its output goes to ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT
    log: Path

    def wait_ready(self, path: str, api_key: str, timeout: float = 60) -> ServerProcess:
        """Return this server once ``GET path`` answers 200; stop it if it never does.

        Raises:
            RuntimeError: the process ended, answered another status, or did not answer 200
                within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                status, _ = request_json(self.base, "GET", path, api_key, timeout=5)
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
                continue
            if status == 200:
                return self
            break
        self.stop(timeout=5)
        raise RuntimeError(
            f"{self.name} did not start (GET {path}: {status}):\n"
            + self.log.read_text(errors="replace")[-3000:]
        )

    def stop(self, timeout: float = 30) -> None:
        """Send SIGTERM and wait; SIGKILL if it has not ended after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Start ``command``, listening on ``port``, on the servers' core (see ``wait_ready``).

    Its standard output and error go to ``log``, as a user's server writes to a terminal or a
    file: each server keeps the logging its users get by default.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            _pinned(cores()[0], command),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(name, process, f"http://127.0.0.1:{port}", log)


def console_script(name: str, call: str) -> list[str]:
    """Return the command of the console script ``name`` beside this Python.

    Where the environment has none (a Python run without its ``bin``), the same entry point
    through ``python -c``: ``call`` imports and calls it.
    """
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", call]
