"""Who may sign, clinic scoping, malformed input, a server without keys, settings, FHIR bundle storage."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy.exc
from fastapi.testclient import TestClient
from pydantic import ValidationError

from shared.signing import keys
from sync_server.app import create_app
from sync_server.db import signing as signing_db
from sync_server.settings import Settings
from tests.helpers import pg
from tests.sync_server.conftest import ADMIN_MOBILE, BAMS_MOBILE, SignedIn, seed_demo, sign_in
from tests.sync_server.test_prescription_drafts import NURSE_MOBILE
from tests.sync_server.test_signing import PROBLEM, sign, signed_draft


def test_only_the_prescribing_doctor_signs(api: TestClient, doctor: SignedIn, sandbox_url: str) -> None:
    rx = signed_draft(api, doctor)
    for mobile in (NURSE_MOBILE, ADMIN_MOBILE):
        r = sign(api, sign_in(api, sandbox_url, mobile), rx["id"])
        assert r.status_code == 403 and r.json()["code"] == "auth.forbidden", r.text
    r = sign(api, sign_in(api, sandbox_url, BAMS_MOBILE), rx["id"])
    assert r.status_code == 403 and "prescribing doctor" in r.json()["detail"]
    assert api.post(f"/api/v1/prescriptions/{rx['id']}/sign").status_code == 401
    assert api.get(f"/api/v1/prescriptions/{rx['id']}", headers=doctor.headers).json()["status"] == "draft"


def test_another_clinics_prescription_is_404(
    api: TestClient, doctor: SignedIn, other_clinic_doctor: SignedIn, settings: Settings
) -> None:
    rx = signed_draft(api, doctor)
    assert sign(api, other_clinic_doctor, rx["id"]).status_code == 404
    sign(api, doctor, rx["id"])
    base = f"/api/v1/prescriptions/{rx['id']}"
    for r in (
        sign(api, other_clinic_doctor, rx["id"]),
        api.post(f"{base}/status", json={"status": "dispensed", "reason": "x"}, headers=other_clinic_doctor.headers),
        api.get(f"{base}/status", headers=other_clinic_doctor.headers),
        api.get(f"{base}/signed", headers=other_clinic_doctor.headers),
    ):
        assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM), r.text
    assert pg.scalar(settings.database_url, "SELECT count(*) FROM prescription_status_events") == 0
    assert sign(api, doctor, str(uuid.uuid4())).status_code == 404


def test_malformed_ids_and_bodies_are_4xx_problems(api: TestClient, doctor: SignedIn) -> None:
    rx = signed_draft(api, doctor)
    sign(api, doctor, rx["id"])
    status_url = f"/api/v1/prescriptions/{rx['id']}/status"
    for r in (
        api.post("/api/v1/prescriptions/not-a-uuid/sign", headers=doctor.headers),
        api.post(
            "/api/v1/prescriptions/1234/status", json={"status": "dispensed", "reason": "x"}, headers=doctor.headers
        ),
        api.get("/api/v1/prescriptions/%00/signed", headers=doctor.headers),
        api.post(status_url, json={"status": "lost", "reason": "x"}, headers=doctor.headers),
        api.post(status_url, json={"status": "dispensed"}, headers=doctor.headers),
        api.post(status_url, json={"status": "dispensed", "reason": ""}, headers=doctor.headers),
        api.post(status_url, json={"status": "dispensed", "reason": "  \t  "}, headers=doctor.headers),
        api.post(status_url, json={"status": "dispensed", "reason": "x" * 501}, headers=doctor.headers),
        api.post(status_url, json={"status": "dispensed", "reason": "x", "extra": 1}, headers=doctor.headers),
        api.post(status_url, json=["dispensed"], headers=doctor.headers),
        api.post("/api/v1/signing/revocations", json={"kid": "", "reason": "x"}, headers=doctor.headers),
        api.post("/api/v1/signing/revocations", json={"kid": "x"}, headers=doctor.headers),
        api.post("/api/v1/signing/doctor-certificates", json={}, headers=doctor.headers),
    ):
        assert r.status_code == 422, (r.request.url, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
    r = api.post(status_url, content=b"{not json", headers={**doctor.headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "body.malformed_json"
    assert api.get(status_url, headers=doctor.headers).json() == []


def test_a_server_without_signing_keys_answers_503(settings: Settings, sandbox_url: str) -> None:
    bare = settings.model_copy(update={"signing_issuer_key": None, "signing_issuer_cert": None, "signing_kek": None})
    seed_demo(bare)
    with TestClient(create_app(bare)) as api:
        doctor = sign_in(api, sandbox_url, "+919810000001")
        rx = signed_draft(api, doctor)
        r = sign(api, doctor, rx["id"])
        assert r.status_code == 503 and r.json()["code"] == "signing.unavailable"
        assert api.get("/api/v1/signing/trust").status_code == 503
        assert api.get(f"/api/v1/prescriptions/{rx['id']}", headers=doctor.headers).json()["status"] == "draft"


def test_settings_refuse_bad_signing_configuration(settings: Settings, tmp_path: Path) -> None:
    base = settings.model_dump()
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(**{**base, "signing_kek": keys.b64url_encode(b"short")})
    with pytest.raises(ValidationError, match="base64url"):
        Settings(**{**base, "signing_kek": "***"})
    with pytest.raises(ValidationError, match="no readable file"):
        Settings(**{**base, "signing_issuer_key": tmp_path / "missing.pem"})
    production = {**base, "environment": "production", "jwt_secret": "p" * 40}
    with pytest.raises(ValidationError, match="must be set in production"):
        Settings(**{**production, "signing_kek": None})
    assert Settings(**production).signing_configured


def test_store_fhir_bundle_keeps_the_first_bundle_and_is_searchable(api: TestClient, settings: Settings) -> None:
    clinic = uuid.UUID("019ab000-0000-7000-8000-000000000001")
    bundle = {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [{"resource": {"resourceType": "Composition", "title": "Prescription record"}}],
    }

    async def go() -> tuple[uuid.UUID, uuid.UUID, int, dict[str, object] | None]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            first = await signing_db.store_fhir_bundle(
                conn,
                resource_id=uuid.uuid4(),
                clinic_id=clinic,
                resource_type="PrescriptionRecord",
                source_id="rx-1",
                bundle=bundle,
            )
            second = await signing_db.store_fhir_bundle(
                conn,
                resource_id=uuid.uuid4(),
                clinic_id=clinic,
                resource_type="PrescriptionRecord",
                source_id="rx-1",
                bundle={"resourceType": "Bundle", "type": "changed"},
            )
            found = await conn.fetchval(
                "SELECT count(*) FROM fhir_resources WHERE bundle @> $1::jsonb",
                '{"entry": [{"resource": {"resourceType": "Composition"}}]}',
            )
            stored = await signing_db.fhir_bundle(conn, clinic, "PrescriptionRecord", "rx-1")
            return first, second, found, stored
        finally:
            await conn.close()

    first, second, found, stored = pg.run(go())
    assert first == second and found == 1 and stored == bundle


def test_migration_0006_downgrades_but_never_over_signed_prescriptions(
    api: TestClient, doctor: SignedIn, settings: Settings
) -> None:
    from sync_server.db import migrate

    dsn = settings.database_url
    rx = signed_draft(api, doctor)
    signed = signed_draft(api, doctor)
    assert sign(api, doctor, signed["id"]).status_code == 201
    api.close()  # release the app's pool before DDL
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="signed prescriptions exist"):
        migrate.downgrade(dsn, "2026_11_25_0005")
    assert pg.scalar(dsn, "SELECT to_regclass('public.doctor_keys')") == "doctor_keys"
    # Without signed documents the downgrade runs (drafts stay), and upgrading again restores the schema.
    pg.run(_drop_signed(dsn))
    migrate.downgrade(dsn, "2026_11_25_0005")
    assert pg.scalar(dsn, "SELECT to_regclass('public.fhir_resources')") is None
    assert pg.scalar(dsn, "SELECT count(*) FROM prescriptions WHERE id = $1", uuid.UUID(rx["id"])) == 1
    migrate.upgrade(dsn)
    assert pg.scalar(dsn, "SELECT status FROM prescriptions WHERE id = $1", uuid.UUID(rx["id"])) == "draft"


async def _drop_signed(dsn: str) -> None:
    """Test-only clean-up of signed rows, with the immutability triggers switched off for the session."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")  # skips triggers (superuser only)
        await conn.execute("DELETE FROM prescriptions WHERE status = 'signed'")
    finally:
        await conn.close()
