"""Possible duplicates are flagged, never merged by themselves; a person merges (audited) or dismisses."""

from __future__ import annotations

from fastapi.testclient import TestClient

from shared.ids import uuid7
from sync_server.settings import Settings
from tests.factories import make_patient, valid_abha
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn, sign_in
from tests.sync_server.test_sync_api import Device, new_patient


def test_same_person_registered_offline_on_two_pcs_is_flagged_not_merged(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "A"), Device(api, doctor, "B")
    abha = valid_abha()
    pa, pb = uuid7(), uuid7()
    a.push([a.change(pa, new_patient(name="Sita Ram", abha_number=abha))])
    b.push([b.change(pb, new_patient(name="Sita  Ram", abha_number=abha, mobile="+919800011111"))])
    # Both records exist: nothing was merged automatically.
    assert api.get(f"/api/v1/patients/{pa}", headers=doctor.headers).status_code == 200
    assert api.get(f"/api/v1/patients/{pb}", headers=doctor.headers).status_code == 200
    pairs = api.get("/api/v1/patients/duplicates", headers=doctor.headers).json()
    assert len(pairs) == 1
    assert {pairs[0]["a"]["id"], pairs[0]["b"]["id"]} == {str(pa), str(pb)}
    assert pairs[0]["reason"] == "abha_number"


def test_mobile_name_and_year_flag_a_pair_too(api: TestClient, doctor: SignedIn) -> None:
    body = make_patient(name="Geeta Devi", mobile="+919811122233", year_of_birth=1970)
    api.post("/api/v1/patients", json=body, headers=doctor.headers)
    api.post("/api/v1/patients", json={**body, "name": "GEETA DEVI"}, headers=doctor.headers)
    api.post("/api/v1/patients", json={**body, "year_of_birth": 1971}, headers=doctor.headers)  # another person
    pairs = api.get("/api/v1/patients/duplicates", headers=doctor.headers).json()
    assert [p["reason"] for p in pairs] == ["mobile_name_year"]


def test_merge_keeps_one_copies_missing_fields_tombstones_the_other_and_reaches_pcs(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    a = Device(api, doctor)
    abha = valid_abha()
    keep, dup = uuid7(), uuid7()
    a.push([a.change(keep, new_patient(name="Sita Ram", abha_number=abha, mobile=None))])
    a.push([a.change(dup, new_patient(name="Sita Ram", abha_number=abha, mobile="+919800022222"))])
    r = api.post(f"/api/v1/patients/{keep}/merge", json={"merge_id": str(dup)}, headers=doctor.headers)
    assert r.status_code == 200, r.text
    assert r.json()["mobile"] == "+919800022222"  # copied: the kept record had none
    assert api.get(f"/api/v1/patients/{dup}", headers=doctor.headers).status_code == 404
    assert api.get("/api/v1/patients/duplicates", headers=doctor.headers).json() == []
    row = pg.query(settings.database_url, "SELECT deleted, merged_into, name FROM patients WHERE id = $1", dup)[0]
    assert row["deleted"] and row["merged_into"] == keep and row["name"] == "Sita Ram"  # kept, not erased
    actions = [r["action"] for r in pg.query(settings.database_url, "SELECT action FROM audit_logs ORDER BY id")]
    assert "patient.merge" in actions
    pulled, _ = Device(api, doctor, "fresh PC").pull_all()
    by_id = {c["id"]: c for c in pulled}
    assert by_id[str(dup)]["fields"]["deleted"] is True
    assert by_id[str(keep)]["fields"]["mobile"] == "+919800022222"


def test_only_doctors_and_admins_merge_and_only_within_the_clinic(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn, sandbox_url: str
) -> None:
    one = api.post("/api/v1/patients", json=make_patient(), headers=doctor.headers).json()["id"]
    two = api.post("/api/v1/patients", json=make_patient(), headers=doctor.headers).json()["id"]
    nurse = sign_in(api, sandbox_url, "+919847000005")
    assert api.post(f"/api/v1/patients/{one}/merge", json={"merge_id": two}, headers=nurse.headers).status_code == 403
    other = api.post(f"/api/v1/patients/{one}/merge", json={"merge_id": two}, headers=other_clinic_doctor.headers)
    assert other.status_code == 404
    assert api.post(f"/api/v1/patients/{one}/merge", json={"merge_id": one}, headers=doctor.headers).status_code == 409


def test_dismissing_a_pair_is_audited(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    body = make_patient(name="Twin One", mobile="+919811100099", year_of_birth=2001)
    a = api.post("/api/v1/patients", json=body, headers=doctor.headers).json()["id"]
    b = api.post("/api/v1/patients", json=body, headers=doctor.headers).json()["id"]
    r = api.post("/api/v1/patients/duplicates/dismiss", json={"patient_a": b, "patient_b": a}, headers=doctor.headers)
    assert r.status_code == 204
    assert api.get("/api/v1/patients/duplicates", headers=doctor.headers).json() == []
    again = api.post(
        "/api/v1/patients/duplicates/dismiss", json={"patient_a": a, "patient_b": b}, headers=doctor.headers
    )
    assert again.status_code == 404
    assert (
        pg.scalar(settings.database_url, "SELECT count(*) FROM audit_logs WHERE action = 'patient.not_duplicate'") == 1
    )
