"""The column-wise batch check agrees with the per-reading model: never accepts what it refuses, same values."""

from __future__ import annotations

import uuid
from datetime import UTC
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.ids import uuid7
from shared.records.reading import (
    ImplausibleReading,
    Metrics,
    ReadingFacts,
    check_plausible,
    reading_change_fields,
    reading_facts,
    reading_from_change_fields,
)
from shared.records.reading_columns import ReadingColumns, reading_columns
from tests.shared.test_reading_record import _FIELD_STRATEGIES, reading, synced_samples

METRICS = Metrics.load_default()


def canonical(**override: object) -> dict[str, object]:
    """A reading's change fields as a desktop sends them (`reading_change_fields` of the model)."""
    return dict(reading_change_fields(reading_from_change_fields(uuid7(), reading(**override))))  # type: ignore[arg-type]


def facts_at(cols: ReadingColumns, i: int) -> dict[str, object]:
    """Reading ``i`` of the columns, in `ReadingFacts` terms (values as their texts)."""
    values = [
        (
            cols.metrics[k],
            cols.value_texts[k],
            cols.units[k],
            cols.ucums[k],
            cols.original_values[k],
            cols.original_units[k],
        )
        for k in range(len(cols.metrics))
        if cols.value_reading[k] == i
    ]
    assert [cols.value_index[k] for k in range(len(cols.metrics)) if cols.value_reading[k] == i] == list(
        range(len(values))
    )
    assert all(cols.values[k] == float(cols.value_texts[k]) for k in range(len(cols.metrics)))
    return {
        "id": cols.ids[i],
        "patient_id": uuid.UUID(cols.patient_ids[i]),
        "encounter_id": None if cols.encounter_ids[i] is None else uuid.UUID(cols.encounter_ids[i]),
        "device_id": cols.device_ids[i],
        "device_name": cols.device_names[i],
        "characteristic": cols.characteristics[i],
        "measured_at": cols.measured_at[i],
        "device_time": cols.device_times[i],
        "time_source": cols.time_sources[i],
        "sequence": cols.sequences[i],
        "values": values,
        "raw_hex": cols.raw_hex[i],
        "received_at": cols.received_at[i],
    }


def expected(f: ReadingFacts) -> dict[str, object]:
    return {
        "id": f.id,
        "patient_id": f.patient_id,
        "encounter_id": f.encounter_id,
        "device_id": f.device_id,
        "device_name": f.device_name,
        "characteristic": f.characteristic,
        "measured_at": f.measured_at,
        "device_time": f.device_time,
        "time_source": str(f.time_source),
        "sequence": f.sequence,
        "values": [
            (
                v.metric,
                str(v.value),
                v.unit,
                v.ucum,
                None if v.original_value is None else str(v.original_value),
                v.original_unit,
            )
            for v in f.values
        ],
        "raw_hex": f.raw_hex,
        "received_at": f.received_at,
    }


def test_readings_as_desktops_send_them_take_the_column_path() -> None:
    models = [
        reading_from_change_fields(uuid7(), reading()),  # type: ignore[arg-type]
        reading_from_change_fields(uuid7(), reading(encounter_id=str(uuid7()), sequence=4, device_name="Omron")),  # type: ignore[arg-type]
        *synced_samples()[1:],
    ]
    cols = reading_columns([m.id for m in models], [reading_change_fields(m) for m in models], METRICS)
    assert cols is not None
    assert [facts_at(cols, i) for i in range(len(models))] == [expected(reading_facts(m)) for m in models]
    assert cols.original_units[-1] is not None  # the °F thermometer's own value travels with the °C one


def test_one_odd_reading_sends_the_whole_batch_to_the_per_reading_path() -> None:
    good = canonical()
    for odd in (
        canonical(characteristic="2a5e ") | {"characteristic": "2a5e"},  # valid, not canonical
        canonical() | {"values": [{"metric": "spo2", "value": "127", "unit": "%", "ucum": "%"}]},  # implausible
        canonical() | {"values": [{"metric": "spo2", "value": "097", "unit": "%", "ucum": "%"}]},  # leading zero
        canonical() | {"patient_id": "nope"},
        canonical() | {"colour": "red"},
    ):
        assert reading_columns([uuid7(), uuid7()], [good, odd], METRICS) is None
    assert reading_columns([uuid7(), uuid7()], [good, canonical()], METRICS) is not None
    assert reading_columns([uuid.uuid4()], [good], METRICS) is None  # not a UUIDv7
    assert reading_columns([], [], METRICS) is None


@st.composite
def _batch(draw: st.DrawFn) -> list[dict[str, object]]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        fields = canonical()
        for name in draw(st.sets(st.sampled_from(sorted(_FIELD_STRATEGIES)), max_size=2)):
            fields[name] = draw(_FIELD_STRATEGIES[name])
        if draw(st.booleans()):
            value = {
                "metric": "temperature",
                "value": draw(st.sampled_from(["36.6", "37.1", "0036.6", "36.60", "45", "-0", "36.6000001"])),
                "unit": "°C",
                "ucum": "Cel",
            }
            if draw(st.booleans()):
                value |= {"original_value": draw(st.sampled_from(["97.9", "097.9", "1e2"])), "original_unit": "[degF]"}
            fields["values"] = [value]
        out.append(fields)
    return out


@settings(max_examples=400, deadline=None)
@given(batch=_batch())
def test_column_path_accepts_only_what_the_model_accepts_with_the_same_values(batch: list[dict[str, object]]) -> None:
    ids = [uuid7() for _ in batch]
    cols = reading_columns(ids, batch, METRICS)  # type: ignore[arg-type]
    if cols is None:
        return
    for i, (rid, fields) in enumerate(zip(ids, batch, strict=True)):
        try:
            model = reading_from_change_fields(rid, fields)  # type: ignore[arg-type]
        except ValidationError:
            raise AssertionError(f"the column path accepted what the model refuses: {fields}") from None
        try:
            check_plausible(model, METRICS)
        except ImplausibleReading:
            raise AssertionError(f"the column path accepted an implausible value: {fields}") from None
        assert facts_at(cols, i) == expected(reading_facts(model))
        assert [Decimal(t) for t in (v[1] for v in facts_at(cols, i)["values"])] == [v.value for v in model.values]  # type: ignore[union-attr]
    assert all(t.tzinfo is UTC for t in cols.measured_at + cols.received_at)
