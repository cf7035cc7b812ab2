"""catalog_core: the Try-On API's product catalog, as an embeddable library.

>>> import catalog_core as cc
>>> catalog = cc.Catalog(cc.MemoryRepository())
>>> result = catalog.upsert("acme", {"externalId": "shirt-42",
...                                  "images": [{"source": {"url": "https://cdn.example/front.jpg"}}]})
>>> result.created, result.product.version
(True, 1)
"""

# Imported under private names: every public name of this module is in __all__.
import typing as _typing

from catalog_core import _lazy
from catalog_core._unset import UNSET, Unset
from catalog_core.catalog import ANY_VERSION, AnyVersion, Catalog
from catalog_core.commands import ImageInput, UpsertCommand, UseCommand
from catalog_core.errors import (
    CatalogError,
    CustomerImageFetchFailed,
    CustomerImageRequired,
    Detail,
    ExternalIdRequired,
    FileRequired,
    FileTooLarge,
    GenerationNotFound,
    InsufficientCredits,
    InvalidApiKey,
    InvalidImage,
    InvalidImageInput,
    MissingApiKey,
    MultipartFileNotFound,
    PayloadTooLarge,
    ProductImagesRequired,
    ProductNotFound,
    RateLimited,
    ReservedExternalId,
    UnsupportedMediaType,
    ValidationFailed,
    VersionConflict,
)
from catalog_core.images import Blob
from catalog_core.limits import Limits
from catalog_core.model import (
    Image,
    Page,
    PayloadWarning,
    Product,
    Upload,
    UpsertResult,
    UseResult,
)
from catalog_core.repository.base import (
    BatchRepository,
    Repository,
    ScanRepository,
    TryOnRepository,
    Write,
)
from catalog_core.repository.url import missing_postgres_extra as _missing_postgres_extra
from catalog_core.repository.url import open_repository

if _typing.TYPE_CHECKING:
    from catalog_core.repository.memory import MemoryRepository
    from catalog_core.repository.postgres import PostgresRepository
    from catalog_core.repository.sqlite import SQLiteRepository
    from catalog_core.tryon.service import TryOn
    from catalog_core.wire.encode import page_to_wire, product_from_wire, to_wire

__version__ = "0.1.0"

# The storage backends and the wire encoder, and the module each comes from: imported on first
# use (PEP 562), with their driver (sqlite-utils, psycopg) or cattrs, so that importing the
# package costs only the core. PostgresRepository also needs the postgres extra installed.
_LAZY: _typing.Final = {
    "MemoryRepository": "catalog_core.repository.memory",
    "PostgresRepository": "catalog_core.repository.postgres",
    "SQLiteRepository": "catalog_core.repository.sqlite",
    "TryOn": "catalog_core.tryon.service",
    "page_to_wire": "catalog_core.wire.encode",
    "product_from_wire": "catalog_core.wire.encode",
    "to_wire": "catalog_core.wire.encode",
}


# Hidden from type checkers, which see the imports above: a misspelt name stays an error.
if not _typing.TYPE_CHECKING:
    _lazy_getattr, __dir__ = _lazy.attach(globals(), _LAZY)

    def __getattr__(name: str) -> object:
        try:
            return _lazy_getattr(name)
        except ImportError as exc:  # psycopg missing: say which extra to install, and how
            missing = _missing_postgres_extra(exc)
            if missing is None:
                raise
            raise missing from exc


__all__ = [
    "ANY_VERSION",
    "UNSET",
    "AnyVersion",
    "BatchRepository",
    "Blob",
    "Catalog",
    "CatalogError",
    "CustomerImageFetchFailed",
    "CustomerImageRequired",
    "Detail",
    "ExternalIdRequired",
    "FileRequired",
    "FileTooLarge",
    "GenerationNotFound",
    "Image",
    "ImageInput",
    "InsufficientCredits",
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
    "ScanRepository",
    "TryOn",
    "TryOnRepository",
    "Unset",
    "UnsupportedMediaType",
    "Upload",
    "UpsertCommand",
    "UpsertResult",
    "UseCommand",
    "UseResult",
    "ValidationFailed",
    "VersionConflict",
    "Write",
    "open_repository",
    "page_to_wire",
    "product_from_wire",
    "to_wire",
]
