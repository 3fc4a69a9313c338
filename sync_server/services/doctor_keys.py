"""Doctor signing keys: certification of PC-held keys, sealed server-held keys, revocation, trust answers.

The server's issuing key certifies every doctor key (docs/signing_server.md). A server-held key is created
on the doctor's first sign and sealed under the KEK; a PC-held key is only ever seen by its public half.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from shared.signing import keys
from shared.signing.certs import CertificateClaims, Role, issue_certificate
from shared.signing.revocation import RevokedKey, issue_revocation_list
from sync_server import errors
from sync_server.db import signing as signing_db
from sync_server.services import audit as audit_service
from sync_server.services.context import Actor
from sync_server.signing import sealing
from sync_server.signing.issuer import SigningContext

# A server-held key is replaced this long before its certificate ends, so no prescription is signed with a
# certificate about to expire.
_KEY_RENEW_MARGIN = timedelta(days=7)


# --- problems --------------------------------------------------------------------------------------------


class SigningUnavailable(errors.ProblemError):
    status = 503
    code = "signing.unavailable"
    title = "Signing is not configured on this server"


class KeyMalformed(errors.ProblemError):
    status = 422
    code = "signing.key_malformed"
    title = "The public key is not an Ed25519 public key (base64url of 32 raw bytes)"


class CertificationRefused(errors.ProblemError):
    status = 409
    code = "signing.certification_refused"
    title = "This key cannot be certified for you"


class AlreadyRevoked(errors.ProblemError):
    status = 409
    code = "signing.already_revoked"
    title = "This key is already revoked"


# --- answers ---------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class DoctorCertificate(BaseModel):
    kid: str
    certificate: str = Field(description="The doctor's certificate (COSE_Sign1 bytes), base64")
    issuer_certificate: str = Field(description="The issuing key's certificate from the root, base64")
    issuer_kid: str
    not_before: datetime
    not_after: datetime


class RevocationOut(BaseModel):
    kid: str
    revoked_at: datetime
    reason: str


class RevocationList(BaseModel):
    revocation_list: str = Field(description="The signed revocation list (CBOR), base64")
    issuer_kid: str
    issued_at: datetime
    count: int


class IssuerOut(BaseModel):
    kid: str
    certificate: str = Field(description="COSE_Sign1 bytes, base64")
    root_kid: str
    not_before: datetime
    expires_at: datetime


class TrustAnswer(BaseModel):
    issuers: list[IssuerOut]


async def audit_key(conn: asyncpg.Connection, actor: Actor, action: str, kid: str, details: dict[str, Any]) -> None:
    await audit_service.record(conn, actor, action=action, entity_type="doctor_key", entity_id=kid, details=details)


def _doctor_claims(ctx: SigningContext, facts: asyncpg.Record, public_key: bytes, now: datetime) -> CertificateClaims:
    def text(value: str | None) -> str | None:
        value = (value or "").strip()
        return value[:200] or None

    return CertificateClaims(
        role=Role.DOCTOR,
        public_key=public_key,
        not_before=now - timedelta(minutes=5),
        # Never beyond the issuing certificate: after it ends nothing this doctor certificate vouches for verifies.
        expires_at=min(now + timedelta(days=ctx.doctor_cert_days), ctx.issuer_cert.claims.expires_at),
        issued_at=now,
        name=text(facts["name"]),
        hpr_id=text(facts["hpr_id"]),
        registration_council=text(facts["registration_council"]),
        registration_number=text(facts["registration_number"]),
        qualification=text(facts["qualification"]),
        system_of_medicine=text(facts["system_of_medicine"]),
        clinic_id=str(facts["clinic_id"]),  # travels as 16 bytes (shared.signing.certs)
        clinic_name=text(facts["clinic_name"]),
    )


async def active_doctor(conn: asyncpg.Connection, actor: Actor) -> asyncpg.Record:
    facts = await signing_db.signing_facts(conn, actor.clinic_id, actor.user_id)
    if facts is None or not facts["active"] or facts["role"] != "doctor":
        raise errors.Forbidden("Only an active doctor of this clinic has a signing key")
    if not facts["hpr_id"] or not facts["registration_number"]:
        raise CertificationRefused("Your HPR registration has no HPR id or registration number to certify")
    return facts


async def _certify(
    conn: asyncpg.Connection,
    ctx: SigningContext,
    facts: asyncpg.Record,
    public_key: bytes,
    sealed: bytes | None,
    kid: str,
    now: datetime,
) -> asyncpg.Record | None:
    if ctx.issuer_cert.claims.expires_at <= now + _KEY_RENEW_MARGIN:
        end = ctx.issuer_cert.claims.expires_at.date().isoformat()
        raise SigningUnavailable(
            f"The server's issuing certificate ends on {end}: an operator must renew it "
            "(integmed-server keys issuer-create)"
        )
    claims = _doctor_claims(ctx, facts, public_key, now)
    return await signing_db.insert_key(
        conn,
        kid=kid,
        user_id=facts["id"],
        clinic_id=facts["clinic_id"],
        public_key=public_key,
        private_key_enc=sealed,
        certificate=issue_certificate(claims, ctx.issuer_key),
        issuer_kid=ctx.issuer_kid,
        not_before=claims.not_before,
        not_after=claims.expires_at,
    )


async def server_key(
    conn: asyncpg.Connection, ctx: SigningContext, actor: Actor, facts: asyncpg.Record, now: datetime
) -> tuple[keys.Ed25519PrivateKey, asyncpg.Record, bool]:
    """The doctor's live server-held key, created (and certified) on first use or after a revocation.

    Returns:
        (private key, key row, whether it was created now).
    """
    await signing_db.lock_user_keys(conn, actor.user_id)
    # Only a key certified by the current issuing key: its certificate must chain to the one the QR carries.
    row = await signing_db.live_server_key(conn, actor.user_id, now + _KEY_RENEW_MARGIN, ctx.issuer_kid)
    if row is not None:
        seed = sealing.unseal(ctx.kek, row["kid"], row["private_key_enc"])
        return keys.private_key_from_bytes(seed), row, False
    private = keys.generate_private_key()
    public = keys.public_key_bytes(private)
    kid = keys.key_id(public)
    sealed = sealing.seal(ctx.kek, kid, keys.private_key_to_bytes(private))
    row = await _certify(conn, ctx, facts, public, sealed, kid, now)
    if row is None:  # pragma: no cover - a 32-byte random key colliding with a stored one
        raise RuntimeError("a freshly generated key id is already stored")
    return private, row, True


# --- doctor certificates ---------------------------------------------------------------------------------


def _certificate_out(ctx: SigningContext, row: asyncpg.Record) -> DoctorCertificate:
    return DoctorCertificate(
        kid=row["kid"],
        certificate=_b64(row["certificate"]),
        issuer_certificate=_b64(ctx.issuer_cert.raw),
        issuer_kid=row["issuer_kid"],
        not_before=row["not_before"],
        not_after=row["not_after"],
    )


async def certify_doctor_key(
    conn: asyncpg.Connection, ctx: SigningContext, actor: Actor, public_key_text: str
) -> DoctorCertificate:
    """Certify a key the doctor generated on his PC (the server never sees its private half).

    Certifying the same key again answers the stored certificate; a key certified for someone else, or
    revoked, is refused.
    """
    try:
        public_key = keys.b64url_decode(public_key_text.strip())
        keys.public_key_from_bytes(public_key)
    except keys.KeyFormatError as exc:
        raise KeyMalformed(str(exc), field="public_key") from exc
    facts = await active_doctor(conn, actor)
    kid = keys.key_id(public_key)
    existing = await signing_db.get_key(conn, kid)
    if existing is not None:
        if existing["user_id"] != actor.user_id:
            raise CertificationRefused("This public key is already certified for someone else")
        if existing["revoked_at"] is not None:
            raise CertificationRefused("This key was revoked; generate a new key on the PC")
        if existing["issuer_kid"] != ctx.issuer_kid:
            raise CertificationRefused("This key was certified by a previous issuing key; generate a new key")
        return _certificate_out(ctx, existing)
    row = await _certify(conn, ctx, facts, public_key, None, kid, datetime.now(UTC))
    assert row is not None  # the kid was free a moment ago and ids are per key, not per request
    await audit_key(conn, actor, "signing.certificate_issued", kid, {"held_by": "desktop"})
    return _certificate_out(ctx, row)


async def revoke_key(conn: asyncpg.Connection, actor: Actor, kid: str, reason: str) -> RevocationOut:
    """Revoke a doctor key: a clinic admin any key of the clinic, a doctor only his own.

    From the revocation instant on, nothing signed with the key verifies and the server signs with it no
    more (the doctor's next sign creates a new server-held key).
    """
    row = await signing_db.get_key(conn, kid.strip())
    if row is None or row["clinic_id"] != actor.clinic_id:
        raise errors.NotFound("No signing key with this id in your clinic")
    if actor.role != "clinic_admin" and row["user_id"] != actor.user_id:
        raise errors.Forbidden("A doctor may revoke only his own keys; ask the clinic admin")
    at = datetime.now(UTC)
    if not await signing_db.revoke_key(
        conn, kid=row["kid"], clinic_id=actor.clinic_id, revoked_at=at, reason=reason, revoked_by=actor.user_id
    ):
        raise AlreadyRevoked(f"Key {row['kid']} was revoked at {row['revoked_at'].isoformat()}")
    await audit_key(conn, actor, "signing.key_revoked", row["kid"], {"reason": reason})
    return RevocationOut(kid=row["kid"], revoked_at=at, reason=reason)


async def signed_revocations(conn: asyncpg.Connection, ctx: SigningContext) -> tuple[bytes, datetime, int]:
    """The current list, signed by the issuing key: (COSE bytes, issued at, number of entries).

    Its sequence is the newest revocation's number, so it grows with every revocation and stays the same
    while nothing changes (a verifier caching the highest sequence never goes back to an older list).
    """
    rows = await signing_db.revocations(conn)
    now = datetime.now(UTC).replace(microsecond=0)
    entries = [RevokedKey(r["kid"], r["revoked_at"], r["reason"]) for r in rows]
    data = issue_revocation_list(
        entries,
        ctx.issuer_key,
        sequence=rows[-1]["seq"] if rows else 0,
        issued_at=now,
        next_update=now + timedelta(days=1),
        signer_cert=ctx.issuer_cert.raw,
    )
    return data, now, len(entries)


async def revocation_list(conn: asyncpg.Connection, ctx: SigningContext) -> RevocationList:
    """The current revocation list signed by the issuer (verifiers check it against the root they hold)."""
    data, issued_at, count = await signed_revocations(conn, ctx)
    return RevocationList(revocation_list=_b64(data), issuer_kid=ctx.issuer_kid, issued_at=issued_at, count=count)


def trust(ctx: SigningContext) -> TrustAnswer:
    """The issuing certificate this server signs with (a verifier learns it once, then needs no QR copy)."""
    cert = ctx.issuer_cert
    return TrustAnswer(
        issuers=[
            IssuerOut(
                kid=cert.kid,
                certificate=_b64(cert.raw),
                root_kid=cert.issuer_kid,
                not_before=cert.claims.not_before,
                expires_at=cert.claims.expires_at,
            )
        ]
    )
