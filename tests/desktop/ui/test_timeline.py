"""Patient timeline screen: charts of BP, glucose, SpO₂ and weight beside the list of visits and prescriptions."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.services.timeline import build_timeline
from desktop.ui.fonts import register_bundled_fonts
from desktop.ui.screens.timeline import EMPTY_TEXT, PatientTimelineScreen
from tests.desktop.ui.keyboard import activate, focused, press
from tests.desktop.ui.render import render_png

PATIENT = uuid.UUID("019ab000-0000-7000-8000-000000000001")
END = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def two_years_of_readings() -> list[dict[str, Any]]:
    readings = []
    for day in range(0, 730, 3):
        at = END - timedelta(days=day)
        drift = 10 * math.sin(day / 40)
        readings.append(
            {
                "measured_at": at,
                "values": [
                    {"metric": "bp_systolic", "value": 138 + drift, "unit": "mmHg"},
                    {"metric": "bp_diastolic", "value": 88 + drift / 2, "unit": "mmHg"},
                    {"metric": "pulse_rate", "value": 76, "unit": "bpm"},
                ],
            }
        )
        if day % 6 == 0:
            readings.append(
                {"measured_at": at, "values": [{"metric": "glucose", "value": 150 - day / 20, "unit": "mg/dL"}]}
            )
        if day % 9 == 0:
            readings.append({"measured_at": at, "values": [{"metric": "spo2", "value": 97, "unit": "%"}]})
    return readings


def encounters() -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.UUID(int=i + 1),
            "start_time": END - timedelta(days=90 * i),
            "chief_complaint": complaint,
            "status": "completed",
            "soap_note": {
                "objective": {"vitals": {"bp": "150/94", "bp_systolic": 150, "bp_diastolic": 94, "weight_kg": 82 - i}},
                "assessment": {"primary_diagnosis": {"condition": "Type 2 diabetes mellitus", "code": "E11"}},
            },
        }
        for i, complaint in enumerate(["Review of sugars", "Giddiness", "Fatigue for 2 weeks"])
    ]


def prescriptions() -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.UUID(int=100),
            "created_at": END,
            "status": "signed",
            "medications": [{"generic_name": "METFORMIN", "strength": "1000mg", "frequency": "Twice daily"}],
            "ayush_medications": [{"name": "Triphala Churna", "dose": "5g", "frequency": "At bedtime"}],
        }
    ]


def test_builds_series_from_devices_and_visits_without_dropping_any_value() -> None:
    readings = two_years_of_readings()
    timeline = build_timeline(PATIENT, readings=readings, encounters=encounters(), prescriptions=prescriptions())
    systolic = timeline.points("bp_systolic")
    assert len([p for p in systolic if p.source == "device"]) == 244  # every third day of 730
    assert len([p for p in systolic if p.source == "encounter"]) == 3
    assert [p.at for p in systolic] == sorted(p.at for p in systolic)
    assert [p.value for p in timeline.points("weight")] == [80.0, 81.0, 82.0]  # oldest first
    kinds = [e.kind for e in timeline.events]
    assert kinds.count("encounter") == 3 and kinds.count("diagnosis") == 3
    assert {"prescription", "ayush"} <= set(kinds)
    assert timeline.events[0].at == END  # newest first
    assert timeline.points("pulse_rate")  # kept even though no chart draws it


def test_screen_draws_every_point_and_marks_the_selected_event(qtbot: QtBot, artifacts_dir: Path) -> None:
    register_bundled_fonts()  # as the app does at start-up: the heading carries a Devanagari name
    screen = PatientTimelineScreen()
    qtbot.addWidget(screen)
    timeline = build_timeline(
        PATIENT, readings=two_years_of_readings(), encounters=encounters(), prescriptions=prescriptions()
    )
    screen.show_timeline(timeline, patient_name="राधा कुमारी")
    activate(qtbot, screen)
    assert screen.plotted("bp") == 2 * (244 + 3)
    assert screen.plotted("glucose") == len(timeline.points("glucose"))
    assert screen.plotted("weight") == 3
    assert not screen.empty.isVisible()
    assert screen.events.rowCount() == len(timeline.events)
    # Keyboard: the list takes focus, Down selects the next event, the charts mark its date.
    screen.events.setFocus()
    focused(qtbot, screen.events)
    screen.events.selectRow(0)
    press(qtbot, Qt.Key.Key_Down)
    assert screen.marker_count() == len(screen.plots)
    assert screen.selected_time() == timeline.events[1].at.timestamp()
    # "1" shows the last 30 days.
    press(qtbot, Qt.Key.Key_1)
    x0, x1 = screen.plots["bp"].getPlotItem().getViewBox().viewRange()[0]
    assert x1 - x0 < 40 * 86400
    press(qtbot, Qt.Key.Key_4)
    x0, x1 = screen.plots["bp"].getPlotItem().getViewBox().viewRange()[0]
    assert x1 - x0 > 700 * 86400
    render_png(artifacts_dir / "ui_timeline.png", screen)


def test_empty_timeline_says_so(qtbot: QtBot) -> None:
    screen = PatientTimelineScreen()
    qtbot.addWidget(screen)
    screen.show_timeline(build_timeline(PATIENT))
    screen.show()
    assert screen.empty.isVisible() and screen.empty.text() == EMPTY_TEXT
    assert screen.plotted("bp") == 0 and screen.events.rowCount() == 0
