"""Revision 2026_11_26_0007: rx_alert_overrides also holds condition exclusions; rows, index and append-only
triggers survive the rebuild, and a downgrade refuses to drop recorded exclusions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from desktop.config import DesktopSettings
from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.store import migrate, open_local_store


def _override(severity: str, rule_id: str, key: str, encounter: str) -> tuple[object, ...]:
    return (f"id-{key}", encounter, "user-1", "2026-11-26T10:00:00+00:00", rule_id, key, severity,
            "a reason long enough", "[]", "0.2.0")  # fmt: skip


def _insert(conn: sqlite3.Connection, row: tuple[object, ...]) -> None:
    conn.execute("INSERT INTO rx_alert_overrides VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)


def _schema(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE tbl_name = 'rx_alert_overrides'")}


def _encounter(settings: DesktopSettings) -> str:
    with open_local_store(settings.database_path, backups_dir=settings.backups_dir) as store:
        patient = PatientService(writer=store.writer, uow=store.uow, clock=store.clock).register(
            {"name": "Sita Devi", "gender": "F", "year_of_birth": 1996}, "t"
        )
        encounters = EncounterService(writer=store.writer, uow=store.uow)
        start = {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": "2026-11-26T10:00:00Z",
                 "chief_complaint": "Review"}  # fmt: skip
        return str(encounters.start(start, patient.id).id)


def test_rebuild_keeps_rows_and_triggers_and_a_downgrade_never_drops_exclusions(tmp_path: Path) -> None:
    settings = DesktopSettings(data_dir=tmp_path)
    enc = _encounter(settings)
    database = settings.database_path
    migrate.downgrade(database, "2026_11_26_0006")
    conn = sqlite3.connect(database)
    try:
        _insert(conn, _override("major", "DDI-002", "DDI-002:ASPIRIN+WARFARIN", enc))
        with pytest.raises(sqlite3.IntegrityError):
            _insert(conn, _override("excluded", "CONDITION-EXCLUDED", "condition:SNOMED:77386006", enc))
        conn.commit()
    finally:
        conn.close()

    migrate.upgrade(database, backups_dir=tmp_path / "backups")
    conn = sqlite3.connect(database)
    try:
        assert [r[0] for r in conn.execute("SELECT rule_id FROM rx_alert_overrides")] == ["DDI-002"]
        _insert(conn, _override("excluded", "CONDITION-EXCLUDED", "condition:SNOMED:77386006", enc))
        with pytest.raises(sqlite3.IntegrityError):
            _insert(conn, _override("whatever", "X", "x", enc))
        conn.commit()
        assert {"rx_alert_overrides_encounter", "rx_alert_overrides_no_update", "rx_alert_overrides_no_delete"} <= (
            _schema(conn)
        )
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM rx_alert_overrides")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE rx_alert_overrides SET reason = 'changed afterwards'")
    finally:
        conn.close()

    with pytest.raises(Exception, match="CHECK constraint failed"):
        migrate.downgrade(database, "2026_11_26_0006")
    assert migrate.current_revision(database) == migrate.head_revision()  # rolled back whole
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("SELECT count(*) FROM rx_alert_overrides").fetchone()[0] == 2
    finally:
        conn.close()
