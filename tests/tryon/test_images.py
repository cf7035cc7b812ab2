"""Person images: uploads, their fields, ids, URLs and lifetimes (T1-T4)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

import catalog_core as cc
from catalog_core.tryon import TryOn
from tests.helpers import JPEG, PNG, WEBP, FakeClock


def test_t1_an_upload_stores_the_file_bytes_as_sent_with_their_sniffed_type(tryon: TryOn) -> None:
    result = tryon.upload_form("acme", {"file": cc.Upload(PNG, "image/jpeg")})
    image = result.image
    assert image.mime_type == "image/png"  # recognised by its leading bytes, not the claim
    media = tryon.open_media(tryon.image_ref(image))
    assert media is not None
    assert (media.data, media.mime_type) == (PNG, "image/png")


def test_t1_an_upload_without_a_file_part_is_file_required(tryon: TryOn) -> None:
    with pytest.raises(cc.CatalogError) as caught:
        tryon.upload_form("acme", {"crop": "true"})
    assert (caught.value.code, caught.value.status) == ("FILE_REQUIRED", 400)


@pytest.mark.parametrize("data", [b"", b"GIF89a" + b"\0" * 20, b"hello world, not an image"])
def test_t1_bytes_that_are_no_recognised_image_are_invalid_image(tryon: TryOn, data: bytes) -> None:
    with pytest.raises(cc.InvalidImage):
        tryon.upload_form("acme", {"file": cc.Upload(data)})


def test_t1_a_file_over_the_file_limit_is_file_too_large_and_stores_nothing(
    catalog: cc.Catalog,
) -> None:
    small = cc.Catalog(
        catalog.repository, limits=cc.Limits(max_file_bytes=64, max_request_bytes=128)
    )
    tryon = TryOn(small)
    with pytest.raises(cc.FileTooLarge) as caught:
        tryon.upload_form("acme", {"file": cc.Upload(PNG + b"\0" * 64)})
    assert caught.value.status == 413
    with pytest.raises(cc.PayloadTooLarge):
        tryon.upload_form("acme", {"file": cc.Upload(PNG + b"\0" * 200)})


def test_t1_the_order_is_size_then_file_required_then_fields_then_bytes(tryon: TryOn) -> None:
    with pytest.raises(cc.CatalogError) as missing:
        tryon.upload_form("acme", {"keepForDays": "5"})
    assert missing.value.code == "FILE_REQUIRED"
    with pytest.raises(cc.CatalogError) as fields:
        tryon.upload_form("acme", {"file": cc.Upload(b"not an image"), "keepForDays": "5"})
    assert fields.value.code == "VALIDATION_FAILED"


@pytest.mark.parametrize(
    ("fields", "crop", "days", "customer"),
    [
        ({}, True, 7, None),
        ({"crop": "false"}, False, 7, None),
        ({"crop": False, "keepForDays": 1}, False, 1, None),
        ({"crop": "true", "keepForDays": "3", "externalUserId": "u-1"}, True, 3, "u-1"),
    ],
)
def test_t2_optional_fields_and_their_defaults_are_recorded(
    tryon: TryOn,
    clock: FakeClock,
    fields: dict[str, object],
    crop: bool,
    days: int,
    customer: str | None,
) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(JPEG), **fields}).image
    assert (image.crop, image.customer_id) == (crop, customer)
    assert image.expires_at - image.created_at == timedelta(days=days)


def test_t2_deprecated_names_are_accepted_with_a_warning(tryon: TryOn) -> None:
    result = tryon.upload_form(
        "acme", {"file": cc.Upload(JPEG), "retentionDays": "1", "customerId": "old-user"}
    )
    assert result.image.customer_id == "old-user"
    assert {(w.code, w.path) for w in result.warnings} == {
        ("DEPRECATED_FIELD", "retentionDays"),
        ("DEPRECATED_FIELD", "customerId"),
    }


@pytest.mark.parametrize(
    ("fields", "paths"),
    [
        ({"crop": "yes"}, ["crop"]),
        ({"keepForDays": "2"}, ["keepForDays"]),
        ({"keepForDays": 30}, ["keepForDays"]),
        ({"externalUserId": ""}, ["externalUserId"]),
        ({"externalUserId": "x" * 257}, ["externalUserId"]),
        ({"externalUserId": "a\nb"}, ["externalUserId"]),
        ({"keepForDays": "3", "retentionDays": "3"}, ["retentionDays"]),
        ({"externalUserId": "a", "customerId": "a"}, ["customerId"]),
        ({"crop": "no", "keepForDays": "0"}, ["crop", "keepForDays"]),
    ],
)
def test_t2_invalid_fields_are_validation_failed_with_every_path(
    tryon: TryOn, fields: dict[str, object], paths: list[str]
) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.upload_form("acme", {"file": cc.Upload(JPEG), **fields})
    assert [d.path for d in caught.value.details] == paths


def test_t2_unknown_fields_warn_and_are_ignored(tryon: TryOn) -> None:
    result = tryon.upload_form("acme", {"file": cc.Upload(JPEG), "colour": "red"})
    assert [(w.code, w.path) for w in result.warnings] == [("UNKNOWN_FIELD", "colour")]


def test_t3_image_ids_are_opaque_random_and_tokens_independent_of_them(tryon: TryOn) -> None:
    images = [tryon.upload_form("acme", {"file": cc.Upload(PNG)}).image for _ in range(5)]
    assert all(re.fullmatch(r"img_[a-z0-9]{24}", i.image_id) for i in images)
    assert len({i.image_id for i in images}) == 5
    assert len({i.token for i in images}) == 5
    for image in images:
        assert re.fullmatch(r"[a-z0-9]{32}", image.token)
        assert image.token not in image.image_id
        # The same bytes uploaded again are another image with a URL of its own.
        assert image.sha256 == images[0].sha256


def test_t3_a_url_with_a_wrong_or_missing_token_serves_nothing(tryon: TryOn) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG)}).image
    ref = tryon.image_ref(image)
    assert tryon.open_media(ref) is not None
    record, token, sealed = ref.split(".")
    for bad in (
        f"{record}.wrongtoken.{sealed}",
        f"{record}.{token}",
        f"{record}.{token}.",
        f"{record}.{token}.{sealed}A",
        f"{record}.{token}.{sealed[1:]}",
        "",
        "..",
        "no-dots",
        "%%%.img_x.y",
        f"img_\x00.{token}.{sealed}",
        f"{record}.{token}.{sealed}" + "A" * 5000,
    ):
        assert tryon.open_media(bad) is None


def test_t3_a_url_holds_neither_the_account_nor_anything_it_can_be_read_from(
    tryon: TryOn,
) -> None:
    """On a server without --api-key the account is the API key: a URL must not show it."""
    import base64

    account = "sk_live_" + "k" * 40
    image = tryon.upload_form(account, {"file": cc.Upload(PNG)}).image
    ref = tryon.image_ref(image)
    sealed = base64.urlsafe_b64decode(ref.split(".")[2] + "==")
    assert account not in ref
    assert account.encode() not in sealed
    assert b"kkkk" not in sealed
    assert len(sealed) % 16 == 0
    assert tryon.open_media(ref) is not None


def test_t4_an_image_expires_keep_for_days_after_its_upload(tryon: TryOn, clock: FakeClock) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG), "keepForDays": "1"}).image
    clock.advance(hours=23, minutes=59, seconds=59)
    assert tryon.get_person_image("acme", image.image_id) == image
    assert tryon.open_media(tryon.image_ref(image)) is not None
    clock.advance(seconds=1)
    with pytest.raises(cc.ValidationFailed):
        tryon.get_person_image("acme", image.image_id)
    assert tryon.open_media(tryon.image_ref(image)) is None


def test_t4_another_accounts_image_is_unknown(tryon: TryOn) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(WEBP)}).image
    with pytest.raises(cc.ValidationFailed):
        tryon.get_person_image("globex", image.image_id)
    from catalog_core.tryon.rules import media_key, media_ref

    key = tryon._media_key()
    forged = media_ref(key, "globex", image.image_id, image.token)
    assert tryon.open_media(forged) is None  # the same id and token under another account
    assert (
        tryon.open_media(
            media_ref(media_key(b"another secret"), "acme", image.image_id, image.token)
        )
        is None
    )
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.start(
            "globex",
            {
                "products": [
                    {"title": "mock", "images": [{"source": {"url": "https://a.example/x"}}]}
                ],
                "person": {"image": {"source": {"id": image.image_id}}},
            },
        )
    assert [d.path for d in caught.value.details] == ["person.image.source.id"]


def test_t2_the_typed_upload_checks_what_the_form_checks(tryon: TryOn) -> None:
    image = tryon.upload_image("acme", PNG, crop=False, keep_for_days=3, customer_id="u")
    assert (image.crop, image.customer_id) == (False, "u")
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.upload_image("acme", PNG, keep_for_days=2, customer_id="")  # type: ignore[arg-type]
    assert [d.path for d in caught.value.details] == ["externalUserId", "keepForDays"]
