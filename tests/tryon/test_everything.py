"""Across the flow: error codes, expiry and purge, atomicity, backends (T20, T22, T23)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import catalog_core as cc
from catalog_core.errors import error_for_code, tryon_error_classes
from catalog_core.tryon import LocalEngine, TryOn
from catalog_core.wire.errors import STATUS_BY_CODE
from catalog_core.wire.tryon import generation_to_wire
from tests.conftest import dispose_repository, make_repository
from tests.helpers import JPEG, PNG, FakeClock
from tests.tryon.conftest import body, item


def test_t20_the_new_codes_have_their_statuses_and_the_r29_shape() -> None:
    expected = {
        "FILE_REQUIRED": 400,
        "CUSTOMER_IMAGE_REQUIRED": 400,
        "CUSTOMER_IMAGE_FETCH_FAILED": 400,
        "INSUFFICIENT_CREDITS": 402,
        "GENERATION_NOT_FOUND": 404,
    }
    assert {cls.code: cls.status for cls in tryon_error_classes()} == expected
    for code, status in expected.items():
        assert STATUS_BY_CODE[code] == status
        cls = error_for_code(code)
        assert issubclass(cls, cc.CatalogError)
        wire = cls("m", [cc.Detail("p", "q")]).to_wire()
        assert wire == {
            "code": code,
            "message": "m",
            "status": status,
            "details": [{"path": "p", "message": "q"}],
        }


def test_t22_expired_images_and_generations_are_invisible_at_once_and_purged(
    tryon: TryOn, clock: FakeClock
) -> None:
    short = tryon.upload_form("acme", {"file": cc.Upload(PNG), "keepForDays": "1"}).image
    long = tryon.upload_form("acme", {"file": cc.Upload(JPEG), "keepForDays": "7"}).image
    payload = body(item("m", title="mock"), id=long.image_id)
    payload["output"] = {"keepForDays": 3}
    generation = tryon.start("acme", payload).generation
    clock.advance(days=1)
    assert tryon.repository.get_person_image("acme", short.image_id) is not None  # stored...
    with pytest.raises(cc.ValidationFailed):
        tryon.get_person_image("acme", short.image_id)  # ...but invisible at once
    counts = tryon.purge_expired()
    assert (counts.person_images, counts.generations) == (1, 0)
    assert tryon.repository.get_person_image("acme", short.image_id) is None
    assert tryon.repository.get_blob("acme", short.sha256) is None
    clock.advance(days=2)
    with pytest.raises(cc.CatalogError):
        tryon.get_generation("acme", generation.generation_id)
    counts = tryon.purge_expired()
    assert (counts.person_images, counts.generations) == (0, 1)
    assert tryon.repository.get_blob("acme", long.sha256) is not None  # its image still lives
    clock.advance(days=4)
    assert tryon.purge_expired().person_images == 1
    assert tryon.repository.get_blob("acme", long.sha256) is None
    assert tryon.purge_expired() == cc.repository.base.PurgeCounts()


def test_t22_the_catalog_purge_reclaims_the_try_on_state_too(
    catalog: cc.Catalog, tryon: TryOn, clock: FakeClock
) -> None:
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG), "keepForDays": "1"}).image
    clock.advance(days=1)
    catalog.purge_expired()
    assert tryon.repository.get_person_image("acme", image.image_id) is None


def test_t23_a_write_that_fails_in_storage_leaves_nothing(tryon: TryOn) -> None:
    """A try-on whose write names a blob that is neither stored nor given is refused whole."""
    from catalog_core.repository.base import TryOnKeys, TryOnWrite
    from catalog_core.tryon.model import Credits, PersonImage

    before = tryon.credits("acme")
    image = tryon.upload_form("acme", {"file": cc.Upload(PNG)}).image
    ghost = PersonImage(
        account="acme",
        image_id="img_ghost",
        sha256="0" * 64,
        mime_type="image/png",
        token="t",
        created_at=image.created_at,
        expires_at=image.expires_at,
    )

    def change(state: Any) -> TryOnWrite:
        return TryOnWrite(person_images=(ghost,), credits=Credits("acme", 3))

    with pytest.raises(ValueError, match="blob"):
        tryon.repository.write_tryon(
            "acme", TryOnKeys(person_images=("img_ghost",), credits=True), change
        )
    assert tryon.repository.get_person_image("acme", "img_ghost") is None
    assert tryon.credits("acme") == before

    def stray(state: Any) -> TryOnWrite:
        return TryOnWrite(person_images=(ghost,))

    with pytest.raises(ValueError, match="did not read"):
        tryon.repository.write_tryon("acme", TryOnKeys(), stray)


def scenario(tryon: TryOn, clock: FakeClock) -> list[Any]:
    """A fixed walk through the flow; every answer, with random ids replaced by their order."""
    answers: list[Any] = []

    def call(action: Any) -> None:
        try:
            answers.append(action())
        except cc.CatalogError as exc:
            answers.append(exc.to_wire())

    def upload(fields: dict[str, Any]) -> Any:
        result = tryon.upload_form("acme", fields)
        images.append(result.image.image_id)
        return [w.code for w in result.warnings]

    images: list[str] = []
    gens: list[str] = []

    def start(payload: dict[str, Any], files: Any = None) -> Any:
        result = tryon.start("acme", payload, files)
        gens.append(result.generation.generation_id)
        return (result.created, result.product.version, [w.code for w in result.warnings])

    def generation(n: int) -> Any:
        view = tryon.get_generation("acme", gens[n])
        return generation_to_wire(view, lambda v: "url")

    call(lambda: upload({"file": cc.Upload(PNG), "externalUserId": "u"}))
    call(lambda: upload({"file": cc.Upload(b"nope")}))
    call(lambda: start(body(item("a", title="mock"), id=images[0])))
    call(lambda: start(body(item("a", reference=True), fileKey="me"), {"me": cc.Upload(JPEG)}))
    call(lambda: start(body(item("b", images=[{"source": {"url": "https://x.invalid/b"}}]))))
    call(lambda: start(body(item("nowhere", reference=True))))
    call(lambda: generation(0))
    call(lambda: generation(1))
    call(lambda: tryon.credits("acme"))
    clock.advance(seconds=2)
    call(lambda: [generation(n) for n in range(3)])
    call(lambda: tryon.credits("acme"))
    call(lambda: tryon.erase_customer("acme", "u"))
    call(lambda: generation(0))
    call(lambda: tryon.add_credits("acme", -7))
    call(lambda: start(body(item("c"))))
    call(lambda: start(body(item("d"))))
    clock.advance(days=7)
    call(lambda: tryon.purge_expired())
    call(lambda: generation(0))
    text = repr(answers)
    for n, image_id in enumerate(images):
        text = text.replace(image_id, f"<image {n}>")
    for n, generation_id in enumerate(gens):
        text = text.replace(generation_id, f"<generation {n}>")
    return [re.sub(r"_anon_[a-z0-9]{24}", "<anon>", text)]


def test_t23_every_backend_gives_the_memory_backends_answers(
    backend: str, tryon: TryOn, clock: FakeClock, tmp_path: Path
) -> None:
    reference_clock = FakeClock()
    reference = make_repository("memory", tmp_path)
    try:
        expected = scenario(
            TryOn(cc.Catalog(reference, clock=reference_clock), engine=LocalEngine(2)),
            reference_clock,
        )
    finally:
        dispose_repository(reference)
    assert scenario(tryon, clock) == expected
    assert "INSUFFICIENT_CREDITS" in expected[0]
    assert "PRODUCT_NOT_FOUND" in expected[0]
