"""Hindi patient directions: only from the knowledge file, whole fields or an explicit "not translated"."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shared.rx import patient_language as pl


@pytest.mark.parametrize(
    ("english", "hindi"),
    [
        ("Once daily", "दिन में एक बार"),
        ("Twice daily", "दिन में दो बार"),
        ("three times daily", "दिन में तीन बार"),
        ("At bedtime", "सोते समय"),
        ("When needed", "ज़रूरत होने पर"),
        ("1-0-1", "सुबह 1, रात 1"),
        ("½-0-1 after food", "सुबह ½, रात 1 खाने के बाद"),
        ("1-1-1-1", "सुबह 1, दोपहर 1, शाम 1, रात 1"),
        ("before food", "खाने से पहले"),
        ("after meals", "खाने के बाद"),
        ("with warm water", "गुनगुने पानी के साथ"),
        ("with water", "पानी के साथ"),
        ("for 5 days", "5 दिन तक"),
        ("for 1 day", "1 दिन तक"),
        ("Take 1 tablet twice daily (morning and night) after meals.", "1 गोली दिन में दो बार (सुबह और रात) खाने के बाद लें"),
        ("Take 2 tablets at night", "2 गोलियाँ रात को लें"),
        ("Apply at bedtime", "सोते समय लगाएँ"),
        ("5 g at bedtime", "5 ग्राम सोते समय"),
        ("5 g 0-0-1", "5 ग्राम रात"),
        ("1 tablet 1-0-1", "1 गोली सुबह और रात"),
        ("1 tablet ½-0-1", "1 गोली सुबह ½, रात 1"),
    ],
)
def test_known_phrases_translate(english: str, hindi: str) -> None:
    result = pl.translate(english)
    assert isinstance(result, pl.Translated)
    assert result.text == hindi


@pytest.mark.parametrize(
    ("english", "unknown"),
    [
        ("Do not crush", ("do", "not", "crush")),
        ("Twice daily, avoid alcohol", ("avoid", "alcohol")),
        ("every 6 hours", ("every", "6", "hours")),
        ("0-0-0", ("0-0-0",)),
        ("", ("",)),
        (";", (";",)),
        ("()", ("()",)),
    ],
)
def test_unknown_words_make_the_whole_field_not_translated(english: str, unknown: tuple[str, ...]) -> None:
    result = pl.translate(english)
    assert isinstance(result, pl.NotTranslated)
    assert result.unknown == unknown
    assert result.english == english


def test_line_instructions_translates_field_by_field() -> None:
    result = pl.line_instructions(
        frequency="Twice daily", duration_days=30, instructions="Take after meals. Avoid alcohol.", dose="1 tablet"
    )
    assert [p.translated for p in result.parts] == [True, True, False, True]
    assert result.text == "1 गोली दिन में दो बार, खाने के बाद लें, 30 दिन तक"
    assert not result.complete
    assert result.missing == ("Avoid alcohol.",)


def test_line_without_duration_or_instructions() -> None:
    result = pl.line_instructions(frequency="At bedtime", duration_days=None)
    assert result.complete and result.text == "सोते समय"


def test_every_entry_has_a_declared_source_and_a_review_note() -> None:
    cat = pl.default_catalogue()
    assert cat.version == 1
    assert len(cat.phrases) > 50
    assert all(p.source in ("common_usage", "cdsco_labels") and p.review for p in cat.phrases)
    assert pl.label("english_only") and pl.label("missing-key") is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "integer `version`"),
        ({"version": 1, "sources": {}, "phrases": [{"en": "x", "hi": "y", "source": "s", "review": "r"}]}, "sources"),
        ({"version": 1, "phrases": [{"en": "x", "hi": "y"}]}, "phrases\\[0\\]"),
        ({"version": 1, "slots": {"3": ["a", "b"]}}, "slots\\[3\\]"),
    ],
)
def test_malformed_file_is_reported_by_entry(doc: object, message: str) -> None:
    with pytest.raises(pl.InstructionsFileError, match=message):
        pl.parse_catalogue(doc)


def test_a_catalogue_only_knows_its_own_entries() -> None:
    doc = yaml.safe_load(
        """
version: 2
sources: {s: test}
phrases:
  - {en: "once daily", hi: "ONE", source: s, review: unreviewed}
  - {en: "for {n} days", hi: "{n} D", source: s, review: unreviewed}
"""
    )
    cat = pl.parse_catalogue(doc)
    assert pl.translate("Once daily", cat) == pl.Translated("Once daily", "ONE")
    assert pl.translate("for 12 days", cat) == pl.Translated("for 12 days", "12 D")
    assert isinstance(pl.translate("Twice daily", cat), pl.NotTranslated)
    assert isinstance(pl.translate("1-0-1", cat), pl.NotTranslated)  # no slot words in this file


@given(st.text(max_size=60))
def test_any_text_gives_a_result_never_an_exception(text: str) -> None:
    result = pl.translate(text)
    if isinstance(result, pl.Translated):
        assert result.text
    else:
        assert result.unknown


@given(st.sampled_from(["Once daily", "Twice daily", "At bedtime", "1-0-1"]), st.text(alphabet="xyzq", min_size=1))
def test_an_unknown_word_anywhere_is_never_dropped(known: str, junk: str) -> None:
    assert isinstance(pl.translate(f"{known} {junk}"), pl.NotTranslated)
    assert isinstance(pl.translate(f"{junk} {known}"), pl.NotTranslated)
