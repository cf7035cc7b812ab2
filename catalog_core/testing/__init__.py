"""The kit embedders test with: strategies, a backend contract suite, differential state machines.

Needs the ``testing`` extra (hypothesis and pytest): ``pip install 'catalog-core[testing]'``.

- :class:`RepositoryContract` — subclass it in a test file to run every storage behaviour the
  rules depend on against a backend.
- :func:`make_catalog_state_machine` — a hypothesis stateful test that drives a
  :class:`~catalog_core.Catalog` on a backend and a separately written reference model through
  random operations and checks they agree after every step.
- :func:`make_tryon_state_machine` — the same for the try-on flow
  (:class:`~catalog_core.tryon.TryOn`: uploads, try-ons, generations, credits, erasure, purges)
  against a reference model of its own, on a backend that stores the try-on state.
- :mod:`catalog_core.testing.strategies` — hypothesis strategies for payloads, use items,
  try-on bodies, upload fields, products, accounts and ids; :mod:`catalog_core.testing.invalid`
  and :mod:`catalog_core.testing.invalid_tryon` — requests the catalog and the try-on flow must
  refuse, each with its code (also exported by ``strategies``).
- :class:`FakeClock` — a clock the tests move by hand.
"""

from catalog_core.testing import strategies
from catalog_core.testing.clock import START, FakeClock
from catalog_core.testing.contract import RepositoryContract
from catalog_core.testing.state_machine import (
    CatalogStateMachine,
    ReferenceCatalog,
    make_catalog_state_machine,
)
from catalog_core.testing.tryon_state_machine import (
    ReferenceTryOn,
    TryOnStateMachine,
    make_tryon_state_machine,
)

__all__ = [
    "START",
    "CatalogStateMachine",
    "FakeClock",
    "ReferenceCatalog",
    "ReferenceTryOn",
    "RepositoryContract",
    "TryOnStateMachine",
    "make_catalog_state_machine",
    "make_tryon_state_machine",
    "strategies",
]
