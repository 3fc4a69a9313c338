"""Sealing server-held doctor keys at rest: AES-256-GCM under the key-encryption key (KEK).

The database never holds a raw private key. A sealed key is ``version (1 byte) || nonce (12) || ciphertext +
tag``; the key id is the associated data, so a sealed blob copied onto another key's row does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE = 12


class SealedKeyUnreadable(Exception):
    """The sealed key does not open with this KEK (wrong KEK, or the blob was altered or moved)."""


def seal(kek: bytes, kid: str, secret: bytes) -> bytes:
    """Encrypt ``secret`` (a raw Ed25519 private key) for storage on the row of ``kid``."""
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + AESGCM(kek).encrypt(nonce, secret, kid.encode())


def unseal(kek: bytes, kid: str, sealed: bytes) -> bytes:
    """The secret sealed by `seal` for ``kid``.

    Raises:
        SealedKeyUnreadable: the version is unknown or authentication fails.
    """
    if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
        raise SealedKeyUnreadable(f"sealed key of {kid} has an unknown format")
    nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
    try:
        return AESGCM(kek).decrypt(nonce, body, kid.encode())
    except InvalidTag as exc:
        raise SealedKeyUnreadable(f"sealed key of {kid} does not open with this key-encryption key") from exc
