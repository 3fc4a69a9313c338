"""`PatientTableModel`: patient ids plus a row cache; missing rows are fetched through the service, off the GUI thread.

Like Anki's ``browser/table/model.py`` (STYLE §2.5): the model holds the ids of the current result, in order,
and a cache of the rows it has. A search result primes the cache with the rows it already carries. When a
write or a sync marks rows stale (`invalidate`), the next paint of a stale row asks ``fetch_rows`` for it;
the fetch runs through the runner's query pool and `dataChanged` repaints the row when it arrives. The GUI
thread never waits for the database, and the model never sees SQL: ``fetch_rows`` is
`PatientService.rows_for` handed in by the screen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer

from desktop.ui.signals import emit
from shared.ids import format_abha_number
from shared.records.patient import Patient

FetchRows = Callable[[list[uuid.UUID], Callable[[list[Patient]], None], Callable[[], None]], None]
"""Starts fetching these ids; calls the first callback on the GUI thread with the rows found, the second when the
fetch failed (the failure itself goes to the error presenter)."""

COLUMNS: tuple[str, ...] = ("Name", "Sex, age", "Mobile", "ABHA")
LOADING = "…"
_GENDER_WORD = {"M": "Male", "F": "Female", "O": "Other", "U": "Unknown"}

ID_ROLE = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


def age_text(patient: Patient, today: datetime | None = None) -> str:
    """ "Female, 35" from gender and year of birth (the year is what the record surely has)."""
    year = (today or datetime.now(UTC)).year
    return f"{_GENDER_WORD.get(str(patient.gender), str(patient.gender))}, {year - patient.year_of_birth}"


def mobile_text(mobile: str | None) -> str:
    """+91 98765 43210."""
    if not mobile:
        return ""
    if mobile.startswith("+91") and len(mobile) == 13:
        return f"+91 {mobile[3:8]} {mobile[8:]}"
    return mobile


def abha_text(patient: Patient) -> str:
    """The ABHA number (formatted), else the ABHA address, else empty."""
    if patient.abha_number:
        return format_abha_number(patient.abha_number)
    return patient.abha_address or ""


class PatientTableModel(QAbstractTableModel):
    """Rows of patients by id, with a cache and on-demand fetching.

    Args:
        fetch_rows: see `FetchRows`.
        parent: Qt parent.
    """

    def __init__(self, fetch_rows: FetchRows, parent: Any = None) -> None:
        super().__init__(parent)
        self._fetch_rows = fetch_rows
        self._ids: list[uuid.UUID] = []
        self._rows: dict[uuid.UUID, Patient] = {}
        self._wanted: set[uuid.UUID] = set()
        self._in_flight: set[uuid.UUID] = set()
        self._failed: set[uuid.UUID] = set()
        self._fetch_timer = QTimer(self)
        self._fetch_timer.setSingleShot(True)
        self._fetch_timer.setInterval(0)  # coalesce the rows one paint asks for into one fetch
        self._fetch_timer.timeout.connect(self._fetch_wanted)

    # -- contents ---------------------------------------------------------------------------------------

    def set_result(self, patients: Sequence[Patient]) -> None:
        """Show these patients, in this order (a search result carries its rows: they prime the cache)."""
        self.beginResetModel()
        self._ids = [patient.id for patient in patients]
        self._rows = {patient.id: patient for patient in patients}
        self._wanted.clear()
        self._failed.clear()
        self.endResetModel()

    def clear(self) -> None:
        """No rows."""
        self.set_result([])

    def ids(self) -> list[uuid.UUID]:
        """The ids shown, in order."""
        return list(self._ids)

    def patient_id(self, row: int) -> uuid.UUID | None:
        """The id on `row`, or None."""
        return self._ids[row] if 0 <= row < len(self._ids) else None

    def cached(self, patient_id: uuid.UUID) -> Patient | None:
        """The cached row of a patient, if any."""
        return self._rows.get(patient_id)

    def invalidate(self, ids: Iterable[uuid.UUID] | None = None) -> None:
        """Forget cached rows (all when `ids` is None); they are fetched again when next shown."""
        stale = set(self._ids) if ids is None else set(ids) & set(self._ids)
        if not stale:
            return
        for patient_id in stale:
            self._rows.pop(patient_id, None)
        self._failed -= stale
        emit(self.dataChanged, self.index(0, 0), self.index(len(self._ids) - 1, len(COLUMNS) - 1))

    # -- QAbstractTableModel -----------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._ids):
            return None
        patient_id = self._ids[index.row()]
        if role == ID_ROLE:
            return patient_id
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            return None
        patient = self._rows.get(patient_id)
        if patient is None:
            self._want(patient_id)
            return LOADING
        return self._cell(patient, index.column())

    @staticmethod
    def _cell(patient: Patient, column: int) -> str:
        if column == 0:
            return patient.name
        if column == 1:
            return age_text(patient)
        if column == 2:
            return mobile_text(patient.mobile)
        return abha_text(patient)

    # -- fetching ------------------------------------------------------------------------------------------

    def _want(self, patient_id: uuid.UUID) -> None:
        if patient_id in self._in_flight or patient_id in self._failed:
            return
        self._wanted.add(patient_id)
        if not self._fetch_timer.isActive():
            self._fetch_timer.start()

    def _fetch_wanted(self) -> None:
        ids = [patient_id for patient_id in self._ids if patient_id in self._wanted]
        self._wanted.clear()
        if not ids:
            return
        self._in_flight.update(ids)
        self._fetch_rows(ids, lambda rows: self._on_rows_fetched(ids, rows), lambda: self._on_fetch_failed(ids))

    def _on_fetch_failed(self, asked: list[uuid.UUID]) -> None:
        # Not asked again until the rows are invalidated or a new result comes: no retry loop of error dialogs.
        self._in_flight.difference_update(asked)
        self._failed.update(asked)

    def _on_rows_fetched(self, asked: list[uuid.UUID], rows: list[Patient]) -> None:
        self._in_flight.difference_update(asked)
        found = {patient.id: patient for patient in rows}
        self._rows.update(found)
        gone = [patient_id for patient_id in asked if patient_id not in found]
        if gone:
            # Deleted or merged since the search: drop them rather than show "…" for ever.
            self.beginResetModel()
            self._ids = [patient_id for patient_id in self._ids if patient_id not in gone]
            self.endResetModel()
            return
        rows_shown = [self._ids.index(i) for i in found if i in self._ids]
        if rows_shown:
            top, bottom = min(rows_shown), max(rows_shown)
            emit(self.dataChanged, self.index(top, 0), self.index(bottom, len(COLUMNS) - 1))
