"""Ed25519 key encodings and the COSE_Sign1 codec."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.signing import cose, keys


def test_raw_and_pem_round_trips() -> None:
    key = keys.generate_private_key()
    raw = keys.private_key_to_bytes(key)
    assert len(raw) == 32
    assert keys.private_key_to_bytes(keys.private_key_from_bytes(raw)) == raw
    assert keys.private_key_to_bytes(keys.private_key_from_pem(keys.private_key_to_pem(key))) == raw
    public = keys.public_key_bytes(key)
    assert keys.public_key_bytes(keys.public_key_from_bytes(public)) == public
    assert keys.public_key_bytes(keys.public_key_from_pem(keys.public_key_to_pem(key))) == public


def test_key_id_is_11_base64url_chars_of_sha256() -> None:
    public = bytes(range(32))
    kid = keys.key_id(public)
    assert len(kid) == 11
    assert keys.b64url_decode(kid) == keys.kid_bytes(public)
    assert keys.key_id(public) == "Yw3NKWbEM2Y"  # openssl dgst -sha256 | head -c 8 | base64url


@pytest.mark.parametrize(
    ("call", "data"),
    [
        (keys.private_key_from_bytes, b"short"),
        (keys.public_key_from_bytes, b"x" * 33),
        (keys.private_key_from_pem, b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"),
        (keys.public_key_from_pem, b"not pem"),
    ],
)
def test_bad_key_material_is_a_key_format_error(call: object, data: bytes) -> None:
    with pytest.raises(keys.KeyFormatError):
        call(data)  # type: ignore[operator]


def test_sign1_layout_and_verify() -> None:
    key = keys.generate_private_key()
    kid = keys.kid_bytes(key)
    message = cose.sign1(b"payload", key, kid=kid, unprotected={-70001: [b"cert"]})
    tagged = cbor2.loads(message)
    assert tagged.tag == 18
    protected, _unprotected, payload, signature = tagged.value
    assert cbor2.loads(protected) == {1: -8, 4: kid}
    assert payload == b"payload"
    assert len(signature) == 64
    decoded = cose.decode_sign1(message)
    assert decoded.kid == kid
    assert decoded.unprotected == {-70001: [b"cert"]}
    cose.verify_sign1(decoded, key.public_key())
    # The Sig_structure is exactly RFC 9052 §4.4's, so any COSE library can check our signatures.
    key.public_key().verify(signature, cbor2.dumps(["Signature1", protected, b"", b"payload"]))


def test_wrong_key_or_altered_payload_is_a_bad_signature() -> None:
    key = keys.generate_private_key()
    decoded = cose.decode_sign1(cose.sign1(b"payload", key, kid=None))
    with pytest.raises(cose.BadSignature):
        cose.verify_sign1(decoded, keys.generate_private_key().public_key())
    altered = cose.Sign1(decoded.protected, decoded.unprotected, b"payloaD", decoded.signature)
    with pytest.raises(cose.BadSignature):
        cose.verify_sign1(altered, key.public_key())


def test_trailing_bytes_and_other_algorithms_are_refused() -> None:
    key = keys.generate_private_key()
    message = cose.sign1(b"p", key, kid=None)
    with pytest.raises(cose.CoseError, match="unexpected bytes"):
        cose.decode_sign1(message + b"\x00")
    es256 = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: -7}), {}, b"p", b"s" * 64]))
    with pytest.raises(cose.CoseError) as caught:
        cose.decode_sign1(es256)
    assert caught.value.unsupported
    with pytest.raises(cose.CoseError, match="tag 98"):
        cose.decode_sign1(cbor2.dumps(cbor2.CBORTag(98, [])))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_anything_but_cose_error(data: bytes) -> None:
    with contextlib.suppress(cose.CoseError):
        cose.decode_sign1(data)


@given(st.binary(max_size=200), st.binary(min_size=8, max_size=8) | st.none())
def test_sign1_round_trip(payload: bytes, kid: bytes | None) -> None:
    key = keys.generate_private_key()
    decoded = cose.decode_sign1(cose.sign1(payload, key, kid=kid))
    assert decoded.payload == payload
    assert decoded.kid == kid
    cose.verify_sign1(decoded, key.public_key())
