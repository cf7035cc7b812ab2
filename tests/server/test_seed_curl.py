"""The public page's curl examples, run verbatim (but for the host) with the real curl binary.

The commands are read from the page itself (kept verbatim in ``tests/data``), so the test follows
it. Each runs in ``examples/`` (where ``back.jpg`` is) against a real ``catalog-core serve``; its
status and body are checked against the response the page documents, timestamps aside. The
page's 400 (a partial update of a product that does not exist yet) is its partial-update example
run first, and its 409 is its JSON example with the page's ``_anon_foo`` id. The README's
Quickstart holds the same commands with the local host, which
``test_the_readmes_curl_examples_are_the_seeds_with_the_local_host`` pins. The README's try-on
example (upload, try-on, poll, fetch the result) runs as written too, against a server started
as the README starts it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import textwrap
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
# The public "Upsert Product" page, kept verbatim in the repository so the test runs anywhere.
PAGE = ROOT / "tests" / "data" / "upsert_product_page.md"
EXAMPLES = ROOT / "examples"
PUBLIC_HOST = "https://api.genlook.app"
README_HOST = "http://127.0.0.1:8000"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
TIMESTAMP_KEYS = ("createdAt", "updatedAt", "expiresAt", "lastUsedAt")


def blocks(text: str, language: str) -> dict[str, str]:
    """The fenced blocks of ``language`` on the page, by their title."""
    found = re.findall(rf"```{language} ([^\n]*?)(?: theme=\{{null\}})?\n(.*?)```", text, re.S)
    return {title.strip(): body for title, body in found}


def seed_text() -> str:
    return PAGE.read_text(encoding="utf-8")


def seed_commands() -> dict[str, str]:
    commands = blocks(seed_text(), "bash")
    assert list(commands) == [
        "JSON (URL images)",
        "Multipart (URL + uploaded bytes)",
        "Partial update (existing product)",
        "Opt-in TTL",
    ]
    for command in commands.values():
        assert command.count(PUBLIC_HOST) == 1
    return commands


def seed_responses() -> dict[str, Any]:
    return {title: json.loads(body) for title, body in blocks(seed_text(), "json").items()}


class Curl:
    """Runs a page's command through bash and the real curl, reading the status curl saw.

    The command text runs as written, with only the host replaced. curl reads ``.curlrc`` from
    ``CURL_HOME``, which asks it to be quiet and to dump the response headers to a file, so the
    status is known without a flag added to the command.
    """

    def __init__(self, server: Server, home: Path) -> None:
        self.server = server
        self.home = home
        self.headers = home / "headers.txt"
        (home / ".curlrc").write_text(
            f'silent\nshow-error\nmax-time = 30\ndump-header = "{self.headers}"\n'
        )

    def __call__(self, command: str) -> tuple[int, dict[str, str], Any]:
        local = command.replace(PUBLIC_HOST, self.server.root)
        ran = subprocess.run(
            ["bash", "-c", local],
            cwd=EXAMPLES,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "CURL_HOME": str(self.home)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        status_line, *lines = self.headers.read_text().strip().splitlines()
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }
        return int(status_line.split()[1]), headers, json.loads(ran.stdout)


@pytest.fixture
def curl(start: Callable[..., Server], tmp_path: Path) -> Curl:
    home = tmp_path / "curl-home"
    home.mkdir()
    return Curl(start("--db", str(tmp_path / "catalog.db")), home)


def without_timestamps(product: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in product.items() if k not in TIMESTAMP_KEYS}


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_r5_r3_r4_r6_r10_r15_r31_every_seed_example_answers_as_the_page_documents(
    curl: Curl,
) -> None:
    commands, documented = seed_commands(), seed_responses()

    # R5: the partial update before the product exists is the page's 400, byte for byte.
    status, _, body = curl(commands["Partial update (existing product)"])
    assert (status, body) == (400, documented["Missing image on create (400)"])

    # R4, R31: the JSON create. The page's response shows the first of the two images.
    status, headers, created = curl(commands["JSON (URL images)"])
    assert status == 201
    assert headers["etag"] == '"1"'
    success = documented["Success"]
    assert list(created) == list(success)
    assert without_timestamps(created) | {"images": success["images"]} == without_timestamps(
        success
    )
    assert created["images"][: len(success["images"])] == success["images"]
    assert created["images"] == [
        {"sourceUrl": "https://cdn.example/front.jpg", "order": 0},
        {"sourceUrl": "https://cdn.example/back.jpg", "order": 1},
    ]
    assert TIMESTAMP.fullmatch(created["createdAt"])
    assert created["createdAt"] == created["updatedAt"]
    assert created["expiresAt"] is None
    assert created["lastUsedAt"] is None

    # R15, R8: the multipart example updates it; back.jpg is stored and named by its SHA-256.
    status, headers, uploaded = curl(commands["Multipart (URL + uploaded bytes)"])
    assert status == 200
    assert headers["etag"] == '"2"'
    digest = hashlib.sha256((EXAMPLES / "back.jpg").read_bytes()).hexdigest()
    assert uploaded["images"] == [
        {"sourceUrl": "https://cdn.example/front.jpg", "order": 0},
        {"sourceUrl": f"upload://{digest}", "order": 1},
    ]
    assert without_timestamps(uploaded) == without_timestamps(created) | {
        "images": uploaded["images"]
    }
    assert uploaded["createdAt"] == created["createdAt"]
    assert stamp(uploaded["updatedAt"]) >= stamp(created["updatedAt"])

    # R6: the partial update changes the title only.
    status, headers, partial = curl(commands["Partial update (existing product)"])
    assert status == 200
    assert headers["etag"] == '"3"'
    assert without_timestamps(partial) == without_timestamps(uploaded) | {
        "title": "Red tee — restocked"
    }
    assert partial["createdAt"] == created["createdAt"]

    # R10, R19: the opt-in TTL creates a product that expires 90 days after its write.
    status, _, seasonal = curl(commands["Opt-in TTL"])
    assert status == 201
    assert without_timestamps(seasonal) == {
        "externalId": "seasonal-001",
        "title": "Summer collection",
        "description": "...",
        "metadata": None,
        "validForDays": 90,
        "images": [{"sourceUrl": "https://cdn.example/summer.jpg", "order": 0}],
    }
    assert stamp(seasonal["expiresAt"]) == stamp(seasonal["updatedAt"]) + timedelta(days=90)

    # R3: the JSON example with the page's reserved id is the page's 409, byte for byte.
    reserved = commands["JSON (URL images)"].replace('"shirt-42"', '"_anon_foo"')
    assert reserved != commands["JSON (URL images)"]
    status, _, body = curl(reserved)
    assert (status, body) == (409, documented["Reserved prefix (409)"])


def test_the_readmes_curl_examples_are_the_seeds_with_the_local_host() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    in_readme = [
        block.strip()
        for block in re.findall(r"```bash\n(.*?)```", quickstart, re.S)
        if "curl" in block
    ]
    expected = [
        textwrap.dedent(command).strip().replace(PUBLIC_HOST, README_HOST)
        for command in seed_commands().values()
    ]
    assert in_readme == expected


def test_t24_the_readmes_try_on_example_runs_as_written_with_the_real_curl(
    start: Callable[..., Server], tmp_path: Path
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Try-on, end to end", 1)[1].split("\n## ", 1)[0]
    serve, flow = (block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S))
    assert serve == ".venv/bin/catalog-core serve --db memory://"
    server = start(*serve.split(" serve ", 1)[1].split())
    work = tmp_path / "examples"
    work.mkdir()
    (work / "person.png").write_bytes((EXAMPLES / "person.png").read_bytes())
    assert flow.count(README_HOST) == 1
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", flow.replace(README_HOST, server.root)],
        cwd=work,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == '{"creditBalance":9}'
    generation = json.loads((work / "generation.json").read_text())
    assert generation["status"] == "COMPLETED"
    assert (work / "result.png").read_bytes() == (EXAMPLES / "person.png").read_bytes()
