"""Certificates, the root → issuer → doctor chain, trust roots and revocation lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.signing import keys
from shared.signing.certs import (
    CertificateClaims,
    Role,
    issue_certificate,
    parse_certificate,
    validate_chain,
    verify_chain,
)
from shared.signing.errors import Reason, VerificationError
from shared.signing.revocation import RevokedKey, issue_revocation_list, parse_revocation_list
from shared.signing.testing import doctor_claims, issuer_claims, make_test_chain
from shared.signing.trust import Environment, TrustFileError, TrustStore, default_trust, parse_roots_yaml

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60)


@given(name=names, hpr=names, council=names | st.none(), days=st.integers(1, 20000))
def test_certificate_round_trip(name: str, hpr: str, council: str | None, days: int) -> None:
    issuer = keys.generate_private_key()
    claims = CertificateClaims(
        role=Role.DOCTOR,
        public_key=keys.public_key_bytes(keys.generate_private_key()),
        not_before=NOW,
        expires_at=NOW + timedelta(days=days),
        issued_at=NOW,
        name=name,
        hpr_id=hpr,
        registration_council=council,
    )
    cert = parse_certificate(issue_certificate(claims, issuer))
    assert cert.claims == claims
    assert cert.issuer_kid == keys.key_id(issuer)


@pytest.mark.parametrize(
    "clinic_id", ["019ab000-0000-7000-8000-0000000000aa", "CLINIC-42", "019AB000-0000-7000-8000-0000000000AA"]
)
def test_clinic_id_round_trips_exactly(clinic_id: str) -> None:
    claims = doctor_claims(keys.generate_private_key(), now=NOW).model_copy(update={"clinic_id": clinic_id})
    raw = issue_certificate(claims, keys.generate_private_key())
    assert parse_certificate(raw).claims.clinic_id == clinic_id
    assert (clinic_id.encode() in raw) is (clinic_id != "019ab000-0000-7000-8000-0000000000aa")  # UUID as 16 bytes


def test_chain_checks_out_and_returns_the_doctor() -> None:
    chain = make_test_chain(now=NOW)
    doctor = verify_chain(chain.doctor_cert, chain.issuer_cert, chain.trust, NOW)
    assert doctor.hpr_id == "71-1234-5678-9012"
    assert doctor.registration_number == "KMC-123456"
    assert validate_chain(chain.doctor_cert, chain.issuer_cert, chain.trust, at=NOW).root.sandbox


def _reason(call: object) -> Reason:
    with pytest.raises(VerificationError) as caught:
        call()  # type: ignore[operator]
    return caught.value.reason


def test_chain_failures_each_have_their_reason() -> None:
    chain = make_test_chain(now=NOW)
    other = make_test_chain(now=NOW)
    trust = chain.trust
    # an issuer certified by a root we do not trust
    assert _reason(lambda: verify_chain(other.doctor_cert, other.issuer_cert, trust, NOW)) is Reason.UNTRUSTED_ROOT
    # the doctor certificate of another issuer under our (trusted) issuer certificate
    assert _reason(lambda: verify_chain(other.doctor_cert, chain.issuer_cert, trust, NOW)) is Reason.BAD_CERTIFICATE
    # a doctor certificate presented as the issuer's
    assert _reason(lambda: verify_chain(chain.doctor_cert, chain.doctor_cert, trust, NOW)) is Reason.UNTRUSTED_ROOT
    # a doctor certificate signed directly by the root: wrong role for the issuer link
    rogue = issue_certificate(doctor_claims(keys.generate_private_key(), now=NOW), chain.root_key)
    assert _reason(lambda: verify_chain(chain.doctor_cert, rogue, trust, NOW)) is Reason.BAD_CERTIFICATE
    # validity windows, judged at the signing instant
    late = NOW + timedelta(days=400)
    assert _reason(lambda: verify_chain(chain.doctor_cert, chain.issuer_cert, trust, late)) is (
        Reason.CERTIFICATE_EXPIRED
    )
    early = NOW - timedelta(days=2)
    assert _reason(lambda: verify_chain(chain.doctor_cert, chain.issuer_cert, trust, early)) is (
        Reason.CERTIFICATE_NOT_YET_VALID
    )
    # no issuer certificate and none learned
    assert _reason(lambda: verify_chain(chain.doctor_cert, None, trust, NOW)) is Reason.UNKNOWN_KEY


def test_altered_certificate_is_bad() -> None:
    chain = make_test_chain(now=NOW)
    raw = bytearray(chain.doctor_cert)
    index = raw.index(b"KMC-123456")
    raw[index] = ord("X")
    assert _reason(lambda: verify_chain(bytes(raw), chain.issuer_cert, chain.trust, NOW)) is Reason.BAD_CERTIFICATE
    assert _reason(lambda: parse_certificate(b"\xa0")) is Reason.BAD_CERTIFICATE


def test_learned_issuer_lets_a_compact_chain_verify() -> None:
    chain = make_test_chain(now=NOW)
    learned = chain.trust.learn_issuer(chain.issuer_cert, at=NOW)
    assert chain.trust.issuer(learned.kid) is learned
    assert verify_chain(chain.doctor_cert, None, chain.trust, NOW).name == "Dr. Asha Verma"
    stranger = make_test_chain(now=NOW)
    assert _reason(lambda: chain.trust.learn_issuer(stranger.issuer_cert, at=NOW)) is Reason.UNTRUSTED_ROOT


def test_default_trust_is_the_sandbox_root_whose_private_key_is_published() -> None:
    trust = default_trust()
    (root,) = trust.roots
    assert root.environment is Environment.SANDBOX
    pem = (REPO / "sync_server/sandbox/keys/sandbox_root_ed25519.pem").read_bytes()
    assert keys.public_key_bytes(keys.private_key_from_pem(pem)) == root.public_key
    assert root.kid == keys.key_id(root.public_key)
    assert default_trust(include_sandbox=False).roots == ()


def test_roots_file_with_wrong_kid_is_refused() -> None:
    public = keys.b64url_encode(keys.public_key_bytes(keys.generate_private_key()))
    text = f"roots:\n  - kid: AAAAAAAAAAA\n    public_key: {public}\n    name: x\n    environment: sandbox\n"
    with pytest.raises(TrustFileError, match="does not match"):
        parse_roots_yaml(text)
    with pytest.raises(TrustFileError):
        parse_roots_yaml("roots: 3")


# --- revocation lists ----------------------------------------------------------------------------------


def test_root_signed_revocation_list_round_trip() -> None:
    chain = make_test_chain(now=NOW)
    doctor_kid = parse_certificate(chain.doctor_cert).kid
    entry = RevokedKey(doctor_kid, NOW, "key compromised")
    raw = issue_revocation_list([entry], chain.root_key, sequence=7, issued_at=NOW, next_update=NOW + timedelta(days=7))
    parsed = parse_revocation_list(raw, chain.trust)
    assert parsed.sequence == 7
    assert parsed.signer_role is Role.ROOT
    assert parsed.entries == (entry,)
    assert parsed.revoked(doctor_kid, NOW) == entry  # at revoked_at: revoked
    assert parsed.revoked(doctor_kid, NOW - timedelta(seconds=1)) is None  # before: still good
    assert parsed.entry(doctor_kid) == entry


def test_issuer_signed_list_carries_its_certificate_and_has_limited_authority() -> None:
    chain = make_test_chain(now=NOW)
    doctor = parse_certificate(chain.doctor_cert)
    raw = issue_revocation_list(
        [RevokedKey(doctor.kid, NOW)],
        chain.issuer_key,
        sequence=1,
        issued_at=NOW,
        next_update=NOW + timedelta(days=1),
        signer_cert=chain.issuer_cert,
    )
    parsed = parse_revocation_list(raw, chain.trust)
    assert parsed.signer_role is Role.ISSUER
    assert parsed.applies_to(doctor, chain.root.kid)
    stranger = parse_certificate(make_test_chain(now=NOW).doctor_cert)
    assert not parsed.applies_to(stranger, chain.root.kid)


def test_revocation_list_failures() -> None:
    chain = make_test_chain(now=NOW)
    raw = issue_revocation_list([], chain.root_key, sequence=1, issued_at=NOW, next_update=NOW)
    altered = bytearray(raw)
    altered[-70] ^= 0x01  # inside the signature
    assert _reason(lambda: parse_revocation_list(bytes(altered), chain.trust)) is Reason.BAD_SIGNATURE
    assert _reason(lambda: parse_revocation_list(raw, TrustStore())) is Reason.UNKNOWN_KEY
    assert _reason(lambda: parse_revocation_list(b"junk", chain.trust)) is Reason.MALFORMED
    by_stranger = issue_revocation_list(
        [], keys.generate_private_key(), sequence=1, issued_at=NOW, next_update=NOW, signer_cert=chain.doctor_cert
    )
    assert _reason(lambda: parse_revocation_list(by_stranger, chain.trust)) is Reason.UNKNOWN_KEY


def test_issuer_claims_helper_is_an_issuer() -> None:
    assert issuer_claims(keys.generate_private_key(), now=NOW).role is Role.ISSUER
