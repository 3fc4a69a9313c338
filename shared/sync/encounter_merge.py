"""Encounter merge rules: per-section last-writer-wins while draft, completion monotonic, addenda after completion.

An encounter's synced state is a map of fields, each with the HLC stamp of the edit that set it (as for
patients, `shared.sync.merge.merge_fields`):

* header: ``patient_id`` and ``doctor_id`` (set once, never changed), ``encounter_type``, ``start_time``,
  ``chief_complaint``;
* SOAP sections, each one field: ``subjective``, ``objective``, ``examination``, ``assessment``, ``plan``;
* ``status`` (``draft`` / ``completed``) and ``completed_at``.

**Draft.** Two PCs editing different sections of one draft both keep their edit; editing the same section,
the later stamp wins and the other value is returned as lost (kept in history), as for patients.

**Completion is monotonic.** ``completed`` beats ``draft`` whatever the stamps, so an encounter never goes
back to draft; between two drafts (or two completions merged into a draft) the later stamp wins, so merging
drafts is commutative, associative and idempotent. A replica that holds a completed encounter keeps it as
it is, including its ``completed_at``: a second completion arriving later loses (kept in history).

**After completion.** A completed encounter's content is frozen (the database trigger refuses any change).
An incoming value that would win by stamp but differs from the stored one is *late*: it is not applied and
not dropped either — the caller stores it as an addendum authored by the change's author (`late_addendum`).
Whether a value is late depends on what the replica holds when it arrives; PCs converge because they take
the server's state and addenda from the pull.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from shared.audit import canonical_json
from shared.clock import decode
from shared.sync.merge import LostValue, MergeOutcome, MergeResult, Side, merge_fields
from shared.sync.protocol import ChangeStatus, JsonValue

HEADER_FIELDS = ("patient_id", "encounter_type", "start_time", "chief_complaint")
"""The header fields a new encounter must have."""
SECTION_FIELDS = ("subjective", "objective", "examination", "assessment", "plan")
STATUS_FIELDS = ("status", "completed_at")
IMMUTABLE_FIELDS = frozenset({"patient_id", "doctor_id"})
"""Set when the encounter is created and never changed (``doctor_id``: the doctor who saw the patient)."""
CONTENT_FIELDS = frozenset(HEADER_FIELDS + SECTION_FIELDS) | IMMUTABLE_FIELDS
ENCOUNTER_FIELDS = CONTENT_FIELDS | frozenset(STATUS_FIELDS)
"""Field names an encounter change may carry."""
DRAFT, COMPLETED = "draft", "completed"
ADDENDUM_FIELDS = frozenset({"encounter_id", "author_id", "text", "soap_note", "created_at"})
"""The fields of an ``encounter_addendum`` change (append-only: never merged)."""

_ADDENDUM_NAMESPACE = uuid.UUID("019ab4c2-0000-7000-8000-00000000add0")


class EncounterConflict(ValueError):
    """The change cannot be merged at all (an unknown field, a changed patient, a bad status)."""


@dataclass(frozen=True)
class LateValue:
    """An incoming value that arrived after the encounter was completed (stored as an addendum).

    Args:
        field: the field name.
        value: the late value.
        hlc: its stamp.
    """

    field: str
    value: JsonValue
    hlc: str


@dataclass(frozen=True)
class EncounterMerge:
    """The merged state, and the late values an addendum must keep.

    Args:
        result: the merged fields and stamps, the values that lost by stamp, the outcome.
        late: content the completed encounter refused, in field-name order (empty while draft).
    """

    result: MergeResult
    late: tuple[LateValue, ...]

    @property
    def change_status(self) -> ChangeStatus:
        """The push result for the incoming change.

        Returns:
            ``merged`` when an incoming value lost or arrived late (kept as an addendum), else ``applied``.
        """
        return ChangeStatus.MERGED if self.late else self.result.change_status

    @property
    def completed(self) -> bool:
        """Whether the merged encounter is completed."""
        return self.result.fields.get("status") == COMPLETED


def is_completed(fields: Mapping[str, JsonValue]) -> bool:
    """Whether an encounter state is completed.

    Args:
        fields: encounter field values.

    Returns:
        True when ``status`` is ``completed``.
    """
    return fields.get("status") == COMPLETED


def _check(fields: Mapping[str, JsonValue], field_hlcs: Mapping[str, str], side: Side) -> None:
    unknown = set(fields) - ENCOUNTER_FIELDS
    if unknown:
        raise EncounterConflict(f"not encounter fields: {', '.join(sorted(unknown))}")
    if fields.keys() != field_hlcs.keys():
        raise EncounterConflict(f"{side} fields and field stamps must have the same keys")
    for text in field_hlcs.values():
        decode(text)
    status = fields.get("status", DRAFT)
    if status not in (DRAFT, COMPLETED):
        raise EncounterConflict(f"status must be draft or completed, not {status!r:.40}")
    if "status" in fields and (status == COMPLETED) != (fields.get("completed_at") is not None):
        raise EncounterConflict("a completed encounter has completed_at, a draft has none")


def _status_key(fields: Mapping[str, JsonValue], hlcs: Mapping[str, str]) -> tuple[bool, str, bytes]:
    return (fields.get("status") == COMPLETED, hlcs.get("status", ""), canonical_json(fields.get("completed_at")))


def merge_encounter(
    current_fields: Mapping[str, JsonValue],
    current_field_hlcs: Mapping[str, str],
    incoming_fields: Mapping[str, JsonValue],
    incoming_field_hlcs: Mapping[str, str],
) -> EncounterMerge:
    """Merge an incoming encounter state into the stored one by the rules of this module.

    Args:
        current_fields: the stored encounter's values (empty for a new encounter).
        current_field_hlcs: the stored stamp per field.
        incoming_fields: the incoming values (a change's fields or another replica's state).
        incoming_field_hlcs: the incoming stamp per field.

    Returns:
        The merged state (status and completed_at move together), and the late values when the stored
        encounter is completed.

    Raises:
        EncounterConflict: on an unknown field, mismatched keys, a bad stamp or status, or a change of
            ``patient_id``.
    """
    _check(current_fields, current_field_hlcs, Side.CURRENT)
    _check(incoming_fields, incoming_field_hlcs, Side.INCOMING)
    for name in IMMUTABLE_FIELDS:
        if name in current_fields and name in incoming_fields and current_fields[name] != incoming_fields[name]:
            raise EncounterConflict(f"{name} of an encounter cannot change")
    content_in = {k: v for k, v in incoming_fields.items() if k in CONTENT_FIELDS}
    content_in_hlcs = {k: incoming_field_hlcs[k] for k in content_in}
    current_content = {k: v for k, v in current_fields.items() if k in CONTENT_FIELDS}
    current_content_hlcs = {k: current_field_hlcs[k] for k in current_content}
    late: list[LateValue] = []
    if is_completed(current_fields):
        probe = merge_fields(current_content, current_content_hlcs, content_in, content_in_hlcs)
        refused = {lv.field for lv in probe.lost if lv.side is Side.INCOMING}
        late = [
            LateValue(name, content_in[name], content_in_hlcs[name])
            for name in sorted(content_in)
            if name not in refused
            and (
                name not in current_content or canonical_json(current_content[name]) != canonical_json(content_in[name])
            )
        ]
        content = MergeResult(current_content, current_content_hlcs, (), MergeOutcome.NOOP)
    else:
        content = merge_fields(current_content, current_content_hlcs, content_in, content_in_hlcs)
    status, lost_status, status_won = _merge_status(
        current_fields, current_field_hlcs, incoming_fields, incoming_field_hlcs
    )
    fields = {**content.fields, **status[0]}
    field_hlcs = {**content.field_hlcs, **status[1]}
    lost = tuple(sorted(content.lost + lost_status, key=lambda lv: (lv.field, lv.side)))
    won = content.outcome is not MergeOutcome.NOOP or status_won
    incoming_lost = any(lv.side is Side.INCOMING for lv in lost) or bool(late)
    if not won:
        outcome = MergeOutcome.NOOP
    elif incoming_lost:
        outcome = MergeOutcome.MERGED
    else:
        outcome = MergeOutcome.APPLIED
    return EncounterMerge(MergeResult(fields, field_hlcs, lost, outcome), tuple(late))


def _merge_status(
    current: Mapping[str, JsonValue],
    current_hlcs: Mapping[str, str],
    incoming: Mapping[str, JsonValue],
    incoming_hlcs: Mapping[str, str],
) -> tuple[tuple[dict[str, JsonValue], dict[str, str]], tuple[LostValue, ...], bool]:
    """Status and completed_at as one unit: completed beats draft, then the later status stamp wins."""

    def unit(fields: Mapping[str, JsonValue], hlcs: Mapping[str, str]) -> tuple[dict[str, JsonValue], dict[str, str]]:
        names = [n for n in STATUS_FIELDS if n in fields]
        return {n: fields[n] for n in names}, {n: hlcs[n] for n in names}

    mine, theirs = unit(current, current_hlcs), unit(incoming, incoming_hlcs)
    if not theirs[0]:
        return mine, (), False
    if not mine[0]:
        return theirs, (), True
    if mine == theirs:
        return mine, (), False
    if mine[0].get("status") == COMPLETED:
        # A completed encounter is frozen (the databases refuse any change): its first completion stays.
        lost = tuple(LostValue(n, theirs[0][n], theirs[1][n], Side.INCOMING) for n in theirs[0])
        return mine, lost, False
    if _status_key(theirs[0], theirs[1]) > _status_key(mine[0], mine[1]):
        lost = tuple(LostValue(n, mine[0][n], mine[1][n], Side.CURRENT) for n in mine[0])
        return theirs, lost, True
    lost = tuple(LostValue(n, theirs[0][n], theirs[1][n], Side.INCOMING) for n in theirs[0])
    return mine, lost, False


def adopt_completed(
    current_fields: Mapping[str, JsonValue],
    current_field_hlcs: Mapping[str, str],
    completed_fields: Mapping[str, JsonValue],
    completed_field_hlcs: Mapping[str, str],
) -> EncounterMerge:
    """Take a completed encounter's full state (the server's) over a local draft; keep local extras as late.

    The server completed the encounter without some local draft edits (they reached it after the completion,
    or have not reached it yet). The replica takes the completed state exactly, so every replica holds the
    same note, and each local value that would have won by stamp is returned as late, with its own stamp:
    the server turns the same edit into the same addendum (`addendum_id`), so the two addenda are one.

    Args:
        current_fields: the local draft's values.
        current_field_hlcs: their stamps.
        completed_fields: every field of the completed encounter.
        completed_field_hlcs: their stamps.

    Returns:
        The completed state and the local late values.

    Raises:
        EncounterConflict: as `merge_encounter`, or when the incoming state is not completed.
    """
    if not is_completed(completed_fields):
        raise EncounterConflict("only a completed encounter's state is adopted")
    merged = merge_encounter(current_fields, current_field_hlcs, completed_fields, completed_field_hlcs)
    fields, stamps = merged.result.fields, merged.result.field_hlcs
    late = tuple(
        LateValue(name, fields[name], stamps[name])
        for name in sorted(CONTENT_FIELDS & fields.keys())
        if stamps[name] != completed_field_hlcs.get(name)
        and canonical_json(fields[name]) != canonical_json(completed_fields.get(name))
    )
    state = MergeResult(dict(completed_fields), dict(completed_field_hlcs), merged.result.lost, merged.result.outcome)
    return EncounterMerge(state, late)


def addendum_id(encounter_id: uuid.UUID, late: tuple[LateValue, ...]) -> uuid.UUID:
    """The id of the addendum that keeps these late values: the same late values always give the same id.

    So a re-sent change (a new batch, or a PC and the server both turning it into an addendum) adds one
    addendum, not two.

    Args:
        encounter_id: the completed encounter.
        late: the late values of one change.

    Returns:
        A name-based UUID of the encounter and the late values with their stamps.
    """
    body = canonical_json([[v.field, v.hlc, v.value] for v in late]).decode()
    return uuid.uuid5(_ADDENDUM_NAMESPACE, f"{encounter_id}:{body}")


def late_addendum_text(late: tuple[LateValue, ...], author: str) -> str:
    """The addendum's text: which fields arrived after completion, from whom, with every value in full.

    Args:
        late: the late values of one change.
        author: who made the edit (a name or id).

    Returns:
        A plain-text addendum body; nothing of the late values is left out.
    """
    lines = [f"Edit made before this PC learnt of the completion, by {author}; kept as an addendum:"]
    lines += [f"- {v.field}: {canonical_json(v.value).decode()}" for v in late]
    return "\n".join(lines)
