"""Encounter record: vitals parsing and plausibility, coded diagnoses from the starter list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from shared.records.encounter import (
    Diagnosis,
    EncounterCreate,
    EncounterUpdate,
    SoapNote,
    Vitals,
    parse_bp,
)

BASE = {
    "patient_id": "019ab000-0000-7000-8000-0000000000aa",
    "encounter_type": "opd",
    "start_time": "2026-02-09T10:30:00Z",
    "chief_complaint": "Persistent fatigue for 2 weeks",
}


def codes(exc: ValidationError) -> set[str]:
    return {e["type"] for e in exc.errors()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("140/90", (140, 90)),
        (" 120 / 80 ", (120, 80)),
        ("118/76 mmHg", (118, 76)),
        ("220/130", (220, 130)),  # abnormal but plausible: accepted
        ("300/200", (300, 200)),  # the plausibility bounds themselves
    ],
)
def test_parse_bp_accepts(text: str, expected: tuple[int, int]) -> None:
    assert parse_bp(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("140-90", "vitals.bp_format"),
        ("140/", "vitals.bp_format"),
        ("", "vitals.bp_format"),
        ("abc", "vitals.bp_format"),
        ("1400/90", "vitals.bp_format"),
        ("14/9", "vitals.bp_systolic_range"),
        ("140/9", "vitals.bp_diastolic_range"),
        ("90/140", "vitals.bp_order"),
        ("120/120", "vitals.bp_order"),
    ],
)
def test_parse_bp_refuses_with_a_code(text: str, code: str) -> None:
    with pytest.raises(PydanticCustomError) as exc:
        parse_bp(text)
    assert exc.value.type == code


@given(st.text(max_size=60))
def test_parse_bp_never_raises_anything_but_a_validation_error(text: str) -> None:
    try:
        systolic, diastolic = parse_bp(text)
    except PydanticCustomError as exc:
        code = exc.type
    else:
        code = "ok"
        assert 50 <= systolic <= 300 and 20 <= diastolic < systolic
    assert code == "ok" or code.startswith("vitals.bp_")


def test_vitals_derive_values_and_keep_the_typed_unit() -> None:
    v = Vitals(bp="140/90", pulse=88, temperature=100.4, temperature_unit="F", spo2=97, weight_kg=70, height_cm=175)
    dumped = v.model_dump()
    assert (dumped["bp_systolic"], dumped["bp_diastolic"]) == (140, 90)
    assert dumped["temperature"] == 100.4 and dumped["temperature_unit"] == "F"
    assert dumped["temperature_c"] == 38.0
    assert dumped["bmi"] == 22.9
    assert Vitals.model_validate(dumped) == v  # stored notes (with derived values) read back


def test_vitals_without_weight_or_height_have_no_bmi() -> None:
    assert Vitals(weight_kg=70).bmi is None


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"pulse": 720}, "vitals.pulse_range"),
        ({"spo2": 101}, "vitals.spo2_range"),
        ({"temperature": 986, "temperature_unit": "F"}, "vitals.temperature_c_range"),
        ({"temperature": 98.6, "temperature_unit": "C"}, "vitals.temperature_c_range"),  # °F typed as °C
        ({"temperature": 37.0}, "vitals.temperature_unit"),
        ({"weight_kg": 7000}, "vitals.weight_kg_range"),
        ({"height_cm": 1.75}, "vitals.height_cm_range"),  # metres typed as cm
        ({"bp": "140-90"}, "vitals.bp_format"),
        ({"bmi": 12, "pulse": 720}, "vitals.pulse_range"),
    ],
)
def test_implausible_vitals_are_refused(fields: dict[str, object], code: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Vitals.model_validate(fields)
    assert code in codes(exc.value)


def test_derived_values_sent_by_a_client_are_recomputed() -> None:
    assert Vitals.model_validate({"weight_kg": 70, "height_cm": 175, "bmi": 99}).bmi == 22.9


@pytest.mark.parametrize(
    ("given_", "code", "system", "condition_id"),
    [
        ({"code": "I10"}, "I10", "icd10", "hypertension"),
        ({"code": "e11.9", "system": "icd10"}, "E11.9", "icd10", "type_2_diabetes"),  # below a listed code
        ({"code": "44054006"}, "44054006", "snomed", "type_2_diabetes"),
    ],
)
def test_diagnosis_codes_come_from_the_starter_list(
    given_: dict[str, str], code: str, system: str, condition_id: str
) -> None:
    d = Diagnosis.model_validate({"condition": "Some condition", **given_})
    assert (d.code, d.system, d.condition_id) == (code, system, condition_id)


@pytest.mark.parametrize(
    "given_",
    [{"code": "Z99.99"}, {"code": "123456789"}, {"code": "I10", "system": "snomed"}, {"system": "icd10"}],
)
def test_unknown_codes_are_refused(given_: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Diagnosis.model_validate({"condition": "Something", **given_})


def test_free_text_diagnosis_without_a_code() -> None:
    d = Diagnosis(condition="Vata imbalance with fatigue")
    assert d.code is None and d.condition_id is None


def test_seed_shaped_soap_note() -> None:
    note = SoapNote.model_validate(
        {
            "subjective": "Tired for two weeks.\nPoor sleep.",
            "objective": {"vitals": {"bp": "140/90", "pulse": 88}, "examination": "Pallor +"},
            "assessment": {
                "primary_diagnosis": {"condition": "Type 2 diabetes mellitus", "code": "E11"},
                "secondary_diagnoses": [{"condition": "Essential hypertension", "code": "I10"}],
                "ayush": {"prakriti": "Vata-Pitta", "dosha": "Vata aggravated"},
            },
            "plan": {"medications": ["Metformin 500 mg bd"], "investigations": ["HbA1c"], "followup": "2 weeks"},
        }
    )
    assert note.subjective == "Tired for two weeks.\nPoor sleep."  # line breaks kept in notes
    assert note.assessment is not None and note.assessment.primary_diagnosis is not None
    assert note.assessment.primary_diagnosis.condition_id == "type_2_diabetes"


def test_encounter_create_contract_body_and_naive_time_refused() -> None:
    assert EncounterCreate.model_validate(BASE).encounter_type == "opd"
    with pytest.raises(ValidationError):
        EncounterCreate.model_validate({**BASE, "start_time": "2026-02-09T10:30:00"})
    with pytest.raises(ValidationError):
        EncounterCreate.model_validate({**BASE, "encounter_type": "walk-in"})


def test_update_cannot_clear_required_fields() -> None:
    with pytest.raises(ValidationError) as exc:
        EncounterUpdate.model_validate({"chief_complaint": None})
    assert "field.required" in codes(exc.value)
