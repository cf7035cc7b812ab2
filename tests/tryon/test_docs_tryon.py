"""docs/tryon.md's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import JPEG

ROOT = Path(__file__).resolve().parent.parent.parent


def test_t5_the_example_of_docs_tryon_runs_and_its_comments_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "docs" / "tryon.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert example is not None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "me.jpg").write_bytes(JPEG)
    code = example.group(1)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/tryon.md", "exec"), namespace)
    namespace["catalog"].repository.close()
    tryon = namespace["tryon"]
    started = namespace["started"]
    assert started.generation.status == "PENDING"
    assert "# 'PENDING'" in code
    assert tryon.credits("acme") == 9
    assert "# 9" in code
