"""HPR sign-in routes (the seed's auth endpoints)."""

from __future__ import annotations

from fastapi import APIRouter, status

from shared.records.staff import StaffProfile
from sync_server import errors
from sync_server.api.deps import CurrentUser, Db, Meta, State
from sync_server.api.schemas import (
    DoctorInit,
    DoctorInitAnswer,
    DoctorVerify,
    LogoutBody,
    RefreshBody,
    Tokens,
)
from sync_server.services import auth as auth_service

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _tokens(s: auth_service.SignedIn) -> Tokens:
    return Tokens(access_token=s.access_token, refresh_token=s.refresh_token, expires_in=s.expires_in, user=s.user)


@router.post(
    "/doctor/init",
    response_model=DoctorInitAnswer,
    summary="Send a sign-in OTP to a professional's HPR-registered mobile",
    responses=errors.responses(errors.MobileNotRegistered, errors.TooManyRequests, errors.UpstreamUnavailable),
)
async def doctor_init(body: DoctorInit, st: State, meta: Meta) -> DoctorInitAnswer:
    txn_id, message = await auth_service.start_otp(st.pool, st.hpr, st.settings, mobile=body.mobile, meta=meta)
    return DoctorInitAnswer(txn_id=txn_id, message=message)


@router.post(
    "/doctor/verify",
    response_model=Tokens,
    summary="Check the OTP and sign in: access token, refresh token and profile",
    responses=errors.responses(
        errors.OtpInvalid,
        errors.NotEnrolled,
        errors.TxnUnknown,
        errors.OtpExpired,
        errors.ClinicChoiceRequired,
        errors.TooManyRequests,
        errors.UpstreamUnavailable,
    ),
)
async def doctor_verify(body: DoctorVerify, st: State, meta: Meta) -> Tokens:
    signed = await auth_service.verify_otp(
        st.pool, st.hpr, st.settings, txn_id=body.txn_id, otp=body.otp, clinic_id=body.clinic_id, meta=meta
    )
    return _tokens(signed)


@router.post(
    "/refresh",
    response_model=Tokens,
    summary="Exchange a refresh token for new tokens (rotation)",
    responses=errors.responses(errors.RefreshInvalid),
)
async def refresh(body: RefreshBody, st: State, meta: Meta) -> Tokens:
    return _tokens(await auth_service.refresh(st.pool, st.settings, refresh_token=body.refresh_token, meta=meta))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End this sign-in (refresh revoked)",
    responses=errors.responses(errors.Unauthenticated),
)
async def logout(actor: CurrentUser, st: State, body: LogoutBody | None = None) -> None:
    await auth_service.logout(st.pool, actor=actor, refresh_token=body.refresh_token if body else None)


@router.get(
    "/me",
    response_model=StaffProfile,
    summary="The signed-in user's profile and clinic",
    responses=errors.responses(errors.Unauthenticated),
)
async def me(actor: CurrentUser, db: Db) -> StaffProfile:
    return await auth_service.me(db, actor)
