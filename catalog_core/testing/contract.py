"""The backend conformance suite: the storage behaviour every rule of the rule book relies on.

A backend's test file subclasses :class:`RepositoryContract` under a name pytest collects and says
how to make (and, if need be, dispose of) a repository::

    class TestMyRepository(RepositoryContract):
        def make_repository(self, tmp_path):
            return MyRepository(tmp_path / "catalog.db")

Each test drives the :class:`~catalog_core.Repository` methods directly, or a
:class:`~catalog_core.Catalog` on the repository with a :class:`FakeClock`, and names in its
docstring the rule of ``SPEC.md`` it pins. A backend whose storage can be opened twice (a file, a
server) should also override :meth:`RepositoryContract.make_second_repository`, so that writers on
separate handles are tested against each other.

Beyond the protocol's docstrings, the suite expects what the shipped backends do with a write that
is inconsistent in itself (a product stored under another key, or naming a blob that was neither
stored nor given): refuse it with ``ValueError`` and store nothing. A write that names a stored,
unreferenced blob without giving it may meet a purge that removes it first: that too is refused.

The tests named after the try-on rules (``test_t…``) drive the
:class:`~catalog_core.repository.base.TryOnRepository` methods: person images, generations and
credit balances. A backend that does not store the try-on flow's state sets
:attr:`RepositoryContract.stores_tryon` to ``False``, and those tests are skipped.

The suite accepts everything the protocol allows: it never counts how often a change is called
(a backend may retry, or run a change as a dry run first), only what each call was handed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import pathlib
import string
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs
import pytest

import catalog_core as cc
from catalog_core.errors import InsufficientCredits
from catalog_core.images import make_blob
from catalog_core.model import product_row
from catalog_core.repository.base import (
    Change,
    GenerationsRepository,
    PurgeCounts,
    TryOnChange,
    TryOnKeys,
    TryOnRepository,
    TryOnState,
    TryOnWrite,
)
from catalog_core.testing._book import IMAGE_HEADERS
from catalog_core.testing.clock import START, FakeClock
from catalog_core.tryon.model import Credits, Generation, Person, PersonImage, ProductSnapshot
from catalog_core.tryon.rules import erased, reserve

__all__ = ["RepositoryContract"]

ACCOUNT: Final = "acme"
OTHER: Final = "globex"
URL: Final = "https://cdn.example/front.jpg"
IMAGES: Final = ({"source": {"url": URL}},)
_URL_IMAGES: Final = (cc.Image(URL, 0),)
_MS: Final = timedelta(milliseconds=1)
_DAY: Final = timedelta(days=1)
_MAX_BLOB_BYTES: Final = 10 * 2**20

# The leading bytes each recognised image type is sniffed from (R15).
_MAGIC: Final = {mime: head for mime, head in IMAGE_HEADERS.items() if mime != "image/heif"}

# Ids whose code-point order differs from case-insensitive, UTF-16 and normalised orders (R24).
LISTING_IDS: Final = (
    "B",
    "a",
    "é",
    "e\u0301",
    "😀",
    "ｚ",
    "a-",
    "a0",
    "A",
    "aa",
    "~",
    "\U0010fffd",
    "_x",
    "Z",
    "10",
    "9",  # after "10": not natural (numeric) order
)
# Ids a backend could trim, fold, normalise or truncate (R2); all are valid and all distinct.
UNICODE_IDS: Final = (
    "😀",
    "商品-42",
    "é",
    "e\u0301",
    "Case",
    "case",
    " padded ",
    "padded",
    " padded",
    "padded ",
    "שלום",
    "zero\u200bwidth",
    "_ANON_is-an-ordinary-id",
    "_anon",
    "x" * 256,
    "😀" * 256,
    "\U0010fffd",
)
# Metadata a backend could mangle: empty keys, nesting, big ints, floats, escapes (R9).
UNICODE_METADATA: Final[dict[str, Any]] = {
    "": "an empty key",
    "名前": {"ネスト": ["😀", "e\u0301", "é", "\u200b", {"": ""}]},
    "big": int("9" * 4299),
    "negative big": -int("8" * 4299),
    "ints": [0, -1, 2**63, -(2**63) - 1, 2**64],
    "floats": [0.1, -0.0, 2.5, 1e308, 5e-324, 1.7976931348623157e308, 123456789.12345679],
    "plain": [True, False, None, "", []],
    "escapes": "\"'\\/\n\t\u2028",
    "deep": {"a": {"b": {"c": {"d": {"e": {"f": ["g", {"h": "ℏ"}]}}}}}},
}
CLASSIFICATIONS: Final[dict[str, Any]] = {"颜色": "红", "": {"😀": [1, 2.5, None, True]}}
# Separators a backend could join an account and an id with, or list an account's keys by (R1):
# every ASCII punctuation character and the space (SQL LIKE and GLOB wildcards among them),
# multi-character joins, escaped forms of "/", and non-ASCII look-alikes. Accounts and ids may
# hold every one of them; only control characters (U+0000-U+001F, U+007F) are refused in both.
SEPARATORS: Final = (
    *string.punctuation,
    " ",
    "::",
    "//",
    "->",
    "%2F",
    "\\/",
    "\u0085",  # NEL, a C1 control: valid in ids and accounts
    "\u00a0",
    "\u00b7",
    "\u2028",
    "\u2215",
    "\u241f",
    "\uff0f",
    "\U0001f517",
)


class _Refused(Exception):
    """Raised by a test's change to refuse a write."""


def _compact_size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _canonical(value: object) -> str:
    """JSON text that tells ``1`` from ``1.0`` and ``True`` from ``1``, whatever the key order."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _blob(n: int, mime_type: str = "image/jpeg", size: int = 64) -> cc.Blob:
    """Return the ``n``-th distinct valid image of ``mime_type``."""
    head = _MAGIC[mime_type] + n.to_bytes(8, "big")
    return make_blob(f"file-{n}", head + bytes(max(0, size - len(head))), max_bytes=_MAX_BLOB_BYTES)


def _product(
    external_id: str,
    *,
    account: str = ACCOUNT,
    images: tuple[cc.Image, ...] = _URL_IMAGES,
    expires_at: datetime | None = None,
    version: int = 1,
    at: datetime = START,
    **fields: Any,
) -> cc.Product:
    return cc.Product(
        account=account,
        external_id=external_id,
        created_at=at,
        updated_at=at,
        images=images,
        expires_at=expires_at,
        version=version,
        **fields,
    )


def _images_of(*blobs: cc.Blob) -> tuple[cc.Image, ...]:
    return tuple(cc.Image(blob.source_url, order) for order, blob in enumerate(blobs))


def _storing(product: cc.Product | None, *blobs: cc.Blob) -> Change:
    """Return a change that stores ``product`` and ``blobs`` whatever is stored now."""

    def change(_: cc.Product | None) -> cc.Write:
        return cc.Write(product, blobs)

    return change


def _put(repository: cc.Repository, product: cc.Product, *blobs: cc.Blob) -> cc.Product:
    stored = repository.write(product.account, product.external_id, _storing(product, *blobs))
    if stored is None:
        raise AssertionError(f"R26: writing {product.external_id!r} returned None, not the product")
    return stored


def _drop(repository: cc.Repository, account: str, external_id: str) -> None:
    left = repository.write(account, external_id, lambda _: cc.Write(None))
    if left is not None:
        raise AssertionError(f"R26: deleting {external_id!r} returned {left!r}, not None")


def _recording(
    product: cc.Product | None, *blobs: cc.Blob
) -> tuple[Change, list[cc.Product | None]]:
    """Return a change that stores ``product`` and ``blobs``, and the list of what it was handed."""
    seen: list[cc.Product | None] = []

    def change(stored: cc.Product | None) -> cc.Write:
        seen.append(stored)
        return cc.Write(product, blobs)

    return change, seen


def _each_call_saw(
    seen: Sequence[cc.Product | None], expected: cc.Product | None, write: str = "the write"
) -> None:
    """Check that a change was called, and handed ``expected`` every time.

    ``Repository.write`` lets a backend call a change more than once (a retry, a dry run), so the
    contract never counts the calls: it checks what every one of them was handed.
    """
    assert seen, f"{write} never called its change"
    wrong = [stored for stored in seen if stored != expected]
    assert not wrong, f"{write} handed its change {wrong[0]!r}, not {expected!r}"


def _separator_keys() -> tuple[list[tuple[str, str]], dict[tuple[str, str], tuple[str, str]]]:
    """Keys that a string joined with a separator cannot tell apart, each with its twin (R1).

    For each separator ``s``: ``("a{s}b", "c")`` and ``("a", "b{s}c")``, which ``account + s + id``
    makes one key; for the common ones, also ``("a{s}", "c")`` and ``("a", "{s}c")``, the same with
    ``s`` doubled; with no separator at all, ``("ab", "c")`` and ``("a", "bc")``. Accounts ``a``,
    ``a{s}`` and ``a{s}b`` are prefixes of each other, as are the ids ``c``, ``c/`` and ``c//``.

    Returns:
        Every key, and each paired key's twin.
    """
    pairs = [(("ab", "c"), ("a", "bc"))]
    for sep in SEPARATORS:
        pairs.append(((f"a{sep}b", "c"), ("a", f"b{sep}c")))
        if sep in "/:|." or len(sep) > 1:
            pairs.append(((f"a{sep}", "c"), ("a", f"{sep}c")))
    twins = {one: other for pair in pairs for one, other in (pair, pair[::-1])}
    keys = [key for pair in pairs for key in pair] + [("a", "c"), ("a", "c/"), ("a", "c//")]
    if len(set(keys)) != len(keys):
        raise ValueError("SEPARATORS makes the same key twice")
    return keys, twins


def _ids(products: Sequence[cc.Product]) -> list[str]:
    return [p.external_id for p in products]


def _live_ids(
    repository: cc.Repository, account: str = ACCOUNT, now: datetime = START
) -> list[str]:
    return _ids(repository.list_live(account, after=None, limit=1000, now=now))


def _increment(stored: cc.Product | None) -> cc.Write:
    """A read-merge-write: one more version and one more count in the metadata."""
    stored = _required(stored)
    if stored.metadata is None:
        raise AssertionError(f"R26: the change was handed {stored!r}, which lost its count")
    count = stored.metadata["n"] + 1
    return cc.Write(attrs.evolve(stored, version=stored.version + 1, metadata={"n": count}))


def _in_threads(work: Callable[[int], None], threads: int) -> None:
    """Run ``work(0)`` ... ``work(threads - 1)`` at once; re-raise the first failure."""
    start = threading.Barrier(threads, timeout=30)

    def run(n: int) -> None:
        start.wait()
        work(n)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(run, n) for n in range(threads)]
        for future in futures:
            future.result()


def _nothing_stored(
    repository: cc.Repository, account: str, ids: Sequence[str], blob: cc.Blob
) -> None:
    """Check that none of ``ids`` and not ``blob`` is stored in ``account`` (R26)."""
    for external_id in ids:
        assert repository.get(account, external_id) is None, external_id
    assert repository.get_blob(account, blob.sha256) is None


def _not_found(catalog: cc.Catalog, account: str, external_id: str) -> None:
    """Check that get, use and delete all answer ``PRODUCT_NOT_FOUND`` (R1, R20, R23)."""
    with pytest.raises(cc.ProductNotFound):
        catalog.get(account, external_id)
    with pytest.raises(cc.ProductNotFound):
        catalog.use(account, {"externalId": external_id})
    with pytest.raises(cc.ProductNotFound):
        catalog.delete(account, external_id)


def _every_write_counts(
    repository: cc.Repository, change: Change, *, threads: int, rounds: int
) -> cc.Product:
    """Run ``threads`` x ``rounds`` writes of ``change`` on ``hot`` at once; none may be lost (R27).

    ``change`` is a read-merge-write that adds one to the count in the metadata.
    """

    def work(_: int) -> None:
        for _ in range(rounds):
            repository.write(ACCOUNT, "hot", change)

    _in_threads(work, threads)
    stored = repository.get(ACCOUNT, "hot")
    assert stored is not None
    assert stored.metadata == {"n": threads * rounds}
    assert stored.version == 1 + threads * rounds
    return stored


def _json_of_size(size: int, key: str = "k", **extra: Any) -> dict[str, Any]:
    """Return a JSON object of exactly ``size`` bytes as compact UTF-8 JSON, of many widths."""
    value: dict[str, Any] = {**extra, key: ""}
    filler = 'é😀€"\\a\n'  # 2-, 4-, 3-byte characters and escapes that take 2 bytes each
    while _compact_size(value) + _compact_size(filler) < size:
        value[key] += filler
    value[key] += "a" * (size - _compact_size(value))
    if _compact_size(value) != size:
        raise ValueError(f"no JSON object of exactly {size} bytes with these extra keys")
    return value


# -- the try-on flow's records ----------------------------------------------------------------

#: Text a backend could lose: NUL and other control characters, non-BMP and combining characters.
AWKWARD_TEXT: Final = "nul \x00 tab\t bell\x07 line\n\u2028 é e\u0301 😀 \U0010fffd"
#: The most awkward a product id can be (R2: no control character, no lone surrogate): what a
#: generation's snapshot of a product holds.
AWKWARD_ID: Final = 'id \u2028 é e\u0301 😀 \U0010fffd "quoted" \\ <b> %00 \x80\x9f'

#: The largest balance a signed 64-bit column holds.
_MAX_INT64: Final = 2**63 - 1
_URL_PERSON: Final = Person(url=URL)


def _person_image(
    image_id: str,
    blob: cc.Blob,
    *,
    account: str = ACCOUNT,
    expires_at: datetime = START + _DAY,
    **fields: Any,
) -> PersonImage:
    values: dict[str, Any] = {
        "mime_type": blob.mime_type,
        "token": "t" * 32,
        "created_at": START,
        **fields,
    }
    return PersonImage(
        account=account, image_id=image_id, sha256=blob.sha256, expires_at=expires_at, **values
    )


def _generation(
    generation_id: str,
    *,
    account: str = ACCOUNT,
    person: Person = _URL_PERSON,
    expires_at: datetime = START + _DAY,
    **fields: Any,
) -> Generation:
    values: dict[str, Any] = {
        "product": ProductSnapshot("p", "title", None, _URL_IMAGES),
        "created_at": START,
        "processing_at": START + _MS,
        "token": "g" * 32,
        **fields,
    }
    return Generation(
        account=account,
        generation_id=generation_id,
        person=person,
        expires_at=expires_at,
        **values,
    )


def _person_of(blob: cc.Blob) -> Person:
    return Person(sha256=blob.sha256, mime_type=blob.mime_type)


def _keys_of(write: TryOnWrite, **keys: Any) -> TryOnKeys:
    """The keys of every record ``write`` stores, and ``keys`` besides."""
    product = write.product.product if write.product is not None else None
    values: dict[str, Any] = {
        "product": product.external_id if product is not None else None,
        "person_images": tuple(image.image_id for image in write.person_images),
        "generations": tuple(generation.generation_id for generation in write.generations),
        "credits": write.credits is not None,
        **keys,
    }
    return TryOnKeys(**values)


def _store_tryon(
    repository: TryOnRepository, write: TryOnWrite, account: str = ACCOUNT
) -> TryOnWrite:
    """Store ``write`` whatever is stored now, under its own keys; check what comes back."""
    stored = repository.write_tryon(account, _keys_of(write), lambda _: write)
    assert stored == write, f"T10: write_tryon returned {stored!r}, not what it stored"
    return stored


def _tryon_state(repository: TryOnRepository, account: str, keys: TryOnKeys) -> TryOnState:
    """What a try-on write of ``keys`` would be handed now, read through the getters."""
    images = {i: repository.get_person_image(account, i) for i in keys.person_images}
    generations = {g: repository.get_generation(account, g) for g in keys.generations}
    return TryOnState(
        product=repository.get(account, keys.product) if keys.product is not None else None,
        person_images={i: image for i, image in images.items() if image is not None},
        generations={g: gen for g, gen in generations.items() if gen is not None},
        credits=repository.get_credits(account) if keys.credits else None,
    )


def _storing_tryon(write: TryOnWrite) -> TryOnChange:
    """Return a change that stores ``write`` whatever is stored now."""

    def change(_: TryOnState) -> TryOnWrite:
        return write

    return change


def _rewatermarked(generation_id: str) -> TryOnChange:
    """A change that flips the watermark of a stored generation: a read-modify-write."""

    def change(state: TryOnState) -> TryOnWrite:
        stored = state.generations[generation_id]
        return TryOnWrite(generations=(attrs.evolve(stored, watermark=not stored.watermark),))

    return change


def _reservation(generation_id: str, initial: int) -> TryOnChange:
    """A try-on's write: a credit reserved (a new account starts with ``initial``), a generation.

    Raises ``InsufficientCredits`` when the balance is 0, as the use case does (T16).
    """

    def change(state: TryOnState) -> TryOnWrite:
        credits = reserve(state.credits or Credits(ACCOUNT, initial), START, None)
        return TryOnWrite(generations=(_generation(generation_id),), credits=credits)

    return change


class RepositoryContract:
    """Subclass in a test file named ``Test*`` and override :meth:`make_repository`.

    Every ``test_*`` method here pins one storage behaviour the rules depend on; the docstring of
    each names the rule. Tests that need writers on separate handles of the same storage use
    :meth:`make_second_repository`, which by default returns the first handle.
    """

    def make_repository(self, tmp_path: pathlib.Path) -> cc.Repository:
        """Return a new, empty repository; ``tmp_path`` is the test's own directory."""
        raise NotImplementedError("override make_repository in the backend's test class")

    def dispose_repository(self, repository: cc.Repository) -> None:
        """Release a repository made by this class; closes it by default."""
        repository.close()

    def make_second_repository(self, first: cc.Repository, tmp_path: pathlib.Path) -> cc.Repository:
        """Return another handle on the storage of ``first`` (by default ``first`` itself)."""
        return first

    #: Whether the backend stores the try-on flow's state (is a
    #: :class:`~catalog_core.repository.base.TryOnRepository`); ``False`` skips the ``test_t…``
    #: tests.
    stores_tryon: bool = True

    @pytest.fixture
    def repository(self, tmp_path: pathlib.Path) -> Iterator[cc.Repository]:
        """A new repository from :meth:`make_repository`, disposed of after the test."""
        repository = self.make_repository(tmp_path)
        try:
            yield repository
        finally:
            self.dispose_repository(repository)

    #: Whether the backend can walk every product (is a
    #: :class:`~catalog_core.repository.base.ScanRepository`, which ``catalog-core export`` and
    #: ``copy`` need); ``False`` skips the ``scan_live`` tests.
    scans: bool = True

    @pytest.fixture
    def scanning(self, repository: cc.Repository) -> cc.ScanRepository:
        """:meth:`repository`, which can walk every product too."""
        if not self.scans:
            pytest.skip("the backend cannot walk its products (scans)")
        if not isinstance(repository, cc.ScanRepository):
            pytest.fail(
                f"{type(repository).__name__} is not a ScanRepository: implement scan_live and "
                "count_live, or set scans = False on the test class"
            )
        return repository

    @pytest.fixture
    def tryon(self, repository: cc.Repository) -> TryOnRepository:
        """:meth:`repository`, which stores the try-on flow's state too."""
        if not self.stores_tryon:
            pytest.skip("the backend does not store the try-on flow's state (stores_tryon)")
        if not isinstance(repository, TryOnRepository):
            pytest.fail(
                f"{type(repository).__name__} is not a TryOnRepository: implement its methods, "
                "or set stores_tryon = False on the test class"
            )
        return repository

    #: Whether the backend lists an account's generations (is a
    #: :class:`~catalog_core.repository.base.GenerationsRepository`, which the server's local
    #: listing needs); ``False`` skips the ``list_generations`` tests.
    lists_generations: bool = True

    @pytest.fixture
    def generations(self, tryon: TryOnRepository) -> GenerationsRepository:
        """:meth:`tryon`, which lists an account's generations too."""
        if not self.lists_generations:
            pytest.skip("the backend does not list generations (lists_generations)")
        if not isinstance(tryon, GenerationsRepository):
            pytest.fail(
                f"{type(tryon).__name__} is not a GenerationsRepository: implement "
                "list_generations, or set lists_generations = False on the test class"
            )
        return tryon

    def _second_tryon(
        self, first: TryOnRepository, tmp_path: pathlib.Path, use: Callable[[TryOnRepository], None]
    ) -> None:
        def checked(second: cc.Repository) -> None:
            assert isinstance(second, TryOnRepository)
            use(second)

        self._with_second(first, tmp_path, checked)

    @pytest.fixture
    def catalog(self, repository: cc.Repository) -> cc.Catalog:
        """A :class:`~catalog_core.Catalog` on :meth:`repository`, with a :class:`FakeClock`."""
        return cc.Catalog(repository, clock=FakeClock())

    def _with_second(
        self, first: cc.Repository, tmp_path: pathlib.Path, use: Callable[[cc.Repository], None]
    ) -> None:
        second = self.make_second_repository(first, tmp_path)
        try:
            use(second)
        finally:
            if second is not first:
                self.dispose_repository(second)

    def _race_catalog_writers(
        self,
        repository: cc.Repository,
        tmp_path: pathlib.Path,
        upsert: Callable[[cc.Catalog, int], object],
        check: Callable[[cc.Catalog], None],
    ) -> None:
        """R27: 6 threads x 20 upserts and uses of ``hot``, half of them on a second handle.

        ``upsert(catalog, n)`` is thread ``n``'s upsert; afterwards, through each handle, the
        version must count every write, and ``check(catalog)`` must pass.
        """
        threads, rounds = 6, 20
        catalogs = [cc.Catalog(repository, clock=FakeClock())]

        def race(second: cc.Repository) -> None:
            catalogs.append(cc.Catalog(second, clock=FakeClock()))

            def work(n: int) -> None:
                catalog = catalogs[n % 2]
                for k in range(rounds):
                    if k % 2:
                        catalog.use(ACCOUNT, {"externalId": "hot"})
                    else:
                        upsert(catalog, n)

            _in_threads(work, threads)
            for catalog in catalogs:
                assert catalog.get(ACCOUNT, "hot").version == 1 + threads * rounds
                check(catalog)

        self._with_second(repository, tmp_path, race)

    # -- R26: atomic writes -----------------------------------------------------------------

    def test_r26_write_hands_the_change_the_stored_product_and_returns_what_it_stored(
        self, repository: cc.Repository
    ) -> None:
        """R26: the change sees the stored product (expired or not); write returns the result.

        A backend may call a change more than once (``Repository.write``): every call must be
        handed the stored product.
        """
        first = _product("p", expires_at=START)
        second = attrs.evolve(first, title="second", version=2)
        create, created_over = _recording(first)
        update, updated_over = _recording(second)
        delete, deleted_over = _recording(None)

        assert repository.write(ACCOUNT, "p", create) == first
        assert repository.write(ACCOUNT, "p", update) == second
        _each_call_saw(created_over, None)
        _each_call_saw(updated_over, first)  # the expired product is handed over, not hidden
        assert repository.get(ACCOUNT, "p") == second
        assert repository.write(ACCOUNT, "p", delete) is None
        _each_call_saw(deleted_over, second)
        assert repository.get(ACCOUNT, "p") is None
        assert _live_ids(repository) == []

    def test_r26_a_change_that_raises_stores_nothing_and_its_exception_propagates(
        self, repository: cc.Repository
    ) -> None:
        """R26: a change that raises leaves product, listing and blobs as they were."""
        before = _put(repository, _product("p"))
        blob = _blob(1)
        error = _Refused("no")

        def change(stored: cc.Product | None) -> cc.Write:
            new = _product("p" if stored else "q", images=_images_of(blob), version=2)
            cc.Write(new, (blob,))  # built, never handed over
            raise error

        with pytest.raises(_Refused) as raised:
            repository.write(ACCOUNT, "p", change)
        assert raised.value is error
        with pytest.raises(_Refused):
            repository.write(ACCOUNT, "q", change)
        assert repository.get(ACCOUNT, "p") == before
        assert repository.get(ACCOUNT, "q") is None
        assert repository.get_blob(ACCOUNT, blob.sha256) is None
        assert _live_ids(repository) == ["p"]
        assert repository.purge_expired(START + 1000 * _DAY) == 0

    def test_r26_a_write_with_blobs_stores_the_product_and_its_blobs_together(
        self, repository: cc.Repository
    ) -> None:
        """R26, R15: a product and the blobs it names are stored by the same write."""
        jpeg, png = _blob(1), _blob(2, "image/png")
        product = _product("p", images=(*_images_of(jpeg, png), cc.Image(URL, 2)))
        assert _put(repository, product, jpeg, png) == product
        assert repository.get(ACCOUNT, "p") == product
        assert repository.get_blob(ACCOUNT, jpeg.sha256) == jpeg
        assert repository.get_blob(ACCOUNT, png.sha256) == png

    def test_r26_a_write_stored_under_another_key_is_refused_and_stores_nothing(
        self, repository: cc.Repository
    ) -> None:
        """R26, R1: a product may only be stored under its own account and id."""
        blob = _blob(1)
        wrong_id = _product("q", images=_images_of(blob))
        wrong_account = _product("p", account=OTHER, images=_images_of(blob))
        for product in (wrong_id, wrong_account):
            with pytest.raises(ValueError, match="account and external id"):
                repository.write(ACCOUNT, "p", _storing(product, blob))
        for account in (ACCOUNT, OTHER):
            _nothing_stored(repository, account, ("p", "q"), blob)

    def test_r26_a_write_naming_a_blob_never_given_is_refused_and_stores_not_even_its_blobs(
        self, repository: cc.Repository
    ) -> None:
        """R26, R15: a refused write stores none of the blobs that came with it."""
        given, missing = _blob(1), _blob(2)
        product = _product("p", images=_images_of(given, missing))
        with pytest.raises(ValueError, match="neither stored nor given"):
            repository.write(ACCOUNT, "p", lambda _: cc.Write(product, (given,)))
        assert repository.get(ACCOUNT, "p") is None
        assert repository.get_blob(ACCOUNT, given.sha256) is None
        assert repository.get_blob(ACCOUNT, missing.sha256) is None

    def test_r25_r26_deleting_a_key_with_nothing_stored_is_a_harmless_no_op(
        self, repository: cc.Repository
    ) -> None:
        """R25, R26: a change may return ``Write(None)`` for a key that holds nothing."""
        kept = _put(repository, _product("kept"))
        assert repository.write(ACCOUNT, "ghost", lambda _: cc.Write(None)) is None
        assert repository.write(OTHER, "kept", lambda _: cc.Write(None)) is None
        assert repository.get(ACCOUNT, "ghost") is None
        assert repository.get(ACCOUNT, "kept") == kept
        assert _live_ids(repository) == ["kept"]

    def test_r26_only_a_write_changes_what_is_stored_not_the_objects_handed_out(
        self, repository: cc.Repository
    ) -> None:
        """R26: products read back are copies; changing them changes nothing stored."""

        def product() -> cc.Product:
            return _product(
                "p", metadata={"k": {"nested": [1]}}, images=(cc.Image(URL, 0, {"c": {"d": [1]}}),)
            )

        for handed_out in (
            _put(repository, product()),
            repository.get(ACCOUNT, "p"),
            repository.list_live(ACCOUNT, after=None, limit=1, now=START)[0],
        ):
            assert handed_out is not None
            _try_to_mutate(handed_out.metadata)
            _try_to_mutate(handed_out.images[0].classifications)
        assert repository.get(ACCOUNT, "p") == product()

    def test_r26_a_rejected_catalog_request_changes_nothing(
        self, repository: cc.Repository, catalog: cc.Catalog
    ) -> None:
        """R26, R28, R30: every refused upsert, use and delete leaves the storage untouched."""
        before = catalog.upsert(ACCOUNT, {"externalId": "p", "images": list(IMAGES)}).product
        blob = _blob(7, "image/png")
        upload = {"f": cc.Upload(blob.data)}
        with_file = {"externalId": "p", "images": [{"source": {"fileKey": "f"}}], "title": "x"}
        refused: list[Callable[[], object]] = [
            lambda: catalog.upsert(ACCOUNT, with_file, files=upload, if_version=7),
            lambda: catalog.upsert(ACCOUNT, {**with_file, "externalId": "new"}, upload, 1),
            lambda: catalog.upsert(ACCOUNT, {"externalId": "p", "images": []}),
            lambda: catalog.use(ACCOUNT, {"externalId": "missing"}),
            lambda: catalog.delete(ACCOUNT, "p", if_version=2),
            lambda: catalog.delete(ACCOUNT, "missing"),
        ]
        for request in refused:
            with pytest.raises(cc.CatalogError):
                request()
            assert repository.get(ACCOUNT, "p") == before
            assert repository.get(ACCOUNT, "new") is None
            assert repository.get(ACCOUNT, "missing") is None
            assert repository.get_blob(ACCOUNT, blob.sha256) is None
        assert _live_ids(repository) == ["p"]

    # -- R28, R27: versions and concurrent writers ------------------------------------------

    def test_r28_versions_start_at_one_and_grow_by_one_with_every_write(
        self, repository: cc.Repository, catalog: cc.Catalog
    ) -> None:
        """R28: version 1 on create, +1 on every upsert and use, 1 again after a re-create."""
        writes: list[Callable[[], cc.UpsertResult | cc.UseResult]] = [
            lambda: catalog.upsert(ACCOUNT, {"externalId": "p", "images": list(IMAGES)}),
            lambda: catalog.upsert(ACCOUNT, {"externalId": "p"}),
            lambda: catalog.use(ACCOUNT, {"externalId": "p"}),
            lambda: catalog.use(ACCOUNT, {"externalId": "p", "title": "inline"}),
            lambda: catalog.upsert(ACCOUNT, {"externalId": "p", "metadata": {"k": 1}}),
        ]
        for expected, write in enumerate(writes, start=1):
            assert write().product.version == expected
            stored = repository.get(ACCOUNT, "p")
            assert stored is not None
            assert stored.version == expected
        catalog.delete(ACCOUNT, "p", if_version=len(writes))
        assert catalog.upsert(ACCOUNT, {"externalId": "p", "images": list(IMAGES)}).created
        assert catalog.get(ACCOUNT, "p").version == 1

    def test_r28_a_stale_expected_version_on_upsert_or_delete_changes_nothing(
        self, repository: cc.Repository, catalog: cc.Catalog
    ) -> None:
        """R28: a version mismatch is VERSION_CONFLICT naming the current version; no write."""
        catalog.upsert(ACCOUNT, {"externalId": "p", "images": list(IMAGES)})
        current = catalog.upsert(ACCOUNT, {"externalId": "p", "title": "two"}).product
        for attempt in (
            lambda: catalog.upsert(ACCOUNT, {"externalId": "p", "title": "x"}, if_version=1),
            lambda: catalog.upsert(ACCOUNT, {"externalId": "p", "title": "x"}, if_version=3),
            lambda: catalog.delete(ACCOUNT, "p", if_version=1),
        ):
            with pytest.raises(cc.VersionConflict) as conflict:
                attempt()
            assert [d.to_wire() for d in conflict.value.details] == [
                {"path": "version", "message": "current version is 2"}
            ]
            assert repository.get(ACCOUNT, "p") == current
        assert catalog.upsert(ACCOUNT, {"externalId": "p"}, if_version=2).product.version == 3
        catalog.delete(ACCOUNT, "p", if_version=3)
        assert repository.get(ACCOUNT, "p") is None

    def test_r27_concurrent_read_merge_writes_on_one_key_never_lose_an_update(
        self, repository: cc.Repository
    ) -> None:
        """R27: 8 threads x 25 read-merge-writes on one key; every one of them counts."""
        _put(repository, _product("hot", metadata={"n": 0}))
        _every_write_counts(repository, _increment, threads=8, rounds=25)

    def test_r27_r15_concurrent_read_merge_writes_on_a_product_holding_uploads_lose_no_update(
        self, repository: cc.Repository
    ) -> None:
        """R27, R15, R26: 8 threads x 25 read-merge-writes on a product with uploaded images.

        Each write also swaps the product's uploaded image for the other one, giving its bytes
        again: every write counts, and the blob references follow the final product.
        """
        front, back = _blob(1), _blob(2, "image/png")
        _put(repository, _product("hot", images=_images_of(front), metadata={"n": 0}), front)

        def swap(stored: cc.Product | None) -> cc.Write:
            counted = _increment(stored).product
            assert counted is not None
            blob = back if counted.version % 2 == 0 else front
            return cc.Write(attrs.evolve(counted, images=_images_of(blob)), (blob,))

        stored = _every_write_counts(repository, swap, threads=8, rounds=25)
        named, other = (back, front) if stored.version % 2 == 0 else (front, back)
        assert stored.blob_refs == {named.sha256}
        assert repository.purge_expired(START) == 0
        assert repository.get_blob(ACCOUNT, named.sha256) == named
        assert repository.get_blob(ACCOUNT, other.sha256) is None
        _drop(repository, ACCOUNT, "hot")
        repository.purge_expired(START)
        assert repository.get_blob(ACCOUNT, named.sha256) is None

    def test_r27_r15_catalog_writers_uploading_images_on_two_handles_never_lose_an_update(
        self, repository: cc.Repository, tmp_path: pathlib.Path
    ) -> None:
        """R27, R28, R15: upserts with uploads and uses of a product holding an uploaded image.

        6 threads x 20 writes through two handles: every accepted write counts in the version,
        and the image the product ends with has its bytes.
        """
        uploads = [_blob(n, mime) for n, mime in enumerate(("image/jpeg", "image/png"))]

        def upsert(catalog: cc.Catalog, n: int) -> cc.UpsertResult:
            payload = {"externalId": "hot", "images": [{"source": {"fileKey": "f"}}]}
            files = {"f": cc.Upload(uploads[n % 2].data)}
            return catalog.upsert(ACCOUNT, {**payload, "metadata": {"by": n}}, files)

        assert upsert(cc.Catalog(repository, clock=FakeClock()), 0).created

        def check(catalog: cc.Catalog) -> None:
            product = catalog.get(ACCOUNT, "hot")
            assert product.metadata is not None
            assert len(product.blob_refs) == 1
            upload = uploads[product.metadata["by"] % 2]
            assert product.blob_refs == {upload.sha256}
            assert catalog.purge_expired() == 0
            assert repository.get_blob(ACCOUNT, upload.sha256) == upload

        self._race_catalog_writers(repository, tmp_path, upsert, check)

    def test_r27_r28_any_version_never_creates_however_deletes_race_it(
        self, catalog: cc.Catalog
    ) -> None:
        """R27, R28: the existence check is in the write's own transaction, not a read before it.

        Three threads upsert with ``ANY_VERSION`` while a fourth deletes and re-creates the
        product: each upsert lands on a live product or is refused, and none ever creates it.
        """
        payload = {"externalId": "p", "title": "guarded", "images": list(IMAGES)}
        catalog.upsert(ACCOUNT, {"externalId": "p", "images": list(IMAGES)})
        stop = threading.Event()

        def churn() -> int:
            rounds = 0
            while not stop.is_set():
                with contextlib.suppress(cc.ProductNotFound):
                    catalog.delete(ACCOUNT, "p")
                time.sleep(0.0005)  # leave the others a moment of absence, and one of presence
                catalog.upsert(ACCOUNT, {"externalId": "p", "images": list(IMAGES)})
                time.sleep(0.0005)
                rounds += 1
            return rounds

        def guarded(_: int) -> list[bool | None]:
            outcomes: list[bool | None] = []
            deadline = time.monotonic() + 30
            # Until both sides of the race were seen: the scheduler decides how soon, not the test.
            while len(outcomes) < 40 or (
                not {None, False} <= set(outcomes) and time.monotonic() < deadline
            ):
                try:
                    result = catalog.upsert(ACCOUNT, payload, if_version=cc.ANY_VERSION)
                    outcomes.append(result.created)
                except cc.VersionConflict:
                    outcomes.append(None)  # absent at that moment: refused, never created
            return outcomes

        with ThreadPoolExecutor(4) as pool:
            churner = pool.submit(churn)
            outcomes = [o for batch in pool.map(guarded, range(3)) for o in batch]
            stop.set()
            assert churner.result() > 0
        assert True not in outcomes
        assert False in outcomes  # some landed on a live product

    def test_r11_r27_a_writer_that_read_the_clock_first_never_writes_an_older_time_last(
        self, repository: cc.Repository
    ) -> None:
        """R11, R27: the clock is read under the key's lock, so timestamps only move forward.

        Writer A's clock stalls right after it is read (as a preempted thread would); writer B
        starts meanwhile with a later clock. Whatever order they commit in, the stored history is
        ordered.
        """
        a_read = threading.Event()

        def stalling_clock() -> datetime:
            a_read.set()
            threading.Event().wait(0.3)  # B runs now, unless A already holds the key's lock
            return START

        catalog_a = cc.Catalog(repository, clock=stalling_clock)
        catalog_b = cc.Catalog(repository, clock=lambda: START + timedelta(seconds=1))
        writer_a = threading.Thread(
            target=catalog_a.upsert, args=(ACCOUNT, {"externalId": "p", "images": list(IMAGES)})
        )
        writer_a.start()
        a_read.wait(5)
        other_image = {"source": {"url": "https://cdn.example/b.jpg"}}
        catalog_b.upsert(ACCOUNT, {"externalId": "p", "images": [other_image]})
        writer_a.join(5)

        final = catalog_b.get(ACCOUNT, "p")
        assert final.version == 2
        assert final.updated_at >= final.created_at
        # B's write at START + 1 s is in the history, so the last write cannot be dated before it.
        assert final.updated_at >= START + timedelta(seconds=1)

    # -- write_many (BatchRepository, optional) ---------------------------------------------

    @staticmethod
    def _batching(repository: cc.Repository) -> cc.BatchRepository:
        if not isinstance(repository, cc.BatchRepository):
            pytest.skip("this repository has no write_many; Catalog.upsert_many writes one by one")
        return repository

    def test_r26_write_many_runs_the_changes_in_order_and_each_sees_the_ones_before(
        self, repository: cc.Repository
    ) -> None:
        """R26: one batch: later changes see earlier ones; a refused change alone stores nothing."""
        batch = self._batching(repository)
        _put(repository, _product("old", metadata={"n": 5}))
        refused = _Refused("no")

        def refuse(_: cc.Product | None) -> cc.Write:
            raise refused

        outcomes = batch.write_many(
            ACCOUNT,
            [
                ("p", _storing(_product("p", metadata={"n": 0}))),
                ("p", _increment),
                ("old", _increment),
                ("r", refuse),
                ("q", _storing(_product("q"))),
                ("q", _storing(None)),
                ("p", _increment),
            ],
        )
        assert [o.version if isinstance(o, cc.Product) else o for o in outcomes] == [
            1,
            2,
            2,
            refused,
            1,
            None,
            3,
        ]
        p, old = repository.get(ACCOUNT, "p"), repository.get(ACCOUNT, "old")
        assert p is not None
        assert (p.version, p.metadata) == (3, {"n": 2})
        assert p == outcomes[-1]
        assert old is not None
        assert old.metadata == {"n": 6}
        assert repository.get(ACCOUNT, "q") is None
        assert repository.get(ACCOUNT, "r") is None
        assert _live_ids(repository) == ["old", "p"]
        assert batch.write_many(ACCOUNT, []) == []

    def test_r26_write_many_stores_new_products_text_exactly(
        self, repository: cc.Repository
    ) -> None:
        """R26: a batch of new products keeps every character of their text and ids.

        The ones a bulk format escapes included: a backslash, a backslash before ``N`` or a
        full stop, tab, line ends, quotes, text beyond the BMP.
        """
        batch = self._batching(repository)
        awkward = "a\tb\nc\r\nd\\e \\N \\. \"q\" 's' \u00e9\u0301 \U0001f600 \u2028|"
        ids = ["\\N", "\\.", "a\\tb", "plain", "\u00e9\U0001f600", "x" * 300]
        products = [
            _product(
                external_id,
                title=awkward + external_id,
                description=awkward * 20,
                metadata={awkward: [awkward, {"k": awkward}]},
            )
            for external_id in ids
        ]
        # Plain ids first: a batch that fails on an id alone must not hide how its text went.
        for part in (products[3:], products[:3]):
            outcomes = batch.write_many(ACCOUNT, [(p.external_id, _storing(p)) for p in part])
            assert outcomes == part
        assert [repository.get(ACCOUNT, external_id) for external_id in ids] == products

    def test_r26_r15_write_many_stores_blobs_and_counts_references_across_the_batch(
        self, repository: cc.Repository
    ) -> None:
        """R26, R15, R21: references follow the batch's final products; the purge agrees."""
        batch = self._batching(repository)
        shared, dropped, unnamed = _blob(1), _blob(2), _blob(3)
        batch.write_many(
            ACCOUNT,
            [
                ("p", _storing(_product("p", images=_images_of(shared, dropped)), shared, dropped)),
                ("q", _storing(_product("q", images=_images_of(shared)), shared)),
                ("p", _storing(_product("p", images=_images_of(shared)), unnamed)),
            ],
        )
        for blob in (shared, dropped, unnamed):
            assert repository.get_blob(ACCOUNT, blob.sha256) == blob
        assert repository.purge_expired(START + 1000 * _DAY) == 0
        assert repository.get_blob(ACCOUNT, shared.sha256) == shared
        assert repository.get_blob(ACCOUNT, dropped.sha256) is None
        assert repository.get_blob(ACCOUNT, unnamed.sha256) is None
        batch.write_many(ACCOUNT, [("p", _storing(None))])
        repository.purge_expired(START + 1000 * _DAY)
        assert repository.get_blob(ACCOUNT, shared.sha256) == shared  # q still names it
        _drop(repository, ACCOUNT, "q")
        repository.purge_expired(START + 1000 * _DAY)
        assert repository.get_blob(ACCOUNT, shared.sha256) is None

    def test_r26_a_batch_that_cannot_be_stored_stores_nothing_of_any_of_its_writes(
        self, repository: cc.Repository
    ) -> None:
        """R26: an inconsistent write in a batch refuses the whole batch with ValueError."""
        batch = self._batching(repository)
        given, missing = _blob(1), _blob(2)
        before = _put(repository, _product("kept", metadata={"n": 0}))
        for bad in (
            ("q", lambda _: cc.Write(_product("q", images=_images_of(given, missing)), (given,))),
            ("q", _storing(_product("elsewhere"))),
        ):
            with pytest.raises(ValueError, match=r"neither stored nor given|account and external"):
                batch.write_many(
                    ACCOUNT,
                    [("kept", _increment), ("p", _storing(_product("p"), given)), bad],
                )
            assert repository.get(ACCOUNT, "kept") == before
            _nothing_stored(repository, ACCOUNT, ("p", "q"), given)

    def test_r1_write_many_sees_and_writes_only_its_own_account(
        self, repository: cc.Repository
    ) -> None:
        """R1: a batch of one account never sees nor changes the same id of another."""
        batch = self._batching(repository)
        theirs = _put(repository, _product("p", account=OTHER, metadata={"n": 7}))
        seen: list[cc.Product | None] = []

        def peek(stored: cc.Product | None) -> cc.Write:
            seen.append(stored)
            return cc.Write(_product("p", metadata={"n": 0}))

        batch.write_many(ACCOUNT, [("p", peek)])
        _each_call_saw(seen, None)
        assert repository.get(OTHER, "p") == theirs

    def test_r27_batches_and_single_writes_racing_on_one_key_never_lose_an_update(
        self, repository: cc.Repository
    ) -> None:
        """R27: 4 threads of batches of 5 increments and 2 of single ones; every one counts."""
        batch = self._batching(repository)
        _put(repository, _product("hot", metadata={"n": 0}))
        rounds = 10

        def work(n: int) -> None:
            for _ in range(rounds):
                if n < 4:
                    batch.write_many(ACCOUNT, [("hot", _increment)] * 5 + [("cold", _increment)])
                else:
                    repository.write(ACCOUNT, "hot", _increment)

        _put(repository, _product("cold", metadata={"n": 0}))
        _in_threads(work, 6)
        hot, cold = repository.get(ACCOUNT, "hot"), repository.get(ACCOUNT, "cold")
        assert hot is not None
        assert cold is not None
        assert hot.metadata == {"n": 4 * rounds * 5 + 2 * rounds}
        assert cold.metadata == {"n": 4 * rounds}

    def test_r27_catalog_writers_on_two_handles_of_the_same_storage_never_lose_an_update(
        self, repository: cc.Repository, tmp_path: pathlib.Path
    ) -> None:
        """R27, R28: upserts and uses through two handles; final version is 1 + every write."""
        cc.Catalog(repository, clock=FakeClock()).upsert(
            ACCOUNT, {"externalId": "hot", "images": list(IMAGES)}
        )

        def upsert(catalog: cc.Catalog, n: int) -> cc.UpsertResult:
            return catalog.upsert(ACCOUNT, {"externalId": "hot", "metadata": {"by": n}})

        self._race_catalog_writers(repository, tmp_path, upsert, lambda _: None)

    # -- R1: tenant isolation ---------------------------------------------------------------

    def test_r1_the_same_external_id_in_two_accounts_names_two_independent_products(
        self, repository: cc.Repository
    ) -> None:
        """R1: get, write, list_live, purge counts and get_blob are per account."""
        shared = _blob(1)
        mine = _put(
            repository,
            _product("p", images=_images_of(shared), title="mine", expires_at=START + _DAY),
            shared,
        )
        theirs = _put(
            repository,
            _product("p", account=OTHER, images=_images_of(shared), title="theirs"),
            shared,
        )
        assert repository.get(ACCOUNT, "p") == mine
        assert repository.get(OTHER, "p") == theirs
        _put(repository, attrs.evolve(mine, title="mine again", version=2))
        assert repository.get(OTHER, "p") == theirs
        _put(repository, _product("q", account=OTHER))
        assert _live_ids(repository) == ["p"]
        assert _live_ids(repository, OTHER) == ["p", "q"]
        assert repository.purge_expired(START + _DAY) == 1
        assert repository.get(ACCOUNT, "p") is None
        assert repository.get(OTHER, "p") == theirs
        assert repository.get_blob(ACCOUNT, shared.sha256) is None  # its last product is gone
        assert repository.get_blob(OTHER, shared.sha256) == shared
        _drop(repository, OTHER, "q")
        assert _live_ids(repository, OTHER) == ["p"]

    def test_r1_a_product_of_one_account_is_invisible_from_another_in_every_method(
        self, repository: cc.Repository
    ) -> None:
        """R1: another account's id behaves exactly like an id nobody has used."""
        blob = _blob(1)
        product = _put(repository, _product("p", images=_images_of(blob)), blob)
        seen: list[cc.Product | None] = []

        def peek(stored: cc.Product | None) -> cc.Write:
            seen.append(stored)
            raise _Refused

        assert repository.get(OTHER, "p") is None
        assert repository.list_live(OTHER, after=None, limit=10, now=START) == []
        assert repository.list_live(OTHER, after="a", limit=10, now=START) == []
        assert repository.get_blob(OTHER, blob.sha256) is None
        with pytest.raises(_Refused):
            repository.write(OTHER, "p", peek)
        _each_call_saw(seen, None)

        catalog = cc.Catalog(repository, clock=FakeClock())
        _not_found(catalog, OTHER, "p")
        with pytest.raises(cc.VersionConflict):
            catalog.upsert(OTHER, {"externalId": "p", "images": list(IMAGES)}, if_version=1)
        assert catalog.list(OTHER).items == ()
        created = catalog.upsert(OTHER, {"externalId": "p", "images": list(IMAGES)})
        assert created.created
        assert created.product.version == 1
        assert repository.get(ACCOUNT, "p") == product
        assert catalog.get(ACCOUNT, "p") == product

    def test_r1_an_account_and_an_id_are_two_parts_of_the_key_never_joined_into_one(
        self, repository: cc.Repository
    ) -> None:
        """R1: ("ab", "c") and ("a", "bc") are unrelated, as are accounts that prefix others."""
        keys = [("ab", "c"), ("a", "bc"), ("a:b", "c"), ("a", "b:c"), ("a", "c"), ("abc", "c")]
        blobs = {key: _blob(n) for n, key in enumerate(keys)}
        for key in keys:
            account, external_id = key
            _put(
                repository,
                _product(external_id, account=account, images=_images_of(blobs[key])),
                blobs[key],
            )
        for key in keys:
            account, external_id = key
            stored = repository.get(account, external_id)
            assert stored is not None
            assert (stored.account, stored.external_id) == key
            for other in keys:
                found = repository.get_blob(account, blobs[other].sha256)
                assert (found is not None) == (other[0] == account)
        assert _live_ids(repository, "a") == ["b:c", "bc", "c"]
        assert _live_ids(repository, "ab") == ["c"]
        assert _live_ids(repository, "abc") == ["c"]

    def test_r1_accounts_and_ids_holding_any_separator_are_never_joined_into_one_key(
        self, repository: cc.Repository
    ) -> None:
        """R1, R21, R24: ``("a/b", "c")`` and ``("a", "b/c")`` are two products, whatever the "/".

        For every separator in :data:`SEPARATORS` (and none), keys that ``account + separator +
        id`` would make one, accounts that are prefixes of each other and ids that are prefixes
        of each other: each key is written, read, listed, given a blob, updated, deleted and
        purged on its own, and no write is handed another key's product.
        """
        keys, twins = _separator_keys()
        blobs = {key: _blob(n, size=16) for n, key in enumerate(keys)}
        expires = START + _DAY
        purged, deleted = set(keys[1::3]), set(keys[2::3])
        originals: dict[tuple[str, str], cc.Product] = {}
        for key in keys:
            account, external_id = key
            originals[key] = _product(
                external_id,
                account=account,
                title=repr(key),
                images=_images_of(blobs[key]),
                expires_at=expires if key in purged else None,
            )
            create, created_over = _recording(originals[key], blobs[key])
            assert repository.write(account, external_id, create) == originals[key]
            _each_call_saw(created_over, None, f"writing the new key {key!r}")

        def check_listings(expected: dict[tuple[str, str], cc.Product], now: datetime) -> None:
            for account in dict.fromkeys(account for account, _ in keys):
                walked: list[cc.Product] = []
                after = None
                while page := repository.list_live(account, after=after, limit=16, now=now):
                    walked += page
                    after = page[-1].external_id
                assert walked == sorted(
                    (p for (owner, _), p in expected.items() if owner == account),
                    key=lambda p: p.external_id,
                ), f"account {account!r} lists other keys' products"

        check_listings(originals, START)
        updated: dict[tuple[str, str], cc.Product] = {}
        for key in keys:
            account, external_id = key
            assert repository.get(account, external_id) == originals[key]
            assert repository.get_blob(account, blobs[key].sha256) == blobs[key]
            if key in twins:
                assert repository.get_blob(twins[key][0], blobs[key].sha256) is None
            updated[key] = attrs.evolve(originals[key], version=2, title=f"updated {key!r}")
            update, updated_over = _recording(updated[key])
            assert repository.write(account, external_id, update) == updated[key]
            _each_call_saw(updated_over, originals[key], f"updating {key!r}")
        for key in deleted:
            _drop(repository, *key)
        assert repository.purge_expired(expires) == len(purged)
        kept = {key: updated[key] for key in keys if key not in purged | deleted}
        for key in keys:
            account, external_id = key
            assert repository.get(account, external_id) == kept.get(key)
            assert repository.get_blob(account, blobs[key].sha256) == (
                blobs[key] if key in kept else None
            )
        check_listings(kept, expires)

    # -- R24: listing -----------------------------------------------------------------------

    def test_r24_list_live_is_in_code_point_order_of_external_id(
        self, repository: cc.Repository
    ) -> None:
        """R24: code-point order, not case-folded, UTF-16, normalised or locale order."""
        for external_id in reversed(LISTING_IDS):
            _put(repository, _product(external_id))
        for external_id in ("0", "b", "ｙ"):
            _put(repository, _product(external_id, account=OTHER))
        assert _live_ids(repository) == sorted(LISTING_IDS)
        assert _live_ids(repository, OTHER) == ["0", "b", "ｙ"]

    def test_r24_after_is_exclusive_and_limit_bounds_the_page(
        self, repository: cc.Repository
    ) -> None:
        """R24: a page holds up to ``limit`` products with ids strictly after ``after``."""
        for external_id in LISTING_IDS:
            _put(repository, _product(external_id))
        ordered = sorted(LISTING_IDS)

        def page(after: str | None, limit: int) -> list[str]:
            return _ids(repository.list_live(ACCOUNT, after=after, limit=limit, now=START))

        assert page(None, 1) == ordered[:1]
        assert page(None, 5) == ordered[:5]
        assert page(None, len(ordered) + 10) == ordered
        for index, after in enumerate(ordered):
            assert page(after, 2) == ordered[index + 1 : index + 3]
        assert page("a.", 1) == ["a0"]  # an id that is not stored: the next one after it
        assert page("\U0010ffff", 5) == []

    def test_r24_list_live_rows_lists_row_for_row_what_list_live_lists(
        self, repository: cc.Repository
    ) -> None:
        """R24, R31: rows (``RowListingRepository``) are those of ``list_live``'s products.

        The server's pages are written from them: every field, JSON values of every kind and
        uploads agree, and the expired and one-shot products are left out alike.
        """
        list_rows = getattr(repository, "list_live_rows", None)
        if list_rows is None:
            return  # the backend lists products only: Catalog.list_json writes those
        blob = _blob(7)
        metadata = {
            "brand": "Solène — ｙ",
            "numbers": [0, -1, 2**53, 2**70, 0.5, 1e-07, 1.5e300, -0.0],
            "nested": {"a": [{"b": None, "c": True}], "": "\u0000 and \n"},
        }
        classified = (
            cc.Image(URL, 0, {"category": "tops", "view": "front"}),
            cc.Image(blob.source_url, 1),
            cc.Image("https://cdn.example/b.jpg?x=1#y", 2, {"tags": ["a", 1.25]}),
        )
        used = START - _DAY
        _put(
            repository,
            _product(
                "a",
                images=classified,
                title="T\u00e9\u0001",
                description="line\nbreak",
                metadata=metadata,
                valid_for_days=30,
                expires_at=START + 30 * _DAY,
                last_used_at=used,
                version=7,
                at=used - _DAY - 3 * _MS,
            ),
            blob,
        )
        _put(repository, _product("b"))
        _put(repository, _product("c", expires_at=START, valid_for_days=1))  # expired at START
        _put(repository, _product("_anon_" + "k" * 24, expires_at=START + _DAY))  # one-shot
        _put(repository, _product("é", title="", description="", metadata={}))
        _put(repository, _product("ｙ", expires_at=START + _MS, valid_for_days=1))
        _put(repository, _product("a", account=OTHER, title="another account"))
        for after in (None, "a", "b", "d", "\U0010ffff"):
            for limit in (1, 2, 10):
                products = repository.list_live(ACCOUNT, after=after, limit=limit, now=START)
                rows = list_rows(ACCOUNT, after=after, limit=limit, now=START)
                assert list(rows) == [product_row(p) for p in products], (after, limit)
        assert [row[0] for row in list_rows(ACCOUNT, after=None, limit=10, now=START)] == [
            "a",
            "b",
            "é",
            "ｙ",
        ]

    def test_r24_a_cursor_made_on_one_handle_is_read_by_another_of_the_same_storage(
        self, repository: cc.Repository, tmp_path: pathlib.Path
    ) -> None:
        """R24: cursors are tagged with the storage's own secret, the same on every handle.

        A backend that has no ``cursor_secret()``, or returns one per handle, fails here when
        :meth:`make_second_repository` gives another handle: its cursors die with the handle.
        """
        first = cc.Catalog(repository, clock=FakeClock())
        for external_id in ("a", "b", "c"):
            first.upsert(ACCOUNT, {"externalId": external_id, "images": list(IMAGES)})
        page = first.list(ACCOUNT, limit=1)

        def walk_on(second: cc.Repository) -> None:
            other = cc.Catalog(second, clock=FakeClock())
            middle = other.list(ACCOUNT, limit=1, cursor=page.next_cursor)
            assert _ids(middle.items) == ["b"]
            assert _ids(first.list(ACCOUNT, limit=1, cursor=middle.next_cursor).items) == ["c"]

        self._with_second(repository, tmp_path, walk_on)

    def test_r24_r22c_list_live_skips_one_shot_products_and_only_those(
        self, repository: cc.Repository
    ) -> None:
        """R24, R22c: ``_anon_`` ids are never listed; ids that merely look alike are."""
        one_shot = "_anon_" + "k" * 24
        ids = [one_shot, "_anon_", "_ANON_x", "_anon", "x_anon_", "_anon-x"]
        for external_id in ids:
            _put(repository, _product(external_id, expires_at=START + _DAY))
        assert _live_ids(repository) == ["_ANON_x", "_anon", "_anon-x", "x_anon_"]
        assert repository.list_live(ACCOUNT, after="_", limit=1, now=START)[0].external_id == (
            "_ANON_x"
        )
        stored = repository.get(ACCOUNT, one_shot)
        assert stored is not None
        assert stored.one_shot

        catalog = cc.Catalog(repository, clock=FakeClock())
        used = catalog.use(ACCOUNT, {"images": list(IMAGES)}).product
        assert catalog.get(ACCOUNT, used.external_id) == used
        assert [p.external_id for p in catalog.list(ACCOUNT).items] == _live_ids(repository)

    def test_r24_a_walk_through_all_pages_while_others_write_returns_each_lasting_product_once(
        self, repository: cc.Repository, tmp_path: pathlib.Path
    ) -> None:
        """R24: products that exist for the whole walk come exactly once, in order."""
        lasting = [f"k{n:02d}" for n in range(40)]
        for external_id in lasting:
            _put(repository, _product(external_id))
        catalog = cc.Catalog(repository, clock=FakeClock())

        def walk(second: cc.Repository) -> None:
            stop = threading.Event()
            progress = threading.Condition()
            writes = [0]

            def churn(worker: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    target = lasting[(n * 7 + worker) % len(lasting)]
                    # New ids right beside lasting ones, created and deleted between pages, and
                    # updates of the lasting products themselves.
                    _put(second, _product(f"{target}-{worker}"))
                    second.write(ACCOUNT, target, lambda s: cc.Write(_touched(s)))
                    _drop(second, ACCOUNT, f"{target}-{worker}")
                    _put(second, _product(f"{target}+{worker}"))
                    _drop(second, ACCOUNT, f"{target}+{worker}")
                    with progress:
                        writes[0] += 1
                        progress.notify_all()

            walked: list[str] = []
            pages = 0
            with ThreadPoolExecutor(2) as pool:
                churners = [pool.submit(churn, worker) for worker in range(2)]

                def moved(since: int) -> bool:
                    return writes[0] > since or any(c.done() for c in churners)

                try:
                    cursor = None
                    while True:
                        page = catalog.list(ACCOUNT, limit=3, cursor=cursor)
                        pages += 1
                        assert page.count <= 3
                        walked += [p.external_id for p in page.items]
                        if page.next_cursor is None:
                            break
                        cursor = page.next_cursor
                        with progress:  # let at least one round of writes land between pages
                            seen = writes[0]
                            progress.wait_for(functools.partial(moved, seen), timeout=5)
                finally:
                    stop.set()
                for churner in churners:
                    churner.result()
            assert writes[0] >= pages - 1  # the walk really was interleaved with writes
            assert walked == sorted(walked)
            assert len(walked) == len(set(walked))
            assert set(lasting) <= set(walked)
            assert all(w in lasting or w[:3] in lasting for w in walked)

        self._with_second(repository, tmp_path, walk)

    # -- R20: expired products are invisible before any purge ------------------------------

    # -- walking every product: export and copy ---------------------------------------------

    def test_r24_r22c_scan_live_walks_every_account_in_key_order_one_shot_products_included(
        self, scanning: cc.ScanRepository
    ) -> None:
        """R24, R22c: every live product of every account, by (account, id) in code points."""
        accounts = ("acme", "Acme", "acme2", "ａcme")  # code-point order differs from others
        keys = [(account, external_id) for account in accounts for external_id in LISTING_IDS]
        keys.append((ACCOUNT, "_anon_0123456789abcdefghijklmn"))  # one-shot: walked too
        for account, external_id in reversed(keys):
            _put(scanning, _product(external_id, account=account))
        walk = scanning.scan_live(account=None, after=None, limit=10_000, now=START)
        assert [(p.account, p.external_id) for p in walk] == sorted(keys)
        assert scanning.count_live(account=None, now=START) == len(keys)
        assert scanning.count_live(account="Acme", now=START) == len(LISTING_IDS)
        assert scanning.count_live(account="nobody", now=START) == 0
        mine = scanning.scan_live(account=ACCOUNT, after=None, limit=10_000, now=START)
        assert [(p.account, p.external_id) for p in mine] == sorted(
            key for key in keys if key[0] == ACCOUNT
        )

    def test_r24_scan_live_pages_after_a_key_exclusively_across_accounts(
        self, scanning: cc.ScanRepository
    ) -> None:
        """R24: a walk in pages of any size returns each product once, in order; R1 filters."""
        keys = sorted((account, str(n)) for account in ("a", "b", "c") for n in range(7))
        for account, external_id in keys:
            _put(scanning, _product(external_id, account=account))
        for limit in (1, 2, 3, 7, 8, 100):
            walked: list[tuple[str, str]] = []
            after: tuple[str, str] | None = None
            while True:
                page = scanning.scan_live(account=None, after=after, limit=limit, now=START)
                assert len(page) <= limit
                walked += [(p.account, p.external_id) for p in page]
                if len(page) < limit:
                    break
                after = walked[-1]
            assert walked == keys, limit
        # One account's walk: after a key of an earlier account it starts at the beginning,
        # after one of a later account it is over.
        assert _ids(scanning.scan_live(account="b", after=("a", "9"), limit=3, now=START)) == [
            "0",
            "1",
            "2",
        ]
        assert _ids(scanning.scan_live(account="b", after=("b", "4"), limit=9, now=START)) == [
            "5",
            "6",
        ]
        assert scanning.scan_live(account="b", after=("c", ""), limit=9, now=START) == []
        assert _ids(scanning.scan_live(account=None, after=("b", "6"), limit=1, now=START)) == ["0"]

    def test_r20_scan_live_skips_expired_products_and_its_limit_counts_live_ones(
        self, scanning: cc.ScanRepository
    ) -> None:
        """R20: expired when ``now >= expiresAt``, for the walk and its count alike."""
        expires = START + _DAY
        for external_id in ("a", "c", "e"):
            _put(scanning, _product(external_id, expires_at=expires))
        _put(scanning, _product("b", expires_at=expires + _MS))
        _put(scanning, _product("d", account=OTHER))
        walk = scanning.scan_live(account=None, after=None, limit=2, now=expires)
        assert [(p.account, p.external_id) for p in walk] == [(ACCOUNT, "b"), (OTHER, "d")]
        assert scanning.count_live(account=None, now=expires) == 2
        assert scanning.count_live(account=ACCOUNT, now=expires - _MS) == 4
        everything = scanning.scan_live(account=ACCOUNT, after=None, limit=9, now=expires - _MS)
        assert _ids(everything) == ["a", "b", "c", "e"]

    def test_r20_list_live_skips_products_expired_at_now_from_expires_at_on(
        self, repository: cc.Repository
    ) -> None:
        """R20: expired when ``now >= expiresAt``; live one millisecond before."""
        expires = START + _DAY
        for external_id in ("a", "c", "e"):
            _put(repository, _product(external_id, expires_at=expires))
        for external_id in ("b", "d"):
            _put(repository, _product(external_id, expires_at=expires + _MS))
        _put(repository, _product("f"))
        assert _live_ids(repository, now=expires - _MS) == ["a", "b", "c", "d", "e", "f"]
        assert _live_ids(repository, now=expires) == ["b", "d", "f"]
        assert _live_ids(repository, now=expires + _MS) == ["f"]
        # Expired products do not use up the page: the limit counts live ones.
        page = repository.list_live(ACCOUNT, after=None, limit=2, now=expires)
        assert _ids(page) == ["b", "d"]
        assert _ids(repository.list_live(ACCOUNT, after="b", limit=1, now=expires)) == ["d"]
        stored = repository.get(ACCOUNT, "a")  # get hands out what is stored, expired or not
        assert stored is not None
        assert stored.expires_at == expires

    def test_r20_the_catalog_treats_an_expired_product_as_absent_before_any_purge(
        self, repository: cc.Repository
    ) -> None:
        """R20, R4, R23, R25: from expiresAt on, get, use, delete and list see nothing."""
        clock = FakeClock()
        catalog = cc.Catalog(repository, clock=clock)
        old = catalog.upsert(
            ACCOUNT, {"externalId": "p", "images": list(IMAGES), "validForDays": 1}
        ).product
        catalog.upsert(ACCOUNT, {"externalId": "q", "images": list(IMAGES)})
        assert old.expires_at == START + _DAY
        clock.now = START + _DAY - _MS
        assert catalog.get(ACCOUNT, "p") == old
        assert [p.external_id for p in catalog.list(ACCOUNT).items] == ["p", "q"]
        clock.now = START + _DAY
        _not_found(catalog, ACCOUNT, "p")
        assert [p.external_id for p in catalog.list(ACCOUNT).items] == ["q"]
        assert [p.external_id for p in catalog.list(ACCOUNT, limit=1).items] == ["q"]
        assert repository.get(ACCOUNT, "p") == old  # still stored: no purge has run
        fresh = catalog.upsert(ACCOUNT, {"externalId": "p", "images": list(IMAGES)})
        assert fresh.created
        assert fresh.product.version == 1
        assert fresh.product.created_at == START + _DAY
        assert fresh.product.valid_for_days is None

    # -- R21, R15: the purge ----------------------------------------------------------------

    def test_r21_purge_removes_exactly_the_expired_products_and_returns_their_count(
        self, repository: cc.Repository
    ) -> None:
        """R21: expired at now (expiresAt <= now) in every account; nothing else."""
        now = START + _DAY
        expired = [
            (ACCOUNT, "long-ago", now - 30 * _DAY),
            (ACCOUNT, "just-now", now),
            (OTHER, "other-account", now - _MS),
            (ACCOUNT, "_anon_" + "a" * 24, now - _MS),
        ]
        kept = [
            (ACCOUNT, "soon", now + _MS),
            (ACCOUNT, "forever", None),
            (OTHER, "later", now + _DAY),
        ]
        for account, external_id, expires in expired + kept:
            _put(repository, _product(external_id, account=account, expires_at=expires))
        assert repository.purge_expired(now - _DAY) == 1
        assert repository.purge_expired(now) == len(expired) - 1
        for account, external_id, _ in expired:
            assert repository.get(account, external_id) is None
        for account, external_id, _ in kept:
            assert repository.get(account, external_id) is not None
        assert repository.purge_expired(now) == 0
        assert _live_ids(repository, now=now) == ["forever", "soon"]

    def test_r21_only_the_current_lifetime_counts_for_the_purge(
        self, repository: cc.Repository
    ) -> None:
        """R21, R19: a write that moves expiresAt moves the purge with it, either way."""
        first = START + _DAY
        extended = _put(repository, _product("extended", expires_at=first))
        _put(repository, attrs.evolve(extended, expires_at=first + _DAY, version=2))
        forever = _put(repository, _product("made-permanent", expires_at=first))
        _put(repository, attrs.evolve(forever, expires_at=None, version=2))
        shortened = _put(repository, _product("shortened", expires_at=first + _DAY))
        _put(repository, attrs.evolve(shortened, expires_at=first, version=2))
        recreated = _put(repository, _product("recreated", expires_at=first))
        _drop(repository, ACCOUNT, "recreated")
        _put(repository, attrs.evolve(recreated, expires_at=first + _DAY))

        assert repository.purge_expired(first) == 1
        assert _live_ids(repository, now=first) == ["extended", "made-permanent", "recreated"]
        assert repository.purge_expired(first + _DAY) == 2
        assert _live_ids(repository, now=first + _DAY) == ["made-permanent"]

    def test_r21_r15_a_blob_no_product_refers_to_is_removed_by_the_purge_and_not_before(
        self, repository: cc.Repository
    ) -> None:
        """R21, R15: dropped blobs stay until the purge; blobs still named stay after it."""
        dropped, deleted, named = _blob(1), _blob(2, "image/webp"), _blob(3, "image/heic")
        p = _put(repository, _product("p", images=_images_of(dropped, named)), dropped, named)
        _put(repository, _product("q", images=_images_of(deleted)), deleted)
        _put(repository, attrs.evolve(p, images=_images_of(named), version=2))
        _drop(repository, ACCOUNT, "q")
        for blob in (dropped, deleted, named):
            assert repository.get_blob(ACCOUNT, blob.sha256) == blob
        assert repository.purge_expired(START) == 0
        assert repository.get_blob(ACCOUNT, dropped.sha256) is None
        assert repository.get_blob(ACCOUNT, deleted.sha256) is None
        assert repository.get_blob(ACCOUNT, named.sha256) == named

    def test_r21_r15_a_blob_shared_by_two_products_stays_until_both_are_gone(
        self, repository: cc.Repository
    ) -> None:
        """R21, R15: the same bytes named twice are one blob, kept while anything names it."""
        shared = _blob(1)
        _put(repository, _product("p", images=_images_of(shared)), shared)
        q = _product("q", images=_images_of(shared, shared), expires_at=START + _DAY)
        _put(repository, q, shared)  # given again: still one blob
        _drop(repository, ACCOUNT, "p")
        assert repository.purge_expired(START) == 0
        assert repository.get_blob(ACCOUNT, shared.sha256) == shared
        assert repository.purge_expired(START + _DAY) == 1  # q, and with it the blob's last use
        assert repository.get_blob(ACCOUNT, shared.sha256) is None

    def test_r21_r15_purging_one_of_two_products_sharing_a_blob_keeps_the_blob(
        self, repository: cc.Repository
    ) -> None:
        """R21, R15: the purge lowers a shared blob's count; the live product keeps its bytes."""
        shared = _blob(1)
        _put(repository, _product("p", images=_images_of(shared)), shared)
        _put(repository, _product("q", images=_images_of(shared), expires_at=START + _DAY), shared)
        assert repository.purge_expired(START + _DAY) == 1
        assert repository.get_blob(ACCOUNT, shared.sha256) == shared
        assert repository.purge_expired(START + 2 * _DAY) == 0
        assert repository.get_blob(ACCOUNT, shared.sha256) == shared
        kept = repository.get(ACCOUNT, "p")
        assert kept is not None
        assert kept.blob_refs == {shared.sha256}

    def test_r21_r15_an_orphaned_blob_named_again_before_the_purge_survives_it(
        self, repository: cc.Repository
    ) -> None:
        """R21, R15: a product may name a blob that is stored, unreferenced, and not purged."""
        blob = _blob(1)
        p = _put(repository, _product("p", images=_images_of(blob)), blob)
        _put(repository, attrs.evolve(p, images=_URL_IMAGES, version=2))
        _put(repository, _product("q", images=_images_of(blob)))  # not given again: stored
        assert repository.purge_expired(START) == 0
        assert repository.get_blob(ACCOUNT, blob.sha256) == blob
        _drop(repository, ACCOUNT, "q")
        repository.purge_expired(START)
        assert repository.get_blob(ACCOUNT, blob.sha256) is None

    def test_r21_r15_a_blob_given_with_a_write_that_names_it_nowhere_is_removed_by_the_purge(
        self, repository: cc.Repository
    ) -> None:
        """R21, R15: a blob no product refers to is removed by the purge, however it came."""
        unnamed = _blob(1)
        _put(repository, _product("p"), unnamed)
        repository.purge_expired(START)
        assert repository.get_blob(ACCOUNT, unnamed.sha256) is None

    def test_r21_r15_a_purge_racing_writers_that_upload_the_same_bytes_never_loses_a_live_image(
        self, repository: cc.Repository, tmp_path: pathlib.Path
    ) -> None:
        """R21, R15, R26: a blob named again while the purge runs is the named product's, kept.

        Each of 20 rounds orphans 8 blobs (a product that held them is deleted), then runs a
        purge and, at the same moment on the second handle, 8 writes that name the same bytes
        again: even ones upload them again, odd ones name the stored blob without giving it.
        A write that names a blob the purge has already removed may be refused with
        ``ValueError`` (storing nothing); every write that is stored keeps its blob, through this
        purge and the next.
        """
        rounds, width = 20, 8

        def race(second: cc.Repository) -> None:
            stored: dict[str, cc.Blob] = {}

            def reuse(r: int, blobs: Sequence[cc.Blob]) -> None:
                for k, blob in enumerate(blobs):
                    product = _product(f"new{r}-{k}", images=_images_of(blob))
                    given = (blob,) if k % 2 == 0 else ()
                    try:
                        _put(second, product, *given)
                    except ValueError:  # named, not given, and already purged: refused
                        assert not given
                        assert second.get(ACCOUNT, product.external_id) is None
                    else:
                        stored[product.external_id] = blob

            for r in range(rounds):
                blobs = [_blob(r * width + k, size=16) for k in range(width)]
                _put(repository, _product(f"old{r}", images=_images_of(*blobs)), *blobs)
                _drop(repository, ACCOUNT, f"old{r}")  # the bytes are orphans now

                def part(n: int, r: int = r, blobs: Sequence[cc.Blob] = blobs) -> None:
                    # Which thread gets going first depends on the threads, not on the backend:
                    # the two swap parts every round, so that both orders are raced.
                    if (n + r) % 2:
                        repository.purge_expired(START)
                    else:
                        reuse(r, blobs)

                _in_threads(part, 2)
                for external_id, blob in stored.items():
                    if external_id.startswith(f"new{r}-"):
                        assert repository.get_blob(ACCOUNT, blob.sha256) == blob, (
                            f"round {r}: the purge removed the image of {external_id}"
                        )
            assert len(stored) >= rounds * width // 2  # every upload was stored
            assert repository.purge_expired(START) == 0  # the later rounds' purges, and this one
            for external_id, blob in stored.items():
                product = repository.get(ACCOUNT, external_id)
                assert product is not None
                assert product.blob_refs == {blob.sha256}
                assert repository.get_blob(ACCOUNT, blob.sha256) == blob, external_id

        self._with_second(repository, tmp_path, race)

    def test_r15_an_orphan_blob_named_again_before_the_purge_is_kept(
        self, repository: cc.Repository, catalog: cc.Catalog
    ) -> None:
        """R15, R21: bytes uploaded again after their last product went are kept by the purge."""
        png = _blob(1, "image/png").data
        payload = {"externalId": "p1", "images": [{"source": {"fileKey": "f"}}]}
        first = catalog.upsert(ACCOUNT, payload, files={"f": cc.Upload(png)}).product
        sha = first.images[0].blob_sha256
        assert sha is not None
        catalog.delete(ACCOUNT, "p1")
        catalog.upsert(ACCOUNT, {**payload, "externalId": "p2"}, files={"f": cc.Upload(png)})
        catalog.purge_expired()
        blob = repository.get_blob(ACCOUNT, sha)
        assert blob is not None
        assert blob.data == png

    def test_r21_purging_an_empty_repository_removes_nothing(
        self, repository: cc.Repository
    ) -> None:
        """R21: the count is 0 when nothing has expired, or nothing is stored at all."""
        assert repository.purge_expired(START) == 0
        assert repository.purge_expired(datetime(2999, 1, 1, tzinfo=UTC)) == 0
        _put(repository, _product("forever"))
        assert repository.purge_expired(datetime(2999, 1, 1, tzinfo=UTC)) == 0
        assert _live_ids(repository) == ["forever"]

    def test_r21_the_purge_works_through_more_than_one_batch(
        self, repository: cc.Repository
    ) -> None:
        """R21: over 500 expired products and over 500 orphan blobs, all gone in one call."""
        expired, with_blobs = 1003, 503
        expires = START + _DAY
        blobs = [_blob(n, size=16) for n in range(with_blobs)]
        for n in range(expired):
            images = _images_of(blobs[n]) if n < with_blobs else _URL_IMAGES
            given = (blobs[n],) if n < with_blobs else ()
            _put(repository, _product(f"p{n:04d}", images=images, expires_at=expires), *given)
        kept = _blob(with_blobs)
        _put(repository, _product("kept", images=_images_of(kept)), kept)
        _put(repository, _product("later", expires_at=expires + _MS))
        assert repository.purge_expired(expires) == expired
        assert _live_ids(repository, now=expires) == ["kept", "later"]
        assert repository.get(ACCOUNT, "p0000") is None
        assert repository.get(ACCOUNT, f"p{expired - 1:04d}") is None
        assert repository.get_blob(ACCOUNT, blobs[0].sha256) is None
        assert repository.get_blob(ACCOUNT, blobs[-1].sha256) is None
        assert repository.get_blob(ACCOUNT, kept.sha256) == kept

    # -- R31: timestamps --------------------------------------------------------------------

    def test_r31_millisecond_timestamps_round_trip_exactly(self, repository: cc.Repository) -> None:
        """R31: odd milliseconds, the epoch and far dates read back equal, in UTC."""
        odd = datetime(2026, 5, 13, 10, 0, 0, 1000, tzinfo=UTC)
        products = [
            _product(
                "odd",
                at=odd,
                last_used_at=odd + 998 * _MS,
                expires_at=datetime(2100, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
                valid_for_days=365,
            ),
            attrs.evolve(
                _product("far", at=datetime(2100, 1, 1, 0, 0, 0, 999000, tzinfo=UTC)),
                created_at=datetime(1970, 1, 1, tzinfo=UTC),
                last_used_at=datetime(2999, 12, 31, 23, 59, 59, 1000, tzinfo=UTC),
            ),
            _product("leap", at=datetime(2028, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)),
        ]
        for product in products:
            _put(repository, product)
        for product in products:
            stored = repository.get(ACCOUNT, product.external_id)
            assert stored == product
            for moment in (stored.created_at, stored.updated_at, stored.last_used_at):
                assert moment is None or moment.utcoffset() == timedelta(0)
        listed = repository.list_live(ACCOUNT, after=None, limit=10, now=START)
        assert sorted(listed, key=lambda p: p.external_id) == sorted(
            products, key=lambda p: p.external_id
        )

        clock = FakeClock(datetime(2026, 5, 13, 10, 0, 0, 999999, tzinfo=UTC))
        catalog = cc.Catalog(repository, clock=clock)
        created = catalog.upsert(
            ACCOUNT, {"externalId": "c", "images": list(IMAGES), "validForDays": 365}
        ).product
        clock.advance(microseconds=1002)
        used = catalog.use(ACCOUNT, {"externalId": "c"}).product
        assert created.created_at == datetime(2026, 5, 13, 10, 0, 0, 999000, tzinfo=UTC)
        assert used.last_used_at == datetime(2026, 5, 13, 10, 0, 1, 1000, tzinfo=UTC)
        assert catalog.get(ACCOUNT, "c") == used
        assert repository.get(ACCOUNT, "c") == used

    # -- R2, R9, R16: unicode and big values ------------------------------------------------

    def test_r2_unicode_external_ids_round_trip_exactly_and_stay_distinct(
        self, repository: cc.Repository, catalog: cc.Catalog
    ) -> None:
        """R2: emoji, CJK, combining marks, case, spaces and 256 characters, never altered."""
        for external_id in UNICODE_IDS:
            payload = {"externalId": external_id, "images": list(IMAGES), "title": external_id}
            assert catalog.upsert(ACCOUNT, payload).created
        for external_id in UNICODE_IDS:
            stored = catalog.get(ACCOUNT, external_id)
            assert stored.external_id == external_id
            assert stored.title == external_id
        listed: list[str] = []
        cursor = None
        while True:
            page = catalog.list(ACCOUNT, limit=5, cursor=cursor)
            listed += [p.external_id for p in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert listed == sorted(UNICODE_IDS)
        raw = _put(repository, _product("e\u0301\u0301", account="账户 😀"))
        assert repository.get("账户 😀", "e\u0301\u0301") == raw
        assert repository.get("账户 😀", "é\u0301") is None

    def test_r9_r16_unicode_metadata_and_classifications_round_trip_exactly(
        self, repository: cc.Repository
    ) -> None:
        """R9, R16: nested unicode, empty keys, big ints and floats keep their values and types."""
        image = cc.Image(URL, 0, CLASSIFICATIONS)
        product = _product("raw", metadata=UNICODE_METADATA, images=(image, cc.Image(URL, 1)))
        _put(repository, product)
        catalog = cc.Catalog(repository, clock=FakeClock())
        payload = {
            "externalId": "catalog",
            "metadata": UNICODE_METADATA,
            "images": [
                {"source": {"url": URL}, "classifications": CLASSIFICATIONS},
                {"source": {"url": URL}},
            ],
        }
        written = catalog.upsert(ACCOUNT, payload).product
        for stored in (
            repository.get(ACCOUNT, "raw"),
            repository.get(ACCOUNT, "catalog"),
            *repository.list_live(ACCOUNT, after=None, limit=2, now=START),
        ):
            assert stored is not None
            assert stored.metadata == UNICODE_METADATA
            assert _canonical(stored.metadata) == _canonical(UNICODE_METADATA)
            assert stored.images[0].classifications == CLASSIFICATIONS
            assert _canonical(stored.images[0].classifications) == _canonical(CLASSIFICATIONS)
            assert stored.images[1].classifications is None
        assert repository.get(ACCOUNT, "raw") == product
        assert repository.get(ACCOUNT, "catalog") == written

    def test_r9_metadata_of_exactly_the_size_limit_round_trips(
        self, repository: cc.Repository, catalog: cc.Catalog
    ) -> None:
        """R9, R33: 16,384 bytes of compact UTF-8 JSON metadata is accepted and kept whole."""
        metadata = _json_of_size(catalog.limits.max_metadata_bytes, nested={"ключ": [1, 2.5]})
        written = catalog.upsert(
            ACCOUNT, {"externalId": "p", "images": list(IMAGES), "metadata": metadata}
        ).product
        assert catalog.get(ACCOUNT, "p") == written
        stored = repository.get(ACCOUNT, "p")
        assert stored is not None
        assert stored.metadata == metadata
        assert _compact_size(stored.metadata) == 16_384

    def test_r8_r16_twenty_images_with_classifications_at_the_size_limit_round_trip(
        self, repository: cc.Repository, catalog: cc.Catalog
    ) -> None:
        """R8, R16, R33: 20 images, each with 4,096 bytes of classifications, in order."""
        limit = catalog.limits.max_classifications_bytes
        images = [
            {
                "source": {"url": f"https://cdn.example/{n}.jpg"},
                "classifications": _json_of_size(limit, key=f"k{n}", index=n),
            }
            for n in range(catalog.limits.max_images)
        ]
        written = catalog.upsert(ACCOUNT, {"externalId": "p", "images": images}).product
        stored = repository.get(ACCOUNT, "p")
        assert stored == written
        assert stored is not None
        assert [i.order for i in stored.images] == list(range(20))
        assert [i.source_url for i in stored.images] == [e["source"]["url"] for e in images]
        assert [i.classifications for i in stored.images] == [e["classifications"] for e in images]

    # -- R15: blobs -------------------------------------------------------------------------

    def test_r15_get_blob_returns_the_stored_bytes_and_mime_type_exactly_or_none(
        self, repository: cc.Repository
    ) -> None:
        """R15: every recognised type, every byte value, a large file; None when unknown."""
        blobs = [_blob(n, mime_type) for n, mime_type in enumerate(_MAGIC)]
        every_byte = _MAGIC["image/png"] + bytes(range(256)) * 4
        blobs.append(make_blob("bytes", every_byte, max_bytes=_MAX_BLOB_BYTES))
        blobs.append(_blob(99, "image/jpeg", size=2**20 + 3))
        blobs.append(cc.Blob(hashlib.sha256(b"as given").hexdigest(), b"as given", "image/heif"))
        _put(repository, _product("p", images=_images_of(*blobs)), *blobs)
        for blob in blobs:
            stored = repository.get_blob(ACCOUNT, blob.sha256)
            assert stored == blob
            assert stored is not None
            assert type(stored.data) is bytes
        assert repository.get_blob(ACCOUNT, hashlib.sha256(b"unknown").hexdigest()) is None
        assert repository.get_blob(ACCOUNT, "") is None

        catalog = cc.Catalog(repository, clock=FakeClock())
        uploaded = _MAGIC["image/webp"] + b"\x00\xff" * 100
        product = catalog.upsert(
            ACCOUNT,
            {"externalId": "q", "images": [{"source": {"fileKey": "f"}}]},
            files={"f": cc.Upload(uploaded, "image/png")},  # the claimed type is not trusted
        ).product
        sha = hashlib.sha256(uploaded).hexdigest()
        assert product.images[0].source_url == f"upload://{sha}"
        assert repository.get_blob(ACCOUNT, sha) == cc.Blob(sha, uploaded, "image/webp")

    # -- T1-T24: the try-on flow's state ----------------------------------------------------

    def test_t4_t23_a_person_image_round_trips_every_field_exactly(
        self, tryon: TryOnRepository
    ) -> None:
        """T3, T4, T23: every field reads back equal, NUL and non-BMP text included, expired or not.

        A person image belongs to its account (R1): another account reads none.
        """
        png, jpeg = _blob(1, "image/png"), _blob(2)
        odd = datetime(2026, 5, 13, 10, 0, 0, 1000, tzinfo=UTC)
        images = (
            _person_image(
                "img_full",
                png,
                mime_type=f"image/png {AWKWARD_TEXT}",
                token=f"token {AWKWARD_TEXT}",
                crop=False,
                customer_id=f"customer {AWKWARD_TEXT}",
                created_at=odd,
                expires_at=datetime(2100, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            ),
            _person_image("img_plain", jpeg, crop=True, customer_id=None),
            _person_image("img_expired", jpeg, created_at=START - _DAY, expires_at=START),
        )
        _store_tryon(tryon, TryOnWrite(person_images=images, blobs=(png, jpeg)))
        for image in images:
            assert tryon.get_person_image(ACCOUNT, image.image_id) == image
            assert tryon.get_person_image(OTHER, image.image_id) is None
        assert tryon.get_person_image(ACCOUNT, "img_unknown") is None
        assert tryon.get_blob(ACCOUNT, png.sha256) == png
        assert tryon.get_blob(OTHER, png.sha256) is None

    def test_t15_t23_a_generation_round_trips_every_field_exactly(
        self, tryon: TryOnRepository
    ) -> None:
        """T12, T15, T18, T23: snapshots, timeline, outcome, errors and tokens read back equal.

        An erased result (a snapshot with nothing left) is told from no result at all.
        """
        person, result = _blob(1, "image/png"), _blob(2, "image/webp")
        uploaded = _blob(3, "image/jpeg")
        odd = datetime(2026, 5, 13, 10, 0, 0, 1000, tzinfo=UTC)
        snapshot = ProductSnapshot(
            AWKWARD_ID,
            f"title {AWKWARD_TEXT}",
            f"description {AWKWARD_TEXT}",
            (
                cc.Image(f"{URL}?q={AWKWARD_TEXT}", 0, {**CLASSIFICATIONS, "nul": "\x00"}),
                cc.Image(uploaded.source_url, 1),
                cc.Image(URL, 2, {"big": 2**64, "float": 0.1}),
            ),
        )
        generations = (
            _generation(
                "gen_completed",
                product=snapshot,
                person=_person_of(person),
                customer_id=f"customer {AWKWARD_TEXT}",
                watermark=False,
                keep_for_days=3,
                created_at=odd,
                processing_at=odd + _MS,
                finished_at=odd + 2000 * _MS,
                outcome="COMPLETED",
                result=_person_of(result),
                token=f"token {AWKWARD_TEXT}",
                expires_at=odd + 3 * _DAY,
            ),
            _generation(
                "gen_failed",
                person=Person(url=f"{URL}?who={AWKWARD_TEXT}"),
                finished_at=START + _DAY,
                outcome="FAILED",
                result=Person(url=f"{URL}?result={AWKWARD_TEXT}"),
                error_code=f"CODE {AWKWARD_TEXT}",
                error_message=f"message {AWKWARD_TEXT}",
            ),
            _generation(
                "gen_pending",
                product=ProductSnapshot("_anon_" + "a" * 24, None, None, ()),
                person=_person_of(person),
                expires_at=START,
            ),
            _generation("gen_erased", person=Person(), result=Person(), outcome="COMPLETED"),
        )
        _store_tryon(tryon, TryOnWrite(generations=generations, blobs=(person, result, uploaded)))
        for generation in generations:
            assert tryon.get_generation(ACCOUNT, generation.generation_id) == generation
            assert tryon.get_generation(OTHER, generation.generation_id) is None
        assert tryon.get_generation(ACCOUNT, "gen_unknown") is None

    def test_t12_list_generations_is_newest_first_and_pages_before_a_key_exclusively(
        self, generations: GenerationsRepository
    ) -> None:
        """T12, T22, R1: newest first by (created_at, id); ``before`` exclusive; ``limit`` bounds.

        Generations created in the same millisecond are ordered by id; an expired one is skipped
        (and does not count towards ``limit``); another account's are never listed.
        """
        made = [
            _generation(f"gen_{n:02d}", created_at=START + (n // 2) * _MS, expires_at=START + _DAY)
            for n in range(9)
        ]
        expired = _generation("gen_zz_expired", created_at=START + _MS, expires_at=START + _MS)
        foreign = _generation("gen_other", account=OTHER, created_at=START + 5 * _MS)
        _store_tryon(generations, TryOnWrite(generations=(*made, expired)))
        _store_tryon(generations, TryOnWrite(generations=(foreign,)), account=OTHER)
        now = START + 2 * _MS
        newest_first = sorted(made, key=lambda g: (g.created_at, g.generation_id), reverse=True)
        walked: list[Generation] = []
        before: tuple[datetime, str] | None = None
        while True:
            page = generations.list_generations(ACCOUNT, before=before, limit=4, now=now)
            assert len(page) <= 4
            walked.extend(page)
            if len(page) < 4:
                break
            before = (page[-1].created_at, page[-1].generation_id)
        assert walked == newest_first, "T12: not newest first, or a page overlapped or skipped"
        assert generations.list_generations(OTHER, before=None, limit=50, now=now) == [foreign]
        assert generations.list_generations("nobody", before=None, limit=50, now=now) == []

    def test_t15_list_generations_of_one_product_matches_its_snapshot_id_exactly(
        self, generations: GenerationsRepository
    ) -> None:
        """T15, R2: ``product`` picks the generations whose snapshot has exactly that id.

        Ids that differ only in normalisation, or that are prefixes of one another, are
        different products; a page of one product's is as long as asked, however many of the
        account's generations (of other products) lie between them.
        """
        ids = (AWKWARD_ID, "é", "e\u0301", "tee", "tee-2", "'; DROP TABLE x; --")
        made = [
            _generation(
                f"gen_{n:02d}",
                product=ProductSnapshot(external_id, None, None, ()),
                created_at=START + n * _MS,
            )
            for n, external_id in enumerate(ids * 2)
        ]
        between = [  # other products' generations, newer and between the two of each id
            _generation(
                f"gen_x{n:03d}",
                product=ProductSnapshot(f"other-{n % 7}", None, None, ()),
                created_at=START + (n % 12) * _MS,
            )
            for n in range(300)
        ]
        _store_tryon(generations, TryOnWrite(generations=(*made, *between)))
        for external_id in ids:
            first = generations.list_generations(
                ACCOUNT, before=None, limit=1, now=START, product=external_id
            )
            rest = generations.list_generations(
                ACCOUNT,
                before=(first[0].created_at, first[0].generation_id),
                limit=1,
                now=START,
                product=external_id,
            )
            assert [*first, *rest] == [
                g for g in reversed(made) if g.product.external_id == external_id
            ]
            page = generations.list_generations(
                ACCOUNT, before=None, limit=50, now=START, product=external_id
            )
            expected = [g for g in reversed(made) if g.product.external_id == external_id]
            assert page == expected, f"T15: the generations of {external_id!r}"
        assert (
            generations.list_generations(ACCOUNT, before=None, limit=50, now=START, product="te")
            == []
        )

    def test_t12_t18_list_generations_reads_back_what_get_generation_reads(
        self, generations: GenerationsRepository
    ) -> None:
        """T12, T18: a listed generation is the stored one, erased customers' included."""
        person = _blob(1, "image/png")
        made = (
            _generation("gen_a", person=_person_of(person), customer_id="u-1"),
            _generation("gen_b", created_at=START + _MS, customer_id="u-2"),
        )
        _store_tryon(generations, TryOnWrite(generations=made, blobs=(person,)))
        generations.erase_customer(ACCOUNT, "u-1")
        listed = generations.list_generations(ACCOUNT, before=None, limit=50, now=START)
        assert listed == [
            generations.get_generation(ACCOUNT, "gen_b"),
            generations.get_generation(ACCOUNT, "gen_a"),
        ]
        assert listed[1].customer_id is None

    def test_t15_t22_a_generation_keeps_the_uploaded_images_of_its_product_snapshot(
        self, tryon: TryOnRepository
    ) -> None:
        """T15, T22: a generation keeps its snapshot of the product's uploaded images.

        An uploaded one stays while the generation does, after the product is deleted and
        purged, and goes with the generation's purge.
        """
        upload = _blob(4, "image/png")
        product = _product("p", images=_images_of(upload))
        tryon.write(ACCOUNT, "p", _storing(product, upload))
        snapshot = ProductSnapshot("p", None, None, product.images)
        kept = _generation("gen_kept", product=snapshot, expires_at=START + _DAY)
        _store_tryon(tryon, TryOnWrite(generations=(kept,)))
        tryon.write(ACCOUNT, "p", _storing(None))
        tryon.purge(START)
        assert tryon.get_blob(ACCOUNT, upload.sha256) == upload
        assert tryon.purge(START + _DAY) == PurgeCounts(generations=1)
        assert tryon.get_blob(ACCOUNT, upload.sha256) is None

    def test_t16_t23_a_credit_balance_round_trips_exactly_up_to_64_bits(
        self, tryon: TryOnRepository
    ) -> None:
        """T16, T17, T23: the balance and the times of pending refunds read back equal."""
        assert tryon.get_credits(ACCOUNT) is None
        odd = datetime(2026, 5, 13, 10, 0, 0, 1000, tzinfo=UTC)
        for credits in (
            Credits(
                ACCOUNT, _MAX_INT64, (odd, odd, START + _DAY, datetime(1970, 1, 1, tzinfo=UTC))
            ),
            Credits(ACCOUNT, 0),
            Credits(ACCOUNT, 10**15, (odd,)),
        ):
            _store_tryon(tryon, TryOnWrite(credits=credits))
            assert tryon.get_credits(ACCOUNT) == credits
        assert tryon.get_credits(OTHER) is None
        _store_tryon(tryon, TryOnWrite(credits=Credits(OTHER, 7)), OTHER)
        assert tryon.get_credits(OTHER) == Credits(OTHER, 7)
        assert tryon.get_credits(ACCOUNT) == Credits(ACCOUNT, 10**15, (odd,))

    def test_t10_write_tryon_hands_the_change_the_stored_records_of_its_keys(
        self, tryon: TryOnRepository
    ) -> None:
        """T10, R1: the change sees the stored records of its keys (expired or not), no others.

        Ids without a record are left out; a balance or product not among the keys is not read.
        """
        blob = _blob(1)
        product = _put(tryon, _product("p", expires_at=START))
        image = _person_image("img_1", blob, expires_at=START)
        generation = _generation("gen_1", person=_person_of(blob))
        credits = Credits(ACCOUNT, 5, (START + _DAY,))
        _store_tryon(
            tryon,
            TryOnWrite(
                person_images=(image,), generations=(generation,), credits=credits, blobs=(blob,)
            ),
        )
        every = TryOnKeys("p", ("img_1", "img_2"), ("gen_1", "gen_2"), credits=True)
        seen: list[TryOnState] = []

        def change(state: TryOnState) -> TryOnWrite:
            seen.append(state)
            return TryOnWrite()

        expected = {
            (ACCOUNT, every): TryOnState(product, {"img_1": image}, {"gen_1": generation}, credits),
            (OTHER, every): TryOnState(),
            (ACCOUNT, TryOnKeys(person_images=("img_1",))): TryOnState(
                person_images={"img_1": image}
            ),
            (ACCOUNT, TryOnKeys(generations=("gen_2",), credits=True)): TryOnState(credits=credits),
            (ACCOUNT, TryOnKeys()): TryOnState(),
        }
        for (account, keys), state in expected.items():
            seen.clear()
            assert tryon.write_tryon(account, keys, change) == TryOnWrite()
            assert seen, "T10: write_tryon never called its change"
            assert all(s == state for s in seen), f"T10: {account} {keys} was handed {seen[-1]!r}"
        assert tryon.get(ACCOUNT, "p") == product  # nothing was written
        assert tryon.get_credits(ACCOUNT) == credits

    def test_t10_r26_a_try_on_write_stores_its_product_images_generations_and_balance_together(
        self, tryon: TryOnRepository
    ) -> None:
        """T10, R26: one write stores every kind of record and the blobs they name, at once."""
        upload, person, result = _blob(1), _blob(2, "image/png"), _blob(3, "image/webp")
        stored = _blob(4)
        _store_tryon(
            tryon, TryOnWrite(person_images=(_person_image("img_0", stored),), blobs=(stored,))
        )
        product = _product("p", images=(*_images_of(upload), cc.Image(URL, 1)))
        write = TryOnWrite(
            product=cc.Write(product, (upload,)),
            person_images=(_person_image("img_1", person),),
            generations=(
                _generation("gen_1", person=_person_of(person), result=_person_of(result)),
                _generation("gen_2", person=_person_of(stored)),  # stored: named, not given
            ),
            credits=Credits(ACCOUNT, 9),
            blobs=(person, result),
        )
        _store_tryon(tryon, write)
        assert tryon.get(ACCOUNT, "p") == product
        assert tryon.get_person_image(ACCOUNT, "img_1") == write.person_images[0]
        for generation in write.generations:
            assert tryon.get_generation(ACCOUNT, generation.generation_id) == generation
        assert tryon.get_credits(ACCOUNT) == Credits(ACCOUNT, 9)
        for blob in (upload, person, result, stored):
            assert tryon.get_blob(ACCOUNT, blob.sha256) == blob
        deleted = TryOnWrite(product=cc.Write(None))
        assert tryon.write_tryon(ACCOUNT, TryOnKeys(product="p"), lambda _: deleted) == deleted
        assert tryon.get(ACCOUNT, "p") is None

    def _stored_tryon_state(self, tryon: TryOnRepository) -> tuple[TryOnKeys, TryOnState]:
        """A product, a person image, a generation and a balance, stored; their keys and state."""
        blob = _blob(1)
        _put(tryon, _product("p", images=_images_of(blob)), blob)
        _store_tryon(
            tryon,
            TryOnWrite(
                person_images=(_person_image("img_1", blob),),
                generations=(_generation("gen_1", person=_person_of(blob)),),
                credits=Credits(ACCOUNT, 5),
            ),
        )
        keys = TryOnKeys("p", ("img_1", "img_2"), ("gen_1", "gen_2"), credits=True)
        return keys, _tryon_state(tryon, ACCOUNT, keys)

    def _nothing_changed(
        self, tryon: TryOnRepository, keys: TryOnKeys, before: TryOnState, *blobs: cc.Blob
    ) -> None:
        """T10, R26: every record of ``keys`` is as it was; none of ``blobs`` was stored."""
        assert _tryon_state(tryon, ACCOUNT, keys) == before
        for blob in blobs:
            assert tryon.get_blob(ACCOUNT, blob.sha256) is None, blob.source_url

    def test_t10_r26_a_refused_try_on_write_stores_nothing_at_all(
        self, tryon: TryOnRepository
    ) -> None:
        """T9, T10, R26: a refused try-on write leaves every record and blob as it was.

        Refused: a change that raises, or one that names a blob neither stored nor given, or a
        balance of another account. The missing blob is named by the last kind of record a
        backend applies, so that every other kind has been written (and must be rolled back)
        when it is found.
        """
        keys, before = self._stored_tryon_state(tryon)
        given, missing = _blob(2, "image/png"), _blob(3, "image/webp")
        error = _Refused("no")

        def writes(state: TryOnState, result: cc.Blob) -> TryOnWrite:
            product = state.product
            assert product is not None
            return TryOnWrite(
                product=cc.Write(attrs.evolve(product, title="changed", version=2), (given,)),
                person_images=(_person_image("img_2", given),),
                generations=(
                    _generation("gen_2", person=_person_of(given), result=_person_of(result)),
                ),
                credits=Credits(ACCOUNT, 4),
                blobs=(given,),
            )

        def raising(state: TryOnState) -> TryOnWrite:
            writes(state, given)  # built, never handed over
            raise error

        with pytest.raises(_Refused) as raised:
            tryon.write_tryon(ACCOUNT, keys, raising)
        assert raised.value is error
        self._nothing_changed(tryon, keys, before, given)
        with pytest.raises(ValueError, match="neither stored nor given"):
            tryon.write_tryon(ACCOUNT, keys, lambda state: writes(state, missing))
        self._nothing_changed(tryon, keys, before, given, missing)
        # A credit balance of another account is refused last of all.
        wrong = TryOnWrite(credits=Credits(OTHER, 4))
        with pytest.raises(ValueError, match="account"):
            tryon.write_tryon(
                ACCOUNT,
                keys,
                lambda state: attrs.evolve(writes(state, given), credits=wrong.credits),
            )
        self._nothing_changed(tryon, keys, before, given)
        assert tryon.get_credits(OTHER) is None
        assert tryon.purge(START + 1000 * _DAY) == PurgeCounts(
            products=0, person_images=1, generations=1
        )

    def test_t10_a_try_on_write_of_a_record_not_among_its_keys_is_refused_with_value_error(
        self, tryon: TryOnRepository
    ) -> None:
        """T10, R1, R26: every record stored must be one of the keys read, under its own account.

        Each refused write stores nothing, not even the records of it that were among its keys.
        """
        keys, before = self._stored_tryon_state(tryon)
        blob = _blob(2, "image/png")
        allowed = TryOnWrite(
            person_images=(_person_image("img_2", blob),),
            generations=(_generation("gen_2"),),
            credits=Credits(ACCOUNT, 4),
            blobs=(blob,),
        )
        outside = {
            "product's account and external id": TryOnWrite(product=cc.Write(_product("q"))),
            "did not read: img_3": TryOnWrite(person_images=(_person_image("img_3", blob),)),
            "did not read: gen_3": TryOnWrite(generations=(_generation("gen_3"),)),
            "person image's account": TryOnWrite(
                person_images=(_person_image("img_2", blob, account=OTHER),)
            ),
            "generation's account": TryOnWrite(generations=(_generation("gen_2", account=OTHER),)),
        }
        for case, write in outside.items():
            merged = TryOnWrite(
                product=write.product,
                person_images=allowed.person_images + write.person_images,
                generations=allowed.generations + write.generations,
                credits=allowed.credits,
                blobs=allowed.blobs,
            )
            with pytest.raises(ValueError, match=case):
                tryon.write_tryon(ACCOUNT, keys, _storing_tryon(merged))
            self._nothing_changed(tryon, keys, before, blob)
            assert tryon.get(ACCOUNT, "q") is None, case
            for account in (ACCOUNT, OTHER):
                assert tryon.get_person_image(account, "img_3") is None, case
                assert tryon.get_generation(account, "gen_3") is None, case
            assert tryon.get_person_image(OTHER, "img_2") is None, case
            assert tryon.get_generation(OTHER, "gen_2") is None, case
        without_credits = attrs.evolve(keys, credits=False)
        with pytest.raises(ValueError, match="credit balance it did not read"):
            tryon.write_tryon(ACCOUNT, without_credits, _storing_tryon(allowed))
        self._nothing_changed(tryon, keys, before, blob)
        without_product = attrs.evolve(keys, product=None)
        product = attrs.evolve(_required(before.product), title="changed", version=2)
        with pytest.raises(ValueError, match="product it did not read"):
            tryon.write_tryon(
                ACCOUNT,
                without_product,
                _storing_tryon(attrs.evolve(allowed, product=cc.Write(product))),
            )
        self._nothing_changed(tryon, keys, before, blob)

    def test_t22_r15_a_blob_stays_while_a_product_person_image_or_generation_names_it(
        self, tryon: TryOnRepository
    ) -> None:
        """T22, R15, R21: person images and generations count references to blobs as products do.

        A person image's blob survives the purge while it or anything else names it, and goes
        with the purge after the last of them has gone.
        """
        shared, alone, kept = _blob(1), _blob(2, "image/png"), _blob(3, "image/webp")
        first, second, third = START + _DAY, START + 2 * _DAY, START + 3 * _DAY
        image = _person_image("img_1", shared, expires_at=first)
        _store_tryon(tryon, TryOnWrite(person_images=(image,), blobs=(shared,)))
        # Named again, without being given: it is stored.
        generation = _generation("gen_1", person=_person_of(shared), expires_at=second)
        _store_tryon(tryon, TryOnWrite(generations=(generation,)))
        _store_tryon(
            tryon,
            TryOnWrite(
                person_images=(_person_image("img_2", alone, expires_at=first),),
                generations=(_generation("gen_2", person=_person_of(kept), expires_at=first),),
                blobs=(alone, kept),
            ),
        )
        _put(tryon, _product("p", images=_images_of(kept)), kept)
        assert tryon.purge(START) == PurgeCounts()
        for blob in (shared, alone, kept):
            assert tryon.get_blob(ACCOUNT, blob.sha256) == blob
        assert tryon.purge(first) == PurgeCounts(person_images=2, generations=1)
        assert tryon.get_person_image(ACCOUNT, "img_1") is None
        assert tryon.get_blob(ACCOUNT, shared.sha256) == shared  # gen_1 names it
        assert tryon.get_blob(ACCOUNT, alone.sha256) is None
        assert tryon.get_blob(ACCOUNT, kept.sha256) == kept  # the product names it
        assert tryon.purge(second) == PurgeCounts(generations=1)
        assert tryon.get_blob(ACCOUNT, shared.sha256) is None
        _drop(tryon, ACCOUNT, "p")
        assert tryon.purge(third) == PurgeCounts()
        assert tryon.get_blob(ACCOUNT, kept.sha256) is None
        # Purged, and so neither stored nor given any more.
        with pytest.raises(ValueError, match="neither stored nor given"):
            tryon.write_tryon(
                ACCOUNT,
                TryOnKeys(person_images=("img_3",)),
                lambda _: TryOnWrite(person_images=(_person_image("img_3", shared),)),
            )
        assert tryon.get_person_image(ACCOUNT, "img_3") is None

    def test_t22_r15_a_generation_rewritten_without_its_result_gives_up_its_blob(
        self, tryon: TryOnRepository
    ) -> None:
        """T14, T22, R15: a record's references follow its every write, not only its deletion."""
        person, result = _blob(1), _blob(2, "image/png")
        running = _generation("gen_1", person=_person_of(person))
        _store_tryon(tryon, TryOnWrite(generations=(running,), blobs=(person,)))
        done = attrs.evolve(running, outcome="COMPLETED", result=_person_of(result))
        _store_tryon(tryon, TryOnWrite(generations=(done,), blobs=(result,)))
        tryon.purge(START)
        assert tryon.get_blob(ACCOUNT, result.sha256) == result
        _store_tryon(tryon, TryOnWrite(generations=(erased(done),)))
        tryon.purge(START)
        assert tryon.get_blob(ACCOUNT, person.sha256) is None
        assert tryon.get_blob(ACCOUNT, result.sha256) is None
        assert tryon.get_generation(ACCOUNT, "gen_1") == erased(done)

    def test_t18_t19_erasing_a_customer_touches_only_its_records_in_its_account(
        self, tryon: TryOnRepository
    ) -> None:
        """T18, T19: the customer's images are deleted, its generations stripped; idempotent.

        Only records tagged with exactly that customer id, in that account, change; their blobs
        go with the next purge unless something else names them.
        """
        customer = f"customer {AWKWARD_TEXT}"
        lookalikes = ("customer", customer.upper(), customer + " ", "customer %", customer[:-1])
        person, result, shared = _blob(1), _blob(2, "image/png"), _blob(3, "image/webp")
        mine = (
            _person_image("img_1", person, customer_id=customer),
            _person_image("img_2", shared, customer_id=customer),
        )
        others = tuple(
            _person_image(f"img_other_{n}", shared, customer_id=other)
            for n, other in enumerate((*lookalikes, None))
        )
        generations = (
            _generation(
                "gen_1",
                customer_id=customer,
                person=_person_of(person),
                result=_person_of(result),
                outcome="COMPLETED",
                finished_at=START + _MS,
            ),
            _generation("gen_2", customer_id=customer, person=Person(url=URL)),
        )
        other_generations = tuple(
            _generation(f"gen_other_{n}", customer_id=other, person=_person_of(shared))
            for n, other in enumerate((*lookalikes, None))
        )
        everything = TryOnWrite(
            person_images=mine + others,
            generations=generations + other_generations,
            blobs=(person, result, shared),
        )
        _store_tryon(tryon, everything)
        other_account = TryOnWrite(
            person_images=tuple(attrs.evolve(i, account=OTHER) for i in everything.person_images),
            generations=tuple(attrs.evolve(g, account=OTHER) for g in everything.generations),
            blobs=everything.blobs,
        )
        _store_tryon(tryon, other_account, OTHER)

        assert tryon.erase_customer(ACCOUNT, customer) == len(mine) + len(generations)
        for image in mine:
            assert tryon.get_person_image(ACCOUNT, image.image_id) is None
        for generation in generations:
            assert tryon.get_generation(ACCOUNT, generation.generation_id) == erased(generation)
        for image in others:
            assert tryon.get_person_image(ACCOUNT, image.image_id) == image
        for generation in other_generations:
            assert tryon.get_generation(ACCOUNT, generation.generation_id) == generation
        for image in other_account.person_images:
            assert tryon.get_person_image(OTHER, image.image_id) == image
        for generation in other_account.generations:
            assert tryon.get_generation(OTHER, generation.generation_id) == generation

        assert tryon.erase_customer(ACCOUNT, customer) == 0
        assert tryon.erase_customer(ACCOUNT, "nobody") == 0
        assert tryon.get_generation(ACCOUNT, "gen_1") == erased(generations[0])
        assert tryon.purge(START) == PurgeCounts()
        assert tryon.get_blob(ACCOUNT, person.sha256) is None
        assert tryon.get_blob(ACCOUNT, result.sha256) is None
        assert tryon.get_blob(ACCOUNT, shared.sha256) == shared  # the others name it
        for blob in everything.blobs:
            assert tryon.get_blob(OTHER, blob.sha256) == blob

    def test_t22_purge_removes_exactly_the_expired_records_of_every_kind_and_counts_them(
        self, tryon: TryOnRepository
    ) -> None:
        """T22, R21: expired at now (expiresAt <= now) in every account, and nothing else.

        Only a record's current lifetime counts: rewriting it moves its purge, either way.
        """
        now = START + _DAY
        blob = _blob(1)
        expired = [(ACCOUNT, "long_ago", now - 30 * _DAY), (ACCOUNT, "just_now", now)]
        expired += [(OTHER, "other_account", now - _MS)]
        kept = [(ACCOUNT, "soon", now + _MS), (OTHER, "later", now + _DAY)]
        for account, name, expires in expired + kept:
            write = TryOnWrite(
                person_images=(
                    _person_image(f"img_{name}", blob, account=account, expires_at=expires),
                ),
                generations=(_generation(f"gen_{name}", account=account, expires_at=expires),),
                blobs=(blob,),
            )
            _store_tryon(tryon, write, account)
        _put(tryon, _product("p", expires_at=now))
        # Lifetimes moved by a later write: one is kept, one goes.
        extended = _person_image("img_extended", blob, expires_at=now)
        shortened = _generation("gen_shortened", expires_at=now + _DAY)
        _store_tryon(tryon, TryOnWrite(person_images=(extended,), generations=(shortened,)))
        _store_tryon(
            tryon,
            TryOnWrite(
                person_images=(attrs.evolve(extended, expires_at=now + _MS),),
                generations=(attrs.evolve(shortened, expires_at=now),),
            ),
        )

        assert tryon.purge(now - _DAY) == PurgeCounts(person_images=1, generations=1)
        assert tryon.purge(now) == PurgeCounts(products=1, person_images=2, generations=3)
        assert tryon.purge(now) == PurgeCounts()
        assert tryon.purge_expired(now) == 0
        for account, name, _ in expired:
            assert tryon.get_person_image(account, f"img_{name}") is None
            assert tryon.get_generation(account, f"gen_{name}") is None
        for account, name, _ in kept:
            assert tryon.get_person_image(account, f"img_{name}") is not None
            assert tryon.get_generation(account, f"gen_{name}") is not None
        assert tryon.get_person_image(ACCOUNT, "img_extended") is not None
        assert tryon.get_generation(ACCOUNT, "gen_shortened") is None
        assert tryon.get_blob(ACCOUNT, blob.sha256) == blob
        assert tryon.get_blob(OTHER, blob.sha256) == blob

    def test_t22_the_purge_works_through_more_than_one_batch_of_each_kind(
        self, tryon: TryOnRepository
    ) -> None:
        """T22, R21: over 500 expired person images and generations, all gone in one call."""
        count = 503
        expires = START + _DAY
        blobs = tuple(_blob(n, size=16) for n in range(count))
        write = TryOnWrite(
            person_images=tuple(
                _person_image(f"img_{n:04d}", blob, expires_at=expires)
                for n, blob in enumerate(blobs)
            ),
            generations=tuple(
                _generation(f"gen_{n:04d}", person=_person_of(blob), expires_at=expires)
                for n, blob in enumerate(blobs)
            ),
            blobs=blobs,
        )
        _store_tryon(tryon, write)
        kept = _generation("gen_kept", person=_person_of(blobs[0]), expires_at=expires + _MS)
        _store_tryon(tryon, TryOnWrite(generations=(kept,)))
        assert tryon.purge(expires) == PurgeCounts(person_images=count, generations=count)
        assert tryon.get_person_image(ACCOUNT, "img_0000") is None
        assert tryon.get_generation(ACCOUNT, f"gen_{count - 1:04d}") is None
        assert tryon.get_generation(ACCOUNT, "gen_kept") == kept
        assert tryon.get_blob(ACCOUNT, blobs[0].sha256) == blobs[0]
        assert tryon.get_blob(ACCOUNT, blobs[-1].sha256) is None

    def test_t22_a_purge_racing_try_on_writers_removes_exactly_the_expired_records(
        self, tryon: TryOnRepository, tmp_path: pathlib.Path
    ) -> None:
        """T22, R21, R26: purges and writers on another handle at once lose nothing live.

        40 person images and 40 generations have expired; while two purges run, two writers on
        the second handle store 20 live ones each, naming the same bytes (given again, or
        stored), and rewrite a live generation. The purges count each expired record once, and
        every live record keeps its blobs.
        """
        now = START + _DAY
        blobs = [_blob(n, size=16) for n in range(8)]
        _store_tryon(
            tryon,
            TryOnWrite(
                person_images=tuple(
                    _person_image(f"img_old_{n}", blobs[n % 8], expires_at=now) for n in range(40)
                ),
                generations=tuple(
                    _generation(f"gen_old_{n}", person=_person_of(blobs[n % 8]), expires_at=now)
                    for n in range(40)
                ),
                blobs=tuple(blobs),
            ),
        )
        hot = _generation("gen_hot", expires_at=now + _DAY)
        _store_tryon(tryon, TryOnWrite(generations=(hot,)))
        counts: list[PurgeCounts] = []
        written: list[TryOnWrite] = []

        def race(second: TryOnRepository) -> None:
            def work(n: int) -> None:
                if n < 2:
                    counts.append(tryon.purge(now))
                    return
                for k in range(20):
                    blob = blobs[(n + k) % 8]
                    write = TryOnWrite(
                        person_images=(
                            _person_image(f"img_new_{n}_{k}", blob, expires_at=now + _MS),
                        ),
                        generations=(
                            _generation(
                                f"gen_new_{n}_{k}", person=_person_of(blob), expires_at=now + _MS
                            ),
                        ),
                        blobs=(blob,) if k % 2 else (),
                    )
                    try:
                        _store_tryon(second, write)
                    except ValueError:  # named, not given, and already purged: refused
                        assert not write.blobs
                        continue
                    written.append(write)
                    second.write_tryon(
                        ACCOUNT, TryOnKeys(generations=("gen_hot",)), _rewatermarked("gen_hot")
                    )

            _in_threads(work, 4)

        self._second_tryon(tryon, tmp_path, race)
        total = PurgeCounts(
            person_images=sum(c.person_images for c in counts),
            generations=sum(c.generations for c in counts),
        )
        assert total == PurgeCounts(person_images=40, generations=40)
        assert len(written) >= 20  # every write that gave its bytes
        for n in range(40):
            assert tryon.get_person_image(ACCOUNT, f"img_old_{n}") is None
            assert tryon.get_generation(ACCOUNT, f"gen_old_{n}") is None
        assert tryon.purge(now) == PurgeCounts()
        for write in written:
            for image in write.person_images:
                assert tryon.get_person_image(ACCOUNT, image.image_id) == image
                assert tryon.get_blob(ACCOUNT, image.sha256) is not None, image.image_id
            for generation in write.generations:
                assert tryon.get_generation(ACCOUNT, generation.generation_id) == generation
        assert tryon.get_generation(ACCOUNT, "gen_hot") is not None

    def test_t16_concurrent_reservations_on_one_account_never_overdraw_its_balance(
        self, tryon: TryOnRepository, tmp_path: pathlib.Path
    ) -> None:
        """T16, T10: 20 try-ons at once on a balance of 10, half on a second handle: exactly 10.

        First on an account that has no balance yet (each change starts it at 10), then on a
        stored balance of 5.
        """
        accepted, refused = self._race_reservations(tryon, tmp_path, initial=10, threads=20)
        assert len(accepted) == 10, f"T16: {len(accepted)} try-ons on a balance of 10"
        assert len(refused) == 10
        _store_tryon(tryon, TryOnWrite(credits=Credits(ACCOUNT, 5)))
        accepted, refused = self._race_reservations(tryon, tmp_path, initial=10, threads=10)
        assert len(accepted) == 5, f"T16: {len(accepted)} try-ons on a balance of 5"
        assert len(refused) == 5

    def _race_reservations(
        self, tryon: TryOnRepository, tmp_path: pathlib.Path, *, initial: int, threads: int
    ) -> tuple[list[str], list[str]]:
        """Run ``threads`` reservations at once, half on a second handle (T16).

        Returns the generations accepted and refused; checks that the balance ends at 0 and that
        exactly the accepted try-ons stored their generations.
        """
        accepted: list[str] = []
        refused: list[str] = []

        def race(second: TryOnRepository) -> None:
            def work(n: int) -> None:
                handle = (tryon, second)[n % 2]
                generation_id = f"gen_{threads}_{n}"
                keys = TryOnKeys(generations=(generation_id,), credits=True)
                try:
                    handle.write_tryon(ACCOUNT, keys, _reservation(generation_id, initial))
                except InsufficientCredits:
                    refused.append(generation_id)
                else:
                    accepted.append(generation_id)

            _in_threads(work, threads)

        self._second_tryon(tryon, tmp_path, race)
        assert tryon.get_credits(ACCOUNT) == Credits(ACCOUNT, 0)
        for generation_id in accepted:
            assert tryon.get_generation(ACCOUNT, generation_id) is not None
        for generation_id in refused:
            assert tryon.get_generation(ACCOUNT, generation_id) is None
        return accepted, refused

    def test_t23_only_a_write_changes_the_try_on_state_not_the_records_handed_out(
        self, tryon: TryOnRepository
    ) -> None:
        """T23, R26: generations read back are copies; changing their JSON changes nothing."""

        def generation() -> Generation:
            snapshot = ProductSnapshot("p", None, None, (cc.Image(URL, 0, {"c": {"d": [1]}}),))
            return _generation("gen_1", product=snapshot)

        written = _store_tryon(tryon, TryOnWrite(generations=(generation(),)))
        seen: list[TryOnState] = []

        def change(state: TryOnState) -> TryOnWrite:
            seen.append(state)
            return TryOnWrite()

        tryon.write_tryon(ACCOUNT, TryOnKeys(generations=("gen_1",)), change)
        for handed_out in (
            written.generations[0],
            tryon.get_generation(ACCOUNT, "gen_1"),
            *(state.generations["gen_1"] for state in seen),
        ):
            assert handed_out is not None
            _try_to_mutate(handed_out.product.images[0].classifications)
        assert tryon.get_generation(ACCOUNT, "gen_1") == generation()


def _required(stored: cc.Product | None) -> cc.Product:
    """The product a change was handed, where the test stored one before."""
    if stored is None:
        raise AssertionError("R26: the change was handed None, though a product is stored")
    return stored


def _touched(stored: cc.Product | None) -> cc.Product:
    product = _required(stored)
    return attrs.evolve(product, version=product.version + 1)


def _try_to_mutate(value: object) -> None:
    """Change ``value`` in place if it lets us (a read-only mapping is fine too)."""
    if isinstance(value, dict):
        for key in list(value):
            _try_to_mutate(value[key])
        value["added"] = True
    elif isinstance(value, list):
        for item in value:
            _try_to_mutate(item)
        value.append("added")
