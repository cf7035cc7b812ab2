"""Fuzzing the wire layer and the server: every body gives a product or a catalogued error.

What is fuzzed, and how long:

- **The corpus** (``tests/fuzz/corpus``: the public page's request bodies, seeds of every mode,
  and what atheris found that reaches new code, minimised with ``-merge=1``) is replayed through
  :class:`tests.fuzz.target.Target`, the very function atheris runs. A fraction of a second.
- **atheris** (libFuzzer, coverage-guided) runs ``python -m tests.fuzz.fuzz_body`` on the body
  decoder for ``FUZZ_SECONDS``: 20 s in CI, 600 s in the long form (``CATALOG_CORE_LONG=1``, or
  ``CATALOG_CORE_FUZZ_SECONDS=N``). An input that raises anything but a catalogued error, runs
  over 10 s or takes the process past 2 GiB fails the test, which shows the input. New inputs go
  to a temporary directory; the corpus is only read. The test prints a one-line summary of
  libFuzzer's figures: ``CATALOG_CORE_FUZZ_SECONDS=600 .venv/bin/python -m pytest -s -p no:xdist
  tests/fuzz -k atheris``.
- **hypothesis, in process**, on the same target: arbitrary JSON (objects at the top, any values,
  payload-shaped dicts, try-on wrappings) and arbitrary bytes in every mode; multipart bodies of
  arbitrary parts, framing, boundaries and chunking; and the kit's strategies sent as the JSON or
  multipart bodies a client sends, which must answer exactly as the kit says.
  ``tests/test_properties.py`` already throws arbitrary payloads at ``Catalog.upsert`` and
  ``use`` on every backend, and ``tests/testing/test_strategies.py`` checks the kit's requests as
  Python values; these tests add the body reader, multipart, try-on bodies and R30's order between
  the decoder and the catalog.
- **hypothesis over HTTP**: arbitrary requests (methods, paths, ids, query strings, keys, content
  types, If-Match, JSON, bytes and multipart bodies) to a real ``catalog-core serve``: each answer
  is a success or a catalogued error with its documented status, never a 5xx, never a dropped
  connection.

The hypothesis tests run a tenth of the profile's examples in process and a twentieth over HTTP
(at least 50; 200 and 100 in CI). The CI form of the module takes about 40 s of one worker, 20 s
of it atheris.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core.server.openapi import server_error_classes
from catalog_core.testing.strategies import (
    IMAGE_HEADERS,
    InvalidUpsertRequest,
    UpsertRequest,
    UseRequest,
    external_ids,
    invalid_upsert_payloads,
    upsert_payloads,
    use_items,
)
from tests.fuzz.seeds import multipart, quoted, seeds
from tests.fuzz.target import ACCOUNT, MODES, Target
from tests.helpers import R31_PRODUCT_KEYS, from_a_fresh_process, run_size
from tests.server.conftest import Server, start_server
from tests.test_properties import any_texts, json_values, product_like_dicts

ROOT: Final = Path(__file__).resolve().parents[2]
HERE: Final = Path(__file__).resolve().parent
CORPUS: Final = HERE / "corpus"
DICTIONARY: Final = HERE / "body.dict"
SECONDS: Final = run_size("FUZZ_SECONDS", 20, 600)
#: libFuzzer's bounds: an input's length, its time and the process' memory.
MAX_LEN: Final = 4096
RSS_LIMIT_MB: Final = 2048
TIMEOUT_S: Final = 10
#: The corpus stays small enough to commit and to replay in a moment.
MAX_CORPUS_FILES: Final = 300
MAX_CORPUS_BYTES: Final = 2**20

_PROFILE = settings()  # the loaded profile (tests/conftest.py loads it first): 100 dev, 2,000 CI
#: Each example runs a catalog (or a request to a server): a tenth of the profile's (>= 50).
EXAMPLES = settings(
    max_examples=max(50, _PROFILE.max_examples // 10),
    deadline=None,
    suppress_health_check=[*_PROFILE.suppress_health_check, HealthCheck.too_slow],
)
#: Over HTTP an example costs a few milliseconds more: a twentieth of the profile's (>= 50).
OVER_HTTP = settings(EXAMPLES, max_examples=max(50, _PROFILE.max_examples // 20))
#: Small file and request limits, as the kit's own tests use, so that size codes are cheap.
SMALL: Final = cc.Limits(max_file_bytes=1024, max_request_bytes=4096)
BOUNDARY: Final = "fuzz-boundary-7d1f"
FORM: Final = f"multipart/form-data; boundary={BOUNDARY}".encode()


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    """The fuzzer's target, with its small limits."""
    with Target() as made:
        yield made


@pytest.fixture(scope="module")
def default_target() -> Iterator[Target]:
    """The target with the default limits, for the kit's requests (drawn at the rule book's)."""
    with Target(cc.Limits()) as made:
        yield made


@pytest.fixture(scope="module")
def small_target() -> Iterator[Target]:
    """The target with the limits the kit's refused requests are drawn for."""
    with Target(SMALL) as made:
        yield made


def corpus_files() -> list[Path]:
    return sorted(path for path in CORPUS.iterdir() if path.is_file())


# -- the corpus -----------------------------------------------------------------------------------


def test_r29_r30_r31_every_corpus_input_answers_with_a_product_or_a_catalogued_error(
    target: Target,
) -> None:
    """R29-R31: each input of the corpus, run through the fuzzer's own target, gives a product
    that renders and reads back, or an error of R29 in R30's order. Between them the inputs reach
    every mode's successes and every code a body can give."""
    outcomes: dict[str, str] = {}
    for path in corpus_files():
        try:
            outcomes[path.name] = target(path.read_bytes())
        except Exception as exc:
            pytest.fail(f"{path.name} ({path.read_bytes()[:300]!r}...) raised {exc!r}")
    reached = set(outcomes.values())
    for mode in MODES:
        assert reached & {f"{mode}: created", f"{mode}: updated"}, mode
    codes = {outcome.split(": ")[1] for outcome in reached}
    assert codes >= {
        "VALIDATION_FAILED",
        "EXTERNAL_ID_REQUIRED",
        "PRODUCT_IMAGES_REQUIRED",
        "INVALID_IMAGE_INPUT",
        "MULTIPART_FILE_NOT_FOUND",
        "INVALID_IMAGE",
        "PRODUCT_NOT_FOUND",
        "RESERVED_EXTERNAL_ID",
        "FILE_TOO_LARGE",
        "PAYLOAD_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
    }


def test_r32_the_corpus_holds_the_pages_bodies_and_every_seed_and_stays_small() -> None:
    """R32: the page's request bodies (and every other seed) are in the corpus as they are now;
    the corpus stays small enough to commit, and no input is longer than libFuzzer's bound."""
    files = corpus_files()
    for name, data in seeds().items():
        path = CORPUS / f"seed-{name}"
        remedy = "write the seeds again: python -m tests.fuzz.seeds tests/fuzz/corpus"
        assert path.is_file(), f"{path.name} is missing; {remedy}"
        assert path.read_bytes() == data, f"{path.name} is stale; {remedy}"
    assert len(files) <= MAX_CORPUS_FILES
    assert sum(path.stat().st_size for path in files) <= MAX_CORPUS_BYTES
    assert max(path.stat().st_size for path in files) <= MAX_LEN


# -- atheris --------------------------------------------------------------------------------------

_FINAL_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.M)
_STATUS_LINE = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.M)
_SEED = re.compile(r"^INFO: Seed: (\d+)", re.M)


def summary(stderr: str, seconds: int, files: int, found: int) -> str:
    """libFuzzer's figures as one line: executions, rate, coverage, corpus, memory, seed."""
    stats = {name: int(value) for name, value in _FINAL_STAT.findall(stderr)}
    lines = {kind: (cov, ft, corpus) for _, kind, cov, ft, corpus in _STATUS_LINE.findall(stderr)}
    cov, ft, units = lines.get("DONE", ("?", "?", "?"))
    inited = lines.get("INITED", ("?", "?", "?"))
    seed = _SEED.search(stderr)
    return (
        f"atheris: {seconds} s, {stats.get('number_of_executed_units', 0):,} execs "
        f"({stats.get('average_exec_per_sec', 0):,}/s), cov: {inited[0]} -> {cov}, "
        f"ft: {inited[1]} -> {ft}, corpus: {files} files, {inited[2]} -> {units} units, "
        f"{found} new inputs, peak rss {stats.get('peak_rss_mb', '?')} MB, "
        f"seed {seed[1] if seed else '?'}"
    )


def test_r29_r33_atheris_finds_no_crash_hang_or_runaway_memory(
    tmp_path: Path, record_property: Any
) -> None:
    """R29-R33: libFuzzer mutates the corpus for ``FUZZ_SECONDS``, guided by the branches of
    catalog_core and python-multipart; no input may raise anything but a catalogued error (or
    break R30's order or R31's round trip), run over 10 s, or take the process past 2 GiB."""
    new, artifacts = tmp_path / "new", tmp_path / "artifacts"
    new.mkdir()
    artifacts.mkdir()
    command = [
        sys.executable,
        "-m",
        "tests.fuzz.fuzz_body",
        str(new),  # libFuzzer writes new inputs to the first directory only
        str(CORPUS),
        f"-dict={DICTIONARY}",
        f"-max_total_time={SECONDS}",
        f"-max_len={MAX_LEN}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-timeout={TIMEOUT_S}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    ran = subprocess.run(
        # libFuzzer's -rss_limit_mb reads the process's peak RSS, which it would otherwise start
        # with from the test runner (2.5 GB in a long run of the reliability tests before it).
        from_a_fresh_process(command),
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=SECONDS + 300,
        check=False,
    )
    found = sorted(artifacts.iterdir())
    if ran.returncode != 0 or found:
        shown = "\n".join(f"{path.name}: {path.read_bytes()[:2000]!r}" for path in found)
        log = "\n".join(
            line for line in ran.stderr.splitlines() if not line.startswith("INFO: Instrumenting")
        )
        pytest.fail(
            f"atheris exited with {ran.returncode}; the inputs it kept:\n{shown or '(none)'}\n"
            "reproduce with: .venv/bin/python -m tests.fuzz.fuzz_body <input file>\n"
            f"--- the traceback (stdout) ---\n{ran.stdout[-6000:]}\n"
            f"--- libFuzzer (stderr) ---\n{log[-4000:]}",
            pytrace=False,
        )
    line = summary(ran.stderr, SECONDS, len(corpus_files()), len(list(new.iterdir())))
    record_property("atheris", line)
    print(line)
    assert "number_of_executed_units" in ran.stderr, ran.stderr[-3000:]
    assert int(dict(_FINAL_STAT.findall(ran.stderr))["number_of_executed_units"]) > 0


# -- hypothesis, in process -----------------------------------------------------------------------


def json_texts(value: Any) -> st.SearchStrategy[bytes]:
    """``value`` as JSON text: ASCII with escapes, or UTF-8 (lone surrogates then not UTF-8)."""
    return st.sampled_from(
        [
            json.dumps(value).encode("ascii"),
            json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        ]
    )


def top_objects() -> st.SearchStrategy[Any]:
    """JSON objects at the top (any keys and values, or payload-shaped), now and then another
    JSON value, and the try-on wrappings of any of them."""
    objects = st.one_of(
        st.dictionaries(any_texts(), json_values(huge=False, max_leaves=8), max_size=6),
        product_like_dicts(huge=False),
        json_values(huge=False, max_leaves=4),
    )
    return st.one_of(
        objects,
        objects.map(lambda item: {"products": [item]}),
        objects.map(lambda item: {"product": item}),
        st.tuples(objects, objects).map(lambda items: {"products": list(items)}),
    )


def json_bodies() -> st.SearchStrategy[bytes]:
    """Request bodies: JSON text of :func:`top_objects`, and arbitrary bytes."""
    return st.one_of(top_objects().flatmap(json_texts), st.binary(max_size=200))


CONTENT_TYPES: Final = [
    b"application/json",
    b"application/json; charset=utf-8",
    b"APPLICATION/JSON",
    b"application/json;",
    b"application/jsonx",
    b"text/plain",
    b"",
    b"multipart/form-data",
    b"multipart/form-data; boundary=",
    b"multipart/form-data; boundary=" + b"b" * 300,
    b"multipart/mixed; boundary=x",
    b"application/x-www-form-urlencoded",
    b"\xff\xfe",
]


@EXAMPLES
@given(
    mode=st.sampled_from(MODES),
    body=json_bodies(),
    content_type=st.one_of(
        st.sampled_from(CONTENT_TYPES[:2]), st.sampled_from(CONTENT_TYPES), st.binary(max_size=40)
    ),
    chunks=st.integers(1, 8),
)
def test_r29_r30_r32_any_json_or_bytes_in_every_mode_answers_with_a_product_or_a_catalogued_error(
    target: Target, mode: str, body: bytes, content_type: bytes, chunks: int
) -> None:
    """R22, R29-R32: arbitrary JSON and bytes as an upsert, a try-on body, a use item, and a
    ``POST /products`` body behind any content type: a product, or an error of R29 that the
    decoder alone gives too (or that comes later in R30's order)."""
    try:
        result = target.answer(mode, body, content_type=content_type, chunks=chunks)
    except cc.CatalogError as exc:
        event(f"{mode}: {exc.code}")
    else:
        event(f"{mode}: {'created' if result.created else 'updated'}")


_IMAGE_PARTS: Final = [head + b"\x00" * 8 for head in IMAGE_HEADERS.values()]
#: Header values a client can send: Latin-1 without controls, no space at either end.
_HEADER_TEXT: Final = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20
).map(lambda text: text.strip(" "))


_NAMES: Final = st.lists(
    st.sampled_from(["front", "back", "side.jpg", "ünï", 'a"b\\c', "DATA"]), max_size=3, unique=True
)
_ODD_NAMES: Final = st.lists(
    st.sampled_from(["front", "", "data", "data "]) | any_texts(max_size=8), max_size=3
)
_ODD_BYTES: Final = st.binary(max_size=32)
_DISPOSITIONS: Final = [
    b"form-data; name=%s",
    b'form-data; name=%s; filename="f.bin"',
    b"form-data; filename=%s",
    b"form-data",
    b"attachment; name=%s",
    b"form-data; name*=UTF-8''%s",
]


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A content type and a multipart body. Three in four are well formed: ``data`` first,
    holding JSON that names the other parts, which hold image bytes. The others have odd names
    (missing, repeated, not UTF-8), dispositions, headers and bytes, then a cut, a stray byte run
    or a preamble, behind a content type that may not match."""
    odd = not draw(st.integers(0, 3))
    names = draw(_ODD_NAMES if odd else _NAMES)
    if not odd or draw(st.booleans()):
        names.insert(0, "data")
    keys = [name for name in names if name != "data"]
    good = {
        "externalId": draw(st.sampled_from(["shirt-42", "m-1", "_anon_x"])),
        "images": [{"source": {"fileKey": key}} for key in keys]
        or [{"source": {"url": "https://cdn.example/x.jpg"}}],
    }
    parts = b""
    for name in names:
        if name == "data":
            data = draw(json_texts(good) | (json_bodies() if odd else st.nothing()))
        else:
            data = draw(st.sampled_from(_IMAGE_PARTS) | (_ODD_BYTES if odd else st.nothing()))
        disposition = draw(st.sampled_from(_DISPOSITIONS)) if odd else _DISPOSITIONS[0]
        if b"%s" in disposition:
            disposition = disposition.replace(b"%s", quoted(name).encode("utf-8", "surrogatepass"))
        head = b"Content-Disposition: " + disposition + b"\r\n"
        if draw(st.booleans()):
            head += b"Content-Type: " + draw(_HEADER_TEXT).encode("latin-1") + b"\r\n"
        if odd and draw(st.booleans()):
            head += draw(_ODD_BYTES) + b"\r\n"
        parts += f"--{BOUNDARY}\r\n".encode() + head + b"\r\n" + data + b"\r\n"
    body = parts + f"--{BOUNDARY}--\r\n".encode()
    damage = draw(st.sampled_from(["none", "cut", "insert", "preamble"])) if odd else "none"
    if damage == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == "insert":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    elif damage == "preamble":
        body = draw(_ODD_BYTES) + b"\r\n" + body + draw(_ODD_BYTES)
    content_types = [
        FORM,
        f'multipart/form-data; boundary="{BOUNDARY}"'.encode(),
        f"Multipart/Form-Data; charset=utf-8; boundary={BOUNDARY}".encode(),
    ]
    if odd:
        content_types += [b"multipart/form-data; boundary=other", b"application/json"]
    return draw(st.sampled_from(content_types)), body


@EXAMPLES
@given(request=multipart_bodies(), chunks=st.integers(1, 16))
def test_r29_r32_multipart_bodies_of_any_parts_answer_with_a_product_or_a_catalogued_error(
    target: Target, request: tuple[bytes, bytes], chunks: int
) -> None:
    """R14, R15, R29, R32: multipart bodies with any parts, names, headers and damage, arriving
    in any number of chunks: a product, or an error of R29, never another exception."""
    content_type, body = request
    try:
        result = target.answer("server", body, content_type=content_type, chunks=chunks)
    except cc.CatalogError as exc:
        event(exc.code)
    else:
        event("created" if result.created else "updated")


def sendable(files: dict[str, cc.Upload]) -> bool:
    """Whether each part's name fits a header line: no line break, no lone surrogate."""
    return not any(re.search("[\r\n\ud800-\udfff]", name) for name in files)


def as_body(
    payload: dict[str, Any] | bytes, files: dict[str, cc.Upload], multipart_body: bool
) -> tuple[bytes, bytes]:
    """The content type and body a client sends for ``payload`` and ``files`` (R32)."""
    text = payload if isinstance(payload, bytes) else json.dumps(payload).encode("ascii")
    if not multipart_body:
        return b"application/json", text
    parts = [("data", text, None, None)]
    parts += [(name, upload.data, "f", upload.mime_type) for name, upload in files.items()]
    return FORM, multipart(parts, BOUNDARY)


@EXAMPLES
@given(request=upsert_payloads(), as_multipart=st.booleans(), chunks=st.integers(1, 8))
def test_r4_r17_r32_the_kits_requests_sent_as_bodies_are_accepted_as_the_library_accepts_them(
    default_target: Target, request: UpsertRequest, as_multipart: bool, chunks: int
) -> None:
    """R4-R18, R32: each valid request of the kit, sent as the JSON or multipart body a client
    sends and read as the server reads it, gives the very product and warnings that the same
    payload and files give when passed to ``Catalog.upsert`` as Python values."""
    files = dict(request.files)
    if not sendable(files):
        event("a part name no header can carry")
        return
    content_type, body = as_body(request.payload, files, as_multipart or bool(files))
    sent = default_target.answer("server", body, content_type=content_type, chunks=chunks)
    given_ = default_target.catalog().upsert(ACCOUNT, request.payload, files)
    assert cc.to_wire(sent.product) == cc.to_wire(given_.product)
    assert (sent.created, sent.product.version) == (given_.created, given_.product.version)
    assert sent.warnings == given_.warnings


@EXAMPLES
@given(case=invalid_upsert_payloads(limits=SMALL), as_multipart=st.booleans())
def test_r30_r32_r33_the_kits_invalid_requests_sent_as_bodies_are_refused_with_their_code(
    small_target: Target, case: InvalidUpsertRequest, as_multipart: bool
) -> None:
    """R29, R30, R32, R33: each refused request of the kit, sent as a body, is refused with the
    kit's code; when the framing takes the body over the request limit, with
    ``PAYLOAD_TOO_LARGE``, checked before anything is parsed."""
    files = dict(case.files)
    payload = case.payload
    if not sendable(files) or (isinstance(payload, dict) and not json_carries(payload)):
        event("not sendable as a body")
        return
    content_type, body = as_body(payload, files, as_multipart or bool(files))
    expected = case.code
    if len(body) > SMALL.max_request_bytes:
        expected = "PAYLOAD_TOO_LARGE"
    elif case.requires_absent and isinstance(payload, dict) and payload["externalId"] == "shirt-42":
        expected = None  # the target's catalog holds shirt-42: a valid update
    try:
        small_target.answer("server", body, content_type=content_type)
    except cc.CatalogError as exc:
        code: str | None = exc.code
    else:
        code = None
    event(str(code))
    assert code == expected


def json_carries(payload: dict[str, Any]) -> bool:
    """Whether JSON text carries ``payload`` unchanged (no NaN, no int past the text limit)."""
    try:
        return bool(json.loads(json.dumps(payload, allow_nan=False)) == payload)
    except (ValueError, RecursionError):
        return False


@EXAMPLES
@given(
    item=use_items(external_id=st.just("shirt-42")), form=st.sampled_from(["products", "product"])
)
def test_r22_the_kits_use_items_in_try_on_bodies_are_applied(
    default_target: Target, item: UseRequest, form: str
) -> None:
    """R22: each valid item of the kit, as the one item of a ``POST /try-on`` body (or in the
    deprecated ``product`` form), is applied to the catalog's ``shirt-42``, or creates a one-shot
    product; the try-on body's warning comes first."""
    body = {"products": [item.payload]} if form == "products" else {"product": item.payload}
    text = json.dumps(body).encode("ascii")
    result = default_target.answer("try_on", text, files=dict(item.files))
    assert result.created == (item.kind == "one_shot")
    if form == "product":
        assert result.warnings[0].code == "DEPRECATED_PRODUCT_FIELD"


# -- hypothesis over HTTP -------------------------------------------------------------------------

#: Every code the server answers with and its status, but those no request here can provoke:
#: INTERNAL and UNAVAILABLE (a defect, a shutdown), REQUEST_TIMEOUT (bodies arrive whole),
#: RATE_LIMITED (no --rate-limit).
SERVED: Final = {
    cls.code: cls.status
    for cls in server_error_classes()
    if cls.code not in ("INTERNAL", "UNAVAILABLE", "REQUEST_TIMEOUT", "RATE_LIMITED")
}
PRODUCTS: Final = "/tryon/v1/products"
KEY: Final = f"gk_fuzz_{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("fuzz-server")
    served = start_server(directory, "--db", str(directory / "catalog.db"))
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.root, timeout=30) as made:
        yield made


def headers_of(draw: st.DrawFn, content_type: bytes) -> dict[str, bytes]:
    """Request headers: the key mostly, the content type, If-Match now and then.

    Most requests ask for ``Connection: close``: on a kept-alive connection each answer of
    ``catalog-core serve`` waits for the client's delayed ACK (about 40 ms), which would cost
    this test most of its time; one in four keeps its connection, so reuse is fuzzed too.
    """
    headers: dict[str, bytes] = {}
    key = draw(st.sampled_from([KEY] * 6 + ["gk_other", None]))
    if key is not None:
        headers["x-api-key"] = key.encode()
    if not draw(st.integers(0, 9)):
        content_type = draw(_HEADER_TEXT).encode("latin-1")
    if content_type:
        headers["content-type"] = content_type
    if not draw(st.integers(0, 4)):
        headers["if-match"] = draw(
            st.sampled_from([b"*", b'"1"', b'"1", "2"', b'W/"1"', b"1", b'"x"', b""])
            | _HEADER_TEXT.map(lambda text: text.encode("latin-1"))
        )
    if draw(st.integers(0, 3)):
        headers["connection"] = b"close"
    return headers


_KIT_PAYLOADS: Final = upsert_payloads(
    external_id=st.sampled_from(["shirt-42", "shirt-43", "m-1"]) | external_ids()
)


@st.composite
def upserts(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """``POST /products`` with any body, keyword arguments of ``httpx.Client.request``, and
    whether the request is one of the kit's, sent as it should be (then it must succeed)."""
    kind = draw(st.sampled_from(["kit", "kit", "json", "multipart"]))
    valid = False
    if kind == "kit":
        request = draw(_KIT_PAYLOADS)
        files = dict(request.files) if sendable(dict(request.files)) else {}
        valid = files == request.files
        content_type, body = as_body(request.payload, files, bool(files))
    elif kind == "json":
        content_type = draw(st.just(b"application/json") | st.sampled_from(CONTENT_TYPES))
        body = draw(json_bodies())
    else:
        content_type, body = draw(multipart_bodies())
    headers = headers_of(draw, content_type)
    valid = valid and headers.get("x-api-key") is not None and "if-match" not in headers
    valid = valid and headers.get("content-type") == content_type
    post = {"method": "POST", "url": PRODUCTS, "headers": headers, "content": body}
    return post, valid


_QUERY_TEXT: Final = st.text(st.characters(codec="utf-8"), max_size=10)


def paths() -> st.SearchStrategy[str]:
    """The products endpoints, ids of any text or bytes percent-encoded, and near misses."""
    ids = st.one_of(
        st.sampled_from(["shirt-42", "shirt-43", "_anon_abc", "a/b", "%", "..", " ", "x" * 300]),
        any_texts(max_size=30).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.binary(max_size=20),
    )
    return st.one_of(
        st.just(PRODUCTS),
        ids.map(lambda raw: f"{PRODUCTS}/{quote(raw, safe='')}"),
        st.sampled_from(
            [
                PRODUCTS + "/",
                "/tryon/v1/product",
                "/tryon/v1/products/a/b",
                "/tryon/v2/products",
                "/",
                "/dashboard",
                "/dashboard/static/dashboard.js",
                "/tryon/v1/openapi.json",
                "/tryon/v1/local/products",
                "/tryon/v1/local/generations",
                "/tryon/v1/local/product-image",
            ]
        ),
    )


@st.composite
def any_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Any method on any path near the products endpoints, with a query string, a small body
    (JSON, bytes or none) and any headers; keyword arguments of ``httpx.Client.request``."""
    method = draw(st.sampled_from(["GET", "GET", "DELETE", "HEAD", "POST", "PUT", "PATCH"]))
    body = draw(st.sampled_from([b"", b"", b"{}", b"[]", b'{"externalId": "shirt-42"}']))
    content_type = draw(st.sampled_from(CONTENT_TYPES)) if body else b""
    params = draw(
        st.dictionaries(st.sampled_from(["limit", "cursor", "x"]) | _QUERY_TEXT, _QUERY_TEXT)
    )
    return {
        "method": method,
        "url": draw(paths()),
        "params": params,
        "headers": headers_of(draw, content_type),
        "content": body,
    }


def send(http: httpx.Client, request: dict[str, Any]) -> httpx.Response:
    """Send ``request``; a connection the server drops, or an answer cut short, fails."""
    try:
        return http.request(**request)
    except httpx.TransportError as exc:
        pytest.fail(f"the server dropped the connection: {exc!r}")


#: What the pages for people answer (JSON too, for the front door, when the client asks for it).
_PAGES: Final = {
    "/": "text/html",
    "/dashboard": "text/html",
    "/tryon/v1": "text/html",  # the front of the API, reached by /tryon/v1/products/.. too
    "/dashboard/static/dashboard.js": "text/javascript",
}


def check_answer(response: httpx.Response, method: str) -> str:
    """A success of the products endpoints, or a catalogued error with its documented status."""
    status = response.status_code
    assert status < 500, response.text
    if method == "HEAD":
        assert not response.content
        return str(status)
    if status == 204:
        assert method == "DELETE"
        assert not response.content
        return "204"
    if status == 200 and response.url.path in _PAGES:  # the dashboard's page and files
        assert response.headers["content-type"].startswith(_PAGES[response.url.path])
        return "page"
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    if status < 300:
        assert status in (200, 201)
        if "items" in body:
            assert set(body) == {"items", "nextCursor", "hasMore", "count"}
        elif "openapi" not in body:
            assert tuple(body) == R31_PRODUCT_KEYS
        return str(status)
    assert set(body) <= {"code", "message", "status", "details"}, body
    assert body["code"] in SERVED, body
    assert body["status"] == status == SERVED[body["code"]], body
    assert isinstance(body["message"], str)
    assert body["message"]
    if "details" in body:
        assert all(set(detail) == {"path", "message"} for detail in body["details"])
    return str(body["code"])


@OVER_HTTP
@given(request=upserts())
def test_r29_r32_r33_the_server_answers_any_upsert_body_with_a_product_or_a_catalogued_error(
    http: httpx.Client, request: tuple[dict[str, Any], bool]
) -> None:
    """R29-R33 over HTTP: ``POST /products`` with any body (the kit's requests as JSON or
    multipart, arbitrary JSON and bytes, multipart bodies of any parts and damage), content
    type, key and If-Match answers with the product or an error of R29 whose status is
    documented; never a 5xx, never a dropped connection. The kit's requests, sent as a client
    should, are accepted."""
    post, valid = request
    response = send(http, post)
    outcome = check_answer(response, "POST")
    event(outcome)
    if valid:
        assert response.status_code in (200, 201), response.text


@OVER_HTTP
@given(request=any_requests())
def test_r29_the_server_answers_any_method_path_and_query_with_a_success_or_a_catalogued_error(
    http: httpx.Client, request: dict[str, Any]
) -> None:
    """R1, R2, R23-R25, R29 over HTTP: any method, path, id (any text or bytes, percent-encoded),
    query string, key and small body answers with a success of the endpoint or an error of R29
    (or the server's own 404 and 405) whose status is documented; never a 5xx, never a dropped
    connection."""
    response = send(http, request)
    event(f"{request['method']}: {check_answer(response, request['method'])}")
