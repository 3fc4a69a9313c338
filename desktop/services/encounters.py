"""Encounter use cases on this PC: start, save the SOAP draft, complete, add addenda; vitals checks (no Qt).

Validation is the shared record code (`shared.records.encounter`): the desktop says what the server would.
A completed encounter never changes: `save_draft` refuses with `EncounterCompleted`, and the store's
triggers refuse any other writer too; what the doctor adds later is an addendum (append-only).

The prescription typed in the Rx pad is kept twice: the lines as typed in the note's ``plan.medications``
(saved with every draft, so nothing typed is lost), and the checked, expanded draft in the ``prescriptions``
table (`desktop.services.prescribing`), which is only written when nothing blocks it. `complete` refuses
while the two disagree, so a completed encounter always has a clean prescription for what was typed.

Sync: with a clock, every write stamps the fields it changes (header fields, each SOAP section, status and
completed_at; `shared.sync.encounter_merge`) and queues them in the outbox as an ``encounter`` change in the
same transaction (DESIGN §4); an addendum is queued as an append-only ``encounter_addendum``. Prescriptions
are not queued yet (docs/sync.md).

"In the chair": `EncounterService.in_chair()` gives the patient and encounter the doctor has open (set by
the encounter screen), for code that attaches device readings to the current consultation.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from desktop.store.encounters import EncounterRepository, synced_fields, utc_text
from desktop.store.prescriptions import PrescriptionRepository
from desktop.store.unit_of_work import UnitOfWork, UnitOfWorkFactory
from desktop.store.writer import Writer
from shared.audit import canonical_json
from shared.clock import HLC, encode
from shared.errors import Conflict, FieldProblem, RuleViolation
from shared.ids import uuid7
from shared.records.encounter import (
    PLAUSIBLE,
    Addendum,
    AddendumCreate,
    Encounter,
    EncounterCreate,
    EncounterStatus,
    EncounterUpdate,
    SoapNote,
    Vitals,
)
from shared.records.validation import violation_from
from shared.sync.encounter_merge import SECTION_FIELDS
from shared.sync.protocol import JsonValue, Op, RecordKind

ClinicIdProvider = Callable[[UnitOfWork], uuid.UUID]

VITAL_FIELDS = ("bp", "pulse", "respiratory_rate", "temperature", "spo2", "weight_kg", "height_cm")
"""The vitals inputs of the form, in screen order (temperature goes with its unit, C or F)."""

_INTEGER_VITALS = {"pulse", "respiratory_rate", "spo2"}
_VITAL_WORDS = {
    "bp": "Blood pressure",
    "pulse": "Pulse",
    "respiratory_rate": "Respiratory rate",
    "temperature": "Temperature",
    "spo2": "SpO2",
    "weight_kg": "Weight",
    "height_cm": "Height",
}

# The shared messages start with the model's field name ("bp_systolic 320 mmHg is outside ..."); say it in words.
_MESSAGE_WORDS = {
    "bp_systolic": "Systolic pressure",
    "bp_diastolic": "Diastolic pressure",
    "temperature_c": "Temperature",
    "respiratory_rate": "Respiratory rate",
    "weight_kg": "Weight",
    "height_cm": "Height",
    "pulse": "Pulse",
    "spo2": "SpO2",
}


class EncounterCompleted(Conflict):
    """The encounter is completed: it cannot change; add an addendum instead."""

    code = "encounter.completed"


class EncounterNotCompleted(Conflict):
    """An addendum was asked for on an encounter that is still a draft (edit the draft instead)."""

    code = "encounter.not_completed"


class PrescriptionNotSaved(Conflict):
    """Completing was refused: the prescription typed in the note is not the checked, saved one."""

    code = "encounter.prescription_not_saved"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _clinic_of(uow: UnitOfWork) -> uuid.UUID:
    return uow.sync_state.clinic_id_or_unenrolled()


def _validated(model: type[Any], data: Mapping[str, object]) -> Any:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise violation_from(exc) from None


def _vital_message(field: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    kind = str(err["type"])
    if kind in ("int_parsing", "float_parsing", "int_from_float"):
        unit = PLAUSIBLE[field][2] if field in PLAUSIBLE else "°C or °F"
        whole = "a whole number" if field in _INTEGER_VITALS else "a number"
        return f"{_VITAL_WORDS[field]} must be {whole} ({unit})"
    message = str(err["msg"]).removeprefix("Value error, ")
    for internal, words in _MESSAGE_WORDS.items():
        if message.startswith(internal + " "):
            return words + message[len(internal) :]
    return message


def vitals_from_form(values: Mapping[str, str]) -> Vitals | None:
    """Check the vitals as typed and build the shared `Vitals` (None when every field is empty).

    Args:
        values: text per field of `VITAL_FIELDS`, plus ``temperature_unit`` ("C" or "F") for a temperature.

    Returns:
        The validated vitals (systolic/diastolic, °C and BMI are derived by the model).

    Raises:
        RuleViolation: one `FieldProblem` per bad field, named as in `VITAL_FIELDS`, with the shared message
            (plausible range and unit, "systolic/diastolic" format, diastolic below systolic …).
    """
    typed = {name: (values.get(name) or "").strip() for name in VITAL_FIELDS}
    unit = (values.get("temperature_unit") or "").strip().upper() or None
    problems: list[FieldProblem] = []
    accepted: dict[str, object] = {}
    for name, text in typed.items():
        if not text:
            continue
        one: dict[str, object] = {name: text}
        if name == "temperature":
            if unit not in ("C", "F"):
                problems.append(
                    FieldProblem(name, "vitals.temperature_unit", "Say whether the temperature is °C or °F")
                )
                continue
            one["temperature_unit"] = unit
        try:
            Vitals.model_validate(one)
        except ValidationError as exc:
            problems.append(FieldProblem(name, str(exc.errors()[0]["type"]), _vital_message(name, exc)))
            continue
        accepted.update(one)
    if problems:
        raise RuleViolation(problems)
    return Vitals.model_validate(accepted) if accepted else None


@dataclass(frozen=True)
class InChair:
    """The patient and encounter the doctor has open now."""

    patient_id: uuid.UUID
    encounter_id: uuid.UUID


class EncounterService:
    """Encounter use cases. Reads run on the calling thread; writes on the writer thread.

    Args:
        writer: the process's single writer.
        uow: the store's unit-of-work factory.
        clinic_id: gives the clinic of new records (default: from sync state, or the unenrolled sentinel).
        now: wall time (tests pass a fake).
        clock: this PC's hybrid logical clock; with it, writes are stamped and queued for sync.
    """

    def __init__(
        self,
        *,
        writer: Writer,
        uow: UnitOfWorkFactory,
        clinic_id: ClinicIdProvider = _clinic_of,
        now: Callable[[], datetime] = _utc_now,
        clock: HLC | None = None,
    ) -> None:
        self._clock = clock
        self._writer = writer
        self._uow = uow
        self._clinic_id = clinic_id
        self._now = now
        self._chair_lock = threading.Lock()
        self._chair: InChair | None = None

    # -- in the chair ------------------------------------------------------------------------------------

    def in_chair(self) -> InChair | None:
        """The patient and encounter open on the encounter screen now, or None (any thread)."""
        with self._chair_lock:
            return self._chair

    def set_in_chair(self, chair: InChair | None) -> None:
        """Called by the encounter screen when it opens (and with None when it closes)."""
        with self._chair_lock:
            self._chair = chair

    # -- reads -------------------------------------------------------------------------------------------

    def get(self, encounter_id: uuid.UUID) -> Encounter:
        """The encounter with its addenda; `NotFound` when unknown."""
        with self._uow.read() as uow:
            return EncounterRepository(uow.connection).get(encounter_id)

    def for_patient(self, patient_id: uuid.UUID) -> list[Encounter]:
        """The patient's encounters, newest first."""
        with self._uow.read() as uow:
            return EncounterRepository(uow.connection).for_patient(patient_id)

    # -- writes ------------------------------------------------------------------------------------------

    def start(self, data: Mapping[str, object] | EncounterCreate, doctor_id: uuid.UUID) -> Encounter:
        """Start a draft encounter.

        Args:
            data: `EncounterCreate` fields (patient_id, encounter_type, start_time, chief_complaint, soap_note).
            doctor_id: the signed-in doctor's user id.

        Raises:
            RuleViolation: a field breaks a rule (the shared messages).
            NotFound: the patient is not on this PC.
        """
        create = data if isinstance(data, EncounterCreate) else _validated(EncounterCreate, data)
        return self._writer.run(self._start_now, create, doctor_id)

    def _start_now(self, create: EncounterCreate, doctor_id: uuid.UUID) -> Encounter:
        now = self._now()
        with self._uow.write() as uow:
            uow.patients.get(create.patient_id)  # NotFound for an unknown or deleted patient
            repo = EncounterRepository(uow.connection)
            encounter_id = create.id or uuid7()
            if repo.find(encounter_id) is not None:
                raise Conflict(f"An encounter with id {encounter_id} is already on this computer.")
            values: dict[str, Any] = {
                "patient_id": create.patient_id,
                "doctor_id": doctor_id,
                "encounter_type": create.encounter_type.value,
                "start_time": create.start_time,
                "chief_complaint": create.chief_complaint,
                "soap_note": _note_json(create.soap_note),
            }
            fields = synced_fields(**values, status=EncounterStatus.DRAFT.value, completed_at=None)
            stamps = self._queue(uow, encounter_id, fields, now)
            repo.insert(
                values
                | {"id": encounter_id, "clinic_id": self._clinic_id(uow), "field_hlcs": stamps}
                | {"created_at": now, "updated_at": now}
            )
            encounter = repo.get(encounter_id)
            uow.commit()
        return encounter

    def save_draft(self, encounter_id: uuid.UUID, data: Mapping[str, object] | EncounterUpdate) -> Encounter:
        """Save changed sections of a draft (``soap_note`` replaces the whole note).

        Raises:
            RuleViolation: a field breaks a rule; nothing is saved.
            EncounterCompleted: the encounter is completed (add an addendum instead).
        """
        update = data if isinstance(data, EncounterUpdate) else _validated(EncounterUpdate, data)
        return self._writer.run(self._save_now, encounter_id, update)

    def _save_now(self, encounter_id: uuid.UUID, update: EncounterUpdate) -> Encounter:
        with self._uow.write() as uow:
            repo = EncounterRepository(uow.connection)
            current = repo.get(encounter_id)
            if current.status == EncounterStatus.COMPLETED:
                raise EncounterCompleted("This encounter is completed and cannot be changed; add an addendum instead.")
            values: dict[str, Any] = {}
            for name in update.model_fields_set:
                value = getattr(update, name)
                if name == "soap_note":
                    values[name] = _note_json(value)
                elif name == "encounter_type":
                    values[name] = value.value
                else:
                    values[name] = value
            if values:
                now = self._now()
                changed = _changed_fields(current, values)
                stamps = self._queue(uow, encounter_id, changed, now)
                repo.update(
                    encounter_id, {**values, "updated_at": now, "field_hlcs": repo.stamps(encounter_id) | stamps}
                )
            saved = repo.get(encounter_id)
            uow.commit()
        return saved

    def complete(self, encounter_id: uuid.UUID) -> Encounter:
        """Complete the encounter: from now on it only takes addenda; its prescription draft becomes final.

        Raises:
            EncounterCompleted: it is already completed.
            PrescriptionNotSaved: the lines typed in the note are not the saved, checked prescription.
        """
        return self._writer.run(self._complete_now, encounter_id)

    def _complete_now(self, encounter_id: uuid.UUID) -> Encounter:
        now = self._now()
        with self._uow.write() as uow:
            repo = EncounterRepository(uow.connection)
            current = repo.get(encounter_id)
            if current.status == EncounterStatus.COMPLETED:
                raise EncounterCompleted("This encounter is already completed.")
            rx_repo = PrescriptionRepository(uow.connection)
            rx = rx_repo.for_encounter(encounter_id)
            typed = typed_rx_lines(current.soap_note)
            saved = [str(line["text"]) for line in rx.lines] if rx is not None else []
            if typed != saved:
                raise PrescriptionNotSaved(
                    "The prescription has changed since it was last checked and saved: save it (Ctrl+S) and "
                    "resolve every hard stop before completing."
                )
            if rx is not None:
                rx_repo.update(rx.id, {"status": "final", "updated_at": now})
            done_fields: dict[str, JsonValue] = {
                "status": EncounterStatus.COMPLETED.value,
                "completed_at": utc_text(now),
            }
            stamps = repo.stamps(encounter_id) | self._queue(uow, encounter_id, done_fields, now)
            repo.update(
                encounter_id,
                {
                    "status": EncounterStatus.COMPLETED.value,
                    "completed_at": now,
                    "updated_at": now,
                    "field_hlcs": stamps,
                },
            )
            done = repo.get(encounter_id)
            uow.commit()
        return done

    def _queue(
        self,
        uow: UnitOfWork,
        record_id: uuid.UUID,
        fields: dict[str, JsonValue],
        now: datetime,
        kind: RecordKind = RecordKind.ENCOUNTER,
    ) -> dict[str, str]:
        """Stamp the changed fields and queue them for sync (nothing without a clock); their stamps."""
        if self._clock is None or not fields:
            return {}
        stamp = encode(self._clock.now())
        stamps = dict.fromkeys(fields, stamp)
        uow.outbox.append(
            kind=kind, record_id=record_id, op=Op.UPSERT, fields=fields, field_hlcs=stamps,
            hlc=stamp, now=now,
        )  # fmt: skip
        return stamps

    def add_addendum(
        self, encounter_id: uuid.UUID, data: Mapping[str, object] | AddendumCreate, author_id: uuid.UUID
    ) -> Addendum:
        """Append an addendum to a completed encounter.

        Raises:
            RuleViolation: empty text or a bad note.
            EncounterNotCompleted: the encounter is still a draft.
        """
        create = data if isinstance(data, AddendumCreate) else _validated(AddendumCreate, data)
        return self._writer.run(self._addendum_now, encounter_id, create, author_id)

    def _addendum_now(self, encounter_id: uuid.UUID, create: AddendumCreate, author_id: uuid.UUID) -> Addendum:
        with self._uow.write() as uow:
            repo = EncounterRepository(uow.connection)
            if repo.get(encounter_id).status != EncounterStatus.COMPLETED:
                raise EncounterNotCompleted("This encounter is still a draft: change the note itself.")
            addendum_id, now = uuid7(), self._now()
            note = _note_json(create.soap_note)
            repo.add_addendum(
                addendum_id=addendum_id, encounter_id=encounter_id, author_id=author_id, text=create.text,
                soap_note=note, created_at=now,
            )  # fmt: skip
            fields: dict[str, JsonValue] = {
                "encounter_id": str(encounter_id), "author_id": str(author_id), "text": create.text,
                "soap_note": note, "created_at": utc_text(now),
            }  # fmt: skip
            self._queue(uow, addendum_id, fields, now, kind=RecordKind.ENCOUNTER_ADDENDUM)
            added = next(a for a in repo.addenda(encounter_id) if a.id == addendum_id)
            uow.commit()
        return added


def _changed_fields(current: Encounter, values: Mapping[str, Any]) -> dict[str, JsonValue]:
    """The synced fields a draft save changes (a whole-note save changes only the sections that differ)."""
    before = _synced(
        current, current.soap_note.model_dump(mode="json", exclude_none=True) if current.soap_note else None
    )
    note = values["soap_note"] if "soap_note" in values else _note_json(current.soap_note)
    after = _synced(current, note, **{k: v for k, v in values.items() if k != "soap_note"})
    names = set(before) | set(after)
    return {
        name: after.get(name)
        for name in sorted(names)
        if canonical_json(before.get(name)) != canonical_json(after.get(name))
    }


def _synced(current: Encounter, note: dict[str, Any] | None, **header: Any) -> dict[str, JsonValue]:
    fields = synced_fields(
        patient_id=current.patient_id,
        doctor_id=current.doctor_id,
        encounter_type=header.get("encounter_type", current.encounter_type.value),
        start_time=header.get("start_time", current.start_time),
        chief_complaint=header.get("chief_complaint", current.chief_complaint),
        soap_note=note,
        status=current.status.value,
        completed_at=current.completed_at,
    )
    return fields | {name: None for name in SECTION_FIELDS if name not in fields}


def typed_rx_lines(note: SoapNote | None) -> list[str]:
    """The prescription lines as typed, kept in the note's ``plan.medications``."""
    if note is None or note.plan is None:
        return []
    return [m for m in note.plan.medications if isinstance(m, str)]


def _note_json(note: SoapNote | None) -> dict[str, Any] | None:
    return None if note is None else note.model_dump(mode="json", exclude_none=True)
