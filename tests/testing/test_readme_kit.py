"""The README's "Test your own backend" example works as printed, against a backend of its own."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
STORAGE = '''
import catalog_core as cc


class MyRepository(cc.MemoryRepository):
    """A third party's backend: here the in-memory one under another name."""

    def __init__(self, path):
        super().__init__()
        self.path = path
'''


def test_the_readme_example_runs_the_whole_contract_against_a_third_party_backend(
    pytester: pytest.Pytester,
) -> None:
    (example,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
        if "RepositoryContract" in block
    ]
    assert len(example.strip().splitlines()) <= 14  # the "ten-line example"
    pytester.mkpydir("my_app")
    (pytester.path / "my_app" / "storage.py").write_text(textwrap.dedent(STORAGE))
    pytester.makepyfile(test_my_repository=example)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 30
    assert "failed" not in outcomes
    assert "error" not in outcomes
