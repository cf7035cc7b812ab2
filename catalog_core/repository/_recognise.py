"""Tell a catalog from another application's database before writing to it: both SQL backends.

Each backend reads what its database holds (tables and their columns, indexes, other objects)
its own way; the judgement and the messages are here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, Literal, NamedTuple, Protocol

__all__ = [
    "COMMON_TABLES",
    "EARLIER_VERSIONS",
    "SQLITE_INDEXES",
    "Contents",
    "Found",
    "foreign",
    "read_meta",
    "recognise",
]

#: What :func:`recognise` finds: a catalog needing nothing, one to create, one missing parts, or
#: one of an earlier schema version that opening it writable migrates.
Found = Literal["whole", "empty", "incomplete", "outdated"]
#: The tables both backends give the same columns.
COMMON_TABLES: Final = {
    "blobs": frozenset({"account", "sha256", "mime_type", "data", "refs"}),
    "catalog_meta": frozenset({"key", "value"}),
    "credits": frozenset({"account", "id", "balance", "refunds"}),
}
#: The indexes of a whole catalog on SQLite (PostgreSQL's are in ``_postgres_schema``).
SQLITE_INDEXES: Final = frozenset(
    {
        "products_listing",
        "products_expiry",
        "blobs_orphans",
        "person_images_expiry",
        "person_images_customer",
        "generations_expiry",
        "generations_customer",
    }
)
#: The schema versions SQLite migrates a catalog from, in place (PostgreSQL's are in
#: ``_postgres_schema``).
EARLIER_VERSIONS: Final = frozenset({1})


class _Executes(Protocol):
    def execute(self, query: str, /) -> Any: ...


def read_meta(conn: _Executes, table: str, key: str) -> str | None:
    """Return the value of ``key`` in the ``catalog_meta`` table named ``table``, or ``None``."""
    row = conn.execute(f"SELECT value FROM {table} WHERE key = '{key}'").fetchone()
    return None if row is None else str(row[0])


class Contents(NamedTuple):
    """What a backend read of a database (or schema), for :func:`recognise` to judge.

    Attributes:
        tables: each table with the names of its columns.
        others: every other object (views, sequences, types, functions ...), described; only
            looked at when there is no table.
        indexes: the names of its indexes.
        schema_version: reads the ``schema_version`` row of ``catalog_meta`` (``None`` if none).
        mark: why an object-less database still belongs to another application (SQLite's
            ``application_id`` and ``user_version``), or ``None``.
    """

    tables: Mapping[str, Collection[str]]
    others: Collection[str]
    indexes: Collection[str]
    schema_version: Callable[[], str | None]
    mark: str | None = None


def foreign(subject: str, reason: str) -> RuntimeError:
    """Return the error refusing ``subject`` (``"the database"``, ``"schema 'x'"``) as not ours."""
    return RuntimeError(f"{subject} is not a catalog_core catalog: {reason}; it was left unchanged")


def _shown(names: Collection[str]) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:5]) + (", ..." if len(ordered) > 5 else "")


def recognise(
    subject: str,
    contents: Contents,
    *,
    columns: Mapping[str, frozenset[str]],
    version: int,
    indexes: Collection[str],
    earlier: Collection[int] = EARLIER_VERSIONS,
) -> Found:
    """Judge what a database (or schema) holds, from what the backend read of it.

    Args:
        subject: how messages name it.
        contents: what the backend read of it.
        columns: the catalog's tables and the columns each must have.
        version: the catalog schema this version of catalog_core reads.
        indexes: the indexes of a whole catalog (the backend's own).
        earlier: the schema versions the backend migrates in place.

    Returns:
        ``"empty"`` when it holds nothing at all, ``"whole"`` for a catalog of this version with
        every table and index, ``"incomplete"`` for one missing some, ``"outdated"`` for a
        catalog of an earlier version (one of ``earlier``) that a migration brings to
        this one.

    Raises:
        RuntimeError: it holds another application's objects, or a catalog of another version
            (a later one, or one this version cannot migrate).
    """
    tables, others, found_indexes, schema_version, mark = contents
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
    if found in {str(older) for older in earlier if older < version}:
        return "outdated"
    if found != str(version):
        raise RuntimeError(
            f"{subject} holds catalog schema {found}; this version of catalog_core reads "
            f"schema {version}; it was left unchanged"
        )
    whole = tables.keys() >= columns.keys() and set(found_indexes) >= set(indexes)
    return "whole" if whole else "incomplete"
