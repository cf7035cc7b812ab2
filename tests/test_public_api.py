"""The public surface: exactly the documented names, and nothing heavy imported."""

from __future__ import annotations

import subprocess
import sys

import catalog_core as cc

DOCUMENTED = {
    "ANY_VERSION",
    "AnyVersion",
    "UNSET",
    "BatchRepository",
    "Blob",
    "Catalog",
    "CatalogError",
    "Detail",
    "ExternalIdRequired",
    "FileTooLarge",
    "Image",
    "ImageInput",
    "InvalidApiKey",
    "InvalidImage",
    "InvalidImageInput",
    "Limits",
    "MemoryRepository",
    "MissingApiKey",
    "MultipartFileNotFound",
    "Page",
    "PayloadTooLarge",
    "PayloadWarning",
    "PostgresRepository",
    "Product",
    "ProductImagesRequired",
    "ProductNotFound",
    "RateLimited",
    "Repository",
    "ReservedExternalId",
    "SQLiteRepository",
    "Unset",
    "UnsupportedMediaType",
    "UpsertCommand",
    "UpsertResult",
    "UseCommand",
    "UseResult",
    "Upload",
    "ValidationFailed",
    "VersionConflict",
    "Write",
    "open_repository",
    "page_to_wire",
    "product_from_wire",
    "to_wire",
}


def test_all_is_exactly_the_documented_api_and_sorted() -> None:
    assert set(cc.__all__) == DOCUMENTED
    assert list(cc.__all__) == sorted(cc.__all__, key=lambda n: (not n.isupper(), n))
    for name in cc.__all__:
        assert getattr(cc, name) is not None


def test_importing_the_package_loads_no_adapter_or_test_library() -> None:
    code = (
        "import sys, catalog_core; "
        "heavy = ('catalog_core.cli', 'hypothesis', 'pytest', 'starlette', 'psycopg'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_version_is_a_string() -> None:
    assert isinstance(cc.__version__, str)
    assert cc.__version__.count(".") == 2
