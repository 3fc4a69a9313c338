"""Merge pulled encounters into the local store (`shared.sync.encounter_merge`), inside the page's transaction.

* A new encounter is inserted with its stamps; a known one merges per field while it is a draft here.
* A completed encounter on this PC never changes (its triggers refuse it): pulled content that would alter
  it becomes a local addendum (derived id, so a re-pulled change adds none), never applied, never dropped.
* A local draft that the server has completed takes the server's completed state exactly; local edits the
  server does not have become a local addendum with the id the server gives the same late edit.
* Pulled addenda (``encounter_addendum``) are stored once by id; an addendum whose encounter is not here,
  or not completed here yet, is parked like an encounter without its patient.
* The feed keeps one entry per record at its latest position, so an encounter can arrive before its patient
  (the patient was edited after the encounter). Such an encounter is *parked* in the sync state, in the same
  transaction, and merged at the end of the page that brings its patient.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from desktop.store.encounters import EncounterRepository, SyncedState
from desktop.store.unit_of_work import UnitOfWork
from shared.records.encounter import SoapNote
from shared.sync.encounter_merge import (
    COMPLETED,
    SECTION_FIELDS,
    EncounterConflict,
    addendum_id,
    adopt_completed,
    late_addendum_text,
    merge_encounter,
)
from shared.sync.merge import MergeOutcome, Side
from shared.sync.protocol import Change, JsonValue, RecordKind

log = logging.getLogger(__name__)

PARKED_KEY = "parked_encounters"
"""Sync-state key: pulled encounter changes waiting for their patient (JSON list of changes)."""


@dataclass
class EncounterStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0  # incoming values that lost to newer local ones
    addenda: int = 0  # late values kept as local addenda
    parked: list[Change] = field(default_factory=list)


def apply_encounters(uow: UnitOfWork, changes: list[Change], *, clinic_id: uuid.UUID, now: datetime) -> EncounterStats:
    """Merge the page's encounter changes (after its patients are stored), then retry the parked ones.

    Must run inside the page's write transaction. Page-wise, with the result of applying the changes one by
    one in order (`_apply_one`): the stored states of the page's encounters are read in one query, which of
    the new ones' patients are here in another, and the new encounters are inserted with one ``executemany``.
    A change of an encounter the page has already written, and an addendum of an encounter still waiting to
    be inserted, go after what waits is inserted and read the encounter again, one by one as before.
    """
    stats = EncounterStats()
    parked = [Change.model_validate(c) for c in json.loads(uow.sync_state.get(PARKED_KEY) or "[]")]
    todo = [*parked, *changes]
    repo = EncounterRepository(uow.connection)
    states = repo.synced_states(c.id for c in todo if c.kind is RecordKind.ENCOUNTER)
    named = (
        _uuid_or_none(c.fields.get("patient_id")) for c in todo if c.kind is RecordKind.ENCOUNTER and c.id not in states
    )
    here = uow.patients.known_ids(p for p in named if p is not None)
    pending: dict[uuid.UUID, tuple[uuid.UUID, dict[str, JsonValue], dict[str, str]]] = {}  # to insert
    written: set[uuid.UUID] = set()  # encounters this page has written (or will): `states` is stale for them

    def flush() -> None:
        repo.insert_synced_many(pending.values(), clinic_id=clinic_id, now=now)
        pending.clear()

    for change in todo:
        if change.kind is RecordKind.ENCOUNTER_ADDENDUM:
            if _uuid_or_none(change.fields.get("encounter_id")) in pending:
                flush()
            _apply_addendum(repo, change, stats)
            continue
        if change.id in written:  # a second change of it in this page: merge with what is stored now
            flush()
            _apply_one(uow, change, clinic_id=clinic_id, now=now, stats=stats)
            continue
        state = states.get(change.id)
        if state is None:
            if uuid.UUID(str(change.fields["patient_id"])) not in here:
                stats.parked.append(change)
                continue
            pending[change.id] = (change.id, dict(change.fields), dict(change.field_hlcs))
            written.add(change.id)
            stats.inserted += 1
            continue
        written.add(change.id)
        _merge(repo, change, state, clinic_id=clinic_id, now=now, stats=stats)
    flush()
    waiting = [c.model_dump(mode="json", include=set(Change.model_fields)) for c in stats.parked]
    if waiting or parked:
        uow.sync_state.set(PARKED_KEY, json.dumps(waiting) if waiting else None)
    return stats


def _uuid_or_none(value: JsonValue | None) -> uuid.UUID | None:
    """The id a field names, or None (an edit of a known encounter may leave ``patient_id`` out)."""
    try:
        return None if value is None else uuid.UUID(str(value))
    except ValueError:
        return None


def _apply_one(uow: UnitOfWork, change: Change, *, clinic_id: uuid.UUID, now: datetime, stats: EncounterStats) -> None:
    """One change, reading what is stored now (the page-wise path's reference, and its way for repeats)."""
    repo = EncounterRepository(uow.connection)
    if change.kind is RecordKind.ENCOUNTER_ADDENDUM:
        _apply_addendum(repo, change, stats)
        return
    fields, stamps = dict(change.fields), dict(change.field_hlcs)
    state = repo.synced_state(change.id)
    if state is None:
        patient_id = uuid.UUID(str(fields["patient_id"]))
        if not uow.patients.stored_stamps([patient_id]):
            stats.parked.append(change)
            return
        repo.write_synced(change.id, fields, stamps, clinic_id=clinic_id, now=now, exists=False)
        stats.inserted += 1
        return
    _merge(repo, change, state, clinic_id=clinic_id, now=now, stats=stats)


def _merge(
    repo: EncounterRepository,
    change: Change,
    state: SyncedState,
    *,
    clinic_id: uuid.UUID,
    now: datetime,
    stats: EncounterStats,
) -> None:
    """Merge a change into the stored encounter ``state`` (its stored fields and stamps) and write the result."""
    fields, stamps = dict(change.fields), dict(change.field_hlcs)
    adopt = state[0].get("status") != COMPLETED and fields.get("status") == COMPLETED
    try:
        merged = adopt_completed(*state, fields, stamps) if adopt else merge_encounter(*state, fields, stamps)
    except EncounterConflict as exc:  # the server validated it: only a hand-edited local row can get here
        log.error("pulled encounter %s does not merge with this PC's copy: %s", change.id, exc)
        stats.unchanged += 1
        return
    result = merged.result
    stats.conflicts += sum(1 for lost in result.lost if lost.side is Side.INCOMING)
    if adopt:  # complete the local draft first: an addendum needs a completed encounter
        repo.write_synced(change.id, result.fields, result.field_hlcs, clinic_id=clinic_id, now=now, exists=True)
        stats.updated += 1
    if merged.late:
        added = addendum_id(change.id, merged.late)
        if not repo.addendum_exists(added):
            current = repo.get(change.id)
            soap = _valid_note({v.field: v.value for v in merged.late if v.field in SECTION_FIELDS})
            repo.add_addendum(
                addendum_id=added, encounter_id=change.id, author_id=current.doctor_id,
                text=late_addendum_text(merged.late, "another PC (arrived by sync after completion here)"),
                soap_note=soap, created_at=now,
            )  # fmt: skip
            stats.addenda += 1
    if adopt:
        return
    if result.outcome is MergeOutcome.NOOP or state[0].get("status") == COMPLETED:  # frozen here
        stats.unchanged += 1
        return
    repo.write_synced(change.id, result.fields, result.field_hlcs, clinic_id=clinic_id, now=now, exists=True)
    stats.updated += 1


def _valid_note(sections: dict[str, JsonValue]) -> dict[str, JsonValue] | None:
    """The late sections as a note, when they form a valid one (the addendum's text keeps them anyway)."""
    if not sections:
        return None
    try:
        return SoapNote.model_validate(sections).model_dump(mode="json", exclude_none=True)
    except ValidationError:
        return None


def _apply_addendum(repo: EncounterRepository, change: Change, stats: EncounterStats) -> None:
    """Store a pulled addendum once (append-only); park it until its encounter is here and completed."""
    if repo.addendum_exists(change.id):
        stats.unchanged += 1
        return
    fields = change.fields
    encounter_id = uuid.UUID(str(fields["encounter_id"]))
    state = repo.synced_state(encounter_id)
    if state is None or state[0].get("status") != COMPLETED:
        stats.parked.append(change)
        return
    note = fields.get("soap_note")
    repo.add_addendum(
        addendum_id=change.id, encounter_id=encounter_id, author_id=uuid.UUID(str(fields["author_id"])),
        text=str(fields["text"]), soap_note=_valid_note(dict(note)) if isinstance(note, dict) else None,
        created_at=datetime.fromisoformat(str(fields["created_at"])),
    )  # fmt: skip
    stats.addenda += 1
