"""Conflict rules: per-field last-writer-wins for patients, tombstones, and append-only duplicate collapse."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Hashable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.audit import canonical_json
from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.sync.merge import (
    AppendPlan,
    DuplicateBy,
    LostValue,
    MergeOutcome,
    MergeResult,
    Side,
    edits_of,
    is_deleted,
    merge_fields,
    merge_patient,
    plan_appends,
)
from shared.sync.protocol import Change, ChangeStatus, JsonValue

State = tuple[dict[str, JsonValue], dict[str, str]]
Edit = tuple[str, JsonValue, str]

EMPTY: State = ({}, {})


def h(wall: int, counter: int = 0, node: str = "pc-a") -> str:
    return encode(Stamp(wall, counter, node))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
# Few fields and a narrow stamp range, so that edits collide on fields and sometimes on whole stamps.
edits = st.tuples(
    st.sampled_from(["name", "mobile", "address", "deleted"]),
    json_values,
    st.builds(h, st.integers(0, 4), st.integers(0, 2), st.sampled_from(["pc-a", "pc-b"])),
)


def fold(state: State, sequence: list[Edit]) -> State:
    for name, value, stamp in sequence:
        result = merge_patient(*state, {name: value}, {name: stamp})
        state = (result.fields, result.field_hlcs)
    return state


def fold_lost(sequence: list[Edit]) -> list[LostValue]:
    state: State = EMPTY
    lost: list[LostValue] = []
    for name, value, stamp in sequence:
        result = merge_patient(*state, {name: value}, {name: stamp})
        state, lost = (result.fields, result.field_hlcs), [*lost, *result.lost]
    return lost


def key(name: str, value: JsonValue, stamp: str) -> tuple[str, bytes, str]:
    return name, canonical_json(value), stamp


def edit_key(edit: Edit) -> tuple[str, bytes, str]:
    return key(*edit)


states = st.lists(edits, max_size=12).map(lambda seq: fold(EMPTY, seq))


class TestMergePatient:
    def test_new_record_takes_every_field(self) -> None:
        result = merge_patient({}, {}, {"name": "Asha", "mobile": None}, {"name": h(5), "mobile": h(5)})
        assert result == MergeResult(
            {"name": "Asha", "mobile": None}, {"name": h(5), "mobile": h(5)}, (), MergeOutcome.APPLIED
        )
        assert result.change_status is ChangeStatus.APPLIED

    @given(states)
    def test_a_new_record_takes_the_incoming_state_as_merging_field_by_field_would(self, incoming: State) -> None:
        # merge_fields answers an empty current side without comparing; folding the fields one at a time
        # into the empty state goes through the comparing path from the second field on.
        fields, stamps = incoming
        result = merge_fields({}, {}, fields, stamps)
        step: State = EMPTY
        for name in sorted(fields):
            one = merge_fields(*step, {name: fields[name]}, {name: stamps[name]})
            assert one.lost == ()
            step = (one.fields, one.field_hlcs)
        assert (result.fields, result.field_hlcs, result.lost) == (step[0], step[1], ())
        assert list(result.fields) == sorted(fields) and list(result.field_hlcs) == sorted(stamps)
        assert result.outcome is (MergeOutcome.APPLIED if fields else MergeOutcome.NOOP)

    def test_mixed_stamps_merge_field_by_field_and_keep_both_losers(self) -> None:
        current = {"name": "Asha", "mobile": "+919800000001"}, {"name": h(10), "mobile": h(10)}
        result = merge_patient(*current, {"name": "Asha K", "mobile": "+919800000002"}, {"name": h(20), "mobile": h(5)})
        assert result.fields == {"name": "Asha K", "mobile": "+919800000001"}
        assert result.field_hlcs == {"name": h(20), "mobile": h(10)}
        assert result.lost == (
            LostValue("mobile", "+919800000002", h(5), Side.INCOMING),
            LostValue("name", "Asha", h(10), Side.CURRENT),
        )
        assert result.outcome is MergeOutcome.MERGED
        assert result.change_status is ChangeStatus.MERGED

    def test_entirely_older_incoming_is_a_noop_that_reports_its_values(self) -> None:
        current = {"name": "Asha"}, {"name": h(10)}
        result = merge_patient(*current, {"name": "Old"}, {"name": h(9)})
        assert (result.fields, result.field_hlcs) == current
        assert result.outcome is MergeOutcome.NOOP
        assert result.lost == (LostValue("name", "Old", h(9), Side.INCOMING),)
        assert result.change_status is ChangeStatus.MERGED

    def test_replay_is_a_noop_with_nothing_lost(self) -> None:
        current = {"name": "Asha", "mobile": None}, {"name": h(10), "mobile": h(3)}
        result = merge_patient(*current, *current)
        assert (result.fields, result.field_hlcs, result.lost) == (*current, ())
        assert result.outcome is MergeOutcome.NOOP
        assert result.change_status is ChangeStatus.APPLIED

    def test_partial_replay_with_new_fields_is_applied(self) -> None:
        current = {"name": "Asha"}, {"name": h(10)}
        result = merge_patient(*current, {"name": "Asha", "mobile": "+919800000001"}, {"name": h(10), "mobile": h(11)})
        assert result.outcome is MergeOutcome.APPLIED
        assert result.lost == ()

    def test_counter_and_node_break_ties_within_a_millisecond(self) -> None:
        current = {"name": "A"}, {"name": h(10, 1, "pc-a")}
        assert merge_patient(*current, {"name": "B"}, {"name": h(10, 1, "pc-b")}).fields == {"name": "B"}
        assert merge_patient(*current, {"name": "B"}, {"name": h(10, 0, "pc-z")}).fields == {"name": "A"}

    def test_one_stamp_with_two_values_converges_and_keeps_the_loser(self) -> None:
        a = {"name": "Asha"}, {"name": h(10)}
        b = {"name": "Bina"}, {"name": h(10)}
        ab, ba = merge_patient(*a, *b), merge_patient(*b, *a)
        assert ab.fields == ba.fields == {"name": "Bina"}  # greater canonical JSON
        assert [lost.value for lost in ab.lost] == [lost.value for lost in ba.lost] == ["Asha"]

    def test_refuses_fields_that_are_not_patient_fields(self) -> None:
        with pytest.raises(ValueError, match="not patient fields: blood_group"):
            merge_patient({}, {}, {"blood_group": "B+"}, {"blood_group": h(1)})

    @pytest.mark.parametrize(
        "args",
        [
            ({"name": "A"}, {}, {}, {}),
            ({}, {}, {"name": "A"}, {"mobile": h(1)}),
            ({}, {}, {"name": "A"}, {"name": "bad"}),
        ],
    )
    def test_refuses_inconsistent_or_malformed_input(
        self, args: tuple[dict[str, JsonValue], dict[str, str], dict[str, JsonValue], dict[str, str]]
    ) -> None:
        with pytest.raises(ValueError, match=r"same keys|not an HLC stamp"):
            merge_fields(*args)


class TestMergeProperties:
    @given(st.lists(edits, max_size=20), st.randoms())
    def test_any_arrival_order_converges(self, sequence: list[Edit], rnd: random.Random) -> None:
        shuffled = list(sequence)
        rnd.shuffle(shuffled)
        assert fold(EMPTY, shuffled) == fold(EMPTY, sequence)

    @given(st.lists(edits, max_size=20))
    def test_replayed_edits_change_nothing(self, sequence: list[Edit]) -> None:
        assert fold(EMPTY, sequence + sequence) == fold(EMPTY, sequence)
        state = fold(EMPTY, sequence)
        again = merge_patient(*state, *state)
        assert (again.fields, again.field_hlcs, again.lost, again.outcome) == (*state, (), MergeOutcome.NOOP)

    @given(st.lists(edits, max_size=20, unique_by=edit_key), st.randoms())
    def test_every_edit_but_the_winners_is_reported_lost_exactly_once(
        self, sequence: list[Edit], rnd: random.Random
    ) -> None:
        rnd.shuffle(sequence)
        fields, stamps = fold(EMPTY, sequence)
        winners = Counter(key(name, fields[name], stamps[name]) for name in fields)
        lost = Counter(key(lost.field, lost.value, lost.hlc) for lost in fold_lost(sequence))
        assert lost + winners == Counter(key(*e) for e in sequence)

    @given(states, states)
    def test_state_merge_is_commutative(self, a: State, b: State) -> None:
        ab, ba = merge_patient(*a, *b), merge_patient(*b, *a)
        assert (ab.fields, ab.field_hlcs) == (ba.fields, ba.field_hlcs)
        assert Counter(key(x.field, x.value, x.hlc) for x in ab.lost) == Counter(
            key(x.field, x.value, x.hlc) for x in ba.lost
        )

    @given(states, states, states)
    def test_state_merge_is_associative(self, a: State, b: State, c: State) -> None:
        ab = merge_patient(*a, *b)
        left = merge_patient(ab.fields, ab.field_hlcs, *c)
        bc = merge_patient(*b, *c)
        right = merge_patient(*a, bc.fields, bc.field_hlcs)
        assert (left.fields, left.field_hlcs) == (right.fields, right.field_hlcs)

    @given(states, states)
    def test_outcome_describes_what_happened(self, current: State, incoming: State) -> None:
        result = merge_patient(*current, *incoming)
        took = {
            n
            for n in incoming[0]
            if key(n, result.fields[n], result.field_hlcs[n]) == key(n, incoming[0][n], incoming[1][n])
        }
        incoming_lost = [x for x in result.lost if x.side is Side.INCOMING]
        if result.outcome is MergeOutcome.NOOP:
            assert (result.fields, result.field_hlcs) == current
        elif result.outcome is MergeOutcome.APPLIED:
            assert took == set(incoming[0]) and not incoming_lost
        else:
            assert took and incoming_lost
        assert result.fields.keys() == result.field_hlcs.keys() == current[0].keys() | incoming[0].keys()


class TestTombstone:
    def delete(self, wall: int) -> Change:
        return Change.model_validate({"kind": "patient", "id": str(uuid7()), "op": "delete", "hlc": h(wall)})

    def test_delete_becomes_the_deleted_field(self) -> None:
        assert edits_of(self.delete(7)) == ({"deleted": True}, {"deleted": h(7)})

    def test_upsert_edits_are_its_fields(self) -> None:
        change = Change.model_validate(
            {
                "kind": "patient",
                "id": str(uuid7()),
                "op": "upsert",
                "hlc": h(8),
                "fields": {"name": "Asha"},
                "field_hlcs": {"name": h(8)},
            }
        )
        assert edits_of(change) == ({"name": "Asha"}, {"name": h(8)})

    def test_later_edit_is_kept_but_does_not_resurrect(self) -> None:
        deleted = merge_patient({"name": "Asha"}, {"name": h(1)}, *edits_of(self.delete(5)))
        assert is_deleted(deleted.fields)
        edited = merge_patient(deleted.fields, deleted.field_hlcs, {"mobile": "+919800000001"}, {"mobile": h(9)})
        assert is_deleted(edited.fields)
        assert edited.fields["mobile"] == "+919800000001"

    def test_explicit_restore_after_the_delete_resurrects(self) -> None:
        deleted = merge_patient({}, {}, *edits_of(self.delete(5)))
        restored = merge_patient(deleted.fields, deleted.field_hlcs, {"deleted": False}, {"deleted": h(6)})
        assert not is_deleted(restored.fields)
        stale_restore = merge_patient(deleted.fields, deleted.field_hlcs, {"deleted": False}, {"deleted": h(4)})
        assert is_deleted(stale_restore.fields)

    def test_delete_and_edit_commute(self) -> None:
        delete = edits_of(self.delete(5))
        edit = ({"name": "Asha"}, {"name": h(9)})
        first_delete, first_edit = merge_patient({}, {}, *delete), merge_patient({}, {}, *edit)
        one = merge_patient(first_delete.fields, first_delete.field_hlcs, *edit)
        other = merge_patient(first_edit.fields, first_edit.field_hlcs, *delete)
        assert (one.fields, one.field_hlcs) == (other.fields, other.field_hlcs)
        assert is_deleted(one.fields)

    def test_only_true_counts_as_deleted(self) -> None:
        assert not is_deleted({})
        assert not is_deleted({"deleted": 1})


Reading = tuple[uuid.UUID, tuple[str, int] | None]


def plan(incoming: list[Reading], ids: set[uuid.UUID], keys: set[Hashable]) -> AppendPlan[Reading]:
    return plan_appends(incoming, known_ids=ids, known_keys=keys, id_of=lambda r: r[0], natural_key_of=lambda r: r[1])


readings = st.lists(
    st.tuples(
        st.sampled_from([uuid.UUID(int=i) for i in range(6)]),
        st.none() | st.tuples(st.just("dev"), st.integers(0, 4)),
    ),
    max_size=15,
)


class TestPlanAppends:
    def test_collapses_by_id_then_by_natural_key_first_one_wins(self) -> None:
        stored, a, b, c, d = (uuid7() for _ in range(5))
        incoming: list[Reading] = [
            (stored, ("dev", 1)),
            (a, ("dev", 2)),
            (b, ("dev", 2)),
            (a, ("dev", 3)),
            (c, ("dev", 0)),
            (d, None),
        ]
        result = plan(incoming, {stored}, {("dev", 0)})
        assert result.new == ((a, ("dev", 2)), (d, None))
        assert result.duplicates == (
            ((stored, ("dev", 1)), DuplicateBy.ID),
            ((b, ("dev", 2)), DuplicateBy.NATURAL_KEY),
            ((a, ("dev", 3)), DuplicateBy.ID),
            ((c, ("dev", 0)), DuplicateBy.NATURAL_KEY),
        )

    @given(readings)
    def test_every_record_is_either_new_or_a_duplicate_and_new_ones_are_unique(self, incoming: list[Reading]) -> None:
        result = plan(incoming, set(), set())
        assert sorted(map(str, [*result.new, *(r for r, _ in result.duplicates)])) == sorted(map(str, incoming))
        ids = [r[0] for r in result.new]
        keys = [r[1] for r in result.new if r[1] is not None]
        assert len(ids) == len(set(ids)) and len(keys) == len(set(keys))

    @given(readings)
    def test_appending_the_same_batch_twice_adds_nothing(self, incoming: list[Reading]) -> None:
        first = plan(incoming, set(), set())
        ids = {r[0] for r in first.new}
        keys: set[Hashable] = {r[1] for r in first.new if r[1] is not None}
        second = plan(incoming, ids, keys)
        assert second.new == ()
        assert len(second.duplicates) == len(incoming)
