"""A bleak backend over bumble: bleak's `BleakScanner`/`BleakClient` API driving a bumble host stack.

Why: bleak talks to the operating system's Bluetooth stack (BlueZ, WinRT, CoreBluetooth). bumble is a
complete host stack in Python that drives a controller directly — a USB HCI dongle (``usb:0``), a serial
HCI UART (``serial:/dev/ttyUSB0``), an HCI socket, or a purely virtual controller on an in-process
`bumble.link.LocalLink`. With this backend the app's own bleak code runs unchanged:

* on a clinic PC whose OS stack is unusable (no driver, a locked-down Windows image) with a plain USB
  dongle: ``INTEGMED_BLE_BACKEND=bumble INTEGMED_BLE_TRANSPORT=usb:0``;
* in tests and demos against bumble virtual peripherals (`desktop.devices.sim`).

Use::

    central = BumbleCentral.from_transport("usb:0")          # or BumbleCentral.on_link(link) in tests
    scanner = BleakScanner(cb, service_uuids, backend=BumbleScanner, bumble=central)
    client = BleakClient(device, backend=BumbleClient, bumble=central)

The central is one bumble `Device` in the central role, started lazily on the running asyncio loop (the
BLE thread's). Everything here must run on that loop. bumble is 0.0.x and changes its API; it is pinned in
pyproject.toml and this module is the only place that touches bumble's central side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakError
from bleak.uuids import normalize_uuid_str
from bumble import gatt, hci
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy

logger = logging.getLogger(__name__)

CENTRAL_ADDRESS = "F0:F1:F2:F3:F4:00"
"""Static random address the central uses on a link (bumble needs one; a dongle keeps its own public one)."""

_PROPERTY_NAMES = {
    gatt.Characteristic.Properties.BROADCAST: "broadcast",
    gatt.Characteristic.Properties.READ: "read",
    gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    gatt.Characteristic.Properties.WRITE: "write",
    gatt.Characteristic.Properties.NOTIFY: "notify",
    gatt.Characteristic.Properties.INDICATE: "indicate",
    gatt.Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    gatt.Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}

_UUID_LISTS = {
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
}
_SERVICE_DATA = {
    AdvertisingData.SERVICE_DATA_16_BIT_UUID: 2,
    AdvertisingData.SERVICE_DATA_32_BIT_UUID: 4,
    AdvertisingData.SERVICE_DATA_128_BIT_UUID: 16,
}


def bleak_uuid(uuid: UUID) -> str:
    """A bumble UUID as bleak's lower-case 128-bit string."""
    return normalize_uuid_str(uuid.to_hex_str("-"))


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's `AdvertisementData` from a bumble advertisement (advertising data + scan response merged)."""
    name: str | None = None
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    services: list[str] = []
    tx_power: int | None = None
    for ad_type, value in advertisement.data.ad_structures:
        if ad_type in _UUID_LISTS:
            size = _UUID_LISTS[ad_type]
            for start in range(0, len(value) - size + 1, size):
                uuid = bleak_uuid(UUID.from_bytes(value[start : start + size]))
                if uuid not in services:
                    services.append(uuid)
        elif ad_type in _SERVICE_DATA:
            size = _SERVICE_DATA[ad_type]
            service_data[bleak_uuid(UUID.from_bytes(value[:size]))] = bytes(value[size:])
        elif ad_type in (AdvertisingData.COMPLETE_LOCAL_NAME, AdvertisingData.SHORTENED_LOCAL_NAME):
            if name is None or ad_type == AdvertisingData.COMPLETE_LOCAL_NAME:
                name = bytes(value).decode("utf-8", errors="replace")
        elif ad_type == AdvertisingData.MANUFACTURER_SPECIFIC_DATA and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = bytes(value[2:])
        elif ad_type == AdvertisingData.TX_POWER_LEVEL and value:
            tx_power = int.from_bytes(value[:1], "little", signed=True)
    return AdvertisementData(
        local_name=name,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=services,
        tx_power=tx_power,
        rssi=int(advertisement.rssi),
        platform_data=(advertisement,),
    )


class BumbleCentral:
    """One bumble `Device` acting as this PC's Bluetooth central, shared by the scanner and the clients.

    Args:
        make_device: coroutine function building the (not yet powered) bumble device; awaited once, on the
            BLE loop.
        describe: what the central runs on (shown in messages), e.g. ``usb:0``.
    """

    def __init__(self, make_device: Callable[[], Awaitable[Device]], describe: str) -> None:
        self._make_device = make_device
        self.describe = describe
        self._device: Device | None = None
        self._starting: asyncio.Lock | None = None
        self._transport: Any = None

    @classmethod
    def on_link(cls, link: Any, address: str = CENTRAL_ADDRESS) -> BumbleCentral:
        """A virtual central on an in-process `bumble.link.LocalLink` (tests, demos)."""
        from bumble.controller import Controller
        from bumble.host import Host
        from bumble.transport.common import AsyncPipeSink

        async def make() -> Device:
            controller = Controller("integmed-central", link=link)
            host = Host(controller, AsyncPipeSink(controller))
            return Device(name="IntegMed", address=hci.Address(address), host=host)

        return cls(make, "virtual link")

    @classmethod
    def from_transport(cls, spec: str) -> BumbleCentral:
        """A central on a real controller, e.g. ``usb:0`` or ``serial:/dev/ttyUSB0`` (bumble transport names)."""
        central: BumbleCentral

        async def make() -> Device:
            from bumble.transport import open_transport

            try:
                transport = await open_transport(spec)
            except Exception as exc:  # bumble raises plain errors (no such dongle, no permission)
                raise BleakBluetoothNotAvailableError(
                    f"cannot open the Bluetooth transport {spec!r}: {exc}",
                    BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
                ) from exc
            central._transport = transport
            return Device.with_hci("IntegMed", hci.Address(CENTRAL_ADDRESS), transport.source, transport.sink)

        central = cls(make, spec)
        return central

    async def device(self) -> Device:
        """The powered-on bumble device (created and powered on at first use)."""
        if self._device is not None:
            return self._device
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._device is None:
                made = await self._make_device()
                try:
                    await made.power_on()
                except Exception as exc:
                    raise BleakBluetoothNotAvailableError(
                        f"the Bluetooth controller on {self.describe} did not start: {exc}",
                        BleakBluetoothNotAvailableReason.POWERED_OFF,
                    ) from exc
                self._device = made
        return self._device

    async def close(self) -> None:
        """Power off and release the transport."""
        device, self._device = self._device, None
        if device is not None:
            try:
                await device.power_off()
            except Exception:  # already gone (dongle pulled out): nothing left to release
                logger.debug("bumble power_off failed", exc_info=True)
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()


def _central(kwargs: dict[str, Any]) -> BumbleCentral:
    central = kwargs.get("bumble")
    if not isinstance(central, BumbleCentral):
        raise BleakError("the bumble backend needs bumble=BumbleCentral(...) (see desktop/devices/bumble_backend.py)")
    return central


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend: bumble active scanning, advertisements mapped to `AdvertisementData`."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._central = _central(kwargs)
        self._passive = scanning_mode == "passive"
        self._device: Device | None = None

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = str(advertisement.address).split("/")[0]
        device = self.create_or_update_device(address, address, data.local_name, advertisement.address, data)
        self.call_detection_callbacks(device, data)

    async def start(self) -> None:
        self.seen_devices = {}
        self._device = await self._central.device()
        self._device.on("advertisement", self._on_advertisement)
        await self._device.start_scanning(active=not self._passive, filter_duplicates=False)

    async def stop(self) -> None:
        if self._device is None:
            return
        self._device.remove_listener("advertisement", self._on_advertisement)
        if self._device.scanning:
            await self._device.stop_scanning()
        self._device = None


class BumbleClient(BaseBleakClient):
    """bleak client backend: one bumble LE connection, GATT through bumble's client."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        services: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._central = _central(kwargs)
        self._requested_services = services
        self._name = getattr(address_or_ble_device, "name", None) or self.address.replace(":", "-")
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu_size(self) -> int:
        return int(self._connection.att_mtu) if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._peer = None
        self._subscribers.clear()
        if not self._closing and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        device = await self._central.device()
        try:
            connection = await asyncio.wait_for(
                device.connect(hci.Address(self.address), timeout=self._timeout), self._timeout
            )
        except (TimeoutError, hci.HCI_Error, Exception) as exc:
            if isinstance(exc, BleakError):
                raise
            raise BleakError(f"could not connect to {self.address}: {exc}") from exc
        self._closing = False
        self._connection = connection
        connection.on("disconnection", self._on_disconnection)
        if pair:
            await self.pair()
        self._peer = Peer(connection)
        self.services = await self._discover(self._peer)

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        await peer.discover_services()
        for proxy in peer.services:
            service_uuid = bleak_uuid(proxy.uuid)
            if self._requested_services and service_uuid not in self._requested_services:
                continue
            service = BleakGATTService(proxy, proxy.handle, service_uuid)
            collection.add_service(service)
            await proxy.discover_characteristics()
            for char_proxy in proxy.characteristics:
                await peer.discover_descriptors(char_proxy)
                names = [name for flag, name in _PROPERTY_NAMES.items() if char_proxy.properties & flag]
                characteristic = BleakGATTCharacteristic(
                    char_proxy,
                    char_proxy.handle,
                    bleak_uuid(char_proxy.uuid),
                    names,  # type: ignore[arg-type]
                    lambda: self.mtu_size - 3,
                    service,
                )
                collection.add_characteristic(characteristic)
                for desc_proxy in char_proxy.descriptors:
                    descriptor = BleakGATTDescriptor(
                        desc_proxy, desc_proxy.handle, bleak_uuid(desc_proxy.type), characteristic
                    )
                    collection.add_descriptor(descriptor)
        return collection

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("not connected")
        return self._peer

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        try:
            await connection.disconnect()
        except Exception:  # the peer went first; the link is down either way
            logger.debug("bumble disconnect failed", exc_info=True)
        self._connection = None
        self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        if self._connection is None:
            raise BleakError("not connected")
        try:
            await self._connection.pair()
        except Exception as exc:
            raise BleakError(f"pairing with {self.address} failed: {exc}") from exc

    async def unpair(self) -> None:
        device = await self._central.device()
        if device.keystore is not None:
            with contextlib.suppress(KeyError):  # was not bonded
                await device.keystore.delete(self.address)

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require_peer()
        return bytearray(await peer.read_value(cast(CharacteristicProxy[bytes], characteristic.obj)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require_peer()
        return bytearray(await peer.read_value(cast(DescriptorProxy, descriptor.obj)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        peer = self._require_peer()
        await peer.write_value(
            cast(CharacteristicProxy[bytes], characteristic.obj), bytes(data), with_response=response
        )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        peer = self._require_peer()
        await peer.write_value(cast(DescriptorProxy, descriptor.obj), bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        peer = self._require_peer()

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = deliver
        # bleak's rule: prefer notifications when a characteristic supports both
        await peer.subscribe(cast(CharacteristicProxy[bytes], characteristic.obj), deliver, prefer_notify=True)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require_peer()
        deliver = self._subscribers.pop(characteristic.handle, None)
        await peer.unsubscribe(cast(CharacteristicProxy[bytes], characteristic.obj), deliver)
