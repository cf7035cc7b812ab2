"""The README stays true: its API tour runs, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import catalog_core as cc
from tests.helpers import JPEG

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_api_tour_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tour = next(block for block in code_blocks("python") if "catalog.upsert" in block)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "back.jpg").write_bytes(JPEG)
    namespace: dict[str, object] = {}
    exec(compile(tour, "README.md", "exec"), namespace)
    catalog = namespace["catalog"]
    assert isinstance(catalog, cc.Catalog)
    assert [p.external_id for p in catalog.list("acme").items] == []  # shirt-42 was deleted
    one_shot = namespace["u"]
    assert isinstance(one_shot, cc.UseResult)
    assert catalog.get("acme", one_shot.product.external_id) == one_shot.product
    assert (tmp_path / "catalog.db").exists()


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    quickstart = code_blocks("bash")
    assert len(quickstart) >= 2
    first, second = quickstart[0].strip(), quickstart[1].strip()
    assert "catalog-core" in first
    assert "import" in first
    assert "list" in first
    assert "pytest" in second
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert second in ci
