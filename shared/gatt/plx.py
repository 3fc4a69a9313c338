"""Pulse oximeter: PLX Spot-check Measurement 0x2A5E and PLX Continuous Measurement 0x2A5F.

Spot-check: flags · SpO2 SFLOAT % · PR SFLOAT bpm · [Date Time] · [measurement status uint16] · [device & sensor
status uint24] · [pulse amplitude index SFLOAT %]. Continuous: flags · SpO2/PR normal · [SpO2/PR fast] · [SpO2/PR
slow] · [status uint16] · [device & sensor status uint24] · [PAI]; it has no timestamp (stamp on receipt).
Demonstration, testing, unavailable or invalid data is marked `not_patient_data: true`.
"""

from __future__ import annotations

from shared.gatt.reader import ByteReader, bit_names, flag_names
from shared.gatt.readings import Detail, Quantity, Reading, quantity

SPOT_UUID, SPOT_NAME = "2A5E", "plx_spot_check_measurement"
CONTINUOUS_UUID, CONTINUOUS_NAME = "2A5F", "plx_continuous_measurement"

_SPOT_FLAGS = {
    0: "time_stamp_present",
    1: "measurement_status_present",
    2: "device_and_sensor_status_present",
    3: "pulse_amplitude_index_present",
    4: "device_clock_not_set",
}
_CONTINUOUS_FLAGS = {
    0: "spo2pr_fast_present",
    1: "spo2pr_slow_present",
    2: "measurement_status_present",
    3: "device_and_sensor_status_present",
    4: "pulse_amplitude_index_present",
}
MEASUREMENT_STATUS = {
    5: "measurement_ongoing",
    6: "early_estimated_data",
    7: "validated_data",
    8: "fully_qualified_data",
    9: "data_from_measurement_storage",
    10: "data_for_demonstration",
    11: "data_for_testing",
    12: "calibration_ongoing",
    13: "measurement_unavailable",
    14: "questionable_measurement_detected",
    15: "invalid_measurement_detected",
}
NOT_PATIENT_DATA = (1 << 10) | (1 << 11) | (1 << 13) | (1 << 15)
DEVICE_SENSOR_STATUS = {
    0: "extended_display_update_ongoing",
    1: "equipment_malfunction_detected",
    2: "signal_processing_irregularity_detected",
    3: "inadequate_signal_detected",
    4: "poor_signal_detected",
    5: "low_perfusion_detected",
    6: "erratic_signal_detected",
    7: "nonpulsatile_signal_detected",
    8: "questionable_pulse_detected",
    9: "signal_analysis_ongoing",
    10: "sensor_interference_detected",
    11: "sensor_unconnected_to_user",
    12: "unknown_sensor_connected",
    13: "sensor_displaced",
    14: "sensor_malfunctioning",
    15: "sensor_disconnected",
}


def _pair(r: ByteReader, values: dict[str, Quantity], suffix: str) -> None:
    values[f"spo2{suffix}"] = quantity(r.sfloat(f"SpO2{suffix.replace('_', ' ')}"), "%")
    values[f"pulse_rate{suffix}"] = quantity(r.sfloat(f"pulse rate{suffix.replace('_', ' ')}"), "bpm")


def _statuses(r: ByteReader, details: dict[str, Detail], measurement: bool, device: bool) -> None:
    if measurement:
        status = r.uint(2, "measurement status")
        details["measurement_status"] = bit_names(status, MEASUREMENT_STATUS)
        details["not_patient_data"] = bool(status & NOT_PATIENT_DATA)
        if status & 0x001F:
            details["measurement_status_reserved_bits"] = f"{status & 0x001F:#06x}"
    if device:
        status = r.uint(3, "device and sensor status")
        details["device_and_sensor_status"] = bit_names(status, DEVICE_SENSOR_STATUS)
        if status & 0xFF0000:
            details["device_and_sensor_status_reserved_bits"] = f"{status & 0xFF0000:#08x}"


def decode_spot_check(data: bytes) -> Reading:
    """0x2A5E PLX Spot-check Measurement."""
    r = ByteReader(SPOT_UUID, data)
    flags = r.flags(1, 0x1F)
    values: dict[str, Quantity] = {}
    _pair(r, values, "")
    timestamp = r.date_time() if flags & 0x01 else None
    details: dict[str, Detail] = {"device_clock_not_set": bool(flags & 0x10)}
    _statuses(r, details, bool(flags & 0x02), bool(flags & 0x04))
    if flags & 0x08:
        values["pulse_amplitude_index"] = quantity(r.sfloat("pulse amplitude index"), "%")
    r.end()
    return Reading(
        characteristic=SPOT_UUID,
        name=SPOT_NAME,
        flags=flags,
        flag_names=flag_names(flags, _SPOT_FLAGS),
        values=values,
        details=details,
        timestamp=timestamp,
        raw_hex=data.hex(),
    )


def decode_continuous(data: bytes) -> Reading:
    """0x2A5F PLX Continuous Measurement (no timestamp: the receiver stamps it)."""
    r = ByteReader(CONTINUOUS_UUID, data)
    flags = r.flags(1, 0x1F)
    values: dict[str, Quantity] = {}
    _pair(r, values, "")
    if flags & 0x01:
        _pair(r, values, "_fast")
    if flags & 0x02:
        _pair(r, values, "_slow")
    details: dict[str, Detail] = {}
    _statuses(r, details, bool(flags & 0x04), bool(flags & 0x08))
    if flags & 0x10:
        values["pulse_amplitude_index"] = quantity(r.sfloat("pulse amplitude index"), "%")
    r.end()
    return Reading(
        characteristic=CONTINUOUS_UUID,
        name=CONTINUOUS_NAME,
        flags=flags,
        flag_names=flag_names(flags, _CONTINUOUS_FLAGS),
        values=values,
        details=details,
        raw_hex=data.hex(),
    )
