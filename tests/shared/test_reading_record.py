"""The synced device reading: vocabulary, conversions, builder from shared.gatt output, natural key, sync fields."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.gatt import GattDecodeError, decode
from shared.gatt.sfloat import MedFloat
from shared.ids import uuid7
from shared.records.reading import (
    ImplausibleReading,
    Metrics,
    Reading,
    ReadingNotStored,
    TimeSource,
    check_plausible,
    facts_plausible,
    natural_key,
    reading_change_fields,
    reading_facts,
    reading_facts_fast,
    reading_from_change_fields,
    readings_from_decoded,
)
from tests.shared.gatt.strategies import DATETIMES, date_time_bytes, sfloat_bytes

IST = ZoneInfo("Asia/Kolkata")
RECEIVED = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
PATIENT = uuid.UUID("019ab4c2-7d10-7c3e-8b7a-3f5d2a9c1e40")


def build(data: bytes, characteristic: str, **extra: object) -> Reading:
    kwargs: dict[str, object] = {
        "patient_id": PATIENT,
        "device_id": "aa:bb:cc:dd:ee:ff",
        "received_at": RECEIVED,
        "pc_zone": IST,
        **extra,
    }
    readings = readings_from_decoded(decode(characteristic, data), **kwargs)  # type: ignore[arg-type]
    assert len(readings) == 1
    return readings[0]


def sf(mantissa: int, exponent: int) -> bytes:
    return sfloat_bytes(MedFloat(mantissa, exponent))


def values(r: Reading) -> dict[str, tuple[str, str, str | None, str | None]]:
    return {
        v.metric: (str(v.value), v.ucum, None if v.original_value is None else str(v.original_value), v.original_unit)
        for v in r.values
    }


class TestVocabulary:
    def test_every_metric_and_conversion_names_a_known_source(self) -> None:
        metrics = Metrics.load_default()
        assert {"bp_systolic", "spo2", "temperature", "glucose", "weight", "body_fat_percent"} <= set(metrics.metrics)
        for m in metrics.metrics.values():
            assert m.plausible.min < m.plausible.max
            assert m.source in metrics.sources and m.plausible.source in metrics.sources
        assert set(metrics.conversions) == {
            ("kPa", "mm[Hg]"),
            ("[degF]", "Cel"),
            ("mmol/L", "mg/dL"),
            ("[lb_av]", "kg"),
            ("[in_i]", "m"),
        }
        assert metrics.conversions[("mmol/L", "mg/dL")].multiply == Decimal("180.156")  # g/mol of glucose

    def test_a_broken_file_is_refused_with_the_reason(self) -> None:
        with pytest.raises(ValueError, match="unknown source 'nowhere'"):
            Metrics(
                {
                    "schema": "integmed-metrics",
                    "schema_version": 1,
                    "version": "0",
                    "date": "2026-11-25",
                    "status": "draft",
                    "sources": {},
                    "metrics": {
                        "x": {
                            "label": "X",
                            "unit": "%",
                            "ucum": "%",
                            "decimals": 0,
                            "plausible": {"min": 0, "max": 1, "source": "nowhere"},
                            "source": "nowhere",
                        }
                    },
                    "units": {"%": {"unit_text": "%"}},
                    "conversions": [],
                }
            )

    @pytest.mark.parametrize(
        ("metric", "value", "unit", "canonical"),
        [
            ("bp_systolic", "16.0", "kPa", "120.0"),
            ("temperature", "98.6", "°F", "37.00"),
            ("glucose", "5.5", "mmol/L", "99.1"),
            ("weight", "154.0", "lb", "69.853"),
            ("height", "70", "in", "1.778"),
            ("pulse_rate", "72", "bpm", "72"),  # same unit: kept as sent, precision included
        ],
    )
    def test_known_conversions(self, metric: str, value: str, unit: str, canonical: str) -> None:
        assert str(Metrics.load_default().to_canonical(metric, Decimal(value), unit)) == canonical

    def test_no_conversion_between_unrelated_units(self) -> None:
        with pytest.raises(ValueError, match="glucose cannot be given in 'kg'"):
            Metrics.load_default().to_canonical("glucose", Decimal(1), "kg")

    @given(
        st.sampled_from(
            [
                ("bp_systolic", "kPa", 1, 40),
                ("temperature", "°F", 60, 120),
                ("glucose", "mmol/L", 0, 60),
                ("weight", "lb", 0, 900),
                ("height", "in", 1, 110),
            ]
        ),
        st.integers(0, 10**6),
        st.integers(1, 3),
    )
    def test_conversions_round_trip_within_the_canonical_rounding(
        self, case: tuple[str, str, int, int], fraction: int, places: int
    ) -> None:
        metric, unit, low, high = case
        metrics = Metrics.load_default()
        sent = (Decimal(low) + (Decimal(high - low) * fraction / 10**6)).quantize(Decimal(1).scaleb(-places))
        canonical = metrics.to_canonical(metric, sent, unit)
        back = metrics.from_canonical(metric, canonical, unit)
        half_step = Decimal(1).scaleb(-metrics.metrics[metric].decimals) / 2
        tolerance = abs(
            metrics.from_canonical(metric, half_step, unit) - metrics.from_canonical(metric, Decimal(0), unit)
        )
        assert abs(back - sent) <= tolerance
        # and exactly, after rounding back to the precision the device sent, while the canonical step is finer
        if tolerance < Decimal(1).scaleb(-places) / 2:
            assert back.quantize(sent) == sent


class TestBuilder:
    def test_blood_pressure_in_kpa_with_device_time_and_pulse(self) -> None:
        data = bytes([0x07]) + sf(160, -1) + sf(107, -1) + sf(125, -1) + date_time_bytes(datetime(2026, 1, 31, 23, 59))
        r = build(data + sf(72, 0), "2A35", device_name="Omron X4")
        assert values(r) == {
            "bp_systolic": ("120.0", "mm[Hg]", "16.0", "kPa"),
            "bp_diastolic": ("80.3", "mm[Hg]", "10.7", "kPa"),
            "bp_mean_arterial": ("93.8", "mm[Hg]", "12.5", "kPa"),
            "pulse_rate": ("72", "/min", None, None),
        }
        assert r.device_time == "2026-01-31T23:59:00" and r.time_source is TimeSource.DEVICE_LOCAL_ASSUMED_PC_ZONE
        assert r.measured_at == datetime(2026, 1, 31, 18, 29, tzinfo=UTC)  # 23:59 IST
        assert r.device_id == "AA:BB:CC:DD:EE:FF" and r.characteristic == "2A35" and r.raw_hex == data.hex() + "4800"
        assert natural_key(r) == ("AA:BB:CC:DD:EE:FF", "2A35", "2026-01-31T23:59:00", None)
        check_plausible(r)

    def test_known_device_offset_gives_device_utc(self) -> None:
        data = bytes([0x02]) + struct.pack("<I", 0xFE000000 | 3640) + date_time_bytes(datetime(2026, 3, 1, 8, 0))
        r = build(data, "2A1C", device_utc_offset=timedelta(hours=-5))
        assert (r.time_source, r.measured_at) == (TimeSource.DEVICE_UTC, datetime(2026, 3, 1, 13, 0, tzinfo=UTC))
        assert values(r) == {"temperature": ("36.40", "Cel", None, None)}

    def test_fahrenheit_is_converted_and_kept(self) -> None:
        r = build(bytes([0x01]) + struct.pack("<I", 0xFF000000 | 986), "2A1C")
        assert values(r) == {"temperature": ("37.00", "Cel", "98.6", "[degF]")}
        assert r.time_source is TimeSource.RECEIVED and r.measured_at == RECEIVED and r.device_time is None
        assert natural_key(r)[2] == "2026-11-25T06:00:00.000000+00:00"

    def test_glucose_mol_per_litre_with_sequence(self) -> None:
        data = bytes([0x06]) + struct.pack("<H", 41) + date_time_bytes(datetime(2026, 2, 1, 7, 30))
        r = build(data + sf(55, -4) + bytes([0x11]), "2A18")  # 5.5 mmol/L capillary whole blood, finger
        assert values(r) == {"glucose": ("99.1", "mg/dL", "5.5", "mmol/L")}
        assert r.sequence == 41 and natural_key(r) == ("AA:BB:CC:DD:EE:FF", "2A18", "2026-02-01T07:30:00", 41)

    def test_glucose_kg_per_litre_is_already_mg_per_dl(self) -> None:
        data = bytes([0x02]) + struct.pack("<H", 7) + date_time_bytes(datetime(2026, 2, 1, 7, 30))
        r = build(data + sf(98, -5) + bytes([0x11]), "2A18")
        assert values(r) == {"glucose": ("98", "mg/dL", None, None)}

    def test_weight_in_pounds_with_bmi_and_height(self) -> None:
        data = bytes([0x09]) + struct.pack("<H", 15400) + struct.pack("<H", 221) + struct.pack("<H", 700)
        r = build(data, "2A9D")
        assert values(r) == {
            "weight": ("69.853", "kg", "154.00", "[lb_av]"),
            "bmi": ("22.1", "kg/m2", None, None),
            "height": ("1.778", "m", "70.0", "[in_i]"),
        }

    def test_nan_values_are_left_out_and_all_nan_is_not_stored(self) -> None:
        nan = bytes.fromhex("ff07")
        r = build(bytes([0x00]) + sf(120, 0) + sf(80, 0) + nan, "2A35")
        assert set(values(r)) == {"bp_systolic", "bp_diastolic"}
        with pytest.raises(ReadingNotStored, match="no valid value"):
            build(bytes([0x00]) + nan + nan + nan, "2A35")

    @pytest.mark.parametrize(
        ("characteristic", "data", "reason"),
        [
            ("2A36", bytes([0x00]) + sf(80, 0) + bytes.fromhex("ff07ff07"), "cuff inflation"),
            ("2A18", bytes([0x02]) + bytes(2) + date_time_bytes(datetime(2026, 2, 1)) + sf(98, -5) + bytes([0x4A]),
             "control-solution"),
            ("2A5E", bytes([0x02]) + sf(97, 0) + sf(70, 0) + struct.pack("<H", 1 << 10), "demonstration"),
            ("2A9D", bytes([0x00]) + bytes.fromhex("ffff"), "unsuccessful"),
            ("2A2B", date_time_bytes(datetime(2026, 2, 1)) + bytes(3), "device's clock"),
        ],
    )  # fmt: skip
    def test_what_is_not_a_patient_measurement_says_why(self, characteristic: str, data: bytes, reason: str) -> None:
        with pytest.raises(ReadingNotStored, match=reason):
            build(data, characteristic)

    def test_naive_received_at_is_refused(self) -> None:
        with pytest.raises(ValueError, match="time-zone aware"):
            build(bytes([0x00, 72]), "2A37", received_at=datetime(2026, 1, 1))

    @settings(max_examples=300)
    @given(
        st.sampled_from(["2A35", "2A1C", "2A18", "2A5E", "2A5F", "2A9D", "2A9C", "2A37", "2A36", "2A1E", "2A34"]),
        st.integers(0, 0xFF),
        st.integers(0, 0x1F),
        st.binary(min_size=0, max_size=40),
        DATETIMES,
        st.sampled_from([ZoneInfo("Asia/Kolkata"), ZoneInfo("America/St_Johns"), ZoneInfo("Pacific/Kiritimati"), UTC]),
        st.none() | st.integers(-14 * 60, 14 * 60).map(lambda m: timedelta(minutes=m)),
    )
    def test_builder_never_crashes_on_decoder_output(
        self,
        characteristic: str,
        flags: int,
        high_flags: int,
        body: bytes,
        when: datetime,
        zone: ZoneInfo,
        offset: timedelta | None,
    ) -> None:
        # a real date early in the body, so time-stamped layouts decode as often as not
        blob = bytes([flags]) + (bytes([high_flags]) if characteristic == "2A9C" else b"")
        split = 2 if characteristic == "2A18" else 6
        blob += body[:split] + date_time_bytes(when) + body[split:]
        reasons: list[str] = []
        for end in range(1, len(blob) + 1):
            try:
                decoded = decode(characteristic, blob[:end])
            except GattDecodeError:
                continue
            try:
                readings = readings_from_decoded(
                    decoded,
                    patient_id=PATIENT,
                    device_id="SN-1",
                    received_at=RECEIVED,
                    pc_zone=zone,
                    device_utc_offset=offset,
                )
            except ReadingNotStored as exc:
                reasons.append(str(exc))
                continue
            for r in readings:
                assert r.values and r.raw_hex == blob[:end].hex()
                assert r.measured_at.tzinfo is not None
                assert reading_from_change_fields(r.id, reading_change_fields(r)) == r
                try:
                    check_plausible(r)
                except ImplausibleReading as exc:
                    reasons.append(str(exc) if "outside the plausible range" in str(exc) else "")
        assert all(reasons)


def reading(**override: object) -> dict[str, object]:
    return {
        "patient_id": str(PATIENT),
        "device_id": "SN-1",
        "characteristic": "2a5e",
        "measured_at": "2026-03-01T10:00:00+05:30",
        "device_time": "2026-03-01T10:00:00",
        "time_source": "device_local_assumed_pc_zone",
        "values": [{"metric": "spo2", "value": "97", "unit": "%", "ucum": "%"}],
        "raw_hex": "00ff",
        "received_at": "2026-03-01T04:31:00Z",
        **override,
    }


class TestRecord:
    def test_valid_record_normalises_characteristic_and_time(self) -> None:
        rid = uuid7()
        r = reading_from_change_fields(rid, reading())  # type: ignore[arg-type]
        assert r.characteristic == "2A5E" and r.measured_at == datetime(2026, 3, 1, 4, 30, tzinfo=UTC)
        fields = reading_change_fields(r)
        assert "id" not in fields and fields["values"] == [
            {"metric": "spo2", "value": "97", "unit": "%", "ucum": "%", "original_value": None, "original_unit": None}
        ]

    @pytest.mark.parametrize(
        ("override", "message"),
        [
            ({"values": [{"metric": "aura", "value": "1", "unit": "%", "ucum": "%"}]}, "not in the metric vocabulary"),
            ({"values": [{"metric": "spo2", "value": "97", "unit": "mmHg", "ucum": "mm[Hg]"}]}, "must be stored in %"),
            ({"values": [{"metric": "spo2", "value": "NaN", "unit": "%", "ucum": "%"}]}, "finite number"),
            ({"values": []}, "at least 1 item"),
            (
                {"values": [{"metric": "spo2", "value": "97", "unit": "%", "ucum": "%"}] * 2},
                "each metric at most once",
            ),
            ({"measured_at": "2026-03-01T10:00:00"}, "timezone"),
            ({"characteristic": "BP"}, "16-bit UUID"),
            ({"device_time": None}, "needs device_time"),
            ({"time_source": "received"}, "measured_at is received_at"),
            ({"raw_hex": "0g"}, "raw_hex"),
            ({"device_id": "  "}, "printable"),
            ({"colour": "red"}, "Extra inputs"),
        ],
    )
    def test_invalid_records_name_the_problem(self, override: dict[str, object], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            reading_from_change_fields(uuid7(), reading(**override))  # type: ignore[arg-type]

    def test_ids_must_be_uuid7(self) -> None:
        with pytest.raises(ValidationError, match="version 7"):
            reading_from_change_fields(uuid.uuid4(), reading())  # type: ignore[arg-type]

    def test_implausible_values_are_named_with_bounds_and_source(self) -> None:
        r = reading_from_change_fields(
            uuid7(),
            reading(values=[{"metric": "spo2", "value": "127", "unit": "%", "ucum": "%"}]),  # type: ignore[arg-type]
        )
        with pytest.raises(ImplausibleReading) as caught:
            check_plausible(r)
        assert caught.value.problems == [
            "spo2 127 % is outside the plausible range 50-100 % (metrics.yaml, source encounter_vitals_bounds)"
        ]


# --- the fast path the server uses agrees with the model ------------------------------------------------------

_TEXTS = st.text(max_size=6) | st.sampled_from(["", " ", "x" * 101, "\n", "aa:bb:cc:dd:ee:ff", " SN-1 ", "Omron"])
_ANY = st.none() | st.booleans() | st.integers(-5, 2**32) | st.floats(allow_nan=True) | _TEXTS
_TIMES = st.sampled_from(
    [
        "2026-03-01T04:31:00Z",
        "2026-03-01T10:00:00+05:30",
        "2026-03-01T04:31:00.123456Z",
        "2026-03-01T04:31:00",
        "2026-03-01 04:31:00Z",
        "2026-02-30T04:31:00Z",
        "2026-03-01T04:31:60Z",
        "2026-03-01T04:31:00+24:00",
        "2026-03-01T04:31:00+05:60",
        "2026-03-01T04:31:00-00:00",
        "0000-03-01T04:31:00Z",
        "2026-03-01",
        "2026-03-01T04:31:00.1234567Z",
    ]
) | st.datetimes(timezones=st.sampled_from([UTC, IST])).map(lambda d: d.isoformat())
_DECIMALS = st.sampled_from(
    ["97", "97.0", "-0", "-1", "1e2", "NaN", "Infinity", " 97", "97.", ".5", "1" * 16, "+3"]
) | (st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-1000, max_value=1000).map(str))
_UNITS = st.sampled_from(["%", "mmHg", "mm[Hg]", "beats/min", "/min", "°C", "Cel", "[degF]", "kPa", "kg", ""])


def _value_dict() -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {
            "metric": st.sampled_from(["spo2", "pulse_rate", "bp_systolic", "temperature", "aura", ""]) | _ANY,
            "value": _DECIMALS | _ANY,
            "unit": _UNITS,
            "ucum": _UNITS,
        },
        optional={"original_value": st.none() | _DECIMALS, "original_unit": st.none() | _UNITS, "colour": _ANY},
    )


_FIELD_STRATEGIES: dict[str, st.SearchStrategy[object]] = {
    "patient_id": st.sampled_from([str(PATIENT), str(PATIENT).upper(), PATIENT.hex, "nope"]) | _ANY,
    "encounter_id": st.sampled_from([str(uuid7()), "{" + str(PATIENT) + "}"]) | _ANY,
    "device_id": _TEXTS | _ANY,
    "device_name": _TEXTS | _ANY,
    "characteristic": st.sampled_from(["2a35", "0x2A35", " 2A5E ", "2A3", "ZZZZ", "2A355"]) | _ANY,
    "measured_at": _TIMES | _ANY,
    "received_at": _TIMES | _ANY,
    "device_time": _TEXTS | _ANY,
    "time_source": st.sampled_from([str(s) for s in TimeSource]) | _ANY,
    "sequence": st.integers(-2, 2**31) | _ANY,
    "raw_hex": st.sampled_from(["00ff", "00FF", "0", "00ff\n", "", "ab" * 1025]) | _ANY,
    "values": st.lists(_value_dict(), max_size=3) | _ANY,
    "colour": _ANY,
}


@st.composite
def _fields(draw: st.DrawFn) -> dict[str, object]:
    fields = reading()
    for name in draw(st.sets(st.sampled_from(sorted(_FIELD_STRATEGIES)), max_size=3)):
        fields[name] = draw(_FIELD_STRATEGIES[name])
    if draw(st.booleans()):
        fields.pop(draw(st.sampled_from(sorted(fields))))
    return fields


def synced_samples() -> list[Reading]:
    """Readings as desktops sync them: from change fields, a BP cuff with its own clock, a °F thermometer."""
    return [
        reading_from_change_fields(uuid7(), reading()),  # type: ignore[arg-type]
        build(
            bytes([0x07])
            + sf(160, -1)
            + sf(107, -1)
            + sf(125, -1)
            + date_time_bytes(datetime(2026, 1, 31, 23, 59))
            + sf(72, 0),
            "2A35",
            device_name="Omron X4",
        ),
        build(bytes([0x01]) + struct.pack("<I", 0xFF000000 | 986), "2A1C"),  # °F: original value kept
    ]


class TestFastPath:
    def test_the_synced_shape_takes_the_fast_path(self) -> None:
        for r in synced_samples():
            assert reading_facts_fast(r.id, reading_change_fields(r)) == reading_facts(r)
            assert facts_plausible(reading_facts(r))

    @settings(max_examples=500, deadline=None)
    @given(fields=_fields(), version7=st.booleans())
    def test_fast_path_accepts_only_what_the_model_accepts_with_the_same_values(
        self, fields: dict[str, object], version7: bool
    ) -> None:
        rid = uuid7() if version7 else uuid.uuid4()
        fast = reading_facts_fast(rid, fields)  # type: ignore[arg-type]
        try:
            model: Reading | None = reading_from_change_fields(rid, fields)  # type: ignore[arg-type]
        except ValidationError:
            model = None
        if fast is not None:
            assert model is not None, "the fast path accepted what the model refuses"
            assert fast == reading_facts(model)
            assert [str(v.value) for v in fast.values] == [str(v.value) for v in model.values]  # same precision
            plausible = True
            try:
                check_plausible(model)
            except ImplausibleReading:
                plausible = False
            assert facts_plausible(fast) is plausible
