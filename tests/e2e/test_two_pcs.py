"""Two clinic PCs, one server: offline work, convergence in both orders, and the fault scenarios of P2."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from desktop.errors import ServerUnreachable
from desktop.sync.errors import AppOutdated
from desktop.sync.transport import RetryPolicy, Transport
from shared.clock import system_wall_ms
from tests.e2e.conftest import PC, Server, server_snapshot

RADHA = {"name": "राधा कुमारी", "gender": "F", "year_of_birth": 1990, "mobile": "+919812300001"}
ARUN = {"name": "Arun Murugan", "gender": "M", "year_of_birth": 1975, "abha_number": "91-3772-0586-4665"}


def test_register_offline_then_both_pcs_and_server_agree(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    radha = a.patients.register(RADHA, actor="test")  # before enrolment: works offline, no clinic yet
    a.enroll()
    b.enroll()
    arun = b.patients.register(ARUN, actor="test")
    ra, rb = a.sync(), b.sync()
    assert ra.complete and rb.complete
    assert rb.pulled >= 1
    a.sync()  # A now pulls B's patient
    assert a.snapshot() == b.snapshot() == server_snapshot(server, sandbox_url)
    assert {str(radha.id), str(arun.id)} == set(a.snapshot())
    assert a.patients.search("राधा")[0].id == radha.id
    assert b.patients.search("arun")[0].id == arun.id


@pytest.mark.parametrize("order", ["a-first", "b-first"])
def test_same_patient_edited_offline_on_both_converges(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str, order: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    a.enroll()
    b.enroll()
    p = a.patients.register(RADHA, actor="test")
    a.sync()
    b.sync()
    # Offline on both: A fixes the mobile, B fixes the name and, later, the mobile too.
    a.patients.update(p.id, {"mobile": "+919812300011"}, actor="test")
    b.patients.update(p.id, {"name": "राधा देवी"}, actor="test")
    b.patients.update(p.id, {"mobile": "+919812300022"}, actor="test")  # B's mobile edit is the later one
    first, second = (a, b) if order == "a-first" else (b, a)
    first.sync()
    second.sync()
    first.sync()
    second.sync()
    expected = {"name": "राधा देवी", "mobile": "+919812300022"}
    for pc in (a, b):
        got = pc.patients.get(p.id)
        assert {"name": got.name, "mobile": got.mobile} == expected, pc.name
    assert a.snapshot() == b.snapshot() == server_snapshot(server, sandbox_url)
    # A's losing mobile is kept in history on A, not dropped.
    lost = [h for h in a.patients.history(p.id) if h.field == "mobile"]
    assert "+919812300011" in {h.value for h in lost}


class PowerCut(Exception):
    """Stands for the process dying: nothing after it runs, the open transaction is never committed."""


class DropFirstPushReply(httpx.BaseTransport):
    """The push reaches the server, which applies it, but the reply is lost on the way back (torn link)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/sync/push") and self.dropped == 0:
            response.read()
            response.close()
            self.dropped += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_lost_push_reply_is_retried_without_duplicates(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    dropper = DropFirstPushReply()

    def factory(url: str) -> Transport:
        return Transport(
            url,
            http=httpx.Client(transport=dropper, trust_env=False),
            retry=RetryPolicy(attempts=1, base_s=0.0, max_s=0.0),
        )

    a = make_pc("pc-a", transport_factory=factory)
    a.enroll()
    for i in range(5):
        a.patients.register({**RADHA, "name": f"Patient {i}", "mobile": f"+91981230010{i}"}, actor="test")
    with pytest.raises(ServerUnreachable):
        a.sync()
    assert dropper.dropped == 1
    assert len(server_snapshot(server, sandbox_url)) == 5  # the server did apply the batch
    report = a.sync()  # re-sends the same batch id: the server answers with its first answer
    assert report.complete and report.applied == 5
    assert len(server_snapshot(server, sandbox_url)) == 5
    b = make_pc("pc-b")
    b.enroll()
    b.sync()
    assert len(b.snapshot()) == 5


def test_crash_in_the_middle_of_a_pull_page_leaves_nothing_half_applied(
    make_pc: Callable[..., PC], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    a.enroll()
    b.enroll()
    for i in range(30):
        a.patients.register({**RADHA, "name": f"Patient {i}", "mobile": f"+9198123002{i:02d}"}, actor="test")
    a.sync()
    from desktop.store.patients import PatientRepository

    real_insert_many = PatientRepository.insert_many

    def dying_insert_many(self, new, **kwargs):  # type: ignore[no-untyped-def]
        real_insert_many(self, list(new)[:9], **kwargs)  # nine patients of the page are written...
        raise PowerCut("power cut")  # ...then the process dies mid-page

    monkeypatch.setattr(PatientRepository, "insert_many", dying_insert_many)
    with pytest.raises(PowerCut):
        b.sync()
    monkeypatch.setattr(PatientRepository, "insert_many", real_insert_many)
    assert b.snapshot() == {}  # the half page was rolled back
    b.close()
    b.open()  # restart
    with b.store.uow.read() as uow:  # type: ignore[union-attr]
        assert uow.sync_state.pull_cursor() is None  # the cursor did not move either
    report = b.sync()
    assert report.complete and report.inserted == 30
    assert b.snapshot() == a.snapshot()


def test_server_down_for_a_day_then_queue_drains(make_pc: Callable[..., PC], server: Server, sandbox_url: str) -> None:
    a = make_pc("pc-a")
    a.enroll()
    server.stop()
    for i in range(40):  # a whole clinic day of registrations with the server away
        a.patients.register({**RADHA, "name": f"Offline {i}", "mobile": f"+9198123003{i:02d}"}, actor="test")
    with pytest.raises(ServerUnreachable):
        a.sync()
    with a.store.uow.read() as uow:  # type: ignore[union-attr]
        assert uow.outbox.pending_count() == 40
        assert "reach" in (uow.sync_state.last_error() or "").lower() or uow.sync_state.last_error()
    server.start()
    report = a.sync()
    assert report.complete and report.applied == 40 and report.pending == 0
    with a.store.uow.read() as uow:  # type: ignore[union-attr]
        assert uow.sync_state.last_error() is None  # the round that went through cleared it
    assert len(server_snapshot(server, sandbox_url)) == 40


def test_outdated_app_is_told_to_update_and_loses_nothing(
    make_pc: Callable[..., PC], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_pc("pc-a")
    a.enroll()
    a.patients.register(RADHA, actor="test")
    import sync_server.services.sync as server_sync

    monkeypatch.setattr(server_sync, "RECORD_SCHEMA_VERSION", 2)  # the server was upgraded, this PC was not
    with pytest.raises(AppOutdated) as info:
        a.sync()
    assert "Update IntegMed" in (info.value.detail or "")
    assert "install the latest integmed" in info.value.user_text().lower()
    with a.store.uow.read() as uow:  # type: ignore[union-attr]
        assert uow.outbox.pending_count() == 1


def test_fast_clock_pc_is_refused_and_keeps_its_change(make_pc: Callable[..., PC]) -> None:
    day = 24 * 3600 * 1000
    fast = make_pc("pc-fast", wall_clock=lambda: system_wall_ms() + day)
    fast.enroll()
    p = fast.patients.register(RADHA, actor="test")
    report = fast.sync()
    assert not report.complete
    assert report.held_back == 1 and report.rejected[0].reason == "clock_skew"
    assert fast.patients.get(p.id).name == RADHA["name"]
    with fast.store.uow.read() as uow:  # type: ignore[union-attr]
        assert uow.outbox.pending_count() == 1
