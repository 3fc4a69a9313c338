"""The server's issuing key: loaded from settings, or created for `dev` and tests under the sandbox root.

Three levels (docs/signing_server.md): the IntegMed root (offline; its public key ships with every verifier)
certifies this server's ISSUING key; the issuing key certifies each doctor's key; doctor keys sign
prescriptions. `SigningContext` is what the API's signing routes receive; `create_app` builds it once.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.signing import keys
from shared.signing.certs import Certificate, CertificateClaims, Role, issue_certificate, parse_certificate
from shared.signing.errors import VerificationError
from shared.signing.trust import TrustStore, default_trust
from sync_server.settings import Settings

SANDBOX_ROOT_KEY = Path(__file__).resolve().parent.parent / "sandbox" / "keys" / "sandbox_root_ed25519.pem"
ISSUER_KEY_FILE = "issuer_ed25519.pem"
ISSUER_CERT_FILE = "issuer.cert"
KEK_FILE = "kek"
DEFAULT_ISSUER_DAYS = 5 * 365


class IssuerConfigError(Exception):
    """The configured issuing key or certificate is unusable (a deployment error, reported at start-up)."""


@dataclass(frozen=True)
class SigningContext:
    """Everything the signing services need, built once per process from settings.

    Attributes:
        issuer_key: the issuing private key (certifies doctor keys, signs revocation lists and status events
            are signed by doctor keys, not by this one).
        issuer_cert: the issuing key's certificate from the root.
        kek: the 32-byte key-encryption key sealing server-held doctor keys.
        trust: the roots this server trusts (default roots) with its own issuer learned.
        doctor_cert_days: validity of a doctor certificate the server issues.
        rx_valid_days: how long a signed prescription may be dispensed (``exp``).
    """

    issuer_key: keys.Ed25519PrivateKey
    issuer_cert: Certificate
    kek: bytes = field(repr=False)
    trust: TrustStore
    doctor_cert_days: int
    rx_valid_days: int

    @property
    def issuer_kid(self) -> str:
        return self.issuer_cert.kid

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningContext | None:
        """None when signing is not configured (dev/test without keys); raises when configured but unusable."""
        if not settings.signing_configured:
            return None
        assert settings.signing_issuer_key is not None and settings.signing_issuer_cert is not None
        key, cert = load_issuer(settings.signing_issuer_key, settings.signing_issuer_cert)
        trust = default_trust()
        try:
            trust.learn_issuer(cert, at=datetime.now(UTC))
        except VerificationError as exc:
            raise IssuerConfigError(f"the issuing certificate is not accepted: {exc.message}") from exc
        return cls(
            issuer_key=key,
            issuer_cert=cert,
            kek=settings.signing_kek_bytes(),
            trust=trust,
            doctor_cert_days=settings.signing_doctor_cert_days,
            rx_valid_days=settings.signing_rx_valid_days,
        )


def load_issuer(key_path: Path, cert_path: Path) -> tuple[keys.Ed25519PrivateKey, Certificate]:
    """The issuing key and its certificate; checks that they belong together.

    Raises:
        IssuerConfigError: unreadable files, not an Ed25519 key, not an issuer certificate, or a mismatch.
    """
    try:
        key = keys.private_key_from_pem(key_path.read_bytes())
        cert = parse_certificate(cert_path.read_bytes())
    except (OSError, keys.KeyFormatError, VerificationError) as exc:
        raise IssuerConfigError(f"issuing key or certificate unreadable: {exc}") from exc
    if cert.claims.role is not Role.ISSUER:
        raise IssuerConfigError(f"{cert_path} certifies a {cert.claims.role.value} key, not an issuing key")
    if cert.claims.public_key != keys.public_key_bytes(key):
        raise IssuerConfigError(f"{cert_path} certifies another key than {key_path}")
    return key, cert


def issue_issuer_certificate(
    root_key: keys.Ed25519PrivateKey,
    issuer_key: keys.Ed25519PrivateKey,
    *,
    days: int,
    subject: str,
    now: datetime | None = None,
) -> bytes:
    """A certificate by ``root_key`` for ``issuer_key``, valid from now for ``days`` days."""
    start = now or datetime.now(UTC)
    claims = CertificateClaims(
        role=Role.ISSUER,
        public_key=keys.public_key_bytes(issuer_key),
        not_before=start - timedelta(minutes=5),  # tolerate a little clock skew between server and verifiers
        expires_at=start + timedelta(days=days),
        issued_at=start,
        subject=subject,
    )
    return issue_certificate(claims, root_key)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def create_issuer(
    root_key: keys.Ed25519PrivateKey, out_dir: Path, *, days: int, subject: str
) -> tuple[Path, Path, str]:
    """Generate an issuing key and its certificate into ``out_dir``; (key path, certificate path, kid).

    Raises:
        FileExistsError: ``out_dir`` already holds an issuing key (never overwritten).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = out_dir / ISSUER_KEY_FILE, out_dir / ISSUER_CERT_FILE
    if key_path.exists() or cert_path.exists():
        raise FileExistsError(f"{out_dir} already holds an issuing key; move it away first")
    issuer_key = keys.generate_private_key()
    cert = issue_issuer_certificate(root_key, issuer_key, days=days, subject=subject)
    _write_private(key_path, keys.private_key_to_pem(issuer_key))
    cert_path.write_bytes(cert)
    return key_path, cert_path, keys.key_id(issuer_key)


def new_kek() -> str:
    """A fresh key-encryption key as base64url text."""
    return keys.b64url_encode(secrets.token_bytes(32))


def ensure_dev_signing(data_dir: Path) -> tuple[Path, Path, str]:
    """For `dev` and tests: an issuing key certified by the SANDBOX root, and a KEK, in ``data_dir/signing``.

    Created on first use and reused afterwards (a restart keeps certifying with the same issuer, so doctor
    certificates and prescriptions signed before stay verifiable). An issuer certificate that has expired or
    no longer chains to the sandbox root is replaced.

    Returns:
        (issuer key path, issuer certificate path, KEK text).
    """
    folder = data_dir / "signing"
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path, kek_path = folder / ISSUER_KEY_FILE, folder / ISSUER_CERT_FILE, folder / KEK_FILE
    if not kek_path.exists():
        _write_private(kek_path, new_kek().encode())
    if key_path.exists() and cert_path.exists() and _still_good(key_path, cert_path):
        return key_path, cert_path, kek_path.read_text().strip()
    root_key = keys.private_key_from_pem(SANDBOX_ROOT_KEY.read_bytes())
    if key_path.exists():
        issuer_key = keys.private_key_from_pem(key_path.read_bytes())
    else:
        issuer_key = keys.generate_private_key()
        _write_private(key_path, keys.private_key_to_pem(issuer_key))
    cert = issue_issuer_certificate(root_key, issuer_key, days=DEFAULT_ISSUER_DAYS, subject="IntegMed dev server")
    cert_path.write_bytes(cert)
    return key_path, cert_path, kek_path.read_text().strip()


def _still_good(key_path: Path, cert_path: Path) -> bool:
    try:
        _, cert = load_issuer(key_path, cert_path)
        default_trust().learn_issuer(cert, at=datetime.now(UTC) + timedelta(days=1))
    except (IssuerConfigError, VerificationError):
        return False
    return True
