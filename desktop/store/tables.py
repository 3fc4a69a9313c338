"""Table definitions of the local store (SQLAlchemy Core): the only place column names are spelled.

The schema itself is made by the Alembic revisions under ``migrations/desktop/``; these definitions must
agree with them (``tests/desktop/test_migrate.py`` compares the two). Values are stored as text where SQLite
has no type: UUIDs in their canonical dashed form, timestamps as ISO 8601 UTC with microseconds (fixed
width, so text order is time order), JSON compact and UTF-8 (Devanagari stays readable in the file).

The FTS5 index ``patient_search`` is not described here: SQLAlchemy cannot express a virtual table. It
indexes `patient_search_docs`, which triggers on `patients` keep in step (see the first revision).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

SEARCH_TABLE = "patient_search"
"""The FTS5 virtual table over `patient_search_docs` (made by the migration, queried by `store.patients`)."""


class UuidText(TypeDecorator[uuid.UUID]):
    """A UUID stored as its canonical 36-character text (``sa.Uuid`` would store 32 hex digits)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: uuid.UUID | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> uuid.UUID | None:
        return None if value is None else uuid.UUID(value)


class UtcTimestamp(TypeDecorator[datetime]):
    """An aware datetime stored as ISO 8601 text in UTC with microseconds; naive datetimes are refused."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (use datetime.now(UTC))")
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def process_result_value(self, value: str | None, dialect: Dialect) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)


class JsonText(TypeDecorator[Any]):
    """A JSON value stored as compact UTF-8 text.

    Args:
        none_as_null: store Python ``None`` as SQL NULL (True) or as the JSON text ``null`` (False, for
            columns where a JSON null is a real value, such as a cleared field in history).
    """

    impl = sa.Text
    cache_ok = True

    def __init__(self, *, none_as_null: bool = True) -> None:
        super().__init__()
        self.none_as_null = none_as_null

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None and self.none_as_null:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


def _json_text_encoder() -> Callable[[Any], str]:
    """`desktop.store.tables.JsonText`'s encoding (``json.dumps`` with its settings) as one function built once.

    ``JSONEncoder.encode`` builds the C encoder afresh for every value; a pulled page of 1000 patients encodes
    2000 values (address, field stamps), and building spent as long as encoding. This one is built once,
    without the circular-reference check (a value parsed from JSON or built by us has no cycles; one would
    raise `RecursionError` instead of `ValueError`). Without the C accelerator it is ``encode`` itself.
    """
    settings = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    make = getattr(json.encoder, "c_make_encoder", None)  # the C accelerator (not in the module's stubs)
    if make is None:  # pragma: no cover - CPython always has it
        return settings.encode
    string = json.encoder.encode_basestring
    chunks = make(None, settings.default, string, None, ":", ",", True, False, True)

    def encode(value: Any) -> str:
        return string(value) if isinstance(value, str) else "".join(chunks(value, 0))

    return encode


json_text = _json_text_encoder()
"""`JsonText` of a value that is not ``None``, as one function (for driver-level ``executemany`` rows)."""


class IntBool(TypeDecorator[bool]):
    """A boolean stored as INTEGER 0/1 (the column type the migrations declare, with a CHECK)."""

    impl = sa.Integer
    cache_ok = True

    def process_bind_param(self, value: bool | None, dialect: Dialect) -> int | None:
        return None if value is None else int(bool(value))

    def process_result_value(self, value: int | None, dialect: Dialect) -> bool | None:
        return None if value is None else bool(value)


metadata = sa.MetaData()

patients = sa.Table(
    "patients",
    metadata,
    sa.Column("id", UuidText, primary_key=True),
    sa.Column("clinic_id", UuidText, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("gender", sa.Text, nullable=False),
    sa.Column("year_of_birth", sa.Integer, nullable=False),
    sa.Column("date_of_birth", sa.Text),  # ISO date, as the record's JSON carries it
    sa.Column("mobile", sa.Text),  # +91XXXXXXXXXX
    sa.Column("abha_number", sa.Text),  # 14 digits, no dashes
    sa.Column("abha_address", sa.Text),  # lower case
    sa.Column("address", JsonText()),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("updated_at", UtcTimestamp, nullable=False),
    sa.Column("hlc", sa.Text, nullable=False),  # the greatest of field_hlcs
    sa.Column("field_hlcs", JsonText(), nullable=False, server_default="{}"),  # field -> encoded HLC stamp
    sa.Column("deleted", IntBool, nullable=False, server_default=sa.text("0")),
    # Local revision: 1 on insert, +1 per applied change (local or pulled).
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Index("patients_clinic", "clinic_id"),
    sa.Index("patients_abha_number", "abha_number", sqlite_where=sa.text("abha_number IS NOT NULL")),
    sa.Index("patients_abha_address", "abha_address", sqlite_where=sa.text("abha_address IS NOT NULL")),
    sa.Index("patients_mobile", "mobile", sqlite_where=sa.text("mobile IS NOT NULL")),
    sa.Index("patients_hlc", "hlc"),
)

patient_history = sa.Table(
    "patient_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("patient_id", UuidText, sa.ForeignKey("patients.id"), nullable=False),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("value", JsonText(none_as_null=False), nullable=False),  # the value that lost
    sa.Column("hlc", sa.Text, nullable=False),  # its stamp
    sa.Column("replaced_by_hlc", sa.Text, nullable=False),  # the stamp of the value kept instead
    sa.Column("side", sa.Text, nullable=False),  # 'current' (stored, replaced) or 'incoming' (arrived, lost)
    sa.Column("source", sa.Text, nullable=False),  # what wrote: 'local', 'import' or 'sync'
    sa.Column("recorded_at", UtcTimestamp, nullable=False),
    sa.Index("patient_history_patient", "patient_id", "id"),
    sa.Index("patient_history_value", "patient_id", "field", "hlc", unique=True),
    sqlite_autoincrement=True,
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("change_id", UuidText, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("record_id", UuidText, nullable=False),
    sa.Column("op", sa.Text, nullable=False),
    sa.Column("payload", JsonText(), nullable=False),  # {"fields": …, "field_hlcs": …, "actor": …}
    sa.Column("hlc", sa.Text, nullable=False),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("batch_id", UuidText),  # NULL until handed to a push batch
    sa.Column("acked", IntBool, nullable=False, server_default=sa.text("0")),
    sa.Index("outbox_unsent", "seq", sqlite_where=sa.text("batch_id IS NULL")),
    sa.Index("outbox_batch", "batch_id", "seq", sqlite_where=sa.text("batch_id IS NOT NULL")),
    sa.Index("outbox_pending", "seq", sqlite_where=sa.text("acked = 0")),
    sa.Index("outbox_hlc", "hlc"),
    sqlite_autoincrement=True,
)

sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

local_users = sa.Table(
    "local_users",
    metadata,
    sa.Column("user_id", UuidText, primary_key=True),
    sa.Column("hpr_id", sa.Text),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("clinic_id", UuidText, nullable=False),
    sa.Column("profile", JsonText(), nullable=False, server_default="{}"),
    sa.Column("pin_hash", sa.Text),
    sa.Column("failed_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("locked_until", UtcTimestamp),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("updated_at", UtcTimestamp, nullable=False),
    sa.Index("local_users_hpr_id", "hpr_id", sqlite_where=sa.text("hpr_id IS NOT NULL")),
)

patient_search_docs = sa.Table(
    "patient_search_docs",
    metadata,
    # FTS5 needs an integer key; a patient's own rowid is not stable (VACUUM may renumber rowids of a table
    # whose primary key is not INTEGER), so the search document has its own INTEGER PRIMARY KEY.
    sa.Column("doc_id", sa.Integer, primary_key=True),
    sa.Column("patient_id", UuidText, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("digits", sa.Text, nullable=False),
)

known_devices = sa.Table(
    "known_devices",
    metadata,
    sa.Column("address", sa.Text, primary_key=True),  # Bluetooth address (a per-host UUID on macOS)
    sa.Column("name", sa.Text),
    sa.Column("services", JsonText(), nullable=False, server_default="[]"),  # short UUIDs, e.g. ["1810"]
    sa.Column("paired", IntBool, nullable=False, server_default=sa.text("0")),
    sa.Column("battery_percent", sa.Integer),
    sa.Column("added_at", UtcTimestamp, nullable=False),
    sa.Column("last_seen_at", UtcTimestamp),
)

readings = sa.Table(
    "readings",
    metadata,
    sa.Column("id", UuidText, primary_key=True),
    # device address | characteristic | device time | sequence (| arrival time when the device sends neither):
    # a repeated notification or a re-downloaded record finds its row and is not stored twice.
    sa.Column("natural_key", sa.Text, nullable=False, unique=True),
    sa.Column("device_address", sa.Text, nullable=False),
    sa.Column("device_name", sa.Text),
    sa.Column("characteristic", sa.Text, nullable=False),  # 16-bit UUID, e.g. "2A35"
    sa.Column("sequence", sa.Integer),  # glucose record sequence number
    sa.Column("device_time", sa.Text),  # the device's own clock, as sent (no zone)
    sa.Column("measured_at", UtcTimestamp, nullable=False),
    sa.Column("time_source", sa.Text, nullable=False),  # 'device-local' or 'received'
    sa.Column("received_at", UtcTimestamp, nullable=False),
    sa.Column("patient_id", UuidText),  # NULL when no patient was in the chair, or not patient data
    sa.Column("encounter_id", UuidText),
    sa.Column("status", sa.Text, nullable=False),  # 'patient', 'unattached', 'excluded', 'undecodable'
    sa.Column("note", sa.Text),  # why excluded / undecodable
    sa.Column("values", JsonText(), nullable=False, server_default="[]"),  # [{metric, value, unit}]
    sa.Column("decoded", JsonText()),  # the full shared.gatt Reading
    sa.Column("raw_hex", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Index("readings_patient", "patient_id", "measured_at"),
    sa.Index("readings_device", "device_address", "received_at"),
    sa.Index("readings_device_sequence", "device_address", "characteristic", "sequence"),
)

# --- encounters and prescriptions (revision 2026_11_25_0002; triggers keep completed rows immutable) ------

encounters = sa.Table(
    "encounters",
    metadata,
    sa.Column("id", UuidText, primary_key=True),
    sa.Column("clinic_id", UuidText, nullable=False),
    sa.Column("patient_id", UuidText, sa.ForeignKey("patients.id"), nullable=False),
    sa.Column("doctor_id", UuidText, nullable=False),
    sa.Column("encounter_type", sa.Text, nullable=False),
    sa.Column("start_time", UtcTimestamp, nullable=False),
    sa.Column("chief_complaint", sa.Text, nullable=False),
    sa.Column("soap_note", JsonText()),  # shared.records.encounter.SoapNote as JSON
    sa.Column("status", sa.Text, nullable=False, server_default="draft"),  # draft | completed
    sa.Column("completed_at", UtcTimestamp),
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("updated_at", UtcTimestamp, nullable=False),
    sa.Column("field_hlcs", JsonText(), nullable=False, server_default="{}"),  # synced field → HLC stamp
    sa.Index("encounters_patient", "patient_id", "start_time"),
)

encounter_addenda = sa.Table(
    "encounter_addenda",
    metadata,
    sa.Column("id", UuidText, primary_key=True),
    sa.Column("encounter_id", UuidText, sa.ForeignKey("encounters.id"), nullable=False),
    sa.Column("author_id", UuidText, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("soap_note", JsonText()),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Index("encounter_addenda_encounter", "encounter_id", "created_at"),
)

prescriptions = sa.Table(
    "prescriptions",
    metadata,
    sa.Column("id", UuidText, primary_key=True),
    sa.Column("encounter_id", UuidText, sa.ForeignKey("encounters.id"), nullable=False, unique=True),
    sa.Column("patient_id", UuidText, sa.ForeignKey("patients.id"), nullable=False),
    sa.Column("prescriber_id", UuidText, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="draft"),  # draft | final
    sa.Column("lines", JsonText(), nullable=False),  # [{"text": typed line, "expanded": ExpandedLine JSON}]
    sa.Column("medications", JsonText(), nullable=False),  # shared.records.prescription.MedicationLine list
    sa.Column("ayush_medications", JsonText(), nullable=False),  # AyushLine list
    sa.Column("advisories", JsonText(), nullable=False, server_default="[]"),  # PolicyNote list
    sa.Column("kb_version", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("updated_at", UtcTimestamp, nullable=False),
)

rx_alert_overrides = sa.Table(
    "rx_alert_overrides",
    metadata,
    sa.Column("id", UuidText, primary_key=True),
    sa.Column("encounter_id", UuidText, sa.ForeignKey("encounters.id"), nullable=False),
    sa.Column("user_id", UuidText, nullable=False),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("rule_id", sa.Text, nullable=False),
    sa.Column("alert_key", sa.Text, nullable=False),  # rule id + the medicines involved
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),  # typed by the doctor
    sa.Column("lines", JsonText(), nullable=False),  # the lines involved, as typed and as resolved
    sa.Column("kb_version", sa.Text, nullable=False),
    sa.Index("rx_alert_overrides_encounter", "encounter_id", "alert_key"),
)

rx_refusals = sa.Table(
    "rx_refusals",
    metadata,
    sa.Column("id", UuidText, primary_key=True),
    sa.Column("encounter_id", UuidText, sa.ForeignKey("encounters.id"), nullable=False),
    sa.Column("user_id", UuidText, nullable=False),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("rule_id", sa.Text, nullable=False),
    sa.Column("medicine", sa.Text, nullable=False),
    sa.Column("line_text", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Text, nullable=False),
    sa.Index("rx_refusals_encounter", "encounter_id", "created_at"),
)

signed_prescriptions = sa.Table(
    "signed_prescriptions",
    metadata,
    # One row per signed prescription, written once (P4): the exact signed bytes and the QR text.
    sa.Column("prescription_id", UuidText, sa.ForeignKey("prescriptions.id"), primary_key=True),
    sa.Column("signer_id", UuidText, nullable=False),
    sa.Column("signer_kid", sa.Text, nullable=False),
    sa.Column("signed_at", UtcTimestamp, nullable=False),
    sa.Column("expires_at", UtcTimestamp, nullable=False),
    sa.Column("content_hash", sa.Text, nullable=False),  # SHA-256 hex of the canonical content
    sa.Column("cose", sa.LargeBinary, nullable=False),  # the COSE_Sign1 as signed
    sa.Column("qr_payload", sa.Text, nullable=False),
    sa.Column("sandbox", sa.Boolean, nullable=False),  # the chain ends at the public sandbox root
)

# --- prescription drafts sync (revision 2026_11_26_0006; shared.sync.prescription_merge) -------------------

prescriptions.append_column(sa.Column("field_hlcs", JsonText(), nullable=False, server_default="{}"))
prescriptions.append_column(sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()))
prescriptions.append_column(sa.Column("overrides", JsonText(), nullable=False, server_default="[]"))
prescriptions.append_column(sa.Column("sync_refusal", JsonText()))  # {reason, message, hlc} or NULL

prescription_history = sa.Table(
    "prescription_history",
    metadata,
    # A line list (field by field) that lost a merge, with the stamp that beat it.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("prescription_id", UuidText, nullable=False),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("value", JsonText(none_as_null=False), nullable=False),
    sa.Column("hlc", sa.Text, nullable=False),
    sa.Column("replaced_by_hlc", sa.Text, nullable=False),
    sa.Column("lost", sa.Boolean, nullable=False),  # True: the incoming value lost; False: the local one
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcTimestamp, nullable=False),
    sa.Index("prescription_history_record", "prescription_id", "id"),
    sqlite_autoincrement=True,
)

# --- status events of signed prescriptions (revision 2026_11_26_0008; shared.signing.status) ---------------

prescription_status_events = sa.Table(
    "prescription_status_events",
    metadata,
    # One signed event (dispensed / cancelled / superseded): signed here (``pending`` until the server holds
    # it, ``stale`` when its seq was taken meanwhile, ``refused`` for good) or pulled (``synced``).
    sa.Column("id", UuidText, primary_key=True),
    sa.Column("prescription_id", UuidText, sa.ForeignKey("prescriptions.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", UtcTimestamp, nullable=False),
    sa.Column("signer_id", UuidText),  # the doctor who signed it on this PC (to sign it again); NULL if pulled
    sa.Column("signer_kid", sa.Text, nullable=False),
    sa.Column("cose", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("refusal", sa.Text),
    sa.Column("created_at", UtcTimestamp, nullable=False),
    sa.Column("updated_at", UtcTimestamp, nullable=False),
    sa.Index(
        "prescription_status_events_seq",
        "prescription_id",
        "seq",
        unique=True,
        sqlite_where=sa.text("state IN ('pending', 'synced')"),
    ),
)
