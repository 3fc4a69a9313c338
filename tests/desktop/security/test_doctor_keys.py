"""The doctor's signing key on the PC: generated once, private part in the secret store, certified, signs offline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from keyring.backends import fail

from desktop.security.doctor_keys import CertificateExpired, DoctorKeys, NotCertified
from desktop.security.secrets import SecretStore
from desktop.services.signing import SignatureNotVerifiable, SigningService
from shared.signing import keys
from shared.signing.certs import issue_certificate
from shared.signing.rx import verify_qr_payload
from shared.signing.testing import TestChain, doctor_claims, make_test_chain, sample_content

USER = uuid.UUID("019ab000-0000-7000-8000-0000000000d1")


def store(tmp_path: Path) -> DoctorKeys:
    return DoctorKeys(SecretStore("signing", tmp_path, system_keyring=fail.Keyring()), tmp_path)


def certify(doctor_keys: DoctorKeys, *, days: int = 365, now: datetime | None = None) -> tuple[TestChain, bytes]:
    """Play the server: certify the PC's public key under a fresh test chain's issuer."""
    chain = make_test_chain()
    claims = doctor_claims(chain.doctor_key, now=now or datetime.now(UTC), days=days).model_copy(
        update={"public_key": doctor_keys.public_key(USER)}
    )
    return chain, issue_certificate(claims, chain.issuer_key)


def test_key_is_made_once_and_kept_in_the_secret_store(tmp_path: Path) -> None:
    first = store(tmp_path).public_key(USER)
    assert store(tmp_path).public_key(USER) == first  # a new process reads the same key back
    assert store(tmp_path).public_key(uuid.UUID(int=7)) != first  # one key per doctor
    # Only public material is written beside the data; the private key never lands in the trust folder.
    assert not (tmp_path / "trust").exists() or all(
        keys.b64url_encode(first) not in p.read_text() for p in (tmp_path / "trust").iterdir()
    )


def test_uncertified_pc_cannot_sign_and_says_why(tmp_path: Path) -> None:
    doctor_keys = store(tmp_path)
    doctor_keys.public_key(USER)
    with pytest.raises(NotCertified) as err:
        doctor_keys.signer(USER)
    assert "sign in" in err.value.user_text().lower()


def test_certified_key_signs_offline_and_the_qr_verifies(tmp_path: Path) -> None:
    doctor_keys = store(tmp_path)
    chain, certificate = certify(doctor_keys)
    claims = doctor_keys.store_certificates(USER, certificate, chain.issuer_cert)
    assert claims.hpr_id and doctor_keys.is_certified(USER)
    service = SigningService(store(tmp_path), tmp_path, trust=chain.trust)
    content = sample_content()
    signed = service.sign(USER, content)
    result = verify_qr_payload(signed.qr_payload, chain.trust)
    assert result.valid and result.content == content and result.doctor == claims


def test_a_certificate_for_another_key_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    doctor_keys = store(tmp_path)
    chain = make_test_chain()
    with pytest.raises(NotCertified):
        doctor_keys.store_certificates(USER, chain.doctor_cert, chain.issuer_cert)
    assert not doctor_keys.is_certified(USER)


def test_expired_certificate_is_reported(tmp_path: Path) -> None:
    doctor_keys = store(tmp_path)
    chain, certificate = certify(doctor_keys, days=1, now=datetime.now(UTC) - timedelta(days=5))
    doctor_keys.store_certificates(USER, certificate, chain.issuer_cert)
    with pytest.raises(CertificateExpired):
        doctor_keys.signer(USER)


def test_signature_under_an_untrusted_root_is_caught_at_signing(tmp_path: Path) -> None:
    doctor_keys = store(tmp_path)
    chain, certificate = certify(doctor_keys)
    doctor_keys.store_certificates(USER, certificate, chain.issuer_cert)
    other_root = make_test_chain().trust
    with pytest.raises(SignatureNotVerifiable):
        SigningService(doctor_keys, tmp_path, trust=other_root).sign(USER, sample_content())
