"""One way to name a repository: ``open_repository(url)`` for SQLite paths and PostgreSQL URLs."""

from __future__ import annotations

from typing import Any, Final

from catalog_core.repository.base import Repository

__all__ = ["open_repository"]

#: What the PostgreSQL backend needs and how to install it. catalog_core is on no package index,
#: so ``pip install 'catalog-core[postgres]'`` finds nothing: the extra installs from a checkout.
_POSTGRES_EXTRA: Final = (
    "the PostgreSQL backend needs the postgres extra (psycopg 3 and psycopg-pool), which is not "
    "installed: pip install '.[postgres]' in a checkout of catalog_core"
)
_POSTGRES_DRIVERS: Final = frozenset({"psycopg", "psycopg_pool"})


def missing_postgres_extra(exc: ImportError) -> ImportError | None:
    """Return the error naming the extra to install when ``exc`` is psycopg missing, else ``None``.

    Both ways to the backend use it: ``open_repository("postgresql://…")`` and
    ``catalog_core.PostgresRepository``.
    """
    if (exc.name or "").partition(".")[0] not in _POSTGRES_DRIVERS:
        return None
    return ImportError(f"{_POSTGRES_EXTRA} ({exc})", name=exc.name)


def open_repository(url: str, **options: Any) -> Repository:
    """Open the repository a URL names.

    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``,
      or a plain file path: a :class:`~catalog_core.SQLiteRepository`.
    - ``postgresql://user@host:port/dbname`` (or ``postgres://``): a
      :class:`~catalog_core.PostgresRepository` (needs the ``postgres`` extra). A ``schema``
      query parameter picks the schema (``…/dbname?schema=shop``), and ``create_schema=false``
      opens a schema an administrator made (``catalog-core schema-sql``) without any DDL; the
      other parameters go to libpq as they are.

    Args:
        url: the URL or path.
        options: keyword arguments for the repository's constructor (``durability=`` for
            SQLite, ``max_size=`` for PostgreSQL...).

    Raises:
        ValueError: the URL's scheme is not one of these, or ``create_schema`` is neither
            ``true`` nor ``false``.
        ImportError: a PostgreSQL URL, and the ``postgres`` extra is not installed.
    """
    from urllib.parse import unquote  # on first use, as the backends are

    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        try:
            from catalog_core.repository.postgres import PostgresRepository
        except ImportError as exc:
            missing = missing_postgres_extra(exc)
            if missing is None:
                raise
            raise missing from exc

        # Cut the schema parameter out of the query text and leave every other byte of the URL
        # as written: rebuilding it would lose the // of postgresql:///db or re-escape values.
        base, _, query = url.partition("?")
        kept = []
        for pair in query.split("&") if query else []:
            key, _, value = pair.partition("=")
            if unquote(key) == "schema":
                options.setdefault("schema", unquote(value))
            elif unquote(key) == "create_schema":
                options.setdefault("create_schema", _flag("create_schema", unquote(value)))
            else:
                kept.append(pair)
        return PostgresRepository(base + ("?" + "&".join(kept) if kept else ""), **options)
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


def _flag(name: str, value: str) -> bool:
    """Read a URL's boolean parameter: ``true`` or ``false`` (any case)."""
    flags = {"true": True, "false": False}
    if value.lower() not in flags:
        raise ValueError(f"the URL parameter {name} is true or false, not {value!r}")
    return flags[value.lower()]
