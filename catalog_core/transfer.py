"""Export and copy: a whole catalog out of one store and into another, nothing lost.

An **export record** is one product as it is stored: its wire form (R31), its version (R28) and
the bytes of the uploads its images name (R15), base64, so a record needs nothing else to be
restored. ``catalog-core export`` writes one per line; ``catalog-core import`` (through
:meth:`Catalog.upsert_many <catalog_core.Catalog.upsert_many>` with ``restore=True``) restores
each as it was: same fields, timestamps and version, not an upsert. ::

    {"catalogCoreExport": 1, "version": 3, "product": {"externalId": "shirt-42", ...},
     "uploads": {"<sha256>": "<base64>"}}

:func:`copy` moves every live product of every account, with its blobs, from one repository to
another, in batches, straight from store to store. Both walk the store in key order
(:class:`~catalog_core.repository.base.ScanRepository`), so memory stays flat whatever the
catalog's size. Expired products are not moved (they are gone for every read, R20), nor is the
try-on flow's state (person images, generations, credits).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final, cast

import attrs

from catalog_core.errors import CatalogError, Detail, ValidationFailed
from catalog_core.images import Blob, make_blob
from catalog_core.limits import Limits
from catalog_core.model import Product
from catalog_core.repository.base import Change, Repository, ScanRepository, Write
from catalog_core.rules import expires_at
from catalog_core.wire.decode import check_external_id, decode_upsert, load_body

__all__ = [
    "DEFAULT_COPY_BYTES",
    "DEFAULT_PAGE_SIZE",
    "EXPORT_FORMAT",
    "EXPORT_MARKER",
    "MAX_RESTORED_VERSION",
    "CopyProgress",
    "Restore",
    "copy",
    "export_limits",
    "export_records",
    "is_export_record",
    "read_export_record",
    "restore_change",
    "scanner",
]

#: The key that marks an export record, and the version of the format it holds.
EXPORT_MARKER: Final = "catalogCoreExport"
EXPORT_FORMAT: Final = 1
#: A batch of :func:`copy` is written once its blobs reach this many bytes.
DEFAULT_COPY_BYTES: Final = 8 * 2**20
#: Products read and written at a time. A product at every limit takes up to about 2 MB of
#: memory once read (16 KiB of metadata of empty lists, say), so a page of them stays bounded.
DEFAULT_PAGE_SIZE: Final = 100
#: How many times a product whose blobs changed while they were read is read again.
_REREADS: Final = 10

_RECORD_KEYS: Final = frozenset((EXPORT_MARKER, "version", "product", "uploads"))
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
#: The highest version a record may restore: the most a JSON client reads exactly (2**53 - 1),
#: which leaves the writes after it far from what the stores hold (a signed 64-bit integer).
MAX_RESTORED_VERSION: Final = 2**53 - 1
#: A one-shot id, as the catalog makes them (R22c).
_ONE_SHOT_ID: Final = re.compile(r"_anon_[a-z0-9]{24}")
_MARKER_BYTES: Final = f'"{EXPORT_MARKER}"'.encode()


def scanner(repository: Repository) -> ScanRepository:
    """Return ``repository`` when it can walk every product (:class:`ScanRepository`).

    Raises:
        TypeError: it cannot; the message says what it lacks.
    """
    if isinstance(repository, ScanRepository):
        return repository
    raise TypeError(
        f"{type(repository).__name__} cannot walk its products: export and copy need "
        "scan_live() and count_live() (catalog_core.ScanRepository)"
    )


def export_limits(limits: Limits) -> Limits:
    """The limits an export record is read under: twice the request limit of ``limits``.

    A product's uploads came in one request (R14), so they fit the request limit; base64 makes
    them a third larger, and a record carries them with the product.
    """
    return attrs.evolve(limits, max_request_bytes=2 * limits.max_request_bytes)


def export_records(
    repository: Repository,
    account: str,
    *,
    now: datetime,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Iterator[dict[str, Any]]:
    """Yield the export record of every live product of ``account``, in id order.

    One-shot products (R22c) are included. Memory holds one page of products and one product's
    uploads at a time. A product rewritten during the walk is exported as it is when its
    uploads are read.

    Raises:
        ValidationFailed: at ``account`` or ``pageSize``, before anything is read.
        TypeError: ``repository`` cannot walk its products (:func:`scanner`).
    """
    from catalog_core.wire.decode import check_account
    from catalog_core.wire.encode import to_wire

    account = check_account(account)
    _check_positive("pageSize", page_size)
    store = scanner(repository)
    return _export(store, account, now, page_size, to_wire)


def _export(
    store: ScanRepository,
    account: str,
    now: datetime,
    page_size: int,
    to_wire: Callable[[Product], dict[str, Any]],
) -> Iterator[dict[str, Any]]:
    after: tuple[str, str] | None = None
    while True:
        page = store.scan_live(account=account, after=after, limit=page_size, now=now)
        for listed in page:
            current = _with_blobs(store, listed, now)
            if current is None:  # deleted, or expired, since the page was read
                continue
            product, blobs = current
            record: dict[str, Any] = {
                EXPORT_MARKER: EXPORT_FORMAT,
                "version": product.version,
                "product": to_wire(product),
            }
            if blobs:
                record["uploads"] = {
                    blob.sha256: base64.b64encode(blob.data).decode("ascii") for blob in blobs
                }
            yield record
        if len(page) < page_size:
            return
        after = (account, page[-1].external_id)


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed.at(name, "must be a positive integer")


def _with_blobs(
    store: Repository,
    product: Product,
    now: datetime,
    held: dict[tuple[str, str], Blob] | None = None,
) -> tuple[Product, tuple[Blob, ...]] | None:
    """Return ``product`` with the blobs its images name, or ``None`` when it is gone.

    A page is read before its products' blobs. A writer may replace a product in between and a
    purge then remove a blob the page's copy named: the product is then read again, as it is
    now, and moved so (a product that exists for the whole walk is moved once, in one of the
    states it had during the walk). ``held``: blobs read already, by account and SHA-256, to
    which this adds.
    """
    for _ in range(_REREADS):
        blobs = []
        for sha in sorted(product.blob_refs):
            key = (product.account, sha)
            blob = None if held is None else held.get(key)
            if blob is None:
                blob = store.get_blob(product.account, sha)
                if blob is None:
                    break
                if held is not None:
                    held[key] = blob
            blobs.append(blob)
        else:
            return product, tuple(blobs)
        fresh = store.get(product.account, product.external_id)
        if fresh is None or fresh.is_expired(now):
            return None
        product = fresh
    raise RuntimeError(
        f"the uploads of product {product.external_id!r} kept changing while they were read: "
        "run it again once writes to the product have settled"
    )


def is_export_record(payload: Mapping[str, Any] | bytes | str) -> bool:
    """Whether ``payload`` may be an export record: it names the marker (a cheap test).

    Raw JSON that names the marker anywhere counts; :func:`read_export_record` decides. A
    payload that does not is an ordinary upsert payload.
    """
    if isinstance(payload, bytes | bytearray):
        return _MARKER_BYTES in payload
    if isinstance(payload, memoryview):
        return _MARKER_BYTES in payload.tobytes()
    if isinstance(payload, str):
        return f'"{EXPORT_MARKER}"' in payload
    return isinstance(payload, Mapping) and EXPORT_MARKER in payload


@attrs.frozen
class Restore:
    """A checked export record: the product to store as it is, and the blobs it names."""

    product: Product
    blobs: tuple[Blob, ...]


def read_export_record(
    payload: Mapping[str, Any] | bytes | str, limits: Limits, *, account: str, now: datetime
) -> Restore | None:
    """Check an export record and return what restoring it stores; ``None`` when not a record.

    A record is checked as the product could have been made: the wire form's types and the
    rules' values (R2, R7-R10, R13, R16), the catalog's ``limits``, a one-shot id as the
    catalog makes them and with a lifetime (R3, R22c), timestamps in order and not after
    ``now`` (R11), ``expiresAt`` as R19 makes it and not passed at ``now`` (restoring an expired
    product over a live one would delete it, R20), each upload a recognised image within the
    file limit (R15) whose SHA-256 is its key, every upload named by an image and no other, and
    the uploads together within the request limit (they came in one request, R14).

    Raises:
        ValidationFailed: the record is malformed; details name the fields.
        PayloadTooLarge: the record is over twice the request limit (:func:`export_limits`).
        FileTooLarge, InvalidImage: an upload (R15).
    """
    body = load_body(payload, export_limits(limits))
    if EXPORT_MARKER not in body:
        return None
    marker = body[EXPORT_MARKER]
    if type(marker) is not int or marker != EXPORT_FORMAT:
        raise ValidationFailed.at(
            EXPORT_MARKER,
            f"must be {EXPORT_FORMAT}, the export format this version of catalog_core reads",
        )
    if not all(isinstance(key, str) for key in body):
        raise ValidationFailed.at("body", "must be a JSON object")
    details = [
        Detail(key, "is not part of an export record") for key in body if key not in _RECORD_KEYS
    ]
    version: Any = body.get("version")
    if type(version) is not int or not 1 <= version <= MAX_RESTORED_VERSION:
        details.append(Detail("version", f"must be an integer from 1 to {MAX_RESTORED_VERSION}"))
    wire = body.get("product")
    if not isinstance(wire, dict):
        details.append(Detail("product", "must be a JSON object"))
    uploads = body.get("uploads", {})
    if not isinstance(uploads, dict):
        details.append(Detail("uploads", "must be a JSON object"))
    elif len(uploads) > limits.max_images:  # each is named by an image (R8), before any is read
        details.append(Detail("uploads", f"must hold at most {limits.max_images} uploads"))
    if details:
        raise ValidationFailed.of(details)
    product = _product(
        cast(dict[str, Any], wire), account=account, version=version, limits=limits, now=now
    )
    return Restore(product, _blobs(product, uploads, limits))


def _product(
    wire: dict[str, Any], *, account: str, version: int, limits: Limits, now: datetime
) -> Product:
    from catalog_core.wire.encode import product_from_wire

    try:
        product = product_from_wire(wire, account=account, version=version)
    except ValidationFailed as exc:
        raise ValidationFailed.of(_under("product", exc.details)) from None
    # R16: an empty object means no classifications, as an upsert stores it.
    if any(image.classifications == {} for image in product.images):
        emptied = tuple(
            attrs.evolve(image, classifications=image.classifications or None)
            for image in product.images
        )
        product = attrs.evolve(product, images=emptied)
    # The values the catalog's limits and rules would have let through, checked as the body of
    # an upsert that gives every field.
    images = [
        {
            "source": {"url": image.source_url}
            if image.blob_sha256 is None
            else {"fileKey": image.blob_sha256},
            **({} if image.classifications is None else {"classifications": image.classifications}),
        }
        for image in product.images
    ]
    fields = {
        # A one-shot id (R22c) is refused in any upsert body (R3); its value is checked below.
        "externalId": "_" if product.one_shot else product.external_id,
        "title": product.title,
        "description": product.description,
        "metadata": product.metadata,
        "validForDays": product.valid_for_days,
        "images": images,
    }
    try:
        decode_upsert(fields, limits, for_use=True, prefix="product.")
    except CatalogError as exc:
        raise ValidationFailed.of(exc.details or [Detail("product", exc.message)]) from None
    details = check_external_id(product.external_id, limits, path="product.externalId")
    if product.one_shot:
        if not _ONE_SHOT_ID.fullmatch(product.external_id):
            details.append(
                Detail(
                    "product.externalId",
                    "must be a one-shot id as the catalog makes them, '_anon_' and 24 of "
                    "[a-z0-9] (R3)",
                )
            )
        if product.valid_for_days is None:
            details.append(
                Detail(
                    "product.validForDays", "must be a number: a one-shot product expires (R22c)"
                )
            )
    if not product.images:
        details.append(Detail("product.images", "must hold at least one image (R8)"))
    for index, image in enumerate(product.images):
        sha = image.blob_sha256
        if sha is not None and not _SHA256.fullmatch(sha):
            details.append(
                Detail(f"product.images.{index}.sourceUrl", "must name a SHA-256 in lowercase hex")
            )
    moments = (
        ("createdAt", product.created_at),
        ("updatedAt", product.updated_at),
        ("lastUsedAt", product.last_used_at),
    )
    for name, moment in moments:
        if moment is not None and moment > now:
            details.append(Detail(f"product.{name}", "must not be later than now (R11)"))
    if product.created_at > product.updated_at:
        details.append(Detail("product.createdAt", "must not be after updatedAt"))
    if product.last_used_at is not None and product.last_used_at < product.created_at:
        details.append(Detail("product.lastUsedAt", "must not be before createdAt"))
    if not details:  # the timestamps are in order and past: expiresAt can be computed
        expected = expires_at(product.valid_for_days, product.updated_at, product.last_used_at)
        if product.expires_at != expected:
            details.append(
                Detail(
                    "product.expiresAt",
                    "must be max(updatedAt, lastUsedAt) + validForDays days, or null without "
                    "validForDays (R19)",
                )
            )
        elif product.is_expired(now):
            details.append(
                Detail(
                    "product.expiresAt",
                    "has passed: the product expired after it was exported, and restoring it "
                    "would remove the product its id names now (R20)",
                )
            )
    if details:
        raise ValidationFailed.of(details)
    return product


def _under(prefix: str, details: tuple[Detail, ...]) -> list[Detail]:
    return [
        Detail(prefix if d.path == "body" else f"{prefix}.{d.path}", d.message) for d in details
    ]


def _blobs(product: Product, uploads: dict[str, Any], limits: Limits) -> tuple[Blob, ...]:
    named = product.blob_refs
    details = [
        Detail(f"uploads.{sha}", "is named by no image of the product")
        for sha in uploads
        if sha not in named
    ]
    details += [
        Detail(f"uploads.{sha}", "is missing: an image names it")
        for sha in sorted(named)
        if sha not in uploads
    ]
    if details:
        raise ValidationFailed.of(details)
    total = sum(len(text) // 4 * 3 for text in uploads.values() if isinstance(text, str))
    if total > limits.max_request_bytes:
        raise ValidationFailed.at(
            "uploads",
            f"must hold at most {limits.max_request_bytes} bytes in all, the request limit: a "
            "product's uploads come in one request (R14, R33)",
        )
    blobs = []
    for sha in sorted(named):
        text = uploads[sha]
        try:
            data = base64.b64decode(text, validate=True) if isinstance(text, str) else None
        except (binascii.Error, ValueError):
            data = None
        if data is None:
            raise ValidationFailed.at(f"uploads.{sha}", "must be the upload's bytes in base64")
        blob = make_blob(f"uploads.{sha}", data, max_bytes=limits.max_file_bytes)
        if blob.sha256 != sha:
            raise ValidationFailed.at(f"uploads.{sha}", "must be bytes whose SHA-256 is its key")
        blobs.append(blob)
    return tuple(blobs)


def restore_change(restore: Restore, now: Callable[[], datetime]) -> Change:
    """The repository change that stores ``restore`` over whatever the key holds.

    A version never names two states of a product (R28): over a live product of another content
    whose version is as high or higher, the restored product takes the next version instead;
    over a live product of the same content, nothing changes. ``now`` is read inside the write.
    """

    def change(stored: Product | None) -> Write:
        product = restore.product
        if stored is not None and not stored.is_expired(now()):
            if attrs.evolve(stored, version=product.version) == product:
                return Write(stored, restore.blobs)
            if stored.version >= product.version:
                product = attrs.evolve(product, version=stored.version + 1)
        return Write(product, restore.blobs)

    return change


@attrs.frozen
class CopyProgress:
    """What one batch of :func:`copy` wrote: its products and the bytes of their blobs."""

    products: int
    blob_bytes: int


def copy(
    source: Repository,
    target: Repository,
    *,
    now: datetime,
    batch_size: int = DEFAULT_PAGE_SIZE,
    batch_bytes: int = DEFAULT_COPY_BYTES,
) -> Iterator[CopyProgress]:
    """Copy every live product of every account, with its blobs, from ``source`` to ``target``.

    Each product is stored in ``target`` as it is in ``source`` (fields, timestamps, version),
    over what ``target`` holds for its key (over a live product of another content at a version
    as high or higher, the copy takes the next version: :func:`restore_change`); products only
    ``target`` holds are left alone. So a copy run twice leaves what one run leaves, and an
    interrupted copy is finished by running it again. Products are read ``batch_size`` at a
    time and written so, in one transaction per account of the batch when ``target`` has
    ``write_many``; a batch is written as soon as its blobs reach ``batch_bytes``: memory holds
    one batch.

    Yields:
        A :class:`CopyProgress` after each batch is written.

    Raises:
        ValidationFailed: at ``batchSize`` or ``batchBytes``, before anything is read.
        TypeError: ``source`` cannot walk its products (:func:`scanner`).
    """
    _check_positive("batchSize", batch_size)
    _check_positive("batchBytes", batch_bytes)
    store = scanner(source)
    return _copy(store, target, now, batch_size, batch_bytes)


def _copy(
    store: ScanRepository,
    target: Repository,
    now: datetime,
    batch_size: int,
    batch_bytes: int,
) -> Iterator[CopyProgress]:
    write_many = getattr(target, "write_many", None)
    after: tuple[str, str] | None = None
    while True:
        page = store.scan_live(account=None, after=after, limit=batch_size, now=now)
        batch: list[tuple[Product, tuple[Blob, ...]]] = []
        held: dict[tuple[str, str], Blob] = {}  # each blob read once a batch
        size = 0
        for listed in page:
            known = set(held)
            current = _with_blobs(store, listed, now, held)
            if current is None:  # deleted, or expired, since the page was read
                continue
            size += sum(len(held[key].data) for key in held.keys() - known)
            batch.append(current)
            if size >= batch_bytes:
                yield _write(target, write_many, batch, size, now)
                batch, held, size = [], {}, 0
        if batch:
            yield _write(target, write_many, batch, size, now)
        if len(page) < batch_size:
            return
        after = (page[-1].account, page[-1].external_id)


def _write(
    target: Repository,
    write_many: Any,
    batch: list[tuple[Product, tuple[Blob, ...]]],
    size: int,
    now: datetime,
) -> CopyProgress:
    by_account: dict[str, list[tuple[str, Change]]] = {}
    for product, blobs in batch:
        change = restore_change(Restore(product, blobs), lambda: now)
        by_account.setdefault(product.account, []).append((product.external_id, change))
    for account, changes in by_account.items():
        if write_many is None:
            for external_id, change in changes:
                target.write(account, external_id, change)
            continue
        for outcome in write_many(account, changes):
            if isinstance(outcome, Exception):  # a restore's change never raises
                raise outcome
    return CopyProgress(len(batch), size)
