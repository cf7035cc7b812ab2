"""Property tests: the merge laws, the wire round trip, and a fuzz of the entry points.

- Merge laws (STYLE.md "Habits"; R6, R11, R19, R28): on the pure ``rules.merge`` and through
  ``Catalog`` on every backend.
- The wire round trip and the exact wire shape of a product (R31).
- Arbitrary JSON values, payload-shaped dicts and raw bodies thrown at ``Catalog.upsert`` and
  ``Catalog.use``: the answer is a product or a ``CatalogError`` of R29, and a rejected call changes
  nothing (R26, R29).

Every catalog-level example works in an account of its own, so examples stay independent although
the ``catalog`` fixture is shared by all the examples of a test.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core.commands import UpsertCommand
from catalog_core.errors import error_for_code
from catalog_core.model import ANON_PREFIX, truncate_to_ms
from catalog_core.rules import expires_at, merge, record_use
from catalog_core.wire.decode import decode_upsert
from tests.helpers import R29_STATUS, R31_PRODUCT_KEYS, FakeClock

# -- settings -------------------------------------------------------------------------------------

_PROFILE = settings()  # the loaded profile's values (conftest loads it before this module)
# Naming suppress_health_check replaces the profile's list, so keep what the profile suppresses.
_SUPPRESSED = [*_PROFILE.suppress_health_check, HealthCheck.function_scoped_fixture]
#: Tests on the shared ``catalog`` fixture at the profile's example count (the fuzz: 500 in CI).
ON_BACKENDS = settings(suppress_health_check=_SUPPRESSED)
#: Laws on the backends: several writes per example, so a tenth of the profile's count (>= 10).
BACKEND_LAWS = settings(
    suppress_health_check=_SUPPRESSED, max_examples=max(10, _PROFILE.max_examples // 10)
)
#: Pure laws: drawing a whole product and an update costs ~10 ms an example (~100 draws), so a
#: quarter of the profile's count (>= 10).
PURE_LAWS = settings(max_examples=max(10, _PROFILE.max_examples // 4))

# -- the rule book, as data -----------------------------------------------------------------------

R31_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
R31_TIMESTAMP_KEYS = ("expiresAt", "lastUsedAt", "createdAt", "updatedAt")

#: Products every fuzz example starts from, so that payloads naming them can change them.
SEED_PAYLOADS: tuple[dict[str, Any], ...] = (
    {
        "externalId": "shirt-1",
        "title": "Shirt",
        "description": "A shirt.",
        "metadata": {"sku": "S-1", "sizes": [1, 2.5, None]},
        "validForDays": 30,
        "images": [
            {"source": {"url": "https://cdn.example/1.jpg"}, "classifications": {"kind": "top"}},
            {"source": {"url": "https://cdn.example/2.jpg"}},
        ],
    },
    {"externalId": "shirt-2", "images": [{"source": {"url": "https://cdn.example/3.jpg"}}]},
)
SEEDED_IDS: tuple[str, ...] = tuple(p["externalId"] for p in SEED_PAYLOADS)

_accounts = itertools.count()


def fresh_account() -> str:
    """Return an account no example has used yet: each example starts from an empty catalog."""
    return f"acct-{next(_accounts)}"


# -- strategies of valid input --------------------------------------------------------------------

_ID_CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]


def external_ids() -> st.SearchStrategy[str]:
    """Valid upsert ids: 1-256 characters, no control or surrogate, not ``_anon_`` (R2, R3).

    C1 controls (U+0080-U+009F) are allowed: R2 refuses only U+0000-U+001F and U+007F.
    """
    return st.text(
        st.characters(codec="utf-8", exclude_characters=_ID_CONTROL), min_size=1, max_size=256
    ).filter(lambda text: not text.startswith(ANON_PREFIX))


def unicode_texts(*, max_size: int) -> st.SearchStrategy[str]:
    """Valid text: any character but a lone surrogate (controls are allowed in titles)."""
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def _compact_size(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def json_objects(*, max_bytes: int) -> st.SearchStrategy[dict[str, Any]]:
    """Valid JSON objects: finite numbers, no surrogates, within ``max_bytes`` as compact JSON."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        unicode_texts(max_size=20),
    )
    keys = unicode_texts(max_size=10)
    # Small on purpose: generating JSON is most of the cost of an example.
    values = st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)
        ),
        max_leaves=4,
    )
    return st.dictionaries(keys, values, max_size=4).filter(
        lambda value: _compact_size(value) <= max_bytes
    )


def image_urls() -> st.SearchStrategy[str]:
    """Valid image URLs (R13): absolute http(s) with a host."""
    # Plain alphabets rather than st.from_regex, which costs several times more per example.
    return st.builds(
        "{}://{}{}/{}".format,
        st.sampled_from(["https", "http"]),
        st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12),
        st.sampled_from(["", ".example", ".com", ".co.uk", ":8080"]),
        st.text(string.ascii_letters + string.digits + "._~/%-", max_size=30),
    )


def image_entries() -> st.SearchStrategy[dict[str, Any]]:
    """Canonical image entries (R12, R16): a URL source, classifications absent, null, {} or set."""
    return st.fixed_dictionaries(
        {"source": st.fixed_dictionaries({"url": image_urls()})},
        optional={
            "classifications": st.one_of(
                st.none(),
                st.just({}),
                json_objects(max_bytes=cc.Limits().max_classifications_bytes),
            )
        },
    )


def _product_fields() -> dict[str, st.SearchStrategy[Any]]:
    limits = cc.Limits()
    return {
        "title": st.none() | unicode_texts(max_size=limits.max_title_length),
        "description": st.none() | unicode_texts(max_size=limits.max_description_length),
        "metadata": st.none() | json_objects(max_bytes=limits.max_metadata_bytes),
        "validForDays": st.none() | st.integers(1, 365),
        "images": st.lists(image_entries(), min_size=1, max_size=limits.max_images),
    }


def upsert_payloads() -> st.SearchStrategy[dict[str, Any]]:
    """Valid creating upserts in wire form: an id, images, and any of the other fields."""
    fields = _product_fields()
    images = fields.pop("images")
    return st.fixed_dictionaries({"externalId": external_ids(), "images": images}, optional=fields)


def partial_updates() -> st.SearchStrategy[dict[str, Any]]:
    """Valid updates in wire form: an id and any subset of the product fields omitted (R6)."""
    return st.fixed_dictionaries({"externalId": external_ids()}, optional=_product_fields())


def moments() -> st.SearchStrategy[datetime]:
    """Operation times, UTC, whole milliseconds."""
    return st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(truncate_to_ms)


def delays(*, max_days: int = 400) -> st.SearchStrategy[timedelta]:
    """Time between two operations, in whole milliseconds."""
    return st.integers(0, max_days * 86_400_000).map(lambda ms: timedelta(milliseconds=ms))


def pauses(*, max_hours: int) -> st.SearchStrategy[int]:
    """Microseconds to move the fake clock by: sub-millisecond parts exercise the truncation."""
    return st.integers(0, max_hours * 3_600_000_000)


# -- helpers --------------------------------------------------------------------------------------


def decoded(payload: Mapping[str, Any]) -> tuple[UpsertCommand, tuple[cc.Image, ...] | None]:
    """Return the command of a URL-only payload and its images as the catalog resolves them."""
    command, _, _ = decode_upsert(payload, cc.Limits())
    if command.images is cc.UNSET:
        return command, None
    images = tuple(
        cc.Image(entry.url, order, entry.classifications)
        for order, entry in enumerate(command.images)
        if entry.url is not None
    )
    return command, images


def after_touch(product: cc.Product, now: datetime) -> cc.Product:
    """Return ``product`` as a write that changes no field leaves it at ``now`` (R11, R19, R28)."""
    return attrs.evolve(
        product,
        updated_at=now,
        version=product.version + 1,
        expires_at=expires_at(product.valid_for_days, now, product.last_used_at),
    )


def expected_fields(before: cc.Product, update: Mapping[str, Any]) -> dict[str, Any]:
    """Return the fields ``update`` leaves: given ones replaced whole, omitted ones kept (R6)."""
    wire_names = {
        "title": "title",
        "description": "description",
        "metadata": "metadata",
        "valid_for_days": "validForDays",
    }
    fields = {
        name: update[wire] if wire in update else getattr(before, name)
        for name, wire in wire_names.items()
    }
    if "images" in update:
        fields["images"] = tuple(
            cc.Image(entry["source"]["url"], order, entry.get("classifications") or None)
            for order, entry in enumerate(update["images"])
        )
    else:
        fields["images"] = before.images
    return fields


def fields_of(product: cc.Product) -> dict[str, Any]:
    return {
        "title": product.title,
        "description": product.description,
        "metadata": product.metadata,
        "valid_for_days": product.valid_for_days,
        "images": product.images,
    }


# -- R6, R11, R28: merge laws on the pure function ------------------------------------------------


def _stored_product(
    payload: dict[str, Any],
    created: datetime,
    default_valid_for_days: int | None,
    used: bool,
    used_again_after: timedelta | None,
) -> cc.Product:
    command, images = decoded(payload)
    product = merge(
        None,
        command,
        images,
        created,
        account="acct",
        external_id=payload["externalId"],
        default_valid_for_days=default_valid_for_days,
        used=used,
    )
    if used_again_after is not None:
        product = record_use(product, created + used_again_after)
    return product


def stored_products() -> st.SearchStrategy[cc.Product]:
    """Products as ``merge`` creates them, at times of their own, some of them used since (R22)."""
    # st.builds rather than st.composite: the strategies are then built once, not per example.
    return st.builds(
        _stored_product,
        upsert_payloads(),
        moments(),
        st.sampled_from([None, 7, 15]),
        st.booleans(),
        st.none() | delays(),
    )


def _latest(product: cc.Product) -> datetime:
    return max(product.updated_at, product.last_used_at or product.updated_at)


@PURE_LAWS
@given(product=stored_products(), delay=delays(), default=st.sampled_from([None, 7, 15]))
def test_r6_r11_r28_merging_an_all_omitted_update_changes_only_updated_at_version_and_expiry(
    product: cc.Product, delay: timedelta, default: int | None
) -> None:
    """R6, R11, R19, R28: ``{externalId}`` alone sets ``updatedAt = now``, ``version + 1`` and the
    ``expiresAt`` derived from them; every other field, ``createdAt`` and ``lastUsedAt`` included,
    is unchanged."""
    now = _latest(product) + delay
    command = UpsertCommand(external_id=product.external_id)

    merged = merge(
        product,
        command,
        None,
        now,
        account=product.account,
        external_id=product.external_id,
        default_valid_for_days=default,
    )

    assert merged == after_touch(product, now)


@PURE_LAWS
@given(
    product=stored_products(),
    update=partial_updates(),
    gaps=st.tuples(delays(), delays()),
    used=st.booleans(),
)
def test_r6_r28_merging_the_same_update_twice_equals_merging_it_once(
    product: cc.Product,
    update: dict[str, Any],
    gaps: tuple[timedelta, timedelta],
    used: bool,
) -> None:
    """R6, R28: merging an update into its own result changes nothing but ``version`` (+1) and the
    time fields: the twice-merged product equals the product merged once at the second time, one
    version later; and against the first merge it differs only in ``updatedAt``, ``version`` and
    the derived ``expiresAt`` (R19), and ``lastUsedAt`` too when the update is an inline use
    (R22b)."""
    update = {**update, "externalId": product.external_id}
    command, images = decoded(update)
    first_at = _latest(product) + gaps[0]
    second_at = first_at + gaps[1]

    def apply(existing: cc.Product, now: datetime) -> cc.Product:
        return merge(
            existing,
            command,
            images,
            now,
            account=product.account,
            external_id=product.external_id,
            used=used,
        )

    once = apply(product, first_at)
    twice = apply(once, second_at)
    once_later = apply(product, second_at)

    assert twice == attrs.evolve(once_later, version=once_later.version + 1)
    touched = after_touch(once, second_at)
    if used:
        touched = attrs.evolve(
            touched,
            last_used_at=second_at,
            expires_at=expires_at(once.valid_for_days, second_at, second_at),
        )
    assert twice == touched


@PURE_LAWS
@given(product=stored_products(), update=partial_updates(), delay=delays())
def test_r6_merging_an_update_replaces_the_given_fields_and_keeps_the_omitted_ones(
    product: cc.Product, update: dict[str, Any], delay: timedelta
) -> None:
    """R6, R8, R9, R16: given fields are replaced whole (``{}`` classifications mean none), omitted
    ones keep their value; the key, ``createdAt`` and ``lastUsedAt`` never change on an upsert."""
    update = {**update, "externalId": product.external_id}
    command, images = decoded(update)
    now = _latest(product) + delay

    merged = merge(
        product, command, images, now, account=product.account, external_id=product.external_id
    )

    assert fields_of(merged) == expected_fields(product, update)
    assert (merged.account, merged.external_id) == (product.account, product.external_id)
    assert (merged.created_at, merged.last_used_at) == (product.created_at, product.last_used_at)


# -- R6, R11, R28: merge laws through the catalog, on every backend -------------------------------


@BACKEND_LAWS
@given(
    payload=upsert_payloads(),
    used=st.booleans(),
    waits=st.tuples(pauses(max_hours=10), pauses(max_hours=10)),
)
def test_r6_r11_r28_an_all_omitted_upsert_changes_only_updated_at_version_and_expiry(
    catalog: cc.Catalog,
    clock: FakeClock,
    payload: dict[str, Any],
    used: bool,
    waits: tuple[int, int],
) -> None:
    """R6, R11, R19, R28 on every backend: ``{externalId}`` alone leaves the stored product as it
    was but for ``updatedAt`` (= the clock's now), ``version`` (+1) and ``expiresAt`` (recomputed
    from the new ``updatedAt`` and ``lastUsedAt`` when ``validForDays`` is set)."""
    account = fresh_account()
    external_id = payload["externalId"]
    catalog.upsert(account, payload)
    clock.advance(microseconds=waits[0])
    if used:
        catalog.use(account, {"externalId": external_id})
    clock.advance(microseconds=waits[1])  # less than a day in all: the product is still live
    before = catalog.get(account, external_id)

    result = catalog.upsert(account, {"externalId": external_id})

    now = truncate_to_ms(clock.now)
    after = catalog.get(account, external_id)
    assert not result.created
    assert result.product == after
    assert after == after_touch(before, now)
    wire_before, wire_after = cc.to_wire(before), cc.to_wire(after)
    changed = {key for key in wire_before if wire_before[key] != wire_after[key]}
    assert changed <= {"updatedAt", "expiresAt"}


@BACKEND_LAWS
@given(
    payload=upsert_payloads(),
    update=partial_updates(),
    used=st.booleans(),
    waits=st.tuples(pauses(max_hours=7), pauses(max_hours=7), pauses(max_hours=7)),
)
def test_r6_r11_r28_the_same_update_applied_twice_equals_applying_it_once(
    catalog: cc.Catalog,
    clock: FakeClock,
    payload: dict[str, Any],
    update: dict[str, Any],
    used: bool,
    waits: tuple[int, int, int],
) -> None:
    """R6, R11, R19, R28 on every backend: the first update replaces exactly the given fields; the
    second leaves the product as the first did but for ``updatedAt``, ``version`` (+1) and the
    derived ``expiresAt``."""
    account = fresh_account()
    external_id = payload["externalId"]
    update = {**update, "externalId": external_id}
    created = catalog.upsert(account, payload).product
    clock.advance(microseconds=waits[0])
    if used:
        catalog.use(account, {"externalId": external_id})
    clock.advance(microseconds=waits[1])
    before = catalog.get(account, external_id)

    first = catalog.upsert(account, update)
    clock.advance(microseconds=waits[2])
    second = catalog.upsert(account, update)

    assert not first.created
    assert not second.created
    assert fields_of(first.product) == expected_fields(before, update)
    assert first.product.created_at == created.created_at
    assert first.product.last_used_at == before.last_used_at
    assert second.product == after_touch(first.product, truncate_to_ms(clock.now))
    assert catalog.get(account, external_id) == second.product


# -- R31: the wire round trip ---------------------------------------------------------------------


def assert_r31_wire_form(product: cc.Product) -> None:
    wire = cc.to_wire(product)
    assert list(wire) == list(R31_PRODUCT_KEYS)
    for key in R31_TIMESTAMP_KEYS:
        assert wire[key] is None or R31_TIMESTAMP.match(wire[key]), (key, wire[key])
    assert isinstance(wire["createdAt"], str)
    assert isinstance(wire["updatedAt"], str)
    assert len(wire["images"]) == len(product.images)
    for image, stored in zip(wire["images"], product.images, strict=True):
        with_classifications = {"classifications"} if stored.classifications else set()
        assert set(image) == {"sourceUrl", "order"} | with_classifications
    # What a client parses back is the product it was sent; account and version come from the
    # request path and the ETag (R28).
    sent = json.loads(json.dumps(cc.to_wire(product)))
    assert cc.product_from_wire(sent, account=product.account, version=product.version) == product


@BACKEND_LAWS
@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    payload=upsert_payloads(),
    update=partial_updates(),
    use=st.sampled_from(["none", "reference", "inline"]),
    waits=st.tuples(pauses(max_hours=10), pauses(max_hours=10)),
)
def test_r31_every_product_survives_the_wire_round_trip_in_the_exact_wire_form(
    catalog: cc.Catalog,
    clock: FakeClock,
    start: datetime,
    payload: dict[str, Any],
    update: dict[str, Any],
    use: str,
    waits: tuple[int, int],
) -> None:
    """R31: created, used and updated products go to JSON and back unchanged; the wire form has
    exactly the R31 keys, timestamps as ``YYYY-MM-DDTHH:MM:SS.mmmZ``, and ``classifications`` only
    on images that have some."""
    account = fresh_account()
    external_id = payload["externalId"]
    clock.now = start  # sub-millisecond parts: the catalog truncates them
    products = [catalog.upsert(account, payload).product]
    clock.advance(microseconds=waits[0])
    if use == "reference":
        products.append(catalog.use(account, {"externalId": external_id}).product)
    elif use == "inline":
        products.append(catalog.use(account, {**update, "externalId": external_id}).product)
    clock.advance(microseconds=waits[1])
    products.append(catalog.upsert(account, {**update, "externalId": external_id}).product)
    products.append(catalog.get(account, external_id))

    for product in products:
        assert_r31_wire_form(product)


# -- R29: fuzz ------------------------------------------------------------------------------------


class HugeInt(int):
    """``sign * 10**exponent`` with a short repr, even past the interpreter's int-to-text limit.

    ``repr(10**5000)`` raises ``ValueError``, which would break Hypothesis' reports, and
    ``repr(10**400)`` floods them; this subclass prints as the call that makes it. It is an
    ``int`` to every check of the library, and ``json.dumps`` writes it with ``int.__repr__``,
    exactly as it writes a plain int.
    """

    exponent: int

    def __new__(cls, exponent: int, sign: int = 1) -> HugeInt:
        value = super().__new__(cls, sign * 10**exponent)
        value.exponent = exponent
        return value

    def __repr__(self) -> str:
        return f"HugeInt({self.exponent}{', sign=-1' if self < 0 else ''})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis' report printer prints ints in hex unless told otherwise.
        printer.text(repr(self))


#: Ints past 64 bits, up to the int-to-text limit (10**4299 has 4,300 digits): JSON text can hold
#: them.
_BIG_INTS = (2**63, -(2**63) - 1, 2**64, HugeInt(400), HugeInt(4299), HugeInt(4299, sign=-1))
#: Ints past the int-to-text limit: only a payload given as a mapping can hold them.
_HUGE_INTS = (HugeInt(4300), HugeInt(5000), HugeInt(5000, sign=-1))


def integers(*, huge: bool = True) -> st.SearchStrategy[int]:
    """Any integers, some past 64 bits, and (``huge``) some past the int-to-text limit."""
    ints: st.SearchStrategy[int] = st.integers() | st.sampled_from(_BIG_INTS)
    return (ints | st.sampled_from(_HUGE_INTS)) if huge else ints


def any_texts(*, max_size: int = 20) -> st.SearchStrategy[str]:
    """Any text, lone surrogates and controls included."""
    return st.text(st.characters(codec=None), max_size=max_size) | st.sampled_from(
        ["", "\ud800", "a\udfffb", "\x00", "\x7f", "_anon_", ANON_PREFIX + "abc", " shirt-1"]
    )


def json_values(*, huge: bool = True, max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values as Python parses them: NaN, infinities and lone surrogates included."""
    leaves = st.one_of(st.none(), st.booleans(), integers(huge=huge), st.floats(), any_texts())
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(any_texts(), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def product_like_dicts(*, huge: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts shaped like product payloads: the real keys, with valid, edge and arbitrary values."""
    # Small arbitrary values in every slot: the structure comes from the slots, and generating
    # JSON is most of the cost of an example.
    anything = json_values(huge=huge, max_leaves=4)
    boundary_texts = st.sampled_from(["a" * 1000, "a" * 1001, "a" * 10_000, "a" * 10_001])
    ids = st.one_of(
        st.sampled_from(SEEDED_IDS),
        st.sampled_from(["", "x" * 256, "x" * 257, "a\x00b", "a\x7f", "\ud800", ANON_PREFIX + "x"]),
        external_ids(),
        anything,
    )
    url_likes = st.one_of(
        image_urls(),
        st.sampled_from(
            [
                "https://",
                "http://[::1",
                "https://[::1]:80/a",
                "http://[v1.x]/",
                "https://exa mple.com/",
                "https://example.com:99999/",
                "https://example.com:-1/",
                "ftp://example.com/a",
                "//example.com/a",
                "example.com/a",
                "https://\u2100/a",
                "https://ex\u00adample.com/",
                "https://\ud800.example/",
                "HTTPS://EXAMPLE.COM/A",
                "https://user:pw@example.com/",
                "https://a.b/" + "x" * 2036,
                "https://a.b/" + "x" * 2037,
            ]
        ),
        any_texts(),
        anything,
    )
    file_keys = st.one_of(st.sampled_from(["", "front", "\ud800"]), any_texts(), anything)
    classifications = st.one_of(
        anything,
        st.dictionaries(any_texts(), anything, max_size=3),
        st.just({"k": "x" * 4100}),
        st.integers(60, 70).map(_nested),
    )
    sources = st.one_of(
        st.fixed_dictionaries(
            {}, optional={"url": url_likes, "fileKey": file_keys, "extra": anything}
        ),
        anything,
    )
    image_likes = st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "source": sources,
                "url": url_likes,
                "fileKey": file_keys,
                "classifications": classifications,
                "extra": anything,
            },
        ),
        anything,
    )
    valid_image = {"source": {"url": "https://cdn.example/x.jpg"}}
    fields = {
        "externalId": ids,
        "title": st.one_of(st.none(), any_texts(), boundary_texts, anything),
        "description": st.one_of(st.none(), any_texts(), boundary_texts, anything),
        "metadata": st.one_of(
            st.none(),
            st.dictionaries(any_texts(), anything, max_size=4),
            st.just({"k": "x" * 16_400}),
            st.integers(60, 70).map(_nested),
            anything,
        ),
        "validForDays": st.one_of(
            st.none(),
            st.integers(-2, 370),
            st.sampled_from([True, False, 2.0, 0.5, "7", [7], {"days": 7}]),
            integers(huge=huge),
            anything,
        ),
        "images": st.one_of(
            st.lists(image_likes, max_size=4),
            st.integers(0, 2).map(lambda extra: [valid_image] * (19 + extra)),
            st.sampled_from(
                [
                    [],
                    [{"source": {"fileKey": "front"}}],  # no such file part: R14
                    [{"source": {"url": "https://cdn.example/x.jpg", "fileKey": "front"}}],
                    [{"source": {}}],
                    [{"url": "https://cdn.example/x.jpg"}],  # deprecated flat shape: R17
                    [{"url": "https://cdn.example/x.jpg", "source": {"url": "https://a.b/"}}],
                ]
            ),
            anything,
        ),
        "imageUrls": st.one_of(
            st.lists(url_likes, max_size=3), st.just(["https://cdn.example/y.jpg"]), anything
        ),
    }
    unknown_keys = st.dictionaries(any_texts(), anything, max_size=2)
    # One value out of place is what reaches the later checks of R30 (image inputs, reserved ids,
    # file parts, images required) and the accepting paths: start from a valid payload, naming a
    # seeded product half of the time, and put at most one field from the slots above into it.
    valid = st.fixed_dictionaries(
        {"externalId": st.sampled_from(SEEDED_IDS) | external_ids()}, optional=_product_fields()
    )
    one_field = st.one_of(*(st.tuples(st.just(key), values) for key, values in fields.items()))
    return st.one_of(
        st.builds(
            lambda unknown, known: {**unknown, **known},
            unknown_keys,
            st.fixed_dictionaries({}, optional=fields),
        ),
        st.builds(
            lambda unknown, known, field: {**unknown, **known, **dict([field] if field else [])},
            unknown_keys,
            valid,
            st.none() | one_field,
        ),
    )


def raw_bodies() -> st.SearchStrategy[bytes | str]:
    """Raw request bodies: random bytes, and JSON text as ASCII, as UTF-8 (lone surrogates encoded
    with ``surrogatepass``, so not valid UTF-8) and as ``str``."""
    # Ints past the int-to-text limit cannot be written as JSON text: literal bodies cover them.
    values = st.one_of(json_values(huge=False), product_like_dicts(huge=False))
    texts = values.map(json.dumps)  # NaN and Infinity come out as the non-JSON literals
    unescaped = values.map(lambda value: json.dumps(value, ensure_ascii=False))
    return st.one_of(
        st.binary(max_size=64),
        texts.map(lambda text: text.encode("ascii")),
        unescaped.map(lambda text: text.encode("utf-8", "surrogatepass")),
        unescaped,
        st.sampled_from(
            [
                b"",
                b"\xef\xbb\xbf{}",
                b"[" * 100_000,
                b'{"externalId": "shirt-1", "metadata": {"n": ' + b"9" * 5000 + b"}}",
                b'{"externalId": "shirt-1", "validForDays": ' + b"9" * 5000 + b"}",
                b'{"externalId": "shirt-1", "validForDays": 1e400}',
                b'{"externalId": "shirt-1", "title": NaN}',
                '{"externalId": "shirt-1", "title": "\ud800"}',
                b'{"externalId": "shirt-1", "title": "\\ud800"}',
            ]
        ),
    )


def seed(catalog: cc.Catalog, account: str) -> None:
    for payload in SEED_PAYLOADS:
        catalog.upsert(account, payload)


def state(catalog: cc.Catalog, account: str, ids: tuple[str, ...]) -> dict[str, Any]:
    """Return what a caller can observe of ``account``: its listing and each id's ``get``."""
    observed: dict[str, Any] = {"list": cc.page_to_wire(catalog.list(account, limit=200))}
    for external_id in ids:
        try:
            observed[external_id] = catalog.get(account, external_id)
        except cc.CatalogError as exc:
            observed[external_id] = exc.code
    return observed


def named_id(payload: object) -> str | None:
    """Return the ``externalId`` string a payload names, if it names one."""
    if isinstance(payload, bytes | str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError):
            return None
    value = payload.get("externalId") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


def answers_or_refuses(call: Callable[[str, Any], Any], account: str, payload: object) -> bool:
    """Call, and check that the answer is a product or an R29 error; return whether it refused."""
    try:
        result = call(account, payload)
    except cc.CatalogError as exc:
        error = exc
    else:
        assert isinstance(result.product, cc.Product)
        event(f"{call.__name__}: accepted")
        return False
    assert error.code in R29_STATUS, error.code
    assert error.status == R29_STATUS[error.code], (error.code, error.status)
    assert isinstance(error, error_for_code(error.code))
    assert isinstance(error.message, str)
    assert error.message
    event(f"{call.__name__}: {error.code}")  # --hypothesis-show-statistics shows the spread
    return True


def fuzz(catalog: cc.Catalog, payload: object) -> None:
    """Upsert, then use, ``payload`` in a fresh seeded account; a refused call changes nothing."""
    account = fresh_account()
    seed(catalog, account)
    named = named_id(payload)
    ids = SEEDED_IDS if named is None or named in SEEDED_IDS else (*SEEDED_IDS, named)
    before = state(catalog, account, ids)
    for call in (catalog.upsert, catalog.use):
        if answers_or_refuses(call, account, payload):
            assert state(catalog, account, ids) == before, call.__name__
        else:
            before = state(catalog, account, ids)


def any_inputs() -> st.SearchStrategy[Any]:
    """Anything a caller may pass as a payload: JSON values, payload-shaped dicts, raw bodies."""
    return st.one_of(json_values(), product_like_dicts(), raw_bodies())


@ON_BACKENDS
@given(payload=any_inputs())
# Found by this test: json.dumps raised a bare ValueError on an int past 4,300 digits (5a99f13).
@example(payload={"externalId": "shirt-1", "metadata": {"": HugeInt(4300)}})
def test_r26_r29_upsert_and_use_answer_any_input_with_a_product_or_a_catalog_error(
    catalog: cc.Catalog, payload: Any
) -> None:
    """R26, R29, R30: whatever the payload, ``upsert`` and ``use`` answer with a product or a
    ``CatalogError`` whose code is one of R29 and whose status is R29's; a refused call changes
    nothing. Payloads: any JSON value (NaN, infinities, huge ints and lone surrogates included);
    dicts with the real keys holding valid, boundary and arbitrary values (nested sources, unknown
    keys, ints past the int-to-text limit, which JSON text cannot carry); and raw bodies (random
    bytes, invalid UTF-8, JSON text of those values, non-JSON literals, deep nesting)."""
    fuzz(catalog, payload)
