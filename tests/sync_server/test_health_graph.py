"""GET /api/v1/clinical/health-graph/{patient_id}: one time-ordered timeline, paged, scoped to the clinic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from shared.ids import uuid7
from tests.factories import make_patient
from tests.sync_server.conftest import SignedIn
from tests.sync_server.test_encounters import SOAP
from tests.sync_server.test_prescription_drafts import METFORMIN_LINE
from tests.sync_server.test_sync_api import Device
from tests.sync_server.test_wearables import change, reading

ALL = {"include_wearables": "true", "include_ayush": "true"}


def graph(api: TestClient, who: SignedIn, pid: str, **params: Any) -> Any:
    return api.get(f"/api/v1/clinical/health-graph/{pid}", params=params, headers=who.headers)


def registered(api: TestClient, who: SignedIn) -> str:
    r = api.post("/api/v1/patients", json=make_patient(), headers=who.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_fresh_patient_answers_200_with_an_empty_timeline(api: TestClient, doctor: SignedIn) -> None:
    pid = registered(api, doctor)
    r = graph(api, doctor, pid, **ALL)
    assert r.status_code == 200, r.text
    assert r.json() == {"patient_id": pid, "time_zone": "Asia/Kolkata", "entries": [], "next_cursor": None}


def seed_history(api: TestClient, doctor: SignedIn) -> tuple[str, str]:
    pid = registered(api, doctor)
    body = {
        "patient_id": pid,
        "encounter_type": "opd",
        "start_time": "2026-02-09T10:30:00Z",
        "chief_complaint": "Persistent fatigue for 2 weeks",
        "soap_note": SOAP,
    }
    enc = api.post("/api/v1/encounters", json=body, headers=doctor.headers)
    assert enc.status_code == 201, enc.text
    ayush = [{"name": "Ashwagandha", "dose": "3 g", "frequency": "Twice daily", "duration_days": 30}]
    rx = api.post(
        "/api/v1/prescriptions/draft",
        json={"encounter_id": enc.json()["id"], "medications": [METFORMIN_LINE], "ayush_medications": ayush},
        headers=doctor.headers,
    )
    assert rx.status_code == 201, rx.text
    pc = Device(api, doctor, "Vitals PC")
    patient = uuid.UUID(pid)
    times = [
        (datetime(2026, 2, 8, 3, 0, tzinfo=UTC), "150"),  # the day before the visit
        (datetime(2026, 2, 10, 2, 0, tzinfo=UTC), "140"),  # two readings on 10 Feb (IST)
        (datetime(2026, 2, 10, 14, 0, tzinfo=UTC), "130"),
    ]
    pushed = pc.push([change(pc, reading(patient, t, {"bp_systolic": s, "pulse_rate": "72"})) for t, s in times])
    assert [r["status"] for r in pushed.json()["results"]] == ["applied"] * 3
    return pid, enc.json()["id"]


def test_timeline_merges_every_kind_in_time_order(api: TestClient, doctor: SignedIn) -> None:
    pid, eid = seed_history(api, doctor)
    r = graph(api, doctor, pid, **ALL)
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert [(e["type"], e.get("role")) for e in entries] == [
        ("wearable_day", None),
        ("encounter", None),
        ("vitals", None),
        ("diagnosis", "primary"),
        ("diagnosis", "secondary"),
        ("diagnosis", "secondary"),
        ("wearable_day", None),
        ("prescription", None),  # drafted now, after the visit it belongs to
    ]
    day1, enc, vitals, dx1, dx2, dx3, day2, rx = entries
    assert (day1["day"], day2["day"]) == ("2026-02-08", "2026-02-10")
    assert day2["metrics"] == [
        {"metric": "bp_systolic", "avg": 135.0, "min": 130.0, "max": 140.0, "count": 2, "unit": "mmHg"},
        {"metric": "pulse_rate", "avg": 72.0, "min": 72.0, "max": 72.0, "count": 2, "unit": "beats/min"},
    ]
    assert day2["at"] == "2026-02-09T18:30:00Z"  # midnight in India
    assert (enc["id"], enc["encounter_type"], enc["status"]) == (eid, "opd", "draft")
    assert enc["chief_complaint"] == "Persistent fatigue for 2 weeks"
    assert (vitals["encounter_id"], vitals["vitals"]["bp"], vitals["vitals"]["pulse"]) == (eid, "140/90", 88)
    assert (dx1["condition"], dx1["code"]) == ("Type 2 diabetes mellitus", "E11")
    assert (dx2["code"], dx2["system"], dx3["condition"], dx3["code"]) == ("I10", "icd10", "Sleep disturbance", None)
    assert [m["generic_name"] for m in rx["medications"]] == ["METFORMIN"]
    assert [m["name"] for m in rx["ayush_medications"]] == ["Ashwagandha"]
    ats = [e["at"] for e in entries]
    assert ats == sorted(ats, key=lambda a: datetime.fromisoformat(a))

    plain = graph(api, doctor, pid).json()["entries"]
    assert [e["type"] for e in plain] == ["encounter", "vitals", "diagnosis", "diagnosis", "diagnosis", "prescription"]
    assert plain[-1]["ayush_medications"] is None
    window = graph(api, doctor, pid, **ALL, **{"from": "2026-02-10", "to": "2026-02-10"}).json()["entries"]
    assert [e["type"] for e in window] == ["wearable_day"]


def test_pages_with_the_cursor_cover_the_timeline_once(api: TestClient, doctor: SignedIn) -> None:
    pid, _ = seed_history(api, doctor)
    whole = graph(api, doctor, pid, **ALL).json()["entries"]
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        r = graph(api, doctor, pid, **ALL, limit=3, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["entries"]) <= 3
        seen += body["entries"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == whole and pages == 3


def test_scoped_to_the_callers_clinic(api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn) -> None:
    pid = registered(api, doctor)
    for who, patient in ((other_clinic_doctor, pid), (doctor, str(uuid7()))):
        r = graph(api, who, patient, **ALL)
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"] == "No patient with this id in your clinic"
    assert graph(api, doctor, pid).status_code == 200
    assert api.get(f"/api/v1/clinical/health-graph/{pid}").status_code == 401


def test_bad_parameters_are_422_problems(api: TestClient, doctor: SignedIn) -> None:
    pid = registered(api, doctor)
    bad = [
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJ4IiwwLCJ5IiwwXQ"}, "cursor"),  # well-formed base64 JSON, not a position
        ({"include_wearables": "maybe"}, "include_wearables"),
    ]
    for params, field in bad:
        r = graph(api, doctor, pid, **params)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in r.json()["detail"], (params, r.json())
    r = api.get("/api/v1/clinical/health-graph/not-a-uuid", headers=doctor.headers)
    assert r.status_code == 422 and "patient_id" in r.json()["detail"]


def test_openapi_documents_the_timeline_with_an_example(api: TestClient) -> None:
    spec = api.get("/api/openapi.json").json()
    op = spec["paths"]["/api/v1/clinical/health-graph/{patient_id}"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"include_wearables", "include_ayush", "from", "to", "cursor"}
    schema = spec["components"]["schemas"]["HealthGraph"]
    example = schema["examples"][0]
    assert {e["type"] for e in example["entries"]} == {
        "encounter",
        "vitals",
        "diagnosis",
        "prescription",
        "wearable_day",
    }
