"""`integmed-server dev`: one command brings it all up, prints ready, SIGTERM stops it all, data persists."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.servers import free_port


def _postgres_running(data_dir: Path) -> bool:
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) in cmd and "postgres" in cmd:
            return True
    return False


def _start(data_dir: Path, port: int, sport: int) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync_server.cli",
            "--log-level",
            "warning",
            "dev",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--sandbox-port",
            str(sport),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 90
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "ready" in line and "http://" in line:
            return proc, lines
    proc.kill()
    proc.communicate()
    raise AssertionError("dev never said ready:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    proc.communicate(timeout=30)  # drains and closes stdout


def test_dev_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port, sport = free_port(), free_port()
    proc, lines = _start(tmp_path, port, sport)
    out = "".join(lines)
    assert "+919810000001" in out and "MBBS" in out and "BAMS" in out  # the sandbox doctors' mobiles
    assert f"http://127.0.0.1:{sport}" in out
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/ready", trust_env=False).status_code == 200
    init = httpx.post(
        f"{base}/api/v1/auth/doctor/init",
        json={"mobile": "+919810000001", "purpose": "login"},
        trust_env=False,
    )
    otp = httpx.get(
        f"http://127.0.0.1:{sport}/sandbox/otp-outbox", params={"mobile": "+919810000001"}, trust_env=False
    ).json()[0]["otp"]
    token = httpx.post(
        f"{base}/api/v1/auth/doctor/verify",
        json={"txn_id": init.json()["txn_id"], "otp": otp},
        trust_env=False,
    ).json()["access_token"]
    created = httpx.post(
        f"{base}/api/v1/patients",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": "Persisted Patient", "gender": "F", "year_of_birth": 1990},
        trust_env=False,
    )
    assert created.status_code == 201
    _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0
    assert not _postgres_running(tmp_path)

    # Restart on the same data dir: the patient is still there.
    proc, _ = _start(tmp_path, port, sport)
    try:
        init = httpx.post(f"{base}/api/v1/auth/doctor/init", json={"mobile": "+919810000001"}, trust_env=False)
        otp = httpx.get(
            f"http://127.0.0.1:{sport}/sandbox/otp-outbox",
            params={"mobile": "+919810000001"},
            trust_env=False,
        ).json()[0]["otp"]
        token = httpx.post(
            f"{base}/api/v1/auth/doctor/verify",
            json={"txn_id": init.json()["txn_id"], "otp": otp},
            trust_env=False,
        ).json()["access_token"]
        found = httpx.get(
            f"{base}/api/v1/patients",
            params={"q": "persisted"},
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
        ).json()
        assert [p["id"] for p in found["items"]] == [created.json()["id"]]
    finally:
        _stop(proc, signal.SIGINT)
    assert proc.returncode == 0
    assert not _postgres_running(tmp_path)


def test_the_demo_doctors_can_sign_in_as_soon_as_ready_answers(tmp_path: Path) -> None:
    """Whoever waits for /ready rather than for the printed line (a script, a health check) must find the demo
    clinic seeded: the API only listens once its sandbox doctors are enrolled."""
    port, sport = free_port(), free_port()
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync_server.cli", "--log-level", "warning", "dev", "--data-dir", str(tmp_path / "d"),
         "--port", str(port), "--sandbox-port", str(sport)],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()
            try:
                if httpx.get(f"{base}/ready", trust_env=False, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "dev never answered /ready"
            time.sleep(0.02)
        init = httpx.post(f"{base}/api/v1/auth/doctor/init", json={"mobile": "+919810000001"}, trust_env=False)
        assert init.status_code == 200, init.text
        otp = httpx.get(
            f"http://127.0.0.1:{sport}/sandbox/otp-outbox", params={"mobile": "+919810000001"}, trust_env=False
        ).json()[0]["otp"]
        verified = httpx.post(
            f"{base}/api/v1/auth/doctor/verify", json={"txn_id": init.json()["txn_id"], "otp": otp}, trust_env=False
        )
        assert verified.status_code == 200, verified.text  # was 403 auth.not_enrolled while seeding ran
        assert verified.json()["user"]["clinic"] is not None
    finally:
        _stop(proc, signal.SIGTERM)
        log.close()
    assert proc.returncode == 0
