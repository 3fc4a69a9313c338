"""The BLE reader through bleak's real `BleakScanner`/`BleakClient` API, on bumble virtual devices."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import ClassVar

import pytest

from desktop.devices import sim as vp
from desktop.devices.backend import BleBackend
from desktop.devices.session import ConnectionState, HealthDeviceReader
from desktop.store.readings import StoredReading
from tests.desktop.devices.conftest import Rig, run, values_of


def _seq(row: StoredReading) -> int:
    assert row.sequence is not None
    return row.sequence


def _patient(rig: Rig) -> uuid.UUID:
    patient_id = uuid.uuid4()
    rig.service.set_current_patient(patient_id)
    return patient_id


class TestScan:
    def test_scan_lists_health_devices_only(self, rig: Rig) -> None:
        async def body() -> list[str]:
            await vp.bp_cuff(rig.link).start()
            await vp.glucometer(rig.link, [])[0].start()
            other = vp.VirtualPeripheral(rig.link, "Speaker", "C0:00:00:00:00:99", "110B", {})
            await other.start()
            found = await rig.reader().scan(timeout_s=0.5)
            return sorted(f"{d.name}:{','.join(d.services)}" for d in found)

        assert run(rig, body) == ["BP Cuff:1810", "Glucometer:1808"]

    def test_simulated_backend_offers_one_device_of_each_kind(self, rig: Rig) -> None:
        backend = BleBackend.from_environment({"INTEGMED_BLE_BACKEND": "simulated"})
        reader = HealthDeviceReader(backend, rig.service, rig.events)

        async def body() -> list[str]:
            try:
                found = await reader.scan(timeout_s=0.5)
            finally:
                assert backend.central is not None
                await backend.central.close()
            return sorted(",".join(d.services) for d in found)

        assert asyncio.run(body()) == ["1808", "1809", "180D", "1810", "181D", "1822"]

    def test_unknown_backend_setting_is_refused_with_the_choices(self) -> None:
        with pytest.raises(ValueError, match="expected 'os', 'bumble' or 'simulated'"):
            BleBackend.from_environment({"INTEGMED_BLE_BACKEND": "bluez"})


class TestProfiles:
    def test_blood_pressure_cuff_reading_is_stored_for_the_patient(self, rig: Rig) -> None:
        patient_id = _patient(rig)

        async def body() -> None:
            cuff = await vp.bp_cuff(rig.link).start()
            report = await rig.reader().read(cuff.address, name="BP Cuff")
            assert report.ended_by_device and report.stored == 1 and report.battery_percent == 55

        run(rig, body)
        rows = rig.service.list_for_patient(patient_id)
        assert len(rows) == 1
        row = rows[0]
        assert (row.characteristic, row.device_time, row.status) == ("2A35", "2026-11-25T10:30:00", "patient")
        assert values_of(row) == {
            "bp_systolic": "121",
            "bp_diastolic": "80",
            "bp_mean_arterial": "94",
            "pulse_rate": "72",
        }
        assert [live[1] for live in rig.events.live] == ["2A36", "2A36", "2A36"]  # cuff pressure shown, not stored
        assert rig.events.battery == [(cuff_address := "C0:00:00:00:00:02", 55)]
        assert cuff_address == row.device_address

    def test_each_profile_lands_in_the_store_with_its_values(self, rig: Rig) -> None:
        patient_id = _patient(rig)

        async def body() -> None:
            reader = rig.reader()
            for make in (vp.hr_strap, vp.thermometer, vp.pulse_oximeter, vp.weight_scale):
                device = await make(rig.link).start()
                await reader.read(device.address)

        run(rig, body)
        rows = rig.service.list_for_patient(patient_id)
        by_char: dict[str, list[dict[str, str | None]]] = {}
        for row in rows:
            by_char.setdefault(row.characteristic, []).append(values_of(row))
        assert sorted(str(v["heart_rate"]) for v in by_char["2A37"]) == ["72", "74", "75"]
        assert by_char["2A1C"] == [{"temperature": "36.85"}]
        assert by_char["2A5E"] == [{"spo2": "98", "pulse_rate": "66"}]
        assert by_char["2A5F"] == [{"spo2": "97", "pulse_rate": "68"}]
        assert by_char["2A9D"][0]["weight"] in ("71.500", "71.5")

    def test_device_that_switches_off_right_after_sending_loses_nothing(self, rig: Rig) -> None:
        patient_id = _patient(rig)

        async def body() -> None:
            cuff = await vp.bp_cuff(rig.link, repeat=1, drop_after=True).start()
            report = await rig.reader().read(cuff.address)
            assert report.ended_by_device

        run(rig, body)
        assert len(rig.service.list_for_patient(patient_id)) == 1
        assert rig.events.state_names()[-1] == ConnectionState.DISCONNECTED

    def test_duplicate_indication_stores_one_row(self, rig: Rig) -> None:
        patient_id = _patient(rig)

        async def body() -> None:
            cuff = await vp.bp_cuff(rig.link, repeat=3).start()
            report = await rig.reader().read(cuff.address)
            assert (report.stored, report.duplicates) == (1, 2)

        run(rig, body)
        assert len(rig.service.list_for_patient(patient_id)) == 1

    def test_pairing_bonds_before_subscribing(self, rig: Rig) -> None:
        patient_id = _patient(rig)

        async def body() -> list[str]:
            cuff = await vp.bp_cuff(rig.link).start()
            await rig.reader().read(cuff.address, pair=True)
            return cuff.paired_with

        assert run(rig, body) == ["F0:F1:F2:F3:F4:00"]
        assert len(rig.service.list_for_patient(patient_id)) == 1

    def test_reading_without_an_open_patient_is_kept_unattached(self, rig: Rig) -> None:
        async def body() -> None:
            cuff = await vp.bp_cuff(rig.link).start()
            await rig.reader().read(cuff.address)

        run(rig, body)
        rows = rig.service.list_for_device("C0:00:00:00:00:02")
        assert [(r.status, r.patient_id) for r in rows] == [("unattached", None)]


class TestGlucoseDownload:
    RECORDS: ClassVar[list[vp.GlucoseRecord]] = [
        vp.GlucoseRecord(n, vp.date_time(2026, 11, 20 + n, 8, 0, 0), 90 + n, meal=3 if n == 2 else None)
        for n in range(1, 5)
    ]

    def test_first_download_takes_every_record_with_progress(self, rig: Rig) -> None:
        patient_id = _patient(rig)

        async def body() -> list[bytes]:
            peripheral, meter = vp.glucometer(rig.link, list(self.RECORDS))
            await peripheral.start()
            await rig.reader().read(peripheral.address, listen_s=0)
            return meter.requests

        requests = run(rig, body)
        assert requests == [bytes.fromhex("0401"), bytes.fromhex("0101")]
        rows = [r for r in rig.service.list_for_patient(patient_id) if r.characteristic == "2A18"]
        assert sorted(_seq(r) for r in rows) == [1, 2, 3, 4]
        assert {Decimal(str(values_of(r)["glucose"])) for r in rows} == {
            Decimal(91),
            Decimal(92),
            Decimal(93),
            Decimal(94),
        }
        done = [(d, t) for _, d, t in rig.events.progress_updates]
        assert done == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
        assert rig.service.last_sequence(rows[0].device_address) == 4

    def test_next_download_asks_only_for_records_after_the_last_stored_sequence(self, rig: Rig) -> None:
        patient_id = _patient(rig)
        records = list(self.RECORDS)

        async def body() -> list[bytes]:
            peripheral, meter = vp.glucometer(rig.link, records)
            await peripheral.start()
            reader = rig.reader()
            await reader.read(peripheral.address, listen_s=0)
            records.append(vp.GlucoseRecord(5, vp.date_time(2026, 11, 25, 9, 0, 0), 101))
            records.append(vp.GlucoseRecord(6, vp.date_time(2026, 11, 25, 9, 5, 0), 55, control=True))
            rig.events.progress_updates.clear()
            meter.requests.clear()
            await reader.read(peripheral.address, listen_s=0)
            return meter.requests

        requests = run(rig, body)
        assert requests == [bytes.fromhex("0403010500"), bytes.fromhex("0103010500")]
        assert [(d, t) for _, d, t in rig.events.progress_updates] == [(0, 2), (1, 2), (2, 2)]
        glucose = [r for r in rig.service.list_for_device("C0:00:00:00:00:06") if r.characteristic == "2A18"]
        assert sorted(_seq(r) for r in glucose) == [1, 2, 3, 4, 5, 6]
        control = next(r for r in glucose if r.sequence == 6)
        assert (control.status, control.patient_id) == ("excluded", None)  # control solution is not patient glucose
        assert len([r for r in rig.service.list_for_patient(patient_id) if r.characteristic == "2A18"]) == 5

    def test_meter_that_drops_mid_download_is_reconnected_and_resumed(self, rig: Rig) -> None:
        _patient(rig)

        async def body() -> list[bytes]:
            peripheral, meter = vp.glucometer(rig.link, list(self.RECORDS))
            meter.drop_after_records = 2
            await peripheral.start()
            report = await rig.reader().read(peripheral.address, listen_s=0)
            assert report.attempts == 2
            return meter.requests

        requests = run(rig, body)
        assert requests == [
            bytes.fromhex("0401"),
            bytes.fromhex("0101"),
            bytes.fromhex("0403010300"),
            bytes.fromhex("0103010300"),
        ]
        glucose = [r for r in rig.service.list_for_device("C0:00:00:00:00:06") if r.characteristic == "2A18"]
        assert sorted(_seq(r) for r in glucose) == [1, 2, 3, 4]
        assert ConnectionState.RETRYING in rig.events.state_names()


class TestRetry:
    def test_unreachable_device_stops_after_the_limit_with_a_clear_state(self, rig: Rig) -> None:
        from desktop.devices.errors import DeviceUnreachable
        from desktop.devices.session import RetryPolicy

        async def body() -> str:
            reader = rig.reader(RetryPolicy(max_attempts=3, first_delay_s=1.0, connect_timeout_s=0.3))
            try:
                await reader.read("C0:00:00:00:00:42")
            except DeviceUnreachable as exc:
                return exc.message
            raise AssertionError("no error")

        message = run(rig, body)
        assert message.startswith("No connection after 3 attempts")
        states = rig.events.state_names()
        assert states.count(ConnectionState.CONNECTING) == 3
        assert states.count(ConnectionState.RETRYING) == 2
        assert states[-1] == ConnectionState.FAILED
        assert rig.delays == [1.0, 2.0]  # backoff doubles
