"""A failing contract test shows what it compared, also where the kit is an installed package.

pytest rewrites the asserts of test modules only; the kit registers its own modules for rewriting
(``catalog_core/testing/__init__.py``). Each test runs a fresh pytest session in a subprocess
(``pytester``) that imports the installed ``catalog_core`` and runs one contract test against a
backend that lists in case-folded order, as ``ORDER BY lower(external_id)`` would (R24). The
sessions load no plugin through entry points: the kit's rewriting needs none.
"""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

CASE_FOLDED = '''
import catalog_core as cc
from catalog_core.testing import RepositoryContract


class CaseFoldedRepository(cc.MemoryRepository):
    """Lists ``a`` before ``B``: the order of ``lower(external_id)``, not of code points."""

    def list_live(self, account, *, after, limit, now):
        listed = super().list_live(account, after=after, limit=limit, now=now)
        return sorted(listed, key=lambda product: product.external_id.casefold())


class TestCaseFoldedRepository(RepositoryContract):
    def make_repository(self, tmp_path):
        return CaseFoldedRepository()
'''
# A plugin, loaded before the test module imports the kit, that makes the registration a no-op.
NO_REGISTRATION = """
import pytest

pytest.register_assert_rewrite = lambda *names: None
"""
THE_TEST = "test_r24_list_live_is_in_code_point_order_of_external_id"


def run_the_failing_contract_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *options: str
) -> list[str]:
    """The ``E`` lines of the failure, after checking it is raised in the installed kit."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # half the start-up time
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(test_case_folded=textwrap.dedent(CASE_FOLDED))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-vv", "-k", THE_TEST, *options
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       assert _live_ids(repository) == sorted(LISTING_IDS)",
            "*/catalog_core/testing/contract.py:*: AssertionError",
        ]
    )
    assert not (pytester.path / "catalog_core").exists()
    return [line for line in result.stdout.lines if line.startswith("E ")]


def test_a_failing_contract_test_shows_the_values_it_compared(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    failure = run_the_failing_contract_test(pytester, monkeypatch)
    pytest.LineMatcher(failure).fnmatch_lines(
        [
            "E       AssertionError: assert "
            "[[]'10', '9', '_x', 'A', 'a', *] == [[]'10', '9', 'A', 'B', 'Z', '_x', *]",
            "E         At index 2 diff: '_x' != 'A'",
        ]
    )


def test_without_the_kits_registration_the_same_failure_is_a_bare_assertion_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the values above come from the kit's registration, not from pytest alone."""
    pytester.makepyfile(no_registration=NO_REGISTRATION)
    failure = run_the_failing_contract_test(pytester, monkeypatch, "-p", "no_registration")
    assert failure == ["E       AssertionError"]
