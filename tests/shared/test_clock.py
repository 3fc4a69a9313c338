"""Hybrid logical clock: stamp order, text encoding, monotonicity and the ±1 day clock-skew rules."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.clock import (
    DESKTOP_MAX_DRIFT_MS,
    HLC,
    MAX_COUNTER,
    MAX_DRIFT_MS,
    MAX_WALL_MS,
    PC_CLOCK_TOLERANCE_MS,
    ClockSkewError,
    Stamp,
    check_incoming,
    decode,
    encode,
)
from shared.errors import DomainError
from shared.sync.merge import MergeOutcome, Side, merge_patient

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T = 1_764_000_000_000  # 2025-11-24, the "true" time of the scenarios

nodes = st.from_regex(r"[0-9a-z_-]{1,64}", fullmatch=True)
stamps = st.builds(Stamp, st.integers(0, MAX_WALL_MS), st.integers(0, MAX_COUNTER), nodes)


class FakeWall:
    """A wall clock the test sets by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class TestStamp:
    def test_orders_by_wall_then_counter_then_node(self) -> None:
        ordered = [Stamp(1, 5, "z"), Stamp(2, 0, "a"), Stamp(2, 1, "a"), Stamp(2, 1, "b"), Stamp(3, 0, "a")]
        assert all(a < b and not b < a for a, b in pairwise(ordered))
        assert Stamp(2, 1, "a") == Stamp(2, 1, "a")

    @pytest.mark.parametrize(
        ("wall", "counter", "node"),
        [
            (-1, 0, "a"),
            (MAX_WALL_MS + 1, 0, "a"),
            (0, -1, "a"),
            (0, MAX_COUNTER + 1, "a"),
            (0, 0, ""),
            (0, 0, "PC-A"),
            (0, 0, "a b"),
            (0, 0, "a" * 65),
            (0, 0, "pc.1"),
        ],
    )
    def test_rejects_out_of_range_parts(self, wall: int, counter: int, node: str) -> None:
        with pytest.raises(ValueError, match="HLC"):
            Stamp(wall, counter, node)


class TestEncoding:
    def test_encodes_fixed_width_hex_then_node(self) -> None:
        stamp = Stamp(0x19AB4C27D10, 0x2A, "019ab4c2-7000-7000-8000-0000000000d1")
        assert encode(stamp) == "019ab4c27d10-002a-019ab4c2-7000-7000-8000-0000000000d1"
        assert str(stamp) == encode(stamp)

    @given(stamps)
    def test_decode_inverts_encode(self, stamp: Stamp) -> None:
        assert decode(encode(stamp)) == stamp

    @given(stamps, stamps)
    def test_text_order_is_stamp_order(self, a: Stamp, b: Stamp) -> None:
        assert (encode(a) < encode(b)) == (a < b)
        assert (encode(a) == encode(b)) == (a == b)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "019ab4c27d10-002a",
            "019ab4c27d10-002a-",
            "19ab4c27d10-002a-a",
            "019AB4C27D10-002a-a",
            "019ab4c27d10-2a-a",
            "019ab4c27d10_002a_a",
            "019ab4c27d10-002a-a\n",
            " 019ab4c27d10-002a-a",
            "019ab4c27d10-002a-PC",
            "01xab4c27d10-002a-a",
            "019ab4c27d10-002a-" + "a" * 65,
        ],
    )
    def test_decode_refuses_malformed_text(self, text: str) -> None:
        with pytest.raises(ValueError, match="not an HLC stamp"):
            decode(text)


# One step of a node's life: the wall clock reads `wall` (it may go backwards), then the node either stamps a
# local event or receives a remote stamp that is `lead` ms ahead of its wall clock (never beyond the bound).
steps = st.lists(
    st.tuples(
        st.integers(0, 10**13),
        st.none() | st.tuples(st.integers(-(10**12), MAX_DRIFT_MS), st.integers(0, MAX_COUNTER), nodes),
    ),
    min_size=1,
    max_size=60,
)


class TestHLC:
    @given(steps)
    def test_every_stamp_exceeds_all_stamps_seen_before(
        self, script: list[tuple[int, tuple[int, int, str] | None]]
    ) -> None:
        wall = FakeWall(0)
        clock = HLC("me", wall_clock=wall)
        seen: list[Stamp] = []
        for reading, remote in script:
            wall.ms = reading
            if remote is None:
                stamp = clock.now()
            else:
                lead, counter, node = remote
                incoming = Stamp(max(0, reading + lead), counter, node)
                stamp = clock.update(incoming)
                assert stamp > incoming
            assert all(stamp > earlier for earlier in seen)
            assert stamp.wall_ms >= reading  # never behind the physical clock
            assert stamp.node == "me"
            assert clock.last == stamp
            seen.append(stamp)

    def test_counter_overflow_borrows_a_millisecond(self) -> None:
        clock = HLC("me", wall_clock=FakeWall(100), last=Stamp(100, MAX_COUNTER, "me"))
        assert clock.now() == Stamp(101, 0, "me")
        assert clock.update(Stamp(101, MAX_COUNTER, "other")) == Stamp(102, 0, "me")

    def test_update_takes_the_greatest_of_local_remote_and_physical(self) -> None:
        wall = FakeWall(1_000)
        clock = HLC("me", wall_clock=wall, last=Stamp(1_000, 7, "me"))
        assert clock.update(Stamp(1_000, 3, "x")) == Stamp(1_000, 8, "me")
        assert clock.update(Stamp(1_000, 9, "x")) == Stamp(1_000, 10, "me")
        assert clock.update(Stamp(1_200, 4, "x")) == Stamp(1_200, 5, "me")
        assert clock.update(Stamp(900, 50, "x")) == Stamp(1_200, 6, "me")
        wall.ms = 5_000
        assert clock.update(Stamp(900, 50, "x")) == Stamp(5_000, 0, "me")

    def test_restart_from_persisted_stamp_never_goes_back(self) -> None:
        first = HLC("me", wall_clock=FakeWall(T))
        before = first.now()
        restarted = HLC("me", wall_clock=FakeWall(T - DAY), last=first.last)
        assert restarted.now() > before

    def test_refuses_remote_stamp_beyond_drift_and_stays_unchanged(self) -> None:
        clock = HLC("me", wall_clock=FakeWall(T), last=Stamp(T, 3, "me"))
        with pytest.raises(ClockSkewError) as info:
            clock.update(Stamp(T + MAX_DRIFT_MS + 1, 0, "x"))
        assert isinstance(info.value, DomainError)
        assert info.value.code == "sync.clock_skew"
        assert (info.value.ahead_ms, info.value.max_drift_ms) == (MAX_DRIFT_MS + 1, MAX_DRIFT_MS)
        assert "5 min 0 s" in info.value.message
        assert clock.last == Stamp(T, 3, "me")
        assert clock.update(Stamp(T + MAX_DRIFT_MS, 0, "x")) == Stamp(T + MAX_DRIFT_MS, 1, "me")

    def test_reads_the_system_clock_by_default(self) -> None:
        before = time.time_ns() // 1_000_000
        stamp = HLC("me").now()
        after = time.time_ns() // 1_000_000
        assert before <= stamp.wall_ms <= after

    def test_refuses_bad_configuration(self) -> None:
        with pytest.raises(ValueError, match="node"):
            HLC("Not A Node")
        with pytest.raises(ValueError, match="max_drift_ms"):
            HLC("me", max_drift_ms=-1)


class TestCheckIncoming:
    @pytest.mark.parametrize(
        ("wall", "accepted"),
        [(T - 30 * DAY, True), (T, True), (T + MAX_DRIFT_MS, True), (T + MAX_DRIFT_MS + 1, False)],
    )
    def test_accepts_old_stamps_and_refuses_future_ones(self, wall: int, accepted: bool) -> None:
        verdict = check_incoming(Stamp(wall, 0, "pc"), T)
        assert verdict.accepted is accepted
        assert verdict.ahead_ms == wall - T
        assert verdict.max_drift_ms == MAX_DRIFT_MS

    def test_refuses_negative_bound(self) -> None:
        with pytest.raises(ValueError, match="max_drift_ms"):
            check_incoming(Stamp(T, 0, "pc"), T, -1)


class TestDayOfClockSkew:
    """The issue's rule: clock skew of ±1 day between PCs must not let a stale edit win."""

    def test_slow_pc_edit_after_pull_beats_the_pulled_edit(self) -> None:
        server = HLC("server", wall_clock=FakeWall(T))
        pc_b = HLC("pc-b", wall_clock=FakeWall(T), max_drift_ms=DESKTOP_MAX_DRIFT_MS)
        pc_a = HLC("pc-a", wall_clock=FakeWall(T - DAY + MINUTE), max_drift_ms=DESKTOP_MAX_DRIFT_MS)
        registered = {"mobile": "+919800000001"}, {"mobile": encode(Stamp(T - HOUR, 0, "pc-b"))}

        b_stamp = pc_b.now()
        assert check_incoming(b_stamp, T).accepted
        server_hlc = server.update(b_stamp)
        on_server = merge_patient(*registered, {"mobile": "+919800000002"}, {"mobile": encode(b_stamp)})
        assert on_server.outcome is MergeOutcome.APPLIED

        pc_a.update(b_stamp)  # A pulls B's change and the server clock
        pc_a.update(server_hlc)
        a_stamp = pc_a.now()
        assert a_stamp.wall_ms > T - DAY + MINUTE  # A's wall clock alone would have stamped it a day early
        assert a_stamp > b_stamp

        assert check_incoming(a_stamp, T + 2 * MINUTE).accepted
        result = merge_patient(
            on_server.fields, on_server.field_hlcs, {"mobile": "+919800000003"}, {"mobile": encode(a_stamp)}
        )
        assert result.outcome is MergeOutcome.APPLIED
        assert result.fields["mobile"] == "+919800000003"
        assert [(lost.value, lost.side) for lost in result.lost] == [("+919800000002", Side.CURRENT)]

    def test_slow_pc_edit_without_pull_would_lose(self) -> None:
        # The same edit from a fresh clock, i.e. what a wall-clock stamp does: the pull is what fixes it.
        b_stamp = Stamp(T, 0, "pc-b")
        a_stamp = HLC("pc-a", wall_clock=FakeWall(T - DAY + MINUTE)).now()
        result = merge_patient(
            {"mobile": "B"}, {"mobile": encode(b_stamp)}, {"mobile": "A"}, {"mobile": encode(a_stamp)}
        )
        assert result.outcome is MergeOutcome.NOOP
        assert result.fields["mobile"] == "B"

    def test_fast_pc_edit_is_rejected_by_the_server(self) -> None:
        pc_c = HLC("pc-c", wall_clock=FakeWall(T + DAY), max_drift_ms=DESKTOP_MAX_DRIFT_MS)
        c_stamp = pc_c.now()
        b_later = Stamp(T + HOUR, 0, "pc-b")  # an edit made an hour later in true time
        assert c_stamp > b_later  # accepted, C's day-old-in-true-time edit would beat B's newer one

        verdict = check_incoming(c_stamp, server_now_ms=T + MINUTE)
        assert not verdict.accepted
        assert verdict.ahead_ms == DAY - MINUTE
        error = verdict.to_error()
        assert error.code == "sync.clock_skew"
        assert "23 h 59 min ahead of the server" in error.message
        # The server's own clock refuses the stamp too, so it never drags other clocks a day ahead.
        with pytest.raises(ClockSkewError):
            HLC("server", wall_clock=FakeWall(T + MINUTE)).update(c_stamp)

    def test_a_day_long_bound_would_let_the_fast_pc_win(self) -> None:
        c_stamp = Stamp(T + DAY, 0, "pc-c")
        assert check_incoming(c_stamp, T, max_drift_ms=DAY + HOUR).accepted  # why the default is minutes

    def test_desktop_bound_covers_a_day_slow_pc_but_not_two(self) -> None:
        server_stamp = Stamp(T + MAX_DRIFT_MS, 0, "server")  # the most a server ever hands out at time T
        day_slow = HLC("pc-a", wall_clock=FakeWall(T - PC_CLOCK_TOLERANCE_MS), max_drift_ms=DESKTOP_MAX_DRIFT_MS)
        assert day_slow.update(server_stamp) > server_stamp
        two_days_slow = HLC("pc-a", wall_clock=FakeWall(T - 2 * DAY), max_drift_ms=DESKTOP_MAX_DRIFT_MS)
        with pytest.raises(ClockSkewError, match="2 d 0 h 5 min ahead of this computer"):
            two_days_slow.update(server_stamp)
