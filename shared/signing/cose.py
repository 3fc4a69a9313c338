"""COSE_Sign1 (RFC 9052 §4.2) with EdDSA over Ed25519, written directly on cbor2.

Message: CBOR tag 18 over ``[protected: bstr, unprotected: map, payload: bstr, signature: bstr]``. The protected
header is the deterministic CBOR of ``{1: -8}`` (alg EdDSA) plus ``{4: kid}`` when a key id is given. The
signature is Ed25519 over the deterministic CBOR of the Sig_structure
``["Signature1", protected, external_aad = b"", payload]`` (RFC 9052 §4.4).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import DomainError

COSE_SIGN1_TAG = 18
HEADER_ALG = 1
HEADER_KID = 4
ALG_EDDSA = -8
SIGNATURE_SIZE = 64
MAX_MESSAGE_SIZE = 1 << 20  # refuse to parse anything larger: a QR holds under 3 KB
MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z: Python's datetime cannot hold a later NumericDate

HeaderValue = int | str | bytes | list["HeaderValue"]
"""What our headers may hold: numbers, text, bytes (kids, certificates) or lists of those."""


class CoseError(DomainError):
    """The bytes are not a COSE_Sign1 message we can read (malformed or an unsupported algorithm).

    Args:
        message: what is wrong, for logs and the verifier's output.
        unsupported: the structure is fine but the algorithm is not EdDSA.
    """

    code = "signing.cose_malformed"

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


class BadSignature(DomainError):
    """The signature does not verify under the given key."""

    code = "signing.bad_signature"


@dataclass(frozen=True)
class Sign1:
    """A decoded COSE_Sign1 message.

    Attributes:
        protected: the protected header exactly as signed (bytes).
        unprotected: the unprotected header map (integer labels).
        payload: the signed payload bytes.
        signature: the 64-byte Ed25519 signature.
        kid: the key id from the protected header, or ``None`` when it has none.
    """

    protected: bytes
    unprotected: Mapping[int, HeaderValue]
    payload: bytes
    signature: bytes
    kid: bytes | None = field(default=None)

    def to_be_signed(self) -> bytes:
        """The Sig_structure bytes the signature covers."""
        return sig_structure(self.protected, self.payload)


def loads_exact(data: bytes) -> object:
    """Decode exactly one CBOR item filling all of ``data``.

    Raises:
        CoseError: not CBOR, or bytes left over after the item (a smuggled suffix must not verify).
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise CoseError(f"{len(data)} bytes is too large")
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises several types (CBORDecodeError, ValueError, OverflowError, ...)
        raise CoseError(f"not valid CBOR: {exc}") from exc
    if stream.tell() != len(data):
        raise CoseError(f"{len(data) - stream.tell()} unexpected bytes after the CBOR item")
    return _thaw(value)


def _thaw(value: object) -> object:
    # cbor2 decodes the contents of a tag as immutable types (tuple, frozendict); give callers one shape.
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, _thaw(value.value))
    if isinstance(value, list | tuple):
        return [_thaw(item) for item in value]
    if isinstance(value, Mapping):
        try:
            return {key: _thaw(item) for key, item in value.items()}
        except TypeError as exc:  # an unhashable (list) map key
            raise CoseError("a CBOR map has an array as a key") from exc
    return value


def dumps_canonical(value: object) -> bytes:
    """Deterministic CBOR (RFC 8949 §4.2.1: shortest forms, map keys sorted by their encoding)."""
    return cbor2.dumps(value, canonical=True)


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The COSE Sig_structure for a COSE_Sign1 message (RFC 9052 §4.4)."""
    return dumps_canonical(["Signature1", protected, external_aad, payload])


def protected_header(kid: bytes | None) -> bytes:
    """The protected header bytes: ``{1: -8}`` plus ``{4: kid}`` when ``kid`` is given."""
    header: dict[int, int | bytes] = {HEADER_ALG: ALG_EDDSA}
    if kid is not None:
        header[HEADER_KID] = kid
    return dumps_canonical(header)


def sign1(
    payload: bytes,
    private_key: Ed25519PrivateKey,
    *,
    kid: bytes | None,
    unprotected: Mapping[int, HeaderValue] | None = None,
) -> bytes:
    """Sign ``payload`` and return the tagged COSE_Sign1 message bytes.

    Args:
        payload: the bytes to sign (usually deterministic CBOR).
        private_key: the signer's Ed25519 key.
        kid: the signer's 8-byte key id for the protected header, or ``None`` to leave it out.
        unprotected: extra unprotected header entries (e.g. certificates); not covered by the signature.

    Returns:
        ``tag(18, [protected, unprotected, payload, signature])`` in deterministic CBOR.
    """
    protected = protected_header(kid)
    signature = private_key.sign(sig_structure(protected, payload))
    message = [protected, dict(unprotected or {}), payload, signature]
    return dumps_canonical(cbor2.CBORTag(COSE_SIGN1_TAG, message))


def decode_sign1(data: bytes) -> Sign1:
    """Parse COSE_Sign1 bytes (tagged or untagged) without checking the signature.

    Raises:
        CoseError: malformed, or an algorithm other than EdDSA (``unsupported=True``).
    """
    value = loads_exact(data)
    if isinstance(value, cbor2.CBORTag):
        if value.tag != COSE_SIGN1_TAG:
            raise CoseError(f"CBOR tag {value.tag} is not COSE_Sign1 (18)")
        value = value.value
    if not isinstance(value, list) or len(value) != 4:
        raise CoseError("a COSE_Sign1 message is an array of 4 items")
    protected, unprotected, payload, signature = value
    if not isinstance(protected, bytes) or not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise CoseError("protected header, payload and signature must be byte strings")
    if not isinstance(unprotected, dict) or not all(isinstance(k, int) for k in unprotected):
        raise CoseError("the unprotected header must be a map with integer labels")
    if len(signature) != SIGNATURE_SIZE:
        raise CoseError(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes, not {len(signature)}")
    header = loads_exact(protected) if protected else {}
    if not isinstance(header, dict):
        raise CoseError("the protected header must be a map")
    if header.get(HEADER_ALG) != ALG_EDDSA:
        raise CoseError(f"algorithm {header.get(HEADER_ALG)!r} is not EdDSA (-8)", unsupported=True)
    kid = header.get(HEADER_KID)
    if kid is not None and not isinstance(kid, bytes):
        raise CoseError("the key id must be a byte string")
    return Sign1(protected=protected, unprotected=unprotected, payload=payload, signature=signature, kid=kid)


def verify_sign1(message: Sign1, public_key: Ed25519PublicKey) -> None:
    """Check the message's signature under ``public_key``.

    Raises:
        BadSignature: the signature does not match the protected header and payload.
    """
    try:
        public_key.verify(message.signature, message.to_be_signed())
    except InvalidSignature as exc:
        raise BadSignature("the signature does not match the signed content") from exc
