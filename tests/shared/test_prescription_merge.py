"""Prescription draft merge: owned by its encounter, the later line list wins whole, tombstones by their own stamp."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.sync.merge import MergeOutcome, Side
from shared.sync.prescription_merge import CONTENT_FIELDS, DraftConflict, draft_id_for, is_deleted, merge_draft
from shared.sync.protocol import ChangeStatus, JsonValue

State = tuple[dict[str, JsonValue], dict[str, str]]
ENC, PAT, DOC = str(uuid7()), str(uuid7()), str(uuid7())


def h(wall: int, counter: int = 0, node: str = "pc-a") -> str:
    return encode(Stamp(wall, counter, node))


def content(*names: str) -> dict[str, JsonValue]:
    meds: list[JsonValue] = [{"generic_name": n, "frequency": "bd", "duration_days": 5} for n in names]
    return {
        "prescriber_id": DOC, "lines": [{"text": n, "expanded": None} for n in names], "medications": meds,
        "ayush_medications": [], "advisories": [], "overrides": [], "kb_version": "kb", "policy_version": "p",
    }  # fmt: skip


def edit(stamp: str, *names: str, owner: bool = False) -> State:
    fields = content(*names) | ({"encounter_id": ENC, "patient_id": PAT, "deleted": False} if owner else {})
    return fields, dict.fromkeys(fields, stamp)


def tomb(stamp: str, deleted: bool = True) -> State:
    return {"deleted": deleted}, {"deleted": stamp}


def fold(states: list[State]) -> State:
    acc: State = ({}, {})
    for fields, stamps in states:
        result = merge_draft(*acc, fields, stamps)
        acc = (result.fields, result.field_hlcs)
    return acc


def test_a_draft_id_is_fixed_by_its_encounter_and_is_a_uuid7() -> None:
    e = uuid7()
    rid = draft_id_for(e)
    assert rid == draft_id_for(e) and rid != e and rid.version == 7 and rid.variant == uuid.RFC_4122
    assert rid.bytes[:6] == e.bytes[:6]  # sorts with its encounter
    assert draft_id_for(uuid7()) != rid


def test_the_later_list_wins_whole_and_the_loser_is_returned() -> None:
    base = edit(h(1), "METFORMIN", owner=True)
    a = merge_draft(*base, *edit(h(3, node="pc-a"), "METFORMIN", "AMLODIPINE"))
    b = merge_draft(a.fields, a.field_hlcs, *edit(h(2, node="pc-b"), "ATORVASTATIN"))
    assert b.fields["medications"] == a.fields["medications"]  # older incoming list: not mixed in
    assert b.outcome is MergeOutcome.NOOP and b.change_status is ChangeStatus.MERGED
    lost = {lv.field: lv for lv in b.lost}
    assert set(lost) == {"lines", "medications"} and all(lv.side is Side.INCOMING for lv in lost.values())
    assert lost["medications"].value == content("ATORVASTATIN")["medications"] and lost["lines"].hlc == h(
        2, node="pc-b"
    )
    c = merge_draft(b.fields, b.field_hlcs, *edit(h(4, node="pc-b"), "ATORVASTATIN"))
    assert c.fields["medications"] == content("ATORVASTATIN")["medications"] and c.outcome is MergeOutcome.APPLIED
    assert {lv.side for lv in c.lost} == {Side.CURRENT}


def test_tombstone_and_restore_by_their_own_stamps() -> None:
    state = fold([edit(h(1), "METFORMIN", owner=True), tomb(h(2))])
    assert is_deleted(state[0]) and state[0]["medications"] == content("METFORMIN")["medications"]
    assert not is_deleted(fold([state, tomb(h(3), deleted=False)])[0])
    assert is_deleted(fold([state, tomb(h(1, 1), deleted=False)])[0])  # an older restore loses


@pytest.mark.parametrize(
    ("incoming", "message"),
    [
        (({"encounter_id": str(uuid7())}, {"encounter_id": h(2)}), "cannot change"),
        (({"lines": []}, {"lines": h(2)}), "travels whole"),
        (({"colour": "red"}, {"colour": h(2)}), "not prescription draft fields"),
        (({"deleted": "yes"}, {"deleted": h(2)}), "true or false"),
        ((content("X"), dict.fromkeys(content("X"), h(2)) | {"lines": h(1)}), "one stamp"),
    ],
)
def test_changes_that_cannot_merge_are_refused(incoming: State, message: str) -> None:
    with pytest.raises(DraftConflict, match=message):
        merge_draft(*edit(h(1), "METFORMIN", owner=True), *incoming)


edits = st.one_of(
    st.builds(
        lambda w, c, n, names: edit(h(w, c, n), *names),
        st.integers(0, 4), st.integers(0, 2), st.sampled_from(["pc-a", "pc-b"]),
        st.lists(st.sampled_from(["METFORMIN", "AMLODIPINE", "ASPIRIN"]), min_size=1, max_size=3),
    ),
    st.builds(lambda w, n, d: tomb(h(w, 0, n), d), st.integers(0, 4), st.sampled_from(["pc-a", "pc-b"]), st.booleans()),
)  # fmt: skip


@given(st.lists(edits, min_size=1, max_size=6), st.randoms())
def test_any_order_of_the_same_edits_converges(changes: list[State], rnd: object) -> None:
    first = edit(h(0), "METFORMIN", owner=True)
    shuffled = list(changes)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold([first, *changes]) == fold([first, *shuffled])
    once = fold([first, *changes])
    assert fold([once, *changes]) == once  # idempotent: replays change nothing
    # Content fields always come from one edit.
    assert len({once[1][n] for n in CONTENT_FIELDS}) == 1


EXCLUDED: JsonValue = [{"condition": "SNOMED:77386006", "reason": "Delivered in March"}]


def excluding(stamp: str, *names: str) -> State:
    fields, stamps = edit(stamp, *names)
    return fields | {"excluded_conditions": EXCLUDED}, stamps | {"excluded_conditions": stamp}


def test_excluded_conditions_win_and_lose_with_the_content_and_may_be_absent() -> None:
    base = edit(h(0), "WARFARIN", owner=True)
    with_ex = merge_draft(*base, *excluding(h(2), "WARFARIN"))
    assert with_ex.fields["excluded_conditions"] == EXCLUDED and with_ex.outcome is MergeOutcome.APPLIED
    # An older list with exclusions loses whole: its exclusions are a lost value, the stored state keeps none.
    older = merge_draft(*edit(h(5), "WARFARIN", owner=True), *excluding(h(3), "WARFARIN"))
    assert "excluded_conditions" not in older.fields
    assert {(lv.field, lv.side) for lv in older.lost} == {("excluded_conditions", Side.INCOMING)}
    # A later list without the field (the condition was put back, or an older PC) replaces them.
    later = merge_draft(with_ex.fields, with_ex.field_hlcs, *edit(h(4), "WARFARIN"))
    assert "excluded_conditions" not in later.fields and "excluded_conditions" not in later.field_hlcs
    assert [(lv.field, lv.side) for lv in later.lost] == [("excluded_conditions", Side.CURRENT)]
    # It travels only with the content, under the content's stamp.
    with pytest.raises(DraftConflict, match="travels whole"):
        merge_draft(*base, {"excluded_conditions": EXCLUDED}, {"excluded_conditions": h(6)})
    fields, stamps = excluding(h(6), "WARFARIN")
    with pytest.raises(DraftConflict, match="one stamp"):
        merge_draft(*base, fields, stamps | {"excluded_conditions": h(7)})


@given(st.lists(st.builds(lambda w, n, x: excluding(h(w, 0, n), "ASPIRIN") if x else edit(h(w, 0, n), "ASPIRIN"),
                          st.integers(0, 4), st.sampled_from(["pc-a", "pc-b"]), st.booleans()), min_size=1,
                max_size=5), st.randoms())  # fmt: skip
def test_edits_with_and_without_exclusions_converge(changes: list[State], rnd: object) -> None:
    first = edit(h(0), "METFORMIN", owner=True)
    shuffled = list(changes)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    once = fold([first, *changes])
    assert once == fold([first, *shuffled]) and fold([once, *changes]) == once
