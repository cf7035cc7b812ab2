"""The kit embedders test with: strategies, a backend contract suite, a differential state machine.

Needs the ``testing`` extra (hypothesis and pytest): ``pip install 'catalog-core[testing]'``.
"""

from catalog_core.testing.clock import START, FakeClock

__all__ = ["START", "FakeClock"]
