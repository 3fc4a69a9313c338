"""The waiting pull (long poll): a PC's open pull answers as soon as another PC's push commits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import pytest
from pytestqt.qtbot import QtBot

from desktop.errors import Cancelled
from desktop.services.sync_status import SyncStatusService
from desktop.ui.bridges.sync_worker import SyncTimings, SyncWorker
from desktop.ui.runner import Runner
from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from tests.e2e.conftest import PC, Server

RADHA = {"name": "राधा कुमारी", "gender": "F", "year_of_birth": 1990, "mobile": "+919812300001"}


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for another thread to reach a state (a synchronisation guard, not a timing assertion)."""
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def _waiting(server: Server) -> int:
    return int(server.app.state.feed_listener.waiting)


def _two_pcs(make_pc: Callable[..., PC], server: Server) -> tuple[PC, PC]:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    a.enroll()
    b.enroll()
    _until(lambda: server.app.state.feed_listener.connected, "the server listens for feed commits")
    return a, b


def test_waiting_pull_on_b_returns_a_push(make_pc: Callable[..., PC], server: Server) -> None:
    a, b = _two_pcs(make_pc, server)
    p = a.patients.register(RADHA, actor="test")
    a.sync()
    b.sync()
    client_b = b.client()
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(client_b.watch, 20)
        _until(lambda: _waiting(server) == 1, "B's pull waits on the server")
        assert not watching.done()
        a.patients.update(p.id, {"mobile": "+919812300077"}, actor="test")
        a.sync()
        report = watching.result(timeout=30)
    assert report.pulled == 1 and report.updated == 1 and report.caught_up
    assert b.patients.get(p.id).mobile == "+919812300077"
    assert _waiting(server) == 0
    assert b.sync().pulled == 0  # the watch stored the cursor with the page


def test_waiting_pull_answers_at_once_when_changes_wait(make_pc: Callable[..., PC], server: Server) -> None:
    a, b = _two_pcs(make_pc, server)
    a.patients.register(RADHA, actor="test")
    a.sync()
    report = b.client().watch(20)  # B has never pulled: the page is there, no wait
    assert report.pulled == 1 and report.inserted == 1
    assert _waiting(server) == 0


def test_timeout_returns_empty_page_with_same_cursor(make_pc: Callable[..., PC], server: Server) -> None:
    a, _ = _two_pcs(make_pc, server)
    a.patients.register(RADHA, actor="test")
    a.sync()
    cursor = a.client()._read_cursor()
    assert cursor is not None
    page, remaining = a.transport().wait_pull(cursor, 100, 0.3)
    assert page.changes == [] and page.next_cursor == cursor and not page.has_more and remaining == 0
    # An old client (no wait) still gets an immediate answer, and the two agree.
    old, _ = a.transport().pull(cursor, 100)
    assert old.changes == [] and old.next_cursor == cursor


def test_bad_wait_is_a_422_problem(make_pc: Callable[..., PC], server: Server) -> None:
    a, _ = _two_pcs(make_pc, server)
    a.sync()
    token = a.transport()._access_token()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        for bad in ("-1", "26", "soon"):
            resp = http.get("/api/v1/sync/pull", params={"wait": bad}, headers=headers)
            assert resp.status_code == 422, bad
            assert resp.headers["content-type"].startswith("application/problem+json")


def test_waiters_are_bounded(make_pc: Callable[..., PC], server: Server) -> None:
    a, b = _two_pcs(make_pc, server)
    a.sync()
    b.sync()
    server.app.state.feed_listener.max_waiters = 1
    cursor = b.client()._read_cursor()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(b.transport().wait_pull, cursor, 100, 20)
        _until(lambda: _waiting(server) == 1, "the first pull waits")
        headers = {
            "Authorization": f"Bearer {a.transport()._access_token()}",
            "X-IntegMed-Protocol": str(PROTOCOL_VERSION),
            "X-IntegMed-Schema": str(RECORD_SCHEMA_VERSION),
        }
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            resp = http.get("/api/v1/sync/pull", params={"wait": 5, "cursor": cursor}, headers=headers)
            assert resp.status_code == 503
            assert resp.json()["code"] == "sync.waiters_full"
            assert resp.headers["retry-after"] == "5"
            # Without waiting it is served as before.
            assert http.get("/api/v1/sync/pull", params={"cursor": cursor}, headers=headers).status_code == 200
        a.patients.register(RADHA, actor="test")
        a.sync()
        page, _ = first.result(timeout=30)
    assert [c.fields["name"] for c in page.changes] == [RADHA["name"]]


def test_cancel_wait_ends_a_pull_in_flight(make_pc: Callable[..., PC], server: Server) -> None:
    _, b = _two_pcs(make_pc, server)
    b.sync()
    client = b.client()
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(client.watch, 20)
        _until(lambda: _waiting(server) == 1, "B's pull waits on the server")
        b.transport().cancel_wait()
        with pytest.raises(Cancelled):
            watching.result(timeout=10)
        with pytest.raises(Cancelled):
            client.watch(20)  # refused from now on: the app is closing


def test_server_shutdown_with_a_waiter_is_clean(make_pc: Callable[..., PC], server: Server) -> None:
    _, b = _two_pcs(make_pc, server)
    b.sync()
    cursor = b.client()._read_cursor()
    listener = server.app.state.feed_listener
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(b.transport().wait_pull, cursor, 100, 1.5)
        _until(lambda: _waiting(server) == 1, "the pull waits")
        server.stop()  # graceful: the waiting pull is answered (empty, same cursor), then the listener closes
        page, _ = waiting.result(timeout=30)
    assert page.changes == [] and page.next_cursor == cursor
    assert not listener.connected and listener.waiting == 0
    server.start()  # the same data, a new listener: waiting works again
    _until(lambda: server.app.state.feed_listener.connected, "the new server listens")
    page, _ = b.transport().wait_pull(cursor, 100, 0.2)
    assert page.next_cursor == cursor


def test_idle_sync_worker_shows_another_pcs_change_and_closes_cleanly(
    qtbot: QtBot, make_pc: Callable[..., PC], server: Server
) -> None:
    """The desktop's worker (real Qt, runner and store on PC B) keeps a waiting pull open after a round."""
    a, b = _two_pcs(make_pc, server)
    p = a.patients.register(RADHA, actor="test")
    a.sync()
    assert b.store is not None
    runner = Runner(b.store.writer.executor)
    never = 600_000
    worker = SyncWorker(
        runner,
        make_client=b.client,
        probe=b.transport().ping,
        read_status=SyncStatusService(b.store.uow).status,
        timings=SyncTimings(round_interval_ms=never, probe_interval_ms=never, after_write_ms=never, watch_wait_s=20),
    )
    try:
        worker.start()
        with qtbot.waitSignal(worker.sync_finished, timeout=20_000):
            worker.sync_now(user_started=False)
        qtbot.waitUntil(lambda: worker.is_watching and _waiting(server) == 1, timeout=20_000)
        assert b.patients.get(p.id).mobile == RADHA["mobile"]
        with qtbot.waitSignal(worker.sync_finished, timeout=20_000) as arrived:
            a.patients.update(p.id, {"mobile": "+919812300088"}, actor="test")
            a.sync()
        report, user_started = arrived.args
        assert report.pulled == 1 and report.updated == 1 and user_started is False
        assert b.patients.get(p.id).mobile == "+919812300088"
        qtbot.waitUntil(lambda: worker.is_watching and _waiting(server) == 1, timeout=20_000)  # open again
        worker.shut_down()  # ends the waiting pull at once
        qtbot.waitUntil(lambda: not worker.is_watching, timeout=10_000)
        qtbot.waitUntil(lambda: _waiting(server) == 0, timeout=10_000)
    finally:
        worker.shut_down()
        runner.shutdown(wait_s=10)


def test_listener_reconnects_after_losing_its_connection(make_pc: Callable[..., PC], server: Server) -> None:
    a, b = _two_pcs(make_pc, server)
    a.sync()
    b.sync()
    listener = server.app.state.feed_listener
    pid = listener._conn.get_server_pid()

    async def terminate() -> None:
        conn = await asyncpg.connect(server.settings.database_url)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()

    asyncio.run(terminate())
    _until(lambda: listener.connected and listener._conn.get_server_pid() != pid, "the listener listens again")
    client_b = b.client()
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(client_b.watch, 20)
        _until(lambda: _waiting(server) == 1, "B's pull waits on the server")
        p = a.patients.register(RADHA, actor="test")
        a.sync()
        report = watching.result(timeout=30)
    assert report.pulled == 1 and b.patients.get(p.id).name == RADHA["name"]
