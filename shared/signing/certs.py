"""Key certificates: COSE_Sign1 over a CWT claims map (RFC 8392) binding an Ed25519 key to a root, an issuer
or a doctor, and the chain check root → issuer → doctor.

Claims map (integer keys, deterministic CBOR):

====== ============ =================================================================
key    claim        value
====== ============ =================================================================
1      iss          key id (base64url text) of the key that signed this certificate
2      sub          optional subject text (e.g. the issuer's name)
4      exp          NumericDate (seconds): the certified key may not sign at or after it
5      nbf          NumericDate: the certified key may not sign before it
6      iat          NumericDate: when the certificate was made
8      cnf          ``{1: COSE_Key}``, the key being certified: ``{1: 1 (OKP), 3: -8, -1: 6 (Ed25519), -2: x}``
-70001 integmed     private claims map, see `_PRIVATE_KEYS` (a clinic_id that is a UUID travels as 16 bytes)
====== ============ =================================================================

The certificate's COSE protected header carries only ``{1: -8}``: the signer is named by ``iss``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from shared.signing import cose, keys
from shared.signing.errors import Reason, VerificationError

if TYPE_CHECKING:
    from shared.signing.trust import TrustedRoot, TrustStore

CLAIM_ISS, CLAIM_SUB, CLAIM_EXP, CLAIM_NBF, CLAIM_IAT, CLAIM_CNF = 1, 2, 4, 5, 6, 8
CLAIM_INTEGMED = -70001  # RFC 8392 §9.1: claim keys below -65536 are for private use
COSE_KEY = 1  # cnf member holding a COSE_Key (RFC 8747 §3.2)
KTY, KTY_OKP, ALG, CRV, CRV_ED25519, X = 1, 1, 3, 6, 6, -2
CRV_LABEL = -1


class Role(StrEnum):
    """What a certified key may do: a root certifies issuers, an issuer certifies doctors, a doctor signs."""

    ROOT = "root"
    ISSUER = "issuer"
    DOCTOR = "doctor"


_ROLE_CODES = {Role.ROOT: 1, Role.ISSUER: 2, Role.DOCTOR: 3}
_ROLES_BY_CODE = {code: role for role, code in _ROLE_CODES.items()}
# Private claim map keys (inside CLAIM_INTEGMED). Small integers keep a certificate inside the QR budget.
_PRIVATE_KEYS = {
    "hpr_id": 2,
    "name": 3,
    "registration_council": 4,
    "registration_number": 5,
    "qualification": 6,
    "system_of_medicine": 7,
    "clinic_id": 8,
    "clinic_name": 9,
}
_PRIVATE_ROLE = 1


def _utc_seconds(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone")
    return value.astimezone(UTC).replace(microsecond=0)


UtcSeconds = Annotated[datetime, AfterValidator(_utc_seconds)]
"""A time-zone-aware instant, normalised to UTC and whole seconds (the wire carries NumericDate seconds)."""
Text = Annotated[str, Field(min_length=1, max_length=200)]


class CertificateClaims(BaseModel):
    """What a certificate says about its key.

    Attributes:
        role: root, issuer or doctor.
        public_key: the certified raw 32-byte Ed25519 public key.
        not_before, expires_at: the key may sign in ``[not_before, expires_at)``.
        issued_at: when the certificate was made (optional).
        subject: free subject text, e.g. the issuing server's name (optional).
        name, hpr_id, registration_council, registration_number, qualification, system_of_medicine,
        clinic_id, clinic_name: the doctor's identity as registered (HPR), all optional on the wire; doctor
            certificates from `sync_server` fill name, hpr_id and the registration fields.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    public_key: Annotated[bytes, Field(min_length=keys.KEY_SIZE, max_length=keys.KEY_SIZE)]
    not_before: UtcSeconds
    expires_at: UtcSeconds
    issued_at: UtcSeconds | None = None
    subject: Text | None = None
    name: Text | None = None
    hpr_id: Text | None = None
    registration_council: Text | None = None
    registration_number: Text | None = None
    qualification: Text | None = None
    system_of_medicine: Text | None = None
    clinic_id: Text | None = None
    clinic_name: Text | None = None

    @property
    def kid(self) -> str:
        """The certified key's id (base64url)."""
        return keys.key_id(self.public_key)

    def valid_at(self, at: datetime) -> bool:
        """Whether the key may sign at ``at``."""
        return self.not_before <= at < self.expires_at


@dataclass(frozen=True)
class Certificate:
    """A parsed certificate (signature not yet checked: see `verify_certificate`).

    Attributes:
        claims: what it certifies.
        issuer_kid: key id (base64url) of the key that signed it.
        raw: the COSE_Sign1 bytes as received.
        message: the decoded COSE message.
    """

    claims: CertificateClaims
    issuer_kid: str
    raw: bytes
    message: cose.Sign1

    @property
    def kid(self) -> str:
        """The certified key's id."""
        return self.claims.kid


@dataclass(frozen=True)
class Chain:
    """A checked chain: the doctor's certificate, the issuer's certificate and the root that vouches for it."""

    doctor: Certificate
    issuer: Certificate
    root: TrustedRoot


def _seconds(value: datetime) -> int:
    return int(value.timestamp())


def _compact_uuid(value: str) -> str | bytes:
    # A clinic id is usually a UUID: 16 bytes on the wire instead of 37, which matters inside a QR.
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return value
    return parsed.bytes if str(parsed) == value else value


def _expand_uuid(value: object) -> object:
    return str(uuid.UUID(bytes=value)) if isinstance(value, bytes) and len(value) == 16 else value


def encode_claims(claims: CertificateClaims, issuer_kid: str) -> bytes:
    """The deterministic CBOR claims map of a certificate signed by the key ``issuer_kid``."""
    private: dict[int, int | str | bytes] = {_PRIVATE_ROLE: _ROLE_CODES[claims.role]}
    for attribute, label in _PRIVATE_KEYS.items():
        value = getattr(claims, attribute)
        if value is not None:
            private[label] = _compact_uuid(value) if attribute == "clinic_id" else value
    cose_key = {KTY: KTY_OKP, ALG: cose.ALG_EDDSA, CRV_LABEL: CRV_ED25519, X: claims.public_key}
    body: dict[int, object] = {
        CLAIM_ISS: issuer_kid,
        CLAIM_EXP: _seconds(claims.expires_at),
        CLAIM_NBF: _seconds(claims.not_before),
        CLAIM_CNF: {COSE_KEY: cose_key},
        CLAIM_INTEGMED: private,
    }
    if claims.subject is not None:
        body[CLAIM_SUB] = claims.subject
    if claims.issued_at is not None:
        body[CLAIM_IAT] = _seconds(claims.issued_at)
    return cose.dumps_canonical(body)


def issue_certificate(claims: CertificateClaims, issuer_private_key: keys.Ed25519PrivateKey) -> bytes:
    """Certify ``claims.public_key`` with ``issuer_private_key``.

    Args:
        claims: the key and identity to certify.
        issuer_private_key: the root's key (for an issuer certificate) or the issuer's key (for a doctor).

    Returns:
        The certificate: COSE_Sign1 bytes.
    """
    payload = encode_claims(claims, keys.key_id(issuer_private_key))
    return cose.sign1(payload, issuer_private_key, kid=None)


def _bad(message: str) -> VerificationError:
    return VerificationError(Reason.BAD_CERTIFICATE, message)


def _date(body: Mapping[object, object], label: int) -> datetime | None:
    value = body.get(label)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= cose.MAX_NUMERIC_DATE:
        raise _bad(f"certificate claim {label} is not a date")
    return datetime.fromtimestamp(value, UTC)


def _public_key(body: Mapping[object, object]) -> bytes:
    cnf = body.get(CLAIM_CNF)
    cose_key = cnf.get(COSE_KEY) if isinstance(cnf, dict) else None
    if not isinstance(cose_key, dict) or cose_key.get(KTY) != KTY_OKP or cose_key.get(CRV_LABEL) != CRV_ED25519:
        raise _bad("the certificate does not hold an Ed25519 key")
    x = cose_key.get(X)
    if not isinstance(x, bytes):
        raise _bad("the certificate's key is not a byte string")
    return x


def decode_claims(payload: bytes) -> tuple[CertificateClaims, str]:
    """Claims and issuer kid from a certificate's payload bytes.

    Raises:
        VerificationError: ``BAD_CERTIFICATE`` when the map is malformed.
    """
    try:
        body = cose.loads_exact(payload)
    except cose.CoseError as exc:
        raise _bad(f"the certificate is not readable: {exc.message}") from exc
    if not isinstance(body, dict):
        raise _bad("the certificate claims are not a map")
    issuer_kid = body.get(CLAIM_ISS)
    private = body.get(CLAIM_INTEGMED)
    if not isinstance(issuer_kid, str) or not isinstance(private, dict):
        raise _bad("the certificate names no issuer or role")
    role = _ROLES_BY_CODE.get(private.get(_PRIVATE_ROLE))  # type: ignore[arg-type]
    fields: dict[str, object] = {
        "role": role,
        "public_key": _public_key(body),
        "not_before": _date(body, CLAIM_NBF),
        "expires_at": _date(body, CLAIM_EXP),
        "issued_at": _date(body, CLAIM_IAT),
        "subject": body.get(CLAIM_SUB),
    }
    fields.update({attribute: private.get(label) for attribute, label in _PRIVATE_KEYS.items()})
    fields["clinic_id"] = _expand_uuid(fields["clinic_id"])
    try:
        return CertificateClaims.model_validate(fields), issuer_kid
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise _bad(f"certificate field {'.'.join(map(str, problem['loc']))}: {problem['msg']}") from exc


def parse_certificate(data: bytes) -> Certificate:
    """Parse certificate bytes (the signature is checked by `verify_certificate` / `verify_chain`).

    Raises:
        VerificationError: ``BAD_CERTIFICATE`` when the bytes are not a certificate.
    """
    try:
        message = cose.decode_sign1(data)
    except cose.CoseError as exc:
        raise _bad(f"the certificate is not a COSE_Sign1 message: {exc.message}") from exc
    claims, issuer_kid = decode_claims(message.payload)
    return Certificate(claims=claims, issuer_kid=issuer_kid, raw=data, message=message)


def _as_certificate(value: Certificate | bytes) -> Certificate:
    return value if isinstance(value, Certificate) else parse_certificate(value)


def verify_certificate(cert: Certificate, signer_public_key: bytes, *, role: Role, at: datetime) -> None:
    """Check one link: ``cert`` has role ``role``, is signed by ``signer_public_key`` and is valid at ``at``.

    Raises:
        VerificationError: ``BAD_CERTIFICATE`` (wrong role, wrong signer, bad signature),
            ``CERTIFICATE_EXPIRED`` or ``CERTIFICATE_NOT_YET_VALID``.
    """
    what = "doctor's" if role is Role.DOCTOR else f"{role.value}'s"
    if cert.claims.role is not role:
        raise _bad(f"the {what} certificate is for a {cert.claims.role.value} key")
    if cert.issuer_kid != keys.key_id(signer_public_key):
        raise _bad(f"the {what} certificate was not issued by the expected key")
    try:
        cose.verify_sign1(cert.message, keys.public_key_from_bytes(signer_public_key))
    except cose.BadSignature as exc:
        raise _bad(f"the {what} certificate has been altered or forged (its signature does not verify)") from exc
    stamp = at.astimezone(UTC).isoformat(timespec="seconds")
    if at < cert.claims.not_before:
        raise VerificationError(
            Reason.CERTIFICATE_NOT_YET_VALID, f"the {what} certificate was not yet valid at {stamp}"
        )
    if at >= cert.claims.expires_at:
        raise VerificationError(Reason.CERTIFICATE_EXPIRED, f"the {what} certificate had expired at {stamp}")


def validate_chain(
    doctor_cert: Certificate | bytes, issuer_cert: Certificate | bytes | None, trust: TrustStore, *, at: datetime
) -> Chain:
    """Check doctor → issuer → trusted root at the instant ``at`` (normally the signing time).

    Args:
        doctor_cert: the doctor's certificate.
        issuer_cert: the issuer's certificate, or ``None`` to look it up among the issuers ``trust`` learned.
        trust: the trusted roots (and learned issuers).
        at: the instant each certificate must be valid at.

    Returns:
        The checked chain.

    Raises:
        VerificationError: ``UNKNOWN_KEY`` (issuer certificate neither given nor known), ``UNTRUSTED_ROOT``,
            ``BAD_CERTIFICATE``, ``CERTIFICATE_EXPIRED`` or ``CERTIFICATE_NOT_YET_VALID``.
    """
    doctor = _as_certificate(doctor_cert)
    if issuer_cert is None:
        known = trust.issuer(doctor.issuer_kid)
        if known is None:
            raise VerificationError(
                Reason.UNKNOWN_KEY, f"the issuing key {doctor.issuer_kid} is not known to this verifier"
            )
        issuer = known
    else:
        issuer = _as_certificate(issuer_cert)
    root = trust.root(issuer.issuer_kid)
    if root is None:
        raise VerificationError(
            Reason.UNTRUSTED_ROOT, f"the issuing key is certified by {issuer.issuer_kid}, which is not a trusted root"
        )
    verify_certificate(issuer, root.public_key, role=Role.ISSUER, at=at)
    verify_certificate(doctor, issuer.claims.public_key, role=Role.DOCTOR, at=at)
    return Chain(doctor=doctor, issuer=issuer, root=root)


def verify_chain(
    doctor_cert: Certificate | bytes, issuer_cert: Certificate | bytes | None, trust: TrustStore, at: datetime
) -> CertificateClaims:
    """`validate_chain`, returning only the doctor's checked claims.

    Raises:
        VerificationError: see `validate_chain`.
    """
    return validate_chain(doctor_cert, issuer_cert, trust, at=at).doctor.claims
