"""bumble virtual health devices on an in-process `LocalLink`: the test rig, and a demo without hardware.

Each `VirtualPeripheral` is a bumble `Device` with its own virtual controller on the shared link. It
advertises its health service, and when the central subscribes to its measurement characteristic it runs
its *script*: the values a real device sends after connecting (then, like a cuff or a meter, it may switch
its radio off). The glucometer keeps stored records and answers the Record Access Control Point (report
number of records, report records with sequence ≥ N, response codes) as the Glucose Profile describes.

Payload bytes are built by hand from the GSS layouts (reference §1.4–§1.9), independently of our decoders.

Demo: ``INTEGMED_BLE_BACKEND=simulated`` makes the app's BLE backend a bumble central on a virtual link with
one device of each kind (`simulated_central`), so the device screen can be shown on a PC without Bluetooth.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bumble import gatt, hci
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from desktop.devices.bumble_backend import BumbleCentral

NOTIFY = gatt.Characteristic.Properties.NOTIFY
INDICATE = gatt.Characteristic.Properties.INDICATE
READ = gatt.Characteristic.Properties.READ
WRITE = gatt.Characteristic.Properties.WRITE


def date_time(year: int, month: int, day: int, hours: int, minutes: int, seconds: int) -> bytes:
    """The 7-byte Date Time."""
    return struct.pack("<HBBBBB", year, month, day, hours, minutes, seconds)


def sfloat(mantissa: int, exponent: int = 0) -> bytes:
    """IEEE-11073 SFLOAT: 4-bit exponent, 12-bit mantissa, both two's complement."""
    return struct.pack("<H", ((exponent & 0xF) << 12) | (mantissa & 0x0FFF))


def float32(mantissa: int, exponent: int) -> bytes:
    """IEEE-11073 FLOAT: int8 exponent, int24 mantissa."""
    return struct.pack("<I", ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF))


# -- payloads ------------------------------------------------------------------------------------------------


def heart_rate(bpm: int) -> bytes:
    return bytes([0x00, bpm])  # flags: uint8 format, no contact support, no energy, no RR


def blood_pressure(sys_: int, dia: int, map_: int, pulse: int, when: bytes) -> bytes:
    return bytes([0x06]) + sfloat(sys_) + sfloat(dia) + sfloat(map_) + when + sfloat(pulse)  # mmHg, time, pulse


def cuff_pressure(mmhg: int) -> bytes:
    return bytes([0x00]) + sfloat(mmhg) + b"\xff\x07\xff\x07"  # diastolic and MAP are NaN


def temperature(mantissa: int, exponent: int, when: bytes) -> bytes:
    return bytes([0x02]) + float32(mantissa, exponent) + when  # °C with time stamp


def plx_spot(spo2: int, pulse: int, when: bytes) -> bytes:
    return bytes([0x01]) + sfloat(spo2) + sfloat(pulse) + when


def plx_continuous(spo2: int, pulse: int) -> bytes:
    return bytes([0x00]) + sfloat(spo2) + sfloat(pulse)


def weight(kg_times_200: int, when: bytes) -> bytes:
    return bytes([0x02]) + struct.pack("<H", kg_times_200) + when  # SI, time stamp; resolution 0.005 kg


def glucose(sequence: int, when: bytes, mg_dl: int, *, control: bool = False, context: bool = False) -> bytes:
    """Glucose Measurement in kg/L (mg/dL × 10^-5), capillary whole blood from a finger (or control solution)."""
    flags = 0x02 | (0x10 if context else 0)
    type_location = 0x4A if control else 0x11  # high nibble location, low nibble type
    return bytes([flags]) + struct.pack("<H", sequence) + when + sfloat(mg_dl, -5) + bytes([type_location])


def glucose_context(sequence: int, meal: int) -> bytes:
    return bytes([0x02]) + struct.pack("<H", sequence) + bytes([meal])


@dataclass
class GlucoseRecord:
    sequence: int
    when: bytes
    mg_dl: int
    meal: int | None = None
    control: bool = False


# -- the peripheral ------------------------------------------------------------------------------------------


Script = Callable[["VirtualPeripheral", Connection], Awaitable[None]]


@dataclass
class VirtualPeripheral:
    """A virtual device: services, an advertisement, and a script run when ``trigger`` is subscribed."""

    link: Any
    name: str
    address: str
    service_uuid: str
    characteristics: dict[str, gatt.Characteristic[Any]]
    trigger: str | None = None
    script: Script | None = None
    extra_services: list[gatt.Service] = field(default_factory=list)
    device: Device | None = None
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    script_runs: int = 0
    paired_with: list[str] = field(default_factory=list)  # central addresses that completed pairing
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> VirtualPeripheral:
        controller = Controller(f"ctrl-{self.name}", link=self.link)
        device = Device(
            name=self.name, address=hci.Address(self.address), host=Host(controller, AsyncPipeSink(controller))
        )
        device.add_service(gatt.Service(self.service_uuid, list(self.characteristics.values())))
        for service in self.extra_services:
            device.add_service(service)
        device.advertising_data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
                    (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(self.service_uuid))),
                ]
            )
        )
        device.on("characteristic_subscription", self._on_subscription)
        device.on("connection", self._on_connection)
        await device.power_on()
        await device.start_advertising(auto_restart=True, advertising_interval_min=50, advertising_interval_max=50)
        self.device = device
        return self

    def _on_connection(self, connection: Connection) -> None:
        connection.on("pairing", lambda _keys: self.paired_with.append(str(connection.peer_address).split("/")[0]))

    def _on_subscription(self, connection: Connection, characteristic: Any, notify: bool, indicate: bool) -> None:
        if self.trigger is None or self.script is None or not (notify or indicate):
            return
        if characteristic is not self.characteristics[self.trigger]:
            return
        self.script_runs += 1
        task = asyncio.get_running_loop().create_task(self._run(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, connection: Connection) -> None:
        await asyncio.sleep(0.05)  # let the central finish subscribing to the rest
        assert self.script is not None
        await self.script(self, connection)

    async def send(self, short: str, value: bytes, *, indicate: bool | None = None) -> None:
        """Notify or indicate (by the characteristic's properties) ``value`` to its subscribers."""
        assert self.device is not None
        characteristic = self.characteristics[short]
        use_indication = bool(characteristic.properties & INDICATE) if indicate is None else indicate
        self.sent.append((short, value))
        if use_indication:
            await self.device.indicate_subscribers(characteristic, value, force=True)
        else:
            await self.device.notify_subscribers(characteristic, value, force=True)

    async def drop(self, connection: Connection) -> None:
        """Switch the radio off, as a cuff does right after sending."""
        await connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)

    async def stop(self) -> None:
        if self.device is not None:
            await self.device.power_off()


def _char(short: str, props: gatt.Characteristic.Properties, value: Any = b"") -> gatt.Characteristic[Any]:
    return gatt.Characteristic(short, props, gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE, value)


def battery_service(percent: int) -> gatt.Service:
    return gatt.Service("180F", [_char("2A19", READ | NOTIFY, bytes([percent]))])


WHEN = date_time(2026, 11, 25, 10, 30, 0)


def hr_strap(
    link: Any, *, beats: tuple[int, ...] = (72, 74, 75), address: str = "C0:00:00:00:00:01"
) -> VirtualPeripheral:
    async def script(p: VirtualPeripheral, connection: Connection) -> None:
        for bpm in beats:
            await p.send("2A37", heart_rate(bpm))
        await asyncio.sleep(0.05)
        await p.drop(connection)

    return VirtualPeripheral(
        link, "HR Strap", address, "180D", {"2A37": _char("2A37", NOTIFY)}, "2A37", script, [battery_service(81)]
    )


def bp_cuff(
    link: Any, *, repeat: int = 1, drop_after: bool = True, address: str = "C0:00:00:00:00:02"
) -> VirtualPeripheral:
    """Inflates (2A36 notifications), then indicates one measurement ``repeat`` times, then switches off."""

    async def script(p: VirtualPeripheral, connection: Connection) -> None:
        for mmhg in (60, 120, 160):
            await p.send("2A36", cuff_pressure(mmhg))
        for _ in range(repeat):
            await p.send("2A35", blood_pressure(121, 80, 94, 72, WHEN))
        if drop_after:
            await p.drop(connection)

    chars = {"2A35": _char("2A35", INDICATE), "2A36": _char("2A36", NOTIFY)}
    return VirtualPeripheral(link, "BP Cuff", address, "1810", chars, "2A35", script, [battery_service(55)])


def thermometer(link: Any, *, address: str = "C0:00:00:00:00:03") -> VirtualPeripheral:
    async def script(p: VirtualPeripheral, connection: Connection) -> None:
        await p.send("2A1C", temperature(3685, -2, WHEN))
        await p.drop(connection)

    return VirtualPeripheral(link, "Thermo", address, "1809", {"2A1C": _char("2A1C", INDICATE)}, "2A1C", script)


def pulse_oximeter(link: Any, *, address: str = "C0:00:00:00:00:04") -> VirtualPeripheral:
    async def script(p: VirtualPeripheral, connection: Connection) -> None:
        await p.send("2A5F", plx_continuous(97, 68))
        await p.send("2A5E", plx_spot(98, 66, WHEN))
        await p.drop(connection)

    chars = {"2A5E": _char("2A5E", INDICATE), "2A5F": _char("2A5F", NOTIFY)}
    return VirtualPeripheral(link, "Oximeter", address, "1822", chars, "2A5E", script)


def weight_scale(link: Any, *, address: str = "C0:00:00:00:00:05") -> VirtualPeripheral:
    async def script(p: VirtualPeripheral, connection: Connection) -> None:
        await p.send("2A9D", weight(14300, WHEN))  # 71.5 kg
        await p.drop(connection)

    return VirtualPeripheral(link, "Scale", address, "181D", {"2A9D": _char("2A9D", INDICATE)}, "2A9D", script)


@dataclass
class Glucometer:
    """A virtual glucose meter with stored records and a RACP that reports count / records ≥ sequence."""

    peripheral: VirtualPeripheral
    records: list[GlucoseRecord]
    requests: list[bytes] = field(default_factory=list)
    drop_after_records: int | None = None  # switch off mid-transfer after this many records (once)
    drop_when_done: bool = True  # switch off after a completed transfer, as meters do

    async def answer(self, request: bytes, connection: Connection) -> None:
        p = self.peripheral
        self.requests.append(request)
        op = request[0] if request else 0
        selected = self._select(request)
        if selected is None:
            await p.send("2A52", bytes([0x06, 0x00, op, 0x03 if op in (0x01, 0x04) else 0x02]))
            return
        if op == 0x04:
            await p.send("2A52", bytes([0x05, 0x00]) + struct.pack("<H", len(selected)))
            return
        if op != 0x01:
            await p.send("2A52", bytes([0x06, 0x00, op, 0x02]))  # op code not supported
            return
        if not selected:
            await p.send("2A52", bytes([0x06, 0x00, 0x01, 0x06]))  # no records found
            return
        for index, record in enumerate(selected):
            if self.drop_after_records is not None and index == self.drop_after_records:
                self.drop_after_records = None
                await p.drop(connection)
                return
            has_context = record.meal is not None
            await p.send(
                "2A18", glucose(record.sequence, record.when, record.mg_dl, control=record.control, context=has_context)
            )
            if record.meal is not None:
                await p.send("2A34", glucose_context(record.sequence, record.meal))
        await p.send("2A52", bytes([0x06, 0x00, 0x01, 0x01]))  # success
        if self.drop_when_done:
            await asyncio.sleep(0.1)
            assert p.device is not None
            if connection.handle in p.device.connections:  # the central may have disconnected first
                await p.drop(connection)

    def _select(self, request: bytes) -> list[GlucoseRecord] | None:
        if len(request) == 2 and request[1] == 0x01:
            return list(self.records)
        if len(request) == 5 and request[1] == 0x03 and request[2] == 0x01:
            first = struct.unpack_from("<H", request, 3)[0]
            return [r for r in self.records if r.sequence >= first]
        return None


def glucometer(
    link: Any, records: list[GlucoseRecord], *, address: str = "C0:00:00:00:00:06"
) -> tuple[VirtualPeripheral, Glucometer]:
    meter: Glucometer

    def on_write(connection: Connection, value: bytes) -> None:
        task = asyncio.get_running_loop().create_task(meter.answer(bytes(value), connection))
        meter.peripheral._tasks.add(task)
        task.add_done_callback(meter.peripheral._tasks.discard)

    racp: gatt.Characteristic[bytes] = gatt.Characteristic(
        "2A52",
        WRITE | INDICATE,
        gatt.Characteristic.WRITEABLE,
        gatt.CharacteristicValue(write=on_write),
    )
    chars = {"2A18": _char("2A18", NOTIFY), "2A34": _char("2A34", NOTIFY), "2A52": racp}
    peripheral = VirtualPeripheral(link, "Glucometer", address, "1808", chars, extra_services=[battery_service(90)])
    meter = Glucometer(peripheral, records)
    return peripheral, meter


def demo_devices(link: Any) -> list[VirtualPeripheral]:
    """One virtual device of each kind (not started)."""
    meter, _records = glucometer(
        link,
        [
            GlucoseRecord(n, date_time(2026, 11, 20 + n, 8, 15, 0), 92 + 7 * n, meal=3 if n % 2 else None)
            for n in range(1, 6)
        ],
    )
    return [
        hr_strap(link),
        bp_cuff(link),
        thermometer(link),
        pulse_oximeter(link),
        weight_scale(link),
        meter,
    ]


def simulated_central() -> BumbleCentral:
    """A bumble central on a virtual link where the demo devices advertise (started on first use)."""
    link = LocalLink()  # type: ignore[no-untyped-call]
    central = BumbleCentral.on_link(link)
    make_central = central._make_device

    async def make() -> Device:
        for device in demo_devices(link):
            await device.start()
        return await make_central()

    central._make_device = make
    central.describe = "simulated devices"
    return central
