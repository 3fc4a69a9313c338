"""Signed prescription content, the IMRX1 QR payload and offline verification with every failure reason."""

from __future__ import annotations

import hashlib
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import base45
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.signing import cose, keys, rx
from shared.signing.certs import Role, issue_certificate, parse_certificate
from shared.signing.errors import Reason
from shared.signing.revocation import RevokedKey, issue_revocation_list, parse_revocation_list
from shared.signing.rx import (
    AyushItem,
    Clinic,
    Diagnosis,
    Medicine,
    Patient,
    PayloadTooLarge,
    PrescriptionContent,
    canonical_bytes,
    content_hash,
    decode_content,
    decode_qr_payload,
    encode_qr_payload,
    sign_prescription,
    verify_qr_payload,
)
from shared.signing.testing import TestChain, doctor_claims, make_test_chain, sample_content
from shared.signing.zdict import IMRX1_ZDICT

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNED_AT = NOW - timedelta(hours=1)


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return make_test_chain(now=NOW)


@pytest.fixture(scope="module")
def signed(chain: TestChain) -> rx.SignedPrescription:
    return chain.sign(sample_content(issued_at=SIGNED_AT))


def _recompress(cose_bytes: bytes) -> str:
    return encode_qr_payload(cose_bytes, limit=None)


# --- content codec -------------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
optional = texts | st.none()
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
medicines = st.builds(
    Medicine,
    generic_name=texts,
    strength=optional,
    dosage_form=optional,
    route=optional,
    dose=optional,
    frequency=texts,
    duration_days=st.integers(1, 3650),
    quantity=st.integers(1, 100000) | st.none(),
    instructions=optional,
)
ayush_items = st.builds(
    AyushItem, name=texts, dose=optional, frequency=texts, duration_days=st.integers(1, 3650), instructions=optional
)


diagnoses = st.builds(Diagnosis, text=optional, code=st.text(min_size=1, max_size=20))


@st.composite
def contents(draw: st.DrawFn) -> PrescriptionContent:
    issued = draw(instants)
    meds = draw(st.lists(medicines, max_size=4))
    return PrescriptionContent(
        rx_id=draw(st.uuids()),
        issued_at=issued,
        expires_at=issued + timedelta(seconds=draw(st.integers(1, 10**8))),
        clinic=Clinic(name=draw(texts), address=draw(optional), phone=draw(st.none() | st.just("+91 80 1234"))),
        patient=Patient(
            name=draw(texts),
            age_years=draw(st.integers(0, 150) | st.none()),
            sex=draw(st.sampled_from("MFOU")),
            abha_number=draw(st.none() | st.just("91-1234-5678-9012")),
        ),
        diagnosis=tuple(draw(st.lists(diagnoses, max_size=3))),
        medicines=tuple(meds),
        ayush=tuple(draw(st.lists(ayush_items, min_size=0 if meds else 1, max_size=3))),
        followup=draw(optional),
    )


@given(contents())
def test_content_codec_round_trip(content: PrescriptionContent) -> None:
    data = canonical_bytes(content)
    assert decode_content(data) == content
    assert canonical_bytes(decode_content(data)) == data  # a re-encoding is byte-identical


@settings(max_examples=25)
@given(contents())
def test_qr_payload_round_trip(content: PrescriptionContent) -> None:
    chain = make_test_chain(now=content.issued_at)
    signed = sign_prescription(content, chain.doctor_key, chain.doctor_cert, chain.issuer_cert, limit=None)
    assert signed.qr_payload.startswith("IMRX1:")
    assert set(signed.qr_payload) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert decode_qr_payload(signed.qr_payload) == signed.cose_bytes
    result = verify_qr_payload(signed.qr_payload, chain.trust, now=content.issued_at)
    assert result.valid, result.message
    assert result.content == content


def test_canonical_bytes_are_deterministic_and_hash_is_sha256() -> None:
    a = sample_content(issued_at=SIGNED_AT)
    b = PrescriptionContent.model_validate(a.model_dump())  # rebuilt from plain data, other dict order
    assert canonical_bytes(a) == canonical_bytes(b)
    assert content_hash(a) == hashlib.sha256(canonical_bytes(a)).hexdigest()
    wire = cbor2.loads(canonical_bytes(a))
    assert wire[0] == 1  # content format version
    assert wire[1] == uuid.UUID("019ab000-0000-7000-8000-0000000000cc").bytes
    assert wire[7][0] == {
        1: "METFORMIN",
        2: "1000 mg",
        3: "tablet",
        4: "oral",
        6: "1-0-1",
        7: 30,
        8: 60,
        9: "after food",
    }
    assert list(wire) == sorted(wire, key=lambda k: cbor2.dumps(k))  # RFC 8949 §4.2.1 key order


def test_times_are_utc_whole_seconds_and_naive_times_refused() -> None:
    content = sample_content(issued_at=datetime(2026, 1, 1, 10, 0, 0, 999, tzinfo=UTC))
    assert content.issued_at.microsecond == 0
    with pytest.raises(ValueError, match="time zone"):
        sample_content(issued_at=datetime(2026, 1, 1, 10, 0))


def test_content_needs_a_medicine_and_a_later_expiry() -> None:
    base = sample_content(issued_at=SIGNED_AT)
    with pytest.raises(ValueError, match="at least one medicine"):
        base.model_validate(base.model_dump() | {"medicines": (), "ayush": ()})
    with pytest.raises(ValueError, match="expires_at"):
        base.model_validate(base.model_dump() | {"expires_at": base.issued_at})


# --- signing and verification ---------------------------------------------------------------------------


def test_valid_prescription_reports_doctor_content_and_sandbox(chain: TestChain, signed: rx.SignedPrescription) -> None:
    result = verify_qr_payload(signed.qr_payload, chain.trust, now=NOW)
    assert result.valid
    assert result.reason is Reason.VALID
    assert result.sandbox
    assert "SANDBOX" in result.message
    assert result.doctor is not None and result.doctor.hpr_id == "71-1234-5678-9012"
    assert result.issuer is not None and result.issuer.role is Role.ISSUER
    assert result.signed_at == SIGNED_AT
    assert result.content_hash == signed.content_hash == content_hash(signed.content)
    assert result.content == signed.content
    assert cose.decode_sign1(signed.cose_bytes).signature == signed.signature


def test_production_root_is_not_flagged_sandbox() -> None:
    from shared.signing.trust import Environment

    chain = make_test_chain(now=NOW, environment=Environment.PRODUCTION)
    result = verify_qr_payload(chain.sign(sample_content(issued_at=SIGNED_AT)).qr_payload, chain.trust, now=NOW)
    assert result.valid
    assert not result.sandbox
    assert "SANDBOX" not in result.message


def test_signing_with_a_key_the_certificate_does_not_certify_is_refused(chain: TestChain) -> None:
    with pytest.raises(ValueError, match="different key"):
        sign_prescription(sample_content(), keys.generate_private_key(), chain.doctor_cert, chain.issuer_cert)


@settings(max_examples=60)
@given(st.data())
def test_changing_any_byte_of_the_signed_message_makes_it_invalid(
    chain: TestChain, signed: rx.SignedPrescription, data: st.DataObject
) -> None:
    raw = bytearray(signed.cose_bytes)
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    result = verify_qr_payload(_recompress(bytes(raw)), chain.trust, now=NOW)
    assert not result.valid
    assert result.reason is not Reason.VALID


@pytest.mark.parametrize(
    ("what", "reason"),
    [
        (b"METFORMIN", Reason.BAD_SIGNATURE),  # the signed content
        (b"KMC-123456", Reason.BAD_CERTIFICATE),  # the doctor's certificate
    ],
)
def test_altering_content_or_certificate(
    chain: TestChain, signed: rx.SignedPrescription, what: bytes, reason: Reason
) -> None:
    raw = signed.cose_bytes.replace(what, what[:-1] + b"X")
    result = verify_qr_payload(_recompress(raw), chain.trust, now=NOW)
    assert result.reason is reason
    assert not result.valid


def test_damaged_qr_text(chain: TestChain, signed: rx.SignedPrescription) -> None:
    text = signed.qr_payload
    cases = {
        text[:-3] + ("AAA" if not text.endswith("AAA") else "BBB"): Reason.MALFORMED,
        text[:-40]: Reason.MALFORMED,
        "HC1:" + text[6:]: Reason.MALFORMED,
        "IMRX2:" + text[6:]: Reason.UNSUPPORTED_VERSION,
        "IMRX1:" + "%%%": Reason.MALFORMED,
        "": Reason.MALFORMED,
    }
    for payload, reason in cases.items():
        result = verify_qr_payload(payload, chain.trust, now=NOW)
        assert (result.valid, result.reason) == (False, reason), payload[:20]
        assert result.message


def test_swapped_doctor_certificate(chain: TestChain, signed: rx.SignedPrescription) -> None:
    other = make_test_chain(now=NOW)
    message = cose.decode_sign1(signed.cose_bytes)
    swapped = cbor2.dumps(
        cbor2.CBORTag(
            18,
            [
                message.protected,
                {rx.HEADER_CHAIN: [other.doctor_cert, chain.issuer_cert]},
                message.payload,
                message.signature,
            ],
        )
    )
    result = verify_qr_payload(_recompress(swapped), chain.trust, now=NOW)
    assert result.reason is Reason.CERTIFICATE_MISMATCH
    # the attacker re-signs with a key certified by their own issuer and root: not trusted
    forged = other.sign(signed.content)
    assert verify_qr_payload(forged.qr_payload, chain.trust, now=NOW).reason is Reason.UNTRUSTED_ROOT
    # no certificate at all
    bare = cbor2.dumps(cbor2.CBORTag(18, [message.protected, {}, message.payload, message.signature]))
    assert verify_qr_payload(_recompress(bare), chain.trust, now=NOW).reason is Reason.UNKNOWN_KEY


def test_compact_qr_needs_a_learned_issuer(chain: TestChain) -> None:
    compact = chain.sign(sample_content(issued_at=SIGNED_AT), with_issuer=False)
    fresh = make_test_chain(now=NOW)
    trust = type(chain.trust)([chain.root])
    assert verify_qr_payload(compact.qr_payload, trust, now=NOW).reason is Reason.UNKNOWN_KEY
    trust.learn_issuer(chain.issuer_cert, at=NOW)
    assert verify_qr_payload(compact.qr_payload, trust, now=NOW).valid
    assert len(compact.qr_payload) < len(chain.sign(sample_content(issued_at=SIGNED_AT)).qr_payload)
    assert fresh.trust.roots != trust.roots


def test_expiry_and_future_dates(chain: TestChain) -> None:
    content = sample_content(issued_at=SIGNED_AT, valid_days=30)
    text = chain.sign(content).qr_payload
    expired = verify_qr_payload(text, chain.trust, now=content.expires_at)
    assert (expired.valid, expired.reason) == (False, Reason.EXPIRED)
    assert expired.content == content  # still shown, so the pharmacist sees what it was
    assert verify_qr_payload(text, chain.trust, now=content.expires_at - timedelta(seconds=1)).valid
    future = verify_qr_payload(text, chain.trust, now=SIGNED_AT - timedelta(hours=1))
    assert future.reason is Reason.NOT_YET_VALID
    assert verify_qr_payload(text, chain.trust, now=SIGNED_AT - timedelta(minutes=4)).valid  # clock skew


def test_signed_with_an_expired_doctor_certificate() -> None:
    chain = make_test_chain(now=NOW)
    late = NOW + timedelta(days=366)  # the test doctor certificate runs for 365 days
    result = verify_qr_payload(chain.sign(sample_content(issued_at=late)).qr_payload, chain.trust, now=late)
    assert result.reason is Reason.CERTIFICATE_EXPIRED


def _revocations(chain: TestChain, kid: str, at: datetime, *, issuer: bool = False) -> rx.RevocationList:
    signer = chain.issuer_key if issuer else chain.root_key
    raw = issue_revocation_list(
        [RevokedKey(kid, at, "key compromised")],
        signer,
        sequence=1,
        issued_at=at,
        next_update=at + timedelta(days=7),
        signer_cert=chain.issuer_cert if issuer else None,
    )
    return parse_revocation_list(raw, chain.trust)


def test_revoked_doctor_key(chain: TestChain, signed: rx.SignedPrescription) -> None:
    doctor_kid = parse_certificate(chain.doctor_cert).kid
    before = _revocations(chain, doctor_kid, SIGNED_AT - timedelta(minutes=1))
    result = verify_qr_payload(signed.qr_payload, chain.trust, before, now=NOW)
    assert (result.valid, result.reason) == (False, Reason.REVOKED_KEY)
    assert "key compromised" in result.message
    at_signing = _revocations(chain, doctor_kid, SIGNED_AT, issuer=True)
    assert verify_qr_payload(signed.qr_payload, chain.trust, [at_signing], now=NOW).reason is Reason.REVOKED_KEY
    after = _revocations(chain, doctor_kid, SIGNED_AT + timedelta(minutes=1))
    still = verify_qr_payload(signed.qr_payload, chain.trust, [after], now=NOW)
    assert still.valid
    assert any("after this prescription was signed" in note for note in still.notes)


def test_revoked_issuer_key_and_lists_without_authority(chain: TestChain, signed: rx.SignedPrescription) -> None:
    issuer_kid = parse_certificate(chain.issuer_cert).kid
    revoked = _revocations(chain, issuer_kid, SIGNED_AT - timedelta(days=1))
    assert verify_qr_payload(signed.qr_payload, chain.trust, revoked, now=NOW).reason is Reason.REVOKED_KEY
    # another issuer under the same root cannot revoke our doctor
    rival_key = keys.generate_private_key()
    from shared.signing.testing import issuer_claims

    rival_cert = issue_certificate(issuer_claims(rival_key, now=NOW), chain.root_key)
    rival_list = parse_revocation_list(
        issue_revocation_list(
            [RevokedKey(parse_certificate(chain.doctor_cert).kid, SIGNED_AT - timedelta(days=1))],
            rival_key,
            sequence=1,
            issued_at=NOW,
            next_update=NOW,
            signer_cert=rival_cert,
        ),
        chain.trust,
    )
    assert verify_qr_payload(signed.qr_payload, chain.trust, rival_list, now=NOW).valid


def test_payload_too_large_is_an_explicit_error(chain: TestChain) -> None:
    base = sample_content(issued_at=SIGNED_AT)
    long_lines = tuple(
        Medicine(
            generic_name=f"MEDICINE {i}",
            frequency="1-0-1",
            duration_days=30,
            instructions=hashlib.sha256(str(i).encode()).hexdigest() * 2,  # incompressible text
        )
        for i in range(6)
    )
    big = PrescriptionContent.model_validate(base.model_dump() | {"medicines": long_lines})
    with pytest.raises(PayloadTooLarge, match="QR characters") as caught:
        chain.sign(big)
    assert caught.value.chars > rx.MAX_QR_CHARS
    signed = sign_prescription(big, chain.doctor_key, chain.doctor_cert, chain.issuer_cert, limit=None)
    assert verify_qr_payload(signed.qr_payload, chain.trust, now=NOW).content == big  # nothing was dropped


def test_decompression_is_bounded(chain: TestChain) -> None:
    bomb = "IMRX1:" + base45.b45encode(zlib.compress(b"\x00" * 200_000)).decode()
    assert verify_qr_payload(bomb, chain.trust, now=NOW).reason is Reason.MALFORMED
    plain = "IMRX1:" + base45.b45encode(zlib.compress(b"\xa0")).decode()  # no preset dictionary: wrong format
    assert verify_qr_payload(plain, chain.trust, now=NOW).reason is Reason.MALFORMED


def test_unreadable_signed_content_is_malformed(chain: TestChain) -> None:
    message = cose.sign1(
        cbor2.dumps({0: 1, 1: b"short"}),
        chain.doctor_key,
        kid=keys.kid_bytes(chain.doctor_key),
        unprotected={rx.HEADER_CHAIN: [chain.doctor_cert, chain.issuer_cert]},
    )
    result = verify_qr_payload(_recompress(message), chain.trust, now=NOW)
    assert result.reason is Reason.MALFORMED
    assert "readable prescription" in result.message


def test_doctor_with_custom_claims() -> None:
    claims = doctor_claims(keys.generate_private_key(), now=NOW).model_copy(
        update={"name": "Vaidya Rakesh Kulkarni", "system_of_medicine": "ayurveda", "qualification": "BAMS"}
    )
    chain = make_test_chain(now=NOW, doctor=claims)
    result = verify_qr_payload(chain.sign(sample_content(issued_at=SIGNED_AT)).qr_payload, chain.trust, now=NOW)
    assert result.doctor is not None and result.doctor.qualification == "BAMS"


def test_preset_dictionary_is_pinned() -> None:
    # Changing the dictionary breaks every printed IMRX1 QR: it needs a new prefix (IMRX2) instead.
    assert hashlib.sha256(IMRX1_ZDICT).hexdigest() == PINNED_ZDICT_SHA256


PINNED_ZDICT_SHA256 = "a86b55a2fcc6332dd007c9770311dc846afa79d51484183dae93ca36f3c92b0b"


# --- hostile input never escapes as an exception --------------------------------------------------------

cbor_leaves = (
    st.integers(-(2**64), 2**64)
    | st.booleans()
    | st.none()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.floats(allow_nan=False)
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.integers(-3, 12), children, max_size=6),
    max_leaves=25,
)


@given(st.text(max_size=300))
def test_any_text_after_the_prefix_is_reported_not_raised(text: str) -> None:
    result = verify_qr_payload("IMRX1:" + text, make_test_chain(now=NOW).trust, now=NOW)
    assert not result.valid
    assert result.message


@settings(max_examples=150)
@given(
    st.dictionaries(st.integers(0, 10), cbor_values, max_size=10) | cbor_values,
    st.sampled_from([2, 3, 253402300799, 253402300800, 2**40, -1]),
)
def test_any_signed_cbor_content_is_reported_not_raised(chain: TestChain, content: object, date: int) -> None:
    if isinstance(content, dict):
        content |= {0: 1, 2: date}  # the current format version, so decoding gets past it; and the date bounds
    message = cose.sign1(
        cbor2.dumps(content),
        chain.doctor_key,
        kid=keys.kid_bytes(chain.doctor_key),
        unprotected={rx.HEADER_CHAIN: [chain.doctor_cert, chain.issuer_cert]},
    )
    result = verify_qr_payload(_recompress(message), chain.trust, now=NOW)
    assert result.reason in (Reason.MALFORMED, Reason.VALID)


@settings(max_examples=100)
@given(cbor_values, cbor_values)
def test_any_certificate_header_is_reported_not_raised(chain: TestChain, header: object, payload: object) -> None:
    message = cbor2.dumps(
        cbor2.CBORTag(
            18, [cbor2.dumps({1: -8, 4: b"12345678"}), {rx.HEADER_CHAIN: header}, cbor2.dumps(payload), b"s" * 64]
        )
    )
    result = verify_qr_payload(_recompress(message), chain.trust, now=NOW)
    assert not result.valid
