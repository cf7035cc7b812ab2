"""Helpers shared by the tests: a controllable clock, minimal image bytes, and run sizes."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from typing import TypeVar

import pytest

import catalog_core as cc
from catalog_core.testing.clock import START, FakeClock
from catalog_core.testing.strategies import IMAGE_HEADERS, R29_STATUS

__all__ = [
    "AVIF",
    "HEIC",
    "JPEG",
    "PNG",
    "R29_STATUS",
    "R31_PRODUCT_KEYS",
    "START",
    "WEBP",
    "FakeClock",
    "listed",
    "private_mount_namespace",
    "run_size",
]

_Size = TypeVar("_Size", int, float)

# Small images of each recognised type (R15): the kit's leading bytes, then some padding.
JPEG = IMAGE_HEADERS["image/jpeg"] + b"\x00" * 32
PNG = IMAGE_HEADERS["image/png"] + b"\x00" * 32
WEBP = IMAGE_HEADERS["image/webp"] + b"\x00" * 32
HEIC = IMAGE_HEADERS["image/heic"] + b"\x00" * 32
AVIF = IMAGE_HEADERS["image/avif"] + b"\x00" * 32

#: The keys of a product on the wire, in order (R31); ``account`` and ``version`` are not there.
R31_PRODUCT_KEYS = (
    "externalId",
    "title",
    "description",
    "metadata",
    "validForDays",
    "expiresAt",
    "lastUsedAt",
    "createdAt",
    "updatedAt",
    "images",
)


def run_size(variable: str, ci: _Size, long: _Size) -> _Size:
    """How long or how large a bounded reliability run is.

    ``CATALOG_CORE_<variable>`` wins when it is set; otherwise ``CATALOG_CORE_LONG=1`` (the one
    command of docs/reliability.md) picks the long form, and anything else the CI form.
    """
    value = os.environ.get(f"CATALOG_CORE_{variable}")
    if value is not None:
        return type(ci)(value)
    return long if os.environ.get("CATALOG_CORE_LONG") == "1" else ci


def listed(catalog: cc.Catalog, account: str) -> list[cc.Product]:
    """Every live product of ``account``, walked page by page with cursors (R24)."""
    products: list[cc.Product] = []
    cursor = None
    while True:
        page = catalog.list(account, limit=200, cursor=cursor)
        products += page.items
        if not page.has_more:
            return products
        cursor = page.next_cursor


@functools.cache
def _unshare() -> tuple[str, ...] | None:
    """``unshare`` with a private mount namespace, or ``None`` where the system forbids one."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    # --map-root-user lets this run without real root, where user namespaces are allowed.
    command = (unshare, "--mount", "--map-root-user")
    probe = subprocess.run([*command, "true"], capture_output=True, timeout=30, check=False)
    return command if probe.returncode == 0 else None


def private_mount_namespace(purpose: str) -> list[str]:
    """The command prefix that runs a command in a private mount namespace, as its root.

    Skips the test where the system forbids one (util-linux's ``unshare``, Linux), unless
    ``CATALOG_CORE_REQUIRE_TMPFS=1`` (set by CI) makes that a failure.
    """
    command = _unshare()
    if command is None:
        why = f"no private mount namespace here (util-linux's unshare, Linux) for {purpose}"
        if os.environ.get("CATALOG_CORE_REQUIRE_TMPFS") == "1":
            pytest.fail(why + " (CATALOG_CORE_REQUIRE_TMPFS=1 forbids skipping)")
        pytest.skip(why)
    return list(command)
