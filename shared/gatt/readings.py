"""What a decoder returns: a `Reading` with values in units, flags, details and the device's own timestamp."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_serializer

from shared.gatt.sfloat import MedFloat, MedValue, Special

DEVICE_LOCAL = "device-local (unknown offset)"

Detail = int | str | bool | None | list[str]


class Quantity(BaseModel):
    """A value with its unit. `value` is None exactly when `special` says why (NaN, NRes, ±INF, reserved).

    `mantissa`/`exponent` keep the 11073 precision of what the device sent; when the value was converted to
    a customary unit (kPa → mmHg, °F → °C, kg/L → mg/dL, mol/L → mmol/L, 1/1024 s → s) `original` is the
    quantity as sent.
    """

    model_config = ConfigDict(frozen=True)

    value: Decimal | None
    unit: str
    special: Special | None = None
    mantissa: int | None = None
    exponent: int | None = None
    original: Quantity | None = None

    @field_serializer("value", when_used="json")
    def _number(self, value: Decimal | None) -> int | float | None:
        if value is None:
            return None
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:
            return int(value)
        return float(value)


class DeviceTimestamp(BaseModel):
    """A 7-byte Date Time: the device's wall clock, with no time zone and no DST. Never shifted.

    `local` is None when the device reported an unknown year, month or day (0); the parts are kept.
    """

    model_config = ConfigDict(frozen=True)

    local: datetime | None
    timezone: Literal["device-local (unknown offset)"] = "device-local (unknown offset)"
    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int


class Reading(BaseModel):
    """One decoded characteristic value."""

    model_config = ConfigDict(frozen=True)

    characteristic: str  # 16-bit UUID, upper-case hex, e.g. "2A37"
    name: str  # e.g. "heart_rate_measurement"
    flags: int
    flag_names: list[str]
    values: dict[str, Quantity]
    series: dict[str, list[Quantity]] = {}
    details: dict[str, Detail] = {}
    timestamp: DeviceTimestamp | None = None
    raw_hex: str


def quantity(value: MedValue, unit: str) -> Quantity:
    """A quantity from a decoded SFLOAT/FLOAT, specials kept as specials."""
    if isinstance(value, Special):
        return Quantity(value=None, unit=unit, special=value)
    return Quantity(value=value.decimal, unit=unit, mantissa=value.mantissa, exponent=value.exponent)


def exact(value: int, unit: str, exponent: int = 0) -> Quantity:
    """A quantity from an integer field with a fixed decimal resolution (value × 10^exponent)."""
    return quantity(MedFloat(value, exponent), unit)


def converted(
    original: Quantity, unit: str, factor: Decimal, offset: Decimal = Decimal(0), places: int | None = None
) -> Quantity:
    """`original` in another unit: (value + offset) × factor, rounded to `places` decimals if given."""
    if original.value is None:
        return Quantity(value=None, unit=unit, special=original.special, original=original)
    # FLOAT spans 10^-128 .. 10^134: compute with enough digits that no value is silently rounded or refused
    with localcontext(Context(prec=400, Emax=999_999, Emin=-999_999)):
        value = (original.value + offset) * factor
        if places is not None:
            value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return Quantity(value=value, unit=unit, original=original)
