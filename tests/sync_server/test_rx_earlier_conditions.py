"""The server's draft gate checks the patient's conditions from earlier completed visits, minus the doctor's
typed exclusions (REST and sync), as the desktop's Rx pad does."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.testclient import TestClient

from shared.ids import uuid7
from sync_server.settings import Settings
from tests.factories import make_patient
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn
from tests.sync_server.test_encounter_sync import enc_change, header, results
from tests.sync_server.test_rx_draft_sync import content, draft_change, med
from tests.sync_server.test_sync_api import Device, new_patient

PREGNANT = {"assessment": {"primary_diagnosis": {"condition": "Pregnant, 10 weeks", "code": "Z33"}}}
WARFARIN = {"generic_name": "WARFARIN", "strength": "5mg", "frequency": "Once daily", "duration_days": 30}
REASON = "Delivered in March; not pregnant now"


def visits(api: TestClient, who: SignedIn, earlier_note: dict[str, Any]) -> tuple[str, str]:
    """A patient with a completed earlier visit (``earlier_note``) and today's draft visit; (earlier, today)."""
    pid = api.post("/api/v1/patients", json=make_patient(), headers=who.headers).json()["id"]
    ids = []
    for start in ("2026-01-12T10:00:00Z", "2026-06-09T10:30:00Z"):
        body = {"patient_id": pid, "encounter_type": "opd", "start_time": start, "chief_complaint": "Review visit"}
        r = api.post("/api/v1/encounters", json=body, headers=who.headers)
        assert r.status_code == 201, r.text
        ids.append(str(r.json()["id"]))
    r = api.patch(f"/api/v1/encounters/{ids[0]}", json={"soap_note": earlier_note}, headers=who.headers)
    assert r.status_code == 200, r.text
    assert api.post(f"/api/v1/encounters/{ids[0]}/complete", headers=who.headers).status_code == 200
    return ids[0], ids[1]


def post(api: TestClient, who: SignedIn, encounter_id: str, **extra: Any) -> Any:
    body = {"encounter_id": encounter_id, "medications": [WARFARIN], **extra}
    return api.post("/api/v1/prescriptions/draft", json=body, headers=who.headers)


def _details(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def test_pregnancy_from_an_earlier_visit_refuses_warfarin(api: TestClient, doctor: SignedIn) -> None:
    earlier, today = visits(api, doctor, PREGNANT)
    r = post(api, doctor, today)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "rx.contraindicated"
    assert [f["rule_id"] for f in problem["findings"]] == ["DCI-009"]
    assert "earlier visit" in problem["detail"] and "2026-01-12" in problem["detail"]
    assert problem["findings"][0]["earlier_conditions"] == [
        {"condition": "pregnancy", "label": "Pregnant, 10 weeks", "encounter_id": earlier, "seen_on": "2026-01-12"}
    ]
    # The earlier visit still a draft (not completed) would not count: another patient, same note, not completed.
    pid = api.post("/api/v1/patients", json=make_patient(), headers=doctor.headers).json()["id"]
    body = {"patient_id": pid, "encounter_type": "opd", "start_time": "2026-01-12T10:00:00Z", "chief_complaint": "x"}
    open_visit = api.post("/api/v1/encounters", json=body, headers=doctor.headers).json()["id"]
    api.patch(f"/api/v1/encounters/{open_visit}", json={"soap_note": PREGNANT}, headers=doctor.headers)
    body["start_time"] = "2026-06-09T10:30:00Z"
    later = api.post("/api/v1/encounters", json=body, headers=doctor.headers).json()["id"]
    assert post(api, doctor, later).status_code == 201


def test_an_excluded_earlier_condition_with_a_reason_lets_the_draft_through_audited(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    earlier, today = visits(api, doctor, PREGNANT)
    r = post(api, doctor, today, excluded_conditions=[{"condition": "ICD10:Z33", "reason": REASON}])
    assert r.status_code == 201, r.text
    rx = r.json()
    assert rx["interaction_check"]["contraindications"] == []
    assert rx["interaction_check"]["excluded_conditions"] == [{"condition": "ICD10:Z33", "reason": REASON}]
    audited = pg.query(
        settings.database_url,
        "SELECT actor_id, details FROM audit_logs WHERE action = 'prescription.condition_excluded' AND entity_id = $1",
        rx["id"],
    )
    assert len(audited) == 1 and str(audited[0]["actor_id"]) == doctor.user["id"]
    details = _details(audited[0]["details"])
    assert details["condition"] == "ICD10:Z33" and details["reason"] == REASON
    assert details["from_encounter"] == earlier and details["seen_on"] == "2026-01-12"
    # Named by its condition id it matches too (the desktop names a coded condition by its code).
    _, again = visits(api, doctor, PREGNANT)
    assert post(api, doctor, again, excluded_conditions=[{"condition": "pregnancy", "reason": REASON}]).status_code == (
        201
    )
    # Excluding another condition does not lift this one.
    _, third = visits(api, doctor, PREGNANT)
    other = post(api, doctor, third, excluded_conditions=[{"condition": "ICD10:J45", "reason": REASON}])
    assert other.status_code == 409 and other.json()["code"] == "rx.contraindicated"


def test_an_exclusion_without_a_reason_is_a_field_error(api: TestClient, doctor: SignedIn) -> None:
    _, today = visits(api, doctor, PREGNANT)
    for bad in ({"condition": "ICD10:Z33"}, {"condition": "ICD10:Z33", "reason": "  "}):
        r = post(api, doctor, today, excluded_conditions=[bad])
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["excluded_conditions.0.reason"]


def test_a_condition_of_this_visit_cannot_be_excluded(api: TestClient, doctor: SignedIn) -> None:
    _, today = visits(api, doctor, {"assessment": {"primary_diagnosis": {"condition": "Asthma", "code": "J45"}}})
    r = api.patch(f"/api/v1/encounters/{today}", json={"soap_note": PREGNANT}, headers=doctor.headers)
    assert r.status_code == 200, r.text
    refused = post(api, doctor, today, excluded_conditions=[{"condition": "ICD10:Z33", "reason": REASON}])
    assert refused.status_code == 409 and "earlier visit" not in refused.json()["detail"]


def _sync_visits(api: TestClient, doctor: SignedIn) -> tuple[Device, uuid.UUID, uuid.UUID, uuid.UUID]:
    a = Device(api, doctor, "Doctor's PC")
    pid, first, today = uuid7(), uuid7(), uuid7()
    changes = [
        a.change(pid, new_patient()),
        enc_change(a, first, header(pid, assessment=PREGNANT["assessment"])),
        enc_change(a, today, header(pid)),
    ]
    got = results(a.push(changes))
    assert [r["status"] for r in got] == ["applied"] * 3, got[1]
    done = enc_change(a, first, {"status": "completed", "completed_at": "2026-01-12T11:00:00Z"})
    assert [r["status"] for r in results(a.push([done]))] == ["applied"]
    return a, pid, first, today


def test_sync_draft_is_gated_on_earlier_conditions_and_carries_exclusions(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    a, pid, first, today = _sync_visits(api, doctor)
    me, rx_id = doctor.user["id"], uuid7()
    owner = {"encounter_id": str(today), "patient_id": str(pid), "deleted": False}
    got = results(a.push([draft_change(a, rx_id, owner | content(me, [med("WARFARIN")]))]))
    assert got[0]["status"] == "rejected" and got[0]["reason"] == "invalid_record"
    assert got[0]["message"].startswith("rx.contraindicated") and "(rule DCI-009" in got[0]["message"]
    assert "earlier visit" in got[0]["message"] and str(first) in got[0]["message"]
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM prescriptions") == 0
    # An exclusion travelling with the content, without the lines, is refused as a partial content unit.
    partial = draft_change(a, rx_id, owner | {"excluded_conditions": []})
    assert "content travels whole" in results(a.push([partial]))[0]["message"]
    bad = owner | content(me, [med("WARFARIN")]) | {"excluded_conditions": [{"condition": "ICD10:Z33"}]}
    refused = results(a.push([draft_change(a, rx_id, bad)]))[0]
    assert refused["status"] == "rejected" and "excluded_conditions.0.reason" in refused["message"]
    # With the doctor's exclusion it is stored, audited, and pulled with the exclusion.
    excluded = [{"condition": "ICD10:Z33", "reason": REASON}]
    ok = owner | content(me, [med("WARFARIN")]) | {"excluded_conditions": excluded}
    assert [r["status"] for r in results(a.push([draft_change(a, rx_id, ok)]))] == ["applied"]
    audited = pg.query(
        settings.database_url,
        "SELECT details FROM audit_logs WHERE action = 'prescription.condition_excluded' AND entity_id = $1",
        str(rx_id),
    )
    assert [(_details(r["details"])["condition"], _details(r["details"])["from_encounter"]) for r in audited] == [
        ("ICD10:Z33", str(first))
    ]
    pulled = [c for c in Device(api, doctor, "PC B").pull_all()[0] if c["kind"] == "prescription_draft"]
    assert pulled[0]["fields"]["excluded_conditions"] == excluded
    assert pulled[0]["field_hlcs"]["excluded_conditions"] == pulled[0]["field_hlcs"]["medications"]
    # A later save without the exclusion (the doctor put the condition back) is refused again.
    again = results(a.push([draft_change(a, rx_id, owner | content(me, [med("WARFARIN"), med("METFORMIN")]))]))[0]
    assert again["status"] == "rejected" and again["message"].startswith("rx.contraindicated")


def test_a_sync_draft_without_the_field_still_works(api: TestClient, doctor: SignedIn) -> None:
    """An older PC's draft (no excluded_conditions) is accepted and pulled without the field."""
    a, pid, _, today = _sync_visits(api, doctor)
    rx_id = uuid7()
    owner = {"encounter_id": str(today), "patient_id": str(pid), "deleted": False}
    assert [
        r["status"]
        for r in results(a.push([draft_change(a, rx_id, owner | content(doctor.user["id"], [med("METFORMIN")]))]))
    ] == ["applied"]
    pulled = [c for c in Device(api, doctor, "PC B").pull_all()[0] if c["kind"] == "prescription_draft"]
    assert "excluded_conditions" not in pulled[0]["fields"]
