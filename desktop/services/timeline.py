"""The patient's health timeline as the desktop shows it: measurement series for the charts beside a dated list.

Qt-free view model. `build_timeline` takes what the stores hold — wearable readings (already converted to the
canonical unit by `shared.records.reading`), the vitals of encounters, and encounter / prescription events —
and returns the series per metric and the events newest first. Nothing is averaged or dropped here: every
stored value becomes one point, marked with where it came from (a device or an encounter's vitals).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from desktop.store.encounters import EncounterRepository
from desktop.store.prescriptions import PrescriptionRepository
from desktop.store.readings import ReadingRepository
from desktop.store.unit_of_work import UnitOfWorkFactory

EventKind = Literal["encounter", "diagnosis", "prescription", "ayush", "reading"]
PointSource = Literal["device", "encounter"]


@dataclass(frozen=True)
class ChartSpec:
    """One chart: its title, the metrics drawn on it (one line each) and their unit."""

    key: str
    title: str
    metrics: tuple[str, ...]
    unit: str


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("bp", "Blood pressure", ("bp_systolic", "bp_diastolic"), "mmHg"),
    ChartSpec("glucose", "Blood glucose", ("glucose",), "mg/dL"),
    ChartSpec("spo2", "SpO₂", ("spo2",), "%"),
    ChartSpec("weight", "Weight", ("weight",), "kg"),
)
"""The charts the patient timeline draws, in order (the P5 issue: BP, glucose, SpO2, weight)."""

METRIC_LABELS: Mapping[str, str] = {
    "bp_systolic": "Systolic",
    "bp_diastolic": "Diastolic",
    "glucose": "Glucose",
    "spo2": "SpO₂",
    "weight": "Weight",
}

# Encounter vitals (shared.records.encounter.Vitals, as stored) → the reading metric they are charted as.
_VITAL_METRICS: Mapping[str, str] = {
    "bp_systolic": "bp_systolic",
    "bp_diastolic": "bp_diastolic",
    "spo2": "spo2",
    "weight_kg": "weight",
}


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float
    source: PointSource


@dataclass(frozen=True)
class Event:
    """One dated line of the list beside the charts."""

    at: datetime
    kind: EventKind
    title: str
    detail: str = ""
    record_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Timeline:
    patient_id: uuid.UUID
    series: Mapping[str, tuple[Point, ...]] = field(default_factory=dict)
    events: tuple[Event, ...] = ()

    def points(self, metric: str) -> tuple[Point, ...]:
        return self.series.get(metric, ())

    @property
    def is_empty(self) -> bool:
        return not self.events and not any(self.series.values())


def _metric_points(readings: Iterable[Mapping[str, Any]]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for reading in readings:
        for value in reading.get("values") or ():
            metric = value.get("metric")
            if metric is None or value.get("value") is None or value.get("special") is not None:
                continue
            out.setdefault(metric, []).append(Point(reading["measured_at"], float(value["value"]), "device"))
    return out


def build_timeline(
    patient_id: uuid.UUID,
    *,
    readings: Iterable[Mapping[str, Any]] = (),
    encounters: Iterable[Mapping[str, Any]] = (),
    prescriptions: Iterable[Mapping[str, Any]] = (),
) -> Timeline:
    """Series and events for one patient.

    Args:
        readings: ``{"measured_at": datetime, "values": [{"metric", "value", "unit"}], "device_name"?}``.
        encounters: ``{"id", "start_time": datetime, "chief_complaint", "status", "soap_note": dict | None}``.
        prescriptions: ``{"id", "created_at": datetime, "status", "medications": [...], "ayush_medications": [...]}``.
    """
    series = _metric_points(readings)
    events: list[Event] = []
    for enc in encounters:
        at: datetime = enc["start_time"]
        note = enc.get("soap_note") or {}
        events.append(
            Event(at, "encounter", enc.get("chief_complaint") or "Encounter", str(enc.get("status") or ""), enc["id"])
        )
        vitals = ((note.get("objective") or {}).get("vitals")) or {}
        for key, metric in _VITAL_METRICS.items():
            if vitals.get(key) is not None:
                series.setdefault(metric, []).append(Point(at, float(vitals[key]), "encounter"))
        assessment = note.get("assessment") or {}
        for dx in [assessment.get("primary_diagnosis"), *(assessment.get("secondary_diagnoses") or [])]:
            if isinstance(dx, Mapping) and dx.get("condition"):
                code = f" ({dx['code']})" if dx.get("code") else ""
                events.append(Event(at, "diagnosis", f"{dx['condition']}{code}", "", enc["id"]))
    for rx in prescriptions:
        at = rx["created_at"]
        modern = [_line_text(m) for m in rx.get("medications") or ()]
        ayush = [_ayush_text(a) for a in rx.get("ayush_medications") or ()]
        status = str(rx.get("status") or "")
        if modern:
            events.append(Event(at, "prescription", "; ".join(modern), status, rx["id"]))
        if ayush:
            events.append(Event(at, "ayush", "; ".join(ayush), status, rx["id"]))
    for pts in series.values():
        pts.sort(key=lambda p: p.at)
    events.sort(key=lambda e: (e.at, e.kind), reverse=True)
    return Timeline(patient_id, {k: tuple(v) for k, v in series.items()}, tuple(events))


def _line_text(line: Mapping[str, Any]) -> str:
    parts = [str(line.get("generic_name") or "?").upper(), line.get("strength"), line.get("frequency")]
    return " ".join(str(p) for p in parts if p)


def _ayush_text(line: Mapping[str, Any]) -> str:
    parts = [line.get("name") or "?", line.get("dose"), line.get("frequency")]
    return " ".join(str(p) for p in parts if p)


class TimelineService:
    """Reads one patient's timeline from the local store (readings, encounters, prescriptions); any thread."""

    def __init__(self, uows: UnitOfWorkFactory, *, max_readings: int = 20_000) -> None:
        self._uows = uows
        self._max_readings = max_readings

    def load(self, patient_id: uuid.UUID) -> Timeline:
        with self._uows.read() as uow:
            stored = ReadingRepository(uow.connection).list_for_patient(patient_id, limit=self._max_readings)
            encounters = EncounterRepository(uow.connection).for_patient(patient_id)
            rx_repo = PrescriptionRepository(uow.connection)
            prescriptions = [rx for rx in (rx_repo.for_encounter(e.id) for e in encounters) if rx is not None]
        return build_timeline(
            patient_id,
            readings=[{"measured_at": r.measured_at, "values": r.values} for r in stored if r.status == "patient"],
            encounters=[e.model_dump(mode="python") for e in encounters],
            prescriptions=[dataclasses.asdict(rx) for rx in prescriptions],
        )
