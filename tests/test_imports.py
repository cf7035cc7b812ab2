"""Importing the core is cheap and has no side effects: drivers, cattrs and adapters load on use.

Each check runs in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What importing the core must not load: the backends and their drivers (sqlite-utils brings
# click and pluggy), cattrs (the wire encoder), the adapters, and the test libraries; and what
# only some calls need (listing cursors, typed commands, uploads, one-shot ids, URLs that are not
# plain), whose standard modules (hashlib's C module above all) were a quarter of what is left.
HEAVY = (
    "cattrs",
    "catalog_core.cli",
    "catalog_core.cursor",
    "catalog_core.wire.check",
    "hashlib",
    "hmac",
    "secrets",
    "urllib.parse",
    "catalog_core.repository.memory",
    "catalog_core.repository.postgres",
    "catalog_core.repository.sqlite",
    "catalog_core.server",
    "catalog_core.wire.encode",
    "click",
    "hypothesis",
    "pluggy",
    "psycopg",
    "psycopg_pool",
    "pytest",
    "sqlite_utils",
    "starlette",
)

# The public names that are imported on first use, and the module each one is defined in.
LAZY = {
    "catalog_core": {
        "MemoryRepository": "catalog_core.repository.memory",
        "PostgresRepository": "catalog_core.repository.postgres",
        "SQLiteRepository": "catalog_core.repository.sqlite",
        "page_to_wire": "catalog_core.wire.encode",
        "product_from_wire": "catalog_core.wire.encode",
        "to_wire": "catalog_core.wire.encode",
    },
    "catalog_core.repository": {
        "MemoryRepository": "catalog_core.repository.memory",
        "SQLiteRepository": "catalog_core.repository.sqlite",
    },
    "catalog_core.wire": dict.fromkeys(
        (
            "format_timestamp",
            "make_converter",
            "page_to_wire",
            "parse_timestamp",
            "product_from_wire",
            "to_wire",
        ),
        "catalog_core.wire.encode",
    ),
}


def run(code: str) -> object:
    """Run ``code`` in a fresh interpreter and return the JSON value it prints."""
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def loaded_after(statement: str) -> object:
    return run(
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )


@pytest.mark.parametrize(
    "statement",
    [
        "import catalog_core",
        "import catalog_core.rules",
        "import catalog_core.catalog",
        "import catalog_core.repository",
        "import catalog_core.wire",
        "from catalog_core.repository.url import open_repository",
    ],
)
def test_importing_the_core_loads_no_driver_cattrs_adapter_or_test_library(
    statement: str,
) -> None:
    assert loaded_after(statement) == []


@pytest.mark.parametrize(
    ("package", "name", "home"),
    [(package, name, home) for package, names in LAZY.items() for name, home in names.items()],
)
def test_a_lazy_name_is_in_dir_and_resolves_to_the_object_its_module_defines(
    package: str, name: str, home: str
) -> None:
    code = f"""
import importlib, json, sys
package = importlib.import_module({package!r})
listed = {name!r} in dir(package)
before = {home!r} in sys.modules
value = getattr(package, {name!r})
print(json.dumps([listed, before, value is getattr(importlib.import_module({home!r}), {name!r}),
                  getattr(package, {name!r}) is value, {name!r} in vars(package)]))
"""
    listed, loaded_before, same, same_again, cached = run(code)  # type: ignore[misc]
    assert listed
    assert not loaded_before
    assert same
    assert same_again
    assert cached  # the second lookup is a plain attribute read


def libraries_loaded_after(statement: str) -> list[str]:
    """What ``statement`` loads of HEAVY but the standard library's modules."""
    loaded = loaded_after(statement)
    assert isinstance(loaded, list)
    return [m for m in loaded if m.partition(".")[0] not in sys.stdlib_module_names]


def test_each_lazy_name_loads_only_its_own_dependency() -> None:
    assert libraries_loaded_after("import catalog_core as cc; cc.to_wire") == [
        "catalog_core.wire.encode",
        "cattrs",
    ]
    assert libraries_loaded_after("import catalog_core as cc; cc.SQLiteRepository") == [
        "catalog_core.repository.sqlite",
        "click",
        "pluggy",
        "sqlite_utils",
    ]
    assert libraries_loaded_after(
        "import catalog_core as cc; cc.Catalog(cc.MemoryRepository())"
    ) == ["catalog_core.repository.memory"]


def test_open_repository_imports_sqlite_utils_only_when_it_opens_an_sqlite_catalog() -> None:
    loaded = loaded_after("import catalog_core as cc; cc.open_repository(':memory:').close()")
    assert "sqlite_utils" in loaded  # type: ignore[operator]
    assert "psycopg" not in loaded  # type: ignore[operator]


def test_importing_the_server_leaves_starlettes_convertor_registry_alone() -> None:
    code = """
import json
import starlette.convertors as convertors
before = dict(convertors.CONVERTOR_TYPES)
import catalog_core.server
after_import = dict(convertors.CONVERTOR_TYPES)
import catalog_core as cc
apps = [catalog_core.server.create_app(cc.Catalog(cc.MemoryRepository())) for _ in range(2)]
registered = convertors.CONVERTOR_TYPES["catalog_id"]
catalog_core.server.create_app(cc.Catalog(cc.MemoryRepository()))
print(json.dumps([after_import == before, "catalog_id" in before,
                  sorted(set(convertors.CONVERTOR_TYPES) - set(before)),
                  convertors.CONVERTOR_TYPES["catalog_id"] is registered]))
"""
    unchanged, present_before, added, kept = run(code)  # type: ignore[misc]
    assert unchanged
    assert not present_before
    assert added == ["catalog_id"]
    assert kept  # a second app registers nothing again


def test_apps_created_at_once_in_many_threads_all_route_ids_with_line_feeds() -> None:
    code = """
import json, threading
from starlette.testclient import TestClient
import catalog_core as cc
from catalog_core.server import create_app
barrier = threading.Barrier(8)
statuses = []
def serve():
    barrier.wait()
    app = create_app(cc.Catalog(cc.MemoryRepository()))
    with TestClient(app) as client:
        answer = client.get("/tryon/v1/products/a%0Ab", headers={"x-api-key": "k"})
        statuses.append(answer.status_code)
threads = [threading.Thread(target=serve) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(statuses))
"""
    # A line feed is no valid id (400, R2); without the convertor the path would be no route (404).
    assert run(code) == [400] * 8
