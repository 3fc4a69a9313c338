"""Sealed doctor keys and the KEK setting: property tests (no database)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_server.settings import decode_kek
from sync_server.signing import sealing

KEK = st.binary(min_size=32, max_size=32)
KID = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=11, max_size=11)


@given(KEK, KID, st.binary(min_size=32, max_size=32))
def test_seal_round_trips_and_hides_the_secret(kek: bytes, kid: str, secret: bytes) -> None:
    sealed = sealing.seal(kek, kid, secret)
    assert sealing.unseal(kek, kid, sealed) == secret
    assert secret not in sealed and len(sealed) == 1 + 12 + len(secret) + 16
    assert sealing.seal(kek, kid, secret) != sealed  # a fresh nonce every time


@given(KEK, KID, st.binary(min_size=32, max_size=32), st.integers(min_value=0), st.integers(1, 255))
def test_any_altered_byte_is_refused(kek: bytes, kid: str, secret: bytes, where: int, flip: int) -> None:
    sealed = bytearray(sealing.seal(kek, kid, secret))
    sealed[where % len(sealed)] ^= flip
    with pytest.raises(sealing.SealedKeyUnreadable):
        sealing.unseal(kek, kid, bytes(sealed))


@given(KEK, KID, KID, st.binary(min_size=32, max_size=32))
def test_a_blob_moved_to_another_key_does_not_open(kek: bytes, kid: str, other: str, secret: bytes) -> None:
    sealed = sealing.seal(kek, kid, secret)
    if other != kid:
        with pytest.raises(sealing.SealedKeyUnreadable):
            sealing.unseal(kek, other, sealed)


@given(st.binary(max_size=16))
def test_short_or_foreign_blobs_are_refused(blob: bytes) -> None:
    with pytest.raises(sealing.SealedKeyUnreadable):
        sealing.unseal(b"k" * 32, "AAAAAAAAAAA", blob)


@given(KEK, st.booleans())
def test_kek_text_round_trips_with_or_without_padding(kek: bytes, padded: bool) -> None:
    text = base64.urlsafe_b64encode(kek).decode()
    assert decode_kek(text if padded else text.rstrip("=")) == kek


@given(st.text(max_size=80))
def test_kek_text_is_32_bytes_of_base64url_or_refused(text: str) -> None:
    message = ""
    try:
        raw = decode_kek(text)
    except ValueError as exc:
        raw, message = b"", str(exc)
    assert len(raw) == 32 or "INTEGMED_SIGNING_KEK" in message
