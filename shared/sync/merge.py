"""Conflict rules per record kind: per-field last-writer-wins, tombstones, and append-only duplicate collapse.

**Per-field LWW (patients).** A record's state is a map of fields, each with the HLC stamp of the edit that
set it. Merging two states keeps, field by field, the value with the greater stamp. Because the choice for
each field depends only on the two (stamp, value) pairs, merging is commutative, associative and idempotent:
every replica that has seen the same set of edits holds the same state, whatever order they arrived in, and
a replayed change is a no-op. Every value that loses is returned as a `LostValue`, so the caller can keep it
in history and show it; nothing is dropped.

**Equal stamps.** The node id is part of the stamp, so two equal stamps are the same edit seen twice: a no-op.
If they carry *different* values, two writers reused one stamp (a PC restored from a backup with its old
clock, or a bug). That must still converge, so the value with the greater canonical JSON wins and the other
is returned as lost, never silently discarded.

**Tombstones.** A delete is the field ``deleted = true`` with its own stamp, merged like any other field. An
edit stamped after a delete does **not** resurrect the record: its fields merge (so the edit is kept), but
``deleted`` only changes through an explicit restore, an upsert of ``deleted = false`` stamped after the
delete. A receptionist correcting a phone number on a PC that has not yet heard of the delete (often the
losing half of a duplicate-patient merge) must not bring the record back; restoring is a deliberate act.

**Append-only kinds** (readings, audit events) are never merged: `plan_appends` keeps the first record per id
and per natural key and reports the rest as duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from shared.audit import canonical_json
from shared.clock import Stamp, decode
from shared.records.patient import PatientFields
from shared.sync.protocol import DELETED_FIELD, Change, ChangeStatus, JsonValue, Op

PATIENT_FIELDS = frozenset(PatientFields.model_fields) | {DELETED_FIELD}
"""Field names a patient change may carry (``address`` merges as one field)."""

T = TypeVar("T")


class Side(StrEnum):
    """Which input of a merge a value came from."""

    CURRENT = "current"
    INCOMING = "incoming"


class MergeOutcome(StrEnum):
    """What a merge did with the incoming state.

    ``applied``: every incoming field won or was already there. ``merged``: some incoming fields won and some
    lost. ``noop``: no incoming field won (a replay, or incoming entirely older); the state is unchanged.
    """

    APPLIED = "applied"
    MERGED = "merged"
    NOOP = "noop"


@dataclass(frozen=True)
class LostValue:
    """A field value that lost a merge, kept for the record's history.

    Args:
        field: the field name.
        value: the losing value.
        hlc: the losing value's stamp.
        side: whether it was the current (stored) or the incoming value.
    """

    field: str
    value: JsonValue
    hlc: str
    side: Side


@dataclass(frozen=True)
class MergeResult:
    """The merged state and what happened on the way.

    Args:
        fields: the merged field values.
        field_hlcs: the merged field stamps (same keys as ``fields``).
        lost: every value that lost, in field-name order.
        outcome: applied, merged or noop (see `MergeOutcome`).
    """

    fields: dict[str, JsonValue]
    field_hlcs: dict[str, str]
    lost: tuple[LostValue, ...]
    outcome: MergeOutcome

    @property
    def change_status(self) -> ChangeStatus:
        """The push result for the incoming change.

        Returns:
            ``applied`` when nothing incoming lost (including replays), otherwise ``merged``.
        """
        if any(lost.side is Side.INCOMING for lost in self.lost):
            return ChangeStatus.MERGED
        return ChangeStatus.APPLIED


def _decoded_stamps(fields: Mapping[str, JsonValue], field_hlcs: Mapping[str, str], side: Side) -> dict[str, Stamp]:
    """Check one side of a merge and decode its stamps (so a malformed stamp never enters a state)."""
    if fields.keys() != field_hlcs.keys():
        raise ValueError(f"{side} fields and field stamps must have the same keys")
    return {name: decode(text) for name, text in field_hlcs.items()}


def _incoming_wins(
    current_stamp: Stamp, current_value: JsonValue, incoming_stamp: Stamp, incoming_value: JsonValue
) -> bool | None:
    """True if incoming wins, False if current wins, None if both are the same edit."""
    if incoming_stamp != current_stamp:
        return incoming_stamp > current_stamp
    # The same edit seen again (an echo): equal text or both null needs no encoding. Only exact ``str`` and
    # ``None``: ``==`` also holds for True and 1, whose JSON differs.
    if current_value is None and incoming_value is None:
        return None
    if type(current_value) is str and type(incoming_value) is str and current_value == incoming_value:
        return None
    current_bytes, incoming_bytes = canonical_json(current_value), canonical_json(incoming_value)
    if current_bytes == incoming_bytes:
        return None
    # One stamp, two values: a reused clock. Any fixed rule converges; this one needs no extra data.
    return incoming_bytes > current_bytes


def merge_fields(
    current_fields: Mapping[str, JsonValue],
    current_field_hlcs: Mapping[str, str],
    incoming_fields: Mapping[str, JsonValue],
    incoming_field_hlcs: Mapping[str, str],
) -> MergeResult:
    """Merge two field states by per-field last-writer-wins.

    Args:
        current_fields: the stored state's values (empty for a new record).
        current_field_hlcs: the stored state's stamp per field.
        incoming_fields: the incoming values (a change's fields, or another replica's state).
        incoming_field_hlcs: the incoming stamp per field.

    Returns:
        The merged state, the values that lost, and the outcome.

    Raises:
        ValueError: when a side's values and stamps have different keys, or a stamp is malformed.
    """
    stamps = _decoded_stamps(current_fields, current_field_hlcs, Side.CURRENT)
    incoming_stamps = _decoded_stamps(incoming_fields, incoming_field_hlcs, Side.INCOMING)
    if not stamps:
        # A new record (the common case of a first push): every incoming field wins, nothing is lost. This is
        # what the loop below gives, in the same field order, without comparing anything.
        names = sorted(incoming_fields)
        return MergeResult(
            {name: incoming_fields[name] for name in names},
            {name: incoming_field_hlcs[name] for name in names},
            (),
            MergeOutcome.APPLIED if names else MergeOutcome.NOOP,
        )
    fields = dict(current_fields)
    field_hlcs = dict(current_field_hlcs)
    lost: list[LostValue] = []
    won = incoming_lost = 0
    for name in sorted(incoming_fields):
        value, hlc = incoming_fields[name], incoming_field_hlcs[name]
        if name in stamps:
            verdict = _incoming_wins(stamps[name], fields[name], incoming_stamps[name], value)
            if verdict is None:
                continue
            if not verdict:
                lost.append(LostValue(name, value, hlc, Side.INCOMING))
                incoming_lost += 1
                continue
            lost.append(LostValue(name, fields[name], field_hlcs[name], Side.CURRENT))
        fields[name], field_hlcs[name] = value, hlc
        won += 1
    if won == 0:
        outcome = MergeOutcome.NOOP
    elif incoming_lost:
        outcome = MergeOutcome.MERGED
    else:
        outcome = MergeOutcome.APPLIED
    return MergeResult(fields, field_hlcs, tuple(lost), outcome)


def merge_patient(
    current_fields: Mapping[str, JsonValue],
    current_field_hlcs: Mapping[str, str],
    incoming_fields: Mapping[str, JsonValue],
    incoming_field_hlcs: Mapping[str, str],
) -> MergeResult:
    """Merge patient states by per-field last-writer-wins, with the tombstone rule of this module.

    The merged values are not validated as a whole here: the caller validates the result with
    `shared.records.patient.PatientFields` and rejects the change (``invalid_record``) when it fails.

    Args:
        current_fields: the stored patient's values (empty for a new patient).
        current_field_hlcs: the stored stamp per field.
        incoming_fields: the incoming values, e.g. from `edits_of`.
        incoming_field_hlcs: the incoming stamp per field.

    Returns:
        The merged state, the values that lost, and the outcome.

    Raises:
        ValueError: when a field is not a patient field (see `PATIENT_FIELDS`), values and stamps have
            different keys, or a stamp is malformed.
    """
    unknown = (current_fields.keys() | incoming_fields.keys()) - PATIENT_FIELDS
    if unknown:
        raise ValueError(f"not patient fields: {', '.join(sorted(unknown))}")
    return merge_fields(current_fields, current_field_hlcs, incoming_fields, incoming_field_hlcs)


def edits_of(change: Change) -> tuple[dict[str, JsonValue], dict[str, str]]:
    """The field values and stamps a change sets, with a delete turned into its tombstone field.

    Args:
        change: a validated change.

    Returns:
        ``(fields, field_hlcs)`` ready for `merge_patient`: an upsert's own fields, or
        ``{"deleted": True}`` stamped with the change's ``hlc`` for a delete.
    """
    if change.op is Op.DELETE:
        return {DELETED_FIELD: True}, {DELETED_FIELD: change.hlc}
    return dict(change.fields), dict(change.field_hlcs)


def is_deleted(fields: Mapping[str, JsonValue]) -> bool:
    """Whether a merged state is a tombstone.

    Args:
        fields: merged field values.

    Returns:
        True when the ``deleted`` field is ``true``.
    """
    return fields.get(DELETED_FIELD) is True


class DuplicateBy(StrEnum):
    """What made an append-only record a duplicate."""

    ID = "id"
    NATURAL_KEY = "natural_key"


@dataclass(frozen=True)
class AppendPlan(Generic[T]):
    """Which incoming append-only records to store.

    Args:
        new: records to insert, in input order.
        duplicates: the other records, each with what it duplicated.
    """

    new: tuple[T, ...]
    duplicates: tuple[tuple[T, DuplicateBy], ...]


def plan_appends(
    incoming: Iterable[T],
    *,
    known_ids: AbstractSet[uuid.UUID],
    known_keys: AbstractSet[Hashable],
    id_of: Callable[[T], uuid.UUID],
    natural_key_of: Callable[[T], Hashable | None],
) -> AppendPlan[T]:
    """Collapse duplicates of immutable records (readings, audit events) by id and by natural key.

    A record is a duplicate when its id, or its natural key (for a reading: device, characteristic, device
    time, sequence), is already stored or appeared earlier in ``incoming``. The first one wins: stored
    records are never replaced, and within a batch the device's own order decides. Contents are not
    compared; a caller that must refuse a changed immutable record compares the stored one itself.

    Args:
        incoming: candidate records, in arrival order.
        known_ids: ids already stored.
        known_keys: natural keys already stored.
        id_of: the record's id.
        natural_key_of: the record's natural key, or ``None`` when it has none.

    Returns:
        The records to insert and the duplicates.
    """
    seen_ids = set(known_ids)
    seen_keys = set(known_keys)
    new: list[T] = []
    duplicates: list[tuple[T, DuplicateBy]] = []
    for record in incoming:
        record_id, key = id_of(record), natural_key_of(record)
        if record_id in seen_ids:
            duplicates.append((record, DuplicateBy.ID))
        elif key is not None and key in seen_keys:
            duplicates.append((record, DuplicateBy.NATURAL_KEY))
        else:
            new.append(record)
            seen_ids.add(record_id)
            if key is not None:
                seen_keys.add(key)
    return AppendPlan(tuple(new), tuple(duplicates))
