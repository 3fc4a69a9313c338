"""Offline unlock PIN: scrypt hash format and round trip, the PIN policy, and the lockout policy."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from desktop.errors import KnownError
from desktop.security.pin import (
    SCRYPT_N,
    LockoutPolicy,
    PinLockedError,
    check_pin_policy,
    hash_pin,
    needs_rehash,
    pin_policy_problems,
    verify_pin,
)
from shared.errors import RuleViolation

# Property tests use a cheap cost (the encoded string carries it); one test runs the production cost.
CHEAP = {"n": 2**4, "r": 8, "p": 1}
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


class TestHashPin:
    def test_production_parameters_round_trip(self) -> None:
        encoded = hash_pin("482913")
        scheme, n, r, p, salt, digest = encoded.split("$")
        assert (scheme, n, r, p) == ("scrypt", str(2**15), "8", "1")
        assert len(salt) == 43 and len(digest) == 43  # 32 bytes in unpadded base64
        assert verify_pin("482913", encoded)
        assert not verify_pin("482914", encoded)

    def test_same_pin_hashes_differently_each_time(self) -> None:
        assert hash_pin("482913", **CHEAP) != hash_pin("482913", **CHEAP)

    @settings(max_examples=60, deadline=None)
    @given(pin=st.text(min_size=0, max_size=40))
    def test_any_pin_round_trips(self, pin: str) -> None:
        assert verify_pin(pin, hash_pin(pin, **CHEAP))

    @settings(max_examples=60, deadline=None)
    @given(pin=st.text(max_size=40), other=st.text(max_size=40))
    def test_any_different_pin_fails(self, pin: str, other: str) -> None:
        assume(unicodedata.normalize("NFKC", pin) != unicodedata.normalize("NFKC", other))
        assert not verify_pin(other, hash_pin(pin, **CHEAP))

    def test_composed_and_decomposed_devanagari_unlock_alike(self) -> None:
        # क़ typed as one code point (U+0958) or as क + nukta (U+0915 U+093C)
        composed, decomposed = "\u0958लम-रा१२", "\u0915\u093cलम-रा१२"
        assert composed != decomposed
        assert verify_pin(decomposed, hash_pin(composed, **CHEAP))

    @pytest.mark.parametrize(
        "encoded",
        [
            "",
            "bcrypt$2$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
            "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # n not a power of two
            "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # n beyond the cap
            "scrypt$16$8$1$!!!$" + "A" * 43,
            "scrypt$16$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAA",  # truncated hash
        ],
    )
    def test_damaged_hash_is_an_error_not_a_wrong_pin(self, encoded: str) -> None:
        with pytest.raises(ValueError, match="scrypt"):
            verify_pin("482913", encoded)

    def test_weaker_stored_parameters_need_rehash(self) -> None:
        assert needs_rehash(hash_pin("482913", **CHEAP))
        assert not needs_rehash(f"scrypt${SCRYPT_N}$8$1$" + "A" * 43 + "$" + "A" * 43)


class TestPinPolicy:
    @pytest.mark.parametrize("pin", ["482913", "1357924680", "correct horse", "मेरा पासवर्ड", "70 41 99"])
    def test_accepts(self, pin: str) -> None:
        assert pin_policy_problems(pin) == []
        check_pin_policy(pin)

    @pytest.mark.parametrize(
        ("pin", "code"),
        [
            ("", "pin.too_short"),
            ("12345", "pin.too_short"),
            ("abc1234", "pin.too_short"),
            ("000000", "pin.repeated"),
            ("99999999", "pin.repeated"),
            ("aaaaaaaa", "pin.repeated"),
            ("123456", "pin.sequence"),
            ("654321", "pin.sequence"),
            ("890123", "pin.sequence"),
            ("१२३४५६", "pin.sequence"),  # Devanagari digits
            ("１２３４５６", "pin.sequence"),  # full-width digits
        ],
    )
    def test_rejects_with_a_clear_message(self, pin: str, code: str) -> None:
        with pytest.raises(RuleViolation) as caught:
            check_pin_policy(pin)
        (problem,) = caught.value.problems
        assert (problem.field, problem.code) == ("pin", code)
        assert problem.message.endswith(".")

    @given(digits=st.text(alphabet="0123456789", min_size=6, max_size=12))
    def test_all_digit_pins_of_six_or_more_fail_only_for_repeats_or_runs(self, digits: str) -> None:
        codes = {p.code for p in pin_policy_problems(digits)}
        assert codes <= {"pin.repeated", "pin.sequence"}
        if len(set(digits)) == 1:
            assert codes == {"pin.repeated"}


class TestLockoutPolicy:
    def test_no_lock_before_the_fifth_failure(self) -> None:
        policy = LockoutPolicy()
        assert [policy.after_failure(n, NOW) for n in range(5)] == [None] * 5

    def test_fifth_failure_locks_one_minute_then_doubles(self) -> None:
        policy = LockoutPolicy()
        assert [policy.lock_duration_s(n) for n in range(5, 10)] == [60, 120, 240, 480, 960]
        assert policy.after_failure(5, NOW) == NOW + timedelta(minutes=1)

    @given(failures=st.integers(min_value=0, max_value=10_000))
    def test_lock_escalates_and_caps(self, failures: int) -> None:
        policy = LockoutPolicy()
        this, following = policy.lock_duration_s(failures), policy.lock_duration_s(failures + 1)
        assert 0 <= this <= following <= policy.max_lock_s
        if failures >= policy.max_attempts:
            assert this >= policy.base_lock_s
        if failures >= policy.max_attempts + 6:  # 60 · 2**6 > 3600
            assert this == policy.max_lock_s

    @given(
        max_attempts=st.integers(1, 20),
        base=st.floats(1, 600),
        factor=st.floats(1, 10),
        cap=st.floats(600, 86_400),
        failures=st.integers(0, 500),
    )
    def test_any_policy_is_monotonic_and_capped(
        self, max_attempts: int, base: float, factor: float, cap: float, failures: int
    ) -> None:
        policy = LockoutPolicy(max_attempts, base, factor, cap)
        assert policy.lock_duration_s(failures) <= policy.lock_duration_s(failures + 1) <= cap

    def test_check_refuses_until_the_lock_ends(self) -> None:
        policy = LockoutPolicy()
        locked_until = policy.after_failure(6, NOW)
        with pytest.raises(PinLockedError) as caught:
            policy.check(locked_until, NOW + timedelta(seconds=30))
        assert caught.value.retry_after_s == 90
        assert "Try again in 2 minutes." in caught.value.message
        assert isinstance(caught.value, KnownError)
        policy.check(locked_until, NOW + timedelta(minutes=2))
        policy.check(None, NOW)

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            LockoutPolicy().after_failure(5, datetime(2026, 1, 1))

    def test_inconsistent_policy_is_refused(self) -> None:
        with pytest.raises(ValueError, match="inconsistent"):
            LockoutPolicy(max_lock_s=10)
