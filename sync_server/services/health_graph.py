"""The integrated health timeline of one patient: encounters, diagnoses, vitals, prescriptions (allopathic and
AYUSH) and wearable daily averages, in one time order, keyset-paged with an opaque cursor.

Order: by time (``at``), then by kind (encounter, vitals, diagnosis, prescription, wearable day), then by id
and position. ``at`` is the encounter's start for the encounter and what its SOAP note holds (vitals from
``objective.vitals``, diagnoses from ``assessment``), the prescription's creation time, and the start of the
clinic-local day (Asia/Kolkata, as `wearable_daily_avg` counts days) for a day of wearable averages.
``from``/``to`` are clinic-local dates, both included.

Each source is read with its own keyset query from the cursor's position, ``limit + 2`` rows at most, and
the sources are merged, so a page costs the same on the first day as after two years of readings.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from shared.errors import FieldProblem, RuleViolation
from sync_server import errors
from sync_server.db import timeline as db
from sync_server.services import readings
from sync_server.services.context import Actor

CLINIC_ZONE = ZoneInfo("Asia/Kolkata")
"""The clinic-local zone of timeline dates and wearable days (the wearables migration's ``day_zone``)."""
MAX_LIMIT = 500
_RANK = {"encounter": 0, "vitals": 1, "diagnosis": 2, "prescription": 3, "wearable_day": 4}

_EXAMPLE_AT = "2026-03-10T04:30:00Z"
_EID = "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44"


class EncounterEntry(BaseModel):
    type: Literal["encounter"] = "encounter"
    at: datetime
    id: uuid.UUID
    encounter_type: str
    chief_complaint: str
    status: str


class VitalsEntry(BaseModel):
    type: Literal["vitals"] = "vitals"
    at: datetime
    encounter_id: uuid.UUID
    vitals: dict[str, JsonValue] = Field(description="The encounter's objective.vitals as recorded")


class DiagnosisEntry(BaseModel):
    type: Literal["diagnosis"] = "diagnosis"
    at: datetime
    encounter_id: uuid.UUID
    role: Literal["primary", "secondary"]
    condition: str
    code: str | None = None
    system: str | None = None


class PrescriptionEntry(BaseModel):
    type: Literal["prescription"] = "prescription"
    at: datetime
    id: uuid.UUID
    encounter_id: uuid.UUID
    status: str
    medications: list[dict[str, JsonValue]] = Field(description="Allopathic lines")
    ayush_medications: list[dict[str, JsonValue]] | None = Field(
        default=None, description="AYUSH lines; present when include_ayush=true"
    )


class DailyAverage(BaseModel):
    metric: str
    avg: float
    min: float
    max: float
    count: int
    unit: str


class WearableDayEntry(BaseModel):
    type: Literal["wearable_day"] = "wearable_day"
    at: datetime = Field(description="Start of the clinic-local day")
    day: date
    metrics: list[DailyAverage]


Entry = Annotated[
    EncounterEntry | VitalsEntry | DiagnosisEntry | PrescriptionEntry | WearableDayEntry, Field(discriminator="type")
]


class HealthGraph(BaseModel):
    """One page of a patient's health timeline, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "patient_id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e40",
                    "time_zone": "Asia/Kolkata",
                    "entries": [
                        {
                            "type": "encounter",
                            "at": _EXAMPLE_AT,
                            "id": _EID,
                            "encounter_type": "opd",
                            "chief_complaint": "Headache for 3 days",
                            "status": "completed",
                        },
                        {
                            "type": "vitals",
                            "at": _EXAMPLE_AT,
                            "encounter_id": _EID,
                            "vitals": {"bp": "150/95", "pulse": 84, "bp_systolic": 150, "bp_diastolic": 95},
                        },
                        {
                            "type": "diagnosis",
                            "at": _EXAMPLE_AT,
                            "encounter_id": _EID,
                            "role": "primary",
                            "condition": "Essential hypertension",
                            "code": "I10",
                            "system": "icd10",
                        },
                        {
                            "type": "prescription",
                            "at": "2026-03-10T04:45:00Z",
                            "id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e50",
                            "encounter_id": _EID,
                            "status": "draft",
                            "medications": [
                                {
                                    "generic_name": "Amlodipine",
                                    "strength": "5 mg",
                                    "frequency": "OD",
                                    "duration_days": 30,
                                }
                            ],
                            "ayush_medications": [
                                {"name": "Sarpagandha Ghana Vati", "frequency": "BD", "duration_days": 30}
                            ],
                        },
                        {
                            "type": "wearable_day",
                            "at": "2026-03-10T18:30:00Z",
                            "day": "2026-03-11",
                            "metrics": [
                                {
                                    "metric": "bp_systolic",
                                    "avg": 138.5,
                                    "min": 131,
                                    "max": 146,
                                    "count": 6,
                                    "unit": "mmHg",
                                }
                            ],
                        },
                    ],
                    "next_cursor": "WyIyMDI2LTAzLTEwVDE4OjMwOjAwKzAwOjAwIiw0LCIyMDI2LTAzLTExIiwwXQ",
                }
            ]
        }
    )

    patient_id: uuid.UUID
    time_zone: str = Field(description="Zone of the dates (from, to, wearable days)")
    entries: list[Entry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


Key = tuple[datetime, int, str, int]


def _encode_cursor(key: Key) -> str:
    at, rank, ident, sub = key
    raw = json.dumps([at.isoformat(), rank, ident, sub], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor() -> RuleViolation:
    return RuleViolation([FieldProblem("cursor", "cursor.invalid", "The cursor is not one this server gave out")])


def decode_cursor(cursor: str) -> Key:
    """The position a cursor stands for; RuleViolation (422) for anything this server did not give out."""
    if len(cursor) > 400:
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, rank, ident, sub = json.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or rank not in _RANK.values() or not isinstance(ident, str) or not isinstance(sub, int):
            raise ValueError
        return when, int(rank), ident, sub
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise _bad_cursor() from None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), CLINIC_ZONE).astimezone(UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _from_encounter(row: asyncpg.Record) -> Iterator[tuple[Key, BaseModel]]:
    at, eid = row["start_time"], row["id"]
    yield (
        (at, _RANK["encounter"], str(eid), 0),
        EncounterEntry(
            at=at,
            id=eid,
            encounter_type=row["encounter_type"],
            chief_complaint=row["chief_complaint"],
            status=row["status"],
        ),
    )
    note = _json(row["soap_note"]) or {}
    vitals = (note.get("objective") or {}).get("vitals")
    if vitals:
        yield (at, _RANK["vitals"], str(eid), 0), VitalsEntry(at=at, encounter_id=eid, vitals=vitals)
    assessment = note.get("assessment") or {}
    diagnoses = [("primary", assessment.get("primary_diagnosis"))]
    diagnoses += [("secondary", d) for d in assessment.get("secondary_diagnoses") or []]
    for position, (role, diagnosis) in enumerate(diagnoses):
        if not diagnosis or not diagnosis.get("condition"):
            continue
        yield (
            (at, _RANK["diagnosis"], str(eid), position),
            DiagnosisEntry(
                at=at,
                encounter_id=eid,
                role=role,
                condition=diagnosis["condition"],
                code=diagnosis.get("code"),
                system=diagnosis.get("system"),
            ),
        )


def _from_prescription(row: asyncpg.Record, include_ayush: bool) -> tuple[Key, BaseModel]:
    at = row["created_at"]
    return (at, _RANK["prescription"], str(row["id"]), 0), PrescriptionEntry(
        at=at,
        id=row["id"],
        encounter_id=row["encounter_id"],
        status=row["status"],
        medications=_json(row["medications"]) or [],
        ayush_medications=(_json(row["ayush_medications"]) or []) if include_ayush else None,
    )


def _from_day(row: asyncpg.Record) -> tuple[Key, BaseModel]:
    at = _day_start(row["day"])
    metrics = [DailyAverage.model_validate(m) for m in json.loads(row["metrics"])]
    return (at, _RANK["wearable_day"], row["day"].isoformat(), 0), WearableDayEntry(
        at=at, day=row["day"], metrics=metrics
    )


async def health_graph(
    conn: asyncpg.Connection,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    include_wearables: bool,
    include_ayush: bool,
    first: date | None,
    last: date | None,
    limit: int,
    cursor: str | None,
) -> HealthGraph:
    """One page of the timeline.

    Raises:
        NotFound: no such patient in the caller's clinic (another clinic's patient looks the same).
        RuleViolation: ``from`` after ``to``, or a cursor this server did not give out (422).
    """
    if first is not None and last is not None and first > last:
        raise RuleViolation([FieldProblem("from", "range.order", "'from' must not be after 'to'")])
    after = decode_cursor(cursor) if cursor else None
    if await db.patient_clinic(conn, patient_id) != actor.clinic_id:
        raise errors.NotFound("No patient with this id in your clinic")
    start = _day_start(first) if first else None
    end = _day_start(last + timedelta(days=1)) if last else None
    position = (after[0], uuid.UUID(int=0)) if after else None
    fetch = limit + 2
    entries: list[tuple[Key, BaseModel]] = []
    # A source that returned `fetch` rows has more: nothing after its last row may be served on this page.
    bound: Key | None = None
    rows = await db.encounters(conn, actor.clinic_id, patient_id, start, end, position, fetch)
    for row in rows:
        entries += _from_encounter(row)
    if len(rows) == fetch:
        bound = (rows[-1]["start_time"], len(_RANK), str(rows[-1]["id"]), 1 << 30)
    rows = await db.prescriptions(conn, actor.clinic_id, patient_id, start, end, position, fetch)
    entries += [_from_prescription(row, include_ayush) for row in rows]
    if len(rows) == fetch:
        bound = min(bound or entries[-1][0], entries[-1][0])
    if include_wearables:
        await readings.refresh_patient(conn, patient_id)  # days of readings not folded into the averages yet
        since = after[0].astimezone(CLINIC_ZONE).date() if after else None
        low = max(d for d in (first, since) if d is not None) if first or since else None
        rows = await db.wearable_days(conn, actor.clinic_id, patient_id, low, last, fetch)
        entries += [_from_day(row) for row in rows]
        if len(rows) == fetch:
            bound = min(bound or entries[-1][0], entries[-1][0])
    entries.sort(key=lambda e: e[0])
    if after is not None:
        entries = [e for e in entries if e[0] > after]
    more = bound is not None or len(entries) > limit
    if bound is not None:
        entries = [e for e in entries if e[0] <= bound]
    page = entries[:limit]
    return HealthGraph(
        patient_id=patient_id,
        time_zone=str(CLINIC_ZONE),
        entries=[e for _, e in page],  # type: ignore[misc]
        next_cursor=_encode_cursor(page[-1][0]) if more and page else None,
    )
