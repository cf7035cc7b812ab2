"""The ``catalog-core`` command line, in process through CliRunner and as the installed script."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import catalog_core as cc
from catalog_core.cli import main
from tests.helpers import PNG, R31_PRODUCT_KEYS, FakeClock

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "catalog.jsonl"
SCRIPT = Path(sys.executable).parent / "catalog-core"

# What examples/catalog.jsonl holds: 36 lines, 26 creates, 5 partial updates, 5 bad lines.
EXPECTED_SUMMARY = "created 26, updated 5, rejected 5"
EXPECTED_REJECTIONS = [
    (7, "VALIDATION_FAILED"),  # not JSON at all
    (14, "PRODUCT_IMAGES_REQUIRED"),  # a create without an image
    (19, "RESERVED_EXTERNAL_ID"),  # an _anon_ id
    (26, "VALIDATION_FAILED"),  # validForDays: 2.0
    (31, "INVALID_IMAGE_INPUT"),  # a source with both url and fileKey
]
EXPECTED_IDS = [
    "acc-002",
    "acc-003",
    "drs-001",
    "drs-002",
    "drs-003",
    "jkt-001",
    "jkt-002",
    "jkt-003",
    "knit-001",
    "knit-002",
    "knit-003",
    "pant-001",
    "pant-002",
    "pant-003",
    "shirt-001",
    "shirt-002",
    "shoe-001",
    "shoe-002",
    "shoe-003",
    "shoe-004",
    "shoe-005",
    "skirt-001",
    "tee-001",
    "tee-002",
    "tee-003",
    "tee-004",
]
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
REJECTION = re.compile(r"line (\d+): ([A-Z_]+): \S.*")
WARNING = re.compile(r"line (\d+): warning: ([A-Z_]+) at (\S+)")
# R17: the one accepted line that uses a deprecated shape.
EXPECTED_WARNINGS = [(25, "DEPRECATED_IMAGE_URLS", "imageUrls")]
IMAGE = {"source": {"url": "https://cdn.example/products/x.jpg"}}
# The tests choose the database and the account themselves, whatever the environment says.
MEMORY = "memory://"  # a catalog of the command's own process
CLEAN_ENV = {"CATALOG_CORE_DB": None, "CATALOG_CORE_ACCOUNT": None}


def cli(db: Path | str, *args: str, input: bytes | str | None = None) -> Result:
    runner = CliRunner(env=CLEAN_ENV, catch_exceptions=False)
    return runner.invoke(main, ["--db", str(db), *args], input=input)


def script(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return subprocess.run(
        [str(SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        **kwargs,
    )


def rejections(summary_lines: list[str]) -> list[tuple[int, str]]:
    found = []
    for line in summary_lines:
        if WARNING.fullmatch(line):
            continue
        match = REJECTION.fullmatch(line)
        assert match, line
        found.append((int(match[1]), match[2]))
    return found


def warnings_of(summary_lines: list[str]) -> list[tuple[int, str, str]]:
    return [(int(m[1]), m[2], m[3]) for line in summary_lines if (m := WARNING.fullmatch(line))]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def product_line(external_id: str, **fields: Any) -> str:
    return json.dumps({"externalId": external_id, "images": [IMAGE], **fields})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def imported(db: Path) -> Path:
    result = cli(db, "import", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == EXPECTED_SUMMARY
    return db


# -- the installed script ------------------------------------------------------------------------


def test_r24_r31_the_script_imports_the_example_then_lists_it_in_id_order_with_the_wire_keys(
    db: Path,
) -> None:
    imported = script("--db", str(db), "import", str(EXAMPLE))
    assert imported.returncode == 0, imported.stderr
    first, *rest = imported.stdout.splitlines()
    assert first == EXPECTED_SUMMARY
    assert rejections(rest) == EXPECTED_REJECTIONS
    assert warnings_of(rest) == EXPECTED_WARNINGS

    listed = script("--db", str(db), "list")
    assert listed.returncode == 0, listed.stderr
    items = jsonl(listed.stdout)
    ids = [item["externalId"] for item in items]
    assert ids == EXPECTED_IDS
    assert ids == sorted(ids)
    for item in items:
        assert list(item) == list(R31_PRODUCT_KEYS)
        assert item["images"]
        for order, image in enumerate(item["images"]):
            assert set(image) - {"classifications"} == {"sourceUrl", "order"}
            assert image["order"] == order
        for key in ("createdAt", "updatedAt"):
            assert TIMESTAMP.fullmatch(item[key])


def test_without_a_terminal_the_script_prints_the_summary_and_nothing_else(db: Path) -> None:
    result = script("--db", str(db), "import", str(EXAMPLE))
    assert result.returncode == 0
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 1 + len(EXPECTED_REJECTIONS) + len(EXPECTED_WARNINGS)


def test_on_a_terminal_the_script_draws_a_progress_bar_on_stderr(db: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(SCRIPT), "--db", str(db), "import", str(EXAMPLE)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
        )
        os.close(terminal)
        drawn = b""
        while select.select([controller], [], [], 30)[0]:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the script exited and closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        stdout, _ = process.communicate(timeout=30)
    finally:
        os.close(controller)
    assert process.returncode == 0
    screen = drawn.decode()
    assert f"Importing {EXAMPLE}" in screen
    assert "100%" in screen
    assert "line 36" in screen
    assert stdout.decode().splitlines()[0] == EXPECTED_SUMMARY


@pytest.mark.parametrize("kind", ["directory", "not sqlite", "missing folder"])
def test_a_database_path_that_cannot_be_opened_gives_one_clean_error_line(
    tmp_path: Path, kind: str
) -> None:
    path = {
        "directory": tmp_path,
        "not sqlite": tmp_path / "notes.txt",
        "missing folder": tmp_path / "nowhere" / "catalog.db",
    }[kind]
    text = "shopping list: socks, a raincoat, and more socks\n" * 20
    (tmp_path / "notes.txt").write_text(text)

    # import: the one command that creates a catalog, so a missing folder reaches SQLite.
    result = script("--db", str(path), "import", str(tmp_path / "notes.txt"))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: cannot open the catalog database '{path}'")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""
    assert (tmp_path / "notes.txt").read_text() == text  # a file that is not a catalog is untouched


# -- import --------------------------------------------------------------------------------------


def test_r4_r6_r17_r19_the_example_import_creates_updates_and_keeps_what_updates_omit(
    imported: Path,
) -> None:
    def get(external_id: str) -> dict[str, Any]:
        result = cli(imported, "get", external_id)
        assert result.exit_code == 0, result.stderr
        product: dict[str, Any] = json.loads(result.stdout)
        return product

    tee = get("tee-001")
    assert tee["title"] == "Classic Crew Tee — White — restocked"
    assert tee["metadata"]["color"] == "white"  # kept by a title-only update (R6)
    assert tee["images"] == [
        {
            "sourceUrl": "https://cdn.example/products/tee-001/front.jpg",
            "order": 0,
            "classifications": {"category": "tops"},
        },
        {"sourceUrl": "https://cdn.example/products/tee-001/back.jpg", "order": 1},
    ]
    # R11: the update set updatedAt; one import batch may run within a single millisecond.
    assert tee["updatedAt"] >= tee["createdAt"]

    puffer = get("jkt-002")
    assert puffer["title"] == "Recycled Down Puffer"
    assert puffer["metadata"]["sale"] is True
    assert puffer["metadata"]["price"] == {"amount": 179.0, "currency": "EUR"}

    assert [i["order"] for i in get("shoe-001")["images"]] == [0, 1, 2, 3]

    dress = get("drs-002")  # created with validForDays 30, then made permanent
    assert (dress["validForDays"], dress["expiresAt"]) == (None, None)

    cardigan = get("knit-003")
    updated = datetime.fromisoformat(cardigan["updatedAt"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(cardigan["expiresAt"].replace("Z", "+00:00"))
    assert (cardigan["validForDays"], expires - updated) == (90, timedelta(days=90))

    skirt = get("skirt-001")  # the deprecated imageUrls
    assert [i["sourceUrl"] for i in skirt["images"]] == [
        "https://cdn.example/products/skirt-001/front.jpg",
        "https://cdn.example/products/skirt-001/back.jpg",
    ]


def test_r26_a_rejected_line_writes_nothing(imported: Path) -> None:
    for external_id in ("acc-001", "skirt-002", "jkt-004", "_anon_summer-hat"):
        result = cli(imported, "get", external_id)
        assert result.exit_code == 1
        assert json.loads(result.stderr)["code"] == "PRODUCT_NOT_FOUND"


def test_importing_the_same_file_again_creates_nothing(imported: Path) -> None:
    again = cli(imported, "import", str(EXAMPLE))
    assert again.exit_code == 0
    first, *rest = again.stdout.splitlines()
    assert first == "created 0, updated 31, rejected 5"
    assert rejections(rest) == EXPECTED_REJECTIONS
    assert [p["externalId"] for p in jsonl(cli(imported, "list").stdout)] == EXPECTED_IDS


def test_rejected_lines_exit_0_unless_strict_then_1(db: Path) -> None:
    assert cli(db, "import", str(EXAMPLE)).exit_code == 0
    strict = cli(db, "import", "--strict", str(EXAMPLE))
    assert strict.exit_code == 1
    assert strict.stdout.splitlines()[0] == "created 0, updated 31, rejected 5"


def test_strict_exits_0_when_every_line_is_accepted(db: Path) -> None:
    result = cli(db, "import", "--strict", "-", input=product_line("a") + "\n")
    assert result.exit_code == 0
    assert result.stdout == "created 1, updated 0, rejected 0\n"


def test_json_prints_the_summary_as_one_object(db: Path) -> None:
    result = cli(db, "import", "--json", str(EXAMPLE))
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1
    summary = json.loads(result.stdout)
    assert (summary["created"], summary["updated"]) == (26, 5)
    assert [(r["line"], r["code"]) for r in summary["rejected"]] == EXPECTED_REJECTIONS
    assert summary["rejected"][2] == {
        "line": 19,
        "code": "RESERVED_EXTERNAL_ID",
        "message": "externalId '_anon_summer-hat' is reserved — the '_anon_' prefix is for "
        "server-generated IDs.",
    }
    assert [(w["line"], w["code"], w["path"]) for w in summary["warnings"]] == EXPECTED_WARNINGS
    assert result.stdout == json.dumps(summary, ensure_ascii=False) + "\n"  # written piecewise


def test_r26_thousands_of_rejections_and_warnings_are_all_reported_in_order(
    db: Path, tmp_path: Path
) -> None:
    """More than fit in memory's spool (1 MiB each): every one reported, in line order."""
    bad = '{"externalId": "_anon_%d", "images": [{"source": {"url": "https://cdn.example/x"}}]}'
    odd = '{"externalId": "p%d", "images": [{"url": "https://cdn.example/x"}], "x%d": 1}'
    lines = [bad % n if n % 2 else odd % (n, n) for n in range(1, 20_001)]
    source = tmp_path / "many.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    plain = cli(db, "import", str(source))
    assert plain.stdout.splitlines()[0] == "created 10000, updated 0, rejected 10000"
    as_json = json.loads(cli(db, "import", "--json", str(source)).stdout)
    assert (as_json["created"], as_json["updated"]) == (0, 10_000)
    assert [r["line"] for r in as_json["rejected"]] == list(range(1, 20_001, 2))
    assert {r["code"] for r in as_json["rejected"]} == {"RESERVED_EXTERNAL_ID"}
    assert len(as_json["warnings"]) == 20_000  # a deprecated shape and an unknown field each
    assert as_json["warnings"][-2:] == [
        {"line": 20_000, "code": "UNKNOWN_FIELD", "path": "x20000"},
        {"line": 20_000, "code": "DEPRECATED_IMAGE_SHAPE", "path": "images.0"},
    ]
    assert len(plain.stdout.splitlines()) == 1 + 10_000 + 20_000


def test_r26_a_warning_naming_a_lone_surrogate_neither_stops_the_import_nor_the_report(
    db: Path, tmp_path: Path
) -> None:
    """An unknown key "\\ud800x" (legal JSON text, no UTF-8) is warned about, escaped."""
    good = [product_line(f"p{n}") for n in range(1, 601)]
    odd = '{"externalId": "odd", "images": [{"source": {"url": "https://cdn.example/o.jpg"}}], '
    source = tmp_path / "odd.jsonl"
    source.write_text("\n".join([odd + '"\\ud800x": 1}', *good]) + "\n", encoding="utf-8")
    plain = cli(db, "import", str(source))
    assert plain.exit_code == 0
    assert plain.stdout.splitlines() == [
        "created 601, updated 0, rejected 0",
        "line 1: warning: UNKNOWN_FIELD at \\ud800x",
    ]
    as_json = cli(db, "import", "--json", str(source))
    assert json.loads(as_json.stdout)["warnings"] == [
        {"line": 1, "code": "UNKNOWN_FIELD", "path": "\ud800x"}
    ]
    assert len(jsonl(cli(db, "list", "--page-size", "200").stdout)) == 601


def test_blank_lines_are_skipped_uncounted_and_line_numbers_stay_those_of_the_file(
    db: Path,
) -> None:
    text = "\n".join([product_line("a"), "", "  \t", "{not json", "\r", product_line("b"), ""])
    result = cli(db, "import", "-", input=text)
    assert result.exit_code == 0
    first, *rest = result.stdout.splitlines()
    assert first == "created 2, updated 0, rejected 1"
    assert rejections(rest) == [(4, "VALIDATION_FAILED")]


def test_a_line_that_is_not_utf8_is_rejected_and_the_import_goes_on(db: Path) -> None:
    data = b'{"externalId": "caf\xe9", "images": []}\n' + product_line("b").encode() + b"\n"
    result = cli(db, "import", "-", input=data)
    assert result.exit_code == 0
    first, line = result.stdout.splitlines()
    assert first == "created 1, updated 0, rejected 1"
    assert line.startswith("line 1: VALIDATION_FAILED: ")
    assert "UTF-8" in line


def test_a_byte_order_mark_before_the_first_line_is_not_an_error(db: Path) -> None:
    data = b"\xef\xbb\xbf" + product_line("a").encode() + b"\r\n"
    result = cli(db, "import", "-", input=data)
    assert result.stdout == "created 1, updated 0, rejected 0\n"


def test_r1_the_account_option_and_environment_keep_tenants_apart(db: Path) -> None:
    assert cli(db, "import", "--account", "acme", "-", input=product_line("a")).exit_code == 0
    assert cli(db, "list").stdout == ""
    assert [p["externalId"] for p in jsonl(cli(db, "list", "--account", "acme").stdout)] == ["a"]
    runner = CliRunner(env={"CATALOG_CORE_DB": str(db), "CATALOG_CORE_ACCOUNT": "acme"})
    assert json.loads(runner.invoke(main, ["get", "a"]).stdout)["externalId"] == "a"


def test_an_empty_account_is_a_usage_error(db: Path) -> None:
    result = cli(db, "list", "--account", "")
    assert result.exit_code == 2
    assert "Invalid value for '--account': must be a non-empty string" in result.stderr


def test_help_does_not_create_the_database(db: Path) -> None:
    assert cli(db, "import", "--help").exit_code == 0
    assert not db.exists()


# -- get, list, delete, purge --------------------------------------------------------------------


def test_get_prints_the_wire_product_as_the_library_gives_it(imported: Path) -> None:
    result = cli(imported, "get", "tee-002")
    assert result.exit_code == 0
    assert "Pocket Tee — Olive" in result.stdout  # not \u2014: ensure_ascii is off
    repository = cc.SQLiteRepository(imported)
    try:
        expected = cc.to_wire(cc.Catalog(repository).get("default", "tee-002"))
    finally:
        repository.close()
    assert json.loads(result.stdout) == expected


def test_r23_get_of_a_missing_id_exits_1_with_the_not_found_body_on_stderr(
    imported: Path,
) -> None:
    result = cli(imported, "get", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert json.loads(result.stderr) == {
        "code": "PRODUCT_NOT_FOUND",
        "message": "Product 'nope' not found.",
        "status": 404,
    }


def test_r25_delete_prints_nothing_then_the_product_is_gone(imported: Path) -> None:
    deleted = cli(imported, "delete", "tee-003")
    assert (deleted.exit_code, deleted.stdout, deleted.stderr) == (0, "", "")
    assert json.loads(cli(imported, "get", "tee-003").stderr)["code"] == "PRODUCT_NOT_FOUND"
    again = cli(imported, "delete", "tee-003")
    assert again.exit_code == 1
    assert json.loads(again.stderr)["message"] == "Product 'tee-003' not found."


def test_r24_list_walks_every_page_with_a_small_page_size(
    imported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, str | None]] = []
    list_page = cc.Catalog.list

    def spy(self: cc.Catalog, account: str, limit: int = 50, cursor: str | None = None) -> cc.Page:
        calls.append((limit, cursor))
        return list_page(self, account, limit, cursor)

    monkeypatch.setattr(cc.Catalog, "list", spy)
    paged = cli(imported, "list", "--page-size", "2")
    assert paged.exit_code == 0
    assert len(calls) == 13  # 26 products, 2 per page
    assert {limit for limit, _ in calls} == {2}
    assert calls[0][1] is None
    assert len({cursor for _, cursor in calls[1:]}) == 12
    assert paged.stdout == cli(imported, "list").stdout
    assert [p["externalId"] for p in jsonl(paged.stdout)] == EXPECTED_IDS


def test_list_refuses_a_page_size_outside_1_to_200(db: Path) -> None:
    for size in ("0", "201"):
        assert cli(db, "list", "--page-size", size).exit_code == 2


def test_r20_r21_purge_prints_how_many_expired_products_it_removed(db: Path) -> None:
    # Written a long time ago, so that the command's real clock finds the one-day product expired.
    repository = cc.SQLiteRepository(db)
    try:
        catalog = cc.Catalog(repository, clock=FakeClock(datetime(2020, 1, 1, tzinfo=UTC)))
        catalog.upsert("default", {"externalId": "flash", "images": [IMAGE], "validForDays": 1})
        catalog.upsert("default", {"externalId": "evergreen", "images": [IMAGE]})
    finally:
        repository.close()

    assert [p["externalId"] for p in jsonl(cli(db, "list").stdout)] == ["evergreen"]
    purged = cli(db, "purge")
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout)["purged"] == 1
    assert json.loads(cli(db, "purge").stdout)["purged"] == 0
    assert [p["externalId"] for p in jsonl(cli(db, "list").stdout)] == ["evergreen"]


def test_t22_purge_reports_the_person_images_and_generations_it_removed(db: Path) -> None:
    from catalog_core.tryon import TryOn

    # A day's retention, long ago: the command's real clock finds all of it expired.
    repository = cc.SQLiteRepository(db)
    try:
        catalog = cc.Catalog(repository, clock=FakeClock(datetime(2020, 1, 1, tzinfo=UTC)))
        tryon = TryOn(catalog)
        image = tryon.upload_image("default", PNG, keep_for_days=1)
        tryon.start(
            "default",
            {
                "products": [{"externalId": "x", "title": "mock", "images": [IMAGE]}],
                "person": {"image": {"source": {"id": image.image_id}}},
                "output": {"keepForDays": 1},
            },
        )
    finally:
        repository.close()
    purged = cli(db, "purge")
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout) == {"purged": 1, "personImages": 1, "generations": 1}
    assert json.loads(cli(db, "purge").stdout) == {
        "purged": 0,
        "personImages": 0,
        "generations": 0,
    }


def test_t22_purge_of_a_memory_catalog_reports_every_count() -> None:
    purged = cli(MEMORY, "purge")
    assert json.loads(purged.stdout) == {"purged": 0, "personImages": 0, "generations": 0}


# -- credits (T16, T17) ----------------------------------------------------------------------------


def balance(result: Result) -> int:
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert list(body) == ["creditBalance"]
    value: int = body["creditBalance"]
    return value


def test_t16_t17_credits_prints_the_balance_tops_it_up_and_keeps_it(db: Path) -> None:
    assert cli(db, "import", "-", input="").exit_code == 0  # import creates the catalog
    assert balance(cli(db, "credits", "acme")) == 10
    assert balance(cli(db, "credits", "acme", "--add", "5")) == 15
    assert balance(cli(db, "credits", "acme")) == 15
    assert balance(cli(db, "credits", "acme", "--credits", "0")) == 15  # not a new account
    assert balance(cli(db, "credits", "globex", "--credits", "0")) == 0
    refused = cli(db, "credits", "acme", "--add", "-16")
    assert refused.exit_code == 1
    assert json.loads(refused.stderr)["code"] == "VALIDATION_FAILED"
    assert balance(cli(db, "credits", "acme", "--add", "-15")) == 0
    assert balance(cli(db, "credits", "acme")) == 0


def test_t16_credits_gives_an_account_not_seen_yet_the_credits_option() -> None:
    memory = MEMORY
    assert balance(cli(memory, "credits", "acme")) == 10
    assert balance(cli(memory, "credits", "acme", "--credits", "3")) == 3
    assert balance(cli(memory, "credits", "acme", "--credits", "3", "--add", "4")) == 7


@pytest.mark.parametrize(
    "args",
    [
        ["credits"],
        ["credits", ""],
        ["credits", "acme", "--add", "x"],
        ["credits", "acme", "--add", "1.5"],
        ["credits", "acme", "--credits", "-1"],
        ["credits", "acme", "--credits", str(10**15 + 1)],
    ],
)
def test_credits_refuses_bad_arguments_with_a_usage_error(args: list[str]) -> None:
    result = cli(MEMORY, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


# -- the database as messages name it ------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", ["sqlite:///{rel}", "sqlite:////{abs}", "sqlite:///{rel_escaped}"]
)
def test_an_error_quotes_a_sqlite_url_exactly_as_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """The message names the database as the user wrote it: no slash lost, no escape decoded."""
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no where" / "catalog.db"  # a folder that does not exist: cannot open
    target = shape.format(
        rel="no where/catalog.db",
        abs=str(missing).lstrip("/"),
        rel_escaped="no%20where/catalog.db",
    )
    result = script("--db", target, "list", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: no catalog at '{target}': ")
    assert len(result.stderr.splitlines()) == 1


REDACTED_URLS = [
    # (as given, as printed): only secrets change; every other character stays as written.
    ("catalog.db", "catalog.db"),
    ("./data/catalog.db", "./data/catalog.db"),
    ("sqlite:///catalog.db", "sqlite:///catalog.db"),
    ("sqlite:///data/catalog.db", "sqlite:///data/catalog.db"),
    ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
    ("sqlite:////abs/with%20space.db", "sqlite:////abs/with%20space.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite:///x.db?mode=ro", "sqlite:///x.db?mode=ro"),
    ("postgresql:///db", "postgresql:///db"),
    ("postgresql:///db?host=/var/run/postgresql", "postgresql:///db?host=/var/run/postgresql"),
    ("postgres://app@db.internal/shop", "postgres://app@db.internal/shop"),
    ("postgresql://app:hunter2@db.internal/shop", "postgresql://app:***@db.internal/shop"),
    ("postgresql://app:@db.internal/shop", "postgresql://app:@db.internal/shop"),
    ("postgresql://app:hunter2@[::1]:5432/shop", "postgresql://app:***@[::1]:5432/shop"),
    ("postgresql://app:p%40ss%2Fw@host/db", "postgresql://app:***@host/db"),
    ("postgresql://app:pa?ss@host/db", "postgresql://app:***@host/db"),
    ("postgresql://app:pa#ss@host/db", "postgresql://app:***@host/db"),
    ("postgresql://a%40b:pw@host/db", "postgresql://a%40b:***@host/db"),
    ("postgresql://app:hunter2@host", "postgresql://app:***@host"),
    ("postgresql://app:hunter2@host?sslmode=require", "postgresql://app:***@host?sslmode=require"),
    ("postgresql://host/db?password=hunter2", "postgresql://host/db?password=***"),
    ("postgresql://host?password=hunter2", "postgresql://host?password=***"),
    ("postgresql://host?password=hun@ter2", "postgresql://host?password=***"),
    ("postgresql://host/db?password=a?b&x=1", "postgresql://host/db?password=***&x=1"),
    ("postgresql://us?er@host/db?password=x", "postgresql://us?er@host/db?password=***"),
    ("postgresql://u:pw@host?password=a@b", "postgresql://u:***@b"),  # more hidden, none shown
    (
        "postgresql://u:pw@h/db?schema=s&pass%77ord=x&PASSWORD=y&sslpassword=z&passfile=/p",
        "postgresql://u:***@h/db?schema=s&pass%77ord=***&PASSWORD=***&sslpassword=***&passfile=***",
    ),
    (
        "postgresql://h/db?application_name=a%20b&options=-c%20x%3Dy",
        "postgresql://h/db?application_name=a%20b&options=-c%20x%3Dy",
    ),
    ("postgresql://[::1/db", "postgresql://[::1/db"),
]


@pytest.mark.parametrize(("given", "printed"), REDACTED_URLS)
def test_a_database_url_is_printed_as_given_with_only_its_secrets_hidden(
    given: str, printed: str
) -> None:
    from catalog_core.cli import _redact

    assert _redact(given) == printed


@pytest.mark.parametrize("mark", [b"", b"\xef\xbb\xbf"], ids=["", "with a byte order mark"])
def test_r33_lines_are_read_whole_up_to_the_limit_and_past_it_only_measured(mark: bytes) -> None:
    """R33: the import's reader keeps a line whose payload is up to ``limit`` bytes (a first
    line's byte order mark and every line's end, \\n or \\r\\n, aside: a request body has
    neither), gives only the payload's length of a longer one, and tells blank lines."""
    import io

    from catalog_core.cli import _lines

    limit = 8
    lines = [
        mark + b'{"a":1}\n',  # 7 bytes and the newline
        b'{"a":12}\n',  # 8: at the limit, its newline aside
        b'{"a":123}\n',  # 9: one over
        b" \t\r " * 5 + b"\n",  # blank, and longer than the limit
        b"\n",  # blank
        b"x" * 20 + b"\n",  # over, read in chunks
        b'{"a":12}\r\n',  # at the limit, with a Windows line end
        b"y" * 9 + b"\r\n",  # one over, with a Windows line end
        b"y" * 8,  # at the limit, at the end without a newline
    ]
    data = b"".join(lines)
    got = list(_lines(io.BufferedReader(io.BytesIO(data), buffer_size=4), limit))
    assert got == [
        (1, b'{"a":1}\n', 8 + len(mark)),
        (2, b'{"a":12}\n', 9),
        (3, 9, 10),
        (4, b"", 21),
        (5, b"", 1),
        (6, 20, 21),
        (7, b'{"a":12}\r\n', 10),
        (8, 9, 11),
        (9, b"y" * 8, 8),
    ]
    assert sum(size for _, _, size in got) == len(data)  # the progress bar reaches the end
    ended = list(_lines(io.BytesIO(b"z" * 30), limit))  # over, and no newline at the end
    assert ended == [(1, 30, 30)]
