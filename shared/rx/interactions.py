"""Interaction engine: drug–drug, drug–herb, drug/herb–condition and duplicate-therapy checks over versioned knowledge.

The knowledge lives in `shared/knowledge/interactions.yaml` (rules, classes, herbs, formulations, drug
vocabulary) and `shared/knowledge/conditions.yaml` (condition ids with SNOMED CT and ICD-10 codes). Both
are validated with pydantic on load and compiled once into indexes (`InteractionKB`); `check` then only
looks up the concepts present in one request.

Matching (details and rationale in docs/interactions.md):
    * A name is resolved to rule concepts (`drug:<generic>`, `herb:<key>`, `formulation:<KEY>`) by a
      `NameResolver` (the formulary, falling back to the knowledge base's own names). Unresolved names are
      returned in `unknown_items`, never dropped.
    * Each item is expanded once: a drug to its classes (transitively) and, for a combination written
      "a/b", to its components (an item holding both a and b also matches "a/b"); a formulation to its
      nested formulations and herbs. Conditions expand through `implies`.
    * A pairwise rule fires for two different items (never two ingredients of one fixed-dose combination);
      a rule's `also` party may come from any item. A same-class rule (a == b) needs two different members.
    * Duplicate therapy: DUP-001 fires when one ingredient reaches the patient through two items; the
      other duplicate-therapy rules are same-class rules over the classes the knowledge base lists.
    * One finding per rule per set of distinct medicines: the same generic entered twice gives one finding
      that lists both lines, and the conditions that trigger one rule for one medicine are listed together.

Safety score (audit and QA only; the UI shows tiers):
    For each finding, w = S × E × P, where S = {contraindicated 100, major 40, moderate 12, minor 2} by
    severity, E = {A 1.0, B 0.9, C 0.7, D 0.4} by evidence level, and P = 1.25 when the patient has any of
    age_65_plus, egfr_lt_30, egfr_30_to_44, crcl_lt_30, pregnancy or five or more resolved items, else 1.
    Risk R = max(w) + 0.25 × (sum(w) − max(w)), capped at 100; safety_score = 100 − ceil(R), an integer
    in 0..100 (100 exactly when there is no finding). Computed in exact integer arithmetic. Adding a
    finding never raises the score: max(w) and sum(w) can only grow, and so can P.
    (clinical_rx.md §2.6.)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from typing import Literal, Protocol, TypeAlias, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

from shared.rx.formulary import Formulary, name_key

__all__ = [
    "EXAMPLE_REQUEST",
    "EXAMPLE_RESULT",
    "AyushLine",
    "ChainResolver",
    "CheckRequest",
    "CheckResult",
    "Finding",
    "FindingItem",
    "InteractionKB",
    "KnowledgeError",
    "KnowledgeResolver",
    "KnownName",
    "MedicationLine",
    "NameResolver",
    "ResolvedName",
    "UnknownItem",
    "alert_tier",
    "check",
    "default_resolver",
    "safety_score",
]

Severity: TypeAlias = Literal["contraindicated", "major", "moderate", "minor"]
EvidenceLevel: TypeAlias = Literal["A", "B", "C", "D"]
RuleKind: TypeAlias = Literal["drug-drug", "drug-herb", "drug-condition", "duplicate-therapy"]
Tier: TypeAlias = Literal["red", "amber", "grey"]
ItemKind: TypeAlias = Literal["medication", "ayush_medication", "condition"]

SEVERITY_RANK: Mapping[str, int] = {"contraindicated": 0, "major": 1, "moderate": 2, "minor": 3}
SEVERITY_WEIGHT: Mapping[str, int] = {"contraindicated": 100, "major": 40, "moderate": 12, "minor": 2}
EVIDENCE_FACTOR_PCT: Mapping[str, int] = {"A": 100, "B": 90, "C": 70, "D": 40}
PATIENT_FACTOR_PCT = 125
PATIENT_FACTOR_CONDITIONS = frozenset({"age_65_plus", "egfr_lt_30", "egfr_30_to_44", "crcl_lt_30", "pregnancy"})
POLYPHARMACY_ITEMS = 5
MAX_LINES = 200
MAX_TEXT = 100_000
SHOWN_NAME_CHARS = 200
_KIND_RANK: Mapping[str, int] = {"medication": 0, "ayush_medication": 1, "condition": 2}
_M = TypeVar("_M", bound=BaseModel)


# ---------------------------------------------------------------------------------------------------------
# Request and response models
# ---------------------------------------------------------------------------------------------------------
class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MedicationLine(_Request):
    """One modern-medicine line as the prescription pad holds it; only `generic_name` is used for checks.

    Args:
        generic_name: generic, brand or short form ("METFORMIN", "Glycomet"); resolved by the formulary.
        strength, dosage_form, route, frequency, duration_days, quantity, instructions, rxnorm_code: the rest
            of the line, accepted so that a full draft line can be checked as it is.
    """

    generic_name: str = Field(max_length=MAX_TEXT)
    strength: str | None = Field(default=None, max_length=MAX_TEXT)
    dosage_form: str | None = Field(default=None, max_length=MAX_TEXT)
    route: str | None = Field(default=None, max_length=MAX_TEXT)
    frequency: str | None = Field(default=None, max_length=MAX_TEXT)
    duration_days: int | None = Field(default=None, ge=0, le=3650)
    quantity: int | None = Field(default=None, ge=0)
    instructions: str | None = Field(default=None, max_length=MAX_TEXT)
    rxnorm_code: str | None = Field(default=None, max_length=64)


class AyushLine(_Request):
    """One AYUSH line; `name` may be Sanskrit, Hindi or English ("Triphala Churna", "Giloy", "Mulethi").

    Args:
        name: the medicine's name as written.
        dose, frequency, duration_days, instructions: the rest of the line (not used for checks).
    """

    name: str = Field(max_length=MAX_TEXT)
    dose: str | None = Field(default=None, max_length=MAX_TEXT)
    frequency: str | None = Field(default=None, max_length=MAX_TEXT)
    duration_days: int | None = Field(default=None, ge=0, le=3650)
    instructions: str | None = Field(default=None, max_length=MAX_TEXT)


EXAMPLE_REQUEST: dict[str, JsonValue] = {
    "medications": [
        {"generic_name": "METFORMIN", "strength": "1000mg", "frequency": "Twice daily", "duration_days": 30},
        {"generic_name": "WARFARIN", "strength": "5mg", "frequency": "Once daily", "duration_days": 30},
        {"generic_name": "ASPIRIN", "strength": "75mg", "frequency": "Once daily", "duration_days": 30},
    ],
    "ayush_medications": [{"name": "Triphala Churna", "dose": "5g", "frequency": "Twice daily", "duration_days": 30}],
    "patient_conditions": ["type_2_diabetes", "hypertension"],
}


EXAMPLE_RESULT: dict[str, JsonValue] = {
    "interactions": [
        {
            "rule_id": "DDI-002",
            "kind": "drug-drug",
            "severity": "major",
            "tier": "red",
            "evidence_level": "A",
            "items": [
                {"kind": "medication", "index": 2, "name": "ASPIRIN", "display_name": "ASPIRIN",
                 "matched_on": ["drug:aspirin"]},
                {"kind": "medication", "index": 1, "name": "WARFARIN", "display_name": "WARFARIN",
                 "matched_on": ["class:VKA"]},
            ],
            "effect": "Increased bleeding risk.",
            "mechanism": "Antiplatelet plus anticoagulant effect.",
            "advice": (
                "Combine only with a clear indication (e.g., mechanical valve, recent stent) and documented plan."
            ),
            "source": "Warfarin (Coumadin) US prescribing information, Drug Interactions section.",
            "notes": None,
        }
    ],
    "contraindications": [],
    "safety_score": 60,
    "unknown_items": [],
    "kb_version": "0.2.0",
    "kb_status": "draft",
}  # fmt: skip


class CheckRequest(_Request):
    """Body of `POST /api/v1/prescriptions/check-interactions`.

    Args:
        medications: modern-medicine lines.
        ayush_medications: AYUSH lines.
        patient_conditions: condition ids ("type_2_diabetes"), aliases ("HTN"), SNOMED CT concept ids
            ("44054006", "SNOMED:44054006") or ICD-10 codes ("E11.9", "ICD10:E11").
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [EXAMPLE_REQUEST]})

    medications: tuple[MedicationLine, ...] = Field(default=(), max_length=MAX_LINES)
    ayush_medications: tuple[AyushLine, ...] = Field(default=(), max_length=MAX_LINES)
    patient_conditions: tuple[str, ...] = Field(default=(), max_length=MAX_LINES)


class FindingItem(BaseModel):
    """One input line (or condition) that takes part in a finding.

    Args:
        kind: which list of the request it came from.
        index: its position in that list (0-based).
        name: the text as entered (cut to 200 characters).
        display_name: the canonical name (generic in capitals, formulation name, condition label).
        matched_on: the rule references it matched ("class:NSAID", "herb:commiphora_wightii").
    """

    model_config = ConfigDict(frozen=True)

    kind: ItemKind
    index: int
    name: str
    display_name: str
    matched_on: tuple[str, ...]


class Finding(BaseModel):
    """One fired rule for one set of items.

    Args:
        rule_id: the knowledge-base rule id ("DDI-002").
        kind: drug-drug, drug-herb, drug-condition or duplicate-therapy.
        severity: contraindicated, major, moderate or minor.
        tier: alert tier: red (interruptive), amber (inline) or grey (on demand); see `alert_tier`.
        evidence_level: A-D as in the knowledge base.
        items: the lines and conditions involved, sorted.
        effect: what may happen.
        mechanism: why.
        advice: what to do (the rule's `management`).
        source: the rule's evidence citation.
        notes: caveats recorded with the rule.
    """

    model_config = ConfigDict(frozen=True)

    rule_id: str
    kind: RuleKind
    severity: Severity
    tier: Tier
    evidence_level: EvidenceLevel
    items: tuple[FindingItem, ...]
    effect: str
    mechanism: str
    advice: str
    source: str
    notes: str | None = None


class UnknownItem(BaseModel):
    """An input the engine could not resolve; it took no part in any check.

    Args:
        kind: medication, ayush_medication or condition.
        index: position in its list.
        name: the text as entered (cut to 200 characters).
        reason: why it was not recognised.
    """

    model_config = ConfigDict(frozen=True)

    kind: ItemKind
    index: int
    name: str
    reason: str


class CheckResult(BaseModel):
    """Answer of `check`.

    Args:
        interactions: drug–drug, drug–herb and duplicate-therapy findings, most severe first.
        contraindications: drug–condition and herb–condition findings, most severe first.
        safety_score: 0-100, formula in this module's docstring (audit/QA, not for the UI).
        unknown_items: every input that could not be resolved.
        kb_version: version of the knowledge base used.
        kb_status: "draft" until the knowledge base is signed off.
    """

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_RESULT]})

    interactions: tuple[Finding, ...]
    contraindications: tuple[Finding, ...]
    safety_score: int = Field(ge=0, le=100)
    unknown_items: tuple[UnknownItem, ...]
    kb_version: str
    kb_status: str


# ---------------------------------------------------------------------------------------------------------
# Knowledge files: models, validation, compilation
# ---------------------------------------------------------------------------------------------------------
class KnowledgeError(ValueError):
    """A knowledge file is malformed: bad YAML or schema, unknown reference, duplicate id, cycle, clash."""


_Refs: TypeAlias = tuple[str, ...]
ParamValue: TypeAlias = str | int | float | list[int | float]
_DRUGLIKE = frozenset({"drug", "class"})
_HERBLIKE = frozenset({"herb", "formulation"})


class _KBModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_refs(value: object) -> object:
    return (value,) if isinstance(value, str) else value


class RuleSpec(_KBModel):
    """One knowledge-base rule as written (fields as in the seed; `evidence` and `evidence_level` required)."""

    id: str = Field(pattern=r"^[A-Z]{3}-\d{3}$")
    kind: RuleKind
    a: _Refs = Field(min_length=1)
    b: _Refs = Field(min_length=1)
    also: _Refs = ()
    severity: Severity
    effect: str = Field(min_length=1)
    mechanism: str = Field(min_length=1)
    management: str = Field(min_length=1)
    evidence: str = Field(min_length=10)
    evidence_level: EvidenceLevel
    params: dict[str, ParamValue] | None = None
    notes: str | None = None

    @field_validator("a", "b", "also", mode="before")
    @classmethod
    def _refs(cls, value: object) -> object:
        return _as_refs(value)

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, value: str) -> str:
        if len(value.strip()) < 10:
            raise ValueError("every rule needs an evidence citation")
        return value


class _Herb(_KBModel):
    aliases: tuple[str, ...] = ()


class _SignOff(_KBModel):
    by: str
    role: str
    date: date
    scope: str


class _Change(_KBModel):
    version: str
    date: date
    changes: tuple[str, ...]


class _Reviewed(_KBModel):
    pair: str
    reason: str


class KnowledgeFile(_KBModel):
    """The interactions knowledge file (`shared/knowledge/interactions.yaml`) as written."""

    schema_: Literal["integmed-interaction-kb"] = Field(alias="schema")
    schema_version: Literal[1]
    kb_version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    kb_date: date
    status: Literal["draft", "signed_off"]
    sign_off: _SignOff | None = None
    changelog: tuple[_Change, ...] = ()
    severity_scale: dict[Severity, str]
    evidence_levels: dict[EvidenceLevel, str]
    classes: dict[str, tuple[str, ...]]
    herbs: dict[str, _Herb]
    formulations: dict[str, tuple[str, ...]]
    drugs: dict[str, tuple[str, ...]]
    rules: tuple[RuleSpec, ...]
    reviewed_without_rule: tuple[_Reviewed, ...] = ()

    @field_validator("drugs", mode="before")
    @classmethod
    def _drugs(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: (v or ()) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _signed(self) -> KnowledgeFile:
        if self.status == "signed_off" and self.sign_off is None:
            raise ValueError("status signed_off needs a sign_off record")
        return self

    @classmethod
    def from_text(cls, text: str) -> KnowledgeFile:
        """Parse and validate interactions.yaml text.

        Raises:
            KnowledgeError: naming the first problem found.
        """
        return _validated(cls, text, "interactions.yaml")


def _validated(model: type[_M], text: str, what: str) -> _M:
    try:
        doc = yaml.safe_load(text)
        return model.model_validate(doc)
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{what}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        raise KnowledgeError(f"{what}: {exc}") from exc


class _CodeRef(_KBModel):
    code: str = Field(min_length=1)
    term: str = Field(min_length=1)
    sources: tuple[str, ...] = Field(min_length=1)


class _Condition(_KBModel):
    label: str
    aliases: tuple[str, ...] = ()
    snomed: tuple[_CodeRef, ...] = ()
    icd10: tuple[_CodeRef, ...] = ()
    implies: tuple[str, ...] = ()
    implies_sources: tuple[str, ...] = ()
    derived: str | None = None


class _Source(_KBModel):
    title: str
    publisher: str | None = None
    url_template: str | None = None
    notes: str | None = None


class ConditionsFile(_KBModel):
    """The condition vocabulary file (`shared/knowledge/conditions.yaml`) as written."""

    schema_: Literal["integmed-conditions"] = Field(alias="schema")
    schema_version: Literal[1]
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    date: date
    status: Literal["draft", "signed_off"]
    sources: dict[str, _Source]
    conditions: dict[str, _Condition]


_SNOMED_PREFIX = re.compile(
    r"^(?:https?://snomed\.info/sct\s*\||(?:snomed(?:[\s_-]?ct)?|sctid|sct)(?:\s*[:|]\s*|\s+))", re.I
)
_ICD_PREFIX = re.compile(r"^(?:https?://hl7\.org/fhir/sid/icd-10\s*\||icd(?:[\s_-]?10)?(?:\s*[:|]\s*|\s+))", re.I)
_SNOMED_ID = re.compile(r"^\d{6,18}$")
_ICD_CODE = re.compile(r"^([A-Za-z]\d{2})(?:\.?([0-9A-Za-z]{1,4}))?$")


@dataclass(frozen=True)
class ConditionHit:
    """Result of resolving one condition text: the condition ids, or a reason when there are none."""

    ids: tuple[str, ...]
    reason: str = ""


class ConditionVocabulary:
    """Condition ids, aliases, SNOMED CT and ICD-10 codes, and the `implies` closure (validated on build)."""

    def __init__(self, file: ConditionsFile) -> None:
        """Index a validated file.

        Raises:
            KnowledgeError: on a bad id, an unknown source or implied id, an `implies` cycle, or a name or
                code listed for two conditions.
        """
        self.file = file
        self._names: dict[str, str] = {}
        self._snomed: dict[str, str] = {}
        self._icd: dict[str, list[str]] = {}
        for cid, cond in file.conditions.items():
            self._index(cid, cond)
        self._closure = {cid: self._implied(cid, ()) for cid in file.conditions}

    def _index(self, cid: str, cond: _Condition) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", cid):
            raise KnowledgeError(f"condition id {cid!r} is not snake_case")
        if cond.implies and not cond.implies_sources:
            raise KnowledgeError(f"condition {cid}: `implies` needs `implies_sources`")
        for sid in (*cond.implies_sources, *(s for ref in (*cond.snomed, *cond.icd10) for s in ref.sources)):
            if sid not in self.file.sources:
                raise KnowledgeError(f"condition {cid}: unknown source {sid!r}")
        for text in (cid, cond.label, *cond.aliases):
            _claim(self._names, name_key(text), cid, f"condition name {text!r}")
        for ref in cond.snomed:
            if not _SNOMED_ID.match(ref.code):
                raise KnowledgeError(f"condition {cid}: {ref.code!r} is not a SNOMED CT concept id")
            _claim(self._snomed, ref.code, cid, f"SNOMED CT code {ref.code}")
        for ref in cond.icd10:
            if not _ICD_CODE.match(ref.code):
                raise KnowledgeError(f"condition {cid}: {ref.code!r} is not an ICD-10 code")
            self._icd.setdefault(ref.code.replace(".", "").upper(), []).append(cid)

    @classmethod
    def from_text(cls, text: str) -> ConditionVocabulary:
        """Parse, validate and index conditions.yaml text.

        Raises:
            KnowledgeError: naming the first problem found.
        """
        return cls(_validated(ConditionsFile, text, "conditions.yaml"))

    def _implied(self, cid: str, stack: tuple[str, ...]) -> frozenset[str]:
        if cid in stack:
            raise KnowledgeError(f"condition {cid} implies itself via {' → '.join(stack)}")
        cond = self.file.conditions.get(cid)
        if cond is None:
            raise KnowledgeError(f"condition {stack[-1]} implies unknown condition {cid!r}")
        found = {cid}
        for parent in cond.implies:
            found |= self._implied(parent, (*stack, cid))
        return frozenset(found)

    def __contains__(self, cid: object) -> bool:
        return cid in self.file.conditions

    def label(self, cid: str) -> str:
        """The printed label of a condition id."""
        return self.file.conditions[cid].label

    def closure(self, ids: Iterable[str]) -> frozenset[str]:
        """The ids with every condition they imply."""
        return frozenset().union(*(self._closure[c] for c in ids))

    def resolve(self, text: str) -> ConditionHit:
        """Resolve an id, alias, SNOMED CT concept id or ICD-10 code.

        Args:
            text: as sent ("type_2_diabetes", "HTN", "SNOMED:44054006", "E11.9", "ICD10:I10").

        Returns:
            The condition ids (an ICD-10 code gives every condition listed at it or at an ancestor code), or
            no ids and the reason.
        """
        stripped = text.strip()
        if not stripped:
            return ConditionHit((), "empty condition")
        hit = self._names.get(name_key(stripped))
        if hit is not None:
            return ConditionHit((hit,))
        snomed = _SNOMED_PREFIX.sub("", stripped, count=1)
        if _SNOMED_ID.match(snomed):
            cid = self._snomed.get(snomed)
            if cid is not None:
                return ConditionHit((cid,))
            return ConditionHit((), f"SNOMED CT concept {snomed} is not in the condition vocabulary (exact ids only)")
        icd = _ICD_PREFIX.sub("", stripped, count=1)
        if _ICD_CODE.match(icd):
            code = icd.replace(".", "").upper()
            ids = tuple(dict.fromkeys(c for n in range(3, len(code) + 1) for c in self._icd.get(code[:n], ())))
            if ids:
                return ConditionHit(ids)
            return ConditionHit((), f"ICD-10 code {icd.upper()} is not mapped to a condition in the vocabulary")
        return ConditionHit((), "not a condition id, alias, SNOMED CT concept id or ICD-10 code in the vocabulary")


def _claim(index: dict[str, str], key: str, owner: str, what: str) -> None:
    if not key:
        raise KnowledgeError(f"{what} of {owner} is empty")
    previous = index.setdefault(key, owner)
    if previous != owner:
        raise KnowledgeError(f"{what} belongs to both {previous} and {owner}")


@dataclass(frozen=True)
class _Compiled:
    rules: tuple[RuleSpec, ...]
    rule_index: Mapping[str, tuple[tuple[int, int], ...]]  # match key → (rule position, side 0=a 1=b 2=also)
    same_class: tuple[bool, ...]
    same_ingredient_rule: RuleSpec | None
    drug_canon: Mapping[str, str]  # name_key → generic as the knowledge base spells it
    herb_canon: Mapping[str, str]
    formulation_canon: Mapping[str, str]
    components: Mapping[str, frozenset[str]]  # "a/b" → {a, b}
    drug_classes: Mapping[str, tuple[str, ...]]  # generic → ("class:X", …), transitively
    formulation_closure: Mapping[str, tuple[str, ...]]  # KEY → its own, nested formulation and herb keys
    names: Mapping[str, tuple[str, str]]  # name_key → (display name, concept) for KnowledgeResolver


def _compile(kb: KnowledgeFile, conditions: ConditionVocabulary) -> _Compiled:
    members = {cls: _class_members(kb, cls, ()) for cls in kb.classes}
    drug_classes: dict[str, list[str]] = {}
    for cls in sorted(members):
        for drug in members[cls]:
            drug_classes.setdefault(drug, []).append(f"class:{cls}")
    closure = {f: _formulation_keys(kb, f, ()) for f in kb.formulations}
    names, drug_canon, herb_canon, form_canon = _names(kb, closure)
    index: dict[str, list[tuple[int, int]]] = {}
    seen: set[str] = set()
    same_ingredient: RuleSpec | None = None
    for pos, rule in enumerate(kb.rules):
        if rule.id in seen:
            raise KnowledgeError(f"duplicate rule id {rule.id}")
        seen.add(rule.id)
        _check_rule(rule, kb, conditions)
        if rule.a == ("same:ingredient",):
            same_ingredient = rule
            continue
        for side, refs in enumerate((rule.a, rule.b, rule.also)):
            for ref in dict.fromkeys(refs):
                index.setdefault(ref, []).append((pos, side))
    return _Compiled(
        rules=kb.rules,
        rule_index={k: tuple(v) for k, v in index.items()},
        same_class=tuple(r.a == r.b and len(r.a) == 1 and r.a[0].startswith("class:") for r in kb.rules),
        same_ingredient_rule=same_ingredient,
        drug_canon=drug_canon,
        herb_canon=herb_canon,
        formulation_canon=form_canon,
        components={d: frozenset(p.strip() for p in d.split("/")) for d in kb.drugs if "/" in d},
        drug_classes={d: tuple(c) for d, c in drug_classes.items()},
        formulation_closure=closure,
        names=names,
    )


def _class_members(kb: KnowledgeFile, cls: str, stack: tuple[str, ...]) -> frozenset[str]:
    if cls in stack:
        raise KnowledgeError(f"class {cls} contains itself via {' → '.join(stack)}")
    if cls not in kb.classes:
        raise KnowledgeError(f"class {stack[-1]} names unknown class {cls!r}")
    found: set[str] = set()
    for member in kb.classes[cls]:
        if member.startswith("class:"):
            found |= _class_members(kb, member.removeprefix("class:"), (*stack, cls))
        elif member in kb.drugs:
            found.add(member)
        else:
            raise KnowledgeError(f"class {cls}: member {member!r} is not in `drugs`")
    return frozenset(found)


def _formulation_keys(kb: KnowledgeFile, key: str, stack: tuple[str, ...]) -> tuple[str, ...]:
    if key in stack:
        raise KnowledgeError(f"formulation {key} contains itself via {' → '.join(stack)}")
    keys = [f"formulation:{key}"]
    for ref in kb.formulations[key]:
        kind, _, target = ref.partition(":")
        if kind == "herb" and target in kb.herbs:
            keys.append(ref)
        elif kind == "formulation" and target in kb.formulations:
            keys.extend(_formulation_keys(kb, target, (*stack, key)))
        else:
            raise KnowledgeError(f"formulation {key}: unknown ingredient {ref!r}")
    return tuple(dict.fromkeys(keys))


def _names(
    kb: KnowledgeFile, closure: Mapping[str, tuple[str, ...]]
) -> tuple[dict[str, tuple[str, str]], dict[str, str], dict[str, str], dict[str, str]]:
    names: dict[str, tuple[str, str]] = {}
    owners: dict[str, str] = {}
    drug_canon: dict[str, str] = {}
    herb_canon: dict[str, str] = {}
    form_canon: dict[str, str] = {}
    for key in kb.formulations:
        for text in (key, key.replace("_", " ")):
            _claim(owners, name_key(text), f"formulation:{key}", f"name {text!r}")
            form_canon[name_key(text)] = key
            names[name_key(text)] = (key.replace("_", " "), f"formulation:{key}")
    for key, herb in kb.herbs.items():
        display = (herb.aliases[0] if herb.aliases else key.replace("_", " ")).upper()
        for text in (key, *herb.aliases):
            nk = name_key(text)
            herb_canon.setdefault(nk, key)
            owner = owners.get(nk, "")
            # "ashwagandha churna" is a herb alias and a formulation of that one herb: the formulation wins
            if owner.startswith("formulation:") and f"herb:{key}" in closure[owner.removeprefix("formulation:")]:
                continue
            _claim(owners, nk, f"herb:{key}", f"name {text!r}")
            names[nk] = (display, f"herb:{key}")
    for generic, variants in kb.drugs.items():
        for text in (generic, *variants):
            _claim(owners, name_key(text), f"drug:{generic}", f"name {text!r}")
            drug_canon[name_key(text)] = generic
            names[name_key(text)] = (generic.upper(), f"drug:{generic}")
    return names, drug_canon, herb_canon, form_canon


def _check_rule(rule: RuleSpec, kb: KnowledgeFile, conditions: ConditionVocabulary) -> None:
    sides = []
    for refs in (rule.a, rule.b, rule.also):
        kinds = set()
        for ref in refs:
            kind, _, value = ref.partition(":")
            known = {
                "drug": value in kb.drugs,
                "class": value in kb.classes,
                "herb": value in kb.herbs,
                "formulation": value in kb.formulations,
                "condition": value in conditions,
                "same": value == "ingredient",
            }.get(kind, False)
            if not known:
                raise KnowledgeError(f"rule {rule.id}: unknown concept reference {ref!r}")
            kinds.add(kind)
        sides.append(kinds)
    a, b, also = sides
    fits = {
        "drug-drug": a <= _DRUGLIKE and b <= _DRUGLIKE,
        "drug-herb": a <= _DRUGLIKE and b <= _HERBLIKE,
        "drug-condition": a <= _DRUGLIKE | _HERBLIKE and b == {"condition"},
        "duplicate-therapy": rule.a == rule.b and len(rule.a) == 1 and a <= {"class", "same"},
    }[rule.kind]
    if not fits or not also <= _DRUGLIKE or ("same" in a | b and rule.kind != "duplicate-therapy"):
        raise KnowledgeError(f"rule {rule.id}: sides {sorted(a)} / {sorted(b)} do not fit kind {rule.kind}")


# ---------------------------------------------------------------------------------------------------------
# Name resolution
# ---------------------------------------------------------------------------------------------------------
class ResolvedName(Protocol):
    """What a resolver returns for a name (the formulary's `Resolved` satisfies it)."""

    @property
    def display_name(self) -> str:
        """Canonical printed name."""
        ...

    @property
    def concepts(self) -> tuple[str, ...]:
        """Rule concepts: `drug:<generic>`, `herb:<key>`, `formulation:<KEY>`."""
        ...


class NameResolver(Protocol):
    """Anything that turns a typed medicine name into rule concepts (`Formulary` is one)."""

    def resolve(self, name: str) -> ResolvedName | None:
        """The concepts for `name`, or None when the name is unknown."""
        ...


@dataclass(frozen=True)
class KnownName:
    """A name the knowledge base itself knows (see `KnowledgeResolver`)."""

    display_name: str
    concepts: tuple[str, ...]


class KnowledgeResolver:
    """Resolves the knowledge base's own names: drug generics and spelling variants, herb keys and aliases,
    formulation keys ("Triphala Churna" → `formulation:TRIPHALA_CHURNA`). Names are compared with the
    formulary's `name_key` (case, spacing, punctuation and Unicode form do not matter)."""

    def __init__(self, kb: InteractionKB) -> None:
        """Index the names of `kb`.

        Args:
            kb: the compiled knowledge base.
        """
        self._names: dict[str, KnownName] = {}
        for key, known in kb.compiled.names.items():
            self._names[key] = KnownName(display_name=known[0], concepts=(known[1],))

    def resolve(self, name: str) -> KnownName | None:
        """The concept for `name`, or None.

        Args:
            name: as typed.
        """
        return self._names.get(name_key(name))


class ChainResolver:
    """Asks several resolvers in turn and returns the first answer.

    A `Formulary` in the chain also ends the search when it declares a name ambiguous ("ms"), so that a later
    resolver cannot pick one meaning, and it explains misses ("'met' could be METFORMIN or METOPROLOL").
    """

    def __init__(self, *resolvers: NameResolver) -> None:
        """Args:
        resolvers: tried in this order.
        """
        self._resolvers = resolvers

    def resolve(self, name: str) -> ResolvedName | None:
        """The first resolver's answer for `name`, or None when none knows it or the formulary finds it ambiguous."""
        for resolver in self._resolvers:
            hit = resolver.resolve(name)
            if hit is not None:
                return hit
            if isinstance(resolver, Formulary) and resolver.lookup(name).status == "ambiguous":
                return None
        return None

    def explain_miss(self, name: str) -> str:
        """Why `name` did not resolve, in words for the doctor."""
        for resolver in self._resolvers:
            if isinstance(resolver, Formulary):
                reason = resolver.lookup(name).reason
                if reason:
                    return reason
        return _NOT_FOUND


_NOT_FOUND = "not found in the formulary or the knowledge base"


def default_resolver(kb: InteractionKB | None = None) -> NameResolver:
    """The formulary shipped with IntegMed, falling back to the knowledge base's own names.

    Args:
        kb: the knowledge base whose names back up the formulary (default: `InteractionKB.load_default()`).

    Returns:
        A resolver; built once per process for the defaults.
    """
    if kb is None:
        return _default_resolver()
    return ChainResolver(Formulary.load_default(), KnowledgeResolver(kb))


@functools.lru_cache(maxsize=1)
def _default_resolver() -> NameResolver:
    return ChainResolver(Formulary.load_default(), KnowledgeResolver(InteractionKB.load_default()))


# ---------------------------------------------------------------------------------------------------------
# Knowledge base
# ---------------------------------------------------------------------------------------------------------
class InteractionKB:
    """The validated, compiled knowledge base: rules indexed by concept, classes and formulations expanded.

    Build it with `load_default()` (cached per process) or `from_texts()`; it is immutable afterwards.
    """

    def __init__(self, knowledge: KnowledgeFile, conditions: ConditionVocabulary) -> None:
        """Compile validated files.

        Args:
            knowledge: the parsed interactions file.
            conditions: the parsed condition vocabulary.

        Raises:
            KnowledgeError: on an unknown concept reference, a duplicate rule id, a reference cycle, a name
                shared by two concepts, or a rule whose sides do not fit its kind.
        """
        self.knowledge = knowledge
        self.conditions = conditions
        self.compiled = _compile(knowledge, conditions)
        missing = PATIENT_FACTOR_CONDITIONS - set(conditions.file.conditions)
        if missing:
            raise KnowledgeError(f"conditions.yaml lacks the safety-score conditions {sorted(missing)}")
        self._expansions: dict[tuple[str, ...], _Expansion] = {}

    @property
    def version(self) -> str:
        """The knowledge base version (semver)."""
        return self.knowledge.kb_version

    @property
    def status(self) -> str:
        """draft or signed_off."""
        return self.knowledge.status

    @property
    def rules(self) -> tuple[RuleSpec, ...]:
        """Every rule, in file order."""
        return self.knowledge.rules

    @classmethod
    def from_texts(cls, interactions_yaml: str, conditions_yaml: str) -> InteractionKB:
        """Parse, validate and compile the two knowledge files.

        Args:
            interactions_yaml: text of interactions.yaml.
            conditions_yaml: text of conditions.yaml.

        Raises:
            KnowledgeError: when a file is not valid YAML, does not validate, or refers to unknown concepts.
        """
        return cls(KnowledgeFile.from_text(interactions_yaml), ConditionVocabulary.from_text(conditions_yaml))

    @classmethod
    def load_default(cls) -> InteractionKB:
        """The knowledge base shipped in `shared/knowledge/`, loaded once per process."""
        return _load_default_kb()

    def expand(self, concepts: tuple[str, ...]) -> _Expansion:
        """Match keys of one item's concepts (cached).

        Args:
            concepts: the resolver's concepts for the item.
        """
        hit = self._expansions.get(concepts)
        if hit is None:
            if len(self._expansions) > 20_000:  # names come from bounded vocabularies; this is a backstop
                self._expansions.clear()
            hit = _expand(self.compiled, concepts)
            self._expansions[concepts] = hit
        return hit


@functools.lru_cache(maxsize=1)
def _load_default_kb() -> InteractionKB:
    folder = resources.files("shared.knowledge")
    return InteractionKB.from_texts(
        (folder / "interactions.yaml").read_text(encoding="utf-8"),
        (folder / "conditions.yaml").read_text(encoding="utf-8"),
    )


@dataclass(frozen=True)
class _Expansion:
    keys: Mapping[str, frozenset[str]]  # match key → the item's concepts that produce it
    ingredients: frozenset[str]  # single active ingredients (combinations split), for DUP-001
    identity: frozenset[str]  # canonical concepts; items with equal identity are the same medicine


def _expand(compiled: _Compiled, concepts: tuple[str, ...]) -> _Expansion:
    keys: dict[str, set[str]] = {}
    drugs: set[str] = set()
    identity: set[str] = set()

    def add(key: str, origin: str) -> None:
        keys.setdefault(key, set()).add(origin)

    for concept in concepts:
        prefix, _, value = concept.partition(":")
        if prefix == "drug":
            canon = compiled.drug_canon.get(name_key(value), value.strip().casefold())
            identity.add(f"drug:{canon}")
            drugs.add(canon)
            drugs.update(compiled.components.get(canon, ()))
        elif prefix == "herb":
            canon = compiled.herb_canon.get(name_key(value), value.strip())
            identity.add(f"herb:{canon}")
            add(f"herb:{canon}", canon)
        elif prefix == "formulation":
            canon = compiled.formulation_canon.get(name_key(value), value.strip())
            identity.add(f"formulation:{canon}")
            for key in compiled.formulation_closure.get(canon, (f"formulation:{canon}",)):
                add(key, canon)
        else:  # class:, condition: or anything else from a resolver is not an item concept: never matched
            identity.add(concept)
    for combo, parts in compiled.components.items():
        if parts <= drugs:
            drugs.add(combo)
    ingredients = {d for d in drugs if d not in compiled.components}
    for drug in drugs:
        add(f"drug:{drug}", drug)
        for cls in compiled.drug_classes.get(drug, ()):
            add(cls, drug)
    return _Expansion(
        keys={k: frozenset(v) for k, v in keys.items()},
        ingredients=frozenset(ingredients),
        identity=frozenset(identity),
    )


# ---------------------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Party:
    kind: ItemKind
    index: int
    name: str
    display_name: str
    keys: Mapping[str, frozenset[str]]
    identity: frozenset[str]
    ingredients: frozenset[str] = frozenset()

    @property
    def is_item(self) -> bool:
        return self.kind != "condition"


@dataclass
class _Group:
    rule: RuleSpec
    parties: dict[int, tuple[_Party, set[str]]] = field(default_factory=dict)

    def add(self, party: _Party, key: str) -> None:
        entry = self.parties.setdefault(id(party), (party, set()))
        entry[1].add(key)


def check(request: CheckRequest, kb: InteractionKB, resolver: NameResolver) -> CheckResult:
    """Check one prescription against the knowledge base.

    Args:
        request: the medications, AYUSH medications and patient conditions.
        kb: the compiled knowledge base (`InteractionKB.load_default()`).
        resolver: turns names into concepts (`default_resolver()`).

    Returns:
        Findings split into `interactions` and `contraindications` (most severe first), the safety score,
        every unresolved input in `unknown_items`, and the knowledge base version and status. Never raises
        for any text in the request.
    """
    unknown: list[UnknownItem] = []
    items = _resolve_items(request, kb, resolver, unknown)
    conditions = _resolve_conditions(request.patient_conditions, kb, unknown)
    groups: dict[tuple[str, frozenset[frozenset[str]]], _Group] = {}
    _match_rules(kb, items, conditions, groups)
    _match_same_ingredient(kb, items, groups)
    findings = [_finding(group) for group in groups.values()]
    findings.sort(key=_finding_order)
    interactions = tuple(f for f in findings if f.kind != "drug-condition")
    contraindications = tuple(f for f in findings if f.kind == "drug-condition")
    condition_ids = {c for party in conditions for key in party.keys for c in party.keys[key]}
    patient_factor = bool(condition_ids & PATIENT_FACTOR_CONDITIONS) or len(items) >= POLYPHARMACY_ITEMS
    unknown.sort(key=lambda u: (_KIND_RANK[u.kind], u.index))
    return CheckResult(
        interactions=interactions,
        contraindications=contraindications,
        safety_score=safety_score(findings, patient_factor=patient_factor),
        unknown_items=tuple(unknown),
        kb_version=kb.version,
        kb_status=kb.status,
    )


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_NAME_CHARS else text[:SHOWN_NAME_CHARS] + "…"


def _resolve_items(
    request: CheckRequest, kb: InteractionKB, resolver: NameResolver, unknown: list[UnknownItem]
) -> list[_Party]:
    lines: list[tuple[ItemKind, int, str]] = [
        *(("medication", i, m.generic_name) for i, m in enumerate(request.medications)),
        *(("ayush_medication", i, a.name) for i, a in enumerate(request.ayush_medications)),
    ]
    parties: list[_Party] = []
    for kind, index, name in lines:
        hit = resolver.resolve(name) if name.strip() else None
        if hit is None or not hit.concepts:
            if not name.strip():
                reason = "empty name"
            else:
                reason = resolver.explain_miss(name) if isinstance(resolver, ChainResolver) else _NOT_FOUND
            unknown.append(UnknownItem(kind=kind, index=index, name=_shown(name), reason=reason))
            continue
        expansion = kb.expand(tuple(hit.concepts))
        parties.append(
            _Party(
                kind=kind,
                index=index,
                name=_shown(name),
                display_name=hit.display_name,
                keys=expansion.keys,
                identity=expansion.identity,
                ingredients=expansion.ingredients,
            )
        )
    return parties


def _resolve_conditions(texts: Sequence[str], kb: InteractionKB, unknown: list[UnknownItem]) -> list[_Party]:
    parties: list[_Party] = []
    for index, text in enumerate(texts):
        found = kb.conditions.resolve(text)
        if not found.ids:
            unknown.append(UnknownItem(kind="condition", index=index, name=_shown(text), reason=found.reason))
            continue
        keys = {f"condition:{c}": frozenset({c}) for c in kb.conditions.closure(found.ids)}
        parties.append(
            _Party(
                kind="condition",
                index=index,
                name=_shown(text),
                display_name=kb.conditions.label(found.ids[0]),
                keys=keys,
                identity=frozenset(f"condition:{c}" for c in found.ids),
            )
        )
    return parties


def _match_rules(
    kb: InteractionKB,
    items: Sequence[_Party],
    conditions: Sequence[_Party],
    groups: dict[tuple[str, frozenset[frozenset[str]]], _Group],
) -> None:
    hits: dict[int, tuple[list[tuple[_Party, str]], ...]] = {}
    for party in (*items, *conditions):
        for key in party.keys:
            for rule_index, side in kb.compiled.rule_index.get(key, ()):
                sides = hits.setdefault(rule_index, ([], [], []))
                sides[side].append((party, key))
    for rule_index in sorted(hits):
        a_side, b_side, also_side = hits[rule_index]
        if not a_side or not b_side:
            continue
        rule = kb.compiled.rules[rule_index]
        same_class = kb.compiled.same_class[rule_index]
        for pa, ka in a_side:
            for pb, kb_key in b_side:
                if not _pair_fires(pa, ka, pb, kb_key, same_class=same_class):
                    continue
                thirds = [(pc, kc) for pc, kc in also_side if _third_fits(pc, kc, (pa, ka), (pb, kb_key))]
                if rule.also and not thirds:
                    continue
                # one finding per rule per set of medicines; the conditions that trigger it are listed together
                group_key = (rule.id, frozenset(p.identity for p in (pa, pb) if p.is_item))
                group = groups.setdefault(group_key, _Group(rule))
                group.add(pa, ka)
                group.add(pb, kb_key)
                for pc, kc in thirds:
                    group.add(pc, kc)


def _pair_fires(pa: _Party, ka: str, pb: _Party, kb_key: str, *, same_class: bool) -> bool:
    if pa is pb:
        return False  # one line never interacts with itself (a fixed-dose combination is one line)
    if same_class:
        # two DIFFERENT members: the same generic twice is duplicate therapy (DUP-001), not this rule
        return any(x != y for x in pa.keys[ka] for y in pb.keys[kb_key])
    return True


def _third_fits(pc: _Party, kc: str, first: tuple[_Party, str], second: tuple[_Party, str]) -> bool:
    if not pc.is_item:
        return False
    used: set[str] = set()
    for party, key in (first, second):
        if party is pc:
            used |= party.keys[key]
    return bool(pc.keys[kc] - used)


def _match_same_ingredient(
    kb: InteractionKB, items: Sequence[_Party], groups: dict[tuple[str, frozenset[frozenset[str]]], _Group]
) -> None:
    rule = kb.compiled.same_ingredient_rule
    if rule is None:
        return
    holders: dict[str, list[_Party]] = {}
    for party in items:
        for ingredient in party.ingredients:
            holders.setdefault(ingredient, []).append(party)
    for ingredient in sorted(holders):
        parties = holders[ingredient]
        if len(parties) < 2:
            continue
        group_key = (rule.id, frozenset(p.identity for p in parties))
        group = groups.setdefault(group_key, _Group(rule))
        for party in parties:
            group.add(party, f"drug:{ingredient}")


def _finding(group: _Group) -> Finding:
    rule = group.rule
    items = sorted(
        (
            FindingItem(
                kind=party.kind,
                index=party.index,
                name=party.name,
                display_name=party.display_name,
                matched_on=tuple(sorted(keys)),
            )
            for party, keys in group.parties.values()
        ),
        key=lambda i: (_KIND_RANK[i.kind], i.display_name, i.name, i.index),
    )
    return Finding(
        rule_id=rule.id,
        kind=rule.kind,
        severity=rule.severity,
        tier=alert_tier(rule.severity, rule.evidence_level),
        evidence_level=rule.evidence_level,
        items=tuple(items),
        effect=rule.effect,
        mechanism=rule.mechanism,
        advice=rule.management,
        source=rule.evidence,
        notes=rule.notes,
    )


def _finding_order(f: Finding) -> tuple[int, str, tuple[str, ...]]:
    return SEVERITY_RANK[f.severity], f.rule_id, tuple(i.display_name for i in f.items)


def alert_tier(severity: Severity, evidence_level: EvidenceLevel) -> Tier:
    """The UI tier of a finding (clinical_rx.md §2.6).

    Args:
        severity: the rule's severity.
        evidence_level: the rule's evidence level.

    Returns:
        red for contraindicated, or major at evidence A/B (interruptive); amber for major at C/D and for
        moderate (inline); grey for minor (on demand).
    """
    if severity == "contraindicated" or (severity == "major" and evidence_level in ("A", "B")):
        return "red"
    if severity in ("major", "moderate"):
        return "amber"
    return "grey"


def safety_score(findings: Iterable[Finding], *, patient_factor: bool = False) -> int:
    """The documented 0-100 safety score (see the module docstring).

    Args:
        findings: every finding of the check (interactions and contraindications).
        patient_factor: True when the patient is ≥65, has reduced renal function, is pregnant, or has five or
            more resolved items.

    Returns:
        100 − ceil(R), where R = max(w) + 0.25 × (sum(w) − max(w)) capped at 100; 100 when there are none.
    """
    factor = PATIENT_FACTOR_PCT if patient_factor else 100
    # weights in units of 1/10_000 point, so the arithmetic is exact
    weights = [SEVERITY_WEIGHT[f.severity] * EVIDENCE_FACTOR_PCT[f.evidence_level] * factor for f in findings]
    if not weights:
        return 100
    top = max(weights)
    numerator = 3 * top + sum(weights)  # 4 × R in the same units
    denominator = 4 * 100 * 100
    risk = min(100, -(-numerator // denominator))
    return 100 - risk
