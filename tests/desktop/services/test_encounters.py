"""Encounter service on a real SQLite file: drafts, vitals checks, completion is final, addenda append-only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.services.encounters import (
    EncounterCompleted,
    EncounterNotCompleted,
    EncounterService,
    InChair,
    PrescriptionNotSaved,
    vitals_from_form,
)
from desktop.services.patients import PatientService
from desktop.store import LocalStore
from shared.errors import RuleViolation
from shared.records.encounter import EncounterStatus

DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")


@pytest.fixture
def encounters(local_store: LocalStore) -> EncounterService:
    return EncounterService(writer=local_store.writer, uow=local_store.uow)


@pytest.fixture
def patient_id(patient_service: PatientService) -> uuid.UUID:
    return patient_service.register({"name": "Radha Kumari", "gender": "F", "year_of_birth": 1961}, "t").id


def _start(encounters: EncounterService, patient_id: uuid.UUID) -> uuid.UUID:
    started = encounters.start(
        {
            "patient_id": str(patient_id),
            "encounter_type": "opd",
            "start_time": datetime(2026, 11, 25, 10, 30, tzinfo=UTC),
            "chief_complaint": "Fatigue for 2 weeks",
        },
        DOCTOR,
    )
    return started.id


class TestVitals:
    def test_bp_is_split_and_bmi_derived(self) -> None:
        vitals = vitals_from_form(
            {"bp": "140/90", "pulse": "78", "temperature": "99.5", "temperature_unit": "F", "spo2": "97",
             "weight_kg": "72", "height_cm": "165"}
        )  # fmt: skip
        assert vitals is not None
        assert (vitals.bp_systolic, vitals.bp_diastolic, vitals.temperature_c, vitals.bmi) == (140, 90, 37.5, 26.4)

    def test_each_bad_field_gets_its_own_message(self) -> None:
        with pytest.raises(RuleViolation) as caught:
            vitals_from_form({"bp": "320/90", "pulse": "seventy", "temperature": "37", "spo2": "104"})
        problems = {p.field: p.message for p in caught.value.problems}
        assert set(problems) == {"bp", "pulse", "temperature", "spo2"}
        assert (
            problems["bp"] == "Systolic pressure 320 mmHg is outside the plausible range 50-300 mmHg: check for a typo"
        )
        assert problems["pulse"] == "Pulse must be a whole number (beats/min)"
        assert problems["temperature"] == "Say whether the temperature is °C or °F"
        assert "50-100 %" in problems["spo2"]

    def test_empty_form_is_no_vitals(self) -> None:
        assert vitals_from_form({"bp": " ", "pulse": ""}) is None

    @given(st.text(max_size=12))
    def test_any_bp_text_is_accepted_or_refused_with_a_field_problem(self, text: str) -> None:
        problems: list[str] = []
        vitals = None
        try:
            vitals = vitals_from_form({"bp": text})
        except RuleViolation as exc:
            problems = [p.field for p in exc.problems]
        assert problems == ["bp"] or vitals is None or vitals.bp_systolic is not None
        assert not (problems and vitals is not None)


class TestDraftAndCompletion:
    def test_draft_sections_are_saved_as_the_shared_note(
        self, encounters: EncounterService, patient_id: uuid.UUID
    ) -> None:
        encounter_id = _start(encounters, patient_id)
        saved = encounters.save_draft(
            encounter_id,
            {
                "soap_note": {
                    "subjective": "Tired, thirsty.",
                    "objective": {"vitals": {"bp": "140/90", "pulse": 80}, "examination": "Pallor absent"},
                    "assessment": {
                        "primary_diagnosis": {"condition": "Type 2 diabetes mellitus", "code": "E11"},
                        "secondary_diagnoses": [{"condition": "Hypertension", "code": "38341003"}],
                        "ayush": {"prakriti": "Kapha-Pitta", "dosha": "Kapha vriddhi"},
                    },
                    "plan": {"investigations": ["HbA1c"], "followup": "2 weeks"},
                }
            },
        )
        note = saved.soap_note
        assert note is not None and note.assessment is not None and note.objective is not None
        assert note.objective.vitals is not None and note.objective.vitals.bp_diastolic == 90
        assert note.assessment.primary_diagnosis is not None
        assert note.assessment.primary_diagnosis.condition_id == "type_2_diabetes"
        assert note.assessment.secondary_diagnoses[0].system == "snomed"
        assert note.assessment.ayush is not None and note.assessment.ayush.prakriti == "Kapha-Pitta"
        assert saved.version == 2 and saved.status == EncounterStatus.DRAFT
        assert encounters.get(encounter_id).soap_note == note

    def test_implausible_vitals_are_refused_and_nothing_is_saved(
        self, encounters: EncounterService, patient_id: uuid.UUID
    ) -> None:
        encounter_id = _start(encounters, patient_id)
        with pytest.raises(RuleViolation) as caught:
            encounters.save_draft(encounter_id, {"soap_note": {"objective": {"vitals": {"bp": "140/10"}}}})
        assert "plausible" in caught.value.message
        assert encounters.get(encounter_id).soap_note is None

    def test_completed_encounter_refuses_edits_and_takes_addenda(
        self, encounters: EncounterService, patient_id: uuid.UUID
    ) -> None:
        encounter_id = _start(encounters, patient_id)
        with pytest.raises(EncounterNotCompleted):
            encounters.add_addendum(encounter_id, {"text": "too early"}, DOCTOR)
        done = encounters.complete(encounter_id)
        assert done.status == EncounterStatus.COMPLETED and done.completed_at is not None
        with pytest.raises(EncounterCompleted):
            encounters.save_draft(encounter_id, {"chief_complaint": "changed"})
        with pytest.raises(EncounterCompleted):
            encounters.complete(encounter_id)
        encounters.add_addendum(encounter_id, {"text": "HbA1c came back 8.1 %."}, DOCTOR)
        encounters.add_addendum(encounter_id, {"text": "Phoned the patient."}, DOCTOR)
        stored = encounters.get(encounter_id)
        assert stored.chief_complaint == "Fatigue for 2 weeks"
        assert [a.text for a in stored.addenda] == ["HbA1c came back 8.1 %.", "Phoned the patient."]

    def test_completion_refused_while_typed_lines_are_not_the_saved_prescription(
        self, encounters: EncounterService, patient_id: uuid.UUID
    ) -> None:
        encounter_id = _start(encounters, patient_id)
        encounters.save_draft(encounter_id, {"soap_note": {"plan": {"medications": ["Metf 1000 bd 30d"]}}})
        with pytest.raises(PrescriptionNotSaved):
            encounters.complete(encounter_id)
        assert encounters.get(encounter_id).status == EncounterStatus.DRAFT

    def test_list_for_patient_and_in_chair(self, encounters: EncounterService, patient_id: uuid.UUID) -> None:
        first, second = _start(encounters, patient_id), _start(encounters, patient_id)
        assert {e.id for e in encounters.for_patient(patient_id)} == {first, second}
        assert encounters.in_chair() is None
        encounters.set_in_chair(InChair(patient_id, second))
        assert encounters.in_chair() == InChair(patient_id, second)
