"""The public surface: ``__all__`` is exactly what each package exposes, and what the docs use.

As httpx tests its own: the list is read from the module, not written out a second time here, so
a name made public without being exported (or exported without existing) fails.
"""

from __future__ import annotations

import importlib
import re
import types
from pathlib import Path

import pytest

import catalog_core as cc

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = [
    "catalog_core",
    "catalog_core.repository",
    "catalog_core.server",
    "catalog_core.testing",
    "catalog_core.tryon",
    "catalog_core.wire",
]


def exposed(module: types.ModuleType) -> set[str]:
    """The public names of ``module`` (its ``__dir__``, lazy names included) but its submodules."""
    names = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = module.__dict__.get(name)
        if isinstance(value, types.ModuleType) and value.__name__ == f"{module.__name__}.{name}":
            continue
        names.add(name)
    return names


def ruff_order(name: str) -> tuple[bool, str]:
    """``__all__``'s order: SCREAMING_CASE constants first, then the rest, case-sensitively."""
    return (not name.isupper(), name)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_a_package_exposes_is_in_its_sorted_all(package: str) -> None:
    module = importlib.import_module(package)
    assert exposed(module) <= set(module.__all__), "public but not exported"
    assert list(module.__all__) == sorted(module.__all__, key=ruff_order)
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_of_all_resolves_and_is_listed_by_dir(package: str) -> None:
    module = importlib.import_module(package)
    listed = set(dir(module))
    for name in module.__all__:
        assert getattr(module, name) is not None
        assert name in listed


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        cc.Nope  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(cc, "Nope")


def test_every_cc_name_the_readme_and_docs_use_is_exported() -> None:
    used = {
        match.group(1)
        for doc in DOCS
        for match in re.finditer(r"\bcc\.([A-Za-z_]\w*)", doc.read_text(encoding="utf-8"))
    }
    assert {"Catalog", "SQLiteRepository", "to_wire", "open_repository"} <= used
    assert used <= set(cc.__all__)


@pytest.mark.parametrize("package", ["catalog_core.server", "catalog_core.testing"])
def test_every_name_the_docs_import_from_a_package_is_in_its_all(package: str) -> None:
    pattern = rf"^from {re.escape(package)} import (.+)$"
    imported = {
        name.split(" as ")[0].strip()
        for doc in DOCS
        for match in re.finditer(pattern, doc.read_text(encoding="utf-8"), flags=re.MULTILINE)
        for name in match.group(1).strip("()").split(",")
        if name.strip()
    }
    assert imported
    assert imported <= set(importlib.import_module(package).__all__)


def test_the_version_is_a_string() -> None:
    assert isinstance(cc.__version__, str)
    assert cc.__version__.count(".") == 2
