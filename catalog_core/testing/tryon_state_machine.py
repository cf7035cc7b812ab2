"""The try-on flow's differential state machine: a real ``TryOn`` and a plain model, step by step.

:class:`TryOnStateMachine` drives a :class:`~catalog_core.tryon.TryOn` (on a catalog, its
repository and a :class:`~catalog_core.testing.clock.FakeClock`) and :class:`ReferenceTryOn`, a
model written from the try-on rule book (T1-T24) that shares no code with the library, through
person-image uploads (valid and refused), try-ons (valid and refused; products by reference,
inline and one-shot, among them products titled ``"mock"`` and products with an image under
``.invalid``; persons by id, URL and file), polls of generations, credits read and topped up,
customer erasures, purges, and moves of the clock to every status change and expiry; beside them,
the catalog's own upserts, reference uses and deletes
(:class:`~catalog_core.testing.state_machine.CatalogMachineBase`). After every step the two must
agree on every observable answer::

    from catalog_core.testing.state_machine import KIT_SETTINGS
    from catalog_core.testing.tryon_state_machine import make_tryon_state_machine

    TestMyBackendTryOn = make_tryon_state_machine(lambda: MyRepository(...)).TestCase
    TestMyBackendTryOn.settings = KIT_SETTINGS

The repository must be a :class:`~catalog_core.repository.base.TryOnRepository`. Each example
draws the engine's ``generation_seconds`` (the local engine of T14: ``PENDING`` for the first
quarter, ``PROCESSING`` for the rest) and the balance of a new account (T16).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

import catalog_core as cc
from catalog_core.testing._book import (
    ANON_PREFIX,
    COMPLETED,
    DAY_MS,
    DEFAULT_CREDITS,
    DEFAULT_GENERATION_SECONDS,
    DEFAULT_KEEP_FOR_DAYS,
    EPOCH,
    FAILED,
    GENERATION_ID,
    IMAGE_HEADERS,
    IMAGE_ID,
    MOCK_TITLE,
    PAYLOAD_KEYS,
    PENDING,
    PROCESSING,
    PRODUCT_IMAGE_FETCH_FAILED,
    TRYON_STATUS,
    UNFETCHABLE_TLD,
)
from catalog_core.testing._pieces import urls
from catalog_core.testing.state_machine import (
    CatalogMachineBase,
    Outcome,
    ReferenceCatalog,
    _call,
    _expect_same,
    epoch_ms,
    machine_on,
)
from catalog_core.testing.strategies import (
    InvalidTryOnRequest,
    InvalidUploadRequest,
    TryOnRequest,
    UploadRequest,
    UseRequest,
    customer_ids,
    invalid_tryon_bodies,
    invalid_upload_fields,
    tryon_bodies,
    upload_fields,
    use_items,
)
from catalog_core.tryon import LocalEngine, TryOn

__all__ = ["ReferenceTryOn", "TryOnStateMachine", "make_tryon_state_machine"]


def _error(code: str) -> Outcome:
    return ("error", code, TRYON_STATUS[code])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _text(value: Any) -> Any:
    """A form field's text: multipart parsers hand text parts as ``str`` or UTF-8 ``bytes``."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def image_type(data: bytes) -> str | None:
    """R15: the type an upload is recognised as, from its leading bytes."""
    return next((kind for kind, head in IMAGE_HEADERS.items() if data.startswith(head)), None)


def unfetchable(url: str) -> bool:
    """T7, T14: whether ``url``'s host is under the reserved ``.invalid`` top-level domain."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return host == UNFETCHABLE_TLD or host.endswith("." + UNFETCHABLE_TLD)


# -- the reference model --------------------------------------------------------------------------


class ReferenceTryOn(ReferenceCatalog):
    """The try-on rule book as a few dictionaries, beside the catalog's (:class:`ReferenceCatalog`).

    Like its base, it shares no code with the library and understands only the kit's requests:
    valid ones, whose meaning it works out itself, and refused ones, whose code the strategy
    states. Times are epoch milliseconds.

    Args:
        max_request_bytes: the request limit (R33).
        initial_credits: the balance of an account the first time it is seen (T16).
        generation_ms: how long a generation takes (T14), in whole milliseconds.

    Attributes:
        images: ``{account: {key: record}}``: person images, kept until a purge or an erasure.
            An uploaded image's key is its id; one made from a try-on's file part (T7), whose id
            the caller never sees, is keyed ``<generation id>/person``.
        generations: ``{account: {generationId: record}}``, kept until a purge.
        credits: ``{account: (settled, [refund times])}``: the balance at ``t`` is ``settled``
            plus the refunds due by ``t`` (T16).
        data: ``{sha256: bytes}``: the bytes of every upload seen, to answer media with.
    """

    def __init__(
        self,
        *,
        max_request_bytes: int,
        initial_credits: int = DEFAULT_CREDITS,
        generation_ms: int = DEFAULT_GENERATION_SECONDS * 1000,
    ) -> None:
        super().__init__(max_request_bytes=max_request_bytes)
        self.initial_credits = initial_credits
        self.generation_ms = generation_ms
        self.images: dict[str, dict[str, dict[str, Any]]] = {}
        self.generations: dict[str, dict[str, dict[str, Any]]] = {}
        self.credits: dict[str, tuple[int, list[int]]] = {}
        self.data: dict[str, bytes] = {}

    # -- reads ----------------------------------------------------------------------------------

    def balance(self, account: str, now: int) -> int:
        """T16: the balance at ``now``: the settled credits and the refunds due."""
        settled, refunds = self.credits.get(account, (self.initial_credits, []))
        return settled + sum(1 for moment in refunds if moment <= now)

    def live_image(self, account: str, key: str, now: int) -> dict[str, Any] | None:
        """T4: an image is gone at ``expiresAt`` (and for every other account)."""
        image = self.images.get(account, {}).get(key)
        return None if image is None or now >= image["expiresAt"] else image

    def live_generation(self, account: str, generation_id: str, now: int) -> dict[str, Any] | None:
        """T13, T22: a generation is gone at ``expiresAt`` (and for every other account)."""
        generation = self.generations.get(account, {}).get(generation_id)
        return None if generation is None or now >= generation["expiresAt"] else generation

    @staticmethod
    def status(generation: Mapping[str, Any], now: int) -> str:
        """T12, T14: ``PENDING``, then ``PROCESSING``, then how it ends."""
        if now < generation["processingAt"]:
            return PENDING
        if now < generation["finishedAt"]:
            return PROCESSING
        return str(generation["outcome"])

    def view(self, generation_id: str, generation: Mapping[str, Any], now: int) -> dict[str, Any]:
        """T12, T15, T18: what a poll answers at ``now``."""
        status = self.status(generation, now)
        changed = {
            PENDING: generation["createdAt"],
            PROCESSING: generation["processingAt"],
        }.get(status, generation["finishedAt"])
        return {
            "generationId": generation_id,
            "status": status,
            "productExternalId": generation["productExternalId"],
            "createdAt": generation["createdAt"],
            "updatedAt": changed,
            # The result is the person image unchanged (T14), until it is erased (T18).
            "result": generation["person"] if status == COMPLETED else None,
            "errorCode": generation["errorCode"] if status == FAILED else None,
            "errorMessage": status == FAILED,
        }

    def get_generation(self, account: str, generation_id: str, *, now: int) -> Outcome:
        """T12, T13: the generation as it is now, else ``GENERATION_NOT_FOUND``."""
        generation = self.live_generation(account, generation_id, now)
        if generation is None:
            return _error("GENERATION_NOT_FOUND")
        return ("ok", self.view(generation_id, generation, now))

    def image_media(self, account: str, image_id: str, *, now: int) -> tuple[Any, ...] | None:
        """T3: what a person image's URL serves: its bytes and type while it is kept."""
        image = self.live_image(account, image_id, now)
        if image is None:
            return None
        return (image["sha"], image["type"], None)

    def result_media(self, account: str, generation_id: str, *, now: int) -> tuple[Any, ...] | None:
        """T15: what a result URL serves: the result while it is kept, the URL it came from."""
        generation = self.live_generation(account, generation_id, now)
        if generation is None:
            return None
        result = self.view(generation_id, generation, now)["result"]
        if result is None:
            return None
        kind, value = result
        if kind == "url":
            return (_sha256(b""), None, value)
        return (value, image_type(self.data[value]), None)

    # -- writes ---------------------------------------------------------------------------------

    def upload(
        self, account: str, fields: Mapping[str, Any], *, now: int, image_id: str | None
    ) -> Outcome:
        """T1-T4: store a person image from valid upload fields; ``image_id`` is the library's."""
        file = fields["file"]
        size = sum(
            len(value.data if isinstance(value, cc.Upload) else value)
            for value in fields.values()
            if isinstance(value, cc.Upload | str | bytes)
        )
        if size > self.max_request_bytes:
            return _error("PAYLOAD_TOO_LARGE")
        crop = _text(fields.get("crop", True))
        days = _text(fields.get("keepForDays", fields.get("retentionDays", DEFAULT_KEEP_FOR_DAYS)))
        customer = _text(fields.get("externalUserId", fields.get("customerId")))
        if image_id is None:
            return ("ok", "a new person image")
        sha = _sha256(file.data)
        self.data[sha] = file.data
        record = {
            "sha": sha,
            "type": image_type(file.data),
            "crop": crop in (True, "true"),
            "customer": customer,
            "createdAt": now,
            "expiresAt": now + int(days) * DAY_MS,
        }
        self.images.setdefault(account, {})[image_id] = record
        self.blobs.setdefault(account, set()).add(sha)
        warnings = [["DEPRECATED_FIELD", old] for old in ("retentionDays", "customerId")]
        return ("ok", {**record, "warnings": sorted(w for w in warnings if w[1] in fields)})

    def start(
        self,
        account: str,
        payload: Mapping[str, Any],
        files: Mapping[str, cc.Upload],
        *,
        now: int,
        body_bytes: int = 0,
        generation_id: str | None = None,
        one_shot_id: str | None = None,
    ) -> Outcome:
        """T5-T16: start a try-on from a valid body.

        Args:
            account: the tenant.
            payload: a valid body (the dict, even when the library was sent its bytes).
            files: the file parts.
            now: the time of the try-on.
            body_bytes: the size of the raw body when the library was sent its bytes (R33).
            generation_id: the id the library gave the generation; ``None`` when it refused.
            one_shot_id: the id the library gave a one-shot product (R22c).
        """
        if self._too_large(files, body_bytes):
            return _error("PAYLOAD_TOO_LARGE")
        single = "product" in payload  # T6: the deprecated single product object
        item = payload["product"] if single else payload["products"][0]
        if "person" in payload:
            source = payload["person"]["image"]["source"]
        else:  # T6: customer: {id | url | fileKey}, or customer: {source: {...}}
            source = payload["customer"].get("source", payload["customer"])
        person_part = source.get("fileKey")
        product_files = {name: part for name, part in files.items() if name != person_part}
        external_id = item.get("externalId")
        reference = external_id is not None and not (PAYLOAD_KEYS - {"externalId"}) & item.keys()

        # T9: the product item's own checks that need the stored product (R3, R5, R22b) ...
        current = None if external_id is None else self.live(account, external_id, now)
        if not reference and external_id is not None and external_id.startswith(ANON_PREFIX):
            return _error("RESERVED_EXTERNAL_ID")
        images = self._images(item, product_files)
        if not reference and (images == [] or (current is None and images is None)):
            return _error("PRODUCT_IMAGES_REQUIRED")
        # ... then the person (T7), the credits (T16) and a reference to no live product (R22a).
        image = None
        if "id" in source:
            image = self.live_image(account, source["id"], now)
            if image is None:
                return _error("VALIDATION_FAILED")
            asked = payload.get("externalUserId", payload.get("customerId"))
            if None not in (asked, image["customer"]) and asked != image["customer"]:
                return _error("VALIDATION_FAILED")  # T18: one customer per generation
        elif "url" in source and unfetchable(source["url"]):
            return _error("CUSTOMER_IMAGE_FETCH_FAILED")
        if self.balance(account, now) < 1:
            return _error("INSUFFICIENT_CREDITS")
        if reference and current is None:
            return _error("PRODUCT_NOT_FOUND")
        if generation_id is None:
            return ("ok", "a new generation")

        used = super().use(account, item, product_files, now=now, one_shot_id=one_shot_id)
        if used[0] != "ok" or not isinstance(used[1], dict):
            return used
        product = used[1]["product"]
        customer = payload.get("externalUserId", payload.get("customerId"))
        if customer is None and image is not None:
            customer = image["customer"]  # T18: what is made of a tagged photo is tagged
        output = payload.get("output") or {}
        days = output.get("keepForDays", payload.get("retentionDays", DEFAULT_KEEP_FOR_DAYS))
        expires = now + days * DAY_MS
        if image is not None:
            person: tuple[str, str] = ("sha", image["sha"])
        elif person_part is not None:  # T7: a person image of the account, kept as long
            data = files[person_part].data
            person = ("sha", _sha256(data))
            self.data[person[1]] = data
            self.images.setdefault(account, {})[f"{generation_id}/person"] = {
                "sha": person[1],
                "type": image_type(data),
                "crop": True,
                "customer": customer,
                "createdAt": now,
                "expiresAt": expires,
            }
            self.blobs.setdefault(account, set()).add(person[1])
        else:
            person = ("url", source["url"])

        # T14: a product titled "mock" is done at once; a product image under .invalid fails.
        failing = any(unfetchable(entry["sourceUrl"]) for entry in product["images"])
        mock = product["title"] == MOCK_TITLE
        finished = now if mock else now + self.generation_ms
        generation = {
            "productExternalId": product["externalId"],
            "person": person,
            "customer": customer,
            "createdAt": now,
            "processingAt": now if mock else now + self.generation_ms // 4,
            "finishedAt": finished,
            "outcome": FAILED if failing and not mock else COMPLETED,
            "errorCode": PRODUCT_IMAGE_FETCH_FAILED if failing and not mock else None,
            "expiresAt": expires,
            # T15: the snapshot keeps the product's uploaded images while the generation lives.
            "uploads": {
                entry["sourceUrl"][len("upload://") :]
                for entry in product["images"]
                if entry["sourceUrl"].startswith("upload://")
            },
        }
        self.generations.setdefault(account, {})[generation_id] = generation
        # T16: one credit reserved, given back when the generation ends FAILED.
        settled, refunds = self.credits.get(account, (self.initial_credits, []))
        if generation["outcome"] == FAILED:
            refunds = [*refunds, finished]
        self.credits[account] = (settled - 1, refunds)

        prefix = "product." if single else "products.0."
        warnings = [
            [code, path if code == "UNUSED_FILE" else prefix + path]
            for code, path in self._warnings(item, product_files)
        ]
        warnings += [["DEPRECATED_PRODUCT_FIELD", "product"]] if single else []
        warnings += [
            ["DEPRECATED_FIELD", old]
            for old in ("customer", "customerId", "useWatermark", "retentionDays")
            if old in payload
        ]
        return (
            "ok",
            {
                **used[1],
                "generation": self.view(generation_id, generation, now),
                "warnings": sorted(warnings),
            },
        )

    def add_credits(self, account: str, amount: int, *, now: int) -> Outcome:
        """T16, T17: a top-up (or a withdrawal); the balance never goes below 0."""
        balance = self.balance(account, now) + amount
        if balance < 0:
            return _error("VALIDATION_FAILED")
        settled, refunds = self.credits.get(account, (self.initial_credits, []))
        self.credits[account] = (settled + amount, refunds)
        return ("ok", balance)

    def erase_customer(self, account: str, customer: str) -> int:
        """T18, T19: delete the customer's person images, strip its generations; count them."""
        images = self.images.get(account, {})
        gone = [key for key, image in images.items() if image["customer"] == customer]
        for key in gone:
            del images[key]
        stripped = 0
        for generation in self.generations.get(account, {}).values():
            if generation["customer"] == customer:
                generation.update(customer=None, person=None)
                stripped += 1
        return len(gone) + stripped

    def purge_all(self, *, now: int) -> tuple[int, int, int]:
        """R21, T22: drop what has expired, then the blobs nothing refers to; count each kind."""
        products = super().purge(now=now)
        counts = [products]
        for kind in (self.images, self.generations):
            removed = 0
            for records in kind.values():
                for key in [k for k, record in records.items() if now >= record["expiresAt"]]:
                    del records[key]
                    removed += 1
            counts.append(removed)
        for account in self.blobs:
            self.blobs[account] |= {image["sha"] for image in self.images.get(account, {}).values()}
            self.blobs[account] |= {
                generation["person"][1]
                for generation in self.generations.get(account, {}).values()
                if generation["person"] is not None and generation["person"][0] == "sha"
            }
            for generation in self.generations.get(account, {}).values():
                self.blobs[account] |= generation["uploads"]
        return counts[0], counts[1], counts[2]

    def purge(self, *, now: int) -> int:
        """R21, T22: a catalog's purge reclaims the try-on state too; it counts products."""
        return self.purge_all(now=now)[0]


# -- comparing ------------------------------------------------------------------------------------


def _media(media: Any) -> tuple[Any, ...] | None:
    """What a media URL serves: the SHA-256 of its bytes (of none, for a redirect), type, URL."""
    if media is None:
        return None
    return (_sha256(media.data), media.mime_type, media.redirect)


def _view(view: Any) -> dict[str, Any]:
    """A :class:`~catalog_core.tryon.GenerationView` in the model's terms."""
    result = None
    if view.result is not None:
        result = ("sha", view.result.sha256) if view.result.sha256 else ("url", view.result.url)
    return {
        "generationId": view.generation_id,
        "status": view.status,
        "productExternalId": view.product_external_id,
        "createdAt": epoch_ms(view.created_at),
        "updatedAt": epoch_ms(view.updated_at),
        "result": result,
        "errorCode": view.error_code,
        "errorMessage": bool(view.error_message),
    }


def _outcome(result: Any, error: cc.CatalogError | None, what: Callable[[Any], Any]) -> Outcome:
    if error is not None:
        return ("error", error.code, error.status)
    return ("ok", what(result))


# -- the machine ----------------------------------------------------------------------------------

#: ``generation_seconds`` as an example draws it: the default, at once, a few milliseconds (a
#: quarter of which is one), a fraction, ten minutes.
_GENERATION_SECONDS: Final = st.sampled_from([2, 0, 0.004, 1.5, 600])
#: A new account's balance: the default, or few enough that ``INSUFFICIENT_CREDITS`` comes.
_CREDITS: Final = st.sampled_from([10, 0, 1, 2, 3])
_UNFETCHABLE_IMAGE: Final = {"source": {"url": "https://cdn.shop.invalid/front.jpg"}}


class TryOnStateMachine(CatalogMachineBase):
    """Drive ``TryOn`` and :class:`ReferenceTryOn` alike; after every step, they must agree.

    The rules and checks of :class:`~catalog_core.testing.state_machine.CatalogMachineBase`
    run too, on the same catalog (the catalog's other rules are its own machine's). After every
    step: every product, listing and blob of every account, as in the catalog's machine; every
    account's balance; every generation the model holds, polled in its account (status,
    timestamps, result, error, or ``GENERATION_NOT_FOUND`` once it has expired); what the URL of
    every uploaded image and of every result serves (T3, T15). Each step also compares its own
    answer: uploads (the image's id, type, crop, customer, lifetime and warnings), try-ons (the
    generation, the product, its version, ``created`` and warnings, or the code), polls from any
    account (T13), top-ups, erasure counts and purge counts.

    The clock never steps back here: the try-on rule book says nothing of a clock that does.

    Attributes:
        tryon: the :class:`~catalog_core.tryon.TryOn` under test.
        model: the :class:`ReferenceTryOn` it is compared with.
    """

    clock_steps_back = False

    def __init__(self) -> None:
        super().__init__()
        self.model: ReferenceTryOn = ReferenceTryOn(max_request_bytes=self.limits.max_request_bytes)
        self.tryon = TryOn(self.catalog)
        self.customers: list[str] = ["shopper-1", "shopper-2"]
        self.drawing_for = ""  # the account a body is being drawn for
        #: Every uploaded image: (account, the library's value), in upload order.
        self.uploaded: list[tuple[str, Any]] = []
        #: Every accepted generation: (account, id, the path segment of its result URL).
        self.started: list[tuple[str, str, str]] = []
        #: The ids of the one-shot products try-ons made.
        self.one_shots: list[str] = []
        self.uploads: st.SearchStrategy[UploadRequest] = st.nothing()
        self.bodies: st.SearchStrategy[TryOnRequest] = st.nothing()
        self.refused_uploads: st.SearchStrategy[InvalidUploadRequest] = st.nothing()
        self.refused_bodies: st.SearchStrategy[InvalidTryOnRequest] = st.nothing()

    @initialize(seconds=_GENERATION_SECONDS, credits=_CREDITS, customer=customer_ids())
    def configure_the_flow(self, seconds: float, credits: int, customer: str) -> None:
        """T14, T16: the engine's duration and a new account's balance, for this example."""
        engine = LocalEngine(generation_seconds=seconds)
        self.tryon = TryOn(self.catalog, engine=engine, initial_credits=credits)
        self.model.initial_credits = credits
        self.model.generation_ms = int(seconds * 1000)
        self.customers.append(customer)
        customers = st.sampled_from(self.customers)
        self.uploads = upload_fields(external_user_id=customers)
        self.refused_uploads = invalid_upload_fields(limits=self.limits)
        # Ids of images of the account the body is drawn for, now and then of another (T4).
        image_ids = st.tuples(st.integers(0, 63), st.integers(0, 3)).map(self._image_id)
        self.bodies = st.deferred(
            lambda: tryon_bodies(
                item=st.one_of(
                    self.references,
                    self.inline_items,
                    use_items(kind="one_shot"),
                    self._engine_items(),
                    self._engine_items(),
                    st.integers(0, 63).map(self._one_shot_reference),
                ),
                image_id=image_ids,
                external_user_id=customers,
            )
        )
        self.refused_bodies = st.deferred(
            lambda: invalid_tryon_bodies(limits=self.limits, external_id=self.pool_ids)
        )

    def _image_id(self, choice: tuple[int, int]) -> str:
        """An uploaded image's id, expired and erased ones included (T4, T18).

        Of the account the body is drawn for, but once in four of any account (T4: another
        account's image is unknown).
        """
        pick, anyone = choice
        images = [i for a, i in self.uploaded if anyone == 0 or a == self.drawing_for]
        if not images:
            return "img_" + "0" * 24  # an id no image has
        return str(images[pick % len(images)].image_id)

    def _one_shot_reference(self, pick: int) -> UseRequest:
        """R22a, R22c: a reference to a one-shot product made before (in any account)."""
        made = self.one_shots or self.pool
        return UseRequest({"externalId": made[pick % len(made)]}, kind="reference")

    def _engine_items(self) -> st.SearchStrategy[UseRequest]:
        """T14: items whose product is titled ``"mock"``, or has an image under ``.invalid``."""

        def item(external_id: str | None, title: str, bad: bool, url: str) -> UseRequest:
            images = [{"source": {"url": url}}] + ([_UNFETCHABLE_IMAGE] if bad else [])
            payload = {"externalId": external_id, "title": title, "images": images}
            return UseRequest(payload, kind="one_shot" if external_id is None else "inline")

        return st.builds(
            item,
            st.none() | self.pool_ids,
            st.sampled_from([MOCK_TITLE, "Mock", "shirt"]),
            st.sampled_from([True, True, False]),
            urls(),
        )

    # -- person images (T1-T4) ------------------------------------------------------------------

    @rule(account=CatalogMachineBase.account_names, data=st.data(), typed=st.booleans())
    def upload_a_person_image(self, account: str, data: st.DataObject, typed: bool) -> None:
        """T1-T4: an upload, from form fields or typed arguments, stores the image they ask for."""
        request = data.draw(self.uploads, label="request")
        self._see_files({"file": request.file})
        now = self.now()
        if typed:
            image, error = _call(
                self.tryon.upload_image,
                account,
                request.file,
                crop=request.crop,
                keep_for_days=request.keep_for_days,
                customer_id=request.customer_id,
            )
            fields: Mapping[str, Any] = {
                "file": request.file,
                "crop": request.crop,
                "keepForDays": request.keep_for_days,
                "externalUserId": request.customer_id,
            }
            warnings: list[list[str]] = []
        else:
            result, error = _call(self.tryon.upload_form, account, request.fields)
            image = None if result is None else result.image
            fields = request.fields
            warnings = [] if result is None else sorted([w.code, w.path] for w in result.warnings)
        actual = _outcome(image, error, lambda image: self._image(image, warnings))
        if image is not None:
            if not IMAGE_ID.fullmatch(image.image_id) or image.account != account:
                raise AssertionError(f"T3: image id {image.image_id!r} of {image.account!r}")
            self.uploaded.append((account, image))
            ref = self.tryon.image_ref(image)
            record, token, sealed = ref.split(".")
            wrong = f"{record}.{token[:-1]}{'0' if token[-1] != '0' else '1'}.{sealed}"
            _expect_same(self.tryon.open_media(wrong), None, "T3: a URL with a wrong token")
        fields = {key: value for key, value in fields.items() if value is not None}
        expected = self.model.upload(
            account, fields, now=now, image_id=None if image is None else image.image_id
        )
        _expect_same(actual, expected, "upload")

    @staticmethod
    def _image(image: Any, warnings: list[list[str]]) -> dict[str, Any]:
        return {
            "sha": image.sha256,
            "type": image.mime_type,
            "crop": image.crop,
            "customer": image.customer_id,
            "createdAt": epoch_ms(image.created_at),
            "expiresAt": epoch_ms(image.expires_at),
            "warnings": warnings,
        }

    @rule(account=CatalogMachineBase.account_names, data=st.data())
    def upload_refused(self, account: str, data: st.DataObject) -> None:
        """T1, T2, T9: a refused upload gives exactly its code and stores nothing."""
        case = data.draw(self.refused_uploads, label="case")
        parts = {k: v for k, v in case.fields.items() if isinstance(v, cc.Upload)}
        self._see_files(parts)
        _, error = _call(self.tryon.upload_form, account, case.fields)
        actual = None if error is None else ("error", error.code, error.status)
        _expect_same(actual, _error(case.code), f"refused upload expecting {case.code}")

    # -- try-ons (T5-T16) -----------------------------------------------------------------------

    @rule(account=CatalogMachineBase.account_names, data=st.data(), raw=st.booleans())
    def start_a_try_on(self, account: str, data: st.DataObject, raw: bool) -> None:
        """T5-T16: a try-on is accepted (a generation, a credit, the product's use) or refused."""
        self.drawing_for = account
        request = data.draw(self.bodies, label="request")
        self._see_files(request.files)
        body = request.body() if raw else request.payload
        now = self.now()
        result, error = _call(self.tryon.start, account, body, request.files)
        generation_id = one_shot_id = None
        if result is not None:
            generation_id = result.generation.generation_id
            if not GENERATION_ID.fullmatch(generation_id):
                raise AssertionError(f"T10: generation id {generation_id!r}")
            if request.item.kind == "one_shot":
                one_shot_id = result.product_external_id
                self._see(one_shot_id)
                self.one_shots.append(one_shot_id)
            ref = self.tryon.result_ref(account, result.generation)
            self.started.append((account, generation_id, ref))
        expected = self.model.start(
            account,
            request.payload,
            request.files,
            now=now,
            body_bytes=len(body) if isinstance(body, bytes) else 0,
            generation_id=generation_id,
            one_shot_id=one_shot_id,
        )
        actual = _outcome(result, error, self._started)
        _expect_same(actual, expected, f"try-on with a {request.item.kind} item")

    @staticmethod
    def _started(result: Any) -> dict[str, Any]:
        product = result.product
        return {
            "account": product.account,
            "created": result.created,
            "product": cc.to_wire(product),
            "version": product.version,
            "generation": _view(result.generation),
            "warnings": sorted([w.code, w.path] for w in result.warnings),
        }

    @rule(account=CatalogMachineBase.account_names, data=st.data())
    def start_refused(self, account: str, data: st.DataObject) -> None:
        """T9: a refused try-on gives exactly its code and changes nothing (no credit taken)."""
        case = data.draw(self.refused_bodies, label="case")
        self._see_files(case.files)
        _, error = _call(self.tryon.start, account, case.payload, case.files)
        actual = None if error is None else ("error", error.code, error.status)
        _expect_same(actual, _error(case.code), f"refused try-on expecting {case.code}")

    # -- generations and credits (T12-T17) ------------------------------------------------------

    @precondition(lambda self: bool(self.started))
    @rule(account=CatalogMachineBase.account_names, pick=st.integers(0, 63))
    def poll_a_generation(self, account: str, pick: int) -> None:
        """T12, T13: a poll answers the generation as it is now, in its own account only."""
        _, generation_id, _ = self.started[pick % len(self.started)]
        view, error = _call(self.tryon.get_generation, account, generation_id)
        actual = _outcome(view, error, _view)
        expected = self.model.get_generation(account, generation_id, now=self.now())
        _expect_same(actual, expected, f"poll of {generation_id} from {account!r}")

    @rule(account=CatalogMachineBase.account_names, amount=st.integers(-3, 5))
    def add_credits(self, account: str, amount: int) -> None:
        """T16, T17: a top-up, or a withdrawal that may not take the balance below 0."""
        balance, error = _call(self.tryon.add_credits, account, amount)
        actual = _outcome(balance, error, lambda balance: balance)
        _expect_same(actual, self.model.add_credits(account, amount, now=self.now()), "top-up")

    @rule(account=CatalogMachineBase.account_names, pick=st.integers(0, 7))
    def erase_a_customer(self, account: str, pick: int) -> None:
        """T18, T19: erasure removes the customer's images and results, in one account."""
        customer = self.customers[pick % len(self.customers)]
        erased = self.tryon.erase_customer(account, customer)
        _expect_same(erased, self.model.erase_customer(account, customer), "erasure count")

    @rule(microseconds=st.one_of(st.just(0), st.integers(0, 8 * 86_400_000_000)))
    def wait_and_purge_the_flow(self, microseconds: int) -> None:
        """T22: time passes, then the purge reclaims expired products, images and generations."""
        self.clock.advance(microseconds=microseconds)
        counts = self.tryon.purge_expired()
        actual = (counts.products, counts.person_images, counts.generations)
        _expect_same(actual, self.model.purge_all(now=self.now()), "purge counts")

    @rule(fraction=st.integers(0, 12))
    def wait_a_little(self, fraction: int) -> None:
        """T14: a few eighths of a generation's duration, so that polls meet every status."""
        self.clock.advance(milliseconds=self.model.generation_ms * fraction / 8)

    @rule(pick=st.integers(0, 63), offset_ms=st.sampled_from([-1, 0, 1]))
    def wait_until_a_status_change(self, pick: int, offset_ms: int) -> None:
        """T12, T14, T16: to just before, at or just after a generation's status changes.

        When it leaves ``PENDING``, or ends (and its credit comes back, if it failed); forward
        only.
        """
        self._wait_until(pick, offset_ms, ("processingAt", "finishedAt"))

    @rule(pick=st.integers(0, 63), offset_ms=st.sampled_from([-1, 0, 1]))
    def wait_until_a_try_on_expiry(self, pick: int, offset_ms: int) -> None:
        """T4, T15, T22: to just before, at or just after a generation or an image expires."""
        self._wait_until(pick, offset_ms, ("expiresAt",))

    def _wait_until(self, pick: int, offset_ms: int, keys: tuple[str, ...]) -> None:
        now = self.now()
        moments = sorted(
            moment + offset_ms
            for records in (*self.model.generations.values(), *self.model.images.values())
            for record in records.values()
            for key in keys
            if (moment := record.get(key)) is not None and moment + offset_ms > now
        )
        if moments:
            self.clock.now = EPOCH + timedelta(milliseconds=moments[pick % len(moments)])

    # -- after every step -----------------------------------------------------------------------

    @invariant()
    def agrees_on_balances_generations_and_media(self) -> None:
        """T3, T12, T15, T16, T22: balances, polls and media URLs read as in the model."""
        now = self.now()
        for account in self.accounts:
            balance = self.model.balance(account, now)
            _expect_same(self.tryon.credits(account), balance, f"balance of {account!r}")
        for account, generation_id, ref in self.started:
            view, error = _call(self.tryon.get_generation, account, generation_id)
            _expect_same(
                _outcome(view, error, _view),
                self.model.get_generation(account, generation_id, now=now),
                f"generation {generation_id}",
            )
            _expect_same(
                _media(self.tryon.open_media(ref)),
                self.model.result_media(account, generation_id, now=now),
                f"result URL of {generation_id}",
            )
        for account, image in self.uploaded:
            _expect_same(
                _media(self.tryon.open_media(self.tryon.image_ref(image))),
                self.model.image_media(account, image.image_id, now=now),
                f"URL of image {image.image_id}",
            )


def make_tryon_state_machine(
    repository_factory: Callable[[], cc.Repository],
    *,
    dispose: Callable[[cc.Repository], None] | None = None,
) -> type[TryOnStateMachine]:
    """Return a :class:`TryOnStateMachine` on the backend ``repository_factory`` makes.

    Args:
        repository_factory: returns a fresh, empty
            :class:`~catalog_core.repository.base.TryOnRepository`; called once per example.
        dispose: releases a repository after its example; by default ``repository.close()``.

    Returns:
        A state machine class; run it with ``.TestCase`` or
        ``hypothesis.stateful.run_state_machine_as_test``.
    """
    return machine_on(TryOnStateMachine, repository_factory, dispose)
