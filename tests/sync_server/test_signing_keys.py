"""Doctor keys on the server: certification of PC-held keys, sealed server-held keys, revocation, verify."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from shared.signing import keys
from shared.signing.certs import Role, parse_certificate, validate_chain
from shared.signing.revocation import parse_revocation_list
from shared.signing.rx import AyushItem, Clinic, Patient, PrescriptionContent, sign_prescription, verify_qr_payload
from shared.signing.trust import default_trust
from sync_server.settings import Settings
from sync_server.signing import sealing
from tests.helpers import pg
from tests.sync_server.conftest import ADMIN_MOBILE, BAMS_MOBILE, SignedIn, sign_in
from tests.sync_server.test_prescription_drafts import NURSE_MOBILE
from tests.sync_server.test_signing import sign, signed_draft

CERTS = "/api/v1/signing/doctor-certificates"
REVOKE = "/api/v1/signing/revocations"
VERIFY = "/api/v1/prescriptions/verify"


def certify(api: TestClient, who: SignedIn, key: keys.Ed25519PrivateKey) -> Any:
    body = {"public_key": keys.b64url_encode(keys.public_key_bytes(key))}
    return api.post(CERTS, json=body, headers=who.headers)


def pc_signed(cert: dict[str, Any], key: keys.Ed25519PrivateKey, issued_at: datetime) -> str:
    """A prescription signed on the doctor's PC with his own key and the certificates the server issued."""
    content = PrescriptionContent(
        rx_id=uuid.uuid4(),
        issued_at=issued_at,
        expires_at=issued_at + timedelta(days=30),
        clinic=Clinic(name="IntegMed Demo Clinic"),
        patient=Patient(name="Test Patient", age_years=40, sex="F"),
        ayush=(AyushItem(name="Triphala Churna", frequency="At bedtime", duration_days=14),),
    )
    signed = sign_prescription(
        content,
        key,
        base64.b64decode(cert["certificate"]),
        base64.b64decode(cert["issuer_certificate"]),
        limit=None,
    )
    return signed.qr_payload


def test_doctor_certificate_binds_the_registration_and_chains_to_the_sandbox_root(
    api: TestClient, doctor: SignedIn, sandbox_url: str, settings: Settings
) -> None:
    key = keys.generate_private_key()
    r = certify(api, doctor, key)
    assert r.status_code == 201, r.text
    body = r.json()
    cert = parse_certificate(base64.b64decode(body["certificate"]))
    claims = cert.claims
    assert claims.role is Role.DOCTOR and claims.public_key == keys.public_key_bytes(key)
    assert body["kid"] == keys.key_id(key) == cert.kid
    assert claims.hpr_id == doctor.user["hpr_id"].replace("-", "")
    assert (claims.name, claims.qualification, claims.registration_council, claims.registration_number) == (
        doctor.user["name"],
        doctor.user["qualification"],
        doctor.user["registration_council"],
        doctor.user["registration_number"],
    )
    assert claims.system_of_medicine == "modern_medicine" and claims.clinic_name == "IntegMed Demo Clinic"
    assert claims.clinic_id == doctor.user["clinic"]["id"]
    chain = validate_chain(cert, base64.b64decode(body["issuer_certificate"]), default_trust(), at=datetime.now(UTC))
    assert chain.root.sandbox and chain.issuer.kid == body["issuer_kid"]
    # The server keeps the public half only; certifying the same key again answers the same certificate.
    row = pg.query(settings.database_url, "SELECT held_by, private_key_enc FROM doctor_keys")[0]
    assert row["held_by"] == "desktop" and row["private_key_enc"] is None
    again = certify(api, doctor, key)
    assert again.status_code == 201 and again.json()["certificate"] == body["certificate"]
    # Someone else may not get the same key certified.
    bams = sign_in(api, sandbox_url, BAMS_MOBILE)
    r = certify(api, bams, key)
    assert r.status_code == 409 and r.json()["code"] == "signing.certification_refused"
    actions = [r["action"] for r in pg.query(settings.database_url, "SELECT action FROM audit_logs")]
    assert actions.count("signing.certificate_issued") == 1


@pytest.mark.parametrize(
    "public_key",
    ["", "not base64!", keys.b64url_encode(b"\x01" * 31), keys.b64url_encode(b"\x01" * 33), "A" * 100],
)
def test_malformed_public_keys_are_422(api: TestClient, doctor: SignedIn, public_key: str) -> None:
    r = api.post(CERTS, json={"public_key": public_key}, headers=doctor.headers)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert r.json()["code"] in ("signing.key_malformed", "validation.failed")


def test_only_doctors_get_certificates(api: TestClient, sandbox_url: str) -> None:
    key = keys.generate_private_key()
    for mobile in (NURSE_MOBILE, ADMIN_MOBILE):
        r = certify(api, sign_in(api, sandbox_url, mobile), key)
        assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    assert api.post(CERTS, json={"public_key": "x"}).status_code == 401


def test_server_held_key_is_sealed_under_the_kek(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    signed = sign(api, doctor, signed_draft(api, doctor)["id"]).json()
    row = pg.query(settings.database_url, "SELECT * FROM doctor_keys WHERE kid = $1", signed["kid"])[0]
    assert row["held_by"] == "server"
    sealed = row["private_key_enc"]
    assert len(sealed) == 1 + 12 + 32 + 16
    seed = sealing.unseal(settings.signing_kek_bytes(), row["kid"], sealed)
    assert keys.public_key_bytes(keys.private_key_from_bytes(seed)) == row["public_key"]
    assert seed not in sealed
    with pytest.raises(sealing.SealedKeyUnreadable):
        sealing.unseal(b"\x00" * 32, row["kid"], sealed)
    with pytest.raises(sealing.SealedKeyUnreadable):  # moved to another key's row
        sealing.unseal(settings.signing_kek_bytes(), "AAAAAAAAAAA", sealed)


def test_revoked_server_key_signs_no_more_and_the_signed_list_names_it(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    before = sign(api, doctor, signed_draft(api, doctor)["id"]).json()
    kid = before["kid"]
    r = api.post(REVOKE, json={"kid": kid, "reason": "Laptop stolen"}, headers=doctor.headers)
    assert r.status_code == 201, r.text
    again = api.post(REVOKE, json={"kid": kid, "reason": "again"}, headers=doctor.headers)
    assert again.status_code == 409 and again.json()["code"] == "signing.already_revoked"
    # The next sign makes a new key; the revoked one is never used again.
    after = sign(api, doctor, signed_draft(api, doctor)["id"]).json()
    assert after["kid"] != kid
    # The list is signed by the issuer and checks against the shipped roots alone.
    listed = api.get(REVOKE).json()  # public, like any CRL
    assert listed["count"] == 1
    checked = parse_revocation_list(base64.b64decode(listed["revocation_list"]), default_trust())
    assert checked.signer_kid == listed["issuer_kid"] and [e.kid for e in checked.entries] == [kid]
    assert checked.entries[0].reason == "Laptop stolen"
    raw = api.get(REVOKE, headers={**doctor.headers, "Accept": "application/cbor"})
    assert raw.headers["content-type"] == "application/cbor"
    assert parse_revocation_list(raw.content, default_trust()).entries == checked.entries
    # The new key's prescription verifies with the revocation list applied.
    v = api.post(VERIFY, json={"qr_payload": after["qr_payload"]}).json()
    assert v["valid"] and v["kid"] == after["kid"] and not v["notes"], v
    actions = [r["action"] for r in pg.query(settings.database_url, "SELECT action FROM audit_logs")]
    assert actions.count("signing.key_revoked") == 1


def test_signature_made_after_the_revocation_is_invalid(api: TestClient, doctor: SignedIn) -> None:
    key = keys.generate_private_key()
    cert = certify(api, doctor, key).json()
    before = pc_signed(cert, key, datetime.now(UTC) - timedelta(minutes=1))
    good = api.post(VERIFY, json={"qr_payload": before}).json()
    assert good["valid"] and good["reason"] == "valid" and good["sandbox"], good
    assert good["content"]["ayush"][0]["name"] == "Triphala Churna"
    assert api.post(REVOKE, json={"kid": cert["kid"], "reason": "Left the clinic"}, headers=doctor.headers).is_success
    after = pc_signed(cert, key, datetime.now(UTC) + timedelta(seconds=2))
    bad = api.post(VERIFY, json={"qr_payload": after}).json()
    assert not bad["valid"] and bad["reason"] == "revoked_key" and "Left the clinic" in bad["message"], bad
    # Signed before the revocation (whole seconds on the wire, so a minute earlier): valid, with a note.
    still = api.post(VERIFY, json={"qr_payload": before}).json()
    assert still["valid"] and any("revoked" in note for note in still["notes"]), still
    # A re-certification of the revoked key is refused.
    r = certify(api, doctor, key)
    assert r.status_code == 409 and r.json()["code"] == "signing.certification_refused"


def test_who_may_revoke(api: TestClient, doctor: SignedIn, sandbox_url: str, other_clinic_doctor: SignedIn) -> None:
    kid = sign(api, doctor, signed_draft(api, doctor)["id"]).json()["kid"]
    body = {"kid": kid, "reason": "Compromised"}
    bams = sign_in(api, sandbox_url, BAMS_MOBILE)
    assert api.post(REVOKE, json=body, headers=bams.headers).status_code == 403  # another doctor's key
    assert api.post(REVOKE, json=body, headers=sign_in(api, sandbox_url, NURSE_MOBILE).headers).status_code == 403
    assert api.post(REVOKE, json=body, headers=other_clinic_doctor.headers).status_code == 404
    r = api.post(REVOKE, json={"kid": "AAAAAAAAAAA", "reason": "x"}, headers=doctor.headers)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    admin = sign_in(api, sandbox_url, ADMIN_MOBILE)
    r = api.post(REVOKE, json=body, headers=admin.headers)
    assert r.status_code == 201 and r.json()["kid"] == kid


def test_verify_reports_bad_payloads_without_failing(api: TestClient, doctor: SignedIn) -> None:
    signed = sign(api, doctor, signed_draft(api, doctor)["id"]).json()
    payload = signed["qr_payload"]
    tampered = payload[:-6] + ("A" if payload[-6] != "A" else "B") + payload[-5:]
    for text, reasons in (
        ("hello", {"malformed"}),
        ("IMRX9:ABC", {"unsupported_version"}),
        ("IMRX1:%%%%", {"malformed"}),
        (tampered, {"malformed", "bad_signature"}),
    ):
        r = api.post(VERIFY, json={"qr_payload": text})
        assert r.status_code == 200, r.text
        assert not r.json()["valid"] and r.json()["reason"] in reasons, (text, r.json())
    for body in ({}, {"qr_payload": ""}, {"qr_payload": "x" * 9000}, {"qr_payload": 5}, {"other": 1}):
        r = api.post(VERIFY, json=body)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


def test_trust_answers_the_issuer_certificate(api: TestClient) -> None:
    body = api.get("/api/v1/signing/trust").json()
    [issuer] = body["issuers"]
    cert = parse_certificate(base64.b64decode(issuer["certificate"]))
    assert cert.kid == issuer["kid"] and cert.claims.role is Role.ISSUER
    root = default_trust().root(issuer["root_kid"])
    assert root is not None and root.sandbox


def test_verify_service_takes_the_cose_bytes_a_desktop_would_sync(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    from sync_server.services.signing import verify_signed_prescription
    from sync_server.signing.issuer import SigningContext

    signed = sign(api, doctor, signed_draft(api, doctor)["id"]).json()
    stored = pg.query(settings.database_url, "SELECT cose, qr_payload FROM prescriptions WHERE signer_kid IS NOT NULL")
    ctx = SigningContext.from_settings(settings)
    assert ctx is not None

    async def go() -> tuple[Any, Any, Any]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            as_bytes = await verify_signed_prescription(conn, ctx, stored[0]["cose"])
            as_text = await verify_signed_prescription(conn, ctx, stored[0]["qr_payload"])
            cose_bytes = stored[0]["cose"]
            damaged = await verify_signed_prescription(conn, ctx, cose_bytes[:-1] + bytes([cose_bytes[-1] ^ 0xFF]))
            return as_bytes, as_text, damaged
        finally:
            await conn.close()

    as_bytes, as_text, damaged = pg.run(go())
    assert as_bytes.valid and as_bytes == as_text and as_bytes.content_hash == signed["signature_hash"]
    assert not damaged.valid and damaged.reason in ("bad_signature", "malformed")


def test_issuer_rotation_and_an_issuing_certificate_about_to_end(
    api: TestClient, doctor: SignedIn, settings: Settings, tmp_path: Path
) -> None:
    from sync_server.app import create_app
    from sync_server.signing.issuer import SANDBOX_ROOT_KEY, create_issuer

    first = sign(api, doctor, signed_draft(api, doctor)["id"]).json()
    root = keys.private_key_from_pem(SANDBOX_ROOT_KEY.read_bytes())
    key_path, cert_path, _ = create_issuer(root, tmp_path / "rotated", days=365, subject="Rotated issuer")
    rotated = settings.model_copy(update={"signing_issuer_key": key_path, "signing_issuer_cert": cert_path})
    with TestClient(create_app(rotated)) as after:
        second = sign(after, doctor, signed_draft(after, doctor)["id"]).json()
        # The old key's certificate chains to the old issuer: a new key is certified under the new one.
        assert second["kid"] != first["kid"]
        for answer in (first, second):
            assert verify_qr_payload(answer["qr_payload"], default_trust()).valid
    key_path, cert_path, _ = create_issuer(root, tmp_path / "ending", days=3, subject="Ending issuer")
    ending = settings.model_copy(update={"signing_issuer_key": key_path, "signing_issuer_cert": cert_path})
    with TestClient(create_app(ending)) as late:
        r = sign(late, doctor, signed_draft(late, doctor)["id"])
        assert r.status_code == 503 and r.json()["code"] == "signing.unavailable" and "renew" in r.json()["detail"]
