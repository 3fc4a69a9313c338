"""The server applies the same vitals rules as the desktop (shared/): an implausible BP pair is a field-level
422 and stores nothing; an abnormal but real one is stored as typed."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sync_server.settings import Settings
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn
from tests.sync_server.test_encounters import contract_body, new_patient


def test_implausible_pulse_pressure_is_a_field_problem(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    pid = new_patient(api, doctor)
    body = contract_body(pid, soap_note={"objective": {"vitals": {"bp": "300/20"}}})
    r = api.post("/api/v1/encounters", json=body, headers=doctor.headers)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    (error,) = r.json()["errors"]
    assert error["field"] == "soap_note.objective.vitals" and error["code"] == "vitals.bp_pulse_pressure"
    assert "300/20" in error["message"] and "check both numbers" in error["message"]
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM encounters") == 0


def test_critical_but_real_bp_is_stored_as_typed(api: TestClient, doctor: SignedIn) -> None:
    pid = new_patient(api, doctor)
    body = contract_body(pid, soap_note={"objective": {"vitals": {"bp": "220/130", "spo2": 88}}})
    r = api.post("/api/v1/encounters", json=body, headers=doctor.headers)
    assert r.status_code in (200, 201), r.text
    vitals = r.json()["soap_note"]["objective"]["vitals"]
    assert (vitals["bp"], vitals["bp_systolic"], vitals["bp_diastolic"], vitals["spo2"]) == ("220/130", 220, 130, 88)
