"""Prescription draft record (the seed's body): modern medication lines and AYUSH medicines."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from shared.text import clean_text


def _clean(value: str) -> str:
    cleaned = clean_text(value)
    if not cleaned:
        raise PydanticCustomError("text.empty", "Must not be empty")
    return cleaned


def _uuid7(value: uuid.UUID) -> uuid.UUID:
    if value.version != 7:
        raise PydanticCustomError("id.version", "Record ids must be time-ordered UUIDs (version 7)")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean)]
Short = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_clean)]
Instructions = Annotated[str, Field(max_length=500), AfterValidator(clean_text)]
Days = Annotated[int, Field(ge=1, le=365, description="1-365 days")]


class MedicationLine(BaseModel):
    """One modern-medicine line as the seed sends it; ``generic_name`` must resolve in the formulary."""

    model_config = ConfigDict(extra="forbid")

    generic_name: Name
    strength: Short | None = None
    dosage_form: Short | None = None
    route: Short | None = None
    frequency: Short
    duration_days: Days
    quantity: Annotated[int, Field(ge=1, le=10000)] | None = None
    instructions: Instructions | None = None


class AyushLine(BaseModel):
    """One AYUSH medicine; ``name`` must resolve in the formulary (herb or classical formulation)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    dose: Short | None = None
    frequency: Short
    duration_days: Days
    instructions: Instructions | None = None


_EXAMPLE: dict[str, Any] = {
    "encounter_id": "019ab000-0000-7000-8000-0000000000bb",
    "medications": [
        {
            "generic_name": "METFORMIN",
            "strength": "1000mg",
            "dosage_form": "tablet",
            "route": "oral",
            "frequency": "Twice daily",
            "duration_days": 30,
            "quantity": 60,
            "instructions": "Take after meals",
        }
    ],
}


class AlertOverride(BaseModel):
    """The prescriber's decision to go ahead despite a major interaction alert, with the reason he typed."""

    model_config = ConfigDict(extra="forbid")

    rule_id: Annotated[str, Field(min_length=1, max_length=40, examples=["DDI-002"])]
    reason: Annotated[str, Field(min_length=5, max_length=500), AfterValidator(_clean)]


class ConditionExclusion(BaseModel):
    """The prescriber's decision to leave a condition from an earlier visit out of this prescription's checks.

    ``condition`` names it as the desktop does: the starter-list condition id (``pregnancy``) or the code
    (``SNOMED:77386006``, ``ICD10:Z33``); the typed reason is required and audited.
    """

    model_config = ConfigDict(extra="forbid")

    condition: Annotated[str, Field(min_length=1, max_length=200, examples=["ICD10:Z33"])]
    reason: Annotated[str, Field(min_length=5, max_length=500), AfterValidator(_clean)]


class DraftCreate(BaseModel):
    """Save a prescription draft for an encounter (at least one line)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    id: Annotated[uuid.UUID, AfterValidator(_uuid7)] | None = None
    encounter_id: uuid.UUID
    medications: list[MedicationLine] = Field(default_factory=list, max_length=50)
    ayush_medications: list[AyushLine] = Field(default_factory=list, max_length=50)
    overrides: list[AlertOverride] = Field(
        default_factory=list,
        max_length=50,
        description="Major interaction alerts the prescriber overrides, each with a typed reason (audited)",
    )
    excluded_conditions: list[ConditionExclusion] = Field(
        default_factory=list,
        max_length=50,
        description="Conditions from the patient's earlier visits left out of the checks, each with a typed reason "
        "(audited)",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> DraftCreate:
        if not self.medications and not self.ayush_medications:
            raise PydanticCustomError("rx.empty", "A prescription needs at least one medicine")
        return self


class PolicyNote(BaseModel):
    """An advisory the prescribing policy attached to a line (allowed, but the reason must be shown)."""

    field: str = Field(description="e.g. `ayush_medications.0.name`")
    rule_id: str
    reason: str
    source: str


class Draft(BaseModel):
    """A stored prescription draft with the policy advisories found when it was saved."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    encounter_id: uuid.UUID
    patient_id: uuid.UUID
    prescriber_id: uuid.UUID
    status: str
    medications: list[MedicationLine]
    ayush_medications: list[AyushLine]
    advisories: list[PolicyNote] = Field(default_factory=list)
    policy_version: str
    interaction_check: dict[str, Any] | None = Field(
        default=None, description="The interaction check made at saving (findings, safety_score, kb_version)"
    )
    overrides: list[dict[str, Any]] = Field(default_factory=list, description="{rule_id, reason, by, at}")
    created_at: datetime
    updated_at: datetime
