"""The DDL of the PostgreSQL backend, importable without psycopg (``catalog-core schema-sql``)."""

from __future__ import annotations

import re
from typing import Final

from catalog_core.repository._recognise import EARLIER_VERSIONS

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "check_schema_name", "schema_sql"]

DEFAULT_SCHEMA: Final = "catalog_core"
#: 2: the try-on flow's tables (person_images, generations, credits) beside schema 1's.
SCHEMA_VERSION: Final = 2
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
CREATE TABLE IF NOT EXISTS {s}.person_images (
    account text COLLATE "C" NOT NULL,
    image_id text COLLATE "C" NOT NULL,
    sha256 text COLLATE "C" NOT NULL,
    data text NOT NULL,
    crop boolean NOT NULL,
    customer_id text COLLATE "C",
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (account, image_id)
);
CREATE INDEX IF NOT EXISTS person_images_expiry ON {s}.person_images (expires_at);
CREATE INDEX IF NOT EXISTS person_images_customer ON {s}.person_images (account, customer_id)
    WHERE customer_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.generations (
    account text COLLATE "C" NOT NULL,
    generation_id text COLLATE "C" NOT NULL,
    data text NOT NULL,
    customer_id text COLLATE "C",
    watermark boolean NOT NULL,
    keep_for_days integer NOT NULL,
    created_at bigint NOT NULL,
    processing_at bigint NOT NULL,
    finished_at bigint,
    expires_at bigint NOT NULL,
    PRIMARY KEY (account, generation_id)
);
CREATE INDEX IF NOT EXISTS generations_expiry ON {s}.generations (expires_at);
CREATE INDEX IF NOT EXISTS generations_customer ON {s}.generations (account, customer_id)
    WHERE customer_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.credits (
    account text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    balance bigint NOT NULL,
    refunds text NOT NULL,
    PRIMARY KEY (account, id)
);
INSERT INTO {s}.catalog_meta AS m (key, value) VALUES ('schema_version', '{version}')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE m.value IN ({earlier});
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

    Every statement creates only what is missing, so the same statements also complete a schema
    missing parts and migrate one of schema 1 (raising its ``schema_version``); a schema of a
    later version keeps its version. Run them in one transaction (``psql --single-transaction``),
    as the repository does, and a failure leaves the schema as it was.

    Raises:
        ValueError: ``schema`` is not a lower-case SQL identifier.
    """
    quoted = f'"{check_schema_name(schema)}"'  # quoted: a reserved word is a valid schema name
    earlier = ", ".join(f"'{version}'" for version in sorted(EARLIER_VERSIONS))
    return _SCHEMA_SQL.format(s=quoted, version=SCHEMA_VERSION, earlier=earlier)
