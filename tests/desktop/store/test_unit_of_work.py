"""Unit of work and writer: one transaction per write, writes only on the writer thread, change + outbox atomic."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from desktop.services.patients import PatientService
from desktop.store import LocalStore, Writer, open_local_store
from desktop.store.outbox import OutboxRepository
from desktop.store.sync_state import UNENROLLED_CLINIC_ID
from shared.clock import encode
from shared.ids import uuid7
from shared.sync.protocol import JsonValue, Op, RecordKind
from tests.factories import make_patient

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


def _counts(store: LocalStore) -> tuple[int, int]:
    with store.uow.read() as uow:
        return uow.patients.count(), uow.outbox.pending_count()


class TestWriter:
    def test_runs_functions_on_its_one_thread_and_inline_from_it(self) -> None:
        with Writer() as writer:
            first = writer.run(threading.get_ident)
            second = writer.submit(threading.get_ident).result()
            nested = writer.run(lambda: writer.run(threading.get_ident))  # no deadlock on the one worker
            assert first == second == nested != threading.get_ident()
            assert writer.run(writer.is_writer_thread)
            assert not writer.is_writer_thread()

    def test_exceptions_reach_the_caller(self) -> None:
        def boom() -> None:
            raise ValueError("boom")

        with Writer() as writer:
            with pytest.raises(ValueError, match="boom"):
                writer.run(boom)
            with pytest.raises(ValueError, match="boom"):
                writer.run(lambda: writer.submit(boom).result())


class TestUnitOfWork:
    def test_write_off_the_writer_thread_is_refused(self, local_store: LocalStore) -> None:
        with pytest.raises(RuntimeError, match="writer thread"):
            local_store.uow.write()

    def test_read_unit_of_work_cannot_commit(self, local_store: LocalStore) -> None:
        with local_store.uow.read() as uow, pytest.raises(RuntimeError, match="cannot commit"):
            uow.commit()

    def test_leaving_without_commit_rolls_back(self, local_store: LocalStore) -> None:
        def write() -> None:
            with local_store.uow.write() as uow:
                uow.sync_state.set("note", "forgotten")

        local_store.writer.run(write)
        with local_store.uow.read() as uow:
            assert uow.sync_state.get("note") is None

    def test_a_failure_after_the_write_leaves_neither_record_nor_outbox_entry(self, local_store: LocalStore) -> None:
        def write_then_fail() -> None:
            with local_store.uow.write() as uow:
                patient_id = uuid7()
                stamp = encode(local_store.clock.now())
                fields: dict[str, JsonValue] = {"name": "Asha Devi", "gender": "F", "year_of_birth": 1970}
                stamps = dict.fromkeys(fields, stamp)
                uow.patients.insert(
                    patient_id, clinic_id=UNENROLLED_CLINIC_ID, fields=fields, field_hlcs=stamps, now=NOW
                )
                uow.outbox.append(
                    kind=RecordKind.PATIENT,
                    record_id=patient_id,
                    op=Op.UPSERT,
                    fields=fields,
                    field_hlcs=stamps,
                    hlc=stamp,
                    now=NOW,
                )
                assert uow.patients.count() == 1  # visible inside the transaction
                raise RuntimeError("power cut before commit")

        with pytest.raises(RuntimeError, match="power cut"):
            local_store.writer.run(write_then_fail)
        assert _counts(local_store) == (0, 0)

    def test_service_write_whose_outbox_append_fails_stores_nothing(
        self, local_store: LocalStore, patient_service: PatientService, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def failing_append(self: OutboxRepository, **kwargs: object) -> int:
            raise OSError("disk went away")

        monkeypatch.setattr(OutboxRepository, "append", failing_append)
        with pytest.raises(OSError, match="disk went away"):
            patient_service.register(make_patient(), actor="test")
        assert _counts(local_store) == (0, 0)
        with local_store.uow.read() as uow:
            assert uow.connection.exec_driver_sql("SELECT count(*) FROM patient_search_docs").scalar() == 0

    def test_service_write_commits_record_and_outbox_entry_together(
        self, local_store: LocalStore, patient_service: PatientService
    ) -> None:
        patient = patient_service.register(make_patient(), actor="test")
        assert _counts(local_store) == (1, 1)
        with local_store.uow.read() as uow:
            (entry,) = uow.outbox.peek_unsent(10)
        assert entry.record_id == patient.id
        assert entry.op == "upsert"
        assert entry.fields["name"] == patient.name


class TestSecondProcess:
    def test_two_stores_on_one_file_both_write_thanks_to_busy_timeout(
        self, local_store: LocalStore, patient_service: PatientService
    ) -> None:
        # The app and `integmed sync` each have their own engine and writer on the same file.
        with open_local_store(local_store.database, backups_dir=local_store.database.parent / "backups") as other:
            other_service = PatientService(writer=other.writer, uow=other.uow, clock=other.clock)
            with ThreadPoolExecutor(max_workers=4) as pool:  # two "processes", each called from two threads
                futures = [
                    pool.submit(service.register, make_patient(), "t")
                    for service in (patient_service, other_service, patient_service, other_service)
                    for _ in range(20)
                ]
                for future in futures:
                    future.result()
        assert _counts(local_store) == (80, 80)
