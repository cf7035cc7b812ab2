"""Tell a catalog from another application's database before writing to it: both SQL backends.

Each backend reads what its database holds (tables and their columns, indexes, other objects)
its own way; the judgement and the messages are here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Final, Literal

__all__ = [
    "COMMON_TABLES",
    "INDEX_NAMES",
    "Found",
    "foreign",
    "recognise",
]

#: What :func:`recognise` finds: a catalog needing nothing, one to create, or one missing parts.
Found = Literal["whole", "empty", "incomplete"]
#: The tables both backends give the same columns.
COMMON_TABLES: Final = {
    "blobs": frozenset({"account", "sha256", "mime_type", "data", "refs"}),
    "catalog_meta": frozenset({"key", "value"}),
}
INDEX_NAMES: Final = frozenset({"products_listing", "products_expiry", "blobs_orphans"})


def foreign(subject: str, reason: str) -> RuntimeError:
    """Return the error refusing ``subject`` (``"the database"``, ``"schema 'x'"``) as not ours."""
    return RuntimeError(f"{subject} is not a catalog_core catalog: {reason}; it was left unchanged")


def _shown(names: Collection[str]) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:5]) + (", ..." if len(ordered) > 5 else "")


def recognise(
    subject: str,
    *,
    tables: Mapping[str, Collection[str]],
    others: Collection[str],
    indexes: Collection[str],
    columns: Mapping[str, frozenset[str]],
    schema_version: Callable[[], str | None],
    version: int,
    mark: str | None = None,
) -> Found:
    """Judge what a database (or schema) holds, from what the backend read of it.

    Args:
        subject: how messages name it.
        tables: each table with the names of its columns.
        others: every other object (views, sequences, types, functions ...), described; only
            looked at when there is no table.
        indexes: the names of its indexes.
        columns: the catalog's tables and the columns each must have.
        schema_version: reads the ``schema_version`` row of ``catalog_meta`` (``None`` if none).
        version: the catalog schema this version of catalog_core reads.
        mark: why an object-less database still belongs to another application (SQLite's
            ``application_id`` and ``user_version``), or ``None``.

    Returns:
        ``"empty"`` when it holds nothing at all, ``"whole"`` for a catalog of this version with
        every table and index, ``"incomplete"`` for one missing some.

    Raises:
        RuntimeError: it holds another application's objects, or a catalog of another version.
    """
    if not tables:
        if others:
            raise foreign(subject, f"it holds objects of another application ({_shown(others)})")
        if mark:
            raise foreign(subject, mark)
        return "empty"
    if "catalog_meta" not in tables:
        raise foreign(subject, f"it holds tables of another application ({_shown(tables)})")
    for table, wanted in columns.items():
        if table in tables and not wanted <= set(tables[table]):
            lacking = ", ".join(sorted(wanted - set(tables[table])))
            raise foreign(subject, f"its {table} table lacks the catalog's columns ({lacking})")
    found = schema_version()
    if found is None:
        raise foreign(subject, "its catalog_meta table holds no catalog schema_version")
    if found != str(version):
        raise RuntimeError(
            f"{subject} holds catalog schema {found}; this version of catalog_core reads "
            f"schema {version}; it was left unchanged"
        )
    whole = tables.keys() >= columns.keys() and set(indexes) >= INDEX_NAMES
    return "whole" if whole else "incomplete"
