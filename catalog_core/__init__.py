"""catalog_core: the Try-On API's product catalog, as an embeddable library.

>>> import catalog_core as cc
>>> catalog = cc.Catalog(cc.MemoryRepository())
>>> result = catalog.upsert("acme", {"externalId": "shirt-42",
...                                  "images": [{"source": {"url": "https://cdn.example/front.jpg"}}]})
>>> result.created, result.product.version
(True, 1)
"""

from typing import TYPE_CHECKING

from catalog_core._unset import UNSET, Unset
from catalog_core.catalog import ANY_VERSION, AnyVersion, Catalog
from catalog_core.commands import ImageInput, UpsertCommand, UseCommand
from catalog_core.errors import (
    CatalogError,
    Detail,
    ExternalIdRequired,
    FileTooLarge,
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
from catalog_core.repository.base import BatchRepository, Repository, Write
from catalog_core.repository.memory import MemoryRepository
from catalog_core.repository.sqlite import SQLiteRepository
from catalog_core.repository.url import open_repository
from catalog_core.wire.encode import page_to_wire, product_from_wire, to_wire

if TYPE_CHECKING:
    from catalog_core.repository.postgres import PostgresRepository

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # PostgresRepository needs the postgres extra: import psycopg only when it is asked for.
    if name == "PostgresRepository":
        from catalog_core.repository.postgres import PostgresRepository

        return PostgresRepository
    raise AttributeError(f"module 'catalog_core' has no attribute {name!r}")


__all__ = [
    "ANY_VERSION",
    "UNSET",
    "AnyVersion",
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
