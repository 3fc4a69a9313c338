"""Expected Bluetooth failures, as `KnownError`s with words for the user."""

from __future__ import annotations

from desktop.errors import KnownError

NO_BLUETOOTH_MESSAGE = "Bluetooth is off or this PC has no Bluetooth adapter"


class BluetoothUnavailable(KnownError):
    """No usable Bluetooth: no adapter, adapter off, or no Bluetooth service on this PC."""

    title = "Bluetooth is not available"
    default_message = NO_BLUETOOTH_MESSAGE
    action = "Turn Bluetooth on (or plug in a Bluetooth adapter) and scan again. The rest of IntegMed works without it."
    code = "desktop.bluetooth_unavailable"


class DeviceUnreachable(KnownError):
    """A device could not be reached after the allowed attempts."""

    title = "The device did not answer"
    default_message = "The device could not be reached."
    action = "Wake the device (press its button or take a measurement), bring it closer and try again."
    code = "desktop.device_unreachable"


class RecordDownloadFailed(KnownError):
    """The meter refused or did not finish a stored-record download."""

    title = "The stored records could not be downloaded"
    default_message = "The meter did not finish sending its stored records."
    action = "Readings received so far are saved. Try the download again."
    code = "desktop.record_download_failed"
