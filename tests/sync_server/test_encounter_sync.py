"""Encounters by sync: per-section merge while draft, completion monotonic, late edits kept as addenda."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from shared.clock import Stamp, encode
from shared.ids import uuid7
from tests.sync_server.conftest import SignedIn
from tests.sync_server.test_sync_api import Device, new_patient

START = "2026-11-25T09:30:00Z"


def enc_change(
    device: Device, eid: uuid.UUID, fields: dict[str, Any], op: str = "upsert", ago_ms: int = 0
) -> dict[str, Any]:
    """An encounter change stamped now by the device's clock, or ``ago_ms`` before now (an offline edit)."""
    now = device.clock.now()
    stamp = encode(Stamp(now.wall_ms - ago_ms, now.counter, now.node) if ago_ms else now)
    change = {"kind": "encounter", "id": str(eid), "op": op, "hlc": stamp}
    if op == "upsert":
        change |= {"fields": fields, "field_hlcs": dict.fromkeys(fields, stamp)}
    return change


def header(pid: uuid.UUID, **extra: Any) -> dict[str, Any]:
    return {
        "patient_id": str(pid),
        "encounter_type": "opd",
        "start_time": START,
        "chief_complaint": "Fever for 3 days",
        **extra,
    }


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return response.json()["results"]


def pulled_encounter(device: Device, eid: uuid.UUID) -> dict[str, Any]:
    changes, _ = device.pull_all()
    found = [c for c in changes if c["kind"] == "encounter" and c["id"] == str(eid)]
    assert len(found) == 1
    return found[0]


def test_encounter_written_offline_reaches_another_pc_and_the_api(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "PC A"), Device(api, doctor, "PC B")
    pid, eid = uuid7(), uuid7()
    got = results(
        a.push(
            [
                a.change(pid, new_patient(name="Meena Kumari")),
                enc_change(a, eid, header(pid, subjective="Fever, worse at night")),
            ]
        )
    )
    assert [r["status"] for r in got] == ["applied", "applied"]
    assert got[1]["server_version"] == 1 and got[1]["message"] is None
    seen = pulled_encounter(b, eid)
    assert seen["fields"]["subjective"] == "Fever, worse at night"
    assert seen["fields"]["start_time"] == START and seen["fields"]["status"] == "draft"
    assert seen["field_hlcs"]["subjective"] == seen["hlc"]
    enc = api.get(f"/api/v1/encounters/{eid}", headers=doctor.headers).json()
    assert enc["soap_note"]["subjective"] == "Fever, worse at night" and enc["doctor_id"] == doctor.user["id"]


def test_concurrent_section_edits_merge_per_section(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "PC A"), Device(api, doctor, "PC B")
    pid, eid = uuid7(), uuid7()
    results(a.push([a.change(pid, new_patient()), enc_change(a, eid, header(pid))]))
    edit_b_old = enc_change(
        b, eid, {"subjective": "Cough"}, ago_ms=60_000
    )  # older stamp, same section as A's later edit
    edit_a = enc_change(a, eid, {"subjective": "Fever and cough", "assessment": {"notes": "viral"}})
    edit_b_plan = enc_change(b, eid, {"plan": {"followup": "Review in 1 week"}})
    assert [r["status"] for r in results(a.push([edit_a]))] == ["applied"]
    assert [r["status"] for r in results(b.push([edit_b_old, edit_b_plan]))] == ["merged", "applied"]
    fields = pulled_encounter(a, eid)["fields"]
    assert fields["subjective"] == "Fever and cough"
    assert fields["assessment"] == {"notes": "viral"} and fields["plan"] == {"followup": "Review in 1 week"}


def test_edit_after_completion_becomes_an_addendum_by_its_author(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "PC A"), Device(api, doctor, "PC B")
    pid, eid = uuid7(), uuid7()
    results(a.push([a.change(pid, new_patient()), enc_change(a, eid, header(pid, subjective="Fever"))]))
    late = enc_change(b, eid, {"plan": {"followup": "Review in 2 weeks"}})  # B edits offline, before A completes
    done = enc_change(a, eid, {"status": "completed", "completed_at": "2026-11-25T10:00:00Z"})
    assert results(a.push([done]))[0]["status"] == "applied"
    got = results(b.push([late]))[0]
    assert got["status"] == "merged" and "addendum" in got["message"] and "plan" in got["message"]
    again = results(b.push([late]))[0]  # the same change re-sent in a new batch: no second addendum
    assert again["status"] == "merged"
    enc = api.get(f"/api/v1/encounters/{eid}", headers=doctor.headers).json()
    assert enc["status"] == "completed" and (enc["soap_note"].get("plan") is None)
    assert len(enc["addenda"]) == 1
    addendum = enc["addenda"][0]
    assert addendum["author_id"] == doctor.user["id"] and "Review in 2 weeks" in addendum["text"]
    assert addendum["soap_note"]["plan"]["followup"] == "Review in 2 weeks"
    # Completion is monotonic: a draft status, even stamped later, never reopens it.
    reopen = enc_change(b, eid, {"status": "draft", "completed_at": None})
    assert results(b.push([reopen]))[0]["status"] == "merged"
    assert pulled_encounter(a, eid)["fields"]["status"] == "completed"


def test_bad_encounter_changes_are_rejected_with_the_reason(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn
) -> None:
    a = Device(api, doctor)
    other = Device(api, other_clinic_doctor, "Other clinic PC")
    pid, eid = uuid7(), uuid7()
    results(a.push([a.change(pid, new_patient()), enc_change(a, eid, header(pid))]))
    cases = [
        (enc_change(a, uuid7(), {"subjective": "x"}), "invalid_record", "patient_id: a new encounter needs"),
        (enc_change(a, eid, {}, op="delete"), "invalid_record", "never deleted"),
        (enc_change(a, eid, {"patient_id": str(uuid7())}), "invalid_record", "patient_id of an encounter"),
        (enc_change(a, eid, {"encounter_type": "picnic"}), "invalid_record", "encounter_type"),
        (enc_change(a, eid, {"start_time": "2026-11-25T15:00:00+05:30"}), "invalid_record", "UTC"),
        (enc_change(a, eid, {"soap": "x"}), "invalid_record", "not encounter fields"),
        (enc_change(a, uuid7(), header(uuid7())), "invalid_record", "no patient"),
        (enc_change(a, uuid7(), header(pid, doctor_id=str(uuid7()))), "invalid_record", "doctor_id: "),
        (enc_change(a, eid, {"doctor_id": str(uuid7())}), "invalid_record", "doctor_id of an encounter"),
    ]
    got = results(a.push([c for c, _, _ in cases]))
    for (_, reason, text), result in zip(cases, got, strict=True):
        assert result["status"] == "rejected" and result["reason"] == reason, result
        assert text in result["message"], result
    assert results(other.push([enc_change(other, eid, {"subjective": "mine"})]))[0]["reason"] == "not_in_scope"
    assert pulled_encounter(a, eid)["fields"].get("subjective") is None  # nothing of a rejected change stored


def addendum_change(device: Device, aid: uuid.UUID, eid: uuid.UUID, author: str, text: str) -> dict[str, Any]:
    fields = {"encounter_id": str(eid), "author_id": author, "text": text, "soap_note": None}
    return enc_change(device, aid, fields | {"created_at": "2026-11-25T11:00:00Z"}) | {"kind": "encounter_addendum"}


def test_addenda_are_append_only_and_reach_the_other_pc(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "PC A"), Device(api, doctor, "PC B")
    pid, eid, draft = uuid7(), uuid7(), uuid7()
    me = doctor.user["id"]
    done = {"status": "completed", "completed_at": "2026-11-25T10:00:00Z"}
    results(a.push([a.change(pid, new_patient()), enc_change(a, eid, header(pid) | done)]))
    results(a.push([enc_change(a, draft, header(pid))]))
    aid = uuid7()
    first = addendum_change(a, aid, eid, me, "Lab report: Hb 11.2 g/dL")
    assert [r["status"] for r in results(a.push([first]))] == ["applied"]
    assert [r["status"] for r in results(a.push([first]))] == ["applied"]  # a replay in a new batch
    cases = [
        (addendum_change(a, aid, eid, me, "Lab report: Hb 12.0 g/dL"), "signed_immutable", "other content"),
        (enc_change(a, aid, {}, op="delete") | {"kind": "encounter_addendum"}, "signed_immutable", "append-only"),
        (addendum_change(a, uuid7(), draft, me, "x"), "invalid_record", "completed encounters"),
        (addendum_change(a, uuid7(), uuid7(), me, "x"), "invalid_record", "no encounter"),
        (addendum_change(a, uuid7(), eid, str(uuid7()), "x"), "invalid_record", "author_id"),
    ]
    got = results(a.push([c for c, _, _ in cases]))
    for (_, reason, text), result in zip(cases, got, strict=True):
        assert result["status"] == "rejected" and result["reason"] == reason, result
        assert text in result["message"], result
    pulled = [c for c in b.pull_all()[0] if c["kind"] == "encounter_addendum"]
    assert [(c["id"], c["fields"]["text"]) for c in pulled] == [(str(aid), "Lab report: Hb 11.2 g/dL")]
    enc = api.get(f"/api/v1/encounters/{eid}", headers=doctor.headers).json()
    assert [x["text"] for x in enc["addenda"]] == ["Lab report: Hb 11.2 g/dL"]


def test_the_servers_late_edit_addendum_is_in_the_feed(api: TestClient, doctor: SignedIn) -> None:
    a, b = Device(api, doctor, "PC A"), Device(api, doctor, "PC B")
    pid, eid = uuid7(), uuid7()
    done = {"status": "completed", "completed_at": "2026-11-25T10:00:00Z"}
    results(a.push([a.change(pid, new_patient()), enc_change(a, eid, header(pid) | done)]))
    got = results(b.push([enc_change(b, eid, {"examination": "Chest clear"})]))[0]
    assert got["status"] == "merged"
    pulled = [c for c in a.pull_all()[0] if c["kind"] == "encounter_addendum"]
    assert len(pulled) == 1 and pulled[0]["fields"]["encounter_id"] == str(eid)
    assert "Chest clear" in pulled[0]["fields"]["text"] and pulled[0]["id"] in got["message"]
