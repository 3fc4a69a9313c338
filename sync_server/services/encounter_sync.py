"""Encounters arriving by sync: merge per field (`shared.sync.encounter_merge`), store, and rebuild for the pull.

For each encounter change of a pushed batch, in order (after the batch's patients are stored, so an
encounter may follow its new patient in one batch):

* ``applied`` / ``merged``: merged per field into the stored encounter (a new one is created). Values that
  lose by stamp are kept in ``record_history`` (kind ``encounter``) with the stamp that beat them.
* ``merged`` with a message: the encounter is completed and the change would alter its content. The late
  values are stored as an addendum authored by the change's author (the user who enrolled the pushing
  device) — never applied to the encounter, never dropped. Its id is derived from the late values, so a
  re-sent change adds no second addendum.
* ``rejected`` ``invalid_record``: a delete (encounters are clinical records: never deleted), a change of
  ``patient_id`` or ``doctor_id`` (a new encounter without ``doctor_id`` is the author's; with one, it must be
  a user of the clinic), an unknown field, a value that is not valid (the message names the field), a new
  encounter missing a header field, or a patient the server does not hold.
* ``rejected`` ``not_in_scope``: the encounter or its patient belongs to another clinic; ``clock_skew`` as
  for patients.

A rejected change writes nothing. Written encounters and addenda enter the clinic's feed (kinds
``encounter``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter, ValidationError

from shared.audit import canonical_json
from shared.clock import HLC, Stamp, encode
from shared.records.encounter import Complaint, EncounterType, SoapNote, Text
from shared.records.validation import violation_from
from shared.sync.encounter_merge import (
    HEADER_FIELDS,
    SECTION_FIELDS,
    EncounterConflict,
    EncounterMerge,
    addendum_id,
    late_addendum_text,
    merge_encounter,
)
from shared.sync.protocol import (
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
from sync_server.db import encounters as encounters_db
from sync_server.db import sync as sync_db
from sync_server.services import audit as audit_log
from sync_server.services.change_results import RejectChange as _Reject
from sync_server.services.change_results import accept_stamp
from sync_server.services.change_results import rejected as _rejected
from sync_server.services.context import Actor

KINDS = frozenset({RecordKind.ENCOUNTER, RecordKind.ENCOUNTER_ADDENDUM})
"""The kinds this module pushes and pulls."""
_ADDENDUM_COLUMNS = "id, encounter_id, clinic_id, author_id, text, soap_note, created_at, hlc"
_ROW_COLUMNS = encounters_db.SYNC_COLUMNS


_TIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


class _Header(BaseModel):
    """The typed header and status of a merged encounter (sections are checked with `SoapNote`)."""

    model_config = ConfigDict(extra="forbid")

    patient_id: uuid.UUID
    doctor_id: uuid.UUID | None = None
    encounter_type: EncounterType
    start_time: AwareDatetime
    chief_complaint: Complaint
    status: str = "draft"
    completed_at: AwareDatetime | None = None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def state_of(row: asyncpg.Record) -> tuple[dict[str, JsonValue], dict[str, str]]:
    """A stored encounter as synced fields and stamps (fields written before sync count as stamped ``hlc``)."""
    note = json.loads(row["soap_note"]) if row["soap_note"] else {}
    fields: dict[str, JsonValue] = {
        "patient_id": str(row["patient_id"]),
        "doctor_id": str(row["doctor_id"]),
        "encounter_type": row["encounter_type"],
        "start_time": _iso(row["start_time"]),
        "chief_complaint": row["chief_complaint"],
        "status": row["status"],
        "completed_at": _iso(row["completed_at"]),
    }
    stamps: dict[str, str] = json.loads(row["field_hlcs"]) if row["field_hlcs"] else {}
    # A section cleared by a stamped edit stays a field (null): its stamp must keep beating older edits.
    fields |= {name: note.get(name) for name in SECTION_FIELDS if name in note or name in stamps}
    default = row["hlc"] or max(stamps.values(), default=None)
    if default is None:
        return {}, {}  # never stamped (cannot happen for rows the API or sync wrote): nothing to merge with
    for name in list(fields):
        stamps.setdefault(name, default)
    return fields, {name: stamps[name] for name in fields}


def _canonical_time(name: str, value: JsonValue) -> None:
    """Times travel in one form only (UTC, ``Z``), so the pulled value is the pushed one, byte for byte."""
    if value is None:
        return
    try:
        typed = _TIME.validate_python(value)
    except ValidationError:
        raise _Reject(RejectCode.INVALID_RECORD, f"{name}: not a date-time with a time zone") from None
    if _iso(typed) != value:
        raise _Reject(RejectCode.INVALID_RECORD, f"{name}: send times in UTC as YYYY-MM-DDTHH:MM:SS[.ffffff]Z")


def _validate(merged: EncounterMerge, incoming: dict[str, JsonValue]) -> tuple[_Header, dict[str, JsonValue]]:
    fields = merged.result.fields
    missing = [name for name in HEADER_FIELDS if name not in fields]
    if missing:
        raise _Reject(RejectCode.INVALID_RECORD, f"{missing[0]}: a new encounter needs {', '.join(HEADER_FIELDS)}")
    try:
        header = _Header.model_validate({k: v for k, v in fields.items() if k not in SECTION_FIELDS})
        sections = {k: fields[k] for k in SECTION_FIELDS if k in fields and fields[k] is not None}
        SoapNote.model_validate(sections)
    except ValidationError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, violation_from(exc).message) from None
    for name in ("start_time", "completed_at"):
        if name in incoming:
            _canonical_time(name, incoming[name])
    if "chief_complaint" in incoming and header.chief_complaint != incoming["chief_complaint"]:
        raise _Reject(RejectCode.INVALID_RECORD, "chief_complaint: send it trimmed, as the app stores it")
    return header, sections


async def _author(conn: asyncpg.Connection, actor: Actor) -> tuple[uuid.UUID, str]:
    """The change's author: the user who enrolled the pushing device (the doctor whose PC it is)."""
    row = await conn.fetchrow(
        "SELECT u.id, u.name FROM devices d JOIN users u ON u.id = d.enrolled_by WHERE d.id = $1", actor.user_id
    )
    if row is None:  # a user pushing directly (not a device) is the author himself
        name = await conn.fetchval("SELECT name FROM users WHERE id = $1", actor.user_id)
        return actor.user_id, name or str(actor.user_id)
    return row["id"], row["name"]


async def push(conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC) -> list[tuple[int, ChangeResult]]:
    """Decide and store the batch's encounter changes; (index in the batch, result) for each of them.

    The batch's stored encounters are read and locked with one query (in id order), and the clinics of new
    encounters' patients and named doctors with one more. Each change is then decided in order, in memory,
    against the state the changes before it left (`_Batch`); the writes go out together at the end (one
    COPY of the new encounters, one UPDATE of the others, one INSERT of late-edit addenda), or before a
    pushed addendum, whose checks read the tables. The rows, versions, results, history, audit entries and
    feed are those of deciding and writing one change at a time (`_push_per_change`, the reference the tests
    compare with).
    """
    if _PER_CHANGE.get():
        return await _push_per_change(conn, actor, req, clock)
    mine = [(i, c) for i, c in enumerate(req.changes) if c.kind in KINDS]
    if not mine:
        return []
    author_id, author_name = await _author(conn, actor)
    batch = _Batch(actor, author_id, author_name)
    await batch.load(conn, [c for _, c in mine if c.kind is RecordKind.ENCOUNTER])
    out: list[tuple[int, ChangeResult]] = []
    changed: list[uuid.UUID] = []
    added: list[uuid.UUID] = []
    history: list[tuple[Any, ...]] = []
    entries: list[dict[str, Any]] = []
    tag = str(req.batch_id)
    for index, change in mine:
        try:
            if change.kind is RecordKind.ENCOUNTER_ADDENDUM:
                await batch.flush(conn)  # its checks read the encounters and addenda as stored
                result, new = await _addendum(conn, actor, change, clock)
                out.append((index, result))
                added += [change.id] if new else []
                continue
            result, lost, entry = await batch.decide(conn, change, clock)
        except _Reject as rej:
            out.append((index, _rejected(change, rej.code, rej.message)))
            continue
        if entry is not None and "addendum_id" in entry["details"]:
            added.append(uuid.UUID(entry["details"]["addendum_id"]))
        out.append((index, result))
        history += lost
        if entry is not None:
            changed.append(change.id)
            entries.append(entry | {"details": {**entry["details"], "batch": tag}})
    await batch.flush(conn)
    await sync_db.add_history(conn, history)
    await audit_log.record_many(conn, actor, entries)
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.ENCOUNTER, list(dict.fromkeys(changed)), req.batch_id)
    await sync_db.bump_feed(
        conn, actor.clinic_id, RecordKind.ENCOUNTER_ADDENDUM, list(dict.fromkeys(added)), req.batch_id
    )
    return out


def _as_jsonb(value: Any) -> Any:
    """A JSON value as PostgreSQL's ``jsonb`` gives it back: a number is the ``numeric`` of the text
    ``json.dumps`` wrote, so a float that Python writes with a positive exponent (6.089375034051434e+16: a
    whole number) comes back as the integer those digits say (60893750340514340, not the float's exact
    60893750340514336), and -0.0 as 0.0; other floats come back as they were."""
    if isinstance(value, float):
        if value == 0:
            return 0.0
        text = repr(value)
        return int(Decimal(text)) if "e+" in text else value
    if isinstance(value, dict):
        return {k: _as_jsonb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_jsonb(v) for v in value]
    return value


def _outcome(
    encounter_id: uuid.UUID, merged: EncounterMerge, version: int, message: str | None, wrote: bool
) -> tuple[ChangeResult, dict[str, Any] | None]:
    """A decided change's result, and its audit entry when it wrote the encounter or kept late values."""
    status = merged.change_status
    res = ChangeResult(
        kind=RecordKind.ENCOUNTER, id=encounter_id, status=status, message=message, server_version=version
    )
    if not wrote and not merged.late:
        return res, None
    entry = {
        "action": "sync.encounter.addendum" if merged.late else "sync.encounter.upsert",
        "entity_type": "encounter",
        "entity_id": str(encounter_id),
        "details": {"status": str(status)}
        | ({"addendum_id": str(addendum_id(encounter_id, merged.late))} if merged.late else {}),
    }
    return res, entry


def _late_message(merged: EncounterMerge, added: uuid.UUID, author_name: str) -> str:
    """The result's sentence for late values kept as addendum ``added``."""
    fields = ", ".join(v.field for v in merged.late)
    return (
        f"The encounter was already completed: the late edit of {fields} was kept as addendum {added} "
        f"by {author_name}, not applied to the note"
    )


@dataclass
class _Stored:
    """An encounter as the batch has left it so far: the row as read or as its last write leaves it."""

    row: Mapping[str, Any]  # `state_of`'s columns, and clinic_id, version, patient_id, doctor_id
    in_table: bool  # the row is in the table (else the run's pending COPY makes it)
    sections: dict[str, JsonValue] | None = None  # a written row's SOAP sections (its soap_note), as written
    state: tuple[dict[str, JsonValue], dict[str, str]] | None = None  # `state_of(row)`, once asked for

    def fields(self) -> tuple[dict[str, JsonValue], dict[str, str]]:
        if self.state is None:
            row = self.row
            if self.sections:  # the note as reading it back gives it (only worked out if asked for)
                row = {**row, "soap_note": json.dumps(_as_jsonb(self.sections))}
            self.state = state_of(row)
        return self.state


class _Batch:
    """The encounter changes of one push decided in memory, and their writes waiting to be sent.

    A change merges into `_Stored` (what reading the row would give); a write replaces the stored state at
    once and waits in the run, one entry per encounter (the last state; its version counts every write, as
    one UPDATE per change would). `flush` sends the run: no statement touches an encounter twice.
    """

    def __init__(self, actor: Actor, author_id: uuid.UUID, author_name: str) -> None:
        self.actor, self.author_id, self.author_name = actor, author_id, author_name
        self.stored: dict[uuid.UUID, _Stored] = {}
        self.patients: dict[uuid.UUID, uuid.UUID] = {}  # clinic of each patient looked up (absent: none)
        self.users: dict[uuid.UUID, uuid.UUID | None] = {}
        self.looked_up: set[uuid.UUID] = set()  # patient and user ids whose lookup is done
        self.writes: dict[uuid.UUID, tuple[Any, ...]] = {}  # the run: encounter id -> `write_synced` values
        self.base: dict[uuid.UUID, int | None] = {}  # version in the table before the run (None: new)
        self.late: dict[uuid.UUID, tuple[Any, ...]] = {}  # addenda of late edits, first one of an id kept

    async def load(self, conn: asyncpg.Connection, changes: list[Change]) -> None:
        """Read and lock the stored encounters, and look up the patients and doctors new ones name."""
        rows = await encounters_db.lock_synced(conn, [c.id for c in changes])
        self.stored = {r["id"]: _Stored(r, True) for r in rows}
        patients: set[uuid.UUID] = set()
        users: set[uuid.UUID] = set()
        for change in changes:
            if change.id in self.stored:
                continue
            for name, found in (("patient_id", patients), ("doctor_id", users)):
                value = change.fields.get(name)
                if isinstance(value, str):
                    with suppress(ValueError):  # not a UUID: refused by validation, `_check_new` never asks
                        found.add(uuid.UUID(value))
        users.discard(self.author_id)
        if patients or users:
            await self._look_up(conn, patients, users)

    async def _look_up(self, conn: asyncpg.Connection, patients: set[uuid.UUID], users: set[uuid.UUID]) -> None:
        found_patients, found_users = await encounters_db.clinics_of(conn, list(patients), list(users))
        self.patients |= found_patients
        self.users |= found_users
        self.looked_up |= patients | users

    async def _check_new(self, conn: asyncpg.Connection, header: _Header) -> None:
        """`_check_new` of the per-change path, from the looked-up clinics."""
        wanted = {header.patient_id} - self.looked_up
        doctor = header.doctor_id
        if doctor is not None and doctor != self.author_id and doctor not in self.looked_up:
            await self._look_up(conn, wanted, {doctor})
        elif wanted:
            await self._look_up(conn, wanted, set())
        clinic = self.patients.get(header.patient_id)
        if clinic is None:
            raise _Reject(RejectCode.INVALID_RECORD, f"patient_id: no patient {header.patient_id}; push it first")
        if clinic != self.actor.clinic_id:
            raise _Reject(RejectCode.NOT_IN_SCOPE, "This patient belongs to another clinic")
        if doctor is not None and doctor != self.author_id and self.users.get(doctor) != self.actor.clinic_id:
            raise _Reject(RejectCode.INVALID_RECORD, f"doctor_id: {doctor} is not a user of this clinic")

    async def decide(
        self, conn: asyncpg.Connection, change: Change, clock: HLC
    ) -> tuple[ChangeResult, list[tuple[Any, ...]], dict[str, Any] | None]:
        """`_one` of the per-change path, against the batch's state; the write waits in the run."""
        if change.op is Op.DELETE:
            raise _Reject(RejectCode.INVALID_RECORD, "Encounters are clinical records and are never deleted")
        accept_stamp(change, clock)
        actor = self.actor
        stored = self.stored.get(change.id)
        if stored is not None and stored.row["clinic_id"] != actor.clinic_id:
            raise _Reject(RejectCode.NOT_IN_SCOPE, "This encounter belongs to another clinic")
        current, current_hlcs = stored.fields() if stored is not None else ({}, {})
        incoming = dict(change.fields)
        try:
            merged = merge_encounter(current, current_hlcs, incoming, dict(change.field_hlcs))
        except EncounterConflict as exc:
            raise _Reject(RejectCode.INVALID_RECORD, str(exc)) from None
        header, sections = _validate(merged, incoming)
        if stored is None:
            await self._check_new(conn, header)
        lost = _history(actor, change, merged)
        result = merged.result
        version = stored.row["version"] if stored is not None else 0
        wrote = result.fields != current or result.field_hlcs != current_hlcs
        if wrote:
            version = self._write(change.id, stored, header, sections, result.field_hlcs)
        message = self._store_late(change.id, merged) if merged.late else None
        res, entry = _outcome(change.id, merged, version, message, wrote)
        return res, lost, entry

    def _write(
        self,
        encounter_id: uuid.UUID,
        stored: _Stored | None,
        header: _Header,
        sections: dict[str, JsonValue],
        field_hlcs: dict[str, str],
    ) -> int:
        """Queue the merged state in the run (`_write` of the per-change path); the version it gives."""
        if stored is None:
            # A new encounter: patient and doctor are set now, and never change.
            patient_id, doctor_id, version = header.patient_id, header.doctor_id or self.author_id, 1
        else:
            patient_id, doctor_id, version = (
                stored.row["patient_id"],
                stored.row["doctor_id"],
                stored.row["version"] + 1,
            )
        if encounter_id not in self.writes:
            self.base[encounter_id] = stored.row["version"] if stored is not None and stored.in_table else None
        note = json.dumps(sections) if sections else None
        hlc = max(field_hlcs.values())
        stamps = json.dumps(field_hlcs)
        self.writes[encounter_id] = (
            encounter_id,
            patient_id,
            doctor_id,
            header.encounter_type.value,
            header.start_time,
            header.chief_complaint,
            note,
            header.status,
            header.completed_at,
            hlc,
            stamps,
            version,
        )
        # What reading the row back would give.
        written = {
            "clinic_id": self.actor.clinic_id,
            "patient_id": patient_id,
            "doctor_id": doctor_id,
            "encounter_type": header.encounter_type.value,
            "start_time": header.start_time,
            "chief_complaint": header.chief_complaint,
            "soap_note": None,  # `_Stored.fields` fills it in from the sections
            "status": header.status,
            "completed_at": header.completed_at,
            "version": version,
            "hlc": hlc,
            "field_hlcs": stamps,
        }
        self.stored[encounter_id] = _Stored(written, stored is not None and stored.in_table, sections)
        return version

    def _store_late(self, encounter_id: uuid.UUID, merged: EncounterMerge) -> str:
        """Queue the late values as an addendum (`_store_late` of the per-change path); the result's sentence."""
        added = addendum_id(encounter_id, merged.late)
        soap = {v.field: v.value for v in merged.late if v.field in SECTION_FIELDS}
        try:
            soap_note = SoapNote.model_validate(soap).model_dump(mode="json", exclude_none=True) if soap else None
        except ValidationError:
            soap_note = None  # the text below keeps every value in full
        if added not in self.late:  # the same late edit twice: one addendum (ON CONFLICT DO NOTHING)
            self.late[added] = (
                added,
                encounter_id,
                self.author_id,
                late_addendum_text(merged.late, self.author_name),
                None if soap_note is None else json.dumps(soap_note),
                max(v.hlc for v in merged.late),
            )
        return _late_message(merged, added, self.author_name)

    async def flush(self, conn: asyncpg.Connection) -> None:
        """Send the run's writes: encounters first (an addendum needs its encounter), then late-edit addenda."""
        if self.writes:
            await encounters_db.write_synced(
                conn, self.actor.clinic_id, [(*w, self.base[eid]) for eid, w in self.writes.items()]
            )
            for eid in self.writes:
                self.stored[eid].in_table = True
            self.writes, self.base = {}, {}
        if self.late:
            await encounters_db.add_late_addenda(conn, self.actor.clinic_id, list(self.late.values()))
            self.late = {}


_PER_CHANGE: ContextVar[bool] = ContextVar("encounter_push_per_change", default=False)


@contextmanager
def per_change() -> Iterator[None]:
    """Within this block, `push` decides and writes one change at a time (`_push_per_change`): the reference
    the batch-wise path is tested against (tests/sync_server/test_encounter_sync_batches.py). Not used in
    production."""
    token = _PER_CHANGE.set(True)
    try:
        yield
    finally:
        _PER_CHANGE.reset(token)


async def _push_per_change(
    conn: asyncpg.Connection, actor: Actor, req: PushRequest, clock: HLC
) -> list[tuple[int, ChangeResult]]:
    """`push` one change at a time: a locking read, lookups and a write per change (the path before batching)."""
    mine = [(i, c) for i, c in enumerate(req.changes) if c.kind in KINDS]
    if not mine:
        return []
    author_id, author_name = await _author(conn, actor)
    out: list[tuple[int, ChangeResult]] = []
    changed: list[uuid.UUID] = []
    added: list[uuid.UUID] = []
    history: list[tuple[Any, ...]] = []
    entries: list[dict[str, Any]] = []
    for index, change in mine:
        try:
            if change.kind is RecordKind.ENCOUNTER_ADDENDUM:
                result, new = await _addendum(conn, actor, change, clock)
                out.append((index, result))
                added += [change.id] if new else []
                continue
            result, lost, entry = await _one(conn, actor, change, clock, author_id, author_name)
        except _Reject as rej:
            out.append((index, _rejected(change, rej.code, rej.message)))
            continue
        if entry is not None and "addendum_id" in entry["details"]:
            added.append(uuid.UUID(entry["details"]["addendum_id"]))
        out.append((index, result))
        history += lost
        if entry is not None:
            changed.append(change.id)
            entries.append(entry | {"details": {**entry["details"], "batch": str(req.batch_id)}})
    await sync_db.add_history(conn, history)
    await audit_log.record_many(conn, actor, entries)
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.ENCOUNTER, list(dict.fromkeys(changed)), req.batch_id)
    await sync_db.bump_feed(
        conn, actor.clinic_id, RecordKind.ENCOUNTER_ADDENDUM, list(dict.fromkeys(added)), req.batch_id
    )
    return out


async def _one(
    conn: asyncpg.Connection, actor: Actor, change: Change, clock: HLC, author_id: uuid.UUID, author_name: str
) -> tuple[ChangeResult, list[tuple[Any, ...]], dict[str, Any] | None]:
    if change.op is Op.DELETE:
        raise _Reject(RejectCode.INVALID_RECORD, "Encounters are clinical records and are never deleted")
    accept_stamp(change, clock)
    row = await conn.fetchrow(f"SELECT {_ROW_COLUMNS} FROM encounters WHERE id = $1 FOR UPDATE", change.id)
    if row is not None and row["clinic_id"] != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This encounter belongs to another clinic")
    current, current_hlcs = state_of(row) if row is not None else ({}, {})
    incoming = dict(change.fields)
    try:
        merged = merge_encounter(current, current_hlcs, incoming, dict(change.field_hlcs))
    except EncounterConflict as exc:
        raise _Reject(RejectCode.INVALID_RECORD, str(exc)) from None
    header, sections = _validate(merged, incoming)
    if row is None:
        await _check_new(conn, actor, header, author_id)
    lost = _history(actor, change, merged)
    result = merged.result
    version = row["version"] if row is not None else 0
    wrote = result.fields != current or result.field_hlcs != current_hlcs
    if wrote:
        version = await _write(conn, actor, change.id, row is not None, header, sections, result.field_hlcs, author_id)
    message = await _store_late(conn, actor, change.id, merged, author_id, author_name) if merged.late else None
    res, entry = _outcome(change.id, merged, version, message, wrote)
    return res, lost, entry


async def _store_late(
    conn: asyncpg.Connection,
    actor: Actor,
    encounter_id: uuid.UUID,
    merged: EncounterMerge,
    author_id: uuid.UUID,
    author_name: str,
) -> str:
    """Store the late values as an addendum by the change's author; the sentence for the change's result."""
    added = addendum_id(encounter_id, merged.late)
    soap = {v.field: v.value for v in merged.late if v.field in SECTION_FIELDS}
    try:
        soap_note = SoapNote.model_validate(soap).model_dump(mode="json", exclude_none=True) if soap else None
    except ValidationError:
        soap_note = None  # the text below keeps every value in full
    await conn.execute(
        """
        INSERT INTO encounter_addenda (id, encounter_id, clinic_id, author_id, text, soap_note, hlc)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (id) DO NOTHING
        """,
        added,
        encounter_id,
        actor.clinic_id,
        author_id,
        late_addendum_text(merged.late, author_name),
        None if soap_note is None else json.dumps(soap_note),
        max(v.hlc for v in merged.late),
    )
    return _late_message(merged, added, author_name)


async def _check_new(conn: asyncpg.Connection, actor: Actor, header: _Header, author_id: uuid.UUID) -> None:
    """A new encounter's patient is one of the clinic's; its doctor, when named, a user of the clinic."""
    clinic = await conn.fetchval("SELECT clinic_id FROM patients WHERE id = $1", header.patient_id)
    if clinic is None:
        raise _Reject(RejectCode.INVALID_RECORD, f"patient_id: no patient {header.patient_id}; push it first")
    if clinic != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This patient belongs to another clinic")
    if header.doctor_id is not None and header.doctor_id != author_id:
        doctor_clinic = await conn.fetchval("SELECT clinic_id FROM users WHERE id = $1", header.doctor_id)
        if doctor_clinic != actor.clinic_id:
            raise _Reject(RejectCode.INVALID_RECORD, f"doctor_id: {header.doctor_id} is not a user of this clinic")


async def _write(
    conn: asyncpg.Connection,
    actor: Actor,
    encounter_id: uuid.UUID,
    exists: bool,
    header: _Header,
    sections: dict[str, JsonValue],
    field_hlcs: dict[str, str],
    author_id: uuid.UUID,
) -> int:
    values = (
        header.encounter_type.value,
        header.start_time,
        header.chief_complaint,
        json.dumps(sections) if sections else None,
        header.status,
        header.completed_at,
        max(field_hlcs.values()),
        json.dumps(field_hlcs),
    )
    if exists:
        version: int = await conn.fetchval(
            """
            UPDATE encounters SET encounter_type = $2, start_time = $3, chief_complaint = $4, soap_note = $5::jsonb,
                status = $6, completed_at = $7, hlc = $8, field_hlcs = $9::jsonb, version = version + 1,
                updated_at = now()
            WHERE id = $1 RETURNING version
            """,
            encounter_id,
            *values,
        )
        return version
    await conn.execute(
        """
        INSERT INTO encounters (id, clinic_id, patient_id, doctor_id, encounter_type, start_time, chief_complaint,
                                soap_note, status, completed_at, hlc, field_hlcs)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12::jsonb)
        """,
        encounter_id,
        actor.clinic_id,
        header.patient_id,
        header.doctor_id or author_id,
        *values,
    )
    return 1


class _AddendumIn(BaseModel):
    """An ``encounter_addendum`` change's fields, typed."""

    model_config = ConfigDict(extra="forbid")

    encounter_id: uuid.UUID
    author_id: uuid.UUID
    text: Text
    soap_note: SoapNote | None = None
    created_at: AwareDatetime


def addendum_fields(row: asyncpg.Record) -> dict[str, JsonValue]:
    """A stored addendum as the fields of its change."""
    return {
        "encounter_id": str(row["encounter_id"]),
        "author_id": str(row["author_id"]),
        "text": row["text"],
        "soap_note": json.loads(row["soap_note"]) if row["soap_note"] else None,
        "created_at": _iso(row["created_at"]),
    }


async def _addendum(conn: asyncpg.Connection, actor: Actor, change: Change, clock: HLC) -> tuple[ChangeResult, bool]:
    """Store a pushed addendum (append-only); (its result, whether it was new)."""
    if change.op is Op.DELETE:
        raise _Reject(RejectCode.SIGNED_IMMUTABLE, "Addenda are append-only: an addendum cannot be deleted")
    accept_stamp(change, clock)
    try:
        typed = _AddendumIn.model_validate(change.fields)
    except ValidationError as exc:
        raise _Reject(RejectCode.INVALID_RECORD, violation_from(exc).message) from None
    _canonical_time("created_at", change.fields["created_at"])
    stored = await conn.fetchrow(f"SELECT {_ADDENDUM_COLUMNS} FROM encounter_addenda WHERE id = $1", change.id)
    applied = ChangeResult(kind=change.kind, id=change.id, status=ChangeStatus.APPLIED, server_version=1)
    if stored is not None:
        if stored["clinic_id"] != actor.clinic_id:
            raise _Reject(RejectCode.NOT_IN_SCOPE, "This addendum belongs to another clinic")
        if canonical_json(addendum_fields(stored)) != canonical_json(_addendum_stored_form(typed, change)):
            raise _Reject(RejectCode.SIGNED_IMMUTABLE, f"Addendum {change.id} is already stored with other content")
        return applied, False
    encounter = await conn.fetchrow(
        "SELECT clinic_id, status FROM encounters WHERE id = $1 FOR SHARE", typed.encounter_id
    )
    if encounter is None:
        raise _Reject(RejectCode.INVALID_RECORD, f"encounter_id: no encounter {typed.encounter_id}; push it first")
    if encounter["clinic_id"] != actor.clinic_id:
        raise _Reject(RejectCode.NOT_IN_SCOPE, "This encounter belongs to another clinic")
    if encounter["status"] != "completed":
        raise _Reject(RejectCode.INVALID_RECORD, "encounter_id: addenda are for completed encounters")
    if await conn.fetchval("SELECT clinic_id FROM users WHERE id = $1", typed.author_id) != actor.clinic_id:
        raise _Reject(RejectCode.INVALID_RECORD, f"author_id: {typed.author_id} is not a user of this clinic")
    await conn.execute(
        """
        INSERT INTO encounter_addenda (id, encounter_id, clinic_id, author_id, text, soap_note, created_at, hlc)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
        """,
        change.id,
        typed.encounter_id,
        actor.clinic_id,
        typed.author_id,
        typed.text,
        None if change.fields.get("soap_note") is None else json.dumps(change.fields["soap_note"]),
        typed.created_at,
        change.hlc,
    )
    return applied, True


def _addendum_stored_form(typed: _AddendumIn, change: Change) -> dict[str, JsonValue]:
    return {
        "encounter_id": str(typed.encounter_id),
        "author_id": str(typed.author_id),
        "text": typed.text,
        "soap_note": change.fields.get("soap_note"),
        "created_at": _iso(typed.created_at),
    }


def _history(actor: Actor, change: Change, merged: EncounterMerge) -> list[tuple[Any, ...]]:
    """Every value that lost by stamp, kept with the stamp that beat it (late values go to the addendum)."""
    result = merged.result
    return [
        (
            actor.clinic_id,
            "encounter",
            change.id,
            lost.field,
            json.dumps(lost.value),
            lost.hlc,
            result.field_hlcs[lost.field],
            str(lost.side) == "incoming",
            str(actor.user_id),
        )
        for lost in result.lost
    ]


async def pulled(conn: asyncpg.Connection, feed_rows: Sequence[asyncpg.Record]) -> dict[uuid.UUID, PulledChange]:
    """The pull-feed change of each encounter and addendum among these feed rows, by record id."""
    out = await _pulled_addenda(conn, feed_rows)
    wanted = {r["record_id"]: r for r in feed_rows if r["kind"] == RecordKind.ENCOUNTER}
    if not wanted:
        return out
    rows = await conn.fetch(f"SELECT {_ROW_COLUMNS} FROM encounters WHERE id = ANY($1::uuid[])", list(wanted))
    for row in rows:
        fields, stamps = state_of(row)
        if not fields:
            continue
        feed = wanted[row["id"]]
        out[row["id"]] = PulledChange(
            kind=RecordKind.ENCOUNTER,
            id=row["id"],
            op=Op.UPSERT,
            hlc=max(stamps.values()),
            fields=fields,
            field_hlcs=stamps,
            seq=feed["seq"],
            server_version=row["version"],
            batch_id=feed["batch_id"],
        )
    return out


async def _pulled_addenda(
    conn: asyncpg.Connection, feed_rows: Sequence[asyncpg.Record]
) -> dict[uuid.UUID, PulledChange]:
    wanted = {r["record_id"]: r for r in feed_rows if r["kind"] == RecordKind.ENCOUNTER_ADDENDUM}
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT {_ADDENDUM_COLUMNS} FROM encounter_addenda WHERE id = ANY($1::uuid[])", list(wanted)
    )
    out = {}
    for row in rows:
        fields = addendum_fields(row)
        hlc = row["hlc"] or encode(Stamp(int(row["created_at"].timestamp() * 1000), 0, "server"))
        feed = wanted[row["id"]]
        out[row["id"]] = PulledChange(
            kind=RecordKind.ENCOUNTER_ADDENDUM,
            id=row["id"],
            op=Op.UPSERT,
            hlc=hlc,
            fields=fields,
            field_hlcs=dict.fromkeys(fields, hlc),
            seq=feed["seq"],
            server_version=1,
            batch_id=feed["batch_id"],
        )
    return out
