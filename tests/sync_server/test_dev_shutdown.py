"""`integmed-server dev` (API + sandbox + embedded PostgreSQL): Ctrl-C with a PC's waiting pull open answers
the pull (200, empty page) and stops everything at once, not after the pull's 25 s wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from tests.helpers.servers import free_port

MOBILE = "+919810000001"  # a sandbox doctor of the demo clinic


def _read_until(proc: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"dev never printed {text!r}:\n" + "".join(seen[-40:]))


def _device_access(base: str, sandbox: str) -> str:
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
        txn = http.post("/api/v1/auth/doctor/init", json={"mobile": MOBILE, "purpose": "login"}).json()["txn_id"]
        otp = httpx.get(f"{sandbox}/sandbox/otp-outbox", params={"mobile": MOBILE}, trust_env=False).json()[0]["otp"]
        doctor = http.post("/api/v1/auth/doctor/verify", json={"txn_id": txn, "otp": otp}).json()["access_token"]
        enrolled = http.post(
            "/api/v1/devices", json={"name": "pc-shutdown"}, headers={"Authorization": f"Bearer {doctor}"}
        ).json()
        body = {"device_id": enrolled["device_id"], "device_token": enrolled["device_token"]}
        return str(http.post("/api/v1/auth/device/token", json=body).json()["access_token"])


def test_ctrl_c_answers_a_waiting_pull_and_stops_at_once(tmp_path: Path) -> None:
    port, sport = free_port(), free_port()
    argv = [sys.executable, "-m", "sync_server.cli", "--log-level", "debug", "dev", "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--sandbox-port", str(sport)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
    )
    seen: list[str] = []
    try:
        _read_until(proc, "ready: http://", seen)
        base = f"http://127.0.0.1:{port}"
        access = _device_access(base, f"http://127.0.0.1:{sport}")
        headers = {
            "Authorization": f"Bearer {access}",
            "X-IntegMed-Protocol": str(PROTOCOL_VERSION),
            "X-IntegMed-Schema": str(RECORD_SCHEMA_VERSION),
        }
        with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
            cursor = http.get("/api/v1/sync/pull", params={"limit": 5000}, headers=headers).json()["next_cursor"]
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(
                    http.get, "/api/v1/sync/pull", params={"cursor": cursor, "wait": 25}, headers=headers
                )
                _read_until(proc, "1 waiting pull(s)", seen)
                started = time.monotonic()
                proc.send_signal(signal.SIGINT)
                resp = waiting.result(timeout=60)
        proc.communicate(timeout=60)
        stopped_after_s = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert resp.status_code == 200, resp.text
    assert resp.json()["changes"] == [] and resp.json()["next_cursor"] == cursor
    assert proc.returncode == 0
    assert stopped_after_s < 20, stopped_after_s  # far below the pull's 25 s wait (PostgreSQL stop included)
