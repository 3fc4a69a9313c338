"""`desktop.sync.coalesce`: adjacent upserts of one patient or encounter go as one change carrying, per field,
the value with the greatest stamp; nothing else merges; each entry gets the result of the change that carried
it."""

from __future__ import annotations

import itertools
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.store.outbox import QueuedChange, wire_text
from desktop.sync.coalesce import MERGEABLE, coalesce, runs
from shared.clock import Stamp, encode

RECORDS = [uuid.UUID(int=n).hex for n in range(1, 4)]
KINDS = ["patient", "encounter", "reading", "prescription"]
FIELDS = ["name", "mobile", "subjective", "plan"]


def entry(seq: int, kind: str, record: str, op: str, stamps: dict[str, int], values: dict[str, object]) -> QueuedChange:
    encoded = {name: encode(Stamp(1_764_000_000_000 + ms, 0, "pc-a")) for name, ms in stamps.items()}
    hlc = max(encoded.values()) if encoded else encode(Stamp(1_764_000_000_000, 0, "pc-a"))
    payload = json.dumps({"field_hlcs": encoded, "fields": values}, separators=(",", ":"), sort_keys=True)
    record_text = str(uuid.UUID(record))
    return QueuedChange(seq, kind, record_text, hlc, wire_text(kind, record_text, op, hlc, payload), op)


@st.composite
def batches(draw: st.DrawFn) -> list[QueuedChange]:
    out = []
    clock = 0
    for seq in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(KINDS))
        record = draw(st.sampled_from(RECORDS))
        op = draw(st.sampled_from(["upsert", "upsert", "upsert", "delete"]))
        names = [] if op == "delete" else draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True))
        stamps = {}
        for name in names:
            clock += draw(st.integers(0, 2))  # a PC's clock never goes back; equal stamps happen
            stamps[name] = clock
        values = {name: draw(st.one_of(st.text(max_size=5), st.integers(), st.none())) for name in names}
        out.append(entry(seq, kind, record, op, stamps, values))
    return out


@given(batches())
def test_runs_are_the_maximal_adjacent_upserts_of_one_mergeable_record(batch: list[QueuedChange]) -> None:
    cut = runs(batch)
    assert [e for run in cut for e in run] == batch  # queue order kept, nothing lost or repeated
    for run in cut:
        if len(run) > 1:
            assert run[0].kind in MERGEABLE
            assert {(e.kind, e.record_text, e.op) for e in run} == {(run[0].kind, run[0].record_text, "upsert")}
    for before, after in itertools.pairwise(cut):
        a, b = before[-1], after[0]
        assert not (a.kind in MERGEABLE and (a.kind, a.record_text, a.op) == (b.kind, b.record_text, b.op) == (
            a.kind, a.record_text, "upsert"))  # fmt: skip


@given(batches())
def test_a_merged_change_holds_per_field_the_value_with_the_greatest_stamp(batch: list[QueuedChange]) -> None:
    sent = coalesce(batch)
    cut = runs(batch)
    assert len(sent.wires) == sent.changes == len(cut)
    assert sent.change_of_entry == [n for n, run in enumerate(cut) for _ in run]
    assert coalesce(batch, with_wires=False).change_of_entry == sent.change_of_entry
    assert coalesce(batch).wires == sent.wires  # a pure function: a re-sent batch is the same request
    for run, wire in zip(cut, sent.wires, strict=True):
        if len(run) == 1:
            assert wire == run[0].wire
            continue
        changes = [json.loads(e.wire) for e in run]
        merged = json.loads(wire)
        expected_fields, expected_stamps = {}, {}
        for change in changes:  # the server's per-field rule, applied one change at a time
            for name, stamp in change["field_hlcs"].items():
                if name not in expected_stamps or stamp >= expected_stamps[name]:
                    expected_stamps[name], expected_fields[name] = stamp, change["fields"][name]
        assert merged == {
            "kind": run[0].kind,
            "id": run[0].record_text,
            "op": "upsert",
            "hlc": max(e.hlc for e in run),
            "fields": expected_fields,
            "field_hlcs": expected_stamps,
        }


def test_a_visit_started_saved_and_completed_goes_as_one_change_between_other_records() -> None:
    patient, visit = RECORDS[0], RECORDS[1]
    batch = [
        entry(1, "patient", patient, "upsert", {"name": 0, "mobile": 0}, {"name": "Radha", "mobile": "+91981"}),
        entry(2, "encounter", visit, "upsert", {"subjective": 1}, {"subjective": "Fever"}),
        entry(
            3, "encounter", visit, "upsert", {"subjective": 2, "plan": 2}, {"subjective": "Fever, cough", "plan": "x"}
        ),
        entry(4, "encounter", visit, "upsert", {"plan": 3}, {"plan": "Review in a week"}),
        entry(5, "patient", patient, "upsert", {"mobile": 4}, {"mobile": "+91982"}),  # not adjacent to seq 1
    ]
    sent = coalesce(batch)
    assert sent.change_of_entry == [0, 1, 1, 1, 2]
    visit_change = json.loads(sent.wires[1])
    assert visit_change["fields"] == {"subjective": "Fever, cough", "plan": "Review in a week"}
    assert visit_change["hlc"] == batch[3].hlc
    assert sent.results_per_entry(["p", "e", "p2"]) == ["p", "e", "e", "e", "p2"]
    # The same batch first sent un-merged by an earlier app version: the server's stored answer has one
    # result per entry, and each entry takes its own.
    assert sent.results_per_entry(["a", "b", "c", "d", "e"]) == ["a", "b", "c", "d", "e"]
    with pytest.raises(ValueError, match="answered 4 results for 3 changes"):
        sent.results_per_entry(["a"] * 4)


def test_readings_and_deletes_never_merge() -> None:
    reading, patient = RECORDS[2], RECORDS[0]
    batch = [
        entry(1, "reading", reading, "upsert", {"name": 0}, {"name": "a"}),
        entry(2, "reading", reading, "upsert", {"name": 1}, {"name": "a"}),  # a replayed reading: the server decides
        entry(3, "patient", patient, "upsert", {"name": 2}, {"name": "b"}),
        entry(4, "patient", patient, "delete", {}, {}),
        entry(5, "patient", patient, "delete", {}, {}),
    ]
    assert coalesce(batch).change_of_entry == [0, 1, 2, 3, 4]
