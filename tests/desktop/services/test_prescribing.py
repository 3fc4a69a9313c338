"""Prescribing service: live checks by tier, typed overrides audited, refusals recorded, blocked saves write nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.services.prescribing import (
    NoPrescriber,
    PrescribingService,
    PrescriptionBlocked,
    prescriber_for,
)
from desktop.store import LocalStore
from shared.errors import NotAllowed, RuleViolation

DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")
MBBS = {"qualification": "MBBS", "system_of_medicine": "modern_medicine", "state": "Delhi"}
BAMS = {"qualification": "BAMS", "system_of_medicine": "ayurveda", "state": "MH"}


@pytest.fixture
def rx(local_store: LocalStore) -> PrescribingService:
    return PrescribingService(writer=local_store.writer, uow=local_store.uow)


@pytest.fixture
def encounter_id(local_store: LocalStore, patient_service: PatientService) -> uuid.UUID:
    patient = patient_service.register({"name": "Ravi Shankar", "gender": "M", "year_of_birth": 1958}, "t")
    encounters = EncounterService(writer=local_store.writer, uow=local_store.uow)
    return encounters.start(
        {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": datetime(2026, 11, 25, tzinfo=UTC),
         "chief_complaint": "Review"},
        DOCTOR,
    ).id  # fmt: skip


def test_expansion_marks_defaulted_parts(rx: PrescribingService) -> None:
    result = rx.check(["Metf 1000 bd 30d"], [], prescriber_for(MBBS, "doctor", "opd"))
    (line,) = result.lines
    assert line.expanded is not None and line.expanded.generic_name == "METFORMIN"
    assert {"dosage_form", "route", "instructions"} <= set(line.expanded.defaulted)
    assert result.can_save and line.verdict is not None and line.verdict.rule_id == "QP-051"


def test_unknown_token_blocks(rx: PrescribingService, encounter_id: uuid.UUID) -> None:
    mbbs = prescriber_for(MBBS, "doctor", "opd")
    result = rx.check(["metf 1000 bd zork 30d"], [], mbbs)
    assert result.problems == ["Line 1: 'zork' is not part of the shorthand"]
    with pytest.raises(PrescriptionBlocked):
        rx.save(encounter_id, ["metf 1000 bd zork 30d"], mbbs, DOCTOR)
    assert rx.saved(encounter_id) is None


def test_major_needs_a_typed_override_which_is_stored(rx: PrescribingService, encounter_id: uuid.UUID) -> None:
    mbbs = prescriber_for(MBBS, "doctor", "opd")
    lines = ["warfarin 5 od x 30d", "aspirin 75 od x 30d"]
    (alert,) = rx.check(lines, [], mbbs).by_tier("override")
    assert (alert.rule_id, alert.lines, alert.blocks) == ("DDI-002", (0, 1), True)
    with pytest.raises(PrescriptionBlocked, match="DDI-002"):
        rx.save(encounter_id, lines, mbbs, DOCTOR)
    with pytest.raises(RuleViolation):
        rx.record_override(encounter_id, alert, "ok", DOCTOR, lines)
    rx.record_override(encounter_id, alert, "Mechanical valve; INR monitored weekly", DOCTOR, lines)
    (stored,) = rx.overrides(encounter_id)
    assert (stored.rule_id, stored.severity, stored.user_id, stored.reason) == (
        "DDI-002",
        "major",
        DOCTOR,
        "Mechanical valve; INR monitored weekly",
    )
    assert {"index": 0, "text": "warfarin 5 od x 30d"} in stored.lines
    saved = rx.save(encounter_id, lines, mbbs, DOCTOR)
    assert saved is not None
    assert [m["generic_name"] for m in saved.medications] == ["WARFARIN", "ASPIRIN"]
    assert [line["text"] for line in saved.lines] == lines


def test_contraindication_with_a_diagnosis_is_a_hard_stop(rx: PrescribingService) -> None:
    mbbs = prescriber_for(MBBS, "doctor", "opd")
    result = rx.check(["propranolol 40 bd x 30d"], ["SNOMED:195967001"], mbbs)
    (stop,) = result.by_tier("hard_stop")
    assert stop.rule_id == "DCI-006" and stop.names == ("PROPRANOLOL", "Asthma")
    with pytest.raises(NotAllowed):
        rx.record_override(uuid.uuid4(), stop, "I know better than this", DOCTOR, ["x"])
    assert not result.can_save


def test_bams_doctor_is_refused_an_allopathic_drug_and_the_attempt_is_recorded(
    rx: PrescribingService, encounter_id: uuid.UUID
) -> None:
    bams = prescriber_for(BAMS, "doctor", "opd")
    lines = ["triphala churna 5g hs with warm water x 30d", "Metf 1000 bd 30d"]
    result = rx.check(lines, [], bams)
    (refused,) = result.refusals
    assert refused.index == 1 and refused.verdict is not None
    assert refused.verdict.rule_id == "SP-MH-AYURVEDA" and "Maharashtra" in refused.verdict.source
    with pytest.raises(PrescriptionBlocked, match="SP-MH-AYURVEDA"):
        rx.save(encounter_id, lines, bams, DOCTOR)
    (attempt,) = rx.refusals(encounter_id)
    assert (attempt.medicine, attempt.rule_id, attempt.line_text) == ("METFORMIN", "SP-MH-AYURVEDA", lines[1])
    assert rx.saved(encounter_id) is None
    saved = rx.save(encounter_id, lines[:1], bams, DOCTOR)
    assert saved is not None and saved.ayush_medications[0]["name"] == "TRIPHALA CHURNA"


def test_nurse_cannot_prescribe(rx: PrescribingService) -> None:
    context = prescriber_for(MBBS, "nurse", "opd")
    assert isinstance(context, NoPrescriber)
    assert rx.check(["Metf 1000 bd 30d"], [], context).refusals


def test_minor_and_moderate_do_not_block(rx: PrescribingService) -> None:
    mbbs = prescriber_for(MBBS, "doctor", "opd")
    result = rx.check(["warfarin 5 od x 30d", "ginger churna 3g bd x 10d", "simvastatin 20 od x 30d",
                       "amlo 5 0-0-1 x 1m"], [], mbbs)  # fmt: skip
    assert [a.rule_id for a in result.by_tier("minor")] == ["DHI-016"]
    assert "DDI-006" in [a.rule_id for a in result.by_tier("inline")]
    assert result.can_save
