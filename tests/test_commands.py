"""The typed core: Catalog.apply_upsert and apply_use take commands, checked as JSON would be.

Each test names the rule it pins. The differential test builds commands of every kind of value,
good and bad, and checks that a typed command and the JSON body a client would send for it
(written here by hand, independently of the library's own conversion) get the same answer.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core import UNSET, ImageInput, UpsertCommand, UseCommand
from tests.helpers import JPEG, FakeClock

URL = "https://cdn.example/a.jpg"


def fresh() -> cc.Catalog:
    return cc.Catalog(cc.MemoryRepository(), clock=FakeClock())


def outcome(call: Any) -> Any:
    try:
        result = call()
    except cc.CatalogError as exc:
        return ("error", exc.code, exc.message, [(d.path, d.message) for d in exc.details])
    return ("ok", cc.to_wire(result.product), result.created)


def json_body(command: UpsertCommand | UseCommand) -> dict[str, Any]:
    """The canonical JSON a client sends for ``command`` (the test's own reading of R4-R16)."""
    body: dict[str, Any] = {}
    if command.external_id is not None:
        body["externalId"] = command.external_id
    for name, key in [
        ("title", "title"),
        ("description", "description"),
        ("metadata", "metadata"),
        ("valid_for_days", "validForDays"),
    ]:
        if getattr(command, name) is not UNSET:
            body[key] = getattr(command, name)
    if command.images is not UNSET:
        body["images"] = []
        for image in command.images:
            source = {}
            if image.url is not None:
                source["url"] = image.url
            if image.file_key is not None:
                source["fileKey"] = image.file_key
            entry: dict[str, Any] = {"source": source}
            if image.classifications is not None:
                entry["classifications"] = image.classifications
            body["images"].append(entry)
    return body


texts = st.one_of(
    st.just(UNSET), st.none(), st.text(max_size=5), st.text(min_size=199, max_size=202)
)
images = st.builds(
    ImageInput,
    url=st.one_of(st.none(), st.just(URL), st.sampled_from(["ftp://x", "https://", "a b"])),
    file_key=st.one_of(st.none(), st.just("f"), st.just("")),
    classifications=st.one_of(st.none(), st.just({"view": "front"}), st.just({})),
)
commands = st.builds(
    UpsertCommand,
    external_id=st.one_of(st.none(), st.sampled_from(["p1", "", "_anon_x", "a\x00b", "p" * 300])),
    title=texts,
    description=texts,
    metadata=st.one_of(st.just(UNSET), st.none(), st.just({"k": [1, "v"]}), st.just({"k": {1}})),
    valid_for_days=st.one_of(st.just(UNSET), st.none(), st.integers(-1, 400)),
    images=st.one_of(st.just(UNSET), st.lists(images, max_size=3).map(tuple)),
)


@given(command=commands)
def test_r30_a_typed_upsert_is_answered_as_the_same_upsert_sent_as_json(
    command: UpsertCommand,
) -> None:
    files = {"f": cc.Upload(JPEG)}
    typed = outcome(lambda: fresh().apply_upsert("acme", command, files=files))
    sent = outcome(lambda: fresh().upsert("acme", json_body(command), files))
    assert typed == sent


uses = commands.map(lambda c: UseCommand(**attrs.asdict(c, recurse=False)))


@given(command=uses)
def test_r22_a_typed_use_is_answered_as_the_same_item_sent_as_json(command: UseCommand) -> None:
    files = {"f": cc.Upload(JPEG)}
    typed = outcome(lambda: fresh().apply_use("acme", command, files=files))
    sent = outcome(lambda: fresh().use("acme", json_body(command), files))
    if typed[0] == sent[0] == "ok" and command.external_id is None:
        # One-shot ids are drawn at random (R22c): both are generated, the rest is equal.
        assert typed[1].pop("externalId").startswith("_anon_")
        assert sent[1].pop("externalId").startswith("_anon_")
    assert typed == sent


def test_r6_a_typed_update_keeps_what_it_omits_and_r8_replaces_the_images_whole() -> None:
    catalog = fresh()
    first = catalog.apply_upsert(
        "acme",
        UpsertCommand(
            external_id="p1",
            title="Shirt",
            metadata={"size": "M"},
            images=(ImageInput(url=URL), ImageInput(url="https://cdn.example/b.jpg")),
        ),
    )
    assert first.created
    assert first.product.version == 1
    second = catalog.apply_upsert(
        "acme",
        UpsertCommand(external_id="p1", description="Blue", images=(ImageInput(url=URL),)),
        if_version=1,
    )
    product = second.product
    assert not second.created
    assert (product.title, product.description, product.metadata) == (
        "Shirt",
        "Blue",
        {"size": "M"},
    )
    assert [i.source_url for i in product.images] == [URL]
    assert product.version == 2


def test_r14_a_typed_upsert_stores_the_upload_its_image_names() -> None:
    catalog = fresh()
    result = catalog.apply_upsert(
        "acme",
        UpsertCommand(external_id="p1", images=(ImageInput(file_key="front"),)),
        files={"front": JPEG, "spare": JPEG},
    )
    source = result.product.images[0].source_url
    assert source.startswith("upload://")
    assert catalog.repository.get_blob("acme", source.removeprefix("upload://")) is not None
    assert [(w.code, w.path) for w in result.warnings] == [("UNUSED_FILE", "spare")]


def test_the_catalog_keeps_no_mutable_object_of_a_typed_command() -> None:
    catalog = fresh()
    metadata = {"tags": ["a"]}
    classifications = {"view": "front"}
    catalog.apply_upsert(
        "acme",
        UpsertCommand(
            external_id="p1",
            metadata=metadata,
            images=(ImageInput(url=URL, classifications=classifications),),
        ),
    )
    metadata["tags"].append("b")
    classifications["view"] = "back"
    product = catalog.get("acme", "p1")
    assert product.metadata == {"tags": ["a"]}
    assert product.images[0].classifications == {"view": "front"}


@pytest.mark.parametrize(
    ("images", "path"),
    [
        ([{"source": {"url": URL}}], "images.0"),
        ((ImageInput(url=URL), URL), "images.1"),
        ("https://cdn.example/a.jpg", "images"),
        ({"url": URL}, "images"),
    ],
)
def test_r30_a_typed_command_holding_what_is_not_an_image_input_is_refused(
    images: Any, path: str
) -> None:
    catalog = fresh()
    command = UpsertCommand(external_id="p1", title=5, images=images)  # type: ignore[arg-type]
    with pytest.raises(cc.ValidationFailed) as refused:
        catalog.apply_upsert("acme", command)
    assert [d.path for d in refused.value.details] == sorted([path, "title"])
    assert catalog.list("acme").items == ()


class Unreadable(Mapping[str, Any]):
    """A caller's own mapping whose reading fails."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("unreadable")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("unreadable")

    def __len__(self) -> int:
        return 1


def test_r9_r16_a_mapping_that_cannot_be_read_is_refused_at_its_field() -> None:
    catalog = fresh()
    command = UpsertCommand(
        external_id="p1",
        metadata=Unreadable(),
        images=(ImageInput(url=URL, classifications=Unreadable()),),
    )
    with pytest.raises(cc.ValidationFailed) as refused:
        catalog.apply_upsert("acme", command)
    assert [d.path for d in refused.value.details] == ["images.0.classifications", "metadata"]
    assert catalog.list("acme").items == ()


def test_r30_what_is_not_a_command_is_refused_at_command() -> None:
    catalog = fresh()
    with pytest.raises(cc.ValidationFailed) as refused:
        catalog.apply_upsert("acme", {"externalId": "p1"})  # type: ignore[arg-type]
    assert [(d.path, d.message) for d in refused.value.details] == [
        ("command", "must be an UpsertCommand")
    ]
    with pytest.raises(cc.ValidationFailed):
        catalog.apply_use("acme", UpsertCommand(external_id="p1"))  # type: ignore[arg-type]


def test_r2_an_upsert_command_without_an_id_is_refused_first() -> None:
    with pytest.raises(cc.ExternalIdRequired):
        fresh().apply_upsert("acme", UpsertCommand(external_id=None, title=5))  # type: ignore[arg-type]


def test_r22_typed_uses_reference_create_inline_and_create_one_shot() -> None:
    catalog = fresh()
    with pytest.raises(cc.ProductNotFound):
        catalog.apply_use("acme", UseCommand(external_id="p1"))
    inline = catalog.apply_use("acme", UseCommand(external_id="p1", images=(ImageInput(url=URL),)))
    assert inline.created
    assert inline.product.valid_for_days == 15
    reference = catalog.apply_use("acme", UseCommand(external_id="p1"))
    assert reference.product.version == 2
    assert reference.product.last_used_at is not None
    one_shot = catalog.apply_use("acme", UseCommand(images=(ImageInput(url=URL),)))
    assert one_shot.product.external_id.startswith("_anon_")
    assert one_shot.product.valid_for_days == 7  # R22c
    with pytest.raises(cc.ValidationFailed) as refused:
        catalog.apply_use("acme", UseCommand(valid_for_days=None, images=(ImageInput(url=URL),)))
    assert [d.path for d in refused.value.details] == ["validForDays"]


def test_r33_the_files_of_a_typed_command_count_toward_the_request_limit() -> None:
    catalog = cc.Catalog(
        cc.MemoryRepository(), limits=cc.Limits(max_file_bytes=100, max_request_bytes=150)
    )
    command = UpsertCommand(external_id="p1", images=(ImageInput(file_key="a"),))
    with pytest.raises(cc.PayloadTooLarge):
        catalog.apply_upsert("acme", command, files={"a": JPEG * 2, "b": JPEG * 2})


SNIPPET = """
from catalog_core import Catalog, ImageInput, MemoryRepository, UpsertCommand

catalog = Catalog(MemoryRepository())
catalog.apply_upsert("acme", UpsertCommand(external_id="p1", images=(ImageInput(url="u"),)))
catalog.apply_upsert("acme", UpsertCommand(external_id="p1", title=5))
"""


def test_an_embedders_mypy_checks_the_commands_it_passes(tmp_path: Path) -> None:
    """The point of the typed core: a wrong field type is found before the code runs."""
    snippet = tmp_path / "embedder.py"
    snippet.write_text(SNIPPET)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 1, checked.stdout
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, errors
    assert "embedder.py:6:" in errors[0], errors
    assert '"title"' in errors[0], errors
