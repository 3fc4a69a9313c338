"""PatientTableModel: ids plus a row cache; stale rows are fetched in one batch and repainted, vanished ones dropped."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.services.patients import PatientService
from desktop.ui.models.patient_table import LOADING, PatientTableModel
from shared.records.patient import Patient

Fetch = tuple[list[uuid.UUID], Callable[[list[Patient]], None], Callable[[], None]]


def test_stale_rows_are_fetched_once_and_repainted(
    qtbot: QtBot, qapp: QApplication, patient_service: PatientService
) -> None:
    a = patient_service.register({"name": "अमित शर्मा", "gender": "M", "year_of_birth": 1980}, actor="test")
    b = patient_service.register({"name": "Bina Rao", "gender": "F", "year_of_birth": 1991}, actor="test")
    asked: list[Fetch] = []
    model = PatientTableModel(lambda ids, on_rows, on_failed: asked.append((ids, on_rows, on_failed)))
    model.set_result([a, b])
    assert model.index(0, 0).data() == "अमित शर्मा" and asked == []  # the search result primed the cache

    patient_service.update(b.id, {"name": "Bina R. Rao"}, actor="test")
    model.invalidate([b.id])
    assert model.index(1, 0).data() == LOADING
    assert model.index(1, 2).data() == LOADING  # the same row again: still one fetch
    qtbot.waitUntil(lambda: len(asked) == 1)
    ids, on_rows, _failed = asked[0]
    assert ids == [b.id]
    with qtbot.waitSignal(model.dataChanged):
        on_rows(patient_service.rows_for(ids))
    assert model.index(1, 0).data() == "Bina R. Rao"


def test_a_row_deleted_meanwhile_leaves_the_list(
    qtbot: QtBot, qapp: QApplication, patient_service: PatientService
) -> None:
    a = patient_service.register({"name": "Chitra Nair", "gender": "F", "year_of_birth": 1970}, actor="test")
    b = patient_service.register({"name": "Dev Anand", "gender": "M", "year_of_birth": 1965}, actor="test")
    asked: list[Fetch] = []
    model = PatientTableModel(lambda ids, on_rows, on_failed: asked.append((ids, on_rows, on_failed)))
    model.set_result([a, b])
    patient_service.delete(a.id, actor="test")
    model.invalidate()
    model.index(0, 0).data()
    model.index(1, 0).data()
    qtbot.waitUntil(lambda: len(asked) == 1)
    ids, on_rows, _failed = asked[0]
    on_rows(patient_service.rows_for(ids))
    assert model.ids() == [b.id] and model.index(0, 0).data() == "Dev Anand"
