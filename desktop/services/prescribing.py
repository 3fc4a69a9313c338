"""The Rx pad's brain: expand shorthand lines, check them together, and save the draft only when it is safe (no Qt).

`PrescribingService.check` is pure and fast (the shared parser and engine: about 1.5 ms for 15 lines, see
docs/shorthand.md; the screen calls it on the GUI thread after a short debounce, see
docs/desktop_encounters.md). It returns one `LineCheck` per pad line (the `ExpandedLine` and the
prescribing-policy verdict) and the interaction and contraindication findings as `Alert`s with the pad's
tiers:

* ``hard_stop`` — contraindicated: the prescription cannot be saved while it is present;
* ``override`` — major: the doctor must override it with a typed reason (audited in ``rx_alert_overrides``);
* ``inline`` — moderate: shown under the line;
* ``minor`` — minor: listed on demand.

A line the policy refuses (e.g. a BAMS doctor typing an allopathic drug, rule QP-030/SP-…) is a hard stop
naming the rule and its source; each attempt to save one is recorded in ``rx_refusals``. A line with an
unresolved part blocks saving until it is retyped.

Conditions checked: the encounter's primary and secondary diagnoses (coded ones by their code, others by
their text), plus those of the patient's earlier completed visits that the doctor has not excluded for this
prescription (`desktop.services.patient_conditions`; the pad shows them as "from an earlier visit").
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import ValidationError

from desktop.services.encounters import EncounterCompleted
from desktop.services.patient_conditions import PatientConditionsService, earlier_conditions
from desktop.store.encounters import EncounterRepository
from desktop.store.prescriptions import OverrideRecord, PrescriptionRepository, RefusalRecord, StoredPrescription
from desktop.store.unit_of_work import UnitOfWorkFactory
from desktop.store.writer import Writer
from shared.clock import HLC, encode
from shared.errors import DomainError, FieldProblem, NotAllowed, RuleViolation
from shared.ids import uuid7
from shared.records.encounter import EncounterStatus, EncounterType, SoapNote
from shared.records.prescription import DraftCreate
from shared.records.validation import violation_from
from shared.rx import interactions as ix
from shared.rx.formulary import Formulary
from shared.rx.qualification import (
    ConsultationMode,
    CrossSystem,
    Prescriber,
    PrescribingPolicy,
    SystemOfMedicine,
    Verdict,
    item_from_resolved,
    may_prescribe,
)
from shared.rx.shorthand import ExpandedLine, expand
from shared.sync.merge import LostValue
from shared.sync.prescription_merge import CONTENT_FIELDS, OPTIONAL_CONTENT_FIELDS, draft_id_for
from shared.sync.protocol import DELETED_FIELD, JsonValue, Op, RecordKind

Tier = Literal["hard_stop", "override", "inline", "minor"]
TIER_OF_SEVERITY: dict[str, Tier] = {
    "contraindicated": "hard_stop",
    "major": "override",
    "moderate": "inline",
    "minor": "minor",
}
MIN_OVERRIDE_REASON = 8
"""Characters (not counting spaces) an override reason needs: a reason, not "ok"."""

# HPR's systemOfMedicine values → the policy's names (the server keeps the same table in
# sync_server/services/prescriptions.py); systems the policy does not cover have no entry and are refused.
POLICY_SYSTEM: dict[str, SystemOfMedicine] = {
    "modern_medicine": "modern",
    "modern": "modern",
    "ayurveda": "ayurveda",
    "unani": "unani",
    "siddha": "siddha",
    "sowa_rigpa": "sowa_rigpa",
    "homoeopathy": "homoeopathy",
}
_MODE: dict[str, ConsultationMode] = {
    EncounterType.TELE_VIDEO: "video",
    EncounterType.TELE_AUDIO: "audio",
    EncounterType.TELE_TEXT: "text",
}
NO_REGISTRATION_RULE = "QP-PROFILE"
NO_REGISTRATION_SOURCE = "HPR registration as stored on this PC at sign-in"


@dataclass(frozen=True)
class Clinician:
    """The signed-in user as the encounter and Rx screens need them (built from `LocalUser` by `of`).

    Args:
        user_id: the server's user id (recorded as doctor, prescriber, override and addendum author).
        name: display name.
        role: doctor, nurse, front_desk or clinic_admin.
        profile: the sign-in profile (qualification, system_of_medicine, state).
    """

    user_id: uuid.UUID
    name: str
    role: str
    profile: Mapping[str, Any]

    @classmethod
    def of(cls, user: Any) -> Clinician:
        """From a `desktop.store.users.LocalUser` (or anything with the same attributes)."""
        return cls(user.user_id, user.name, user.role, dict(user.profile))


@dataclass(frozen=True)
class NoPrescriber:
    """The signed-in user cannot prescribe at all (not a doctor, or no system/qualification on record)."""

    reason: str


PrescriberContext = Prescriber | NoPrescriber


def prescriber_for(profile: Mapping[str, Any], role: str, encounter_type: str) -> PrescriberContext:
    """The policy's `Prescriber` for a signed-in user's profile (as the server answered at sign-in).

    Args:
        profile: `LocalUser.profile` (qualification, system_of_medicine, state).
        role: the user's role; only doctors prescribe.
        encounter_type: the encounter's type (tele_* kinds give the consultation mode).
    """
    if role != "doctor":
        return NoPrescriber(f"Only a doctor may prescribe; you are signed in as {role.replace('_', ' ')}.")
    system = POLICY_SYSTEM.get(str(profile.get("system_of_medicine") or ""))
    qualification = str(profile.get("qualification") or "").strip()
    if system is None or not qualification:
        return NoPrescriber(
            "Your registration has no system of medicine and qualification the prescribing policy covers."
        )
    return Prescriber(
        system_of_medicine=system,
        qualification=qualification,
        state=str(profile.get("state") or ""),
        consultation_mode=_MODE.get(encounter_type, "in_person"),
    )


def conditions_of(note: SoapNote | None) -> list[str]:
    """The conditions to check from a note's diagnoses: the code when coded, else the text."""
    if note is None or note.assessment is None:
        return []
    found = []
    for dx in (note.assessment.primary_diagnosis, *note.assessment.secondary_diagnoses):
        if dx is None:
            continue
        if dx.code is not None:
            found.append(f"SNOMED:{dx.code}" if dx.system == "snomed" else f"ICD10:{dx.code}")
        else:
            found.append(dx.condition)
    return found


@dataclass(frozen=True)
class LineCheck:
    """One pad line: its text, expansion and (for a named medicine) the policy verdict.

    Args:
        index: position in the pad (0-based).
        text: as typed.
        expanded: the shared parser's answer; None for an empty line.
        system: modern or an AYUSH system, when the medicine resolved.
        verdict: the prescribing policy's answer for this prescriber, when the medicine resolved.
    """

    index: int
    text: str
    expanded: ExpandedLine | None
    system: str | None = None
    verdict: Verdict | None = None

    @property
    def is_empty(self) -> bool:
        return self.expanded is None

    @property
    def refused(self) -> bool:
        return self.verdict is not None and not self.verdict.allowed


@dataclass(frozen=True)
class Alert:
    """A fired knowledge-base rule, in the pad's terms.

    Args:
        key: rule id plus the names involved; an override is remembered per key.
        lines: pad line indexes involved.
        names: display names of the medicines and conditions involved.
        overridden_reason: the typed reason when a major alert was overridden for this encounter.
    """

    key: str
    rule_id: str
    kind: str
    severity: str
    tier: Tier
    evidence_level: str
    lines: tuple[int, ...]
    names: tuple[str, ...]
    effect: str
    mechanism: str
    advice: str
    source: str
    overridden_reason: str | None = None
    conditions: tuple[str, ...] = ()  # the condition inputs involved, as given to `check`

    @property
    def title(self) -> str:
        return " + ".join(self.names)

    @property
    def blocks(self) -> bool:
        """True while it stops saving: contraindicated always, major until overridden."""
        return self.tier == "hard_stop" or (self.tier == "override" and self.overridden_reason is None)


@dataclass(frozen=True)
class PadCheck:
    """Everything the Rx pad shows for the current lines."""

    lines: tuple[LineCheck, ...]
    alerts: tuple[Alert, ...]
    unknown_conditions: tuple[ix.UnknownItem, ...]
    kb_version: str
    kb_status: str
    policy_version: str
    no_prescriber: NoPrescriber | None = None

    def by_tier(self, tier: Tier) -> list[Alert]:
        return [a for a in self.alerts if a.tier == tier]

    @property
    def refusals(self) -> list[LineCheck]:
        return [line for line in self.lines if line.refused]

    @property
    def problems(self) -> list[str]:
        """Why the prescription cannot be saved now (empty when it can)."""
        out: list[str] = []
        for line in self.lines:
            if line.expanded is not None and line.expanded.unresolved:
                first = line.expanded.unresolved[0]
                out.append(f"Line {line.index + 1}: {first.reason}")
            elif line.expanded is not None and line.expanded.generic_name is None:
                out.append(f"Line {line.index + 1}: no known medicine")
        for line in self.refusals:
            assert line.verdict is not None
            out.append(f"Line {line.index + 1}: not allowed ({line.verdict.rule_id}): {line.verdict.reason}")
        for alert in self.alerts:
            if alert.tier == "hard_stop":
                out.append(f"{alert.rule_id} {alert.title}: contraindicated — {alert.effect}")
            elif alert.blocks:
                out.append(f"{alert.rule_id} {alert.title}: major — override it with a reason (Ctrl+Shift+O)")
        return out

    @property
    def can_save(self) -> bool:
        return not self.problems


class PrescriptionBlocked(DomainError):
    """The prescription was not saved: it has hard stops, refusals, unresolved parts or un-overridden majors."""

    code = "rx.blocked"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("The prescription was not saved: " + "; ".join(self.problems))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def alert_key(rule_id: str, names: Sequence[str]) -> str:
    return f"{rule_id}:{'+'.join(sorted(names))}"


class PrescribingService:
    """Rx pad use cases.

    Args:
        writer, uow: the store's writer and unit-of-work factory.
        formulary, kb, policy: the shipped knowledge by default.
        cross_system: the clinic's setting for modern prescribers writing AYUSH medicines (warn or block).
        days_per_month: what "x 1m" counts (clinic setting).
        now: wall time (tests pass a fake).
        clock: this PC's hybrid logical clock; with it, every save and discard is stamped and queued for sync
            as a ``prescription_draft`` change (`shared.sync.prescription_merge`).
    """

    def __init__(
        self,
        *,
        writer: Writer,
        uow: UnitOfWorkFactory,
        formulary: Formulary | None = None,
        kb: ix.InteractionKB | None = None,
        policy: PrescribingPolicy | None = None,
        cross_system: CrossSystem = "warn",
        days_per_month: int = 30,
        now: Callable[[], datetime] = _utc_now,
        clock: HLC | None = None,
    ) -> None:
        self._clock = clock
        self._writer = writer
        self._uow = uow
        self._given = (formulary, kb, policy)
        self._loaded: tuple[Formulary, ix.InteractionKB, PrescribingPolicy, ix.NameResolver] | None = None
        self._load_lock = threading.Lock()
        self._cross_system: CrossSystem = cross_system
        self._days_per_month = days_per_month
        self._now = now

    # -- knowledge (loaded on first use: parsing it takes most of a second, so never at start-up) ---------

    def warm_up(self) -> None:
        """Load the formulary, the interaction knowledge and the policy now (call it on a worker thread)."""
        self._knowledge()

    def _knowledge(self) -> tuple[Formulary, ix.InteractionKB, PrescribingPolicy, ix.NameResolver]:
        with self._load_lock:
            if self._loaded is None:
                formulary, kb, policy = self._given
                kb = kb or ix.InteractionKB.load_default()
                self._loaded = (
                    formulary or Formulary.load_default(),
                    kb,
                    policy or PrescribingPolicy.load_default(),
                    ix.default_resolver(kb),
                )
            return self._loaded

    @property
    def formulary(self) -> Formulary:
        return self._knowledge()[0]

    @property
    def kb(self) -> ix.InteractionKB:
        return self._knowledge()[1]

    @property
    def policy(self) -> PrescribingPolicy:
        return self._knowledge()[2]

    @property
    def patient_conditions(self) -> PatientConditionsService:
        """Earlier visits' conditions and their audited exclusions, on the same store."""
        return PatientConditionsService(
            writer=self._writer, uow=self._uow, kb_version=lambda: self.kb.version, now=self._now
        )

    # -- pure checks (any thread) -----------------------------------------------------------------------

    def expand(self, text: str) -> ExpandedLine | None:
        """The expansion of one line; None for a blank line."""
        return expand(text, self.formulary, days_per_month=self._days_per_month) if text.strip() else None

    def check(
        self,
        lines: Sequence[str],
        conditions: Sequence[str],
        prescriber: PrescriberContext,
        overrides: Mapping[str, str] | None = None,
    ) -> PadCheck:
        """Expand every line and check them together with the conditions and the prescribing policy.

        Args:
            lines: the pad's lines as typed (blank lines are kept as empty entries).
            conditions: condition ids, names, SNOMED CT ids or ICD-10 codes (`conditions_of`).
            prescriber: the signed-in doctor (`prescriber_for`).
            overrides: alert key → typed reason, for majors already overridden in this encounter.
        """
        overrides = overrides or {}
        checks: list[LineCheck] = []
        meds: list[ix.MedicationLine] = []
        ayush: list[ix.AyushLine] = []
        med_lines: list[int] = []
        ayush_lines: list[int] = []
        for index, text in enumerate(lines):
            expanded = self.expand(text)
            if expanded is None or expanded.generic_name is None:
                checks.append(LineCheck(index, text, expanded))
                continue
            resolved = self.formulary.resolve(expanded.generic_name)
            if resolved is None:  # the parser named it, so the formulary knows it; kept safe regardless
                checks.append(LineCheck(index, text, expanded))
                continue
            if isinstance(prescriber, NoPrescriber):
                verdict = Verdict(
                    allowed=False, rule_id=NO_REGISTRATION_RULE, reason=prescriber.reason,
                    source=NO_REGISTRATION_SOURCE, policy_version=self.policy.version,
                )  # fmt: skip
            else:
                item = item_from_resolved(resolved, self.formulary)
                verdict = may_prescribe(prescriber, item, self.policy, cross_system=self._cross_system)
            checks.append(LineCheck(index, text, expanded, resolved.system, verdict))
            if resolved.system == "modern":
                meds.append(ix.MedicationLine(generic_name=expanded.generic_name))
                med_lines.append(index)
            else:
                ayush.append(ix.AyushLine(name=expanded.generic_name))
                ayush_lines.append(index)
        request = ix.CheckRequest(
            medications=tuple(meds), ayush_medications=tuple(ayush), patient_conditions=tuple(conditions)
        )
        result = ix.check(request, self.kb, self._knowledge()[3])
        alerts = []
        for finding in (*result.contraindications, *result.interactions):
            pad_lines = tuple(
                sorted(
                    (med_lines if item.kind == "medication" else ayush_lines)[item.index]
                    for item in finding.items
                    if item.kind != "condition"
                )
            )
            names = tuple(item.display_name for item in finding.items)
            key = alert_key(finding.rule_id, names)
            tier = TIER_OF_SEVERITY[finding.severity]
            alerts.append(
                Alert(
                    key=key, rule_id=finding.rule_id, kind=finding.kind, severity=finding.severity, tier=tier,
                    evidence_level=finding.evidence_level, lines=pad_lines, names=names, effect=finding.effect,
                    mechanism=finding.mechanism, advice=finding.advice, source=finding.source,
                    overridden_reason=overrides.get(key) if tier == "override" else None,
                    conditions=tuple(conditions[i.index] for i in finding.items if i.kind == "condition"),
                )
            )  # fmt: skip
        rank = {"hard_stop": 0, "override": 1, "inline": 2, "minor": 3}
        alerts.sort(key=lambda a: (rank[a.tier], a.rule_id, a.names))
        return PadCheck(
            lines=tuple(checks),
            alerts=tuple(alerts),
            unknown_conditions=tuple(u for u in result.unknown_items if u.kind == "condition"),
            kb_version=result.kb_version,
            kb_status=result.kb_status,
            policy_version=self.policy.version,
            no_prescriber=prescriber if isinstance(prescriber, NoPrescriber) else None,
        )

    # -- reads --------------------------------------------------------------------------------------------

    def saved(self, encounter_id: uuid.UUID) -> StoredPrescription | None:
        """The encounter's saved prescription, or None."""
        with self._uow.read() as uow:
            return PrescriptionRepository(uow.connection).for_encounter(encounter_id)

    def sync_refusal(self, encounter_id: uuid.UUID) -> dict[str, Any] | None:
        """The server's refusal of this encounter's draft (``{reason, message, hlc}``), until the next save.

        The draft stays on this PC as the doctor saved it; the pad shows why the server refused it.
        """
        rx = self.saved(encounter_id)
        return None if rx is None else rx.sync_refusal

    def history(self, encounter_id: uuid.UUID) -> list[LostValue]:
        """Line lists of this encounter's draft that lost a sync merge, oldest first."""
        with self._uow.read() as uow:
            repo = PrescriptionRepository(uow.connection)
            rx = repo.row_for_encounter(encounter_id)
            return [] if rx is None else repo.history(rx.id)

    def overrides(self, encounter_id: uuid.UUID) -> list[OverrideRecord]:
        """Overrides recorded in this encounter, oldest first."""
        with self._uow.read() as uow:
            return PrescriptionRepository(uow.connection).overrides(encounter_id)

    def override_reasons(self, encounter_id: uuid.UUID) -> dict[str, str]:
        """Alert key → the latest typed reason, for `check`."""
        return {o.alert_key: o.reason for o in self.overrides(encounter_id)}

    def refusals(self, encounter_id: uuid.UUID) -> list[RefusalRecord]:
        """Refusal attempts recorded in this encounter, oldest first."""
        with self._uow.read() as uow:
            return PrescriptionRepository(uow.connection).refusals(encounter_id)

    # -- writes -------------------------------------------------------------------------------------------

    def record_override(
        self, encounter_id: uuid.UUID, alert: Alert, reason: str, user_id: uuid.UUID, lines: Sequence[str]
    ) -> OverrideRecord:
        """Record the doctor's override of a major alert, with the typed reason (audit row, never changed).

        Raises:
            NotAllowed: the alert is contraindicated (a hard stop) or not a major one.
            RuleViolation: the reason is shorter than `MIN_OVERRIDE_REASON` characters.
        """
        if alert.tier != "override":
            raise NotAllowed(f"{alert.rule_id} is {alert.severity}: only a major alert can be overridden.")
        cleaned = " ".join(reason.split())
        if len(cleaned.replace(" ", "")) < MIN_OVERRIDE_REASON:
            raise RuleViolation(
                [
                    FieldProblem(
                        "reason",
                        "rx.override_reason",
                        f"Type why you override (at least {MIN_OVERRIDE_REASON} letters)",
                    )
                ]
            )
        record = OverrideRecord(
            id=uuid7(), encounter_id=encounter_id, user_id=user_id, created_at=self._now(), rule_id=alert.rule_id,
            alert_key=alert.key, severity=alert.severity, reason=cleaned,
            lines=[{"index": i, "text": lines[i] if i < len(lines) else ""} for i in alert.lines]
            + [{"name": n} for n in alert.names],
            kb_version=self.kb.version,
        )  # fmt: skip

        def write() -> OverrideRecord:
            with self._uow.write() as uow:
                EncounterRepository(uow.connection).get(encounter_id)
                PrescriptionRepository(uow.connection).add_override(record)
                uow.commit()
            return record

        return self._writer.run(write)

    def save(
        self, encounter_id: uuid.UUID, lines: Sequence[str], prescriber: PrescriberContext, user_id: uuid.UUID
    ) -> StoredPrescription | None:
        """Check the lines again (with the encounter's diagnoses and recorded overrides) and save the draft.

        Blank lines are dropped; no lines at all removes an existing draft and returns None.

        Raises:
            PrescriptionBlocked: anything in `PadCheck.problems`; nothing is saved (a refused line's attempt
                is recorded in ``rx_refusals`` first).
            EncounterCompleted-like `Conflict`: the encounter is completed.
        """
        kept = [line for line in lines if line.strip()]
        return self._writer.run(self._save_now, encounter_id, kept, prescriber, user_id)

    def _save_now(
        self, encounter_id: uuid.UUID, lines: list[str], prescriber: PrescriberContext, user_id: uuid.UUID
    ) -> StoredPrescription | None:
        now = self._now()
        with self._uow.write() as uow:
            encounter = EncounterRepository(uow.connection).get(encounter_id)
            if encounter.status == EncounterStatus.COMPLETED:
                raise EncounterCompleted("This encounter is completed; its prescription cannot change.")
            repo = PrescriptionRepository(uow.connection)
            overrides = {o.alert_key: o.reason for o in repo.overrides(encounter_id)}
            earlier = earlier_conditions(uow.connection, encounter)
            conditions = earlier.checked(conditions_of(encounter.soap_note))
            result = self.check(lines, conditions, prescriber, overrides)
            if result.refusals:
                for line in result.refusals:
                    assert line.verdict is not None and line.expanded is not None
                    repo.add_refusal(
                        RefusalRecord(
                            id=uuid7(), encounter_id=encounter_id, user_id=user_id, created_at=now,
                            rule_id=line.verdict.rule_id, medicine=line.expanded.generic_name or "",
                            line_text=line.text, reason=line.verdict.reason, source=line.verdict.source,
                            policy_version=line.verdict.policy_version,
                        )
                    )  # fmt: skip
                uow.commit()
            if not result.can_save:
                raise PrescriptionBlocked(result.problems)
            row = repo.row_for_encounter(encounter_id)
            existing = row if row is not None and not row.deleted else None
            if not lines:
                if existing is not None:
                    self._discard(uow, repo, existing, now)
                    uow.commit()
                return None
            values = self._values(encounter_id, encounter.patient_id, user_id, result, row)
            # The exclusions still in force travel with the draft: the server re-checks earlier conditions too.
            excluded = [{"condition": i.key, "reason": i.excluded_reason} for i in earlier.items if i.is_excluded]
            stamps = self._queue(uow, values["id"], values, now, excluded)
            if row is None:
                repo.insert({**values, "created_at": now, "updated_at": now, "field_hlcs": stamps})
            else:
                repo.update(
                    row.id,
                    {**values, "updated_at": now, "deleted": False, "sync_refusal": None,
                     "field_hlcs": row.field_hlcs | stamps},
                )  # fmt: skip
            stored = repo.for_encounter(encounter_id)
            uow.commit()
        return stored

    def _discard(self, uow: Any, repo: PrescriptionRepository, rx: StoredPrescription, now: datetime) -> None:
        """Discard a draft: a tombstone (the row stays, marked deleted) queued as a ``delete``."""
        stamps: dict[str, str] = {}
        if self._clock is not None:
            stamp = encode(self._clock.now())
            stamps = {DELETED_FIELD: stamp}
            uow.outbox.append(
                kind=RecordKind.PRESCRIPTION_DRAFT, record_id=rx.id, op=Op.DELETE, fields={}, field_hlcs={},
                hlc=stamp, now=now, actor=str(rx.prescriber_id),
            )  # fmt: skip
        repo.update(
            rx.id, {"deleted": True, "updated_at": now, "sync_refusal": None, "field_hlcs": rx.field_hlcs | stamps}
        )

    def _queue(
        self, uow: Any, rx_id: uuid.UUID, content: dict[str, Any], now: datetime,
        excluded: list[dict[str, Any]] | None = None,
    ) -> dict[str, str]:  # fmt: skip
        """Stamp the whole content once and queue the draft for sync (nothing without a clock); the stamps.

        ``excluded`` ({condition, reason} of earlier conditions left out) joins the content only when not empty,
        so a draft without exclusions is exactly what servers before the field accept."""
        if self._clock is None:
            return {}
        stamp = encode(self._clock.now())
        fields: dict[str, JsonValue] = {
            name: str(content[name]) if isinstance(content[name], uuid.UUID) else content[name]
            for name in CONTENT_FIELDS
        }
        if excluded:
            fields[OPTIONAL_CONTENT_FIELDS[0]] = cast(JsonValue, excluded)
        # The owner travels with every save (it never changes): a draft saved before drafts synced, queued for
        # the first time by a later save, is then a whole record to the server.
        fields |= {"encounter_id": str(content["encounter_id"]), "patient_id": str(content["patient_id"])}
        fields[DELETED_FIELD] = False
        stamps = dict.fromkeys(fields, stamp)
        uow.outbox.append(
            kind=RecordKind.PRESCRIPTION_DRAFT, record_id=rx_id, op=Op.UPSERT, fields=fields, field_hlcs=stamps,
            hlc=stamp, now=now, actor=str(content["prescriber_id"]),
        )  # fmt: skip
        return stamps

    def _values(
        self, encounter_id: uuid.UUID, patient_id: uuid.UUID, user_id: uuid.UUID, result: PadCheck,
        existing: StoredPrescription | None,
    ) -> dict[str, Any]:  # fmt: skip
        medications: list[dict[str, Any]] = []
        ayush: list[dict[str, Any]] = []
        advisories: list[dict[str, Any]] = []
        for line in result.lines:
            exp = line.expanded
            assert exp is not None and exp.generic_name is not None
            if line.system == "modern":
                medications.append(
                    {"generic_name": exp.generic_name, "strength": exp.strength, "dosage_form": exp.dosage_form,
                     "route": exp.route, "frequency": exp.frequency, "duration_days": exp.duration_days,
                     "quantity": exp.quantity, "instructions": exp.instructions}
                )  # fmt: skip
                where = f"medications.{len(medications) - 1}.generic_name"
            else:
                dose = cast(dict[str, Any], exp.timing.get("dose") or {})
                ayush.append(
                    {"name": exp.generic_name, "dose": f"{dose['value']} {dose['unit']}" if dose else None,
                     "frequency": exp.frequency, "duration_days": exp.duration_days,
                     "instructions": exp.instructions}
                )  # fmt: skip
                where = f"ayush_medications.{len(ayush) - 1}.name"
            if line.verdict is not None and line.verdict.advisory:
                advisories.append(
                    {"field": where, "rule_id": line.verdict.rule_id, "reason": line.verdict.reason,
                     "source": line.verdict.source}
                )  # fmt: skip
        # A new draft takes the id its encounter gives it, so two PCs starting it offline write one record.
        prescription_id = existing.id if existing is not None else draft_id_for(encounter_id)
        try:
            draft = DraftCreate.model_validate(
                {"id": prescription_id, "encounter_id": encounter_id, "medications": medications,
                 "ayush_medications": ayush}
            )  # fmt: skip
        except ValidationError as exc:
            raise violation_from(exc) from None
        return {
            "id": prescription_id,
            "encounter_id": encounter_id,
            "patient_id": patient_id,
            "prescriber_id": user_id,
            "status": "draft",
            "lines": [
                {"text": line.text, "expanded": line.expanded.model_dump(mode="json") if line.expanded else None}
                for line in result.lines
            ],
            "medications": [m.model_dump(mode="json") for m in draft.medications],
            "ayush_medications": [a.model_dump(mode="json") for a in draft.ayush_medications],
            "advisories": advisories,
            "kb_version": result.kb_version,
            "policy_version": result.policy_version,
            # The server's gate reads rule_id and reason; alert_key and names let another PC make the
            # override its own (the pad keys overrides by alert: rule and medicines).
            "overrides": [
                {"rule_id": a.rule_id, "reason": a.overridden_reason, "alert_key": a.key, "names": list(a.names)}
                for a in result.alerts
                if a.tier == "override" and a.overridden_reason is not None
            ],
        }


__all__ = [
    "Alert",
    "Clinician",
    "LineCheck",
    "NoPrescriber",
    "PadCheck",
    "PrescribingService",
    "PrescriptionBlocked",
    "StoredPrescription",
    "conditions_of",
    "prescriber_for",
]
