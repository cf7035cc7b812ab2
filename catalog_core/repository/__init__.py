"""Storage backends behind the repository contract of :mod:`catalog_core.repository.base`.

:class:`SQLiteRepository` is imported when first asked for, with sqlite-utils: importing a
submodule (``catalog_core.repository.base``, as the catalog does) loads no storage driver.
"""

import importlib as _importlib
import typing as _typing

from catalog_core.repository.base import BatchRepository, Change, Repository, Write
from catalog_core.repository.memory import MemoryRepository

if _typing.TYPE_CHECKING:
    from catalog_core.repository.sqlite import SQLiteRepository

# Public names whose modules import a storage driver, and the module each comes from (PEP 562).
_LAZY: _typing.Final = {"SQLiteRepository": "catalog_core.repository.sqlite"}


# Hidden from type checkers, which see the imports above: a misspelt name stays an error.
if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BatchRepository",
    "Change",
    "MemoryRepository",
    "Repository",
    "SQLiteRepository",
    "Write",
]
