"""The rule book, rule by rule, on the in-memory backend.

Rules are decided by the catalog, whatever stores its products, so each runs once, on memory.
What a rule needs from storage (atomic and concurrent writes, isolation, listing order, expiry,
blobs and the purge, exact round trips) is the backend contract's:
``catalog_core.testing.contract.RepositoryContract``, which every backend passes in
``tests/repository/test_<backend>.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

import catalog_core as cc
from tests.helpers import AVIF, HEIC, JPEG, PNG, R29_STATUS, R31_PRODUCT_KEYS, WEBP, FakeClock


@pytest.fixture
def backend() -> str:
    """Rules run on the in-memory backend only; storage behaviour is the contract's."""
    return "memory"


def url(name: str = "a") -> str:
    return f"https://cdn.example/{name}.jpg"


def image(name: str = "a", **extra: Any) -> dict[str, Any]:
    return {"source": {"url": url(name)}, **extra}


def create(
    catalog: cc.Catalog, external_id: str = "p1", account: str = "acme", **fields: Any
) -> cc.Product:
    payload = {"externalId": external_id, "images": [image()], **fields}
    return catalog.upsert(account, payload).product


def codes_and_paths(error: cc.CatalogError) -> list[tuple[str, str]]:
    return [(error.code, d.path) for d in error.details]


def listing(catalog: cc.Catalog, account: str = "acme") -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = catalog.list(account, limit=200, cursor=cursor)
        ids.extend(p.external_id for p in page.items)
        if not page.has_more:
            return ids
        cursor = page.next_cursor


# -- identity and tenancy -----------------------------------------------------------------------


def test_r1_another_accounts_product_behaves_like_an_unknown_id(catalog: cc.Catalog) -> None:
    create(catalog, "shared", account="acme", title="acme's")

    with pytest.raises(cc.ProductNotFound):
        catalog.get("globex", "shared")
    with pytest.raises(cc.ProductNotFound):
        catalog.delete("globex", "shared")
    with pytest.raises(cc.ProductNotFound):
        catalog.use("globex", {"externalId": "shared"})
    assert catalog.list("globex").items == ()
    # globex's upsert creates its own product, and acme's stays untouched.
    with pytest.raises(cc.ProductImagesRequired):
        catalog.upsert("globex", {"externalId": "shared", "title": "globex's"})
    assert catalog.get("acme", "shared").title == "acme's"
    create(catalog, "shared", account="globex", title="globex's")
    assert catalog.get("acme", "shared").title == "acme's"
    assert catalog.get("acme", "shared").version == 1


def test_r1_an_account_must_be_a_non_empty_string(catalog: cc.Catalog) -> None:
    for account in ("", None, 42, "\ud800", "nul\x00", "line\nbreak"):
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.get(account, "p1")  # type: ignore[arg-type]
        assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "account")]


@pytest.mark.parametrize("payload", [{}, {"externalId": None}, {"externalId": ""}])
def test_r2_a_missing_null_or_empty_external_id_is_required(
    catalog: cc.Catalog, payload: dict[str, Any]
) -> None:
    with pytest.raises(cc.ExternalIdRequired) as caught:
        catalog.upsert("acme", {**payload, "images": [image()]})
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "external_id",
    [42, True, ["a"], "x" * 257, "tab\there", "nul\x00", "del\x7f", "lone\ud800surrogate"],
)
def test_r2_a_malformed_external_id_fails_validation(
    catalog: cc.Catalog, external_id: object
) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": external_id, "images": [image()]})
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "externalId")]


def test_r2_external_ids_are_exact_case_sensitive_and_never_trimmed(catalog: cc.Catalog) -> None:
    for external_id in ("Shirt", "shirt", " shirt", "shirt ", "x" * 256, "é", "👕"):
        create(catalog, external_id)
    assert sorted(listing(catalog)) == sorted(
        ["Shirt", "shirt", " shirt", "shirt ", "x" * 256, "é", "👕"]
    )
    assert catalog.get("acme", " shirt").external_id == " shirt"


def test_r3_upserting_a_reserved_prefix_is_refused_but_the_case_differs(
    catalog: cc.Catalog,
) -> None:
    with pytest.raises(cc.ReservedExternalId):
        create(catalog, "_anon_abc")
    assert create(catalog, "_ANON_abc").external_id == "_ANON_abc"
    assert create(catalog, "x_anon_").external_id == "x_anon_"


def test_r3_get_use_and_delete_by_a_one_shot_id_are_allowed(catalog: cc.Catalog) -> None:
    one_shot = catalog.use("acme", {"images": [image()]}).product

    assert catalog.get("acme", one_shot.external_id) == one_shot
    used = catalog.use("acme", {"externalId": one_shot.external_id})
    assert used.created is False
    assert used.product.version == 2
    catalog.delete("acme", one_shot.external_id)
    with pytest.raises(cc.ProductNotFound):
        catalog.get("acme", one_shot.external_id)


def test_r3_an_inline_use_cannot_upsert_a_one_shot_id(catalog: cc.Catalog) -> None:
    one_shot = catalog.use("acme", {"images": [image()]}).product
    with pytest.raises(cc.ReservedExternalId):
        catalog.use("acme", {"externalId": one_shot.external_id, "title": "renamed"})
    assert catalog.get("acme", one_shot.external_id).title is None


# -- create or update ---------------------------------------------------------------------------


def test_r4_an_expired_product_counts_as_absent_and_is_created_afresh(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    old = create(catalog, title="old", description="old text", metadata={"a": 1}, validForDays=1)
    clock.advance(days=1)

    with pytest.raises(cc.ProductImagesRequired):
        catalog.upsert("acme", {"externalId": "p1", "title": "new"})
    result = catalog.upsert("acme", {"externalId": "p1", "images": [image("b")]})

    assert result.created is True
    fresh = result.product
    assert fresh.created_at == clock.now != old.created_at
    assert (fresh.title, fresh.description, fresh.metadata, fresh.valid_for_days) == (
        None,
        None,
        None,
        None,
    )
    assert fresh.version == 1


def test_r5_creating_requires_an_image(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ProductImagesRequired) as caught:
        catalog.upsert("acme", {"externalId": "p1", "title": "no image"})
    assert caught.value.status == 400
    with pytest.raises(cc.ProductNotFound):
        catalog.get("acme", "p1")


def test_r5_image_urls_count_as_images_on_create(catalog: cc.Catalog) -> None:
    result = catalog.upsert("acme", {"externalId": "p1", "imageUrls": [url("a"), url("b")]})
    assert [i.source_url for i in result.product.images] == [url("a"), url("b")]


def test_r6_every_omitted_field_keeps_its_value(catalog: cc.Catalog, clock: FakeClock) -> None:
    before = create(
        catalog,
        title="t",
        description="d",
        metadata={"k": [1, 2]},
        validForDays=30,
        images=[image("x")],
    )
    clock.advance(hours=1)

    after = catalog.upsert("acme", {"externalId": "p1"}).product

    for field in ("title", "description", "metadata", "valid_for_days", "images", "created_at"):
        assert getattr(after, field) == getattr(before, field)


@pytest.mark.parametrize("field", ["title", "description"])
def test_r7_null_clears_a_text_field(catalog: cc.Catalog, field: str) -> None:
    create(catalog, **{field: "something"})
    assert getattr(catalog.upsert("acme", {"externalId": "p1", field: None}).product, field) is None


@pytest.mark.parametrize(("field", "limit"), [("title", 1000), ("description", 10_000)])
def test_r7_text_fields_have_length_limits(catalog: cc.Catalog, field: str, limit: int) -> None:
    assert getattr(create(catalog, **{field: "é" * limit}), field) == "é" * limit
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": "p1", field: "x" * (limit + 1)})
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", field)]
    with pytest.raises(cc.ValidationFailed):
        catalog.upsert("acme", {"externalId": "p1", field: 12})
    assert getattr(catalog.get("acme", "p1"), field) == "é" * limit


def test_r8_images_replace_the_whole_list_in_the_given_order_with_duplicates(
    catalog: cc.Catalog,
) -> None:
    create(catalog, images=[image("a"), image("b"), image("c")])

    updated = catalog.upsert(
        "acme", {"externalId": "p1", "images": [image("z"), image("a"), image("z")]}
    ).product

    assert [(i.source_url, i.order) for i in updated.images] == [
        (url("z"), 0),
        (url("a"), 1),
        (url("z"), 2),
    ]


def test_r8_an_empty_image_list_is_refused_on_create_and_on_update(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ProductImagesRequired):
        catalog.upsert("acme", {"externalId": "p0", "images": []})
    create(catalog)
    with pytest.raises(cc.ProductImagesRequired):
        catalog.upsert("acme", {"externalId": "p1", "images": []})
    assert len(catalog.get("acme", "p1").images) == 1


def test_r8_at_most_twenty_images(catalog: cc.Catalog) -> None:
    assert len(create(catalog, images=[image(str(n)) for n in range(20)]).images) == 20
    with pytest.raises(cc.ValidationFailed) as caught:
        create(catalog, "p2", images=[image(str(n)) for n in range(21)])
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "images")]


def test_r9_metadata_is_replaced_whole_and_null_clears_it(catalog: cc.Catalog) -> None:
    create(catalog, metadata={"a": {"deep": 1}, "b": 2})
    replaced = catalog.upsert("acme", {"externalId": "p1", "metadata": {"a": {"other": 3}}}).product
    assert replaced.metadata == {"a": {"other": 3}}
    assert catalog.upsert("acme", {"externalId": "p1", "metadata": None}).product.metadata is None


@pytest.mark.parametrize("metadata", [[1], "text", 3, True, 1.5])
def test_r9_metadata_of_another_json_type_fails_validation(
    catalog: cc.Catalog, metadata: object
) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        create(catalog, metadata=metadata)
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "metadata")]


def test_r9_metadata_is_limited_to_16_kib_of_compact_utf8_json(catalog: cc.Catalog) -> None:
    # {"k":"…"} is 8 bytes of framing; "é" is 2 bytes in UTF-8.
    at_limit = {"k": "é" * ((16384 - 8) // 2)}
    assert create(catalog, metadata=at_limit).metadata == at_limit
    over = {"k": "x" * (16384 - 8 + 1)}
    with pytest.raises(cc.ValidationFailed) as caught:
        create(catalog, "p2", metadata=over)
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "metadata")]


def test_r9_metadata_unicode_and_nesting_round_trip_exactly(catalog: cc.Catalog) -> None:
    metadata = {
        "名前": "Tシャツ",
        "emoji": "👕",
        "nested": {"list": [1, 2.5, None, True, "x"]},
        "": "",
    }
    create(catalog, metadata=metadata)
    assert catalog.get("acme", "p1").metadata == metadata


@pytest.mark.parametrize(
    "metadata", [{"k": float("nan")}, {"k": {1, 2}}, {1: "int key"}, {"k": "\udfff"}]
)
def test_r9_metadata_that_is_not_plain_json_fails_validation(
    catalog: cc.Catalog, metadata: object
) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        create(catalog, metadata=metadata)
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "metadata")]


def test_r10_valid_for_days_has_three_states(catalog: cc.Catalog) -> None:
    assert create(catalog).valid_for_days is None  # omitted on create: kept forever
    assert (
        catalog.upsert("acme", {"externalId": "p1", "validForDays": 30}).product.valid_for_days
        == 30
    )
    assert (
        catalog.upsert("acme", {"externalId": "p1"}).product.valid_for_days == 30
    )  # omitted: kept
    cleared = catalog.upsert("acme", {"externalId": "p1", "validForDays": None}).product
    assert (cleared.valid_for_days, cleared.expires_at) == (None, None)  # null: kept forever


@pytest.mark.parametrize("value", [0, 366, -1, 2.0, 1.5, True, False, "30", [30], {"d": 1}])
def test_r10_anything_but_an_integer_from_1_to_365_fails_at_valid_for_days(
    catalog: cc.Catalog, value: object
) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        create(catalog, validForDays=value)
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "validForDays")]


def test_r10_the_bounds_1_and_365_are_accepted(catalog: cc.Catalog) -> None:
    assert create(catalog, "a", validForDays=1).valid_for_days == 1
    assert create(catalog, "b", validForDays=365).valid_for_days == 365


def test_r10_a_float_in_the_raw_body_is_refused_even_when_whole(catalog: cc.Catalog) -> None:
    body = (
        b'{"externalId": "p1", "images": [{"source": {"url": "https://x.example/a"}}], '
        b'"validForDays": 2.0}'
    )
    with pytest.raises(cc.ValidationFailed):
        catalog.upsert("acme", body)


def test_r11_every_accepted_upsert_sets_updated_at_and_never_created_at(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    created = create(catalog)
    clock.advance(seconds=1.5)
    same = catalog.upsert("acme", {"externalId": "p1", "images": [image()]}).product
    assert same.updated_at == clock.now
    assert same.created_at == created.created_at


# -- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ({}, "images.0.source"),
        ({"url": url(), "fileKey": "f"}, "images.0.source"),
    ],
)
def test_r12_a_source_needs_exactly_one_of_url_and_file_key(
    catalog: cc.Catalog, source: dict[str, Any], path: str
) -> None:
    with pytest.raises(cc.InvalidImageInput) as caught:
        create(catalog, images=[{"source": source}])
    assert codes_and_paths(caught.value) == [("INVALID_IMAGE_INPUT", path)]
    assert caught.value.status == 400


def test_r12_an_entry_with_no_source_at_all_is_invalid_input(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.InvalidImageInput) as caught:
        create(catalog, images=[image(), {"classifications": {"a": 1}}])
    assert codes_and_paths(caught.value) == [("INVALID_IMAGE_INPUT", "images.1.source")]


@pytest.mark.parametrize(
    "bad_url",
    [
        "ftp://cdn.example/a.jpg",
        "/relative/a.jpg",
        "https://",
        "https:///path",
        "cdn.example/a.jpg",
        "https://cdn.example/" + "a" * 2048,
        "https://cdn example/a.jpg",
        "https://[::1/a.jpg",
        "https://cdn.example:99999/a.jpg",
        "http://[::1]x/a.jpg",  # text after a bracketed host, which urlsplit overlooks
        "http://x[::1]/a.jpg",
        "http://[::1][x]/a.jpg",
        "http://[v1.a@b]/a.jpg",
        "javascript:alert(1)",
        42,
        None,
    ],
)
def test_r13_a_url_must_be_absolute_http_or_https_with_a_host(
    catalog: cc.Catalog, bad_url: object
) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        create(catalog, images=[{"source": {"url": bad_url}}])
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "images.0.source.url")]


def test_r13_a_url_is_stored_as_given(catalog: cc.Catalog) -> None:
    given = "HTTPS://CDN.example:8443/a%20b/ünï.jpg?x=1&y=2#frag"
    product = create(catalog, images=[{"source": {"url": given}}])
    assert product.images[0].source_url == given
    exactly_2048 = "https://cdn.example/" + "a" * (2048 - len("https://cdn.example/"))
    assert (
        create(catalog, "p2", images=[{"source": {"url": exactly_2048}}]).images[0].source_url
        == exactly_2048
    )


@pytest.mark.parametrize(
    "url",
    ["http://[::1]/a.jpg", "https://u:p@[2001:db8::7]:8443/a", "http://[v1.x]/", "http://h/[1]"],
)
def test_r13_a_bracketed_ip_literal_is_a_host(catalog: cc.Catalog, url: str) -> None:
    assert create(catalog, images=[{"source": {"url": url}}]).images[0].source_url == url


def test_r14_a_file_key_must_name_a_file_part(catalog: cc.Catalog) -> None:
    payload = {"externalId": "p1", "images": [image(), {"source": {"fileKey": "back"}}]}
    with pytest.raises(cc.MultipartFileNotFound) as caught:
        catalog.upsert("acme", payload)
    assert codes_and_paths(caught.value) == [
        ("MULTIPART_FILE_NOT_FOUND", "images.1.source.fileKey")
    ]
    with pytest.raises(cc.MultipartFileNotFound):
        catalog.upsert("acme", payload, files={"front": cc.Upload(JPEG)})


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (JPEG, "image/jpeg"),
        (PNG, "image/png"),
        (WEBP, "image/webp"),
        (HEIC, "image/heic"),
        (AVIF, "image/avif"),
    ],
)
def test_r15_every_supported_image_type_is_recognised_by_its_leading_bytes(
    catalog: cc.Catalog, repo: cc.Repository, data: bytes, mime: str
) -> None:
    product = catalog.upsert(
        "acme",
        {"externalId": "p1", "images": [{"source": {"fileKey": "f"}}]},
        files={"f": cc.Upload(data, "application/octet-stream")},
    ).product
    sha = product.images[0].blob_sha256
    assert sha is not None
    blob = repo.get_blob("acme", sha)
    assert blob is not None
    assert (blob.data, blob.mime_type) == (data, mime)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        JPEG[:11],
        b"GIF89a" + b"\x00" * 20,
        b"%PDF-1.7" + b"\x00" * 20,
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
    ],
)
def test_r15_anything_else_is_an_invalid_image(catalog: cc.Catalog, data: bytes) -> None:
    with pytest.raises(cc.InvalidImage) as caught:
        catalog.upsert(
            "acme",
            {"externalId": "p1", "images": [{"source": {"fileKey": "f"}}]},
            files={"f": cc.Upload(data)},
        )
    assert codes_and_paths(caught.value) == [("INVALID_IMAGE", "images.0.source.fileKey")]


def test_r15_a_file_over_10_mib_is_too_large(catalog: cc.Catalog) -> None:
    big = JPEG + b"\x00" * (10 * 2**20 - len(JPEG) + 1)
    with pytest.raises(cc.FileTooLarge) as caught:
        catalog.upsert(
            "acme",
            {"externalId": "p1", "images": [{"source": {"fileKey": "f"}}]},
            files={"f": cc.Upload(big)},
        )
    assert caught.value.status == 413
    exactly = big[:-1]
    product = catalog.upsert(
        "acme",
        {"externalId": "p1", "images": [{"source": {"fileKey": "f"}}]},
        files={"f": cc.Upload(exactly)},
    ).product
    assert product.images[0].source_url.startswith("upload://")


def test_r15_the_same_bytes_are_stored_once_per_account_and_addressed_by_sha256(
    catalog: cc.Catalog, repo: cc.Repository
) -> None:
    import hashlib

    files = {"a": cc.Upload(JPEG), "b": cc.Upload(JPEG)}
    payload = {
        "externalId": "p1",
        "images": [{"source": {"fileKey": "a"}}, {"source": {"fileKey": "b"}}],
    }
    product = catalog.upsert("acme", payload, files=files).product
    other = catalog.upsert("acme", {**payload, "externalId": "p2"}, files=files).product

    expected = "upload://" + hashlib.sha256(JPEG).hexdigest()
    assert [i.source_url for i in product.images] == [expected, expected]
    assert other.images == product.images
    assert repo.get_blob("globex", hashlib.sha256(JPEG).hexdigest()) is None


def test_r15_r21_a_blob_no_product_refers_to_is_removed_by_the_purge(
    catalog: cc.Catalog, repo: cc.Repository
) -> None:
    payload = {"externalId": "p1", "images": [{"source": {"fileKey": "f"}}]}
    sha = (
        catalog.upsert("acme", payload, files={"f": cc.Upload(JPEG)}).product.images[0].blob_sha256
    )
    catalog.upsert("acme", {**payload, "externalId": "p2"}, files={"f": cc.Upload(JPEG)})
    assert sha is not None

    catalog.upsert("acme", {"externalId": "p1", "images": [image()]})  # p2 still refers to it
    assert catalog.purge_expired() == 0
    assert repo.get_blob("acme", sha) is not None

    catalog.delete("acme", "p2")
    assert repo.get_blob("acme", sha) is not None  # removed by the purge, not before
    catalog.purge_expired()
    assert repo.get_blob("acme", sha) is None


def test_r16_classifications_are_stored_per_image_and_empty_means_none(catalog: cc.Catalog) -> None:
    product = create(
        catalog,
        images=[
            image("a", classifications={"category": "tops", "tags": ["red"]}),
            image("b", classifications={}),
            image("c", classifications=None),
        ],
    )
    wire = cc.to_wire(catalog.get("acme", product.external_id))["images"]
    assert wire == [
        {
            "sourceUrl": url("a"),
            "order": 0,
            "classifications": {"category": "tops", "tags": ["red"]},
        },
        {"sourceUrl": url("b"), "order": 1},
        {"sourceUrl": url("c"), "order": 2},
    ]


def test_r16_classifications_must_be_an_object_of_at_most_4_kib(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        create(catalog, images=[image(classifications=["tops"])])
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "images.0.classifications")]
    at_limit = {"k": "x" * (4096 - 8)}
    assert (
        create(catalog, images=[image(classifications=at_limit)]).images[0].classifications
        == at_limit
    )
    with pytest.raises(cc.ValidationFailed):
        create(catalog, images=[image(classifications={"k": "x" * (4096 - 7)})])


def test_r17_the_flat_image_shapes_are_accepted_with_a_warning(catalog: cc.Catalog) -> None:
    result = catalog.upsert(
        "acme",
        {
            "externalId": "p1",
            "images": [
                {"url": url("a")},
                {"fileKey": "f", "classifications": {"c": 1}},
                image("c"),
            ],
        },
        files={"f": cc.Upload(JPEG)},
    )
    images = result.product.images
    assert images[0].source_url == url("a")
    assert images[1].source_url.startswith("upload://")
    assert images[1].classifications == {"c": 1}
    assert [(w.code, w.path) for w in result.warnings] == [
        ("DEPRECATED_IMAGE_SHAPE", "images.0"),
        ("DEPRECATED_IMAGE_SHAPE", "images.1"),
    ]


def test_r17_image_urls_are_accepted_with_a_warning(catalog: cc.Catalog) -> None:
    result = catalog.upsert("acme", {"externalId": "p1", "imageUrls": [url("a"), url("b")]})
    assert [(w.code, w.path) for w in result.warnings] == [("DEPRECATED_IMAGE_URLS", "imageUrls")]
    assert cc.to_wire(result.product)["images"] == [
        {"sourceUrl": url("a"), "order": 0},
        {"sourceUrl": url("b"), "order": 1},
    ]


def test_r17_images_and_image_urls_together_fail_validation(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": "p1", "images": [image()], "imageUrls": [url()]})
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "imageUrls")]


def test_r17_a_flat_entry_with_both_url_and_file_key_is_invalid_input(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.InvalidImageInput) as caught:
        create(catalog, images=[{"url": url(), "fileKey": "f"}])
    assert codes_and_paths(caught.value) == [("INVALID_IMAGE_INPUT", "images.0")]


def test_r18_unknown_keys_are_ignored_with_a_warning_naming_their_path(catalog: cc.Catalog) -> None:
    result = catalog.upsert(
        "acme",
        {
            "externalId": "p1",
            "colour": "red",
            "images": [{"source": {"url": url(), "cdn": "x"}, "alt": "front"}],
        },
    )
    assert sorted((w.code, w.path) for w in result.warnings) == [
        ("UNKNOWN_FIELD", "colour"),
        ("UNKNOWN_FIELD", "images.0.alt"),
        ("UNKNOWN_FIELD", "images.0.source.cdn"),
    ]
    assert "colour" not in cc.to_wire(result.product)


# -- expiry and use -----------------------------------------------------------------------------


def test_r19_expires_at_follows_the_later_of_updated_at_and_last_used_at(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    created = create(catalog, validForDays=10)
    assert created.expires_at == clock.now + __import__("datetime").timedelta(days=10)
    clock.advance(days=3)
    used = catalog.use("acme", {"externalId": "p1"}).product
    assert used.last_used_at == clock.now
    assert cc.to_wire(used)["expiresAt"] == "2026-05-26T10:00:00.000Z"
    clock.advance(days=1)
    updated = catalog.upsert("acme", {"externalId": "p1", "title": "t"}).product
    assert cc.to_wire(updated)["expiresAt"] == "2026-05-27T10:00:00.000Z"
    shortened = catalog.upsert("acme", {"externalId": "p1", "validForDays": 1}).product
    assert cc.to_wire(shortened)["expiresAt"] == "2026-05-18T10:00:00.000Z"


def test_r20_a_product_is_expired_from_the_exact_millisecond_of_expires_at(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    create(catalog, validForDays=1)
    clock.advance(days=1, milliseconds=-1)
    assert catalog.get("acme", "p1").external_id == "p1"
    clock.advance(milliseconds=1)
    with pytest.raises(cc.ProductNotFound):
        catalog.get("acme", "p1")


def test_r20_an_expired_product_is_invisible_to_every_read_before_any_purge(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    create(catalog, "gone", validForDays=1)
    create(catalog, "kept")
    clock.advance(days=2)

    with pytest.raises(cc.ProductNotFound):
        catalog.get("acme", "gone")
    with pytest.raises(cc.ProductNotFound):
        catalog.use("acme", {"externalId": "gone"})
    with pytest.raises(cc.ProductNotFound):
        catalog.delete("acme", "gone")
    assert listing(catalog) == ["kept"]


def test_r21_the_purge_removes_only_expired_products_and_counts_them(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    for n in range(5):
        create(catalog, f"short-{n}", validForDays=1)
    create(catalog, "long", validForDays=30)
    create(catalog, "forever")
    one_shot = catalog.use("acme", {"images": [image()]}).product  # 7 days
    clock.advance(days=2)

    assert catalog.purge_expired() == 5
    assert catalog.purge_expired() == 0
    assert listing(catalog) == ["forever", "long"]
    assert catalog.get("acme", one_shot.external_id) == one_shot
    clock.advance(days=6)
    assert catalog.purge_expired() == 1


def test_r21_a_product_renewed_after_a_stale_expiry_is_not_purged(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    create(catalog, validForDays=1)
    clock.advance(hours=20)
    catalog.use("acme", {"externalId": "p1"})  # moves expiresAt to +1 day from now
    clock.advance(hours=5)
    assert catalog.purge_expired() == 0
    assert catalog.get("acme", "p1").external_id == "p1"


def test_r22a_a_reference_use_records_the_use_without_editing(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    created = create(catalog, validForDays=5)
    clock.advance(days=2)

    result = catalog.use("acme", {"externalId": "p1"})

    assert result.created is False
    assert result.product.updated_at == created.updated_at
    assert result.product.last_used_at == clock.now
    assert result.product.version == 2
    assert catalog.get("acme", "p1") == result.product


def test_r22a_referencing_an_unknown_product_is_not_found(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ProductNotFound) as caught:
        catalog.use("acme", {"externalId": "nope"})
    assert caught.value.status == 404


def test_r22b_an_inline_use_that_creates_defaults_to_fifteen_days(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    result = catalog.use("acme", {"externalId": "p1", "title": "t", "images": [image()]})
    assert result.created is True
    assert result.product.valid_for_days == 15
    assert result.product.last_used_at == clock.now == result.product.updated_at
    assert cc.to_wire(result.product)["expiresAt"] == "2026-05-28T10:00:00.000Z"
    explicit = catalog.use("acme", {"externalId": "p2", "images": [image()], "validForDays": None})
    assert explicit.product.valid_for_days is None


def test_r22b_an_inline_use_of_an_existing_product_keeps_its_lifetime(catalog: cc.Catalog) -> None:
    create(catalog, title="old")  # kept forever
    result = catalog.use("acme", {"externalId": "p1", "title": "new"})
    assert result.created is False
    assert (result.product.title, result.product.valid_for_days) == ("new", None)
    assert catalog.use("acme", {"externalId": "p1", "validForDays": 3}).product.valid_for_days == 3


def test_r22b_an_inline_use_follows_the_upsert_rules(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ProductImagesRequired):
        catalog.use("acme", {"externalId": "p1", "title": "no image"})
    with pytest.raises(cc.ValidationFailed):
        catalog.use("acme", {"externalId": "p1", "title": 3, "images": [image()]})


def test_r22c_a_one_shot_use_creates_a_product_with_a_generated_id(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    import re

    first = catalog.use("acme", {"images": [image()], "title": "t"})
    second = catalog.use("acme", {"externalId": None, "images": [image()]})

    for result in (first, second):
        assert result.created is True
        assert re.fullmatch(r"_anon_[a-z0-9]{24}", result.product.external_id)
        assert result.product.valid_for_days == 7
        assert result.product.last_used_at == clock.now
    assert first.product.external_id != second.product.external_id
    assert catalog.use("acme", {"images": [image()], "validForDays": 2}).product.valid_for_days == 2


def test_r22c_one_shot_products_always_expire_and_need_images(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.use("acme", {"images": [image()], "validForDays": None})
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "validForDays")]
    with pytest.raises(cc.ProductImagesRequired):
        catalog.use("acme", {"title": "no image"})
    with pytest.raises(cc.ProductImagesRequired):
        catalog.use("acme", {})


def test_r22c_one_shot_products_are_never_listed(catalog: cc.Catalog) -> None:
    create(catalog, "listed")
    for _ in range(3):
        catalog.use("acme", {"images": [image()]})
    assert listing(catalog) == ["listed"]


def test_r22_the_try_on_body_must_hold_exactly_one_product_item(catalog: cc.Catalog) -> None:
    create(catalog)
    result = catalog.try_on("acme", {"products": [{"externalId": "p1"}], "personImage": "x"})
    assert result.product.external_id == "p1"
    assert result.warnings == ()
    for body in (
        {"products": []},
        {"products": [{"externalId": "p1"}] * 2},
        {},
        {"products": "p1"},
    ):
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.try_on("acme", body)
        assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "products")]


def test_r22_the_deprecated_single_product_object_is_accepted_with_a_warning(
    catalog: cc.Catalog,
) -> None:
    result = catalog.try_on(
        "acme", b'{"product": {"externalId": "p9", "images": [{"url": "https://x.example/a"}]}}'
    )
    assert result.created is True
    assert [(w.code, w.path) for w in result.warnings] == [
        ("DEPRECATED_PRODUCT_FIELD", "product"),
        ("DEPRECATED_IMAGE_SHAPE", "product.images.0"),
    ]


def test_r22_try_on_detail_paths_start_at_the_body(catalog: cc.Catalog) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.try_on(
            "acme", {"products": [{"externalId": "p1", "title": 1, "images": [image()]}]}
        )
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "products.0.title")]


# -- get, list, delete --------------------------------------------------------------------------


def test_r23_get_returns_the_live_product_or_the_documented_not_found(catalog: cc.Catalog) -> None:
    created = create(catalog)
    assert catalog.get("acme", "p1") == created
    with pytest.raises(cc.ProductNotFound) as caught:
        catalog.get("acme", "shirt-404")
    assert caught.value.to_wire() == {
        "code": "PRODUCT_NOT_FOUND",
        "message": "Product 'shirt-404' not found.",
        "status": 404,
    }
    assert isinstance(caught.value, LookupError)


def test_r24_listing_is_in_code_point_order(catalog: cc.Catalog) -> None:
    ids = ["b", "a", "B", "Z", "é", "e", "😀", "ｚ", "a0", "a-", "_x", "10", "9"]
    for external_id in ids:
        create(catalog, external_id)
    assert listing(catalog) == sorted(ids)  # Python compares str by code point


def test_r24_pages_carry_count_has_more_and_a_cursor(catalog: cc.Catalog) -> None:
    for n in range(5):
        create(catalog, f"p{n}")
    first = catalog.list("acme", limit=2)
    assert ([p.external_id for p in first.items], first.count, first.has_more) == (
        ["p0", "p1"],
        2,
        True,
    )
    second = catalog.list("acme", limit=2, cursor=first.next_cursor)
    third = catalog.list("acme", limit=2, cursor=second.next_cursor)
    assert [p.external_id for p in third.items] == ["p4"]
    assert (third.has_more, third.next_cursor) == (False, None)
    assert cc.page_to_wire(third) == {
        "items": [cc.to_wire(third.items[0])],
        "nextCursor": None,
        "hasMore": False,
        "count": 1,
    }
    exact = catalog.list("acme", limit=5)
    assert (exact.count, exact.has_more, exact.next_cursor) == (5, False, None)
    assert catalog.list("acme").count == 5  # default limit is 50


@pytest.mark.parametrize("limit", [0, 201, -1, 2.0, True, "10", None])
def test_r24_a_limit_outside_1_to_200_fails_at_limit(catalog: cc.Catalog, limit: object) -> None:
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.list("acme", limit=limit)  # type: ignore[arg-type]
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "limit")]


def test_r24_a_malformed_altered_or_foreign_cursor_fails_at_cursor(catalog: cc.Catalog) -> None:
    for n in range(3):
        create(catalog, f"p{n}")
        create(catalog, f"p{n}", account="globex")
    cursor = catalog.list("acme", limit=1).next_cursor
    assert cursor is not None
    body, tag = cursor.split(".")
    forged_body = body[:-1] + ("A" if body[-1] != "A" else "B")
    bad = [
        "",
        "garbage",
        cursor + "x",
        forged_body + "." + tag,
        body + "." + tag[::-1],
        cursor + "!",
        42,
        "é.é",
    ]
    for candidate in bad:
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.list("acme", limit=1, cursor=candidate)  # type: ignore[arg-type]
        assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "cursor")]
    with pytest.raises(cc.ValidationFailed):
        catalog.list("globex", limit=1, cursor=cursor)


def test_r24_a_walk_returns_each_product_that_exists_throughout_exactly_once(
    catalog: cc.Catalog,
) -> None:
    stable = [f"s{n:03d}" for n in range(0, 60, 2)]
    for external_id in stable:
        create(catalog, external_id)
    seen: list[str] = []
    cursor = None
    n = 0
    while True:
        page = catalog.list("acme", limit=7, cursor=cursor)
        seen.extend(p.external_id for p in page.items)
        # Between pages: create before and after the cursor, update and delete others.
        create(catalog, f"s{n * 2 + 1:03d}")
        create(catalog, f"a{n}")
        create(catalog, f"z{n}")
        if f"z{n - 1}" in listing(catalog):
            catalog.delete("acme", f"z{n - 1}")
        catalog.upsert("acme", {"externalId": stable[-1], "title": f"edit {n}"})
        n += 1
        if not page.has_more:
            break
        cursor = page.next_cursor
    for external_id in stable:
        assert seen.count(external_id) == 1
    assert len(seen) == len(set(seen))


def test_r25_delete_removes_a_live_product(catalog: cc.Catalog, clock: FakeClock) -> None:
    create(catalog)
    assert catalog.delete("acme", "p1") is None
    with pytest.raises(cc.ProductNotFound):
        catalog.get("acme", "p1")
    with pytest.raises(cc.ProductNotFound):
        catalog.delete("acme", "p1")
    create(catalog, "ttl", validForDays=1)
    clock.advance(days=1)
    with pytest.raises(cc.ProductNotFound):
        catalog.delete("acme", "ttl")


def test_r25_get_and_delete_refuse_a_malformed_id(catalog: cc.Catalog) -> None:
    for external_id in ("", "x" * 257, "a\nb", 7):
        with pytest.raises(cc.ValidationFailed):
            catalog.get("acme", external_id)  # type: ignore[arg-type]
        with pytest.raises(cc.ValidationFailed):
            catalog.delete("acme", external_id)  # type: ignore[arg-type]


# -- writes, versions, concurrency --------------------------------------------------------------


def snapshot(catalog: cc.Catalog, repo: cc.Repository) -> tuple[Any, ...]:
    pages = [cc.page_to_wire(catalog.list(account, limit=200)) for account in ("acme", "globex")]
    products = [repo.get("acme", i) for i in ("p1", "p2")]
    return (pages, products)


def test_r26_a_rejected_request_changes_nothing(catalog: cc.Catalog, repo: cc.Repository) -> None:
    create(catalog, title="kept", metadata={"a": 1})
    before = snapshot(catalog, repo)
    rejected = [
        {"externalId": "p1", "title": 5},
        {"externalId": "p1", "images": []},
        {"externalId": "p1", "images": [{"source": {"fileKey": "missing"}}]},
        {"externalId": "p2", "title": "no image"},
        {"externalId": "p1", "images": [{"source": {"fileKey": "bad"}}], "title": "x"},
    ]
    for payload in rejected:
        with pytest.raises(cc.CatalogError):
            catalog.upsert("acme", payload, files={"bad": cc.Upload(b"not an image at all")})
    with pytest.raises(cc.VersionConflict):
        catalog.upsert("acme", {"externalId": "p1", "title": "x"}, if_version=7)
    with pytest.raises(cc.VersionConflict):
        catalog.delete("acme", "p1", if_version=7)
    assert snapshot(catalog, repo) == before


def test_r28_versions_start_at_one_and_grow_by_one_per_write(catalog: cc.Catalog) -> None:
    assert create(catalog).version == 1
    assert catalog.upsert("acme", {"externalId": "p1"}).product.version == 2
    assert catalog.use("acme", {"externalId": "p1"}).product.version == 3
    assert catalog.get("acme", "p1").version == 3


def test_r28_an_expected_version_guards_upsert_and_delete(catalog: cc.Catalog) -> None:
    create(catalog)
    updated = catalog.upsert("acme", {"externalId": "p1", "title": "v2"}, if_version=1).product
    assert updated.version == 2

    with pytest.raises(cc.VersionConflict) as caught:
        catalog.upsert("acme", {"externalId": "p1", "title": "stale"}, if_version=1)
    assert caught.value.status == 412
    assert [(d.path, d.message) for d in caught.value.details] == [
        ("version", "current version is 2")
    ]
    with pytest.raises(cc.VersionConflict):
        catalog.delete("acme", "p1", if_version=1)
    with pytest.raises(cc.VersionConflict):  # an expected version of a product that is absent
        catalog.upsert("acme", {"externalId": "new", "images": [image()]}, if_version=1)
    catalog.delete("acme", "p1", if_version=2)
    with pytest.raises(cc.ValidationFailed):
        catalog.upsert("acme", {"externalId": "p1"}, if_version=0)
    with pytest.raises(cc.ValidationFailed):
        catalog.upsert("acme", {"externalId": "p1"}, if_version=True)  # type: ignore[arg-type]


def test_r28_a_collection_of_expected_versions_matches_any_of_them(catalog: cc.Catalog) -> None:
    create(catalog)
    assert catalog.upsert("acme", {"externalId": "p1"}, if_version={1, 5}).product.version == 2
    assert catalog.upsert("acme", {"externalId": "p1"}, if_version=[2]).product.version == 3

    with pytest.raises(cc.VersionConflict) as caught:
        catalog.upsert("acme", {"externalId": "p1", "title": "x"}, if_version=frozenset({1, 2}))
    assert caught.value.message == "Product 'p1' is at version 3; expected one of versions 1, 2."
    assert [(d.path, d.message) for d in caught.value.details] == [
        ("version", "current version is 3")
    ]
    with pytest.raises(cc.VersionConflict) as caught:  # an empty collection never matches
        catalog.delete("acme", "p1", if_version=())
    assert caught.value.message == (
        "Product 'p1' is at version 3, and no expected version was given that could match."
    )
    with pytest.raises(cc.VersionConflict) as caught:
        catalog.upsert("acme", {"externalId": "new", "images": [image()]}, if_version={1})
    assert caught.value.message == "Product 'new' does not exist; expected one of versions 1."
    assert catalog.get("acme", "p1").title is None  # nothing was written
    catalog.delete("acme", "p1", if_version=(3, 4))
    with pytest.raises(cc.ProductNotFound):
        catalog.get("acme", "p1")


def test_r28_any_version_updates_a_live_product_and_never_creates(
    catalog: cc.Catalog, clock: FakeClock
) -> None:
    create(catalog, validForDays=1)
    updated = catalog.upsert("acme", {"externalId": "p1", "title": "t"}, if_version=cc.ANY_VERSION)
    assert (updated.created, updated.product.version) == (False, 2)

    with pytest.raises(cc.VersionConflict) as caught:
        catalog.upsert(
            "acme", {"externalId": "new", "images": [image()]}, if_version=cc.ANY_VERSION
        )
    assert caught.value.message == "Product 'new' does not exist; expected it at any version."
    assert [(d.path, d.message) for d in caught.value.details] == [
        ("version", "no live product has this id")
    ]
    with pytest.raises(cc.ProductImagesRequired):  # R30: every other check comes first
        catalog.upsert("acme", {"externalId": "new"}, if_version=cc.ANY_VERSION)
    clock.advance(days=2)  # R20: an expired product is absent
    with pytest.raises(cc.VersionConflict):
        catalog.upsert("acme", {"externalId": "p1", "images": [image()]}, if_version=cc.ANY_VERSION)
    with pytest.raises(cc.ProductNotFound):
        catalog.delete("acme", "p1", if_version=cc.ANY_VERSION)
    create(catalog, "p2")
    catalog.delete("acme", "p2", if_version=cc.ANY_VERSION)
    assert repr(cc.ANY_VERSION) == "ANY_VERSION"


@pytest.mark.parametrize("bad", [{1, 0}, [True], ["1"], "12", b"1", {1: 1}, 1.0, -1, "*"], ids=repr)
def test_r28_an_expected_version_that_is_not_positive_ints_is_a_validation_error(
    catalog: cc.Catalog, bad: object
) -> None:
    create(catalog)
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", {"externalId": "p1", "title": "x"}, if_version=bad)  # type: ignore[arg-type]
    assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "ifVersion")]
    with pytest.raises(cc.ValidationFailed):
        catalog.delete("acme", "p1", if_version=bad)  # type: ignore[arg-type]
    assert catalog.get("acme", "p1").version == 1


# -- errors and the wire ------------------------------------------------------------------------


def test_r29_every_code_has_its_status_and_wire_shape() -> None:
    from catalog_core.errors import error_for_code

    for code, status in R29_STATUS.items():
        cls = error_for_code(code)
        error = cls("message", [cc.Detail("b.10", "x"), cc.Detail("b.9", "y")])
        assert issubclass(cls, cc.CatalogError)
        assert (error.code, error.status, error.message) == (code, status, "message")
        assert error.to_wire() == {
            "code": code,
            "message": "message",
            "status": status,
            "details": [{"path": "b.9", "message": "y"}, {"path": "b.10", "message": "x"}],
        }
        assert "details" not in cls("m").to_wire()


def test_r30_every_field_problem_is_listed_at_once_sorted_numerically(catalog: cc.Catalog) -> None:
    payload = {
        "externalId": "p1",
        "title": 1,
        "metadata": [],
        "validForDays": 0,
        "images": [image(str(n)) for n in range(9)]
        + [{"source": {"url": "nope"}}, {"source": {"url": 3}}],
    }
    with pytest.raises(cc.ValidationFailed) as caught:
        catalog.upsert("acme", payload)
    assert [d.path for d in caught.value.details] == [
        "images.9.source.url",
        "images.10.source.url",
        "metadata",
        "title",
        "validForDays",
    ]


@pytest.mark.parametrize(
    ("payload", "files", "code"),
    [
        (b"x" * (32 * 2**20 + 1), None, "PAYLOAD_TOO_LARGE"),
        (b"[1, 2]", None, "VALIDATION_FAILED"),
        (b"{not json", None, "VALIDATION_FAILED"),
        (b"\xff\xfe{}", None, "VALIDATION_FAILED"),
        ({"title": 1, "images": [{"source": {}}]}, None, "EXTERNAL_ID_REQUIRED"),
        (
            {"externalId": "_anon_x", "title": 1, "images": [{"source": {}}]},
            None,
            "VALIDATION_FAILED",
        ),
        ({"externalId": "_anon_x", "images": [{"source": {}}]}, None, "INVALID_IMAGE_INPUT"),
        (
            {"externalId": "_anon_x", "images": [{"source": {"fileKey": "f"}}]},
            None,
            "RESERVED_EXTERNAL_ID",
        ),
        (
            {
                "externalId": "p9",
                "images": [{"source": {"fileKey": "f"}}, {"source": {"fileKey": "g"}}],
            },
            {"g": b"bad"},
            "MULTIPART_FILE_NOT_FOUND",
        ),
        (
            {"externalId": "p9", "images": [{"source": {"fileKey": "g"}}]},
            {"g": b"bad"},
            "INVALID_IMAGE",
        ),
        ({"externalId": "p9", "images": []}, {"g": b"bad"}, "PRODUCT_IMAGES_REQUIRED"),
    ],
)
def test_r30_one_request_yields_one_error_in_the_documented_order(
    catalog: cc.Catalog, payload: Any, files: dict[str, bytes] | None, code: str
) -> None:
    uploads = None if files is None else {k: cc.Upload(v) for k, v in files.items()}
    with pytest.raises(cc.CatalogError) as caught:
        catalog.upsert("acme", payload, files=uploads)
    assert caught.value.code == code


def test_r30_images_required_comes_before_a_version_conflict(catalog: cc.Catalog) -> None:
    create(catalog)
    with pytest.raises(cc.ProductImagesRequired):
        catalog.upsert("acme", {"externalId": "p1", "images": []}, if_version=9)


def test_r31_the_wire_product_has_exactly_the_documented_keys(catalog: cc.Catalog) -> None:
    wire = cc.to_wire(
        create(catalog, metadata={"x": 1}, validForDays=2, images=[image(classifications={"c": 1})])
    )
    assert list(wire) == list(R31_PRODUCT_KEYS)
    assert wire["createdAt"] == "2026-05-13T10:00:00.000Z"
    assert wire["expiresAt"] == "2026-05-15T10:00:00.000Z"
    assert wire["images"] == [{"sourceUrl": url(), "order": 0, "classifications": {"c": 1}}]


def test_r31_timestamps_are_truncated_to_milliseconds_and_read_back_exactly(
    repo: cc.Repository,
) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    clock = FakeClock(datetime(2026, 5, 13, 12, 0, 0, 123999, tzinfo=timezone(timedelta(hours=2))))
    catalog = cc.Catalog(repo, clock=clock)
    product = create(catalog, validForDays=1)
    assert product.created_at == datetime(2026, 5, 13, 10, 0, 0, 123000, tzinfo=UTC)
    assert cc.to_wire(product)["createdAt"] == "2026-05-13T10:00:00.123Z"
    assert catalog.get("acme", "p1") == product


def test_r32_a_multipart_body_puts_the_json_in_data(catalog: cc.Catalog) -> None:
    from catalog_core.wire import split_multipart

    body, files = split_multipart(
        {
            "data": '{"externalId": "p1", "images": [{"source": {"fileKey": "back"}}]}',
            "back": cc.Upload(JPEG),
        },
        catalog.limits,
    )
    assert (
        catalog.upsert("acme", body, files=files)
        .product.images[0]
        .source_url.startswith("upload://")
    )
    for fields in (
        {"back": cc.Upload(JPEG)},
        {"data": "[1]"},
        {"data": "not json"},
        {"data": cc.Upload(b"{")},
    ):
        with pytest.raises(cc.ValidationFailed) as caught:
            split_multipart(fields, catalog.limits)  # type: ignore[arg-type]
        assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "data")]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_r32_a_data_part_of_any_bytes_like_kind_is_read_as_json(kind: type) -> None:
    """An Upload may hold any bytes-like value; its JSON is read, or refused at ``data``."""
    from catalog_core.wire import split_multipart

    limits = cc.Limits()
    body, _ = split_multipart({"data": cc.Upload(kind(b'{"externalId": "p1"}'))}, limits)
    assert body == {"externalId": "p1"}
    for bad in (b"[1]", b"\xff", b"{"):
        with pytest.raises(cc.ValidationFailed) as caught:
            split_multipart({"data": cc.Upload(kind(bad))}, limits)
        assert codes_and_paths(caught.value) == [("VALIDATION_FAILED", "data")]


def test_r32_file_parts_no_image_names_are_ignored_with_a_warning(
    catalog: cc.Catalog, repo: cc.Repository
) -> None:
    result = catalog.upsert(
        "acme",
        {"externalId": "p1", "images": [image()]},
        files={"stray": cc.Upload(JPEG), "also": cc.Upload(b"whatever")},
    )
    assert sorted((w.code, w.path) for w in result.warnings) == [
        ("UNUSED_FILE", "also"),
        ("UNUSED_FILE", "stray"),
    ]
    import hashlib

    assert repo.get_blob("acme", hashlib.sha256(JPEG).hexdigest()) is None


def test_r33_limits_are_one_value_the_embedder_can_change(
    repo: cc.Repository, clock: FakeClock
) -> None:
    limits = cc.Limits(
        max_external_id_length=3,
        max_title_length=2,
        max_description_length=2,
        max_images=1,
        max_metadata_bytes=10,
        max_classifications_bytes=10,
        max_file_bytes=20,
        max_request_bytes=100,
    )
    catalog = cc.Catalog(repo, clock=clock, limits=limits)
    small = catalog.upsert("acme", {"externalId": "abc", "title": "ab", "images": [image()]})
    assert small.product.title == "ab"
    cases = [
        ({"externalId": "abcd", "images": [image()]}, "externalId"),
        ({"externalId": "abc", "title": "abc"}, "title"),
        ({"externalId": "abc", "description": "abc"}, "description"),
        ({"externalId": "abc", "images": [image(), image()]}, "images"),
        ({"externalId": "abc", "metadata": {"k": "12345"}}, "metadata"),
        (
            {"externalId": "abc", "images": [image(classifications={"k": "12345"})]},
            "images.0.classifications",
        ),
    ]
    for payload, path in cases:
        with pytest.raises(cc.ValidationFailed) as caught:
            catalog.upsert("acme", payload)
        assert [d.path for d in caught.value.details] == [path]
    with pytest.raises(cc.FileTooLarge):
        catalog.upsert(
            "acme",
            {"externalId": "abc", "images": [{"source": {"fileKey": "f"}}]},
            files={"f": cc.Upload(JPEG)},
        )
    with pytest.raises(cc.PayloadTooLarge):
        catalog.upsert("acme", b'{"externalId": "abc"}' + b" " * 100)
    assert catalog.get("acme", "abc") == small.product


def test_r33_limits_refuse_nonsense_values() -> None:
    with pytest.raises(ValueError, match="positive"):
        cc.Limits(max_images=0)
    with pytest.raises(ValueError, match="larger"):
        cc.Limits(max_file_bytes=100, max_request_bytes=100)
