"""The pytest plugin: ``catalog``, ``catalog_clock`` and ``catalog_server`` in embedders' sessions.

Each test runs a fresh pytest session in a subprocess (``pytester``) that loads the plugin as an
embedder does, with no plugin loaded through entry points (so the fixtures can only come from
the kit) and warnings as errors, as here. The servers are real ``catalog-core serve`` processes,
and the inner tests talk to them with httpx.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import httpx
import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
SECTION = "## The pytest plugin"

PREAMBLE = """
import re
from pathlib import Path

import httpx
import pytest

import catalog_core as cc
from catalog_core.testing import START, FakeClock

SHIRT = {
    "externalId": "shirt",
    "title": "Shirt",
    "images": [{"source": {"url": "https://cdn.example/shirt.jpg"}}],
}
URLS = "urls.txt"


def client(base, key="acme"):
    return httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=30)


def remember(url):
    with Path(URLS).open("a") as urls:
        urls.write(url + "\\n")
"""


def run(pytester: pytest.Pytester, *args: str, warnings: str = "error") -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", warnings, "-q", *args, timeout=120
    )


@pytest.fixture(autouse=True)
def plain_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


def inner(pytester: pytest.Pytester, tests: str) -> None:
    pytester.makepyfile(test_inner=textwrap.dedent(PREAMBLE) + textwrap.dedent(tests))


def refuses(url: str) -> bool:
    """Whether nothing listens at ``url``'s port any more."""
    try:
        httpx.get(url + "/openapi.json", timeout=5)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.parametrize(
    ("options", "conftest"),
    [
        (["-p", "catalog_core.testing"], None),
        (["-p", "catalog_core.testing.plugin"], None),
        ([], 'pytest_plugins = ["catalog_core.testing"]\n'),
    ],
    ids=["-p package", "-p module", "conftest"],
)
def test_the_fixtures_give_a_catalog_its_clock_and_a_real_server_an_httpx_client_talks_to(
    pytester: pytest.Pytester, options: list[str], conftest: str | None
) -> None:
    """R1: each key the server is sent is an account of its own."""
    if conftest is not None:
        pytester.makeconftest(conftest)
    inner(
        pytester,
        """
        def test_all_three(catalog, catalog_clock, catalog_server):
            assert isinstance(catalog_clock, FakeClock)
            assert isinstance(catalog, cc.Catalog)
            assert isinstance(catalog.repository, cc.MemoryRepository)
            assert catalog.now() == catalog_clock() == START
            assert re.fullmatch(r"http://127\\.0\\.0\\.1:\\d+/tryon/v1", catalog_server)
            with client(catalog_server) as acme, client(catalog_server, "globex") as globex:
                created = acme.post("/products", json=SHIRT)
                assert created.status_code == 201, created.text
                assert acme.get("/products/shirt").json()["title"] == "Shirt"
                assert globex.get("/products/shirt").status_code == 404
        """,
    )
    run(pytester, *options).assert_outcomes(passed=1)


def test_each_test_gets_its_own_catalog_clock_and_server_which_is_stopped_after_it(
    pytester: pytest.Pytester,
) -> None:
    """R20: the second test's clock is back at START, and its catalogs hold nothing."""
    inner(
        pytester,
        """
        def test_first_writes_everywhere(catalog, catalog_clock, catalog_server):
            remember(catalog_server)
            catalog.upsert("acme", SHIRT)
            catalog_clock.advance(days=3)
            with client(catalog_server) as acme:
                assert acme.post("/products", json=SHIRT).status_code == 201


        def test_second_sees_none_of_it(catalog, catalog_clock, catalog_server):
            remember(catalog_server)
            assert catalog_clock() == START
            assert catalog.list("acme").items == ()
            with client(catalog_server) as acme:
                missing = acme.get("/products/shirt")
                assert missing.status_code == 404
                assert missing.json()["code"] == "PRODUCT_NOT_FOUND"
                assert acme.get("/products").json()["items"] == []
            first = Path(URLS).read_text().split()[0]
            if first != catalog_server:  # the system may hand the same free port out again
                with pytest.raises(httpx.ConnectError):
                    httpx.get(first + "/openapi.json")


        def test_third_fails(catalog_server):
            remember(catalog_server)
            assert False, "a failing test stops its server too"
        """,
    )
    run(pytester, "-p", "catalog_core.testing").assert_outcomes(passed=2, failed=1)
    urls = (pytester.path / "urls.txt").read_text().split()
    assert len(urls) == 3
    assert [url for url in urls if not refuses(url)] == []


def test_the_catalog_reads_the_clock_fixture_so_moving_it_expires_a_product(
    pytester: pytest.Pytester,
) -> None:
    """R19, R20: expiresAt is updatedAt + validForDays; expired when now >= expiresAt."""
    inner(
        pytester,
        """
        from datetime import timedelta


        def test_expiry(catalog, catalog_clock):
            catalog.upsert("acme", {**SHIRT, "validForDays": 1})
            catalog_clock.advance(days=1, milliseconds=-1)
            assert catalog.get("acme", "shirt").expires_at == START + timedelta(days=1)
            catalog_clock.advance(milliseconds=1)
            with pytest.raises(cc.ProductNotFound):
                catalog.get("acme", "shirt")
        """,
    )
    run(pytester, "-p", "catalog_core.testing").assert_outcomes(passed=1)


def test_catalog_server_args_pass_options_to_serve(pytester: pytest.Pytester) -> None:
    """With --api-key, only the keys given are accepted; any other is INVALID_API_KEY (401)."""
    inner(
        pytester,
        """
        @pytest.mark.parametrize("catalog_server_args", [["--api-key", "k1=acme"]])
        def test_only_the_given_key(catalog_server):
            with client(catalog_server, "k1") as k1, client(catalog_server, "k2") as k2:
                assert k1.post("/products", json=SHIRT).status_code == 201
                refused = k2.get("/products")
                assert refused.status_code == 401
                assert refused.json()["code"] == "INVALID_API_KEY"
        """,
    )
    run(pytester, "-p", "catalog_core.testing").assert_outcomes(passed=1)


def test_a_server_that_cannot_start_fails_the_test_with_its_error_naming_the_extra(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in uvicorn that cannot be imported, as when the server extra is not installed;
    # on the PYTHONPATH the server process inherits.
    missing = pytester.mkdir("without_server_extra")
    (missing / "uvicorn.py").write_text(
        "raise ImportError(\"No module named 'uvicorn'\", name='uvicorn')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(missing))
    inner(pytester, "def test_needs_a_server(catalog_server):\n    pass\n")
    result = run(pytester, "-p", "catalog_core.testing")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*catalog_server: catalog-core serve exited with status 1:",
            "*the server needs the server extra *pip install '.[[]server]' in a checkout*",
        ]
    )


def test_a_session_that_does_not_load_the_plugin_imports_nothing_of_the_kit(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pytest11 entry point: with every installed plugin loaded, the kit is not among them."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    pytester.makepyfile(
        test_inner="""
        import sys


        def test_the_kit_is_not_imported():
            assert "catalog_core.testing" not in sys.modules


        def test_its_fixtures_are_unknown(catalog_server):
            pass
        """
    )
    # Other installed plugins are loaded too, and are not this test's to hold to -W error.
    result = run(pytester, warnings="default")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'catalog_server' not found*"])


def test_the_docs_example_of_the_plugin_runs_as_printed(pytester: pytest.Pytester) -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 2
    for block in blocks:
        name = re.match(r"# (\w+\.py)\n", block)
        assert name, "each block of the section starts with the file it is: # name.py"
        (pytester.path / name[1]).write_text(block, encoding="utf-8")
    tests = sum(block.count("\ndef test_") for block in blocks)
    assert tests == 2
    run(pytester).assert_outcomes(passed=tests)
