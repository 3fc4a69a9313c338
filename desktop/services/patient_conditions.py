"""The patient's known conditions from earlier visits, for the prescribing checks (no Qt).

A pregnancy or chronic kidney disease diagnosed at an earlier visit must trigger the drug–condition rules
today even when this visit's note does not repeat it. `earlier_conditions` gathers the primary and secondary
diagnoses of the patient's other **completed** encounters (and of their addenda), newest first, one entry
per condition (the same starter-list condition coded E11 once and 44054006 another time is one entry).

The doctor may exclude one for this encounter's prescription (a resolved condition, a wrong old diagnosis).
An exclusion is never silent: it is an audited row in ``rx_alert_overrides`` (rule ``CONDITION-EXCLUDED``,
with the typed reason, the doctor, the time and the condition with the visit it came from), through the
prescriptions repository like any override; putting it back is another row (``CONDITION-INCLUDED``). The
latest row per condition decides. `PrescribingService` checks the lines with the current note's conditions
plus the included earlier ones, on the pad and again when it saves (docs/interactions.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import sqlalchemy as sa

from desktop.store.encounters import EncounterRepository
from desktop.store.prescriptions import (
    CONDITION_EXCLUDED,
    CONDITION_INCLUDED,
    CONDITION_KEY_PREFIX,
    MIN_AUDIT_REASON,
    OverrideRecord,
    PrescriptionRepository,
)
from desktop.store.unit_of_work import UnitOfWorkFactory
from desktop.store.writer import Writer
from shared.errors import FieldProblem, RuleViolation
from shared.ids import uuid7
from shared.records.encounter import Diagnosis, Encounter, EncounterStatus, SoapNote

EXCLUDED_RULE = CONDITION_EXCLUDED
INCLUDED_RULE = CONDITION_INCLUDED
MIN_EXCLUSION_REASON = MIN_AUDIT_REASON
"""Characters (not counting spaces) an exclusion reason needs, as for an alert override."""
_KEY_PREFIX = CONDITION_KEY_PREFIX


def condition_key(dx: Diagnosis) -> str:
    """What the interaction engine is given for a diagnosis: its code when coded, else its text."""
    if dx.code is not None:
        return f"SNOMED:{dx.code}" if dx.system == "snomed" else f"ICD10:{dx.code}"
    return dx.condition


def _diagnoses(note: SoapNote | None) -> list[tuple[Diagnosis, bool]]:
    if note is None or note.assessment is None:
        return []
    primary = note.assessment.primary_diagnosis
    found = [(primary, True)] if primary is not None else []
    return found + [(dx, False) for dx in note.assessment.secondary_diagnoses]


def _identity(dx: Diagnosis) -> str:
    """One condition however it was coded: the starter-list id when known, else the key (text case-folded)."""
    if dx.condition_id is not None:
        return f"id:{dx.condition_id}"
    return condition_key(dx) if dx.code is not None else "text:" + dx.condition.casefold()


@dataclass(frozen=True)
class EarlierCondition:
    """A condition diagnosed at an earlier completed visit.

    Args:
        key: what the interaction engine is given (``SNOMED:…`` / ``ICD10:…`` or the text).
        label: the diagnosis as written.
        code: the code as stored (None for text only) and its ``system``.
        encounter_id: the latest earlier visit that recorded it; ``seen_on`` its date.
        primary: it was that visit's primary diagnosis.
        excluded_reason: the doctor's reason when excluded for this prescription (None: checked).
    """

    key: str
    label: str
    code: str | None
    system: str | None
    encounter_id: uuid.UUID
    seen_on: date
    primary: bool
    excluded_reason: str | None = None

    @property
    def is_excluded(self) -> bool:
        return self.excluded_reason is not None

    @property
    def audit_key(self) -> str:
        """The ``alert_key`` of its exclusion rows."""
        return _KEY_PREFIX + self.key

    @property
    def origin(self) -> str:
        """ "from an earlier visit (12 Jan 2026)"."""
        return f"from an earlier visit ({self.seen_on:%d %b %Y})"

    @property
    def coded(self) -> str:
        if self.code is None:
            return "text"
        return f"{'SNOMED' if self.system == 'snomed' else 'ICD-10'} {self.code}"


@dataclass(frozen=True)
class EarlierConditions:
    """The earlier conditions of the patient of one encounter, newest visit first."""

    encounter_id: uuid.UUID | None = None
    items: tuple[EarlierCondition, ...] = ()

    def checked(self, current: Sequence[str]) -> list[str]:
        """``current`` (this note's conditions) plus the included earlier ones not already among them."""
        out = list(current)
        seen = set(out)
        for item in self.items:
            if not item.is_excluded and item.key not in seen:
                out.append(item.key)
                seen.add(item.key)
        return out

    def by_key(self, key: str) -> EarlierCondition | None:
        return next((item for item in self.items if item.key == key), None)


def earlier_conditions(conn: sa.Connection, encounter: Encounter) -> EarlierConditions:
    """The conditions of the patient's other completed encounters, minus nothing: exclusions are marked.

    Conditions already in this encounter's note are left out (they are checked as this visit's).
    """
    current = {_identity(dx) for dx, _ in _diagnoses(encounter.soap_note)}
    repo = EncounterRepository(conn)
    found: dict[str, EarlierCondition] = {}
    for other in repo.for_patient(encounter.patient_id):  # newest first: the first sighting is the latest
        if other.id == encounter.id or other.status != EncounterStatus.COMPLETED:
            continue
        notes = [*(a.soap_note for a in reversed(repo.addenda(other.id))), other.soap_note]  # latest first
        for note in notes:
            for dx, primary in _diagnoses(note):
                identity = _identity(dx)
                if identity in current or identity in found:
                    continue
                found[identity] = EarlierCondition(
                    key=condition_key(dx), label=dx.condition, code=dx.code, system=dx.system,
                    encounter_id=other.id, seen_on=other.start_time.astimezone().date(), primary=primary,
                )  # fmt: skip
    decided = PrescriptionRepository(conn).condition_exclusions(encounter.id)
    items = tuple(replace(item, excluded_reason=decided.get(item.audit_key)) for item in found.values())
    return EarlierConditions(encounter.id, items)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PatientConditionsService:
    """Earlier conditions for the Rx pad, and the doctor's audited exclusions of them.

    Args:
        writer, uow: the store's writer and unit-of-work factory.
        kb_version: gives the knowledge-base version recorded with an exclusion.
        now: wall time (tests pass a fake).
    """

    def __init__(
        self,
        *,
        writer: Writer,
        uow: UnitOfWorkFactory,
        kb_version: Callable[[], str],
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._writer = writer
        self._uow = uow
        self._kb_version = kb_version
        self._now = now

    def earlier(self, encounter_id: uuid.UUID) -> EarlierConditions:
        """The earlier conditions of this encounter's patient, with this prescription's exclusions marked."""
        with self._uow.read() as uow:
            encounter = EncounterRepository(uow.connection).get(encounter_id)
            return earlier_conditions(uow.connection, encounter)

    def exclude(
        self, encounter_id: uuid.UUID, condition: EarlierCondition, reason: str, user_id: uuid.UUID
    ) -> EarlierConditions:
        """Leave ``condition`` out of this encounter's prescription checks, recording who, when and why.

        Raises:
            RuleViolation: the reason is shorter than `MIN_EXCLUSION_REASON` characters.
            NotFound: no such encounter on this PC.
        """
        cleaned = " ".join(reason.split())
        if len(cleaned.replace(" ", "")) < MIN_EXCLUSION_REASON:
            raise RuleViolation(
                [
                    FieldProblem(
                        "reason",
                        "rx.exclusion_reason",
                        f"Type why this condition no longer applies (at least {MIN_EXCLUSION_REASON} letters)",
                    )
                ]
            )
        return self._writer.run(self._record, encounter_id, condition, EXCLUDED_RULE, cleaned, user_id)

    def include(self, encounter_id: uuid.UUID, condition: EarlierCondition, user_id: uuid.UUID) -> EarlierConditions:
        """Check an excluded condition again (recorded as well)."""
        return self._writer.run(
            self._record, encounter_id, condition, INCLUDED_RULE, "checked again by the doctor", user_id
        )

    def _record(
        self, encounter_id: uuid.UUID, condition: EarlierCondition, rule_id: str, reason: str, user_id: uuid.UUID
    ) -> EarlierConditions:
        with self._uow.write() as uow:
            encounter = EncounterRepository(uow.connection).get(encounter_id)
            PrescriptionRepository(uow.connection).add_override(
                OverrideRecord(
                    id=uuid7(), encounter_id=encounter_id, user_id=user_id, created_at=self._now(),
                    rule_id=rule_id, alert_key=condition.audit_key,
                    severity="excluded" if rule_id == EXCLUDED_RULE else "included", reason=reason,
                    lines=[{"condition": condition.label, "key": condition.key, "code": condition.code,
                            "from_encounter": str(condition.encounter_id), "seen_on": condition.seen_on.isoformat()}],
                    kb_version=self._kb_version(),
                )
            )  # fmt: skip
            found = earlier_conditions(uow.connection, encounter)
            uow.commit()
        return found


__all__ = [
    "EXCLUDED_RULE",
    "INCLUDED_RULE",
    "EarlierCondition",
    "EarlierConditions",
    "PatientConditionsService",
    "condition_key",
    "earlier_conditions",
]
