"""Helpers shared by the tests: a controllable clock, minimal image bytes, and run sizes."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from typing import TypeVar

import pytest

import catalog_core as cc
from catalog_core.testing._book import R31_PRODUCT_KEYS
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
    "png",
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


# Starts its command from a small process and waits for it. Linux gives a process started by
# exec the peak RSS of the process it replaced (subprocess starts children with vfork, which
# shares the parent's memory, so a child of the test runner starts at the runner's peak); from
# this launcher, a child starts at the launcher's. With "report", the child's stdout is dropped
# and its own peak, in KiB, is the launcher's last line.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "report = sys.argv[1] == 'report'\n"
    "child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL if report else None)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "if report:\n"
    "    print(f'peak-rss-kib={usage.ru_maxrss}')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def from_a_fresh_process(command: list[str], *, report_peak: bool = False) -> list[str]:
    """``command`` run from a small launcher, so that its peak RSS is its own, not the test
    runner's; with ``report_peak``, its stdout is dropped and the launcher prints
    ``peak-rss-kib=N`` (the command's own peak) as its last line."""
    return [sys.executable, "-c", _LAUNCHER, "report" if report_peak else "run", *command]


def png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    """A real PNG of one colour, which browsers decode (made with zlib and struct, no Pillow)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )
