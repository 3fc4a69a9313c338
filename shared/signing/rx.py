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
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import base45

from shared.errors import DomainError
from shared.signing import cose, keys
from shared.signing.certs import CertificateClaims, Chain, parse_certificate, validate_chain
from shared.signing.content import (
    FORMAT_VERSION,
    AyushItem,
    Clinic,
    Diagnosis,
    Medicine,
    Patient,
    PayloadError,
    PrescriptionContent,
    canonical_bytes,
    content_from_mapping,
    content_hash,
    decode_content,
)
from shared.signing.errors import Reason, VerificationError
from shared.signing.revocation import RevocationList, find_revocation
from shared.signing.trust import TrustStore
from shared.signing.zdict import IMRX1_ZDICT

__all__ = [  # the content model lives in shared.signing.content; re-exported so callers need one import
    "CLOCK_SKEW",
    "FORMAT_VERSION",
    "HEADER_CHAIN",
    "MAX_QR_CHARS",
    "MAX_QR_VERSION",
    "PREFIX",
    "QR_ALNUM_CAPACITY_M",
    "AyushItem",
    "Clinic",
    "Diagnosis",
    "Medicine",
    "Patient",
    "PayloadError",
    "PayloadTooLarge",
    "PrescriptionContent",
    "RevocationList",
    "SignedPrescription",
    "Verification",
    "canonical_bytes",
    "certificates_of",
    "content_from_mapping",
    "content_hash",
    "decode_content",
    "decode_qr_payload",
    "encode_qr_payload",
    "qr_version",
    "sign_prescription",
    "verify_qr_payload",
]

PREFIX = "IMRX1:"
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


def qr_version(text: str) -> int:
    """The smallest QR version (level M, alphanumeric mode) that holds ``text``; 41 when none does."""
    return next((v for v, cap in enumerate(QR_ALNUM_CAPACITY_M, start=1) if len(text) <= cap), 41)


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
        standing: what the verifier knows happened to it after signing (`shared.signing.standing`), if anything.
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
    standing: Standing | None = None


@dataclass(frozen=True)
class Standing:
    """The latest signed status event a verifier holds for a prescription (see `shared.signing.standing`).

    Attributes:
        status: ``dispensed``, ``cancelled`` or ``superseded``.
        at: when the event was signed (UTC, whole seconds).
        reason: the signer's reason or note, as signed.
        seq: the event's number in the prescription's sequence (1, 2, ...).
        known_from: where the verifier learnt it ("this PC", "the IntegMed server").
    """

    status: str
    at: datetime
    reason: str
    seq: int
    known_from: str


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


def certificates_of(cose_bytes: bytes) -> tuple[bytes, bytes | None]:
    """The doctor's and the issuer's certificates a signed prescription carries (signature not checked).

    Raises:
        VerificationError: malformed, or no doctor certificate.
    """
    try:
        return _certificates(cose.decode_sign1(cose_bytes))
    except cose.CoseError as exc:
        raise VerificationError(Reason.MALFORMED, f"not a signed prescription: {exc.message}") from exc


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
