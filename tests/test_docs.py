"""The README stays true: its API tour runs, and CI runs its test command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import catalog_core as cc

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def the_tour() -> str:
    return next(block for block in code_blocks("python") if "catalog.upsert" in block)


def test_the_api_tour_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the checkout's root, as the README says; it writes no file, so it runs again."""
    monkeypatch.chdir(ROOT)
    before = files_at_the_root()
    for _ in range(2):  # the same results the second time: the catalog is in memory
        namespace: dict[str, object] = {}
        exec(compile(the_tour(), "README.md", "exec"), namespace)
        check_the_tour(namespace)
    assert files_at_the_root() == before


def files_at_the_root() -> set[str]:
    # Dot-files are left out: other workers' tools (.hypothesis, .pytest_cache) write there.
    return {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}


def check_the_tour(namespace: dict[str, object]) -> None:
    catalog = namespace["catalog"]
    assert isinstance(catalog, cc.Catalog)
    assert [p.external_id for p in catalog.list("acme").items] == []  # shirt-42 was deleted
    one_shot = namespace["u"]
    assert isinstance(one_shot, cc.UseResult)
    assert catalog.get("acme", one_shot.product.external_id) == one_shot.product
    assert namespace["bulk"] == ["ok", "EXTERNAL_ID_REQUIRED"]
    assert [p.external_id for p in catalog.list("globex").items] == ["mug"]
    cap = catalog.get("initech", "cap")  # the typed upsert, then the typed use
    assert (cap.title, cap.version, cap.last_used_at is not None) == ("Cap", 2, True)
    tryon = namespace["tryon"]
    assert isinstance(tryon, cc.TryOn)
    assert tryon.credits("globex") == 9  # the try-on took one credit (T16)
    started = namespace["started"]
    assert started.generation.status == "PENDING"  # type: ignore[attr-defined]
    assert started.product_external_id == "mug"  # type: ignore[attr-defined]


def test_the_api_tour_run_elsewhere_fails_before_it_has_written_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another directory, its first line fails, before a catalog exists."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    with pytest.raises(FileNotFoundError, match=r"examples/back\.jpg"):
        exec(compile(the_tour(), "README.md", "exec"), namespace)
    assert "catalog" not in namespace
    assert list(tmp_path.iterdir()) == []


def test_the_quickstart_starts_the_server_on_the_embedded_default_first() -> None:
    first = code_blocks("bash")[0].strip()
    assert first.endswith("&& .venv/bin/catalog-core serve")  # no --db: ./catalog.db
    assert "pip install '.[server]'" in first


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    (test_command,) = [b.strip() for b in code_blocks("bash") if "pytest" in b]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci


def test_the_readmes_import_example_runs_and_prints_what_the_readme_says(tmp_path: Path) -> None:
    (command,) = [b.strip() for b in code_blocks("bash") if " import " in b]
    scripts = str(Path(sys.executable).parent) + "/"
    command = command.replace(".venv/bin/", scripts).replace(
        "examples/catalog.jsonl", str(ROOT / "examples" / "catalog.jsonl")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_CORE_")}
    ran = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    lines = ran.stdout.splitlines()
    assert lines[0] == "created 26, updated 5, rejected 5"
    assert "created 26, updated 5, rejected 5" in README
    listed = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(listed) == 26


def test_the_readme_lists_every_command_of_the_command_line() -> None:
    from catalog_core.cli import main

    table = README.split("## The command line", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z-]+)", table, flags=re.MULTILINE))
    assert listed == set(main.commands)
