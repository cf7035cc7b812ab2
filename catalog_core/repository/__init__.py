"""Storage backends behind the repository contract of :mod:`catalog_core.repository.base`."""

from catalog_core.repository.base import BatchRepository, Change, Repository, Write
from catalog_core.repository.memory import MemoryRepository
from catalog_core.repository.sqlite import SQLiteRepository

__all__ = [
    "BatchRepository",
    "Change",
    "MemoryRepository",
    "Repository",
    "SQLiteRepository",
    "Write",
]
