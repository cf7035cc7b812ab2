"""Check that the pydantic peer does the same job as catalog_core before anyone times it.

Run from the repository root: ``.venv/bin/python -m benchmarks.peers.check_pydantic_peer``.

(a) catalog_core (``load_body`` + ``decode_upsert``) and the peer accept and refuse the same upsert
bodies: the sample bodies, valid edge cases and each rule broken once; where both accept, they
read the same values. (b) For products made by a real catalog, the peer's response bytes equal
the server's encoding of ``to_wire(product)``. Exits non-zero on the first disagreement.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs

import catalog_core
from benchmarks.peers import pydantic_peer as peer
from benchmarks.peers.sample import upsert_body
from catalog_core.wire.decode import decode_upsert, load_body

LIMITS: Final = catalog_core.Limits()
SAMPLE_COUNT: Final = 200
PRODUCT_COUNT: Final = 20
URL: Final = "https://cdn.example.com/p/front.jpg"
Case = tuple[str, dict[str, Any] | bytes, bool]


def _raw(body: dict[str, Any] | bytes) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _base(**changes: Any) -> dict[str, Any]:
    """Return sample body 7 with ``changes`` applied; a value of ``...`` removes the key."""
    body = upsert_body(7)
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def _image(**entry: Any) -> dict[str, Any]:
    return _base(images=[entry])


def _nested(levels: int) -> dict[str, Any]:
    """Return an object whose innermost value sits ``levels`` levels below it."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


def _object_of_size(size: int) -> dict[str, Any]:
    """Return an object that is exactly ``size`` bytes as compact JSON."""
    return {"k": "x" * (size - len('{"k":""}'))}


def _images(count: int) -> list[dict[str, Any]]:
    return [{"source": {"url": f"https://cdn.example.com/p/{n}.jpg"}} for n in range(count)]


def valid_cases() -> Iterator[Case]:
    """Yield bodies that both sides must accept: the samples, then the edges of each rule."""
    for i in range(SAMPLE_COUNT):
        yield f"sample {i}", upsert_body(i), True
    edges: dict[str, dict[str, Any] | bytes] = {
        "only externalId (R5 is the catalog's)": {"externalId": "a"},
        "empty images (R8 is the catalog's)": _base(images=[]),
        "every field null": _base(title=None, description=None, metadata=None, validForDays=None),
        "flat {url} image": _image(url=URL),
        "flat {fileKey, classifications}": _image(fileKey="front", classifications={"a": 1}),
        "source fileKey": _image(source={"fileKey": "front"}),
        "classifications null": _image(source={"url": URL}, classifications=None),
        "classifications {}": _image(source={"url": URL}, classifications={}),
        "imageUrls": _base(images=..., imageUrls=[URL, URL]),
        "unknown keys everywhere": _base(
            color="red", images=[{"source": {"url": URL, "alt": 1}, "x": None}]
        ),
        "snake_case keys are unknown": {"externalId": "a", "external_id": 1, "valid_for_days": 0},
        "externalId 256": _base(externalId="x" * 256),
        "externalId non-ASCII": _base(externalId="chemise-été-🙂"),
        "externalId with _anon_ inside": _base(externalId="x_anon_"),
        "title 1000": _base(title="t" * 1000),
        "description 10000": _base(description="d" * 10_000),
        "20 images": _base(images=_images(20)),
        "20 imageUrls": _base(images=..., imageUrls=[URL] * 20),
        "validForDays 1": _base(validForDays=1),
        "validForDays 365": _base(validForDays=365),
        "metadata 16384 bytes": _base(metadata=_object_of_size(16_384)),
        "metadata 63 deep": _base(metadata=_nested(63)),
        "metadata of every JSON type": _base(metadata={"a": [1, 2.5, True, None, "é", {}]}),
        "classifications 4096 bytes": _image(
            source={"url": URL}, classifications=_object_of_size(4096)
        ),
        "url 2048": _image(source={"url": URL + "?" + "q" * (2047 - len(URL))}),
        "url http, port, query": _image(source={"url": "http://cdn.example:8080/a.jpg?w=1#f"}),
        "url IPv6 host": _image(source={"url": "https://[::1]:8443/a.jpg"}),
        "url upper-case scheme": _image(source={"url": "HTTPS://cdn.example/a.jpg"}),
        "duplicate key, last wins": b'{"externalId":"","externalId":"a"}',
        "escaped surrogate pair": b'{"externalId":"\\ud83d\\ude00"}',
        "1e400 in an unknown key": b'{"externalId":"a","x":1e400}',
    }
    for name, body in edges.items():
        yield name, body, True


def invalid_cases() -> Iterator[Case]:
    """Yield bodies that both sides must refuse: each rule broken once."""
    bad: dict[str, dict[str, Any] | bytes] = {
        # the body (R30, R32)
        "not JSON": b'{"externalId": "a"',
        "empty body": b"",
        "JSON array": b"[]",
        "JSON null": b"null",
        "not UTF-8": b'{"externalId":"a\xff"}',
        "UTF-8 BOM": b'\xef\xbb\xbf{"externalId":"a"}',
        "trailing text": b'{"externalId":"a"} x',
        "raw control character in a string": b'{"externalId":"a","x":"\x01"}',
        # externalId (R2, R3)
        "externalId missing": _base(externalId=...),
        "externalId null": _base(externalId=None),
        "externalId empty": _base(externalId=""),
        "externalId number": _base(externalId=42),
        "externalId 257": _base(externalId="x" * 257),
        "externalId newline": _base(externalId="a\nb"),
        "externalId trailing newline": _base(externalId="a\n"),
        "externalId DEL": _base(externalId="a\x7f"),
        "externalId lone surrogate": b'{"externalId":"a\\ud800"}',
        "externalId reserved prefix": _base(externalId="_anon_abc"),
        # title, description (R7)
        "title 1001": _base(title="t" * 1001),
        "title number": _base(title=42),
        "title lone surrogate": b'{"externalId":"a","title":"\\udc00"}',
        "description 10001": _base(description="d" * 10_001),
        "description list": _base(description=["a"]),
        # metadata (R9)
        "metadata 16385 bytes": _base(metadata=_object_of_size(16_385)),
        "metadata list": _base(metadata=[]),
        "metadata string": _base(metadata="{}"),
        "metadata number": _base(metadata=42),
        "metadata 64 deep": _base(metadata=_nested(64)),
        "metadata NaN": b'{"externalId":"a","metadata":{"a":NaN}}',
        "metadata 1e400": b'{"externalId":"a","metadata":{"a":1e400}}',
        "metadata lone surrogate": b'{"externalId":"a","metadata":{"\\ud800":1}}',
        # validForDays (R10)
        "validForDays 0": _base(validForDays=0),
        "validForDays 366": _base(validForDays=366),
        "validForDays -1": _base(validForDays=-1),
        "validForDays true": _base(validForDays=True),
        'validForDays "30"': _base(validForDays="30"),
        "validForDays 2.0": _base(validForDays=2.0),
        "validForDays 1e2": b'{"externalId":"a","validForDays":1e2}',
        "validForDays 10**30": _base(validForDays=10**30),
        # images (R8, R12, R17)
        "21 images": _base(images=_images(21)),
        "images null": _base(images=None),
        "images string": _base(images=URL),
        "images object": _base(images={"source": {"url": URL}}),
        "image entry string": _base(images=[URL]),
        "image entry null": _base(images=[None]),
        "image entry empty": _image(),
        "image entry only classifications": _image(classifications={"a": 1}),
        "source null": _image(source=None),
        "source string": _image(source=URL),
        "source empty": _image(source={}),
        "source url and fileKey": _image(source={"url": URL, "fileKey": "f"}),
        "source and flat url": _image(source={"url": URL}, url=URL),
        "source and flat fileKey": _image(source={"url": URL}, fileKey="f"),
        "flat url and fileKey": _image(url=URL, fileKey="f"),
        "one bad image among good": _base(images=[*_images(2), {"source": {"url": "ftp://x"}}]),
        "images and imageUrls": _base(imageUrls=[URL]),
        "imageUrls null": _base(images=..., imageUrls=None),
        "imageUrls of objects": _base(images=..., imageUrls=[{"url": URL}]),
        "imageUrls bad url": _base(images=..., imageUrls=[URL, "javascript:alert(1)"]),
        "21 imageUrls": _base(images=..., imageUrls=[URL] * 21),
        # url (R13)
        "url null": _image(source={"url": None}),
        "url number": _image(source={"url": 42}),
        "url ftp": _image(source={"url": "ftp://cdn.example/a.jpg"}),
        "url relative": _image(source={"url": "/a.jpg"}),
        "url no host": _image(source={"url": "https:///a.jpg"}),
        "url scheme only": _image(source={"url": "https://"}),
        "url not a URL": _image(source={"url": "front.jpg"}),
        "url space": _image(source={"url": "https://cdn.example/a b.jpg"}),
        "url tab": _image(source={"url": "https://cdn.example/a\t.jpg"}),
        "url newline": _image(source={"url": "https://cdn.example/a.jpg\n"}),
        "url 2049": _image(source={"url": URL + "?" + "q" * (2048 - len(URL))}),
        "url bad port": _image(source={"url": "https://cdn.example:99999/a.jpg"}),
        "url bad IPv6": _image(source={"url": "https://[::1/a.jpg"}),
        "url text around brackets": _image(source={"url": "https://x[::1]y/a.jpg"}),
        "flat url bad": _image(url="mailto:a@b.c"),
        # fileKey (R14)
        "fileKey empty": _image(source={"fileKey": ""}),
        "fileKey number": _image(source={"fileKey": 1}),
        "fileKey null": _image(fileKey=None),
        # classifications (R16)
        "classifications string": _image(source={"url": URL}, classifications="tops"),
        "classifications list": _image(source={"url": URL}, classifications=["tops"]),
        "classifications 4097 bytes": _image(
            source={"url": URL}, classifications=_object_of_size(4097)
        ),
        "classifications 64 deep": _image(source={"url": URL}, classifications=_nested(64)),
        # the request limit (R33)
        "body over 32 MiB, otherwise valid": b'{"externalId":"a"' + b" " * 32 * 2**20 + b"}",
    }
    for name, body in bad.items():
        yield name, body, False


#: Inputs outside the rules' realistic range on which the two parsers differ (reported, not
#: asserted): catalog_core reads bodies with Python's json, the peer with pydantic's parser.
KNOWN_DIFFERENCES: Final[dict[str, bytes]] = {
    "NaN in an unknown key": b'{"externalId":"a","x":NaN}',
    "lone surrogate in an unknown key": b'{"externalId":"a","x":"\\ud800"}',
    "250 levels of nesting in an unknown key": b'{"externalId":"a","x":'
    + b"[" * 250
    + b"]" * 250
    + b"}",
}


def catalog_decode(raw: bytes) -> catalog_core.CatalogError | dict[str, Any]:
    """Return what catalog_core reads from ``raw``, or the error it raises."""
    try:
        command, _, _ = decode_upsert(load_body(raw, LIMITS), LIMITS)
    except catalog_core.CatalogError as exc:
        return exc
    fields = attrs.asdict(command, recurse=False)
    read = {key: value for key, value in fields.items() if value is not catalog_core.UNSET}
    if isinstance(command.images, tuple):
        read["images"] = [(i.url, i.file_key, i.classifications) for i in command.images]
    return read


def _peer_image(image: peer.ImageIn) -> tuple[str | None, str | None, dict[str, Any] | None]:
    source = image.source if "source" in image.model_fields_set else image  # or the flat shape
    return source.url, source.file_key, image.classifications or None  # {} means none (R16)


def peer_decode(raw: bytes) -> ValueError | dict[str, Any]:
    """Return what the peer reads from ``raw`` in catalog_core's terms, or the error it raises."""
    try:
        body = peer.decode_upsert_pydantic(raw)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        return exc
    given = body.model_fields_set
    read = {key: getattr(body, key) for key in given if key not in ("images", "image_urls")}
    if "image_urls" in given:
        read["images"] = [(url, None, None) for url in body.image_urls]
    elif "images" in given:
        read["images"] = [_peer_image(image) for image in body.images]
    return read


def check_decode() -> int:
    """Compare both decoders on every case; return how many cases were checked.

    Raises:
        AssertionError: the two disagree on a case, or either contradicts what the case expects.
    """
    count = 0
    for name, body, expected in (*valid_cases(), *invalid_cases()):
        raw = _raw(body)
        ours, theirs = catalog_decode(raw), peer_decode(raw)
        ours_ok, theirs_ok = isinstance(ours, dict), isinstance(theirs, dict)
        assert ours_ok == expected, f"{name}: catalog_core accepted={ours_ok}: {ours!r}"[:600]
        assert theirs_ok == expected, f"{name}: pydantic accepted={theirs_ok}: {theirs!r}"[:600]
        if expected:
            assert ours == theirs, f"{name}: read differently:\n {ours!r}\n {theirs!r}"[:2000]
        count += 1
    return count


def _clock(start: datetime) -> Callable[[], datetime]:
    ticks = iter(range(10**6))
    return lambda: start + timedelta(milliseconds=1001 * next(ticks), microseconds=777)


def sample_products() -> list[catalog_core.Product]:
    """Return products a real catalog made from sample bodies, covering every wire field state."""
    catalog = catalog_core.Catalog(
        catalog_core.MemoryRepository(), clock=_clock(datetime(2026, 5, 13, 10, tzinfo=UTC))
    )
    products = [catalog.upsert("acme", upsert_body(i)).product for i in range(PRODUCT_COUNT)]
    # Nulls and absences: kept forever, no texts, no metadata, no classifications.
    bare = {**upsert_body(100), "validForDays": None, "title": None, "description": None}
    bare.update(metadata=None, images=[{"source": {"url": URL}}, {"url": URL}])
    products.append(catalog.upsert("acme", bare).product)
    products.append(catalog.upsert("acme", {"externalId": "min", "imageUrls": [URL]}).product)
    # lastUsedAt set, and text that JSON escapes.
    catalog.upsert("acme", {**upsert_body(101), "title": 'Tab\there "quoted" \\ é 🙂 \u2028'})
    products.append(catalog.use("acme", {"externalId": upsert_body(101)["externalId"]}).product)
    rich = {"price": {"amount": 19.9, "currency": "EUR"}, "n": [0, -1, 10**20, 1e16, True, None]}
    products.append(catalog.upsert("acme", {**upsert_body(102), "metadata": rich}).product)
    return products


def server_bytes(product: catalog_core.Product) -> bytes:
    """Return the body the server sends for ``product`` (``catalog_core.server.responses``)."""
    wire = catalog_core.to_wire(product)
    return json.dumps(wire, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def check_encode() -> int:
    """Compare the peer's bytes with the server's for every sample product; return the count.

    Raises:
        AssertionError: the bytes differ for a product.
    """
    try:  # the server's own encoder, when the server extra is installed
        from catalog_core.server.responses import json_response
    except ImportError:
        json_response = None  # type: ignore[assignment]
    products = sample_products()
    for product in products:
        expected = server_bytes(product)
        if json_response is not None:
            assert json_response(catalog_core.to_wire(product)).body == expected
        got = peer.encode_product_pydantic(peer.product_out_from(product))
        assert got == expected, f"{product.external_id}:\n {expected!r}\n {got!r}"
    return len(products)


def check_limits() -> None:
    """Assert that the peer's sizes are catalog_core's default ``Limits`` (R33)."""
    peer_sizes = {
        "max_request_bytes": peer.MAX_REQUEST_BYTES,
        "max_external_id_length": peer.MAX_EXTERNAL_ID_LENGTH,
        "max_title_length": peer.MAX_TITLE_LENGTH,
        "max_description_length": peer.MAX_DESCRIPTION_LENGTH,
        "max_images": peer.MAX_IMAGES,
        "max_metadata_bytes": peer.MAX_METADATA_BYTES,
        "max_classifications_bytes": peer.MAX_CLASSIFICATIONS_BYTES,
        "max_url_length": peer.MAX_URL_LENGTH,
    }
    wrong = {name: size for name, size in peer_sizes.items() if getattr(LIMITS, name) != size}
    assert not wrong, f"the peer's sizes differ from Limits(): {wrong}"


def main() -> int:
    """Run every check and print a summary.

    Returns:
        The exit status: 0 when every check passed.
    """
    check_limits()
    valid = sum(1 for _ in valid_cases())
    invalid = sum(1 for _ in invalid_cases())
    decoded = check_decode()
    print(f"decode: {decoded} bodies agree ({valid} accepted by both, {invalid} refused by both)")
    print(f"encode: {check_encode()} products encode to identical bytes")
    for name, raw in KNOWN_DIFFERENCES.items():
        ours, theirs = catalog_decode(raw), peer_decode(raw)
        print(
            f"known difference, {name}: catalog_core "
            f"{'accepts' if isinstance(ours, dict) else 'refuses'}, pydantic "
            f"{'accepts' if isinstance(theirs, dict) else 'refuses'}"
        )
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
