"""The test helpers that measurements rely on."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import from_a_fresh_process

# A parent that once held 300 MiB starts the same child directly and from the launcher; each
# child prints its own peak RSS as the kernel reports it, in KiB.
_PARENT = """
import resource, subprocess, sys
from tests.helpers import from_a_fresh_process
held = bytearray(300 * 2**20)
for i in range(0, len(held), 4096):
    held[i] = 1
del held
child = [sys.executable, "-c", "import resource; print(resource.getrusage(0).ru_maxrss)"]
print(subprocess.run(child, capture_output=True, text=True).stdout.strip())
print(subprocess.run(from_a_fresh_process(child), capture_output=True, text=True).stdout.strip())
"""


def test_a_command_from_a_fresh_process_starts_with_its_own_peak_memory_not_its_parents() -> None:
    """A child of the test runner starts at the runner's peak RSS, which libFuzzer's
    -rss_limit_mb then counts as the fuzzer's own (a long run failed with an "out-of-memory" at
    its first input); from the launcher it starts at its own."""
    ran = subprocess.run(
        [sys.executable, "-c", _PARENT], capture_output=True, text=True, check=True, timeout=60
    )
    direct, fresh = (int(line) for line in ran.stdout.split())
    assert direct > 300 * 1024
    assert fresh < 100 * 1024


def test_the_launcher_passes_the_commands_status_and_output_on() -> None:
    ran = subprocess.run(
        from_a_fresh_process([sys.executable, "-c", "print('out'); raise SystemExit(3)"]),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (ran.returncode, ran.stdout) == (3, "out\n")
