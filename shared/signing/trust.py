"""Trust anchors: the IntegMed root public keys a verifier accepts, and issuer certificates it has learned.

`default_trust` reads ``shared/knowledge/trust/roots.yaml``. Production roots are created offline in a key
ceremony (``integmed-server keys root-init``) and only their public half is listed there; the sandbox root's
private key is deliberately public (``sync_server/sandbox/keys/``), so anything it vouches for is a test
prescription and every verifier says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from importlib import resources

import yaml

from shared.errors import DomainError
from shared.signing import keys
from shared.signing.certs import Certificate, Role, parse_certificate, verify_certificate
from shared.signing.errors import Reason, VerificationError


class Environment(StrEnum):
    """Where a root is meant to be used: real dispensing, or tests and demos only."""

    PRODUCTION = "production"
    SANDBOX = "sandbox"


class TrustFileError(DomainError):
    """The roots file is malformed (a packaging bug, not user input)."""

    code = "signing.trust_file"


@dataclass(frozen=True)
class TrustedRoot:
    """A root public key the verifier trusts.

    Attributes:
        kid: key id (base64url) of ``public_key``.
        public_key: raw 32-byte Ed25519 public key.
        name: who holds it, as shown to pharmacists.
        environment: production or sandbox.
    """

    kid: str
    public_key: bytes
    name: str
    environment: Environment

    @property
    def sandbox(self) -> bool:
        """True for the public sandbox root: nothing it vouches for may be dispensed."""
        return self.environment is Environment.SANDBOX


def trusted_root(public_key: bytes, name: str, environment: Environment) -> TrustedRoot:
    """A `TrustedRoot` for a raw public key, with its key id computed."""
    return TrustedRoot(kid=keys.key_id(public_key), public_key=public_key, name=name, environment=environment)


class TrustStore:
    """Roots by key id plus the issuer certificates learned (each checked against a root when learned)."""

    def __init__(self, roots: Iterable[TrustedRoot] = (), issuers: Iterable[Certificate] = ()) -> None:
        self._roots = {root.kid: root for root in roots}
        self._issuers = {cert.kid: cert for cert in issuers}

    @property
    def roots(self) -> tuple[TrustedRoot, ...]:
        """Every trusted root."""
        return tuple(self._roots.values())

    @property
    def issuers(self) -> tuple[Certificate, ...]:
        """Every learned issuer certificate."""
        return tuple(self._issuers.values())

    def root(self, kid: str) -> TrustedRoot | None:
        """The root with key id ``kid``, if trusted."""
        return self._roots.get(kid)

    def issuer(self, kid: str) -> Certificate | None:
        """The learned issuer certificate whose key id is ``kid``."""
        return self._issuers.get(kid)

    def add_root(self, root: TrustedRoot) -> None:
        """Trust another root."""
        self._roots[root.kid] = root

    def learn_issuer(self, cert: Certificate | bytes, *, at: datetime) -> Certificate:
        """Check an issuer certificate against the trusted roots and remember it.

        Args:
            cert: the issuer's certificate.
            at: the instant it must be valid at (normally now).

        Returns:
            The parsed certificate.

        Raises:
            VerificationError: unknown root, bad or expired certificate.
        """
        parsed = cert if isinstance(cert, Certificate) else parse_certificate(cert)
        root = self.root(parsed.issuer_kid)
        if root is None:
            raise VerificationError(Reason.UNTRUSTED_ROOT, f"{parsed.issuer_kid} is not a trusted root")
        verify_certificate(parsed, root.public_key, role=Role.ISSUER, at=at)
        self._issuers[parsed.kid] = parsed
        return parsed


def parse_roots_yaml(text: str) -> tuple[TrustedRoot, ...]:
    """The roots listed in a roots file (format: see ``shared/knowledge/trust/roots.yaml``).

    Raises:
        TrustFileError: malformed file, or an entry whose kid does not match its key.
    """
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("roots"), list):
        raise TrustFileError("the roots file needs a `roots` list")
    found = []
    for index, entry in enumerate(data["roots"]):
        try:
            public_key = keys.b64url_decode(str(entry["public_key"]))
            keys.public_key_from_bytes(public_key)
            root = trusted_root(public_key, str(entry["name"]), Environment(entry["environment"]))
        except (KeyError, TypeError, ValueError, keys.KeyFormatError) as exc:
            raise TrustFileError(f"roots[{index}] is malformed: {exc}") from exc
        if root.kid != entry.get("kid"):
            raise TrustFileError(f"roots[{index}]: kid {entry.get('kid')!r} does not match the key ({root.kid})")
        found.append(root)
    return tuple(found)


def default_trust(*, include_sandbox: bool = True) -> TrustStore:
    """The roots shipped with IntegMed (``shared/knowledge/trust/roots.yaml``).

    Args:
        include_sandbox: also trust the public sandbox root (default, so test prescriptions verify and are
            reported as such); a dispensing-only verifier may pass ``False``.
    """
    text = (resources.files("shared.knowledge") / "trust" / "roots.yaml").read_text(encoding="utf-8")
    roots = parse_roots_yaml(text)
    return TrustStore(root for root in roots if include_sandbox or root.environment is Environment.PRODUCTION)
