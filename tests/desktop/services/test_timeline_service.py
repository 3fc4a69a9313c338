"""The health timeline read from the local store: device readings, visit vitals, diagnoses and prescriptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from desktop.devices import sim as vp
from desktop.devices.payload import Payload
from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.services.prescribing import PrescribingService, prescriber_for
from desktop.services.readings import ReadingService
from desktop.services.timeline import TimelineService
from desktop.store import LocalStore
from tests.desktop.services.test_prescribing import DOCTOR, MBBS

CUFF = "C0:00:00:00:00:02"


def test_timeline_holds_the_patients_readings_visits_and_prescriptions(
    local_store: LocalStore, patient_service: PatientService
) -> None:
    patient = patient_service.register({"name": "Ravi Shankar", "gender": "M", "year_of_birth": 1958}, "t")
    other = patient_service.register({"name": "Sita Devi", "gender": "F", "year_of_birth": 1960}, "t")
    readings = ReadingService(local_store.uow, local_store.clock, actor="test")
    start = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    for day, (sys, dia) in enumerate([(150, 95), (142, 90), (138, 86)]):
        readings.set_current_patient(patient.id)
        at = start + timedelta(days=day)
        local = at + timedelta(hours=5, minutes=30)  # the cuff's clock: local time, no zone
        when = vp.date_time(local.year, local.month, local.day, local.hour, local.minute, local.second)
        outcome = readings.store(Payload(CUFF, "BP Cuff", "2A35", vp.blood_pressure(sys, dia, 105, 70, when), at))
        assert outcome.status == "stored"
    readings.set_current_patient(other.id)
    readings.store(Payload(CUFF, "BP Cuff", "2A35", vp.blood_pressure(120, 80, 93, 66, vp.WHEN), start))
    encounters = EncounterService(writer=local_store.writer, uow=local_store.uow)
    enc = encounters.start(
        {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": start + timedelta(days=3),
         "chief_complaint": "BP review"},
        DOCTOR,
    )  # fmt: skip
    note = {"objective": {"vitals": {"bp": "136/84", "weight_kg": 71.5}},
            "assessment": {"primary_diagnosis": {"condition": "Essential hypertension", "code": "I10"}}}  # fmt: skip
    encounters.save_draft(enc.id, {"soap_note": note})
    rx = PrescribingService(writer=local_store.writer, uow=local_store.uow)
    assert rx.save(enc.id, ["amlo 5 0-0-1 x 1m"], prescriber_for(MBBS, "doctor", "opd"), DOCTOR) is not None

    timeline = TimelineService(local_store.uow).load(patient.id)
    systolic = timeline.points("bp_systolic")
    assert [(p.value, p.source) for p in systolic] == [
        (150, "device"), (142, "device"), (138, "device"), (136, "encounter")
    ]  # fmt: skip
    assert [p.value for p in timeline.points("weight")] == [71.5]
    kinds = {e.kind: e.title for e in timeline.events}
    assert kinds["encounter"] == "BP review" and kinds["diagnosis"] == "Essential hypertension (I10)"
    assert kinds["prescription"].startswith("AMLODIPINE 5mg")
    assert 120 not in [p.value for p in systolic]  # another patient's reading never shows here
