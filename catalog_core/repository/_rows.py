"""How the SQL backends store records in rows: one codec and one statement set for both.

A record kind is stored in one table keyed by ``(account, id)``. Its :class:`SqlTable` says which
columns follow the key and how a record becomes a row and back; :func:`statements` writes the
SQL from it in either backend's dialect. Timestamps are integer milliseconds since the epoch,
read back exactly.

The two backends store a product in the same row but for one difference, stated here once:
PostgreSQL's ``text`` cannot hold NUL (which titles and metadata may contain), so PostgreSQL keeps
a product's text (title, description, metadata, images) as one JSON document with every control
character escaped, in a ``data`` column (:data:`PACKED`); SQLite keeps each in its own column
(:data:`SPLIT`: metadata and images as JSON). Every other column is the same in both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

import attrs

from catalog_core._json import dumps as fast_dumps
from catalog_core._json import dumps_for_storage, loads
from catalog_core.model import UPLOAD_SCHEME, Image, Product, from_epoch_ms, to_epoch_ms

__all__ = [
    "PACKED",
    "SPLIT",
    "SqlTable",
    "Statements",
    "blob_refs_of_images",
    "live_page",
    "statements",
]

R = TypeVar("R")


def _dumps(value: Any) -> str:
    """Return compact JSON of ``value``, as UTF-8 text."""
    try:
        return fast_dumps(value).decode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: SQLite text can hold it, JSON text escapes it
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _images_to_json(images: Iterable[Image]) -> list[list[Any]]:
    """Return images as JSON-ready rows: ``[sourceUrl]`` or ``[sourceUrl, classifications]``."""
    return [
        [i.source_url, i.classifications] if i.classifications else [i.source_url] for i in images
    ]


def _images_from_json(rows: Iterable[list[Any]]) -> tuple[Image, ...]:
    """Return the images of rows made by :func:`_images_to_json`, ordered as stored."""
    return tuple(
        Image(row[0], order, row[1] if len(row) > 1 else None) for order, row in enumerate(rows)
    )


def blob_refs_of_images(rows: Iterable[list[Any]]) -> set[str]:
    """Return the SHA-256 of every uploaded blob the image rows refer to."""
    return {row[0][len(UPLOAD_SCHEME) :] for row in rows if row[0].startswith(UPLOAD_SCHEME)}


def _ms_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else to_epoch_ms(moment)


def _dt_or_none(ms: int | None) -> datetime | None:
    return None if ms is None else from_epoch_ms(ms)


@attrs.frozen(eq=False)  # compared and hashed by identity: backends key their statements by it
class SqlTable(Generic[R]):
    """How one record kind is stored in one SQL table.

    Attributes:
        name: the table.
        id_column: the column of the id; the key is ``(account, id_column)``.
        columns: the columns after the key, read back and rewritten by every update.
        fixed: the columns written only when the row is inserted (they follow from the key).
        encode: the row of a record: the key, then ``columns``, then ``fixed``.
        decode: the record of a row read as the key then ``columns``.
        refs_column: the column a purge reads to find the blobs a deleted row referred to.
        refs_of: the SHA-256 of those blobs, from that column's value.
    """

    name: str
    id_column: str
    columns: tuple[str, ...]
    fixed: tuple[str, ...]
    encode: Callable[[R], tuple[Any, ...]]
    decode: Callable[[Sequence[Any]], R]
    refs_column: str
    refs_of: Callable[[Any], Iterable[str]]

    @property
    def selected(self) -> str:
        """The columns a read selects, comma-separated: the key, then :attr:`columns`."""
        return ", ".join(("account", self.id_column, *self.columns))

    @property
    def all_columns(self) -> frozenset[str]:
        """Every column of the table."""
        return frozenset(("account", self.id_column, *self.columns, *self.fixed))

    def update_params(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """The parameters of :attr:`Statements.update` from an encoded row."""
        return row[2 : 2 + len(self.columns)] + row[:2]


@attrs.frozen
class Statements:
    """The statements every backend runs on a :class:`SqlTable`, in its dialect.

    Attributes:
        select: the stored rows of one account; the backend appends how it picks the ids.
        get: the stored row of one key.
        insert: a new row (parameters: an encoded row).
        update: a row in place (parameters: :meth:`SqlTable.update_params`).
        delete: the row of one key.
    """

    select: str
    get: str
    insert: str
    update: str
    delete: str


def statements(
    table: SqlTable[Any], *, qualified: str, mark: str, insert_suffix: str = ""
) -> Statements:
    """Write the statements of ``table``.

    Args:
        table: the table.
        qualified: its name as the statements write it (schema-qualified, say).
        mark: the dialect's parameter mark (``?`` or ``%s``).
        insert_suffix: what follows the insert (``ON CONFLICT … DO NOTHING``, say).
    """
    key = f"account = {mark} AND {table.id_column} = {mark}"
    written = ("account", table.id_column, *table.columns, *table.fixed)
    # An update names neither the key nor the fixed columns: SQLite rewrites an index whenever
    # the SET clause names one of its columns, whatever the values.
    assignments = ", ".join(f"{column} = {mark}" for column in table.columns)
    select = f"SELECT {table.selected} FROM {qualified} WHERE account = {mark}"
    return Statements(
        select=select,
        get=f"SELECT {table.selected} FROM {qualified} WHERE {key}",
        insert=(
            f"INSERT INTO {qualified} ({', '.join(written)}) "
            f"VALUES ({', '.join([mark] * len(written))}){insert_suffix}"
        ),
        update=f"UPDATE {qualified} SET {assignments} WHERE {key}",
        delete=f"DELETE FROM {qualified} WHERE {key}",
    )


# -- products ---------------------------------------------------------------------------------


def live_page(table: SqlTable[Product], *, qualified: str, mark: str, listed: str) -> str:
    """Write the statement of a page of live products (R20, R24).

    Args:
        table: how products are stored.
        qualified: the table as the statement names it (with the index to walk, say).
        mark: the dialect's parameter mark.
        listed: the dialect's condition that a product is listed (not one-shot, R22c), as the
            listing index states it.

    The parameters are the account, the id to start after, the time in milliseconds, the limit.
    """
    return (
        f"SELECT {table.selected} FROM {qualified} WHERE account = {mark} AND {listed} "
        f"AND external_id > {mark} AND (expires_at IS NULL OR expires_at > {mark}) "
        f"ORDER BY external_id LIMIT {mark}"
    )


def _times(product: Product) -> tuple[Any, ...]:
    """The columns from ``valid_for_days`` to ``updated_at``: the same in both layouts."""
    return (
        product.valid_for_days,
        _ms_or_none(product.expires_at),
        _ms_or_none(product.last_used_at),
        to_epoch_ms(product.created_at),
        to_epoch_ms(product.updated_at),
    )


def _product(
    row: Sequence[Any],
    title: str | None,
    description: str | None,
    metadata: Any,
    images: list[list[Any]],
    times: int,
) -> Product:
    """Return the product of a row whose times start at column ``times`` and end with version."""
    return Product(
        account=row[0],
        external_id=row[1],
        title=title,
        description=description,
        metadata=metadata,
        valid_for_days=row[times],
        expires_at=_dt_or_none(row[times + 1]),
        last_used_at=_dt_or_none(row[times + 2]),
        created_at=from_epoch_ms(row[times + 3]),
        updated_at=from_epoch_ms(row[times + 4]),
        images=_images_from_json(images),
        version=row[-1],
    )


_TIMES: Final = ("valid_for_days", "expires_at", "last_used_at", "created_at", "updated_at")


def _split_row(product: Product) -> tuple[Any, ...]:
    metadata = product.metadata
    return (
        product.account,
        product.external_id,
        product.title,
        product.description,
        None if metadata is None else _dumps(metadata),
        *_times(product),
        _dumps(_images_to_json(product.images)),
        product.version,
        product.one_shot,
    )


def _split_product(row: Sequence[Any]) -> Product:
    metadata = None if row[4] is None else loads(row[4])
    return _product(row, row[2], row[3], metadata, loads(row[10]), 5)


def _packed_text(product: Product) -> str:
    data = {
        "title": product.title,
        "description": product.description,
        "metadata": product.metadata,
        "images": _images_to_json(product.images),
    }
    text = dumps_for_storage(data)  # escapes every control character
    if text is not None:
        return text.decode("utf-8")
    # A lone surrogate, say: escape every non-ASCII character too.
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def _packed_row(product: Product) -> tuple[Any, ...]:
    return (
        product.account,
        product.external_id,
        _packed_text(product),
        *_times(product),
        product.version,
        product.one_shot,
    )


def _packed_product(row: Sequence[Any]) -> Product:
    data = loads(row[2])
    return _product(row, data["title"], data["description"], data["metadata"], data["images"], 3)


#: Products in SQLite: each text in its own column (SQLite text holds any code point).
SPLIT: Final[SqlTable[Product]] = SqlTable(
    name="products",
    id_column="external_id",
    columns=("title", "description", "metadata", *_TIMES, "images", "version"),
    fixed=("one_shot",),
    encode=_split_row,
    decode=_split_product,
    refs_column="images",
    refs_of=lambda images: blob_refs_of_images(json.loads(images)),
)

#: Products in PostgreSQL: the text in one escaped JSON document (``text`` cannot hold NUL).
PACKED: Final[SqlTable[Product]] = SqlTable(
    name="products",
    id_column="external_id",
    columns=("data", *_TIMES, "version"),
    fixed=("one_shot",),
    encode=_packed_row,
    decode=_packed_product,
    refs_column="data",
    refs_of=lambda data: blob_refs_of_images(json.loads(data)["images"]),
)
