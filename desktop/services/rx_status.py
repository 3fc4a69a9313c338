"""Cancel or supersede a signed prescription on this PC, offline: a new, signed, monotonic status event.

A signed prescription never changes (P4). When the doctor finds he printed a wrong one, he cancels it with a
reason (or supersedes it when he re-issues it): `RxStatusService` checks it is a signed prescription of his
and not already cancelled or superseded here, signs a status event (`shared.signing.status`) with his own
certified key (`SigningService.sign_status_event`, which verifies it as any PC would), and stores it with its
outbox entry (``prescription_status``) in one transaction. ``seq`` is the number of events this PC knows
(held by the server, or on their way) plus one.

The server may already hold an event with that seq (a pharmacy's dispensing recorded meanwhile): it answers
``stale_base`` and the event becomes ``stale`` here (`desktop.sync.apply_prescriptions.note_refused_drafts`).
Once the pull has brought the server's events, `resign_stale` (run before each sync round, `desktop.app`)
signs the same intent, same reason, with the next seq, and queues it again; if the prescription has ended
meanwhile (another PC cancelled it) the intent is refused here with that reason.

A cancelled or superseded prescription is shown as such wherever it is shown, and is never printed again
(`RxSigningService.sign_and_print` refuses).
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from desktop.errors import KnownError
from desktop.services.signing import SigningService
from desktop.store.prescriptions import PrescriptionRepository
from desktop.store.rx_status import LIVE, StatusEventRepository, StoredEvent
from desktop.store.signed_prescriptions import SignedPrescriptionRepository
from desktop.store.signed_prescriptions import SignedRecord as SignedRecord  # for the screens (ui never imports store)
from desktop.store.unit_of_work import UnitOfWork, UnitOfWorkFactory
from shared.clock import HLC, encode
from shared.errors import DomainError
from shared.signing.status import MAX_REASON, TERMINAL, StatusEvent
from shared.sync.protocol import JsonValue, Op, RecordKind

log = logging.getLogger(__name__)

Ending = Literal["cancelled", "superseded"]


class NotSigned(KnownError):
    title = "This prescription is not signed"
    default_message = "Only a signed prescription can be cancelled or superseded; a draft is simply edited."
    action = "Edit the draft in the Rx pad instead."
    code = "desktop.rx_status.not_signed"


class NotYourPrescription(KnownError):
    title = "Only the prescribing doctor can cancel this prescription"
    default_message = "This prescription was signed by another doctor."
    action = "Ask the prescribing doctor to cancel it on his own sign-in."
    code = "desktop.rx_status.not_prescriber"


class AlreadyEnded(KnownError):
    title = "This prescription is already cancelled or superseded"
    default_message = "Nothing may follow a cancellation or a supersession."
    action = "Write a new prescription if the patient needs one."
    code = "desktop.rx_status.already_ended"


class ReasonRequired(KnownError):
    title = "A reason is required"
    default_message = f"Say why, in 1 to {MAX_REASON} characters."
    action = "Type the reason and confirm again."
    code = "desktop.rx_status.reason_required"


@dataclass(frozen=True)
class RxStatus:
    """What a signed prescription's events make of it.

    Attributes:
        status: ``signed`` (nothing happened since), ``dispensed``, ``cancelled`` or ``superseded``.
        event: the event that decides it (the terminal one, else the dispensing), if any.
        waiting: that event is signed here and not yet held by the server.
        dispensed: a dispensing is recorded (also when cancelled afterwards).
        refused: events of this PC the server refused for good (with ``refusal``).
        events: every event, by seq.
    """

    status: str
    event: StoredEvent | None
    waiting: bool
    dispensed: bool
    refused: tuple[StoredEvent, ...] = ()
    events: tuple[StoredEvent, ...] = field(default=())

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    def label(self) -> str:
        """One line for the screen: ``CANCELLED 26 Nov 2026 10:30 — Wrong dose (waiting to sync)``."""
        if self.event is None:
            return "Signed"
        when = self.event.at.astimezone().strftime("%d %b %Y %H:%M")
        text = f"{self.status.upper()} {when} — {self.event.reason}"
        if self.ended and self.dispensed:
            text += " (was dispensed)"
        return text + (" (waiting to sync)" if self.waiting else "")


def status_of(events: list[StoredEvent]) -> RxStatus:
    """The prescription's status from its events (stale ones count as the doctor's intent, still on its way)."""
    counted = [e for e in events if e.state in (*LIVE, "stale")]
    ended = next((e for e in counted if e.status in TERMINAL), None)
    dispensing = next((e for e in counted if e.status == "dispensed"), None)
    deciding = ended or dispensing
    return RxStatus(
        status=deciding.status if deciding is not None else "signed",
        event=deciding,
        waiting=deciding is not None and deciding.state != "synced",
        dispensed=dispensing is not None,
        refused=tuple(e for e in events if e.state == "refused"),
        events=tuple(events),
    )


def status_change_fields(event: StoredEvent) -> dict[str, JsonValue]:
    """The ``prescription_status`` change the server verifies and stores (`sync_server.services.rx_sync`)."""
    return {
        "prescription_id": str(event.prescription_id),
        "seq": event.seq,
        "status": event.status,
        "reason": event.reason,
        "at": event.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "signer_kid": event.signer_kid,
        "cose": base64.b64encode(event.cose).decode("ascii"),
    }


def queue_event(uow: UnitOfWork, event: StoredEvent, clock: HLC | None, now: datetime) -> None:
    """Queue the event for the server in the caller's transaction (no clock: this PC does not sync)."""
    if clock is None:
        return
    fields = status_change_fields(event)
    stamp = encode(clock.now())
    uow.outbox.append(
        kind=RecordKind.PRESCRIPTION_STATUS, record_id=event.id, op=Op.UPSERT, fields=fields,
        field_hlcs=dict.fromkeys(fields, stamp), hlc=stamp, now=now, actor=str(event.signer_id),
    )  # fmt: skip


class RxStatusService:
    """Status events of signed prescriptions: read them, cancel / supersede, sign a stale intent again."""

    def __init__(
        self,
        uows: UnitOfWorkFactory,
        signing: SigningService,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: HLC | None = None,
    ) -> None:
        self._uows = uows
        self._signing = signing
        self._now = now
        self._clock = clock

    # -- reading ---------------------------------------------------------------------------------------------

    def status(self, prescription_id: uuid.UUID) -> RxStatus:
        with self._uows.read() as uow:
            return status_of(StatusEventRepository(uow.connection).for_prescription(prescription_id))

    def for_encounter(self, encounter_id: uuid.UUID) -> tuple[SignedRecord, RxStatus] | None:
        """The encounter's signed prescription and its status; None when it has no signed prescription."""
        with self._uows.read() as uow:
            rx = PrescriptionRepository(uow.connection).for_encounter(encounter_id)
            signed = SignedPrescriptionRepository(uow.connection).find(rx.id) if rx is not None else None
            if signed is None:
                return None
            return signed, status_of(StatusEventRepository(uow.connection).for_prescription(signed.prescription_id))

    # -- recording -------------------------------------------------------------------------------------------

    def cancel(self, user_id: uuid.UUID, prescription_id: uuid.UUID, reason: str) -> RxStatus:
        """Cancel the doctor's signed prescription (worker thread): signed here, queued for the server."""
        return self._record(user_id, prescription_id, "cancelled", reason)

    def supersede(self, user_id: uuid.UUID, prescription_id: uuid.UUID, reason: str) -> RxStatus:
        """Mark the doctor's signed prescription superseded (re-issued), as `cancel` does."""
        return self._record(user_id, prescription_id, "superseded", reason)

    def _record(self, user_id: uuid.UUID, prescription_id: uuid.UUID, status: Ending, reason: str) -> RxStatus:
        reason = " ".join(reason.split())
        if not 1 <= len(reason) <= MAX_REASON:
            raise ReasonRequired()
        with self._uows.read() as uow:
            signed = SignedPrescriptionRepository(uow.connection).find(prescription_id)
            known = StatusEventRepository(uow.connection).for_prescription(prescription_id)
        if signed is None:
            raise NotSigned()
        if signed.signer_id != user_id:
            raise NotYourPrescription()
        self._refuse_if_ended(known)
        kid = self._signing.signer(user_id).claims.kid
        at = self._now().astimezone(UTC).replace(microsecond=0)
        seq = sum(1 for e in known if e.state in LIVE) + 1
        intent = StatusEvent(prescription_id, signed.content_hash, seq, status, reason, at, kid)
        cose = self._signing.sign_status_event(user_id, intent)
        event = StoredEvent(
            id=uuid.uuid4(), prescription_id=prescription_id, seq=seq, status=status, reason=reason, at=at,
            signer_id=user_id, signer_kid=kid, cose=cose, state="pending", refusal=None, created_at=at, updated_at=at,
        )  # fmt: skip
        return self._uows.writer.run(self._store, event)

    @staticmethod
    def _refuse_if_ended(known: list[StoredEvent]) -> None:
        current = status_of(known)
        if current.ended:
            assert current.event is not None
            raise AlreadyEnded(detail=f"It is already {current.event.status}: {current.event.reason}")

    def _store(self, event: StoredEvent) -> RxStatus:
        now = self._now()
        with self._uows.write() as uow:
            repo = StatusEventRepository(uow.connection)
            known = repo.for_prescription(event.prescription_id)
            self._refuse_if_ended(known)  # again, inside the transaction: a pull may have brought one meanwhile
            if any(e.seq == event.seq and e.state in LIVE for e in known):
                raise AlreadyEnded(detail="An event arrived for this prescription meanwhile; open it again")
            repo.add(event)
            queue_event(uow, event, self._clock, now)
            uow.commit()
            return status_of([*known, event])

    # -- a seq taken meanwhile -------------------------------------------------------------------------------

    def resign_stale(self) -> int:
        """Sign each stale intent again with the next seq, once the pull brought the event that took its seq.

        Runs before a sync round (worker thread); never raises (a key missing on this PC leaves the intent
        stale, logged). Returns how many were signed again.
        """
        with self._uows.read() as uow:
            repo = StatusEventRepository(uow.connection)
            stale = repo.in_state("stale")
            by_rx = repo.for_prescriptions({e.prescription_id for e in stale})
            hashes = {
                e.prescription_id: SignedPrescriptionRepository(uow.connection).find(e.prescription_id) for e in stale
            }
        done = 0
        for event in stale:
            others = [e for e in by_rx.get(event.prescription_id, []) if e.id != event.id]
            live = [e for e in others if e.state in LIVE]
            ended = next((e for e in live if e.status in TERMINAL), None)
            signed = hashes.get(event.prescription_id)
            if ended is not None:
                why = f"signed_immutable: the prescription was already {ended.status} (event {ended.seq})"
                self._uows.writer.run(self._refuse, event.id, why)
                continue
            seq = len(live) + 1
            if seq <= event.seq or signed is None or event.signer_id is None:
                continue  # the event that took its seq has not been pulled yet
            try:
                at = self._now().astimezone(UTC).replace(microsecond=0)
                kid = self._signing.signer(event.signer_id).claims.kid
                intent = StatusEvent(
                    event.prescription_id,
                    signed.content_hash,
                    seq,
                    event.status,  # type: ignore[arg-type]
                    event.reason,
                    at,
                    kid,
                )
                cose = self._signing.sign_status_event(event.signer_id, intent)
            except (KnownError, DomainError) as exc:
                log.warning("could not sign status event %s again: %s", event.id, exc)
                continue
            self._uows.writer.run(self._resign, event, seq, at, kid, cose)
            done += 1
        return done

    def _refuse(self, event_id: uuid.UUID, why: str) -> None:
        with self._uows.write() as uow:
            StatusEventRepository(uow.connection).set_state(event_id, "refused", refusal=why, now=self._now())
            uow.commit()

    def _resign(self, event: StoredEvent, seq: int, at: datetime, kid: str, cose: bytes) -> None:
        now = self._now()
        with self._uows.write() as uow:
            repo = StatusEventRepository(uow.connection)
            repo.resign(event.id, seq=seq, at=at, kid=kid, cose=cose, now=now)
            again = repo.find(event.id)
            if again is not None and again.state == "pending":
                queue_event(uow, again, self._clock, now)
            uow.commit()
