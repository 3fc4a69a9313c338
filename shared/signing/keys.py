"""Ed25519 keys: generation, raw 32-byte and PEM encodings, and the short key id used everywhere.

A key id (``kid``) is the first 8 bytes of SHA-256 over the raw 32-byte public key. On the wire (COSE headers,
revocation entries) it travels as those 8 bytes; for people and file names it is written base64url without
padding (11 characters), see `key_id`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import DomainError

KEY_SIZE = 32
KID_SIZE = 8

__all__ = [
    "KEY_SIZE",
    "KID_SIZE",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "KeyFormatError",
    "b64url_decode",
    "b64url_encode",
    "generate_private_key",
    "key_id",
    "kid_bytes",
    "kid_text",
    "private_key_from_bytes",
    "private_key_from_pem",
    "private_key_to_bytes",
    "private_key_to_pem",
    "public_key_bytes",
    "public_key_from_bytes",
    "public_key_from_pem",
    "public_key_to_pem",
]


class KeyFormatError(DomainError):
    """Key bytes or PEM text that are not an Ed25519 key."""

    code = "signing.key_format"


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of `b64url_encode`; padding optional.

    Raises:
        KeyFormatError: the text is not base64url.
    """
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"not base64url: {text!r}") from exc


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key from the operating system's random source."""
    return Ed25519PrivateKey.generate()


def private_key_to_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte private key (the RFC 8032 seed)."""
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def private_key_from_bytes(data: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from its raw 32 bytes.

    Raises:
        KeyFormatError: not 32 bytes.
    """
    if len(data) != KEY_SIZE:
        raise KeyFormatError(f"an Ed25519 private key is {KEY_SIZE} bytes, not {len(data)}")
    return Ed25519PrivateKey.from_private_bytes(data)


def public_key_bytes(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of a public or private key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its raw 32 bytes.

    Raises:
        KeyFormatError: not 32 bytes or not a valid point encoding.
    """
    if len(data) != KEY_SIZE:
        raise KeyFormatError(f"an Ed25519 public key is {KEY_SIZE} bytes, not {len(data)}")
    try:
        return Ed25519PublicKey.from_public_bytes(data)
    except ValueError as exc:  # pragma: no cover - cryptography accepts any 32 bytes today
        raise KeyFormatError(f"not an Ed25519 public key: {exc}") from exc


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (callers keep it in the OS keyring or an offline medium)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from unencrypted PKCS#8 PEM.

    Raises:
        KeyFormatError: not PEM, encrypted, or a key of another type.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFormatError(f"expected an Ed25519 key, found {type(key).__name__}")
    return key


def public_key_to_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key (or of a private key's public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from SubjectPublicKeyInfo PEM.

    Raises:
        KeyFormatError: not PEM or a key of another type.
    """
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError(f"expected an Ed25519 key, found {type(key).__name__}")
    return key


def kid_bytes(public: bytes | Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The 8-byte key id: the first 8 bytes of SHA-256 over the raw public key."""
    raw = public if isinstance(public, bytes) else public_key_bytes(public)
    return hashlib.sha256(raw).digest()[:KID_SIZE]


def kid_text(kid: bytes) -> str:
    """An 8-byte key id as people see it (base64url, 11 characters)."""
    return b64url_encode(kid)


def key_id(public: bytes | Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The key id of a public key, as text: base64url of the first 8 bytes of SHA-256 (11 characters).

    Args:
        public: the raw 32-byte public key, a public key or a private key (its public half is used).
    """
    return kid_text(kid_bytes(public))
