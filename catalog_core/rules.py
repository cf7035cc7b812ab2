"""The pure rules: merging an upsert into a product, expiry, one-shot ids.

Nothing here reads a clock or touches storage; ``now`` is always a parameter.
"""

from __future__ import annotations

import functools
import operator
import string
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from catalog_core._unset import UNSET, Unset
from catalog_core.commands import ANY_VERSION, AnyVersion, ProductFields, UpsertCommand, UseCommand
from catalog_core.errors import (
    Detail,
    ProductImagesRequired,
    ProductNotFound,
    ReservedExternalId,
    VersionConflict,
)
from catalog_core.model import ANON_PREFIX, Image, Product, new_product

__all__ = [
    "MERGED_FIELDS",
    "ONE_SHOT_ID_ALPHABET",
    "ONE_SHOT_ID_LENGTH",
    "ONE_SHOT_VALID_FOR_DAYS",
    "USE_CREATED_VALID_FOR_DAYS",
    "check_reserved_id",
    "check_version",
    "expires_at",
    "given_fields",
    "live",
    "merge",
    "merge_fields",
    "new_one_shot_id",
    "one_shot_days_problem",
    "record_use",
    "use",
    "write_time",
]

#: Fields an update keeps when omitted and replaces whole when given (R6, R8, R9, R10).
#: ``images`` is resolved from inputs to stored images before the merge, so it follows the same law.
MERGED_FIELDS: Final = ("title", "description", "metadata", "valid_for_days", "images")

# The merged fields of a product or a command, in one call (merge_fields unpacks them in order).
_merged_of: Final = operator.attrgetter(*MERGED_FIELDS)


@functools.cache  # one tuple per default: None for an upsert, a few for the uses (R22)
def _created(default_valid_for_days: int | None) -> tuple[Any, ...]:
    """The merged fields of a product before its creation: nothing, no images, the default days."""
    created = dict.fromkeys(MERGED_FIELDS)
    created["valid_for_days"] = default_valid_for_days
    created["images"] = ()
    return tuple(created.values())


# Each lifetime a product may have, made once: every write computes one (R19). 365 days is
# R10's bound (the wire's MAX_VALID_FOR_DAYS; the rules import nothing of the wire).
_LIFETIMES: Final = tuple(timedelta(days=days) for days in range(366))  # 1-365, R10

#: The lifetime of a product created by an inline use unless the item sets one (R22b).
USE_CREATED_VALID_FOR_DAYS: Final = 15
#: The lifetime of a one-shot product unless the item sets one (R22c).
ONE_SHOT_VALID_FOR_DAYS: Final = 7
ONE_SHOT_ID_ALPHABET: Final = string.ascii_lowercase + string.digits
ONE_SHOT_ID_LENGTH: Final = 24


def check_reserved_id(command: UpsertCommand | UseCommand, *, for_use: bool) -> None:
    """Refuse a write under an id with the ``_anon_`` prefix, which is the catalog's (R3).

    A try-on item (``for_use``) may refer to such a product (R22c ids are used again by their
    id); nothing may create or change one by naming it.

    Raises:
        ReservedExternalId: ``command`` would write a product under such an id.
    """
    external_id = command.external_id
    if (
        isinstance(external_id, str)
        and external_id.startswith(ANON_PREFIX)
        and not (for_use and command.is_reference)
    ):
        raise ReservedExternalId(
            f"externalId '{external_id}' is reserved — the '{ANON_PREFIX}' prefix is for "
            "server-generated IDs."
        )


def one_shot_days_problem(valid_for_days: int | Unset | None) -> str | None:
    """Return why a one-shot item's ``validForDays`` is refused, or ``None`` (R22c).

    A one-shot product always expires: ``null`` is refused; a number or nothing (7 days) is not.
    """
    if valid_for_days is None:
        return "a one-shot product always expires: give a number of days or omit it"
    return None


def live(product: Product | None, now: datetime) -> Product | None:
    """Return ``product`` when it is live at ``now``; an expired product counts as absent (R20)."""
    return None if product is None or product.is_expired(now) else product


def write_time(now: datetime, stored: Product | None) -> datetime:
    """Return the time of a write at ``now`` to the key holding ``stored`` (R11, R19).

    Never earlier than the stored product's own timestamps, so that clocks that disagree
    between processes cannot reorder a product's history.
    """
    if stored is None:
        return now
    return max(now, stored.updated_at, stored.last_used_at or now)


def expires_at(
    valid_for_days: int | None, updated_at: datetime, last_used_at: datetime | None
) -> datetime | None:
    """Return when a product expires: ``max(updatedAt, lastUsedAt) + validForDays`` (R19)."""
    if valid_for_days is None:
        return None
    start = updated_at if last_used_at is None else max(updated_at, last_used_at)
    if 0 < valid_for_days < len(_LIFETIMES):
        return start + _LIFETIMES[valid_for_days]
    return start + timedelta(days=valid_for_days)


def merge(
    existing: Product | None,
    command: ProductFields,
    images: tuple[Image, ...] | None,
    now: datetime,
    *,
    account: str,
    external_id: str,
    default_valid_for_days: int | None = None,
    used: bool = False,
) -> Product:
    """Apply an upsert to the live product ``existing`` (``None`` creates, R4), at ``now``.

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
    return merge_fields(
        existing,
        _merged_of(command),
        images,
        now,
        account=account,
        external_id=external_id,
        default_valid_for_days=default_valid_for_days,
        used=used,
    )


def given_fields(command: ProductFields) -> tuple[Any, ...]:
    """Return a command's :data:`MERGED_FIELDS`, in order: what :func:`merge_fields` takes."""
    return _merged_of(command)


def merge_fields(
    existing: Product | None,
    given: tuple[Any, ...],
    images: tuple[Image, ...] | None,
    now: datetime,
    *,
    account: str,
    external_id: str,
    default_valid_for_days: int | None = None,
    used: bool = False,
) -> Product:
    """:func:`merge` of the command whose :data:`MERGED_FIELDS` are ``given``, in that order.

    The images among ``given`` are not read: ``images`` (``None``: keep the stored ones) are
    what is stored. For a caller that holds a command's fields rather than the command.
    """
    title, description, metadata, valid_for_days, _ = given
    old_title, old_description, old_metadata, old_days, old_images = (
        _created(default_valid_for_days) if existing is None else _merged_of(existing)
    )
    # The law (an omitted field keeps its value, R6) for every merged field, written out: a
    # bulk import runs it for every product, and a loop over the fields took twice as long.
    if title is UNSET:
        title = old_title
    if description is UNSET:
        description = old_description
    if metadata is UNSET:
        metadata = old_metadata
    if valid_for_days is UNSET:
        valid_for_days = old_days
    if images is None:
        images = old_images
    if not images:
        raise _images_required(existing, external_id)
    last_used_at = now if used else (existing.last_used_at if existing else None)
    expires = expires_at(valid_for_days, now, last_used_at)
    if existing is None:
        created_at, version = now, 1
    elif type(existing) is Product:  # built whole: attrs.evolve takes half again as long
        account, external_id = existing.account, existing.external_id
        created_at, version = existing.created_at, existing.version + 1
    else:
        return attrs.evolve(
            existing,
            title=title,
            description=description,
            metadata=metadata,
            valid_for_days=valid_for_days,
            expires_at=expires,
            images=images,
            updated_at=now,
            last_used_at=last_used_at,
            version=existing.version + 1,
        )
    return new_product(
        account,
        external_id,
        title,
        description,
        metadata,
        valid_for_days,
        expires,
        last_used_at,
        created_at,
        now,
        images,
        version,
    )


def use(
    existing: Product | None,
    command: ProductFields,
    images: tuple[Image, ...] | None,
    now: datetime,
    *,
    account: str,
    external_id: str,
    one_shot: bool = False,
) -> Product:
    """Apply a try-on product item to the live product ``existing`` at ``now`` (R22).

    Every use sets ``lastUsedAt``. An item with no product field is a reference: it renews the
    live product's timer (R22a). Any other item is an inline upsert, whose created product lives
    15 days unless it says otherwise (R22b); a ``one_shot`` item (no id given: ``external_id``
    is a fresh one of :func:`new_one_shot_id`) creates a product that lives 7 days unless it
    says otherwise (R22c).

    Raises:
        ProductNotFound: a reference names no live product.
        ProductImagesRequired: the product would have no image (R5, R8).
    """
    if command.is_reference and not one_shot:
        if existing is None:
            raise ProductNotFound.for_id(external_id)
        return record_use(existing, now)
    return merge(
        existing,
        command,
        images,
        now,
        account=account,
        external_id=external_id,
        default_valid_for_days=(
            ONE_SHOT_VALID_FOR_DAYS if one_shot else USE_CREATED_VALID_FOR_DAYS
        ),
        used=True,
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


def new_one_shot_id(choice: Callable[[str], str] | None = None) -> str:
    """Return a fresh one-shot id: ``_anon_`` and 24 random characters from ``[a-z0-9]`` (R22c).

    ``choice`` picks one character of a string; by default :func:`secrets.choice`.
    """
    if choice is None:
        import secrets  # on first use: it loads hmac and hashlib, much of the import time

        choice = secrets.choice
    return ANON_PREFIX + "".join(choice(ONE_SHOT_ID_ALPHABET) for _ in range(ONE_SHOT_ID_LENGTH))


def check_version(
    existing: Product | None,
    if_version: int | frozenset[int] | AnyVersion | None,
    external_id: str,
) -> None:
    """Check a write's expected version against the live product (R28).

    Args:
        existing: the live product, or ``None``.
        if_version: ``None`` (no condition), a version, a set of acceptable versions (an empty
            one never matches), or :data:`~catalog_core.ANY_VERSION` (the product must exist).
        external_id: the product id, for the message.

    Raises:
        VersionConflict: the condition does not hold.
    """
    if if_version is None:
        return
    if if_version is ANY_VERSION:
        if existing is None:
            raise VersionConflict(
                f"Product '{external_id}' does not exist; expected it at any version.",
                [Detail("version", "no live product has this id")],
            )
        return
    if isinstance(if_version, int):
        expected = f"; expected version {if_version}."
    elif if_version:
        expected = "; expected one of versions " + ", ".join(map(str, sorted(if_version))) + "."
    else:
        expected = ", and no expected version was given that could match."
    if existing is None:
        raise VersionConflict(
            f"Product '{external_id}' does not exist{expected}",
            [Detail("version", "no live product has this id")],
        )
    if existing.version != if_version and not (
        isinstance(if_version, frozenset) and existing.version in if_version
    ):
        raise VersionConflict(
            f"Product '{external_id}' is at version {existing.version}{expected}",
            [Detail("version", f"current version is {existing.version}")],
        )
