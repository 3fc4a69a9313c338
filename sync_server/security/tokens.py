"""Access tokens (short-lived HS256 JWTs) and opaque refresh tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    """What an access token says about its bearer."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    clinic_id: uuid.UUID
    role: str
    hpr_id: str | None


def issue_access(claims: AccessClaims, *, secret: str, issuer: str, ttl_s: int) -> str:
    now = int(time.time())
    payload = {
        "iss": issuer,
        "sub": str(claims.user_id),
        "sid": str(claims.session_id),
        "clinic": str(claims.clinic_id),
        "role": claims.role,
        "hpr": claims.hpr_id,
        "iat": now,
        "exp": now + ttl_s,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or not ours."""


_VERIFIED_MAX = 4096
_verified: dict[tuple[str, str, str], tuple[AccessClaims, int]] = {}
"""Tokens already verified, with their expiry: a PC sends the same token with every request until it expires,
and verifying it again (signature, claims, 47 µs) was a tenth of an idle pull's CPU. Bounded; cleared when full."""


def decode_access(token: str, *, secret: str, issuer: str) -> AccessClaims:
    """The claims of a valid access token of this issuer and secret.

    Raises:
        InvalidToken: malformed, not signed with ``secret``, of another issuer, or expired.
    """
    key = (token, secret, issuer)
    known = _verified.get(key)
    if known is not None:
        claims, exp = known
        if time.time() < exp:  # PyJWT's expiry check (no leeway)
            return claims
        _verified.pop(key, None)
        raise InvalidToken("The access token has expired: refresh it")
    claims, exp = _decode(token, secret=secret, issuer=issuer)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[key] = (claims, exp)
    return claims


def _decode(token: str, *, secret: str, issuer: str) -> tuple[AccessClaims, int]:
    try:
        data = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "sid", "clinic", "role"]},
        )
        claims = AccessClaims(
            user_id=uuid.UUID(data["sub"]),
            session_id=uuid.UUID(data["sid"]),
            clinic_id=uuid.UUID(data["clinic"]),
            role=str(data["role"]),
            hpr_id=data.get("hpr"),
        )
        return claims, int(data["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("The access token has expired: refresh it") from exc
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise InvalidToken("The access token is not valid") from exc


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)


def refresh_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
