"""A batch of synced readings checked column by column: the server's bulk ingest path.

`reading_columns` takes the changes of a pushed batch (ids and field dicts, in the shape
`shared.records.reading.reading_change_fields` writes) and returns their values as columns, one list per
field, ready to become rows — or None as soon as one reading is not in the strict shape, is not valid, or has
a value outside its plausibility bounds. The caller then takes the per-reading path
(`reading_facts_fast`, else the `Reading` model), which accepts the same readings and names every problem;
a None here never means a reading is refused.

It is the per-reading fast path run over columns: each rule is one pass of a C-level ``map``/``all``/set
operation over a field's values for the whole batch instead of a Python function per reading, and no
`ReadingFacts`/`Decimal` objects are built. Strict subset of the model, with the same values
(``tests/shared/test_reading_columns.py`` checks both on arbitrary input):

* the fast path's rules, plus: decimals without leading zeros and with at most 9 integer and 6 fractional
  digits (so ``str(Decimal(text)) == text`` and ``float(text)`` compares with the plausibility bounds as the
  decimal does); a device id already trimmed (and upper-case if it is a MAC address); a characteristic
  already in canonical form (4 upper-case hex digits); every value plausible.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter, le
from typing import Any

from pydantic import JsonValue

from shared.records.reading import (
    _CHARACTERISTIC,
    _FAST_HEX,
    _FAST_READING_KEYS,
    _FAST_TIME,
    _FAST_UUID,
    _MAC,
    MAX_VALUES,
    Metrics,
    TimeSource,
)

__all__ = ["ReadingColumns", "reading_columns"]

_STRICT_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?")
_SOURCES = frozenset(str(s) for s in TimeSource)
_RECEIVED = str(TimeSource.RECEIVED)
_MAX_SEQUENCE = 2**31 - 1
_STR = frozenset({str})


@dataclass(slots=True)
class ReadingColumns:
    """The readings of a batch, one list per field; ``value_*`` lists have one entry per value of a reading.

    Texts are as the model stores them (ids canonical lower-case, times as aware UTC datetimes); ``value``
    is the decimal's float and ``value_text`` its text (equal to ``str(Decimal(text))``).
    """

    ids: list[uuid.UUID]
    patient_ids: list[str]
    encounter_ids: list[str | None]
    device_ids: list[str]
    device_names: list[str | None]
    characteristics: list[str]
    measured_at: list[datetime]
    device_times: list[str | None]
    time_sources: list[str]
    sequences: list[int | None]
    raw_hex: list[str]
    received_at: list[datetime]
    value_reading: list[int]  # position (in the lists above) of the value's reading
    value_index: list[int]  # position of the value in its reading
    metrics: list[str]
    values: list[float]
    value_texts: list[str]
    units: list[str]
    ucums: list[str]
    original_values: list[str | None]
    original_units: list[str | None]


_READING_KEYS = tuple(sorted(_FAST_READING_KEYS))
_VALUE_KEYS = ("metric", "value", "unit", "ucum", "original_value", "original_unit")
_reading_fields = itemgetter(*_READING_KEYS)
_value_fields = itemgetter(*_VALUE_KEYS)

Column = tuple[Any, ...]
"""One field's values across the batch (as sent: not yet checked)."""


def _texts(values: set[Any], low: int, high: int) -> bool:
    """Every one of these (distinct) values is a text of ``low``..``high`` characters."""
    return set(map(type, values)) == _STR and all(low <= len(v) <= high for v in values)


def _present(column: Column) -> set[Any]:
    """The column's distinct values other than None."""
    values = set(column)
    values.discard(None)
    return values


def _ids_ok(column: dict[str, Column]) -> bool:
    patient_ids, encounter_ids = set(column["patient_id"]), _present(column["encounter_id"])
    if not _texts(patient_ids, 36, 36) or not all(map(_FAST_UUID.fullmatch, patient_ids)):
        return False
    return not encounter_ids or (_texts(encounter_ids, 36, 36) and all(map(_FAST_UUID.fullmatch, encounter_ids)))


def _device_ok(column: dict[str, Column]) -> bool:
    device_ids, device_names = set(column["device_id"]), _present(column["device_name"])
    characteristics = set(column["characteristic"])
    if not _texts(device_ids, 1, 100) or (device_names and not _texts(device_names, 0, 200)):
        return False
    if not all(d.isprintable() and d == d.strip() and (d == d.upper() or not _MAC.fullmatch(d)) for d in device_ids):
        return False
    sequences = _present(column["sequence"])
    if sequences and (set(map(type, sequences)) != {int} or not 0 <= min(sequences) <= max(sequences) <= _MAX_SEQUENCE):
        return False
    raw_hex = column["raw_hex"]
    if set(map(type, raw_hex)) != _STR or not all(map(_FAST_HEX.fullmatch, raw_hex)):
        return False
    return 2 <= min(map(len, raw_hex)) <= max(map(len, raw_hex)) <= 2048 and (
        _texts(characteristics, 4, 4) and all(map(_CHARACTERISTIC.fullmatch, characteristics))
    )


def _parsed_times(texts: Column) -> list[datetime] | None:
    if set(map(type, texts)) != _STR or not all(map(_FAST_TIME.fullmatch, texts)):
        return None
    try:
        parsed = list(map(datetime.fromisoformat, texts))
    except ValueError:  # e.g. 30 February: the model names it
        return None
    if {t.tzinfo for t in parsed} == {UTC}:
        return parsed
    return [t.astimezone(UTC) for t in parsed]


def _times(column: dict[str, Column]) -> tuple[list[datetime], list[datetime]] | None:
    """(measured_at, received_at) as aware UTC datetimes, if every time field is right."""
    measured_at, received_at = _parsed_times(column["measured_at"]), _parsed_times(column["received_at"])
    device_times, time_sources = column["device_time"], column["time_source"]
    present, sources = _present(device_times), set(time_sources)
    if measured_at is None or received_at is None or (present and not _texts(present, 1, 40)):
        return None
    if set(map(type, sources)) != _STR or not sources <= _SOURCES:
        return None
    if _RECEIVED not in sources:  # every reading has its device time
        return None if device_times.count(None) else (measured_at, received_at)
    for source, device_time, measured, received in zip(
        time_sources, device_times, measured_at, received_at, strict=True
    ):
        if (source == _RECEIVED and measured != received) or (source != _RECEIVED and device_time is None):
            return None
    return measured_at, received_at


def _originals_ok(texts: Column, units: Column, metrics: Metrics) -> bool:
    """The device's own values (e.g. °F), where kept: a strict decimal and a known unit, or neither."""
    if texts.count(None) == len(texts) and units.count(None) == len(units):
        return True
    for text, unit in zip(texts, units, strict=True):
        if text is None and unit is None:
            continue
        if type(text) is not str or not _STRICT_DECIMAL.fullmatch(text):
            return False
        if type(unit) is not str or not 1 <= len(unit) <= 20 or metrics.ucum(unit) is None:
            return False
    return True


def _values(items: Column, metrics: Metrics) -> tuple[list[int], list[int], list[Column], list[float]] | None:
    """(value_reading, value_index, the value fields' columns in `_VALUE_KEYS` order, the values as floats)."""
    if set(map(type, items)) != {list}:
        return None
    counts = list(map(len, items))
    if not 1 <= min(counts) <= max(counts) <= MAX_VALUES:
        return None
    flat = [v for vs in items for v in vs]
    if set(map(type, flat)) != {dict} or set(map(len, flat)) != {len(_VALUE_KEYS)}:
        return None
    try:
        columns: list[Column] = list(zip(*map(_value_fields, flat), strict=True))
    except KeyError:
        return None
    names, texts, units, ucums, original_values, original_units = columns
    value_reading = [r for r, n in enumerate(counts) for _ in range(n)]
    definitions = metrics.metrics
    # (metric, unit, ucum) as the vocabulary has them; a metric only once in a reading.
    allowed = {(name, d.unit, d.ucum) for name, d in definitions.items() if 1 <= len(d.unit) <= 20}
    if not set(zip(names, units, ucums, strict=True)) <= allowed:
        return None
    if len(set(zip(value_reading, names, strict=True))) != len(names):
        return None
    if set(map(type, texts)) != _STR or not all(map(_STRICT_DECIMAL.fullmatch, texts)):
        return None
    floats = list(map(float, texts))
    # As floats: a text of at most 15 significant digits is on the same side of a bound as its float.
    low = {name: float(d.plausible.min) for name, d in definitions.items()}
    high = {name: float(d.plausible.max) for name, d in definitions.items()}
    if not all(map(le, map(low.__getitem__, names), floats)) or not all(map(le, floats, map(high.__getitem__, names))):
        return None
    if not _originals_ok(original_values, original_units, metrics):
        return None
    return value_reading, [i for n in counts for i in range(n)], columns, floats


def reading_columns(
    ids: Sequence[uuid.UUID], fields: Sequence[Mapping[str, JsonValue]], metrics: Metrics
) -> ReadingColumns | None:
    """The readings (id ``ids[i]`` with ``fields[i]``) as columns, or None if one is not in the strict shape.

    Accepts only what ``reading_facts_fast(ids[i], fields[i], metrics)`` accepts as plausible, with the same
    values; None means "check them one by one", never "refused". Checks that only depend on a value are
    made once per distinct value of the batch (a batch has few devices, patients, units).
    """
    if not ids or len(ids) != len(fields):
        return None
    if set(map(type, ids)) != {uuid.UUID} or {i.int >> 76 & 15 for i in ids} != {7}:
        return None
    # Exactly the fields `reading_change_fields` writes (every key present: no more, no fewer).
    if set(map(type, fields)) != {dict} or set(map(len, fields)) != {len(_READING_KEYS)}:
        return None
    try:
        column: dict[str, Column] = dict(
            zip(_READING_KEYS, zip(*map(_reading_fields, fields), strict=True), strict=True)
        )
    except KeyError:
        return None
    if not _ids_ok(column) or not _device_ok(column):
        return None
    times, values = _times(column), _values(column["values"], metrics)
    if times is None or values is None:
        return None
    measured_at, received_at = times
    value_reading, value_index, (names, texts, units, ucums, original_values, original_units), floats = values
    return ReadingColumns(
        ids=list(ids),
        patient_ids=list(column["patient_id"]),
        encounter_ids=list(column["encounter_id"]),
        device_ids=list(column["device_id"]),
        device_names=list(column["device_name"]),
        characteristics=list(column["characteristic"]),
        measured_at=measured_at,
        device_times=list(column["device_time"]),
        time_sources=list(column["time_source"]),
        sequences=list(column["sequence"]),
        raw_hex=list(column["raw_hex"]),
        received_at=received_at,
        value_reading=value_reading,
        value_index=value_index,
        metrics=list(names),
        values=floats,
        value_texts=list(texts),
        units=list(units),
        ucums=list(ucums),
        original_values=list(original_values),
        original_units=list(original_units),
    )
