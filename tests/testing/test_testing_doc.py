"""docs/testing.md says how many tests the contract holds: the numbers it states are the suite's."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from catalog_core.testing import RepositoryContract

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
# The doc is wrapped at 100 columns: a sentence may break anywhere.
TEXT = " ".join(DOC.read_text(encoding="utf-8").split())


def stated(pattern: str) -> int:
    found = re.search(pattern, TEXT)
    assert found is not None, f"docs/testing.md no longer says /{pattern}/: update this test"
    return int(found.group(1))


def test_docs_testing_md_states_how_many_tests_the_contract_and_its_try_on_part_hold() -> None:
    tests = {
        name: function
        for name, function in inspect.getmembers(RepositoryContract, inspect.isfunction)
        if name.startswith("test_")
    }
    # One method is one test: none is parametrized into several.
    assert not [name for name, f in tests.items() if getattr(f, "pytestmark", None)]
    tryon = [name for name in tests if re.match(r"test_t\d", name)]
    assert stated(r"the rules depend on \((\d+) tests\)") == len(tests)
    assert stated(r"in (\d+) tests named `test_t…`") == len(tryon)
