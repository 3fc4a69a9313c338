"""Who may prescribe what: degree, system of medicine, state policy, schedules and teleconsultation lists.

The rules live in `shared/knowledge/prescribing_policy.yaml` (versioned, every rule and state entry with
its source). `may_prescribe` is pure and fast, so the desktop calls it while the doctor types and the
server calls the same function again when a draft is saved and when it is signed; every refusal names
the rule and its source.

Evaluation: the policy's `rules` are tried in order and the first whose `when` conditions all hold
decides (allow, advise, deny, the clinic's cross-system setting, or the state policy table). The last
rule matches everything and denies, so nothing is allowed by omission. A state entry allows an AYUSH
practitioner a modern drug only when it is verified (legal review date set), allows allopathy, lists the
drug, the prescriber holds its required certificates, and neither the schedule nor the teleconsultation
mode is excluded by the entry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import date
from importlib import resources
from typing import Literal, TypeAlias

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.rx.formulary import Drug, Formulary, Formulation, Herb, Resolved, name_key

__all__ = [
    "PolicyError",
    "PrescribableItem",
    "Prescriber",
    "PrescribingPolicy",
    "Verdict",
    "item_from_resolved",
    "may_prescribe",
]

SystemOfMedicine: TypeAlias = Literal["modern", "ayurveda", "unani", "siddha", "sowa_rigpa", "homoeopathy"]
ConsultationMode: TypeAlias = Literal["in_person", "video", "audio", "text"]
ScheduleFlag: TypeAlias = Literal["H", "H1", "X", "G", "NDPS", "E1", "OTC"]
TpgList: TypeAlias = Literal["O", "A", "B", "prohibited"]
Effect: TypeAlias = Literal["allow", "advise", "deny", "clinic", "state_policy"]
CrossSystem: TypeAlias = Literal["warn", "block"]


class PolicyError(ValueError):
    """The policy file is malformed: bad YAML or schema, unknown source id, duplicate id, no catch-all."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------------------
# Inputs and answer
# ---------------------------------------------------------------------------------------------------------
class Prescriber(_Frozen):
    """The prescriber and the consultation the prescription is written in.

    Args:
        system_of_medicine: the system the registration is in (modern, ayurveda, unani, siddha, sowa_rigpa,
            homoeopathy).
        qualification: degrees as registered ("MBBS, MD", "B.A.M.S.").
        state: where the prescriber practises: ISO 3166-2:IN code ("MH", "IN-MH") or state name.
        consultation_mode: in_person, video, audio or text.
        is_follow_up: True when this is a follow-up consultation.
        prior_in_person_visit: True when the patient was examined in person before (TPG List B).
        certificates: certificates held (e.g. "pharmacology_bridge_course"), for state entries that need them.
    """

    system_of_medicine: SystemOfMedicine
    qualification: str = Field(max_length=500)
    state: str = Field(default="", max_length=100)
    consultation_mode: ConsultationMode = "in_person"
    is_follow_up: bool = False
    prior_in_person_visit: bool = False
    certificates: frozenset[str] = frozenset()


class PrescribableItem(_Frozen):
    """A resolved medicine with the regulatory facts the policy reads.

    Args:
        name: printed name ("WARFARIN", "TRIPHALA CHURNA").
        system: the medicine's system of medicine (modern for allopathic drugs).
        generic: lower-case generic name for allow-lists (modern drugs).
        schedules: Drugs Rules 1945 / NDPS flags: H, H1, X, G, NDPS, E1 (Schedule E(1)), OTC.
        tpg_list: Telemedicine Practice Guidelines 2020 list (O, A, B, prohibited), None when not recorded.
    """

    name: str = Field(max_length=500)
    system: SystemOfMedicine
    generic: str | None = Field(default=None, max_length=500)
    schedules: frozenset[ScheduleFlag] = frozenset()
    tpg_list: TpgList | None = None


class Verdict(_Frozen):
    """The answer for one prescriber and one item.

    Args:
        allowed: False means the item may not be prescribed (hard block).
        advisory: True when allowed but the reason must be shown (inline warning).
        rule_id: the policy rule or state entry that decided ("QP-012", "SP-MH-AYURVEDA").
        reason: sentence for the doctor.
        source: the regulation or document the rule rests on.
        policy_version: version of the policy table used.
    """

    allowed: bool
    advisory: bool = False
    rule_id: str
    reason: str
    source: str
    policy_version: str


def item_from_resolved(resolved: Resolved, formulary: Formulary) -> PrescribableItem:
    """Build a `PrescribableItem` from a formulary hit (schedule from the drug entry, E(1) from the herbs).

    Args:
        resolved: `formulary.resolve(name)`.
        formulary: the formulary that resolved it.

    Returns:
        The item; the formulary records no TPG list or NDPS flag yet, so those stay unset.
    """
    entry = formulary.get_entry(resolved.key)
    schedules: set[ScheduleFlag] = set()
    if isinstance(entry, Drug):
        if entry.schedule is not None:
            schedules.add(entry.schedule.value)
        return PrescribableItem(
            name=resolved.display_name, system="modern", generic=entry.generic, schedules=frozenset(schedules)
        )
    herbs = resolved.herbs if isinstance(entry, Formulation) else (resolved.key,)
    for key in herbs:
        herb = formulary.get_entry(key)
        if isinstance(herb, Herb) and herb.schedule_e1:
            schedules.add("E1")
    return PrescribableItem(name=resolved.display_name, system=resolved.system, schedules=frozenset(schedules))


# ---------------------------------------------------------------------------------------------------------
# Policy file
# ---------------------------------------------------------------------------------------------------------
def _as_tuple(value: object) -> object:
    return (value,) if isinstance(value, str) else value


class _When(_Frozen):
    prescriber_system: tuple[SystemOfMedicine, ...] | None = None
    item_system: tuple[SystemOfMedicine, ...] | None = None
    consultation_mode: tuple[ConsultationMode, ...] | None = None
    tpg_list: tuple[TpgList | Literal["none"], ...] | None = None
    schedule_any: tuple[ScheduleFlag, ...] | None = None
    same_system: bool | None = None
    qualification_matches: bool | None = None
    is_follow_up: bool | None = None
    prior_in_person_visit: bool | None = None

    @field_validator("prescriber_system", "item_system", "consultation_mode", "tpg_list", "schedule_any", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _as_tuple(value)


class _Rule(_Frozen):
    id: str = Field(pattern=r"^QP-\d{3}$")
    summary: str
    when: _When
    effect: Effect
    reason: str = Field(min_length=1)
    source: str = Field(min_length=1)


class _Qualification(_Frozen):
    system: SystemOfMedicine
    source: str = Field(min_length=1)


class _StatePolicy(_Frozen):
    id: str = Field(pattern=r"^SP-[A-Z]{2,3}-[A-Z_]+$")
    state: str = Field(pattern=r"^[A-Z]{2,3}$")
    state_name: str
    system: SystemOfMedicine
    allopathy: Literal["allowed", "allowed_limited", "denied", "unclear"]
    basis: str = Field(min_length=1)
    source: str = Field(min_length=1)
    requires: tuple[str, ...] = ()
    allow_list: tuple[str, ...] = ()
    never: tuple[Literal["schedule:X", "schedule:NDPS", "tele"], ...] = ()
    verified_on: date | None = None


class PolicyFile(_Frozen):
    """The prescribing policy file as written (see the file's header for the meaning of each field)."""

    schema_: Literal["integmed-prescribing-policy"] = Field(alias="schema")
    schema_version: Literal[1]
    policy_version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    policy_date: date
    status: Literal["draft", "signed_off"]
    systems_of_medicine: dict[SystemOfMedicine, str]
    ayush_systems: tuple[SystemOfMedicine, ...]
    qualifications: dict[str, _Qualification]
    sources: dict[str, str]
    rules: tuple[_Rule, ...] = Field(min_length=1)
    state_policies: tuple[_StatePolicy, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> PolicyFile:
        ids = [r.id for r in self.rules] + [s.id for s in self.state_policies]
        if len(ids) != len(set(ids)):
            raise ValueError("rule and state entry ids must be unique")
        for rule in self.rules:
            for sid in _source_ids(rule.source):
                if sid not in self.sources:
                    raise ValueError(f"rule {rule.id} names unknown source {sid!r}")
        if self.rules[-1].when != _When() or self.rules[-1].effect != "deny":
            raise ValueError("the last rule must match everything and deny")
        pairs = [(s.state, s.system) for s in self.state_policies]
        if len(pairs) != len(set(pairs)):
            raise ValueError("one state entry per state and system")
        return self


def _source_ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


class PrescribingPolicy:
    """The validated policy table; build with `load_default()` (cached) or `from_text()`."""

    def __init__(self, file: PolicyFile) -> None:
        """Index a validated policy file."""
        self.file = file
        self._states: dict[tuple[str, str], _StatePolicy] = {}
        self._state_codes: dict[str, str] = {}
        for entry in file.state_policies:
            self._states[(entry.state, entry.system)] = entry
            self._state_codes[name_key(entry.state)] = entry.state
            self._state_codes[name_key(entry.state_name)] = entry.state
        self._qualifications = {name_key(k): q for k, q in file.qualifications.items()}

    @property
    def version(self) -> str:
        """The policy version (semver)."""
        return self.file.policy_version

    @classmethod
    def from_text(cls, text: str) -> PrescribingPolicy:
        """Parse and validate prescribing_policy.yaml text.

        Raises:
            PolicyError: naming the first problem found.
        """
        try:
            return cls(PolicyFile.model_validate(yaml.safe_load(text)))
        except yaml.YAMLError as exc:
            raise PolicyError(f"prescribing_policy.yaml: not valid YAML: {exc}") from exc
        except ValidationError as exc:
            raise PolicyError(f"prescribing_policy.yaml: {exc}") from exc

    @classmethod
    def load_default(cls) -> PrescribingPolicy:
        """The policy shipped in `shared/knowledge/prescribing_policy.yaml`, loaded once per process."""
        return _load_default_policy()

    def sources_text(self, ids: str) -> str:
        """The source texts for a rule's `source` field ("tpg_2020; poonam_verma")."""
        return " | ".join(self.file.sources[s] for s in _source_ids(ids))

    def qualification_systems(self, qualification: str) -> tuple[tuple[str, SystemOfMedicine], ...]:
        """The recognised degrees in a qualification text and the system each belongs to."""
        words = re.split(r"[^0-9A-Za-z]+", qualification.replace(".", ""))
        found = ((w.upper(), self._qualifications.get(name_key(w))) for w in words if w)
        return tuple(dict.fromkeys((w, q.system) for w, q in found if q is not None))

    def state_entry(self, state: str, system: str) -> _StatePolicy | None:
        """The state entry for a prescriber's state (code, IN-code or name) and system, if any."""
        text = state.strip()
        if text.upper().startswith("IN-"):
            text = text[3:]
        code = self._state_codes.get(name_key(text))
        return self._states.get((code, system)) if code else None

    def decide(self, prescriber: Prescriber, item: PrescribableItem, *, cross_system: CrossSystem) -> Verdict:
        """See `may_prescribe`."""
        facts = _facts(self, prescriber, item)
        for rule in self.file.rules:
            if _holds(rule.when, facts):
                return self._apply(rule, prescriber, item, facts, cross_system)
        raise AssertionError("the last policy rule matches everything")  # pragma: no cover - validated on load

    def _apply(
        self,
        rule: _Rule,
        prescriber: Prescriber,
        item: PrescribableItem,
        facts: Mapping[str, object],
        cross_system: CrossSystem,
    ) -> Verdict:
        reason = rule.reason
        if rule.id == "QP-001":
            reason = f"{reason} ({facts['qualification_detail']})"
        effect = rule.effect
        if effect == "clinic":
            effect = "deny" if cross_system == "block" else "advise"
            reason += " — clinic policy: " + ("blocked" if cross_system == "block" else "warn")
        if effect == "state_policy":
            return self._state_verdict(rule, prescriber, item)
        return Verdict(
            allowed=effect != "deny",
            advisory=effect == "advise",
            rule_id=rule.id,
            reason=reason,
            source=self.sources_text(rule.source),
            policy_version=self.version,
        )

    def _state_verdict(self, rule: _Rule, prescriber: Prescriber, item: PrescribableItem) -> Verdict:
        entry = self.state_entry(prescriber.state, prescriber.system_of_medicine)
        if entry is None:
            return self._deny(
                rule.id,
                f"{rule.reason}; no policy entry for {prescriber.system_of_medicine} practitioners in state "
                f"{prescriber.state or '(not set)'!s} — denied by default",
                self.sources_text(rule.source),
            )
        source = f"{entry.basis} ({entry.source})"
        refusal = _state_refusal(entry, prescriber, item)
        if refusal is not None:
            return self._deny(entry.id, f"{entry.state_name}, {entry.system}: {refusal}", source)
        return Verdict(
            allowed=True,
            rule_id=entry.id,
            reason=f"{entry.state_name}: {entry.system} practitioners may prescribe {item.name} (state allow-list)",
            source=source,
            policy_version=self.version,
        )

    def _deny(self, rule_id: str, reason: str, source: str) -> Verdict:
        return Verdict(allowed=False, rule_id=rule_id, reason=reason, source=source, policy_version=self.version)


def _state_refusal(entry: _StatePolicy, prescriber: Prescriber, item: PrescribableItem) -> str | None:
    if entry.allopathy in ("denied", "unclear"):
        return f"allopathic prescribing is {entry.allopathy} in the policy table"
    if entry.verified_on is None:
        return "the state entry has not been legally reviewed (verified_on is empty), so it is treated as denied"
    if "tele" in entry.never and prescriber.consultation_mode != "in_person":
        return "allopathic drugs may not be prescribed in teleconsultation under this entry"
    excluded = {n.removeprefix("schedule:") for n in entry.never if n.startswith("schedule:")}
    if excluded & item.schedules:
        return f"Schedule {', '.join(sorted(excluded & item.schedules))} items are excluded by this entry"
    missing = sorted(set(entry.requires) - prescriber.certificates)
    if missing:
        return f"the prescriber lacks the required certificate(s): {', '.join(missing)}"
    generic = name_key(item.generic or item.name)
    if generic not in {name_key(g) for g in entry.allow_list}:
        return f"{item.name} is not on the state's allow-list"
    return None


def _facts(policy: PrescribingPolicy, prescriber: Prescriber, item: PrescribableItem) -> dict[str, object]:
    degrees = policy.qualification_systems(prescriber.qualification)
    matches = any(system == prescriber.system_of_medicine for _, system in degrees)
    if not degrees:
        detail = f"no recognised degree in {prescriber.qualification[:80]!r}"
    else:
        named = ", ".join(f"{d} is {s}" for d, s in degrees)
        detail = f"{named}; declared system: {prescriber.system_of_medicine}"
    return {
        "prescriber_system": prescriber.system_of_medicine,
        "item_system": item.system,
        "consultation_mode": prescriber.consultation_mode,
        "tpg_list": item.tpg_list or "none",
        "schedules": item.schedules,
        "same_system": item.system == prescriber.system_of_medicine,
        "qualification_matches": matches,
        "qualification_detail": detail,
        "is_follow_up": prescriber.is_follow_up,
        "prior_in_person_visit": prescriber.prior_in_person_visit,
    }


def _holds(when: _When, facts: Mapping[str, object]) -> bool:
    for name in ("prescriber_system", "item_system", "consultation_mode", "tpg_list"):
        allowed: tuple[str, ...] | None = getattr(when, name)
        if allowed is not None and facts[name] not in allowed:
            return False
    schedules = facts["schedules"]
    if when.schedule_any is not None and not (isinstance(schedules, frozenset) and schedules & set(when.schedule_any)):
        return False
    for name in ("same_system", "qualification_matches", "is_follow_up", "prior_in_person_visit"):
        wanted: bool | None = getattr(when, name)
        if wanted is not None and facts[name] != wanted:
            return False
    return True


@functools.lru_cache(maxsize=1)
def _load_default_policy() -> PrescribingPolicy:
    text = (resources.files("shared.knowledge") / "prescribing_policy.yaml").read_text(encoding="utf-8")
    return PrescribingPolicy.from_text(text)


def may_prescribe(
    prescriber: Prescriber,
    item: PrescribableItem,
    policy: PrescribingPolicy | None = None,
    *,
    cross_system: CrossSystem = "warn",
) -> Verdict:
    """Decide whether this prescriber may prescribe this item in this consultation.

    Args:
        prescriber: system of medicine, qualification, state, consultation mode (and follow-up facts).
        item: the resolved medicine with its schedules and TPG list (`item_from_resolved`).
        policy: the policy table (default: the shipped one).
        cross_system: the clinic's setting for modern prescribers writing AYUSH medicines: warn or block.

    Returns:
        A verdict naming the deciding rule (or state entry), the reason and its source.
    """
    return (policy or PrescribingPolicy.load_default()).decide(prescriber, item, cross_system=cross_system)
