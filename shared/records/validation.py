"""Bridges between `shared.errors.RuleViolation` and pydantic validation errors."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from shared.errors import FieldProblem, RuleViolation


def as_pydantic(fn: Callable[[str], str], value: str) -> str:
    """Run a shared validator and turn its `RuleViolation` into a pydantic error with the same code.

    Args:
        fn: a validator such as `shared.ids.normalize_mobile`.
        value: the raw value.

    Returns:
        The normalised value.

    Raises:
        PydanticCustomError: carrying the rule's code and message.
    """
    try:
        return fn(value)
    except RuleViolation as exc:
        problem = exc.problems[0]
        raise PydanticCustomError(problem.code, problem.message) from None


def violation_from(exc: ValidationError) -> RuleViolation:
    """The same problems as a `RuleViolation` (for rules checked after the request body was parsed).

    Args:
        exc: a pydantic validation error.

    Returns:
        A `RuleViolation` with one `FieldProblem` per pydantic error, the field as a dotted path.
    """
    return RuleViolation(
        [
            FieldProblem(".".join(str(p) for p in err["loc"]) or "body", str(err["type"]), str(err["msg"]))
            for err in exc.errors()
        ]
    )
