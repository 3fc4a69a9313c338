"""The doctor's signing key on this PC: generated here, private part in the keyring, certified by the server.

P4's chain is root → server issuing key → doctor key. The doctor's Ed25519 key is generated on the PC the
first time he signs in on it; only the public key leaves the PC (`Transport.certify_doctor_key`), and the
server answers a certificate binding it to his HPR id, name, registration and clinic, plus the issuing key's
certificate. Both certificates are kept in ``<data dir>/trust/doctor-<user id>.json`` (public data); the
private key lives in the `SecretStore` namespace ``signing`` (the OS keyring, or the 0600 file beside the
data when the PC has no keyring service). With key and certificates present, signing needs no network.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from desktop.errors import KnownError
from desktop.security.secrets import SecretStore
from shared.signing import keys
from shared.signing.certs import CertificateClaims, parse_certificate

TRUST_DIR = "trust"


class NotCertified(KnownError):
    title = "This PC cannot sign prescriptions yet"
    default_message = "Your signing key on this PC has not been certified by the IntegMed server."
    action = "Connect this PC to the network and sign in once; the key is certified at sign-in."
    code = "desktop.signing.not_certified"


class CertificateExpired(KnownError):
    title = "Your signing certificate has expired"
    default_message = "The certificate of your signing key on this PC has expired."
    action = "Connect this PC to the network and sign in again to renew it."
    code = "desktop.signing.certificate_expired"


@dataclass(frozen=True)
class Signer:
    """Everything needed to sign offline: the private key and the two certificates that travel in the QR."""

    private_key: keys.Ed25519PrivateKey
    doctor_certificate: bytes
    issuer_certificate: bytes
    claims: CertificateClaims


class DoctorKeys:
    """Per-user signing keys and certificates of one data folder."""

    def __init__(self, secrets: SecretStore, data_dir: Path) -> None:
        self._secrets = secrets
        self._dir = data_dir / TRUST_DIR

    @staticmethod
    def _secret_name(user_id: uuid.UUID) -> str:
        return f"doctor-signing-key-{user_id}"

    def _cert_path(self, user_id: uuid.UUID) -> Path:
        return self._dir / f"doctor-{user_id}.json"

    def public_key(self, user_id: uuid.UUID) -> bytes:
        """The user's public key, generating and storing the key pair on first use."""
        stored = self._secrets.get(self._secret_name(user_id))
        if stored is None:
            key = keys.generate_private_key()
            self._secrets.set(self._secret_name(user_id), keys.b64url_encode(keys.private_key_to_bytes(key)))
        else:
            key = keys.private_key_from_bytes(keys.b64url_decode(stored))
        return keys.public_key_bytes(key)

    def store_certificates(
        self, user_id: uuid.UUID, certificate: bytes, issuer_certificate: bytes
    ) -> CertificateClaims:
        """Keep the server's answer, after checking it certifies this PC's key (never someone else's)."""
        claims = parse_certificate(certificate).claims
        if claims.public_key != self.public_key(user_id):
            raise NotCertified("The server certified a different key than this PC's; nothing was stored.")
        parse_certificate(issuer_certificate)  # malformed bytes raise before anything is written
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._cert_path(user_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "certificate": base64.b64encode(certificate).decode(),
                    "issuer_certificate": base64.b64encode(issuer_certificate).decode(),
                }
            ),
            encoding="utf-8",
        )
        os.replace(tmp, path)
        return claims

    def signer(self, user_id: uuid.UUID) -> Signer:
        """The key and certificates to sign with now; raises `NotCertified` / `CertificateExpired`."""
        stored = self._secrets.get(self._secret_name(user_id))
        path = self._cert_path(user_id)
        if stored is None or not path.exists():
            raise NotCertified(path=path)
        data = json.loads(path.read_text(encoding="utf-8"))
        certificate = base64.b64decode(data["certificate"])
        issuer = base64.b64decode(data["issuer_certificate"])
        key = keys.private_key_from_bytes(keys.b64url_decode(stored))
        claims = parse_certificate(certificate).claims
        if claims.public_key != keys.public_key_bytes(key):
            raise NotCertified("The stored certificate is for another key; sign in again to certify this PC's key.")
        if claims.expires_at is not None and claims.expires_at <= datetime.now(UTC):
            raise CertificateExpired(path=path)
        return Signer(key, certificate, issuer, claims)

    def is_certified(self, user_id: uuid.UUID) -> bool:
        try:
            self.signer(user_id)
        except KnownError:
            return False
        return True
