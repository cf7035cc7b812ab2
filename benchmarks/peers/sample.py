"""Realistic, deterministic upsert bodies for the benchmarks (the same payload for every peer)."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["upsert_body"]

# (category, noun, sizes): classifications are free-form JSON objects (R16); these values follow
# the shop catalog in examples/catalog.jsonl.
_KINDS: Final = (
    ("tops", "Crew Tee", ["XS", "S", "M", "L", "XL"]),
    ("outerwear", "Field Jacket", ["S", "M", "L", "XL", "XXL"]),
    ("dresses", "Wrap Dress", ["34", "36", "38", "40", "42"]),
    ("bottoms", "Straight-Leg Jeans", ["26", "28", "30", "32", "34"]),
    ("knitwear", "Cable Sweater", ["S", "M", "L", "XL"]),
    ("shoes", "Canvas Sneaker", ["38", "39", "40", "41", "42", "43", "44"]),
)
_BRANDS: Final = (
    "Northfold",
    "Harrow & Pike",
    "Solène",
    "Ironbridge",
    "Alta",
    "Maison Cap",
    "Pace",
)
_COLORS: Final = ("white", "navy", "olive", "charcoal", "terracotta", "ecru", "indigo", "sage")
_DESCRIPTION: Final = (
    "A {color} {noun} by {brand}, cut for an easy everyday fit from responsibly sourced "
    "materials. Reinforced seams, a soft hand feel and a finish that keeps its shape wash after "
    "wash. Style number {i}."
)


def upsert_body(i: int) -> dict[str, Any]:
    """Return upsert payload number ``i``: the same dict for the same ``i``, always.

    Args:
        i: the payload number; it picks the id, the texts, the metadata and the image URLs.

    Returns:
        A JSON object with ``externalId`` (``sku-0000042``), ``title``, a description of about
        200 characters, ``metadata`` (brand, color, sizes), ``validForDays`` 30 and two https
        images with classifications.
    """
    category, noun, sizes = _KINDS[i % len(_KINDS)]
    brand = _BRANDS[i % len(_BRANDS)]
    color = _COLORS[i % len(_COLORS)]
    external_id = f"sku-{i:07d}"
    base = f"https://cdn.example.com/products/{external_id}"
    return {
        "externalId": external_id,
        "title": f"{brand} {noun} — {color.capitalize()}",
        "description": _DESCRIPTION.format(color=color, noun=noun.lower(), brand=brand, i=i),
        "metadata": {"brand": brand, "color": color, "sizes": list(sizes)},
        "validForDays": 30,
        "images": [
            {
                "source": {"url": f"{base}/front.jpg"},
                "classifications": {"category": category, "view": "front"},
            },
            {
                "source": {"url": f"{base}/back.jpg"},
                "classifications": {"category": category, "view": "back"},
            },
        ],
    }
