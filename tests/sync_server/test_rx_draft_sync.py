"""Prescription drafts by sync: merged as a whole list by stamp, gated like REST drafts, frozen once signed."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.ids import uuid7
from shared.records.prescription import MedicationLine
from shared.signing import keys
from sync_server.settings import Settings
from tests.helpers import pg
from tests.sync_server.conftest import BAMS_MOBILE, SignedIn, sign_in
from tests.sync_server.test_encounter_sync import enc_change, header, results
from tests.sync_server.test_rx_sync import rx_change, signed
from tests.sync_server.test_signing_keys import certify
from tests.sync_server.test_sync_api import Device, new_patient


def med(name: str) -> dict[str, Any]:
    return MedicationLine(generic_name=name, frequency="Twice daily", duration_days=5).model_dump(mode="json")


def content(
    prescriber: str, meds: list[dict[str, Any]], overrides: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "prescriber_id": prescriber,
        "lines": [{"text": m["generic_name"], "expanded": None} for m in meds],
        "medications": meds,
        "ayush_medications": [],
        "advisories": [],
        "overrides": overrides or [],
        "kb_version": "test",
        "policy_version": "2026.11",
    }


def draft_change(device: Device, rx_id: uuid.UUID, fields: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return enc_change(device, rx_id, fields, **kw) | {"kind": "prescription_draft"}


def setup(api: TestClient, doctor: SignedIn) -> tuple[Device, uuid.UUID, uuid.UUID]:
    a = Device(api, doctor, "Doctor's PC")
    pid, eid = uuid7(), uuid7()
    results(a.push([a.change(pid, new_patient()), enc_change(a, eid, header(pid))]))
    return a, pid, eid


def test_draft_is_stored_merged_as_a_whole_list_and_pulled(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    a, pid, eid = setup(api, doctor)
    me, rx_id = doctor.user["id"], uuid7()
    owner = {"encounter_id": str(eid), "patient_id": str(pid), "deleted": False}
    first = draft_change(a, rx_id, owner | content(me, [med("METFORMIN")]))
    assert [r["status"] for r in results(a.push([first]))] == ["applied"]
    # A replay (new batch, same change) stores nothing new.
    assert [(r["status"], r["server_version"]) for r in results(a.push([first]))] == [("applied", 1)]
    # An older offline edit loses whole: answered merged, kept in history, the stored list unchanged.
    older = draft_change(a, rx_id, content(me, [med("AMLODIPINE")]), ago_ms=60_000)
    assert [r["status"] for r in results(a.push([older]))] == ["merged"]
    stored = api.get(f"/api/v1/prescriptions/{rx_id}", headers=doctor.headers).json()
    assert [m["generic_name"] for m in stored["medications"]] == ["METFORMIN"]
    lost = pg.scalar(
        settings.database_url,
        "SELECT count(*) FROM record_history WHERE kind = 'prescription_draft' AND lost AND field = 'medications'",
    )
    assert lost == 1
    changes, _ = Device(api, doctor, "PC B").pull_all()
    drafts = [c for c in changes if c["kind"] == "prescription_draft"]
    assert [d["id"] for d in drafts] == [str(rx_id)]
    assert drafts[0]["fields"]["medications"] == [med("METFORMIN")] and drafts[0]["fields"]["deleted"] is False
    # A discard is a tombstone, pulled as deleted = true.
    assert [r["status"] for r in results(a.push([draft_change(a, rx_id, {}, op="delete")]))] == ["applied"]
    pulled = [c for c in Device(api, doctor, "PC C").pull_all()[0] if c["kind"] == "prescription_draft"]
    assert pulled[0]["fields"]["deleted"] is True


def test_an_older_draft_with_exclusions_loses_whole_and_its_exclusions_go_to_history(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    """The optional ``excluded_conditions`` is part of the content unit: losing to a stored content that has
    none is an answered merge (history keeps it, beaten by the winner's stamp), never a server error."""
    a, pid, eid = setup(api, doctor)
    me, rx_id = doctor.user["id"], uuid7()
    owner = {"encounter_id": str(eid), "patient_id": str(pid), "deleted": False}
    assert [
        r["status"] for r in results(a.push([draft_change(a, rx_id, owner | content(me, [med("METFORMIN")]))]))
    ] == ["applied"]
    excluded = [{"condition": "SNOMED:77386006", "reason": "Delivered 2 Nov 2026; not breastfeeding"}]
    older = draft_change(a, rx_id, content(me, [med("AMLODIPINE")]) | {"excluded_conditions": excluded}, ago_ms=60_000)
    assert [r["status"] for r in results(a.push([older]))] == ["merged"]
    kept = pg.scalar(
        settings.database_url,
        "SELECT value::text FROM record_history WHERE kind = 'prescription_draft' AND lost"
        " AND field = 'excluded_conditions'",
    )
    assert kept is not None and "77386006" in kept


def test_the_server_gate_refuses_with_the_rules_reason(
    api: TestClient, doctor: SignedIn, sandbox_url: str, settings: Settings
) -> None:
    a, pid, eid = setup(api, doctor)
    me = doctor.user["id"]
    owner = {"encounter_id": str(eid), "patient_id": str(pid), "deleted": False}
    bams = sign_in(api, sandbox_url, BAMS_MOBILE)
    ids = [uuid7() for _ in range(6)]
    cases = [
        (owner | content(me, [med("COLCHICINE"), med("CLARITHROMYCIN")]), "rx.contraindicated"),
        (owner | content(me, [med("WARFARIN"), med("ASPIRIN")]), "(rule DDI-002)"),
        (owner | content(bams.user["id"], [med("METFORMIN")]), "(rule SP-MH-AYURVEDA;"),
        (owner | content(me, [med("NOT A DRUG")]), "rx.unknown_medicine"),
        ({**owner, "lines": []}, "content travels whole"),
        (owner | content(me, [med("METFORMIN")]) | {"policy_version": None}, "policy_version: a version text"),
    ]
    got = results(a.push([draft_change(a, i, f) for i, (f, _) in zip(ids, cases, strict=True)]))
    assert got[0]["message"].startswith("rx.contraindicated") and "(rule DDI-018)" in got[0]["message"]
    assert got[1]["message"].startswith("rx.override_required") and got[2]["message"].startswith("rx.not_permitted")
    for (_, text), result in zip(cases, got, strict=True):
        assert result["status"] == "rejected" and result["reason"] == "invalid_record", result
        assert text in result["message"], result
    assert "SP-MH-AYURVEDA" in pg.scalar(
        settings.database_url,
        "SELECT details::text FROM audit_logs WHERE action = 'prescription.refused'"
        " AND details->>'code' = 'rx.not_permitted'",
    )
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM prescriptions") == 0
    # With a typed override the major pair goes through, and the override is audited.
    # A PC's override also names its alert (rule and medicines), for the other PCs: kept as sent.
    override = {"rule_id": "DDI-002", "reason": "Mechanical valve; INR weekly", "alert_key": "DDI-002:ASPIRIN|WARFARIN",
                "names": ["WARFARIN", "ASPIRIN"]}  # fmt: skip
    overridden = owner | content(me, [med("WARFARIN"), med("ASPIRIN")], [override])
    assert [r["status"] for r in results(a.push([draft_change(a, ids[1], overridden)]))] == ["applied"]
    audited = pg.scalar(settings.database_url, "SELECT count(*) FROM audit_logs WHERE action = 'prescription.override'")
    assert audited == 1
    pulled = [c for c in Device(api, doctor, "PC B").pull_all()[0] if c["kind"] == "prescription_draft"]
    assert pulled[0]["fields"]["overrides"] == [override]


def test_a_signed_prescription_is_frozen_for_draft_edits_and_in_the_feed(api: TestClient, doctor: SignedIn) -> None:
    a, pid, eid = setup(api, doctor)
    me = doctor.user["id"]
    rx_id = uuid7()
    owner = {"encounter_id": str(eid), "patient_id": str(pid), "deleted": False}
    assert [
        r["status"] for r in results(a.push([draft_change(a, rx_id, owner | content(me, [med("METFORMIN")]))]))
    ] == ["applied"]
    key = keys.generate_private_key()
    cert = certify(api, doctor, key).json()
    good = signed(cert, key, rx_id)
    assert [r["status"] for r in results(a.push([rx_change(a, rx_id, good, eid=eid, pid=pid, prescriber=me)]))] == [
        "applied"
    ]
    later = results(a.push([draft_change(a, rx_id, content(me, [med("AMLODIPINE")]))]))
    assert [(r["status"], r["reason"]) for r in later] == [("rejected", "signed_immutable")]
    changes, _ = Device(api, doctor, "PC B").pull_all()
    kinds = {(c["kind"], c["id"]) for c in changes if c["id"] == str(rx_id)}
    assert kinds == {("signed_prescription", str(rx_id))}  # the signed record supersedes the draft entry
    pulled = next(c for c in changes if c["kind"] == "signed_prescription")
    assert pulled["fields"]["qr_payload"] == good.qr_payload and pulled["fields"]["content_hash"] == good.content_hash


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["text", "expanded", "x"]), inner, max_size=2)
    ),
    max_leaves=6,
)


def test_malformed_drafts_are_refused_one_by_one_never_a_server_error(api: TestClient, doctor: SignedIn) -> None:
    """Every field of a draft replaced by arbitrary JSON: each change is answered (rejected), none is a 500."""
    a, pid, eid = setup(api, doctor)
    good = {"encounter_id": str(eid), "patient_id": str(pid), "deleted": False} | content(
        doctor.user["id"], [med("METFORMIN")]
    )

    @given(st.dictionaries(st.sampled_from(sorted(good)), json_values, min_size=1, max_size=3))
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(bad: dict[str, Any]) -> None:
        fields = good | bad
        if fields == good:
            return
        response = a.push([draft_change(a, uuid7(), fields)])
        if response.status_code == 422:  # the protocol itself refuses a non-boolean tombstone, as for patients
            assert "deleted" in bad and "'deleted' must be true or false" in response.json()["detail"]
            return
        got = results(response)
        assert got[0]["status"] in ("rejected", "applied"), got
        if got[0]["status"] == "rejected":
            assert got[0]["reason"] == "invalid_record" and got[0]["message"], got

    check()
