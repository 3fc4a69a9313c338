"""Signing a prescription on the server: the outside contract over real HTTP, idempotence, immutability."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from shared.fhir.validation import validate_bundle
from shared.signing import cose, keys
from shared.signing.rx import verify_qr_payload
from shared.signing.trust import default_trust
from sync_server.app import create_app
from sync_server.settings import Settings
from tests.helpers import pg
from tests.helpers.servers import serve
from tests.sync_server.conftest import BAMS_MOBILE, MBBS_MOBILE, SignedIn, sign_in
from tests.sync_server.test_prescription_drafts import METFORMIN_LINE, NURSE_MOBILE, draft, encounter

PROBLEM = "application/problem+json"
REPO = Path(__file__).resolve().parents[2]


def decode_qr_png(qr_code: str) -> str:
    """The text in the answer's QR PNG, read by a real decoder (zxing-cpp)."""
    data = base64.b64decode(qr_code.removeprefix("data:image/png;base64,"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(found[0].text)


def signed_draft(client: Any, who: SignedIn) -> dict[str, Any]:
    rx = draft(client, who, encounter(client, who))
    assert rx.status_code == 201, rx.text
    return dict(rx.json())


def test_contract_over_real_http_then_offline_verification(
    settings: Settings, sandbox_url: str, tmp_path: Path
) -> None:
    from tests.sync_server.conftest import seed_demo

    seed_demo(settings)
    with serve(create_app(settings)) as base, httpx.Client(base_url=base, trust_env=False) as client:
        doctor = sign_in(client, sandbox_url, MBBS_MOBILE)
        rx = signed_draft(client, doctor)
        r = client.post(f"/api/v1/prescriptions/{rx['id']}/sign", headers=doctor.headers)
        assert r.status_code in (200, 201), r.text
        body = r.json()
    assert {"qr_code", "signature_hash", "qr_payload"} <= body.keys()
    # The QR decodes byte-exact to the payload, and the payload verifies offline against the shipped roots.
    assert decode_qr_png(body["qr_code"]) == body["qr_payload"]
    result = verify_qr_payload(body["qr_payload"], default_trust())
    assert result.valid, result.message
    assert result.sandbox and result.content_hash == body["signature_hash"]
    assert result.content is not None and str(result.content.rx_id) == rx["id"]
    assert [m.generic_name for m in result.content.medicines] == ["METFORMIN"]
    assert result.doctor is not None and result.doctor.hpr_id == doctor.user["hpr_id"].replace("-", "")
    signed = body["prescription"]
    assert signed["status"] == "signed" and signed["content_hash"] == body["signature_hash"]
    assert signed["medications"] == [METFORMIN_LINE]
    # What the outside check does: the PNG in a file, `integmed rx verify FILE`, no data dir, no network.
    png = tmp_path / "rx.png"
    png.write_bytes(base64.b64decode(body["qr_code"].removeprefix("data:image/png;base64,")))
    home = tmp_path / "home"
    home.mkdir()
    run = subprocess.run(
        [str(Path(sys.executable).parent / "integmed"), "rx", "verify", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"},
        cwd=tmp_path,
    )
    assert run.returncode == 0 and "VALID" in run.stdout, run.stdout + run.stderr
    assert "INVALID" not in run.stdout and list(home.iterdir()) == []  # nothing written: no data dir made


def sign(api: Any, who: SignedIn, rx_id: str) -> Any:
    return api.post(f"/api/v1/prescriptions/{rx_id}/sign", headers=who.headers)


def test_signing_again_answers_the_stored_signature(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    rx = signed_draft(api, doctor)
    first = sign(api, doctor, rx["id"])
    assert first.status_code == 201, first.text
    again = sign(api, doctor, rx["id"])
    assert again.status_code == 200, again.text
    a, b = first.json(), again.json()
    assert not a["already_signed"] and b["already_signed"]
    for key in ("qr_payload", "signature_hash", "kid", "signed_at", "qr_code"):
        assert a[key] == b[key], key
    dsn = settings.database_url
    assert pg.scalar(dsn, "SELECT count(*) FROM doctor_keys") == 1
    actions = [r["action"] for r in pg.query(dsn, "SELECT action FROM audit_logs ORDER BY chain, seq")]
    assert actions.count("prescription.sign") == 1 and actions.count("signing.certificate_issued") == 1
    # A second prescription is signed with the same server-held key.
    other = sign(api, doctor, signed_draft(api, doctor)["id"]).json()
    assert other["kid"] == a["kid"] and other["qr_payload"] != a["qr_payload"]


def test_signed_prescription_is_frozen_in_the_api_and_in_the_database(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    rx = signed_draft(api, doctor)
    assert sign(api, doctor, rx["id"]).status_code == 201
    # Saving the draft again under its id (the only write path for drafts) is refused with a clear problem.
    again = draft(api, doctor, rx["encounter_id"], id=rx["id"])
    assert again.status_code == 409 and again.headers["content-type"].startswith(PROBLEM)
    assert again.json()["code"] == "rx.signed_immutable"
    # An unsigned draft's taken id stays the generic conflict.
    unsigned = signed_draft(api, doctor)
    assert draft(api, doctor, rx["encounter_id"], id=unsigned["id"]).json()["code"] == "conflict"

    async def tamper() -> list[str]:
        conn = await asyncpg.connect(settings.database_url)
        refused = []
        try:
            for sql in (
                "UPDATE prescriptions SET medications = '[]'::jsonb WHERE id = $1",
                "UPDATE prescriptions SET status = 'draft', signed_at = NULL WHERE id = $1",
                "DELETE FROM prescriptions WHERE id = $1",
            ):
                with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="signed and immutable"):
                    await conn.execute(sql, uuid.UUID(rx["id"]))
                refused.append(sql)
        finally:
            await conn.close()
        return refused

    assert len(pg.run(tamper())) == 3
    got = api.get(f"/api/v1/prescriptions/{rx['id']}", headers=doctor.headers).json()
    assert got["status"] == "signed" and got["medications"] == [METFORMIN_LINE]


def test_a_prescription_signed_through_the_api_reaches_the_clinics_pcs(api: TestClient, doctor: SignedIn) -> None:
    from tests.sync_server.test_sync_api import Device

    rx = signed_draft(api, doctor)
    before = [c for c in Device(api, doctor, "PC A").pull_all()[0] if c["kind"] == "signed_prescription"]
    answer = sign(api, doctor, rx["id"]).json()
    pulled = [c for c in Device(api, doctor, "PC B").pull_all()[0] if c["kind"] == "signed_prescription"]
    assert before == [] and [c["id"] for c in pulled] == [rx["id"]]
    assert pulled[0]["fields"]["qr_payload"] == answer["qr_payload"]


def test_status_events_are_signed_and_monotonic(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    rx = signed_draft(api, doctor)
    url = f"/api/v1/prescriptions/{rx['id']}/status"
    r = api.post(url, json={"status": "dispensed", "reason": "before signing"}, headers=doctor.headers)
    assert r.status_code == 409 and r.json()["code"] == "rx.status_refused"
    signed = sign(api, doctor, rx["id"]).json()
    r = api.post(url, json={"status": "dispensed", "reason": "Dispensed at the clinic"}, headers=doctor.headers)
    assert r.status_code == 201, r.text
    r = api.post(url, json={"status": "dispensed", "reason": "twice"}, headers=doctor.headers)
    assert r.status_code == 409 and r.json()["code"] == "rx.status_refused"
    r = api.post(url, json={"status": "cancelled", "reason": "Wrong patient"}, headers=doctor.headers)
    assert r.status_code == 201, r.text
    for status in ("dispensed", "cancelled", "superseded"):
        r = api.post(url, json={"status": status, "reason": "after the end"}, headers=doctor.headers)
        assert r.status_code == 409 and r.json()["current"] == "cancelled", r.text
    events = api.get(url, headers=doctor.headers).json()
    assert [(e["seq"], e["status"]) for e in events] == [(1, "dispensed"), (2, "cancelled")]
    full = api.get(f"/api/v1/prescriptions/{rx['id']}/signed", headers=doctor.headers).json()
    assert full["status_events"] == events and full["qr_payload"] == signed["qr_payload"]
    # Each event is a COSE_Sign1 by the doctor's key, naming the signed content by its hash.
    public = pg.scalar(settings.database_url, "SELECT public_key FROM doctor_keys WHERE kid = $1", signed["kid"])
    for event in events:
        message = cose.decode_sign1(base64.b64decode(event["cose"]))
        cose.verify_sign1(message, keys.public_key_from_bytes(public))
        body = cose.loads_exact(message.payload)
        assert isinstance(body, dict)
        assert body[2].hex() == signed["signature_hash"] and body[3] == event["seq"] and body[4] == event["status"]

    async def rewrite() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute("UPDATE prescription_status_events SET reason = 'x'")
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="already cancelled"):
                await conn.execute(
                    "INSERT INTO prescription_status_events (id, prescription_id, clinic_id, seq, status, reason, at,"
                    " actor_id, signer_kid, cose) SELECT gen_random_uuid(), prescription_id, clinic_id, 9,"
                    " 'dispensed', 'sneaked', now(), actor_id, signer_kid, cose FROM prescription_status_events"
                    " LIMIT 1"
                )
        finally:
            await conn.close()

    pg.run(rewrite())
    actions = [r["action"] for r in pg.query(settings.database_url, "SELECT action FROM audit_logs ORDER BY seq")]
    assert "prescription.dispensed" in actions and "prescription.cancelled" in actions


def test_verify_tells_a_pharmacy_what_the_server_knows_dispensed_then_cancelled(
    api: TestClient, doctor: SignedIn
) -> None:
    """The QR alone verifies for ever; the server's verification folds in its status events."""
    rx = signed_draft(api, doctor)
    signed = sign(api, doctor, rx["id"]).json()
    verify = "/api/v1/prescriptions/verify"
    fresh = api.post(verify, json={"qr_payload": signed["qr_payload"]}, headers=doctor.headers).json()
    assert (fresh["valid"], fresh["reason"], fresh["standing"]) == (True, "valid", None)
    url = f"/api/v1/prescriptions/{rx['id']}/status"
    r = api.post(url, json={"status": "dispensed", "reason": "Counter 2"}, headers=doctor.headers)
    assert r.status_code == 201, r.text
    dispensed = api.post(verify, json={"qr_payload": signed["qr_payload"]}, headers=doctor.headers).json()
    assert dispensed["valid"] and dispensed["standing"]["status"] == "dispensed"
    assert dispensed["standing"]["known_from"] == "the IntegMed server" and dispensed["standing"]["seq"] == 1
    assert any(n.startswith("already dispensed on") and "(Counter 2)" in n for n in dispensed["notes"])
    r = api.post(url, json={"status": "cancelled", "reason": "Allergy found"}, headers=doctor.headers)
    assert r.status_code == 201, r.text
    cancelled = api.post(verify, json={"qr_payload": signed["qr_payload"]}, headers=doctor.headers).json()
    assert (cancelled["valid"], cancelled["reason"]) == (False, "cancelled")
    assert "(Allergy found); do not dispense" in cancelled["message"]
    assert cancelled["standing"]["status"] == "cancelled" and cancelled["standing"]["seq"] == 2
    assert cancelled["content"]["rx_id"] == rx["id"]  # what was cancelled is still shown


def test_only_the_prescriber_cancels_and_only_doctors_record_status(
    api: TestClient, doctor: SignedIn, sandbox_url: str
) -> None:
    rx = signed_draft(api, doctor)
    sign(api, doctor, rx["id"])
    url = f"/api/v1/prescriptions/{rx['id']}/status"
    bams = sign_in(api, sandbox_url, BAMS_MOBILE)  # another doctor of the same clinic
    r = api.post(url, json={"status": "cancelled", "reason": "not mine"}, headers=bams.headers)
    assert r.status_code == 403
    r = api.post(url, json={"status": "dispensed", "reason": "Dispensed at the clinic"}, headers=bams.headers)
    assert r.status_code == 201, r.text
    nurse = sign_in(api, sandbox_url, NURSE_MOBILE)
    r = api.post(url, json={"status": "superseded", "reason": "x"}, headers=nurse.headers)
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    assert len(api.get(url, headers=nurse.headers).json()) == 1  # staff may read the events


def test_five_lines_fit_and_an_oversized_prescription_is_refused_unsigned(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    lines = [
        {**METFORMIN_LINE, "generic_name": name, "strength": strength}
        for name, strength in (
            ("METFORMIN", "1000mg"),
            ("GLIMEPIRIDE", "2mg"),
            ("ATORVASTATIN", "10mg"),
            ("TELMISARTAN", "40mg"),
            ("AMLODIPINE", "5mg"),
        )
    ]
    enc = encounter(api, doctor)
    five = api.post(
        "/api/v1/prescriptions/draft", json={"encounter_id": enc, "medications": lines}, headers=doctor.headers
    )
    assert five.status_code == 201, five.text
    r = sign(api, doctor, five.json()["id"])
    assert r.status_code == 201, r.text
    assert decode_qr_png(r.json()["qr_code"]) == r.json()["qr_payload"]
    long = "Take with a full glass of water after food; stop and call the clinic if you feel dizzy or breathless. "
    many = [{**line, "instructions": long * 4} for line in lines * 3]
    big = api.post(
        "/api/v1/prescriptions/draft", json={"encounter_id": enc, "medications": many}, headers=doctor.headers
    )
    assert big.status_code == 201, big.text
    r = sign(api, doctor, big.json()["id"])
    assert r.status_code == 422 and r.json()["code"] == "rx.qr_too_large", r.text
    assert r.json()["chars"] > r.json()["limit"]
    status = pg.scalar(
        settings.database_url, "SELECT status FROM prescriptions WHERE id = $1", uuid.UUID(big.json()["id"])
    )
    assert status == "draft"


def test_concurrent_first_signs_sign_once_with_one_key(settings: Settings, sandbox_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.sync_server.conftest import seed_demo

    seed_demo(settings)
    with serve(create_app(settings)) as base, httpx.Client(base_url=base, trust_env=False) as client:
        doctor = sign_in(client, sandbox_url, MBBS_MOBILE)
        ids = [signed_draft(client, doctor)["id"] for _ in range(2)]

        def post(rx_id: str) -> tuple[int, str]:
            with httpx.Client(base_url=base, trust_env=False, timeout=30) as own:
                r = sign(own, doctor, rx_id)
                return r.status_code, r.json()["qr_payload"]

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, [ids[0], ids[0], ids[1], ids[1]]))
    for rx_id in ids:
        mine = [a for a, i in zip(answers, [ids[0], ids[0], ids[1], ids[1]], strict=True) if i == rx_id]
        assert sorted(code for code, _ in mine) == [200, 201] and mine[0][1] == mine[1][1], answers
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM doctor_keys") == 1
    assert pg.scalar(settings.database_url, "SELECT count(DISTINCT signer_kid) FROM prescriptions") == 1


def test_signing_stores_the_abdm_prescription_record_bundle(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    enc = encounter(api, doctor)
    note = {"assessment": {"primary_diagnosis": {"condition": "Type 2 diabetes mellitus", "code": "E11"}}}
    assert api.patch(f"/api/v1/encounters/{enc}", json={"soap_note": note}, headers=doctor.headers).status_code == 200
    ayush = [{"name": "Triphala Churna", "dose": "5g", "frequency": "At bedtime", "duration_days": 30}]
    rx = draft(api, doctor, enc, ayush_medications=ayush).json()
    signed = sign(api, doctor, rx["id"])
    assert signed.status_code == 201, signed.text
    rows = pg.query(
        settings.database_url,
        "SELECT resource_type, bundle FROM fhir_resources WHERE bundle @> $1::jsonb",
        '{"type": "document"}',
    )
    bundles = [r["bundle"] for r in rows if str(rx["id"]) in str(r["bundle"])]
    assert len(bundles) == 1 and rows[0]["resource_type"] == "PrescriptionRecord"
    bundle = bundles[0] if isinstance(bundles[0], dict) else json.loads(bundles[0])
    validate_bundle(bundle)  # R4B models + ABDM rules, as stored
    resources = [e["resource"] for e in bundle["entry"]]
    composition = next(r for r in resources if r["resourceType"] == "Composition")
    assert composition["type"]["coding"][0]["code"] == "440545006"
    requests = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    assert len(requests) == 2  # metformin + the AYUSH item
    practitioner = next(r for r in resources if r["resourceType"] == "Practitioner")
    hpr = [i["value"] for i in practitioner["identifier"] if i.get("system") == "https://doctor.ndhm.gov.in"]
    assert hpr == [doctor.user["hpr_id"].replace("-", "")]  # the HPR id as stored (digits)
    condition = next(r for r in resources if r["resourceType"] == "Condition")
    assert "E11" in str(condition["code"])
    digest = bytes.fromhex(signed.json()["signature_hash"])
    assert base64.b64decode(bundle["signature"]["data"]) == digest and bundle["signature"]["who"]["identifier"]["value"]
