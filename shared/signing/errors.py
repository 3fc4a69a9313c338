"""Why a signed object did not verify: one reason code per failure, and the typed error that carries it."""

from __future__ import annotations

from enum import StrEnum

from shared.errors import DomainError


class Reason(StrEnum):
    """The outcome of a verification; everything but ``VALID`` makes the prescription INVALID."""

    VALID = "valid"
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    BAD_SIGNATURE = "bad_signature"
    CERTIFICATE_MISMATCH = "certificate_mismatch"
    BAD_CERTIFICATE = "bad_certificate"
    UNKNOWN_KEY = "unknown_key"
    UNTRUSTED_ROOT = "untrusted_root"
    REVOKED_KEY = "revoked_key"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
    CANCELLED = "cancelled"
    """Authentic, but its prescriber cancelled it (a signed status event the verifier holds)."""
    SUPERSEDED = "superseded"
    """Authentic, but its prescriber replaced it with a newer prescription (a signed status event)."""


class VerificationError(DomainError):
    """A certificate, chain or revocation list failed a check.

    Args:
        reason: the reason code (never ``VALID``).
        message: one sentence a pharmacist understands.
    """

    code = "signing.invalid"

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
