"""Erasing a customer's data (T18, T19)."""

from __future__ import annotations

import pytest

import catalog_core as cc
from catalog_core.tryon import TryOn
from tests.helpers import JPEG, PNG, FakeClock
from tests.tryon.conftest import body, item


def test_t18_erasing_a_customer_removes_its_images_and_generation_images(
    tryon: TryOn, clock: FakeClock
) -> None:
    mine = tryon.upload_form("acme", {"file": cc.Upload(PNG), "externalUserId": "u-1"}).image
    other = tryon.upload_form("acme", {"file": cc.Upload(JPEG), "externalUserId": "u-2"}).image
    payload = body(item("m", title="mock"), id=mine.image_id)
    payload["externalUserId"] = "u-1"
    started = tryon.start("acme", payload).generation
    view = tryon.get_generation("acme", started.generation_id)
    result_ref = tryon.result_ref("acme", view)
    assert tryon.open_media(result_ref) is not None

    assert tryon.erase_customer("acme", "u-1") == 2
    with pytest.raises(cc.ValidationFailed):
        tryon.get_person_image("acme", mine.image_id)
    assert tryon.open_media(tryon.image_ref(mine)) is None
    assert tryon.open_media(result_ref) is None
    after = tryon.get_generation("acme", started.generation_id)
    assert (after.status, after.result) == ("COMPLETED", None)  # it stays, without its result
    stored = tryon.repository.get_generation("acme", started.generation_id)
    assert stored is not None
    assert (stored.customer_id, stored.person.sha256) == (None, None)
    # Another customer's image is untouched; the blob of the erased one is reclaimed.
    assert tryon.get_person_image("acme", other.image_id) == other
    tryon.purge_expired()
    assert tryon.repository.get_blob("acme", mine.sha256) is None
    assert tryon.repository.get_blob("acme", other.sha256) is not None


def test_t18_erasing_is_idempotent_and_matches_nothing_quietly(tryon: TryOn) -> None:
    tryon.upload_form("acme", {"file": cc.Upload(PNG), "externalUserId": "u-1"})
    assert tryon.erase_customer("acme", "u-1") == 1
    assert tryon.erase_customer("acme", "u-1") == 0
    assert tryon.erase_customer("acme", "nobody") == 0


def test_t18_a_blob_another_record_names_survives_the_erasure(
    catalog: cc.Catalog, tryon: TryOn
) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG), "externalUserId": "u"}).image
    catalog.upsert(
        "acme", {"externalId": "p", "images": [{"source": {"fileKey": "f"}}]}, {"f": cc.Upload(PNG)}
    )
    tryon.erase_customer("acme", "u")
    tryon.purge_expired()
    assert tryon.repository.get_blob("acme", image.sha256) is not None  # the product's image


@pytest.mark.parametrize("customer_id", ["", "a\x00b", "x" * 257])
def test_t18_a_malformed_customer_id_is_validation_failed(tryon: TryOn, customer_id: str) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        tryon.erase_customer("acme", customer_id)
    assert [d.path for d in caught.value.details] == ["customerId"]


def test_t19_erasing_touches_only_the_callers_account(tryon: TryOn) -> None:
    theirs = tryon.upload_form("globex", {"file": cc.Upload(PNG), "externalUserId": "u-1"}).image
    payload = body(item("m", title="mock"), id=theirs.image_id)
    payload["externalUserId"] = "u-1"
    generation = tryon.start("globex", payload).generation
    assert tryon.erase_customer("acme", "u-1") == 0
    assert tryon.get_person_image("globex", theirs.image_id) == theirs
    view = tryon.get_generation("globex", generation.generation_id)
    assert view.result is not None


def test_t18_a_generation_made_from_a_tagged_image_is_erased_with_its_customer(
    tryon: TryOn,
) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG), "externalUserId": "u-1"}).image
    started = tryon.start("acme", body(item("m", title="mock"), id=image.image_id)).generation
    assert tryon.erase_customer("acme", "u-1") == 2
    assert tryon.get_generation("acme", started.generation_id).result is None
