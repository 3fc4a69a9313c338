"""Two clinic PCs, one server: encounters written offline, merged per section, late edits kept as addenda."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from desktop.services.encounters import EncounterService
from desktop.sync.apply_encounters import PARKED_KEY
from desktop.sync.client import SyncClient
from shared.records.encounter import SoapNote
from tests.e2e.conftest import PC, Server
from tests.sync_server.conftest import MBBS_MOBILE, last_otp

RADHA = {"name": "राधा कुमारी", "gender": "F", "year_of_birth": 1990, "mobile": "+919812300001"}
VISIT = {"encounter_type": "opd", "start_time": "2026-11-25T09:30:00+05:30", "chief_complaint": "Fever for 3 days"}


def encounters(pc: PC) -> EncounterService:
    assert pc.store is not None
    return EncounterService(writer=pc.store.writer, uow=pc.store.uow, clock=pc.store.clock)


def enroll(pc: PC) -> uuid.UUID:
    """Sign the doctor in on this PC (which enrols it); the doctor's user id."""
    txn, _ = pc.auth.start_sign_in(pc.server_url, MBBS_MOBILE)
    user = pc.auth.finish_sign_in(pc.server_url, txn, last_otp(pc.sandbox, MBBS_MOBILE), pc_name=pc.name)
    return user.user_id


def server_encounter(server: Server, sandbox: str, encounter_id: uuid.UUID) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        init = http.post("/api/v1/auth/doctor/init", json={"mobile": MBBS_MOBILE}).json()
        token = http.post(
            "/api/v1/auth/doctor/verify", json={"txn_id": init["txn_id"], "otp": last_otp(sandbox, MBBS_MOBILE)}
        ).json()["access_token"]
        r = http.get(f"/api/v1/encounters/{encounter_id}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        body["soap_note"] = {k: v for k, v in (body["soap_note"] or {}).items() if v is not None}
        return body


def note(pc: PC, encounter_id: uuid.UUID) -> dict[str, Any]:
    got = encounters(pc).get(encounter_id)
    return got.soap_note.model_dump(mode="json", exclude_none=True) if got.soap_note else {}


def test_encounter_written_offline_reaches_the_other_pc(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    p = a.patients.register(RADHA, actor="test")
    e = encounters(a).start({**VISIT, "patient_id": p.id, "soap_note": {"subjective": "Fever, worse at night"}}, doctor)
    report = a.sync()
    assert report.complete and not report.rejected
    b.sync()
    seen = encounters(b).get(e.id)
    assert (seen.patient_id, seen.doctor_id, seen.chief_complaint) == (p.id, doctor, "Fever for 3 days")
    assert seen.start_time == e.start_time and note(b, e.id) == {"subjective": "Fever, worse at night"}
    on_server = server_encounter(server, sandbox_url, e.id)
    assert on_server["soap_note"] == {"subjective": "Fever, worse at night"} and on_server["status"] == "draft"


def test_concurrent_section_edits_merge_per_section(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    p = a.patients.register(RADHA, actor="test")
    e = encounters(a).start({**VISIT, "patient_id": p.id}, doctor)
    a.sync()
    b.sync()
    # Offline on both: A writes the history, B (the nurse's PC) the examination and the plan.
    encounters(a).save_draft(e.id, {"soap_note": {"subjective": "Fever and cough"}})
    encounters(b).save_draft(e.id, {"soap_note": {"examination": "Chest clear", "plan": {"followup": "1 week"}}})
    b.sync()
    a.sync()
    b.sync()
    typed = {"subjective": "Fever and cough", "examination": "Chest clear", "plan": {"followup": "1 week"}}
    expected = SoapNote.model_validate(typed).model_dump(mode="json", exclude_none=True)
    assert note(a, e.id) == note(b, e.id) == expected
    on_server = server_encounter(server, sandbox_url, e.id)
    assert on_server["soap_note"] == note(a, e.id)


def test_edit_after_completion_becomes_an_addendum_everywhere(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    p = a.patients.register(RADHA, actor="test")
    e = encounters(a).start({**VISIT, "patient_id": p.id, "soap_note": {"subjective": "Fever"}}, doctor)
    a.sync()
    b.sync()
    encounters(b).save_draft(e.id, {"soap_note": {"subjective": "Fever", "plan": {"followup": "2 weeks"}}})  # offline
    encounters(a).complete(e.id)
    a.sync()
    report = b.sync()  # B's late edit reaches a completed encounter
    assert report.complete and not report.rejected
    on_server = server_encounter(server, sandbox_url, e.id)
    assert on_server["status"] == "completed" and on_server["soap_note"] == {"subjective": "Fever"}
    assert len(on_server["addenda"]) == 1 and "2 weeks" in on_server["addenda"][0]["text"]
    assert on_server["addenda"][0]["author_id"] == str(doctor)
    # B took the completed note as the server has it; its late edit is a local addendum with the server's id.
    seen = encounters(b).get(e.id)
    assert seen.status == "completed" and note(b, e.id) == {"subjective": "Fever"}
    assert [str(x.id) for x in seen.addenda] == [on_server["addenda"][0]["id"]]
    assert seen.addenda[0].soap_note is not None and seen.addenda[0].soap_note.plan is not None
    assert seen.addenda[0].soap_note.plan.followup == "2 weeks"
    b.sync()  # pulling again adds nothing
    assert len(encounters(b).get(e.id).addenda) == 1
    a.sync()  # A gets the server's addendum
    assert [str(x.id) for x in encounters(a).get(e.id).addenda] == [on_server["addenda"][0]["id"]]
    assert "2 weeks" in encounters(a).get(e.id).addenda[0].text


def test_an_encounter_pulled_before_its_patient_waits_for_it(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    p = a.patients.register(RADHA, actor="test")
    e = encounters(a).start({**VISIT, "patient_id": p.id}, doctor)
    a.sync()
    a.patients.update(p.id, {"mobile": "+919812300099"}, actor="test")  # the patient now follows the encounter
    a.sync()
    assert b.store is not None and b.auth.enrolment() is not None
    token = b.auth.device_token()
    assert token is not None
    transport = b.transport()
    transport.use_device(b.auth.enrolment().device_id, token)  # type: ignore[union-attr]
    one_per_page = SyncClient(
        b.store.uow, transport, b.store.clock, device_id=b.auth.enrolment().device_id, page_size=1
    )  # type: ignore[union-attr]
    report = one_per_page.run_once()
    assert report.complete
    seen = encounters(b).get(e.id)  # parked on the first page, stored with the page that brought the patient
    assert seen.patient_id == p.id and b.patients.get(p.id).mobile == "+919812300099"
    with b.store.uow.read() as uow:
        assert uow.sync_state.get(PARKED_KEY) is None


def test_an_addendum_written_offline_reaches_the_other_pc_once(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    doctor = enroll(a)
    enroll(b)
    p = a.patients.register(RADHA, actor="test")
    e = encounters(a).start({**VISIT, "patient_id": p.id, "soap_note": {"subjective": "Fever"}}, doctor)
    encounters(a).complete(e.id)
    added = encounters(a).add_addendum(e.id, {"text": "Dengue NS1 negative"}, doctor)
    report = a.sync()
    assert report.complete and not report.rejected
    b.sync()
    b.sync()
    seen = encounters(b).get(e.id)
    assert seen.status == "completed"
    assert [(x.id, x.text, x.author_id) for x in seen.addenda] == [(added.id, "Dengue NS1 negative", doctor)]
    assert [x["id"] for x in server_encounter(server, sandbox_url, e.id)["addenda"]] == [str(added.id)]
