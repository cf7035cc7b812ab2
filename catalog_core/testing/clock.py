"""A clock that tests move by hand, for ``Catalog(repo, clock=FakeClock())``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["START", "FakeClock"]

#: The public page's own example time, ``2026-05-13T10:00:00.000Z``.
START = datetime(2026, 5, 13, 10, 0, 0, tzinfo=UTC)


class FakeClock:
    """A callable clock that only moves when told to.

    Args:
        start: the first time it reads; timezone-aware.
    """

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        """Return the current fake time."""
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)`` and return the new time."""
        self.now += timedelta(**delta)
        return self.now
