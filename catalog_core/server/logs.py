"""The server's logging: uvicorn's setup, the server's own logger on it, and no secrets in it.

The access log records each request line. A listing cursor in a query string is a keyed tag over
the account, and without a key table the account is the caller's API key: the cursor's value is
replaced by ``…`` in the log, so that the log holds nothing a key could be guessed against.
"""

from __future__ import annotations

import copy
import logging
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["RedactCursors", "log_config"]


def _without_cursors(target: str) -> str:
    """Return a request target with the value of every ``cursor`` parameter replaced by ``…``.

    Names are compared percent-decoded, as the server reads them (``%63ursor`` is ``cursor``).
    """
    path, mark, query = target.partition("?")
    if not mark:
        return target
    pairs = []
    for pair in query.split("&"):
        name = pair.partition("=")[0]
        pairs.append(f"{name}=…" if unquote_plus(name) == "cursor" else pair)
    return f"{path}?{'&'.join(pairs)}"


class RedactCursors(logging.Filter):
    """A filter that cuts the value of every ``cursor`` parameter out of uvicorn's access lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the request target argument of an access record; keep every record."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], _without_cursors(args[2]), *args[3:])
        return True


def log_config(level: str) -> dict[str, Any]:
    """Return uvicorn's logging setup at ``level``, for the server and its parser too."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_cursors"] = {"()": RedactCursors}
    config["handlers"]["access"].setdefault("filters", []).append("redact_cursors")
    for name in ("catalog_core", "python_multipart"):
        config["loggers"][name] = {
            "handlers": ["default"],
            "level": level.upper(),
            "propagate": False,
        }
    return config
