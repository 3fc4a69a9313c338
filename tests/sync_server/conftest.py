"""Server fixtures: sandbox on its own port, settings, in-process client and live API, signed-in users."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sync_server.app import create_app
from sync_server.sandbox.app import create_sandbox_app
from sync_server.settings import Settings
from tests.helpers import pg
from tests.helpers.servers import serve, signing_settings

DEMO_CLINIC = "019ab000-0000-7000-8000-000000000001"
OTHER_CLINIC = "019ab000-0000-7000-8000-000000000002"
MBBS_MOBILE = "+919810000001"  # Dr. Ananya Sharma, doctor at the demo clinic
BAMS_MOBILE = "+919820000002"  # Vd. Raghav Kulkarni, doctor at the demo clinic
ADMIN_MOBILE = "+919840000003"  # Dr. Meera Iyer, clinic_admin at the demo clinic
OTHER_CLINIC_MOBILE = "+919825000004"  # Vd. Arjun Patel, doctor at the other clinic
UNENROLLED_MOBILE = "+919839000006"  # registered with HPR, in no clinic
UNKNOWN_MOBILE = "+919999999999"  # not registered with HPR


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    with serve(create_sandbox_app()) as url:
        yield url


@pytest.fixture
def settings(db_url: str, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        environment="test",
        database_url=db_url,
        jwt_secret="test-secret-" + "x" * 40,
        hpr_url=f"{sandbox_url}/v4/int",
        abdm_gateway_url=f"{sandbox_url}/api/hiecm",
        db_pool_max=5,
        **signing_settings(tmp_path_factory.getbasetemp()),
    )


def seed_demo(settings: Settings) -> None:
    import asyncpg

    from sync_server.hpr.client import HprClient
    from sync_server.services.clinics import seed_demo_in_own_transactions

    async def go() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            hpr = HprClient(
                http,
                hpr_url=settings.hpr_url,
                gateway_url=settings.abdm_gateway_url,
                client_id=settings.abdm_client_id,
                client_secret=settings.abdm_client_secret.get_secret_value(),
            )
            pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
            try:
                await seed_demo_in_own_transactions(pool, hpr)
            finally:
                await pool.close()

    pg.run(go())


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The API in-process (TestClient runs the lifespan), with the demo clinics seeded."""
    seed_demo(settings)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def last_otp(sandbox_url: str, mobile: str) -> str:
    box = httpx.get(f"{sandbox_url}/sandbox/otp-outbox", params={"mobile": mobile}, trust_env=False).json()
    return str(box[0]["otp"])


@dataclass
class SignedIn:
    token: str
    refresh: str
    user: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def sign_in(client: Any, sandbox_url: str, mobile: str) -> SignedIn:
    r = client.post("/api/v1/auth/doctor/init", json={"mobile": mobile, "purpose": "login"})
    assert r.status_code == 200, r.text
    r = client.post(
        "/api/v1/auth/doctor/verify",
        json={"txn_id": r.json()["txn_id"], "otp": last_otp(sandbox_url, mobile)},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return SignedIn(body["access_token"], body["refresh_token"], body["user"])


@pytest.fixture
def doctor(api: TestClient, sandbox_url: str) -> SignedIn:
    return sign_in(api, sandbox_url, MBBS_MOBILE)


@pytest.fixture
def other_clinic_doctor(api: TestClient, sandbox_url: str) -> SignedIn:
    return sign_in(api, sandbox_url, OTHER_CLINIC_MOBILE)
