"""Real server processes: ``catalog-core serve --port 0`` started as users start it, then stopped.

Each server writes its stdout and stderr to files, so a test can read the log afterwards (to
check, for example, that no API key was ever written to it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest

import catalog_core as cc
from tests.conftest import fresh_schema, postgres_url

SCRIPT = Path(sys.executable).parent / "catalog-core"
_SERVING = re.compile(r"serving (http://\S+)")
# The tests choose the database themselves, whatever the environment says.
_ENV = {k: v for k, v in os.environ.items() if k not in ("CATALOG_CORE_DB", "CATALOG_CORE_ACCOUNT")}


@attrs.define
class Server:
    """One running ``catalog-core serve`` process."""

    process: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT/tryon/v1
    stdout: Path
    stderr: Path

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.base.removesuffix("/tryon/v1")

    @property
    def port(self) -> int:
        return int(self.root.rsplit(":", 1)[1])

    def log(self) -> str:
        """Everything the server wrote so far, stdout then stderr."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and return the exit status once the process has ended."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def start_server(
    directory: Path, *args: str, name: str = "server", nofile: int | None = None
) -> Server:
    """Start ``catalog-core serve --port 0 ARGS`` in ``directory`` and wait until it listens.

    ``nofile`` sets the process's descriptor limit (``ulimit -n``) before it starts.
    """
    stdout, stderr = directory / f"{name}.out", directory / f"{name}.err"
    command = [str(SCRIPT), "serve", "--port", "0", *args]
    if nofile is not None:
        command = ["sh", "-c", f'ulimit -n {nofile} && exec "$0" "$@"', *command]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=_ENV,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = _SERVING.search(stdout.read_text(errors="replace"))
        if match:
            return Server(process, match[1], stdout, stderr)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    pytest.fail(
        "the server did not start:\n" + stdout.read_text() + stderr.read_text(), pytrace=False
    )


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers in ``tmp_path``; each is stopped (SIGTERM, then SIGKILL) at the end."""
    servers: list[Server] = []

    def starter(*args: str, nofile: int | None = None) -> Server:
        server = start_server(tmp_path, *args, name=f"server{len(servers)}", nofile=nofile)
        servers.append(server)
        return server

    yield starter
    for server in servers:
        try:
            server.stop(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One SQLite-backed server for a module's tests; each test keeps to accounts of its own."""
    directory = tmp_path_factory.mktemp("server")
    server = start_server(directory, "--db", str(directory / "catalog.db"))
    yield server
    server.stop()


@pytest.fixture
def key() -> str:
    """An API key no other test uses: without --api-key, an account of the test's own."""
    return f"gk_test_{uuid.uuid4().hex}"


@pytest.fixture(params=["sqlite", "postgres"])
def served_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ``--db`` of a served catalog on each backend (PostgreSQL in a schema of its own)."""
    if request.param == "sqlite":
        yield str(tmp_path / "catalog.db")
        return
    url, schema = postgres_url(), fresh_schema()
    yield f"{url}?schema={schema}"
    repository = cc.PostgresRepository(url, schema=schema)
    repository.drop_schema()
    repository.close()


@pytest.fixture
def client() -> Iterator[Callable[[Server, str], httpx.Client]]:
    """Make httpx clients on a server, each sending its API key; all closed at the end."""
    clients: list[httpx.Client] = []

    def make(server: Server, api_key: str) -> httpx.Client:
        made = httpx.Client(base_url=server.base, headers={"x-api-key": api_key}, timeout=30)
        clients.append(made)
        return made

    yield make
    for made in clients:
        made.close()
