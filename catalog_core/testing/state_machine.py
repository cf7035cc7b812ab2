"""A differential state machine: a real catalog and a plain reference model, step by step.

Hypothesis drives a :class:`~catalog_core.Catalog` on the backend under test and
:class:`ReferenceCatalog`, a deliberately simple model written from the rule book, through the same
random operations (upserts valid and invalid, uses of every kind, gets, listings, deletes, purges
and moves of the clock across expiry boundaries, in two or three accounts), and checks after every
step that the two agree on everything a caller can observe::

    from catalog_core.testing.state_machine import KIT_SETTINGS, make_catalog_state_machine

    TestMyBackend = make_catalog_state_machine(lambda: MyRepository(...)).TestCase
    TestMyBackend.settings = KIT_SETTINGS

``TestCase`` is the ``unittest.TestCase`` Hypothesis makes for every state machine; give it
``settings`` to choose the number of examples and steps: :data:`KIT_SETTINGS`, the kit's profile,
keeps a failure's report short and quick. The project's CI runs at least 100 examples of up to 50
steps on every backend it ships.

The catalog runs with :data:`LIMITS`: the rule book's limits, except small file and request
limits, so that ``FILE_TOO_LARGE`` and ``PAYLOAD_TOO_LARGE`` cost a few kilobytes to provoke.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import pprint
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, TypeVar, cast

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

import catalog_core as cc
from catalog_core.testing._book import (
    ANON_PREFIX,
    DAY_MS,
    EDITABLE_FIELDS,
    ENTRY_KEYS,
    EPOCH,
    INLINE_DAYS,
    ONE_SHOT_DAYS,
    ONE_SHOT_ID,
    PAYLOAD_KEYS,
    PRODUCT_FIELDS,
    R29_STATUS,
    RULE_BOOK_LIMITS,
    SOURCE_KEYS,
    first_in_r30_order,
)
from catalog_core.testing._pieces import id_texts, unicode_external_ids
from catalog_core.testing.clock import FakeClock
from catalog_core.testing.strategies import (
    InvalidUpsertRequest,
    UpsertRequest,
    UseRequest,
    invalid_upsert_payloads,
    upsert_payloads,
    use_items,
)

__all__ = [
    "KIT_SETTINGS",
    "LIMITS",
    "CatalogMachineBase",
    "CatalogStateMachine",
    "ReferenceCatalog",
    "epoch_ms",
    "machine_on",
    "make_catalog_state_machine",
    "wire_timestamp",
]

#: The catalog's limits in the state machine: the rule book's, with small file and request limits.
LIMITS: Final = cc.Limits(max_file_bytes=2048, max_request_bytes=8192)

#: The settings the kit recommends for its state machines: ``TestCase.settings = KIT_SETTINGS``, or
#: ``settings(KIT_SETTINGS, max_examples=...)``; docs/testing.md has what a failure costs with them.
#: 300 examples of up to 30 steps cost about what 200 of 50 did, and caught each fault the kit's
#: tests plant in every one of 20 runs, as those did; a shorter failing example is less for the
#: shrinker to remove. No deadline: each step checks every product, and real backends take their
#: time. No ``explain`` phase: it traces every line of every example the shrinker runs (on Python
#: 3.11 that made the wait 2.7 to 165 times as long), only to say that the failure was raised where
#: the kit compares. One bug at a time: shrinking a second one doubles the wait.
KIT_SETTINGS: Final = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the reference model --------------------------------------------------------------------------
#
# Written from docs/rules.md alone. It uses nothing of catalog_core but the ``data`` of the Upload
# values it is handed: products are plain dicts in their wire shape with millisecond timestamps,
# errors are (code, status) pairs, and an outcome is ("ok", value) or ("error", code, status).

Outcome = tuple[Any, ...]

_EDITABLE: Final = tuple(field.name for field in EDITABLE_FIELDS)
_WIRE_FIELDS: Final = tuple(field for field in PRODUCT_FIELDS if field.on_wire)
_MUTABLE_KINDS: Final = frozenset({"object", "images"})


def _error(code: str) -> Outcome:
    return ("error", code, R29_STATUS[code])


def epoch_ms(moment: datetime) -> int:
    """Return ``moment`` as whole milliseconds since the epoch (sub-milliseconds cut off)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def wire_timestamp(ms: int | None) -> str | None:
    """Return ``2026-05-13T10:00:00.000Z`` for epoch milliseconds (R31)."""
    if ms is None:
        return None
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ReferenceCatalog:
    """The rule book as a few dictionaries: what a catalog must answer, computed the plain way.

    It shares no code with the library, so a mistake there is not copied here. It understands
    only the requests of :mod:`catalog_core.testing.strategies`: valid ones, whose meaning it
    works out itself, and invalid ones, whose code the strategy states.

    Args:
        max_request_bytes: the request limit the catalog enforces (R33).

    Attributes:
        products: ``{account: {externalId: record}}``; a record is a product in its wire shape
            with epoch-millisecond timestamps and a ``version``. Expired records stay until
            :meth:`purge` (R20, R21), exactly as a backend keeps them.
        blobs: ``{account: {sha256}}``: the uploaded bytes a backend stores (R15).
    """

    def __init__(self, *, max_request_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes
        self.products: dict[str, dict[str, dict[str, Any]]] = {}
        self.blobs: dict[str, set[str]] = {}

    # -- reads ----------------------------------------------------------------------------------

    def live(self, account: str, external_id: str, now: int) -> dict[str, Any] | None:
        """Return the record if it is live (R20: expired once ``now >= expiresAt``)."""
        record = self.products.get(account, {}).get(external_id)
        if record is None or (record["expiresAt"] is not None and now >= record["expiresAt"]):
            return None
        return record

    @staticmethod
    def wire(record: Mapping[str, Any]) -> dict[str, Any]:
        """Return a record exactly as the wire shows it (R31)."""
        wire: dict[str, Any] = {}
        for field in _WIRE_FIELDS:
            value = record[field.name]
            if field.kind == "timestamp":
                value = wire_timestamp(value)
            elif field.kind in _MUTABLE_KINDS:  # the model's own objects are never handed out
                value = copy.deepcopy(value)
            wire[field.name] = value
        return wire

    def get(self, account: str, external_id: str, *, now: int) -> Outcome:
        """R23: the live product and its version, else ``PRODUCT_NOT_FOUND``."""
        record = self.live(account, external_id, now)
        if record is None:
            return _error("PRODUCT_NOT_FOUND")
        return ("ok", {"product": self.wire(record), "version": record["version"]})

    def listing(self, account: str, *, now: int) -> list[dict[str, Any]]:
        """R24: the live, non-one-shot products in code-point order of their ids."""
        ids = sorted(
            external_id
            for external_id in self.products.get(account, {})
            if not external_id.startswith(ANON_PREFIX) and self.live(account, external_id, now)
        )
        return [self.wire(self.products[account][external_id]) for external_id in ids]

    def pages(self, account: str, limit: int, *, now: int) -> list[dict[str, Any]]:
        """R24: the pages of a walk, without their opaque cursors."""
        items = self.listing(account, now=now)
        chunks = [items[start : start + limit] for start in range(0, len(items), limit)] or [[]]
        return [
            {"items": chunk, "hasMore": number < len(chunks) - 1, "count": len(chunk)}
            for number, chunk in enumerate(chunks)
        ]

    # -- writes ---------------------------------------------------------------------------------

    def stamp(self, account: str, external_id: str, now: int) -> int:
        """Return the time a write to the key is stamped with.

        That is ``now``, but never earlier than the stored product's own ``updatedAt`` and
        ``lastUsedAt``, so a clock that steps back cannot reorder a product's history
        (docs/rules.md, "Where the public service is silent").
        """
        record = self.products.get(account, {}).get(external_id)
        if record is None:
            return now
        stamped: int = max(now, record["updatedAt"], record["lastUsedAt"] or now)
        return stamped

    def upsert(
        self,
        account: str,
        payload: Mapping[str, Any],
        files: Mapping[str, cc.Upload],
        *,
        now: int,
        if_version: int | None = None,
        body_bytes: int = 0,
    ) -> Outcome:
        """R4-R19, R28, R30: apply a valid upsert payload.

        Args:
            account: the tenant.
            payload: a valid payload (the dict, even when the catalog was sent its bytes).
            files: the file parts.
            now: the operation's time, epoch milliseconds.
            if_version: the version the caller expects (R28).
            body_bytes: the size of the raw body when the payload was sent as bytes (R33).
        """
        if self._too_large(files, body_bytes):
            return _error("PAYLOAD_TOO_LARGE")
        external_id = payload["externalId"]
        now = self.stamp(account, external_id, now)
        return self._write(account, external_id, payload, files, now=now, if_version=if_version)

    def use(
        self,
        account: str,
        item: Mapping[str, Any],
        files: Mapping[str, cc.Upload],
        *,
        now: int,
        one_shot_id: str | None = None,
    ) -> Outcome:
        """R22: apply a valid product item; ``one_shot_id`` is the id the catalog generated."""
        if self._too_large(files, 0):
            return _error("PAYLOAD_TOO_LARGE")
        external_id = item.get("externalId")
        if external_id is not None:
            now = self.stamp(account, external_id, now)
        if external_id is None:  # c. one-shot
            if one_shot_id is None:
                return ("ok", "a new one-shot product")
            return self._write(account, one_shot_id, item, files, now=now, used=True, one_shot=True)
        if not (PAYLOAD_KEYS - {"externalId"}) & item.keys():  # a. reference
            record = self.live(account, external_id, now)
            if record is None:
                return _error("PRODUCT_NOT_FOUND")
            record["lastUsedAt"] = now  # updatedAt stays: a use is not an edit
            record["expiresAt"] = self._expiry(record)
            record["version"] += 1
            return self._result(account, record, item, files, created=False)
        if external_id.startswith(ANON_PREFIX):  # R3: an inline item is an upsert
            return _error("RESERVED_EXTERNAL_ID")
        return self._write(account, external_id, item, files, now=now, used=True)  # b. inline

    def delete(
        self, account: str, external_id: str, *, now: int, if_version: int | None = None
    ) -> Outcome:
        """R25, R28: remove a live product."""
        record = self.live(account, external_id, self.stamp(account, external_id, now))
        if record is None:
            return _error("PRODUCT_NOT_FOUND")
        if if_version is not None and if_version != record["version"]:
            return _error("VERSION_CONFLICT")
        del self.products[account][external_id]
        return ("ok", None)

    def purge(self, *, now: int) -> int:
        """R21: drop the expired products of every account, then the blobs nobody refers to."""
        removed = 0
        for records in self.products.values():
            for external_id in [
                key
                for key, record in records.items()
                if record["expiresAt"] is not None and now >= record["expiresAt"]
            ]:
                del records[external_id]
                removed += 1
        for account in self.blobs:
            self.blobs[account] = {
                image["sourceUrl"].removeprefix("upload://")
                for record in self.products.get(account, {}).values()
                for image in record["images"]
                if image["sourceUrl"].startswith("upload://")
            }
        return removed

    # -- the rules, spelled out -----------------------------------------------------------------

    def _too_large(self, files: Mapping[str, cc.Upload], body_bytes: int) -> bool:
        # A mapping payload counts only its files; a raw body counts too (decision table).
        return sum(len(upload.data) for upload in files.values()) + body_bytes > (
            self.max_request_bytes
        )

    @staticmethod
    def _expiry(record: Mapping[str, Any]) -> int | None:
        """R19: ``max(updatedAt, lastUsedAt) + validForDays`` days, or ``None``."""
        if record["validForDays"] is None:
            return None
        start = max(record["updatedAt"], record["lastUsedAt"] or record["updatedAt"])
        return int(start + record["validForDays"] * DAY_MS)

    @staticmethod
    def _images(
        payload: Mapping[str, Any], files: Mapping[str, cc.Upload]
    ) -> list[dict[str, Any]] | None:
        """R12-R17: the images a payload gives, in wire form, or ``None`` when it gives none."""
        if "imageUrls" in payload:
            return [{"sourceUrl": url, "order": n} for n, url in enumerate(payload["imageUrls"])]
        if "images" not in payload:
            return None
        images = []
        for order, entry in enumerate(payload["images"]):
            source = entry.get("source", entry)
            if "url" in source:
                url = source["url"]
            else:
                url = "upload://" + _sha256(files[source["fileKey"]].data)
            image: dict[str, Any] = {"sourceUrl": url, "order": order}
            if entry.get("classifications"):  # R16: null and {} mean none
                image["classifications"] = copy.deepcopy(entry["classifications"])
            images.append(image)
        return images

    @staticmethod
    def _warnings(payload: Mapping[str, Any], files: Mapping[str, cc.Upload]) -> list[list[str]]:
        """R17, R18, R32: the warnings' codes and paths, sorted."""
        found = [["UNKNOWN_FIELD", key] for key in payload if key not in PAYLOAD_KEYS]
        used = set()
        if "imageUrls" in payload:
            found.append(["DEPRECATED_IMAGE_URLS", "imageUrls"])
        for n, entry in enumerate(payload.get("images", [])):
            found += [
                ["UNKNOWN_FIELD", f"images.{n}.{key}"] for key in entry if key not in ENTRY_KEYS
            ]
            if "source" in entry:
                source = entry["source"]
                found += [
                    ["UNKNOWN_FIELD", f"images.{n}.source.{key}"]
                    for key in source
                    if key not in SOURCE_KEYS
                ]
            else:
                source = entry
                found.append(["DEPRECATED_IMAGE_SHAPE", f"images.{n}"])
            if "fileKey" in source:
                used.add(source["fileKey"])
        found += [["UNUSED_FILE", name] for name in files if name not in used]
        return sorted(found)

    def _write(
        self,
        account: str,
        external_id: str,
        payload: Mapping[str, Any],
        files: Mapping[str, cc.Upload],
        *,
        now: int,
        if_version: int | None = None,
        used: bool = False,
        one_shot: bool = False,
    ) -> Outcome:
        """Create or update a product; ``used`` for a use (R22b), ``one_shot`` for R22c."""
        current = self.live(account, external_id, now)
        images = self._images(payload, files)
        if one_shot and current is not None:
            return ("ok", f"a one-shot id {external_id!r} that is already taken")
        problems = set()
        if images == [] or (current is None and images is None):
            problems.add("PRODUCT_IMAGES_REQUIRED")  # R5, R8
        if if_version is not None and (current is None or if_version != current["version"]):
            problems.add("VERSION_CONFLICT")  # R28; decision table: no live product
        code = first_in_r30_order(problems)
        if code is not None:
            return _error(code)
        if current is None:  # R4: create, inheriting nothing from an expired record
            record: dict[str, Any] = {
                "externalId": external_id,
                **dict.fromkeys(_EDITABLE),
                # R10: omitted on an upsert's create keeps the product; R22b, R22c: a use's expires.
                "validForDays": (ONE_SHOT_DAYS if one_shot else INLINE_DAYS) if used else None,
                "images": [],
                "createdAt": now,
                "lastUsedAt": None,
                "version": 0,
            }
        else:
            record = copy.deepcopy(current)
        for key in _EDITABLE:  # R6: omitted keeps; R7, R9, R10: given replaces whole, null clears
            if key in payload:
                record[key] = copy.deepcopy(payload[key])
        if images is not None:
            record["images"] = images  # R8: replaced whole
        record["updatedAt"] = now  # R11
        if used:
            record["lastUsedAt"] = now  # R22
        record["expiresAt"] = self._expiry(record)  # R19
        record["version"] += 1  # R28
        self.products.setdefault(account, {})[external_id] = record
        stored = self.blobs.setdefault(account, set())
        stored.update(
            image["sourceUrl"].removeprefix("upload://")
            for image in record["images"]
            if image["sourceUrl"].startswith("upload://") and images is not None
        )
        return self._result(account, record, payload, files, created=current is None)

    def _result(
        self,
        account: str,
        record: Mapping[str, Any],
        payload: Mapping[str, Any],
        files: Mapping[str, cc.Upload],
        *,
        created: bool,
    ) -> Outcome:
        return (
            "ok",
            {
                "account": account,
                "created": created,
                "product": self.wire(record),
                "version": record["version"],
                "warnings": self._warnings(payload, files),
            },
        )


# -- comparing the two ----------------------------------------------------------------------------


def _canonical(value: object) -> str:
    # Sorted keys: JSON objects are unordered; but true is not 1 and 1.0 is not 1.
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _expect_same(actual: object, expected: object, what: str) -> None:
    """Raise ``AssertionError`` with a diff unless the catalog's answer is the model's."""
    if actual == expected and _canonical(actual) == _canonical(expected):
        return
    diff = "\n".join(
        difflib.unified_diff(
            pprint.pformat(expected, width=100).splitlines(),
            pprint.pformat(actual, width=100).splitlines(),
            "reference model",
            "catalog",
            lineterm="",
        )
    )
    raise AssertionError(f"{what}: the catalog disagrees with the reference model\n{diff}")


def _json_object(payload: Mapping[str, Any] | bytes) -> Mapping[str, Any]:
    """The JSON object of a payload, or ``{}`` when a raw body does not hold one."""
    if not isinstance(payload, bytes):
        return payload
    try:
        decoded = json.loads(payload)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _call(
    action: Callable[..., Any], *args: Any, **kwargs: Any
) -> tuple[Any, cc.CatalogError | None]:
    try:
        return action(*args, **kwargs), None
    except cc.CatalogError as error:
        return None, error


def _outcome_of(
    action: Callable[[], cc.UpsertResult | cc.UseResult],
) -> tuple[Outcome, cc.UpsertResult | cc.UseResult | None]:
    """Run an upsert or use; return its outcome in the model's terms, and the result."""
    result, error = _call(action)
    if error is not None:
        return ("error", error.code, error.status), None
    product = result.product
    return (
        "ok",
        {
            "account": product.account,
            "created": result.created,
            "product": cc.to_wire(product),
            "version": product.version,
            "warnings": sorted([w.code, w.path] for w in result.warnings),
        },
    ), result


# -- the machine ----------------------------------------------------------------------------------

#: ``if_version`` as a rule draws it: mostly none; else the current version, the next, or a number.
_VERSION_CHOICES: Final = st.sampled_from([None, None, None, "current", "current", "next", 1, 2])
_CLOCK_STEPS_US: Final = st.one_of(
    st.integers(0, 2_000),  # under a few milliseconds: the truncation to whole milliseconds
    st.integers(0, 3_600_000_000),  # up to an hour
    st.integers(0, 40 * 86_400_000_000),  # up to 40 days: one-shot and use-created lifetimes
)
_STARTS: Final = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
# How a failing example gets short. Hypothesis deletes a step only a few choices at a time, and a
# step it cannot delete it makes as simple as it can: every choice zero, which picks the first rule
# (``upsert``, see below) with the first option of everything it draws. So an upsert's first choice
# is between the plainest write (``p0`` with one image URL, in account ``a``) and any other: a
# blanked step is that write, four choices long, which hypothesis then deletes if the failure does
# not need it. Before, a blanked step was an upsert twenty choices long, and failing programs kept
# a dozen of them. Hypothesis also fills the ends of its first examples with zero choices, so the
# plainest write is what those do over and over: writes to one key, as before. Every write draws a
# plain request (an id and one image URL, a choice or two) as its first option, so a write the
# failure needs shrinks to that if it can.
_PLAIN_IMAGES: Final = st.just("https://cdn.example/a.jpg").map(
    lambda url: [{"source": {"url": url}}]  # a fresh list each time: payloads are not shared
)
_T = TypeVar("_T")


def _plain_first(
    plain: st.SearchStrategy[_T], other: st.SearchStrategy[_T]
) -> st.SearchStrategy[_T]:
    """``plain`` one time in five, else ``other``; a failing example shrinks to ``plain``.

    Not more often: plain writes upload nothing and leave most fields alone, and with one write
    in three plain, the faults the kit's tests plant took up to twice as many examples to catch.
    """
    return st.integers(0, 4).flatmap(lambda n: plain if n == 0 else other)


def _plain_payloads(ids: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """The plainest payload that creates (or updates) a product: an id of ``ids``, one image URL."""
    return st.fixed_dictionaries({"externalId": ids, "images": _PLAIN_IMAGES})


_ONE_SHOT_ITEMS: Final = _plain_first(
    st.builds(
        UseRequest, st.fixed_dictionaries({"images": _PLAIN_IMAGES}), kind=st.just("one_shot")
    ),
    use_items(kind="one_shot"),
)


#: Separators a backend could join an account and an id with into one key (R1).
_JOINS: Final = ("/", ":", "::", "|", " ", "%2F")
_PARTS: Final = st.text(alphabet="abc", min_size=1, max_size=3)
#: The accounts and ids of a plain example, the kind a failing example shrinks to.
_PLAIN_ACCOUNTS: Final = ("a", "b", "c")
_PLAIN_IDS: Final = ("p0", "p1", "p2", "p3")
_ANY_ACCOUNTS: Final = st.lists(id_texts(max_size=32), min_size=3, max_size=3, unique=True)
_ANY_IDS: Final = st.lists(
    unicode_external_ids(max_size=RULE_BOOK_LIMITS.max_external_id_length),
    min_size=4,
    max_size=4,
    unique=True,
)


#: The kinds of accounts and ids an example draws: joined ones in one example of two.
_KINDS: Final = ("plain", "joined", "any", "joined")


@st.composite
def _keys(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """Draw two or three accounts and a pool of one to four ids, of one of three kinds.

    - plain (the first, so the one hypothesis shrinks to), one example in four: accounts ``a``,
      ``b``, ``c`` and ids ``p0`` to ``p3``;
    - joined, one example in two: keys a backend joining an account and an id with a separator
      makes one (R1): accounts ``a{s}b``, ``a``, ``a{t}b`` and ids ``c``, ``b{s}c``, ``b{t}c``,
      for two separators ``s`` and ``t``: ``("a{s}b", "c")`` and ``("a", "b{s}c")`` are both
      ``a{s}b{s}c`` once joined;
    - any, one example in four: any accounts and ids the rules allow (all of Unicode, up to 32
      and 256 characters).

    Every kind makes the same draws and keeps as many accounts and ids, so the shrinker can turn
    a failing example of any kind into a plain one without upsetting the steps after it: a
    report then reads ``p0`` in accounts ``a`` and ``b``, not random Unicode.
    """
    kind = draw(st.sampled_from(_KINDS), label="kind")
    count, size = draw(st.integers(2, 3)), draw(st.integers(1, 4))
    s, t, *_ = draw(st.permutations(_JOINS), label="separators")
    a, b, c = draw(_PARTS), draw(_PARTS), draw(_PARTS)
    names, ids = draw(_ANY_ACCOUNTS), draw(_ANY_IDS)
    if kind == "plain":
        names, ids = list(_PLAIN_ACCOUNTS), list(_PLAIN_IDS)
    elif kind == "joined":  # the first account and id are drawn most often
        names = [f"{a}{s}{b}", a, f"{a}{t}{b}"]
        ids = list(dict.fromkeys([c, f"{b}{s}{c}", f"{b}{t}{c}", ids[0]]))
    return names[:count], ids[:size]


class CatalogMachineBase(RuleBasedStateMachine):
    """The catalog's state machine without its catalog-only rules: a base for machines on top.

    It holds the catalog under test, the :class:`ReferenceCatalog` and the clock; sets up the
    accounts, the id pool and the clock; runs valid upserts, reference uses, deletes, moves of the
    clock and purges; and after every step checks every product, listing and blob (see
    :class:`CatalogStateMachine`). A machine that drives something more through the same catalog
    (the try-on flow's) subclasses it, so that its own rules are not drowned among the catalog's.

    Attributes:
        limits: the catalog's limits (class attribute; :data:`LIMITS` by default).
        clock_steps_back: whether the clock also steps back now and then (class attribute).
        catalog: the :class:`~catalog_core.Catalog` under test, on :attr:`repository`.
        model: the :class:`ReferenceCatalog` it is compared with.
        clock: the :class:`~catalog_core.testing.clock.FakeClock` both read.
    """

    limits: ClassVar[cc.Limits] = LIMITS
    # Clocks do step back (NTP): a write is then stamped no earlier than the product's own
    # timestamps (docs/rules.md, "Where the public service is silent"), which the model follows.
    clock_steps_back: ClassVar[bool] = True

    account_names: Bundle[str] = Bundle("accounts")
    one_shot_ids: Bundle[str] = Bundle("one_shot_ids")

    def __init__(self) -> None:
        super().__init__()
        self.repository = self.make_repository()
        self.clock = FakeClock()
        self.catalog = cc.Catalog(self.repository, clock=self.clock, limits=self.limits)
        self.model = ReferenceCatalog(max_request_bytes=self.limits.max_request_bytes)
        self.accounts: list[str] = []
        self.pool: list[str] = []
        self.seen_ids: list[str] = []
        self.seen_shas: set[str] = set()
        # Strategies over this example's id pool, made once the pool is drawn.
        self.pool_ids: st.SearchStrategy[str] = st.nothing()
        self.upserts: st.SearchStrategy[UpsertRequest] = st.nothing()
        self.upsert_calls: st.SearchStrategy[tuple[str, UpsertRequest, int | str | None, bool]]
        self.upsert_calls = st.nothing()
        self.invalid: st.SearchStrategy[InvalidUpsertRequest] = st.nothing()
        self.references: st.SearchStrategy[UseRequest] = st.nothing()
        self.inline_items: st.SearchStrategy[UseRequest] = st.nothing()

    def make_repository(self) -> cc.Repository:
        """Return a fresh, empty repository of the backend under test."""
        raise NotImplementedError("subclasses say which backend to test")

    def dispose_repository(self, repository: cc.Repository) -> None:
        """Release a repository after its example; by default ``repository.close()``."""
        repository.close()

    def teardown(self) -> None:
        """Dispose of this example's repository."""
        self.dispose_repository(self.repository)

    # -- helpers --------------------------------------------------------------------------------

    def now(self) -> int:
        """The time the catalog reads now, in the model's epoch milliseconds."""
        return epoch_ms(self.clock.now)

    def _see(self, external_id: str) -> None:
        if external_id not in self.seen_ids:
            self.seen_ids.append(external_id)

    def _see_files(self, files: Mapping[str, cc.Upload]) -> None:
        self.seen_shas.update(_sha256(upload.data) for upload in files.values())

    def _version(self, choice: int | str | None, account: str, external_id: str) -> int | None:
        if choice is None or isinstance(choice, int):
            return choice
        record = self.model.live(account, external_id, self.now())
        current = 1 if record is None else int(record["version"])
        return current if choice == "current" else current + 1

    # -- set-up ---------------------------------------------------------------------------------

    @initialize(target=account_names, keys=_keys())
    def choose_accounts_and_ids(self, keys: tuple[list[str], list[str]]) -> Any:
        """Choose two or three accounts and a small pool of ids that they share.

        Several accounts make every step check R1 too; shared ids make writes meet existing
        products. About one example in two draws accounts and ids such as ``a/b``, ``a`` and
        ``c``, ``b/c``, which a backend joining an account and an id with ``/`` makes one key;
        one in four, plain ones (``a``, ``b``; ``p0``: the kind a failure shrinks to); one in
        four, any the rules allow.
        """
        names, ids = keys
        self.accounts = names
        self.pool = ids
        for external_id in ids:
            self._see(external_id)
        self.pool_ids = st.sampled_from(ids)
        plain = _plain_payloads(self.pool_ids)
        self.upserts = _plain_first(
            st.builds(UpsertRequest, plain),
            upsert_payloads(external_id=self.pool_ids)
            | upsert_payloads(partial=True, external_id=self.pool_ids),
        )
        plainest = st.builds(UpsertRequest, _plain_payloads(st.just(ids[0])))
        self.upsert_calls = _plain_first(
            st.tuples(st.just(names[0]), plainest, st.none(), st.just(False)),
            st.tuples(st.sampled_from(names), self.upserts, _VERSION_CHOICES, st.booleans()),
        )
        self.invalid = invalid_upsert_payloads(limits=self.limits, external_id=self.pool_ids)
        self.references = use_items(kind="reference", external_id=self.pool_ids)
        self.inline_items = _plain_first(
            st.builds(UseRequest, plain, kind=st.just("inline")),
            use_items(kind="inline", external_id=self.pool_ids),
        )
        return multiple(*names)

    @initialize(start=_STARTS)
    def set_clock(self, start: datetime) -> None:
        """Start at any time, with sub-millisecond parts the catalog must cut off."""
        self.clock.now = start

    # -- writes ---------------------------------------------------------------------------------

    # Hypothesis draws the first of its rules more often than the others, and it puts the rules
    # with the fewest arguments first, then sorts by name: one argument makes this rule the first,
    # and writes are what every other rule observes.
    @rule(data=st.data())
    def upsert(self, data: st.DataObject) -> None:
        """R4-R19, R28: a valid upsert, full or partial, as a dict or raw JSON bytes."""
        account, request, if_version, raw = data.draw(
            self.upsert_calls, label="account, request, if_version, raw"
        )
        external_id = request.payload["externalId"]
        version = self._version(if_version, account, external_id)
        body = request.body() if raw else request.payload
        self._see_files(request.files)
        now = self.now()
        actual, _ = _outcome_of(
            lambda: self.catalog.upsert(account, body, request.files, if_version=version)
        )
        expected = self.model.upsert(
            account,
            request.payload,
            request.files,
            now=now,
            if_version=version,
            body_bytes=len(body) if isinstance(body, bytes) else 0,
        )
        _expect_same(actual, expected, f"upsert of {external_id!r} (if_version={version})")

    @rule(account=account_names, data=st.data())
    def use_reference(self, account: str, data: st.DataObject) -> None:
        """R22a: a reference use records the use and restarts the lifetime."""
        self._use(account, data.draw(self.references, label="item"))

    def _use(self, account: str, item: UseRequest) -> cc.UpsertResult | cc.UseResult | None:
        self._see_files(item.files)
        now = self.now()
        actual, result = _outcome_of(lambda: self.catalog.use(account, item.payload, item.files))
        generated = None
        if result is not None and item.kind == "one_shot":
            generated = result.product.external_id
            self._see(generated)
        expected = self.model.use(account, item.payload, item.files, now=now, one_shot_id=generated)
        _expect_same(actual, expected, f"{item.kind} use")
        return result

    @rule(account=account_names, data=st.data(), if_version=_VERSION_CHOICES)
    def delete(self, account: str, data: st.DataObject, if_version: int | str | None) -> None:
        """R25, R28: delete by id, with or without the expected version."""
        self._delete(account, data.draw(self.pool_ids, label="external_id"), if_version)

    def _delete(self, account: str, external_id: str, if_version: int | str | None) -> None:
        version = self._version(if_version, account, external_id)
        now = self.now()
        _, error = _call(self.catalog.delete, account, external_id, if_version=version)
        actual = ("ok", None) if error is None else ("error", error.code, error.status)
        expected = self.model.delete(account, external_id, now=now, if_version=version)
        _expect_same(actual, expected, f"delete of {external_id!r} (if_version={version})")

    @rule(microseconds=st.one_of(st.just(0), _CLOCK_STEPS_US))
    def wait_and_purge(self, microseconds: int) -> None:
        """R21: time passes (or not), then the purge removes the expired products and orphan blobs.

        Its count must be the number of products the model removes.
        """
        self.clock.advance(microseconds=microseconds)
        now = self.now()
        _expect_same(self.catalog.purge_expired(), self.model.purge(now=now), "purge count")

    # -- time -----------------------------------------------------------------------------------

    @rule(microseconds=_CLOCK_STEPS_US, back=st.sampled_from([False, False, False, True]))
    def wait(self, microseconds: int, back: bool) -> None:
        """Move the clock forward (sub-millisecond steps included), or now and then back.

        Clocks do step back (NTP); then ``updatedAt`` may be after ``now``, and R19's
        ``max(updatedAt, lastUsedAt)`` decides the expiry. Only with :attr:`clock_steps_back`.
        """
        backwards = back and self.clock_steps_back
        self.clock.advance(microseconds=-microseconds if backwards else microseconds)

    @rule(pick=st.integers(0, 50), offset_ms=st.sampled_from([-1, 0, 1]))
    def wait_until_an_expiry(self, pick: int, offset_ms: int) -> None:
        """R20: move the clock to just before, exactly at, or just after a product's expiry.

        Any account's: every step checks every account, and an expiry one step away makes a
        short example, and a short failing one, reach it.
        """
        now = self.now()
        expiries = sorted(
            record["expiresAt"]
            for products in self.model.products.values()
            for record in products.values()
            if record["expiresAt"] is not None and record["expiresAt"] + offset_ms > now
        )
        if expiries:
            target = expiries[pick % len(expiries)] + offset_ms
            self.clock.now = EPOCH + timedelta(milliseconds=target)

    # -- after every step -----------------------------------------------------------------------

    @invariant()
    def agrees_on_every_product_listing_and_blob(self) -> None:
        """R1, R15, R20, R23, R24, R26: every id, listing and blob reads as in the model."""
        now = self.now()
        for account in self.accounts:
            page = self.catalog.list(account, limit=200)
            _expect_same(
                [cc.to_wire(product) for product in page.items],
                self.model.listing(account, now=now)[:200],
                f"listing of account {account!r}",
            )
            for external_id in self.seen_ids:
                product, error = _call(self.catalog.get, account, external_id)
                self._compare_get(account, external_id, product, error)
            stored = self.model.blobs.get(account, set())
            for sha in self.seen_shas:
                blob = self.repository.get_blob(account, sha)
                held = None if blob is None else (blob.sha256, _sha256(blob.data))
                _expect_same(
                    held,
                    (sha, sha) if sha in stored else None,
                    f"blob {sha[:12]}… of account {account!r}",
                )

    def _compare_get(
        self,
        account: str,
        external_id: str,
        product: cc.Product | None,
        error: cc.CatalogError | None,
    ) -> None:
        if error is not None:
            actual: Outcome = ("error", error.code, error.status)
        elif product is not None:
            actual = ("ok", {"product": cc.to_wire(product), "version": product.version})
        else:
            raise AssertionError(f"get {external_id!r} answered neither a product nor an error")
        expected = self.model.get(account, external_id, now=self.now())
        _expect_same(actual, expected, f"get {external_id!r} in account {account!r}")


class CatalogStateMachine(CatalogMachineBase):
    """Drive a catalog and :class:`ReferenceCatalog` alike; after every step, they must agree.

    Subclass it and implement :meth:`make_repository` (and :meth:`dispose_repository` if
    ``close()`` is not enough), or let :func:`make_catalog_state_machine` do it. A fresh
    repository is made for every example.

    After every step, in every account: ``get`` of every id the model has seen must give the
    model's product (wire form and version) or ``PRODUCT_NOT_FOUND``; the first page of the listing
    must be the model's; and the repository must hold exactly the blobs the model says, none of
    another account's (R1, R15, R20, R21, R23, R24, R26). Each step also compares its own answer:
    results with ``created``, product, version and warnings; errors by code and status; listings
    page by page, cursors included; purge counts.

    Its attributes are :class:`CatalogMachineBase`'s.
    """

    # The base's bundles, named here for the decorators below.
    account_names = CatalogMachineBase.account_names
    one_shot_ids = CatalogMachineBase.one_shot_ids

    @rule(account=account_names, data=st.data(), if_version=_VERSION_CHOICES)
    def upsert_invalid(
        self, account: str, data: st.DataObject, if_version: int | str | None
    ) -> None:
        """R26, R30: a refused upsert gives exactly its code and changes nothing.

        Every code of these cases comes before ``VERSION_CONFLICT`` in R30, so the expected
        version never matters, except for a create without images (``requires_absent``): on a
        live product, that payload is a valid update, which the model applies.
        """
        case = data.draw(self.invalid, label="case")
        self._see_files(case.files)
        now = self.now()
        payload = case.payload
        decoded = _json_object(payload)
        external_id = decoded.get("externalId")
        if isinstance(external_id, str):
            version = self._version(if_version, account, external_id)
        else:
            version = if_version if isinstance(if_version, int) else None
        actual, _ = _outcome_of(
            lambda: self.catalog.upsert(account, payload, case.files, if_version=version)
        )
        if case.requires_absent and self.model.live(account, decoded["externalId"], now):
            expected = self.model.upsert(
                account,
                decoded,
                case.files,
                now=now,
                if_version=version,
                body_bytes=len(payload) if isinstance(payload, bytes) else 0,
            )
        else:
            expected = ("error", case.code, case.status)
        _expect_same(actual, expected, f"invalid upsert expecting {case.code}")

    @rule(account=account_names, external_id=one_shot_ids, as_use=st.booleans())
    def write_a_one_shot_id(self, account: str, external_id: str, as_use: bool) -> None:
        """R3, R22c: one-shot ids are never upserted, not even inline in a use."""
        payload = {"externalId": external_id, "title": "renamed"}
        call = self.catalog.use if as_use else self.catalog.upsert
        actual, _ = _outcome_of(lambda: call(account, payload))
        _expect_same(actual, _error("RESERVED_EXTERNAL_ID"), f"writing {external_id!r}")

    @rule(account=account_names, external_id=one_shot_ids)
    def use_one_shot_again(self, account: str, external_id: str) -> None:
        """R22a, R22c: one-shot products are usable by their id (in their own account only)."""
        self._use(account, UseRequest({"externalId": external_id}, kind="reference"))

    @rule(account=account_names, data=st.data())
    def use_inline(self, account: str, data: st.DataObject) -> None:
        """R22b: an inline item upserts; a product it creates lives 15 days by default."""
        self._use(account, data.draw(self.inline_items, label="item"))

    @rule(
        target=one_shot_ids,
        account=account_names,
        item=_ONE_SHOT_ITEMS,
    )
    def use_one_shot(self, account: str, item: UseRequest) -> str:
        """R22c: a one-shot item creates a product under a fresh ``_anon_`` id."""
        result = self._use(account, item)
        if result is None:  # _use has compared the refusal with the model, which accepts
            raise AssertionError("R22c: a valid one-shot item was refused")
        external_id = result.product.external_id
        if not ONE_SHOT_ID.fullmatch(external_id):
            raise AssertionError(f"R22c: one-shot id {external_id!r}")
        return external_id

    @rule(account=account_names, external_id=one_shot_ids, if_version=_VERSION_CHOICES)
    def delete_one_shot(self, account: str, external_id: str, if_version: int | str | None) -> None:
        """R22c, R25: one-shot products are deletable by their id."""
        self._delete(account, external_id, if_version)

    # -- reads ----------------------------------------------------------------------------------

    @rule(account=account_names, data=st.data())
    def get(self, account: str, data: st.DataObject) -> None:
        """R23: get answers the live product, or ``PRODUCT_NOT_FOUND`` with the public message."""
        external_id = data.draw(self.pool_ids, label="external_id")
        product, error = _call(self.catalog.get, account, external_id)
        if error is not None:
            _expect_same(error.message, f"Product '{external_id}' not found.", "R23 message")
        self._compare_get(account, external_id, product, error)

    @rule(account=account_names, limit=st.integers(1, 5))
    def list_walk(self, account: str, limit: int) -> None:
        """R24: a walk of every page matches the model's listing, page shapes included."""
        now = self.now()
        pages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = cc.page_to_wire(self.catalog.list(account, limit=limit, cursor=cursor))
            cursor = page.pop("nextCursor")
            _expect_same(
                cursor is None, not page["hasMore"], "R24: nextCursor is null on the last page"
            )
            pages.append(page)
            if cursor is None or len(pages) > 100:
                break
            if not isinstance(cursor, str) or not cursor:
                raise AssertionError(f"R24: a cursor is a non-empty string, not {cursor!r}")
            self._check_foreign_cursor(account, cursor)
        _expect_same(pages, self.model.pages(account, limit, now=now), f"listing by {limit}")

    def _check_foreign_cursor(self, account: str, cursor: str) -> None:
        """R1, R24: a cursor is bound to its account."""
        for other in self.accounts:
            if other != account:
                _, error = _call(self.catalog.list, other, limit=5, cursor=cursor)
                actual = None if error is None else ("error", error.code, error.status)
                _expect_same(actual, _error("VALIDATION_FAILED"), "R24: a foreign cursor")
                return


def make_catalog_state_machine(
    repository_factory: Callable[[], cc.Repository],
    *,
    dispose: Callable[[cc.Repository], None] | None = None,
) -> type[CatalogStateMachine]:
    """Return a :class:`CatalogStateMachine` on the backend ``repository_factory`` makes.

    Args:
        repository_factory: returns a fresh, empty repository; called once per example.
        dispose: releases a repository after its example; by default ``repository.close()``.

    Returns:
        A state machine class; run it with ``.TestCase`` (a ``unittest.TestCase`` whose
        ``settings`` attribute you may set) or ``hypothesis.stateful.run_state_machine_as_test``.
    """
    return machine_on(CatalogStateMachine, repository_factory, dispose)


_Machine = TypeVar("_Machine", bound=CatalogMachineBase)


def machine_on(
    base: type[_Machine],
    repository_factory: Callable[[], Any],
    dispose: Callable[[Any], None] | None,
) -> type[_Machine]:
    """Return a subclass of the machine ``base`` on the backend ``repository_factory`` makes.

    Its name is ``base``'s name, ``On``, and the factory's name (``CatalogStateMachineOnMemory…``).
    """

    def make_repository(self: CatalogMachineBase) -> cc.Repository:
        return cast(cc.Repository, repository_factory())

    def dispose_repository(self: CatalogMachineBase, repository: cc.Repository) -> None:
        if dispose is None:
            repository.close()
        else:
            dispose(repository)

    name = re.sub(r"\W", "", getattr(repository_factory, "__name__", "")) or "Repository"
    name = name[0].upper() + name[1:]
    return type(
        f"{base.__name__}On{name}",
        (base,),
        {
            "make_repository": make_repository,
            "dispose_repository": dispose_repository,
            "__module__": base.__module__,
        },
    )
