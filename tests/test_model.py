"""The model's fast constructors make exactly what the classes' own constructors make."""

from __future__ import annotations

import inspect

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import catalog_core as cc
from catalog_core.model import new_image, new_product
from catalog_core.testing import strategies

pytestmark = pytest.mark.filterwarnings("error")


@pytest.mark.parametrize(("cls", "factory"), [(cc.Product, new_product), (cc.Image, new_image)])
def test_r28_a_fast_constructor_takes_every_field_in_order_and_skips_no_hook(
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
def test_r28_new_product_makes_the_product_its_class_makes(product: cc.Product) -> None:
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
def test_r12_new_image_makes_the_image_its_class_makes(
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
