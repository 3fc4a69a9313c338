"""Encounter merge: per-section LWW while draft, completion monotonic, late edits of a completed one kept aside."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.audit import canonical_json
from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.sync.encounter_merge import (
    CONTENT_FIELDS,
    EncounterConflict,
    LateValue,
    addendum_id,
    adopt_completed,
    is_completed,
    late_addendum_text,
    merge_encounter,
)
from shared.sync.merge import MergeOutcome, Side
from shared.sync.protocol import ChangeStatus, JsonValue

State = tuple[dict[str, JsonValue], dict[str, str]]
EMPTY: State = ({}, {})


def h(wall: int, counter: int = 0, node: str = "pc-a") -> str:
    return encode(Stamp(wall, counter, node))


stamps = st.builds(h, st.integers(0, 4), st.integers(0, 2), st.sampled_from(["pc-a", "pc-b"]))
section_edits = st.tuples(
    st.sampled_from(["subjective", "examination", "chief_complaint", "plan"]),
    st.text(max_size=6) | st.dictionaries(st.sampled_from(["notes", "followup"]), st.text(max_size=4), max_size=2),
    stamps,
)
status_edits = st.tuples(st.just("status"), st.sampled_from(["draft", "completed"]), stamps)
edits = st.lists(section_edits | status_edits, max_size=8)


def as_change(edit: tuple[str, JsonValue, str]) -> State:
    name, value, stamp = edit
    if name == "status":
        completed_at: JsonValue = "2026-11-25T10:00:00+00:00" if value == "completed" else None
        return {"status": value, "completed_at": completed_at}, {"status": stamp, "completed_at": stamp}
    return {name: value}, {name: stamp}


def merged(a: State, b: State) -> State:
    r = merge_encounter(*a, *b).result
    return r.fields, r.field_hlcs


def fold(sequence: list[tuple[str, JsonValue, str]]) -> State:
    state = EMPTY
    for edit in sequence:
        state = merged(state, as_change(edit))
    return state


@given(edits)
def test_draft_edits_converge_in_any_order(sequence: list[tuple[str, JsonValue, str]]) -> None:
    drafts = [e for e in sequence if e[0] != "status"]
    shuffled = drafts[:]
    random.Random(len(drafts)).shuffle(shuffled)
    assert fold(drafts) == fold(shuffled)


@given(edits, edits)
def test_merging_two_draft_replicas_is_commutative_and_idempotent(
    left: list[tuple[str, JsonValue, str]], right: list[tuple[str, JsonValue, str]]
) -> None:
    a = fold([e for e in left if e[0] != "status"])
    b = fold([e for e in right if e[0] != "status"])
    assert merged(a, b) == merged(b, a)
    assert merged(merged(a, b), b) == merged(a, b)
    assert merge_encounter(*a, *a).result.outcome is MergeOutcome.NOOP


@given(edits)
def test_completion_is_monotonic(sequence: list[tuple[str, JsonValue, str]]) -> None:
    state = EMPTY
    done = False
    for edit in sequence:
        state = merged(state, as_change(edit))
        done = done or (edit[0] == "status" and edit[1] == "completed")
        assert is_completed(state[0]) == done


@given(edits, edits)
def test_a_completed_encounters_content_never_changes_and_late_values_are_kept(
    before: list[tuple[str, JsonValue, str]], after: list[tuple[str, JsonValue, str]]
) -> None:
    state = merged(fold(before), as_change(("status", "completed", h(2))))
    frozen = {k: v for k, v in state[0].items() if k in CONTENT_FIELDS}
    for edit in after:
        m = merge_encounter(*state, *as_change(edit))
        state = (m.result.fields, m.result.field_hlcs)
        assert {k: v for k, v in state[0].items() if k in CONTENT_FIELDS} == frozen
        assert is_completed(state[0])
        name, value, stamp = edit
        stored = state[1].get(name, "")
        # Later stamp wins; one stamp with two values: the greater canonical JSON (shared.sync.merge).
        wins = stamp > stored or (stamp == stored and canonical_json(value) > canonical_json(state[0][name]))
        if name in CONTENT_FIELDS and wins and frozen.get(name, object()) != value:
            assert m.late == (LateValue(name, value, stamp),)
            assert m.result.outcome is MergeOutcome.NOOP  # the stored state does not change
            assert m.change_status is ChangeStatus.MERGED
        else:
            assert m.late == ()


def test_concurrent_sections_merge_and_the_same_section_keeps_the_loser() -> None:
    base = merged(EMPTY, ({"patient_id": "p1", "subjective": "fever"}, {"patient_id": h(1), "subjective": h(1)}))
    a = merge_encounter(*base, {"subjective": "fever 3 days"}, {"subjective": h(3, node="pc-a")})
    b = merge_encounter(*base, {"plan": {"followup": "1 week"}}, {"plan": h(2, node="pc-b")})
    both = merged((a.result.fields, a.result.field_hlcs), (b.result.fields, b.result.field_hlcs))
    assert both[0]["subjective"] == "fever 3 days" and both[0]["plan"] == {"followup": "1 week"}
    older = merge_encounter(*both, {"subjective": "cough"}, {"subjective": h(2, node="pc-b")})
    assert older.result.fields["subjective"] == "fever 3 days"
    assert [(lv.field, lv.value, lv.side) for lv in older.result.lost] == [("subjective", "cough", Side.INCOMING)]
    assert older.result.outcome is MergeOutcome.NOOP


def test_a_draft_never_undoes_a_completion_even_when_stamped_later() -> None:
    done = merged(EMPTY, ({"status": "completed", "completed_at": "t"}, {"status": h(1), "completed_at": h(1)}))
    m = merge_encounter(*done, {"status": "draft", "completed_at": None}, {"status": h(9), "completed_at": h(9)})
    assert m.result.fields["status"] == "completed" and m.result.fields["completed_at"] == "t"
    assert {lv.field for lv in m.result.lost if lv.side is Side.INCOMING} == {"status", "completed_at"}


@pytest.mark.parametrize(
    ("fields", "stamps", "message"),
    [
        ({"soap": "x"}, {"soap": h(1)}, "not encounter fields: soap"),
        ({"patient_id": "p2"}, {"patient_id": h(5)}, "patient_id of an encounter cannot change"),
        ({"status": "signed", "completed_at": None}, {"status": h(1), "completed_at": h(1)}, "status must be"),
        ({"status": "completed", "completed_at": None}, {"status": h(1), "completed_at": h(1)}, "completed_at"),
        ({"subjective": "x"}, {}, "same keys"),
    ],
)
def test_bad_changes_are_refused_with_the_reason(
    fields: dict[str, JsonValue], stamps: dict[str, str], message: str
) -> None:
    with pytest.raises(EncounterConflict, match=message):
        merge_encounter({"patient_id": "p1"}, {"patient_id": h(1)}, fields, stamps)


def test_addendum_id_is_stable_and_text_keeps_every_value() -> None:
    eid = uuid7()
    late = (LateValue("plan", {"followup": "2 weeks"}, h(3)), LateValue("subjective", "worse at night", h(3)))
    assert addendum_id(eid, late) == addendum_id(eid, late)
    assert addendum_id(eid, late) != addendum_id(eid, late[:1])
    text = late_addendum_text(late, "Dr. A")
    assert '"followup":"2 weeks"' in text and '"worse at night"' in text and "Dr. A" in text


def test_a_local_draft_adopts_the_servers_completed_state_and_keeps_its_extras_as_late() -> None:
    local = merged(EMPTY, ({"patient_id": "p1", "plan": {"followup": "2 weeks"}}, {"patient_id": h(1), "plan": h(3)}))
    server = (
        {"patient_id": "p1", "subjective": "fever", "status": "completed", "completed_at": "t"},
        {"patient_id": h(1), "subjective": h(2), "status": h(2), "completed_at": h(2)},
    )
    m = adopt_completed(*local, *server)
    assert (m.result.fields, m.result.field_hlcs) == server
    assert m.late == (LateValue("plan", {"followup": "2 weeks"}, h(3)),)
    # The server turned the same late edit into an addendum with the same id.
    on_server = merge_encounter(*server, {"plan": {"followup": "2 weeks"}}, {"plan": h(3)})
    eid = uuid7()
    assert addendum_id(eid, on_server.late) == addendum_id(eid, m.late)
    with pytest.raises(EncounterConflict, match="only a completed"):
        adopt_completed(*server, *local)
