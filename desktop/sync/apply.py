"""Apply one pulled page in one local transaction, together with the new cursor (all or nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from desktop.store.unit_of_work import UnitOfWork, UnitOfWorkFactory
from desktop.sync.apply_encounters import apply_encounters
from desktop.sync.apply_prescriptions import KINDS as RX_KINDS
from desktop.sync.apply_prescriptions import apply_prescriptions
from shared.clock import HLC, ClockSkewError, decode
from shared.sync.merge import MergeOutcome, edits_of
from shared.sync.protocol import Change, JsonValue, Op, PullResponse, RecordKind

_KNOWN = frozenset({RecordKind.PATIENT, RecordKind.ENCOUNTER, RecordKind.ENCOUNTER_ADDENDUM, *RX_KINDS})
"""Kinds this version applies; encounters and their addenda go to `desktop.sync.apply_encounters`."""


@dataclass
class ApplyStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0  # incoming values that lost to newer local ones (kept in history)


class ClockTooSlow(Exception):
    """This PC's clock is so far behind that it cannot accept the server's stamps (fix the date/time)."""


def apply_page(uows: UnitOfWorkFactory, page: PullResponse, clock: HLC) -> ApplyStats:
    """Merge every change of the page into the local store and store ``page.next_cursor``, in one transaction.

    Must run on the writer thread. A crash anywhere leaves either the old state and cursor or the new ones.
    """
    with uows.write() as uow:
        stats = apply_in(uow, page, clock)
        uow.commit()
    return stats


def apply_in(uow: UnitOfWork, page: PullResponse, clock: HLC) -> ApplyStats:
    """`apply_page` inside a write unit of work the caller commits (with its own writes, if any).

    Which records are already here is read once for the page; the new ones are inserted together, then the
    other changes are merged in page order (`PatientRepository.merge_many`: the same result as merging them
    one by one, written set-wise; a change seen before, such as our own echo, is skipped without a merge).
    The clock folds in the page's newest stamp once: it then is ahead of every stamp of the page, as after
    folding in each, and a stamp too far ahead refuses the page either way.
    """
    stats = ApplyStats()
    now = datetime.now(UTC)
    changes = [change for change in page.changes if change.kind in _KNOWN]
    # Kinds this version does not know yet stay on the server; the cursor moves on.
    if not changes:
        # An idle round's page: nothing to merge, and nothing parked can have become applicable (parked
        # encounters and prescriptions wait for records that only a pulled change brings).
        uow.sync_state.record_pull(page.next_cursor, decode(page.server_hlc), now)
        return stats
    try:
        clock.update(decode(max(change.hlc for change in changes)))
    except ClockSkewError as exc:
        raise ClockTooSlow(exc.message) from exc
    clinic_id = uow.sync_state.clinic_id_or_unenrolled()
    stored = uow.patients.stored_stamps(c.id for c in changes if c.kind is RecordKind.PATIENT)
    new: list[tuple[uuid.UUID, Mapping[str, JsonValue], Mapping[str, str]]] = []
    edits: list[tuple[uuid.UUID, Mapping[str, JsonValue], Mapping[str, str]]] = []
    encounters: list[Change] = []
    prescriptions: list[Change] = []
    for change in changes:
        if change.kind in RX_KINDS:
            prescriptions.append(change)  # applied once the page's encounters are stored
            continue
        if change.kind is not RecordKind.PATIENT:
            encounters.append(change)  # merged once the page's patients are stored (they may be new)
            continue
        if change.op is Op.DELETE:
            fields, stamps = edits_of(change)
        else:  # `edits_of` without its copies (nothing below changes them): a page of 5000 held them twice
            fields, stamps = change.fields, change.field_hlcs
        if change.id in stored:
            edits.append((change.id, fields, stamps))
        else:
            new.append((change.id, fields, stamps))
            stored[change.id] = (stamps, fields)  # a later change of it in this page merges into this
            stats.inserted += 1
    uow.patients.insert_many(new, clinic_id=clinic_id, now=now)
    for result in uow.patients.merge_many(edits, stored, source="sync", now=now):
        stats.conflicts += sum(1 for lost in result.lost if lost.side == "incoming")
        if result.outcome is MergeOutcome.NOOP:
            stats.unchanged += 1
        else:
            stats.updated += 1
    enc = apply_encounters(uow, encounters, clinic_id=clinic_id, now=now)
    stats.inserted, stats.updated = stats.inserted + enc.inserted, stats.updated + enc.updated
    stats.unchanged, stats.conflicts = stats.unchanged + enc.unchanged, stats.conflicts + enc.conflicts
    rx = apply_prescriptions(uow, prescriptions, clinic_id=clinic_id, now=now)
    stats.inserted, stats.updated = stats.inserted + rx.inserted, stats.updated + rx.updated
    stats.unchanged, stats.conflicts = stats.unchanged + rx.unchanged, stats.conflicts + rx.conflicts
    uow.sync_state.record_pull(page.next_cursor, decode(page.server_hlc), now)
    return stats
