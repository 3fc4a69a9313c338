"""The status-event codec (`shared.signing.status`): round trip, the server's historical bytes, verification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.signing import cose, keys
from shared.signing.errors import Reason, VerificationError
from shared.signing.status import (
    STATUSES,
    StatusEvent,
    StatusEventError,
    decode_event,
    encode_event,
    read_event,
    sign_event,
    verify_event,
)
from shared.signing.testing import TestChain, make_test_chain

events = st.builds(
    StatusEvent,
    rx_id=st.uuids(),
    content_hash=st.binary(min_size=32, max_size=32).map(bytes.hex),
    seq=st.integers(min_value=1, max_value=2**40),
    status=st.sampled_from(STATUSES),
    reason=st.text(min_size=1, max_size=500),
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    kid=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=11, max_size=11),
)


@given(events)
def test_round_trip(event: StatusEvent) -> None:
    payload = encode_event(event)
    assert decode_event(payload) == event
    assert event.at.microsecond == 0


@given(st.binary(max_size=200))
def test_decode_refuses_garbage_with_a_domain_error(data: bytes) -> None:
    try:
        event = decode_event(data)
    except StatusEventError:
        return
    assert encode_event(event) == data  # only a canonical event payload decodes


def test_same_bytes_as_the_servers_original_payload() -> None:
    """What `sync_server.services.signing._event_payload` wrote before the codec moved here."""
    rx_id, digest = uuid.uuid4(), "ab" * 32
    at = datetime(2026, 11, 26, 7, 0, 5, tzinfo=UTC)
    old = cose.dumps_canonical(
        {
            1: rx_id.bytes,
            2: bytes.fromhex(digest),
            3: 2,
            4: "cancelled",
            5: "wrong dose",
            6: int(at.timestamp()),
            7: "k",
        }
    )
    assert encode_event(StatusEvent(rx_id, digest, 2, "cancelled", "wrong dose", at, "k")) == old


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": 0}, "seq"),
        ({"status": "lost"}, "status"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"content_hash": "AB" * 32}, "content_hash"),
        ({"at": datetime(2026, 1, 1)}, "time zone"),
    ],
)
def test_invalid_events_are_refused(change: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "rx_id": uuid.uuid4(), "content_hash": "ab" * 32, "seq": 1, "status": "cancelled", "reason": "r",
        "at": datetime.now(UTC), "kid": "k",
    }  # fmt: skip
    with pytest.raises(StatusEventError, match=message):
        StatusEvent(**(base | change))  # type: ignore[arg-type]


def _signed() -> tuple[bytes, StatusEvent, TestChain]:
    chain = make_test_chain()
    event = StatusEvent(
        uuid.uuid4(), "cd" * 32, 1, "cancelled", "wrong patient", datetime.now(UTC), keys.key_id(chain.doctor_key)
    )
    return sign_event(event, chain.doctor_key), event, chain


def test_verify_accepts_the_signers_event() -> None:
    signed, event, chain = _signed()
    got = verify_event(
        signed, rx_id=event.rx_id, content_hash=event.content_hash, doctor_certificate=chain.doctor_cert,
        issuer_certificate=chain.issuer_cert, trust=chain.trust,
    )  # fmt: skip
    assert got == event
    assert read_event(signed) == event


def test_verify_refuses_each_way_of_being_wrong() -> None:
    signed, event, chain = _signed()
    args = {"doctor_certificate": chain.doctor_cert, "issuer_certificate": chain.issuer_cert, "trust": chain.trust}
    flipped = bytearray(signed)
    flipped[-1] ^= 1
    with pytest.raises(VerificationError) as bad:
        verify_event(bytes(flipped), rx_id=event.rx_id, content_hash=event.content_hash, **args)  # type: ignore[arg-type]
    assert bad.value.reason is Reason.BAD_SIGNATURE
    with pytest.raises(VerificationError, match="another prescription"):
        verify_event(signed, rx_id=uuid.uuid4(), content_hash=event.content_hash, **args)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="other content"):
        verify_event(signed, rx_id=event.rx_id, content_hash="00" * 32, **args)  # type: ignore[arg-type]
    other = make_test_chain()
    with pytest.raises(VerificationError) as mismatch:
        verify_event(
            signed, rx_id=event.rx_id, content_hash=event.content_hash, doctor_certificate=other.doctor_cert,
            issuer_certificate=other.issuer_cert, trust=other.trust,
        )  # fmt: skip
    assert mismatch.value.reason is Reason.CERTIFICATE_MISMATCH
    with pytest.raises(VerificationError) as malformed:
        verify_event(b"\x00", rx_id=event.rx_id, content_hash=event.content_hash, **args)  # type: ignore[arg-type]
    assert malformed.value.reason is Reason.MALFORMED


def test_verify_refuses_a_certificate_expired_at_the_event() -> None:
    chain = make_test_chain(now=datetime.now(UTC) - timedelta(days=800))
    event = StatusEvent(uuid.uuid4(), "cd" * 32, 1, "cancelled", "r", datetime.now(UTC), keys.key_id(chain.doctor_key))
    with pytest.raises(VerificationError) as expired:
        verify_event(
            sign_event(event, chain.doctor_key), rx_id=event.rx_id, content_hash=event.content_hash,
            doctor_certificate=chain.doctor_cert, issuer_certificate=chain.issuer_cert, trust=chain.trust,
        )  # fmt: skip
    assert expired.value.reason is Reason.CERTIFICATE_EXPIRED


def test_sign_refuses_a_kid_that_is_not_the_keys() -> None:
    chain = make_test_chain()
    event = StatusEvent(uuid.uuid4(), "cd" * 32, 1, "cancelled", "r", datetime.now(UTC), "not-the-kid")
    with pytest.raises(StatusEventError, match="kid"):
        sign_event(event, chain.doctor_key)
