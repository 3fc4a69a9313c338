"""Sign and print a prescription on this PC, offline: the saved draft becomes a signed, frozen document.

`RxSigningService.sign_and_print` takes the encounter's saved prescription (saving already refused unresolved
lines, contraindications, refused medicines and un-overridden major alerts), builds the content the QR
carries (`shared.signing.content.PrescriptionContent`: clinic, patient, coded diagnoses, each line,
follow-up), signs it with the doctor's certified key (`SigningService`, which checks the QR verifies as a
pharmacist would), stores the signature and freezes the prescription in one transaction, and writes the A5
(or A4) PDF with the QR. Signing again answers the stored signature and prints it again: nothing is signed
twice. With a clock, the signed record is queued for sync (``signed_prescription``) in the transaction that
stores it; the server verifies the signature again and stores it frozen.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from desktop.errors import KnownError
from desktop.printing.model import PrintablePrescription
from desktop.services.auth import CLINIC_NAME
from desktop.services.printing import write_prescription_pdf
from desktop.services.signing import SigningService
from desktop.store.encounters import EncounterRepository, utc_text
from desktop.store.prescriptions import PrescriptionRepository, StoredPrescription
from desktop.store.rx_status import StatusEventRepository
from desktop.store.signed_prescriptions import SignedPrescriptionRepository, SignedRecord
from desktop.store.unit_of_work import UnitOfWorkFactory
from shared.clock import HLC, encode
from shared.records.encounter import SoapNote
from shared.records.patient import Patient
from shared.signing import cose as cose_codec
from shared.signing.content import AyushItem, Clinic, Diagnosis, Medicine, PrescriptionContent
from shared.signing.content import Patient as RxPatient
from shared.signing.rx import decode_content
from shared.signing.status import TERMINAL
from shared.sync.protocol import JsonValue, Op, RecordKind

RX_VALID_DAYS = 30
"""How long a pharmacy may dispense against a printed prescription (longer courses extend it)."""


class NothingToSign(KnownError):
    title = "There is no prescription to sign"
    default_message = "Save the prescription (Ctrl+S) before signing it."
    action = "Type the medicines in the Rx pad, save, then sign."
    code = "desktop.signing.nothing_to_sign"


class NotThePrescriber(KnownError):
    title = "Only the prescribing doctor can sign"
    default_message = "This prescription was written by another doctor; only he can sign it."
    action = "Ask the prescribing doctor to sign it on his own sign-in."
    code = "desktop.signing.not_prescriber"


class PrescriptionEnded(KnownError):
    title = "This prescription is cancelled"
    default_message = "A cancelled or superseded prescription is never printed again."
    action = "Write a new prescription (a new encounter) if the patient needs one."
    code = "desktop.signing.prescription_ended"


@dataclass(frozen=True)
class SignedPrint:
    prescription_id: uuid.UUID
    pdf: Path
    qr_payload: str
    content_hash: str
    signed_at: datetime
    already_signed: bool


def _age(patient: Patient, on: date) -> int | None:
    if patient.date_of_birth is not None:
        born = patient.date_of_birth
        return on.year - born.year - int((on.month, on.day) < (born.month, born.day))
    return max(0, on.year - patient.year_of_birth) if patient.year_of_birth else None


def _diagnoses(note: SoapNote | None) -> tuple[Diagnosis, ...]:
    if note is None or note.assessment is None:
        return ()
    found = [note.assessment.primary_diagnosis, *note.assessment.secondary_diagnoses]
    return tuple(Diagnosis(text=d.condition, code=d.code) for d in found if d is not None)


def _followup(note: SoapNote | None) -> str | None:
    plan = note.plan if note is not None else None
    followup = plan.followup if plan is not None else None
    return str(followup) if followup else None


def _medicine(line: dict[str, Any]) -> Medicine:
    keep = (
        "generic_name",
        "strength",
        "dosage_form",
        "route",
        "frequency",
        "duration_days",
        "quantity",
        "instructions",
    )
    return Medicine(**{k: line[k] for k in keep if line.get(k) is not None})


def _ayush(line: dict[str, Any]) -> AyushItem:
    keep = ("name", "dose", "frequency", "duration_days", "instructions")
    return AyushItem(**{k: line[k] for k in keep if line.get(k) is not None})


def build_content(
    rx: StoredPrescription, patient: Patient, note: SoapNote | None, clinic_name: str, now: datetime
) -> PrescriptionContent:
    """What the QR carries for this prescription, signed at ``now``."""
    issued = now.astimezone(UTC).replace(microsecond=0)
    longest = max([RX_VALID_DAYS, *(int(m.get("duration_days") or 0) for m in rx.medications)])
    return PrescriptionContent(
        rx_id=rx.id,
        issued_at=issued,
        expires_at=issued + timedelta(days=longest),
        clinic=Clinic(name=clinic_name or "Clinic"),
        patient=RxPatient(
            name=patient.name,
            age_years=_age(patient, issued.date()),
            sex=patient.gender,
            abha_number=patient.abha_number,
        ),
        diagnosis=_diagnoses(note),
        medicines=tuple(_medicine(m) for m in rx.medications),
        ayush=tuple(_ayush(a) for a in rx.ayush_medications),
        followup=_followup(note),
    )


class RxSigningService:
    def __init__(
        self,
        uows: UnitOfWorkFactory,
        signing: SigningService,
        data_dir: Path,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: HLC | None = None,
    ) -> None:
        self._clock = clock
        self._uows = uows
        self._signing = signing
        self._data_dir = data_dir
        self._now = now

    def signed(self, encounter_id: uuid.UUID) -> SignedRecord | None:
        with self._uows.read() as uow:
            rx = PrescriptionRepository(uow.connection).for_encounter(encounter_id)
            return SignedPrescriptionRepository(uow.connection).find(rx.id) if rx is not None else None

    def sign_and_print(
        self, user_id: uuid.UUID, encounter_id: uuid.UUID, paper: Literal["A5", "A4"] = "A5"
    ) -> SignedPrint:
        """Sign the encounter's saved prescription (once) and write its PDF; runs on a worker thread."""
        with self._uows.read() as uow:
            rx = PrescriptionRepository(uow.connection).for_encounter(encounter_id)
            if rx is None:
                raise NothingToSign()
            encounter = EncounterRepository(uow.connection).get(encounter_id)
            patient = uow.patients.get(rx.patient_id)
            clinic_name = uow.sync_state.get(CLINIC_NAME) or ""
            existing = SignedPrescriptionRepository(uow.connection).find(rx.id)
            ended = next(
                (e for e in StatusEventRepository(uow.connection).for_prescription(rx.id) if e.status in TERMINAL
                 and e.state != "refused"),
                None,
            )  # fmt: skip
        if ended is not None:  # its printout must not come out again as if valid
            raise PrescriptionEnded(f"This prescription was {ended.status}: {ended.reason}")
        signer = self._signing.signer(user_id)
        if existing is None:
            if rx.prescriber_id != user_id:
                raise NotThePrescriber()
            content = build_content(rx, patient, encounter.soap_note, clinic_name, self._now())
            signed, check = self._signing.sign_verified(user_id, content)
            record = SignedRecord(
                prescription_id=rx.id,
                signer_id=user_id,
                signer_kid=signer.claims.kid,
                signed_at=content.issued_at,
                expires_at=content.expires_at,
                content_hash=signed.content_hash,
                cose=signed.cose_bytes,
                qr_payload=signed.qr_payload,
                sandbox=check.sandbox,
            )
            self._uows.writer.run(self._store, record, rx)
        else:
            record = existing
            content = decode_content(cose_codec.decode_sign1(record.cose).payload)
        printable = PrintablePrescription.from_signed(
            content, signer.claims, record.content_hash, record.qr_payload, record.sandbox
        )
        pdf = write_prescription_pdf(self._data_dir, printable, paper)
        return SignedPrint(rx.id, pdf, record.qr_payload, record.content_hash, record.signed_at, existing is not None)

    def _store(self, record: SignedRecord, rx: StoredPrescription) -> None:
        now = self._now()
        with self._uows.write() as uow:
            SignedPrescriptionRepository(uow.connection).add(record, finalised_at=now)
            if self._clock is not None:  # queued with the signature, in its transaction (DESIGN §4)
                fields = signed_change_fields(record, rx)
                stamp = encode(self._clock.now())
                uow.outbox.append(
                    kind=RecordKind.SIGNED_PRESCRIPTION, record_id=rx.id, op=Op.UPSERT, fields=fields,
                    field_hlcs=dict.fromkeys(fields, stamp), hlc=stamp, now=now, actor=str(record.signer_id),
                )  # fmt: skip
            uow.commit()


def signed_change_fields(record: SignedRecord, rx: StoredPrescription) -> dict[str, JsonValue]:
    """The ``signed_prescription`` change the server verifies and stores (`sync_server.services.rx_sync`)."""
    return {
        "encounter_id": str(rx.encounter_id),
        "patient_id": str(rx.patient_id),
        "prescriber_id": str(rx.prescriber_id),
        "cose": base64.b64encode(record.cose).decode("ascii"),
        "qr_payload": record.qr_payload,
        "content_hash": record.content_hash,
        "signed_at": utc_text(record.signed_at),
        "medications": rx.medications,
        "ayush_medications": rx.ayush_medications,
        "advisories": rx.advisories,
        "policy_version": rx.policy_version,
    }
