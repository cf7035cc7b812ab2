"""A missing extra is named, with an install command that works: catalog_core is on no index.

``pip install 'catalog-core[postgres]'`` finds nothing outside a checkout, so the docs and the
errors say ``pip install '.[postgres]'`` in one. Each error is raised in a fresh interpreter
where the extra's package cannot be imported (``sys.modules[name] = None`` makes ``import name``
raise ``ImportError``, as when it is not installed).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = "postgresql://app@127.0.0.1:1/shop"
#: How a message names the extra to install (from a checkout), and the install command.
INSTALL = re.compile(r"the (\w+) extra\b.*pip install '\.\[(\w+)\]'")


def _raised(code: str, *, missing: Sequence[str]) -> tuple[str, str] | None:
    """Run ``code`` where ``missing`` cannot be imported; return what it raised, type and text."""
    script = (
        "import json, sys\n"
        f"for name in {list(missing)!r}:\n"
        "    sys.modules[name] = None\n"
        "try:\n"
        f"{textwrap.indent(code, '    ')}\n"
        "except BaseException as exc:\n"
        "    print(json.dumps([type(exc).__name__, str(exc)]))\n"
        "else:\n"
        "    print(json.dumps(None))\n"
    )
    ran = _python(script, ROOT)
    assert ran.returncode == 0, ran.stderr
    raised = json.loads(ran.stdout)
    return None if raised is None else (raised[0], raised[1])


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new Python process in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=cwd,
    )


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return extras


def _assert_names_the_extra(message: str, extra: str, module: str) -> None:
    """The message names ``extra``, and its command installs it: pyproject declares it, with
    the distribution of the module that was missing."""
    found = INSTALL.search(message)
    assert found, message
    assert found.groups() == (extra, extra), message
    assert "in a checkout" in message
    assert "catalog-core[" not in message  # what a package index would need
    assert module in message  # what was missing, as Python said it
    distribution = module.replace("_", "-")
    requirements = _extras()[extra]
    assert any(r.startswith(distribution) for r in requirements), (distribution, requirements)


@pytest.mark.parametrize("module", ["psycopg", "psycopg_pool"])
@pytest.mark.parametrize("url", [POSTGRES_URL, "postgres://app@127.0.0.1:1/shop"])
def test_open_repository_on_a_postgresql_url_names_the_postgres_extra_when_it_is_missing(
    url: str, module: str
) -> None:
    raised = _raised(f"import catalog_core as cc\ncc.open_repository({url!r})", missing=[module])

    assert raised is not None
    kind, message = raised
    assert kind == "ImportError"
    _assert_names_the_extra(message, "postgres", module)


@pytest.mark.parametrize("module", ["psycopg", "psycopg_pool"])
def test_postgres_repository_names_the_postgres_extra_when_it_is_missing(module: str) -> None:
    raised = _raised("import catalog_core as cc\ncc.PostgresRepository", missing=[module])

    assert raised is not None
    kind, message = raised
    assert kind == "ImportError"
    _assert_names_the_extra(message, "postgres", module)
    # The same words as through a URL: one message for one missing extra.
    by_url = _raised(
        f"import catalog_core as cc\ncc.open_repository({POSTGRES_URL!r})", missing=[module]
    )
    assert by_url == raised


def test_other_lazy_names_do_not_blame_the_postgres_extra() -> None:
    """Only psycopg's absence is put down to the extra: another missing module is as it was."""
    assert _raised("import catalog_core as cc\ncc.to_wire", missing=["psycopg"]) is None
    raised = _raised("import catalog_core as cc\ncc.to_wire", missing=["cattrs"])

    assert raised is not None
    assert raised[0] == "ModuleNotFoundError"
    assert "extra" not in raised[1]


def test_the_command_line_names_the_postgres_extra_for_a_postgresql_url(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None\n"
        "from catalog_core.cli import main\n"
        f"sys.argv = ['catalog-core', '--db', {POSTGRES_URL!r}, 'list']\n"
        "main()\n"
    )
    ran = _python(code, tmp_path)

    assert (ran.returncode, ran.stdout) == (1, "")
    assert ran.stderr.startswith(f"Error: cannot open the catalog database '{POSTGRES_URL}': ")
    assert len(ran.stderr.splitlines()) == 1
    _assert_names_the_extra(ran.stderr, "postgres", "psycopg")


@pytest.mark.parametrize("module", ["hypothesis", "pytest"])
def test_the_testing_kit_names_the_testing_extra_when_it_is_missing(module: str) -> None:
    raised = _raised("import catalog_core.testing", missing=[module])

    assert raised is not None
    kind, message = raised
    assert kind in ("ImportError", "ModuleNotFoundError")
    _assert_names_the_extra(message, "testing", module)


def test_serve_names_the_server_extra_when_it_is_missing(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "from catalog_core.cli import main\n"
        "sys.argv = ['catalog-core', '--db', 'catalog.db', 'serve', '--port', '0']\n"
        "main()\n"
    )
    ran = _python(code, tmp_path)

    assert ran.returncode == 1
    assert ran.stderr.startswith("Error: ")
    _assert_names_the_extra(ran.stderr, "server", "starlette")


def test_no_doc_gives_an_install_command_that_needs_a_package_index() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    index_only = re.compile(r"pip install\s+['\"]?catalog[-_]core\b")
    found = [
        f"{doc.relative_to(ROOT)}:{number}: {line.strip()}"
        for doc in docs
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        if index_only.search(line)
    ]

    assert found == []
