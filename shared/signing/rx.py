"""Signed prescriptions and their QR payload (format "IMRX1").

Signing: the content (`PrescriptionContent`) is encoded as deterministic CBOR with short integer keys
(`canonical_bytes`); its SHA-256 is the ``signature_hash`` the API stores; the doctor's key signs it as the
payload of a COSE_Sign1 whose protected header names the doctor's key (``{1: -8, 4: kid}``). The doctor's and
the issuer's certificates ride in the unprotected header (label -70001, ``[doctor_cert, issuer_cert]``): they
are signed objects themselves and the protected kid binds the doctor's one to the signature.

QR text: ``IMRX1:`` + base45(zlib(COSE_Sign1)), zlib with the IMRX1 preset dictionary (`shared.signing.zdict`).
Every character is in the QR alphanumeric set.

Verification (`verify_qr_payload`) runs the steps in the order of docs/signing.md and stops at the first
failure with its `Reason`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import base45
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import DomainError
from shared.signing import cose, keys
from shared.signing.certs import (
    CertificateClaims,
    Chain,
    UtcSeconds,
    parse_certificate,
    validate_chain,
)
from shared.signing.errors import Reason, VerificationError
from shared.signing.revocation import RevocationList, find_revocation
from shared.signing.trust import TrustStore
from shared.signing.zdict import IMRX1_ZDICT

PREFIX = "IMRX1:"
FORMAT_VERSION = 1
HEADER_CHAIN = -70001  # private-use COSE header label (RFC 9052 §3.1: below -65536): [doctor_cert, issuer_cert]
# Alphanumeric-mode capacity (characters) of QR versions 1-40 at error correction M (ISO/IEC 18004 Table 7;
# cross-checked against the `qrcode` library by tests/shared/signing/test_qr_size.py).
QR_ALNUM_CAPACITY_M = (
    20, 38, 61, 90, 122, 154, 178, 221, 262, 311, 366, 419, 483, 528, 600, 656, 734, 816, 909, 970,
    1035, 1134, 1248, 1326, 1451, 1542, 1637, 1732, 1839, 1994, 2113, 2238, 2369, 2506, 2632, 2780, 2894,
    3054, 3220, 3391,
)  # fmt: skip
# The budget: version 22 at level M (105x105 modules), the largest version SMART Health Cards allow, designed
# for 40x40 mm (0.35 mm modules, 4 dots at 300 dpi). A fully self-contained QR (doctor + issuer certificates)
# of a 5-medicine prescription measures V21-V22; see docs/signing.md for the measurements and the 25 mm case.
MAX_QR_VERSION = 22
MAX_QR_CHARS = QR_ALNUM_CAPACITY_M[MAX_QR_VERSION - 1]
MAX_INFLATED = 64 * 1024
CLOCK_SKEW = timedelta(minutes=5)
_PREFIX_PATTERN = re.compile(r"^IMRX(\d+):")

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=500)]
Days = Annotated[int, Field(ge=1, le=3650)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Clinic(_Frozen):
    """The clinic printed on the prescription."""

    name: Text
    address: LongText | None = None
    phone: Annotated[str, Field(min_length=1, max_length=30)] | None = None


class Patient(_Frozen):
    """The patient as printed: name, age, sex (ABDM code M/F/O/U) and ABHA number when there is one."""

    name: Text
    age_years: Annotated[int, Field(ge=0, le=150)] | None = None
    sex: Annotated[str, Field(pattern="^[MFOU]$")]
    abha_number: Annotated[str, Field(min_length=1, max_length=20)] | None = None


class Diagnosis(_Frozen):
    """A diagnosis as written and/or its code (e.g. ICD-10); at least one. Codes alone keep the QR small and
    disclose less to whoever scans it."""

    text: LongText | None = None
    code: Annotated[str, Field(min_length=1, max_length=20)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Diagnosis:
        if self.text is None and self.code is None:
            raise ValueError("a diagnosis needs a text or a code")
        return self


class Medicine(_Frozen):
    """One modern-medicine line, by generic name."""

    generic_name: Text
    strength: Text | None = None
    dosage_form: Text | None = None
    route: Text | None = None
    dose: Text | None = None
    frequency: Text
    duration_days: Days
    quantity: Annotated[int, Field(ge=1, le=100000)] | None = None
    instructions: LongText | None = None


class AyushItem(_Frozen):
    """One AYUSH medicine."""

    name: Text
    dose: Text | None = None
    frequency: Text
    duration_days: Days
    instructions: LongText | None = None


class PrescriptionContent(_Frozen):
    """Exactly what the doctor signs and the QR carries.

    ``issued_at`` is the signing instant: it is covered by the signature, and revocation and certificate
    validity are judged at it. ``expires_at`` is when a pharmacy must stop dispensing against it.
    """

    rx_id: uuid.UUID
    issued_at: UtcSeconds
    expires_at: UtcSeconds
    clinic: Clinic
    patient: Patient
    diagnosis: tuple[Diagnosis, ...] = ()
    medicines: tuple[Medicine, ...] = ()
    ayush: tuple[AyushItem, ...] = ()
    followup: LongText | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PrescriptionContent:
        if not self.medicines and not self.ayush:
            raise ValueError("a prescription needs at least one medicine")
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


# --- wire keys -----------------------------------------------------------------------------------------
# Each model's fields map to small integers (table in docs/signing.md). Key 0 of the top map is the content
# format version. Absent optional fields are left out, never encoded as null.
_KEYS: dict[type[BaseModel], dict[str, int]] = {
    Clinic: {"name": 1, "address": 2, "phone": 3},
    Patient: {"name": 1, "age_years": 2, "sex": 3, "abha_number": 4},
    Diagnosis: {"text": 1, "code": 2},
    Medicine: {
        "generic_name": 1,
        "strength": 2,
        "dosage_form": 3,
        "route": 4,
        "dose": 5,
        "frequency": 6,
        "duration_days": 7,
        "quantity": 8,
        "instructions": 9,
    },
    AyushItem: {"name": 1, "dose": 2, "frequency": 3, "duration_days": 4, "instructions": 5},
    PrescriptionContent: {
        "rx_id": 1,
        "issued_at": 2,
        "expires_at": 3,
        "clinic": 4,
        "patient": 5,
        "diagnosis": 6,
        "medicines": 7,
        "ayush": 8,
        "followup": 9,
    },
}
_CHILD: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
    (PrescriptionContent, "clinic"): Clinic,
    (PrescriptionContent, "patient"): Patient,
    (PrescriptionContent, "diagnosis"): Diagnosis,
    (PrescriptionContent, "medicines"): Medicine,
    (PrescriptionContent, "ayush"): AyushItem,
}
_VERSION_KEY = 0


def _to_wire(value: object) -> object:
    if isinstance(value, BaseModel):
        return {
            label: _to_wire(getattr(value, name))
            for name, label in _KEYS[type(value)].items()
            if getattr(value, name) not in (None, ())
        }
    if isinstance(value, tuple):
        return [_to_wire(item) for item in value]
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, uuid.UUID):
        return value.bytes
    return value


def _from_wire(model: type[BaseModel], data: object, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PayloadError(f"{path or 'content'} is not a map")
    names = {label: name for name, label in _KEYS[model].items()}
    unknown = [key for key in data if key not in names and not (model is PrescriptionContent and key == 0)]
    if unknown:
        raise PayloadError(f"{path or 'content'} has unknown keys {unknown}")
    fields: dict[str, Any] = {}
    for label, value in data.items():
        name = names.get(label)
        if name is None:
            continue
        child = _CHILD.get((model, name))
        if child is not None and isinstance(value, list):
            fields[name] = [_from_wire(child, item, f"{name}[{i}]") for i, item in enumerate(value)]
        elif child is not None:
            fields[name] = _from_wire(child, value, name)
        elif name in ("issued_at", "expires_at") and isinstance(value, int) and 0 <= value < 2**40:
            fields[name] = datetime.fromtimestamp(value, UTC)
        elif name == "rx_id" and isinstance(value, bytes) and len(value) == 16:
            fields[name] = uuid.UUID(bytes=value)
        else:
            fields[name] = value
    return fields


def qr_version(text: str) -> int:
    """The smallest QR version (level M, alphanumeric mode) that holds ``text``; 41 when none does."""
    return next((v for v, cap in enumerate(QR_ALNUM_CAPACITY_M, start=1) if len(text) <= cap), 41)


class PayloadError(DomainError):
    """The signed content cannot be decoded into a prescription."""

    code = "signing.payload_malformed"


class PayloadTooLarge(DomainError):
    """The signed prescription does not fit the QR budget (`MAX_QR_VERSION`, level M); nothing is dropped.

    Args:
        chars: the QR text length.
        limit: the budget (`MAX_QR_CHARS`).
    """

    code = "rx.qr_too_large"

    def __init__(self, chars: int, limit: int = MAX_QR_CHARS) -> None:
        super().__init__(
            f"the signed prescription needs {chars} QR characters but a printable QR holds at most {limit} "
            f"(version {MAX_QR_VERSION}, level M); shorten instructions or split the prescription"
        )
        self.chars = chars
        self.limit = limit


def canonical_bytes(content: PrescriptionContent) -> bytes:
    """Deterministic CBOR of the content (RFC 8949 §4.2.1): the exact bytes that are hashed and signed."""
    wire = _to_wire(content)
    assert isinstance(wire, dict)
    wire[_VERSION_KEY] = FORMAT_VERSION
    return cose.dumps_canonical(wire)


def decode_content(data: bytes) -> PrescriptionContent:
    """The content from its canonical bytes.

    Raises:
        PayloadError: not CBOR, an unknown content version, or fields that fail validation.
    """
    try:
        wire = cose.loads_exact(data)
    except cose.CoseError as exc:
        raise PayloadError(exc.message) from exc
    if not isinstance(wire, dict) or wire.get(_VERSION_KEY) != FORMAT_VERSION:
        raise PayloadError(f"content format version {wire.get(_VERSION_KEY) if isinstance(wire, dict) else None}")
    try:
        return PrescriptionContent.model_validate(_from_wire(PrescriptionContent, wire, ""))
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise PayloadError(f"{'.'.join(map(str, problem['loc'])) or 'content'}: {problem['msg']}") from exc


def content_hash(content: PrescriptionContent) -> str:
    """SHA-256 (hex) of `canonical_bytes`: the ``signature_hash`` stored with a signed prescription."""
    return hashlib.sha256(canonical_bytes(content)).hexdigest()


@dataclass(frozen=True)
class SignedPrescription:
    """A signed prescription.

    Attributes:
        content: what was signed.
        content_hash: SHA-256 hex of the canonical content.
        signature: the 64-byte Ed25519 signature (over the COSE Sig_structure).
        cose_bytes: the COSE_Sign1 message, certificates included.
        qr_payload: the QR text (``IMRX1:...``).
    """

    content: PrescriptionContent
    content_hash: str
    signature: bytes
    cose_bytes: bytes
    qr_payload: str


def encode_qr_payload(cose_bytes: bytes, *, limit: int | None = MAX_QR_CHARS) -> str:
    """QR text for a COSE_Sign1 message: ``IMRX1:`` + base45(zlib level 9 with the IMRX1 dictionary).

    Raises:
        PayloadTooLarge: longer than ``limit`` characters (pass ``None`` for no limit).
    """
    deflater = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, IMRX1_ZDICT)
    compressed = deflater.compress(cose_bytes) + deflater.flush()
    text = PREFIX + bytes(base45.b45encode(compressed)).decode("ascii")
    if limit is not None and len(text) > limit:
        raise PayloadTooLarge(len(text), limit)
    return text


def decode_qr_payload(text: str) -> bytes:
    """The COSE_Sign1 bytes inside QR text.

    Raises:
        VerificationError: ``UNSUPPORTED_VERSION`` (another IMRX version) or ``MALFORMED``.
    """
    text = text.strip()
    match = _PREFIX_PATTERN.match(text)
    if match is None:
        raise VerificationError(Reason.MALFORMED, "this is not an IntegMed prescription QR (no IMRX1: prefix)")
    if match.group(0) != PREFIX:
        raise VerificationError(
            Reason.UNSUPPORTED_VERSION,
            f"prescription format IMRX{match.group(1)} is not supported by this verifier; update IntegMed",
        )
    try:
        compressed = base45.b45decode(text[len(PREFIX) :])
        inflater = zlib.decompressobj(15, IMRX1_ZDICT)
        data = inflater.decompress(compressed, MAX_INFLATED)
        if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
            raise ValueError("incomplete or oversized data")
    except (ValueError, zlib.error) as exc:
        raise VerificationError(
            Reason.MALFORMED, f"the QR data is damaged or incomplete ({exc}); scan it again"
        ) from exc
    return data


def sign_prescription(
    content: PrescriptionContent,
    doctor_private_key: keys.Ed25519PrivateKey,
    doctor_cert: bytes,
    issuer_cert: bytes | None,
    *,
    limit: int | None = MAX_QR_CHARS,
) -> SignedPrescription:
    """Sign ``content`` with the doctor's key and build the QR payload.

    Args:
        content: the prescription.
        doctor_private_key: the doctor's Ed25519 key; its public half must be the one ``doctor_cert`` certifies.
        doctor_cert: the doctor's certificate (carried in the QR).
        issuer_cert: the issuer's certificate (carried in the QR so that any verifier holding only the root
            can check the chain), or ``None`` for a compact QR that only verifiers which learned the issuer
            can check.
        limit: QR character budget; ``None`` disables the check.

    Raises:
        ValueError: the doctor certificate is for another key.
        PayloadTooLarge: the QR text would exceed ``limit``.
    """
    doctor = parse_certificate(doctor_cert)
    if doctor.claims.public_key != keys.public_key_bytes(doctor_private_key):
        raise ValueError("the doctor certificate certifies a different key than the one signing")
    chain: list[cose.HeaderValue] = [doctor_cert] if issuer_cert is None else [doctor_cert, issuer_cert]
    payload = canonical_bytes(content)
    message = cose.sign1(
        payload, doctor_private_key, kid=keys.kid_bytes(doctor_private_key), unprotected={HEADER_CHAIN: chain}
    )
    return SignedPrescription(
        content=content,
        content_hash=hashlib.sha256(payload).hexdigest(),
        signature=cose.decode_sign1(message).signature,
        cose_bytes=message,
        qr_payload=encode_qr_payload(message, limit=limit),
    )


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying a prescription QR.

    Attributes:
        valid: True only when every check passed.
        reason: `Reason.VALID` or the first check that failed.
        message: one sentence for the pharmacist.
        content: the prescription, when its signature was checked (also on expiry or revocation).
        doctor: the doctor's certified claims, when known.
        issuer: the issuer's certified claims, when known.
        root_name: the trusted root the chain ends at.
        signed_at: the signing instant (``content.issued_at``).
        sandbox: the chain ends at the public sandbox root: a test prescription, not for dispensing.
        content_hash: SHA-256 hex of the signed content.
        notes: further facts the pharmacist should see (e.g. a key revoked after this was signed).
    """

    valid: bool
    reason: Reason
    message: str
    content: PrescriptionContent | None = None
    doctor: CertificateClaims | None = None
    issuer: CertificateClaims | None = None
    root_name: str | None = None
    signed_at: datetime | None = None
    sandbox: bool = False
    content_hash: str | None = None
    notes: tuple[str, ...] = field(default=())


def _invalid(reason: Reason, message: str, **known: Any) -> Verification:
    return Verification(valid=False, reason=reason, message=message, **known)


def _certificates(message: cose.Sign1) -> tuple[bytes, bytes | None]:
    chain = message.unprotected.get(HEADER_CHAIN)
    if not isinstance(chain, list) or not 1 <= len(chain) <= 2 or not all(isinstance(c, bytes) for c in chain):
        raise VerificationError(Reason.UNKNOWN_KEY, "the QR carries no doctor certificate")
    doctor = chain[0]
    issuer = chain[1] if len(chain) == 2 else None
    assert isinstance(doctor, bytes)
    assert issuer is None or isinstance(issuer, bytes)
    return doctor, issuer


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _revocation_check(
    chain: Chain, signed_at: datetime, lists: Sequence[RevocationList]
) -> tuple[VerificationError | None, tuple[str, ...]]:
    notes: list[str] = []
    for label, cert in (("doctor's", chain.doctor), ("issuing", chain.issuer)):
        hit = find_revocation(lists, cert, chain, signed_at)
        if hit is None:
            continue
        entry, in_force = hit
        if in_force:
            reason = f" ({entry.reason})" if entry.reason else ""
            return VerificationError(
                Reason.REVOKED_KEY,
                f"the {label} key was revoked on {_when(entry.revoked_at)}{reason}, before this prescription "
                f"was signed ({_when(signed_at)})",
            ), ()
        notes.append(
            f"The {label} key was revoked on {_when(entry.revoked_at)}, after this prescription was signed; "
            "the prescription stays valid."
        )
    return None, tuple(notes)


def _check_signature(text: str) -> tuple[cose.Sign1, bytes, bytes | None]:
    try:
        message = cose.decode_sign1(decode_qr_payload(text))
    except cose.CoseError as exc:
        if exc.unsupported:
            raise VerificationError(Reason.UNSUPPORTED_ALGORITHM, f"unsupported signature: {exc.message}") from exc
        raise VerificationError(Reason.MALFORMED, f"the QR data is not a signed prescription: {exc.message}") from exc
    doctor_raw, issuer_raw = _certificates(message)
    doctor = parse_certificate(doctor_raw)
    if message.kid is None or message.kid != keys.kid_bytes(doctor.claims.public_key):
        raise VerificationError(
            Reason.CERTIFICATE_MISMATCH, "the doctor certificate in the QR is not the one for the signing key"
        )
    try:
        cose.verify_sign1(message, keys.public_key_from_bytes(doctor.claims.public_key))
    except cose.BadSignature as exc:
        raise VerificationError(
            Reason.BAD_SIGNATURE, "the prescription has been altered: its signature does not match"
        ) from exc
    return message, doctor_raw, issuer_raw


def verify_qr_payload(
    text: str,
    trust: TrustStore,
    revocations: RevocationList | Iterable[RevocationList] | None = None,
    now: datetime | None = None,
) -> Verification:
    """Verify QR text offline.

    Args:
        text: the QR text (``IMRX1:...``).
        trust: trusted roots (and learned issuers).
        revocations: checked revocation lists (see `parse_revocation_list`), if any are held.
        now: the verification instant (default: the current time).

    Returns:
        The outcome; never raises for bad input.
    """
    now = now or datetime.now(UTC)
    lists = [revocations] if isinstance(revocations, RevocationList) else list(revocations or ())
    try:
        message, doctor_raw, issuer_raw = _check_signature(text)
    except VerificationError as exc:
        return _invalid(exc.reason, exc.message)
    digest = hashlib.sha256(message.payload).hexdigest()
    try:
        content = decode_content(message.payload)
    except PayloadError as exc:
        return _invalid(Reason.MALFORMED, f"the signed content is not a readable prescription: {exc.message}")
    known: dict[str, Any] = {"content": content, "signed_at": content.issued_at, "content_hash": digest}
    try:
        chain = validate_chain(doctor_raw, issuer_raw, trust, at=content.issued_at)
    except VerificationError as exc:
        return _invalid(exc.reason, exc.message, **known)
    known.update(
        doctor=chain.doctor.claims, issuer=chain.issuer.claims, root_name=chain.root.name, sandbox=chain.root.sandbox
    )
    revoked, notes = _revocation_check(chain, content.issued_at, lists)
    if revoked is not None:
        return _invalid(revoked.reason, revoked.message, **known)
    if now < content.issued_at - CLOCK_SKEW:
        return _invalid(
            Reason.NOT_YET_VALID, f"the prescription is dated {_when(content.issued_at)}, in the future", **known
        )
    if now >= content.expires_at:
        return _invalid(
            Reason.EXPIRED, f"the prescription expired on {_when(content.expires_at)}; do not dispense", **known
        )
    message_text = "signature, doctor certificate and issuer all check out"
    if chain.root.sandbox:
        message_text += "; signed under the SANDBOX root: a test prescription, not for dispensing"
    return Verification(valid=True, reason=Reason.VALID, message=message_text, notes=notes, **known)


def content_from_mapping(data: Mapping[str, Any]) -> PrescriptionContent:
    """Build the content from plain data (JSON-like); a convenience for servers and tests.

    Raises:
        pydantic.ValidationError: invalid fields.
    """
    return PrescriptionContent.model_validate(data)
