"""Patient registration, lookup, update and search; every call is scoped to the actor's clinic and audited."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import ValidationError

from shared.clock import HLC, encode
from shared.errors import RuleViolation
from shared.ids import normalize_abha_address, normalize_abha_number, normalize_mobile, uuid7
from shared.records.patient import Patient, PatientCreate, PatientUpdate
from shared.records.validation import violation_from
from shared.text import fold_for_search
from sync_server import errors
from sync_server.db import duplicates as duplicates_db
from sync_server.db import patients as patients_db
from sync_server.db import sync as sync_db
from sync_server.services import audit as audit_service
from sync_server.services.context import Actor


async def _audit(
    conn: asyncpg.Connection,
    actor: Actor,
    action: str,
    entity_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    await audit_service.record(conn, actor, action=action, entity_type="patient", entity_id=entity_id, details=details)


async def _refuse_duplicate(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, fields: dict[str, Any], exclude: uuid.UUID | None
) -> None:
    keys = [f"abha:{fields['abha_number']}"] if fields.get("abha_number") else []
    keys += [f"addr:{fields['abha_address']}"] if fields.get("abha_address") else []
    if not keys:
        return
    await patients_db.lock_identifiers(conn, clinic_id, keys)
    existing = await patients_db.find_by_identifier(
        conn,
        clinic_id,
        abha_number=fields.get("abha_number"),
        abha_address=fields.get("abha_address"),
        exclude=exclude,
    )
    if existing is not None:
        raise errors.DuplicatePatient(
            "A patient with this ABHA number or ABHA address is already registered in this clinic",
            existing_id=str(existing),
        )


async def create(conn: asyncpg.Connection, actor: Actor, body: PatientCreate, clock: HLC) -> Patient:
    fields = body.model_dump(mode="json", exclude={"id"})
    patient_id = body.id or uuid7()
    await _refuse_duplicate(conn, actor.clinic_id, fields, exclude=None)
    row = await patients_db.insert(
        conn,
        patient_id=patient_id,
        clinic_id=actor.clinic_id,
        actor_id=actor.user_id,
        fields=body.model_dump(exclude={"id"}),
        hlc=encode(clock.now()),
    )
    if row is None:
        raise errors.ConflictProblem("A record with this id already exists", code_hint="patient.id_taken")
    await duplicates_db.detect(conn, actor.clinic_id, patient_id)
    await _audit(conn, actor, "patient.create", str(patient_id))
    # Last: the feed bump holds the clinic's feed lock until commit (see db.sync.bump_feed).
    await sync_db.bump_feed(conn, actor.clinic_id, "patient", [patient_id], batch_id=None)
    return Patient.model_validate(row)


async def get(conn: asyncpg.Connection, actor: Actor, patient_id: uuid.UUID) -> Patient:
    row = await patients_db.get(conn, actor.clinic_id, patient_id)
    if row is None:
        # Same answer for "no such patient" and "another clinic's patient": nothing leaks across clinics.
        raise errors.NotFound("No patient with this id in your clinic")
    await _audit(conn, actor, "patient.read", str(patient_id))
    return Patient.model_validate(row)


async def update(
    conn: asyncpg.Connection, actor: Actor, patient_id: uuid.UUID, body: PatientUpdate, clock: HLC
) -> Patient:
    changes = body.changes()
    row = await patients_db.get(conn, actor.clinic_id, patient_id, for_update=True)
    if row is None:
        raise errors.NotFound("No patient with this id in your clinic")
    merged = {**{k: row[k] for k in patients_db.MUTABLE}, **body.model_dump(exclude_unset=True)}
    # Re-validate the whole record after the change (e.g. date of birth against year of birth).
    try:
        Patient.model_validate({**row, **merged})
    except ValidationError as exc:
        raise violation_from(exc) from None
    if "abha_number" in changes or "abha_address" in changes:
        await _refuse_duplicate(conn, actor.clinic_id, merged, exclude=patient_id)
    changed = {k: v for k, v in body.model_dump(exclude_unset=True).items() if row.get(k) != v}
    if changed:
        row = await patients_db.update(conn, actor.clinic_id, patient_id, actor.user_id, changed, encode(clock.now()))
    await _audit(conn, actor, "patient.update", str(patient_id), {"fields": sorted(changed)})
    if changed.keys() & {"name", "mobile", "year_of_birth", "abha_number", "abha_address"}:
        await duplicates_db.detect(conn, actor.clinic_id, patient_id)
    if changed:
        await sync_db.bump_feed(conn, actor.clinic_id, "patient", [patient_id], batch_id=None)
    return Patient.model_validate(row)


@dataclass(frozen=True)
class Page:
    items: list[Patient]
    next_cursor: str | None


def classify(q: str | None) -> tuple[str, str | None]:
    """Decide what a search term is: ABHA number, ABHA address, full mobile, mobile digits, or a name.

    Raises:
        RuleViolation: for a 14-digit number whose ABHA check digit is wrong (a mistyped ABHA number is
            told to the user, not searched as a mobile fragment that finds nothing).
    """
    if q is None or not q.strip():
        return "all", None
    text = q.strip()
    compact = text.replace("-", "").replace(" ", "")
    if "@" in text:
        try:
            return "abha_address", normalize_abha_address(text)
        except RuleViolation:
            return "name", fold_for_search(text)
    if compact.isascii() and compact.isdigit() and len(compact) == 14:
        return "abha_number", normalize_abha_number(compact, field="q")
    if compact.lstrip("+").isascii() and compact.lstrip("+").isdigit():
        try:
            return "mobile", normalize_mobile(compact)
        except RuleViolation:
            return "mobile_part", compact.lstrip("+")
    cleaned = " ".join("".join(ch for ch in fold_for_search(text) if ch not in "%_\\").split())
    return ("name", cleaned) if cleaned else ("none", None)


def _encode_cursor(tier: int, score: float, patient_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(json.dumps([tier, score, str(patient_id)]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, float, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tier, score, pid = json.loads(raw)
        if not isinstance(tier, int) or not 0 <= tier <= 4:
            raise ValueError("tier")
        return tier, float(score), uuid.UUID(pid)
    except (ValueError, TypeError) as exc:
        raise errors.ProblemError("The cursor is not one this server gave out", field="cursor") from exc


async def _name_rows(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, term: str, limit: int, after: tuple[int, float, uuid.UUID] | None
) -> list[tuple[int, dict[str, Any]]]:
    words = term.split()
    found: list[tuple[int, dict[str, Any]]] = []
    for tier in range(after[0] if after else 1, 5):
        keyset = (after[1], after[2]) if after and after[0] == tier else None
        rows = await patients_db.search_name_tier(
            conn, clinic_id, tier=tier, term=term, words=words, limit=limit - len(found), after=keyset
        )
        found += [(tier, r) for r in rows]
        if len(found) >= limit:
            break
    return found


async def matching_rows(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    *,
    kind: str,
    term: str | None,
    limit: int,
    after: tuple[int, float, uuid.UUID] | None,
) -> list[tuple[int, dict[str, Any]]]:
    """Up to ``limit`` (tier, row) pairs of a classified search, best first, after the cursor position."""
    if kind == "name":
        assert term is not None
        return await _name_rows(conn, clinic_id, term, limit, after)
    exact = await patients_db.search_exact(
        conn, clinic_id, kind=kind, term=term, limit=limit, after=after[2] if after else None
    )
    return [(0, r) for r in exact]


async def search(conn: asyncpg.Connection, actor: Actor, *, q: str | None, limit: int, cursor: str | None) -> Page:
    kind, term = classify(q)
    after = decode_cursor(cursor) if cursor else None
    if kind == "none":  # the term had nothing searchable in it (e.g. only wildcards)
        await _audit(conn, actor, "patient.search", None, {"kind": kind, "results": 0})
        return Page([], None)
    rows = await matching_rows(conn, actor.clinic_id, kind=kind, term=term, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    await _audit(conn, actor, "patient.search", None, {"kind": kind, "results": len(rows)})
    next_cursor = _encode_cursor(rows[-1][0], rows[-1][1]["score"], rows[-1][1]["id"]) if more and rows else None
    return Page([Patient.model_validate({k: v for k, v in r.items() if k != "score"}) for _, r in rows], next_cursor)
