"""Clinic staff: roles and the professional identity a doctor brings from the HPR registry."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Role(StrEnum):
    """What a member of staff may do in a clinic."""

    DOCTOR = "doctor"
    NURSE = "nurse"
    FRONT_DESK = "front_desk"
    CLINIC_ADMIN = "clinic_admin"


class SystemOfMedicine(StrEnum):
    """HPR systems of medicine (NHADOCS ``registries/nhpr/hpr.md``)."""

    MODERN_MEDICINE = "modern_medicine"
    DENTISTRY = "dentistry"
    AYURVEDA = "ayurveda"
    UNANI = "unani"
    SIDDHA = "siddha"
    HOMOEOPATHY = "homoeopathy"
    SOWA_RIGPA = "sowa_rigpa"
    YOGA_NATUROPATHY = "yoga_naturopathy"


class StaffProfile(BaseModel):
    """A signed-in user's profile as the API returns it.

    Attributes mirror what the HPR registry holds for the professional plus the clinic membership.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "019ab4c2-7000-7000-8000-0000000000a1",
                    "hpr_id": "71-2665-5777-1001",
                    "hpr_address": "ananya.sharma@hpr.abdm",
                    "name": "Dr. Ananya Sharma",
                    "qualification": "MBBS",
                    "system_of_medicine": "modern_medicine",
                    "registration_council": "Delhi Medical Council",
                    "registration_number": "DMC/R/12345",
                    "state": "Delhi",
                    "role": "doctor",
                    "clinic": {"id": "019ab4c2-7000-7000-8000-000000000001", "name": "IntegMed Demo Clinic"},
                }
            ]
        },
    )

    id: uuid.UUID
    hpr_id: str | None
    hpr_address: str | None
    name: str
    qualification: str | None
    system_of_medicine: SystemOfMedicine | None
    registration_council: str | None
    registration_number: str | None
    state: str | None
    role: Role
    clinic: ClinicRef


class ClinicRef(BaseModel):
    """A clinic as other records refer to it."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    name: str


StaffProfile.model_rebuild()
