"""Signing prescriptions on the server: sign, signed status events, verification (keys: `doctor_keys`).

A signed prescription never changes: `sign_prescription` freezes it (the database refuses later changes
too), a repeated sign answers the stored signature, and what happens afterwards is a signed, monotonic
status event. The design and the decisions are in docs/signing_server.md.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import asyncpg
from pydantic import BaseModel, Field

from shared.fhir.prescription_record import (
    AyushIn,
    ClinicIn,
    DiagnosisIn,
    MedicineIn,
    PatientIn,
    PractitionerIn,
    build_prescription_record,
)
from shared.ids import uuid7
from shared.records.prescription import Draft
from shared.signing import cose, keys
from shared.signing.errors import VerificationError
from shared.signing.revocation import RevocationList as CheckedRevocationList
from shared.signing.revocation import parse_revocation_list
from shared.signing.rx import (
    AyushItem,
    Clinic,
    Medicine,
    Patient,
    PayloadTooLarge,
    PrescriptionContent,
    encode_qr_payload,
    verify_qr_payload,
)
from shared.signing.rx import sign_prescription as sign_content
from shared.signing.standing import apply_standing
from shared.signing.status import TERMINAL, EventStatus, StatusEvent, encode_event, read_event
from shared.sync.protocol import RecordKind
from sync_server import errors
from sync_server.db import encounters as encounters_db
from sync_server.db import signing as signing_db
from sync_server.db import sync as sync_db
from sync_server.services import audit as audit_service
from sync_server.services import doctor_keys
from sync_server.services.context import Actor
from sync_server.signing import qr
from sync_server.signing.issuer import SigningContext

_TERMINAL = TERMINAL


# --- problems --------------------------------------------------------------------------------------------


class SignedPrescriptionImmutable(errors.ProblemError):
    status = 409
    code = "rx.signed_immutable"
    title = "This prescription is signed and can never change: record a status event or write a new one"


class StatusRefused(errors.ProblemError):
    status = 409
    code = "rx.status_refused"
    title = "This status change is not possible for this prescription"


class QrTooLarge(errors.ProblemError):
    status = 422
    code = "rx.qr_too_large"
    title = "The signed prescription does not fit in one printable QR code"


# --- answers ---------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class StatusEventOut(BaseModel):
    id: uuid.UUID
    seq: int
    status: EventStatus
    reason: str
    at: datetime
    actor_id: uuid.UUID
    signer_kid: str
    cose: str = Field(description="The signed event: COSE_Sign1 bytes, base64")


class SignedPrescriptionOut(Draft):
    signed_at: datetime | None = None
    content_hash: str | None = Field(default=None, description="Hex SHA-256 of the canonical signed content")
    signer_kid: str | None = None
    qr_payload: str | None = None
    status_events: list[StatusEventOut] = Field(default_factory=list)


class SignAnswer(BaseModel):
    qr_code: str = Field(description="PNG of the QR code: data:image/png;base64,…")
    signature_hash: str = Field(description="Hex SHA-256 of the canonical signed content")
    qr_payload: str = Field(description="The exact text inside the QR code")
    kid: str = Field(description="Key id of the doctor key that signed")
    signed_at: datetime
    already_signed: bool = Field(description="True when this answers a repeated request with the stored signature")
    prescription: SignedPrescriptionOut


KNOWN_FROM = "the IntegMed server"


class StandingOut(BaseModel):
    """The latest signed status event this server holds for the prescription (what decides its standing)."""

    status: str = Field(description="`dispensed`, `cancelled` or `superseded`", examples=["cancelled"])
    at: datetime = Field(description="When the event was signed (UTC)")
    reason: str = Field(description="The signer's reason or note, as signed", examples=["Wrong dose printed"])
    seq: int = Field(description="The event's number in the prescription's sequence (1, 2, ...)")
    known_from: str = Field(examples=[KNOWN_FROM])


class VerificationOut(BaseModel):
    valid: bool
    reason: str = Field(
        description="`valid`, or why not (e.g. `bad_signature`, `revoked_key`, `expired`; `cancelled` or "
        "`superseded` when the signature is good but its prescriber ended it)"
    )
    message: str
    content: dict[str, Any] | None = Field(default=None, description="The signed prescription's content")
    kid: str | None = Field(default=None, description="Key id of the doctor key that signed")
    doctor: dict[str, Any] | None = Field(default=None, description="The doctor's certified identity")
    signed_at: datetime | None = None
    content_hash: str | None = None
    sandbox: bool = Field(default=False, description="Vouched for by the public SANDBOX root: a test document")
    notes: list[str] = Field(default_factory=list)
    standing: StandingOut | None = Field(
        default=None, description="What this server knows happened to it after signing; null when nothing did"
    )


# --- helpers ---------------------------------------------------------------------------------------------


async def _audit(
    conn: asyncpg.Connection,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    await audit_service.record(
        conn, actor, action=action, entity_type=entity_type, entity_id=entity_id, details=details
    )


def _event(row: asyncpg.Record) -> StatusEventOut:
    return StatusEventOut(**{**dict(row), "cose": _b64(row["cose"])})


async def _signed_out(conn: asyncpg.Connection, rx: dict[str, Any]) -> SignedPrescriptionOut:
    events = [_event(e) for e in await signing_db.status_events(conn, rx["id"])] if rx["status"] == "signed" else []
    return SignedPrescriptionOut.model_validate({**rx, "status_events": events})


# --- signing ---------------------------------------------------------------------------------------------


def _age(patient: asyncpg.Record, on: date) -> int:
    born: date | None = patient["date_of_birth"]
    if born is not None:
        return on.year - born.year - int((on.month, on.day) < (born.month, born.day))
    return on.year - int(patient["year_of_birth"])


def prescription_record_bundle(
    rx: dict[str, Any], facts: asyncpg.Record, patient: asyncpg.Record, soap_note: dict[str, Any] | None
) -> dict[str, Any]:
    """THE place the ABDM FHIR PrescriptionRecord bundle of a signed prescription is built.

    `sign_prescription` stores it with `sync_server.db.signing.store_fhir_bundle`, in the signing transaction,
    after `validate_bundle` (R4B models + the ABDM profile rules) accepted it.
    """
    assessment = (soap_note or {}).get("assessment") or {}
    diagnoses: list[DiagnosisIn] = []
    for dx in [assessment.get("primary_diagnosis"), *(assessment.get("secondary_diagnoses") or [])]:
        if isinstance(dx, dict) and (dx.get("condition") or dx.get("code")):
            item: DiagnosisIn = {}
            if dx.get("condition"):
                item["text"] = str(dx["condition"])
            if dx.get("code"):
                item["code"] = str(dx["code"])
            if dx.get("system") in ("icd10", "snomed"):
                item["system"] = dx["system"]
            diagnoses.append(item)
    person: PatientIn = {"id": patient["id"], "name": patient["name"], "gender": patient["gender"]}
    if patient["year_of_birth"]:
        person["birth_year"] = int(patient["year_of_birth"])
    for key in ("abha_number", "abha_address"):
        if patient[key]:
            person[key] = str(patient[key])
    practitioner: PractitionerIn = {
        "id": facts["id"],
        "name": facts["name"],
        "registration_council": facts["registration_council"] or "",
        "registration_number": facts["registration_number"] or "",
    }
    if facts["hpr_id"]:
        practitioner["hpr_id"] = facts["hpr_id"]
    if facts["qualification"]:
        practitioner["qualification"] = facts["qualification"]
    clinic: ClinicIn = {"id": facts["clinic_id"], "name": facts["clinic_name"]}
    if facts["clinic_hfr_id"]:
        clinic["hfr_id"] = facts["clinic_hfr_id"]
    bundle = build_prescription_record(
        rx_id=rx["id"],
        issued_at=rx["signed_at"],
        patient=person,
        practitioner=practitioner,
        clinic=clinic,
        encounter_id=rx["encounter_id"],
        diagnoses=diagnoses,
        medicines=[cast(MedicineIn, {k: v for k, v in line.items() if v is not None}) for line in rx["medications"]],
        ayush=[cast(AyushIn, {k: v for k, v in line.items() if v is not None}) for line in rx["ayush_medications"]],
        signature={"hash": rx["content_hash"], "signed_at": rx["signed_at"], "kid": rx["signer_kid"]},
    )
    # Imported here: the FHIR R4B models cost an API process ≈ 20 MiB, and only signing needs them.
    from shared.fhir.validation import validate_bundle

    validate_bundle(bundle)
    return bundle


async def _answer(conn: asyncpg.Connection, rx: dict[str, Any], *, already_signed: bool) -> SignAnswer:
    png = qr.render_png(rx["qr_payload"])
    return SignAnswer(
        qr_code=qr.png_data_uri(png),
        signature_hash=rx["content_hash"],
        qr_payload=rx["qr_payload"],
        kid=rx["signer_kid"],
        signed_at=rx["signed_at"],
        already_signed=already_signed,
        prescription=await _signed_out(conn, rx),
    )


async def sign_prescription(
    conn: asyncpg.Connection, ctx: SigningContext, actor: Actor, prescription_id: uuid.UUID
) -> SignAnswer:
    """Sign the prescriber's draft with his server-held key, freeze it, answer the QR.

    Idempotent: signing an already signed prescription again (a retried request) answers the stored
    signature with ``already_signed`` set; nothing is signed twice.
    """
    rx = await signing_db.lock_prescription(conn, actor.clinic_id, prescription_id)
    if rx is None:
        raise errors.NotFound("No prescription with this id in your clinic")
    if rx["prescriber_id"] != actor.user_id:
        raise errors.Forbidden("Only the prescribing doctor may sign this prescription")
    if rx["status"] == "signed":
        return await _answer(conn, rx, already_signed=True)
    facts = await doctor_keys.active_doctor(conn, actor)
    patient = await signing_db.patient_facts(conn, actor.clinic_id, rx["patient_id"])
    now = datetime.now(UTC).replace(microsecond=0)
    private, key_row, created = await doctor_keys.server_key(conn, ctx, actor, facts, now)
    signed = _sign_content(ctx, rx, facts, patient, private, key_row, now)
    rx = await signing_db.mark_signed(conn, prescription_id, signed_at=now, **signed)
    encounter = await encounters_db.get(conn, actor.clinic_id, rx["encounter_id"])
    bundle = prescription_record_bundle(rx, facts, patient, encounter["soap_note"] if encounter else None)
    await signing_db.store_fhir_bundle(
        conn,
        resource_id=uuid7(),
        clinic_id=actor.clinic_id,
        resource_type="PrescriptionRecord",
        source_id=str(prescription_id),
        bundle=bundle,
    )
    if created:
        await doctor_keys.audit_key(conn, actor, "signing.certificate_issued", key_row["kid"], {"held_by": "server"})
    await _audit(
        conn,
        actor,
        "prescription.sign",
        "prescription",
        str(prescription_id),
        {"kid": key_row["kid"], "content_hash": signed["content_hash"]},
    )
    # Last in the transaction (it holds the clinic's feed lock until commit): the clinic's PCs pull it.
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.SIGNED_PRESCRIPTION, [prescription_id], None)
    return await _answer(conn, rx, already_signed=False)


def _sign_content(
    ctx: SigningContext,
    rx: dict[str, Any],
    facts: asyncpg.Record,
    patient: asyncpg.Record,
    private: keys.Ed25519PrivateKey,
    key_row: asyncpg.Record,
    now: datetime,
) -> dict[str, Any]:
    def text(value: str | None, limit: int) -> str | None:
        value = (value or "").strip()
        return value[:limit] or None

    content = PrescriptionContent(
        rx_id=rx["id"],
        issued_at=now,
        expires_at=now + timedelta(days=ctx.rx_valid_days),
        clinic=Clinic(name=facts["clinic_name"], address=text(facts["clinic_address"], 500)),
        patient=Patient(
            name=patient["name"],
            age_years=max(0, min(150, _age(patient, now.date()))),
            sex=patient["gender"],
            abha_number=patient["abha_number"],
        ),
        medicines=tuple(Medicine(**line) for line in rx["medications"]),
        ayush=tuple(AyushItem(**line) for line in rx["ayush_medications"]),
    )
    try:
        # Both certificates ride in the QR, so a verifier holding only the root (the outside check: `integmed rx
        # verify` without a data dir) can check it; the codec's budget (rx.MAX_QR_CHARS) applies.
        signed = sign_content(content, private, key_row["certificate"], ctx.issuer_cert.raw)
    except PayloadTooLarge as exc:
        raise QrTooLarge(exc.message, chars=exc.chars, limit=exc.limit) from exc
    return {
        "content_hash": signed.content_hash,
        "signature": signed.signature,
        "cose": signed.cose_bytes,
        "qr_payload": signed.qr_payload,
        "signer_kid": key_row["kid"],
    }


async def get_signed(conn: asyncpg.Connection, actor: Actor, prescription_id: uuid.UUID) -> SignedPrescriptionOut:
    rx = await signing_db.get_prescription(conn, actor.clinic_id, prescription_id)
    if rx is None:
        raise errors.NotFound("No prescription with this id in your clinic")
    out = await _signed_out(conn, rx)
    await _audit(conn, actor, "prescription.read", "prescription", str(prescription_id))
    return out


async def ensure_editable(conn: asyncpg.Connection, clinic_id: uuid.UUID, prescription_id: uuid.UUID) -> None:
    """Refuse (409 ``rx.signed_immutable``) any change to a signed prescription; call it before editing."""
    if await signing_db.prescription_status(conn, clinic_id, prescription_id) == "signed":
        raise SignedPrescriptionImmutable(f"Prescription {prescription_id} is signed")


# --- status events ---------------------------------------------------------------------------------------


def _event_payload(rx: dict[str, Any], seq: int, status: str, reason: str, at: datetime, kid: str) -> bytes:
    """What a status event's signature covers: it names the signed content it is about (by hash).

    The codec is `shared.signing.status` (a doctor's PC signs the same payload offline and pushes it by sync,
    `sync_server.services.rx_sync`).
    """
    event = StatusEvent(rx["id"], rx["content_hash"], seq, cast(EventStatus, status), reason, at, kid)
    return encode_event(event)


async def record_status(
    conn: asyncpg.Connection,
    ctx: SigningContext,
    actor: Actor,
    prescription_id: uuid.UUID,
    status: EventStatus,
    reason: str,
) -> StatusEventOut:
    """Append a signed status event. Monotonic: dispensed at most once, nothing after cancelled/superseded.

    Any doctor of the clinic may record dispensing; only the prescriber may cancel or supersede.
    """
    rx = await signing_db.lock_prescription(conn, actor.clinic_id, prescription_id)
    if rx is None:
        raise errors.NotFound("No prescription with this id in your clinic")
    if rx["status"] != "signed":
        raise StatusRefused("A draft has no status events: sign it first", current="draft")
    if status in _TERMINAL and rx["prescriber_id"] != actor.user_id:
        raise errors.Forbidden("Only the prescribing doctor may cancel or supersede this prescription")
    events = await signing_db.status_events(conn, prescription_id)
    ended = next((e for e in events if e["status"] in _TERMINAL), None)
    if ended is not None:
        raise StatusRefused(
            f"The prescription is already {ended['status']}; nothing may follow", current=ended["status"]
        )
    if status == "dispensed" and any(e["status"] == "dispensed" for e in events):
        raise StatusRefused("The prescription is already dispensed", current="dispensed")
    facts = await doctor_keys.active_doctor(conn, actor)
    at = datetime.now(UTC).replace(microsecond=0)
    private, key_row, created = await doctor_keys.server_key(conn, ctx, actor, facts, at)
    seq = len(events) + 1
    payload = _event_payload(rx, seq, status, reason, at, key_row["kid"])
    row = await signing_db.insert_status_event(
        conn,
        event_id=uuid7(),
        prescription_id=prescription_id,
        clinic_id=actor.clinic_id,
        seq=seq,
        status=status,
        reason=reason,
        at=at,
        actor_id=actor.user_id,
        signer_kid=key_row["kid"],
        cose=cose.sign1(payload, private, kid=keys.kid_bytes(key_row["public_key"])),
    )
    if created:
        await doctor_keys.audit_key(conn, actor, "signing.certificate_issued", key_row["kid"], {"held_by": "server"})
    await _audit(
        conn, actor, f"prescription.{status}", "prescription", str(prescription_id), {"seq": seq, "reason": reason}
    )
    # Last in the transaction (it holds the clinic's feed lock until commit): the clinic's PCs pull the event.
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.PRESCRIPTION_STATUS, [row["id"]], None)
    return _event(row)


async def list_status(conn: asyncpg.Connection, actor: Actor, prescription_id: uuid.UUID) -> list[StatusEventOut]:
    rx = await signing_db.get_prescription(conn, actor.clinic_id, prescription_id)
    if rx is None:
        raise errors.NotFound("No prescription with this id in your clinic")
    return [_event(e) for e in await signing_db.status_events(conn, prescription_id)]


# --- revocation and trust --------------------------------------------------------------------------------


async def verify_signed_prescription(
    conn: asyncpg.Connection, ctx: SigningContext, signed: str | bytes
) -> VerificationOut:
    """Verify a signed prescription as any offline verifier would, plus this server's revocations.

    Args:
        signed: the QR text (``IMRX1:…``) or the COSE_Sign1 bytes (what a desktop sends through sync).

    Returns:
        The verification; never raises for bad input (``valid`` false with a reason instead).
    """
    text = encode_qr_payload(signed, limit=None) if isinstance(signed, bytes) else signed
    data, _, _ = await doctor_keys.signed_revocations(conn, ctx)
    try:
        lists: list[CheckedRevocationList] = [parse_revocation_list(data, ctx.trust)]
    except VerificationError as exc:  # pragma: no cover - our own list against our own trust is a bug
        raise RuntimeError(f"the server's own revocation list does not verify: {exc.message}") from exc
    result = verify_qr_payload(text, ctx.trust, lists)
    if result.content is not None:
        # The QR cannot say that its prescriber cancelled it, nor that a pharmacy dispensed it: this server's
        # status events can (each was verified when it was recorded).
        events = [read_event(row["cose"]) for row in await signing_db.status_events(conn, result.content.rx_id)]
        result = apply_standing(result, events, known_from=KNOWN_FROM)
    doctor = result.doctor
    return VerificationOut(
        valid=result.valid,
        reason=result.reason.value,
        message=result.message,
        content=result.content.model_dump(mode="json") if result.content else None,
        kid=doctor.kid if doctor else None,
        doctor=doctor.model_dump(mode="json", exclude={"public_key", "role"}) if doctor else None,
        signed_at=result.signed_at,
        content_hash=result.content_hash,
        sandbox=result.sandbox,
        notes=list(result.notes),
        standing=StandingOut(**dataclasses.asdict(result.standing)) if result.standing else None,
    )
