"""The testing kit's strategies, each checked against the real library.

Valid requests must be accepted (on a fresh product and on an existing one, as each strategy
documents), invalid ones refused with exactly their code and status, and products must survive
the wire. Each example runs on a catalog of its own (the in-memory backend: what is checked here is
the strategies' meaning, which does not depend on storage; the state machine runs every backend).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import catalog_core as cc
from catalog_core.testing import strategies
from catalog_core.testing.clock import FakeClock
from catalog_core.testing.strategies import (
    R29_STATUS,
    RULE_BOOK_LIMITS,
    InvalidUpsertRequest,
    UpsertRequest,
    UseRequest,
    accounts,
    external_ids,
    invalid_upsert_payloads,
    products,
    upsert_payloads,
    use_items,
)
from tests.helpers import R29_STATUS as TESTS_R29_STATUS
from tests.helpers import R31_PRODUCT_KEYS

_PROFILE = settings()  # the loaded profile (conftest loads it first): 100 in dev, 500 in CI
#: Each example draws a request and runs a catalog: a tenth of the profile's count (>= 20).
CHECKS = settings(
    max_examples=max(20, _PROFILE.max_examples // 10),
    deadline=None,
    suppress_health_check=[*_PROFILE.suppress_health_check, HealthCheck.too_slow],
)
#: Small file and request limits, so that FILE_TOO_LARGE and PAYLOAD_TOO_LARGE are cheap.
SMALL = cc.Limits(max_file_bytes=1024, max_request_bytes=4096)
ONE_SHOT_ID = re.compile(r"_anon_[a-z0-9]{24}")
URL_IMAGE = {"source": {"url": "https://cdn.example/seed.jpg"}}
WARNING_CODES = {
    "DEPRECATED_IMAGE_SHAPE",
    "DEPRECATED_IMAGE_URLS",
    "UNKNOWN_FIELD",
    "UNUSED_FILE",
}


def fresh_catalog(limits: cc.Limits | None = None) -> cc.Catalog:
    return cc.Catalog(cc.MemoryRepository(), clock=FakeClock(), limits=limits)


def code_of(call: Any, *args: Any, **kwargs: Any) -> str | None:
    """Return the error code of ``call``, or ``None`` when it is accepted."""
    try:
        call(*args, **kwargs)
    except cc.CatalogError as error:
        code, status = error.code, error.status
    else:
        return None
    assert status == R29_STATUS[code]
    return code


def expected_source_urls(payload: dict[str, Any], files: dict[str, cc.Upload]) -> list[str]:
    """What R12-R17 make of a valid payload's images: the URL, or ``upload://<sha256>``."""
    if "imageUrls" in payload:
        return list(payload["imageUrls"])
    urls = []
    for entry in payload["images"]:
        source = entry.get("source", entry)
        if "url" in source:
            urls.append(source["url"])
        else:
            urls.append("upload://" + hashlib.sha256(files[source["fileKey"]].data).hexdigest())
    return urls


# -- the module -----------------------------------------------------------------------------------


def test_all_is_sorted_and_names_every_public_strategy() -> None:
    # Constants first, then classes and functions, as ruff's isort-style sort (RUF022) has it.
    assert list(strategies.__all__) == sorted(
        strategies.__all__, key=lambda name: (not name.isupper(), name)
    )
    assert {
        "accounts",
        "external_ids",
        "invalid_upsert_payloads",
        "products",
        "upsert_payloads",
        "use_items",
        "UpsertRequest",
        "InvalidUpsertRequest",
        "UseRequest",
    } <= set(strategies.__all__)
    for name in strategies.__all__:
        assert getattr(strategies, name) is not None


def test_r29_the_status_table_is_the_rule_books() -> None:
    """R29: the kit's code-to-status table is the one the tests use."""
    assert TESTS_R29_STATUS == R29_STATUS


def test_r33_the_rule_book_limits_are_the_library_defaults() -> None:
    """R33: the strategies' defaults, spelled from the rule book, are ``cc.Limits()``."""
    assert cc.Limits() == RULE_BOOK_LIMITS


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        upsert_payloads(True)  # type: ignore[misc]
    with pytest.raises(TypeError):
        products(st.just("acme"))  # type: ignore[misc]
    with pytest.raises(InvalidArgument):
        use_items(kind="sideways")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        invalid_upsert_payloads(limits=cc.Limits(max_url_length=20))


@pytest.mark.parametrize(
    ("strategy", "option"),
    [
        (upsert_payloads, "external_id"),
        (use_items, "external_id"),
        (invalid_upsert_payloads, "external_id"),
        (products, "account"),
    ],
)
def test_options_take_strategies_only_as_hypothesis_does(strategy: Any, option: str) -> None:
    """A single value is ``st.just(value)``: an option never takes "a value or a strategy"."""
    with pytest.raises(InvalidArgument, match=rf"{option}='shirt-1' must be a strategy.*st\.just"):
        strategy(**{option: "shirt-1"})
    assert isinstance(strategy(**{option: st.just("shirt-1")}), st.SearchStrategy)


def test_the_invalid_cases_are_importable_from_their_own_module_and_from_strategies() -> None:
    from catalog_core.testing import invalid

    assert invalid.invalid_upsert_payloads is invalid_upsert_payloads
    assert invalid.InvalidUpsertRequest is InvalidUpsertRequest
    assert invalid.__all__ == ["InvalidUpsertRequest", "invalid_upsert_payloads"]


# -- accounts and ids -----------------------------------------------------------------------------


@CHECKS
@given(account=accounts(), other=accounts())
def test_accounts_are_accepted_and_kept_apart(account: str, other: str) -> None:
    """R1 and the decision table: any drawn account is accepted; two accounts share nothing."""
    catalog = fresh_catalog()
    catalog.upsert(account, {"externalId": "shirt", "images": [URL_IMAGE]})
    assert catalog.get(account, "shirt").account == account
    if other != account:
        assert code_of(catalog.get, other, "shirt") == "PRODUCT_NOT_FOUND"


@CHECKS
@given(external_id=external_ids())
def test_r2_every_drawn_external_id_is_accepted_exactly_as_given(external_id: str) -> None:
    """R2: 1-256 characters, no controls, no surrogates, compared exactly; never ``_anon_``."""
    assert 1 <= len(external_id) <= 256
    assert not external_id.startswith("_anon_")
    catalog = fresh_catalog()
    result = catalog.upsert("acme", {"externalId": external_id, "images": [URL_IMAGE]})
    assert result.product.external_id == external_id
    assert [p.external_id for p in catalog.list("acme").items] == [external_id]


@CHECKS
@given(external_id=external_ids(allow_reserved=True))
def test_r3_reserved_ids_are_refused_by_an_upsert_and_allowed_for_reads(external_id: str) -> None:
    """R3: with ``allow_reserved``, ``_anon_`` ids come too; an upsert refuses them with
    ``RESERVED_EXTERNAL_ID``, while get and delete treat them as ordinary unknown ids."""
    catalog = fresh_catalog()
    payload = {"externalId": external_id, "images": [URL_IMAGE]}
    expected = "RESERVED_EXTERNAL_ID" if external_id.startswith("_anon_") else None
    assert code_of(catalog.upsert, "acme", payload) == expected
    if expected:
        assert code_of(catalog.get, "acme", external_id) == "PRODUCT_NOT_FOUND"
        assert code_of(catalog.delete, "acme", external_id) == "PRODUCT_NOT_FOUND"


def test_r3_external_ids_with_allow_reserved_do_draw_reserved_ids() -> None:
    found = find(
        external_ids(allow_reserved=True),
        lambda value: value.startswith("_anon_"),
        settings=settings(database=None, phases=[Phase.generate]),
    )
    assert found.startswith("_anon_")


# -- valid upserts --------------------------------------------------------------------------------


def check_created(result: cc.UpsertResult, request: UpsertRequest) -> None:
    payload = request.payload
    product = result.product
    assert result.created
    assert product.version == 1
    assert product.external_id == payload["externalId"]
    assert [image.source_url for image in product.images] == expected_source_urls(
        payload, dict(request.files)
    )
    assert [image.order for image in product.images] == list(range(len(product.images)))
    for field in ("title", "description", "metadata"):
        assert getattr(product, field) == payload.get(field)
    assert product.valid_for_days == payload.get("validForDays")  # R10: null when omitted
    assert {warning.code for warning in result.warnings} <= WARNING_CODES


@CHECKS
@given(request=upsert_payloads())
def test_r4_r17_upsert_payloads_create_a_fresh_product_and_update_it_as_json_or_bytes(
    request: UpsertRequest,
) -> None:
    """R4-R18, R32: every drawn payload creates on a fresh catalog, as a dict and as raw JSON
    bytes, and the same payload then updates the product (R6, R11, R28)."""
    catalog = fresh_catalog()
    check_created(catalog.upsert("acme", request.payload, request.files), request)
    again = catalog.upsert("acme", request.body(), request.files)
    assert not again.created
    assert again.product.version == 2
    assert cc.to_wire(again.product) == cc.to_wire(
        catalog.get("acme", request.payload["externalId"])
    )
    from_bytes = fresh_catalog().upsert("other", request.body(), request.files)
    check_created(from_bytes, request)


@CHECKS
@given(request=upsert_payloads(partial=True, external_id=st.just("shirt-1")))
def test_r5_r6_partial_payloads_update_an_existing_product_and_create_only_with_images(
    request: UpsertRequest,
) -> None:
    """R5, R6: a partial payload updates a live product, keeping what it omits; on a fresh
    catalog it creates when it has images, and is refused with PRODUCT_IMAGES_REQUIRED when not."""
    assert request.payload["externalId"] == "shirt-1"
    catalog = fresh_catalog()
    seeded = catalog.upsert(
        "acme",
        {"externalId": "shirt-1", "title": "Seed", "metadata": {"k": 1}, "images": [URL_IMAGE]},
    ).product
    updated = catalog.upsert("acme", request.payload, request.files).product
    assert updated.version == 2
    assert updated.title == request.payload.get("title", seeded.title)
    assert updated.metadata == request.payload.get("metadata", seeded.metadata)
    has_images = "images" in request.payload or "imageUrls" in request.payload
    if not has_images:
        assert updated.images == seeded.images

    expected = None if has_images else "PRODUCT_IMAGES_REQUIRED"
    assert code_of(fresh_catalog().upsert, "acme", request.payload, request.files) == expected


@CHECKS
@given(request=upsert_payloads(multipart=True, deprecated=False))
def test_r14_r15_multipart_payloads_upload_real_images_named_by_their_file_keys(
    request: UpsertRequest,
) -> None:
    """R14, R15, R32: multipart requests carry image bytes under the part names their fileKey
    values use, stored as ``upload://<sha256>``; without ``deprecated``, only canonical images."""
    assert request.multipart
    assert request.files
    catalog = fresh_catalog()
    result = catalog.upsert("acme", request.payload, request.files)
    uploaded = {i.source_url for i in result.product.images if i.source_url.startswith("upload:")}
    assert uploaded
    for source_url in uploaded:
        blob = catalog.repository.get_blob("acme", source_url.removeprefix("upload://"))
        assert blob is not None
    assert not {w.code for w in result.warnings} & {
        "DEPRECATED_IMAGE_SHAPE",
        "DEPRECATED_IMAGE_URLS",
    }
    assert all("source" in entry for entry in request.payload["images"])


@CHECKS
@given(request=upsert_payloads(multipart=False))
def test_r14_json_payloads_carry_no_files_and_no_file_keys(request: UpsertRequest) -> None:
    """R14: a JSON request cannot name file parts, so these payloads name only URLs."""
    assert not request.files
    assert not request.multipart
    result = fresh_catalog().upsert("acme", request.payload)
    assert not [i for i in result.product.images if i.source_url.startswith("upload://")]


def test_upsert_request_body_is_the_payload_as_utf8_json() -> None:
    request = UpsertRequest({"externalId": "é", "images": [URL_IMAGE]})
    assert json.loads(request.body().decode("utf-8")) == request.payload
    assert "é".encode() in request.body()
    assert request.external_id == "é"
    assert not request.multipart


# -- invalid upserts ------------------------------------------------------------------------------


def check_refused(case: InvalidUpsertRequest, limits: cc.Limits | None) -> None:
    catalog = fresh_catalog(limits)
    catalog.upsert("acme", {"externalId": "untouched", "images": [URL_IMAGE]})
    before = cc.page_to_wire(catalog.list("acme"))

    with pytest.raises(cc.CatalogError) as refused:
        catalog.upsert("acme", case.payload, case.files)
    assert (refused.value.code, refused.value.status) == (case.code, case.status), refused.value
    assert cc.page_to_wire(catalog.list("acme")) == before  # R26: a refusal changes nothing


@CHECKS
@given(case=invalid_upsert_payloads())
def test_r30_invalid_payloads_are_refused_with_exactly_their_code(
    case: InvalidUpsertRequest,
) -> None:
    """R26, R29, R30: each drawn case is refused with its code and status, and writes nothing."""
    assert case.code not in ("FILE_TOO_LARGE", "PAYLOAD_TOO_LARGE")  # only with ``limits``
    check_refused(case, None)


@CHECKS
@given(case=invalid_upsert_payloads(limits=SMALL))
def test_r30_r33_with_small_limits_size_problems_are_drawn_and_refused_too(
    case: InvalidUpsertRequest,
) -> None:
    """R15, R30, R33: with ``limits``, files and requests one byte over them are drawn too."""
    check_refused(case, SMALL)


@CHECKS
@given(case=invalid_upsert_payloads(external_id=st.just("shirt-1")), data=st.data())
def test_r30_refused_payloads_give_the_same_code_on_an_existing_product(
    case: InvalidUpsertRequest, data: st.DataObject
) -> None:
    """R4, R5, R30: the code does not depend on stored state, except for ``requires_absent``
    cases (a create without images), which are valid updates of a live product."""
    catalog = fresh_catalog()
    catalog.upsert("acme", {"externalId": "shirt-1", "images": [URL_IMAGE]})
    code = code_of(catalog.upsert, "acme", case.payload, case.files)
    assert code == (None if case.requires_absent else case.code)


ALL_CODES = [
    "VALIDATION_FAILED",
    "EXTERNAL_ID_REQUIRED",
    "INVALID_IMAGE_INPUT",
    "RESERVED_EXTERNAL_ID",
    "MULTIPART_FILE_NOT_FOUND",
    "INVALID_IMAGE",
    "FILE_TOO_LARGE",
    "PAYLOAD_TOO_LARGE",
    "PRODUCT_IMAGES_REQUIRED",
]
FIND = settings(database=None, max_examples=5000, phases=[Phase.generate])


@pytest.mark.parametrize("code", ALL_CODES)
def test_r30_every_code_of_a_single_upsert_is_drawn(code: str) -> None:
    """R29, R30: the strategy reaches every code an upsert of one payload can give."""
    case = find(invalid_upsert_payloads(limits=SMALL), lambda c: c.code == code, settings=FIND)
    check_refused(case, SMALL)


@pytest.mark.parametrize(
    ("name", "predicate"),
    [
        ("a body that is not a JSON object", lambda c: isinstance(c.payload, bytes)),
        ("a create without images", lambda c: c.requires_absent),
        (
            "an empty image list",
            lambda c: isinstance(c.payload, dict) and c.payload.get("images") == [],
        ),
        (
            "a missing id beside a refused title",
            lambda c: (
                c.code == "EXTERNAL_ID_REQUIRED"
                and isinstance(c.payload, dict)
                and not isinstance(c.payload.get("title", ""), str | None)
            ),
        ),
        (
            "a refused field beside a reserved id",
            lambda c: (
                c.code == "VALIDATION_FAILED"
                and isinstance(c.payload, dict)
                and str(c.payload.get("externalId")).startswith("_anon_")
            ),
        ),
        (
            "an image input problem beside a missing file part",
            lambda c: (
                c.code == "INVALID_IMAGE_INPUT"
                and isinstance(c.payload, dict)
                and "absent-" in json.dumps(c.payload)
            ),
        ),
        ("an unused file part", lambda c: any(name.startswith("unused") for name in c.files)),
    ],
)
def test_r30_combined_and_edge_cases_are_drawn(name: str, predicate: Any) -> None:
    """R30: problems are combined, and the highest-precedence one decides the code."""
    case = find(invalid_upsert_payloads(limits=SMALL), predicate, settings=FIND)
    check_refused(case, SMALL)


# -- use items ------------------------------------------------------------------------------------


@CHECKS
@given(item=use_items(kind="reference", external_id=st.just("shirt-1")))
def test_r22a_reference_items_use_a_live_product_and_need_one(item: UseRequest) -> None:
    """R22a: a reference records the use without editing; with no live product it is refused."""
    assert item.kind == "reference"
    clock = FakeClock()
    catalog = cc.Catalog(cc.MemoryRepository(), clock=clock)
    assert code_of(catalog.use, "acme", item.payload, item.files) == "PRODUCT_NOT_FOUND"
    seeded = catalog.upsert("acme", {"externalId": "shirt-1", "images": [URL_IMAGE]}).product
    clock.advance(minutes=1)
    result = catalog.use("acme", item.payload, item.files)
    assert not result.created
    assert result.product.version == 2
    assert result.product.updated_at == seeded.updated_at
    assert result.product.last_used_at == seeded.updated_at + timedelta(minutes=1)


@CHECKS
@given(item=use_items(kind="inline", external_id=st.just("shirt-1")))
def test_r22b_inline_items_update_a_live_product_and_create_only_with_images(
    item: UseRequest,
) -> None:
    """R22b: an inline item upserts; a product it creates lives 15 days unless the item says."""
    assert item.kind == "inline"
    assert set(item.payload) - {"externalId"}  # at least one field, or it would be a reference
    fresh = fresh_catalog()
    has_images = "images" in item.payload or "imageUrls" in item.payload
    if has_images:
        created = fresh.use("acme", item.payload, item.files)
        assert created.created
        assert created.product.valid_for_days == item.payload.get("validForDays", 15)
    else:
        assert code_of(fresh.use, "acme", item.payload, item.files) == "PRODUCT_IMAGES_REQUIRED"
    catalog = fresh_catalog()
    catalog.upsert("acme", {"externalId": "shirt-1", "validForDays": 30, "images": [URL_IMAGE]})
    updated = catalog.use("acme", item.payload, item.files)
    assert not updated.created
    assert updated.product.valid_for_days == item.payload.get("validForDays", 30)


@CHECKS
@given(item=use_items(kind="one_shot"))
def test_r22c_one_shot_items_create_an_unlisted_product_under_a_generated_id(
    item: UseRequest,
) -> None:
    """R22c: no id; a fresh ``_anon_`` id, 7 days unless the item gives a number, never listed."""
    assert item.kind == "one_shot"
    assert item.payload.get("externalId") is None
    assert item.payload.get("validForDays", 7) is not None
    catalog = fresh_catalog()
    result = catalog.use("acme", item.payload, item.files)
    assert result.created
    assert ONE_SHOT_ID.fullmatch(result.product.external_id)
    assert result.product.valid_for_days == item.payload.get("validForDays", 7)
    assert catalog.list("acme").items == ()
    assert catalog.get("acme", result.product.external_id) == result.product


@CHECKS
@given(item=use_items())
def test_r22_use_items_of_every_kind_are_drawn_and_accepted_where_they_apply(
    item: UseRequest,
) -> None:
    catalog = fresh_catalog()
    if item.kind != "one_shot":
        assert item.external_id is not None
        catalog.upsert("acme", {"externalId": item.external_id, "images": [URL_IMAGE]})
    result = catalog.use("acme", item.payload, item.files)
    assert result.created == (item.kind == "one_shot")


# -- products -------------------------------------------------------------------------------------


@CHECKS
@given(product=products())
def test_r31_products_survive_the_wire_round_trip(product: cc.Product) -> None:
    """R31: exactly the wire keys, and JSON text back to the very same product."""
    wire = cc.to_wire(product)
    assert tuple(wire) == R31_PRODUCT_KEYS
    sent = json.loads(json.dumps(wire))
    assert cc.product_from_wire(sent, account=product.account, version=product.version) == product


@CHECKS
@given(product=products(account=st.just("acme")))
def test_r16_r19_r22c_products_keep_the_models_invariants(product: cc.Product) -> None:
    """R16, R19, R22c, R28 and the model's timestamps: what a catalog could have stored."""
    assert product.account == "acme"
    moments = [product.created_at, product.updated_at, product.last_used_at, product.expires_at]
    for moment in moments:
        assert moment is None or (moment.tzinfo is UTC and moment.microsecond % 1000 == 0)
    assert product.version >= 1
    assert product.updated_at >= product.created_at
    assert product.last_used_at is None or product.last_used_at >= product.created_at
    assert [image.order for image in product.images] == list(range(len(product.images)))
    assert product.images
    assert all(image.classifications != {} for image in product.images)
    if product.valid_for_days is None:
        assert product.expires_at is None
    else:
        start = max(product.updated_at, product.last_used_at or product.updated_at)
        assert product.expires_at == start + timedelta(days=product.valid_for_days)
    if product.one_shot:
        assert ONE_SHOT_ID.fullmatch(product.external_id)
        assert product.valid_for_days is not None
        assert product.last_used_at is not None


def test_products_draw_one_shot_products_and_uploaded_images() -> None:
    one_shot = find(products(), lambda p: p.one_shot, settings=FIND)
    assert one_shot.valid_for_days is not None
    uploaded = find(products(), lambda p: any(i.blob_sha256 for i in p.images), settings=FIND)
    assert all(len(i.blob_sha256 or "0" * 64) == 64 for i in uploaded.images)
