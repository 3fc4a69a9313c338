"""A verified QR plus the prescription's known status events (`shared.signing.standing`): a cancelled or
superseded prescription is INVALID with its own reason, a dispensed one stays VALID with a note, and only
events about the very content verified count."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.signing.errors import Reason
from shared.signing.rx import SignedPrescription, Verification, verify_qr_payload
from shared.signing.standing import apply_standing, latest_event
from shared.signing.status import STATUSES, TERMINAL, StatusEvent
from shared.signing.testing import TestChain, make_test_chain, sample_content

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return make_test_chain(now=NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def signed(chain: TestChain) -> SignedPrescription:
    return chain.sign(sample_content(issued_at=NOW - timedelta(hours=3)))


@pytest.fixture(scope="module")
def verified(chain: TestChain, signed: SignedPrescription) -> Verification:
    result = verify_qr_payload(signed.qr_payload, chain.trust, now=NOW)
    assert result.valid, result.message
    return result


def event(signed: SignedPrescription, seq: int, status: str, reason: str, **changes: object) -> StatusEvent:
    made = StatusEvent(
        rx_id=signed.content.rx_id,
        content_hash=signed.content_hash,
        seq=seq,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        at=NOW - timedelta(hours=2) + timedelta(minutes=seq),
        kid="AAAAAAAAAAA",
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def test_nothing_known_leaves_the_verification_as_it_was(verified: Verification) -> None:
    assert apply_standing(verified, [], known_from="this PC") is verified


def test_a_cancelled_prescription_is_invalid_with_the_date_and_the_prescribers_reason(
    verified: Verification, signed: SignedPrescription
) -> None:
    out = apply_standing(verified, [event(signed, 1, "cancelled", "Wrong dose printed")], known_from="this PC")
    assert (out.valid, out.reason) == (False, Reason.CANCELLED)
    assert "cancelled by the prescriber on 2026-11-26 07:01 UTC (Wrong dose printed)" in out.message
    assert "do not dispense" in out.message and "recorded on this PC" in out.message
    assert out.standing is not None and (out.standing.status, out.standing.seq) == ("cancelled", 1)
    assert out.content == verified.content and out.doctor == verified.doctor  # still shown to the pharmacist


def test_a_superseded_prescription_is_invalid_and_asks_for_the_new_one(
    verified: Verification, signed: SignedPrescription
) -> None:
    out = apply_standing(verified, [event(signed, 1, "superseded", "Dose changed")], known_from="the IntegMed server")
    assert (out.valid, out.reason) == (False, Reason.SUPERSEDED)
    assert "ask for the new prescription" in out.message and "recorded on the IntegMed server" in out.message


def test_a_dispensed_prescription_stays_valid_with_a_do_not_dispense_again_note(
    verified: Verification, signed: SignedPrescription
) -> None:
    out = apply_standing(verified, [event(signed, 1, "dispensed", "Apollo Pharmacy, Pune")], known_from="this PC")
    assert (out.valid, out.reason, out.message) == (True, Reason.VALID, verified.message)
    assert out.notes[-1].startswith("already dispensed on 2026-11-26 07:01 UTC (Apollo Pharmacy, Pune)")
    assert "do not dispense it again" in out.notes[-1]
    assert out.standing is not None and out.standing.status == "dispensed"


def test_dispensed_then_cancelled_is_cancelled(verified: Verification, signed: SignedPrescription) -> None:
    events = [event(signed, 2, "cancelled", "Allergy found"), event(signed, 1, "dispensed", "Counter 2")]
    out = apply_standing(verified, events, known_from="this PC")
    assert out.reason is Reason.CANCELLED and out.standing is not None and out.standing.seq == 2


def test_events_about_other_content_or_another_prescription_do_not_count(
    verified: Verification, signed: SignedPrescription
) -> None:
    other_content = event(signed, 1, "cancelled", "x", content_hash="cd" * 32)
    other_rx = event(signed, 1, "cancelled", "x", rx_id=uuid.uuid4())
    assert apply_standing(verified, [other_content, other_rx], known_from="this PC") is verified


def test_an_already_invalid_qr_keeps_its_own_reason_and_gains_a_note(
    chain: TestChain, signed: SignedPrescription
) -> None:
    expired = verify_qr_payload(signed.qr_payload, chain.trust, now=NOW + timedelta(days=400))
    assert expired.reason is Reason.EXPIRED
    out = apply_standing(expired, [event(signed, 1, "cancelled", "Wrong patient")], known_from="this PC")
    assert out.reason is Reason.EXPIRED and out.message == expired.message
    assert out.notes[-1].startswith("also cancelled by the prescriber") and out.standing is not None


def test_an_unreadable_qr_is_left_alone(chain: TestChain, signed: SignedPrescription) -> None:
    broken = verify_qr_payload("IMRX1:not-base45", chain.trust, now=NOW)
    assert broken.content is None
    assert apply_standing(broken, [event(signed, 1, "cancelled", "x")], known_from="this PC") is broken


@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(STATUSES)), max_size=8))
def test_the_deciding_event_is_the_first_terminal_one_else_the_last(pairs: list[tuple[int, str]]) -> None:
    rx_id, digest = uuid.UUID(int=7), "ab" * 32
    events = [
        StatusEvent(rx_id, digest, seq, status, f"r{i}", NOW + timedelta(minutes=i), "AAAAAAAAAAA")  # type: ignore[arg-type]
        for i, (seq, status) in enumerate(pairs)
    ]
    chosen = latest_event(events, rx_id=rx_id, content_hash=digest)
    if not events:
        assert chosen is None
        return
    ordered = sorted(events, key=lambda e: (e.seq, e.at))
    terminal = [e for e in ordered if e.status in TERMINAL]
    assert chosen == (terminal[0] if terminal else ordered[-1])
