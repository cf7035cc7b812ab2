"""The DDL of the PostgreSQL backend, importable without psycopg (``catalog-core schema-sql``)."""

from __future__ import annotations

import re
from typing import Final

from catalog_core.model import UPLOAD_SCHEME

__all__ = [
    "DEFAULT_SCHEMA",
    "DISTRIBUTED_TABLES",
    "EARLIER_VERSIONS",
    "INDEXES",
    "PRODUCT_OF_GENERATION",
    "SCHEMA_VERSION",
    "TRYON_VERSION",
    "UPLOADS_EXPRESSION",
    "UPLOADS_VERSION",
    "check_schema_name",
    "schema_sql",
    "schema_statements",
]

DEFAULT_SCHEMA: Final = "catalog_core"
#: 2: the try-on flow's tables (person_images, generations, credits) beside schema 1's.
#: 3: products say whether their images name an upload (``uploads``), for the purge.
SCHEMA_VERSION: Final = 3
#: The schema versions a catalog is migrated from, in place.
EARLIER_VERSIONS: Final = frozenset({1, 2})
#: The first schema version with the try-on flow's tables.
TRYON_VERSION: Final = 2
#: The first schema version whose products have the ``uploads`` column.
UPLOADS_VERSION: Final = 3
#: Whether a product's document may name an upload (a blob of its account), read from the
#: document: for a product written before its ``uploads`` column said so (``NULL``). A superset
#: (a title may hold the text); the purge reads the document itself.
UPLOADS_EXPRESSION: Final = f"strpos(data, '{UPLOAD_SCHEME}') > 0"
#: A generation's product id as its document holds it, JSON-escaped: the text of the first
#: string of ``{"product":["...`` (the document's first key). Read with a pattern, not with the
#: JSON operators, which parse the whole snapshot and refuse a title holding ``\u0000``. The
#: index of one product's generations states it, and the listing compares it with the id escaped
#: as the document escapes it (:func:`escaped_product_id`), in exactly this form.
PRODUCT_OF_GENERATION: Final = 'substring(data from \'^\\{"product":\\["((?:[^"\\\\]|\\\\.)*)"\')'
_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: The indexes of a whole catalog.
INDEXES: Final = frozenset(
    {
        "products_listing",
        "products_purge",
        "products_purge_uploads",
        "blobs_orphans",
        "person_images_purge",
        "person_images_customer",
        "generations_purge",
        "generations_customer",
    }
)
#: The tables distributed by ``account`` on Citus, colocated with the first; ``catalog_meta`` is
#: a reference table (a copy on every node).
DISTRIBUTED_TABLES: Final = ("products", "blobs", "person_images", "generations", "credits")

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
    uploads boolean,
    PRIMARY KEY (account, external_id)
);
ALTER TABLE {s}.products ADD COLUMN IF NOT EXISTS uploads boolean;
CREATE INDEX IF NOT EXISTS products_listing ON {s}.products (account, external_id)
    WHERE NOT one_shot;
DROP INDEX IF EXISTS {s}.products_expiry;
CREATE INDEX IF NOT EXISTS products_purge ON {s}.products (expires_at, account, external_id)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS products_purge_uploads
    ON {s}.products (expires_at, account, external_id)
    WHERE expires_at IS NOT NULL AND uploads IS NOT FALSE;
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
DROP INDEX IF EXISTS {s}.person_images_expiry;
CREATE INDEX IF NOT EXISTS person_images_purge
    ON {s}.person_images (expires_at, account, image_id);
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
DROP INDEX IF EXISTS {s}.generations_expiry;
CREATE INDEX IF NOT EXISTS generations_purge
    ON {s}.generations (expires_at, account, generation_id);
CREATE INDEX IF NOT EXISTS generations_customer ON {s}.generations (account, customer_id)
    WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS generations_listing
    ON {s}.generations (account, created_at, generation_id);
CREATE INDEX IF NOT EXISTS generations_product
    ON {s}.generations (account, {product_of}, created_at, generation_id);
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


def schema_sql(schema: str = DEFAULT_SCHEMA, *, distributed: bool = False) -> str:
    """Return the statements that create the catalog's tables in ``schema``.

    Every statement creates only what is missing, so the same statements also complete a schema
    missing parts and migrate one of schema 1 (raising its ``schema_version``); a schema of a
    later version keeps its version. Run them in one transaction (``psql --single-transaction``),
    as the repository does, and a failure leaves the schema as it was.

    With ``distributed``, the statements end with the distribution step of a Citus coordinator:
    ``catalog_meta`` becomes a reference table, and the other tables are distributed by
    ``account``, colocated, so that every operation of one account runs on one shard group.
    Each call is made only for a table that is not distributed yet, so the output too can be run
    again (after an upgrade, say), and it distributes what an earlier run left local.

    Raises:
        ValueError: ``schema`` is not a lower-case SQL identifier.
    """
    quoted = f'"{check_schema_name(schema)}"'  # quoted: a reserved word is a valid schema name
    earlier = ", ".join(f"'{version}'" for version in sorted(EARLIER_VERSIONS))
    ddl = _SCHEMA_SQL.format(
        s=quoted, version=SCHEMA_VERSION, earlier=earlier, product_of=PRODUCT_OF_GENERATION
    )
    if not distributed:
        return ddl
    steps = [("catalog_meta", "create_reference_table('{t}')")]
    first = f"{quoted}.{DISTRIBUTED_TABLES[0]}"
    for table in DISTRIBUTED_TABLES:
        call = "create_distributed_table('{t}', 'account'"
        call += ")" if table == DISTRIBUTED_TABLES[0] else f", colocate_with => '{first}')"
        steps.append((table, call))
    lines = [
        "-- Citus: catalog_meta on every node; the rest distributed by account, colocated.",
    ]
    for table, call in steps:
        name = f"{quoted}.{table}"
        lines.append(
            f"SELECT {call.format(t=name)} WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition "
            f"WHERE logicalrelid = '{name}'::regclass);"
        )
    return ddl + "\n".join(lines) + "\n"


def schema_statements(schema: str = DEFAULT_SCHEMA) -> list[str]:
    """Return :func:`schema_sql` as its statements, to be sent one at a time.

    Citus sends the text of a DDL statement on a distributed table to its workers as it was
    received: sent together, the statements would reach them as one multi-command string, which
    they refuse ("cannot insert multiple commands into a prepared statement"). ``psql`` sends
    them one at a time too.
    """
    return [f"{part};" for part in schema_sql(schema).split(";\n") if part.strip()]
