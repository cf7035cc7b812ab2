"""The optional orjson path gives the standard library's values, bytes and errors (R9, R16, R31)."""

from __future__ import annotations

import json
from collections import Counter, OrderedDict, defaultdict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog_core import _json

pytestmark = pytest.mark.skipif(not _json.HAS_ORJSON, reason="the test extra installs orjson")

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-(2**64) - 5, max_value=-(2**63) + 5)
    | st.integers(min_value=2**63 - 5, max_value=2**64 + 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.sampled_from([1e-05, -3.5e-07, 5e-324, 9.99e-05, 1e-4, 1e16, 1.5e300])
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def std(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def same(a: Any, b: Any) -> bool:
    """Equal, with equal types all the way down (1 is not 1.0, True is not 1)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) and type(a) is type(b)


@given(JSON_VALUES)
def test_r9_r16_r31_both_paths_write_the_same_bytes(value: Any) -> None:
    try:
        expected: bytes | type[Exception] = _json._std_dumps(value)
    except UnicodeEncodeError:
        expected = UnicodeEncodeError
    try:
        got: bytes | type[Exception] = _json.dumps(value)
    except UnicodeEncodeError:
        got = UnicodeEncodeError
    assert got == expected


@given(JSON_VALUES, st.sampled_from(["bytes", "str"]))
def test_r9_r16_r30_both_paths_read_the_same_values(value: Any, kind: str) -> None:
    text = std(value)
    raw: str | bytes = text if kind == "bytes" else text.decode("utf-8", "surrogatepass")
    try:
        expected: Any = _json._std_loads(raw)
    except ValueError as exc:
        expected = repr(exc)
    try:
        got: Any = _json.loads(raw)
    except ValueError as exc:
        got = repr(exc)
    assert same(got, expected)


@pytest.mark.parametrize(
    "text",
    [b"NaN", b"[1, Infinity]", b"1e400", b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}", b"\xff",
     b'"\\ud800"', b"[" * 300 + b"]" * 300, b"[" * 499 + b"]" * 499,
     b"[" * 500 + b"]" * 500, b"[" * 600 + b"]" * 600, b"[" * 1000 + b"]" * 1000,
     b'{"a": ' + b"[" * 995 + b"]" * 995 + b"}", b"{" * 2 + b"}" * 2, b"18446744073709551616",
     b"-9223372036854775809",
     b"{", b"", b" 1 "],
)  # fmt: skip
def test_r30_awkward_bodies_read_the_same_on_both_paths(text: bytes) -> None:
    outcomes = []
    for loads in (_json._std_loads, _json.loads):
        try:
            outcomes.append(("value", json.dumps(loads(text))))
        except (ValueError, RecursionError) as exc:
            outcomes.append(("error", repr(exc)))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    "value",
    [OrderedDict(a=1e-05), defaultdict(list, b=[2e-07]), (1e-05, "x"), [OrderedDict(c=0.5)],
     {"k": (3e-06,)}, Counter(z=1)],
    ids=repr,
)  # fmt: skip
def test_r9_r16_subclasses_and_tuples_are_written_as_the_standard_library_writes_them(
    value: Any,
) -> None:
    assert _json.dumps(value) == _json._std_dumps(value)
    stored = _json.dumps_for_storage(value)
    assert stored is None or json.loads(stored) == json.loads(_json._std_dumps(value))


@given(
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.sampled_from([1e-05, -3.5e-07, 1e-07, 5e-324, 9.99e-05, 2.5e-05, 1e-100, -1e-300]),
    st.sampled_from(["", "one-size", "e-"]),
)
def test_r31_every_float_written_unlike_json_is_one_the_text_check_flags(
    number: float, words: str
) -> None:
    """R31: the check that spares most texts a walk never passes over a float that orjson
    writes otherwise than ``json``, in a text also holding words with ``e-``."""
    text = _json._orjson_dumps([words, number])
    assert text is not None
    if text != _json._std_dumps([words, number]):
        assert _json._may_hold_tiny_float(text)


@pytest.mark.parametrize(
    "words", ["one-size", "wide-leg, true-to-size", "e-mail", "style-A", "re-wash 30"]
)
def test_r31_words_with_e_and_a_hyphen_cost_no_walk(words: str) -> None:
    """R31's bytes are the same either way; a text flagged by mistake costs a walk of its value."""
    assert not _json._may_hold_tiny_float(
        _json._orjson_dumps({"description": words, "n": 0.5}) or b""
    )
