"""Signed status events of a signed prescription: the payload codec, signing, and offline verification.

A signed prescription's content never changes (P4); what happens to it afterwards is a new, signed, monotonic
record: ``dispensed`` (once, by a pharmacy's doctor account on the server), ``cancelled`` or ``superseded``
(terminal; only the prescriber). The signature covers, as deterministic CBOR, a map naming the signed content
it is about by its hash::

    {1: rx id (16 bytes), 2: content hash (32 bytes), 3: seq (int >= 1), 4: status (text),
     5: reason (text, 1-500 chars), 6: at (epoch seconds, UTC), 7: signer kid (text)}

signed COSE_Sign1 Ed25519 with the signer's key id in the protected header. The server
(`sync_server.services.signing.record_status`) and a doctor's PC (`desktop.services.rx_status`) write the
same bytes through `encode_event`; any holder of the signer's certificate verifies one with `verify_event`,
offline, like a prescription's QR.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from shared.errors import DomainError
from shared.signing import cose, keys
from shared.signing.certs import Certificate, parse_certificate, validate_chain
from shared.signing.errors import Reason, VerificationError
from shared.signing.revocation import RevocationList, find_revocation
from shared.signing.trust import TrustStore

EventStatus = Literal["dispensed", "cancelled", "superseded"]
STATUSES: tuple[EventStatus, ...] = ("dispensed", "cancelled", "superseded")
TERMINAL: tuple[EventStatus, ...] = ("cancelled", "superseded")
"""Nothing may follow one of these."""
MAX_REASON = 500


class StatusEventError(DomainError):
    """A status event's payload is not a well-formed event (the message names the part)."""

    code = "signing.status_event_malformed"


@dataclass(frozen=True)
class StatusEvent:
    """One status event as signed. ``at`` is UTC with whole seconds (what the payload holds)."""

    rx_id: uuid.UUID
    content_hash: str
    seq: int
    status: EventStatus
    reason: str
    at: datetime
    kid: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise StatusEventError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 1:
            raise StatusEventError("seq must be a whole number from 1")
        if not isinstance(self.reason, str) or not 1 <= len(self.reason) <= MAX_REASON:
            raise StatusEventError(f"the reason must be 1 to {MAX_REASON} characters")
        try:
            digest = bytes.fromhex(self.content_hash)
        except (TypeError, ValueError):
            digest = b""
        if len(digest) != 32 or self.content_hash != digest.hex():
            raise StatusEventError("content_hash must be 64 lowercase hex characters (SHA-256)")
        if self.at.tzinfo is None:
            raise StatusEventError("at must carry a time zone")
        if not isinstance(self.kid, str) or not 1 <= len(self.kid) <= 100:
            raise StatusEventError("kid must be a key id text")
        object.__setattr__(self, "at", self.at.astimezone(UTC).replace(microsecond=0))


def encode_event(event: StatusEvent) -> bytes:
    """The payload a status event's signature covers (deterministic CBOR)."""
    return cose.dumps_canonical(
        {
            1: event.rx_id.bytes,
            2: bytes.fromhex(event.content_hash),
            3: event.seq,
            4: event.status,
            5: event.reason,
            6: int(event.at.timestamp()),
            7: event.kid,
        }
    )


def decode_event(payload: bytes) -> StatusEvent:
    """Read a payload `encode_event` wrote; refuses anything else (extra keys, wrong types, non-canonical).

    Raises:
        StatusEventError: with the part that is wrong.
    """
    try:
        value = cose.loads_exact(payload)
    except cose.CoseError as exc:
        raise StatusEventError(f"not CBOR: {exc.message}") from exc
    if not isinstance(value, dict) or set(value) != {1, 2, 3, 4, 5, 6, 7}:
        raise StatusEventError("a status event is a map with the keys 1 to 7")
    rx, digest, seq, status, reason, at, kid = (value[k] for k in range(1, 8))
    if not isinstance(rx, bytes) or len(rx) != 16:
        raise StatusEventError("1 (rx id) must be 16 bytes")
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise StatusEventError("2 (content hash) must be 32 bytes")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise StatusEventError("3 (seq) must be an integer")
    if not isinstance(status, str) or status not in STATUSES:
        raise StatusEventError(f"4 (status) must be one of {', '.join(STATUSES)}")
    if not isinstance(reason, str) or not isinstance(kid, str):
        raise StatusEventError("5 (reason) and 7 (kid) must be text")
    if not isinstance(at, int) or isinstance(at, bool):
        raise StatusEventError("6 (at) must be whole epoch seconds")
    try:
        when = datetime.fromtimestamp(at, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise StatusEventError("6 (at) is out of range") from exc
    event = StatusEvent(uuid.UUID(bytes=rx), digest.hex(), seq, status, reason, when, kid)
    if encode_event(event) != payload:
        raise StatusEventError("the payload is not in canonical form")
    return event


def sign_event(event: StatusEvent, private_key: keys.Ed25519PrivateKey) -> bytes:
    """The COSE_Sign1 bytes of ``event`` signed with ``private_key`` (its kid must be the event's kid)."""
    if keys.key_id(private_key) != event.kid:
        raise StatusEventError("the event's kid is not the signing key's")
    return cose.sign1(encode_event(event), private_key, kid=keys.kid_bytes(private_key))


def read_event(cose_bytes: bytes) -> StatusEvent:
    """The event inside signed bytes, without checking the signature (to show or route it).

    Raises:
        StatusEventError: malformed COSE or payload.
    """
    try:
        message = cose.decode_sign1(cose_bytes)
    except cose.CoseError as exc:
        raise StatusEventError(f"not a signed status event: {exc.message}") from exc
    return decode_event(message.payload)


def verify_event(
    cose_bytes: bytes,
    *,
    rx_id: uuid.UUID,
    content_hash: str,
    doctor_certificate: Certificate | bytes,
    issuer_certificate: Certificate | bytes | None,
    trust: TrustStore,
    revocations: Iterable[RevocationList] = (),
) -> StatusEvent:
    """Verify a signed status event offline: signature, signer certificate chain, and what it is about.

    Args:
        cose_bytes: the COSE_Sign1 bytes.
        rx_id: the prescription it must be about.
        content_hash: the hex hash of that prescription's signed content.
        doctor_certificate: the signer's certificate (its key must be the event's key).
        issuer_certificate: the issuing key's certificate, or ``None`` to look it up in ``trust``.
        trust: trusted roots (and learned issuers).
        revocations: checked revocation lists; a key revoked before the event's time refuses it.

    Returns:
        The verified event.

    Raises:
        VerificationError: ``malformed``, ``unsupported_algorithm``, ``certificate_mismatch``,
            ``bad_signature``, a chain reason (``untrusted_root``, ``certificate_expired`` …), ``revoked_key``;
            ``bad_signature`` also when the event is about another prescription or other content.
    """
    try:
        message = cose.decode_sign1(cose_bytes)
    except cose.CoseError as exc:
        reason = Reason.UNSUPPORTED_ALGORITHM if exc.unsupported else Reason.MALFORMED
        raise VerificationError(reason, f"not a signed status event: {exc.message}") from exc
    try:
        event = decode_event(message.payload)
    except StatusEventError as exc:
        raise VerificationError(Reason.MALFORMED, f"not a status event: {exc.message}") from exc
    doctor = (
        doctor_certificate if isinstance(doctor_certificate, Certificate) else parse_certificate(doctor_certificate)
    )
    if message.kid is None or message.kid != keys.kid_bytes(doctor.claims.public_key) or event.kid != doctor.kid:
        raise VerificationError(Reason.CERTIFICATE_MISMATCH, "the event was not signed with this certificate's key")
    try:
        cose.verify_sign1(message, keys.public_key_from_bytes(doctor.claims.public_key))
    except cose.BadSignature as exc:
        raise VerificationError(
            Reason.BAD_SIGNATURE, "the status event has been altered: its signature does not match"
        ) from exc
    if event.rx_id != rx_id:
        raise VerificationError(Reason.BAD_SIGNATURE, "the status event is about another prescription")
    if event.content_hash != content_hash:
        raise VerificationError(Reason.BAD_SIGNATURE, "the status event is about other content than the signed one")
    chain = validate_chain(doctor, issuer_certificate, trust, at=event.at)
    lists = list(revocations)
    for label, cert in (("signer's", chain.doctor), ("issuing", chain.issuer)):
        hit = find_revocation(lists, cert, chain, event.at)
        if hit is not None and hit[1]:
            raise VerificationError(Reason.REVOKED_KEY, f"the {label} key was revoked before this status event")
    return event
