"""Benchmark: signing prescriptions on the server over real HTTP (QR size, sign and re-sign latency).

    PYTHONPATH=. .venv/bin/python bench/signing_server.py [--signs 40]

Starts an embedded PostgreSQL in a temporary folder, migrates it, serves the national-services sandbox and
the real API (uvicorn, loopback, in this process) with an issuing key under the SANDBOX root exactly as
`integmed-server dev` makes one, signs in as the sandbox MBBS doctor and measures:

* the QR text length and QR version (level M) of a 1-line and a 5-line prescription;
* ``POST /api/v1/prescriptions/{id}/sign`` latency with the doctor's key already created (content encoding,
  Ed25519, zlib + base45, QR PNG rendering, one transaction with an audit entry);
* the idempotent re-sign of an already signed prescription (read + QR PNG rendering).

The client runs in this process and shares the GIL with the server, so figures are a conservative floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn

from shared.signing.rx import qr_version
from sync_server.app import create_app
from sync_server.db import embedded, migrate
from sync_server.hpr.client import HprClient
from sync_server.sandbox.app import create_sandbox_app
from sync_server.services.clinics import seed_demo_in_own_transactions
from sync_server.settings import Settings
from sync_server.signing.issuer import ensure_dev_signing

MOBILE = "+919810000001"  # Dr. Ananya Sharma, MBBS, sandbox doctor of the demo clinic
LINES = [("METFORMIN", "1000mg"), ("GLIMEPIRIDE", "2mg"), ("ATORVASTATIN", "10mg"), ("TELMISARTAN", "40mg")]
LINES.append(("AMLODIPINE", "5mg"))


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[str]:
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def _seed(settings: Settings) -> None:
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


async def _create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _sign_in(client: httpx.Client, sandbox: str) -> dict[str, str]:
    txn = client.post("/api/v1/auth/doctor/init", json={"mobile": MOBILE, "purpose": "login"}).json()["txn_id"]
    otp = httpx.get(f"{sandbox}/sandbox/otp-outbox", params={"mobile": MOBILE}, trust_env=False).json()[0]["otp"]
    token = client.post("/api/v1/auth/doctor/verify", json={"txn_id": txn, "otp": str(otp)}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _draft(client: httpx.Client, auth: dict[str, str], encounter_id: str, lines: int) -> str:
    meds = [
        {
            "generic_name": name,
            "strength": strength,
            "dosage_form": "tablet",
            "route": "oral",
            "frequency": "Twice daily",
            "duration_days": 30,
            "quantity": 60,
            "instructions": "Take after meals",
        }
        for name, strength in LINES[:lines]
    ]
    r = client.post(
        "/api/v1/prescriptions/draft", json={"encounter_id": encounter_id, "medications": meds}, headers=auth
    )
    r.raise_for_status()
    return str(r.json()["id"])


def _encounter(client: httpx.Client, auth: dict[str, str]) -> str:
    patient = {"name": "Bench Patient", "gender": "F", "year_of_birth": 1980}
    pid = client.post("/api/v1/patients", json=patient, headers=auth).json()["id"]
    body = {"patient_id": pid, "encounter_type": "opd", "start_time": "2026-02-09T10:30:00Z", "chief_complaint": "x"}
    return str(client.post("/api/v1/encounters", json=body, headers=auth).json()["id"])


def _ms(values: list[float]) -> str:
    values = sorted(values)
    return f"median {statistics.median(values) * 1000:.1f} ms, p90 {values[int(len(values) * 0.9)] * 1000:.1f} ms"


def run(signs: int, folder: Path) -> None:
    cluster = embedded.start(folder / "pg")
    try:
        asyncio.run(_create_database(cluster.dsn, "bench"))
        dsn = cluster.dsn_for("bench")
        migrate.upgrade(dsn)
        key, cert, kek = ensure_dev_signing(folder)
        with _serve(create_sandbox_app()) as sandbox:
            settings = Settings(
                environment="test",
                database_url=dsn,
                jwt_secret=secrets.token_urlsafe(48),
                hpr_url=f"{sandbox}/v4/int",
                abdm_gateway_url=f"{sandbox}/api/hiecm",
                signing_issuer_key=key,
                signing_issuer_cert=cert,
                signing_kek=kek,
            )
            asyncio.run(_seed(settings))
            with _serve(create_app(settings)) as base, httpx.Client(base_url=base, trust_env=False, timeout=30) as c:
                auth = _sign_in(c, sandbox)
                enc = _encounter(c, auth)
                print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
                for lines in (1, 5):
                    answer = c.post(f"/api/v1/prescriptions/{_draft(c, auth, enc, lines)}/sign", headers=auth).json()
                    text = answer["qr_payload"]
                    print(f"{lines} line(s): QR text {len(text)} chars, version {qr_version(text)}-M")
                first, again = [], []
                for _ in range(signs):
                    rx = _draft(c, auth, enc, 1)
                    t = time.perf_counter()
                    c.post(f"/api/v1/prescriptions/{rx}/sign", headers=auth).raise_for_status()
                    first.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    c.post(f"/api/v1/prescriptions/{rx}/sign", headers=auth).raise_for_status()
                    again.append(time.perf_counter() - t)
                print(f"sign, 1 line, key exists: {_ms(first)} over {signs}")
                print(f"re-sign (idempotent answer): {_ms(again)} over {signs}")
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signing-bench-") as folder:
        run(args.signs, Path(folder))


if __name__ == "__main__":
    main()
