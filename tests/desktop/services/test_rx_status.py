"""Cancel / supersede a signed prescription on the PC, offline; the push answer; a seq taken meanwhile."""

from __future__ import annotations

import base64
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from desktop.config import DesktopSettings
from desktop.services.rx_signing import PrescriptionEnded, RxSigningService
from desktop.services.rx_status import (
    AlreadyEnded,
    NotSigned,
    NotYourPrescription,
    ReasonRequired,
    RxStatusService,
)
from desktop.services.signing import SigningService
from desktop.store import LocalStore
from desktop.store.prescriptions import PrescriptionRepository
from desktop.store.rx_status import StatusEventRepository
from desktop.store.signed_prescriptions import SignedPrescriptionRepository
from desktop.sync.apply_prescriptions import apply_prescriptions, note_refused_drafts, refused_status_events
from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.signing import keys
from shared.signing.certs import issue_certificate
from shared.signing.status import StatusEvent, sign_event, verify_event
from shared.signing.testing import TestChain, doctor_claims
from shared.sync.protocol import Change, ChangeResult, ChangeStatus, Op, RecordKind, RejectCode
from tests.desktop.services import test_rx_signing as signing_tests
from tests.desktop.services.test_rx_signing import DOCTOR, save

chain, signing, encounter_id = signing_tests.chain, signing_tests.signing, signing_tests.encounter_id
CLINIC = uuid.UUID("019ab000-0000-7000-8000-0000000c1a1c")


@pytest.fixture
def signed_rx(local_store: LocalStore, encounter_id: uuid.UUID, signing: SigningService, tmp_path: Path) -> uuid.UUID:
    save(local_store, encounter_id)
    return (
        RxSigningService(local_store.uow, signing, tmp_path, clock=local_store.clock)
        .sign_and_print(DOCTOR, encounter_id)
        .prescription_id
    )


def status_entries(local_store: LocalStore) -> list[Change]:
    with local_store.uow.read() as uow:
        return [e.to_change() for e in uow.outbox.peek_unsent(100) if e.kind == RecordKind.PRESCRIPTION_STATUS]


def push_answer(local_store: LocalStore, result: ChangeResult) -> None:
    """What the sync client does with the server's answer: take the batch, note the results, in one go."""
    local_store.writer.run(_push_answer, local_store, result)


def _push_answer(local_store: LocalStore, result: ChangeResult) -> None:
    with local_store.uow.write() as uow:
        entries = uow.outbox.take_unsent(uuid7(), 100)
        mine = [e for e in entries if e.kind == RecordKind.PRESCRIPTION_STATUS]
        answers = [result if e in mine else ChangeResult(kind=RecordKind(e.kind), id=e.record_id,
                   status=ChangeStatus.APPLIED, server_version=1) for e in entries]  # fmt: skip
        note_refused_drafts(uow, entries, answers)
        uow.commit()


def pharmacy_event(
    chain: TestChain, rx_id: uuid.UUID, content_hash: str, seq: int, status: str = "dispensed"
) -> Change:
    """An event recorded at the server by another doctor's server-held key (its certificate travels with it)."""
    key = keys.generate_private_key()
    cert = issue_certificate(
        doctor_claims(chain.doctor_key, now=datetime.now(UTC)).model_copy(
            update={"public_key": keys.public_key_bytes(key), "name": "Dr Pharmacy"}
        ),
        chain.issuer_key,
    )
    at = datetime.now(UTC).replace(microsecond=0)
    event = StatusEvent(rx_id, content_hash, seq, status, "Dispensed at the counter", at, keys.key_id(key))  # type: ignore[arg-type]
    fields = {
        "prescription_id": str(rx_id), "seq": seq, "status": status, "reason": event.reason,
        "at": at.isoformat().replace("+00:00", "Z"), "signer_kid": event.kid,
        "cose": base64.b64encode(sign_event(event, key)).decode(), "certificate": base64.b64encode(cert).decode(),
    }  # fmt: skip
    stamp = encode_stamp(at)
    return Change(kind=RecordKind.PRESCRIPTION_STATUS, id=uuid7(), op=Op.UPSERT, hlc=stamp, fields=fields,
                  field_hlcs=dict.fromkeys(fields, stamp))  # fmt: skip


def encode_stamp(at: datetime) -> str:
    return encode(Stamp(int(at.timestamp() * 1000), 0, "server"))


def pull(local_store: LocalStore, chain: TestChain, *changes: Change) -> None:
    local_store.writer.run(_pull, local_store, chain, list(changes))


def _pull(local_store: LocalStore, chain: TestChain, changes: list[Change]) -> None:
    with local_store.uow.write() as uow:
        apply_prescriptions(uow, list(changes), clinic_id=CLINIC, now=datetime.now(UTC), trust=chain.trust)
        uow.commit()


def test_cancel_offline_signs_stores_and_queues_the_event_and_the_pdf_is_never_printed_again(
    local_store: LocalStore,
    signed_rx: uuid.UUID,
    encounter_id: uuid.UUID,
    signing: SigningService,
    chain: TestChain,
    tmp_path: Path,
) -> None:
    service = RxStatusService(local_store.uow, signing, clock=local_store.clock)
    assert service.status(signed_rx).status == "signed"
    after = service.cancel(DOCTOR, signed_rx, "  Wrong   dose printed ")
    assert after.status == "cancelled" and after.waiting and after.event is not None
    assert after.event.reason == "Wrong dose printed" and after.event.seq == 1
    assert after.label().startswith("CANCELLED ") and after.label().endswith("(waiting to sync)")
    (change,) = status_entries(local_store)
    assert change.id == after.event.id and change.op is Op.UPSERT
    assert change.fields["prescription_id"] == str(signed_rx) and change.fields["seq"] == 1
    with local_store.uow.read() as uow:
        rx = PrescriptionRepository(uow.connection).for_encounter(encounter_id)
        assert rx is not None
        record = SignedPrescriptionRepository(uow.connection).find(signed_rx)
    assert record is not None
    event = verify_event(
        base64.b64decode(str(change.fields["cose"])), rx_id=signed_rx, content_hash=record.content_hash,
        doctor_certificate=signing.signer(DOCTOR).doctor_certificate, issuer_certificate=chain.issuer_cert,
        trust=chain.trust,
    )  # fmt: skip
    assert (event.status, event.reason, event.seq) == ("cancelled", "Wrong dose printed", 1)

    with pytest.raises(AlreadyEnded):
        service.cancel(DOCTOR, signed_rx, "again")
    with pytest.raises(AlreadyEnded):
        service.supersede(DOCTOR, signed_rx, "re-issued")
    with pytest.raises(PrescriptionEnded, match="cancelled"):
        RxSigningService(local_store.uow, signing, tmp_path).sign_and_print(DOCTOR, encounter_id)
    assert len(status_entries(local_store)) == 1

    push_answer(local_store, ChangeResult(kind=RecordKind.PRESCRIPTION_STATUS, id=change.id,
                                          status=ChangeStatus.APPLIED, server_version=1))  # fmt: skip
    synced = service.status(signed_rx)
    assert synced.status == "cancelled" and not synced.waiting
    pull(local_store, chain, change)  # our own echo: nothing new
    assert [e.state for e in service.status(signed_rx).events] == ["synced"]


def test_only_the_prescriber_cancels_a_signed_prescription_with_a_reason(
    local_store: LocalStore, signed_rx: uuid.UUID, signing: SigningService
) -> None:
    service = RxStatusService(local_store.uow, signing, clock=local_store.clock)
    with pytest.raises(NotYourPrescription):
        service.cancel(uuid.uuid4(), signed_rx, "Not mine")
    with pytest.raises(ReasonRequired):
        service.cancel(DOCTOR, signed_rx, "   ")
    with pytest.raises(ReasonRequired):
        service.cancel(DOCTOR, signed_rx, "x" * 501)
    with pytest.raises(NotSigned):
        service.cancel(DOCTOR, uuid.uuid4(), "Unknown")
    assert service.status(signed_rx).status == "signed" and status_entries(local_store) == []


def test_seq_taken_by_a_dispensing_goes_stale_then_is_signed_again_with_the_next_seq(
    local_store: LocalStore, signed_rx: uuid.UUID, signing: SigningService, chain: TestChain
) -> None:
    service = RxStatusService(local_store.uow, signing, clock=local_store.clock)
    mine = service.cancel(DOCTOR, signed_rx, "Patient is allergic").event
    assert mine is not None
    stale = ChangeResult(
        kind=RecordKind.PRESCRIPTION_STATUS,
        id=mine.id,
        status=ChangeStatus.REJECTED,
        reason=RejectCode.STALE_BASE,
        message="event 1 is dispensed",
    )
    push_answer(local_store, stale)
    assert [e.state for e in service.status(signed_rx).events] == ["stale"]
    assert service.resign_stale() == 0  # the server's event 1 has not been pulled yet: wait
    dispensed = pharmacy_event(chain, signed_rx, _hash(local_store, signed_rx), 1)
    pull(local_store, chain, dispensed)
    now = service.status(signed_rx)
    assert now.status == "cancelled" and now.waiting and now.dispensed  # the intent still shows, on its way
    assert service.resign_stale() == 1
    events = service.status(signed_rx).events
    assert [(e.seq, e.status, e.state) for e in events] == [(1, "dispensed", "synced"), (2, "cancelled", "pending")]
    (again,) = [c for c in status_entries(local_store) if c.fields["seq"] == 2]
    assert again.id == mine.id and again.fields["reason"] == "Patient is allergic"
    record = verify_event(
        base64.b64decode(str(again.fields["cose"])), rx_id=signed_rx, content_hash=_hash(local_store, signed_rx),
        doctor_certificate=signing.signer(DOCTOR).doctor_certificate, issuer_certificate=chain.issuer_cert,
        trust=chain.trust,
    )  # fmt: skip
    assert record.seq == 2 and record.status == "cancelled"
    assert service.resign_stale() == 0


def test_an_intent_overtaken_by_another_pcs_cancel_is_refused_and_a_bad_pulled_event_is_not_stored(
    local_store: LocalStore, signed_rx: uuid.UUID, signing: SigningService, chain: TestChain
) -> None:
    service = RxStatusService(local_store.uow, signing, clock=local_store.clock)
    mine = service.supersede(DOCTOR, signed_rx, "Re-issued with a lower dose").event
    assert mine is not None
    other = pharmacy_event(chain, signed_rx, _hash(local_store, signed_rx), 1, status="cancelled")
    pull(local_store, chain, other)  # takes seq 1: ours becomes stale before the server even answers
    assert {e.id: e.state for e in service.status(signed_rx).events}[mine.id] == "stale"
    assert service.resign_stale() == 0
    states = {e.id: (e.state, e.refusal) for e in service.status(signed_rx).events}
    assert states[mine.id][0] == "refused" and "already cancelled" in str(states[mine.id][1])
    assert service.status(signed_rx).status == "cancelled"

    bad = pharmacy_event(chain, signed_rx, "00" * 32, 2)
    pull(local_store, chain, bad)
    with local_store.uow.read() as uow:
        assert StatusEventRepository(uow.connection).find(bad.id) is None
        assert refused_status_events(uow)[str(bad.id)].startswith("bad_signature")


def test_an_event_of_a_prescription_not_here_yet_is_parked(local_store: LocalStore, chain: TestChain) -> None:
    early = pharmacy_event(chain, uuid.uuid4(), "ab" * 32, 1)
    pull(local_store, chain, early)
    with local_store.uow.read() as uow:
        assert str(early.id) in (uow.sync_state.get("parked_prescriptions") or "")
        assert StatusEventRepository(uow.connection).find(early.id) is None


def _hash(local_store: LocalStore, rx_id: uuid.UUID) -> str:
    with local_store.uow.read() as uow:
        record = SignedPrescriptionRepository(uow.connection).find(rx_id)
    assert record is not None
    return record.content_hash


def test_the_table_never_loses_an_event_and_freezes_what_the_server_holds(
    local_store: LocalStore, signed_rx: uuid.UUID, signing: SigningService, desktop_settings: DesktopSettings
) -> None:
    service = RxStatusService(local_store.uow, signing, clock=local_store.clock)
    event = service.cancel(DOCTOR, signed_rx, "Wrong patient").event
    assert event is not None
    conn = sqlite3.connect(desktop_settings.database_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
            conn.execute("DELETE FROM prescription_status_events")
        conn.execute("UPDATE prescription_status_events SET state = 'synced'")
        conn.commit()
        with pytest.raises(sqlite3.IntegrityError, match="never changes"):
            conn.execute("UPDATE prescription_status_events SET reason = 'changed afterwards'")
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):  # one live event per seq
            conn.execute(
                "INSERT INTO prescription_status_events SELECT ?, prescription_id, seq, status, reason, at, signer_id,"
                " signer_kid, cose, 'pending', NULL, created_at, updated_at FROM prescription_status_events",
                (str(uuid.uuid4()),),
            )
    finally:
        conn.close()
