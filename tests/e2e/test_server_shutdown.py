"""Stopping the server (Ctrl-C / SIGTERM) while PCs hold waiting pulls open: every pull gets a clean answer and
the server stops at once instead of after the pulls' wait (real ``integmed-server serve`` in a subprocess)."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pytestqt.qtbot import QtBot

from desktop.config import DATABASE_FILE
from desktop.services.sync_status import SyncStatusService
from desktop.ui.bridges.sync_worker import SyncTimings, SyncWorker
from desktop.ui.runner import Runner
from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from sync_server.settings import Settings
from tests.e2e.conftest import PC
from tests.helpers.servers import free_port
from tests.sync_server.conftest import seed_demo

WAIT_S = 25  # the longest wait a pull may ask for; the server must stop far sooner
WAITING = "waiting pull(s)"  # the feed listener's debug line as a pull starts waiting (per worker process)


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    url: str
    lines: queue.Queue[str]
    pump: threading.Thread

    def wait_for_line(self, text: str, timeout_s: float = 30) -> None:
        """Block until the server logs a line containing ``text`` (a synchronisation guard)."""
        deadline = time.monotonic() + timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            if text in line:
                return
        raise AssertionError(f"the server never logged {text!r}:\n" + "".join(seen[-40:]))


def _start_server(settings: Settings, workers: int) -> ServerProcess:
    port = free_port()
    env = {
        **os.environ,
        "INTEGMED_ENVIRONMENT": "test",
        "INTEGMED_DATABASE_URL": settings.database_url,
        "INTEGMED_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "INTEGMED_HPR_URL": settings.hpr_url,
        "INTEGMED_ABDM_GATEWAY_URL": settings.abdm_gateway_url,
    }
    argv = [sys.executable, "-m", "sync_server.cli", "--log-level", "debug", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: teardown can stop worker processes too
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", lines, reader)
    for _ in range(workers):
        server.wait_for_line("Application startup complete")
    return server


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def server_process(settings: Settings, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """``integmed-server serve`` with one worker, and with two (uvicorn's supervisor; each worker its lifespan)."""
    seed_demo(settings)
    server = _start_server(settings, request.param)
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)  # whatever is left of the server and its workers
        server.proc.wait(10)
        server.pump.join(10)  # read to the end before closing
        assert server.proc.stderr is not None
        server.proc.stderr.close()


@pytest.fixture
def pc(tmp_path: Path, server_process: ServerProcess, sandbox_url: str, sqlite_template_e2e: Path) -> Iterator[PC]:
    data_dir = tmp_path / "pc-a"
    data_dir.mkdir()
    shutil.copyfile(sqlite_template_e2e, data_dir / DATABASE_FILE)
    made = PC("pc-a", data_dir, server_process.url, sandbox_url).open()
    made.enroll()
    made.sync()
    try:
        yield made
    finally:
        made.close()


def _raw_waiting_pull(pc: PC, cursor: str | None) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {pc.transport()._access_token()}",
        "X-IntegMed-Protocol": str(PROTOCOL_VERSION),
        "X-IntegMed-Schema": str(RECORD_SCHEMA_VERSION),
    }
    params = {"wait": WAIT_S} | ({"cursor": cursor} if cursor else {})
    with httpx.Client(base_url=pc.server_url, trust_env=False, timeout=WAIT_S + 10) as http:
        return http.get("/api/v1/sync/pull", params=params, headers=headers)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_stop_answers_waiting_pulls_and_exits_at_once(
    server_process: ServerProcess, pc: PC, stop_signal: signal.Signals
) -> None:
    client = pc.client()
    cursor = client._read_cursor()
    with ThreadPoolExecutor(2) as pool:
        raw = pool.submit(_raw_waiting_pull, pc, cursor)
        server_process.wait_for_line(WAITING)
        watching = pool.submit(client.watch, WAIT_S)  # the desktop's own waiting pull
        server_process.wait_for_line(WAITING)  # in the same worker ("2 ...") or the other one ("1 ...")
        started = time.monotonic()
        server_process.proc.send_signal(stop_signal)
        resp = raw.result(timeout=WAIT_S)
        report = watching.result(timeout=WAIT_S)  # no exception: the desktop saw a normal answer
        returncode = server_process.proc.wait(timeout=WAIT_S)
        stopped_after_s = time.monotonic() - started
    assert resp.status_code == 200
    body = resp.json()
    assert body["changes"] == [] and body["next_cursor"] == (cursor or "0") and body["has_more"] is False
    assert report.pulled == 0 and report.caught_up
    # uvicorn ends by re-raising the stop signal with the default handler back (its documented behaviour):
    # SIGTERM ends the process by that signal, Ctrl-C unwinds as KeyboardInterrupt to exit status 0.
    assert returncode in (0, -stop_signal)
    # Far below the pulls' 25 s wait and below the 8 s graceful-shutdown backstop (no request was cancelled).
    assert stopped_after_s < 8, stopped_after_s
    server_process.wait_for_line("waiting pull(s) answer now")


def test_stop_signal_drains_then_runs_the_previous_handler() -> None:
    """The lifespan hook in-process (main thread, as under uvicorn): a SIGTERM wakes every waiter, marks the
    listener draining, still reaches the handler installed before (uvicorn's), and that handler is back after."""
    import asyncio

    from sync_server.db.feed_listener import FeedListener, drain_on_stop_signals

    seen: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda sig, frame: seen.append(sig))  # stands for uvicorn's handler
    try:
        previous = signal.getsignal(signal.SIGTERM)

        async def go() -> tuple[bool, bool, bool]:
            listener = FeedListener("postgresql://unused")  # never started: only its waiters matter here
            ticket = listener.ticket(uuid.UUID(int=1))
            with drain_on_stop_signals(listener.drain):
                replaced = signal.getsignal(signal.SIGTERM) is not previous
                signal.raise_signal(signal.SIGTERM)
                await asyncio.wait_for(ticket.wait(), 5)
            return replaced, listener.draining, signal.getsignal(signal.SIGTERM) is previous

        replaced, draining, restored = asyncio.run(go())
    finally:
        signal.signal(signal.SIGTERM, original)
    assert replaced and draining and restored
    assert seen == [signal.SIGTERM]


def test_idle_worker_reconnects_later_without_an_error_after_the_server_stops(
    qtbot: QtBot, server_process: ServerProcess, pc: PC
) -> None:
    """The desktop's sync worker with a waiting pull open: the server stops; the worker shows no error and
    schedules its next waiting pull (backoff) instead of failing."""
    assert pc.store is not None
    runner = Runner(pc.store.writer.executor)
    never = 600_000
    status = SyncStatusService(pc.store.uow)
    worker = SyncWorker(
        runner,
        make_client=pc.client,
        probe=pc.transport().ping,
        read_status=status.status,
        timings=SyncTimings(
            round_interval_ms=never, probe_interval_ms=never, after_write_ms=never, watch_wait_s=WAIT_S
        ),
    )
    failures: list[object] = []
    worker.sync_failed.connect(lambda *args: failures.append(args))
    try:
        worker.start()
        with qtbot.waitSignal(worker.sync_finished, timeout=20_000):
            worker.sync_now(user_started=False)
        qtbot.waitUntil(lambda: worker.is_watching, timeout=20_000)
        server_process.wait_for_line(WAITING)
        server_process.proc.send_signal(signal.SIGTERM)
        assert server_process.proc.wait(timeout=WAIT_S) in (0, -signal.SIGTERM)
        qtbot.waitUntil(lambda: not worker.is_watching, timeout=20_000)
        assert failures == []
        assert status.status().last_error is None
    finally:
        worker.shut_down()
        runner.shutdown(wait_s=10)
