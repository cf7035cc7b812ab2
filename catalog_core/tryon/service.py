"""The try-on flow's use cases (T1-T24): uploads, try-ons, generations, credits, erasure.

:class:`TryOn` sits beside a :class:`~catalog_core.Catalog` and shares its repository, clock and
limits. The product part of a try-on is exactly :meth:`Catalog.try_on
<catalog_core.Catalog.try_on>` (R22); the product write, the credit reservation and the new
generation are one write of the repository (T10, R26).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from catalog_core.catalog import Catalog, _check_files, _files_bytes, _OneShotIdTaken
from catalog_core.commands import UseCommand
from catalog_core.errors import (
    CatalogError,
    CustomerImageFetchFailed,
    CustomerImageRequired,
    Detail,
    GenerationNotFound,
    MultipartFileNotFound,
    ProductNotFound,
    ValidationFailed,
)
from catalog_core.images import Blob, make_blob
from catalog_core.model import (
    MAX_WARNINGS,
    PayloadWarning,
    Product,
    Upload,
    from_epoch_ms,
    to_epoch_ms,
)
from catalog_core.repository.base import (
    GenerationsRepository,
    PurgeCounts,
    TryOnKeys,
    TryOnRepository,
    TryOnState,
    TryOnWrite,
    Write,
)
from catalog_core.rules import live, new_one_shot_id, use, write_time
from catalog_core.tryon.commands import (
    DEFAULT_KEEP_FOR_DAYS,
    PersonSource,
    StartCommand,
    UploadOptions,
)
from catalog_core.tryon.engine import Engine, Job, LocalEngine, is_unfetchable
from catalog_core.tryon.model import (
    FAILED,
    Credits,
    Generation,
    GenerationView,
    Person,
    PersonImage,
)
from catalog_core.tryon.rules import (
    balance_at,
    is_record_id,
    live_generation,
    live_image,
    media_key,
    media_ref,
    new_generation_id,
    new_image_id,
    new_token,
    parse_media_ref,
    reserve,
    settle,
    snapshot,
    view,
)
from catalog_core.wire.decode import (
    check_account,
    check_external_id,
    check_request_size,
    load_body,
)
from catalog_core.wire.tryon import (
    _source,
    check_customer_id,
    check_keep_for_days,
    decode_start,
    decode_upload,
)

__all__ = [
    "DEFAULT_CREDITS",
    "MAX_CREDITS",
    "GenerationPage",
    "ListedGeneration",
    "Media",
    "StartResult",
    "TryOn",
    "UploadResult",
]

#: The balance of a new account (T16), as a new public account's.
DEFAULT_CREDITS: Final = 10
#: The largest balance an account may hold (a signed 64-bit column holds it with room).
MAX_CREDITS: Final = 10**15


@attrs.frozen
class UploadResult:
    """A stored person image and the upload's warnings (T3)."""

    image: PersonImage
    warnings: tuple[PayloadWarning, ...] = ()
    warning_count: int = 0


@attrs.frozen
class StartResult:
    """An accepted try-on (T10).

    Attributes:
        generation: the new generation as seen at its acceptance.
        product: the product the try-on used (R22), after its use was recorded.
        created: whether the try-on created that product.
        warnings: the first warnings of the body (deprecated shapes, unknown fields).
        warning_count: how many there were.
    """

    generation: GenerationView
    product: Product
    created: bool
    warnings: tuple[PayloadWarning, ...] = ()
    warning_count: int = 0

    @property
    def product_external_id(self) -> str:
        """The item's id, or the generated ``_anon_…`` id of a one-shot product."""
        return self.product.external_id


@attrs.frozen
class ListedGeneration:
    """A generation on a page of :meth:`TryOn.list_generations`.

    Attributes:
        view: the generation as :meth:`TryOn.get_generation` would answer it now (T12).
        person: what it keeps of its person image: stored bytes, a URL, or nothing once its
            customer was erased (T18).
    """

    view: GenerationView
    person: Person


@attrs.frozen
class GenerationPage:
    """One page of :meth:`TryOn.list_generations`, newest first."""

    items: tuple[ListedGeneration, ...]
    next_cursor: str | None
    has_more: bool


@attrs.frozen
class Media:
    """What a media URL serves (T3, T15): image bytes with their type, or a URL to go to."""

    data: bytes = attrs.field(default=b"", repr=lambda data: f"<{len(data)} bytes>")
    mime_type: str | None = None
    redirect: str | None = None


class TryOn:
    """The try-on flow on a catalog: every rule of TRYON.md, for any number of accounts.

    Args:
        catalog: the catalog whose repository (a
            :class:`~catalog_core.repository.base.TryOnRepository`), clock and limits it uses.
        engine: what runs generations; the local engine of T14 by default.
        initial_credits: the balance of an account the first time it is seen (T16).

    Every method raises :class:`~catalog_core.CatalogError` for bad input, and changes nothing
    when it raises.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        engine: Engine | None = None,
        initial_credits: int = DEFAULT_CREDITS,
    ) -> None:
        if not isinstance(catalog.repository, TryOnRepository):
            raise TypeError(
                "the catalog's repository does not store the try-on flow's state "
                "(it is not a TryOnRepository)"
            )
        if (
            isinstance(initial_credits, bool)
            or not isinstance(initial_credits, int)
            or not 0 <= initial_credits <= MAX_CREDITS
        ):
            raise ValueError(f"initial_credits must be an integer from 0 to {MAX_CREDITS}")
        self.catalog = catalog
        self.repository: TryOnRepository = catalog.repository
        self.engine: Engine = LocalEngine() if engine is None else engine
        self.initial_credits = initial_credits
        self._sealing_key: bytes | None = None

    def now(self) -> datetime:
        """Return the catalog's current time (its one reader of the clock)."""
        return self.catalog.now()

    # -- person images (T1-T4) ------------------------------------------------------------

    def upload_image(
        self,
        account: str,
        file: Upload | bytes,
        *,
        crop: bool = True,
        keep_for_days: int = DEFAULT_KEEP_FOR_DAYS,
        customer_id: str | None = None,
    ) -> PersonImage:
        """Store a person image (T1-T4) and return it.

        Raises:
            ValidationFailed: at ``crop``, ``keepForDays`` or ``externalUserId``.
            InvalidImage, FileTooLarge: the bytes (R15).
        """
        account = check_account(account)
        details = []
        if not isinstance(crop, bool):
            details.append(Detail("crop", "must be a boolean"))
        problem = check_keep_for_days(keep_for_days)
        if problem:
            details.append(Detail("keepForDays", problem))
        if customer_id is not None:
            problem = check_customer_id(customer_id)
            if problem:
                details.append(Detail("externalUserId", problem))
        if details:
            raise ValidationFailed.of(details)
        upload = _upload_of(file)
        check_request_size(len(upload.data), self.catalog.limits)
        options = UploadOptions(crop=crop, keep_for_days=keep_for_days, customer_id=customer_id)
        return self._store_upload(account, upload, options)

    def upload_form(
        self, account: str, fields: Mapping[str, str | bytes | Upload | None]
    ) -> UploadResult:
        """Store a person image from the parts of ``POST /images/upload`` (T1-T3).

        Args:
            account: the tenant.
            fields: every part by name: ``file``, and the text fields ``crop``, ``keepForDays``,
                ``externalUserId`` (and the deprecated ``retentionDays``, ``customerId``).

        Raises:
            PayloadTooLarge, FileRequired, ValidationFailed, InvalidImage, FileTooLarge: in
                that order.
        """
        account = check_account(account)
        upload, options, warnings, count = decode_upload(fields, self.catalog.limits)
        image = self._store_upload(account, upload, options)
        return UploadResult(image, warnings, count)

    def _store_upload(self, account: str, upload: Upload, options: UploadOptions) -> PersonImage:
        blob = _person_blob("file", upload, self.catalog.limits.max_file_bytes, "file")
        image_id, token = new_image_id(), new_token()

        def change(state: TryOnState) -> TryOnWrite:
            image = _person_image(account, image_id, token, blob, options, self.now())
            return TryOnWrite(person_images=(image,), blobs=(blob,))

        written = self.repository.write_tryon(account, TryOnKeys(person_images=(image_id,)), change)
        return written.person_images[0]

    def get_person_image(self, account: str, image_id: str) -> PersonImage:
        """Return a live person image of the account (T4).

        Raises:
            ValidationFailed: unknown or expired (at ``imageId``).
        """
        account = check_account(account)
        image = None
        if is_record_id(image_id):
            image = live_image(self.repository.get_person_image(account, image_id), self.now())
        if image is None:
            raise ValidationFailed.at("imageId", "unknown or expired image")
        return image

    # -- try-ons (T5-T11) -----------------------------------------------------------------

    def start(
        self,
        account: str,
        body: Mapping[str, Any] | bytes | str,
        files: Mapping[str, Upload] | None = None,
    ) -> StartResult:
        """Start a try-on from its JSON body and files (T5-T10).

        Raises:
            CatalogError: in the order of T9; nothing is written.
        """
        account = check_account(account)
        uploads = _check_files(files)
        limits = self.catalog.limits
        decoded = decode_start(load_body(body, limits, files_bytes=_files_bytes(uploads)), limits)
        return self._start(
            account,
            decoded.command,
            uploads,
            decoded.warnings,
            decoded.warning_count,
            decoded.person_error,
        )

    def apply_start(
        self,
        account: str,
        command: StartCommand,
        *,
        files: Mapping[str, Upload] | None = None,
    ) -> StartResult:
        """Start a try-on from a typed command: :meth:`start` without the JSON.

        Raises:
            CatalogError: every check of the same try-on sent as JSON, in the order of T9.
        """
        account = check_account(account)
        if not isinstance(command, StartCommand) or not isinstance(command.product, UseCommand):
            raise ValidationFailed.at("command", "must be a StartCommand with a UseCommand")
        uploads = _check_files(files)
        check_request_size(_files_bytes(uploads), self.catalog.limits)
        from catalog_core.wire import check as wire_check  # typed entries: loaded on first use

        product = wire_check.check_use_command(command.product, self.catalog.limits)
        details = []
        if command.customer_id is not None:
            problem = check_customer_id(command.customer_id)
            if problem:
                details.append(Detail("externalUserId", problem))
        if not isinstance(command.watermark, bool):
            details.append(Detail("output.watermark", "must be a boolean"))
        problem = check_keep_for_days(command.keep_for_days)
        if problem:
            details.append(Detail("output.keepForDays", problem))
        if details:
            raise ValidationFailed.of(details)
        person_error = _person_problem(command.person, self.catalog.limits)
        checked = attrs.evolve(command, product=UseCommand(**_fields_of(product)))
        return self._start(account, checked, uploads, (), 0, person_error)

    def _start(
        self,
        account: str,
        command: StartCommand,
        uploads: dict[str, Upload],
        warnings: tuple[PayloadWarning, ...],
        warning_count: int,
        person_error: CatalogError | None,
    ) -> StartResult:
        """Check what needs no stored state, then write (T9).

        The person's problem is raised in the write, after the product item's checks that need
        the stored product (``PRODUCT_IMAGES_REQUIRED`` for an item that would create a product
        without images): T9 puts every person check after the product item's own validation.
        """
        person = command.person
        person_key = person.file_key if person is not None else None
        product_files = {k: v for k, v in uploads.items() if k != person_key}
        images, blobs, file_warnings = self.catalog._resolve_images(command.product, product_files)
        person_blob: Blob | None = None
        try:
            person_blob = _person_check(person, person_error, uploads, self.catalog.limits)
        except CatalogError as exc:
            person_error = exc
        all_warnings = (warnings + file_warnings)[:MAX_WARNINGS]
        count = warning_count + len(file_warnings)
        while True:
            try:
                return self._write_start(
                    account,
                    command,
                    images,
                    blobs,
                    person,
                    person_blob,
                    person_error,
                    all_warnings,
                    count,
                )
            except _OneShotIdTaken:  # pragma: no cover - 36**24 ids make this a formality
                continue

    def _write_start(
        self,
        account: str,
        command: StartCommand,
        images: Any,
        blobs: tuple[Blob, ...],
        person: PersonSource | None,
        person_blob: Blob | None,
        person_error: CatalogError | None,
        warnings: tuple[PayloadWarning, ...],
        warning_count: int,
    ) -> StartResult:
        item = command.product
        one_shot = item.external_id is None
        external_id = new_one_shot_id() if one_shot else item.external_id
        assert external_id is not None
        generation_id, token = new_generation_id(), new_token()
        new_image_id_ = new_image_id() if person_blob is not None else None
        image_token = new_token()
        stored_id = person.image_id if person is not None else None
        if not is_record_id(stored_id):
            stored_id = None  # no image has it: unknown without a read
        image_keys = tuple(i for i in (stored_id, new_image_id_) if i is not None)
        keys = TryOnKeys(
            product=external_id,
            person_images=image_keys,
            generations=(generation_id,),
            credits=True,
        )
        outcome: dict[str, Any] = {}

        def change(state: TryOnState) -> TryOnWrite:
            customer_id = command.customer_id
            now = write_time(self.now(), state.product)
            existing = live(state.product, now)
            if one_shot and existing is not None:
                raise _OneShotIdTaken
            held: ProductNotFound | None = None
            product: Product | None = None
            try:
                product = use(
                    existing,
                    item,
                    images,
                    now,
                    account=account,
                    external_id=external_id,
                    one_shot=one_shot,
                )
            except ProductNotFound as exc:  # after the person and the credits (T9)
                held = exc
            if person_error is not None:  # after the product item's own checks (T9)
                raise person_error
            assert person is not None  # a missing person is a person_error
            new_images: tuple[PersonImage, ...] = ()
            if person.image_id is not None:
                stored = live_image(state.person_images.get(person.image_id), now)
                if stored is None:
                    raise ValidationFailed.at(f"{person.path}.id", "unknown or expired image")
                if None not in (command.customer_id, stored.customer_id) and (
                    command.customer_id != stored.customer_id
                ):
                    # Erasing either customer must reach the result, which is the photo (T18):
                    # a generation has one customer id, so the two must agree.
                    raise ValidationFailed.at(
                        "externalUserId", "differs from the customer id of the person image"
                    )
                snap = Person(sha256=stored.sha256, mime_type=stored.mime_type)
                # A photo tagged with a customer tags what is made of it, so that erasing the
                # customer reaches the generation too (T18).
                customer_id = command.customer_id or stored.customer_id
            elif person_blob is not None:
                assert new_image_id_ is not None
                options = UploadOptions(
                    keep_for_days=command.keep_for_days, customer_id=command.customer_id
                )
                new_images = (
                    _person_image(account, new_image_id_, image_token, person_blob, options, now),
                )
                snap = Person(sha256=person_blob.sha256, mime_type=person_blob.mime_type)
            else:
                snap = Person(url=person.url)
            credits = state.credits or Credits(account, self.initial_credits)
            if product is None:
                reserve(credits, now, None)  # INSUFFICIENT_CREDITS before PRODUCT_NOT_FOUND
                assert held is not None
                raise held
            product_snapshot = snapshot(product)
            job = Job(
                account=account,
                generation_id=generation_id,
                product=product_snapshot,
                person=snap,
            )
            plan = self.engine.schedule(job)
            finished_at = None if plan.finished_after is None else now + plan.finished_after
            refund_at = finished_at if plan.outcome == FAILED else None
            new_credits = reserve(credits, now, refund_at)
            generation = Generation(
                account=account,
                generation_id=generation_id,
                product=product_snapshot,
                person=snap,
                customer_id=customer_id,
                watermark=command.watermark,
                keep_for_days=command.keep_for_days,
                created_at=now,
                processing_at=now + plan.processing_after,
                finished_at=finished_at,
                outcome=plan.outcome,
                result=snap if plan.outcome == "COMPLETED" else None,
                error_code=plan.error_code,
                error_message=plan.error_message,
                token=token,
                expires_at=now + timedelta(days=command.keep_for_days),
            )
            outcome["created"] = existing is None
            outcome["job"] = job
            outcome["now"] = now
            return TryOnWrite(
                product=Write(product, blobs),
                person_images=new_images,
                generations=(generation,),
                credits=new_credits,
                blobs=() if person_blob is None else (person_blob,),
            )

        written = self.repository.write_tryon(account, keys, change)
        generation = written.generations[0]
        assert written.product is not None
        assert written.product.product is not None
        start = getattr(self.engine, "start", None)
        if start is not None:
            start(outcome["job"])
        return StartResult(
            generation=view(generation, generation.created_at),
            product=written.product.product,
            created=outcome["created"],
            warnings=warnings,
            warning_count=warning_count,
        )

    # -- generations (T12-T15) ------------------------------------------------------------

    def get_generation(self, account: str, generation_id: str) -> GenerationView:
        """Return the generation as it is now (T12).

        Raises:
            GenerationNotFound: no live generation of the account has that id (T13).
        """
        account = check_account(account)
        generation = self._generation(account, generation_id, self.now())
        return view(generation, self.now())

    def _generation(self, account: str, generation_id: object, now: datetime) -> Generation:
        generation = None
        if is_record_id(generation_id):
            generation = live_generation(
                self.repository.get_generation(account, generation_id), now
            )
        if generation is None:
            if is_record_id(generation_id):
                raise GenerationNotFound.for_id(generation_id)
            # Text no id has (NUL, control characters, anything long) is not echoed back.
            raise GenerationNotFound("Generation not found.")
        return generation

    def list_generations(
        self,
        account: str,
        limit: int = 50,
        cursor: str | None = None,
        *,
        product_external_id: str | None = None,
    ) -> GenerationPage:
        """Return one page of the account's live generations, newest first.

        An extension of the stand-in (the public API has no listing of generations): the
        server's ``GET /local/generations`` and its dashboard read it. The cursor is opaque and
        bound to the account and the storage, as R24's.

        Args:
            account: the tenant.
            limit: the page size, 1-200.
            cursor: ``next_cursor`` of the previous page, or ``None`` for the first.
            product_external_id: only the generations of this product (their snapshot's id).

        Raises:
            ValidationFailed: at ``limit``, ``cursor`` or ``productExternalId``.
            TypeError: the repository cannot list generations (it is not a
                :class:`~catalog_core.repository.base.GenerationsRepository`).
        """
        from catalog_core import cursor as cursors
        from catalog_core.catalog import MAX_PAGE_SIZE

        account = check_account(account)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValidationFailed.at("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        if product_external_id is not None:
            problems = check_external_id(
                product_external_id, self.catalog.limits, path="productExternalId"
            )
            if problems:
                raise ValidationFailed.of(problems)
        repository = self.repository
        if not isinstance(repository, GenerationsRepository):
            raise TypeError("the catalog's repository cannot list generations")
        key = self._generations_cursor_key()
        before = None
        if cursor is not None:
            last = cursors.decode_cursor(account, cursor, key)
            millis, _, generation_id = last.partition(" ")
            if not millis.isdigit() or not generation_id:  # only a defect could make one
                raise ValidationFailed.at("cursor", "is not a cursor of this listing")
            before = (from_epoch_ms(int(millis)), generation_id)
        now = self.now()
        rows = repository.list_generations(
            account, before=before, limit=limit + 1, now=now, product=product_external_id
        )
        items = tuple(ListedGeneration(view(g, now), g.person) for g in rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last_one = rows[limit - 1]
            position = f"{to_epoch_ms(last_one.created_at)} {last_one.generation_id}"
            next_cursor = cursors.encode_cursor(account, position, key)
        return GenerationPage(items, next_cursor, next_cursor is not None)

    def _generations_cursor_key(self) -> bytes:
        """The key of the generations' cursors: the catalog's, made another listing's."""
        import hashlib

        listing = self.catalog._listing_key()
        return hashlib.blake2b(listing, digest_size=32, person=b"cc generations 1").digest()

    def finish_generation(
        self,
        account: str,
        generation_id: str,
        *,
        result: Upload | bytes | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> GenerationView:
        """Report the end of a generation whose engine did not schedule it (T14).

        Give ``result`` (the image) for ``COMPLETED``, or ``error_code`` for ``FAILED`` (its
        credit comes back, T16).

        Raises:
            GenerationNotFound: no live generation of the account has that id.
            ValidationFailed: neither or both of ``result`` and ``error_code``, or the
                generation has already finished.
            InvalidImage, FileTooLarge: ``result`` is not an image (R15).
        """
        account = check_account(account)
        if (result is None) == (error_code is None):
            raise ValidationFailed.at("result", "give exactly one of result and error_code")
        if error_code is not None and (not isinstance(error_code, str) or not error_code):
            raise ValidationFailed.at("errorCode", "must be a non-empty string")
        blob = None
        if result is not None:
            blob = _person_blob(
                "result", _upload_of(result), self.catalog.limits.max_file_bytes, "result"
            )
        self._generation(account, generation_id, self.now())

        def change(state: TryOnState) -> TryOnWrite:
            now = self.now()
            generation = live_generation(state.generations.get(generation_id), now)
            if generation is None:
                raise GenerationNotFound.for_id(generation_id)
            if generation.finished_at is not None:
                raise ValidationFailed.at("generationId", "the generation has already finished")
            finished = max(now, generation.processing_at)
            credits = None
            erased = generation.person.sha256 is None and generation.person.url is None
            kept = None if erased else blob  # an erased customer's result is not kept (T18)
            if blob is not None:
                done = attrs.evolve(
                    generation,
                    finished_at=finished,
                    outcome="COMPLETED",
                    result=Person()
                    if kept is None
                    else Person(sha256=kept.sha256, mime_type=kept.mime_type),
                )
            else:
                done = attrs.evolve(
                    generation,
                    finished_at=finished,
                    outcome="FAILED",
                    error_code=error_code,
                    error_message=error_message or error_code,
                )
                stored = settle(state.credits or Credits(account, self.initial_credits), now)
                credits = attrs.evolve(stored, balance=min(MAX_CREDITS, stored.balance + 1))
            return TryOnWrite(
                generations=(done,), credits=credits, blobs=() if kept is None else (kept,)
            )

        written = self.repository.write_tryon(
            account, TryOnKeys(generations=(generation_id,), credits=True), change
        )
        return view(written.generations[0], self.now())

    # -- credits (T16, T17) ---------------------------------------------------------------

    def credits(self, account: str) -> int:
        """Return the account's credit balance now (T16, T17)."""
        account = check_account(account)
        stored = self.repository.get_credits(account)
        return balance_at(stored or Credits(account, self.initial_credits), self.now())

    def add_credits(self, account: str, amount: int) -> int:
        """Add ``amount`` credits (negative: take them away) and return the new balance (T17).

        Raises:
            ValidationFailed: at ``amount``: not an integer, or the balance would leave
                0 to :data:`MAX_CREDITS`.
        """
        account = check_account(account)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValidationFailed.at("amount", "must be an integer")

        def change(state: TryOnState) -> TryOnWrite:
            now = self.now()
            stored = settle(state.credits or Credits(account, self.initial_credits), now)
            balance = stored.balance + amount
            pending = len(stored.refunds)
            if balance < 0 or balance + pending > MAX_CREDITS:
                raise ValidationFailed.at(
                    "amount",
                    f"the balance must stay from 0 to {MAX_CREDITS} (it is {stored.balance})",
                )
            return TryOnWrite(credits=attrs.evolve(stored, balance=balance))

        written = self.repository.write_tryon(account, TryOnKeys(credits=True), change)
        assert written.credits is not None
        return written.credits.balance

    # -- customers (T18, T19) -------------------------------------------------------------

    def erase_customer(self, account: str, customer_id: str) -> int:
        """Erase the customer's person images and generation images (T18); idempotent.

        Returns the number of records deleted or changed (0 when nothing matched).

        Raises:
            ValidationFailed: at ``customerId``.
        """
        account = check_account(account)
        problem = check_customer_id(customer_id)
        if problem:
            raise ValidationFailed.at("customerId", problem)
        return self.repository.erase_customer(account, customer_id)

    # -- media (T3, T15) ------------------------------------------------------------------

    def _media_key(self) -> bytes:
        """The key that seals the account in media references.

        Derived from the repository's ``cursor_secret()`` (the same for every process on the
        storage, so URLs outlive a restart), or, without it, from a secret of this object's own.
        """
        key = self._sealing_key
        if key is None:
            secret = getattr(self.repository, "cursor_secret", None)
            key = media_key(os.urandom(32) if secret is None else secret())
            self._sealing_key = key
        return key

    def image_ref(self, image: PersonImage) -> str:
        """Return the path segment of a person image's URL (T3): no account, no API key in it."""
        return media_ref(self._media_key(), image.account, image.image_id, image.token)

    def result_ref(self, account: str, generation: GenerationView) -> str:
        """Return the path segment of a generation's result URL (T15)."""
        return media_ref(self._media_key(), account, generation.generation_id, generation.token)

    def open_media(self, ref: str) -> Media | None:
        """Return what a media URL serves now, or ``None`` when it serves nothing (T3, T15).

        Nothing: malformed, unknown, a wrong token, expired, or erased.
        """
        parsed = parse_media_ref(self._media_key(), ref) if isinstance(ref, str) else None
        if parsed is None:
            return None
        account, record_id, token = parsed
        now = self.now()
        if record_id.startswith("img_"):
            image = live_image(self.repository.get_person_image(account, record_id), now)
            if image is None or not hmac.compare_digest(image.token, token):
                return None
            return self._blob_media(account, image.sha256)
        generation = live_generation(self.repository.get_generation(account, record_id), now)
        if generation is None or not hmac.compare_digest(generation.token, token):
            return None
        result = view(generation, now).result
        if result is None:
            return None
        if result.url is not None:
            return Media(redirect=result.url)
        assert result.sha256 is not None
        return self._blob_media(account, result.sha256)

    def _blob_media(self, account: str, sha256: str) -> Media | None:
        blob = self.repository.get_blob(account, sha256)
        return None if blob is None else Media(blob.data, blob.mime_type)

    # -- maintenance (T22) ----------------------------------------------------------------

    def purge_expired(self) -> PurgeCounts:
        """Delete what has expired now: products, person images, generations, blobs (T22)."""
        return self.repository.purge(self.now())


def _person_image(
    account: str, image_id: str, token: str, blob: Blob, options: UploadOptions, now: datetime
) -> PersonImage:
    """A person image of ``blob`` stored at ``now``, kept ``options.keep_for_days`` (T4)."""
    return PersonImage(
        account=account,
        image_id=image_id,
        sha256=blob.sha256,
        mime_type=blob.mime_type,
        token=token,
        crop=options.crop,
        customer_id=options.customer_id,
        created_at=now,
        expires_at=now + timedelta(days=options.keep_for_days),
    )


def _upload_of(file: object) -> Upload:
    if isinstance(file, bytes | bytearray):
        return Upload(bytes(file))
    if not isinstance(file, Upload) or not isinstance(file.data, bytes | bytearray | memoryview):
        raise ValidationFailed.at("file", "must be an Upload holding bytes")
    return file


def _person_blob(name: str, upload: Upload, max_bytes: int, path: str) -> Blob:
    try:
        return make_blob(name, bytes(upload.data), max_bytes=max_bytes)
    except CatalogError as exc:
        exc.details = (Detail(path, exc.message),)
        raise


def _person_check(
    person: PersonSource | None,
    problem: CatalogError | None,
    uploads: Mapping[str, Upload],
    limits: Any,
) -> Blob | None:
    """Check the person as far as no stored state is needed (T7); return its file's blob.

    Raises:
        CatalogError: the person's first problem: ``problem`` (found when decoding), none at all,
            a missing or refused file part, or a URL that can never be fetched.
    """
    if problem is not None:
        raise problem
    if person is None:
        raise CustomerImageRequired(
            "A person image is required: give person.image.source with id, url or fileKey.",
            [Detail("person", "is required")],
        )
    if person.file_key is not None:
        upload = uploads.get(person.file_key)
        if upload is None:
            raise MultipartFileNotFound(
                f"No file part named '{person.file_key}' in the request.",
                [Detail(f"{person.path}.fileKey", f"no file part named '{person.file_key}'")],
            )
        return _person_blob(
            person.file_key, upload, limits.max_file_bytes, f"{person.path}.fileKey"
        )
    if person.url is not None and is_unfetchable(person.url):
        raise CustomerImageFetchFailed(
            f"The person image {person.url} could not be fetched.",
            [Detail(f"{person.path}.url", "could not be fetched")],
        )
    return None


def _fields_of(command: Any) -> dict[str, Any]:
    return {
        "external_id": command.external_id,
        "title": command.title,
        "description": command.description,
        "metadata": command.metadata,
        "valid_for_days": command.valid_for_days,
        "images": command.images,
    }


def _person_problem(person: object, limits: Any) -> CatalogError | None:
    """Check a typed person source as the wire checks a decoded one (T7)."""
    if person is None:
        return None
    if not isinstance(person, PersonSource):
        return ValidationFailed.at("person", "must be a PersonSource")
    body: dict[str, Any] = {}
    for key, value in (("id", person.image_id), ("url", person.url), ("fileKey", person.file_key)):
        if value is not None:
            body[key] = value
    _, problem = _source(body, person.path, limits)
    return problem
