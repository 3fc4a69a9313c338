"""Identifiers: UUIDv7 generation, ABHA number / ABHA address and Indian mobile number validation.

ABHA number rules: 14 digits shown as ``XX-XXXX-XXXX-XXXX`` whose last digit is a Luhn (mod 10) check digit
(NHA ABDM docs ``registries/abha.md``; see ../shared/reference/abdm_hpr_fhir.md §5.1). ABHA address rules
follow the consent API pattern ``^[a-zA-Z0-9][a-zA-Z0-9_.\\-!]+[a-zA-Z0-9]@(abdm|sbx)$`` (hiecm-m3.yaml).
Mobile numbers follow the National Numbering Plan: 10 digits, the first one 6-9, country code +91.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from shared.errors import FieldProblem, RuleViolation

_uuid_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def uuid7() -> uuid.UUID:
    """Return a new RFC 9562 version-7 UUID, monotonic within this process.

    Within one millisecond the 74 random bits are incremented instead of redrawn (RFC 9562 §6.2 method 2),
    so ids generated in a burst still sort in creation order.

    Returns:
        A time-ordered UUID.
    """
    global _last_ms, _last_rand
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
            if rand >= 1 << 74:  # counter overflow: borrow the next millisecond
                ms += 1
                rand = int.from_bytes(os.urandom(10), "big") >> 6
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 6
        _last_ms, _last_rand = ms, rand
    rand_a = rand >> 62
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def luhn_check_digit(payload: str) -> int:
    """Compute the Luhn (mod 10) check digit for a string of digits.

    Args:
        payload: the digits that precede the check digit.

    Returns:
        The digit 0-9 that makes ``payload + digit`` pass the Luhn check.

    Raises:
        ValueError: if ``payload`` contains anything but ASCII digits.
    """
    if not payload.isascii() or not payload.isdigit():
        raise ValueError("Luhn payload must be ASCII digits")
    total = 0
    # Double every second digit counting leftwards from the digit next to the check digit.
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    """True when the digit string ends in its correct Luhn check digit."""
    if len(number) < 2 or not number.isascii() or not number.isdigit():
        return False
    return luhn_check_digit(number[:-1]) == int(number[-1])


_ABHA_NUMBER_SHAPE = re.compile(r"^\d{2}-?\d{4}-?\d{4}-?\d{4}$")


def normalize_abha_number(raw: str, *, field: str = "abha_number") -> str:
    """Validate an ABHA number and return its canonical 14 digits.

    Args:
        raw: as typed: 14 digits, with or without the dashes of ``XX-XXXX-XXXX-XXXX``; spaces are ignored.
        field: field name used in the error.

    Returns:
        The 14 digits without separators.

    Raises:
        RuleViolation: on a wrong shape or a wrong Luhn check digit.
    """
    text = raw.strip().replace(" ", "")
    if not text.isascii() or not _ABHA_NUMBER_SHAPE.match(text):
        raise RuleViolation(
            [FieldProblem(field, "abha.format", "ABHA number must be 14 digits, written XX-XXXX-XXXX-XXXX")]
        )
    digits = text.replace("-", "")
    if not luhn_valid(digits):
        raise RuleViolation(
            [
                FieldProblem(
                    field,
                    "abha.check_digit",
                    "ABHA number check digit is wrong: please re-check the number on the ABHA card",
                )
            ]
        )
    return digits


def format_abha_number(digits: str) -> str:
    """Format canonical ABHA digits as ``XX-XXXX-XXXX-XXXX`` for display and M1 ``loginId``."""
    return f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}"


_ABHA_ADDRESS = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-!]+[a-zA-Z0-9]@(abdm|sbx)$")


def normalize_abha_address(raw: str, *, field: str = "abha_address") -> str:
    """Validate an ABHA address (``name@abdm`` or ``name@sbx``) and return it lower-cased.

    Args:
        raw: the address as typed.
        field: field name used in the error.

    Returns:
        The address, trimmed and lower-cased (ABHA addresses are case-insensitive).

    Raises:
        RuleViolation: when the shape is not an ABHA address.
    """
    text = raw.strip().lower()
    if not text.isascii() or len(text) > 80 or not _ABHA_ADDRESS.match(text):
        raise RuleViolation(
            [
                FieldProblem(
                    field,
                    "abha_address.format",
                    "ABHA address must look like name@abdm (or name@sbx in the sandbox)",
                )
            ]
        )
    return text


_MOBILE_SEPARATORS = re.compile(r"[\s\-().]")


def normalize_mobile(raw: str, *, field: str = "mobile") -> str:
    """Validate an Indian mobile number and return it as ``+91XXXXXXXXXX``.

    Accepted forms: ``9876543210``, ``09876543210``, ``919876543210``, ``+91 98765 43210``,
    ``+91-98765-43210``.

    Args:
        raw: the number as typed.
        field: field name used in the error.

    Returns:
        The E.164 form, ``+91`` followed by 10 digits.

    Raises:
        RuleViolation: when the number is not a 10-digit Indian mobile starting with 6-9.
    """
    text = _MOBILE_SEPARATORS.sub("", raw.strip())
    if text.startswith("+"):
        if not text.startswith("+91"):
            raise RuleViolation([FieldProblem(field, "mobile.country", "Only Indian (+91) mobiles are accepted")])
        text = text[3:]
    elif len(text) == 12 and text.startswith("91"):
        text = text[2:]
    elif len(text) == 11 and text.startswith("0"):
        text = text[1:]
    if not text.isascii() or not text.isdigit() or len(text) != 10:
        raise RuleViolation([FieldProblem(field, "mobile.format", "Mobile number must have 10 digits")])
    if text[0] not in "6789":
        raise RuleViolation([FieldProblem(field, "mobile.prefix", "Indian mobile numbers start with 6, 7, 8 or 9")])
    return "+91" + text


def mask_mobile(mobile: str) -> str:
    """Mask all but the last four digits, e.g. ``+91******3210``."""
    return mobile[:3] + "*" * (len(mobile) - 7) + mobile[-4:]
