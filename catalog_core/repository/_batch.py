"""The part of a batch of writes that every backend shares: running the changes in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from catalog_core.errors import CatalogError
from catalog_core.images import Blob
from catalog_core.model import Product
from catalog_core.repository.base import Change

__all__ = ["apply_changes"]


def apply_changes(
    account: str,
    changes: Sequence[tuple[str, Change]],
    stored: Mapping[str, Product | None],
) -> tuple[list[Product | Exception | None], dict[str, Product | None], list[Blob], dict[str, int]]:
    """Run a batch's changes in order against the stored products of their keys.

    A change sees the result of an earlier change to the same key in the batch. A change that
    raises leaves its key as it was, and its exception becomes its outcome.

    Args:
        account: the account of every key.
        changes: ``(external_id, change)`` pairs, in order.
        stored: the stored product of every key of the batch (``None`` or absent: nothing).

    Returns:
        Each change's outcome, the final state of every key a change wrote (``None``: delete),
        the blobs given with the writes, and the change in reference count of each blob.

    Raises:
        ValueError: a change stored a product under another key.
    """
    current = dict(stored)
    outcomes: list[Product | Exception | None] = []
    written: dict[str, Product | None] = {}
    blobs: dict[str, Blob] = {}
    for external_id, change in changes:
        old = current.get(external_id)
        try:
            result = change(old)
        except CatalogError as exc:  # the change refused: its key stays as it was
            # Without its traceback: that would hold this frame (and so the whole batch) in a
            # cycle with ``outcomes`` until the garbage collector ran.
            outcomes.append(exc.with_traceback(None))
            continue
        except Exception as exc:  # a defect of the change: kept whole, for the caller to raise
            outcomes.append(exc)
            continue
        new = result.product
        if new is not None and (new.account, new.external_id) != (account, external_id):
            raise ValueError("a write must keep the product's account and external id")
        for blob in result.blobs:
            blobs.setdefault(blob.sha256, blob)
        current[external_id] = written[external_id] = new
        outcomes.append(new)
    deltas: dict[str, int] = {}
    for external_id, new in written.items():
        old = stored.get(external_id)
        before = old.blob_refs if old else frozenset()
        after = new.blob_refs if new else frozenset()
        if not (before or after):
            continue
        for sha in after - before:
            deltas[sha] = deltas.get(sha, 0) + 1
        for sha in before - after:
            deltas[sha] = deltas.get(sha, 0) - 1
    return outcomes, written, list(blobs.values()), {s: d for s, d in deltas.items() if d}
