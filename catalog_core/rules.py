"""The pure rules: merging an upsert into a product, expiry, one-shot ids.

Nothing here reads a clock or touches storage; ``now`` is always a parameter.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from catalog_core._unset import UNSET
from catalog_core.commands import UpsertCommand
from catalog_core.errors import ProductImagesRequired
from catalog_core.model import ANON_PREFIX, Image, Product

__all__ = [
    "MERGED_FIELDS",
    "ONE_SHOT_ID_ALPHABET",
    "ONE_SHOT_ID_LENGTH",
    "ONE_SHOT_VALID_FOR_DAYS",
    "USE_CREATED_VALID_FOR_DAYS",
    "expires_at",
    "merge",
    "new_one_shot_id",
    "record_use",
]

#: Fields an update keeps when omitted and replaces whole when given (R6, R8, R9, R10).
#: ``images`` is resolved from inputs to stored images before the merge, so it follows the same law.
MERGED_FIELDS: Final = ("title", "description", "metadata", "valid_for_days", "images")

#: The lifetime of a product created by an inline use unless the item sets one (R22b).
USE_CREATED_VALID_FOR_DAYS: Final = 15
#: The lifetime of a one-shot product unless the item sets one (R22c).
ONE_SHOT_VALID_FOR_DAYS: Final = 7
ONE_SHOT_ID_ALPHABET: Final = string.ascii_lowercase + string.digits
ONE_SHOT_ID_LENGTH: Final = 24


def expires_at(
    valid_for_days: int | None, updated_at: datetime, last_used_at: datetime | None
) -> datetime | None:
    """Return when a product expires: ``max(updatedAt, lastUsedAt) + validForDays`` (R19)."""
    if valid_for_days is None:
        return None
    start = updated_at if last_used_at is None else max(updated_at, last_used_at)
    return start + timedelta(days=valid_for_days)


def merge(
    existing: Product | None,
    command: UpsertCommand,
    images: tuple[Image, ...] | None,
    now: datetime,
    *,
    account: str,
    external_id: str,
    default_valid_for_days: int | None = None,
    used: bool = False,
) -> Product:
    """Apply an upsert to the live product ``existing`` (``None`` creates), at ``now``.

    Args:
        existing: the live product, or ``None`` when there is none (an expired one counts as none).
        command: the decoded upsert; ``UNSET`` fields keep their value (R6).
        images: ``command.images`` resolved to stored images, or ``None`` when omitted.
        now: the operation's time.
        account: the tenant.
        external_id: the product id (generated for one-shot products).
        default_valid_for_days: ``validForDays`` of a created product when the command omits it.
        used: whether this write is a use (R22): it also sets ``lastUsedAt``.

    Returns:
        The product to store, with ``version`` advanced (R28) and ``expiresAt`` recomputed (R19).

    Raises:
        ProductImagesRequired: the product would have no image (R5, R8).
    """
    given: dict[str, Any] = {
        "title": command.title,
        "description": command.description,
        "metadata": command.metadata,
        "valid_for_days": command.valid_for_days,
        "images": UNSET if images is None else images,
    }
    if existing is None:
        base: dict[str, Any] = {
            "title": None,
            "description": None,
            "metadata": None,
            "valid_for_days": default_valid_for_days,
            "images": (),
        }
    else:
        base = {name: getattr(existing, name) for name in MERGED_FIELDS}
    fields = {name: base[name] if given[name] is UNSET else given[name] for name in MERGED_FIELDS}
    if not fields["images"]:
        raise _images_required(existing, external_id)

    last_used_at = now if used else (existing.last_used_at if existing else None)
    fields["expires_at"] = expires_at(fields["valid_for_days"], now, last_used_at)
    if existing is None:
        return Product(
            account=account,
            external_id=external_id,
            created_at=now,
            updated_at=now,
            last_used_at=last_used_at,
            version=1,
            **fields,
        )
    return attrs.evolve(
        existing, updated_at=now, last_used_at=last_used_at, version=existing.version + 1, **fields
    )


def record_use(product: Product, now: datetime) -> Product:
    """Return ``product`` after a reference use at ``now``: the timer restarts (R22a)."""
    return attrs.evolve(
        product,
        last_used_at=now,
        expires_at=expires_at(product.valid_for_days, product.updated_at, now),
        version=product.version + 1,
    )


def _images_required(existing: Product | None, external_id: str) -> ProductImagesRequired:
    if existing is not None:
        return ProductImagesRequired(
            f"Product '{external_id}' must keep at least one image; an empty list is refused."
        )
    if external_id.startswith(ANON_PREFIX):
        return ProductImagesRequired(
            "A one-shot product does not exist yet; at least one image is required to create it."
        )
    return ProductImagesRequired(
        f"Product '{external_id}' does not exist yet; at least one image is required to create it."
    )


def new_one_shot_id(choice: Callable[[str], str] = secrets.choice) -> str:
    """Return a fresh one-shot id: ``_anon_`` and 24 random characters from ``[a-z0-9]`` (R22c)."""
    return ANON_PREFIX + "".join(choice(ONE_SHOT_ID_ALPHABET) for _ in range(ONE_SHOT_ID_LENGTH))
