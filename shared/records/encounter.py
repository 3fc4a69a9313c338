"""Encounter record: the SOAP note with checked vitals and coded diagnoses, shared by desktop and server.

Vitals are checked against *plausibility* bounds: they catch typos (a pulse of 720, a temperature of 986, a
BP pair 300/20 whose pulse pressure is impossible); they are not clinical normal ranges, and an abnormal but
possible value (BP 220/130, SpO2 62 %) passes. `vital_flags` then names the accepted values that are
critical (BP over 180/120, NEWS2 red-score values). Bounds and thresholds live in
`shared/knowledge/vitals.yaml`, each with its source (`PLAUSIBLE`, `PULSE_PRESSURE`, `CRITICAL`).

Diagnoses are free text, optionally with a SNOMED CT concept id or an ICD-10 code. A code must be one the
shipped condition vocabulary (`shared/knowledge/conditions.yaml`, each code with its source) knows: SNOMED CT
ids exactly, ICD-10 codes at a listed code or below one (E11.9 under E11). Nothing else is accepted as a
code, so no invented code is ever stored; a condition without a known code is kept as text only.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    computed_field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.rx.interactions import ConditionVocabulary
from shared.text import clean_text, has_note_control_character

_VITALS_FILE = "vitals.yaml"


@functools.lru_cache(maxsize=1)
def _vitals_knowledge() -> dict[str, Any]:
    """`shared/knowledge/vitals.yaml`: plausibility bounds (refused outside) and critical thresholds (flagged)."""
    text = (resources.files("shared.knowledge") / _VITALS_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _bounds(entry: Mapping[str, Any]) -> tuple[float, float, str]:
    return (entry["min"], entry["max"], str(entry["unit"]))


# Plausibility bounds (inclusive) for typos, not clinical normal ranges: name -> (low, high, unit).
PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    name: _bounds(entry) for name, entry in _vitals_knowledge()["plausible"].items()
}
PULSE_PRESSURE: tuple[float, float, str] = _bounds(_vitals_knowledge()["pulse_pressure"])
"""Plausible systolic minus diastolic (inclusive, mmHg): outside it a BP pair is refused as a typo."""

_LABELS: dict[str, str] = {name: str(entry["label"]) for name, entry in _vitals_knowledge()["plausible"].items()}


def _check_range(name: str, value: float) -> None:
    low, high, unit = PLAUSIBLE[name]
    if not low <= value <= high:
        raise PydanticCustomError(
            f"vitals.{name}_range",
            "{name} {value} {unit} is outside the plausible range {low}-{high} {unit}: check for a typo",
            {"name": _LABELS[name], "value": value, "unit": unit, "low": low, "high": high},
        )


def _ranged(name: str) -> AfterValidator:
    def check(value: float) -> float:
        _check_range(name, value)
        return value

    return AfterValidator(check)


_BP = re.compile(r"^\s*(\d{1,3})\s*/\s*(\d{1,3})\s*(?:mm\s*hg)?\s*$", re.IGNORECASE)


def parse_bp(text: str) -> tuple[int, int]:
    """Parse a blood pressure as written ("140/90", "140 / 90 mmHg") into (systolic, diastolic).

    Raises:
        PydanticCustomError: (a ``ValueError``) with code ``vitals.bp_format`` when the text is not
            "systolic/diastolic", ``vitals.bp_systolic_range`` / ``vitals.bp_diastolic_range`` for an
            implausible number, ``vitals.bp_order`` when the diastolic is not below the systolic, or
            ``vitals.bp_pulse_pressure`` when the two are implausibly far apart or close (`PULSE_PRESSURE`).
    """
    match = _BP.match(text) if len(text) <= 40 else None
    if match is None:
        raise PydanticCustomError("vitals.bp_format", "Blood pressure must be written systolic/diastolic, e.g. 140/90")
    systolic, diastolic = int(match.group(1)), int(match.group(2))
    _check_range("bp_systolic", systolic)
    _check_range("bp_diastolic", diastolic)
    if diastolic >= systolic:
        raise PydanticCustomError(
            "vitals.bp_order",
            "The diastolic pressure ({d}) must be below the systolic ({s})",
            {"d": diastolic, "s": systolic},
        )
    low, high, unit = PULSE_PRESSURE
    if not low <= systolic - diastolic <= high:
        raise PydanticCustomError(
            "vitals.bp_pulse_pressure",
            "{s}/{d}: a gap of {gap} {unit} between systolic and diastolic is not plausible (pulse pressure "
            "{low}-{high} {unit}): check both numbers",
            {"s": systolic, "d": diastolic, "gap": systolic - diastolic, "unit": unit, "low": low, "high": high},
        )
    return systolic, diastolic


DERIVED = frozenset({"bp_systolic", "bp_diastolic", "temperature_c", "bmi"})


def to_celsius(value: float, unit: Literal["C", "F"]) -> float:
    """A temperature in °C (rounded to 0.1), from °C or °F."""
    return round(value if unit == "C" else (value - 32) * 5 / 9, 1)


class Vitals(BaseModel):
    """Vital signs as recorded; derived values (systolic/diastolic, °C, BMI) are computed, never typed.

    ``temperature`` needs ``temperature_unit`` (C or F): the unit the nurse read is kept, and
    ``temperature_c`` gives the same value in °C.
    """

    model_config = ConfigDict(extra="forbid")

    bp: Annotated[str, Field(max_length=40, examples=["140/90"])] | None = None
    pulse: Annotated[int, _ranged("pulse")] | None = Field(default=None, description="beats/min")
    respiratory_rate: Annotated[int, _ranged("respiratory_rate")] | None = Field(default=None, description="/min")
    temperature: float | None = Field(default=None, description="as read, in temperature_unit")
    temperature_unit: Literal["C", "F"] | None = None
    spo2: Annotated[int, _ranged("spo2")] | None = Field(default=None, description="% on room air unless noted")
    weight_kg: Annotated[float, _ranged("weight_kg")] | None = None
    height_cm: Annotated[float, _ranged("height_cm")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        # Stored notes carry the derived values; they are always recomputed, never taken from input.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in DERIVED}
        return data

    @model_validator(mode="after")
    def _derived_parts(self) -> Vitals:
        if self.bp is not None:
            parse_bp(self.bp)
        if (self.temperature is None) != (self.temperature_unit is None):
            raise PydanticCustomError("vitals.temperature_unit", "Give the temperature together with its unit (C or F)")
        if self.temperature is not None and self.temperature_unit is not None:
            _check_range("temperature_c", to_celsius(self.temperature, self.temperature_unit))
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bp_systolic(self) -> int | None:
        return parse_bp(self.bp)[0] if self.bp is not None else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bp_diastolic(self) -> int | None:
        return parse_bp(self.bp)[1] if self.bp is not None else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def temperature_c(self) -> float | None:
        if self.temperature is None or self.temperature_unit is None:
            return None
        return to_celsius(self.temperature, self.temperature_unit)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bmi(self) -> float | None:
        """Body-mass index, kg/m², rounded to 0.1; None unless both weight and height are given."""
        if self.weight_kg is None or self.height_cm is None:
            return None
        return round(self.weight_kg / (self.height_cm / 100) ** 2, 1)


@dataclass(frozen=True)
class CriticalThreshold:
    """One `critical` entry of vitals.yaml: an abnormal but real value that is accepted and flagged."""

    vital: str
    when: Literal["<=", "<", ">=", ">"]
    value: float
    says: str
    source: str

    def is_met(self, measured: float) -> bool:
        if self.when == "<=":
            return measured <= self.value
        if self.when == "<":
            return measured < self.value
        if self.when == ">=":
            return measured >= self.value
        return measured > self.value


CRITICAL: tuple[CriticalThreshold, ...] = tuple(
    CriticalThreshold(str(e["vital"]), e["when"], float(e["value"]), str(e["says"]), str(e["source"]))
    for e in _vitals_knowledge()["critical"]
)

FORM_FIELD = {"bp_systolic": "bp", "bp_diastolic": "bp", "temperature_c": "temperature"}
"""The typed field a derived vital belongs to (the others are their own field)."""


@dataclass(frozen=True)
class VitalFlag:
    """An accepted vital that is critical: shown next to its field, never a reason to refuse the value."""

    field: str  # the typed field: bp, pulse, respiratory_rate, temperature, spo2, weight_kg, height_cm
    vital: str  # the value checked: bp_systolic, temperature_c, ...
    value: float
    message: str  # the whole finding with its reason ("Critical: Pulse 136 beats/min — 131/min or more is ...")
    brief: str  # what fits under a field ("Critical: Pulse 136 beats/min")
    source: str


def vital_flags(vitals: Vitals) -> list[VitalFlag]:
    """The critical values among these (already plausible) vitals, in `CRITICAL` order."""
    flags: list[VitalFlag] = []
    for threshold in CRITICAL:
        measured = getattr(vitals, threshold.vital, None)
        if measured is None or not threshold.is_met(float(measured)):
            continue
        unit = PLAUSIBLE[threshold.vital][2]
        brief = f"Critical: {_LABELS[threshold.vital]} {measured:g} {unit}"
        field = FORM_FIELD.get(threshold.vital, threshold.vital)
        message = f"{brief} — {threshold.says}"
        flags.append(VitalFlag(field, threshold.vital, float(measured), message, brief, threshold.source))
    return flags


# ---------------------------------------------------------------------------------------------------------
# Diagnoses
# ---------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def condition_vocabulary() -> ConditionVocabulary:
    """The shipped condition starter list (`shared/knowledge/conditions.yaml`), parsed once per process."""
    text = (resources.files("shared.knowledge") / "conditions.yaml").read_text(encoding="utf-8")
    return ConditionVocabulary.from_text(text)


def _clean(value: str) -> str:
    cleaned = clean_text(value)
    if not cleaned:
        raise PydanticCustomError("text.empty", "Must not be empty")
    return cleaned


def _clean_note(value: str) -> str:
    """Multi-line note: keep line breaks, trim the ends, refuse control characters."""
    if has_note_control_character(value):
        raise PydanticCustomError("text.control_character", "Text must not contain control characters")
    cleaned = unicodedata.normalize("NFC", value).strip()
    if not cleaned:
        raise PydanticCustomError("text.empty", "Must not be empty")
    return cleaned


Text = Annotated[str, Field(min_length=1, max_length=5000), AfterValidator(_clean_note)]
Line = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_clean)]


class Diagnosis(BaseModel):
    """A diagnosis: free text, optionally coded (SNOMED CT concept id or ICD-10 code from the starter list).

    ``system`` is inferred from the code's shape when left out (digits: snomed; letter + digits: icd10).
    ``condition_id`` is filled by validation with the starter-list condition the code belongs to.
    """

    model_config = ConfigDict(extra="forbid")

    condition: Line
    code: Annotated[str, Field(min_length=1, max_length=20)] | None = None
    system: Literal["snomed", "icd10"] | None = None
    condition_id: str | None = Field(default=None, description="Set by the server from the code; not typed")

    @model_validator(mode="after")
    def _known_code(self) -> Diagnosis:
        if self.code is None:
            if self.system is not None:
                raise PydanticCustomError("diagnosis.system_without_code", "A coding system was given without a code")
            self.condition_id = None
            return self
        code = self.code.strip().upper()
        system = self.system or ("snomed" if code.isdigit() else "icd10")
        vocab = condition_vocabulary()
        hit = vocab.resolve(f"SNOMED:{code}" if system == "snomed" else f"ICD10:{code}")
        if not hit.ids:
            raise PydanticCustomError(
                "diagnosis.code_unknown",
                "{system} code {code} is not in the shipped starter list of conditions; record the diagnosis "
                "as text without a code",
                {"system": system, "code": code},
            )
        self.code, self.system, self.condition_id = code, system, hit.ids[0]
        return self


class AyushAssessment(BaseModel):
    """AYUSH assessment as free text (e.g. Ayurveda prakriti and dosha imbalance)."""

    model_config = ConfigDict(extra="forbid")

    prakriti: Line | None = None
    dosha: Line | None = None
    notes: Text | None = None


class Assessment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary_diagnosis: Diagnosis | None = None
    secondary_diagnoses: list[Diagnosis] = Field(default_factory=list, max_length=20)
    ayush: AyushAssessment | None = None
    notes: Text | None = None


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vitals: Vitals | None = None
    examination: Text | None = None


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    medications: list[Line | dict[str, JsonValue]] = Field(default_factory=list, max_length=50)
    investigations: list[Line] = Field(default_factory=list, max_length=50)
    followup: Line | None = None


class SoapNote(BaseModel):
    """The seed's SOAP note shape. ``examination`` may be given inside ``objective`` or at the top level."""

    model_config = ConfigDict(extra="forbid")

    subjective: Text | None = None
    objective: Objective | None = None
    examination: Text | None = None
    assessment: Assessment | None = None
    plan: Plan | None = None


# ---------------------------------------------------------------------------------------------------------
# Encounter
# ---------------------------------------------------------------------------------------------------------
class EncounterType(StrEnum):
    """Kind of visit; the tele_* kinds give the consultation mode the prescribing policy reads."""

    OPD = "opd"
    IPD = "ipd"
    EMERGENCY = "emergency"
    HOME_VISIT = "home_visit"
    TELE_VIDEO = "tele_video"
    TELE_AUDIO = "tele_audio"
    TELE_TEXT = "tele_text"


class EncounterStatus(StrEnum):
    DRAFT = "draft"
    COMPLETED = "completed"


def _uuid7(value: uuid.UUID) -> uuid.UUID:
    if value.version != 7:
        raise PydanticCustomError("id.version", "Record ids must be time-ordered UUIDs (version 7)")
    return value


RecordId = Annotated[uuid.UUID, AfterValidator(_uuid7)]
Complaint = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_clean)]

_EXAMPLE: dict[str, Any] = {
    "patient_id": "019ab000-0000-7000-8000-0000000000aa",
    "encounter_type": "opd",
    "start_time": "2026-02-09T10:30:00Z",
    "chief_complaint": "Persistent fatigue for 2 weeks",
}


class EncounterCreate(BaseModel):
    """Start an encounter (status draft). ``id`` may be generated by the client (UUID v7)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    id: RecordId | None = None
    patient_id: uuid.UUID
    encounter_type: EncounterType
    start_time: AwareDatetime
    chief_complaint: Complaint
    soap_note: SoapNote | None = None


class EncounterUpdate(BaseModel):
    """Change a draft encounter; ``soap_note`` replaces the whole note. Completed encounters take addenda."""

    model_config = ConfigDict(extra="forbid")

    encounter_type: EncounterType | None = None
    start_time: AwareDatetime | None = None
    chief_complaint: Complaint | None = None
    soap_note: SoapNote | None = None

    @model_validator(mode="after")
    def _no_null_required(self) -> EncounterUpdate:
        for name in ("encounter_type", "start_time", "chief_complaint"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise PydanticCustomError("field.required", "{name} cannot be cleared", {"name": name})
        return self


class AddendumCreate(BaseModel):
    """A note added to a completed encounter; the encounter itself never changes after completion."""

    model_config = ConfigDict(extra="forbid")

    text: Text
    soap_note: SoapNote | None = None


class Addendum(BaseModel):
    id: uuid.UUID
    encounter_id: uuid.UUID
    author_id: uuid.UUID
    text: str
    soap_note: SoapNote | None = None
    created_at: datetime


class Encounter(BaseModel):
    """An encounter as stored; ``addenda`` are oldest first."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    doctor_id: uuid.UUID
    encounter_type: EncounterType
    start_time: datetime
    chief_complaint: str
    soap_note: SoapNote | None = None
    status: EncounterStatus
    completed_at: datetime | None = None
    version: int
    created_at: datetime
    updated_at: datetime
    addenda: list[Addendum] = Field(default_factory=list)
