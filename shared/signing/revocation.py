"""Signed revocation lists of doctor and issuer keys.

Payload (deterministic CBOR map): ``{1: sequence, 2: issued_at, 3: next_update, 4: [{1: kid (8 bytes),
2: revoked_at, 3: reason?}, ...]}``, times as NumericDate seconds. It is the payload of a COSE_Sign1 signed by
a root (which may revoke any key) or by an issuer (which may revoke the doctor keys it certified, and itself);
an issuer-signed list carries the issuer's certificate in the unprotected header (label -70001).

A signature made at or after ``revoked_at`` is invalid; one made before stays valid (the verifier says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.signing import cose, keys
from shared.signing.certs import Certificate, Role, parse_certificate, verify_certificate
from shared.signing.errors import Reason, VerificationError

if TYPE_CHECKING:
    from shared.signing.certs import Chain
    from shared.signing.trust import TrustStore

HEADER_SIGNER_CERT = -70001
_SEQ, _ISSUED, _NEXT, _ENTRIES = 1, 2, 3, 4
_KID, _AT, _REASON = 1, 2, 3


@dataclass(frozen=True)
class RevokedKey:
    """One revoked key.

    Attributes:
        kid: the revoked key's id (base64url).
        revoked_at: signatures made at or after this instant are invalid.
        reason: why, in words (e.g. "key compromised", "doctor left the clinic"), optional.
    """

    kid: str
    revoked_at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class RevocationList:
    """A checked revocation list.

    Attributes:
        sequence: increases with every list its signer publishes; a cache keeps the highest.
        issued_at, next_update: when it was made and when a fresher one is due.
        entries: the revoked keys.
        signer_kid: key id of the root or issuer that signed it.
        signer_role: `Role.ROOT` or `Role.ISSUER`.
        raw: the signed bytes as received (to cache).
    """

    sequence: int
    issued_at: datetime
    next_update: datetime
    entries: tuple[RevokedKey, ...]
    signer_kid: str
    signer_role: Role
    raw: bytes

    def entry(self, kid: str) -> RevokedKey | None:
        """The entry for ``kid`` whatever its date, if listed."""
        return next((e for e in self.entries if e.kid == kid), None)

    def revoked(self, kid: str, at: datetime) -> RevokedKey | None:
        """The entry revoking ``kid`` for a signature made at ``at`` (at or after ``revoked_at``), else None."""
        found = self.entry(kid)
        return found if found is not None and at >= found.revoked_at else None

    def applies_to(self, cert: Certificate, root_kid: str) -> bool:
        """Whether this list's signer has authority over ``cert``'s key (chain root, its issuer, or itself)."""
        if self.signer_role is Role.ROOT:
            return self.signer_kid == root_kid
        return self.signer_kid in (cert.issuer_kid, cert.kid)


def _seconds(value: datetime) -> int:
    return int(value.timestamp())


def issue_revocation_list(
    entries: Iterable[RevokedKey],
    signer_private_key: keys.Ed25519PrivateKey,
    *,
    sequence: int,
    issued_at: datetime,
    next_update: datetime,
    signer_cert: bytes | None = None,
) -> bytes:
    """Sign a revocation list.

    Args:
        entries: the revoked keys.
        signer_private_key: a root's key, or an issuer's key (then pass ``signer_cert``).
        sequence: greater than the signer's previous list.
        issued_at, next_update: the list's issue time and when the next one is due.
        signer_cert: the issuer's certificate when an issuer signs; ``None`` for a root.

    Returns:
        COSE_Sign1 bytes.
    """
    body = {
        _SEQ: sequence,
        _ISSUED: _seconds(issued_at),
        _NEXT: _seconds(next_update),
        _ENTRIES: [
            {_KID: keys.b64url_decode(e.kid), _AT: _seconds(e.revoked_at)} | ({_REASON: e.reason} if e.reason else {})
            for e in entries
        ],
    }
    unprotected: dict[int, cose.HeaderValue] = {} if signer_cert is None else {HEADER_SIGNER_CERT: signer_cert}
    return cose.sign1(
        cose.dumps_canonical(body), signer_private_key, kid=keys.kid_bytes(signer_private_key), unprotected=unprotected
    )


def _malformed(message: str) -> VerificationError:
    return VerificationError(Reason.MALFORMED, f"revocation list: {message}")


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= cose.MAX_NUMERIC_DATE:
        raise _malformed(f"{what} is not a date")
    return datetime.fromtimestamp(value, UTC)


def _entries(raw: object) -> tuple[RevokedKey, ...]:
    if not isinstance(raw, list):
        raise _malformed("entries is not a list")
    found = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get(_KID), bytes):
            raise _malformed("an entry has no key id")
        reason = item.get(_REASON)
        if reason is not None and not isinstance(reason, str):
            raise _malformed("an entry's reason is not text")
        found.append(RevokedKey(keys.kid_text(item[_KID]), _time(item.get(_AT), "revoked_at"), reason))
    return tuple(found)


def _signer(message: cose.Sign1, trust: TrustStore, at: datetime) -> tuple[bytes, Role]:
    if message.kid is None:
        raise _malformed("no signer key id")
    kid = keys.kid_text(message.kid)
    root = trust.root(kid)
    if root is not None:
        return root.public_key, Role.ROOT
    cert_bytes = message.unprotected.get(HEADER_SIGNER_CERT)
    cert = parse_certificate(cert_bytes) if isinstance(cert_bytes, bytes) else trust.issuer(kid)
    if cert is None or cert.kid != kid:
        raise VerificationError(Reason.UNKNOWN_KEY, f"revocation list signed by unknown key {kid}")
    issuer_root = trust.root(cert.issuer_kid)
    if issuer_root is None:
        raise VerificationError(Reason.UNTRUSTED_ROOT, "revocation list signer is not certified by a trusted root")
    verify_certificate(cert, issuer_root.public_key, role=Role.ISSUER, at=at)
    return cert.claims.public_key, Role.ISSUER


def parse_revocation_list(data: bytes, trust: TrustStore) -> RevocationList:
    """Parse and check a signed revocation list.

    Args:
        data: COSE_Sign1 bytes from `issue_revocation_list`.
        trust: trusted roots (and learned issuers).

    Raises:
        VerificationError: malformed, unknown or untrusted signer, or a bad signature.
    """
    try:
        message = cose.decode_sign1(data)
        body = cose.loads_exact(message.payload)
    except cose.CoseError as exc:
        raise _malformed(exc.message) from exc
    if not isinstance(body, Mapping) or not isinstance(body.get(_SEQ), int):
        raise _malformed("no sequence number")
    issued_at = _time(body.get(_ISSUED), "issued_at")
    public_key, role = _signer(message, trust, issued_at)
    try:
        cose.verify_sign1(message, keys.public_key_from_bytes(public_key))
    except cose.BadSignature as exc:
        raise VerificationError(Reason.BAD_SIGNATURE, "the revocation list has been altered") from exc
    return RevocationList(
        sequence=body[_SEQ],
        issued_at=issued_at,
        next_update=_time(body.get(_NEXT), "next_update"),
        entries=_entries(body.get(_ENTRIES)),
        signer_kid=keys.kid_text(message.kid or b""),
        signer_role=role,
        raw=data,
    )


def find_revocation(
    lists: Sequence[RevocationList], cert: Certificate, chain: Chain, signed_at: datetime
) -> tuple[RevokedKey, bool] | None:
    """The revocation of ``cert``'s key in ``lists`` (signers with authority over it only), if any.

    Returns:
        ``(entry, in_force)`` where ``in_force`` says the signature at ``signed_at`` is hit (made at or after
        the revocation); ``None`` when no list revokes the key. An entry in force wins over one that is not.
    """
    best: tuple[RevokedKey, bool] | None = None
    for revocation_list in lists:
        if not revocation_list.applies_to(cert, chain.root.kid):
            continue
        entry = revocation_list.entry(cert.kid)
        if entry is None:
            continue
        in_force = signed_at >= entry.revoked_at
        if best is None or (in_force and not best[1]):
            best = (entry, in_force)
    return best
