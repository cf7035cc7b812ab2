"""What every request passes before it reaches an endpoint: the API key, then the rate limit.

``x-api-key`` names the caller's account. With a key table (``--api-key KEY=ACCOUNT``) only the
listed keys are accepted; without one any key is accepted and is its own account, so two keys
never see each other's products. Keys are never logged: this module keeps them out of every
message it writes, and the account it puts in the request scope is the only thing endpoints see.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Final

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from catalog_core.errors import CatalogError, InvalidApiKey, MissingApiKey, RateLimited
from catalog_core.server.responses import error_response
from catalog_core.wire.decode import check_account

__all__ = ["ACCOUNT_SCOPE_KEY", "Gate", "MovingWindow", "account_of_keys"]

#: Where the gate leaves the caller's account in the ASGI scope.
ACCOUNT_SCOPE_KEY = "catalog_core.account"
# Accounts whose window has emptied that one hit forgets, at most: one hit adds at most one
# account, so memory follows the accounts seen in the last window, at a fixed cost per hit.
_FORGET_PER_HIT: Final = 2


class MovingWindow:
    """At most ``limit`` hits per key in any ``window`` seconds, at a fixed cost per hit.

    The cost of a hit does not grow with the number of keys. Each key keeps the times of its last
    ``limit`` counted hits, oldest first: a hit is allowed when fewer are kept or the oldest has
    left the window, and then it takes that oldest one's place. Keys are kept in the order of
    their last counted hit, so those whose window has emptied are at the front, and each hit
    forgets a few of them. A refused hit is not counted.

    Args:
        limit: hits allowed per key and window.
        window: the window's length in seconds.
        clock: seconds of a monotonic clock (tests pass their own).
    """

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Count a hit of ``key``; ``None`` when it is allowed, else the seconds until one is."""
        now = self._clock()
        with self._lock:
            self._forget(now)
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque(maxlen=self.limit)
            elif len(hits) == self.limit and now - hits[0] < self.window:
                return hits[0] + self.window - now
            else:
                self._hits.move_to_end(key)
            hits.append(now)
            return None

    def __len__(self) -> int:
        """How many keys are kept."""
        return len(self._hits)

    def _forget(self, now: float) -> None:
        for _ in range(_FORGET_PER_HIT):
            oldest = next(iter(self._hits.values()), None)
            if oldest is None or now - oldest[-1] < self.window:
                return
            self._hits.popitem(last=False)


class Gate:
    """ASGI middleware: authenticate by ``x-api-key`` and apply the per-account rate limit.

    Args:
        app: the application behind the gate.
        api_keys: key → account; ``None`` accepts any key as its own account.
        rate_limit: requests per account per minute, or ``None`` for no limit.
        public_paths: paths served without a key (the OpenAPI document).
        public_prefixes: paths starting with one of these are served without a key too (media
            URLs, whose secret is in the path, T3).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: Mapping[str, str] | None,
        rate_limit: int | None,
        public_paths: frozenset[str],
        public_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.api_keys = None if api_keys is None else dict(api_keys)
        self.public_paths = public_paths
        self.public_prefixes = public_prefixes
        self.limiter = None if rate_limit is None else MovingWindow(rate_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 401 or 429 in the error shape, or pass the request on with its account."""
        if scope["type"] != "http" or self._public(_route_path(scope)):
            await self.app(scope, receive, send)
            return
        try:
            account = self._account(Headers(scope=scope).getlist("x-api-key"))
        except CatalogError as exc:
            await error_response(exc)(scope, receive, send)
            return
        limiter = self.limiter
        wait = None if limiter is None else limiter.hit(account)
        if limiter is not None and wait is not None:
            seconds = max(1, math.ceil(wait))
            limited = RateLimited(
                f"Too many requests: the limit is {limiter.limit} per minute for an account. "
                f"Retry after {seconds} seconds."
            )
            await error_response(limited, {"Retry-After": str(seconds)})(scope, receive, send)
            return
        scope[ACCOUNT_SCOPE_KEY] = account
        await self.app(scope, receive, send)

    def _public(self, path: str) -> bool:
        return path in self.public_paths or path.startswith(self.public_prefixes)

    def _account(self, keys: list[str]) -> str:
        return account_of_keys(self.api_keys, keys)


def account_of_keys(api_keys: Mapping[str, str] | None, keys: list[str]) -> str:
    """Return the account of the ``x-api-key`` values of a request.

    Args:
        api_keys: key → account; ``None`` accepts any key as its own account.
        keys: the values of the request's ``x-api-key`` headers.

    Raises:
        MissingApiKey: there is no key, or only empty ones.
        InvalidApiKey: there are several distinct keys, or the key names no account.
    """
    distinct = {key for key in keys if key}
    if not distinct:
        raise MissingApiKey("The x-api-key header is required.")
    if len(distinct) > 1:
        raise InvalidApiKey("Send one x-api-key header, not several.")
    (key,) = distinct
    if api_keys is None:
        try:  # the key is the account: it must be one the catalog accepts
            return check_account(key)
        except CatalogError:
            raise InvalidApiKey("The API key is not valid.") from None
    account = api_keys.get(key)
    if account is None:
        raise InvalidApiKey("The API key is not valid.")
    return account


def _route_path(scope: Scope) -> str:
    """The path below the prefix the application is mounted under (``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
