"""The code -> HTTP status table lives with the wire format, once (R29)."""

from __future__ import annotations

import pytest

import catalog_core as cc
from catalog_core.errors import error_classes
from catalog_core.server import errors as server_errors
from catalog_core.wire.errors import STATUS_BY_CODE, error_to_wire, status_of
from tests.helpers import R29_STATUS

SERVER_ERRORS = (
    server_errors.RouteNotFound,
    server_errors.MethodNotAllowed,
    server_errors.RequestTimeout,
    server_errors.ServerError,
    server_errors.ServiceUnavailable,
)


def test_r29_the_wire_table_gives_each_code_of_the_rule_book_its_status() -> None:
    assert {code: STATUS_BY_CODE[code] for code in R29_STATUS} == R29_STATUS
    assert [cls.code for cls in error_classes()] == list(R29_STATUS)


@pytest.mark.parametrize("cls", [*error_classes(), *SERVER_ERRORS], ids=lambda c: c.__name__)
def test_r29_every_error_reads_its_status_from_the_wire_table(cls: type[cc.CatalogError]) -> None:
    error = cls("message", [cc.Detail("a.b", "is wrong")])
    assert cls.code in STATUS_BY_CODE
    assert error.status == cls.status == status_of(error) == STATUS_BY_CODE[cls.code]
    assert (
        error.to_wire()
        == error_to_wire(error)
        == {
            "code": cls.code,
            "message": "message",
            "status": STATUS_BY_CODE[cls.code],
            "details": [{"path": "a.b", "message": "is wrong"}],
        }
    )


def test_r29_a_subclass_that_sets_its_own_status_is_answered_with_it() -> None:
    class Teapot(cc.CatalogError):
        code = "TEAPOT"
        status = 418

    class Unprocessable(cc.ValidationFailed):
        status = 422

    assert status_of(Teapot("x")) == status_of(Teapot) == Teapot("x").status == 418
    assert Teapot("x").to_wire() == {"code": "TEAPOT", "message": "x", "status": 418}
    assert error_to_wire(Unprocessable("x"))["status"] == 422
    assert status_of(cc.ValidationFailed("x")) == 400


def test_r29_an_error_of_an_unknown_code_is_answered_as_a_defect() -> None:
    class Unknown(cc.CatalogError):
        code = "SOMETHING_ELSE"

    assert Unknown("x").status == 500
    assert Unknown("x").to_wire() == {"code": "SOMETHING_ELSE", "message": "x", "status": 500}
