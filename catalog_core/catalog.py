"""The catalog's use cases: upsert, use, get, list, delete, purge; the one reader of the clock."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeGuard, TypeVar, cast

from catalog_core._unset import UNSET
from catalog_core.commands import (
    ANY_VERSION,
    AnyVersion,
    ProductFields,
    UpsertCommand,
    UseCommand,
)
from catalog_core.errors import (
    CatalogError,
    Detail,
    MultipartFileNotFound,
    ProductNotFound,
    ValidationFailed,
)
from catalog_core.images import Blob, make_blob
from catalog_core.limits import Limits
from catalog_core.model import (
    MAX_WARNINGS,
    Image,
    Page,
    PayloadWarning,
    Product,
    ProductRow,
    Upload,
    UpsertResult,
    UseResult,
    from_epoch_ms,
    product_row,
    truncate_to_ms,
)
from catalog_core.repository.base import Change, Repository, Write
from catalog_core.rules import (
    check_version,
    given_fields,
    live,
    merge_fields,
    new_one_shot_id,
    use,
    write_time,
)
from catalog_core.wire.decode import (
    check_account,
    check_external_id,
    check_request_size,
    decode_try_on,
    decode_upsert,
    fast_fields,
    load_body,
    load_plain_body,
)

__all__ = [
    "ANY_VERSION",
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "AnyVersion",
    "Catalog",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: :meth:`Catalog.upsert_many` writes a batch once its payloads reach this many bytes.
DEFAULT_BATCH_BYTES = 8 * 2**20


#: What ``if_version`` takes: one version, a collection of them, or :data:`ANY_VERSION`.
ExpectedVersion = int | Collection[int] | AnyVersion


def _utc_now() -> datetime:
    """The default clock: the system's time, already in whole milliseconds (see ``Catalog.now``)."""
    return from_epoch_ms(time.time_ns() // 1_000_000)


class _OneShotIdTaken(Exception):
    """A freshly drawn one-shot id is already live; draw another."""


class Catalog:
    """A product catalog on a repository: every rule of the rule book, for any number of accounts.

    Args:
        repository: where products live (:class:`~catalog_core.MemoryRepository`,
            :class:`~catalog_core.SQLiteRepository` or any implementation of the contract).
        clock: returns the current time as an aware ``datetime``; read once per operation and
            truncated to whole milliseconds.
        limits: the sizes to enforce (R33).

    Every method raises :class:`~catalog_core.CatalogError` for bad input, and changes nothing
    when it raises.
    """

    def __init__(
        self,
        repository: Repository,
        *,
        clock: Callable[[], datetime] = _utc_now,
        limits: Limits | None = None,
    ) -> None:
        self.repository = repository
        self.limits = Limits() if limits is None else limits
        self._clock = clock
        self._cursor_key: bytes | None = None
        # For a repository without cursor_secret(): cursors then live as long as this Catalog.
        self._own_secret = os.urandom(32)

    def now(self) -> datetime:
        """Return the catalog's current time, UTC, truncated to whole milliseconds."""
        clock = self._clock
        if clock is _utc_now:  # made whole: ``datetime.now`` then truncated took twice as long
            return _utc_now()
        return truncate_to_ms(clock())

    def _write_time(self, stored: Product | None, now: datetime | None = None) -> datetime:
        """Return the time of a write, read while the repository holds the key's lock.

        Reading the clock before the lock would let a writer that read it earlier commit later,
        and a product's timestamps would go backwards (R11, R19); :func:`rules.write_time
        <catalog_core.rules.write_time>` keeps it from going back past the stored product's
        own. ``now``: the time of the transaction, already read.
        """
        return write_time(self.now() if now is None else now, stored)

    # -- writes -----------------------------------------------------------------------------

    def upsert(
        self,
        account: str,
        payload: Mapping[str, Any] | bytes | str,
        files: Mapping[str, Upload] | None = None,
        if_version: ExpectedVersion | None = None,
    ) -> UpsertResult:
        """Create or update the product the payload names (R4-R18).

        Args:
            account: the tenant.
            payload: the JSON object, or the raw JSON body as ``bytes`` or ``str``.
            files: the file parts of a multipart request, by part name (R14, R32).
            if_version: the version the caller expects the product to have (R28), a
                collection of versions any of which will do (an empty one never matches), or
                :data:`ANY_VERSION` for "it must exist" (an update that never creates).

        Returns:
            The product after the write, whether it was created, and the payload's warnings.

        Raises:
            CatalogError: in the order of R30; nothing is written.
        """
        account = check_account(account)
        if_version = _check_version(if_version)
        return self._write_upsert(account, self._prepare_upsert(payload, files), if_version)

    def apply_upsert(
        self,
        account: str,
        command: UpsertCommand,
        *,
        files: Mapping[str, Upload] | None = None,
        if_version: ExpectedVersion | None = None,
    ) -> UpsertResult:
        """Create or update a product from a typed command: :meth:`upsert` without the JSON.

        Args:
            account: the tenant.
            command: the upsert; its ``UNSET`` fields keep their stored value (R6).
            files: the uploads its images name by ``file_key`` (R14, R32).
            if_version: as for :meth:`upsert` (R28).

        Returns:
            The product after the write and whether it was created (no payload warnings: a
            command has no deprecated shapes or unknown fields; unused files still warn).

        Raises:
            CatalogError: every check of the same upsert sent as JSON, with the same codes,
                messages and wire-named detail paths (``images.0.source.url``), in the order of
                R30; nothing is written.
        """
        account = check_account(account)
        if_version = _check_version(if_version)
        uploads = _check_files(files)
        check_request_size(_files_bytes(uploads), self.limits)
        from catalog_core.wire import check as wire_check  # typed entries: loaded on first use

        checked = wire_check.check_upsert_command(command, self.limits)
        return self._write_upsert(
            account, self._prepared(checked, uploads, _NO_WARNINGS), if_version
        )

    def _write_upsert(
        self,
        account: str,
        prepared: _PreparedUpsert,
        if_version: int | frozenset[int] | AnyVersion | None,
    ) -> UpsertResult:
        product = self.repository.write(
            account, prepared.external_id, prepared.change(account, if_version)
        )
        return prepared.result(_written(product))

    def upsert_many(
        self,
        account: str,
        payloads: Iterable[Mapping[str, Any] | bytes | str],
        *,
        batch_size: int = 500,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        restore: bool = False,
    ) -> Iterator[UpsertResult | CatalogError]:
        """Upsert many payloads, ``batch_size`` of them per transaction (a bulk import).

        Each payload is its own upsert under the rules of :meth:`upsert`: a payload that is
        refused changes nothing and the others still apply, and a later payload naming the same
        id sees the earlier one's result. Payloads are read lazily, a batch at a time, and a
        batch is bounded by bytes as well as by count, so an import of any size, of lines of any
        size, runs in constant memory. The clock is read once per batch, inside its
        transaction, so the writes of a batch share one time (never earlier than a stored
        product's own).

        Args:
            account: the tenant of every payload.
            payloads: JSON objects, or raw JSON bodies as ``bytes`` or ``str``.
            batch_size: payloads per transaction, at least 1. On a repository without
                ``write_many`` (:class:`~catalog_core.BatchRepository`) each payload is written
                by itself.
            batch_bytes: a batch is also written as soon as its payloads reach this many bytes
                (8 MiB by default; the length of a ``str``), so that large payloads are not
                held 500 at a time; a larger payload is a batch of its own. A mapping counts
                toward ``batch_size`` only.
            restore: also take export records (:mod:`catalog_core.transfer`, what
                ``catalog-core export`` writes): each is stored as it was exported, fields,
                timestamps and version, over whatever its key holds, rather than upserted.
                A record is checked whole (its values, ``expiresAt`` as R19 makes it, its
                uploads' types and hashes) and may be twice the request limit, for its base64
                uploads. Its result's ``created`` says whether no live product had its key.

        Yields:
            For each payload in order, its :class:`~catalog_core.UpsertResult`, or the
            :class:`~catalog_core.CatalogError` that refused it. A result is yielded once its
            batch has committed.

        Raises:
            ValidationFailed: at ``account``, ``batchSize`` or ``batchBytes``, before anything
                is read.
        """
        account = check_account(account)
        if not _positive_int(batch_size):
            raise ValidationFailed.at("batchSize", "must be a positive integer")
        if not _positive_int(batch_bytes):
            raise ValidationFailed.at("batchBytes", "must be a positive integer")
        return self._upsert_batches(account, payloads, batch_size, batch_bytes, restore)

    def _upsert_batches(
        self,
        account: str,
        payloads: Iterable[Mapping[str, Any] | bytes | str],
        batch_size: int,
        batch_bytes: int,
        restore: bool,
    ) -> Iterator[UpsertResult | CatalogError]:
        write_many = getattr(self.repository, "write_many", None)
        batch: list[_Prepared | CatalogError] = []
        held = 0
        for payload in payloads:
            # What a prepared upsert keeps (its fields, its warnings' paths) is at most a small
            # multiple of its payload's size: bounding the payloads' bytes bounds the batch.
            held += len(payload) if isinstance(payload, bytes | bytearray | memoryview | str) else 0
            try:
                batch.append(
                    self._prepare_restore(account, payload)
                    if restore and _names_export_marker(payload)
                    else self._prepare_upsert(payload, None)
                )
            except CatalogError as exc:
                # Kept without its traceback, whose frames hold the payload and its parsed body.
                batch.append(exc.with_traceback(None))
            del payload  # not kept while the next one is read
            if len(batch) == batch_size or held >= batch_bytes:
                yield from self._write_batch(account, batch, write_many)
                batch, held = [], 0
        if batch:
            yield from self._write_batch(account, batch, write_many)

    def _write_batch(
        self,
        account: str,
        batch: list[_Prepared | CatalogError],
        write_many: Callable[[str, list[tuple[str, Change]]], list[Any]] | None,
    ) -> list[UpsertResult | CatalogError]:
        prepared = [p for p in batch if not isinstance(p, CatalogError)]
        outcomes: list[Any]
        if write_many is not None:
            # One transaction: the clock is read once, by its first write, under the lock.
            clock = _TransactionClock(self)
            outcomes = write_many(
                account, [(p.external_id, p.change(account, clock=clock)) for p in prepared]
            )
        else:
            outcomes = []
            for p in prepared:
                try:
                    outcome = self.repository.write(account, p.external_id, p.change(account))
                except CatalogError as exc:
                    outcomes.append(exc.with_traceback(None))  # its frames hold the batch
                else:
                    outcomes.append(outcome)
        done = iter(zip(prepared, outcomes, strict=True))
        results: list[UpsertResult | CatalogError] = []
        for item in batch:
            if isinstance(item, CatalogError):
                results.append(item)
                continue
            p, outcome = next(done)
            if isinstance(outcome, CatalogError):
                results.append(outcome)
            elif isinstance(outcome, Product):
                results.append(p.result(outcome))
            else:  # pragma: no cover - a change that raised anything else is a defect
                raise outcome if isinstance(outcome, Exception) else TypeError(repr(outcome))
        return results

    def _prepare_restore(self, account: str, payload: Mapping[str, Any] | bytes | str) -> _Prepared:
        """Check an export record; a payload that only names the marker is upserted."""
        from catalog_core import transfer  # export records: loaded on first use

        restore = transfer.read_export_record(payload, self.limits, account=account, now=self.now())
        if restore is None:
            return self._prepare_upsert(payload, None)
        return _PreparedRestore(self, restore)

    def _prepare_upsert(
        self, payload: Mapping[str, Any] | bytes | str, files: Mapping[str, Upload] | None
    ) -> _PreparedUpsert:
        """Check and decode an upsert outside any transaction (R30 up to the stored state)."""
        uploads = _check_files(files)
        body, plain = load_plain_body(payload, self.limits, files_bytes=_files_bytes(uploads))
        owned = body is not payload
        if not uploads:
            # The common body (canonical, valid, no file part): its fields and images straight,
            # no command to build and keep (tests/test_fast_paths.py checks it is the same).
            fields = fast_fields(body, self.limits, owned=owned, plain=plain)
            if fields is not None:
                external_id, title, description, metadata, days, images = fields
                return _PreparedUpsert(
                    self,
                    (title, description, metadata, days, UNSET),
                    external_id,
                    None if images is UNSET else images,
                    (),
                    _NO_WARNINGS,
                )
        command, warnings, count = decode_upsert(body, self.limits, owned=owned)
        return self._prepared(command, uploads, _NO_WARNINGS.extended(warnings, count))

    def _prepared(
        self, command: UpsertCommand, uploads: Mapping[str, Upload], warnings: _Warnings
    ) -> _PreparedUpsert:
        """Resolve a checked upsert's images: what waits for the transaction."""
        images, blobs, file_warnings = self._resolve_images(command, uploads)
        return _PreparedUpsert(
            self,
            given_fields(command),
            # Checking refuses a missing id on an upsert (R30): a checked upsert has one.
            cast(str, command.external_id),
            images,
            blobs,
            warnings.extended(file_warnings),
        )

    def use(
        self,
        account: str,
        item: Mapping[str, Any] | bytes | str,
        files: Mapping[str, Upload] | None = None,
    ) -> UseResult:
        """Apply one try-on product item and record the use (R22).

        A reference (``{externalId}`` alone) needs a live product; an inline item upserts it; an
        item without ``externalId`` creates a one-shot product with a generated id.

        Raises:
            CatalogError: nothing is written.
        """
        account = check_account(account)
        uploads = _check_files(files)
        body = load_body(item, self.limits, files_bytes=_files_bytes(uploads))
        return self._use(account, body, uploads, prefix="", warnings=_NO_WARNINGS)

    def try_on(
        self,
        account: str,
        body: Mapping[str, Any] | bytes | str,
        files: Mapping[str, Upload] | None = None,
    ) -> UseResult:
        """Apply the product part of a whole ``POST /try-on`` body (R22).

        ``products`` must hold exactly one item; the deprecated single ``product`` object is
        accepted with a warning. Detail and warning paths start at the body (``products.0.title``).

        Raises:
            CatalogError: nothing is written.
        """
        account = check_account(account)
        uploads = _check_files(files)
        item, prefix, warnings = decode_try_on(
            load_body(body, self.limits, files_bytes=_files_bytes(uploads))
        )
        return self._use(
            account, item, uploads, prefix=prefix, warnings=_NO_WARNINGS.extended(warnings)
        )

    def _use(
        self,
        account: str,
        body: Mapping[str, Any],
        uploads: Mapping[str, Upload],
        *,
        prefix: str,
        warnings: _Warnings,
    ) -> UseResult:
        """Decode a product item: the account, files, size and JSON are already checked."""
        command, item_warnings, count = decode_upsert(
            body, self.limits, for_use=True, prefix=prefix
        )
        return self._apply_use(account, command, uploads, warnings.extended(item_warnings, count))

    def apply_use(
        self,
        account: str,
        command: UseCommand,
        *,
        files: Mapping[str, Upload] | None = None,
    ) -> UseResult:
        """Apply a typed try-on product item and record the use: :meth:`use` without the JSON.

        Raises:
            CatalogError: every check of the same item sent as JSON, with the same codes,
                messages and detail paths, in the order of R30; nothing is written.
        """
        account = check_account(account)
        uploads = _check_files(files)
        check_request_size(_files_bytes(uploads), self.limits)
        from catalog_core.wire import check as wire_check  # typed entries: loaded on first use

        checked = wire_check.check_use_command(command, self.limits)
        return self._apply_use(account, checked, uploads, _NO_WARNINGS)

    def _apply_use(
        self,
        account: str,
        command: UpsertCommand | UseCommand,
        uploads: Mapping[str, Upload],
        warnings: _Warnings,
    ) -> UseResult:
        """Apply a checked product item (R22)."""
        images, blobs, file_warnings = self._resolve_images(command, uploads)
        warnings = warnings.extended(file_warnings)
        external_id = command.external_id

        if external_id is None:
            return self._use_one_shot(account, command, images, blobs, warnings)

        created = False

        def change(stored: Product | None) -> Write:
            nonlocal created
            now = self._write_time(stored)
            existing = live(stored, now)
            product = use(existing, command, images, now, account=account, external_id=external_id)
            created = existing is None
            return Write(product, blobs)

        product = _written(self.repository.write(account, external_id, change))
        return UseResult(product, created, *warnings.result())

    def _use_one_shot(
        self,
        account: str,
        command: ProductFields,
        images: tuple[Image, ...] | None,
        blobs: tuple[Blob, ...],
        warnings: _Warnings,
    ) -> UseResult:
        while True:
            external_id = new_one_shot_id()

            def change(stored: Product | None, external_id: str = external_id) -> Write:
                now = self._write_time(stored)
                if live(stored, now) is not None:
                    raise _OneShotIdTaken
                product = use(
                    None,
                    command,
                    images,
                    now,
                    account=account,
                    external_id=external_id,
                    one_shot=True,
                )
                return Write(product, blobs)

            try:
                product = _written(self.repository.write(account, external_id, change))
            except _OneShotIdTaken:  # pragma: no cover - 36**24 ids make this a formality
                continue
            return UseResult(product, True, *warnings.result())

    def delete(
        self,
        account: str,
        external_id: str,
        if_version: ExpectedVersion | None = None,
    ) -> None:
        """Delete a live product (R25).

        ``if_version`` is the version the caller expects, a collection of acceptable versions, or
        :data:`ANY_VERSION` (which adds nothing: a delete needs a live product anyway), as for
        :meth:`upsert`.

        Raises:
            ProductNotFound: no live product has that id.
            VersionConflict: ``if_version`` is not the product's version (R28).
            ValidationFailed: the account, id or version is malformed.
        """
        account = check_account(account)
        external_id = _check_id(external_id, self.limits)
        if_version = _check_version(if_version)

        def change(stored: Product | None) -> Write:
            existing = live(stored, self._write_time(stored))
            if existing is None:
                raise ProductNotFound.for_id(external_id)
            check_version(existing, if_version, external_id)
            return Write(None)

        self.repository.write(account, external_id, change)

    def purge_expired(self) -> int:
        """Delete the products expired now and unreferenced blobs; return the count (R21)."""
        return self.repository.purge_expired(self.now())

    # -- reads ------------------------------------------------------------------------------

    def get(self, account: str, external_id: str) -> Product:
        """Return the live product (R23).

        Raises:
            ProductNotFound: no live product of the account has that id.
            ValidationFailed: the account or id is malformed.
        """
        account = check_account(account)
        external_id = _check_id(external_id, self.limits)
        product = live(self.repository.get(account, external_id), self.now())
        if product is None:
            raise ProductNotFound.for_id(external_id)
        return product

    def list(
        self,
        account: str,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        *,
        prefix: str | None = None,
    ) -> Page:
        """Return one page of the account's live products in code-point order of id (R24).

        Args:
            account: the tenant.
            limit: the page size, 1-200.
            cursor: ``next_cursor`` of the previous page, or ``None`` for the first.
            prefix: only the ids that start with it (an extension of the stand-in, which the
                public API does not have); its pages cost what R24's do, whatever the catalog's
                size.

        Raises:
            ValidationFailed: at ``limit``, ``cursor`` or ``prefix`` (which must be a valid id,
                R2).
        """
        walk = self._listing(account, limit, cursor, prefix)
        products = walk.page(self.repository.list_live, walk.first, _external_id)
        has_more = len(products) > limit
        items = tuple(products[:limit])
        return Page(items, walk.cursor(items[-1].external_id) if has_more else None, has_more)

    def list_json(
        self,
        account: str,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        *,
        prefix: str | None = None,
    ) -> bytes:
        """Return the response body of :meth:`list`'s page: the page's wire form as JSON (R24).

        The bytes of ``page_to_wire_json(list(...))``. On a repository that lists rows (a
        :class:`~catalog_core.repository.base.RowListingRepository`, as SQLite's) the page is
        written from them, making no ``Product``: the server's listing takes this.

        Raises:
            ValidationFailed: as :meth:`list`.
        """
        from catalog_core.wire import encode  # the wire encoder: loaded on first use

        list_rows = (
            self.repository.list_live_rows  # type: ignore[attr-defined]
            if _lists_rows(type(self.repository))
            else None
        )
        if list_rows is None:
            return encode.page_to_wire_json(self.list(account, limit, cursor, prefix=prefix))
        walk = self._listing(account, limit, cursor, prefix)
        first = None if walk.first is None else product_row(walk.first)
        rows: list[ProductRow] = walk.page(list_rows, first, _row_id)
        has_more = len(rows) > limit
        del rows[limit:]
        return encode.rows_page_json(rows, walk.cursor(rows[-1][0]) if has_more else None, has_more)

    def _listing(
        self, account: str, limit: int, cursor: str | None, prefix: str | None
    ) -> _Listing:
        """Check a listing's arguments; return where its page starts (R24)."""
        account = check_account(account)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValidationFailed.at("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        if prefix is not None:
            problems = check_external_id(prefix, self.limits, path="prefix")
            if problems:
                raise ValidationFailed.of(problems)
        from catalog_core import cursor as cursors  # listing: loaded on first use, with hmac

        key = self._listing_key()
        after = None if cursor is None else cursors.decode_cursor(account, cursor, key)
        now = self.now()
        first = None
        if prefix is not None and (after is None or after < prefix):
            # Every id that starts with the prefix sorts at or after it: the walk starts there.
            found = self.repository.get(account, prefix)
            if found is not None and not found.one_shot and not found.is_expired(now):
                first = found
            after = prefix
        return _Listing(account, after, now, first, key, limit, prefix)

    def _listing_key(self) -> bytes:
        """Return the key of this catalog's cursors.

        It comes from the repository's ``cursor_secret()``, or, for a repository without it,
        from a secret of this Catalog's own.
        """
        key = self._cursor_key
        if key is None:
            from catalog_core import cursor as cursors

            secret = getattr(self.repository, "cursor_secret", None)
            key = cursors.cursor_key(self._own_secret if secret is None else secret())
            self._cursor_key = key
        return key

    # -- helpers ----------------------------------------------------------------------------

    def _resolve_images(
        self, command: ProductFields, files: Mapping[str, Upload]
    ) -> tuple[tuple[Image, ...] | None, tuple[Blob, ...], tuple[PayloadWarning, ...]]:
        """Turn image inputs into stored images and checked blobs (R14, R15, R32)."""
        if not files and command.images is not UNSET:
            # URLs only and no file parts: every JSON body, and so the sqlite_upsert and
            # sqlite_bulk benchmark cases, take this path (tests/test_fast_paths.py checks it
            # agrees with the general one below). One loop, which stops at a file key.
            resolved = []
            for order, entry in enumerate(command.images):
                if entry.file_key is not None:
                    break
                resolved.append(Image(entry.url, order, entry.classifications))  # type: ignore[arg-type]
            else:
                return tuple(resolved), (), ()
        used = set(command.file_keys)
        warnings = tuple(
            PayloadWarning("UNUSED_FILE", name, "no image names this file part; it was ignored")
            for name in files
            if name not in used
        )
        if command.images is UNSET:
            return None, (), warnings
        missing = [i for i in command.images if i.file_key is not None and i.file_key not in files]
        if missing:
            raise MultipartFileNotFound(
                f"No file part named '{missing[0].file_key}' in the request.",
                [
                    Detail(f"{i.path}.fileKey", f"no file part named '{i.file_key}'")
                    for i in missing
                ],
            )
        blobs: dict[str, Blob] = {}
        images: list[Image] = []
        for order, entry in enumerate(command.images):
            if entry.file_key is None:
                # An image input has exactly one of url and fileKey (R12, checked by decoding).
                images.append(Image(cast(str, entry.url), order, entry.classifications))
                continue
            blob = blobs.get(entry.file_key)
            if blob is None:
                try:
                    blob = make_blob(
                        entry.file_key,
                        files[entry.file_key].data,
                        max_bytes=self.limits.max_file_bytes,
                    )
                except CatalogError as exc:
                    exc.details = (Detail(f"{entry.path}.fileKey", exc.message),)
                    raise
                blobs[entry.file_key] = blob
            images.append(Image(blob.source_url, order, entry.classifications))
        return tuple(images), tuple(blobs.values()), warnings


@functools.cache
def _lists_rows(kind: type) -> bool:
    """Whether a repository of ``kind`` lists rows that are its ``list_live``'s (R24).

    Only when the class that defines its ``list_live`` defines ``list_live_rows`` too: a
    subclass that lists products its own way, and does not list rows too, is read as products.
    """
    for cls in kind.__mro__:
        if "list_live" in vars(cls) or "list_live_rows" in vars(cls):
            return "list_live" in vars(cls) and "list_live_rows" in vars(cls)
    return False


def _external_id(product: Product) -> str:
    return product.external_id


def _row_id(row: ProductRow) -> str:
    return row[0]


_Item = TypeVar("_Item")


class _Listing:
    """Where a listing's page starts: checked arguments, the time, and the prefix's own product."""

    __slots__ = ("account", "after", "first", "key", "limit", "now", "prefix")

    def __init__(
        self,
        account: str,
        after: str | None,
        now: datetime,
        first: Product | None,
        key: bytes,
        limit: int,
        prefix: str | None,
    ) -> None:
        self.account = account
        self.after = after
        self.now = now
        #: The product whose id is the prefix, when it is live, listed and on this page.
        self.first = first
        self.key = key
        self.limit = limit
        self.prefix = prefix

    def page(
        self,
        list_live: Callable[..., Sequence[_Item]],
        first: _Item | None,
        id_of: Callable[[_Item], str],
    ) -> list[_Item]:
        """Return up to ``limit + 1`` items of the page, by ``list_live`` (products or rows).

        ``first`` is the prefix's own product as such an item; one more item than the page
        holds says that there are more (R24).
        """
        items: list[_Item] = [] if first is None else [first]
        items.extend(list_live(self.account, after=self.after, limit=self.limit + 1, now=self.now))
        prefix = self.prefix
        if prefix is not None:
            items = [item for item in items[: self.limit + 1] if id_of(item).startswith(prefix)]
        return items

    def cursor(self, last_id: str) -> str:
        """Return the cursor of the page after the one that ends at ``last_id``."""
        from catalog_core import cursor as cursors

        return cursors.encode_cursor(self.account, last_id, self.key)


class _Warnings:
    """The first :data:`~catalog_core.model.MAX_WARNINGS` warnings of a request, and their count."""

    __slots__ = ("count", "kept")

    def __init__(self, kept: tuple[PayloadWarning, ...] = (), count: int = 0) -> None:
        self.kept = kept
        self.count = count

    def extended(self, more: tuple[PayloadWarning, ...], count: int | None = None) -> _Warnings:
        """Return these warnings followed by ``more``, of which there were ``count`` in all."""
        if not more and not count:
            return self  # the common case: nothing to add, nothing to copy
        total = self.count + (len(more) if count is None else count)
        return _Warnings((self.kept + more[:MAX_WARNINGS])[:MAX_WARNINGS], total)

    def result(self) -> tuple[tuple[PayloadWarning, ...], int]:
        """The warnings and the count, as a result takes them."""
        return self.kept, self.count


_NO_WARNINGS: Final = _Warnings()


class _TransactionClock:
    """The time of one transaction of many writes: read by the first, then the same for all."""

    __slots__ = ("catalog", "now")

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        if self.now is None:
            self.now = self.catalog.now()
        return self.now


class _PreparedUpsert:
    """A checked, decoded upsert waiting for its transaction: what :meth:`Catalog.upsert` writes."""

    __slots__ = (
        "account",
        "blobs",
        "catalog",
        "clock",
        "created",
        "external_id",
        "given",
        "if_version",
        "images",
        "warnings",
    )

    def __init__(
        self,
        catalog: Catalog,
        given: tuple[Any, ...],
        external_id: str,
        images: tuple[Image, ...] | None,
        blobs: tuple[Blob, ...],
        warnings: _Warnings,
    ) -> None:
        self.catalog = catalog
        #: The command's fields (``rules.given_fields``): the command itself is not kept.
        self.given = given
        self.external_id = external_id
        self.images = images
        self.blobs = blobs
        self.warnings = warnings
        self.created = False
        self.account = ""
        self.if_version: int | frozenset[int] | AnyVersion | None = None
        self.clock: _TransactionClock | None = None

    def change(
        self,
        account: str,
        if_version: int | frozenset[int] | AnyVersion | None = None,
        clock: _TransactionClock | None = None,
    ) -> Change:
        """Return the repository change: merge into the live product, then check the version.

        ``clock``: the clock of a transaction that holds several writes. An upsert is written
        once, so its change is a bound method of its own, not a closure: a bulk import holds a
        batch of them, and each closure was six more objects for the garbage collector to walk.
        """
        self.account, self.if_version, self.clock = account, if_version, clock
        return self._change

    def _change(self, stored: Product | None) -> Write:
        clock = self.clock
        now = self.catalog._write_time(stored, None if clock is None else clock())
        existing = live(stored, now)
        product = merge_fields(
            existing,
            self.given,
            self.images,
            now,
            account=self.account,
            external_id=self.external_id,
        )
        check_version(existing, self.if_version, self.external_id)
        self.created = existing is None
        return Write(product, self.blobs)

    def result(self, product: Product) -> UpsertResult:
        """Return the upsert's result once ``product`` is stored."""
        warnings = self.warnings
        return UpsertResult(product, self.created, warnings.kept, warnings.count)


class _PreparedRestore:
    """A checked export record waiting for its transaction: stored as it is, over its key."""

    __slots__ = ("catalog", "created", "external_id", "restore")

    def __init__(self, catalog: Catalog, restore: Any) -> None:
        self.catalog = catalog
        self.restore = restore
        self.external_id: str = restore.product.external_id
        self.created = False

    def change(self, account: str, clock: _TransactionClock | None = None) -> Change:
        """Return the repository change; ``created`` when no live product had the key."""
        from catalog_core.transfer import restore_change

        read: list[datetime] = []

        def now() -> datetime:  # read once, inside the transaction
            if not read:
                read.append(self.catalog.now() if clock is None else clock())
            return read[0]

        store = restore_change(self.restore, now)

        def change(stored: Product | None) -> Write:
            self.created = live(stored, now()) is None
            return store(stored)

        return change

    def result(self, product: Product) -> UpsertResult:
        """Return the restore's result once ``product`` is stored."""
        return UpsertResult(product, self.created)


#: What waits for a batch's transaction: an upsert, or a restored export record.
_Prepared = _PreparedUpsert | _PreparedRestore


def _names_export_marker(payload: Mapping[str, Any] | bytes | str) -> bool:
    from catalog_core.transfer import is_export_record

    return is_export_record(payload)


def _written(product: Product | None) -> Product:
    """Return the product a write stored; a repository that answers ``None`` breaks the contract."""
    if product is None:
        raise RuntimeError("the repository returned no product for a write that stored one")
    return product


def _check_version(value: object) -> int | frozenset[int] | AnyVersion | None:
    """Return ``if_version`` checked: ``None``, ``ANY_VERSION``, a positive int, or a frozenset."""
    if value is None or value is ANY_VERSION:
        return value
    if _positive_int(value):
        return value
    if isinstance(value, Collection) and not isinstance(value, str | bytes | bytearray | Mapping):
        versions = list(value)
        if all(_positive_int(v) for v in versions):
            return frozenset(versions)
    raise ValidationFailed.at(
        "ifVersion",
        "must be a positive integer, a collection of positive integers, or ANY_VERSION",
    )


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_id(external_id: object, limits: Limits) -> str:
    details = check_external_id(external_id, limits)
    if details or not isinstance(external_id, str):  # not a str: check_external_id said so
        raise ValidationFailed.of(details)
    return external_id


def _check_files(files: object) -> dict[str, Upload]:
    if files is None:
        return {}
    if not isinstance(files, Mapping):
        raise ValidationFailed.at("files", "must map part names to uploads")
    checked: dict[str, Upload] = {}
    for name, upload in files.items():
        if not isinstance(name, str) or not name:
            raise ValidationFailed.at("files", "part names must be non-empty strings")
        if isinstance(upload, bytes | bytearray):
            upload = Upload(bytes(upload))
        if not isinstance(upload, Upload) or not isinstance(upload.data, bytes | bytearray):
            raise ValidationFailed.at(f"files.{name}", "must be an Upload holding bytes")
        checked[name] = upload
    return checked


def _files_bytes(files: Mapping[str, Upload]) -> int:
    """The bytes of a request's file parts, which count toward its size (R33)."""
    if not files:  # a JSON body: no generator to run
        return 0
    return sum(len(f.data) for f in files.values())
