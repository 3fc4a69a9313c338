"""Successive queued edits of one record go to the server as one change.

A doctor's visit queues several changes of one encounter in a row — started, a section saved, another saved,
completed — and a receptionist's correction of a patient right after registering him queues two. Sending each
makes the server decide, store and answer every one of them, and the PC pull each echo back. For the kinds
whose rule is per-field last-writer-wins by HLC (patient, encounter: DESIGN §3), a run of upserts of the same
record is the same as one upsert carrying, for every field, the value with the greatest stamp: that is what
the server's merge keeps after the run either way, so the merged change leaves the same record (the values
this PC overwrote itself are not conflicts, so no history is lost). Only **adjacent** entries merge: moving a
change across another record's change could reorder what the server checks (an encounter must exist before
its prescription is drafted, a prescription is drafted before the encounter is completed); adjacency keeps
queue order exactly.

`coalesce` is a pure function of the batch's entries, so a batch sent again after a lost reply (same batch
id) is the very same request. The server answers one result per change sent; `Coalesced.results_per_entry`
gives every queued entry the result of the change that carried it, so acknowledging, holding back and
reporting stay per entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from desktop.store.outbox import QueuedChange
from shared.sync.protocol import Op, RecordKind

MERGEABLE = frozenset({RecordKind.PATIENT.value, RecordKind.ENCOUNTER.value})
"""Kinds whose conflict rule is per-field last-writer-wins by HLC (an append-only or signed kind never is)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Coalesced:
    """A batch's changes as sent.

    Attributes:
        wires: the push changes' JSON texts, in queue order (empty when not asked for).
        change_of_entry: for each queued entry (same order as given), the index of the change that carries it.
        changes: how many changes are sent.
    """

    wires: list[str]
    change_of_entry: list[int]
    changes: int

    def results_per_entry(self, results: Sequence[T]) -> list[T]:
        """The server's result of each queued entry: one result per change sent, or one per entry when the server
        answers a batch it first received un-merged (sent by an app version before this merging, its reply lost,
        then re-sent after the upgrade: the server keeps and returns its first answer for a batch id)."""
        if len(results) == self.changes:
            return [results[i] for i in self.change_of_entry]
        if len(results) == len(self.change_of_entry):
            return list(results)
        raise ValueError(f"the server answered {len(results)} results for {self.changes} changes")


def _joins(run: list[QueuedChange], entry: QueuedChange) -> bool:
    last = run[-1]
    return (
        entry.kind in MERGEABLE
        and entry.kind == last.kind
        and entry.record_text == last.record_text
        and entry.op == Op.UPSERT.value
        and last.op == Op.UPSERT.value
    )


def merged_wire(run: Sequence[QueuedChange]) -> str:
    """One upsert carrying, per field, the value with the greatest stamp (the later entry on a tie: this PC's
    clock never goes back, so a later edit never carries an older stamp)."""
    fields: dict[str, Any] = {}
    stamps: dict[str, str] = {}
    first: dict[str, Any] = json.loads(run[0].wire)
    for entry in run:
        change = json.loads(entry.wire)
        for name, stamp in change["field_hlcs"].items():
            if name not in stamps or stamp >= stamps[name]:  # encoded stamps sort as stamps
                stamps[name] = stamp
                fields[name] = change["fields"][name]
    out = {
        "kind": first["kind"],
        "id": first["id"],
        "op": Op.UPSERT.value,
        "hlc": max(entry.hlc for entry in run),
        "fields": fields,
        "field_hlcs": stamps,
    }
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def runs(entries: Sequence[QueuedChange]) -> list[list[QueuedChange]]:
    """The batch's entries cut into the runs that go as one change each (most runs are one entry)."""
    out: list[list[QueuedChange]] = []
    for entry in entries:
        if out and _joins(out[-1], entry):
            out[-1].append(entry)
        else:
            out.append([entry])
    return out


def coalesce(entries: Sequence[QueuedChange], *, with_wires: bool = True) -> Coalesced:
    """The batch's changes with each run of adjacent upserts of one record of a mergeable kind merged.

    ``with_wires=False`` works out only which change carries which entry (no JSON is parsed): what reading
    the server's answer needs.
    """
    wires: list[str] = []
    change_of_entry: list[int] = []
    for number, run in enumerate(runs(entries)):
        if with_wires:
            wires.append(run[0].wire if len(run) == 1 else merged_wire(run))
        change_of_entry.extend([number] * len(run))
    count = (change_of_entry[-1] + 1) if change_of_entry else 0
    return Coalesced(wires, change_of_entry, count)
