"""Device reading record: one measurement event from one BLE health device, synced append-only.

A `Reading` is what a BP cuff, oximeter, thermometer, glucometer, scale or heart-rate strap sent once: its
values (one per metric, in the metric's canonical unit, with the value as sent kept beside it), the device's
identity and clock, and the original bytes (`raw_hex`). Readings are never edited or merged: the desktop
creates one, sync carries it to the server (`RecordKind.READING`, op ``upsert`` only, see
`shared.sync.protocol`), and a second copy collapses by id or by `natural_key`.

**Metrics** come from the closed vocabulary `shared/knowledge/metrics.yaml` (canonical unit, UCUM code,
plausibility bounds, sources); `Metrics.load_default()` reads it once. Unit conversions (kPa → mmHg,
°F → °C, mmol/L ↔ mg/dL, lb → kg, in → m) use the factors listed there with their sources.

**Time.** ``measured_at`` is UTC. A device clock has no time zone (GATT Date Time), so the desktop reads the
device's wall-clock time in the PC's zone (``time_source = device_local_assumed_pc_zone``), or uses a known
device offset (``device_utc``), or, without a usable device time, the time of receipt (``received``).
``device_time`` keeps the device's own text untouched.

**Plausibility** is not part of record validation (the desktop stores every reading it receives);
`check_plausible` refuses values outside the data file's bounds and the server calls it before storing.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.gatt.readings import DeviceTimestamp, Quantity
from shared.gatt.readings import Reading as DecodedReading
from shared.ids import uuid7

__all__ = [
    "MAX_VALUES",
    "Conversion",
    "ImplausibleReading",
    "MetricDef",
    "Metrics",
    "NaturalKey",
    "Reading",
    "ReadingFacts",
    "ReadingNotStored",
    "ReadingValue",
    "TimeSource",
    "ValueFacts",
    "check_plausible",
    "facts_plausible",
    "natural_key",
    "reading_change_fields",
    "reading_facts",
    "reading_facts_fast",
    "reading_from_change_fields",
    "readings_from_decoded",
]

MAX_VALUES = 16
_CHARACTERISTIC = re.compile(r"[0-9A-F]{4}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}")


class TimeSource(StrEnum):
    """Where ``measured_at`` came from."""

    DEVICE_UTC = "device_utc"
    """The device's time with a known offset to UTC (Current Time Service local time information)."""
    DEVICE_LOCAL_ASSUMED_PC_ZONE = "device_local_assumed_pc_zone"
    """The device's wall clock (no zone on the wire), read in the receiving PC's time zone."""
    RECEIVED = "received"
    """The device sent no usable time (none, unknown date, clock not set): the time of receipt."""


# --- the metric vocabulary ------------------------------------------------------------------------------


class _Bounds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: Decimal
    max: Decimal
    source: str


class MetricDef(BaseModel):
    """One metric of the vocabulary: canonical unit, UCUM code, rounding, plausibility bounds and source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str
    unit: str
    ucum: str
    decimals: int = Field(ge=0, le=6)
    plausible: _Bounds
    source: str


class Conversion(BaseModel):
    """canonical = (value + offset) × multiply / divide, from UCUM unit ``from_`` to ``to``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    offset: Decimal = Decimal(0)
    multiply: Decimal = Decimal(1)
    divide: Decimal = Decimal(1)
    source: str

    def forward(self, value: Decimal) -> Decimal:
        with localcontext(Context(prec=50)):
            return (value + self.offset) * self.multiply / self.divide

    def backward(self, value: Decimal) -> Decimal:
        with localcontext(Context(prec=50)):
            return value * self.divide / self.multiply - self.offset


class _Unit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit_text: str
    aliases: list[str] = []


class _MetricsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: str = Field(alias="schema")
    schema_version: int
    version: str
    date: str
    status: str
    sources: dict[str, dict[str, str]]
    metrics: dict[str, dict[str, Any]]
    units: dict[str, _Unit]
    conversions: list[Conversion]


class Metrics:
    """The metric vocabulary and unit conversions of `shared/knowledge/metrics.yaml`."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        parsed = _MetricsFile.model_validate(doc)
        self.version = parsed.version
        self.sources = parsed.sources
        self.metrics = {name: MetricDef.model_validate({"name": name, **m}) for name, m in parsed.metrics.items()}
        self.units = parsed.units
        self._ucum_by_text: dict[str, str] = {}
        for code, unit in parsed.units.items():
            for text in (code, unit.unit_text, *unit.aliases):
                self._ucum_by_text[text] = code
        self.conversions = {(c.from_, c.to): c for c in parsed.conversions}
        for name, metric in self.metrics.items():
            for sid in (metric.source, metric.plausible.source):
                if sid not in self.sources:
                    raise ValueError(f"metric {name}: unknown source {sid!r}")
            if metric.ucum not in self.units:
                raise ValueError(f"metric {name}: unit {metric.ucum!r} is not listed under units")
        for conversion in parsed.conversions:
            if conversion.source not in self.sources:
                raise ValueError(f"conversion {conversion.from_}->{conversion.to}: unknown source")

    @classmethod
    def load_default(cls) -> Metrics:
        """The shipped vocabulary, parsed once per process."""
        return _load_default()

    def ucum(self, unit: str) -> str | None:
        """The UCUM code for a unit as written (UCUM code, display text or alias), or None if unknown."""
        return self._ucum_by_text.get(unit)

    def to_canonical(self, metric: str, value: Decimal, unit: str) -> Decimal:
        """``value`` in ``unit`` expressed in the metric's canonical unit; a converted value is rounded to the
        metric's ``decimals``, a value already in the canonical unit is returned as it is.

        Raises:
            KeyError: unknown metric.
            ValueError: a unit with no conversion to the canonical one.
        """
        definition = self.metrics[metric]
        code = self.ucum(unit)
        if code is None:
            raise ValueError(f"unit {unit!r} is not known")
        if code == definition.ucum:
            return value  # as sent: its precision is the device's (72 stays 72, 36.40 stays 36.40)
        conversion = self.conversions.get((code, definition.ucum))
        if conversion is None:
            raise ValueError(f"{metric} cannot be given in {unit!r}; its unit is {definition.unit}")
        return _round(conversion.forward(value), definition.decimals)

    def from_canonical(self, metric: str, value: Decimal, unit: str) -> Decimal:
        """A canonical value of ``metric`` expressed in ``unit`` (unrounded, 50 significant digits)."""
        definition = self.metrics[metric]
        code = self.ucum(unit)
        if code == definition.ucum:
            return value
        conversion = self.conversions.get((code or unit, definition.ucum))
        if conversion is None:
            raise ValueError(f"{metric} cannot be given in {unit!r}; its unit is {definition.unit}")
        return conversion.backward(value)


def _round(value: Decimal, places: int) -> Decimal:
    with localcontext(Context(prec=60)):
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


@functools.lru_cache(maxsize=1)
def _load_default() -> Metrics:
    text = (resources.files("shared.knowledge") / "metrics.yaml").read_text(encoding="utf-8")
    return Metrics(yaml.safe_load(text))


# --- the record -----------------------------------------------------------------------------------------


def _uuid7(value: uuid.UUID) -> uuid.UUID:
    if value.version != 7:
        raise PydanticCustomError("id.version", "Record ids must be time-ordered UUIDs (version 7)")
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


RecordId = Annotated[uuid.UUID, AfterValidator(_uuid7)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


class ReadingValue(BaseModel):
    """One metric of a reading, in the metric's canonical unit, with what the device sent.

    Args:
        metric: a metric of `shared/knowledge/metrics.yaml`.
        value: the value in the canonical unit (decimal; JSON carries it as a string so no digit is lost).
        unit: the canonical unit's display text (e.g. ``mmHg``).
        ucum: the canonical unit's UCUM code (e.g. ``mm[Hg]``).
        original_value: the value as the device sent it, when it was converted.
        original_unit: the unit the device sent, when it was converted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Annotated[str, Field(min_length=1, max_length=64)]
    value: Decimal
    unit: Annotated[str, Field(min_length=1, max_length=20)]
    ucum: Annotated[str, Field(min_length=1, max_length=20)]
    original_value: Decimal | None = None
    original_unit: Annotated[str, Field(min_length=1, max_length=20)] | None = None

    @model_validator(mode="after")
    def _known(self) -> ReadingValue:
        metrics = Metrics.load_default()
        definition = metrics.metrics.get(self.metric)
        if definition is None:
            raise PydanticCustomError(
                "reading.metric_unknown",
                "metric '{metric}' is not in the metric vocabulary (shared/knowledge/metrics.yaml)",
                {"metric": self.metric},
            )
        if not self.value.is_finite():
            raise PydanticCustomError(
                "reading.value_not_finite", "{metric}: value must be a finite number", {"metric": self.metric}
            )
        if self.ucum != definition.ucum or self.unit != definition.unit:
            raise PydanticCustomError(
                "reading.unit",
                "{metric} must be stored in {unit} (UCUM {ucum}), not {got}",
                {"metric": self.metric, "unit": definition.unit, "ucum": definition.ucum, "got": self.ucum},
            )
        if (self.original_value is None) != (self.original_unit is None):
            raise PydanticCustomError(
                "reading.original", "original_value and original_unit are given together or not at all"
            )
        if self.original_unit is not None and metrics.ucum(self.original_unit) is None:
            raise PydanticCustomError(
                "reading.original_unit", "original unit '{unit}' is not known", {"unit": self.original_unit}
            )
        return self


class Reading(BaseModel):
    """One measurement event from one device (see the module docstring).

    Args:
        id: UUIDv7 made by the desktop that received the reading.
        patient_id: the patient measured.
        encounter_id: the encounter it was taken in, if any.
        device_id: stable device identity: BLE address (upper-case) or serial number.
        device_name: the device's advertised or configured name.
        characteristic: the GATT characteristic it came from, 16-bit UUID text (``2A35``).
        measured_at: when it was measured, UTC.
        device_time: the device's own time text, untouched (no zone), when it sent one.
        time_source: where ``measured_at`` came from.
        sequence: the device's record number (glucose sequence number), when it has one.
        values: one entry per metric, at least one, no metric twice.
        raw_hex: the characteristic value as received, lower-case hex.
        received_at: when the desktop received it, UTC.

    Raises:
        ValidationError: with the field and the reason.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RecordId
    patient_id: uuid.UUID
    encounter_id: uuid.UUID | None = None
    device_id: Annotated[str, Field(min_length=1, max_length=100)]
    device_name: Annotated[str, Field(max_length=200)] | None = None
    characteristic: Annotated[str, Field(min_length=4, max_length=4)]
    measured_at: UtcDatetime
    device_time: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    time_source: TimeSource
    sequence: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    values: Annotated[list[ReadingValue], Field(min_length=1, max_length=MAX_VALUES)]
    raw_hex: Annotated[str, Field(min_length=2, max_length=2048, pattern=r"^([0-9a-f]{2})+$")]
    received_at: UtcDatetime

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, value: str) -> str:
        text = value.strip()
        if not text or not text.isprintable():
            raise PydanticCustomError("reading.device_id", "device_id must be printable text (address or serial)")
        return text.upper() if _MAC.fullmatch(text) else text

    @field_validator("characteristic", mode="before")
    @classmethod
    def _characteristic(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().upper().removeprefix("0X")
            if not _CHARACTERISTIC.fullmatch(text):
                raise PydanticCustomError(
                    "reading.characteristic", "characteristic must be a 16-bit UUID in hex, e.g. 2A35"
                )
            return text
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Reading:
        metrics = [v.metric for v in self.values]
        if len(set(metrics)) != len(metrics):
            raise PydanticCustomError("reading.metric_twice", "a reading carries each metric at most once")
        if self.time_source is not TimeSource.RECEIVED and self.device_time is None:
            raise PydanticCustomError(
                "reading.device_time", "measured_at from the device's clock needs device_time (the device's text)"
            )
        if self.time_source is TimeSource.RECEIVED and self.measured_at != self.received_at:
            raise PydanticCustomError("reading.measured_at", "with time_source 'received', measured_at is received_at")
        return self


NaturalKey = tuple[str, str, str, int | None]


def natural_key(reading: Reading) -> NaturalKey:
    """(device_id, characteristic, device time or measured_at, sequence): the same measurement, whatever id.

    The device's own time text is used when ``measured_at`` came from the device clock, so two PCs that
    download the same meter collapse its records; a reading stamped on receipt uses ``measured_at`` (ISO,
    UTC, microseconds), since an unset device clock repeats the same text for different measurements.
    """
    if reading.device_time is not None and reading.time_source is not TimeSource.RECEIVED:
        when = reading.device_time
    else:
        when = reading.measured_at.astimezone(UTC).isoformat(timespec="microseconds")
    return (reading.device_id, reading.characteristic, when, reading.sequence)


class ImplausibleReading(ValueError):
    """A value outside its metric's plausibility bounds; ``problems`` name each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check_plausible(reading: Reading, metrics: Metrics | None = None) -> None:
    """Refuse values outside the data file's plausibility bounds.

    Raises:
        ImplausibleReading: naming each metric, its value and the bounds with their source.
    """
    vocabulary = metrics or Metrics.load_default()
    problems = []
    for value in reading.values:
        definition = vocabulary.metrics[value.metric]
        bounds = definition.plausible
        if not bounds.min <= value.value <= bounds.max:
            problems.append(
                f"{value.metric} {value.value} {definition.unit} is outside the plausible range "
                f"{bounds.min}-{bounds.max} {definition.unit} (metrics.yaml, source {bounds.source})"
            )
    if problems:
        raise ImplausibleReading(problems)


# --- sync -----------------------------------------------------------------------------------------------


def reading_change_fields(reading: Reading) -> dict[str, JsonValue]:
    """The ``fields`` of the sync `Change` that carries ``reading`` (everything but ``id``, which is the
    change's id). Decimals travel as strings so no digit is lost."""
    data: dict[str, JsonValue] = reading.model_dump(mode="json", exclude={"id"})
    return data


def reading_from_change_fields(reading_id: uuid.UUID, fields: Mapping[str, JsonValue]) -> Reading:
    """Rebuild a reading from a change's id and fields.

    Raises:
        ValidationError: with the field and the reason (also for a field a reading does not have).
    """
    return Reading.model_validate({**fields, "id": reading_id})


# --- the fast path: a reading's validated values as plain tuples ------------------------------------------


class ValueFacts(NamedTuple):
    """A `ReadingValue`'s validated values."""

    metric: str
    value: Decimal
    unit: str
    ucum: str
    original_value: Decimal | None
    original_unit: str | None


class ReadingFacts(NamedTuple):
    """A valid `Reading`'s values as plain tuples (what a server stores), without the model's objects."""

    id: uuid.UUID
    patient_id: uuid.UUID
    encounter_id: uuid.UUID | None
    device_id: str
    device_name: str | None
    characteristic: str
    measured_at: datetime
    device_time: str | None
    time_source: TimeSource
    sequence: int | None
    values: tuple[ValueFacts, ...]
    raw_hex: str
    received_at: datetime


def reading_facts(reading: Reading) -> ReadingFacts:
    """The values of a validated reading."""
    return ReadingFacts(
        reading.id,
        reading.patient_id,
        reading.encounter_id,
        reading.device_id,
        reading.device_name,
        reading.characteristic,
        reading.measured_at,
        reading.device_time,
        reading.time_source,
        reading.sequence,
        tuple(ValueFacts(v.metric, v.value, v.unit, v.ucum, v.original_value, v.original_unit) for v in reading.values),
        reading.raw_hex,
        reading.received_at,
    )


_FAST_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FAST_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_FAST_DECIMAL = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")
_FAST_HEX = re.compile(r"([0-9a-f]{2})+")
_FAST_READING_KEYS = frozenset(Reading.model_fields) - {"id"}
_FAST_VALUE_KEYS = frozenset(ReadingValue.model_fields)
_FAST_TIME_SOURCES = {str(s): s for s in TimeSource}


def _fast_uuid(value: object) -> uuid.UUID | None:
    if type(value) is str and _FAST_UUID.fullmatch(value):
        return uuid.UUID(value)
    return None


def _fast_time(value: object) -> datetime | None:
    if type(value) is not str or not _FAST_TIME.fullmatch(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def _fast_text(value: object, low: int, high: int) -> str | None:
    if type(value) is str and low <= len(value) <= high:
        return value
    return None


def _fast_value(item: object, metrics: Metrics) -> ValueFacts | None:
    if type(item) is not dict or not item.keys() <= _FAST_VALUE_KEYS:
        return None
    metric, text, unit, ucum = item.get("metric"), item.get("value"), item.get("unit"), item.get("ucum")
    definition = metrics.metrics.get(metric) if type(metric) is str else None
    if definition is None or type(text) is not str or not _FAST_DECIMAL.fullmatch(text):
        return None
    if unit != definition.unit or ucum != definition.ucum or not 1 <= len(definition.unit) <= 20:
        return None
    original_text, original_unit = item.get("original_value"), item.get("original_unit")
    if original_text is None and original_unit is None:
        return ValueFacts(definition.name, Decimal(text), definition.unit, definition.ucum, None, None)
    if type(original_text) is not str or not _FAST_DECIMAL.fullmatch(original_text):
        return None
    original_unit = _fast_text(original_unit, 1, 20)
    if original_unit is None or metrics.ucum(original_unit) is None:
        return None
    return ValueFacts(
        definition.name, Decimal(text), definition.unit, definition.ucum, Decimal(original_text), original_unit
    )


def reading_facts_fast(
    reading_id: uuid.UUID, fields: Mapping[str, JsonValue], metrics: Metrics | None = None
) -> ReadingFacts | None:
    """`reading_facts` of `reading_from_change_fields` for the common case, without building the model.

    Accepts only fields in the shape `reading_change_fields` writes (canonical UUID and ISO texts, decimals
    as plain digit strings, exact JSON types) that satisfy every rule of `Reading`; it then returns exactly
    what ``reading_facts(reading_from_change_fields(reading_id, fields))`` would. Anything else gives None,
    and the caller validates with the model, which accepts it or names the problem: this never accepts what
    the model refuses (a property test checks both on arbitrary input).
    """
    if type(reading_id) is not uuid.UUID or reading_id.version != 7 or not fields.keys() <= _FAST_READING_KEYS:
        return None
    get = fields.get
    patient_id = _fast_uuid(get("patient_id"))
    encounter = get("encounter_id")
    encounter_id = None if encounter is None else _fast_uuid(encounter)
    raw_device = _fast_text(get("device_id"), 1, 100)
    device_name = get("device_name")
    raw_characteristic = get("characteristic")
    measured_at = _fast_time(get("measured_at"))
    received_at = _fast_time(get("received_at"))
    device_time = get("device_time")
    source = get("time_source")
    time_source = _FAST_TIME_SOURCES.get(source) if type(source) is str else None
    sequence = get("sequence")
    raw_hex = _fast_text(get("raw_hex"), 2, 2048)
    items = get("values")
    if (
        patient_id is None
        or (encounter is not None and encounter_id is None)
        or raw_device is None
        or (device_name is not None and type(device_name) is not str)
        or (type(device_name) is str and len(device_name) > 200)
        or type(raw_characteristic) is not str
        or measured_at is None
        or received_at is None
        or (device_time is not None and type(device_time) is not str)
        or (type(device_time) is str and not 1 <= len(device_time) <= 40)
        or time_source is None
        or (sequence is not None and (type(sequence) is not int or not 0 <= sequence <= 2**31 - 1))
        or raw_hex is None
        or not _FAST_HEX.fullmatch(raw_hex)
        or type(items) is not list
        or not 1 <= len(items) <= MAX_VALUES
    ):
        return None
    device_id = raw_device.strip()
    if not device_id or not device_id.isprintable():
        return None
    if _MAC.fullmatch(device_id):
        device_id = device_id.upper()
    characteristic = raw_characteristic.strip().upper().removeprefix("0X")
    if not _CHARACTERISTIC.fullmatch(characteristic):
        return None
    if time_source is not TimeSource.RECEIVED and device_time is None:
        return None
    if time_source is TimeSource.RECEIVED and measured_at != received_at:
        return None
    vocabulary = metrics or Metrics.load_default()
    values = []
    for item in items:
        value = _fast_value(item, vocabulary)
        if value is None:
            return None
        values.append(value)
    if len({v.metric for v in values}) != len(values):
        return None
    return ReadingFacts(
        reading_id,
        patient_id,
        encounter_id,
        device_id,
        device_name if type(device_name) is str else None,
        characteristic,
        measured_at,
        device_time if type(device_time) is str else None,
        time_source,
        sequence if type(sequence) is int else None,
        tuple(values),
        raw_hex,
        received_at,
    )


def facts_plausible(facts: ReadingFacts, metrics: Metrics | None = None) -> bool:
    """Whether `check_plausible` would pass the reading these facts are of (it names the problems)."""
    vocabulary = metrics or Metrics.load_default()
    for value in facts.values:
        bounds = vocabulary.metrics[value.metric].plausible
        if not bounds.min <= value.value <= bounds.max:
            return False
    return True


# --- from decoder output --------------------------------------------------------------------------------


class ReadingNotStored(ValueError):
    """The decoded value is not a patient measurement (control solution, demo data, intermediate value,
    measurement unsuccessful, no valid number); the message says which. The raw bytes are the desktop's to keep.
    """


# decoder value name -> metric, per characteristic (shared.gatt decoders name their values).
_METRIC_OF: dict[str, dict[str, str]] = {
    "2A35": {
        "systolic": "bp_systolic",
        "diastolic": "bp_diastolic",
        "mean_arterial_pressure": "bp_mean_arterial",
        "pulse_rate": "pulse_rate",
    },
    "2A1C": {"temperature": "temperature"},
    "2A18": {"glucose": "glucose"},
    "2A5E": {"spo2": "spo2", "pulse_rate": "pulse_rate"},
    "2A5F": {"spo2": "spo2", "pulse_rate": "pulse_rate"},
    "2A9D": {"weight": "weight", "bmi": "bmi", "height": "height"},
    "2A9C": {
        "body_fat": "body_fat_percent",
        "muscle_percentage": "muscle_percent",
        "muscle_mass": "muscle_mass",
        "fat_free_mass": "fat_free_mass",
        "soft_lean_mass": "soft_lean_mass",
        "body_water_mass": "body_water_mass",
        "weight": "weight",
        "height": "height",
    },
    "2A37": {"heart_rate": "heart_rate"},
}
_NOT_MEASUREMENTS = {
    "2A36": "intermediate cuff pressure is live cuff inflation, not a measurement",
    "2A1E": "an intermediate temperature is a preview, not the final measurement",
    "2A34": "glucose measurement context describes a glucose record; it is not a measurement itself",
    "2A2B": "current time is the device's clock, not a measurement",
}


def _device_time_text(stamp: DeviceTimestamp) -> str:
    return (
        f"{stamp.year:04d}-{stamp.month:02d}-{stamp.day:02d}T{stamp.hours:02d}:{stamp.minutes:02d}:{stamp.seconds:02d}"
    )


def _value(metrics: Metrics, metric: str, quantity: Quantity) -> ReadingValue | None:
    if quantity.value is None:
        return None  # NaN / NRes / ±INF: no value
    # convert from what the device sent when its unit is one of ours (kPa, °F, lb, in); SI base units the
    # decoder already scaled exactly (kg/L → mg/dL, mol/L → mmol/L) start from the decoder's quantity
    if quantity.original is not None and metrics.ucum(quantity.original.unit):
        sent_value, sent_unit = quantity.original.value, quantity.original.unit
    else:
        sent_value, sent_unit = _with_sent_precision(quantity), quantity.unit
    if sent_value is None:
        return None
    definition = metrics.metrics[metric]
    try:
        canonical = metrics.to_canonical(metric, sent_value, sent_unit)
    except (ValueError, InvalidOperation):
        return None
    converted = metrics.ucum(sent_unit) != definition.ucum
    return ReadingValue(
        metric=metric,
        value=canonical,
        unit=definition.unit,
        ucum=definition.ucum,
        original_value=sent_value if converted else None,
        original_unit=metrics.ucum(sent_unit) if converted else None,
    )


def _with_sent_precision(quantity: Quantity) -> Decimal | None:
    """A value the decoder scaled by a power of ten (kg/L → mg/dL, mol/L → mmol/L) with the precision the
    device sent: 98e-5 kg/L is 98 mg/dL, not 98.00000 mg/dL."""
    value, original = quantity.value, quantity.original
    if value is None or original is None or original.value is None or original.value == 0:
        return value
    with localcontext(Context(prec=60)):
        ratio = value / original.value
        exponent = original.value.as_tuple().exponent
        if not isinstance(exponent, int) or ratio != Decimal(1).scaleb(ratio.adjusted()):
            return value
        try:
            return value.quantize(Decimal(1).scaleb(exponent + ratio.adjusted()))
        except InvalidOperation:
            return value


def _measurement_metrics(decoded: DecodedReading) -> dict[str, str]:
    characteristic = decoded.characteristic.upper()
    if characteristic in _NOT_MEASUREMENTS:
        raise ReadingNotStored(_NOT_MEASUREMENTS[characteristic])
    mapping = _METRIC_OF.get(characteristic)
    if mapping is None:
        raise ReadingNotStored(f"characteristic {characteristic} ({decoded.name}) carries no supported metric")
    details = decoded.details
    if details.get("control_solution") is True:
        raise ReadingNotStored("control-solution test: not patient glucose")
    if details.get("not_patient_data") is True:
        raise ReadingNotStored("the oximeter marked this as demonstration, test, unavailable or invalid data")
    if details.get("measurement_unsuccessful") is True:
        raise ReadingNotStored("the device reported the measurement as unsuccessful")
    return mapping


def _measured_at(
    decoded: DecodedReading, received: datetime, pc_zone: tzinfo, device_utc_offset: timedelta | None
) -> tuple[datetime, TimeSource]:
    stamp = decoded.timestamp
    if stamp is None or stamp.local is None or decoded.details.get("device_clock_not_set") is True:
        return received, TimeSource.RECEIVED
    try:
        if device_utc_offset is not None:
            return (stamp.local - device_utc_offset).replace(tzinfo=UTC), TimeSource.DEVICE_UTC
        return stamp.local.replace(tzinfo=pc_zone).astimezone(UTC), TimeSource.DEVICE_LOCAL_ASSUMED_PC_ZONE
    except (OverflowError, ValueError):
        return received, TimeSource.RECEIVED


def readings_from_decoded(
    decoded: DecodedReading,
    *,
    patient_id: uuid.UUID,
    device_id: str,
    received_at: datetime,
    pc_zone: tzinfo,
    reading_id: uuid.UUID | None = None,
    encounter_id: uuid.UUID | None = None,
    device_name: str | None = None,
    device_utc_offset: timedelta | None = None,
) -> list[Reading]:
    """The synced reading(s) for one decoded characteristic value (`shared.gatt.decode` output).

    Today one decoded value gives exactly one reading (a list so a multi-record download fits later).
    Values the vocabulary has no metric for (RR intervals, energy expended, impedance, …) are not in
    ``values``; they stay in ``raw_hex``. A special (NaN, NRes, ±INF) gives no value for its metric.

    Args:
        decoded: the decoder's result.
        patient_id: the patient the device was used on.
        device_id: the device's stable identity (BLE address or serial).
        received_at: when the PC received the bytes (aware).
        pc_zone: the PC's time zone, to read a device clock that has none.
        reading_id: the new record's id (UUIDv7); a fresh one when omitted.
        encounter_id: the encounter, if any.
        device_name: the device's name, if known.
        device_utc_offset: the device clock's offset to UTC when known (Current Time Service local time
            information); then ``time_source`` is ``device_utc``.

    Returns:
        The readings, in measurement order.

    Raises:
        ReadingNotStored: the value is not a patient measurement (the message says why).
        ValidationError: an argument is invalid (e.g. a naive ``received_at``, a bad device id).
    """
    characteristic = decoded.characteristic.upper()
    mapping = _measurement_metrics(decoded)
    metrics = Metrics.load_default()
    values = []
    for name, quantity in decoded.values.items():
        metric = mapping.get(name)
        value = _value(metrics, metric, quantity) if metric is not None else None
        if value is not None:
            values.append(value)
    if not values:
        raise ReadingNotStored("the device sent no valid value (not-a-number, no resolution or out of range)")
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be time-zone aware")
    received = received_at.astimezone(UTC)
    stamp = decoded.timestamp
    device_time = _device_time_text(stamp) if stamp is not None else None
    measured_at, source = _measured_at(decoded, received, pc_zone, device_utc_offset)
    details = decoded.details
    sequence = details.get("sequence_number") if characteristic == "2A18" else None
    reading = Reading(
        id=reading_id or uuid7(),
        patient_id=patient_id,
        encounter_id=encounter_id,
        device_id=device_id,
        device_name=device_name,
        characteristic=characteristic,
        measured_at=measured_at,
        device_time=device_time,
        time_source=source,
        sequence=sequence if isinstance(sequence, int) else None,
        values=values,
        raw_hex=decoded.raw_hex,
        received_at=received,
    )
    return [reading]
