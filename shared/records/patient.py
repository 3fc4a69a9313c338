"""Patient record: registration fields, validation and normalisation shared by desktop and server."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shared.ids import normalize_abha_address, normalize_abha_number, normalize_mobile
from shared.records.validation import as_pydantic
from shared.text import clean_text

MIN_YEAR_OF_BIRTH = 1900


class Gender(StrEnum):
    """Administrative gender as ABDM uses it: Male, Female, Other, Unknown."""

    M = "M"
    F = "F"
    O = "O"  # noqa: E741 - the ABDM code is the letter O
    U = "U"


def _clean(value: str) -> str:
    return clean_text(value)


def _name(value: str) -> str:
    cleaned = clean_text(value)
    if not cleaned:
        raise PydanticCustomError("name.empty", "Name must not be empty")
    return cleaned


def _mobile(value: str) -> str:
    return as_pydantic(normalize_mobile, value)


def _abha_number(value: str) -> str:
    return as_pydantic(normalize_abha_number, value)


def _abha_address(value: str) -> str:
    return as_pydantic(normalize_abha_address, value)


def _uuid7(value: uuid.UUID) -> uuid.UUID:
    if value.version != 7:
        raise PydanticCustomError("id.version", "Record ids must be time-ordered UUIDs (version 7)")
    return value


def _year_of_birth(value: int) -> int:
    this_year = datetime.now(UTC).year
    if not MIN_YEAR_OF_BIRTH <= value <= this_year:
        raise PydanticCustomError(
            "year_of_birth.range",
            "Year of birth must be between {lo} and {hi}",
            {"lo": MIN_YEAR_OF_BIRTH, "hi": this_year},
        )
    return value


def _pincode(value: str) -> str:
    if not (len(value) == 6 and value.isascii() and value.isdigit() and value[0] != "0"):
        raise PydanticCustomError("pincode.format", "PIN code must be 6 digits and not start with 0")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_name)]
ShortText = Annotated[str, Field(max_length=200), AfterValidator(_clean)]
Mobile = Annotated[str, Field(max_length=20), AfterValidator(_mobile)]
AbhaNumber = Annotated[str, Field(max_length=20), AfterValidator(_abha_number)]
AbhaAddress = Annotated[str, Field(max_length=80), AfterValidator(_abha_address)]
RecordId = Annotated[uuid.UUID, AfterValidator(_uuid7)]
YearOfBirth = Annotated[int, AfterValidator(_year_of_birth)]
Pincode = Annotated[str, Field(max_length=6), AfterValidator(_pincode)]


class Address(BaseModel):
    """Postal address as the ABHA profile carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line: ShortText | None = None
    district: Annotated[str, Field(max_length=80), AfterValidator(_clean)] | None = None
    state: Annotated[str, Field(max_length=80), AfterValidator(_clean)] | None = None
    pincode: Pincode | None = None


_EXAMPLE: dict[str, JsonValue] = {
    "name": "Rajesh Kumar",
    "mobile": "+919876543210",
    "gender": "M",
    "year_of_birth": 1985,
    "abha_number": "91-3772-0586-4665",
    "abha_address": "rajesh.kumar@abdm",
}


class PatientFields(BaseModel):
    """Fields common to create and read."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    name: Name
    gender: Gender
    year_of_birth: YearOfBirth
    mobile: Mobile | None = None
    date_of_birth: date | None = None
    abha_number: AbhaNumber | None = None
    abha_address: AbhaAddress | None = None
    address: Address | None = None

    @model_validator(mode="after")
    def _dob_matches_year(self) -> PatientFields:
        if self.date_of_birth is not None:
            if self.date_of_birth.year != self.year_of_birth:
                raise PydanticCustomError("date_of_birth.mismatch", "Date of birth does not fall in the year of birth")
            if self.date_of_birth > datetime.now(UTC).date():
                raise PydanticCustomError("date_of_birth.future", "Date of birth is in the future")
        return self


class PatientCreate(PatientFields):
    """Body of ``POST /api/v1/patients``; ``id`` is the client's UUIDv7 when it made one offline."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    id: RecordId | None = None


class PatientUpdate(BaseModel):
    """Body of ``PATCH /api/v1/patients/{id}``: only fields sent change; ``null`` clears an optional one."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"mobile": "+919812345678", "address": None}]}
    )

    name: Name | None = None
    gender: Gender | None = None
    year_of_birth: YearOfBirth | None = None
    mobile: Mobile | None = None
    date_of_birth: date | None = None
    abha_number: AbhaNumber | None = None
    abha_address: AbhaAddress | None = None
    address: Address | None = None

    @field_validator("name", "gender", "year_of_birth", mode="before")
    @classmethod
    def _required_not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("required", "This field cannot be cleared")
        return value

    def changes(self) -> dict[str, object]:
        """The fields the client actually sent, JSON-ready (``None`` means clear)."""
        return self.model_dump(mode="json", exclude_unset=True)


class Patient(PatientFields):
    """A stored patient as the API returns it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE,
                    "abha_number": "91377205864665",
                    "id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44",
                    "clinic_id": "019ab4c2-7000-7000-8000-000000000001",
                    "version": 1,
                    "created_at": "2026-11-25T10:30:00Z",
                    "updated_at": "2026-11-25T10:30:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    clinic_id: uuid.UUID
    version: int
    created_at: datetime
    updated_at: datetime
