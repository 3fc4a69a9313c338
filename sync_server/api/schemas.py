"""Request and response bodies of the auth routes (patient bodies live in shared.records.patient)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.records.patient import Patient
from shared.records.staff import StaffProfile


class DoctorInit(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"mobile": "+919810000001", "purpose": "login"}]}
    )

    mobile: str = Field(max_length=20, description="The professional's mobile as registered with HPR")
    purpose: Literal["login"] = Field("login", description="Why the OTP is requested; only `login` today")


class DoctorInitAnswer(BaseModel):
    txn_id: uuid.UUID
    message: str


class DoctorVerify(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"txn_id": "019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e44", "otp": "482913"}]},
    )

    txn_id: uuid.UUID
    otp: str = Field(pattern=r"^[0-9]{4,8}$", description="The OTP the registry sent by SMS")
    clinic_id: uuid.UUID | None = Field(None, description="Needed only when the professional works at several clinics")


class Tokens(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str
    user: StaffProfile


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=10, max_length=200)


class LogoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str | None = Field(None, max_length=200)


class PatientPage(BaseModel):
    items: list[Patient]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    database: str
    schema_revision: str
