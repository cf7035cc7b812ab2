"""Coverage-guided fuzzing of the body decoder with atheris (libFuzzer), run as a module::

    .venv/bin/python -m tests.fuzz.fuzz_body NEW_INPUTS_DIR tests/fuzz/corpus \
        -dict=tests/fuzz/body.dict -max_len=4096 -max_total_time=60

from the repository's root. To fold new inputs into the corpus, keeping only those that reach
new code: ``-merge=1 tests/fuzz/corpus NEW_INPUTS_DIR``.

Every argument goes to libFuzzer: corpus directories (new inputs are written to the first),
``-max_total_time``, ``-rss_limit_mb``, ``-timeout``, ``-merge=1``... The target is
:class:`tests.fuzz.target.Target`; catalog_core and python-multipart are imported under atheris'
instrumentation, so their branches guide the mutations. An input whose answer is neither a
product nor a catalogued error is a crash: libFuzzer stops, prints the traceback, and writes the
input to ``crash-<sha1>`` (under ``-artifact_prefix``).
"""

from __future__ import annotations

import logging
import shlex
import sys


def main(argv: list[str] | None = None) -> None:
    """Instrument the library, then fuzz the target until libFuzzer stops."""
    import atheris

    # python-multipart logs every malformed body it meets; the answers are what is checked.
    logging.getLogger("python_multipart").setLevel(logging.CRITICAL)

    with atheris.instrument_imports(include=["catalog_core", "python_multipart"]):
        from tests.fuzz.target import Target

    target = Target()

    def test_one_input(data: bytes) -> None:
        target(data)

    argv = list(sys.argv if argv is None else argv)
    # For -merge=1 and -fork, libFuzzer runs `argv[0] ARGS...` through the shell: this module.
    argv[0] = f"{shlex.quote(sys.executable)} -m tests.fuzz.fuzz_body"
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
