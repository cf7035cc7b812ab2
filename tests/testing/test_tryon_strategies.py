"""The kit's try-on strategies, each checked against the real ``TryOn`` on the in-memory backend.

Valid bodies and uploads must be accepted and mean what the strategies say they mean (the item's
product, the retention, the customer id, each deprecated name a warning); invalid ones must be
refused with exactly their code and status, and change nothing (T9). What is checked is the
strategies' meaning, which does not depend on storage: the try-on state machine runs the backends.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import catalog_core as cc
from catalog_core.errors import tryon_error_classes
from catalog_core.testing import invalid_tryon, strategies
from catalog_core.testing.clock import FakeClock
from catalog_core.testing.strategies import (
    IMAGE_HEADERS,
    TRYON_STATUS,
    InvalidTryOnRequest,
    InvalidUploadRequest,
    TryOnRequest,
    UploadRequest,
    customer_ids,
    invalid_tryon_bodies,
    invalid_upload_fields,
    tryon_bodies,
    upload_fields,
    use_items,
)
from catalog_core.tryon import TryOn

_PROFILE = settings()  # the loaded profile: 100 in dev, 500 in CI
CHECKS = settings(
    max_examples=max(20, _PROFILE.max_examples // 10),
    deadline=None,
    suppress_health_check=[*_PROFILE.suppress_health_check, HealthCheck.too_slow],
)
FIND = settings(database=None, max_examples=5000, phases=[Phase.generate])
SMALL = cc.Limits(max_file_bytes=1024, max_request_bytes=4096)
URL_IMAGE = {"source": {"url": "https://cdn.example/seed.jpg"}}
PERSON = IMAGE_HEADERS["image/png"] + b"person"
ID = "shirt-1"


def fresh(limits: cc.Limits | None = None) -> tuple[TryOn, FakeClock]:
    clock = FakeClock()
    return TryOn(cc.Catalog(cc.MemoryRepository(), clock=clock, limits=limits)), clock


def deprecations(result: Any) -> list[tuple[str, str]]:
    return sorted(
        (w.code, w.path)
        for w in result.warnings
        if w.code in ("DEPRECATED_FIELD", "DEPRECATED_PRODUCT_FIELD")
    )


def expected_deprecations(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """T6, T2: each deprecated name used is one warning at its own path."""
    return sorted(
        ("DEPRECATED_PRODUCT_FIELD" if name == "product" else "DEPRECATED_FIELD", name)
        for name in names
    )


# -- the module -----------------------------------------------------------------------------------


def test_the_try_on_strategies_are_exported_beside_the_others() -> None:
    assert {
        "TRYON_STATUS",
        "InvalidTryOnRequest",
        "InvalidUploadRequest",
        "TryOnRequest",
        "UploadRequest",
        "customer_ids",
        "invalid_tryon_bodies",
        "invalid_upload_fields",
        "tryon_bodies",
        "upload_fields",
    } <= set(strategies.__all__)
    assert invalid_tryon.invalid_tryon_bodies is invalid_tryon_bodies
    assert invalid_tryon.invalid_upload_fields is invalid_upload_fields
    assert invalid_tryon.__all__ == [
        "InvalidTryOnRequest",
        "InvalidUploadRequest",
        "invalid_tryon_bodies",
        "invalid_upload_fields",
    ]


def test_t20_the_kits_status_table_has_every_try_on_code_the_library_raises() -> None:
    """T20: the kit's table, written from the rule book, agrees with the library's classes."""
    library = {cls.code: cls.status for cls in tryon_error_classes()}
    assert {code: TRYON_STATUS[code] for code in library} == library
    assert library == {
        "FILE_REQUIRED": 400,
        "CUSTOMER_IMAGE_REQUIRED": 400,
        "CUSTOMER_IMAGE_FETCH_FAILED": 400,
        "INSUFFICIENT_CREDITS": 402,
        "GENERATION_NOT_FOUND": 404,
    }


@pytest.mark.parametrize(
    ("strategy", "option"),
    [
        (tryon_bodies, "item"),
        (tryon_bodies, "image_id"),
        (tryon_bodies, "external_user_id"),
        (upload_fields, "external_user_id"),
        (invalid_tryon_bodies, "external_id"),
    ],
)
def test_options_take_strategies_only_as_hypothesis_does(strategy: Any, option: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"{option}='shirt-1' must be a strategy.*st\.just"):
        strategy(**{option: "shirt-1"}).example()
    assert isinstance(strategy(**{option: st.just("shirt-1")}), st.SearchStrategy)


def test_options_are_keyword_only_and_limits_are_checked() -> None:
    with pytest.raises(TypeError):
        tryon_bodies(use_items())  # type: ignore[misc]
    with pytest.raises(TypeError):
        invalid_upload_fields(SMALL)  # type: ignore[misc]
    with pytest.raises(InvalidArgument):
        invalid_tryon_bodies(limits=cc.Limits(max_url_length=20))


# -- valid bodies ---------------------------------------------------------------------------------


@CHECKS
@given(data=st.data(), raw=st.booleans())
def test_t5_t8_every_drawn_body_is_accepted_and_means_what_it_says(
    data: st.DataObject, raw: bool
) -> None:
    """T5-T8, T10, T16: a drawn body starts a try-on (its product seeded when its item needs one,
    its person image uploaded when named by id), as a dict or as raw JSON; the generation uses
    the item's product, takes a credit, keeps the body's customer id and retention, and each
    deprecated name is one warning."""
    tryon, clock = fresh()
    tryon.catalog.upsert("acme", {"externalId": ID, "images": [URL_IMAGE]})
    image = tryon.upload_image("acme", PERSON)
    request = data.draw(
        tryon_bodies(item=use_items(external_id=st.just(ID)), image_id=st.just(image.image_id)),
        label="request",
    )
    assert isinstance(request, TryOnRequest)
    result = tryon.start("acme", request.body() if raw else request.payload, request.files)

    if request.item.kind == "one_shot":
        assert result.created
        assert result.product_external_id.startswith("_anon_")
    else:
        assert result.product_external_id == request.external_id == ID
    assert result.product.last_used_at == clock.now.replace(microsecond=0)
    assert result.generation.status in ("PENDING", "COMPLETED")  # COMPLETED: titled "mock" (T14)
    assert tryon.credits("acme") == 9
    assert deprecations(result) == expected_deprecations(request.deprecated)

    payload = request.payload
    output = payload.get("output", {})
    keep = output.get("keepForDays", payload.get("retentionDays", 7))
    clock.advance(days=keep, milliseconds=-1)
    generation_id = result.generation.generation_id
    assert tryon.get_generation("acme", generation_id).generation_id == generation_id
    customer = payload.get("externalUserId", payload.get("customerId"))
    erased = tryon.erase_customer("acme", customer or "nobody")
    person_file = 1 if request.person == "fileKey" else 0  # a person image of its own (T7)
    assert erased == (1 + person_file if customer else 0)
    clock.advance(milliseconds=1)
    with pytest.raises(cc.CatalogError) as gone:
        tryon.get_generation("acme", generation_id)
    assert gone.value.code == "GENERATION_NOT_FOUND"  # T22: its retention is over


@pytest.mark.parametrize(
    ("name", "predicate"),
    [
        ("products", lambda r: "products" in r.payload),
        ("product", lambda r: "product" in r.payload),
        ("person by id", lambda r: r.person == "id"),
        ("person by url", lambda r: "url" in json.dumps(r.payload.get("person"))),
        ("person by fileKey", lambda r: r.person == "fileKey" and "person" in r.payload),
        ("customer", lambda r: "source" not in r.payload.get("customer", {"source": 1})),
        ("customer.source", lambda r: "source" in r.payload.get("customer", {})),
        ("externalUserId", lambda r: "externalUserId" in r.payload),
        ("customerId", lambda r: "customerId" in r.payload),
        ("output.watermark", lambda r: "watermark" in r.payload.get("output", {})),
        ("output.keepForDays", lambda r: "keepForDays" in r.payload.get("output", {})),
        ("empty output", lambda r: r.payload.get("output") == {}),
        ("useWatermark", lambda r: "useWatermark" in r.payload),
        ("retentionDays", lambda r: "retentionDays" in r.payload),
        ("a reference", lambda r: r.item.kind == "reference"),
        ("an inline item", lambda r: r.item.kind == "inline"),
        ("a one-shot item", lambda r: r.item.kind == "one_shot"),
        ("product files and a person file", lambda r: r.person == "fileKey" and r.item.files),
    ],
)
def test_t5_t6_every_shape_of_a_body_is_drawn(name: str, predicate: Any) -> None:
    found = find(tryon_bodies(image_id=st.just("img_" + "a" * 24)), predicate, settings=FIND)
    assert predicate(found)


@CHECKS
@given(request=tryon_bodies(deprecated=False))
def test_without_image_ids_no_body_names_its_person_by_id(request: TryOnRequest) -> None:
    """An ``id`` needs an uploaded image; without ``deprecated``, only the canonical shapes."""
    assert request.person != "id"
    assert request.deprecated == ()
    source = request.payload["person"]["image"]["source"]
    assert list(source) == [{"url": "url", "fileKey": "fileKey"}[request.person]]
    assert set(request.payload) <= {"products", "person", "externalUserId", "output"}


@CHECKS
@given(customer=customer_ids())
def test_t2_every_drawn_customer_id_is_accepted_and_erased_by(customer: str) -> None:
    """T2, T18: 1-256 characters, no controls; an upload tagged with it is erased by it."""
    assert 1 <= len(customer) <= 256
    tryon, _ = fresh()
    tryon.upload_image("acme", PERSON, customer_id=customer)
    assert tryon.erase_customer("acme", customer) == 1


# -- valid uploads --------------------------------------------------------------------------------


@CHECKS
@given(request=upload_fields())
def test_t1_t2_every_drawn_upload_is_stored_as_its_fields_ask(request: UploadRequest) -> None:
    """T1-T4: the image is stored with the crop, retention and customer the fields ask for."""
    tryon, clock = fresh()
    result = tryon.upload_form("acme", request.fields)
    image = result.image
    assert image.sha256 == hashlib.sha256(request.file.data).hexdigest()
    assert (image.crop, image.customer_id) == (request.crop, request.customer_id)
    assert image.expires_at == clock.now.replace(microsecond=0) + timedelta(
        days=request.keep_for_days
    )
    assert deprecations(result) == expected_deprecations(request.deprecated)
    assert tryon.get_person_image("acme", image.image_id) == image


@pytest.mark.parametrize(
    ("name", "predicate"),
    [
        ("crop as a boolean", lambda r: isinstance(r.fields.get("crop"), bool)),
        ("crop as text", lambda r: r.fields.get("crop") in ("true", "false")),
        ("crop as bytes", lambda r: isinstance(r.fields.get("crop"), bytes)),
        ("keepForDays as a number", lambda r: isinstance(r.fields.get("keepForDays"), int)),
        ("keepForDays as text", lambda r: isinstance(r.fields.get("keepForDays"), str)),
        ("retentionDays", lambda r: "retentionDays" in r.fields),
        ("externalUserId", lambda r: "externalUserId" in r.fields),
        ("customerId", lambda r: "customerId" in r.fields),
        ("the file alone", lambda r: list(r.fields) == ["file"]),
    ],
)
def test_t2_every_shape_of_an_upload_is_drawn(name: str, predicate: Any) -> None:
    assert predicate(find(upload_fields(), predicate, settings=FIND))


# -- invalid bodies -------------------------------------------------------------------------------


def check_refused(case: InvalidTryOnRequest, limits: cc.Limits | None) -> None:
    """The case's code and status, and nothing changed: no product, credit, generation, image
    or blob (T9)."""
    tryon, clock = fresh(limits)
    seeded = tryon.catalog.upsert("acme", {"externalId": ID, "images": [URL_IMAGE]}).product
    with pytest.raises(cc.CatalogError) as refused:
        tryon.start("acme", case.payload, case.files)
    assert (refused.value.code, refused.value.status) == (case.code, case.status), refused.value
    assert tryon.credits("acme") == 10
    assert [cc.to_wire(p) for p in tryon.catalog.list("acme").items] == [cc.to_wire(seeded)]
    for upload in case.files.values():
        sha = hashlib.sha256(upload.data).hexdigest()
        assert tryon.repository.get_blob("acme", sha) is None
    clock.advance(days=8)
    counts = tryon.purge_expired()
    assert (counts.person_images, counts.generations) == (0, 0)


@CHECKS
@given(case=invalid_tryon_bodies(external_id=st.just(ID)))
def test_t9_invalid_bodies_are_refused_with_exactly_their_code(case: InvalidTryOnRequest) -> None:
    """T5-T9, R29, T20: each drawn case gives its code and status, and writes nothing."""
    assert case.code not in ("FILE_TOO_LARGE", "PAYLOAD_TOO_LARGE")  # only with ``limits``
    check_refused(case, None)


@CHECKS
@given(case=invalid_tryon_bodies(limits=SMALL))
def test_t9_with_small_limits_size_problems_are_drawn_and_refused_too(
    case: InvalidTryOnRequest,
) -> None:
    check_refused(case, SMALL)


TRYON_CODES = [
    "VALIDATION_FAILED",
    "EXTERNAL_ID_REQUIRED",
    "INVALID_IMAGE_INPUT",
    "RESERVED_EXTERNAL_ID",
    "MULTIPART_FILE_NOT_FOUND",
    "INVALID_IMAGE",
    "FILE_TOO_LARGE",
    "PAYLOAD_TOO_LARGE",
    "PRODUCT_IMAGES_REQUIRED",
    "CUSTOMER_IMAGE_REQUIRED",
    "CUSTOMER_IMAGE_FETCH_FAILED",
]


@pytest.mark.parametrize("code", TRYON_CODES)
def test_t9_every_code_of_a_try_on_that_needs_no_state_is_drawn(code: str) -> None:
    case = find(invalid_tryon_bodies(limits=SMALL), lambda c: c.code == code, settings=FIND)
    check_refused(case, SMALL)


def body_of(case: InvalidTryOnRequest) -> dict[str, Any]:
    """The case's JSON object, whether it comes as a dict or as raw bytes (``{}`` for none)."""
    if isinstance(case.payload, dict):
        return case.payload
    try:
        decoded = json.loads(case.payload)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def person_of(case: InvalidTryOnRequest) -> str:
    """The case's person (or deprecated customer) as lower-case JSON text."""
    body = body_of(case)
    return json.dumps([body.get("person"), body.get("customer")]).lower()


@pytest.mark.parametrize(
    ("name", "predicate"),
    [
        ("a body that is not a JSON object", lambda c: c.payload in (b"[]", b"null")),
        (
            "two items",
            lambda c: isinstance(c.payload, dict) and len(c.payload.get("products") or [1, 1]) == 2,
        ),
        (
            "an item problem masked by a broken product list",
            lambda c: (
                isinstance(c.payload, dict)
                and c.payload.get("products") == []
                and c.code == "VALIDATION_FAILED"
            ),
        ),
        (
            "a product item problem beside a person problem",
            lambda c: c.code == c.problems.get("item") and "person" in c.problems,
        ),
        (
            "an item without images beside a person problem",
            lambda c: (
                c.code == c.problems.get("item") == "PRODUCT_IMAGES_REQUIRED"
                and "person" in c.problems
            ),
        ),
        (
            "a field problem beside a missing person",
            lambda c: (
                c.code == "VALIDATION_FAILED"
                and "externalUserId" in body_of(c)
                and person_of(c) == "[null, null]"
            ),
        ),
        ("an unknown person id", lambda c: '"id": "img_' in person_of(c)),
        (
            "person beside customer",
            lambda c: "person" in body_of(c) and "customer" in body_of(c),
        ),
    ],
)
def test_t9_combined_and_edge_cases_are_drawn(name: str, predicate: Any) -> None:
    """T9: problems are combined, the product item's before the person's."""
    case = find(invalid_tryon_bodies(limits=SMALL), predicate, settings=FIND)
    check_refused(case, SMALL)


# -- invalid uploads ------------------------------------------------------------------------------


def check_upload_refused(case: InvalidUploadRequest, limits: cc.Limits | None) -> None:
    tryon, clock = fresh(limits)
    with pytest.raises(cc.CatalogError) as refused:
        tryon.upload_form("acme", case.fields)
    assert (refused.value.code, refused.value.status) == (case.code, case.status), refused.value
    file = case.fields.get("file")
    if isinstance(file, cc.Upload):
        sha = hashlib.sha256(file.data).hexdigest()
        assert tryon.repository.get_blob("acme", sha) is None
    clock.advance(days=8)
    assert tryon.purge_expired().person_images == 0


@CHECKS
@given(case=invalid_upload_fields())
def test_t1_t2_invalid_uploads_are_refused_with_exactly_their_code(
    case: InvalidUploadRequest,
) -> None:
    """T1, T2: each drawn case gives its code and status, and stores nothing."""
    check_upload_refused(case, None)


@CHECKS
@given(case=invalid_upload_fields(limits=SMALL))
def test_t1_t2_with_small_limits_size_problems_are_drawn_too(case: InvalidUploadRequest) -> None:
    check_upload_refused(case, SMALL)


@pytest.mark.parametrize(
    "code",
    ["PAYLOAD_TOO_LARGE", "FILE_REQUIRED", "VALIDATION_FAILED", "INVALID_IMAGE", "FILE_TOO_LARGE"],
)
def test_t1_t2_every_code_of_an_upload_is_drawn(code: str) -> None:
    case = find(invalid_upload_fields(limits=SMALL), lambda c: c.code == code, settings=FIND)
    check_upload_refused(case, SMALL)


def test_t2_a_field_problem_beside_a_missing_file_is_file_required() -> None:
    """T1, T2: the file part first, then the fields, then the file's bytes."""
    case = find(
        invalid_upload_fields(),
        lambda c: c.code == "FILE_REQUIRED" and len(c.fields) >= 2 and "crop" in c.fields,
        settings=FIND,
    )
    check_upload_refused(case, None)
    case = find(
        invalid_upload_fields(),
        lambda c: (
            c.code == "VALIDATION_FAILED"
            and isinstance(c.fields.get("file"), cc.Upload)
            and not c.fields["file"].data.startswith(tuple(IMAGE_HEADERS.values()))
        ),
        settings=FIND,
    )
    check_upload_refused(case, None)
