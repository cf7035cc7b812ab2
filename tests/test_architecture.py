"""The layers of docs/architecture.md: what each module may import at its top level.

The arrows point inwards: adapters (``server``, ``cli``) -> ``catalog`` -> ``wire`` and
``repository`` -> the domain. A module-level import against an arrow fails here; an import inside
a function (done lazily, as ``CatalogError.status`` reads the wire's table) is not a layer's
dependency and is not counted.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "catalog_core"

#: Each layer and the layers its modules may import (itself included).
LAYERS: dict[str, set[str]] = {
    "domain": {"domain"},
    "wire": {"domain", "wire"},
    "repository": {"domain", "repository"},
    "catalog": {"domain", "wire", "repository", "catalog"},
    "adapter": {"domain", "wire", "repository", "catalog", "adapter", "package"},
    # The kit is a reading of the rule book of its own: never the wire's tables.
    "testing": {"domain", "repository", "testing", "package"},
    "package": {"domain", "wire", "repository", "catalog", "package"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or parts == ["__init__"]:
        return "package"
    head = parts[0]
    if head in {"wire", "repository", "testing"}:
        return head
    if head in {"server", "cli"}:
        return "adapter"
    if head in {"catalog", "transfer"} or parts[:2] == ["tryon", "service"]:
        return "catalog"
    return "domain"


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        found.append((".".join(relative.parts), path))
    return found


def top_level_imports(path: Path) -> set[str]:
    """The ``catalog_core`` modules a file imports when it is loaded (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                # ``from catalog_core import _lazy`` imports the module catalog_core._lazy.
                if child.module == "catalog_core":
                    names.update(f"catalog_core.{alias.name}" for alias in child.names)
                else:
                    names.add(child.module)
    return {name for name in names if name == "catalog_core" or name.startswith("catalog_core.")}


@pytest.mark.parametrize(("module", "path"), modules(), ids=lambda v: str(v).split("/")[-1])
def test_a_module_imports_only_the_layers_its_own_may_use(module: str, path: Path) -> None:
    allowed = LAYERS[layer_of(module)]
    wrong = {name for name in top_level_imports(path) if layer_of(name) not in allowed}
    assert not wrong, f"{module} ({layer_of(module)}) imports {sorted(wrong)}"


#: What the layers above storage may import of it: the contract, not a backend.
STORAGE_CONTRACT = {"catalog_core.repository.base"}


@pytest.mark.parametrize(
    ("module", "path"),
    [(m, p) for m, p in modules() if layer_of(m) in {"catalog", "testing"}],
    ids=lambda v: str(v).split("/")[-1],
)
def test_the_catalog_and_the_kit_see_only_the_storage_contract(module: str, path: Path) -> None:
    storage = {name for name in top_level_imports(path) if layer_of(name) == "repository"}
    assert storage <= STORAGE_CONTRACT, f"{module} imports {sorted(storage - STORAGE_CONTRACT)}"


def test_the_layer_check_sees_an_import_against_the_arrows(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import catalog_core.wire.errors\nfrom catalog_core.catalog import Catalog\n")
    assert {layer_of(name) for name in top_level_imports(bad)} == {"wire", "catalog"}
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from catalog_core.wire.errors import status_of\n")
    assert top_level_imports(lazy) == set()


ROOT = PACKAGE.parent
RULE_ROW = re.compile(r"^\| (R\d+) \| `([\w.]+):([\w.]+)` \|$", re.MULTILINE)


def rule_table() -> list[tuple[str, str, str]]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return RULE_ROW.findall(text.split("## Each rule", 1)[1])


def test_every_rule_of_the_rule_book_leads_to_exactly_one_function() -> None:
    book = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    rules = sorted(
        set(re.findall(r"^\*\*(R\d+) —", book, flags=re.MULTILINE)), key=lambda r: int(r[1:])
    )
    assert [rule for rule, _, _ in rule_table()] == rules


@pytest.mark.parametrize(("rule", "module", "name"), rule_table(), ids=lambda v: str(v))
def test_the_function_a_rule_leads_to_exists_and_cites_the_rule(
    rule: str, module: str, name: str
) -> None:
    target: object = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    doc = inspect.getdoc(target) or ""
    assert re.search(rf"\b{rule}[a-z]?\b", doc), f"{module}:{name} does not cite {rule}"
