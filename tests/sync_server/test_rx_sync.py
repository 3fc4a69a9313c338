"""Signed prescriptions by sync: every signature verified against this server's issuer, stored frozen, append-only."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from shared.ids import uuid7
from shared.signing import keys
from shared.signing.rx import Clinic, Medicine, Patient, PrescriptionContent, SignedPrescription, sign_prescription
from tests.sync_server.conftest import BAMS_MOBILE, SignedIn, sign_in
from tests.sync_server.test_encounter_sync import enc_change, header, results
from tests.sync_server.test_signing_keys import certify
from tests.sync_server.test_sync_api import Device, new_patient

LINE = {"generic_name": "Paracetamol", "strength": "500 mg", "frequency": "1-0-1", "duration_days": 3}


def signed(
    cert: dict[str, Any], key: keys.Ed25519PrivateKey, rx_id: uuid.UUID, minutes_ago: int = 1
) -> SignedPrescription:
    issued = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).replace(microsecond=0)
    content = PrescriptionContent(
        rx_id=rx_id,
        issued_at=issued,
        expires_at=issued + timedelta(days=30),
        clinic=Clinic(name="IntegMed Demo Clinic"),
        patient=Patient(name="Test Patient", age_years=40, sex="F"),
        medicines=(Medicine(**LINE),),
    )
    cert_bytes, issuer = base64.b64decode(cert["certificate"]), base64.b64decode(cert["issuer_certificate"])
    return sign_prescription(content, key, cert_bytes, issuer, limit=None)


def rx_change(
    device: Device, rx_id: uuid.UUID, s: SignedPrescription, *, eid: uuid.UUID, pid: uuid.UUID, prescriber: str
) -> dict[str, Any]:
    fields = {
        "encounter_id": str(eid),
        "patient_id": str(pid),
        "prescriber_id": prescriber,
        "cose": base64.b64encode(s.cose_bytes).decode(),
        "qr_payload": s.qr_payload,
        "content_hash": s.content_hash,
        "signed_at": "2026-11-25T10:00:00Z",
        "medications": [LINE],
        "ayush_medications": [],
        "advisories": [],
        "policy_version": "2026.11",
    }
    return enc_change(device, rx_id, fields) | {"kind": "signed_prescription"}


def tampered(s: SignedPrescription) -> SignedPrescription:
    raw = bytearray(s.cose_bytes)
    at = raw.rfind(s.signature)
    raw[at] ^= 0x01  # one bit of the signature
    return replace(s, signature=bytes(raw[at : at + 64]), cose_bytes=bytes(raw))


def test_signed_prescription_is_verified_stored_frozen_and_bad_ones_are_refused(
    api: TestClient, doctor: SignedIn, sandbox_url: str
) -> None:
    a = Device(api, doctor, "Doctor's PC")
    me = doctor.user["id"]
    pid, eid = uuid7(), uuid7()
    results(a.push([a.change(pid, new_patient()), enc_change(a, eid, header(pid))]))
    key = keys.generate_private_key()
    cert = certify(api, doctor, key).json()
    rx_id = uuid7()
    good = signed(cert, key, rx_id)
    change = rx_change(a, rx_id, good, eid=eid, pid=pid, prescriber=me)
    assert [r["status"] for r in results(a.push([change]))] == ["applied"]
    assert [r["status"] for r in results(a.push([change]))] == ["applied"]  # a replay
    stored = api.get(f"/api/v1/prescriptions/{rx_id}/signed", headers=doctor.headers)
    assert stored.status_code == 200, stored.text
    assert stored.json()["qr_payload"] == good.qr_payload and stored.json()["content_hash"] == good.content_hash

    bams = sign_in(api, sandbox_url, BAMS_MOBILE)
    other_key = keys.generate_private_key()
    other_cert = certify(api, bams, other_key).json()
    bad_ids = [uuid7() for _ in range(5)]
    bad_sig = signed(cert, key, bad_ids[0])
    cases = [
        (rx_change(a, bad_ids[0], tampered(bad_sig), eid=eid, pid=pid, prescriber=me), "bad_signature", ""),
        (
            rx_change(a, bad_ids[1], signed(other_cert, other_key, bad_ids[1]), eid=eid, pid=pid, prescriber=me),
            "bad_signature",
            "wrong_signer",
        ),
        (
            rx_change(a, bad_ids[2], signed(cert, key, uuid7()), eid=eid, pid=pid, prescriber=me),
            "bad_signature",
            "content_mismatch",
        ),
        (
            rx_change(a, rx_id, signed(cert, key, rx_id, minutes_ago=2), eid=eid, pid=pid, prescriber=me),
            "signed_immutable",
            "already signed",
        ),
        (enc_change(a, rx_id, {}, op="delete") | {"kind": "signed_prescription"}, "signed_immutable", "deleted"),
        (
            rx_change(a, bad_ids[3], signed(cert, key, bad_ids[3]), eid=uuid7(), pid=pid, prescriber=me),
            "invalid_record",
            "push it first",
        ),
    ]
    got = results(a.push([c for c, _, _ in cases]))
    for (_, reason, text), result in zip(cases, got, strict=True):
        assert result["status"] == "rejected" and result["reason"] == reason, result
        assert text in result["message"], result
    assert got[0]["message"].startswith("bad_signature") or got[0]["message"].startswith("malformed"), got[0]
    for refused in bad_ids:  # stored nowhere
        assert api.get(f"/api/v1/prescriptions/{refused}/signed", headers=doctor.headers).status_code == 404
    again = api.get(f"/api/v1/prescriptions/{rx_id}/signed", headers=doctor.headers).json()
    assert again["qr_payload"] == good.qr_payload  # the first signature stays
