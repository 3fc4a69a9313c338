"""Prescription drafts: each line resolved in the formulary and re-checked against the prescribing policy.

The desktop runs the same `shared.rx.qualification.may_prescribe` while the doctor types; the server runs it
again here with the prescriber's registration as stored from the HPR registry (users table), never with
facts the client sends.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import asyncpg

from shared.errors import FieldProblem, RuleViolation
from shared.ids import uuid7
from shared.records.encounter import EncounterType
from shared.records.prescription import Draft, DraftCreate, PolicyNote
from shared.rx.formulary import Formulary
from shared.rx.qualification import (
    ConsultationMode,
    Prescriber,
    PrescribingPolicy,
    SystemOfMedicine,
    item_from_resolved,
    may_prescribe,
)
from sync_server import errors
from sync_server.db import encounters as encounters_db
from sync_server.db import prescriptions as prescriptions_db
from sync_server.services import audit as audit_service
from sync_server.services import signing as signing_service
from sync_server.services.context import Actor


class PrescribingRefused(errors.ProblemError):
    status = 403
    code = "rx.not_permitted"
    title = "The prescribing policy does not allow this prescriber to prescribe this medicine"


# HPR's systemOfMedicine values (shared.records.staff.SystemOfMedicine) → the policy's names; HPR systems the
# policy does not cover (dentistry, yoga_naturopathy) have no entry and are refused.
_POLICY_SYSTEM: dict[str, str] = {
    "modern_medicine": "modern",
    "modern": "modern",
    "ayurveda": "ayurveda",
    "unani": "unani",
    "siddha": "siddha",
    "sowa_rigpa": "sowa_rigpa",
    "homoeopathy": "homoeopathy",
}
_MODE: dict[str, str] = {
    EncounterType.TELE_VIDEO: "video",
    EncounterType.TELE_AUDIO: "audio",
    EncounterType.TELE_TEXT: "text",
}


async def _audit(
    conn: asyncpg.Connection, actor: Actor, action: str, entity_id: str, details: dict[str, Any] | None = None
) -> None:
    await audit_service.record(
        conn, actor, action=action, entity_type="prescription", entity_id=entity_id, details=details
    )


async def _prescriber(conn: asyncpg.Connection, actor: Actor, encounter_type: str) -> Prescriber:
    row = await prescriptions_db.prescriber(conn, actor.clinic_id, actor.user_id)
    system = _POLICY_SYSTEM.get((row["system_of_medicine"] or "") if row else "")
    if row is None or system is None or not row["qualification"]:
        raise PrescribingRefused(
            "Your registration has no system of medicine and qualification the prescribing policy covers",
            rule_id=None,
            source="HPR registration as stored at sign-in",
        )
    return Prescriber(
        system_of_medicine=cast(SystemOfMedicine, system),
        qualification=row["qualification"],
        state=row["state"] or "",
        consultation_mode=cast(ConsultationMode, _MODE.get(encounter_type, "in_person")),
    )


def _named_lines(body: DraftCreate) -> list[tuple[str, str]]:
    return [(f"medications.{i}.generic_name", m.generic_name) for i, m in enumerate(body.medications)] + [
        (f"ayush_medications.{i}.name", a.name) for i, a in enumerate(body.ayush_medications)
    ]


def check_lines(body: DraftCreate, prescriber: Prescriber) -> tuple[list[PolicyNote], str]:
    """Resolve every line and ask the policy; the advisories to keep, and the policy version used.

    Raises:
        RuleViolation: naming each line whose medicine the formulary does not know (422).
        PrescribingRefused: for the first line the policy refuses, with its rule id and source (403).
    """
    formulary, policy = Formulary.load_default(), PrescribingPolicy.load_default()
    unknown, resolved = [], []
    for field, name in _named_lines(body):
        hit = formulary.resolve(name)
        if hit is None:
            unknown.append(
                FieldProblem(field, "rx.unknown_medicine", f"{name!r} is not a medicine in the formulary (exact name)")
            )
        else:
            resolved.append((field, hit))
    if unknown:
        raise RuleViolation(unknown)
    notes = []
    for field, hit in resolved:
        verdict = may_prescribe(prescriber, item_from_resolved(hit, formulary), policy)
        if not verdict.allowed:
            raise PrescribingRefused(
                f"{hit.display_name}: {verdict.reason}",
                field=field,
                rule_id=verdict.rule_id,
                source=verdict.source,
                policy_version=verdict.policy_version,
            )
        if verdict.advisory:
            notes.append(PolicyNote(field=field, rule_id=verdict.rule_id, reason=verdict.reason, source=verdict.source))
    return notes, policy.version


async def create_draft(conn: asyncpg.Connection, actor: Actor, body: DraftCreate) -> Draft:
    encounter = await encounters_db.get(conn, actor.clinic_id, body.encounter_id)
    if encounter is None:
        raise errors.NotFound("No encounter with this id in your clinic")
    prescriber = await _prescriber(conn, actor, encounter["encounter_type"])
    notes, policy_version = check_lines(body, prescriber)
    prescription_id = body.id or uuid7()
    row = await prescriptions_db.insert_draft(
        conn,
        prescription_id=prescription_id,
        clinic_id=actor.clinic_id,
        encounter_id=body.encounter_id,
        patient_id=encounter["patient_id"],
        prescriber_id=actor.user_id,
        medications=[m.model_dump(mode="json") for m in body.medications],
        ayush_medications=[a.model_dump(mode="json") for a in body.ayush_medications],
        advisories=[n.model_dump(mode="json") for n in notes],
        policy_version=policy_version,
    )
    if row is None:
        # A signed prescription is never rewritten (409 rx.signed_immutable); any other taken id is a conflict.
        await signing_service.ensure_editable(conn, actor.clinic_id, prescription_id)
        raise errors.ConflictProblem("A record with this id already exists", code_hint="prescription.id_taken")
    await _audit(
        conn,
        actor,
        "prescription.draft",
        str(prescription_id),
        {"encounter_id": str(body.encounter_id), "lines": len(body.medications) + len(body.ayush_medications)},
    )
    return Draft.model_validate(row)


async def get(conn: asyncpg.Connection, actor: Actor, prescription_id: uuid.UUID) -> Draft:
    row = await prescriptions_db.get(conn, actor.clinic_id, prescription_id)
    if row is None:
        raise errors.NotFound("No prescription with this id in your clinic")
    await _audit(conn, actor, "prescription.read", str(prescription_id))
    return Draft.model_validate(row)
