"""Encounter API: the contract body, SOAP note validation, completion → immutable, addenda, clinic scoping."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from sync_server.settings import Settings
from tests.factories import make_patient
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn, sign_in

NURSE_MOBILE = "+919847000005"

SOAP = {
    "subjective": "Tired for two weeks.\nPoor sleep.",
    "objective": {
        "vitals": {"bp": "140/90", "pulse": 88, "temperature": 99.1, "temperature_unit": "F", "spo2": 98,
                   "weight_kg": 82, "height_cm": 170},
        "examination": "No pallor. Chest clear.",
    },
    "assessment": {
        "primary_diagnosis": {"condition": "Type 2 diabetes mellitus", "code": "E11"},
        "secondary_diagnoses": [{"condition": "Essential hypertension", "code": "I10", "system": "icd10"},
                                {"condition": "Sleep disturbance"}],
        "ayush": {"prakriti": "Kapha-Vata", "dosha": "Kapha vriddhi"},
    },
    "plan": {"medications": ["Metformin 1000 mg twice daily"], "investigations": ["HbA1c", "Lipid profile"],
             "followup": "After 4 weeks with reports"},
}  # fmt: skip


def new_patient(api: TestClient, who: SignedIn) -> str:
    r = api.post("/api/v1/patients", json=make_patient(), headers=who.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def contract_body(patient_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "encounter_type": "opd",
        "start_time": "2026-02-09T10:30:00Z",
        "chief_complaint": "Persistent fatigue for 2 weeks",
        **extra,
    }


def start(api: TestClient, who: SignedIn, **extra: Any) -> dict[str, Any]:
    r = api.post("/api/v1/encounters", json=contract_body(new_patient(api, who), **extra), headers=who.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_contract_body_creates_a_draft(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    enc = start(api, doctor)
    assert enc["id"] and enc["status"] == "draft" and enc["version"] == 1
    assert enc["doctor_id"] == doctor.user["id"] and enc["soap_note"] is None
    got = api.get(f"/api/v1/encounters/{enc['id']}", headers=doctor.headers)
    assert got.status_code == 200 and got.json() == enc
    actions = [
        r["action"]
        for r in pg.query(
            settings.database_url, "SELECT action FROM audit_logs WHERE entity_id = $1 ORDER BY seq", enc["id"]
        )
    ]
    assert actions == ["encounter.create", "encounter.read"]


def test_soap_note_is_validated_and_derived_vitals_returned(api: TestClient, doctor: SignedIn) -> None:
    enc = start(api, doctor, soap_note=SOAP)
    vitals = enc["soap_note"]["objective"]["vitals"]
    assert (vitals["bp_systolic"], vitals["bp_diastolic"], vitals["temperature_c"], vitals["bmi"]) == (
        140,
        90,
        37.3,
        28.4,
    )
    primary = enc["soap_note"]["assessment"]["primary_diagnosis"]
    assert primary == {"condition": "Type 2 diabetes mellitus", "code": "E11", "system": "icd10",
                       "condition_id": "type_2_diabetes"}  # fmt: skip
    assert enc["soap_note"]["assessment"]["secondary_diagnoses"][1]["code"] is None
    again = api.get(f"/api/v1/encounters/{enc['id']}", headers=doctor.headers).json()
    assert again["soap_note"] == enc["soap_note"]


def test_bad_input_is_a_problem_and_stores_nothing(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    pid = new_patient(api, doctor)
    bad_vitals = {"objective": {"vitals": {"bp": "90/140"}}}
    bad_code = {"assessment": {"primary_diagnosis": {"condition": "Invented", "code": "X99.9"}}}
    for body in (
        contract_body(pid, soap_note=bad_vitals),
        contract_body(pid, soap_note=bad_code),
        contract_body(pid, start_time="2026-02-09T10:30:00"),
        contract_body(pid, encounter_type="walk-in"),
        contract_body(pid, unknown_field=1),
        {k: v for k, v in contract_body(pid).items() if k != "chief_complaint"},
    ):
        r = api.post("/api/v1/encounters", json=body, headers=doctor.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = api.post("/api/v1/encounters", json=contract_body(pid, soap_note=bad_vitals), headers=doctor.headers)
    assert r.json()["errors"][0]["field"] == "soap_note.objective.vitals"
    assert r.json()["errors"][0]["code"] == "vitals.bp_order"
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM encounters") == 0


def test_draft_changes_then_completion_makes_it_immutable(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    enc = start(api, doctor)
    url = f"/api/v1/encounters/{enc['id']}"
    upd = api.patch(url, json={"soap_note": SOAP, "chief_complaint": "Fatigue and thirst"}, headers=doctor.headers)
    assert upd.status_code == 200, upd.text
    assert upd.json()["version"] == 2 and upd.json()["chief_complaint"] == "Fatigue and thirst"
    bad = api.patch(url, json={"soap_note": {"objective": {"vitals": {"pulse": 720}}}}, headers=doctor.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["code"] == "vitals.pulse_range"
    done = api.post(f"{url}/complete", headers=doctor.headers)
    assert done.status_code == 200 and done.json()["status"] == "completed" and done.json()["completed_at"]
    refused = api.patch(url, json={"chief_complaint": "Changed later"}, headers=doctor.headers)
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "encounter.completed_immutable"
    assert api.post(f"{url}/complete", headers=doctor.headers).json()["code"] == "encounter.completed_immutable"
    stored = api.get(url, headers=doctor.headers).json()
    assert stored["chief_complaint"] == "Fatigue and thirst" and stored["version"] == 3
    # The database refuses too, whatever the caller.
    with pytest.raises(asyncpg.RaiseError, match="immutable"):
        pg.scalar(settings.database_url, "UPDATE encounters SET chief_complaint = 'x' WHERE id = $1", enc["id"])


def test_addenda_only_on_completed_encounters_and_kept_in_order(api: TestClient, doctor: SignedIn) -> None:
    enc = start(api, doctor)
    url = f"/api/v1/encounters/{enc['id']}"
    early = api.post(f"{url}/addenda", json={"text": "Too early"}, headers=doctor.headers)
    assert early.status_code == 409
    api.post(f"{url}/complete", headers=doctor.headers)
    first = api.post(f"{url}/addenda", json={"text": "HbA1c 8.2 %: continue plan."}, headers=doctor.headers)
    assert first.status_code == 201, first.text
    second = api.post(
        f"{url}/addenda",
        json={"text": "Vitals rechecked", "soap_note": {"objective": {"vitals": {"bp": "130/85"}}}},
        headers=doctor.headers,
    )
    assert second.status_code == 201
    assert api.post(f"{url}/addenda", json={"text": ""}, headers=doctor.headers).status_code == 422
    addenda = api.get(url, headers=doctor.headers).json()["addenda"]
    assert [a["text"] for a in addenda] == ["HbA1c 8.2 %: continue plan.", "Vitals rechecked"]
    assert addenda[1]["soap_note"]["objective"]["vitals"]["bp_systolic"] == 130


def test_other_clinic_gets_404_on_every_endpoint(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn, settings: Settings
) -> None:
    pid = new_patient(api, doctor)
    other = other_clinic_doctor.headers
    r = api.post("/api/v1/encounters", json=contract_body(pid), headers=other)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    enc = api.post("/api/v1/encounters", json=contract_body(pid), headers=doctor.headers).json()
    url = f"/api/v1/encounters/{enc['id']}"
    assert api.get(url, headers=other).status_code == 404
    assert api.patch(url, json={"chief_complaint": "x"}, headers=other).status_code == 404
    assert api.post(f"{url}/complete", headers=other).status_code == 404
    api.post(f"{url}/complete", headers=doctor.headers)
    assert api.post(f"{url}/addenda", json={"text": "x"}, headers=other).status_code == 404
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM encounter_addenda") == 0
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM encounters") == 1


def test_only_doctors_write_encounters_and_staff_may_read(api: TestClient, doctor: SignedIn, sandbox_url: str) -> None:
    enc = start(api, doctor)
    nurse = sign_in(api, sandbox_url, NURSE_MOBILE)
    pid = enc["patient_id"]
    assert api.post("/api/v1/encounters", json=contract_body(pid), headers=nurse.headers).status_code == 403
    assert api.get(f"/api/v1/encounters/{enc['id']}", headers=nurse.headers).status_code == 200
    assert api.post("/api/v1/encounters", json=contract_body(pid)).status_code == 401


def test_nurse_records_vitals_and_only_vitals(
    api: TestClient, doctor: SignedIn, sandbox_url: str, settings: Settings
) -> None:
    enc = start(api, doctor, soap_note={"subjective": "Tired for two weeks", "objective": {"examination": "NAD"}})
    nurse = sign_in(api, sandbox_url, NURSE_MOBILE)
    vitals = {"bp": "150/95", "pulse": 92, "temperature": 37.9, "temperature_unit": "C", "spo2": 97}
    r = api.put(f"/api/v1/encounters/{enc['id']}/vitals", json=vitals, headers=nurse.headers)
    assert r.status_code == 200, r.text
    note = r.json()["soap_note"]
    assert note["subjective"] == "Tired for two weeks" and note["objective"]["examination"] == "NAD"
    assert note["objective"]["vitals"]["bp"] == "150/95" and note["objective"]["vitals"]["bp_systolic"] == 150
    # The nurse may not change the rest of the note.
    assert (
        api.patch(f"/api/v1/encounters/{enc['id']}", json={"chief_complaint": "x"}, headers=nurse.headers).status_code
        == 403
    )
    # Implausible vitals are a field-level 422 and change nothing.
    bad = api.put(f"/api/v1/encounters/{enc['id']}/vitals", json={"bp": "400/90"}, headers=nurse.headers)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    again = api.get(f"/api/v1/encounters/{enc['id']}", headers=doctor.headers).json()
    assert again["soap_note"]["objective"]["vitals"]["bp"] == "150/95"
    actions = [
        r["action"]
        for r in pg.query(
            settings.database_url,
            "SELECT action, actor_role FROM audit_logs WHERE entity_id = $1 ORDER BY seq",
            enc["id"],
        )
        if r["action"] == "encounter.vitals"
    ]
    assert actions == ["encounter.vitals"]
    # After completion, vitals are frozen too.
    assert api.post(f"/api/v1/encounters/{enc['id']}/complete", headers=doctor.headers).status_code == 200
    late = api.put(f"/api/v1/encounters/{enc['id']}/vitals", json=vitals, headers=nurse.headers)
    assert late.status_code == 409 and late.json()["code"] == "encounter.completed_immutable"
