"""The model's fast paths make exactly what the slower, plainer ways make."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core.model import from_epoch_ms, new_image, new_product, to_epoch_ms
from catalog_core.testing import strategies

pytestmark = pytest.mark.filterwarnings("error")


@pytest.mark.parametrize(("cls", "factory"), [(cc.Product, new_product), (cc.Image, new_image)])
def test_r31_a_fast_constructor_takes_every_field_in_order_and_skips_no_hook(
    cls: type, factory: object
) -> None:
    """Setting the slots straight skips the generated ``__init__``: it must have nothing to skip.

    A field added to the class and not to the constructor, or a validator, converter or hook
    added to the class, fails here rather than leaving products half made or unchecked.
    """
    fields = attrs.fields(cls)
    assert list(inspect.signature(factory).parameters) == [f.name for f in fields]  # type: ignore[arg-type]
    for field in fields:
        assert field.validator is None, field.name
        assert field.converter is None, field.name
        assert field.on_setattr in (None, attrs.setters.NO_OP), field.name
    for hook in ("__attrs_pre_init__", "__attrs_post_init__", "__attrs_init__"):
        assert not hasattr(cls, hook), hook
    assert "__slots__" in cls.__dict__


@given(strategies.products())
def test_r31_new_product_makes_the_product_its_class_makes(product: cc.Product) -> None:
    values = [getattr(product, f.name) for f in attrs.fields(cc.Product)]
    made = new_product(*values)
    assert type(made) is cc.Product
    assert made == product
    assert repr(made) == repr(product)
    for name, value in zip([f.name for f in attrs.fields(cc.Product)], values, strict=True):
        assert getattr(made, name) is value
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.title = "changed"  # type: ignore[misc]


@given(
    st.text(),
    st.integers(min_value=0, max_value=100),
    st.none() | st.dictionaries(st.text(), st.text() | st.integers() | st.none()),
)
def test_r16_new_image_makes_the_image_its_class_makes(
    url: str, order: int, classifications: dict[str, object] | None
) -> None:
    made = new_image(url, order, classifications)
    image = cc.Image(url, order, classifications)
    assert type(made) is cc.Image
    assert made == image
    assert repr(made) == repr(image)
    assert made.classifications is classifications
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.order = 1  # type: ignore[misc]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_LAST_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(
    milliseconds=1
)
# Where a float's time is exact to the microsecond and where it no longer is: every millisecond
# of the seconds on both sides of 2**33 seconds, each way, and around the epoch.
_EDGES = [
    sign * second * 1000 + sign * ms
    for second in (0, 1, 2**32, 2**33 - 1, 2**33, 2**33 + 1)
    for sign in (1, -1)
    for ms in range(1000)
]


def _exact(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@given(st.integers(min_value=_FIRST_MS, max_value=_LAST_MS) | st.sampled_from(_EDGES))
def test_r19_a_time_in_epoch_milliseconds_is_read_back_exactly(ms: int) -> None:
    """R19: what a backend stores as milliseconds reads back as the very same datetime."""
    moment = from_epoch_ms(ms)
    assert moment == _exact(ms)
    assert moment.tzinfo is UTC
    assert type(moment) is datetime
    assert to_epoch_ms(moment) == ms


def test_r19_every_millisecond_at_the_edges_of_the_float_reading_is_exact() -> None:
    for ms in _EDGES:
        assert from_epoch_ms(ms) == _exact(ms), ms
