"""Prescribing knowledge over HTTP: the same pure functions the desktop runs offline (shared.rx)."""

from __future__ import annotations

from functools import cache

from shared.rx.formulary import Formulary
from shared.rx.interactions import CheckRequest, CheckResult, InteractionKB, NameResolver, check, default_resolver
from shared.rx.shorthand import ExpandedLine, expand


@cache
def _knowledge() -> tuple[InteractionKB, NameResolver]:
    kb = InteractionKB.load_default()
    return kb, default_resolver(kb)


def check_interactions(request: CheckRequest) -> CheckResult:
    """Drug–drug, drug–herb, drug/herb–condition and duplicate-therapy findings with a safety score."""
    kb, resolver = _knowledge()
    return check(request, kb, resolver)


def expand_shorthand(line: str) -> ExpandedLine:
    """One shorthand line ("Metf 1000 bd 30d") expanded against the shipped formulary; never guesses."""
    return expand(line, Formulary.load_default())
