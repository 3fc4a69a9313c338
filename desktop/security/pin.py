"""Offline unlock: PIN/passphrase policy, scrypt hashing in a self-describing string, and a pure lockout policy.

A doctor who has signed in online once may unlock the app offline with a local PIN or passphrase. Only a
memory-hard hash is stored: scrypt (RFC 7914) with n=2**15, r=8, p=1 costs 32 MiB and tens of milliseconds per
guess, so a stolen database does not give the PIN away quickly. The stored string names its parameters,
"scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>", so the cost can be raised later; `needs_rehash` tells the caller to
store a fresh hash after the next successful unlock.

Text is NFKC-normalised before hashing, so the same passphrase typed through different keyboards or input
methods (composed or decomposed Devanagari, full-width digits) unlocks alike.

The lockout policy is pure: the caller keeps the count of consecutive failures and the `locked_until` time
(in the local store) and passes the current time in; nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import math
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from desktop.errors import KnownError
from shared.errors import FieldProblem, RuleViolation

SCHEME = "scrypt"
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 32
HASH_BYTES = 32
# Refuse to run a stored hash whose parameters would take more memory or time than this (a tampered file).
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16

MIN_PIN_DIGITS = 6
MIN_PASSPHRASE_CHARS = 8


def hash_pin(pin: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Hash a PIN or passphrase with a fresh random salt.

    Returns:
        "scrypt$n$r$p$salt_b64$hash_b64" (standard base64 without padding).
    """
    _check_params(n, r, p)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(pin, salt, n, r, p)
    return "$".join((SCHEME, str(n), str(r), str(p), _b64(salt), _b64(digest)))


def verify_pin(pin: str, encoded: str) -> bool:
    """True if `pin` matches the stored hash; the comparison takes the same time wherever they differ.

    Raises:
        ValueError: `encoded` is not a hash made by `hash_pin` (a damaged record, not a wrong PIN).
    """
    n, r, p, salt, expected = _decode(encoded)
    return hmac.compare_digest(_scrypt(pin, salt, n, r, p), expected)


def needs_rehash(encoded: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bool:
    """True if the stored hash was made with weaker parameters than the current ones."""
    stored_n, stored_r, stored_p, _, _ = _decode(encoded)
    return stored_n < n or stored_r < r or stored_p < p


def pin_policy_problems(pin: str) -> list[FieldProblem]:
    """What makes `pin` too weak; empty if it is acceptable.

    Rules: at least 6 digits for an all-digit PIN, otherwise at least 8 characters; not one repeated digit or
    character; not a run of consecutive digits up or down (123456, 987654, 890123). Digits of any script
    count (Devanagari १२३४५६ is a sequence too).
    """
    text = unicodedata.normalize("NFKC", pin)
    if text.isdecimal():
        if len(text) < MIN_PIN_DIGITS:
            return [_problem("pin.too_short", "Use at least 6 digits, or a passphrase of at least 8 characters.")]
        if len(set(text)) == 1:
            return [_problem("pin.repeated", "A PIN of one repeated digit is easy to guess. Mix the digits.")]
        if _is_sequence(text):
            return [_problem("pin.sequence", "A PIN that counts up or down, like 123456, is easy to guess.")]
        return []
    if len(text) < MIN_PASSPHRASE_CHARS:
        return [_problem("pin.too_short", "Use at least 6 digits, or a passphrase of at least 8 characters.")]
    if len(set(text)) == 1:
        return [_problem("pin.repeated", "A passphrase of one repeated character is easy to guess.")]
    return []


def check_pin_policy(pin: str) -> None:
    """Raise RuleViolation (field "pin") if `pin` breaks the policy of `pin_policy_problems`."""
    problems = pin_policy_problems(pin)
    if problems:
        raise RuleViolation(problems=problems)


class PinLockedError(KnownError):
    """Unlock refused: too many wrong PINs; carries the time the lock ends."""

    title = "Offline unlock is locked"
    default_message = "Too many wrong PINs were entered."
    action = "Wait until the time shown, or sign in online with the one-time code."
    code = "desktop.pin_locked"

    def __init__(self, locked_until: datetime, retry_after_s: float) -> None:
        minutes = max(1, math.ceil(retry_after_s / 60))
        super().__init__(
            f"Too many wrong PINs were entered. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )
        self.locked_until = locked_until
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class LockoutPolicy:
    """How long to refuse unlock after consecutive wrong PINs.

    The first `max_attempts - 1` failures cost nothing. Failure number `max_attempts` locks for
    `base_lock_s`, and each further failure multiplies the lock by `factor`, up to `max_lock_s`
    (defaults: 5th wrong PIN → 1 min, 6th → 2 min, 7th → 4 min, … capped at 1 hour).
    """

    max_attempts: int = 5
    base_lock_s: float = 60
    factor: float = 2
    max_lock_s: float = 3600

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_lock_s <= 0 or self.factor < 1 or self.max_lock_s < self.base_lock_s:
            raise ValueError(f"inconsistent lockout policy: {self}")

    def lock_duration_s(self, failed_attempts: int) -> float:
        """Seconds of lock after `failed_attempts` consecutive failures (0 below the threshold)."""
        if failed_attempts < self.max_attempts:
            return 0.0
        # Bound the exponent: past ~64 doublings every realistic policy is at its cap, and floats overflow later.
        steps = min(failed_attempts - self.max_attempts, 64)
        return float(min(self.max_lock_s, self.base_lock_s * self.factor**steps))

    def after_failure(self, failed_attempts: int, now: datetime) -> datetime | None:
        """When unlock may be tried again after this failure, or None if not locked.

        Args:
            failed_attempts: consecutive failures including the one just made.
            now: current time, timezone-aware.
        """
        _check_aware(now)
        seconds = self.lock_duration_s(failed_attempts)
        return now + timedelta(seconds=seconds) if seconds > 0 else None

    def check(self, locked_until: datetime | None, now: datetime) -> None:
        """Raise PinLockedError if `now` is before `locked_until`; do nothing otherwise."""
        _check_aware(now)
        if locked_until is None:
            return
        _check_aware(locked_until)
        remaining = (locked_until - now).total_seconds()
        if remaining > 0:
            raise PinLockedError(locked_until, remaining)


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    secret = unicodedata.normalize("NFKC", pin).encode("utf-8")
    # OpenSSL's default memory cap (32 MiB) is exactly 128·n·r for n=2**15, r=8, which it refuses; allow twice.
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r * p + 2**20, dklen=HASH_BYTES)


def _decode(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError("not a scrypt PIN hash")
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error) as exc:
        raise ValueError("damaged scrypt PIN hash") from exc
    _check_params(n, r, p)
    if len(salt) < 16 or len(digest) != HASH_BYTES:
        raise ValueError("damaged scrypt PIN hash")
    return n, r, p, salt, digest


def _check_params(n: int, r: int, p: int) -> None:
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise ValueError(f"unsupported scrypt parameters n={n} r={r} p={p}")


def _is_sequence(digits: str) -> bool:
    values = [unicodedata.decimal(ch) for ch in digits]
    steps = {(b - a) % 10 for a, b in itertools.pairwise(values)}
    return steps in ({1}, {9})


def _problem(code: str, message: str) -> FieldProblem:
    return FieldProblem(field="pin", code=code, message=message)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("lockout times must be timezone-aware")
