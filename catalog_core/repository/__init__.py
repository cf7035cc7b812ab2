"""Storage backends behind the repository contract of :mod:`catalog_core.repository.base`.

Each backend is imported when first asked for, :class:`SQLiteRepository` with sqlite-utils:
importing the contract (``catalog_core.repository.base``, as the catalog does) loads none.
"""

import typing as _typing

from catalog_core import _lazy
from catalog_core.repository.base import BatchRepository, Change, Repository, ScanRepository, Write

if _typing.TYPE_CHECKING:
    from catalog_core.repository.memory import MemoryRepository
    from catalog_core.repository.sqlite import SQLiteRepository

# The backends, and the module each comes from (PEP 562).
_LAZY: _typing.Final = {
    "MemoryRepository": "catalog_core.repository.memory",
    "SQLiteRepository": "catalog_core.repository.sqlite",
}


# Hidden from type checkers, which see the imports above: a misspelt name stays an error.
if not _typing.TYPE_CHECKING:
    __getattr__, __dir__ = _lazy.attach(globals(), _LAZY)


__all__ = [
    "BatchRepository",
    "Change",
    "MemoryRepository",
    "Repository",
    "SQLiteRepository",
    "ScanRepository",
    "Write",
]
