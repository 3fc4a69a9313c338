"""ABHA number (Luhn), ABHA address, Indian mobile and UUIDv7 rules."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import RuleViolation
from shared.ids import (
    format_abha_number,
    luhn_check_digit,
    luhn_valid,
    mask_mobile,
    normalize_abha_address,
    normalize_abha_number,
    normalize_mobile,
    uuid7,
)

# Sandbox ABHA numbers published in NHA material (reference §5.1): all pass Luhn.
PUBLISHED = [
    "91-3772-0586-4665",
    "91-3075-5157-3552",
    "91-5006-4247-3341",
    "91-1130-8436-0800",
    "91-4281-1522-0611",
    "91-3670-8272-5162",
    "91-6166-8803-1734",
    "91-3171-3025-3881",
    "91-7561-4088-8857",
    "91-5101-6530-5101",
]

digits13 = st.text(alphabet="0123456789", min_size=13, max_size=13)


@pytest.mark.parametrize("abha", PUBLISHED)
def test_published_sandbox_numbers_pass(abha: str) -> None:
    assert normalize_abha_number(abha) == abha.replace("-", "")


def test_seed_example_fails_check_digit() -> None:
    with pytest.raises(RuleViolation) as info:
        normalize_abha_number("12-3456-7890-1234")
    assert info.value.problems[0].field == "abha_number"
    assert info.value.problems[0].code == "abha.check_digit"


@given(digits13)
def test_check_digit_makes_number_valid(body: str) -> None:
    full = body + str(luhn_check_digit(body))
    assert luhn_valid(full)
    assert normalize_abha_number(format_abha_number(full)) == full
    assert normalize_abha_number(full) == full


@given(digits13, st.integers(min_value=1, max_value=9))
def test_any_wrong_check_digit_is_refused(body: str, delta: int) -> None:
    wrong = (luhn_check_digit(body) + delta) % 10
    with pytest.raises(RuleViolation):
        normalize_abha_number(body + str(wrong))


@given(digits13, st.integers(min_value=0, max_value=12), st.integers(min_value=1, max_value=9))
def test_single_digit_typo_is_caught(body: str, pos: int, delta: int) -> None:
    full = body + str(luhn_check_digit(body))
    typo = full[:pos] + str((int(full[pos]) + delta) % 10) + full[pos + 1 :]
    assert not luhn_valid(typo)


@pytest.mark.parametrize(
    "bad", ["", "1234", "91-3772-0586-466", "91-3772-0586-46655", "९१३७७२०५८६४६६५", "91377205864a65"]
)
def test_wrong_shapes_are_format_errors(bad: str) -> None:
    with pytest.raises(RuleViolation) as info:
        normalize_abha_number(bad)
    assert info.value.problems[0].code == "abha.format"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9876543210", "+919876543210"),
        ("+91 98765 43210", "+919876543210"),
        ("09876543210", "+919876543210"),
        ("919876543210", "+919876543210"),
        ("+91-98765-43210", "+919876543210"),
        ("6000000000", "+916000000000"),
    ],
)
def test_mobile_forms(raw: str, expected: str) -> None:
    assert normalize_mobile(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("5876543210", "mobile.prefix"),
        ("12345", "mobile.format"),
        ("+14155550100", "mobile.country"),
        ("98765432100", "mobile.format"),
        ("98765abcde", "mobile.format"),
        ("९८७६५४३२१०", "mobile.format"),
    ],
)
def test_bad_mobiles(raw: str, code: str) -> None:
    with pytest.raises(RuleViolation) as info:
        normalize_mobile(raw)
    assert info.value.problems[0].code == code


@given(st.sampled_from("6789"), st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_every_valid_mobile_round_trips(first: str, rest: str) -> None:
    canonical = "+91" + first + rest
    assert normalize_mobile(canonical) == canonical
    assert normalize_mobile(first + rest) == canonical
    assert mask_mobile(canonical).endswith(rest[-4:])
    assert rest[:5] not in mask_mobile(canonical)[3:-4]


@given(st.text(max_size=30))
def test_mobile_never_crashes(raw: str) -> None:
    try:
        out = normalize_mobile(raw)
    except RuleViolation:
        return
    assert len(out) == 13 and out.startswith("+91") and out[3] in "6789"


@pytest.mark.parametrize("good", ["rajesh.kumar@abdm", "Rajesh_K@SBX", "a12@abdm", "91377205864665@sbx"])
def test_abha_addresses(good: str) -> None:
    assert normalize_abha_address(good) == good.lower()


@pytest.mark.parametrize("bad", ["rajesh@gmail.com", ".rajesh@abdm", "rajesh.@abdm", "r@abdm", "rajesh", "राजेश@abdm"])
def test_bad_abha_addresses(bad: str) -> None:
    with pytest.raises(RuleViolation):
        normalize_abha_address(bad)


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
