"""Doctor sign-in through the HPR registry's mobile OTP, sessions, refresh and logout.

These functions take the pool and run their own transactions (``…_in_own_transactions`` in spirit): a wrong
OTP must be counted and committed even though the request answers 4xx, and no database transaction is held
open while the registry is called over the network.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.ids import mask_mobile, normalize_mobile, uuid7
from shared.records.staff import StaffProfile
from sync_server import errors
from sync_server.db import audit, ratelimit
from sync_server.db import auth as auth_db
from sync_server.db import clinics as clinics_db
from sync_server.hpr.client import (
    HprClient,
    HprMobileUnknown,
    HprOtpExpired,
    HprOtpInvalid,
    HprUnavailable,
    Professional,
)
from sync_server.security import tokens
from sync_server.services.context import Actor, RequestMeta
from sync_server.settings import Settings


@dataclass(frozen=True)
class SignedIn:
    access_token: str
    refresh_token: str
    expires_in: int
    user: StaffProfile


async def _limit(pool: asyncpg.Pool, bucket: str, limit: int, settings: Settings, what: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        wait = await ratelimit.hit(conn, bucket, limit=limit, window_s=settings.rate_window_s)
    if wait is not None:
        raise errors.TooManyRequests(
            f"Too many {what}: try again in {int(wait)} seconds",
            headers={"Retry-After": str(int(wait))},
        )


def _unavailable(exc: HprUnavailable) -> errors.UpstreamUnavailable:
    return errors.UpstreamUnavailable(
        f"The Healthcare Professionals Registry is not answering right now; try again in a minute. ({exc})"
    )


async def start_otp(
    pool: asyncpg.Pool, hpr: HprClient, settings: Settings, *, mobile: str, meta: RequestMeta
) -> tuple[uuid.UUID, str]:
    """Send an OTP to a registered professional's mobile; returns our txn id and a message to show."""
    mobile = normalize_mobile(mobile)
    await _limit(pool, f"otp-init:ip:{meta.client_ip}", settings.otp_init_per_ip, settings, "sign-in attempts")
    await _limit(pool, f"otp-init:mobile:{mobile}", settings.otp_init_per_mobile, settings, "OTP requests")
    try:
        hpr_txn = await hpr.send_mobile_otp(mobile)
    except HprMobileUnknown as exc:
        raise errors.MobileNotRegistered() from exc
    except HprUnavailable as exc:
        raise _unavailable(exc) from exc
    txn_id = uuid7()
    async with pool.acquire() as conn, conn.transaction():
        await auth_db.insert_txn(
            conn,
            txn_id=txn_id,
            mobile=mobile,
            hpr_txn_id=hpr_txn,
            ttl_s=settings.otp_ttl_s,
            client_ip=meta.client_ip,
        )
    return txn_id, f"OTP sent to {mask_mobile(mobile)} by the Healthcare Professionals Registry"


async def verify_otp(
    pool: asyncpg.Pool,
    hpr: HprClient,
    settings: Settings,
    *,
    txn_id: uuid.UUID,
    otp: str,
    clinic_id: uuid.UUID | None,
    meta: RequestMeta,
) -> SignedIn:
    """Check the OTP (at most `otp_max_attempts` tries per txn), then open a session for the professional."""
    await _limit(pool, f"otp-verify:ip:{meta.client_ip}", settings.otp_verify_per_ip, settings, "OTP attempts")
    async with pool.acquire() as conn, conn.transaction():
        txn = await auth_db.lock_txn(conn, txn_id)
        if txn is None:
            raise errors.TxnUnknown()
        if txn["state"] != "pending":
            raise errors.TxnClosed()
        if txn["expired"]:
            await auth_db.close_txn(conn, txn_id, "dead")
            raise errors.OtpExpired()
        # The row lock is held while the registry checks the OTP, so concurrent guesses on one txn queue up
        # and each is counted: five wrong answers end the txn, whatever the registry itself counts.
        try:
            hpr_token = await hpr.verify_mobile_otp(txn["hpr_txn_id"], otp)
        except HprOtpInvalid:
            left = await auth_db.record_failure(conn, txn_id, max_attempts=settings.otp_max_attempts)
            await audit.append(
                conn,
                clinic_id=None,
                actor_id=None,
                actor_role=None,
                action="auth.otp_failed",
                entity_type="auth_txn",
                entity_id=str(txn_id),
                client_ip=meta.client_ip,
                user_agent=meta.user_agent,
                details={"attempts_left": left},
            )
            return_error: errors.ProblemError = (
                errors.OtpInvalid(f"The OTP is wrong: {left} attempt(s) left", attempts_left=left)
                if left
                else errors.TxnClosed("The OTP was wrong 5 times: request a new OTP")
            )
            exc_to_raise = return_error
        except HprOtpExpired:
            await auth_db.close_txn(conn, txn_id, "dead")
            exc_to_raise = errors.OtpExpired()
        except HprUnavailable as exc:
            raise _unavailable(exc) from exc
        else:
            await auth_db.close_txn(conn, txn_id, "used")
            exc_to_raise = None
    if exc_to_raise is not None:
        raise exc_to_raise
    try:
        professional = await hpr.account(hpr_token)
    except HprUnavailable as exc:
        raise _unavailable(exc) from exc
    return await _open_session(pool, settings, professional, clinic_id=clinic_id, meta=meta)


def _profile_fields(p: Professional) -> dict[str, str | None]:
    return {
        "hpr_address": p.hpr_address,
        "name": p.name,
        "mobile": p.mobile,
        "qualification": p.qualification,
        "system_of_medicine": p.system_of_medicine,
        "registration_council": p.registration_council,
        "registration_number": p.registration_number,
        "state": p.state,
    }


async def _open_session(
    pool: asyncpg.Pool,
    settings: Settings,
    professional: Professional,
    *,
    clinic_id: uuid.UUID | None,
    meta: RequestMeta,
) -> SignedIn:
    async with pool.acquire() as conn, conn.transaction():
        memberships = await clinics_db.users_by_hpr(conn, professional.hpr_id)
        if clinic_id is not None:
            memberships = [m for m in memberships if m["clinic_id"] == clinic_id]
        if not memberships:
            raise errors.NotEnrolled()
        if len(memberships) > 1:
            raise errors.ClinicChoiceRequired(
                clinics=[{"id": str(m["clinic_id"]), "name": m["clinic_name"]} for m in memberships]
            )
        user = memberships[0]
        # The registry is the source of truth for the professional's identity: refresh it at every sign-in.
        await clinics_db.update_profile(conn, user["id"], _profile_fields(professional))
        session_id = uuid7()
        await auth_db.insert_session(
            conn,
            session_id=session_id,
            user_id=user["id"],
            clinic_id=user["clinic_id"],
            ttl_s=settings.refresh_token_ttl_s,
            client_ip=meta.client_ip,
            user_agent=meta.user_agent,
        )
        refresh = tokens.new_refresh_token()
        await auth_db.insert_refresh(conn, tokens.refresh_hash(refresh), session_id)
        await audit.append(
            conn,
            clinic_id=user["clinic_id"],
            actor_id=user["id"],
            actor_role=user["role"],
            action="auth.login",
            entity_type="session",
            entity_id=str(session_id),
            client_ip=meta.client_ip,
            user_agent=meta.user_agent,
            details={"method": "hpr_mobile_otp"},
        )
        row = await clinics_db.user_with_clinic(conn, user["id"])
    assert row is not None
    return _signed_in(settings, row, session_id, refresh)


def _signed_in(settings: Settings, user: asyncpg.Record, session_id: uuid.UUID, refresh: str) -> SignedIn:
    access = tokens.issue_access(
        tokens.AccessClaims(user["id"], session_id, user["clinic_id"], user["role"], user["hpr_id"]),
        secret=settings.jwt_secret.get_secret_value(),
        issuer=settings.jwt_issuer,
        ttl_s=settings.access_token_ttl_s,
    )
    return SignedIn(access, refresh, settings.access_token_ttl_s, staff_profile(user))


def staff_profile(user: asyncpg.Record | dict[str, Any]) -> StaffProfile:
    hpr_id = user["hpr_id"]
    return StaffProfile.model_validate(
        {
            "id": user["id"],
            "hpr_id": f"{hpr_id[:2]}-{hpr_id[2:6]}-{hpr_id[6:10]}-{hpr_id[10:]}" if hpr_id else None,
            "hpr_address": user["hpr_address"],
            "name": user["name"],
            "qualification": user["qualification"],
            "system_of_medicine": user["system_of_medicine"],
            "registration_council": user["registration_council"],
            "registration_number": user["registration_number"],
            "state": user["state"],
            "role": user["role"],
            "clinic": {"id": user["clinic_id"], "name": user["clinic_name"]},
        }
    )


async def refresh(pool: asyncpg.Pool, settings: Settings, *, refresh_token: str, meta: RequestMeta) -> SignedIn:
    """Rotate a refresh token. Presenting an already-used one ends the whole session (token theft)."""
    token_hash = tokens.refresh_hash(refresh_token)
    async with pool.acquire() as conn, conn.transaction():
        row = await auth_db.lock_refresh(conn, token_hash)
        if row is None or row["revoked_at"] is not None or row["expired"]:
            failure: errors.ProblemError | None = errors.RefreshInvalid()
        elif row["used_at"] is not None:
            await auth_db.revoke_session(conn, row["session_id"], "refresh token reused")
            await audit.append(
                conn,
                clinic_id=row["clinic_id"],
                actor_id=row["user_id"],
                actor_role=None,
                action="auth.refresh_reuse",
                entity_type="session",
                entity_id=str(row["session_id"]),
                client_ip=meta.client_ip,
                user_agent=meta.user_agent,
            )
            failure = errors.RefreshInvalid("This sign-in was used elsewhere and has been ended: sign in again")
        else:
            failure = None
            await auth_db.mark_refresh_used(conn, token_hash)
            new = tokens.new_refresh_token()
            await auth_db.insert_refresh(conn, tokens.refresh_hash(new), row["session_id"])
            user = await clinics_db.user_with_clinic(conn, row["user_id"])
            if user is None or not user["active"]:
                failure = errors.RefreshInvalid("This account is no longer active in the clinic")
    if failure is not None:
        raise failure
    assert user is not None
    return _signed_in(settings, user, row["session_id"], new)


async def logout(pool: asyncpg.Pool, *, actor: Actor, refresh_token: str | None) -> None:
    """End the caller's session: its refresh tokens stop working and its access tokens are refused."""
    async with pool.acquire() as conn, conn.transaction():
        await auth_db.revoke_session(conn, actor.session_id, "logout")
        await audit.append(
            conn,
            clinic_id=actor.clinic_id,
            actor_id=actor.user_id,
            actor_role=actor.role,
            action="auth.logout",
            entity_type="session",
            entity_id=str(actor.session_id),
            client_ip=actor.meta.client_ip,
            user_agent=actor.meta.user_agent,
        )
        if refresh_token:
            row = await auth_db.lock_refresh(conn, tokens.refresh_hash(refresh_token))
            if row is not None and row["user_id"] == actor.user_id:
                await auth_db.revoke_session(conn, row["session_id"], "logout")


async def me(conn: asyncpg.Connection, actor: Actor) -> StaffProfile:
    user = await clinics_db.user_with_clinic(conn, actor.user_id)
    if user is None:
        raise errors.Unauthenticated()
    return staff_profile(user)


async def live_session_role(pool: asyncpg.Pool, session_id: uuid.UUID, clinic_id: uuid.UUID) -> str | None:
    """The user's current role when the session is live, the user active and still in that clinic; else None.

    Checked on every request so that logout, deactivation or a role change take effect at once.
    """
    async with pool.acquire() as conn:
        row = await auth_db.session_state(conn, session_id)
    if row is None or row["revoked_at"] is not None or not row["active"] or row["clinic_id"] != clinic_id:
        return None
    if row["expired"]:
        return None
    return str(row["role"])
