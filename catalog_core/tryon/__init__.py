"""The try-on flow beside the catalog: person images, generations, credits (TRYON.md, T1-T24).

>>> import catalog_core as cc
>>> from catalog_core.tryon import TryOn
>>> catalog = cc.Catalog(cc.MemoryRepository())
>>> tryon = TryOn(catalog)
>>> tryon.credits("acme")
10

The values and the engine interface load with the package; :class:`TryOn` (which needs the
catalog) is imported on first use.
"""

import typing as _typing

from catalog_core import _lazy
from catalog_core.tryon.commands import (
    DEFAULT_KEEP_FOR_DAYS,
    KEEP_FOR_DAYS,
    PersonSource,
    StartCommand,
    UploadOptions,
)
from catalog_core.tryon.engine import Engine, Job, LocalEngine, Schedule
from catalog_core.tryon.model import (
    COMPLETED,
    FAILED,
    PENDING,
    PROCESSING,
    Credits,
    Generation,
    GenerationView,
    Person,
    PersonImage,
    ProductSnapshot,
)

if _typing.TYPE_CHECKING:
    from catalog_core.tryon.service import (
        DEFAULT_CREDITS,
        GenerationPage,
        ListedGeneration,
        Media,
        StartResult,
        TryOn,
        UploadResult,
    )

_LAZY: _typing.Final = dict.fromkeys(
    (
        "DEFAULT_CREDITS",
        "GenerationPage",
        "ListedGeneration",
        "Media",
        "StartResult",
        "TryOn",
        "UploadResult",
    ),
    "catalog_core.tryon.service",
)

if not _typing.TYPE_CHECKING:
    __getattr__, __dir__ = _lazy.attach(globals(), _LAZY)

__all__ = [
    "COMPLETED",
    "DEFAULT_CREDITS",
    "DEFAULT_KEEP_FOR_DAYS",
    "FAILED",
    "KEEP_FOR_DAYS",
    "PENDING",
    "PROCESSING",
    "Credits",
    "Engine",
    "Generation",
    "GenerationPage",
    "GenerationView",
    "Job",
    "ListedGeneration",
    "LocalEngine",
    "Media",
    "Person",
    "PersonImage",
    "PersonSource",
    "ProductSnapshot",
    "Schedule",
    "StartCommand",
    "StartResult",
    "TryOn",
    "UploadOptions",
    "UploadResult",
]
