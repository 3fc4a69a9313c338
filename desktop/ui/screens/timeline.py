"""`PatientTimelineScreen`: BP, glucose, SpO₂ and weight charts beside the dated list of encounters and prescriptions.

Draws a `desktop.services.timeline.Timeline` (built off the GUI thread by the caller). Device readings are
drawn as dots joined by a line; values from encounter vitals as larger squares, so the doctor sees which is
which. Selecting an event in the list marks its date on every chart.

Keyboard: 1 / 2 / 3 / 4 show the last 30 days / 6 months / 2 years / everything; Tab reaches the list; Up/Down
move through it (the charts follow); Esc emits `closed`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.services.timeline import CHARTS, METRIC_LABELS, Event, Timeline
from desktop.ui.signals import emit

RANGES: tuple[tuple[str, str, timedelta | None], ...] = (
    ("1", "30 days", timedelta(days=30)),
    ("2", "6 months", timedelta(days=183)),
    ("3", "2 years", timedelta(days=731)),
    ("4", "All", None),
)
_PENS = ("#c62828", "#1565c0")  # first and second line of a chart (systolic red, diastolic blue)
_KIND_WORDS = {
    "encounter": "Encounter",
    "diagnosis": "Diagnosis",
    "prescription": "Prescription",
    "ayush": "AYUSH",
    "reading": "Reading",
}
EMPTY_TEXT = "No readings or visits recorded for this patient yet."


def _chart_title(title: str, unit: str, metrics: tuple[str, ...]) -> str:
    """The chart's title with its key: each line's colour, and ● device reading / ■ clinic visit."""
    key = " ".join(
        f"<span style='color:{_PENS[i % len(_PENS)]}'>● {METRIC_LABELS.get(m, m)}</span>" for i, m in enumerate(metrics)
    )
    return f"<b>{title}</b> ({unit}) &nbsp; {key} &nbsp; <span style='color:#666'>● device &nbsp;■ visit</span>"


def _ts(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class PatientTimelineScreen(QWidget):
    """Charts on the left, events on the right; `show_timeline` replaces what is drawn."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True, background="w", foreground="#333")
        self._timeline: Timeline | None = None
        self._markers: list[pg.InfiniteLine] = []
        self.title = QLabel("Health timeline")
        self.title.setStyleSheet("font-size: 16px; font-weight: 600;")
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setVisible(False)

        self.range_group = QButtonGroup(self)
        ranges = QHBoxLayout()
        for i, (key, label, _) in enumerate(RANGES):
            button = QPushButton(f"{label} ({key})")
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.range_group.addButton(button, i)
            ranges.addWidget(button)
            QShortcut(QKeySequence(key), self, activated=lambda i=i: self.set_range(i))
        ranges.addStretch(1)
        self.range_group.idClicked.connect(self.set_range)

        self.plots: dict[str, pg.PlotWidget] = {}
        self.no_data: dict[str, pg.TextItem] = {}
        charts = QWidget()
        charts_layout = QVBoxLayout(charts)
        charts_layout.setContentsMargins(0, 0, 0, 0)
        first: pg.PlotWidget | None = None
        for spec in CHARTS:
            plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
            plot.setTitle(_chart_title(spec.title, spec.unit, spec.metrics), size="10pt")
            plot.getAxis("left").setWidth(48)  # same width on every chart, so their time axes line up
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setMouseEnabled(x=True, y=False)
            plot.setMinimumHeight(120)
            plot.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            self.plots[spec.key] = plot
            charts_layout.addWidget(plot)

        self.events = QTableWidget(0, 3)
        self.events.setHorizontalHeaderLabels(["Date", "What", "Details"])
        self.events.verticalHeader().setVisible(False)
        self.events.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.events.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.events.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.events.setWordWrap(True)
        header = self.events.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.events.itemSelectionChanged.connect(self._mark_selected)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(charts)
        split.addWidget(self.events)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([820, 520])

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(ranges)
        layout.addWidget(self.empty)
        layout.addWidget(split, 1)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=lambda: emit(self.closed))
        self._range = 3

    # ------------------------------------------------------------------------------------------------ data
    def show_timeline(self, timeline: Timeline, *, patient_name: str = "") -> None:
        self._timeline = timeline
        self.title.setText(f"Health timeline — {patient_name}" if patient_name else "Health timeline")
        self.empty.setVisible(timeline.is_empty)
        for spec in CHARTS:
            plot = self.plots[spec.key]
            plot.clear()
            self._markers = [m for m in self._markers if m.getViewBox() is not None]
            drawn = 0
            for i, metric in enumerate(spec.metrics):
                points = timeline.points(metric)
                device = [p for p in points if p.source == "device"]
                visits = [p for p in points if p.source == "encounter"]
                pen = _PENS[i % len(_PENS)]
                if device:
                    plot.plot(
                        [_ts(p.at) for p in device],
                        [p.value for p in device],
                        pen=pg.mkPen(pen, width=1.5),
                        symbol="o",
                        symbolSize=4,
                        symbolBrush=pen,
                        symbolPen=None,
                    )
                if visits:
                    plot.plot(
                        [_ts(p.at) for p in visits],
                        [p.value for p in visits],
                        pen=None,
                        symbol="s",
                        symbolSize=9,
                        symbolBrush=pen,
                    )
                drawn += len(points)
            if drawn == 0:
                note = pg.TextItem("no readings", color="#888", anchor=(0.5, 0.5))
                plot.addItem(note)
                note.setPos(0.5, 0.5)
                plot.getPlotItem().hideAxis("left")
            else:
                plot.getPlotItem().showAxis("left")
        self._fill_events(timeline.events)
        self.set_range(self._range)

    def _fill_events(self, events: tuple[Event, ...]) -> None:
        self.events.setRowCount(len(events))
        for row, event in enumerate(events):
            local = event.at.astimezone() if event.at.tzinfo else event.at
            cells = (local.strftime("%d %b %Y"), _KIND_WORDS.get(event.kind, event.kind), event.title)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 2 and event.detail:
                    item.setToolTip(event.detail)
                item.setData(Qt.ItemDataRole.UserRole, _ts(event.at))
                self.events.setItem(row, col, item)
        self.events.resizeRowsToContents()

    # ------------------------------------------------------------------------------------------ interaction
    @Slot(int)
    def set_range(self, index: int) -> None:
        self._range = index
        button = self.range_group.button(index)
        if button is not None:
            button.setChecked(True)
        span = RANGES[index][2]
        times = self._all_times()
        if not times:
            return
        end = max(times)
        start = min(times) if span is None else end - span.total_seconds()
        pad = max((end - start) * 0.03, 3600.0)
        next(iter(self.plots.values())).setXRange(start - pad, end + pad, padding=0)
        for spec in CHARTS:
            self._fit_y(spec.metrics, self.plots[spec.key], start - pad, end + pad)

    def _all_times(self) -> list[float]:
        if self._timeline is None:
            return []
        times = [_ts(p.at) for pts in self._timeline.series.values() for p in pts]
        return times + [_ts(e.at) for e in self._timeline.events]

    def _fit_y(self, metrics: tuple[str, ...], plot: pg.PlotWidget, x0: float, x1: float) -> None:
        if self._timeline is None:
            return
        values = [p.value for m in metrics for p in self._timeline.points(m) if x0 <= _ts(p.at) <= x1]
        if values:
            low, high = min(values), max(values)
            margin = max((high - low) * 0.15, 1.0)
            plot.setYRange(low - margin, high + margin, padding=0)

    @Slot()
    def _mark_selected(self) -> None:
        for marker in self._markers:
            view = marker.getViewBox()
            if view is not None:
                view.removeItem(marker)
        self._markers = []
        rows = self.events.selectionModel().selectedRows()
        if not rows:
            return
        at = self.events.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)
        for plot in self.plots.values():
            marker = pg.InfiniteLine(pos=at, angle=90, pen=pg.mkPen("#6a1b9a", width=1, style=Qt.PenStyle.DashLine))
            plot.addItem(marker)
            self._markers.append(marker)

    def selected_time(self) -> float | None:
        """The chart position of the marked event (for tests and the status bar)."""
        return float(self._markers[0].value()) if self._markers else None

    def marker_count(self) -> int:
        return len(self._markers)

    def plotted(self, chart: str) -> int:
        """How many points the chart draws (all its lines)."""
        total = 0
        for item in self.plots[chart].getPlotItem().listDataItems():
            xs, _ = item.getData()
            total += 0 if xs is None else len(xs)
        return total
