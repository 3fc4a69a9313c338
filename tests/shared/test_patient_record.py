"""Patient record validation: the same rules on the desktop and the server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.ids import uuid7
from shared.records.patient import PatientCreate, PatientUpdate

BASE = {"name": "Rajesh Kumar", "gender": "M", "year_of_birth": 1985}


def codes(exc: ValidationError) -> dict[str, str]:
    return {".".join(str(p) for p in e["loc"]): e["type"] for e in exc.errors()}


def test_normalises_fields() -> None:
    p = PatientCreate.model_validate(
        {
            **BASE,
            "name": " राधा   कुमारी ",
            "mobile": "098765 43210",
            "abha_number": "91-3772-0586-4665",
            "abha_address": "Radha.K@ABDM",
        }
    )
    assert (p.name, p.mobile, p.abha_number, p.abha_address) == (
        "राधा कुमारी",
        "+919876543210",
        "91377205864665",
        "radha.k@abdm",
    )


@pytest.mark.parametrize(
    ("override", "field", "code"),
    [
        ({"abha_number": "12-3456-7890-1234"}, "abha_number", "abha.check_digit"),
        ({"mobile": "12345"}, "mobile", "mobile.format"),
        ({"gender": "Q"}, "gender", "enum"),
        ({"year_of_birth": 1850}, "year_of_birth", "year_of_birth.range"),
        ({"year_of_birth": 3000}, "year_of_birth", "year_of_birth.range"),
        ({"name": "   "}, "name", "name.empty"),
        ({"name": "x" * 201}, "name", "string_too_long"),
        ({"name": "Ra\x00jesh"}, "name", "value_error"),
        ({"abha_address": "rajesh@gmail.com"}, "abha_address", "abha_address.format"),
        ({"address": {"pincode": "012345"}}, "address.pincode", "pincode.format"),
        ({"surname": "Kumar"}, "surname", "extra_forbidden"),
        ({"id": "6f1c2a1e-0000-4000-8000-000000000000"}, "id", "id.version"),
    ],
)
def test_field_errors_name_the_field(override: dict[str, object], field: str, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        PatientCreate.model_validate({**BASE, **override})
    assert codes(info.value).get(field) == code, codes(info.value)


def test_date_of_birth_must_match_year() -> None:
    with pytest.raises(ValidationError):
        PatientCreate.model_validate({**BASE, "date_of_birth": "1986-02-01"})
    assert PatientCreate.model_validate({**BASE, "date_of_birth": "1985-02-01"}).date_of_birth is not None


def test_client_uuid7_accepted() -> None:
    pid = uuid7()
    assert PatientCreate.model_validate({**BASE, "id": str(pid)}).id == pid


def test_update_cannot_clear_required_fields_but_can_clear_optional() -> None:
    with pytest.raises(ValidationError) as info:
        PatientUpdate.model_validate({"name": None})
    assert codes(info.value) == {"name": "required"}
    assert PatientUpdate.model_validate({"mobile": None}).changes() == {"mobile": None}
    assert PatientUpdate.model_validate({}).changes() == {}


@given(st.text(min_size=1, max_size=200))
def test_any_name_is_accepted_cleaned_or_refused_never_mangled(name: str) -> None:
    try:
        p = PatientCreate.model_validate({**BASE, "name": name})
    except ValidationError:
        return
    # Cleaning only trims and collapses whitespace (after NFC): the words survive in order.
    import unicodedata

    assert p.name.split() == unicodedata.normalize("NFC", name).split()
