"""Prescription draft merge rules: owned by its encounter, last writer wins on the whole line list, frozen by signing.

A ``prescription_draft`` record's synced state is a map of fields, each with the HLC stamp of the edit that
set it (as for patients and encounters):

* owner: ``encounter_id`` and ``patient_id``, set when the draft is created and never changed. A draft
  belongs to its encounter; a desktop gives the draft of an encounter a fixed id (`draft_id_for`), so two PCs
  that start the encounter's prescription offline write the same record and merge instead of duplicating it.
* content, one unit (`CONTENT_FIELDS`): the prescriber, the typed lines with their expansion, the
  medication and AYUSH lines, the policy advisories, the alert overrides and the knowledge versions. They
  are written together with one stamp and win or lose together: the later stamp takes the whole list, so a
  merged draft is always a list some doctor typed and checked, never a mix of two. The losing list is
  returned as lost values (kept in the record's history), never dropped.
* ``deleted``: the tombstone of a discarded draft, merged by its own stamp. Saving the draft again sends
  ``deleted = false`` stamped later (an explicit restore: the doctor typed it again).

Merging is commutative, associative and idempotent (the same rule as `shared.sync.merge.merge_fields`, applied
to the content as one value; equal stamps with different content converge on the greater canonical JSON).
Signing freezes a prescription: once a ``signed_prescription`` exists for an id, replicas refuse draft edits
to it (``signed_immutable``); that check is the caller's, as it needs the store.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping

from shared.audit import canonical_json
from shared.clock import decode
from shared.sync.merge import LostValue, MergeOutcome, MergeResult, Side, merge_fields
from shared.sync.protocol import DELETED_FIELD, JsonValue

OWNER_FIELDS = ("encounter_id", "patient_id")
"""Set when the draft is created and never changed."""
CONTENT_FIELDS = (
    "prescriber_id",
    "lines",
    "medications",
    "ayush_medications",
    "advisories",
    "overrides",
    "kb_version",
    "policy_version",
)
"""One unit: written together, stamped together, winning together."""
OPTIONAL_CONTENT_FIELDS = ("excluded_conditions",)
"""Part of the content unit when present (same stamp, wins and loses with it), absent from older PCs' drafts:
``excluded_conditions`` is the list of ``{condition, reason}`` the doctor left out of the checks (absent: none)."""
DRAFT_FIELDS = (
    frozenset(OWNER_FIELDS) | frozenset(CONTENT_FIELDS) | frozenset(OPTIONAL_CONTENT_FIELDS) | {DELETED_FIELD}
)
"""Field names a ``prescription_draft`` change may carry."""

_DRAFT_NAMESPACE = b"integmed.prescription_draft.v1:"


class DraftConflict(ValueError):
    """The change cannot be merged at all (an unknown field, a changed owner, a partial content unit)."""


def draft_id_for(encounter_id: uuid.UUID) -> uuid.UUID:
    """The id of an encounter's prescription draft made on a PC: the same encounter always gives the same id.

    The result is a version 7 UUID (the record id rule) carrying the encounter's time prefix, with the rest
    taken from a hash of the encounter id, so it is distinct from the encounter's own id.

    Args:
        encounter_id: the encounter (a UUIDv7).

    Returns:
        A deterministic UUIDv7.
    """
    digest = hashlib.sha256(_DRAFT_NAMESPACE + encounter_id.bytes).digest()
    raw = bytearray(encounter_id.bytes[:6] + digest[:10])
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 9562 variant
    return uuid.UUID(bytes=bytes(raw))


def _check(fields: Mapping[str, JsonValue], field_hlcs: Mapping[str, str], side: Side) -> None:
    unknown = set(fields) - DRAFT_FIELDS
    if unknown:
        raise DraftConflict(f"not prescription draft fields: {', '.join(sorted(unknown))}")
    if fields.keys() != field_hlcs.keys():
        raise DraftConflict(f"{side} fields and field stamps must have the same keys")
    for text in field_hlcs.values():
        decode(text)
    content = [name for name in CONTENT_FIELDS if name in fields]
    optional = [name for name in OPTIONAL_CONTENT_FIELDS if name in fields]
    if optional and not content:
        raise DraftConflict(f"a draft's content travels whole: {', '.join(optional)} without the lines")
    content += optional
    if content and len(content) != len(CONTENT_FIELDS) + len(optional):
        missing = ", ".join(n for n in CONTENT_FIELDS if n not in fields)
        raise DraftConflict(f"a draft's content travels whole: {missing} missing")
    if content and len({field_hlcs[n] for n in content}) != 1:
        raise DraftConflict("a draft's content fields carry one stamp")
    if DELETED_FIELD in fields and not isinstance(fields[DELETED_FIELD], bool):
        raise DraftConflict(f"{DELETED_FIELD} must be true or false")


def is_deleted(fields: Mapping[str, JsonValue]) -> bool:
    """Whether a draft state is discarded (tombstoned)."""
    return fields.get(DELETED_FIELD) is True


def merge_draft(
    current_fields: Mapping[str, JsonValue],
    current_field_hlcs: Mapping[str, str],
    incoming_fields: Mapping[str, JsonValue],
    incoming_field_hlcs: Mapping[str, str],
) -> MergeResult:
    """Merge an incoming draft state into the stored one by the rules of this module.

    Args:
        current_fields: the stored draft's values (empty for a new draft).
        current_field_hlcs: the stored stamp per field.
        incoming_fields: the incoming values (a change's fields or another replica's state).
        incoming_field_hlcs: the incoming stamp per field.

    Returns:
        The merged state; ``lost`` holds every content field of the losing list whose value differs.

    Raises:
        DraftConflict: on an unknown field, mismatched keys, a bad stamp, a partial content unit or a change
            of ``encounter_id`` / ``patient_id``.
    """
    _check(current_fields, current_field_hlcs, Side.CURRENT)
    _check(incoming_fields, incoming_field_hlcs, Side.INCOMING)
    for name in OWNER_FIELDS:
        if name in current_fields and name in incoming_fields and current_fields[name] != incoming_fields[name]:
            raise DraftConflict(f"{name} of a prescription draft cannot change")
    fields: dict[str, JsonValue] = {}
    stamps: dict[str, str] = {}
    for name in OWNER_FIELDS:
        source, source_hlcs = (current_fields, current_field_hlcs)
        if name not in current_fields:
            source, source_hlcs = incoming_fields, incoming_field_hlcs
        if name in source:
            fields[name], stamps[name] = source[name], source_hlcs[name]
    owner_won = any(n in incoming_fields and n not in current_fields for n in OWNER_FIELDS)

    content, content_stamps, lost, content_won = _merge_content(
        current_fields, current_field_hlcs, incoming_fields, incoming_field_hlcs
    )
    fields |= content
    stamps |= content_stamps

    tomb_in = {k: incoming_fields[k] for k in (DELETED_FIELD,) if k in incoming_fields}
    tomb_mine = {k: current_fields[k] for k in (DELETED_FIELD,) if k in current_fields}
    tomb = merge_fields(
        tomb_mine,
        {k: current_field_hlcs[k] for k in tomb_mine},
        tomb_in,
        {k: incoming_field_hlcs[k] for k in tomb_in},
    )
    fields |= tomb.fields
    stamps |= tomb.field_hlcs
    lost = [*lost, *tomb.lost]
    won = owner_won or content_won or tomb.outcome is not MergeOutcome.NOOP
    incoming_lost = any(lv.side is Side.INCOMING for lv in lost)
    if not won:
        outcome = MergeOutcome.NOOP
    elif incoming_lost:
        outcome = MergeOutcome.MERGED
    else:
        outcome = MergeOutcome.APPLIED
    ordered = tuple(sorted(lost, key=lambda lv: (lv.field, lv.side)))
    return MergeResult(fields, stamps, ordered, outcome)


def _merge_content(
    current_fields: Mapping[str, JsonValue],
    current_field_hlcs: Mapping[str, str],
    incoming_fields: Mapping[str, JsonValue],
    incoming_field_hlcs: Mapping[str, str],
) -> tuple[dict[str, JsonValue], dict[str, str], list[LostValue], bool]:
    """The content unit's merge: (fields, stamps, lost values, whether the incoming content won)."""
    names = (*CONTENT_FIELDS, *OPTIONAL_CONTENT_FIELDS)
    mine = {n: current_fields[n] for n in names if n in current_fields}
    theirs = {n: incoming_fields[n] for n in names if n in incoming_fields}
    if not theirs:
        return mine, {n: current_field_hlcs[n] for n in mine}, [], False
    if not mine:
        return theirs, {n: incoming_field_hlcs[n] for n in theirs}, [], True
    # The whole content as one field: `merge_fields` picks the later stamp (or, for one stamp and two
    # contents, the greater canonical JSON), exactly as for a single patient field.
    unit = merge_fields(
        {"content": mine},
        {"content": current_field_hlcs[CONTENT_FIELDS[0]]},
        {"content": theirs},
        {"content": incoming_field_hlcs[CONTENT_FIELDS[0]]},
    )
    lost: list[LostValue] = []
    for loser in unit.lost:
        values, other = (mine, theirs) if loser.side is Side.CURRENT else (theirs, mine)
        lost += [
            LostValue(n, values[n], loser.hlc, loser.side)
            for n in names
            if n in values and (n not in other or canonical_json(values[n]) != canonical_json(other[n]))
        ]
    if unit.outcome is MergeOutcome.NOOP:
        return mine, {n: current_field_hlcs[n] for n in mine}, lost, False
    return theirs, {n: incoming_field_hlcs[n] for n in theirs}, lost, True
