"""The command line as a newcomer uses it: -h and --version everywhere, options where users put
them, no catalog made by a typo, messages that say what to do (issue: a newcomer's first hour).

Through the installed ``catalog-core`` script, as a user runs it (one test uses click's runner
for a 32 MiB line).
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import catalog_core as cc
from catalog_core.cli import main

SCRIPT = Path(sys.executable).parent / "catalog-core"
COMMANDS = sorted(main.commands)
PRODUCT = {"externalId": "sku-1", "images": [{"source": {"url": "https://cdn.example/a.jpg"}}]}


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_CORE_")}
    return subprocess.run(
        [str(SCRIPT), *args],
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A catalog holding one product of account ``acme``."""
    path = tmp_path / "catalog.db"
    lines = tmp_path / "one.jsonl"
    lines.write_text(json.dumps(PRODUCT) + "\n")
    assert script("--db", str(path), "import", str(lines), "--account", "acme").returncode == 0
    return path


def test_version_and_h_answer_on_the_group_and_on_every_command() -> None:
    assert COMMANDS == [
        "copy",
        "credits",
        "delete",
        "export",
        "get",
        "import",
        "list",
        "purge",
        "schema-sql",
        "serve",
    ]
    for args in [(), *((command,) for command in COMMANDS)]:
        version = script(*args, "--version")
        assert (version.returncode, version.stdout) == (
            0,
            f"catalog-core, version {cc.__version__}\n",
        )
        short, long = script(*args, "-h"), script(*args, "--help")
        assert short.returncode == 0
        assert short.stdout == long.stdout
        assert short.stdout.startswith(f"Usage: catalog-core {' '.join(args)}".rstrip())
        # Rule ids of the rule book mean nothing to a reader of --help: none is cited.
        assert not re.search(r"\b[RT]\d+\b", short.stdout), short.stdout


def test_the_groups_help_names_the_environment_variables_that_work() -> None:
    text = " ".join(script("-h").stdout.split())
    assert "env var: CATALOG_CORE_DB" in text
    assert "env var: CATALOG_CORE_ACCOUNT" in text


def test_db_and_account_work_before_and_after_the_command(db: Path) -> None:
    """Given in both places, the command's own wins: it is the more specific."""
    expected = script("--db", str(db), "--account", "acme", "list")
    assert [json.loads(line)["externalId"] for line in expected.stdout.splitlines()] == ["sku-1"]
    for args in [
        ("list", "--db", str(db), "--account", "acme"),
        ("--account", "acme", "list", "--db", str(db)),
        ("--db", str(db), "list", "--account", "acme"),
        (
            "--db",
            "elsewhere.db",
            "--account",
            "globex",
            "list",
            "--db",
            str(db),
            "--account",
            "acme",
        ),
    ]:
        got = script(*args)
        assert (got.returncode, got.stdout, got.stderr) == (0, expected.stdout, ""), args
    from_env = script("list", "--db", str(db), env={"CATALOG_CORE_ACCOUNT": "acme"})
    assert from_env.stdout == expected.stdout
    assert script("get", "sku-1", "--db", str(db), "--account", "acme").returncode == 0
    assert script("--account", "globex", "get", "sku-1", "--db", str(db)).returncode == 1
    refused = script("list", "--db", str(db), "--account", "")
    assert refused.returncode == 2
    assert "Invalid value for '--account'" in refused.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("get", "sku-1"),
        ("delete", "sku-1"),
        ("purge",),
        ("credits", "acme"),
        ("export",),
    ],
    ids=["list", "get", "delete", "purge", "credits", "export"],
)
@pytest.mark.parametrize("spelling", ["path", "sqlite URL"])
def test_a_command_that_reads_a_catalog_never_creates_one_for_a_mistyped_db(
    tmp_path: Path, args: tuple[str, ...], spelling: str
) -> None:
    missing = tmp_path / "catlog.db"
    target = str(missing) if spelling == "path" else f"sqlite:///{missing}"
    result = script("--db", target, *args)
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: no catalog at '{target}': the file does not exist (a mistyped --db?); "
        "`catalog-core import` and `catalog-core serve` create one\n"
    )
    assert list(tmp_path.iterdir()) == []  # no file, no -wal or -shm


def test_import_creates_the_catalog_it_is_given(tmp_path: Path) -> None:
    lines = tmp_path / "one.jsonl"
    lines.write_text(json.dumps(PRODUCT) + "\n")
    created = script("import", str(lines), "--db", str(tmp_path / "new.db"))
    assert created.stdout.splitlines()[0] == "created 1, updated 0, rejected 0"


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run the script with stderr on a pseudo-terminal; return its status and what it wrote."""
    leader, follower = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_CORE_")}
    with subprocess.Popen(
        [str(SCRIPT), *args],
        env=clean,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    ) as process:
        os.close(follower)
        written = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            written += chunk
        status = process.wait(timeout=60)
    os.close(leader)
    return status, written.decode().replace("\r\n", "\n")


def test_get_that_misses_under_the_default_account_says_which_account_it_searched(
    db: Path,
) -> None:
    """On a terminal only: a script reads stderr as the error's JSON body alone."""
    status, written = _on_a_terminal("--db", str(db), "get", "sku-1")
    body, note = written.splitlines()
    assert status == 1
    assert json.loads(body)["code"] == "PRODUCT_NOT_FOUND"
    assert note == (
        "note: searched the account 'default', the default: pass --account "
        "(or set CATALOG_CORE_ACCOUNT) to search another"
    )
    status, written = _on_a_terminal("--db", str(db), "get", "nope", "--account", "acme")
    assert status == 1
    assert len(written.splitlines()) == 1  # an account was given: it is the one searched
    piped = script("--db", str(db), "get", "sku-1")
    assert json.loads(piped.stderr)["code"] == "PRODUCT_NOT_FOUND"


def test_an_import_of_one_json_array_says_json_lines_is_expected_and_imports_nothing(
    db: Path, tmp_path: Path
) -> None:
    pretty = tmp_path / "products.json"
    pretty.write_text("\n" + json.dumps([PRODUCT, {**PRODUCT, "externalId": "sku-2"}], indent=2))
    result = script("--db", str(db), "import", str(pretty), "--account", "acme")
    assert result.returncode == 1
    assert result.stderr == (
        "Error: line 2 starts a JSON array: import reads JSON Lines, one product object per "
        "line (an array's items as lines: jq -c '.[]' FILE); nothing was imported\n"
    )
    listed = script("--db", str(db), "--account", "acme", "list").stdout.splitlines()
    assert [json.loads(line)["externalId"] for line in listed] == ["sku-1"]


def test_r33_an_imported_line_at_the_limit_is_taken_its_newline_aside(tmp_path: Path) -> None:
    """A line's end is not part of its payload: a line of exactly the request limit is
    imported; one byte more is PAYLOAD_TOO_LARGE, with the payload's own size."""
    limit = cc.Catalog(cc.MemoryRepository()).limits.max_request_bytes
    head = json.dumps(PRODUCT)[:-1]
    at_limit = head + " " * (limit - len(head) - 1) + "}"  # JSON whitespace pads it
    over = head + " " * (limit - len(head)) + "}"
    path = tmp_path / "big.jsonl"
    path.write_text(f"{at_limit}\n{over}\r\n")
    runner = CliRunner(env={"CATALOG_CORE_DB": None, "CATALOG_CORE_ACCOUNT": None})
    result = runner.invoke(main, ["--db", str(tmp_path / "c.db"), "import", str(path)])
    assert result.stdout.splitlines() == [
        "created 1, updated 0, rejected 1",
        f"line 2: PAYLOAD_TOO_LARGE: {cc.PayloadTooLarge.for_size(limit + 1, limit).message}",
    ]


def test_an_empty_db_says_it_is_empty() -> None:
    result = script("--db", "", "list")
    assert (result.returncode, result.stderr) == (
        1,
        "Error: --db is empty: give an SQLite file path or a URL\n",
    )
