"""What every request passes before it reaches an endpoint: the API key, then the rate limit.

``x-api-key`` names the caller's account. With a key table (``--api-key KEY=ACCOUNT``) only the
listed keys are accepted; without one any key is accepted and is its own account, so two keys
never see each other's products. Keys are never logged: this module keeps them out of every
message it writes, and the account it puts in the request scope is the only thing endpoints see.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from catalog_core.errors import CatalogError, InvalidApiKey, MissingApiKey, RateLimited
from catalog_core.server.responses import error_response
from catalog_core.wire.decode import check_account

__all__ = ["ACCOUNT_SCOPE_KEY", "Gate"]

#: Where the gate leaves the caller's account in the ASGI scope.
ACCOUNT_SCOPE_KEY = "catalog_core.account"


class Gate:
    """ASGI middleware: authenticate by ``x-api-key`` and apply the per-account rate limit.

    Args:
        app: the application behind the gate.
        api_keys: key → account; ``None`` accepts any key as its own account.
        rate_limit: requests per account per minute, or ``None`` for no limit.
        public_paths: paths served without a key (the OpenAPI document).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: Mapping[str, str] | None,
        rate_limit: int | None,
        public_paths: frozenset[str],
    ) -> None:
        self.app = app
        self.api_keys = None if api_keys is None else dict(api_keys)
        self.public_paths = public_paths
        self.rate = None if rate_limit is None else RateLimitItemPerMinute(rate_limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 401 or 429 in the error shape, or pass the request on with its account."""
        if scope["type"] != "http" or _route_path(scope) in self.public_paths:
            await self.app(scope, receive, send)
            return
        try:
            account = self._account(Headers(scope=scope).getlist("x-api-key"))
        except CatalogError as exc:
            await error_response(exc)(scope, receive, send)
            return
        wait = self._wait(account)
        if wait is not None:
            assert self.rate is not None
            limited = RateLimited(
                f"Too many requests: the limit is {self.rate.amount} per minute for an account. "
                f"Retry after {wait} seconds."
            )
            await error_response(limited, {"Retry-After": str(wait)})(scope, receive, send)
            return
        scope[ACCOUNT_SCOPE_KEY] = account
        await self.app(scope, receive, send)

    def _account(self, keys: list[str]) -> str:
        distinct = {key for key in keys if key}
        if not distinct:
            raise MissingApiKey("The x-api-key header is required.")
        if len(distinct) > 1:
            raise InvalidApiKey("Send one x-api-key header, not several.")
        (key,) = distinct
        if self.api_keys is None:
            try:  # the key is the account: it must be one the catalog accepts
                return check_account(key)
            except CatalogError:
                raise InvalidApiKey("The API key is not valid.") from None
        account = self.api_keys.get(key)
        if account is None:
            raise InvalidApiKey("The API key is not valid.")
        return account

    def _wait(self, account: str) -> int | None:
        """Count a request of ``account``; return the seconds to wait when it is over the limit.

        A refused request is not counted, so a client that waits as told gets through.
        """
        if self.rate is None or self.limiter.hit(self.rate, account):
            return None
        reset_at, _ = self.limiter.get_window_stats(self.rate, account)
        return max(1, math.ceil(reset_at - time.time()))


def _route_path(scope: Scope) -> str:
    """The path below the prefix the application is mounted under (``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
