"""The rules each statement of the PostgreSQL backend keeps, so that Citus runs it when distributed.

The backend's tables are distributed by ``account`` on Citus (``schema_sql(distributed=True)``).
Citus runs a statement over them when it is either

- **single-shard**: it filters every distributed table it reads on ``account = %s`` (an INSERT of
  values names the account in its row), so it is routed to the one shard of that account; or
- **plain multi-shard**: it reads one distributed table, with no subquery, no join, no row lock
  taken ahead (``FOR UPDATE``/``FOR SHARE``), and no recursive CTE; each shard then runs it on
  its own part of the table, in parallel. A ``UNION ALL`` of such statements is one too: Citus
  runs each leg on its own and combines their rows on the coordinator.

CI cannot run Citus. It records every statement the backend sends while the contract suite
runs (:class:`RecordingCursor`) and refuses, with :func:`problems`, any that keeps neither rule;
what Citus itself answered to such statements on a real cluster is in docs/storage.md.
"""

from __future__ import annotations

import collections
import re
import threading
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool

__all__ = [
    "DISTRIBUTED",
    "Recorded",
    "RecordingCursor",
    "multi_shard",
    "problems",
    "recording_cursor",
    "recording_pool",
]

#: The tables distributed by account (``catalog_meta`` is a reference table, on every node).
DISTRIBUTED: Final = ("products", "blobs", "person_images", "generations", "credits")
_TABLE: Final = re.compile(
    r"\b(FROM|JOIN|UPDATE|INTO|USING)\s+(?:\"?[a-z_0-9]+\"?\.)?(" + "|".join(DISTRIBUTED) + r")\b",
    re.IGNORECASE,
)
_ACCOUNT_FILTER: Final = re.compile(r"(?<![\w.])(?:\w+\.)?account\s*=\s*%s", re.IGNORECASE)
_ROW_LOCK: Final = re.compile(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", re.I)
_DDL: Final = re.compile(r"^\s*(CREATE|DROP|ALTER|SELECT\s+create_\w+_table)\b", re.IGNORECASE)


def _text(query: Any) -> str:
    if isinstance(query, bytes):
        return query.decode()
    if isinstance(query, str):
        return query
    return str(query)  # a psycopg.sql object: the backend sends none today


def _tables(statement: str) -> list[str]:
    return [match.group(2).lower() for match in _TABLE.finditer(statement)]


def multi_shard(statement: str) -> bool:
    """Whether ``statement`` reads a distributed table without routing each read to an account."""
    legs = re.split(r"\bUNION\s+ALL\b", statement, flags=re.IGNORECASE)
    if len(legs) > 1:
        return any(multi_shard(leg) for leg in legs)
    tables = _tables(statement)
    if not tables or _DDL.match(statement):
        return False
    upper = statement.upper()
    if upper.lstrip().startswith("INSERT") and "SELECT" not in upper:
        return False  # a row of values: its account routes it
    return len(_ACCOUNT_FILTER.findall(statement)) < len(tables)


def problems(statement: str) -> list[str]:
    """Say why Citus would refuse ``statement`` on tables distributed by account (``[]``: none).

    A ``UNION ALL`` is judged leg by leg: Citus runs each leg as a statement of its own and
    combines their rows on the coordinator.
    """
    flat = " ".join(statement.split())
    legs = re.split(r"\bUNION\s+ALL\b", flat, flags=re.IGNORECASE)
    if len(legs) > 1:
        return [problem for leg in legs for problem in problems(leg)]
    if not _tables(flat):
        return []  # catalog_meta (a reference table) or the system catalogs
    found = []
    if re.search(r"\bWITH\s+RECURSIVE\b", flat, re.IGNORECASE):
        found.append("a recursive CTE over a distributed table")
    if not multi_shard(flat):
        return found
    if len(_tables(flat)) > 1:
        found.append("a multi-shard statement reads several distributed tables (join or subquery)")
    if re.search(r"\(\s*SELECT\b", flat, re.IGNORECASE):
        found.append("a multi-shard statement with a subquery")
    if _ROW_LOCK.search(flat):
        found.append("a multi-shard statement that locks rows ahead (FOR UPDATE/SHARE)")
    return found


class Recorded:
    """The statements sent through :class:`RecordingCursor`s, with their first parameters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Each distinct statement (whitespace folded) with the parameters it was first sent with.
        self.statements: dict[str, Any] = {}
        #: How many statements were sent (an ``executemany`` counts once per row).
        self.sent = 0
        #: How many times each distinct statement was sent.
        self.times: collections.Counter[str] = collections.Counter()

    def add(self, query: Any, params: Any, times: int = 1) -> None:
        text = " ".join(_text(query).split())
        with self._lock:
            self.statements.setdefault(text, params)
            self.sent += times
            self.times[text] += times


class RecordingCursor(psycopg.Cursor[Any]):
    """A cursor that records each statement it sends (in :attr:`recorded`) and then sends it."""

    recorded: Recorded = Recorded()

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        type(self).recorded.add(query, params)
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        rows = list(params_seq)
        type(self).recorded.add(query, rows[0] if rows else None, len(rows))
        super().executemany(query, rows, **kwargs)


def recording_cursor(recorded: Recorded) -> type[RecordingCursor]:
    """Return a cursor class that records into ``recorded``."""
    return type("Recording", (RecordingCursor,), {"recorded": recorded})


def recording_pool(url: str, recorded: Recorded, max_size: int) -> ConnectionPool:
    """Return an open pool whose connections record into ``recorded`` (autocommit, as the
    repository's own pool)."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "cursor_factory": recording_cursor(recorded)},
        open=True,
    )
