"""Prescription drafts, audited alert overrides and qualification refusals in the local store (SQL only).

Overrides and refusals are audit rows: inserted, never updated or deleted (triggers refuse both).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from desktop.store.tables import prescription_history, prescriptions, rx_alert_overrides, rx_refusals
from shared.clock import Stamp, encode
from shared.ids import uuid7
from shared.sync.merge import LostValue, Side
from shared.sync.prescription_merge import CONTENT_FIELDS, OWNER_FIELDS
from shared.sync.protocol import DELETED_FIELD, JsonValue

UNSTAMPED = encode(Stamp(0, 0, "unstamped"))
"""The stamp of drafts saved before drafts synced: older than any real edit."""


@dataclass(frozen=True)
class StoredPrescription:
    """A prescription row.

    Args:
        lines: the typed lines with their expansion: ``[{"text": …, "expanded": {…}}]``.
        medications / ayush_medications: the shared record lines (`shared.records.prescription`) as JSON.
        advisories: policy advisories (`PolicyNote` JSON) found when it was saved.
    """

    id: uuid.UUID
    encounter_id: uuid.UUID
    patient_id: uuid.UUID
    prescriber_id: uuid.UUID
    status: str
    lines: list[dict[str, Any]]
    medications: list[dict[str, Any]]
    ayush_medications: list[dict[str, Any]]
    advisories: list[dict[str, Any]]
    kb_version: str
    policy_version: str
    version: int
    created_at: datetime
    updated_at: datetime
    field_hlcs: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    overrides: list[dict[str, Any]] = field(default_factory=list)
    sync_refusal: dict[str, Any] | None = None
    """The server's refusal of the latest synced edit (``{reason, message, hlc}``), until the next save."""


@dataclass(frozen=True)
class OverrideRecord:
    """One audited override of an interaction alert: who, when, which rule, why, and the lines involved."""

    id: uuid.UUID
    encounter_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    rule_id: str
    alert_key: str
    severity: str
    reason: str
    lines: list[dict[str, Any]]
    kb_version: str


@dataclass(frozen=True)
class RefusalRecord:
    """One attempt to save a medicine the prescribing policy refuses for this prescriber."""

    id: uuid.UUID
    encounter_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    rule_id: str
    medicine: str
    line_text: str
    reason: str
    source: str
    policy_version: str


def _list(value: JsonValue) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def typed_line(line: dict[str, Any]) -> str:
    """A medication or AYUSH line written out as a pad line (for drafts that arrive without typed text)."""
    parts = [line.get("generic_name") or line.get("name"), line.get("strength") or line.get("dose")]
    parts += [line.get("frequency"), f"x {line['duration_days']}d" if line.get("duration_days") else None]
    return " ".join(str(p) for p in parts if p)


def pad_lines(fields: dict[str, Any]) -> list[Any]:
    """The draft's typed lines; a draft written through the REST API has none (null), so each medicine is
    written out as a line (`typed_line`) for the Rx pad to show and re-check."""
    lines = fields["lines"]
    if lines is not None:
        return list(lines)
    made = [{"text": typed_line(m), "expanded": None} for m in _list(fields["medications"])]
    return made + [{"text": typed_line(a), "expanded": None} for a in _list(fields["ayush_medications"])]


SYNC_FIELDS = (*OWNER_FIELDS, *CONTENT_FIELDS, DELETED_FIELD)


CONDITION_EXCLUDED = "CONDITION-EXCLUDED"
"""``rule_id`` of an audited exclusion of an earlier visit's condition from a prescription's checks."""
CONDITION_INCLUDED = "CONDITION-INCLUDED"
"""``rule_id`` of putting an excluded condition back into the checks; the latest row per condition decides."""
CONDITION_KEY_PREFIX = "condition:"
"""``alert_key`` of those rows: the prefix, then the condition's key (``SNOMED:…`` / ``ICD10:…`` / text)."""
SYNCED_INCLUDE_REASON = "checked again: the synced draft no longer excludes it"
MIN_AUDIT_REASON = 8
"""Characters (trimmed) ``rx_alert_overrides.reason`` needs (its CHECK)."""


class PrescriptionRepository:
    """Prescription rows on one unit of work's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def for_encounter(self, encounter_id: uuid.UUID) -> StoredPrescription | None:
        """The encounter's prescription, or None (a discarded draft is kept as a tombstone, not returned)."""
        found = self.row_for_encounter(encounter_id)
        return None if found is None or found.deleted else found

    def row_for_encounter(self, encounter_id: uuid.UUID) -> StoredPrescription | None:
        """The encounter's prescription row, discarded or not."""
        row = self._conn.execute(
            sa.select(prescriptions).where(prescriptions.c.encounter_id == encounter_id)
        ).one_or_none()
        return None if row is None else StoredPrescription(**row._asdict())

    def find(self, prescription_id: uuid.UUID) -> StoredPrescription | None:
        """The prescription row with this id, discarded or not."""
        row = self._conn.execute(sa.select(prescriptions).where(prescriptions.c.id == prescription_id)).one_or_none()
        return None if row is None else StoredPrescription(**row._asdict())

    # -- sync ---------------------------------------------------------------------------------------------

    @staticmethod
    def synced_state(rx: StoredPrescription) -> tuple[dict[str, JsonValue], dict[str, str]]:
        """A stored prescription as synced fields and stamps (`shared.sync.prescription_merge`)."""
        fields: dict[str, Any] = {
            "encounter_id": str(rx.encounter_id),
            "patient_id": str(rx.patient_id),
            "prescriber_id": str(rx.prescriber_id),
            "lines": rx.lines,
            "medications": rx.medications,
            "ayush_medications": rx.ayush_medications,
            "advisories": rx.advisories,
            "overrides": rx.overrides,
            "kb_version": rx.kb_version,
            "policy_version": rx.policy_version,
            DELETED_FIELD: rx.deleted,
        }
        return fields, {name: rx.field_hlcs.get(name, UNSTAMPED) for name in fields}

    @staticmethod
    def values_of(fields: dict[str, JsonValue], field_hlcs: dict[str, str]) -> dict[str, Any]:
        """Merged synced fields as column values (``lines`` of a draft written through the REST API, which has
        none, are made from its medicines so the Rx pad can show and re-check them)."""
        return {
            "prescriber_id": uuid.UUID(str(fields["prescriber_id"])),
            "lines": pad_lines(fields),
            "medications": fields["medications"],
            "ayush_medications": fields["ayush_medications"],
            "advisories": fields["advisories"],
            "overrides": fields["overrides"],
            "kb_version": fields["kb_version"] or "",
            "policy_version": fields["policy_version"],
            "deleted": fields.get(DELETED_FIELD) is True,
            "field_hlcs": {k: v for k, v in field_hlcs.items() if v != UNSTAMPED},
        }

    def add_history(self, prescription_id: uuid.UUID, lost: Any, winners: dict[str, str], *, now: datetime) -> None:
        """Keep every value that lost a merge (`LostValue`s), with the stamp that beat it.

        A field of the content unit the winner does not carry (``excluded_conditions``: absent means none) was
        beaten by the winner's content stamp (every field of the unit carries the same one).
        """
        unit_stamp = winners.get(CONTENT_FIELDS[0])
        rows = [
            {"prescription_id": prescription_id, "field": lv.field, "value": lv.value, "hlc": lv.hlc,
             "replaced_by_hlc": winners.get(lv.field, unit_stamp), "lost": lv.side is Side.INCOMING,
             "source": "sync", "recorded_at": now}
            for lv in lost
        ]  # fmt: skip
        if rows:
            self._conn.execute(prescription_history.insert(), rows)

    def history(self, prescription_id: uuid.UUID) -> list[LostValue]:
        """Values of this prescription that lost a merge, oldest first."""
        rows = self._conn.execute(
            sa.select(prescription_history)
            .where(prescription_history.c.prescription_id == prescription_id)
            .order_by(prescription_history.c.id)
        ).all()
        return [LostValue(r.field, r.value, r.hlc, Side.INCOMING if r.lost else Side.CURRENT) for r in rows]

    def set_sync_refusal(self, prescription_id: uuid.UUID, refusal: dict[str, Any] | None) -> bool:
        """Record (or clear) the server's refusal of a draft; False when the row is gone or final."""
        done = self._conn.execute(
            prescriptions.update()
            .where(prescriptions.c.id == prescription_id, prescriptions.c.status == "draft")
            .values(sync_refusal=refusal)
        )
        return bool(done.rowcount)

    def insert(self, values: dict[str, Any]) -> None:
        self._conn.execute(prescriptions.insert().values(**values))

    def update(self, prescription_id: uuid.UUID, values: dict[str, Any]) -> None:
        self._conn.execute(
            prescriptions.update()
            .where(prescriptions.c.id == prescription_id)
            .values(**values, version=prescriptions.c.version + 1)
        )

    def delete_draft(self, prescription_id: uuid.UUID) -> None:
        """Remove a draft whose every line was deleted (a final prescription is refused by a trigger)."""
        self._conn.execute(prescriptions.delete().where(prescriptions.c.id == prescription_id))

    # -- audit rows -------------------------------------------------------------------------------------

    def add_override(self, record: OverrideRecord) -> None:
        self._conn.execute(rx_alert_overrides.insert().values(**record.__dict__))

    def overrides(self, encounter_id: uuid.UUID) -> list[OverrideRecord]:
        """Overrides recorded for the encounter, oldest first."""
        rows = self._conn.execute(
            sa.select(rx_alert_overrides)
            .where(rx_alert_overrides.c.encounter_id == encounter_id)
            .order_by(rx_alert_overrides.c.created_at, rx_alert_overrides.c.id)
        ).all()
        return [OverrideRecord(**row._asdict()) for row in rows]

    def condition_exclusions(self, encounter_id: uuid.UUID) -> dict[str, str]:
        """``alert_key`` → reason, for the earlier conditions whose latest row excludes them for this encounter."""
        latest: dict[str, OverrideRecord] = {}
        for record in self.overrides(encounter_id):  # oldest first
            if record.rule_id in (CONDITION_EXCLUDED, CONDITION_INCLUDED):
                latest[record.alert_key] = record
        return {key: r.reason for key, r in latest.items() if r.rule_id == CONDITION_EXCLUDED}

    def mirror_exclusions(
        self,
        encounter_id: uuid.UUID,
        excluded: list[dict[str, Any]],
        *,
        user_id: uuid.UUID,
        kb_version: str,
        now: datetime,
    ) -> int:
        """Make this encounter's exclusions those of a pulled draft's content (``excluded_conditions``: the
        ``{condition, reason}`` its doctor left out of the checks), with audited rows as the doctor's own: an
        exclusion row for each one not in force here with that reason, an inclusion row for each one in force
        here that the content no longer lists. How many rows were written.

        A reason shorter than the column allows (a server never accepts one) is skipped, not shortened or padded.
        """
        current = self.condition_exclusions(encounter_id)
        wanted = {
            CONDITION_KEY_PREFIX + str(x["condition"]): " ".join(str(x["reason"]).split())
            for x in excluded
            if isinstance(x, dict) and x.get("condition") and x.get("reason")
        }
        rows = [
            (key, CONDITION_EXCLUDED, reason)
            for key, reason in wanted.items()
            if current.get(key) != reason and len(reason.replace(" ", "")) >= MIN_AUDIT_REASON
        ] + [(key, CONDITION_INCLUDED, SYNCED_INCLUDE_REASON) for key in current.keys() - wanted.keys()]
        for key, rule_id, reason in rows:
            self.add_override(
                OverrideRecord(
                    id=uuid7(), encounter_id=encounter_id, user_id=user_id, created_at=now, rule_id=rule_id,
                    alert_key=key, severity="excluded" if rule_id == CONDITION_EXCLUDED else "included",
                    reason=reason, lines=[{"key": key.removeprefix(CONDITION_KEY_PREFIX), "from": "synced draft"}],
                    kb_version=kb_version,
                )
            )  # fmt: skip
        return len(rows)

    def mirror_overrides(
        self,
        encounter_id: uuid.UUID,
        overrides: list[Any],
        *,
        user_id: uuid.UUID,
        kb_version: str,
        now: datetime,
    ) -> int:
        """Make a pulled draft's overrides of major alerts this encounter's own: an audited row (in the
        prescriber's name) for each ``{rule_id, reason, alert_key, names}`` not recorded here with that reason.
        Entries without ``alert_key`` (drafts from the REST API or older PCs) name a rule, not the alert the pad
        keys overrides by: left out, the pad asks again. How many rows were written."""
        latest = {o.alert_key: o.reason for o in self.overrides(encounter_id)}
        rows = 0
        for o in overrides:
            if not isinstance(o, dict) or not isinstance(o.get("alert_key"), str) or not o.get("rule_id"):
                continue
            reason = " ".join(str(o.get("reason") or "").split())
            if latest.get(o["alert_key"]) == reason or len(reason.replace(" ", "")) < MIN_AUDIT_REASON:
                continue
            names = [str(n) for n in o.get("names") or [] if isinstance(n, str)]
            self.add_override(
                OverrideRecord(
                    id=uuid7(), encounter_id=encounter_id, user_id=user_id, created_at=now,
                    rule_id=str(o["rule_id"]), alert_key=o["alert_key"], severity="major", reason=reason,
                    lines=[{"name": n} for n in names] + [{"from": "synced draft"}], kb_version=kb_version,
                )
            )  # fmt: skip
            rows += 1
        return rows

    def add_refusal(self, record: RefusalRecord) -> None:
        self._conn.execute(rx_refusals.insert().values(**record.__dict__))

    def refusals(self, encounter_id: uuid.UUID) -> list[RefusalRecord]:
        """Refusal attempts recorded for the encounter, oldest first."""
        rows = self._conn.execute(
            sa.select(rx_refusals)
            .where(rx_refusals.c.encounter_id == encounter_id)
            .order_by(rx_refusals.c.created_at, rx_refusals.c.id)
        ).all()
        return [RefusalRecord(**row._asdict()) for row in rows]
