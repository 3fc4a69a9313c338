"""Sync state: typed keys, device id, clinic adoption after enrolment, the clock restarting above stored stamps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from desktop.config import DesktopSettings
from desktop.services.patients import PatientService
from desktop.store import LocalStore, open_local_store
from desktop.store.sync_state import UNENROLLED_CLINIC_ID
from shared.clock import decode
from shared.ids import uuid7
from tests.factories import make_patient


class TestSyncState:
    def test_typed_values_round_trip(self, local_store: LocalStore) -> None:
        when = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)

        def write() -> None:
            with local_store.uow.write() as uow:
                uow.sync_state.set_pull_cursor("c-42")
                uow.sync_state.set_last_push_at(when)
                uow.sync_state.set_last_pull_at(when)
                uow.sync_state.set_last_error("server unreachable")
                uow.commit()

        local_store.writer.run(write)
        with local_store.uow.read() as uow:
            state = uow.sync_state
            assert state.pull_cursor() == "c-42"
            assert state.last_push_at() == state.last_pull_at() == when
            assert state.last_error() == "server unreachable"
            assert state.clinic_id() is None
            assert state.clinic_id_or_unenrolled() == UNENROLLED_CLINIC_ID
            device_id = state.device_id()
        assert device_id is not None
        assert local_store.clock.node == str(device_id)

    def test_naive_times_are_refused(self, local_store: LocalStore) -> None:
        def write() -> None:
            with local_store.uow.write() as uow:
                uow.sync_state.set_last_push_at(datetime(2026, 11, 25))  # naive on purpose

        with pytest.raises(ValueError, match="timezone"):
            local_store.writer.run(write)

    def test_enrolment_rehomes_records_made_before_it(
        self, local_store: LocalStore, patient_service: PatientService
    ) -> None:
        before = patient_service.register(make_patient(), actor="test")
        assert before.clinic_id == UNENROLLED_CLINIC_ID
        clinic = uuid7()

        assert patient_service.adopt_clinic(clinic) == 1

        assert patient_service.get(before.id).clinic_id == clinic
        assert patient_service.register(make_patient(), actor="test").clinic_id == clinic
        with local_store.uow.read() as uow:
            assert uow.sync_state.clinic_id() == clinic
        with pytest.raises(ValueError, match="sentinel"):
            patient_service.adopt_clinic(UNENROLLED_CLINIC_ID)


class TestClockRestart:
    def test_a_reopened_store_stamps_above_everything_stored(
        self, desktop_settings: DesktopSettings, data_dir: Path
    ) -> None:
        def open_store(wall_ms: int) -> LocalStore:
            return open_local_store(
                desktop_settings.database_path,
                backups_dir=desktop_settings.backups_dir,
                wall_clock=lambda: wall_ms,
            )

        with open_store(2_000_000_000_000) as store:
            service = PatientService(writer=store.writer, uow=store.uow, clock=store.clock)
            patient = service.register(make_patient(), actor="test")
            with store.uow.read() as uow:
                (stored_hlc,) = {e.hlc for e in uow.outbox.peek_unsent(10)}
        # The PC's clock went back a day (CMOS battery, manual change): stamps must still increase.
        with open_store(2_000_000_000_000 - 86_400_000) as store:
            assert store.clock.now() > decode(stored_hlc)
            service = PatientService(writer=store.writer, uow=store.uow, clock=store.clock)
            service.update(patient.id, {"name": "Renamed Later"}, actor="test")
            with store.uow.read() as uow:
                state = uow.patients.find_state(patient.id)
        assert state is not None
        assert state.field_hlcs["name"] > stored_hlc
        assert state.fields["name"] == "Renamed Later"
