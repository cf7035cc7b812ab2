"""Where a bulk import's time goes, stage by stage: ``python -m benchmarks.breakdown``.

The bulk cases miss their target; this splits one product's cost on each side into the stages
both sides have (read the JSON, build the row, write it) and the ones only catalog_core has
(every rule of the wire layer, the merge). Each stage is timed alone over the same products, with
the garbage collector on, as in the import.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

import catalog_core as cc
from benchmarks.cases import (
    ACCOUNT,
    _peer_row,
    _peer_sqlite,
    _peer_sqlite_bulk,
    _remove_db,
    lines,
)
from catalog_core._json import loads
from catalog_core.catalog import _PreparedUpsert, _TransactionClock
from catalog_core.model import to_epoch_ms
from catalog_core.repository.sqlite import _INSERT, _product_params
from catalog_core.wire.decode import decode_upsert

__all__ = ["main"]

_PEER_INSERT = "INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _per_item(work: Callable[[], object], count: int, repeat: int = 3) -> float:
    """Return the best of ``repeat`` runs of ``work``, in microseconds per item."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def _batched(stage: Callable[[Any], object], items: Sequence[Any]) -> Callable[[], None]:
    """Run ``stage`` on every item, 500 at a time, keeping a batch of results as the import does."""

    def run() -> None:
        for start in range(0, len(items), 500):
            kept = [stage(item) for item in items[start : start + 500]]
            del kept

    return run


def _our_schema(path: Path) -> sqlite3.Connection:
    """An empty catalog_core database (its schema and pragmas), opened plainly."""
    cc.SQLiteRepository(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _sql(
    path: Path,
    rows: Sequence[tuple[Any, ...]],
    statement: str,
    opener: Callable[[Path], sqlite3.Connection],
) -> Callable[[], None]:
    """Return a function that writes ``rows`` into a fresh database, 500 per transaction."""

    def write() -> None:
        _remove_db(path)
        conn = opener(path)
        for start in range(0, len(rows), 500):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(statement, rows[start : start + 500])
            conn.execute("COMMIT")
        conn.close()

    return write


@click.command()
@click.option("--products", default=20_000, show_default=True, help="Products per stage.")
def main(products: int) -> None:
    """Print the cost of each stage of a bulk import on SQLite, per product."""
    payloads = lines(products)
    catalog = cc.Catalog(cc.MemoryRepository())
    limits = catalog.limits
    bodies = [loads(raw) for raw in payloads]
    prepared: list[_PreparedUpsert] = [catalog._prepare_upsert(raw, None) for raw in payloads]
    clock = _TransactionClock(catalog)
    made = [p.change(ACCOUNT, clock=clock)(None).product for p in prepared]
    now_ms = to_epoch_ms(datetime.now(UTC))
    peer_bodies = [json.loads(raw) for raw in payloads]
    peer_rows = [_peer_row(body, None, now_ms) for body in peer_bodies]
    our_rows = [_product_params(p) for p in made if p is not None]
    with tempfile.TemporaryDirectory() as tmp:
        ours_db, peer_db = Path(tmp) / "ours.db", Path(tmp) / "peer.db"
        stages = [
            ("catalog_core: read the JSON (orjson)", _batched(loads, payloads)),
            (
                "catalog_core: check every rule (wire layer)",
                _batched(lambda b: decode_upsert(b, limits, owned=True), bodies),
            ),
            (
                "catalog_core: read, check and prepare (sizes, images)",
                _batched(lambda raw: catalog._prepare_upsert(raw, None), payloads),
            ),
            (
                "catalog_core: merge into a product (R4-R19)",
                _batched(lambda p: p.change(ACCOUNT, clock=clock)(None), prepared),
            ),
            ("catalog_core: build the row", _batched(_product_params, made)),
            (
                "catalog_core: write the rows (3 indexes)",
                _sql(ours_db, our_rows, _INSERT, _our_schema),
            ),
            (
                "catalog_core: the whole import (upsert_many)",
                lambda: _import(ours_db, payloads),
            ),
            ("sqlite3 peer: read the JSON (json)", _batched(json.loads, payloads)),
            (
                "sqlite3 peer: build the row",
                _batched(lambda b: _peer_row(b, None, now_ms), peer_bodies),
            ),
            (
                "sqlite3 peer: write the rows (1 index)",
                _sql(peer_db, peer_rows, _PEER_INSERT, _peer_sqlite),
            ),
            ("sqlite3 peer: the whole import", lambda: _peer_import(peer_db, payloads)),
        ]
        # The inputs above stay alive for every stage; the import never holds them all, so the
        # garbage collector is told to leave them alone (it still collects what stages make).
        gc.freeze()
        click.echo(f"per product, best of 3, {products:,} products\n")
        for name, work in stages:
            click.echo(f"{_per_item(work, products):8.2f} µs  {name}")
        gc.unfreeze()


def _peer_import(path: Path, payloads: Sequence[bytes]) -> None:
    _remove_db(path)
    conn = _peer_sqlite(path)
    try:
        _peer_sqlite_bulk(conn, payloads)
    finally:
        conn.close()


def _import(path: Path, payloads: Sequence[bytes]) -> None:
    _remove_db(path)
    repository = cc.SQLiteRepository(path)
    try:
        for result in cc.Catalog(repository).upsert_many(ACCOUNT, payloads):
            assert isinstance(result, cc.UpsertResult)
    finally:
        repository.close()


if __name__ == "__main__":
    main()
