"""The kit embedders test with: strategies, a backend contract suite, differential state machines.

Needs the ``testing`` extra (hypothesis and pytest): ``pip install '.[testing]'`` in a checkout.

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
- :mod:`catalog_core.testing.plugin` — pytest fixtures (``catalog``, ``catalog_clock``,
  ``catalog_server``): load them with ``pytest -p catalog_core.testing``.
"""

import pkgutil

try:
    import hypothesis  # to say which extra is missing, before any module of the kit needs it
    import pytest
except ImportError as exc:
    raise ImportError(
        "catalog_core.testing needs the testing extra (hypothesis and pytest), which is not "
        f"installed: pip install '.[testing]' in a checkout of catalog_core ({exc})",
        name=exc.name,
    ) from exc

# pytest rewrites the asserts of test modules only, so a failing contract test would show a bare
# AssertionError; marked here, before the package imports them, the kit's modules are rewritten
# and show the values they compared. Outside a pytest run this marks nothing.
pytest.register_assert_rewrite(*(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)))

# The imports below must follow the registration above.
from catalog_core.testing import strategies  # noqa: E402
from catalog_core.testing.clock import START, FakeClock  # noqa: E402
from catalog_core.testing.contract import RepositoryContract  # noqa: E402

# Attributes, so that `pytest -p catalog_core.testing` finds the fixtures (pytest collects a
# plugin's fixtures from its module's attributes); private, as they are not the kit's API.
from catalog_core.testing.plugin import catalog as _catalog  # noqa: E402, F401
from catalog_core.testing.plugin import catalog_clock as _catalog_clock  # noqa: E402, F401
from catalog_core.testing.plugin import catalog_server as _catalog_server  # noqa: E402, F401
from catalog_core.testing.plugin import (  # noqa: E402, F401
    catalog_server_args as _catalog_server_args,
)
from catalog_core.testing.state_machine import (  # noqa: E402
    KIT_SETTINGS,
    CatalogStateMachine,
    ReferenceCatalog,
    make_catalog_state_machine,
)
from catalog_core.testing.tryon_state_machine import (  # noqa: E402
    ReferenceTryOn,
    TryOnStateMachine,
    make_tryon_state_machine,
)

del hypothesis, pkgutil, pytest  # not the kit's own names

__all__ = [
    "KIT_SETTINGS",
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
