"""The DDL of the PostgreSQL backend, importable without psycopg (``catalog-core schema-sql``)."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "check_schema_name", "schema_sql"]

DEFAULT_SCHEMA: Final = "catalog_core"
SCHEMA_VERSION: Final = 1
_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_SCHEMA_SQL: Final = """\
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.catalog_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.products (
    account text COLLATE "C" NOT NULL,
    external_id text COLLATE "C" NOT NULL,
    one_shot boolean NOT NULL,
    data text NOT NULL,
    valid_for_days integer,
    expires_at bigint,
    last_used_at bigint,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (account, external_id)
);
CREATE INDEX IF NOT EXISTS products_listing ON {s}.products (account, external_id)
    WHERE NOT one_shot;
CREATE INDEX IF NOT EXISTS products_expiry ON {s}.products (account, expires_at)
    WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.blobs (
    account text COLLATE "C" NOT NULL,
    sha256 text COLLATE "C" NOT NULL,
    mime_type text NOT NULL,
    data bytea NOT NULL,
    refs integer NOT NULL,
    PRIMARY KEY (account, sha256)
);
CREATE INDEX IF NOT EXISTS blobs_orphans ON {s}.blobs (account, sha256) WHERE refs = 0;
INSERT INTO {s}.catalog_meta (key, value) VALUES ('schema_version', '{version}')
    ON CONFLICT (key) DO NOTHING;
INSERT INTO {s}.catalog_meta (key, value)
    VALUES ('cursor_secret', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
    ON CONFLICT (key) DO NOTHING;
"""


def check_schema_name(schema: str) -> str:
    """Return ``schema`` when it is a lower-case SQL identifier PostgreSQL lets users create.

    Raises:
        ValueError: not ``[a-z_][a-z0-9_]*`` of at most 63 characters, or starting with ``pg_``.
    """
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema):
        raise ValueError(
            f"schema must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), not {schema!r}"
        )
    if schema.startswith("pg_"):
        raise ValueError(f"schema names starting with pg_ are reserved by PostgreSQL: {schema!r}")
    return schema


def schema_sql(schema: str = DEFAULT_SCHEMA) -> str:
    """Return the statements that create the catalog's tables in ``schema``.

    Raises:
        ValueError: ``schema`` is not a lower-case SQL identifier.
    """
    quoted = f'"{check_schema_name(schema)}"'  # quoted: a reserved word is a valid schema name
    return _SCHEMA_SQL.format(s=quoted, version=SCHEMA_VERSION)
