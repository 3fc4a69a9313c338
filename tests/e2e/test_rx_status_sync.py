"""A doctor cancels his signed prescription on his PC with the network down; sync brings it to the server (REST
list) and to the clinic's other PC; a seq the pharmacy took meanwhile is signed again with the next one."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from keyring.backends import fail

from desktop.app import SyncLink, TransportCache
from desktop.config import DesktopSettings
from desktop.security.doctor_keys import DoctorKeys
from desktop.security.secrets import SecretStore
from desktop.services.auth import AuthService
from desktop.services.rx_status import RxStatusService
from desktop.services.signing import SigningService
from desktop.store.rx_status import StatusEventRepository
from desktop.sync.commands import device_secrets
from tests.e2e.conftest import PC, Server
from tests.e2e.test_signed_rx_sync import RADHA, signed_on_pc
from tests.sync_server.conftest import BAMS_MOBILE, MBBS_MOBILE, last_otp


def doctor_pc(pc: PC, sandbox_url: str) -> tuple[DoctorKeys, uuid.UUID]:
    """Sign the MBBS doctor in on the PC: its key is certified (network on, once)."""
    assert pc.store is not None
    keys = DoctorKeys(SecretStore("signing", pc.data_dir, system_keyring=fail.Keyring()), pc.data_dir)
    auth = AuthService(
        pc.store.uow,
        device_secrets(DesktopSettings(data_dir=pc.data_dir)),
        lambda url: pc.transport(),
        doctor_keys=keys,
    )
    txn, _ = auth.start_sign_in(pc.server_url, MBBS_MOBILE)
    return keys, auth.finish_sign_in(pc.server_url, txn, last_otp(sandbox_url, MBBS_MOBILE), pc_name=pc.name).user_id


def rest(server: Server, sandbox: str, mobile: str, method: str, path: str, **kw: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        init = http.post("/api/v1/auth/doctor/init", json={"mobile": mobile}).json()
        token = http.post(
            "/api/v1/auth/doctor/verify", json={"txn_id": init["txn_id"], "otp": last_otp(sandbox, mobile)}
        ).json()["access_token"]
        return http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)


def server_events(server: Server, sandbox: str, rx_id: uuid.UUID) -> list[dict[str, Any]]:
    r = rest(server, sandbox, MBBS_MOBILE, "GET", f"/api/v1/prescriptions/{rx_id}/status")
    assert r.status_code == 200, r.text
    return list(r.json())


def test_cancel_offline_reaches_the_server_and_the_other_pc_which_shows_it_cancelled(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a, b = make_pc("pc-a"), make_pc("pc-b")
    assert a.store is not None and b.store is not None
    keys, doctor = doctor_pc(a, sandbox_url)
    b.enroll()
    rx_id = signed_on_pc(a, keys, doctor, a.patients.register(RADHA, actor="test").id)
    assert a.sync().complete and b.sync().complete

    # The network is down: nothing below talks to the server until the next sync.
    status_a = RxStatusService(a.store.uow, SigningService(keys, a.data_dir), clock=a.store.clock)
    cancelled = status_a.cancel(doctor, rx_id, "Wrong dose printed")
    assert cancelled.status == "cancelled" and cancelled.waiting and cancelled.event is not None

    report = a.sync()
    assert report.complete and not report.rejected, report.rejected
    assert not status_a.status(rx_id).waiting  # the server holds it
    listed = server_events(server, sandbox_url, rx_id)
    assert [(e["seq"], e["status"], e["reason"], e["id"]) for e in listed] == [
        (1, "cancelled", "Wrong dose printed", str(cancelled.event.id))
    ]
    assert base64.b64decode(listed[0]["cose"]) == cancelled.event.cose  # exactly as signed on the PC
    assert listed[0]["actor_id"] == str(doctor) and listed[0]["signer_kid"] == cancelled.event.signer_kid
    signed = rest(server, sandbox_url, MBBS_MOBILE, "GET", f"/api/v1/prescriptions/{rx_id}/signed").json()
    assert [e["status"] for e in signed["status_events"]] == ["cancelled"]

    assert b.sync().complete
    status_b = RxStatusService(b.store.uow, SigningService(keys, b.data_dir)).status(rx_id)
    assert status_b.status == "cancelled" and not status_b.waiting
    assert status_b.label().startswith("CANCELLED ") and "Wrong dose printed" in status_b.label()
    with b.store.uow.read() as uow:
        (stored,) = StatusEventRepository(uow.connection).for_prescription(rx_id)
    assert stored.cose == cancelled.event.cose and stored.state == "synced"


def test_a_seq_the_pharmacy_took_meanwhile_is_signed_again_with_the_next_seq_on_the_next_sync(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a = make_pc("pc-a")
    assert a.store is not None
    keys, doctor = doctor_pc(a, sandbox_url)
    rx_id = signed_on_pc(a, keys, doctor, a.patients.register(RADHA, actor="test").id)
    assert a.sync().complete
    status_a = RxStatusService(a.store.uow, SigningService(keys, a.data_dir), clock=a.store.clock)
    mine = status_a.cancel(doctor, rx_id, "Patient is allergic to it")  # offline: seq 1
    assert mine.event is not None and mine.event.seq == 1
    dispensed = rest(  # meanwhile the pharmacy dispenses it (REST, the server-held key)
        server, sandbox_url, BAMS_MOBILE, "POST", f"/api/v1/prescriptions/{rx_id}/status",
        json={"status": "dispensed", "reason": "Dispensed at the counter"},
    )  # fmt: skip
    assert dispensed.status_code in (200, 201), dispensed.text

    report = a.sync()  # push: seq 1 is taken → stale_base; the pull then brings the dispensing
    assert [(r.kind, r.reason) for r in report.rejected] == [("prescription_status", "stale_base")]
    assert "dispensed" in report.rejected[0].message
    now = status_a.status(rx_id)
    assert {(e.seq, e.status, e.state) for e in now.events} == {(1, "dispensed", "synced"), (1, "cancelled", "stale")}
    assert now.status == "cancelled" and now.waiting and now.dispensed

    # The next sync round, as the app runs it (SyncLink signs stale intents again before building the client).
    secrets = device_secrets(DesktopSettings(data_dir=a.data_dir))
    transports = TransportCache(lambda url: a.transport())
    link = SyncLink(a.store, a.auth, transports, secrets, a.data_dir, before_round=status_a.resign_stale)
    report = link.client().run_once()
    assert report.complete and not report.rejected, report.rejected
    done = status_a.status(rx_id)
    assert [(e.seq, e.status, e.state) for e in done.events] == [(1, "dispensed", "synced"), (2, "cancelled", "synced")]
    assert done.status == "cancelled" and not done.waiting
    listed = server_events(server, sandbox_url, rx_id)
    assert [(e["seq"], e["status"], e["reason"]) for e in listed] == [
        (1, "dispensed", "Dispensed at the counter"),
        (2, "cancelled", "Patient is allergic to it"),
    ]
    assert listed[1]["id"] == str(mine.event.id)  # the same intent, signed again
    assert a.sync().complete and status_a.resign_stale() == 0  # nothing left to do
