"""One way to name a repository: ``open_repository(url)`` for SQLite paths and PostgreSQL URLs."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from catalog_core.repository.base import Repository

__all__ = ["open_repository"]


def open_repository(url: str, **options: Any) -> Repository:
    """Open the repository a URL names.

    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``,
      or a plain file path: a :class:`~catalog_core.SQLiteRepository`.
    - ``postgresql://user@host:port/dbname`` (or ``postgres://``): a
      :class:`~catalog_core.PostgresRepository` (needs the ``postgres`` extra). A ``schema``
      query parameter picks the schema (``…/dbname?schema=shop``); the other parameters go to
      libpq as they are.

    Args:
        url: the URL or path.
        options: keyword arguments for the repository's constructor (``durability=`` for
            SQLite, ``max_size=`` for PostgreSQL...).

    Raises:
        ValueError: the URL's scheme is not one of these.
    """
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        from catalog_core.repository.postgres import PostgresRepository

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schemas = [value for key, value in query if key == "schema"]
        rest = urlencode([(key, value) for key, value in query if key != "schema"])
        if schemas:
            options.setdefault("schema", schemas[-1])
        return PostgresRepository(urlunsplit(parts._replace(query=rest)), **options)
    if scheme == "sqlite":
        from catalog_core.repository.sqlite import SQLiteRepository

        path = unquote(url[len("sqlite://") :])
        if not path.startswith("/"):
            raise ValueError(
                f"a SQLite URL is sqlite:///relative/path or sqlite:////absolute: {url!r}"
            )
        return SQLiteRepository(path[1:] or ":memory:", **options)
    if scheme:
        raise ValueError(
            f"no repository for URLs of scheme {scheme!r}: use sqlite:// or postgresql://"
        )
    from catalog_core.repository.sqlite import SQLiteRepository

    return SQLiteRepository(url, **options)
