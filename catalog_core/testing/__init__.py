"""The kit embedders test with: strategies, a backend contract suite, a differential state machine.

Needs the ``testing`` extra (hypothesis and pytest): ``pip install 'catalog-core[testing]'``.

- :class:`RepositoryContract` — subclass it in a test file to run every storage behaviour the
  rules depend on against a backend.
- :class:`FakeClock` — a clock the tests move by hand.
"""

from catalog_core.testing.clock import START, FakeClock
from catalog_core.testing.contract import RepositoryContract

__all__ = ["START", "FakeClock", "RepositoryContract"]
