"""Numbers longer than any field takes, wherever JSON text can put them (R9, R10, R16, R18, R30).

Python refuses to turn a digit string of more than 4,300 digits into an int (``sys.
get_int_max_str_digits``), and without that limit the conversion costs time quadratic in the
length. The catalog reads such a number without converting it: an unknown key holding one is
ignored (R18), a field holding one is refused at its path, and none of it depends on the limit the
process has set.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core import _json
from catalog_core.wire import split_multipart
from catalog_core.wire.encode import to_wire_json

IMAGE = {"source": {"url": "https://cdn.example/a.jpg"}}
#: ``1000…0``: the 5,000 digits of the issue that reported this.
DIGITS_5000 = "1" + "0" * 4999

#: Number forms JSON text allows that no field takes: integers past 4,300 digits (the catalog's
#: bound, which is also Python's default int-to-text limit), and floats past the double range,
#: which read as infinity (what ``json`` has always made of them).
FORMS = {
    "5,000 digits": DIGITS_5000,
    "negative": "-" + DIGITS_5000,
    "4,301 digits": "9" * 4301,
    "a fraction": DIGITS_5000 + ".5",
    "an exponent": DIGITS_5000 + "e2",
    "1e400": "1e400",
    "-1e400": "-1E+400",
}

# Where a number can be: (the body with N for the number, the call, the expected outcome).
# An outcome is ("ok", warning paths) or (code, detail path).
PLACES: dict[str, tuple[str, str, tuple[str, Any]]] = {
    # The three examples, verbatim.
    "an unknown field": (
        '{"externalId": "p", "images": [IMAGE], "junk": N}',
        "upsert",
        ("ok", ["junk"]),
    ),
    "validForDays": (
        '{"externalId": "p", "images": [IMAGE], "validForDays": N}',
        "upsert",
        ("VALIDATION_FAILED", "validForDays"),
    ),
    "no externalId": (
        '{"images": [IMAGE], "validForDays": N, "junk": N}',
        "upsert",
        ("EXTERNAL_ID_REQUIRED", "externalId"),
    ),
    # Every other place.
    "metadata": (
        '{"externalId": "p", "images": [IMAGE], "metadata": {"n": N}}',
        "upsert",
        ("VALIDATION_FAILED", "metadata"),
    ),
    "deep in metadata": (
        '{"externalId": "p", "images": [IMAGE], "metadata": {"a": [{"b": [1, N]}]}}',
        "upsert",
        ("VALIDATION_FAILED", "metadata"),
    ),
    "classifications": (
        '{"externalId": "p", "images": [{"source": {"url": "https://cdn.example/a.jpg"},'
        ' "classifications": {"n": N}}]}',
        "upsert",
        ("VALIDATION_FAILED", "images.0.classifications"),
    ),
    "title": (
        '{"externalId": "p", "images": [IMAGE], "title": N}',
        "upsert",
        ("VALIDATION_FAILED", "title"),
    ),
    "externalId": (
        '{"externalId": N, "images": [IMAGE]}',
        "upsert",
        ("VALIDATION_FAILED", "externalId"),
    ),
    "nested in unknown junk": (
        '{"externalId": "p", "images": [IMAGE], "junk": {"a": [[N], {"b": N}]}}',
        "upsert",
        ("ok", ["junk"]),
    ),
    "an unknown field of an image": (
        '{"externalId": "p", "images": [{"source": {"url": "https://cdn.example/a.jpg"},'
        ' "alt": N}]}',
        "upsert",
        ("ok", ["images.0.alt"]),
    ),
    "validForDays of a use item": (
        '{"externalId": "p", "images": [IMAGE], "validForDays": N}',
        "use",
        ("VALIDATION_FAILED", "validForDays"),
    ),
    "validForDays of a one-shot use item": (
        '{"images": [IMAGE], "validForDays": N}',
        "use",
        ("VALIDATION_FAILED", "validForDays"),
    ),
    "an unknown field of a use item": (
        '{"externalId": "p", "images": [IMAGE], "junk": N}',
        "use",
        ("ok", ["junk"]),
    ),
    "validForDays of a try-on item": (
        '{"products": [{"externalId": "p", "images": [IMAGE], "validForDays": N}]}',
        "try_on",
        ("VALIDATION_FAILED", "products.0.validForDays"),
    ),
    "a try-on field": (
        '{"products": [{"externalId": "p", "images": [IMAGE]}], "seed": N}',
        "try_on",
        ("ok", []),
    ),
    "validForDays of a multipart data part": (
        '{"externalId": "p", "images": [IMAGE], "validForDays": N}',
        "multipart",
        ("VALIDATION_FAILED", "validForDays"),
    ),
    "an unknown field of a multipart data part": (
        '{"externalId": "p", "images": [IMAGE], "junk": N}',
        "multipart",
        ("ok", ["junk"]),
    ),
}


@contextlib.contextmanager
def int_text_limit(digits: int | None) -> Iterator[None]:
    """Run with Python's int-to-text limit set to ``digits`` (0: none), then restore it."""
    before = sys.get_int_max_str_digits()
    if digits is not None:
        sys.set_int_max_str_digits(digits)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


def outcome(body: bytes, call: str) -> tuple[str, Any]:
    """Apply ``body`` to a fresh catalog as ``call`` does; a refusal must write nothing."""
    catalog = cc.Catalog(cc.MemoryRepository())
    try:
        if call == "multipart":
            data, files = split_multipart({"data": body}, catalog.limits)
            result: Any = catalog.upsert("acme", data, files)
        else:
            result = getattr(catalog, call)("acme", body)
    except cc.CatalogError as exc:
        assert catalog.list("acme").items == ()
        return exc.code, exc.details[0].path if exc.details else None
    return "ok", [w.path for w in result.warnings]


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("place", list(PLACES))
def test_r9_r10_r18_r30_a_number_no_field_takes_is_ignored_or_refused_at_its_path(
    place: str, form: str
) -> None:
    """R18: ignored with a warning where the key is unknown; R9, R10, R16: refused at the field's
    path; R30: an id is still required first. The same under any int-to-text limit of Python
    (none, its minimum, its default): the parse does not depend on it."""
    template, call, expected = PLACES[place]
    body = template.replace("IMAGE", json.dumps(IMAGE)).replace("N", FORMS[form]).encode()
    for limit in (None, 0, 640):
        with int_text_limit(limit):
            assert outcome(body, call) == expected, (limit, body[:80])


def test_r9_r10_an_integer_of_4300_digits_is_a_number_and_one_more_digit_is_refused(
    catalog: cc.Catalog,
) -> None:
    """4,300 digits is the bound, as JSON text and as a mapping, stored and read back exactly on
    every backend, whether Python's own limit is its default or none. A process that lowers it
    below 4,300 digits gets longer numbers refused the same way: the catalog could not write
    them back."""
    longest = -int("9" * 4300)
    head = f'{{"externalId": "p", "images": [{json.dumps(IMAGE)}], '
    for limit in (None, 0, 640):
        with int_text_limit(limit):
            body = head + f'"metadata": {{"n": {"-" + "9" * 4300}}}}}'
            if limit == 640:
                with pytest.raises(cc.ValidationFailed) as caught:
                    catalog.upsert("acme", body.encode())
                assert [d.path for d in caught.value.details] == ["metadata"]
            else:
                product = catalog.upsert("acme", body.encode()).product
                assert product.metadata == {"n": longest}
                assert catalog.get("acme", "p").metadata == {"n": longest}
                assert json.loads(to_wire_json(product))["metadata"] == {"n": longest}
            refused: list[tuple[str, dict[str, Any] | bytes]] = [
                ("metadata", (head + '"metadata": {"n": 1' + "0" * 4300 + "}}").encode()),
                ("metadata", {"externalId": "q", "images": [IMAGE], "metadata": {"n": 10**4300}}),
                ("validForDays", {"externalId": "q", "images": [IMAGE], "validForDays": 10**4300}),
            ]
            for path, payload in refused:
                with pytest.raises(cc.ValidationFailed) as caught:
                    catalog.upsert("acme", payload)
                assert [d.path for d in caught.value.details] == [path]


def test_r10_r18_a_30_mib_number_is_read_in_linear_time_whatever_pythons_limit() -> None:
    """int() of 30 MiB of digits would take hours without Python's limit: the parse never calls
    it for a number no field takes, so a process that lifts the limit is as quick as one that
    keeps it. Run in a subprocess that lifts it, so that a regression ends at a timeout."""
    script = (
        "import time, catalog_core as cc\n"
        "digits = b'7' * (30 * 2**20)\n"
        "catalog = cc.Catalog(cc.MemoryRepository())\n"
        'head = b\'{"externalId": "p", "images": [{"source": {"url": "https://a.example/"}}]\'\n'
        "started = time.perf_counter()\n"
        "result = catalog.upsert('acme', head + b', \"junk\": ' + digits + b'}')\n"
        "assert [w.path for w in result.warnings] == ['junk'], result.warnings\n"
        "try:\n"
        "    catalog.upsert('acme', head + b', \"validForDays\": -' + digits + b'}')\n"
        "except cc.ValidationFailed as exc:\n"
        "    assert [d.path for d in exc.details] == ['validForDays'], exc\n"
        "print(round(time.perf_counter() - started, 2))\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-X", "int_max_str_digits=0", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    took = time.monotonic() - started
    print(f"two 30 MiB numbers read in {done.stdout.strip()} s ({took:.1f} s with start-up)")


#: Run in a process without orjson, as a base install is (attrs, cattrs, sqlite-utils): it counts
#: the Python calls the standard library's parser makes, in ``(key, count)`` lines.
_CALLS_WITHOUT_ORJSON = """
import json, sys, tempfile
sys.modules["orjson"] = None
import catalog_core as cc
from catalog_core import _json
assert not _json.HAS_ORJSON

def count(call, name=None):
    calls = 0
    def profile(frame, event, arg):
        nonlocal calls
        if event == "call" and name in (None, frame.f_code.co_name):
            calls += 1
    sys.setprofile(profile)
    try:
        result = call()
    finally:
        sys.setprofile(None)
    return calls, result

image = {"source": {"url": "https://cdn.example/a.jpg"}}
ints = list(range(-50_000, 50_000))
calls, value = count(lambda: _json.loads(json.dumps({"junk": ints}).encode()))
assert value == {"junk": ints}
print("100,000 integers", calls)
metadata = {"dims": {f"d{k}": k * 7919 for k in range(25)}, "stock": list(range(20))}
with tempfile.TemporaryDirectory() as tmp:
    catalog = cc.Catalog(cc.SQLiteRepository(tmp + "/c.db"))
    bodies = [json.dumps({"externalId": f"p{i:03}", "images": [image], "metadata": metadata,
                          "validForDays": 30}) for i in range(200)]
    calls, _ = count(lambda: [catalog.upsert("acme", body.encode()) for body in bodies],
                     "_parse_int")
    print("200 upserts", calls)
    calls, page = count(lambda: catalog.list("acme", limit=200), "_parse_int")
    assert [p.metadata for p in page.items] == [metadata] * 200
    print("a page of 200", calls)
long = '{"externalId": "p", "images": [{"source": {"url": "https://a.example/"}}], "junk": '
calls, result = count(lambda: catalog.upsert("acme", (long + "7" * 4301 + "}").encode()))
assert [w.path for w in result.warnings] == ["junk"]
"""


def test_r9_r18_without_orjson_an_integer_costs_no_python_call_unless_a_long_one_is_there() -> None:
    """A base install parses bodies and stored rows with the standard library. Its parser calls a
    Python function for each integer when it is given one: only a text holding a run of more digits
    than Python reads needs that, so no body of ordinary numbers (R9 metadata, R10, R18 unknown
    keys) and no stored row pays a Python call per integer."""
    done = subprocess.run(
        [sys.executable, "-c", _CALLS_WITHOUT_ORJSON],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts = {key: int(n) for key, n in (line.rsplit(" ", 1) for line in done.stdout.splitlines())}
    assert counts["100,000 integers"] < 50, counts
    assert counts["200 upserts"] == 0, counts
    assert counts["a page of 200"] == 0, counts


_RUN_TEXT = st.text(alphabet="0123456789-.e,[é", max_size=120)


@given(text=_RUN_TEXT, length=st.integers(min_value=1, max_value=30))
def test_r10_r18_the_scan_for_long_integers_finds_exactly_the_long_digit_runs(
    text: str, length: int
) -> None:
    """The scan that decides whether a text needs its integers read one by one looks at one
    character in ``length``; it must still find every run of ``length`` digits, wherever it
    starts, and nothing else."""
    assert _json._has_digit_run(text, length) == bool(re.search(f"[0-9]{{{length}}}", text))


@pytest.mark.parametrize("run", [4299, 4300, 4301, 4302, 8601, 8602, 13_000])
@pytest.mark.parametrize("offset", [0, 1, 4299, 4300, 4301, 5000])
def test_r10_r18_integers_of_any_length_at_any_offset_read_the_same_without_orjson(
    run: int, offset: int
) -> None:
    """Around the sampled offsets of the scan, 4,300 digits is an int and one more a LongInt."""
    text = "[" + "1," * (offset // 2) + "9" * run + "]"
    value = _json._std_loads(text)
    last = value[-1]
    if run <= _json.MAX_INT_DIGITS:
        assert last == int("9" * run)
    else:
        assert isinstance(last, _json.LongInt)
        assert last.digits == run
    assert value[:-1] == [1] * (offset // 2)
