"""Starting a try-on: the body, its product item, the person, the order of errors (T5-T10)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

import catalog_core as cc
from catalog_core.tryon import PersonSource, StartCommand, TryOn
from tests.helpers import JPEG, PNG, FakeClock
from tests.tryon.conftest import CDN, body, item


def state(catalog: cc.Catalog, tryon: TryOn, account: str = "acme") -> tuple[Any, ...]:
    """What a refused try-on must leave as it was: products, the balance, the stored records."""
    products = [
        (p.external_id, p.version, p.last_used_at) for p in catalog.list(account, 200).items
    ]
    return (products, tryon.credits(account))


def test_t5_a_json_body_is_accepted_and_the_item_applied_as_r22(
    catalog: cc.Catalog, tryon: TryOn
) -> None:
    result = tryon.start("acme", body(item("sku-1", title="Shirt")))
    assert result.created
    product = catalog.get("acme", "sku-1")
    assert (product.title, product.valid_for_days) == ("Shirt", 15)  # R22b: inline, 15 days
    assert product.last_used_at == product.created_at
    assert result.product == product
    assert result.product_external_id == "sku-1"


def test_t5_a_reference_records_the_use_and_moves_the_expiry(
    catalog: cc.Catalog, tryon: TryOn, clock: FakeClock
) -> None:
    catalog.upsert("acme", item("sku-1", validForDays=3))
    clock.advance(days=2)
    result = tryon.start("acme", body(item("sku-1", reference=True)))
    assert not result.created
    product = catalog.get("acme", "sku-1")
    assert product.last_used_at == clock()
    assert product.expires_at == clock() + timedelta(days=3)


def test_t5_raw_json_text_and_bytes_are_bodies_too(tryon: TryOn) -> None:
    text = (
        '{"products":[{"title":"mock","images":[{"source":{"url":"https://a.example/p.jpg"}}]}],'
        '"person":{"image":{"source":{"url":"https://a.example/me.jpg"}}}}'
    )
    assert tryon.start("acme", text).product.one_shot
    assert tryon.start("acme", text.encode()).product.one_shot


@pytest.mark.parametrize(
    "products",
    [[], [item("a"), item("b")], "sku", None, [1]],
    ids=["empty", "two", "string", "null", "not-an-object"],
)
def test_t5_products_must_hold_exactly_one_item(tryon: TryOn, products: Any) -> None:
    payload = body()
    payload["products"] = products
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start("acme", payload)
    assert caught.value.details[0].path.startswith("products")


def test_t5_a_one_shot_item_gets_a_generated_id(catalog: cc.Catalog, tryon: TryOn) -> None:
    result = tryon.start("acme", body(item(None, title="t")))
    assert re.fullmatch(r"_anon_[a-z0-9]{24}", result.product_external_id)
    assert result.generation.product_external_id == result.product_external_id
    assert catalog.get("acme", result.product_external_id).valid_for_days == 7  # R22c
    assert catalog.list("acme").items == ()  # one-shot products are never listed


def test_t6_deprecated_shapes_are_accepted_each_with_a_warning(tryon: TryOn) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG)}).image
    old = {
        "product": item("sku-9", title="mock"),
        "customer": {"id": image.image_id},
        "customerId": "u-1",
        "useWatermark": False,
        "retentionDays": 3,
    }
    result = tryon.start("acme", old)
    assert {w.path for w in result.warnings} == {
        "product",
        "customer",
        "customerId",
        "useWatermark",
        "retentionDays",
    }
    generation = tryon.repository.get_generation("acme", result.generation.generation_id)
    assert generation is not None
    assert (generation.customer_id, generation.watermark, generation.keep_for_days) == (
        "u-1",
        False,
        3,
    )
    nested = tryon.start(
        "acme",
        {
            "products": [item("sku-9", reference=True)],
            "customer": {"source": {"url": f"{CDN}/me.jpg"}},
        },
    )
    assert [w.path for w in nested.warnings] == ["customer"]


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"product": item("x")}, "product"),
        ({"customer": {"url": f"{CDN}/me.jpg"}}, "customer"),
        ({"externalUserId": "a", "customerId": "a"}, "customerId"),
        ({"output": {"watermark": True}, "useWatermark": True}, "useWatermark"),
        ({"output": {"keepForDays": 1}, "retentionDays": 1}, "retentionDays"),
    ],
)
def test_t6_a_new_and_an_old_name_together_are_validation_failed(
    tryon: TryOn, extra: dict[str, Any], path: str
) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start("acme", {**body(), **extra})
    assert [d.path for d in caught.value.details] == [path]


def test_t7_a_missing_person_is_customer_image_required(tryon: TryOn) -> None:
    for payload in (
        {"products": [item()]},
        {"products": [item()], "person": {}},
        {"products": [item()], "person": None},
    ):
        with pytest.raises(cc.CatalogError) as caught:
            tryon.start("acme", payload)
        assert (caught.value.code, caught.value.status) == ("CUSTOMER_IMAGE_REQUIRED", 400)


@pytest.mark.parametrize(
    "source",
    [{}, {"id": "img_a", "url": f"{CDN}/me.jpg"}, {"url": f"{CDN}/x", "fileKey": "p"}, None],
)
def test_t7_a_source_must_hold_exactly_one_of_id_url_file_key(tryon: TryOn, source: Any) -> None:
    payload = {"products": [item()], "person": {"image": {"source": source}}}
    with pytest.raises(cc.InvalidImageInput) as caught:
        tryon.start("acme", payload)
    assert [d.path for d in caught.value.details] == ["person.image.source"]


def test_t7_an_unknown_image_id_is_validation_failed_at_its_path(tryon: TryOn) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start("acme", body(id="img_" + "a" * 24))
    assert caught.value.details == (
        cc.Detail("person.image.source.id", "unknown or expired image"),
    )


@pytest.mark.parametrize("url", ["ftp://a.example/x.jpg", "/relative.jpg", "https://", 7])
def test_t7_a_person_url_must_be_absolute_http(tryon: TryOn, url: Any) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start("acme", body(url=url))
    assert [d.path for d in caught.value.details] == ["person.image.source.url"]


@pytest.mark.parametrize("host", ["shop.invalid", "a.b.INVALID", "invalid", "x.invalid."])
def test_t7_a_person_url_under_invalid_cannot_be_fetched(
    catalog: cc.Catalog, tryon: TryOn, host: str
) -> None:
    before = state(catalog, tryon)
    with pytest.raises(cc.CatalogError) as caught:
        tryon.start("acme", body(url=f"https://{host}/me.jpg"))
    assert (caught.value.code, caught.value.status) == ("CUSTOMER_IMAGE_FETCH_FAILED", 400)
    assert state(catalog, tryon) == before


def test_t7_a_url_person_is_never_fetched_and_comes_back_as_the_result(
    tryon: TryOn, clock: FakeClock
) -> None:
    result = tryon.start("acme", body(item("s", title="mock"), url="https://img.example/me.jpg"))
    view = tryon.get_generation("acme", result.generation.generation_id)
    assert view.status == "COMPLETED"
    media = tryon.open_media(tryon.result_ref("acme", view))
    assert media is not None
    assert media.redirect == "https://img.example/me.jpg"


def test_t7_a_file_key_person_becomes_a_person_image_with_the_generations_retention(
    tryon: TryOn, clock: FakeClock
) -> None:
    payload = body(item("s", title="mock"), fileKey="me")
    payload["output"] = {"keepForDays": 1}
    payload["externalUserId"] = "u-7"
    result = tryon.start("acme", payload, {"me": cc.Upload(JPEG)})
    assert result.warnings == ()  # the person's file part is used: no UNUSED_FILE
    generation = tryon.repository.get_generation("acme", result.generation.generation_id)
    assert generation is not None
    assert generation.person.sha256 is not None
    assert generation.person.mime_type == "image/jpeg"
    # Erasing the customer finds the person image the file became (T18).
    assert tryon.erase_customer("acme", "u-7") == 2


def test_t7_a_file_key_person_follows_r14_and_r15(tryon: TryOn) -> None:
    with pytest.raises(cc.MultipartFileNotFound) as missing:
        tryon.start("acme", body(fileKey="me"))
    assert [d.path for d in missing.value.details] == ["person.image.source.fileKey"]
    with pytest.raises(cc.InvalidImage) as bad:
        tryon.start("acme", body(fileKey="me"), {"me": cc.Upload(b"not an image at all")})
    assert [d.path for d in bad.value.details] == ["person.image.source.fileKey"]


def test_t8_output_options_are_recorded_with_their_defaults(tryon: TryOn) -> None:
    plain = tryon.start("acme", body())
    generation = tryon.repository.get_generation("acme", plain.generation.generation_id)
    assert generation is not None
    assert (generation.watermark, generation.keep_for_days) == (True, 7)
    payload = body()
    payload["output"] = {"watermark": False, "keepForDays": 3}
    chosen = tryon.start("acme", payload)
    generation = tryon.repository.get_generation("acme", chosen.generation.generation_id)
    assert generation is not None
    assert (generation.watermark, generation.keep_for_days) == (False, 3)


@pytest.mark.parametrize(
    ("output", "paths"),
    [
        ({"watermark": "yes"}, ["output.watermark"]),
        ({"keepForDays": 2}, ["output.keepForDays"]),
        ({"keepForDays": True}, ["output.keepForDays"]),
        ({"watermark": 1, "keepForDays": "7"}, ["output.keepForDays", "output.watermark"]),
        ("all", ["output"]),
    ],
)
def test_t8_invalid_output_options_are_validation_failed(
    tryon: TryOn, output: Any, paths: list[str]
) -> None:
    payload = body()
    payload["output"] = output
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start("acme", payload)
    assert [d.path for d in caught.value.details] == paths


def test_t9_body_field_problems_and_item_field_problems_are_one_validation_failed(
    tryon: TryOn,
) -> None:
    payload = body(item("sku", title=5))
    payload["externalUserId"] = ""
    payload["output"] = {"keepForDays": 9}
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start("acme", payload)
    assert [d.path for d in caught.value.details] == [
        "externalUserId",
        "output.keepForDays",
        "products.0.title",
    ]


def test_t9_the_product_items_own_checks_come_before_the_persons(tryon: TryOn) -> None:
    cases: list[tuple[dict[str, Any], dict[str, cc.Upload] | None, str]] = [
        ({"products": [{"externalId": ""}]}, None, "EXTERNAL_ID_REQUIRED"),
        (
            {"products": [{"externalId": "a", "images": [{"source": {}}]}]},
            None,
            "INVALID_IMAGE_INPUT",
        ),
        (
            {"products": [{"externalId": "a", "images": [{"source": {"fileKey": "f"}}]}]},
            None,
            "MULTIPART_FILE_NOT_FOUND",
        ),
        (
            {"products": [{"externalId": "a", "images": [{"source": {"fileKey": "f"}}]}]},
            {"f": cc.Upload(b"no image here")},
            "INVALID_IMAGE",
        ),
    ]
    for payload, files, code in cases:
        # No person at all: the item's own problem still comes first.
        with pytest.raises(cc.CatalogError) as caught:
            tryon.start("acme", payload, files)
        assert caught.value.code == code, (payload, caught.value.code)


def test_t9_product_images_required_comes_before_every_person_problem(tryon: TryOn) -> None:
    """An item left without images is known only with the stored state, so it is checked in the
    write; every person problem, found before, is raised there after it (T9)."""
    no_images = {"externalId": "a", "images": []}
    for person in (None, {"image": {"source": {"id": "img_unknown"}}}, {"image": {"source": {}}}):
        payload: dict[str, Any] = {"products": [no_images]}
        if person is not None:
            payload["person"] = person
        with pytest.raises(cc.ProductImagesRequired):
            tryon.start("acme", payload)


def test_t9_person_checks_then_credits_then_product_not_found(
    catalog: cc.Catalog, tryon: TryOn
) -> None:
    unknown = {"products": [{"externalId": "nowhere"}]}
    with pytest.raises(cc.CatalogError) as first:
        tryon.start("acme", unknown)
    assert first.value.code == "CUSTOMER_IMAGE_REQUIRED"
    with pytest.raises(cc.CatalogError) as second:
        tryon.start("acme", {**unknown, "person": {"image": {"source": {"id": "img_nope"}}}})
    assert second.value.code == "VALIDATION_FAILED"
    tryon.add_credits("acme", -10)
    with pytest.raises(cc.CatalogError) as third:
        tryon.start("acme", body(item("nowhere", reference=True)))
    assert (third.value.code, third.value.status) == ("INSUFFICIENT_CREDITS", 402)
    tryon.add_credits("acme", 1)
    with pytest.raises(cc.ProductNotFound):
        tryon.start("acme", body(item("nowhere", reference=True)))
    assert tryon.credits("acme") == 1


def test_t9_a_refused_try_on_changes_nothing(
    catalog: cc.Catalog, tryon: TryOn, clock: FakeClock
) -> None:
    catalog.upsert("acme", item("sku-1"))
    tryon.add_credits("acme", -10)
    before = state(catalog, tryon)
    refused = [
        (body(item("sku-1", title="changed")), None),  # 402 after the product was applied
        (body(item("sku-1", reference=True), id="img_nope"), None),
        (body(item("sku-2"), fileKey="me"), {"me": cc.Upload(PNG)}),
    ]
    for payload, files in refused:
        with pytest.raises(cc.CatalogError):
            tryon.start("acme", payload, files)
    assert state(catalog, tryon) == before
    assert catalog.get("acme", "sku-1").title is None
    with pytest.raises(cc.ProductNotFound):
        catalog.get("acme", "sku-2")


def test_t10_an_accepted_try_on_answers_a_pending_generation(tryon: TryOn) -> None:
    result = tryon.start("acme", body())
    assert re.fullmatch(r"gen_[a-z0-9]{24}", result.generation.generation_id)
    assert result.generation.status == "PENDING"
    from catalog_core.wire.tryon import start_to_wire

    assert start_to_wire(result.generation) == {
        "generationId": result.generation.generation_id,
        "status": "PENDING",
        "productExternalId": "sku-1",
    }
    ids = {tryon.start("acme", body()).generation.generation_id for _ in range(5)}
    assert len(ids) == 5


def test_t10_the_product_write_the_credit_and_the_generation_are_one_write(
    catalog: cc.Catalog, tryon: TryOn
) -> None:
    result = tryon.start("acme", body(item("sku-1", title="One")))
    assert catalog.get("acme", "sku-1").title == "One"
    assert tryon.credits("acme") == 9
    assert (
        tryon.get_generation("acme", result.generation.generation_id).product_external_id == "sku-1"
    )


def test_t10_the_typed_start_answers_as_the_json_one(catalog: cc.Catalog, tryon: TryOn) -> None:
    command = StartCommand(
        product=cc.UseCommand(
            external_id="sku-t", title="Typed", images=(cc.ImageInput(url=f"{CDN}/t.jpg"),)
        ),
        person=PersonSource(url=f"{CDN}/me.jpg"),
        customer_id="u",
        keep_for_days=3,
    )
    typed = tryon.apply_start("acme", command)
    assert catalog.get("acme", "sku-t").title == "Typed"
    assert typed.generation.status == "PENDING"
    with pytest.raises(cc.InvalidImageInput):
        tryon.apply_start("acme", StartCommand(product=command.product, person=PersonSource()))
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.apply_start(
            "acme", StartCommand(product=command.product, person=None, keep_for_days=4)
        )
    assert [d.path for d in caught.value.details] == ["output.keepForDays"]
    with pytest.raises(cc.CatalogError) as missing:
        tryon.apply_start("acme", StartCommand(product=command.product, person=None))
    assert missing.value.code == "CUSTOMER_IMAGE_REQUIRED"


def test_t6_unknown_keys_warn_and_null_optional_fields_are_absent(tryon: TryOn) -> None:
    payload = body(url=f"{CDN}/me.jpg")
    payload["person"]["pose"] = "front"
    payload["person"]["image"]["crop"] = True
    payload["person"]["image"]["source"]["size"] = 3
    payload.update({"externalUserId": None, "output": {"watermark": None, "style": 1}, "x": 1})
    result = tryon.start("acme", payload)
    assert sorted((w.code, w.path) for w in result.warnings) == [
        ("UNKNOWN_FIELD", "output.style"),
        ("UNKNOWN_FIELD", "person.image.crop"),
        ("UNKNOWN_FIELD", "person.image.source.size"),
        ("UNKNOWN_FIELD", "person.pose"),
        ("UNKNOWN_FIELD", "x"),
    ]
    generation = tryon.repository.get_generation("acme", result.generation.generation_id)
    assert generation is not None
    assert (generation.customer_id, generation.watermark) == (None, True)
    old = tryon.start(
        "acme",
        {
            "products": [item()],
            "customer": {"url": f"{CDN}/me.jpg", "k": 1},
            "customerId": None,
            "retentionDays": None,
        },
    )
    assert [(w.code, w.path) for w in old.warnings] == [
        ("DEPRECATED_FIELD", "customer"),
        ("UNKNOWN_FIELD", "customer.k"),
    ]


@pytest.mark.parametrize("image_id", ["img_\x00", "img_\ud800", "img_" + "a" * 300, "IMG_A", 7])
def test_t7_an_id_no_image_can_have_is_unknown_without_reaching_storage(
    tryon: TryOn, image_id: Any
) -> None:
    """Text no storage can hold (NUL, lone surrogates) or of any length is simply unknown."""
    with pytest.raises(cc.CatalogError) as caught:
        tryon.start("acme", body(id=image_id))
    assert caught.value.code == "VALIDATION_FAILED"
    assert [d.path for d in caught.value.details] == ["person.image.source.id"]
    assert tryon.credits("acme") == 10


def test_t18_a_try_on_for_another_customer_than_its_photos_is_refused(tryon: TryOn) -> None:
    """A generation has one customer id; erasing either customer must reach the photo in it."""
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG), "externalUserId": "x"}).image
    payload = body(item("m", title="mock"), id=image.image_id)
    payload["externalUserId"] = "y"
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start("acme", payload)
    assert [d.path for d in caught.value.details] == ["externalUserId"]
    payload["externalUserId"] = "x"
    tryon.start("acme", payload)


def test_t6_person_beside_customer_is_one_of_the_bodys_field_problems(tryon: TryOn) -> None:
    payload = body()
    payload["customer"] = {"url": f"{CDN}/me.jpg"}
    payload["output"] = {"keepForDays": 5}
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start("acme", payload)
    assert [d.path for d in caught.value.details] == ["customer", "output.keepForDays"]
