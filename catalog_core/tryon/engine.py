"""Engines: what turns a generation into a result (T14).

An engine is asked, before a try-on is stored, for the :class:`Schedule` of the new generation:
when it starts processing, when it ends and how. The schedule is stored with the generation, so
its status at any time follows from its record (no worker is needed, and the answer is exact
under a fake clock and after a restart). An engine that cannot know the end in advance (a real
model) leaves ``finished_after`` ``None`` and reports later through
:meth:`TryOn.finish_generation <catalog_core.tryon.TryOn.finish_generation>`; its ``start`` is
called once the generation is stored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal, Protocol, runtime_checkable

import attrs

from catalog_core.tryon.model import Person, ProductSnapshot

__all__ = [
    "INVALID_TLD",
    "MOCK_TITLE",
    "Engine",
    "Job",
    "LocalEngine",
    "Schedule",
    "is_unfetchable",
]

#: A product titled exactly this completes at once, as with the public mock engine (T14).
MOCK_TITLE: Final = "mock"
#: Hosts under this top-level domain can never be fetched (RFC 2606).
INVALID_TLD: Final = ".invalid"


def is_unfetchable(url: str) -> bool:
    """Whether ``url``'s host is under the reserved ``.invalid`` top-level domain (T7, T14)."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    host = host.rstrip(".").lower()
    return host == INVALID_TLD[1:] or host.endswith(INVALID_TLD)


@attrs.frozen(kw_only=True)
class Job:
    """What an engine is given: the generation's account and id, its product and person."""

    account: str
    generation_id: str
    product: ProductSnapshot
    person: Person


@attrs.frozen(kw_only=True)
class Schedule:
    """How a generation will run, counted from its creation.

    Attributes:
        processing_after: how long it stays ``PENDING``.
        finished_after: when it ends, or ``None``: the engine reports the end later.
        outcome: ``COMPLETED`` or ``FAILED`` (with ``finished_after``).
        error_code: why it fails, when it does.
        error_message: the same for people.
    """

    processing_after: timedelta = timedelta(0)
    finished_after: timedelta | None = None
    outcome: Literal["COMPLETED", "FAILED"] | None = None
    error_code: str | None = None
    error_message: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.finished_after is None) != (self.outcome is None):
            raise ValueError("a schedule gives finished_after and outcome together, or neither")
        if self.processing_after < timedelta(0):
            raise ValueError("processing_after must not be negative")
        if self.finished_after is not None and self.finished_after < self.processing_after:
            raise ValueError("finished_after must not come before processing_after")
        if (self.outcome == "FAILED") != (self.error_code is not None):
            raise ValueError("a FAILED schedule has an error_code, and only a FAILED one")


@runtime_checkable
class Engine(Protocol):
    """Plans and runs generations. ``schedule`` must be pure: it may be called more than once."""

    def schedule(self, job: Job) -> Schedule:
        """Return the generation's schedule; its result is the person image unless it fails."""
        ...

    def start(self, job: Job) -> None:
        """Called once the generation is stored: start work that reports through ``finish``."""
        ...


@attrs.frozen
class LocalEngine:
    """The stand-in's engine (T14): no model, the person image comes back unchanged.

    A product titled exactly ``"mock"`` completes at once. Otherwise the generation is
    ``PENDING`` for the first quarter of ``generation_seconds``, ``PROCESSING`` for the rest, then
    ``COMPLETED`` — or ``FAILED`` with ``PRODUCT_IMAGE_FETCH_FAILED`` when one of the product's
    image URLs is under ``.invalid``.
    """

    generation_seconds: float = 2.0

    def __attrs_post_init__(self) -> None:
        seconds = self.generation_seconds
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not (0 <= seconds <= 86_400)
        ):
            raise ValueError("generation_seconds must be a number of seconds from 0 to 86400")

    def schedule(self, job: Job) -> Schedule:
        """See :meth:`Engine.schedule`."""
        if job.product.title == MOCK_TITLE:
            return Schedule(finished_after=timedelta(0), outcome="COMPLETED")
        total = timedelta(milliseconds=int(self.generation_seconds * 1000))
        pending = total / 4
        pending -= timedelta(microseconds=pending.microseconds % 1000)
        bad = next((i.source_url for i in job.product.images if is_unfetchable(i.source_url)), None)
        if bad is not None:
            return Schedule(
                processing_after=pending,
                finished_after=total,
                outcome="FAILED",
                error_code="PRODUCT_IMAGE_FETCH_FAILED",
                error_message=f"The product image {bad} could not be fetched.",
            )
        return Schedule(processing_after=pending, finished_after=total, outcome="COMPLETED")

    def start(self, job: Job) -> None:
        """Nothing to start: the schedule says it all."""
