"""Where the public service is silent: the choices listed at the end of docs/rules.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import catalog_core as cc
from tests.helpers import JPEG

IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}


def paths(error: cc.CatalogError) -> list[str]:
    return [d.path for d in error.details]


def test_r30_a_json_body_that_is_not_an_object_is_reported_at_body(catalog: cc.Catalog) -> None:
    for body in (b"[]", b"null", b'"text"', b"", "{", b'{"a": NaN}', b"[" * 100_000):
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.upsert("acme", body)
        assert paths(caught.value) == ["body"]
    with pytest.raises(cc.ValidationFailed):
        catalog.upsert("acme", 42)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["images", "imageUrls"])
def test_r8_null_image_lists_fail_validation(catalog: cc.Catalog, key: str) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": "p", key: None})
    assert paths(caught.value) == [key]


def test_r12_url_beside_source_is_ambiguous_input(catalog: cc.Catalog) -> None:
    entry = {**IMAGE, "url": "https://cdn.example/b.jpg"}
    with pytest.raises(cc.InvalidImageInput) as caught:
        catalog.upsert("acme", {"externalId": "p", "images": [entry]})
    assert paths(caught.value) == ["images.0.source"]


def test_r12_a_source_that_is_not_an_object_fails_validation(catalog: cc.Catalog) -> None:
    for source in ("https://cdn.example/a.jpg", None, [1]):
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.upsert("acme", {"externalId": "p", "images": [{"source": source}]})
        assert paths(caught.value) == ["images.0.source"]
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": "p", "images": ["https://cdn.example/a.jpg"]})
    assert paths(caught.value) == ["images.0"]


@pytest.mark.parametrize("file_key", ["", 3, None, "\ud800"])
def test_r14_a_file_key_is_a_non_empty_string(catalog: cc.Catalog, file_key: object) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": "p", "images": [{"source": {"fileKey": file_key}}]})
    assert paths(caught.value) == ["images.0.source.fileKey"]


def test_r15_one_file_key_named_twice_is_one_blob(catalog: cc.Catalog) -> None:
    payload = {"externalId": "p", "images": [{"source": {"fileKey": "f"}}] * 2}
    product = catalog.upsert("acme", payload, files={"f": cc.Upload(JPEG)}).product
    assert product.images[0].source_url == product.images[1].source_url
    assert product.blob_refs == {product.images[0].blob_sha256}


def test_r15_the_first_failing_file_in_image_order_decides(catalog: cc.Catalog) -> None:
    big = JPEG + b"\x00" * (10 * 2**20)
    files = {"small-bad": cc.Upload(b"not an image!"), "big": cc.Upload(big)}
    first_big = {
        "externalId": "p",
        "images": [{"source": {"fileKey": k}} for k in ("big", "small-bad")],
    }
    with pytest.raises(cc.FileTooLarge):
        catalog.upsert("acme", first_big, files=files)
    first_bad = {
        "externalId": "p",
        "images": [{"source": {"fileKey": k}} for k in ("small-bad", "big")],
    }
    with pytest.raises(cc.InvalidImage):
        catalog.upsert("acme", first_bad, files=files)


def test_r22_an_empty_external_id_in_a_use_is_required_not_one_shot(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ExternalIdRequired):
        catalog.use("acme", {"externalId": "", "images": [IMAGE]})


def test_r5_a_one_shot_item_without_images_has_its_own_message(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ProductImagesRequired) as caught:
        catalog.use("acme", {"title": "t"})
    assert caught.value.message.startswith("A one-shot product does not exist yet")


def test_r8_emptying_the_images_of_a_product_has_its_own_message(catalog: cc.Catalog) -> None:
    catalog.upsert("acme", {"externalId": "p", "images": [IMAGE]})
    with pytest.raises(cc.ProductImagesRequired) as caught:
        catalog.upsert("acme", {"externalId": "p", "images": []})
    assert (
        caught.value.message
        == "Product 'p' must keep at least one image; an empty list is refused."
    )


def test_r9_json_nested_deeper_than_64_levels_is_refused(catalog: cc.Catalog) -> None:
    def nested(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(depth):
            value = {"k": value}
        return value

    # nested(n) holds n + 1 levels of objects: 64 levels are accepted, 65 are not.
    assert catalog.upsert("acme", {"externalId": "p", "images": [IMAGE], "metadata": nested(63)})
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": "p", "metadata": nested(64)})
    assert paths(caught.value) == ["metadata"]


def test_r9_metadata_is_detached_from_the_callers_object(catalog: cc.Catalog) -> None:
    metadata: dict[str, Any] = {"tags": ["a"]}
    product = catalog.upsert(
        "acme", {"externalId": "p", "images": [IMAGE], "metadata": metadata}
    ).product
    metadata["tags"].append("mutated by the caller")
    assert isinstance(product.metadata, dict)
    product.metadata["tags"].append("mutated through a returned product")
    assert catalog.get("acme", "p").metadata == {"tags": ["a"]}


def test_a_naive_clock_is_refused(repo: cc.Repository) -> None:
    catalog = cc.Catalog(repo, clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        catalog.upsert("acme", {"externalId": "p", "images": [IMAGE]})


def test_r11_the_default_clock_reads_the_system_time_in_whole_milliseconds(
    repo: cc.Repository,
) -> None:
    """The default clock is made whole milliseconds at once, not read then truncated."""
    catalog = cc.Catalog(repo)
    before = datetime.now(UTC)
    now = catalog.now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert now.microsecond % 1000 == 0
    assert before - timedelta(milliseconds=1) < now <= after  # both round down
    written = catalog.upsert("acme", {"externalId": "p", "images": [IMAGE]}).product
    assert written.created_at.microsecond % 1000 == 0
    assert now <= written.created_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    "files", [["f"], {"f": "text"}, {"": cc.Upload(JPEG)}, {3: cc.Upload(JPEG)}]
)
def test_r32_files_must_map_part_names_to_uploads(catalog: cc.Catalog, files: Any) -> None:
    with pytest.raises(cc.ValidationFailed):
        catalog.upsert("acme", {"externalId": "p", "images": [IMAGE]}, files=files)


def test_r32_raw_bytes_are_accepted_as_an_upload(catalog: cc.Catalog) -> None:
    payload = {"externalId": "p", "images": [{"source": {"fileKey": "f"}}]}
    product = catalog.upsert("acme", payload, files={"f": JPEG}).product  # type: ignore[dict-item]
    assert product.images[0].source_url.startswith("upload://")


def test_r33_the_request_limit_counts_a_raw_body_and_its_files(catalog: cc.Catalog) -> None:
    limits = cc.Limits(max_file_bytes=100, max_request_bytes=200)
    small = cc.Catalog(catalog.repository, limits=limits)
    body = b'{"externalId": "p", "images": [{"source": {"fileKey": "f"}}]}'
    with pytest.raises(cc.PayloadTooLarge):
        small.upsert(
            "acme", body, files={"f": cc.Upload(JPEG + b"\x00" * 50), "g": cc.Upload(JPEG * 2)}
        )
    with pytest.raises(cc.FileTooLarge):
        small.upsert(
            "acme",
            {"externalId": "p", "images": [{"source": {"fileKey": "f"}}]},
            files={"f": cc.Upload(JPEG * 3)},
        )


def test_r33_every_way_a_body_is_too_large_says_so_in_the_same_words(catalog: cc.Catalog) -> None:
    """The library's upserts, ``load_body``, ``split_multipart`` and the command line's import
    (``tests/reliability/test_import_memory.py``) all build the message with ``for_size``."""
    from catalog_core.wire import load_body, split_multipart

    limits = cc.Limits(max_file_bytes=100, max_request_bytes=200)
    small = cc.Catalog(catalog.repository, limits=limits)
    body = b'{"externalId": "p"}' + b" " * 200
    refusals = []
    for refuse in (
        lambda: small.upsert("acme", body),
        lambda: small.upsert("acme", body.decode()),
        lambda: small.use("acme", body),
        lambda: load_body(body, limits),
        lambda: load_body(body.decode(), limits),
        lambda: split_multipart({"data": body}, limits),
    ):
        with pytest.raises(cc.PayloadTooLarge) as caught:
            refuse()
        refusals.append(str(caught.value))
    expected = "The request body is 219 bytes; the limit is 200 bytes."
    assert refusals == [expected] * 6
    assert str(cc.PayloadTooLarge.for_size(219, 200)) == expected


class _CountedText(str):
    """A ``str`` body that counts how often it is encoded."""

    encodes = 0

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        type(self).encodes += 1
        return str(self).encode(encoding, errors)


@pytest.mark.parametrize("text", ["a", "\u00e9"], ids=["ASCII", "non-ASCII"])
def test_r33_a_str_body_is_encoded_once_for_its_size_its_bound_and_its_parse(
    catalog: cc.Catalog, text: str
) -> None:
    """A large body was encoded three or four times (its size twice, its decode bound, orjson's
    shape check): now once, and the bytes go on."""
    image = '{"source": {"url": "https://cdn.example/a.jpg"}}'
    for use in ("upsert", "use", "try_on"):
        item = f'{{"externalId": "p", "images": [{image}], "title": "{text * 600_000}"[:10]}}'
        body = f'{{"products": [{item}]}}' if use == "try_on" else item
        _CountedText.encodes = 0
        with pytest.raises(cc.ValidationFailed):  # [:10] is not JSON: parsed, then refused
            getattr(catalog, use)("acme", _CountedText(body))
        assert _CountedText.encodes == 1, use


def test_r29_product_from_wire_refuses_what_is_not_a_wire_product() -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        cc.product_from_wire({"externalId": "p", "title": 5}, account="acme")
    assert "title" in paths(caught.value)
    with pytest.raises(cc.ValidationFailed):
        cc.product_from_wire({"account": "x"}, account="acme")


def test_r9_an_int_too_long_for_json_text_fails_validation(catalog: cc.Catalog) -> None:
    """A mapping payload can hold ints that no JSON text carries (past 4,300 digits)."""
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": "p", "images": [IMAGE], "metadata": {"n": 10**5000}})
    assert paths(caught.value) == ["metadata"]
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert(
            "acme",
            {"externalId": "p", "images": [{**IMAGE, "classifications": {"n": -(10**5000)}}]},
        )
    assert paths(caught.value) == ["images.0.classifications"]


def test_r32_split_multipart_refuses_what_is_not_a_multipart_body() -> None:
    from catalog_core.wire import split_multipart

    limits = cc.Limits(max_file_bytes=100, max_request_bytes=200)
    cases: list[tuple[Any, str]] = [
        (None, "body"),
        ({"data": "{}", "f": "\ud800"}, "f"),
        ({"data": "{}", "f": 3}, "f"),
        ({"data": "{}", 7: b"x"}, "body"),
    ]
    for fields, path in cases:
        with pytest.raises(cc.ValidationFailed) as caught:
            split_multipart(fields, limits)
        assert paths(caught.value) == [path]
    with pytest.raises(cc.PayloadTooLarge):  # every part counts, not only data (R33)
        split_multipart({"data": "{}", "f": cc.Upload(b"x" * 150), "g": b"y" * 60}, limits)


def test_r31_product_from_wire_refuses_products_the_rules_could_not_make(
    catalog: cc.Catalog,
) -> None:
    wire = cc.to_wire(catalog.upsert("acme", {"externalId": "p", "images": [IMAGE]}).product)
    assert cc.product_from_wire(wire, account="acme") == catalog.get("acme", "p")
    image = {"sourceUrl": "https://cdn.example/a.jpg", "order": 0}
    cases: list[tuple[Any, str]] = [
        (None, "body"),
        ([], "body"),
        ({1: 2}, "body"),
        ({**wire, "externalId": ""}, "externalId"),
        ({**wire, "validForDays": 9999}, "validForDays"),
        ({**wire, "images": [{**image, "order": 7}]}, "images.0.order"),
        ({**wire, "images": [{**image, "alt": "x"}]}, "images.0"),
        ({**wire, "metadata": {"a": {1, 2}}}, "metadata"),
    ]
    for data, path in cases:
        with pytest.raises(cc.ValidationFailed) as caught:
            cc.product_from_wire(data, account="acme")
        assert path in paths(caught.value), (data, paths(caught.value))
