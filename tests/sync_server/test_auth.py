"""HPR sign-in: OTP via the sandbox registry, abuse limits, sessions, refresh rotation, logout."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from sync_server.app import create_app
from sync_server.settings import Settings
from tests.helpers import pg
from tests.helpers.servers import serve
from tests.sync_server.conftest import (
    ADMIN_MOBILE,
    BAMS_MOBILE,
    DEMO_CLINIC,
    MBBS_MOBILE,
    OTHER_CLINIC,
    UNENROLLED_MOBILE,
    UNKNOWN_MOBILE,
    last_otp,
    seed_demo,
    sign_in,
)


def init(client: TestClient | httpx.Client, mobile: str) -> httpx.Response:
    return client.post("/api/v1/auth/doctor/init", json={"mobile": mobile, "purpose": "login"})


def verify(client: TestClient | httpx.Client, txn_id: str, otp: str) -> httpx.Response:
    return client.post("/api/v1/auth/doctor/verify", json={"txn_id": txn_id, "otp": otp})


def wrong(otp: str) -> str:
    return f"{(int(otp) + 1) % 1_000_000:06d}"


def test_full_flow_over_real_http(settings: Settings, sandbox_url: str) -> None:
    """API and sandbox each on their own loopback port; the production HPR client in between."""
    seed_demo(settings)
    with serve(create_app(settings)) as base, httpx.Client(base_url=base, trust_env=False) as client:
        r = init(client, "98100 00001")
        assert r.status_code == 200
        assert r.json()["message"].endswith("+91******0001 by the Healthcare Professionals Registry")
        r = verify(client, r.json()["txn_id"], last_otp(sandbox_url, MBBS_MOBILE))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer"
        user = body["user"]
        assert user["hpr_id"] == "71-2665-5777-1001"
        assert user["name"] == "Dr. Ananya Sharma"
        assert user["qualification"] == "MBBS"
        assert user["registration_council"] == "Delhi Medical Council"
        assert user["registration_number"] == "DMC/R/10231"
        assert user["role"] == "doctor"
        assert user["clinic"] == {"id": DEMO_CLINIC, "name": "IntegMed Demo Clinic"}
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.status_code == 200 and me.json() == user


def test_bams_doctor_profile_carries_system_of_medicine(api: TestClient, sandbox_url: str) -> None:
    s = sign_in(api, sandbox_url, BAMS_MOBILE)
    assert (s.user["qualification"], s.user["system_of_medicine"], s.user["state"]) == (
        "BAMS",
        "ayurveda",
        "Maharashtra",
    )


def test_each_otp_is_fresh(api: TestClient, sandbox_url: str) -> None:
    txns = [init(api, MBBS_MOBILE).json()["txn_id"] for _ in range(3)]
    box = httpx.get(f"{sandbox_url}/sandbox/otp-outbox", params={"mobile": MBBS_MOBILE}, trust_env=False).json()
    assert len(set(txns)) == 3
    assert len({m["txn_id"] for m in box[:3]}) == 3  # newest first, one per request
    assert box[0]["sent_at"] >= box[1]["sent_at"] >= box[2]["sent_at"]


def test_five_wrong_otps_end_the_transaction(api: TestClient, sandbox_url: str) -> None:
    txn = init(api, MBBS_MOBILE).json()["txn_id"]
    otp = last_otp(sandbox_url, MBBS_MOBILE)
    lefts = []
    for _ in range(5):
        r = verify(api, txn, wrong(otp))
        assert r.headers["content-type"].startswith("application/problem+json")
        lefts.append(r.json().get("attempts_left", r.json()["code"]))
    assert lefts == [4, 3, 2, 1, "auth.txn_closed"]
    r = verify(api, txn, otp)
    assert r.status_code == 410 and r.json()["code"] == "auth.txn_closed"


def test_otp_cannot_be_used_twice(api: TestClient, sandbox_url: str) -> None:
    txn = init(api, MBBS_MOBILE).json()["txn_id"]
    otp = last_otp(sandbox_url, MBBS_MOBILE)
    assert verify(api, txn, otp).status_code == 200
    again = verify(api, txn, otp)
    assert again.status_code == 410 and again.json()["code"] == "auth.txn_closed"


def test_expired_otp_is_refused(settings: Settings, sandbox_url: str) -> None:
    seed_demo(settings)
    expired = settings.model_copy(update={"otp_ttl_s": 0})
    with TestClient(create_app(expired)) as client:
        txn = init(client, MBBS_MOBILE).json()["txn_id"]
        r = verify(client, txn, last_otp(sandbox_url, MBBS_MOBILE))
        assert r.status_code == 410 and r.json()["code"] == "auth.otp_expired"


def test_unknown_mobile_is_a_clear_4xx(api: TestClient) -> None:
    r = init(api, UNKNOWN_MOBILE)
    assert r.status_code == 404
    assert r.json()["code"] == "auth.mobile_not_registered"
    assert "9999" not in r.text  # the answer does not echo or hint at numbers


def test_invalid_mobile_is_a_422_naming_the_field(api: TestClient) -> None:
    r = init(api, "12345")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "mobile"


def test_registered_but_not_enrolled_professional_is_403(api: TestClient, sandbox_url: str) -> None:
    txn = init(api, UNENROLLED_MOBILE).json()["txn_id"]
    r = verify(api, txn, last_otp(sandbox_url, UNENROLLED_MOBILE))
    assert r.status_code == 403 and r.json()["code"] == "auth.not_enrolled"


def test_rate_limit_per_mobile_with_retry_after(settings: Settings) -> None:
    seed_demo(settings)
    with TestClient(create_app(settings.model_copy(update={"otp_init_per_mobile": 2}))) as client:
        assert [init(client, ADMIN_MOBILE).status_code for _ in range(2)] == [200, 200]
        r = init(client, ADMIN_MOBILE)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert r.json()["code"] == "rate_limited"
        assert init(client, MBBS_MOBILE).status_code == 200  # another mobile is not affected


def test_rate_limit_per_ip(settings: Settings) -> None:
    seed_demo(settings)
    with TestClient(create_app(settings.model_copy(update={"otp_init_per_ip": 3}))) as client:
        codes = [init(client, m).status_code for m in (MBBS_MOBILE, BAMS_MOBILE, ADMIN_MOBILE, MBBS_MOBILE)]
        assert codes == [200, 200, 200, 429]


def test_refresh_rotates_and_reuse_ends_the_session(api: TestClient, sandbox_url: str) -> None:
    s = sign_in(api, sandbox_url, MBBS_MOBILE)
    r = api.post("/api/v1/auth/refresh", json={"refresh_token": s.refresh})
    assert r.status_code == 200
    new = r.json()
    assert new["refresh_token"] != s.refresh
    assert api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200
    # Replaying the old refresh token looks like theft: the whole session ends.
    reuse = api.post("/api/v1/auth/refresh", json={"refresh_token": s.refresh})
    assert reuse.status_code == 401 and reuse.json()["code"] == "auth.refresh_invalid"
    assert api.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 401
    assert api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 401


def test_logout_revokes_refresh_and_access(api: TestClient, sandbox_url: str) -> None:
    s = sign_in(api, sandbox_url, MBBS_MOBILE)
    r = api.post("/api/v1/auth/logout", headers=s.headers, json={"refresh_token": s.refresh})
    assert r.status_code == 204
    assert api.post("/api/v1/auth/refresh", json={"refresh_token": s.refresh}).status_code == 401
    assert api.get("/api/v1/auth/me", headers=s.headers).status_code == 401


@pytest.mark.parametrize("header", ["", "Bearer ", "Bearer abc.def.ghi", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000])
def test_bad_tokens_are_401(api: TestClient, header: str) -> None:
    r = api.get("/api/v1/patients", headers={"Authorization": header} if header else {})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


def test_token_signed_with_another_secret_is_refused(api: TestClient, sandbox_url: str) -> None:
    import jwt

    s = sign_in(api, sandbox_url, MBBS_MOBILE)
    claims = jwt.decode(s.token, options={"verify_signature": False})
    forged = jwt.encode(claims | {"clinic": OTHER_CLINIC}, "another-secret" * 4, algorithm="HS256")
    assert api.get("/api/v1/patients", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_professional_in_two_clinics_must_choose(api: TestClient, sandbox_url: str, settings: Settings) -> None:
    pg.query(
        settings.database_url,
        """
        INSERT INTO users (id, clinic_id, hpr_id, name, role)
        VALUES ('019ab000-0000-7000-8000-0000000000f1', $1, '71266557771001', 'Dr. Ananya Sharma', 'doctor')
        """,
        __import__("uuid").UUID(OTHER_CLINIC),
    )
    txn = init(api, MBBS_MOBILE).json()["txn_id"]
    otp = last_otp(sandbox_url, MBBS_MOBILE)
    r = verify(api, txn, otp)
    assert r.status_code == 409 and r.json()["code"] == "auth.clinic_choice_required"
    assert {c["id"] for c in r.json()["clinics"]} == {DEMO_CLINIC, OTHER_CLINIC}
    txn = init(api, MBBS_MOBILE).json()["txn_id"]
    r = api.post(
        "/api/v1/auth/doctor/verify",
        json={"txn_id": txn, "otp": last_otp(sandbox_url, MBBS_MOBILE), "clinic_id": OTHER_CLINIC},
    )
    assert r.status_code == 200 and r.json()["user"]["clinic"]["id"] == OTHER_CLINIC


def test_sign_in_events_are_audited(api: TestClient, sandbox_url: str, settings: Settings) -> None:
    txn = init(api, MBBS_MOBILE).json()["txn_id"]
    otp = last_otp(sandbox_url, MBBS_MOBILE)
    verify(api, txn, wrong(otp))
    verify(api, txn, otp)
    actions = [r["action"] for r in pg.query(settings.database_url, "SELECT action FROM audit_logs ORDER BY id")]
    assert "auth.otp_failed" in actions and "auth.login" in actions
