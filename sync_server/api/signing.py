"""Signing routes: sign a prescription, status events, verification, doctor certificates, revocation, trust."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from shared.records.staff import Role
from shared.text import clean_text
from sync_server import errors
from sync_server.api.deps import ClinicStaff, Db, require_roles
from sync_server.services import doctor_keys
from sync_server.services import signing as signing_service
from sync_server.services.context import Actor
from sync_server.services.doctor_keys import DoctorCertificate, RevocationList, RevocationOut, TrustAnswer
from sync_server.services.signing import SignAnswer, SignedPrescriptionOut, StatusEventOut, VerificationOut
from sync_server.signing.issuer import SigningContext

router = APIRouter(prefix="/api/v1", tags=["signing"])
CBOR = "application/cbor"


def _reason(value: str) -> str:
    cleaned = clean_text(value)
    if not cleaned:
        raise PydanticCustomError("text.empty", "Must not be empty")
    return cleaned


Reason = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_reason)]


def signing_context(request: Request) -> SigningContext:
    ctx: SigningContext | None = getattr(request.app.state, "signing", None)
    if ctx is None:
        raise doctor_keys.SigningUnavailable(
            "This server has no issuing key configured (INTEGMED_SIGNING_ISSUER_KEY / _CERT / _KEK)"
        )
    return ctx


Signing = Annotated[SigningContext, Depends(signing_context)]
Doctor = Annotated[Actor, require_roles(Role.DOCTOR)]
Revoker = Annotated[Actor, require_roles(Role.DOCTOR, Role.CLINIC_ADMIN)]
_SIGN_ERRORS = (
    errors.Unauthenticated,
    errors.Forbidden,
    errors.NotFound,
    signing_service.SignedPrescriptionImmutable,
    doctor_keys.SigningUnavailable,
)


class CertificateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_key: str = Field(
        min_length=1, max_length=100, description="The doctor's Ed25519 public key: base64url of the raw 32 bytes"
    )


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: signing_service.EventStatus
    reason: Reason


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qr_payload: str = Field(min_length=1, max_length=8000, description="The exact text inside the QR code")


class RevocationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kid: str = Field(min_length=1, max_length=64, description="Key id (base64url, 11 characters)")
    reason: Reason


@router.post(
    "/prescriptions/verify",
    response_model=VerificationOut,
    summary="Verify a prescription QR payload (signature, certificate chain, revocation); for pharmacies too",
    responses=errors.responses(doctor_keys.SigningUnavailable),
)
async def verify(body: VerifyBody, db: Db, ctx: Signing) -> VerificationOut:
    return await signing_service.verify_signed_prescription(db, ctx, body.qr_payload)


@router.post(
    "/prescriptions/{prescription_id}/sign",
    response_model=SignAnswer,
    status_code=status.HTTP_201_CREATED,
    summary="Sign a draft with the doctor's server-held key; a repeated request answers the stored signature",
    responses={
        200: {"description": "Already signed: the stored signature"},
        **errors.responses(*_SIGN_ERRORS, signing_service.QrTooLarge),
    },
)
async def sign(prescription_id: uuid.UUID, actor: Doctor, db: Db, ctx: Signing, response: Response) -> SignAnswer:
    answer = await signing_service.sign_prescription(db, ctx, actor, prescription_id)
    if answer.already_signed:
        response.status_code = status.HTTP_200_OK
    return answer


@router.get(
    "/prescriptions/{prescription_id}/signed",
    response_model=SignedPrescriptionOut,
    summary="A prescription with its signature and status events",
    responses=errors.responses(errors.Unauthenticated, errors.Forbidden, errors.NotFound),
)
async def get_signed(prescription_id: uuid.UUID, actor: ClinicStaff, db: Db) -> SignedPrescriptionOut:
    return await signing_service.get_signed(db, actor, prescription_id)


@router.post(
    "/prescriptions/{prescription_id}/status",
    response_model=StatusEventOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a signed status event: dispensed (once), cancelled or superseded (final)",
    responses=errors.responses(*_SIGN_ERRORS, signing_service.StatusRefused),
)
async def add_status(
    prescription_id: uuid.UUID, body: StatusBody, actor: Doctor, db: Db, ctx: Signing
) -> StatusEventOut:
    return await signing_service.record_status(db, ctx, actor, prescription_id, body.status, body.reason)


@router.get(
    "/prescriptions/{prescription_id}/status",
    response_model=list[StatusEventOut],
    summary="The prescription's signed status events, oldest first",
    responses=errors.responses(errors.Unauthenticated, errors.Forbidden, errors.NotFound),
)
async def list_status(prescription_id: uuid.UUID, actor: ClinicStaff, db: Db) -> list[StatusEventOut]:
    return await signing_service.list_status(db, actor, prescription_id)


@router.post(
    "/signing/doctor-certificates",
    response_model=DoctorCertificate,
    status_code=status.HTTP_201_CREATED,
    summary="Certify the signed-in doctor's public key (generated on the PC); answers the certificate chain",
    responses=errors.responses(
        errors.Unauthenticated,
        errors.Forbidden,
        doctor_keys.KeyMalformed,
        doctor_keys.CertificationRefused,
        doctor_keys.SigningUnavailable,
    ),
)
async def certify(body: CertificateRequest, actor: Doctor, db: Db, ctx: Signing) -> DoctorCertificate:
    return await doctor_keys.certify_doctor_key(db, ctx, actor, body.public_key)


@router.post(
    "/signing/revocations",
    response_model=RevocationOut,
    status_code=status.HTTP_201_CREATED,
    summary="Revoke a doctor key (a clinic admin for the clinic's keys, a doctor for his own)",
    responses=errors.responses(errors.Unauthenticated, errors.Forbidden, errors.NotFound, doctor_keys.AlreadyRevoked),
)
async def revoke(body: RevocationBody, actor: Revoker, db: Db) -> RevocationOut:
    return await doctor_keys.revoke_key(db, actor, body.kid, body.reason)


@router.get(
    "/signing/revocations",
    response_model=RevocationList,
    summary="The current revocation list signed by the issuing key (JSON with base64, or application/cbor)",
    responses={
        200: {"content": {CBOR: {}}},
        **errors.responses(doctor_keys.SigningUnavailable),
    },
)
async def revocation_list(request: Request, db: Db, ctx: Signing) -> RevocationList | Response:
    # Public like any CRL: it is signed, names only key ids, and pharmacies refresh it without an account.
    rl = await doctor_keys.revocation_list(db, ctx)
    if CBOR in request.headers.get("accept", ""):
        return Response(base64.b64decode(rl.revocation_list), media_type=CBOR)
    return rl


@router.get(
    "/signing/trust",
    response_model=TrustAnswer,
    summary="The issuing certificate(s) this server signs with, and the root key ids they chain to",
    responses=errors.responses(doctor_keys.SigningUnavailable),
)
async def trust(ctx: Signing) -> TrustAnswer:
    return doctor_keys.trust(ctx)
