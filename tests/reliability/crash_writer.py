"""A writer for the crash tests: upserts without end, printing each write once it is acknowledged.

``python -m tests.reliability.crash_writer TARGET MODE SEED``: TARGET is a repository URL or path,
MODE ``single`` (one upsert per transaction) or ``bulk`` (``upsert_many``, 50 per transaction).
Each acknowledged write prints ``ack ID VERSION N``. Every product's metadata, images and blob
carry the same ``N``, so a product caught half-written would show two different ones.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Iterator

import catalog_core as cc

HOT = 20  # products written over and over
JPEG_HEADER = b"\xff\xd8\xff\xe0"


def image_bytes(n: int) -> bytes:
    """A distinct small JPEG-headed blob for write ``n``."""
    return JPEG_HEADER + hashlib.sha256(str(n).encode()).digest() * 4


def payload(n: int, external_id: str, with_file: bool) -> dict[str, object]:
    images: list[dict[str, object]] = [
        {"source": {"url": f"https://cdn.example/{external_id}/{n}.jpg"}}
    ]
    if with_file:
        images.append({"source": {"fileKey": "f"}})
    return {
        "externalId": external_id,
        "title": f"write {n}",
        "metadata": {"n": n, "filler": "x" * (n % 997)},
        "images": images,
    }


def main() -> None:
    target, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    catalog = cc.Catalog(cc.open_repository(target))
    out = sys.stdout
    if mode == "single":
        n = seed * 1_000_000
        while True:
            n += 1
            external_id = f"p{rng.randrange(HOT)}"
            with_file = rng.random() < 0.3
            files = {"f": cc.Upload(image_bytes(n), "image/jpeg")} if with_file else None
            result = catalog.upsert("acme", payload(n, external_id, with_file), files=files)
            out.write(f"ack {external_id} {result.product.version} {n}\n")
            out.flush()
    else:

        def lines() -> Iterator[bytes]:
            n = seed * 1_000_000
            while True:
                n += 1
                external_id = f"b{rng.randrange(HOT * 50)}"
                yield json.dumps(payload(n, external_id, False)).encode()

        for result in catalog.upsert_many("acme", lines(), batch_size=50):
            assert isinstance(result, cc.UpsertResult)
            product = result.product
            out.write(f"ack {product.external_id} {product.version} {product.metadata['n']}\n")
            out.flush()


if __name__ == "__main__":
    main()
