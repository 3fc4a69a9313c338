"""Signed prescriptions arriving by sync: verify every signature, store the prescription frozen, refuse changes.

A doctor signs a prescription on his PC, offline, with his own key certified by this server
(`desktop.services.rx_signing`). The PC then pushes a ``signed_prescription`` change: the COSE_Sign1 bytes
(base64), the QR text and the prescription's lines. For each one, in batch order (after the batch's
encounters, which it needs), the answer is:

* ``applied`` (``server_version`` 1): verified and stored as a ``signed`` prescription row (the database
  trigger then refuses any change to it); or the same signed prescription is already stored (a replay).
* ``rejected`` ``bad_signature``: the signature does not verify (the message gives the verifier's reason
  code and sentence: ``bad_signature``, ``revoked_key``, ``expired``, ``untrusted_chain`` …), the doctor
  certificate was not issued by this server's issuer, the signing key is not the prescriber's or not the
  key of the pushing device's doctor, or the signed content is not this prescription (``rx_id``,
  ``content_hash``, QR text).
* ``rejected`` ``signed_immutable``: the id is already a signed prescription with another signature, or a
  delete.
* ``rejected`` ``invalid_record``: malformed fields, an encounter or patient the server does not hold (push
  the encounter first), or a server without signing keys (it cannot verify anything).
* ``rejected`` ``not_in_scope``: the prescription or its encounter belongs to another clinic.

Nothing of a rejected change is stored.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Annotated, Any

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.clock import HLC, check_incoming, decode, system_wall_ms
from shared.records.validation import violation_from
from shared.signing import cose as cose_codec
from shared.signing.rx import encode_qr_payload
from shared.sync.protocol import Change, ChangeResult, ChangeStatus, JsonValue, Op, PushRequest, RecordKind, RejectCode
from sync_server.db import audit
from sync_server.services import signing as signing_service
from sync_server.services.change_results import RejectChange as _Reject
from sync_server.services.change_results import rejected as _rejected
from sync_server.services.context import Actor
from sync_server.signing.issuer import SigningContext

SERVER_VERSION = 1
"""A signed prescription never changes, so its server version is always 1."""


class SignedFields(BaseModel):
    """The fields of a ``signed_prescription`` change."""

    model_config = ConfigDict(extra="forbid")

    encounter_id: uuid.UUID
    patient_id: uuid.UUID
    prescriber_id: uuid.UUID
    cose: Annotated[str, Field(min_length=1, max_length=20_000)]
    qr_payload: Annotated[str, Field(min_length=1, max_length=20_000)]
    content_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    signed_at: AwareDatetime
    medications: Annotated[list[dict[str, JsonValue]], Field(max_length=50)]
    ayush_medications: Annotated[list[dict[str, JsonValue]], Field(max_length=50)] = Field(default_factory=list)
    advisories: Annotated[list[JsonValue], Field(max_length=50)] = Field(default_factory=list)
    policy_version: Annotated[str, Field(min_length=1, max_length=100)]


async def push(
    conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC, ctx: SigningContext | None
) -> list[tuple[int, ChangeResult]]:
    """Verify and store the batch's signed prescriptions; (index in the batch, result) for each of them."""
    out: list[tuple[int, ChangeResult]] = []
    entries: list[dict[str, Any]] = []
    for index, change in enumerate(req.changes):
        if change.kind is not RecordKind.SIGNED_PRESCRIPTION:
            continue
        try:
            new = await _one(conn, actor, change, clock, ctx)
        except _Reject as rej:
            out.append((index, _rejected(change, rej.code, rej.message[:2000])))
            entries.append(_entry("sync.signed_prescription.rejected", change, {"reason": str(rej.code)}))
            continue
        result = ChangeResult(
            kind=RecordKind.SIGNED_PRESCRIPTION, id=change.id, status=ChangeStatus.APPLIED, server_version=1
        )
        out.append((index, result))
        if new:
            entries.append(_entry("sync.signed_prescription.store", change, {"batch": str(req.batch_id)}))
    if entries:
        await audit.append_many(
            conn,
            clinic_id=actor.clinic_id,
            actor_id=actor.user_id,
            actor_role=actor.role,
            client_ip=actor.meta.client_ip,
            user_agent=actor.meta.user_agent,
            entries=entries,
        )
    return out


def _entry(action: str, change: Change, details: dict[str, str]) -> dict[str, Any]:
    return {"action": action, "entity_type": "prescription", "entity_id": str(change.id), "details": details}


async def _author(conn: asyncpg.Connection, actor: Actor) -> uuid.UUID:
    enrolled_by: uuid.UUID | None = await conn.fetchval("SELECT enrolled_by FROM devices WHERE id = $1", actor.user_id)
    return enrolled_by or actor.user_id


async def _one(conn: asyncpg.Connection, actor: Actor, change: Change, clock: HLC, ctx: SigningContext | None) -> bool:
    """Verify and store one signed prescription; whether it was new. Raises `_Reject`."""
    if change.op is Op.DELETE:
        raise _Reject(RejectCode.SIGNED_IMMUTABLE, "A signed prescription cannot be deleted")
    stamp = decode(change.hlc)
    verdict = check_incoming(stamp, system_wall_ms())
    if not verdict.accepted:
        raise _Reject(RejectCode.CLOCK_SKEW, verdict.to_error().message)
    clock.update(stamp)
    try:
        fields = SignedFields.model_validate(change.fields)
    except ValidationError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, violation_from(exc).message) from None
    try:
        cose_bytes = base64.b64decode(fields.cose, validate=True)
    except (binascii.Error, ValueError):
        raise _Reject(RejectCode.INVALID_RECORD, "cose: not base64") from None
    stored = await conn.fetchrow(
        "SELECT clinic_id, status, cose, qr_payload FROM prescriptions WHERE id = $1 FOR UPDATE", change.id
    )
    if stored is not None and stored["clinic_id"] != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This prescription belongs to another clinic")
    if stored is not None and stored["status"] == "signed":
        if bytes(stored["cose"]) == cose_bytes and stored["qr_payload"] == fields.qr_payload:
            return False  # a replay
        raise _Reject(RejectCode.SIGNED_IMMUTABLE, f"Prescription {change.id} is already signed with another signature")
    kid, signature = await _verify(conn, ctx, change.id, fields, cose_bytes, await _author(conn, actor))
    await _check_encounter(conn, actor, fields)
    await _store(conn, actor, change.id, fields, cose_bytes, kid, signature, exists=stored is not None)
    return True


async def _verify(
    conn: asyncpg.Connection,
    ctx: SigningContext | None,
    rx_id: uuid.UUID,
    fields: SignedFields,
    cose_bytes: bytes,
    author_id: uuid.UUID,
) -> tuple[str, bytes]:
    """Check the signature against this server's trust and the signer against the prescriber; (kid, sig)."""
    if ctx is None:
        raise _Reject(RejectCode.INVALID_RECORD, "This server has no signing keys: it cannot verify signatures")
    bad = RejectCode.BAD_SIGNATURE
    result = await signing_service.verify_signed_prescription(conn, ctx, cose_bytes)
    if not result.valid:
        raise _Reject(bad, f"{result.reason}: {result.message}")
    key = await conn.fetchrow("SELECT user_id, issuer_kid FROM doctor_keys WHERE kid = $1", result.kid)
    if key is None or key["issuer_kid"] != ctx.issuer_kid:
        raise _Reject(bad, "untrusted_chain: the doctor certificate was not issued by this server")
    if key["user_id"] != fields.prescriber_id:
        raise _Reject(bad, "wrong_signer: signed with another doctor's key than the prescriber's")
    if key["user_id"] != author_id:
        raise _Reject(bad, "wrong_signer: not signed with the key of this device's doctor")
    content = result.content or {}
    if content.get("rx_id") != str(rx_id):
        raise _Reject(bad, "content_mismatch: the signed content is another prescription")
    if result.content_hash != fields.content_hash:
        raise _Reject(bad, "content_mismatch: content_hash is not the hash of the signed content")
    if encode_qr_payload(cose_bytes, limit=None) != fields.qr_payload:
        raise _Reject(bad, "content_mismatch: qr_payload is not the QR text of this signature")
    assert result.kid is not None
    return result.kid, cose_codec.decode_sign1(cose_bytes).signature


async def _check_encounter(conn: asyncpg.Connection, actor: Actor, fields: SignedFields) -> None:
    encounter = await conn.fetchrow("SELECT clinic_id, patient_id FROM encounters WHERE id = $1", fields.encounter_id)
    if encounter is None:
        raise _Reject(RejectCode.INVALID_RECORD, f"encounter_id: no encounter {fields.encounter_id}; push it first")
    if encounter["clinic_id"] != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This encounter belongs to another clinic")
    if encounter["patient_id"] != fields.patient_id:
        raise _Reject(RejectCode.INVALID_RECORD, "patient_id: not the encounter's patient")


async def _store(
    conn: asyncpg.Connection,
    actor: Actor,
    rx_id: uuid.UUID,
    fields: SignedFields,
    cose_bytes: bytes,
    kid: str,
    signature: bytes,
    *,
    exists: bool,
) -> None:
    values = (
        json.dumps(fields.medications),
        json.dumps(fields.ayush_medications),
        json.dumps(fields.advisories),
        fields.policy_version,
        fields.signed_at,
        fields.content_hash,
        signature,
        cose_bytes,
        fields.qr_payload,
        kid,
    )
    if exists:  # a server-side draft of the same id becomes the signed prescription (drafts may change)
        await conn.execute(
            """
            UPDATE prescriptions SET status = 'signed', medications = $2::jsonb, ayush_medications = $3::jsonb,
                advisories = $4::jsonb, policy_version = $5, signed_at = $6, content_hash = $7, signature = $8,
                cose = $9, qr_payload = $10, signer_kid = $11, updated_at = now()
            WHERE id = $1 AND status = 'draft'
            """,
            rx_id,
            *values,
        )
        return
    await conn.execute(
        """
        INSERT INTO prescriptions (id, clinic_id, encounter_id, patient_id, prescriber_id, status, medications,
                                   ayush_medications, advisories, policy_version, signed_at, content_hash,
                                   signature, cose, qr_payload, signer_kid)
        VALUES ($1, $2, $3, $4, $5, 'signed', $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14, $15)
        """,
        rx_id,
        actor.clinic_id,
        fields.encounter_id,
        fields.patient_id,
        fields.prescriber_id,
        *values,
    )
