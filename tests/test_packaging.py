"""The built wheel carries the package, its type marker and the testing kit, and they import."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("catalog_core-*.whl")
    return built


def test_the_wheel_holds_the_package_the_kit_and_the_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "catalog_core/__init__.py",
        "catalog_core/py.typed",
        "catalog_core/testing/__init__.py",
        "catalog_core/testing/contract.py",
        "catalog_core/testing/strategies.py",
        "catalog_core/testing/state_machine.py",
        "catalog_core/repository/postgres.py",
        "catalog_core/cli.py",
        "catalog_core/server/__init__.py",
        "catalog_core/server/app.py",
        "catalog_core/server/openapi.py",
        # The dashboard's page needs its script and style from the wheel: no build, no CDN.
        "catalog_core/server/dashboard_static/dashboard.js",
        "catalog_core/server/dashboard_static/dashboard.css",
    ):
        assert expected in names
    assert not any(name.startswith("tests/") for name in names)
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Provides-Extra: testing" in text
    assert "Provides-Extra: postgres" in text
    assert "Provides-Extra: server" in text
    assert "Requires-Dist: starlette" in text
    assert "extra == 'server'" in text


def test_the_kit_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import catalog_core; "
        "from catalog_core.testing import RepositoryContract, make_catalog_state_machine; "
        "from catalog_core.testing.strategies import upsert_payloads; "
        "print(catalog_core.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().startswith(str(target))
