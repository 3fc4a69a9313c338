"""`PatientSearchScreen`: the search box and the result list; results appear as you type.

Typing waits `DEBOUNCE_MS` for a pause, then runs `PatientService.search` (the local FTS5 index: names in any
script, mobile digits, ABHA number or address) through `Runner.run_query`; an answer to an older query is
dropped. Rows live in a `PatientTableModel` (ids + row cache, rows fetched through the service).

Keyboard: the box has focus after Ctrl+F; Down moves into the list and Up from the first row back to the box;
Enter in the box opens the first result, Enter on a row opens that row; Esc clears the search.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QLineEdit, QTableView, QVBoxLayout, QWidget

from desktop.services.patients import PatientService
from desktop.ui.error_dialogs import present_error
from desktop.ui.models.patient_table import PatientTableModel
from desktop.ui.runner import PresentError, Runner
from desktop.ui.signals import emit
from shared.records.patient import Patient

__all__ = ["DEBOUNCE_MS", "PatientSearchScreen", "PatientTableModel"]

DEBOUNCE_MS = 150
RESULT_LIMIT = 200
EMPTY_HINT = "Type a name (any language), mobile number or ABHA to find a patient. Ctrl+N registers a new one."


class PatientSearchScreen(QWidget):
    """Search box, hint line and result table.

    Args:
        runner: runs the searches and row fetches off the GUI thread.
        patients: the patient service.
        debounce_ms: pause after the last key before searching.
        error_presenter: shows a failed row fetch.
        parent: Qt parent.
    """

    patient_selected = Signal(object)  # uuid.UUID: the current row changed
    patient_activated = Signal(object)  # uuid.UUID: Enter or double-click on a row
    results_shown = Signal(str, int)  # query, how many rows

    def __init__(
        self,
        runner: Runner,
        patients: PatientService,
        *,
        debounce_ms: int = DEBOUNCE_MS,
        error_presenter: PresentError = present_error,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._patients = patients
        self._present_error = error_presenter
        self._quiet = False
        self._generation = 0
        self._shown_query = ""
        self.search_box = QLineEdit(self)
        self.search_box.setPlaceholderText("Search: name, mobile or ABHA  (Ctrl+F)")
        self.search_box.setAccessibleName("Search patients")
        self.search_box.setClearButtonEnabled(True)
        self.hint = QLabel(EMPTY_HINT, self)
        self.hint.setProperty("role", "hint")
        self.hint.setWordWrap(True)
        self.hint.setAccessibleName("Search result summary")
        self.model = PatientTableModel(self._fetch_rows, self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setAccessibleName("Patients found")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setTabKeyNavigation(False)  # Tab leaves the list; arrows move in it
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column, width in ((1, 110), (2, 150), (3, 170)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addWidget(self.search_box)
        layout.addWidget(self.hint)
        layout.addWidget(self.table, 1)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._clear_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self._clear_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._connect_signals()

    def _connect_signals(self) -> None:
        self.search_box.textChanged.connect(self.on_search_box_text_changed)
        self._debounce.timeout.connect(self.on_debounce_timeout)
        self._clear_shortcut.activated.connect(self.clear_search)
        self.table.activated.connect(self.on_table_activated)
        self.table.selectionModel().currentRowChanged.connect(self.on_table_current_row_changed)
        self.search_box.installEventFilter(self)
        self.table.installEventFilter(self)

    # -- public ----------------------------------------------------------------------------------------

    @property
    def query(self) -> str:
        """The text in the search box."""
        return self.search_box.text()

    @property
    def shown_query(self) -> str:
        """The query whose results are shown."""
        return self._shown_query

    def focus_search(self) -> None:
        """Put the cursor in the search box with its text selected (Ctrl+F)."""
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    @Slot()
    def clear_search(self) -> None:
        """Empty the box and the list, and put the cursor back in the box (Esc)."""
        self.search_box.clear()
        self.focus_search()

    def current_patient_id(self) -> uuid.UUID | None:
        """The id on the current row, if any."""
        index = self.table.currentIndex()
        return self.model.patient_id(index.row()) if index.isValid() else None

    def refresh(self) -> None:
        """Search again for what is in the box (after a write or a sync)."""
        self._search_now(self.query)

    @Slot(object)
    def on_data_changed(self, result: object) -> None:
        """A write or a sync changed patients: drop the cached rows that changed, and search again."""
        if isinstance(result, Patient):
            self.model.invalidate([result.id])
        else:
            self.model.invalidate()
        self.refresh()

    # -- searching ---------------------------------------------------------------------------------------

    @Slot(str)
    def on_search_box_text_changed(self, _text: str) -> None:
        self._debounce.start()

    @Slot()
    def on_debounce_timeout(self) -> None:
        self._search_now(self.query)

    def _search_now(self, query: str) -> None:
        self._debounce.stop()
        self._generation += 1
        generation = self._generation
        if not query.strip():
            self._show(generation, query, [])
            return
        patients = self._patients
        self._runner.run_query(
            self,
            lambda: patients.search(query, RESULT_LIMIT),
            lambda found: self._show(generation, query, found),
        )

    def _show(self, generation: int, query: str, found: list[Patient]) -> None:
        if generation != self._generation:
            return  # an answer to an older query: the user has typed on
        keep = self.current_patient_id()
        self.model.set_result(found)
        self._shown_query = query
        self.hint.setText(_hint(query, len(found)))
        if keep is not None and keep in self.model.ids():
            self._select_row(self.model.ids().index(keep), notify=False)
        emit(self.results_shown, query, len(found))

    def _fetch_rows(
        self, ids: list[uuid.UUID], on_rows: Callable[[list[Patient]], None], on_failed: Callable[[], None]
    ) -> None:
        patients = self._patients

        def failed(exc: BaseException) -> None:
            on_failed()
            self._present_error(self, exc)

        self._runner.run_query(self, lambda: patients.rows_for(ids), on_rows, failed)

    # -- keyboard ----------------------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            if watched is self.search_box:
                return self._search_box_key(event)
            if watched is self.table:
                return self._table_key(event)
        return super().eventFilter(watched, event)

    def _search_box_key(self, event: QKeyEvent) -> bool:
        key = event.key()
        if key == Qt.Key.Key_Down and self.model.rowCount():
            # Focusing a view makes its first row current without selecting it: select it explicitly.
            self.table.setFocus(Qt.FocusReason.OtherFocusReason)
            self._select_row(max(self.table.currentIndex().row(), 0))
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self._debounce.isActive():
                self._search_now(self.query)  # Enter before the pause: search now, open when it arrives
                return True
            if self.model.rowCount():
                row = max(self.table.currentIndex().row(), 0)
                self._select_row(row)
                self.on_table_activated(self.model.index(row, 0))
            return True
        return False

    def _table_key(self, event: QKeyEvent) -> bool:
        if event.key() == Qt.Key.Key_Up and self.table.currentIndex().row() <= 0:
            self.focus_search()
            return True
        return False

    def _select_row(self, row: int, *, notify: bool = True) -> None:
        index = self.model.index(row, 0)
        self._quiet = not notify
        try:
            self.table.setCurrentIndex(index)  # the view selects the whole row (SelectRows, SingleSelection)
        finally:
            self._quiet = False
        self.table.scrollTo(index)

    @Slot(QModelIndex)
    def on_table_activated(self, index: QModelIndex) -> None:
        patient_id = self.model.patient_id(index.row())
        if patient_id is not None:
            emit(self.patient_activated, patient_id)

    @Slot(QModelIndex, QModelIndex)
    def on_table_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        patient_id = self.model.patient_id(current.row()) if current.isValid() else None
        if patient_id is not None and not self._quiet:
            emit(self.patient_selected, patient_id)


def _hint(query: str, count: int) -> str:
    if not query.strip():
        return EMPTY_HINT
    if count == 0:
        return f"No patient matches “{query.strip()}”. Press Ctrl+N to register a new patient."
    more = "+" if count >= RESULT_LIMIT else ""
    return f"{count}{more} patient{'s' if count != 1 else ''} found. ↓ to move into the list, Enter to open."
