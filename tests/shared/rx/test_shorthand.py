"""Shorthand expansion: table-driven cases, the contract example, spans, and Hypothesis properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.rx import shorthand
from shared.rx.formulary import Formulary
from shared.rx.shorthand import ExpandedLine, expand
from shared.rx.timing import render_shorthand

CASES = yaml.safe_load((Path(__file__).parent / "shorthand_cases.yaml").read_text(encoding="utf-8"))["cases"]


@pytest.fixture(scope="module")
def formulary() -> Formulary:
    return Formulary.load_default()


def _check_spans(line: str, result: ExpandedLine) -> None:
    for u in result.unresolved:
        assert 0 <= u.start <= u.end <= len(line)
        assert line[u.start : u.end] == u.token


class TestContract:
    def test_metformin_example_expands_to_metformin_60_tablets(self, formulary: Formulary) -> None:
        result = expand("Metf 1000 bd 30d", formulary)
        body = result.model_dump(mode="json")
        assert body["generic_name"] == "METFORMIN"
        assert body["quantity"] == 60
        assert body["unresolved"] == []
        for key in ("generic_name", "strength", "dosage_form", "route", "frequency", "duration_days", "quantity",
                    "instructions", "rxnorm_code", "timing", "defaulted", "unresolved"):  # fmt: skip
            assert key in body

    def test_expanded_line_is_frozen_and_json_ready(self, formulary: Formulary) -> None:
        result = expand("amlo 5 0-0-1 x 1m", formulary)
        with pytest.raises(ValueError, match="frozen"):
            result.quantity = 1  # type: ignore[misc]
        assert ExpandedLine.model_validate_json(result.model_dump_json()) == result


@pytest.mark.parametrize("case", CASES, ids=[c["line"] or "<empty>" for c in CASES])
def test_case_from_table(case: dict[str, Any], formulary: Formulary) -> None:
    line = case["line"]
    result = shorthand._expand(line, formulary, 30)  # strict: no safety net, so a bug fails here
    body = result.model_dump(mode="json")
    for key, want in (case.get("expect") or {}).items():
        if key == "timing" and want:
            for tkey, tval in want.items():
                assert body["timing"].get(tkey) == tval, f"timing.{tkey}: {body['timing']}"
        else:
            assert body[key] == want, f"{key}: {body}"
    reasons = [u["reason"] for u in body["unresolved"]]
    wanted = case["unresolved"]
    if not wanted:
        assert reasons == []
    for fragment in wanted:
        assert any(fragment in r for r in reasons), f"{fragment!r} not in {reasons}"
    if "tokens" in case:
        assert [u["token"] for u in body["unresolved"]] == case["tokens"]
    if "defaulted" in case:
        assert sorted(body["defaulted"]) == sorted(case["defaulted"])
    _check_spans(line, result)


class TestSpans:
    def test_devanagari_digit_spans_point_into_the_original_text(self, formulary: Formulary) -> None:
        line = "amlo ५० od x ३d"
        result = expand(line, formulary)
        [u] = result.unresolved
        assert (u.token, u.start, u.end) == ("५०", 5, 7)

    def test_half_sign_span_covers_the_single_character(self, formulary: Formulary) -> None:
        line = "amlo 5 ½-0-½ x 10d zzz"
        result = expand(line, formulary)
        assert [(u.token, u.start) for u in result.unresolved] == [("zzz", 19)]
        assert result.timing["slot_pattern"] == "0.5-0-0.5"

    def test_unknown_words_next_to_each_other_merge_into_one_entry(self, formulary: Formulary) -> None:
        result = expand("amlo 5 od x 10d foo bar", formulary)
        assert [u.token for u in result.unresolved] == ["foo bar"]

    def test_missing_duration_is_an_empty_span_at_the_end(self, formulary: Formulary) -> None:
        line = "amlo 5 od"
        [u] = expand(line, formulary).unresolved
        assert (u.start, u.end, u.token) == (len(line), len(line), "")


class TestBadInput:
    def test_ten_kilobyte_line_is_refused_whole(self, formulary: Formulary) -> None:
        line = "metf 500 bd " * 900
        result = expand(line, formulary)
        [u] = result.unresolved
        assert (u.start, u.end) == (0, len(line))
        assert "one line holds one medicine" in u.reason
        assert result.generic_name is None

    def test_non_text_is_refused(self, formulary: Formulary) -> None:
        result = expand(None, formulary)  # type: ignore[arg-type]
        assert result.unresolved[0].reason == "the line is not text"

    def test_a_bug_becomes_an_unresolved_line_not_an_exception(
        self, formulary: Formulary, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(*_: object) -> ExpandedLine:
            raise RuntimeError("boom")

        monkeypatch.setattr(shorthand, "_expand", broken)
        result = expand("amlo 5 od", formulary)
        assert result.unresolved[0].reason == "this line could not be read; please retype it"
        assert "shorthand expansion failed" in caplog.text

    def test_days_per_month_setting_changes_month_durations(self, formulary: Formulary) -> None:
        assert expand("amlo 5 od x 1m", formulary, days_per_month=28).quantity == 28


# ---------------------------------------------------------------------------------------------------------
# Hypothesis properties
# ---------------------------------------------------------------------------------------------------------
_VOCAB = [
    "metf", "amlo", "5", "500", "1000", "bd", "od", "tds", "qid", "hs", "sos", "prn", "stat", "max", "4/d", "x",
    "5d", "1m", "2/52", "5/7", "1-0-1", "½-0-½", "0-0-1", "ac", "pc", "bbf", "then", "qty", "30", "tab", "syp",
    "sr", "triphala", "churna", "5g", "with", "warm", "water", "q6h", "every", "sunday", "weekly", "for", "pain",
    "१", "५", "०", "-", "/", "💊", "ms", "met", "iv", "po", "u", "10u", "glargine", "mg", "ml", "60k", "d3",
    "continue", "'", '"', "k", "×", "—", "x5d", "tsp", "1/2", "3x/d", "alt", "day", "\x00", "अश्वगंधा",
]  # fmt: skip
_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestProperties:
    @_FAST
    @given(st.text(max_size=200))
    def test_never_raises_on_arbitrary_text_and_spans_cover_tokens(self, line: str) -> None:
        formulary = Formulary.load_default()
        result = shorthand._expand(line, formulary, 30)
        _check_spans(line, result)

    @_FAST
    @given(st.lists(st.sampled_from(_VOCAB), max_size=14), st.sampled_from([" ", "", "  ", ","]))
    def test_never_raises_on_grammar_soup(self, words: list[str], sep: str) -> None:
        formulary = Formulary.load_default()
        line = sep.join(words)
        result = shorthand._expand(line, formulary, 30)
        _check_spans(line, result)

    @settings(max_examples=30, deadline=None)
    @given(st.text(min_size=1, max_size=400), st.integers(min_value=1, max_value=10240))
    def test_never_raises_on_long_lines_up_to_ten_kilobytes(self, chunk: str, size: int) -> None:
        line = (chunk * (size // len(chunk) + 1))[:size]
        result = shorthand._expand(line, Formulary.load_default(), 30)
        _check_spans(line, result)
        if len(line) > shorthand.MAX_LINE_CHARS:
            assert result.unresolved[0].end == len(line)

    @_FAST
    @given(
        drug=st.sampled_from(["amlo 5", "metf 500", "pcm 650", "triphala churna"]),
        dose=st.sampled_from(["", "1 tab", "2 tab", "5g", "3g"]),
        schedule=st.sampled_from(
            [
                "od",
                "bd",
                "tds",
                "qid",
                "hs",
                "1-0-1",
                "0-0-1",
                "½-0-1",
                "1-1-1-1",
                "q6h",
                "qod",
                "weekly",
                "monthly",
                "stat",
                "sos max 3/d",
                "tds sos",
                "every sunday",
                "mane",
                "nocte",
                "2x/wk",
                "3x/2d",
                "q2d",
            ]
        ),
        when=st.sampled_from(["", "ac", "pc", "bbf", "with food", "after dinner"]),
        duration=st.sampled_from(["", "x 5d", "x 2wk", "x 1m", "5/7", "2/52"]),
    )
    def test_timing_round_trips_through_canonical_shorthand(
        self, drug: str, dose: str, schedule: str, when: str, duration: str
    ) -> None:
        formulary = Formulary.load_default()
        first = shorthand._expand(" ".join(p for p in (drug, dose, schedule, when, duration) if p), formulary, 30)
        canonical = render_shorthand(first.timing)
        again = shorthand._expand(f"{drug} {canonical}", formulary, 30)
        assert again.timing == first.timing, canonical
