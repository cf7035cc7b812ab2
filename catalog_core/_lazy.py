"""Names of a package imported on first use (PEP 562): one loader for every package that has some.

A package lists its lazy names with the module each comes from, and takes its module-level
``__getattr__`` and ``__dir__`` from :func:`attach`. A name is imported once, the first time it is
read, and then stored in the package, so that later reads are plain attribute reads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(
    namespace: dict[str, Any], lazy: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return ``__getattr__`` and ``__dir__`` for the package whose ``globals()`` is ``namespace``.

    Args:
        namespace: the package's ``globals()``, where a name is stored once imported.
        lazy: each lazy name and the module it is imported from.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> object:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *lazy})

    return __getattr__, __dir__
