"""pytest fixtures for embedders: a catalog on a fake clock, and a real stand-in server per test.

Loaded by ``pytest -p catalog_core.testing`` or ``pytest_plugins = ["catalog_core.testing"]`` in
a ``conftest.py``; never through an entry point, so that a pytest run which does not ask for the
kit does not import it (nor hypothesis). See docs/testing.md, "The pytest plugin".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import catalog_core as cc
from catalog_core.testing.clock import FakeClock

__all__ = ["catalog", "catalog_clock", "catalog_server", "catalog_server_args"]

#: Seconds ``catalog_server`` waits for the server to start, then for it to stop after SIGTERM.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

_SERVING = re.compile(r"serving (http://\S+)")
# The fixture chooses the database; an account given to the CLI is no business of serve's.
_NOT_INHERITED = ("CATALOG_CORE_DB", "CATALOG_CORE_ACCOUNT")
# The command line of the catalog_core this process imported. Its directory is appended, not
# prepended, so it shadows nothing; it finds a checkout that only pytest's `pythonpath` names.
_SERVE = (
    "import sys; sys.path.append({root!r}); "
    "from catalog_core.cli import main; main(prog_name='catalog-core')"
)

# Each fixture states its name: catalog_core.testing re-exports them under private names (so that
# `-p catalog_core.testing` finds them), and pytest names a fixture by its attribute otherwise.


@pytest.fixture(name="catalog_clock")
def catalog_clock() -> FakeClock:
    """The clock of ``catalog``: at ``START`` (2026-05-13T10:00:00.000Z) until the test moves it.

    ``catalog_clock.advance(days=1)`` moves it; the catalog reads it at each operation.
    """
    return FakeClock()


@pytest.fixture(name="catalog")
def catalog(catalog_clock: FakeClock) -> Iterator[cc.Catalog]:
    """A fresh ``cc.Catalog`` over an empty ``cc.MemoryRepository``, reading ``catalog_clock``."""
    repository = cc.MemoryRepository()
    yield cc.Catalog(repository, clock=catalog_clock)
    repository.close()


@pytest.fixture(name="catalog_server_args")
def catalog_server_args() -> Sequence[str]:
    """More options for ``catalog_server``'s ``catalog-core serve``: none.

    Override it to pass some, as a fixture of this name in a ``conftest.py`` or with
    ``@pytest.mark.parametrize("catalog_server_args", [["--api-key", "k=acme"]])``. They come
    after the fixture's own ``--port 0 --db PATH``, so they win.
    """
    return ()


@pytest.fixture(name="catalog_server")
def catalog_server(
    tmp_path_factory: pytest.TempPathFactory, catalog_server_args: Sequence[str]
) -> Iterator[str]:
    """A real ``catalog-core serve`` for one test, on a free port and a fresh SQLite database.

    Yields the base URL of the API, ``http://127.0.0.1:PORT/tryon/v1``, to use as is as a
    client's base (``httpx.Client(base_url=catalog_server)``, then ``client.get("/products")``).
    Without ``--api-key`` in ``catalog_server_args``, any ``x-api-key`` is accepted and is an
    account of its own. The server reads the wall clock, not ``catalog_clock``. After the test
    it is sent SIGTERM, and killed if it has not stopped within ``STOP_TIMEOUT`` seconds.

    Needs the ``server`` extra. A server that does not start within ``START_TIMEOUT`` seconds,
    or exits (the extra missing, a bad option), fails the test with what it wrote.
    """
    directory = tmp_path_factory.mktemp("catalog_server")
    root = str(Path(cc.__file__).resolve().parents[1])
    command = [sys.executable, "-c", _SERVE.format(root=root), "serve", "--port", "0"]
    command += ["--db", str(directory / "catalog.db"), *catalog_server_args]
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    stdout, stderr = directory / "serve.out", directory / "serve.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    try:
        yield _wait_until_serving(process, stdout, stderr)
    finally:
        _stop(process)


def _wait_until_serving(process: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> str:
    """Return the URL the server prints once it listens; fail with its output if it does not."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = _SERVING.search(stdout.read_text(errors="replace"))
        if found:
            return found[1]
        if process.poll() is not None:
            problem = f"exited with status {process.returncode}"
            break
        time.sleep(0.05)
    else:
        problem = f"was not serving after {START_TIMEOUT:g} seconds"
    output = stdout.read_text(errors="replace") + stderr.read_text(errors="replace")
    pytest.fail(f"catalog_server: catalog-core serve {problem}:\n{output}", pytrace=False)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server as Ctrl+C would (requests in flight complete), killing it past the wait."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
