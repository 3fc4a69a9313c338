"""Apply one pulled page in one local transaction, together with the new cursor (all or nothing)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from desktop.store.unit_of_work import UnitOfWorkFactory
from desktop.sync.apply_encounters import apply_encounters
from desktop.sync.apply_prescriptions import KINDS as RX_KINDS
from desktop.sync.apply_prescriptions import apply_prescriptions
from shared.audit import canonical_json
from shared.clock import HLC, ClockSkewError, decode
from shared.sync.merge import MergeOutcome, edits_of
from shared.sync.protocol import Change, JsonValue, PullResponse, RecordKind

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


def _seen(
    stored: tuple[dict[str, str], dict[str, JsonValue]], fields: dict[str, JsonValue], stamps: dict[str, str]
) -> bool:
    """Every incoming field is stored already with the same stamp and value (our own echo, or an edit seen
    before): `shared.sync.merge` would change nothing and lose nothing, so the merge is skipped."""
    stored_stamps, stored_values = stored
    return all(
        stored_stamps.get(name) == stamp
        and name in stored_values
        and canonical_json(stored_values[name]) == canonical_json(fields[name])
        for name, stamp in stamps.items()
    )


def apply_page(uows: UnitOfWorkFactory, page: PullResponse, clock: HLC) -> ApplyStats:
    """Merge every change of the page into the local store and store ``page.next_cursor``, in one transaction.

    Must run on the writer thread. A crash anywhere leaves either the old state and cursor or the new ones.
    Which records are already here is read once for the page; new ones are inserted together (before any
    later change of the same record in the page is merged), the others merged one by one.
    """
    stats = ApplyStats()
    now = datetime.now(UTC)
    with uows.write() as uow:
        clinic_id = uow.sync_state.clinic_id_or_unenrolled()
        stored = uow.patients.stored_stamps(c.id for c in page.changes if c.kind is RecordKind.PATIENT)
        new: dict[uuid.UUID, tuple[uuid.UUID, dict[str, JsonValue], dict[str, str]]] = {}
        encounters: list[Change] = []
        prescriptions: list[Change] = []
        for change in page.changes:
            if change.kind not in _KNOWN:
                continue  # kinds this version does not know yet stay on the server; the cursor moves on
            try:
                clock.update(decode(change.hlc))
            except ClockSkewError as exc:
                raise ClockTooSlow(exc.message) from exc
            if change.kind in RX_KINDS:
                prescriptions.append(change)  # applied once the page's encounters are stored
                continue
            if change.kind is not RecordKind.PATIENT:
                encounters.append(change)  # merged once the page's patients are stored (they may be new)
                continue
            fields, stamps = edits_of(change)
            known = stored.get(change.id)
            if known is None:
                new[change.id] = (change.id, fields, stamps)
                stored[change.id] = (stamps, fields)
                stats.inserted += 1
                continue
            if _seen(known, fields, stamps):
                stats.unchanged += 1
                continue
            if change.id in new:  # the page changes a record it also brings: store the new ones first
                uow.patients.insert_many(new.values(), clinic_id=clinic_id, now=now)
                new.clear()
            result = uow.patients.update_fields(change.id, fields, stamps, source="sync", now=now, current=known)
            stored[change.id] = (dict(result.field_hlcs), {n: result.fields[n] for n in result.field_hlcs})
            stats.conflicts += sum(1 for lost in result.lost if lost.side == "incoming")
            if result.outcome is MergeOutcome.NOOP:
                stats.unchanged += 1
            else:
                stats.updated += 1
        uow.patients.insert_many(new.values(), clinic_id=clinic_id, now=now)
        enc = apply_encounters(uow, encounters, clinic_id=clinic_id, now=now)
        stats.inserted, stats.updated = stats.inserted + enc.inserted, stats.updated + enc.updated
        stats.unchanged, stats.conflicts = stats.unchanged + enc.unchanged, stats.conflicts + enc.conflicts
        rx = apply_prescriptions(uow, prescriptions, clinic_id=clinic_id, now=now)
        stats.inserted, stats.updated = stats.inserted + rx.inserted, stats.updated + rx.updated
        stats.unchanged, stats.conflicts = stats.unchanged + rx.unchanged, stats.conflicts + rx.conflicts
        uow.sync_state.set_pull_cursor(page.next_cursor)
        uow.sync_state.remember_stamp(decode(page.server_hlc))
        uow.sync_state.set_last_pull_at(now)
        uow.commit()
    return stats
