"""How the SQL backends store records in rows: one codec and one statement set for both.

A record kind is stored in one table keyed by ``(account, id)``. Its :class:`SqlTable` says which
columns follow the key and how a record becomes a row and back; :func:`statements` writes the
SQL from it in either backend's dialect. Timestamps are integer milliseconds since the epoch,
read back exactly.

The two backends store a record in the same row but for one difference, stated here once:
PostgreSQL's ``text`` cannot hold NUL (which titles, metadata, URLs and customer ids may contain),
so PostgreSQL keeps a record's text as one JSON document with every control character escaped,
in a ``data`` column (products: :data:`PACKED`), and a customer id, which erasure looks up, as
its own JSON string (:func:`customer_key`); SQLite keeps each text in its own column (products:
:data:`SPLIT`; metadata, images and snapshots as JSON). Keys (accounts, ids, SHA-256) are plain
columns in both, as is every number.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

import attrs

from catalog_core._json import dumps as fast_dumps
from catalog_core._json import dumps_for_storage, loads
from catalog_core.model import (
    UPLOAD_SCHEME,
    Image,
    Product,
    ProductRow,
    from_epoch_ms,
    image_rows,
    new_image,
    new_product,
    to_epoch_ms,
)
from catalog_core.repository._engine import CREDITS_ID
from catalog_core.tryon.model import Credits, Generation, Person, PersonImage, ProductSnapshot

__all__ = [
    "CREDIT_ROWS",
    "GENERATIONS_PACKED",
    "GENERATIONS_SPLIT",
    "PACKED",
    "PACKED_BEFORE_UPLOADS",
    "PERSON_IMAGES_PACKED",
    "PERSON_IMAGES_SPLIT",
    "SPLIT",
    "GenerationPages",
    "SqlTable",
    "Statements",
    "blob_refs_of_images",
    "customer_key",
    "escaped_product_id",
    "generation_pages",
    "live_page",
    "packed_product_row",
    "split_product_row",
    "statements",
]

R = TypeVar("R")


def _dumps(value: Any) -> str:
    """Return compact JSON of ``value``, as UTF-8 text that reads back as ``value``.

    Floats are spelled orjson's way (``0.00001`` or ``1e-7``, where ``json`` writes ``1e-05``
    and ``1e-07``): only the value read back matters here, and asking whether a text holds such
    a float took a third of the time of writing it.
    """
    text = dumps_for_storage(value)
    if text is not None:
        return text.decode("utf-8")
    try:
        return fast_dumps(value).decode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate, which SQLite's UTF-8 text cannot hold: escaped, with every other
        # non-ASCII character, it reads back as it was (as _escaped does for PostgreSQL), but
        # for a high surrogate followed by a low one, which JSON reads as the pair's character.
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _images_from_json(rows: Iterable[list[Any]]) -> tuple[Image, ...]:
    """Return the images of rows made by :func:`~catalog_core.model.image_rows`, in order."""
    return tuple(
        [
            new_image(row[0], order, row[1] if len(row) > 1 else None)
            for order, row in enumerate(rows)
        ]
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
        refs_column: the column a purge reads to find the blobs a deleted row referred to
            (``None``: its records refer to no blob).
        refs_of: the SHA-256 of those blobs, from that column's value.
    """

    name: str
    id_column: str
    columns: tuple[str, ...]
    fixed: tuple[str, ...]
    encode: Callable[[R], tuple[Any, ...]]
    decode: Callable[[Sequence[Any]], R]
    refs_column: str | None
    refs_of: Callable[[Any], Iterable[str]]

    @property
    def selected(self) -> str:
        """The columns a read selects, comma-separated: the key, then :attr:`columns`."""
        return ", ".join(("account", self.id_column, *self.columns))

    @property
    def written(self) -> str:
        """The columns an insert writes, comma-separated, in the order of :attr:`encode`."""
        return ", ".join(("account", self.id_column, *self.columns, *self.fixed))

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
    # An update names neither the key nor the fixed columns: SQLite rewrites an index whenever
    # the SET clause names one of its columns, whatever the values.
    assignments = ", ".join(f"{column} = {mark}" for column in table.columns)
    select = f"SELECT {table.selected} FROM {qualified} WHERE account = {mark}"
    return Statements(
        select=select,
        get=f"SELECT {table.selected} FROM {qualified} WHERE {key}",
        insert=(
            f"INSERT INTO {qualified} ({table.written}) "
            f"VALUES ({', '.join([mark] * (2 + len(table.columns) + len(table.fixed)))})"
            f"{insert_suffix}"
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


#: The key before which the first page of generations starts: after every stored one.
_NEWEST: Final = (2**63 - 1, "")


@attrs.frozen
class GenerationPages:
    """The statements of a page of an account's live generations, newest first (T22).

    Attributes:
        every: the account's generations (parameters: the account, the ``(created_at,
            generation_id)`` to start before, in milliseconds, the time in milliseconds, the
            limit); it walks the index on ``(account, created_at, generation_id)`` backwards.
        one_product: one product's (parameters: the account, the product's id, then as
            ``every``); it walks the index on ``(account, <product id>, created_at,
            generation_id)`` backwards, whose expression is the dialect's.
    """

    every: str
    one_product: str

    def page(
        self,
        account: str,
        before: tuple[datetime, str] | None,
        now: datetime,
        limit: int,
        product: str | None,
    ) -> tuple[str, tuple[Any, ...]]:
        """Return the statement of a page and its parameters."""
        start = _NEWEST if before is None else (to_epoch_ms(before[0]), before[1])
        tail = (*start, to_epoch_ms(now), limit)
        if product is None:
            return self.every, (account, *tail)
        return self.one_product, (account, product, *tail)


def generation_pages(
    table: SqlTable[Any], *, qualified: str, mark: str, product_of: str
) -> GenerationPages:
    """Write the statements of :class:`GenerationPages`.

    ``product_of`` is the dialect's expression of a row's product id, exactly as its index
    states it (so that the index is used). It is exact for every valid id (R2: no control
    character, no lone surrogate), which every snapshot's is.
    """
    rest = (
        f"AND (created_at, generation_id) < ({mark}, {mark}) AND expires_at > {mark} "
        f"ORDER BY created_at DESC, generation_id DESC LIMIT {mark}"
    )
    selected = f"SELECT {table.selected} FROM {qualified} WHERE account = {mark} "
    return GenerationPages(
        every=selected + rest,
        one_product=f"{selected}AND {product_of} = {mark} {rest}",
    )


@attrs.frozen
class ScanStatements:
    """The statements of :meth:`~catalog_core.repository.base.ScanRepository.scan_live`.

    Attributes:
        every_account: a page of live products of every account after a key, in key order
            (parameters: the account and id to start after, the time in milliseconds, the limit).
        one_account: the same within one account (parameters: the account, the id to start
            after, the time, the limit).
        count_every_account: the live products of every account (parameter: the time).
        count_one_account: the live products of one account (parameters: the account, the time).
    """

    every_account: str
    one_account: str
    count_every_account: str
    count_one_account: str

    def page(
        self, account: str | None, after: tuple[str, str] | None, now: datetime, limit: int
    ) -> tuple[str, tuple[Any, ...]]:
        """Return the statement of a page of ``scan_live`` and its parameters."""
        now_ms = to_epoch_ms(now)
        if account is None:
            start = after or ("", "")
            return self.every_account, (start[0], start[1], now_ms, limit)
        start_id: str | None = after[1] if after is not None and after[0] == account else ""
        if after is not None and after[0] > account:
            start_id = None  # the walk is past this account: an empty page
        return self.one_account, (account, start_id, now_ms, limit)

    def count(self, account: str | None, now: datetime) -> tuple[str, tuple[Any, ...]]:
        """Return the statement of ``count_live`` and its parameters."""
        if account is None:
            return self.count_every_account, (to_epoch_ms(now),)
        return self.count_one_account, (account, to_epoch_ms(now))


def scan_statements(
    table: SqlTable[Product], *, qualified: str, mark: str, walked: str | None = None
) -> ScanStatements:
    """Write the statements that walk every live product, one-shot ones included, by key.

    The pages read the primary key ``(account, external_id)``, in its order: code points, as
    the listing's (R24). ``walked`` is the table as the pages name it (with the index to walk,
    say); ``qualified`` by default.
    """
    walked = walked or qualified
    live = f"(expires_at IS NULL OR expires_at > {mark})"
    return ScanStatements(
        every_account=(
            f"SELECT {table.selected} FROM {walked} WHERE (account, external_id) > "
            f"({mark}, {mark}) AND {live} ORDER BY account, external_id LIMIT {mark}"
        ),
        one_account=(
            f"SELECT {table.selected} FROM {walked} WHERE account = {mark} AND "
            f"external_id > {mark} AND {live} ORDER BY external_id LIMIT {mark}"
        ),
        count_every_account=f"SELECT count(*) FROM {qualified} WHERE {live}",
        count_one_account=f"SELECT count(*) FROM {qualified} WHERE account = {mark} AND {live}",
    )


def _times(product: Product) -> tuple[Any, ...]:
    """The columns from ``valid_for_days`` to ``updated_at``: the same in both layouts."""
    created_at, updated_at = product.created_at, product.updated_at
    created = to_epoch_ms(created_at)
    return (
        product.valid_for_days,
        _ms_or_none(product.expires_at),
        _ms_or_none(product.last_used_at),
        created,
        # A product just created was created and updated at the very time its write read.
        created if updated_at is created_at else to_epoch_ms(updated_at),
    )


def _product(
    row: Sequence[Any],
    title: str | None,
    description: str | None,
    metadata: Any,
    images: list[list[Any]],
    times: int,
    version: int = -1,
) -> Product:
    """Return the product of a row, its times from column ``times``, its version at ``version``."""
    return new_product(
        row[0],
        row[1],
        title,
        description,
        metadata,
        row[times],
        _dt_or_none(row[times + 1]),
        _dt_or_none(row[times + 2]),
        from_epoch_ms(row[times + 3]),
        from_epoch_ms(row[times + 4]),
        _images_from_json(images),
        row[version],
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
        _dumps(image_rows(product.images)),
        product.version,
        product.one_shot,
    )


def _metadata_and_images(metadata: str | None, images: str) -> tuple[Any, list[list[Any]]]:
    """Read a split row's ``metadata`` (``None``: SQL ``NULL``) and ``images`` columns."""
    if metadata is None:
        return None, loads(images)
    # Read as one text: its checks and the parser's call are paid once, a third less time.
    both: list[Any] = loads(f"[{metadata},{images}]")
    return both[0], both[1]


def _split_product(row: Sequence[Any]) -> Product:
    metadata, images = _metadata_and_images(row[4], row[10])
    return _product(row, row[2], row[3], metadata, images, 5)


def split_product_row(row: Sequence[Any]) -> ProductRow:
    """Return the :data:`~catalog_core.model.ProductRow` of a row of :data:`SPLIT`.

    What :func:`~catalog_core.model.product_row` makes of the product the row decodes to, with
    no ``Product``, ``Image`` or ``datetime`` made: a listing written out at once reads this.
    """
    metadata, images = _metadata_and_images(row[4], row[10])
    return (row[1], row[2], row[3], metadata, row[5], row[6], row[7], row[8], row[9], images)


def escaped_product_id(external_id: str) -> str:
    """Return ``external_id`` as a generation's PostgreSQL document holds it: JSON-escaped.

    The same encoder as the document's, so the text is the same, character for character, as
    the one ``PRODUCT_OF_GENERATION`` reads out of it.
    """
    return _escaped([external_id])[2:-2]


def _escaped(data: Any) -> str:
    """Return JSON text of ``data`` with every control character escaped: PostgreSQL holds it."""
    text = dumps_for_storage(data)  # escapes every control character
    if text is not None:
        return text.decode("utf-8")
    # A lone surrogate, say: escape every non-ASCII character too.
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def _packed_text(product: Product) -> str:
    return _escaped(
        {
            "title": product.title,
            "description": product.description,
            "metadata": product.metadata,
            "images": image_rows(product.images),
        }
    )


def _packed_row(product: Product) -> tuple[Any, ...]:
    return (
        product.account,
        product.external_id,
        _packed_text(product),
        *_times(product),
        product.version,
        bool(product.blob_refs),
        product.one_shot,
    )


def _packed_row_before_uploads(product: Product) -> tuple[Any, ...]:
    row = _packed_row(product)
    return row[:-2] + row[-1:]


def _packed_product(row: Sequence[Any]) -> Product:
    data = loads(row[2])
    title, description, metadata = data["title"], data["description"], data["metadata"]
    return _product(row, title, description, metadata, data["images"], 3, 3 + len(_TIMES))


def packed_product_row(row: Sequence[Any]) -> ProductRow:
    """Return the :data:`~catalog_core.model.ProductRow` of a row of :data:`PACKED`.

    Or of :data:`PACKED_BEFORE_UPLOADS`: the texts and images from the document.
    """
    data = loads(row[2])
    return (
        row[1],
        data["title"],
        data["description"],
        data["metadata"],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        data["images"],
    )


def _refs_of_packed(data: str) -> set[str]:
    return blob_refs_of_images(json.loads(data)["images"])


#: Products in SQLite: each text in its own column (UTF-8 text: every character, NUL included,
#: but no lone surrogate; JSON columns escape a value that holds one, see _dumps).
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

#: Products in PostgreSQL: the text in one escaped JSON document (``text`` cannot hold NUL), and
#: whether the product's images name an upload (``uploads``, schema 3), for the purge.
PACKED: Final[SqlTable[Product]] = SqlTable(
    name="products",
    id_column="external_id",
    columns=("data", *_TIMES, "version", "uploads"),
    fixed=("one_shot",),
    encode=_packed_row,
    decode=_packed_product,
    refs_column="data",
    refs_of=_refs_of_packed,
)
#: Products in a PostgreSQL catalog of schema 1 or 2, which has no ``uploads`` column.
PACKED_BEFORE_UPLOADS: Final[SqlTable[Product]] = SqlTable(
    name="products",
    id_column="external_id",
    columns=("data", *_TIMES, "version"),
    fixed=("one_shot",),
    encode=_packed_row_before_uploads,
    decode=_packed_product,
    refs_column="data",
    refs_of=_refs_of_packed,
)


# -- the try-on flow: person images, generations, credit balances -----------------------------


def customer_key(customer_id: str | None) -> str | None:
    """Return how PostgreSQL stores (and erasure looks up) a customer id: a JSON string.

    One spelling per id, whatever JSON library runs, so that every process looks up what every
    other stored: control characters escaped (``text`` cannot hold NUL), every other character as
    it is, unless the id holds a lone surrogate (then every non-ASCII character is escaped).
    """
    if customer_id is None:
        return None
    try:
        customer_id.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(customer_id, ensure_ascii=True)
    return json.dumps(customer_id, ensure_ascii=False)


def _customer_of(key: str | None) -> str | None:
    return None if key is None else str(json.loads(key))


def _split_image_row(image: PersonImage) -> tuple[Any, ...]:
    return (
        image.account,
        image.image_id,
        image.sha256,
        image.mime_type,
        image.token,
        int(image.crop),
        image.customer_id,
        to_epoch_ms(image.created_at),
        to_epoch_ms(image.expires_at),
    )


def _split_image(row: Sequence[Any]) -> PersonImage:
    return PersonImage(
        account=row[0],
        image_id=row[1],
        sha256=row[2],
        mime_type=row[3],
        token=row[4],
        crop=bool(row[5]),
        customer_id=row[6],
        created_at=from_epoch_ms(row[7]),
        expires_at=from_epoch_ms(row[8]),
    )


def _packed_image_row(image: PersonImage) -> tuple[Any, ...]:
    return (
        image.account,
        image.image_id,
        image.sha256,
        _escaped({"mime_type": image.mime_type, "token": image.token}),
        image.crop,
        customer_key(image.customer_id),
        to_epoch_ms(image.created_at),
        to_epoch_ms(image.expires_at),
    )


def _packed_image(row: Sequence[Any]) -> PersonImage:
    data = loads(row[3])
    return PersonImage(
        account=row[0],
        image_id=row[1],
        sha256=row[2],
        mime_type=data["mime_type"],
        token=data["token"],
        crop=row[4],
        customer_id=_customer_of(row[5]),
        created_at=from_epoch_ms(row[6]),
        expires_at=from_epoch_ms(row[7]),
    )


def _one_ref(sha256: str) -> tuple[str]:
    return (sha256,)


#: Person images in SQLite: each text in its own column.
PERSON_IMAGES_SPLIT: Final[SqlTable[PersonImage]] = SqlTable(
    name="person_images",
    id_column="image_id",
    columns=(
        "sha256",
        "mime_type",
        "token",
        "crop",
        "customer_id",
        "created_at",
        "expires_at",
    ),
    fixed=(),
    encode=_split_image_row,
    decode=_split_image,
    refs_column="sha256",
    refs_of=_one_ref,
)

#: Person images in PostgreSQL: the type and token in an escaped JSON document, the customer id
#: as a JSON string (:func:`customer_key`).
PERSON_IMAGES_PACKED: Final[SqlTable[PersonImage]] = SqlTable(
    name="person_images",
    id_column="image_id",
    columns=("sha256", "data", "crop", "customer_id", "created_at", "expires_at"),
    fixed=(),
    encode=_packed_image_row,
    decode=_packed_image,
    refs_column="sha256",
    refs_of=_one_ref,
)


def _person_to_json(person: Person | None) -> list[str | None] | None:
    return None if person is None else [person.sha256, person.mime_type, person.url]


def _person_from_json(row: list[Any] | None) -> Person | None:
    return None if row is None else Person(row[0], row[1], row[2])


def _snapshot_to_json(snapshot: ProductSnapshot) -> list[Any]:
    return [
        snapshot.external_id,
        snapshot.title,
        snapshot.description,
        image_rows(snapshot.images),
    ]


def _snapshot_from_json(row: list[Any]) -> ProductSnapshot:
    return ProductSnapshot(row[0], row[1], row[2], _images_from_json(row[3]))


def _people_to_json(generation: Generation) -> dict[str, Any]:
    return {
        "person": _person_to_json(generation.person),
        "result": _person_to_json(generation.result),
        # Read by the purge only: the blobs of the product snapshot's uploaded images (T15).
        "uploads": sorted(generation.product.blob_refs),
    }


def _refs_of_people(people: dict[str, Any]) -> set[str]:
    """Every blob a generation refers to (its person, result and product snapshot), from JSON."""
    refs = set(people.get("uploads", ()))
    for key in ("person", "result"):
        person = people[key]
        if person is not None and person[0] is not None:
            refs.add(person[0])
    return refs


def _generation_times(generation: Generation) -> tuple[Any, ...]:
    return (
        generation.keep_for_days,
        to_epoch_ms(generation.created_at),
        to_epoch_ms(generation.processing_at),
        _ms_or_none(generation.finished_at),
    )


def _generation(
    row: Sequence[Any],
    data: dict[str, Any],
    customer_id: str | None,
    watermark: Any,
    times: int,
    expires_at: int,
) -> Generation:
    """Return a generation of a row whose times start at column ``times``, its texts in ``data``."""
    person = _person_from_json(data["person"])
    assert person is not None
    return Generation(
        account=row[0],
        generation_id=row[1],
        product=_snapshot_from_json(data["product"]),
        person=person,
        customer_id=customer_id,
        watermark=bool(watermark),
        keep_for_days=row[times],
        created_at=from_epoch_ms(row[times + 1]),
        processing_at=from_epoch_ms(row[times + 2]),
        finished_at=_dt_or_none(row[times + 3]),
        outcome=data["outcome"],
        result=_person_from_json(data["result"]),
        error_code=data["error_code"],
        error_message=data["error_message"],
        token=data["token"],
        expires_at=from_epoch_ms(expires_at),
    )


def _split_generation_row(generation: Generation) -> tuple[Any, ...]:
    return (
        generation.account,
        generation.generation_id,
        _dumps(_snapshot_to_json(generation.product)),
        _dumps(_people_to_json(generation)),
        generation.customer_id,
        int(generation.watermark),
        *_generation_times(generation),
        generation.outcome,
        generation.error_code,
        generation.error_message,
        generation.token,
        to_epoch_ms(generation.expires_at),
    )


def _split_generation(row: Sequence[Any]) -> Generation:
    data = loads(row[3])
    data["product"] = loads(row[2])
    data["outcome"], data["error_code"], data["error_message"], data["token"] = row[10:14]
    return _generation(row, data, row[4], row[5], 6, row[14])


def _packed_generation_row(generation: Generation) -> tuple[Any, ...]:
    data = {
        "product": _snapshot_to_json(generation.product),
        **_people_to_json(generation),
        "outcome": generation.outcome,
        "error_code": generation.error_code,
        "error_message": generation.error_message,
        "token": generation.token,
    }
    return (
        generation.account,
        generation.generation_id,
        _escaped(data),
        customer_key(generation.customer_id),
        generation.watermark,
        *_generation_times(generation),
        to_epoch_ms(generation.expires_at),
    )


def _packed_generation(row: Sequence[Any]) -> Generation:
    return _generation(row, loads(row[2]), _customer_of(row[3]), row[4], 5, row[9])


_GENERATION_TIMES: Final = ("keep_for_days", "created_at", "processing_at", "finished_at")

#: Generations in SQLite: the product snapshot and the person and result snapshots as JSON
#: (``product``, ``images``), every other text in its own column.
GENERATIONS_SPLIT: Final[SqlTable[Generation]] = SqlTable(
    name="generations",
    id_column="generation_id",
    columns=(
        "product",
        "images",
        "customer_id",
        "watermark",
        *_GENERATION_TIMES,
        "outcome",
        "error_code",
        "error_message",
        "token",
        "expires_at",
    ),
    fixed=(),
    encode=_split_generation_row,
    decode=_split_generation,
    refs_column="images",
    refs_of=lambda images: _refs_of_people(json.loads(images)),
)

#: Generations in PostgreSQL: every text in one escaped JSON document, the customer id as a JSON
#: string (:func:`customer_key`).
GENERATIONS_PACKED: Final[SqlTable[Generation]] = SqlTable(
    name="generations",
    id_column="generation_id",
    columns=("data", "customer_id", "watermark", *_GENERATION_TIMES, "expires_at"),
    fixed=(),
    encode=_packed_generation_row,
    decode=_packed_generation,
    refs_column="data",
    refs_of=lambda data: _refs_of_people(json.loads(data)),
)


def _credits_row(credits: Credits) -> tuple[Any, ...]:
    refunds = [to_epoch_ms(moment) for moment in credits.refunds]
    return (credits.account, CREDITS_ID, credits.balance, _dumps(refunds))


def _credits(row: Sequence[Any]) -> Credits:
    return Credits(row[0], row[2], tuple(from_epoch_ms(ms) for ms in loads(row[3])))


def _no_refs(value: object) -> tuple[str, ...]:
    return ()


#: Credit balances, the same in both: a 64-bit balance, pending refund times as a JSON list of
#: milliseconds.
CREDIT_ROWS: Final[SqlTable[Credits]] = SqlTable(
    name="credits",
    id_column="id",
    columns=("balance", "refunds"),
    fixed=(),
    encode=_credits_row,
    decode=_credits,
    refs_column=None,
    refs_of=_no_refs,
)
