"""Status events by sync: a doctor cancels / supersedes his signed prescription on his PC, the server verifies."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from shared.ids import uuid7
from shared.signing import keys
from shared.signing.status import StatusEvent, sign_event
from tests.helpers import pg
from tests.sync_server.conftest import BAMS_MOBILE, SignedIn, sign_in
from tests.sync_server.test_encounter_sync import enc_change, header, results
from tests.sync_server.test_rx_sync import rx_change, signed
from tests.sync_server.test_signing_keys import certify
from tests.sync_server.test_sync_api import Device, new_patient


class Signed:
    """A prescription the device's doctor signed on his PC and pushed, with his key."""

    def __init__(self, api: TestClient, who: SignedIn, device: Device, *, push: bool = True) -> None:
        pid, eid = uuid7(), uuid7()
        results(device.push([device.change(pid, new_patient()), enc_change(device, eid, header(pid))]))
        self.key = keys.generate_private_key()
        self.cert = certify(api, who, self.key).json()
        self.rx_id = uuid7()
        self.signed = signed(self.cert, self.key, self.rx_id)
        self.change = rx_change(device, self.rx_id, self.signed, eid=eid, pid=pid, prescriber=who.user["id"])
        if push:
            assert [r["status"] for r in results(device.push([self.change]))] == ["applied"]


def status_change(
    device: Device,
    rx: Signed,
    *,
    seq: int = 1,
    status: str = "cancelled",
    reason: str = "Wrong dose printed",
    key: keys.Ed25519PrivateKey | None = None,
    event_id: uuid.UUID | None = None,
    content_hash: str | None = None,
) -> dict[str, Any]:
    key = key or rx.key
    at = datetime.now(UTC).replace(microsecond=0)
    event = StatusEvent(rx.rx_id, content_hash or rx.signed.content_hash, seq, status, reason, at, keys.key_id(key))  # type: ignore[arg-type]
    fields = {
        "prescription_id": str(rx.rx_id), "seq": seq, "status": status, "reason": reason,
        "at": at.isoformat().replace("+00:00", "Z"), "signer_kid": event.kid,
        "cose": base64.b64encode(sign_event(event, key)).decode(),
    }  # fmt: skip
    return enc_change(device, event_id or uuid7(), fields) | {"kind": "prescription_status"}


def events_of(api: TestClient, who: SignedIn, rx_id: uuid.UUID) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/prescriptions/{rx_id}/status", headers=who.headers)
    assert r.status_code == 200, r.text
    return list(r.json())


def test_a_cancel_signed_on_the_pc_is_verified_stored_listed_audited_and_fed(
    api: TestClient, doctor: SignedIn, settings: Any
) -> None:
    a = Device(api, doctor, "Doctor's PC")
    rx = Signed(api, doctor, a)
    change = status_change(a, rx)
    assert [r["status"] for r in results(a.push([change]))] == ["applied"]
    assert [r["status"] for r in results(a.push([change]))] == ["applied"]  # a replay: idempotent
    listed = events_of(api, doctor, rx.rx_id)
    assert [(e["seq"], e["status"], e["reason"]) for e in listed] == [(1, "cancelled", "Wrong dose printed")]
    assert listed[0]["id"] == change["id"] and listed[0]["signer_kid"] == keys.key_id(rx.key)
    assert listed[0]["actor_id"] == doctor.user["id"]
    assert base64.b64decode(listed[0]["cose"]) == base64.b64decode(change["fields"]["cose"])
    audit = pg.query(
        settings.database_url,
        "SELECT action, details FROM audit_logs WHERE entity_id = $1 AND action = 'prescription.cancelled'",
        str(rx.rx_id),
    )
    assert len(audit) == 1
    other_pc = Device(api, doctor, "Consulting room 2")
    pulled = [c for c in other_pc.pull_all()[0] if c["kind"] == "prescription_status"]
    assert [c["id"] for c in pulled] == [change["id"]]
    assert pulled[0]["fields"]["cose"] == change["fields"]["cose"]
    assert pulled[0]["fields"]["certificate"] == rx.cert["certificate"]
    assert pulled[0]["fields"]["seq"] == 1 and pulled[0]["fields"]["reason"] == "Wrong dose printed"

    # Terminal: a second cancel (another id) or a supersede is refused with the current status.
    again = results(a.push([status_change(a, rx, seq=2, status="superseded", reason="Re-issued")]))
    assert again[0]["status"] == "rejected" and again[0]["reason"] == "signed_immutable", again
    assert "already cancelled" in again[0]["message"]
    # The same id with another signature.
    other = results(a.push([status_change(a, rx, reason="Another reason", event_id=uuid.UUID(change["id"]))]))
    assert other[0]["reason"] == "signed_immutable" and "another signature" in other[0]["message"]
    assert len(events_of(api, doctor, rx.rx_id)) == 1


def test_bad_ones_are_refused_with_their_reason(api: TestClient, doctor: SignedIn, sandbox_url: str) -> None:
    a = Device(api, doctor, "Doctor's PC")
    rx = Signed(api, doctor, a)
    good = status_change(a, rx)
    raw = bytearray(base64.b64decode(good["fields"]["cose"]))
    raw[-1] ^= 0x01
    tampered = good | {"fields": good["fields"] | {"cose": base64.b64encode(bytes(raw)).decode()}}
    reworded = good | {"id": str(uuid7()), "fields": good["fields"] | {"reason": "Not what was signed"}}
    uncertified = status_change(a, rx, key=keys.generate_private_key())
    other_content = status_change(a, rx, content_hash="00" * 32)
    dispensed = status_change(a, rx, status="dispensed", reason="Given at the counter")
    gap = status_change(a, rx, seq=3)
    deleted = enc_change(a, uuid7(), {}, op="delete") | {"kind": "prescription_status"}
    malformed = good | {"id": str(uuid7()), "fields": good["fields"] | {"reason": ""}}
    got = results(a.push([tampered, reworded, uncertified, other_content, dispensed, gap, deleted, malformed]))
    expect = [
        ("bad_signature", "bad_signature:"),
        ("bad_signature", "content_mismatch"),
        ("bad_signature", "unknown_key"),
        ("bad_signature", "other content"),
        ("invalid_record", "pharmacy"),
        ("invalid_record", "the next one is 1"),
        ("signed_immutable", "append-only"),
        ("invalid_record", "reason"),
    ]
    for (reason, text), result in zip(expect, got, strict=True):
        assert result["status"] == "rejected" and result["reason"] == reason, result
        assert text in result["message"], result
    assert events_of(api, doctor, rx.rx_id) == []

    # Another doctor of the clinic (his own certified key, his own PC) may not cancel the prescriber's one.
    bams = sign_in(api, sandbox_url, BAMS_MOBILE)
    b = Device(api, bams, "BAMS PC")
    bams_key = keys.generate_private_key()
    certify(api, bams, bams_key)
    refused = results(b.push([status_change(b, rx, key=bams_key)]))
    assert refused[0]["reason"] == "not_in_scope" and "prescribing doctor" in refused[0]["message"], refused
    # His key on the prescriber's PC is not the device doctor's key either.
    wrong = results(a.push([status_change(a, rx, key=bams_key)]))
    assert wrong[0]["reason"] == "bad_signature" and "wrong_signer" in wrong[0]["message"], wrong
    assert events_of(api, doctor, rx.rx_id) == []


def test_seq_taken_by_a_pharmacy_dispensing_is_stale_base_then_the_next_seq_applies(
    api: TestClient, doctor: SignedIn, sandbox_url: str
) -> None:
    a = Device(api, doctor, "Doctor's PC")
    rx = Signed(api, doctor, a)
    bams = sign_in(api, sandbox_url, BAMS_MOBILE)
    r = api.post(
        f"/api/v1/prescriptions/{rx.rx_id}/status", json={"status": "dispensed", "reason": "Dispensed"},
        headers=bams.headers,
    )  # fmt: skip
    assert r.status_code in (200, 201), r.text
    stale = results(a.push([status_change(a, rx, seq=1, reason="Patient allergic")]))
    assert stale[0]["status"] == "rejected" and stale[0]["reason"] == "stale_base", stale
    assert "dispensed" in stale[0]["message"] and "seq 2" in stale[0]["message"]
    pulled = [c for c in a.pull_all()[0] if c["kind"] == "prescription_status"]
    assert [(c["fields"]["seq"], c["fields"]["status"]) for c in pulled] == [(1, "dispensed")]  # REST events feed
    assert [r["status"] for r in results(a.push([status_change(a, rx, seq=2, reason="Patient allergic")]))] == [
        "applied"
    ]
    assert [(e["seq"], e["status"]) for e in events_of(api, doctor, rx.rx_id)] == [(1, "dispensed"), (2, "cancelled")]


def test_signed_and_cancelled_offline_then_pushed_in_one_batch(api: TestClient, doctor: SignedIn) -> None:
    """The PC signs and cancels before it syncs: the batch holds both, the event after its prescription."""
    a = Device(api, doctor, "Doctor's PC")
    rx = Signed(api, doctor, a, push=False)
    both = [rx.change, status_change(a, rx)]
    assert [r["status"] for r in results(a.push(both))] == ["applied", "applied"]
    assert [e["status"] for e in events_of(api, doctor, rx.rx_id)] == ["cancelled"]
