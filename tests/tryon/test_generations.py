"""Generations: their statuses as a function of time, snapshots, results and engines (T12-T15)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import attrs
import pytest

import catalog_core as cc
from catalog_core.tryon import Job, LocalEngine, Schedule, TryOn
from catalog_core.wire.tryon import generation_to_wire, sync_to_wire
from tests.helpers import PNG, FakeClock
from tests.tryon.conftest import CDN, body, item

_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def wire(tryon: TryOn, generation_id: str) -> dict[str, object]:
    view = tryon.get_generation("acme", generation_id)
    return generation_to_wire(view, lambda v: "https://stand.in/" + tryon.result_ref("acme", v))


def test_t12_a_generation_answers_exactly_its_keys_at_each_status(
    tryon: TryOn, clock: FakeClock
) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG)}).image
    started = tryon.start("acme", body(id=image.image_id)).generation
    created = clock()
    pending = wire(tryon, started.generation_id)
    assert set(pending) == {"generationId", "status", "createdAt", "updatedAt"}
    assert pending["status"] == "PENDING"
    assert pending["createdAt"] == pending["updatedAt"]
    assert _STAMP.fullmatch(str(pending["createdAt"]))
    clock.advance(milliseconds=500)  # a quarter of the 2 s: processing starts
    processing = wire(tryon, started.generation_id)
    assert (processing["status"], set(processing)) == ("PROCESSING", set(pending))
    assert processing["updatedAt"] == "2026-05-13T10:00:00.500Z"
    clock.advance(milliseconds=1499)
    assert wire(tryon, started.generation_id)["status"] == "PROCESSING"
    clock.advance(milliseconds=1)
    done = wire(tryon, started.generation_id)
    assert done["status"] == "COMPLETED"
    assert set(done) == {"generationId", "status", "resultImageUrl", "createdAt", "updatedAt"}
    assert done["updatedAt"] == "2026-05-13T10:00:02.000Z"
    assert created == clock() - timedelta(seconds=2)


def test_t12_a_failed_generation_has_error_code_and_message_and_no_result(
    tryon: TryOn, clock: FakeClock
) -> None:
    bad = item("sku-x", images=[{"source": {"url": "https://images.invalid/x.jpg"}}])
    started = tryon.start("acme", body(bad)).generation
    clock.advance(seconds=2)
    failed = wire(tryon, started.generation_id)
    assert failed["status"] == "FAILED"
    assert failed["errorCode"] == "PRODUCT_IMAGE_FETCH_FAILED"
    assert "images.invalid" in str(failed["errorMessage"])
    assert "resultImageUrl" not in failed


def test_t11_the_sync_answer_is_the_generation_and_product_when_finished(
    tryon: TryOn, clock: FakeClock
) -> None:
    started = tryon.start("acme", body(item("sku-m", title="mock")))
    view = tryon.get_generation("acme", started.generation.generation_id)
    url = lambda v: "u"  # noqa: E731
    finished = sync_to_wire(view, url, finished=True)
    assert finished["status"] == "COMPLETED"
    assert finished["productExternalId"] == "sku-m"
    assert finished["resultImageUrl"] == "u"
    running = sync_to_wire(view, url, finished=False)
    assert set(running) == {"generationId", "status", "productExternalId"}


def test_t13_an_unknown_id_or_another_accounts_generation_is_not_found(tryon: TryOn) -> None:
    started = tryon.start("acme", body()).generation
    for account, generation_id in [
        ("globex", started.generation_id),
        ("acme", "gen_" + "0" * 24),
        ("acme", ""),
        ("acme", "x" * 10_000),
    ]:
        with pytest.raises(cc.CatalogError) as caught:
            tryon.get_generation(account, generation_id)
        assert (caught.value.code, caught.value.status) == ("GENERATION_NOT_FOUND", 404)


def test_t14_a_mock_title_completes_at_once_with_the_person_image(
    tryon: TryOn, clock: FakeClock
) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG)}).image
    started = tryon.start("acme", body(item("sku-m", title="mock"), id=image.image_id))
    view = tryon.get_generation("acme", started.generation.generation_id)
    assert view.status == "COMPLETED"
    assert view.updated_at == view.created_at
    media = tryon.open_media(tryon.result_ref("acme", view))
    assert media is not None
    assert (media.data, media.mime_type) == (PNG, "image/png")
    # Only the exact title: "Mock" takes the generation time like any other.
    other = tryon.start("acme", body(item("sku-n", title="Mock"))).generation
    assert tryon.get_generation("acme", other.generation_id).status == "PENDING"


def test_t14_generation_seconds_sets_the_time_a_generation_takes(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    slow = TryOn(catalog, engine=LocalEngine(generation_seconds=10))
    started = slow.start("acme", body()).generation
    clock.advance(seconds=9.999)
    assert slow.get_generation("acme", started.generation_id).status == "PROCESSING"
    clock.advance(milliseconds=1)
    assert slow.get_generation("acme", started.generation_id).status == "COMPLETED"
    instant = TryOn(catalog, engine=LocalEngine(generation_seconds=0))
    assert (
        instant.get_generation(
            "acme", instant.start("acme", body()).generation.generation_id
        ).status
        == "COMPLETED"
    )


def test_t14_the_status_is_exact_after_a_restart(catalog: cc.Catalog, clock: FakeClock) -> None:
    started = TryOn(catalog).start("acme", body()).generation
    clock.advance(seconds=3)
    assert TryOn(catalog).get_generation("acme", started.generation_id).status == "COMPLETED"


@pytest.mark.parametrize("seconds", [-1, 86_401, float("nan"), True, "2"])
def test_t14_the_local_engine_refuses_a_bad_generation_time(seconds: object) -> None:
    with pytest.raises(ValueError, match="generation_seconds"):
        LocalEngine(generation_seconds=seconds)  # type: ignore[arg-type]


@attrs.define
class ReportingEngine:
    """An engine that cannot know the end: it reports through finish_generation."""

    started: list[Job] = attrs.Factory(list)

    def schedule(self, job: Job) -> Schedule:
        return Schedule(processing_after=timedelta(seconds=1))

    def start(self, job: Job) -> None:
        self.started.append(job)


def test_t14_an_engine_may_report_the_end_later(catalog: cc.Catalog, clock: FakeClock) -> None:
    engine = ReportingEngine()
    tryon = TryOn(catalog, engine=engine)
    first = tryon.start("acme", body(item("a", title="Shirt"))).generation
    second = tryon.start("acme", body(item("b"))).generation
    assert [job.product.title for job in engine.started] == ["Shirt", None]
    clock.advance(days=1)
    assert tryon.get_generation("acme", first.generation_id).status == "PROCESSING"
    done = tryon.finish_generation("acme", first.generation_id, result=PNG)
    assert (done.status, done.updated_at) == ("COMPLETED", clock())
    media = tryon.open_media(tryon.result_ref("acme", done))
    assert media is not None
    assert media.data == PNG
    assert tryon.credits("acme") == 8
    failed = tryon.finish_generation("acme", second.generation_id, error_code="MODEL_ERROR")
    assert (failed.status, failed.error_code, failed.error_message) == (
        "FAILED",
        "MODEL_ERROR",
        "MODEL_ERROR",
    )
    assert tryon.credits("acme") == 9  # T16: its credit came back
    with pytest.raises(cc.ValidationFailed):
        tryon.finish_generation("acme", second.generation_id, error_code="AGAIN")
    with pytest.raises(cc.ValidationFailed):
        tryon.finish_generation("acme", first.generation_id)
    with pytest.raises(cc.CatalogError) as caught:
        tryon.finish_generation("globex", first.generation_id, result=PNG)
    assert caught.value.code == "GENERATION_NOT_FOUND"


def test_t15_a_generation_keeps_its_snapshot_when_the_product_changes(
    catalog: cc.Catalog, tryon: TryOn, clock: FakeClock
) -> None:
    started = tryon.start("acme", body(item("sku-1", title="Before", description="d")))
    catalog.upsert(
        "acme", item("sku-1", title="After", images=[{"source": {"url": f"{CDN}/2.jpg"}}])
    )
    catalog.delete("acme", "sku-1")
    generation = tryon.repository.get_generation("acme", started.generation.generation_id)
    assert generation is not None
    assert (generation.product.title, generation.product.description) == ("Before", "d")
    assert [i.source_url for i in generation.product.images] == [f"{CDN}/sku-1.jpg"]
    clock.advance(seconds=2)
    assert tryon.get_generation("acme", started.generation.generation_id).status == "COMPLETED"


def test_t15_a_result_url_serves_until_the_generation_keep_for_days_ends(
    tryon: TryOn, clock: FakeClock
) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG), "keepForDays": "7"}).image
    payload = body(item("m", title="mock"), id=image.image_id)
    payload["output"] = {"keepForDays": 1}
    view = tryon.get_generation("acme", tryon.start("acme", payload).generation.generation_id)
    ref = tryon.result_ref("acme", view)
    assert tryon.open_media(ref) is not None
    assert ref.split(".")[-1] not in view.generation_id
    clock.advance(days=1, milliseconds=-1)
    assert tryon.open_media(ref) is not None
    clock.advance(milliseconds=1)
    assert tryon.open_media(ref) is None
    with pytest.raises(cc.CatalogError):
        tryon.get_generation("acme", view.generation_id)
    # The uploaded image keeps its own, longer, retention.
    assert tryon.open_media(tryon.image_ref(image)) is not None


@pytest.mark.parametrize("generation_id", ["gen_\x00", "gen_\ud800", "g" * 100_000, "", None])
def test_t13_an_id_no_generation_can_have_is_not_found_without_reaching_storage(
    tryon: TryOn, generation_id: Any
) -> None:
    with pytest.raises(cc.CatalogError) as caught:
        tryon.get_generation("acme", generation_id)
    assert caught.value.code == "GENERATION_NOT_FOUND"
    assert "\x00" not in caught.value.message


def test_t14_t18_a_result_reported_after_the_customer_was_erased_is_not_kept(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    tryon = TryOn(catalog, engine=ReportingEngine())
    payload = body(item("a"))
    payload["externalUserId"] = "gone"
    started = tryon.start("acme", payload).generation
    assert tryon.erase_customer("acme", "gone") == 1
    clock.advance(seconds=2)
    done = tryon.finish_generation("acme", started.generation_id, result=PNG)
    assert (done.status, done.result) == ("COMPLETED", None)
    generation = tryon.repository.get_generation("acme", started.generation_id)
    assert generation is not None
    assert generation.blob_refs == frozenset()
