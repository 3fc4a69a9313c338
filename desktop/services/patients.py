"""Patient use cases on this PC: register, edit, delete, search, history, CSV import and export (no Qt).

Validation uses the shared pydantic models, so the desktop says exactly what the server would
(`shared.records.patient`). Every write runs on the single writer thread in one unit of work: the patient
row and its outbox entry commit together or not at all, and each field a write changes gets the write's
fresh HLC stamp (per-field last-writer-wins, DESIGN §3).

Duplicates. Registering (or importing) a patient whose ABHA number or ABHA address another patient on this
PC already has is refused with `shared.errors.Conflict`, like the server's 409. A CSV import also refuses a
row that repeats another row (same id, ABHA number, ABHA address, or name + mobile + year of birth) or a
patient already here (same name + mobile + year of birth): to change an existing patient, the row carries
its id. Duplicates made on two PCs while offline are found and merged explicitly elsewhere, never here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError

from desktop.errors import NotFound
from desktop.services import patient_csv
from desktop.services.patient_csv import CsvRow, ParsedCsv, RowProblem
from desktop.store.patients import RECORD_FIELDS, HistoryEntry, search_fold
from desktop.store.unit_of_work import UnitOfWork, UnitOfWorkFactory
from desktop.store.writer import Writer
from shared.clock import HLC, encode
from shared.errors import Conflict
from shared.ids import format_abha_number, uuid7
from shared.records.patient import Patient, PatientCreate, PatientFields, PatientUpdate
from shared.records.validation import violation_from
from shared.sync.protocol import JsonValue, Op, RecordKind

ClinicIdProvider = Callable[[UnitOfWork], uuid.UUID]
"""Gives the clinic id for new records, inside the write's unit of work."""

ExportFormat = Literal["json", "csv"]
M = TypeVar("M", bound=BaseModel)


def enrolled_or_unenrolled_clinic(uow: UnitOfWork) -> uuid.UUID:
    """The default `ClinicIdProvider`: the enrolled clinic from sync state, else the unenrolled sentinel."""
    return uow.sync_state.clinic_id_or_unenrolled()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def record_fields(model: PatientFields) -> dict[str, JsonValue]:
    """A validated record's fields as JSON values, as stored and synced.

    An address whose parts are all empty is no address: stored as ``null``, so a CSV round trip (where
    empty cells are absent) gives the same record back.
    """
    fields: dict[str, JsonValue] = model.model_dump(mode="json", include=set(RECORD_FIELDS))
    address = fields.get("address")
    if isinstance(address, dict) and all(value is None for value in address.values()):
        fields["address"] = None
    return fields


@dataclass(frozen=True)
class ImportReport:
    """The outcome of a CSV import: counts when it worked, every problem when it did not (then nothing changed).

    Args:
        created: new patients.
        updated: existing patients (rows with their id) that changed.
        unchanged: rows with an id whose values were already stored.
        problems: every bad row, by line; when there is any, nothing was imported.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: tuple[RowProblem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the file was imported."""
        return not self.problems

    def summary(self) -> str:
        """One sentence for the user."""
        if self.problems:
            lines = len({problem.line for problem in self.problems})
            return f"Nothing was imported: {len(self.problems)} problem(s) on {lines} line(s)."
        return (
            f"Imported {self.created + self.updated} patient(s): {self.created} new, {self.updated} updated, "
            f"{self.unchanged} unchanged."
        )


@dataclass(frozen=True)
class _PlannedRow:
    line: int
    patient_id: uuid.UUID
    record: dict[str, JsonValue]  # every field, as the row leaves the patient
    fields: dict[str, JsonValue]  # what to write: every field when new, the changed ones otherwise
    new: bool


class PatientService:
    """Patient use cases. Reads run on the calling thread; writes on the writer thread.

    Args:
        writer: the process's single writer.
        uow: the store's unit-of-work factory.
        clock: this PC's hybrid logical clock.
        clinic_id: gives the clinic of new records (default: from sync state, see `enrolled_or_unenrolled_clinic`).
        now: wall time for created/updated times (tests pass a fake).
    """

    def __init__(
        self,
        *,
        writer: Writer,
        uow: UnitOfWorkFactory,
        clock: HLC,
        clinic_id: ClinicIdProvider = enrolled_or_unenrolled_clinic,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._writer = writer
        self._uow = uow
        self._clock = clock
        self._clinic_id = clinic_id
        self._now = now

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, patient_id: uuid.UUID) -> Patient:
        """The patient; `NotFound` when unknown or deleted."""
        with self._uow.read() as uow:
            return uow.patients.get(patient_id)

    def find(self, patient_id: uuid.UUID) -> Patient | None:
        """The patient, or ``None``."""
        with self._uow.read() as uow:
            return uow.patients.find(patient_id)

    def search(self, query: str, limit: int = 50) -> list[Patient]:
        """Patients matching a name (any script), mobile digits, ABHA number or ABHA address; best first."""
        with self._uow.read() as uow:
            return uow.patients.search(query, limit)

    def rows_for(self, ids: list[uuid.UUID]) -> list[Patient]:
        """The patients with these ids, in this order (for table models that hold ids)."""
        with self._uow.read() as uow:
            return uow.patients.rows_for(ids)

    def all_patients(self) -> list[Patient]:
        """Every patient on this PC (not deleted), oldest first."""
        with self._uow.read() as uow:
            return uow.patients.all_patients()

    def count(self) -> int:
        """How many patients are on this PC."""
        with self._uow.read() as uow:
            return uow.patients.count()

    def history(self, patient_id: uuid.UUID) -> list[HistoryEntry]:
        """Values of this patient that were replaced or lost a conflict, oldest first."""
        with self._uow.read() as uow:
            return uow.patients.history(patient_id)

    # -- writes ---------------------------------------------------------------------------------------

    def register(self, data: Mapping[str, object] | PatientCreate, actor: str) -> Patient:
        """Register a new patient.

        Args:
            data: the registration form's values, or a validated `PatientCreate` (its ``id`` is kept).
            actor: who registers (user id, or ``cli``), queued with the change for the server's audit.

        Returns:
            The stored patient.

        Raises:
            RuleViolation: a field breaks a rule (the shared messages, per field).
            Conflict: the ABHA number, ABHA address or id is already on this PC.
        """
        create = data if isinstance(data, PatientCreate) else _validated(PatientCreate, data)
        return self._writer.run(self._register_now, create, actor)

    def _register_now(self, create: PatientCreate, actor: str) -> Patient:
        with self._uow.write() as uow:
            patient_id = create.id or uuid7()
            if uow.patients.find_state(patient_id) is not None:
                raise Conflict(f"A patient with id {patient_id} is already on this computer.")
            fields = record_fields(create)
            _refuse_taken_abha(uow, fields, patient_id)
            patient = self._write_new(uow, patient_id, fields, actor=actor, clinic_id=self._clinic_id(uow))
            uow.commit()
        return patient

    def update(self, patient_id: uuid.UUID, changes: Mapping[str, object] | PatientUpdate, actor: str) -> Patient:
        """Change some fields of a patient (``None`` clears an optional field).

        Args:
            patient_id: the patient.
            changes: the fields to change, or a validated `PatientUpdate`.
            actor: who edits.

        Returns:
            The stored patient after the change (unchanged when every value was already stored).

        Raises:
            RuleViolation: a field, or the record as a whole (date of birth vs year), breaks a rule.
            Conflict: the new ABHA number or address belongs to another patient here.
            NotFound: the patient is unknown or deleted.
        """
        update = changes if isinstance(changes, PatientUpdate) else _validated(PatientUpdate, changes)
        return self._writer.run(self._update_now, patient_id, update.changes(), actor)

    def _update_now(self, patient_id: uuid.UUID, changes: dict[str, object], actor: str) -> Patient:
        with self._uow.write() as uow:
            state = uow.patients.find_state(patient_id)
            if state is None or state.deleted:
                raise NotFound("This patient is not on this computer (it may have been deleted or merged).")
            current = {name: state.fields[name] for name in RECORD_FIELDS}
            merged = record_fields(_validated(PatientFields, {**current, **changes}))
            changed = {name: value for name, value in merged.items() if value != current[name]}
            if not changed:
                return state.patient
            _refuse_taken_abha(uow, changed, patient_id)
            self._write_changes(uow, patient_id, changed, actor=actor, source="local")
            patient = uow.patients.get(patient_id)
            uow.commit()
        return patient

    def delete(self, patient_id: uuid.UUID, actor: str) -> None:
        """Delete a patient (a tombstone that syncs; nothing is erased).

        Raises:
            NotFound: the patient is unknown or already deleted.
        """
        self._writer.run(self._delete_now, patient_id, actor)

    def _delete_now(self, patient_id: uuid.UUID, actor: str) -> None:
        with self._uow.write() as uow:
            state = uow.patients.find_state(patient_id)
            if state is None or state.deleted:
                raise NotFound("This patient is not on this computer (it may have been deleted or merged).")
            stamp = encode(self._clock.now())
            now = self._now()
            uow.patients.update_fields(patient_id, {"deleted": True}, {"deleted": stamp}, source="local", now=now)
            uow.outbox.append(
                kind=RecordKind.PATIENT,
                record_id=patient_id,
                op=Op.DELETE,
                fields={},
                field_hlcs={},
                hlc=stamp,
                now=now,
                actor=actor,
            )
            uow.commit()

    def adopt_clinic(self, clinic_id: uuid.UUID) -> int:
        """After enrolment: record the clinic and give it the patients made before, in one transaction.

        Returns:
            How many patients were re-homed.
        """

        def _adopt() -> int:
            with self._uow.write() as uow:
                uow.sync_state.set_clinic_id(clinic_id)
                count = uow.patients.adopt_clinic(clinic_id)
                uow.commit()
            return count

        return self._writer.run(_adopt)

    def _write_new(
        self,
        uow: UnitOfWork,
        patient_id: uuid.UUID,
        fields: dict[str, JsonValue],
        *,
        actor: str | None,
        clinic_id: uuid.UUID,
    ) -> Patient:
        stamp = encode(self._clock.now())
        stamps = dict.fromkeys(fields, stamp)
        now = self._now()
        patient = uow.patients.insert(patient_id, clinic_id=clinic_id, fields=fields, field_hlcs=stamps, now=now)
        uow.outbox.append(
            kind=RecordKind.PATIENT,
            record_id=patient_id,
            op=Op.UPSERT,
            fields=fields,
            field_hlcs=stamps,
            hlc=stamp,
            now=now,
            actor=actor,
        )
        return patient

    def _write_changes(
        self,
        uow: UnitOfWork,
        patient_id: uuid.UUID,
        changed: dict[str, JsonValue],
        *,
        actor: str | None,
        source: str,
    ) -> None:
        stamp = encode(self._clock.now())
        stamps = dict.fromkeys(changed, stamp)
        now = self._now()
        uow.patients.update_fields(patient_id, changed, stamps, source=source, now=now)
        uow.outbox.append(
            kind=RecordKind.PATIENT,
            record_id=patient_id,
            op=Op.UPSERT,
            fields=changed,
            field_hlcs=stamps,
            hlc=stamp,
            now=now,
            actor=actor,
        )

    # -- files ----------------------------------------------------------------------------------------

    def import_csv(self, path: Path, *, actor: str | None = None) -> ImportReport:
        """Import a patient CSV file: every row, or none (see `desktop.services.patient_csv` for the shape).

        Rows without a known id register new patients (with the row's id when it has one); a row with
        the id of a patient on this PC updates that patient's non-empty columns. All rows are validated
        and checked for duplicates first, then written in **one** transaction; any problem and nothing
        changes.

        Returns:
            The report: counts, or every problem with its line number.

        Raises:
            InputFileError: the file cannot be read.
        """
        return self._import(patient_csv.read_csv(path), actor)

    def import_csv_text(self, text: str, *, actor: str | None = None) -> ImportReport:
        """`import_csv` for text already in memory (e.g. pasted into a dialog)."""
        return self._import(patient_csv.parse_csv_text(text), actor)

    def _import(self, parsed: ParsedCsv, actor: str | None) -> ImportReport:
        if parsed.problems and not parsed.rows:
            return ImportReport(problems=_by_line(parsed.problems))
        return self._writer.run(self._import_now, parsed, actor)

    def _import_now(self, parsed: ParsedCsv, actor: str | None) -> ImportReport:
        with self._uow.write() as uow:
            planned, problems = _ImportPlanner(uow).plan(parsed.rows)
            problems = parsed.problems + problems
            if problems:
                return ImportReport(problems=_by_line(problems))  # leaving the block rolls back
            created = updated = 0
            clinic_id = self._clinic_id(uow)
            for row in planned:
                if row.new:
                    self._write_new(uow, row.patient_id, row.fields, actor=actor, clinic_id=clinic_id)
                    created += 1
                elif row.fields:
                    self._write_changes(uow, row.patient_id, row.fields, actor=actor, source="import")
                    updated += 1
            uow.commit()
        return ImportReport(created, updated, len(planned) - created - updated)

    def export(self, format: ExportFormat) -> str:
        """Every patient on this PC with its id, as JSON (a list of records) or CSV (importable again)."""
        if format == "json":
            return patient_csv.to_json(self.all_patients())
        if format == "csv":
            return patient_csv.to_csv(self.all_patients())
        raise ValueError(f"unknown export format {format!r}; use json or csv")


def _validated(model: type[M], data: Mapping[str, object]) -> M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise violation_from(exc) from None


def _refuse_taken_abha(uow: UnitOfWork, fields: Mapping[str, JsonValue], patient_id: uuid.UUID) -> None:
    number, address = fields.get("abha_number"), fields.get("abha_address")
    if isinstance(number, str):
        others = [p for p in uow.patients.list_by_abha_numbers([number]).get(number, []) if p.id != patient_id]
        if others:
            raise Conflict(
                f"ABHA number {format_abha_number(number)} is already registered here for {others[0].name} "
                f"(id {others[0].id})."
            )
    if isinstance(address, str):
        others = [p for p in uow.patients.list_by_abha_addresses([address]).get(address, []) if p.id != patient_id]
        if others:
            raise Conflict(
                f"ABHA address {address} is already registered here for {others[0].name} (id {others[0].id})."
            )


def _uuid_or_none(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None  # PatientCreate reports it with the shared message


class _ImportPlanner:
    """Validates import rows with the shared models, against each other and against the patients here."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._problems: list[RowProblem] = []
        self._seen: dict[tuple[str, object], int] = {}

    def plan(self, rows: list[CsvRow]) -> tuple[list[_PlannedRow], list[RowProblem]]:
        """The rows ready to write, and every problem found (write nothing unless there is none)."""
        ids = [i for i in (_uuid_or_none(row.cells.get("id")) for row in rows) if i is not None]
        known = self._uow.patients.find_states(ids)
        planned = []
        for row in rows:
            state = known.get(_uuid_or_none(row.cells.get("id")))  # type: ignore[arg-type]
            if state is not None and state.deleted:
                self._problems.append(RowProblem(row.line, "id", "this patient was deleted on this computer"))
                continue
            item = self._plan_new(row) if state is None else self._plan_update(row, state.fields)
            if item is not None and self._unique_in_file(item):
                planned.append(item)
        self._check_against_store(planned)
        return planned, self._problems

    def _plan_new(self, row: CsvRow) -> _PlannedRow | None:
        data = row.record_data()
        if "id" in row.cells:
            data["id"] = row.cells["id"]
        try:
            create = PatientCreate.model_validate(data)
        except ValidationError as exc:
            self._problems.extend(patient_csv.problems_from(row.line, exc))
            return None
        record = record_fields(create)
        return _PlannedRow(row.line, create.id or uuid7(), record, record, new=True)

    def _plan_update(self, row: CsvRow, stored: Mapping[str, JsonValue]) -> _PlannedRow | None:
        current = {name: stored[name] for name in RECORD_FIELDS}
        try:
            changes = PatientUpdate.model_validate(row.record_data()).changes()
            record = record_fields(PatientFields.model_validate({**current, **changes}))
        except ValidationError as exc:
            self._problems.extend(patient_csv.problems_from(row.line, exc))
            return None
        changed = {name: value for name, value in record.items() if value != current[name]}
        patient_id = uuid.UUID(row.cells["id"])
        return _PlannedRow(row.line, patient_id, record, changed, new=False)

    def _unique_in_file(self, row: _PlannedRow) -> bool:
        record = row.record
        keys: list[tuple[str | None, str, tuple[str, object]]] = [("id", "id", ("id", row.patient_id))]
        if record["abha_number"]:
            keys.append(("abha_number", "ABHA number", ("abha_number", record["abha_number"])))
        if record["abha_address"]:
            keys.append(("abha_address", "ABHA address", ("abha_address", record["abha_address"])))
        if record["mobile"]:
            person = (search_fold(str(record["name"])), record["mobile"], record["year_of_birth"])
            keys.append((None, "patient (name, mobile and year of birth)", ("person", person)))
        unique = True
        for field, what, key in keys:
            if key in self._seen:
                self._problems.append(RowProblem(row.line, field, f"the same {what} is on line {self._seen[key]}"))
                unique = False
        for _field, _what, key in keys:
            self._seen.setdefault(key, row.line)
        return unique

    def _check_against_store(self, planned: list[_PlannedRow]) -> None:
        patients = self._uow.patients
        numbers = patients.list_by_abha_numbers(
            str(r.record["abha_number"]) for r in planned if r.record["abha_number"]
        )
        addresses = patients.list_by_abha_addresses(
            str(r.record["abha_address"]) for r in planned if r.record["abha_address"]
        )
        mobiles = patients.list_by_mobiles(str(r.record["mobile"]) for r in planned if r.new and r.record["mobile"])
        for row in planned:
            number, address, mobile = row.record["abha_number"], row.record["abha_address"], row.record["mobile"]
            for other in numbers.get(str(number), []) if number else []:
                if other.id != row.patient_id:
                    self._problems.append(
                        RowProblem(
                            row.line,
                            "abha_number",
                            f"ABHA number {format_abha_number(str(number))} is already registered on this "
                            f"computer for {other.name} (id {other.id})",
                        )
                    )
            for other in addresses.get(str(address), []) if address else []:
                if other.id != row.patient_id:
                    self._problems.append(
                        RowProblem(
                            row.line,
                            "abha_address",
                            f"ABHA address {address} is already registered on this computer for {other.name} "
                            f"(id {other.id})",
                        )
                    )
            for other in mobiles.get(str(mobile), []) if row.new and mobile else []:
                if search_fold(other.name) == search_fold(str(row.record["name"])) and (
                    other.year_of_birth == row.record["year_of_birth"]
                ):
                    self._problems.append(
                        RowProblem(
                            row.line,
                            None,
                            f"{other.name} (same mobile and year of birth) is already registered on this "
                            f"computer with id {other.id}; to update that patient, put the id in an id column",
                        )
                    )


def _by_line(problems: list[RowProblem]) -> tuple[RowProblem, ...]:
    # Stable: within a line, problems keep the order the checks found them (the record's field order).
    return tuple(sorted(problems, key=lambda problem: problem.line))
