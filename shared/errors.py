"""Domain errors shared by the desktop and the server.

A `RuleViolation` names the field it is about, so the desktop can put the message next to the input and the
server can render it as one entry of a 422 problem's `errors` list.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class DomainError(Exception):
    """Base class of every expected, user-facing domain failure."""

    code: str = "domain.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldProblem:
    """One field-level problem.

    Args:
        field: dotted path of the offending field, e.g. ``abha_number`` or ``address.pincode``.
        code: stable machine-readable code, e.g. ``abha.check_digit``.
        message: sentence a receptionist can act on.
    """

    field: str
    code: str
    message: str


@dataclass
class RuleViolation(DomainError):
    """One or more fields break a validation rule.

    Args:
        problems: the field problems found; at least one.
    """

    problems: list[FieldProblem] = field(default_factory=list)
    code: str = "validation.failed"

    def __post_init__(self) -> None:
        DomainError.__init__(self, "; ".join(f"{p.field}: {p.message}" for p in self.problems))


class Conflict(DomainError):
    """The change clashes with the stored state (e.g. duplicate ABHA number in a clinic)."""

    code = "conflict"


class NotAllowed(DomainError):
    """The actor may not do this (role, clinic scope or qualification)."""

    code = "not_allowed"
