"""Sync wire protocol: push/pull request and response models, protocol version and per-change result codes.

One `Change` carries one record's edit. For per-field last-writer-wins (patients) every field travels with
its own HLC stamp in ``field_hlcs``; ``hlc`` is the change's greatest stamp. A delete is a tombstone: the
server turns it into the field ``deleted = true`` stamped ``hlc`` (see `shared.sync.merge`). Stamps are the
text form of `shared.clock.encode`, so comparing two stamp strings compares the stamps.

A push answers every change in order: ``PushResponse.results[i]`` is the outcome of ``changes[i]``.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from itertools import pairwise
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import decode

__all__ = [
    "DELETED_FIELD",
    "MAX_FIELDS_PER_CHANGE",
    "MAX_PUSH_CHANGES",
    "PROTOCOL_VERSION",
    "RECORD_SCHEMA_VERSION",
    "Change",
    "ChangeResult",
    "ChangeStatus",
    "HlcText",
    "JsonValue",
    "Op",
    "PullResponse",
    "PulledChange",
    "PushRequest",
    "PushResponse",
    "RecordKind",
    "RejectCode",
]

MAX_PUSH_CHANGES = 1000
MAX_FIELDS_PER_CHANGE = 64
DELETED_FIELD = "deleted"
"""The tombstone field: a delete sets it to ``true``, an explicit restore to ``false``."""

_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_KNOWN_FIELD_NAMES: set[str] = set()
"""Names that matched `_FIELD_NAME` already: a push repeats the same few names in every change."""
_MAX_KNOWN_FIELD_NAMES = 4096  # names come from clients: the memo stops growing here


def _hlc(value: str) -> str:
    decode(value)  # raises ValueError with the reason, which pydantic reports against the field
    return value


HlcText = Annotated[str, Field(max_length=100), AfterValidator(_hlc)]
"""An encoded HLC stamp (`shared.clock.encode`)."""


class RecordKind(StrEnum):
    """Kinds of synced record.

    ``encounter``, ``prescription`` and ``audit_event`` join here as their record modules and merge rules
    land; an older server then refuses them at validation time.

    ``reading`` (`shared.records.reading.Reading`, one device measurement) is append-only: it travels as
    op ``upsert`` only, ``id`` = the reading's id, ``fields`` = every other field of the reading
    (`shared.records.reading.reading_change_fields`; decimals as strings), each field stamped with the
    change's one ``hlc``, no ``base_version``. A reading is never merged or edited: the server answers
    ``applied`` (``server_version`` 1) when it stores it *and* when it already holds the same measurement,
    by id (a replay) or by natural key under another id (`shared.records.reading.natural_key`; the pull
    brings the stored one); ``signed_immutable`` when the id exists with other content; ``invalid_record``
    for an invalid reading, an unknown metric or an implausible value; ``not_in_scope`` for a patient the
    device's clinic does not hold. A ``delete`` of a reading is rejected (``signed_immutable``).

    ``encounter`` merges per field (`shared.sync.encounter_merge`): the header, each SOAP section and
    status/completed_at carry their own stamps; completion is monotonic. A change that would alter a
    completed encounter's content is answered ``merged``: its late values are stored as an addendum by the
    change's author (the message says so), never applied and never dropped. A ``delete`` is rejected
    (``invalid_record``: encounters are clinical records, not deleted); a changed ``patient_id`` too.

    ``encounter_addendum`` is append-only, like a reading: op ``upsert``, ``id`` = the addendum's id,
    ``fields`` = `shared.sync.encounter_merge.ADDENDUM_FIELDS` (``encounter_id``, ``author_id``, ``text``,
    ``soap_note`` or null, ``created_at`` in UTC), each stamped with the change's ``hlc``. ``applied`` when
    stored or already stored with the same content; ``signed_immutable`` for the same id with other content
    or a delete; ``invalid_record`` when the encounter is unknown or not completed, or the author is not a
    user of the clinic.

    ``signed_prescription`` is append-only and frozen: op ``upsert``, ``id`` = the prescription's id,
    ``fields`` = encounter_id, patient_id, prescriber_id, ``cose`` (the COSE_Sign1 bytes, base64),
    ``qr_payload``, ``content_hash``, ``signed_at``, medications, ayush_medications, advisories,
    policy_version (`sync_server.services.rx_sync`). The server verifies every signature against its own
    issuer and refuses a bad one with ``bad_signature`` (the message starts with the verifier's reason code);
    the same id with another signature is ``signed_immutable``; a replay is ``applied``. The pull feed brings
    signed prescriptions to the clinic's other PCs in the same form; a PC verifies the signature before it
    stores one.

    ``prescription_draft`` merges as `shared.sync.prescription_merge` says: owner fields ``encounter_id`` and
    ``patient_id`` (never changed), the content (`CONTENT_FIELDS`: prescriber, typed lines, medication and AYUSH
    lines, advisories, overrides, knowledge versions) as one unit stamped once (the later stamp wins the whole
    list; the loser is kept in history), and ``deleted`` (op ``delete`` discards the draft; an upsert with
    ``deleted = false`` restores it). The server re-runs the prescribing policy and the interaction gate on the
    merged draft (`sync_server.services.rx_sync`): a refused draft is ``rejected`` ``invalid_record`` with the
    rule's reason (``rx.contraindicated: … (rule DDI-018)``, ``rx.override_required: …``, ``rx.not_permitted:
    … (rule SP-…; source)``); an edit
    of a signed prescription is ``signed_immutable``.

    ``prescription_status`` is append-only, like a reading: a signed status event of a signed prescription
    (`shared.signing.status`). Op ``upsert`` only, ``id`` = the event's id, ``fields`` = ``prescription_id``,
    ``seq`` (1, 2 … per prescription), ``status`` (a PC pushes ``cancelled`` or ``superseded`` only;
    ``dispensed`` is the pharmacy's REST call, and arrives by pull), ``reason`` (1–500 characters), ``at``
    (UTC, whole seconds), ``signer_kid``, ``cose`` (the COSE_Sign1 bytes, base64) and, on the pull,
    ``certificate`` (the signer's doctor certificate, base64, so a PC verifies any event offline), each
    stamped with the change's ``hlc``. The server (`sync_server.services.rx_sync`) verifies the signature
    with the signer's certified key and answers ``applied`` when it stores the event or already holds the same
    one (a replay); ``bad_signature`` for a signature that does not verify, a key that is not the pushing
    device's doctor's certified key, or an event about other content; ``not_in_scope`` for another clinic's
    prescription or a signer who is not its prescriber; ``signed_immutable`` when the prescription is already
    cancelled or superseded (the message names the current status), for the same id with other content, or a
    delete; ``stale_base`` when the server already holds another event with that ``seq`` (e.g. a dispensing
    recorded meanwhile): the PC pulls the server's events and signs the same intent again with the next
    ``seq`` on its next sync; ``invalid_record`` for malformed fields or an unsigned prescription.
    """

    PATIENT = "patient"
    READING = "reading"
    ENCOUNTER = "encounter"
    ENCOUNTER_ADDENDUM = "encounter_addendum"
    SIGNED_PRESCRIPTION = "signed_prescription"
    PRESCRIPTION_DRAFT = "prescription_draft"
    PRESCRIPTION_STATUS = "prescription_status"


class Op(StrEnum):
    """What a change does to its record."""

    UPSERT = "upsert"
    DELETE = "delete"


class ChangeStatus(StrEnum):
    """Outcome of one pushed change.

    ``applied``: everything in the change is now the server's state (a replay of an applied change is
    also ``applied``). ``merged``: the server kept some newer values of its own; the pull brings them and
    the losing values stay in the record's history. ``rejected``: nothing was written; see the reason code.
    """

    APPLIED = "applied"
    MERGED = "merged"
    REJECTED = "rejected"


class RejectCode(StrEnum):
    """Why a change was rejected; the desktop maps each code to its own sentence and action."""

    SCHEMA_MISMATCH = "schema_mismatch"
    """The change's record shape is from another record schema version: update the app."""
    INVALID_RECORD = "invalid_record"
    """The record would break a validation rule; the message names the field."""
    SIGNED_IMMUTABLE = "signed_immutable"
    """The change edits content frozen by a signature (signed prescription) or an append-only record."""
    NOT_IN_SCOPE = "not_in_scope"
    """The record belongs to a clinic this device does not serve."""
    STALE_BASE = "stale_base"
    """``base_version`` is older than the server's, for a kind that needs it (not per-field LWW kinds)."""
    BAD_SIGNATURE = "bad_signature"
    """A signed record's signature does not verify, or its signer is not who the record says; the message
    starts with the reason code (``bad_signature``, ``revoked_key``, ``expired``, ``wrong_signer`` …)."""
    CLOCK_SKEW = "clock_skew"
    """A stamp is too far ahead of the server's clock (`shared.clock.check_incoming`); fix the PC's clock."""


_HLC_EXAMPLE = "019ab4c27d10-0000-019ab4c2-7000-7000-8000-0000000000d1"
_CHANGE_EXAMPLE: dict[str, JsonValue] = {
    "kind": "patient",
    "id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44",
    "op": "upsert",
    "hlc": _HLC_EXAMPLE,
    "base_version": 3,
    "fields": {"mobile": "+919812345678", "address": None},
    "field_hlcs": {
        "mobile": _HLC_EXAMPLE,
        "address": "019ab4c27a00-0002-019ab4c2-7000-7000-8000-0000000000d1",
    },
}


class Change(BaseModel):
    """One record's edit as it travels in a push or a pull.

    Args:
        kind: the record kind.
        id: the record's id (UUIDv7, made by the client that created it).
        op: ``upsert`` (set the given fields) or ``delete`` (tombstone; no fields).
        hlc: the change's stamp, equal to or greater than every field stamp.
        base_version: the server version the edit was based on, when the kind's rule needs it.
        fields: for an upsert, field name to new JSON value (``null`` clears); empty for a delete.
        field_hlcs: one stamp per entry of ``fields``, the same keys.

    Raises:
        ValidationError: on a bad stamp, field name or kind; when ``fields`` and ``field_hlcs`` disagree; when
            a field stamp is newer than ``hlc``; when a delete carries fields or an upsert none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [_CHANGE_EXAMPLE]})

    kind: RecordKind
    id: uuid.UUID
    op: Op
    hlc: HlcText
    base_version: Annotated[int, Field(ge=0)] | None = None
    fields: Annotated[dict[str, JsonValue], Field(max_length=MAX_FIELDS_PER_CHANGE)] = Field(default_factory=dict)
    field_hlcs: Annotated[dict[str, HlcText], Field(max_length=MAX_FIELDS_PER_CHANGE)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Change:
        if self.op is Op.DELETE:
            if self.fields or self.field_hlcs:
                raise ValueError("a delete carries no fields: it is a tombstone stamped with hlc")
            return self
        if not self.fields:
            raise ValueError("an upsert must change at least one field")
        if self.fields.keys() != self.field_hlcs.keys():
            raise ValueError("fields and field_hlcs must have the same keys (one stamp per field)")
        # Encoded stamps sort like stamps, so text comparison is stamp comparison. When every name is one seen
        # before and no stamp is newer than hlc the loop below finds nothing; otherwise it gives the first fault.
        if not (self.field_hlcs.keys() <= _KNOWN_FIELD_NAMES and max(self.field_hlcs.values()) <= self.hlc):
            for name, stamp in self.field_hlcs.items():
                if not _FIELD_NAME.fullmatch(name):
                    raise ValueError(f"field name {name!r:.80} must be snake_case, at most 64 characters")
                if len(_KNOWN_FIELD_NAMES) < _MAX_KNOWN_FIELD_NAMES:
                    _KNOWN_FIELD_NAMES.add(name)
                if stamp > self.hlc:
                    raise ValueError(f"the stamp of field {name!r} is newer than the change's hlc")
        if DELETED_FIELD in self.fields and not isinstance(self.fields[DELETED_FIELD], bool):
            raise ValueError(f"field {DELETED_FIELD!r} must be true or false")
        return self


class PushRequest(BaseModel):
    """Body of ``POST /api/v1/sync/push``: one outbox batch.

    Args:
        batch_id: the client's id for the batch; a retry with the same id returns the first answer.
        device_id: the pushing device.
        schema_version: the client's `shared.RECORD_SCHEMA_VERSION`.
        protocol_version: the client's `shared.PROTOCOL_VERSION`.
        changes: 1 to `MAX_PUSH_CHANGES` changes, oldest first.

    Raises:
        ValidationError: on a malformed change, or an empty or oversized batch.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "019ab4c2-7d20-7000-8000-00000000b001",
                    "device_id": "019ab4c2-7000-7000-8000-0000000000d1",
                    "schema_version": RECORD_SCHEMA_VERSION,
                    "protocol_version": PROTOCOL_VERSION,
                    "changes": [_CHANGE_EXAMPLE],
                }
            ]
        },
    )

    batch_id: uuid.UUID
    device_id: uuid.UUID
    schema_version: Annotated[int, Field(ge=1)]
    protocol_version: Annotated[int, Field(ge=1)]
    changes: Annotated[list[Change], Field(min_length=1, max_length=MAX_PUSH_CHANGES)]


class ChangeResult(BaseModel):
    """The server's answer for one pushed change.

    Args:
        kind: the record kind of the change.
        id: the record id of the change.
        status: applied, merged or rejected.
        reason: why it was rejected; present exactly when rejected.
        message: sentence explaining the rejection (always present when rejected); on a merged change, an
            optional note of what the server did instead (e.g. a late encounter edit kept as an addendum).
        server_version: the record's version on the server after the push (when the record exists).

    Raises:
        ValidationError: when ``reason`` and ``message`` do not match ``status``, or an accepted change has no
            ``server_version``.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "patient",
                    "id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44",
                    "status": "merged",
                    "server_version": 4,
                },
                {
                    "kind": "patient",
                    "id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e45",
                    "status": "rejected",
                    "reason": "invalid_record",
                    "message": "mobile: Mobile number must have 10 digits",
                    "server_version": None,
                },
            ]
        },
    )

    kind: RecordKind
    id: uuid.UUID
    status: ChangeStatus
    reason: RejectCode | None = None
    message: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    server_version: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _reason_iff_rejected(self) -> ChangeResult:
        rejected = self.status is ChangeStatus.REJECTED
        if rejected != (self.reason is not None) or (rejected and self.message is None):
            raise ValueError("reason is given exactly when the change is rejected, and a rejection has a message")
        if not rejected and self.server_version is None:
            raise ValueError("an applied or merged change reports its server_version")
        return self


class PushResponse(BaseModel):
    """Body of the push answer.

    Args:
        batch_id: echoes the request's batch id.
        results: one result per pushed change, in the request's order.
        server_hlc: the server's clock after the push; the client folds it in with `shared.clock.HLC.update`.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "019ab4c2-7d20-7000-8000-00000000b001",
                    "results": [
                        {
                            "kind": "patient",
                            "id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44",
                            "status": "applied",
                            "server_version": 4,
                        }
                    ],
                    "server_hlc": "019ab4c27e00-0000-server",
                }
            ]
        },
    )

    batch_id: uuid.UUID
    results: Annotated[list[ChangeResult], Field(max_length=MAX_PUSH_CHANGES)]
    server_hlc: HlcText


class PulledChange(Change):
    """A change as the feed hands it out: the change plus its place in the server's feed.

    Args:
        seq: the change's position in the server's feed (increasing in cursor order).
        server_version: the record's version after this change.
        batch_id: the push batch it came from, so a device recognises its own echoed changes; ``None`` for
            changes the server made itself.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    **_CHANGE_EXAMPLE,
                    "seq": 1042,
                    "server_version": 4,
                    "batch_id": "019ab4c2-7d20-7000-8000-00000000b001",
                }
            ]
        },
    )

    seq: Annotated[int, Field(ge=1)]
    server_version: Annotated[int, Field(ge=1)]
    batch_id: uuid.UUID | None = None


class PullResponse(BaseModel):
    """Body of ``GET /api/v1/sync/pull?cursor=…&limit=…``: one page of the device's feed.

    Args:
        changes: changes after the request's cursor, in feed order.
        next_cursor: opaque cursor to send next time; store it only after the page is applied.
        has_more: True when another page is ready now.
        server_hlc: the server's clock; the client folds it in with `shared.clock.HLC.update`.

    Raises:
        ValidationError: when ``changes`` are not in increasing ``seq`` order.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "changes": [
                        {
                            **_CHANGE_EXAMPLE,
                            "seq": 1042,
                            "server_version": 4,
                            "batch_id": "019ab4c2-7d20-7000-8000-00000000b001",
                        }
                    ],
                    "next_cursor": "1042",
                    "has_more": False,
                    "server_hlc": "019ab4c27e00-0000-server",
                }
            ]
        },
    )

    changes: list[PulledChange]
    next_cursor: Annotated[str, Field(min_length=1, max_length=200)]
    has_more: bool
    server_hlc: HlcText

    @model_validator(mode="after")
    def _in_feed_order(self) -> PullResponse:
        seqs = [change.seq for change in self.changes]
        if any(a >= b for a, b in pairwise(seqs)):
            raise ValueError("pulled changes must be in strictly increasing seq order")
        return self
