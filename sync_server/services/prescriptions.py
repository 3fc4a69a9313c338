"""Prescription drafts: each line resolved in the formulary and re-checked against the prescribing policy.

The desktop runs the same `shared.rx.qualification.may_prescribe` while the doctor types; the server runs it
again here with the prescriber's registration as stored from the HPR registry (users table), never with
facts the client sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg

from shared.clock import HLC, Stamp, encode, system_wall_ms
from shared.errors import FieldProblem, RuleViolation
from shared.ids import uuid7
from shared.records.encounter import EncounterType
from shared.records.prescription import AlertOverride, ConditionExclusion, Draft, DraftCreate, PolicyNote
from shared.rx.formulary import Formulary
from shared.rx.interactions import AyushLine as CheckAyushLine
from shared.rx.interactions import CheckRequest, CheckResult, Finding
from shared.rx.interactions import MedicationLine as CheckMedicationLine
from shared.rx.qualification import (
    ConsultationMode,
    Prescriber,
    PrescribingPolicy,
    SystemOfMedicine,
    item_from_resolved,
    may_prescribe,
)
from shared.sync.prescription_merge import CONTENT_FIELDS, OPTIONAL_CONTENT_FIELDS, OWNER_FIELDS
from shared.sync.protocol import DELETED_FIELD, RecordKind
from sync_server import errors
from sync_server.db import encounters as encounters_db
from sync_server.db import prescriptions as prescriptions_db
from sync_server.db import sync as sync_db
from sync_server.services import audit as audit_service
from sync_server.services import prescribing
from sync_server.services import signing as signing_service
from sync_server.services.context import Actor

SYNCED_FIELDS = (*OWNER_FIELDS, *CONTENT_FIELDS, DELETED_FIELD)
"""The fields of a ``prescription_draft`` record (`shared.sync.prescription_merge`)."""

PrescribingRefused = errors.PrescribingRefused  # the problem type lives with the others; kept here for callers


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
    conn: asyncpg.Connection, actor: Actor, action: str, entity_id: str | None, details: dict[str, Any] | None = None
) -> None:
    await audit_service.record(
        conn, actor, action=action, entity_type="prescription", entity_id=entity_id, details=details
    )


async def _prescriber(conn: asyncpg.Connection, actor: Actor, encounter_type: str) -> Prescriber:
    return await prescriber_of(conn, actor.clinic_id, actor.user_id, encounter_type)


async def prescriber_of(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, user_id: uuid.UUID, encounter_type: str
) -> Prescriber:
    """The policy's prescriber for a user of the clinic, from his registration as stored from HPR.

    Raises:
        PrescribingRefused: the user has no system of medicine and qualification the policy covers.
    """
    row = await prescriptions_db.prescriber(conn, clinic_id, user_id)
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


def encounter_conditions(soap_note: dict[str, Any] | None) -> tuple[str, ...]:
    """The coded diagnoses of the encounter's assessment (primary and secondary) as condition ids.

    Uncoded free-text diagnoses are not guessed at: they take no part in the check.
    """
    assessment = (soap_note or {}).get("assessment") or {}
    diagnoses = [assessment.get("primary_diagnosis"), *(assessment.get("secondary_diagnoses") or [])]
    ids = [d["condition_id"] for d in diagnoses if isinstance(d, dict) and d.get("condition_id")]
    return tuple(dict.fromkeys(ids))


def _diagnosis_keys(dx: dict[str, Any]) -> tuple[str, ...]:
    """The names a coded diagnosis is known by: its starter-list condition id and its code (as the desktop
    writes it, ``SNOMED:…`` / ``ICD10:…``), case-folded; none for free text (not guessed at)."""
    code = str(dx.get("code") or "").strip().upper()
    if not code:
        return ()
    system = dx.get("system") or ("snomed" if code.isdigit() else "icd10")
    keys = [f"SNOMED:{code}" if system == "snomed" else f"ICD10:{code}"]
    if dx.get("condition_id"):
        keys.insert(0, str(dx["condition_id"]))
    return tuple(k.casefold() for k in keys)


@dataclass(frozen=True)
class EarlierCondition:
    """A coded condition diagnosed at one of the patient's earlier completed visits (the latest sighting)."""

    condition: str  # what the interaction check is given: the condition id, else the code
    label: str
    keys: tuple[str, ...]
    encounter_id: uuid.UUID
    seen_on: str  # ISO date of that visit

    @property
    def origin(self) -> str:
        return f"from an earlier visit ({self.seen_on}, encounter {self.encounter_id})"


def earlier_conditions(notes: Sequence[Mapping[str, Any]], current: Sequence[str]) -> list[EarlierCondition]:
    """The coded diagnoses (primary and secondary) of earlier completed visits, newest first, one per condition,
    leaving out those already among the current encounter's ``current`` condition ids.

    Args:
        notes: `sync_server.db.encounters.earlier_notes` rows (newest first).
        current: the current encounter's conditions (`encounter_conditions`).
    """
    seen = {c.casefold() for c in current}
    out: list[EarlierCondition] = []
    for row in notes:
        assessment = (row.get("soap_note") or {}).get("assessment") or {}
        for dx in [assessment.get("primary_diagnosis"), *(assessment.get("secondary_diagnoses") or [])]:
            keys = _diagnosis_keys(dx) if isinstance(dx, dict) else ()
            if not keys or seen.intersection(keys):
                continue
            seen.update(keys)
            start = row["start_time"]
            out.append(
                EarlierCondition(
                    condition=str(dx.get("condition_id") or keys[-1].upper()),
                    label=str(dx.get("condition") or keys[0]),
                    keys=keys,
                    encounter_id=row["encounter_id"],
                    seen_on=start.date().isoformat() if isinstance(start, datetime) else str(start)[:10],
                )
            )
    return out


@dataclass(frozen=True)
class DraftConditions:
    """The conditions a draft is checked against: this visit's, then the earlier ones not excluded."""

    current: tuple[str, ...]
    earlier: tuple[EarlierCondition, ...]
    excluded: tuple[tuple[ConditionExclusion, EarlierCondition | None], ...]

    @property
    def checked(self) -> tuple[str, ...]:
        return (*self.current, *(e.condition for e in self.earlier))

    def origins(self) -> dict[int, EarlierCondition]:
        """Index in `checked` → the earlier visit that condition came from."""
        return {len(self.current) + i: e for i, e in enumerate(self.earlier)}

    def record(self) -> dict[str, Any]:
        """What the stored interaction check keeps of the conditions (which earlier ones, which excluded)."""
        return {
            "earlier_conditions": [
                {"condition": e.condition, "label": e.label, "encounter_id": str(e.encounter_id), "seen_on": e.seen_on}
                for e in self.earlier
            ],
            "excluded_conditions": [x.model_dump(mode="json") for x, _ in self.excluded],
        }


async def draft_conditions(
    conn: asyncpg.Connection,
    clinic_id: uuid.UUID,
    encounter: Mapping[str, Any],
    exclusions: Sequence[ConditionExclusion],
) -> DraftConditions:
    """This encounter's coded diagnoses plus the patient's earlier completed visits' ones, minus ``exclusions``
    (matched by condition id or code, as the desktop names them)."""
    current = encounter_conditions(encounter.get("soap_note"))
    notes = await encounters_db.earlier_notes(conn, clinic_id, encounter["patient_id"], encounter["id"])
    earlier = earlier_conditions(notes, current)
    excluded: list[tuple[ConditionExclusion, EarlierCondition | None]] = []
    dropped: set[int] = set()
    for exclusion in exclusions:
        name = exclusion.condition.strip().casefold()
        hit = next((i for i, e in enumerate(earlier) if name in e.keys), None)
        if hit is not None:
            dropped.add(hit)
        excluded.append((exclusion, earlier[hit] if hit is not None else None))
    kept = tuple(e for i, e in enumerate(earlier) if i not in dropped)
    return DraftConditions(current, kept, tuple(excluded))


def exclusion_audits(conditions: DraftConditions) -> list[dict[str, Any]]:
    """The audit details of each exclusion the draft carries (matched to the earlier visit, when one is)."""
    out = []
    for exclusion, earlier in conditions.excluded:
        details: dict[str, Any] = {"rule_id": "CONDITION-EXCLUDED", **exclusion.model_dump(mode="json")}
        if earlier is not None:
            details |= {"label": earlier.label, "from_encounter": str(earlier.encounter_id), "seen_on": earlier.seen_on}
        else:
            details["matched"] = "no coded condition of an earlier visit"
        out.append(details)
    return out


def check_draft_interactions(body: DraftCreate, conditions: tuple[str, ...]) -> CheckResult:
    """The same interaction check the desktop's Rx pad runs, over every line and the encounter's diagnoses."""
    return prescribing.check_interactions(
        CheckRequest(
            medications=tuple(CheckMedicationLine(generic_name=m.generic_name) for m in body.medications),
            ayush_medications=tuple(CheckAyushLine(name=a.name) for a in body.ayush_medications),
            patient_conditions=conditions,
        )
    )


def _earlier(f: Finding, origins: Mapping[int, EarlierCondition]) -> list[EarlierCondition]:
    return [origins[i.index] for i in f.items if i.kind == "condition" and i.index in origins]


def _summary(findings: list[Finding], origins: Mapping[int, EarlierCondition]) -> list[dict[str, Any]]:
    out = []
    for f in findings:
        summary: dict[str, Any] = {
            "rule_id": f.rule_id,
            "severity": f.severity,
            "items": [i.display_name for i in f.items],
            "effect": f.effect,
            "advice": f.advice,
            "source": f.source,
        }
        earlier = _earlier(f, origins)
        if earlier:
            summary["earlier_conditions"] = [
                {"condition": e.condition, "label": e.label, "encounter_id": str(e.encounter_id), "seen_on": e.seen_on}
                for e in earlier
            ]
        out.append(summary)
    return out


def _named(f: Finding, origins: Mapping[int, EarlierCondition]) -> str:
    names = " + ".join(i.display_name for i in f.items)
    earlier = _earlier(f, origins)
    return names + "".join(f" ({e.label} {e.origin})" for e in earlier)


def gate_findings(
    result: CheckResult, overrides: list[AlertOverride], origins: Mapping[int, EarlierCondition] | None = None
) -> list[AlertOverride]:
    """Apply the alert tiers: contraindicated stops the draft; each major finding needs an override.

    Returns the overrides to keep (one per overridden rule). Raises:
        InteractionContraindicated: any contraindicated finding (409, the findings listed).
        RuleViolation: an override naming a rule that did not fire as a major alert (422 on the field).
        OverrideRequired: a major finding without an override (409, the findings to override listed).
    """
    origins = origins or {}
    findings = [*result.interactions, *result.contraindications]
    blocked = [f for f in findings if f.severity == "contraindicated"]
    if blocked:
        names = "; ".join(_named(f, origins) for f in blocked)
        earlier = any(_earlier(f, origins) for f in blocked)
        raise errors.InteractionContraindicated(
            f"Contraindicated: {names}. Change the prescription; this cannot be overridden"
            + (", unless the earlier condition no longer applies (exclude it with a reason)." if earlier else "."),
            findings=_summary(blocked, origins),
        )
    major = {f.rule_id: f for f in findings if f.severity == "major"}
    problems = [
        FieldProblem(
            f"overrides.{i}.rule_id",
            "rx.override_unknown_rule",
            f"{o.rule_id} is not a major alert of this prescription; nothing to override",
        )
        for i, o in enumerate(overrides)
        if o.rule_id not in major
    ]
    if problems:
        raise RuleViolation(problems)
    kept = {o.rule_id: o for o in overrides}
    missing = [f for rule_id, f in major.items() if rule_id not in kept]
    if missing:
        raise errors.OverrideRequired(
            "Override each major alert with a reason: " + ", ".join(f.rule_id for f in missing),
            findings=_summary(missing, origins),
        )
    return list(kept.values())


async def create_draft(conn: asyncpg.Connection, actor: Actor, body: DraftCreate, clock: HLC | None = None) -> Draft:
    encounter = await encounters_db.get(conn, actor.clinic_id, body.encounter_id)
    if encounter is None:
        raise errors.NotFound("No encounter with this id in your clinic")
    prescriber = await _prescriber(conn, actor, encounter["encounter_type"])
    notes, policy_version = check_lines(body, prescriber)
    conditions = await draft_conditions(conn, actor.clinic_id, encounter, body.excluded_conditions)
    result = check_draft_interactions(body, conditions.checked)
    overrides = gate_findings(result, body.overrides, conditions.origins())
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
        interaction_check=result.model_dump(mode="json") | conditions.record(),
        overrides=[
            {**o.model_dump(mode="json"), "by": str(actor.user_id), "at": datetime.now(UTC).isoformat()}
            for o in overrides
        ],
    )
    if row is None:
        # A signed prescription is never rewritten (409 rx.signed_immutable); any other taken id is a conflict.
        await signing_service.ensure_editable(conn, actor.clinic_id, prescription_id)
        raise errors.ConflictProblem("A record with this id already exists", code_hint="prescription.id_taken")
    for o in overrides:
        await _audit(conn, actor, "prescription.override", str(prescription_id), o.model_dump(mode="json"))
    for details in exclusion_audits(conditions):
        await _audit(conn, actor, "prescription.condition_excluded", str(prescription_id), details)
    await _audit(
        conn,
        actor,
        "prescription.draft",
        str(prescription_id),
        {"encounter_id": str(body.encounter_id), "lines": len(body.medications) + len(body.ayush_medications)},
    )
    # The draft enters the clinic's feed (kind prescription_draft), stamped like a synced edit, so the
    # clinic's PCs get it in the encounter's Rx pad (sync_server.services.rx_sync). Last: the feed bump holds
    # the clinic's feed lock until commit.
    stamp = encode(clock.now()) if clock is not None else encode(Stamp(system_wall_ms(), 0, "srv-api"))
    synced = [*SYNCED_FIELDS, *(OPTIONAL_CONTENT_FIELDS if body.excluded_conditions else ())]
    await prescriptions_db.stamp_api_draft(conn, prescription_id, stamp, synced)
    await sync_db.bump_feed(conn, actor.clinic_id, RecordKind.PRESCRIPTION_DRAFT, [prescription_id], None)
    return Draft.model_validate(row)


async def get(conn: asyncpg.Connection, actor: Actor, prescription_id: uuid.UUID) -> Draft:
    row = await prescriptions_db.get(conn, actor.clinic_id, prescription_id)
    if row is None:
        raise errors.NotFound("No prescription with this id in your clinic")
    await _audit(conn, actor, "prescription.read", str(prescription_id))
    return Draft.model_validate(row)


async def record_refusal(pool: asyncpg.Pool, actor: Actor, body: DraftCreate, refusal: errors.ProblemError) -> None:
    """Audit a refused prescribing attempt in its own transaction (the request's own one is rolled back).

    A refusal is a compliance event: who tried to prescribe what, under which rule and policy version.
    """
    details: dict[str, Any] = {
        "encounter_id": str(body.encounter_id),
        "reason": refusal.detail,
        "code": refusal.code,
        **{k: v for k, v in refusal.extra.items() if k in ("field", "rule_id", "source", "policy_version", "findings")},
    }
    async with pool.acquire() as conn, conn.transaction():
        await _audit(conn, actor, "prescription.refused", str(body.id) if body.id else None, details)
