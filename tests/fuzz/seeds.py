"""The seed inputs of the fuzz corpus: the public page's request bodies, then bodies of every mode.

Run ``.venv/bin/python -m tests.fuzz.seeds DIR`` to write them to ``DIR`` as ``seed-<name>``
files; ``tests/fuzz/corpus`` holds them beside what the fuzzer found. Each input starts with its
mode byte (see :mod:`tests.fuzz.target`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Final

from catalog_core.testing.strategies import IMAGE_HEADERS

ROOT: Final = Path(__file__).resolve().parents[2]
PAGE: Final = ROOT / "tests" / "data" / "upsert_product_page.md"
BACK_JPG: Final = ROOT / "examples" / "back.jpg"
BOUNDARY: Final = "------------------------fuzz0123456789"
_JPEG: Final = IMAGE_HEADERS["image/jpeg"] + b"\x00" * 4
_PNG: Final = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 4
_FRONT: Final = {"source": {"url": "https://cdn.example/front.jpg"}}


def page_bodies() -> dict[str, bytes]:
    """The request bodies of the page's curl examples: the JSON of ``-d``, ``data`` of ``-F``."""
    text = PAGE.read_text(encoding="utf-8")
    commands = re.findall(r"```bash ([^\n]*?) theme=\{null\}\n(.*?)```", text, re.S)
    bodies: dict[str, bytes] = {}
    for title, command in commands:
        name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        found = re.search(r"-d '(.*?)'", command, re.S) or re.search(
            r"-F 'data=(.*?)'", command, re.S
        )
        assert found, title
        bodies[name] = found[1].encode("utf-8")
    return bodies


def quoted(text: str) -> str:
    """``text`` as a quoted header parameter: backslash and quote escaped (RFC 9110 §5.6.4)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def multipart(
    parts: list[tuple[str, bytes, str | None, str | None]], boundary: str = BOUNDARY
) -> bytes:
    """A ``multipart/form-data`` body as curl sends it: ``(name, bytes, filename, type)`` parts."""
    out = b""
    for name, data, filename, content_type in parts:
        disposition = f"Content-Disposition: form-data; name={quoted(name)}"
        if filename is not None:
            disposition += f"; filename={quoted(filename)}"
        head = f"--{boundary}\r\n{disposition}\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        out += head.encode("utf-8") + b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def seeds() -> dict[str, bytes]:
    """Every seed input by name."""
    page = page_bodies()
    json_url, multipart_data = page["json-url-images"], page["multipart-url-uploaded-bytes"]
    form = f"multipart/form-data; boundary={BOUNDARY}".encode()
    found: dict[str, bytes] = {}
    # 0: upsert bodies. The page's three JSON bodies, its 409, and each way to go wrong.
    for name, body in page.items():
        found[f"upsert-page-{name}"] = b"0" + body
    found["upsert-page-reserved-409"] = b"0" + json_url.replace(b'"shirt-42"', b'"_anon_foo"')
    upserts: dict[str, Any] = {
        "deprecated-shapes": {
            "externalId": "flat",
            "images": [{"url": "https://a.example/x.jpg", "classifications": {"k": 1}}],
            "extra": True,
        },
        "image-urls": {"externalId": "legacy", "imageUrls": ["http://a.example/1.png"]},
        "every-field": {
            "externalId": "seasonal-001",
            "title": None,
            "description": "",
            "metadata": {"sku": "S-1", "n": [1, 2.5, None, True, -0.0, 1e-07]},
            "validForDays": None,
            "images": [{"source": {"url": "https://[::1]:8080/a?b#c"}, "classifications": {}}],
        },
        "field-problems": {
            "externalId": "shirt-42",
            "title": 1,
            "metadata": [],
            "validForDays": 2.0,
            "images": [{"source": {"url": "ftp://a.example/x"}}, 3],
        },
        "image-input-problems": {
            "externalId": "x",
            "images": [{"source": {}}, {"source": {"url": "https://a.b/", "fileKey": "k"}}],
        },
        "file-key-in-json": {"externalId": "x", "images": [{"source": {"fileKey": "back"}}]},
        "no-images-on-create": {"externalId": "new-one", "title": "t"},
        "empty-images": {"externalId": "shirt-42", "images": []},
        "images-and-image-urls": {"externalId": "x", "images": [_FRONT], "imageUrls": []},
        "missing-id": {"title": "no id"},
        "deep-metadata": {"externalId": "x", "metadata": json.loads("[" * 70 + "]" * 70)},
    }
    for name, value in upserts.items():
        found[f"upsert-{name}"] = b"0" + _json(value)
    # At and over the target's small limits (tests.fuzz.target.LIMITS).
    at_limits = {
        "externalId": "x" * 64,
        "title": "t" * 100,
        "images": [{"source": {"url": "https://a.example/" + "u" * 82}}] * 5,
    }
    found["upsert-at-the-limits"] = b"0" + _json(at_limits)
    found["upsert-over-the-limits"] = b"0" + _json(
        {**at_limits, "title": "t" * 101, "images": at_limits["images"] * 2}
    )
    found["upsert-payload-too-large"] = b"0" + _json({"externalId": "x", "title": "t" * 3100})
    found["upsert-not-an-object"] = b"0[]"
    found["upsert-not-utf8"] = b'0{"externalId": "\xff"}'
    found["upsert-lone-surrogate"] = b'0{"externalId": "a\\ud800"}'
    found["upsert-nan"] = b'0{"externalId": "x", "validForDays": NaN}'
    found["upsert-huge-number"] = b'0{"externalId": "x", "validForDays": ' + b"9" * 40 + b"}"
    # 1: try-on bodies.
    try_ons: dict[str, Any] = {
        "reference": {"products": [{"externalId": "shirt-42"}], "personImage": "p"},
        "inline": {"products": [{"externalId": "shirt-9", "images": [_FRONT], "title": "t"}]},
        "one-shot": {"products": [{"images": [_FRONT], "validForDays": 3}]},
        "deprecated-product": {"product": {"externalId": "shirt-42", "validForDays": 7}},
        "two-items": {"products": [{"externalId": "a"}, {"externalId": "b"}]},
        "both-forms": {"products": [], "product": {}},
        "item-not-object": {"products": ["shirt-42"]},
    }
    for name, value in try_ons.items():
        found[f"try-on-{name}"] = b"1" + _json(value)
    # 2: use items.
    uses: dict[str, Any] = {
        "reference": {"externalId": "shirt-42"},
        "unknown-reference": {"externalId": "nope"},
        "anon-reference": {"externalId": "_anon_abcdefghijklmnopqrstuvwx"},
        "one-shot-forever": {"images": [_FRONT], "validForDays": None},
        "inline-anon": {"externalId": "_anon_x", "title": "t"},
    }
    for name, value in uses.items():
        found[f"use-{name}"] = b"2" + _json(value)
    # 3: bodies as the server reads them, behind their Content-Type.
    found["server-page-json-url-images"] = b"3application/json\n" + json_url
    found["server-json-charset"] = b"3application/json; charset=utf-8\n" + json_url
    found["server-page-multipart"] = (
        b"3"
        + form
        + b"\n"
        + multipart(
            [
                ("data", multipart_data, None, None),
                ("back", BACK_JPG.read_bytes(), "back.jpg", "image/jpeg"),
            ]
        )
    )
    data = _json({"externalId": "m", "images": [{"source": {"fileKey": "a"}}, {"fileKey": "b"}]})
    found["server-multipart-data-as-file"] = (
        b"\x7f"  # mode 3, in 32 chunks
        + form
        + b"\n"
        + multipart(
            [
                ("data", data, "data.json", "application/json"),
                ("a", _PNG, "a.png", "image/png"),
                ("b", _JPEG, None, None),
                ("unused", b"x", "u.bin", None),
            ]
        )
    )
    one_file = _json({"externalId": "m", "images": [{"source": {"fileKey": "a"}}]})
    found["server-multipart-not-an-image"] = (
        b"3"
        + form
        + b"\n"
        + multipart([("data", one_file, None, None), ("a", b"GIF89a", "a", None)])
    )
    found["server-multipart-file-too-large"] = (
        b"3"
        + form
        + b"\n"
        + multipart([("data", one_file, None, None), ("a", _JPEG + b"\x00" * 1024, "a", None)])
    )
    found["server-multipart-missing-data"] = (
        b"3" + form + b"\n" + multipart([("a", _PNG, "a", None)])
    )
    found["server-multipart-repeated-name"] = (
        b"3" + form + b"\n" + multipart([("data", data, None, None), ("data", data, None, None)])
    )
    found["server-multipart-cut-short"] = (
        b"3" + form + b"\n" + multipart([("data", data, None, None)])[:-20]
    )
    found["server-multipart-no-boundary"] = b"3multipart/form-data\n--x--\r\n"
    found["server-text-plain"] = b"3text/plain\n{}"
    return found


def main() -> None:
    """Write every seed to the directory named on the command line."""
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (directory / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
