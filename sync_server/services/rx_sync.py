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

Nothing of a rejected change is stored. A stored signed prescription enters the clinic's feed (kind
``signed_prescription``), so the clinic's other PCs get it exactly as signed and verify it before storing it.

**Drafts** (``prescription_draft``, `shared.sync.prescription_merge`), decided before the signed ones of the
batch (a PC queues a draft before its signature):

* ``applied`` / ``merged``: merged into the stored draft (a new one is created); the losing line list is kept
  in ``record_history`` (kind ``prescription_draft``) with the stamp that beat it.
* ``rejected`` ``invalid_record`` with the rule's reason: when the incoming list wins, the merged draft is
  checked as a REST draft is (`services.prescriptions`): every line must resolve in the formulary, the
  prescribing policy must allow each medicine for the prescriber's registration as stored from HPR
  (``rx.not_permitted <rule>: …``), and the interaction gate must pass over the encounter's coded diagnoses
  (``rx.contraindicated: …``; ``rx.override_required: …`` for a major alert the draft does not override with
  a reason). The gate's conditions include the patient's earlier completed visits' coded diagnoses, minus the
  draft's ``excluded_conditions`` (each exclusion audited as ``prescription.condition_excluded``). The refusal
  is audited (``prescription.refused``); overrides that let a draft through are audited
  (``prescription.override``). Also malformed or non-canonical fields, an unknown field, a changed
  encounter or patient, an encounter the server does not hold or whose patient is another, a prescriber who
  is not a user of the clinic.
* ``rejected`` ``signed_immutable``: the prescription is signed (its signed record supersedes the draft).
* ``rejected`` ``not_in_scope``: the draft or its encounter belongs to another clinic; ``clock_skew`` as for
  patients.

**Status events** (``prescription_status``, `shared.signing.status`), decided after the batch's signed
prescriptions (a PC may sign and cancel offline, then push both): a doctor cancels or supersedes his own signed
prescription on his PC with his own key. Each one is verified with the signer's certified key and stored in
``prescription_status_events`` as `sync_server.services.signing.record_status` stores a REST one (actor = the
device's doctor), audited (``prescription.cancelled`` / ``prescription.superseded``) and fed to the clinic's
PCs (kind ``prescription_status``; a REST event enters the feed too):

* ``applied``: stored, or the same event (id and signature) is already stored (a replay).
* ``rejected`` ``bad_signature``: the signature or the chain does not verify (the verifier's reason code
  first), the key is not a desktop key certified by this server for the device's doctor, or the signed event
  is not the change's (other prescription, content hash, seq, status, reason, time or kid).
* ``rejected`` ``not_in_scope``: another clinic's prescription, or the device's doctor is not its prescriber.
* ``rejected`` ``signed_immutable``: the prescription is already cancelled or superseded (the message names
  it), the event id is stored with another signature, or a delete.
* ``rejected`` ``stale_base``: the server already holds another event with this seq (a pharmacy's dispensing
  recorded meanwhile): the PC pulls it and signs the same intent again with the next seq.
* ``rejected`` ``invalid_record``: malformed fields, ``dispensed`` (the pharmacy's REST call only), an unknown
  or unsigned prescription (push it first), a seq beyond the next one, a server without signing keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.audit import canonical_json
from shared.clock import HLC, Stamp, encode
from shared.errors import RuleViolation
from shared.records.prescription import AlertOverride, DraftCreate
from shared.records.validation import violation_from
from shared.signing import cose as cose_codec
from shared.signing.errors import VerificationError
from shared.signing.revocation import parse_revocation_list
from shared.signing.rx import encode_qr_payload
from shared.signing.status import MAX_REASON, TERMINAL, verify_event
from shared.sync.merge import edits_of
from shared.sync.prescription_merge import CONTENT_FIELDS, DraftConflict, is_deleted, merge_draft
from shared.sync.protocol import (
    DELETED_FIELD,
    Change,
    ChangeResult,
    ChangeStatus,
    JsonValue,
    Op,
    PulledChange,
    PushRequest,
    RecordKind,
    RejectCode,
)
from sync_server import errors
from sync_server.db import encounters as encounters_db
from sync_server.db import prescriptions as prescriptions_db
from sync_server.db import signing as signing_db
from sync_server.db import sync as sync_db
from sync_server.services import audit as audit_log
from sync_server.services import doctor_keys as doctor_keys_service
from sync_server.services import prescriptions as prescriptions_service
from sync_server.services import signing as signing_service
from sync_server.services.change_results import RejectChange as _Reject
from sync_server.services.change_results import accept_stamp, lost_values
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
    """Decide the batch's drafts, then verify and store its signed prescriptions, then their status events;
    (index, result) for each."""
    out = await push_drafts(conn, actor, req, clock)
    entries: list[dict[str, Any]] = []
    stored: list[uuid.UUID] = []
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
            stored.append(change.id)
            entries.append(_entry("sync.signed_prescription.store", change, {"batch": str(req.batch_id)}))
    if entries:
        await audit_log.record_many(
            conn,
            actor,
            entries,
        )
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.SIGNED_PRESCRIPTION, stored, req.batch_id)
    return out + await push_status(conn, actor, req, clock, ctx)


def _entry(action: str, change: Change, details: dict[str, str]) -> dict[str, Any]:
    return {"action": action, "entity_type": "prescription", "entity_id": str(change.id), "details": details}


async def _author(conn: asyncpg.Connection, actor: Actor) -> uuid.UUID:
    enrolled_by: uuid.UUID | None = await conn.fetchval("SELECT enrolled_by FROM devices WHERE id = $1", actor.user_id)
    return enrolled_by or actor.user_id


async def _one(conn: asyncpg.Connection, actor: Actor, change: Change, clock: HLC, ctx: SigningContext | None) -> bool:
    """Verify and store one signed prescription; whether it was new. Raises `_Reject`."""
    if change.op is Op.DELETE:
        raise _Reject(RejectCode.SIGNED_IMMUTABLE, "A signed prescription cannot be deleted")
    accept_stamp(change, clock)
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
    await _store(conn, actor, change.id, fields, cose_bytes, kid, signature, change.hlc, exists=stored is not None)
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
    hlc: str,
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
        hlc,
    )
    if exists:  # a server-side draft of the same id becomes the signed prescription (drafts may change)
        await conn.execute(
            """
            UPDATE prescriptions SET status = 'signed', medications = $2::jsonb, ayush_medications = $3::jsonb,
                advisories = $4::jsonb, policy_version = $5, signed_at = $6, content_hash = $7, signature = $8,
                cose = $9, qr_payload = $10, signer_kid = $11, hlc = $12, deleted = false, updated_at = now()
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
                                   signature, cose, qr_payload, signer_kid, hlc)
        VALUES ($1, $2, $3, $4, $5, 'signed', $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14, $15,
                $16)
        """,
        rx_id,
        actor.clinic_id,
        fields.encounter_id,
        fields.patient_id,
        fields.prescriber_id,
        *values,
    )


# --- prescription drafts --------------------------------------------------------------------------------

EXCLUDED = "excluded_conditions"
"""The optional content field (`shared.sync.prescription_merge.OPTIONAL_CONTENT_FIELDS`), kept in the stored
interaction check (``interaction_check.excluded_conditions``) beside the conditions it left out."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def draft_state(row: asyncpg.Record) -> tuple[dict[str, JsonValue], dict[str, str]]:
    """A stored draft as synced fields and stamps (a draft the REST API wrote before it was stamped counts as
    stamped at its ``updated_at``, by the server)."""
    check = _loads(row["interaction_check"]) or {}
    fields: dict[str, JsonValue] = {
        "encounter_id": str(row["encounter_id"]),
        "patient_id": str(row["patient_id"]),
        "prescriber_id": str(row["prescriber_id"]),
        "lines": _loads(row["lines"]),
        "medications": _loads(row["medications"]),
        "ayush_medications": _loads(row["ayush_medications"]),
        "advisories": _loads(row["advisories"]),
        "overrides": _loads(row["overrides"]) or [],
        "kb_version": row["kb_version"] if row["kb_version"] is not None else check.get("kb_version"),
        "policy_version": row["policy_version"],
        DELETED_FIELD: bool(row["deleted"]),
    }
    stamps: dict[str, str] = _loads(row["field_hlcs"]) or {}
    if EXCLUDED in stamps:  # part of the content only when the content that won carried it
        fields[EXCLUDED] = check.get(EXCLUDED) or []
    default = row["hlc"] or encode(Stamp(int(row["updated_at"].timestamp() * 1000), 0, "server"))
    return fields, {name: stamps.get(name, default) for name in fields}


async def push_drafts(
    conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC
) -> list[tuple[int, ChangeResult]]:
    """Decide and store the batch's prescription drafts; (index in the batch, result) for each of them."""
    out: list[tuple[int, ChangeResult]] = []
    entries: list[dict[str, Any]] = []
    history: list[tuple[Any, ...]] = []
    changed: list[uuid.UUID] = []
    for index, change in enumerate(req.changes):
        if change.kind is not RecordKind.PRESCRIPTION_DRAFT:
            continue
        try:
            result, lost, audits = await _one_draft(conn, actor, change, clock)
        except _Refused as refusal:
            out.append((index, _rejected(change, RejectCode.INVALID_RECORD, refusal.message[:2000])))
            entries.append(refusal.audit(change, req.batch_id))
            continue
        except _Reject as rej:
            out.append((index, _rejected(change, rej.code, rej.message[:2000])))
            continue
        out.append((index, result))
        history += lost
        if audits:
            changed.append(change.id)
            entries += [e | {"details": {**e["details"], "batch": str(req.batch_id)}} for e in audits]
    await sync_db.add_history(conn, history)
    if entries:
        await audit_log.record_many(
            conn,
            actor,
            entries,
        )
    await sync_db.bump_feed(
        conn, actor.clinic_id, RecordKind.PRESCRIPTION_DRAFT, list(dict.fromkeys(changed)), req.batch_id
    )
    return out


class _Refused(_Reject):
    """The prescribing policy or the interaction gate refuses the merged draft (audited as a refusal)."""

    def __init__(self, problem: errors.ProblemError) -> None:
        rules = [str(problem.extra["rule_id"])] if problem.extra.get("rule_id") else []
        rules += [str(f["rule_id"]) for f in problem.extra.get("findings") or [] if f.get("rule_id")]
        cited = f" (rule {', '.join(rules)}" + (f"; {problem.extra['source']}" if problem.extra.get("source") else "")
        super().__init__(
            RejectCode.INVALID_RECORD, f"{problem.code}: {problem.detail}" + (f"{cited})" if rules else "")
        )
        self.problem = problem

    def audit(self, change: Change, batch_id: uuid.UUID) -> dict[str, Any]:
        keep = ("field", "rule_id", "source", "policy_version", "findings")
        details = {"reason": self.problem.detail, "code": self.problem.code, "batch": str(batch_id)}
        details |= {k: v for k, v in self.problem.extra.items() if k in keep}
        return {"action": "prescription.refused", "entity_type": "prescription", "entity_id": str(change.id),
                "details": details}  # fmt: skip


async def _one_draft(
    conn: asyncpg.Connection, actor: Actor, change: Change, clock: HLC
) -> tuple[ChangeResult, list[tuple[Any, ...]], list[dict[str, Any]]]:
    accept_stamp(change, clock)
    row = await prescriptions_db.lock_for_sync(conn, change.id)
    if row is not None and row["clinic_id"] != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This prescription belongs to another clinic")
    if row is not None and row["status"] == "signed":
        raise _Reject(
            RejectCode.SIGNED_IMMUTABLE,
            f"Prescription {change.id} is signed: its content is frozen and the signed record supersedes the draft",
        )
    current, current_hlcs = draft_state(row) if row is not None else ({}, {})
    incoming, incoming_hlcs = edits_of(change)
    try:
        merged = merge_draft(current, current_hlcs, incoming, incoming_hlcs)
    except DraftConflict as exc:
        raise _Reject(RejectCode.INVALID_RECORD, str(exc)) from None
    fields = merged.fields
    if row is None and not all(name in fields for name in (*CONTENT_FIELDS, "encounter_id", "patient_id")):
        raise _Reject(RejectCode.INVALID_RECORD, f"no prescription draft {change.id} to discard or edit; push it first")
    content_won = row is None or any(
        merged.field_hlcs[n] != current_hlcs.get(n) for n in CONTENT_FIELDS if n in merged.field_hlcs
    )
    wrote = merged.fields != current or merged.field_hlcs != current_hlcs
    version = row["version"] if row is not None else 0
    audits: list[dict[str, Any]] = []
    if wrote:
        encounter = await _draft_encounter(conn, actor, fields)
        body = _draft_body(change.id, fields)
        check: Any = _loads(row["interaction_check"]) if row is not None else None
        overrides = body.overrides
        # Live content is always content the gate passed: a winning list, and a list a restore brings back.
        gated = not is_deleted(fields) and (content_won or is_deleted(current))
        exclusion_audits: list[dict[str, Any]] = []
        if gated:
            check, overrides, exclusion_audits = await _gate(conn, actor, fields, body, encounter)
        if check is not None or fields.get(EXCLUDED):  # the stored exclusions are always the merged content's
            check = {**(check or {}), EXCLUDED: [x.model_dump(mode="json") for x in body.excluded_conditions]}
        version = await prescriptions_db.write_synced_draft(
            conn,
            exists=row is not None,
            prescription_id=change.id,
            clinic_id=actor.clinic_id,
            values={
                "encounter_id": body.encounter_id,
                "patient_id": uuid.UUID(str(fields["patient_id"])),
                "prescriber_id": uuid.UUID(str(fields["prescriber_id"])),
                "medications": fields["medications"],
                "ayush_medications": fields["ayush_medications"],
                "advisories": fields["advisories"],
                "policy_version": fields["policy_version"],
                "interaction_check": check,
                "overrides": fields["overrides"],
                "lines": fields["lines"],
                "kb_version": fields["kb_version"],
                "deleted": is_deleted(fields),
                "hlc": max(merged.field_hlcs.values()),
                "field_hlcs": merged.field_hlcs,
            },
        )
        status = "discard" if is_deleted(fields) and not is_deleted(current) else "upsert"
        audits.append(
            {"action": f"sync.prescription_draft.{status}", "entity_type": "prescription",
             "entity_id": str(change.id), "details": {"status": str(merged.change_status)}}
        )  # fmt: skip
        if gated:
            audits += [
                {"action": "prescription.override", "entity_type": "prescription", "entity_id": str(change.id),
                 "details": o.model_dump(mode="json")}
                for o in overrides
            ]  # fmt: skip
            audits += [
                {"action": "prescription.condition_excluded", "entity_type": "prescription",
                 "entity_id": str(change.id), "details": details}
                for details in exclusion_audits
            ]  # fmt: skip
    result = ChangeResult(
        kind=RecordKind.PRESCRIPTION_DRAFT, id=change.id, status=merged.change_status, server_version=max(version, 1)
    )
    if row is None and not wrote:  # cannot happen (a new draft always writes); keeps the version honest
        raise _Reject(RejectCode.INVALID_RECORD, "nothing to store")
    return result, lost_values(actor, change, merged), audits


async def _draft_encounter(conn: asyncpg.Connection, actor: Actor, fields: dict[str, JsonValue]) -> dict[str, Any]:
    try:
        encounter_id = uuid.UUID(str(fields["encounter_id"]))
        patient_id = uuid.UUID(str(fields["patient_id"]))
        prescriber_id = uuid.UUID(str(fields["prescriber_id"]))
    except ValueError:
        raise _Reject(RejectCode.INVALID_RECORD, "encounter_id, patient_id and prescriber_id must be UUIDs") from None
    clinic = await conn.fetchval("SELECT clinic_id FROM encounters WHERE id = $1", encounter_id)
    if clinic is None:
        raise _Reject(RejectCode.INVALID_RECORD, f"encounter_id: no encounter {encounter_id}; push it first")
    if clinic != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This encounter belongs to another clinic")
    encounter = await encounters_db.get(conn, actor.clinic_id, encounter_id)
    assert encounter is not None
    if encounter["patient_id"] != patient_id:
        raise _Reject(RejectCode.INVALID_RECORD, "patient_id: not the encounter's patient")
    if await conn.fetchval("SELECT clinic_id FROM users WHERE id = $1", prescriber_id) != actor.clinic_id:
        raise _Reject(RejectCode.INVALID_RECORD, f"prescriber_id: {prescriber_id} is not a user of this clinic")
    return encounter


def _draft_body(rx_id: uuid.UUID, fields: dict[str, JsonValue]) -> DraftCreate:
    """The merged lines as the REST API's draft body (validated, and in the form the app stores them)."""
    raw = fields["overrides"]
    raw_overrides = [o for o in raw if isinstance(o, dict)] if isinstance(raw, list) else None
    if raw_overrides is None or len(raw_overrides) != len(raw if isinstance(raw, list) else []):
        raise _Reject(RejectCode.INVALID_RECORD, "overrides: a list of {rule_id, reason}")
    lines = fields["lines"]
    if lines is not None and not (
        isinstance(lines, list)
        and len(lines) <= 100
        and all(
            isinstance(line, dict)
            and isinstance(line.get("text"), str)
            and isinstance(line.get("expanded"), dict | None)
            and set(line) <= {"text", "expanded"}
            for line in lines
        )
    ):
        raise _Reject(RejectCode.INVALID_RECORD, "lines: a list of {text, expanded} (at most 100)")
    raw_excluded = fields.get(EXCLUDED, [])
    if not (isinstance(raw_excluded, list) and all(isinstance(x, dict) for x in raw_excluded)):
        raise _Reject(RejectCode.INVALID_RECORD, f"{EXCLUDED}: a list of {{condition, reason}}")
    if not isinstance(fields["advisories"], list):
        raise _Reject(RejectCode.INVALID_RECORD, "advisories: a list")
    for name in ("kb_version", "policy_version"):  # kb_version is null for drafts written through the REST API
        value = fields[name]
        if (value is not None or name == "policy_version") and not (isinstance(value, str) and 0 < len(value) <= 100):
            raise _Reject(RejectCode.INVALID_RECORD, f"{name}: a version text")
    try:
        body = DraftCreate.model_validate(
            {
                "encounter_id": fields["encounter_id"],
                "medications": fields["medications"],
                "ayush_medications": fields["ayush_medications"],
                "overrides": [{"rule_id": o.get("rule_id"), "reason": o.get("reason")} for o in raw_overrides],
                EXCLUDED: raw_excluded,
            }
        )
    except ValidationError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, violation_from(exc).message) from None
    for name, typed in (("medications", body.medications), ("ayush_medications", body.ayush_medications)):
        if canonical_json([m.model_dump(mode="json") for m in typed]) != canonical_json(fields[name]):
            raise _Reject(RejectCode.INVALID_RECORD, f"{name}: not in the form the app stores; update the app")
    return body


async def _gate(
    conn: asyncpg.Connection, actor: Actor, fields: dict[str, JsonValue], body: DraftCreate, encounter: dict[str, Any]
) -> tuple[dict[str, Any], list[AlertOverride], list[dict[str, Any]]]:
    """The REST draft's checks on the merged lines, over this visit's coded diagnoses and the patient's earlier
    completed visits' ones minus the draft's exclusions; (the interaction check, the overrides that let it
    through, the audit details of its exclusions).

    Raises:
        _Refused: the policy refuses a line, a contraindicated finding, or a major one without an override.
        _Reject: a line names no medicine in the formulary, or an override names a rule that did not fire.
    """
    prescriber_id = uuid.UUID(str(fields["prescriber_id"]))
    try:
        prescriber = await prescriptions_service.prescriber_of(
            conn, actor.clinic_id, prescriber_id, encounter["encounter_type"]
        )
        prescriptions_service.check_lines(body, prescriber)
        conditions = await prescriptions_service.draft_conditions(
            conn, actor.clinic_id, encounter, body.excluded_conditions
        )
        result = prescriptions_service.check_draft_interactions(body, conditions.checked)
        # An override of a rule that does not fire here (the PC also checks uncoded diagnoses by their text) is
        # kept in the draft as sent, not held against it.
        major = {f.rule_id for f in (*result.interactions, *result.contraindications) if f.severity == "major"}
        overrides = prescriptions_service.gate_findings(
            result, [o for o in body.overrides if o.rule_id in major], conditions.origins()
        )
    except (errors.PrescribingRefused, errors.InteractionContraindicated, errors.OverrideRequired) as problem:
        raise _Refused(problem) from None
    except RuleViolation as exc:
        reasons = "; ".join(f"{p.code}: {p.field}: {p.message}" for p in exc.problems)
        raise _Reject(RejectCode.INVALID_RECORD, reasons) from None
    check = result.model_dump(mode="json") | conditions.record()
    return check, overrides, prescriptions_service.exclusion_audits(conditions)


# --- status events (cancelled / superseded, signed on the doctor's PC) ----------------------------------


class StatusFields(BaseModel):
    """The fields of a ``prescription_status`` change (``certificate`` travels on the pull only; ignored here)."""

    model_config = ConfigDict(extra="forbid")

    prescription_id: uuid.UUID
    seq: Annotated[int, Field(ge=1, le=1000)]
    status: Literal["dispensed", "cancelled", "superseded"]
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON)]
    at: AwareDatetime
    signer_kid: Annotated[str, Field(min_length=1, max_length=100)]
    cose: Annotated[str, Field(min_length=1, max_length=4000)]
    certificate: Annotated[str, Field(max_length=8000)] | None = None


async def push_status(
    conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC, ctx: SigningContext | None
) -> list[tuple[int, ChangeResult]]:
    """Verify and store the batch's status events, in batch order; (index, result) for each."""
    out: list[tuple[int, ChangeResult]] = []
    entries: list[dict[str, Any]] = []
    stored: list[uuid.UUID] = []
    for index, change in enumerate(req.changes):
        if change.kind is not RecordKind.PRESCRIPTION_STATUS:
            continue
        try:
            audit_entry = await _one_status(conn, actor, change, clock, ctx)
        except _Reject as rej:
            out.append((index, _rejected(change, rej.code, rej.message[:2000])))
            entries.append(
                {"action": "sync.prescription_status.rejected", "entity_type": "prescription_status",
                 "entity_id": str(change.id), "details": {"reason": str(rej.code), "batch": str(req.batch_id)}}
            )  # fmt: skip
            continue
        out.append((index, ChangeResult(kind=change.kind, id=change.id, status=ChangeStatus.APPLIED, server_version=1)))
        if audit_entry is not None:
            stored.append(change.id)
            entries.append(audit_entry | {"details": {**audit_entry["details"], "batch": str(req.batch_id)}})
    if entries:
        await audit_log.record_many(
            conn,
            actor,
            entries,
        )
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.PRESCRIPTION_STATUS, stored, req.batch_id)
    return out


async def _one_status(
    conn: asyncpg.Connection, actor: Actor, change: Change, clock: HLC, ctx: SigningContext | None
) -> dict[str, Any] | None:
    """Verify and store one status event; its audit entry, or None for a replay. Raises `_Reject`."""
    if change.op is Op.DELETE:
        raise _Reject(RejectCode.SIGNED_IMMUTABLE, "A status event is append-only: it cannot be deleted")
    accept_stamp(change, clock)
    try:
        fields = StatusFields.model_validate(change.fields)
    except ValidationError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, violation_from(exc).message) from None
    if fields.status not in TERMINAL:
        raise _Reject(
            RejectCode.INVALID_RECORD,
            "status: a PC records cancelled or superseded only; dispensing is the pharmacy's call "
            "(POST /api/v1/prescriptions/{id}/status)",
        )
    try:
        cose_bytes = base64.b64decode(fields.cose, validate=True)
    except (binascii.Error, ValueError):
        raise _Reject(RejectCode.INVALID_RECORD, "cose: not base64") from None
    known = await signing_db.status_event_by_id(conn, change.id)
    if known is not None:
        if known["clinic_id"] != actor.clinic_id:
            raise _Reject(RejectCode.NOT_IN_SCOPE, "This status event belongs to another clinic")
        if bytes(known["cose"]) == cose_bytes:
            return None  # a replay
        raise _Reject(RejectCode.SIGNED_IMMUTABLE, f"Status event {change.id} is already stored with another signature")
    rx = await _status_target(conn, actor, fields)
    author = await _author(conn, actor)
    if rx["prescriber_id"] != author:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "Only the prescribing doctor may cancel or supersede this prescription")
    await _verify_status(conn, ctx, fields, cose_bytes, rx["content_hash"], author)
    _check_sequence(await signing_db.status_events(conn, fields.prescription_id), fields)
    await signing_db.insert_status_event(
        conn,
        event_id=change.id,
        prescription_id=fields.prescription_id,
        clinic_id=actor.clinic_id,
        seq=fields.seq,
        status=fields.status,
        reason=fields.reason,
        at=fields.at,
        actor_id=author,
        signer_kid=fields.signer_kid,
        cose=cose_bytes,
    )
    return {
        "action": f"prescription.{fields.status}",
        "entity_type": "prescription",
        "entity_id": str(fields.prescription_id),
        "details": {"seq": fields.seq, "reason": fields.reason, "event_id": str(change.id), "kid": fields.signer_kid},
    }


async def _status_target(conn: asyncpg.Connection, actor: Actor, fields: StatusFields) -> asyncpg.Record:
    """The signed prescription of this clinic the event is about, row-locked. Raises `_Reject`."""
    rx = await signing_db.lock_for_status(conn, fields.prescription_id)
    if rx is None:
        raise _Reject(
            RejectCode.INVALID_RECORD, f"prescription_id: no prescription {fields.prescription_id}; push it first"
        )
    if rx["clinic_id"] != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This prescription belongs to another clinic")
    if rx["status"] != "signed":
        raise _Reject(RejectCode.INVALID_RECORD, "prescription_id: a draft has no status events; sign it first")
    return rx


def _check_sequence(events: list[asyncpg.Record], fields: StatusFields) -> None:
    """Monotonic, as `record_status`: nothing after a terminal event, and the event is the next one."""
    ended = next((e for e in events if e["status"] in TERMINAL), None)
    if ended is not None:
        raise _Reject(
            RejectCode.SIGNED_IMMUTABLE,
            f"The prescription is already {ended['status']} (event {ended['seq']}); nothing may follow",
        )
    taken = next((e for e in events if e["seq"] == fields.seq), None)
    if taken is not None:
        raise _Reject(
            RejectCode.STALE_BASE,
            f"The server already holds event {fields.seq} of this prescription ({taken['status']}, "
            f"{_iso(taken['at'])}); pull it and sign again with seq {len(events) + 1}",
        )
    if fields.seq != len(events) + 1:
        raise _Reject(
            RejectCode.INVALID_RECORD, f"seq: the server holds {len(events)} events; the next one is {len(events) + 1}"
        )


async def _verify_status(
    conn: asyncpg.Connection,
    ctx: SigningContext | None,
    fields: StatusFields,
    cose_bytes: bytes,
    content_hash: str,
    author_id: uuid.UUID,
) -> None:
    """The event is signed by the device doctor's desktop key certified here, about this signed content."""
    if ctx is None:
        raise _Reject(RejectCode.INVALID_RECORD, "This server has no signing keys: it cannot verify signatures")
    bad = RejectCode.BAD_SIGNATURE
    key = await signing_db.key_for_status(conn, fields.signer_kid)
    if key is None or key["issuer_kid"] != ctx.issuer_kid:
        raise _Reject(bad, f"unknown_key: {fields.signer_kid} is not a doctor key certified by this server")
    if key["user_id"] != author_id or key["held_by"] != "desktop":
        raise _Reject(bad, "wrong_signer: not signed with the certified desktop key of this device's doctor")
    data, _, _ = await doctor_keys_service.signed_revocations(conn, ctx)
    try:
        event = verify_event(
            cose_bytes,
            rx_id=fields.prescription_id,
            content_hash=content_hash,
            doctor_certificate=bytes(key["certificate"]),
            issuer_certificate=ctx.issuer_cert,
            trust=ctx.trust,
            revocations=[parse_revocation_list(data, ctx.trust)],
        )
    except VerificationError as exc:
        raise _Reject(bad, f"{exc.reason}: {exc.message}") from None
    signed = (event.seq, event.status, event.reason, event.at, event.kid)
    if signed != (fields.seq, fields.status, fields.reason, fields.at, fields.signer_kid):
        raise _Reject(bad, "content_mismatch: the signed event is not this change's seq, status, reason, time or kid")


def status_fields(row: asyncpg.Record) -> dict[str, JsonValue]:
    """A stored status event as the fields of its change, with the signer's certificate (PCs verify it)."""
    return {
        "prescription_id": str(row["prescription_id"]),
        "seq": row["seq"],
        "status": row["status"],
        "reason": row["reason"],
        "at": _iso(row["at"]),
        "signer_kid": row["signer_kid"],
        "cose": base64.b64encode(bytes(row["cose"])).decode("ascii"),
        "certificate": base64.b64encode(bytes(row["certificate"])).decode("ascii"),
    }


# --- the pull feed ---------------------------------------------------------------------------------------

KINDS = frozenset({RecordKind.PRESCRIPTION_DRAFT, RecordKind.SIGNED_PRESCRIPTION, RecordKind.PRESCRIPTION_STATUS})
"""The feed kinds this module builds."""


def signed_fields(row: asyncpg.Record) -> dict[str, JsonValue]:
    """A stored signed prescription as the fields of its change (as the signing PC pushed them)."""
    return {
        "encounter_id": str(row["encounter_id"]),
        "patient_id": str(row["patient_id"]),
        "prescriber_id": str(row["prescriber_id"]),
        "cose": base64.b64encode(bytes(row["cose"])).decode("ascii"),
        "qr_payload": row["qr_payload"],
        "content_hash": row["content_hash"],
        "signed_at": _iso(row["signed_at"]),
        "medications": _loads(row["medications"]),
        "ayush_medications": _loads(row["ayush_medications"]),
        "advisories": _loads(row["advisories"]),
        "policy_version": row["policy_version"],
    }


async def pulled(
    conn: asyncpg.Connection, feed_rows: Sequence[asyncpg.Record]
) -> dict[tuple[str, uuid.UUID], PulledChange]:
    """The pull-feed change of each draft and signed prescription among these feed rows, by (kind, id).

    A draft's entry of a prescription signed since is left out: the signed record supersedes it.
    """
    wanted = {(str(r["kind"]), r["record_id"]): r for r in feed_rows if r["kind"] in KINDS}
    if not wanted:
        return {}
    out: dict[tuple[str, uuid.UUID], PulledChange] = {}
    events = [rid for kind, rid in wanted if kind == RecordKind.PRESCRIPTION_STATUS]
    for row in await signing_db.status_event_rows(conn, events) if events else []:
        feed = wanted[(RecordKind.PRESCRIPTION_STATUS, row["id"])]
        fields = status_fields(row)
        hlc = encode(Stamp(int(row["at"].timestamp() * 1000), 0, "server"))
        out[(RecordKind.PRESCRIPTION_STATUS, row["id"])] = PulledChange(
            kind=RecordKind.PRESCRIPTION_STATUS, id=row["id"], op=Op.UPSERT, hlc=hlc, fields=fields,
            field_hlcs=dict.fromkeys(fields, hlc), seq=feed["seq"], server_version=SERVER_VERSION,
            batch_id=feed["batch_id"],
        )  # fmt: skip
    rx_ids = list({rid for kind, rid in wanted if kind != RecordKind.PRESCRIPTION_STATUS})
    rows = {r["id"]: r for r in await prescriptions_db.sync_rows(conn, rx_ids)} if rx_ids else {}
    for (kind, record_id), feed in wanted.items():
        if kind == RecordKind.PRESCRIPTION_STATUS:
            continue
        row = rows.get(record_id)
        if row is None:
            continue
        if kind == RecordKind.SIGNED_PRESCRIPTION:
            if row["status"] != "signed":
                continue
            fields = signed_fields(row)
            hlc = row["hlc"] or encode(Stamp(int(row["signed_at"].timestamp() * 1000), 0, "server"))
            stamps = dict.fromkeys(fields, hlc)
            version = SERVER_VERSION
        else:
            if row["status"] != "draft":
                continue
            fields, stamps = draft_state(row)
            hlc, version = max(stamps.values()), row["version"]
        out[(kind, record_id)] = PulledChange(
            kind=RecordKind(kind), id=record_id, op=Op.UPSERT, hlc=hlc, fields=fields, field_hlcs=stamps,
            seq=feed["seq"], server_version=version, batch_id=feed["batch_id"],
        )  # fmt: skip
    return out
