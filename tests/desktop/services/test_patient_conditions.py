"""Conditions from the patient's earlier completed visits are checked with today's prescription (real SQLite):
a pregnancy diagnosed last visit stops warfarin today; the doctor can exclude it with a reason that is audited,
and the save-time re-check honours exactly what the pad showed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from desktop.services.encounters import EncounterService
from desktop.services.patient_conditions import EXCLUDED_RULE, INCLUDED_RULE
from desktop.services.patients import PatientService
from desktop.services.prescribing import PrescribingService, PrescriptionBlocked, conditions_of, prescriber_for
from desktop.store import LocalStore
from shared.errors import RuleViolation
from shared.records.patient import Patient

DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")
MBBS = prescriber_for(
    {"qualification": "MBBS", "system_of_medicine": "modern_medicine", "state": "Delhi"}, "doctor", "opd"
)
WARFARIN = ["warfarin 5 od x 30d"]


def _assessment(primary: dict[str, str] | None, *secondary: dict[str, str]) -> dict[str, object]:
    return {"assessment": {"primary_diagnosis": primary, "secondary_diagnoses": list(secondary)}}


class Clinic:
    def __init__(self, store: LocalStore, patients: PatientService) -> None:
        self.encounters = EncounterService(writer=store.writer, uow=store.uow)
        self.rx = PrescribingService(writer=store.writer, uow=store.uow)
        self.patient: Patient = patients.register({"name": "Sita Devi", "gender": "F", "year_of_birth": 1996}, "t")

    def visit(self, day: int, note: dict[str, object] | None = None, *, complete: bool = True) -> uuid.UUID:
        start = datetime(2026, 1, day, 10, tzinfo=UTC) if day < 32 else datetime(2026, 11, 25, 10, tzinfo=UTC)
        enc = self.encounters.start(
            {"patient_id": str(self.patient.id), "encounter_type": "opd", "start_time": start,
             "chief_complaint": "Visit"},
            DOCTOR,
        )  # fmt: skip
        if note is not None:
            self.encounters.save_draft(enc.id, {"soap_note": note})
        if complete:
            self.encounters.complete(enc.id)
        return enc.id


@pytest.fixture
def clinic(local_store: LocalStore, patient_service: PatientService) -> Clinic:
    return Clinic(local_store, patient_service)


PREGNANCY = {"condition": "Pregnancy", "code": "77386006"}
CKD = {"condition": "Chronic kidney disease stage 3", "code": "N18"}


class TestEarlierConditions:
    def test_completed_visits_give_their_primary_and_secondary_diagnoses(self, clinic: Clinic) -> None:
        clinic.visit(12, _assessment(PREGNANCY, CKD))
        clinic.visit(20, _assessment({"condition": "Asthma", "code": "195967001"}), complete=False)  # a draft
        today = clinic.visit(99, complete=False)
        earlier = clinic.rx.patient_conditions.earlier(today)
        assert [(c.key, c.label, c.primary, f"{c.seen_on:%d %b %Y}") for c in earlier.items] == [
            ("SNOMED:77386006", "Pregnancy", True, "12 Jan 2026"),
            ("ICD10:N18", "Chronic kidney disease stage 3", False, "12 Jan 2026"),
        ]
        assert earlier.checked(["ICD10:E11"]) == ["ICD10:E11", "SNOMED:77386006", "ICD10:N18"]

    def test_one_entry_per_condition_the_latest_visit_and_none_already_in_todays_note(self, clinic: Clinic) -> None:
        clinic.visit(5, _assessment({"condition": "Pregnant", "code": "Z33"}, {"condition": "Knee pain"}))
        clinic.visit(
            9, _assessment(PREGNANCY, {"condition": "knee PAIN"}, {"condition": "Type 2 diabetes", "code": "E11"})
        )
        today = clinic.visit(99, _assessment({"condition": "Type 2 diabetes", "code": "44054006"}), complete=False)
        items = clinic.rx.patient_conditions.earlier(today).items
        # Z33 and 77386006 are both the starter list's pregnancy; E11 is today's diabetes under another code.
        assert [(c.key, f"{c.seen_on:%d}") for c in items] == [("SNOMED:77386006", "09"), ("knee PAIN", "09")]

    def test_an_addendum_diagnosis_counts(self, clinic: Clinic) -> None:
        first = clinic.visit(3, _assessment({"condition": "Fever"}))
        clinic.encounters.add_addendum(
            first, {"text": "Urine test positive", "soap_note": _assessment(PREGNANCY)}, DOCTOR
        )
        today = clinic.visit(99, complete=False)
        assert [c.key for c in clinic.rx.patient_conditions.earlier(today).items] == ["SNOMED:77386006", "Fever"]


class TestPrescribingWithEarlierConditions:
    def test_earlier_pregnancy_stops_warfarin_until_excluded_with_an_audited_reason(self, clinic: Clinic) -> None:
        clinic.visit(12, _assessment(PREGNANCY))
        today = clinic.visit(99, complete=False)
        service = clinic.rx.patient_conditions
        earlier = service.earlier(today)
        # Today's note names no condition: before this change nothing fired.
        assert conditions_of(clinic.encounters.get(today).soap_note) == []
        result = clinic.rx.check(WARFARIN, earlier.checked([]), MBBS)
        (stop,) = result.by_tier("hard_stop")
        assert stop.rule_id == "DCI-009" and stop.conditions == ("SNOMED:77386006",)
        with pytest.raises(PrescriptionBlocked, match="DCI-009"):
            clinic.rx.save(today, WARFARIN, MBBS, DOCTOR)  # the save re-check sees the earlier pregnancy too
        assert clinic.rx.saved(today) is None

        (pregnancy,) = earlier.items
        with pytest.raises(RuleViolation):
            service.exclude(today, pregnancy, "no", DOCTOR)
        after = service.exclude(today, pregnancy, "Delivered 3 Oct 2026, not breastfeeding", DOCTOR)
        assert after.items[0].excluded_reason == "Delivered 3 Oct 2026, not breastfeeding"
        assert after.checked([]) == [] and clinic.rx.check(WARFARIN, after.checked([]), MBBS).can_save
        saved = clinic.rx.save(today, WARFARIN, MBBS, DOCTOR)
        assert saved is not None and [m["generic_name"] for m in saved.medications] == ["WARFARIN"]

        (audit,) = [o for o in clinic.rx.overrides(today) if o.rule_id == EXCLUDED_RULE]
        assert (audit.user_id, audit.reason, audit.severity, audit.alert_key) == (
            DOCTOR,
            "Delivered 3 Oct 2026, not breastfeeding",
            "excluded",
            "condition:SNOMED:77386006",
        )
        assert audit.lines[0]["condition"] == "Pregnancy" and audit.lines[0]["seen_on"] == "2026-01-12"

        again = service.include(today, after.items[0], DOCTOR)
        assert again.items[0].excluded_reason is None and again.checked([]) == ["SNOMED:77386006"]
        assert [o.rule_id for o in clinic.rx.overrides(today)] == [EXCLUDED_RULE, INCLUDED_RULE]  # both kept
        with pytest.raises(PrescriptionBlocked, match="DCI-009"):
            clinic.rx.save(today, WARFARIN, MBBS, DOCTOR)

    def test_an_exclusion_is_for_this_prescription_only(self, clinic: Clinic) -> None:
        clinic.visit(12, _assessment(PREGNANCY))
        first = clinic.visit(99, complete=False)
        service = clinic.rx.patient_conditions
        service.exclude(first, service.earlier(first).items[0], "Delivered last month", DOCTOR)
        other = clinic.visit(99, complete=False)
        assert service.earlier(other).checked([]) == ["SNOMED:77386006"]
