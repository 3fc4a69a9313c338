"""How many packs to dispense: a line's total (60 tablets, 75 mL, 300 IU) → whole packs from the formulary.

The quantity rules (clinical_rx.md §1.3) give the total a line needs in its dose unit; this module turns it
into packs of the presentation's default pack and says in words what was rounded or assumed:

    60 tablets, packs of 10  → 6 packs ("60 tablets = 6 packs of 10")
    45 tablets, packs of 10  → 5 packs ("45 tablets → 5 packs of 10, rounded up to whole packs (5 tablets over)")
    75 mL, 60 mL bottles     → 2 bottles
    300 IU, 3 mL cartridges of 100 IU/mL → 1 cartridge (300 IU)

Rounding is always up to whole packs: `packs × pack_size ≥ total` and `(packs − 1) × pack_size < total`.
A line whose total cannot be known (as needed without a maximum, no duration, drops counted per drop) gets no
pack count, and `note` says why. Pure and offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from shared.rx.formulary import FORMS, Pack, Presentation, Strength

_PLURAL = {"suppository": "suppositories", "mL": "mL", "g": "g", "IU": "IU"}


class Dispense(BaseModel):
    """What to hand over for one line, in whole packs (an additional field of the expanded line).

    Args:
        packs: whole packs to dispense; None when they cannot be counted (`note` says why).
        pack_size: content of one pack in `unit` (10 tablets, 60 mL, 200 puffs, 300 IU); None without a pack.
        pack_name: the pack as the formulary names it ("pack", "bottle", "inhaler", "cartridge", "tube").
        unit: the unit of `pack_size` and `total_units` ("tablet", "mL", "puff", "IU", "g").
        total_units: what the line needs in `unit` (may be fractional for liquids: 7.5 mL); None when unknown.
        note: one sentence for the doctor and the pharmacist: the sum, the rounding, what was assumed.
    """

    model_config = ConfigDict(frozen=True)

    packs: int | None
    pack_size: int | float | None
    pack_name: str | None
    unit: str | None
    total_units: int | float | None
    note: str

    @property
    def short(self) -> str | None:
        """ "6 packs of 10", "2 bottles of 60 mL"; None without a pack count."""
        if self.packs is None or self.pack_size is None or self.pack_name is None or self.unit is None:
            return None
        return f"{_count(self.packs, self.pack_name)} of {_amount(Decimal(str(self.pack_size)), self.unit)}"


def packs_needed(total: Decimal, size: Decimal) -> int:
    """Whole packs of `size` that hold `total`: the least n with n × size ≥ total (exact decimal arithmetic).

    Raises:
        ValueError: when `total` or `size` is not positive.
    """
    if total <= 0 or size <= 0:
        raise ValueError(f"packs need a positive total and size, not {total} and {size}")
    whole, rest = divmod(total, size)
    return int(whole) + (1 if rest else 0)


def pack_content(pack: Pack, presentation: Presentation, strength: Strength | None) -> Decimal | None:
    """One pack's content in the presentation's dose unit, or None when it cannot be converted.

    A pack counted in the dose unit is its size. A pack in mL of a medicine dosed in IU (an insulin cartridge)
    holds size × the strength's IU per mL. Anything else (an eye-drop bottle in mL, dosed in drops) is None.
    """
    dose_unit = presentation.effective_dose_unit
    if pack.unit == dose_unit:
        return pack.size
    if pack.unit == "mL" and dose_unit == "IU" and strength is not None and strength.per is not None:
        (amount, unit), (per_amount, per_unit) = strength.amounts[0], strength.per
        if unit == "IU" and per_unit == "mL" and len(strength.amounts) == 1:
            return pack.size * amount / per_amount
    return None


def dispense(
    presentation: Presentation,
    strength: Strength | None,
    packs: Sequence[Pack],
    *,
    total: Decimal | None,
    typed_quantity: Decimal | None,
    why_no_total: str | None,
    assumptions: Sequence[str] = (),
    label: str | None = None,
) -> Dispense:
    """The pack count for one line.

    Args:
        presentation: the chosen presentation.
        strength: the chosen strength (None for most AYUSH items).
        packs: the packs it may be dispensed in, best first (`Formulary.packs_for`); the first is used.
        total: what the line needs in the dose unit (before rounding), or None when it could not be counted.
        typed_quantity: the quantity typed on the line (`qty N`), which wins: units for tablets/grams, packs for
            liquids, inhalers and other pack-dispensed forms.
        why_no_total: why `total` is None (said in the note).
        assumptions: sentences that qualify the total ("as needed: counted at the maximum, 4 a day").
        label: what the line prescribes ("METFORMIN 1000mg tablet"), named when it has no pack size.

    Returns:
        The dispense record; `packs` is None with the reason in `note` when packs cannot be counted.
    """
    form = FORMS[presentation.form]
    what = label or f"this {form.label}"
    dose_unit = presentation.effective_dose_unit
    pack = packs[0] if packs else None
    content = pack_content(pack, presentation, strength) if pack is not None else None
    whole_units = form.dispense in ("count", "mass")
    after = "".join(f"; {a}" for a in assumptions)
    if typed_quantity is not None and not whole_units:
        n = max(1, packs_needed(typed_quantity, Decimal(1)))
        if pack is None:
            return _none(None, None, f"{n} as typed; the formulary has no pack size for {what}")
        size_text = _amount(pack.size, pack.unit)
        total_in_pack_unit = pack.size * n
        return Dispense(
            packs=n, pack_size=_num(pack.size), pack_name=pack.name, unit=pack.unit,
            total_units=_num(total_in_pack_unit), note=f"{_count(n, pack.name)} of {size_text} as typed{after}",
        )  # fmt: skip
    if typed_quantity is not None:
        total = Decimal(packs_needed(typed_quantity, Decimal(1)))
    if total is None or total <= 0:
        reason = why_no_total or "the total cannot be counted from this line"
        return _none(dose_unit if whole_units else None, None, f"no pack count: {reason}")
    counted = Decimal(packs_needed(total, Decimal(1))) if whole_units else total
    total_text = _amount(counted, dose_unit)
    if typed_quantity is not None:
        total_text += " as typed"
    if pack is None:
        return _none(dose_unit, counted, f"{total_text}; the formulary has no pack size for {what}{after}")
    if content is None:
        return _none(dose_unit, counted, f"{total_text}; a {pack.name} of {_amount(pack.size, pack.unit)} cannot be "
                                         f"counted in {_plural(dose_unit)}: type qty N (packs){after}")  # fmt: skip
    n = packs_needed(counted, content)
    over = content * n - counted
    size_text = _amount(pack.size, pack.unit)
    if pack.unit != dose_unit:
        size_text += f" ({_amount(content, dose_unit)})"
    if over == 0:
        note = f"{total_text} = {_count(n, pack.name)} of {size_text}"
    else:
        note = (f"{total_text} → {_count(n, pack.name)} of {size_text}, rounded up to whole {_plural(pack.name)} "
                f"({_amount(over, dose_unit)} over)")  # fmt: skip
    return Dispense(
        packs=n, pack_size=_num(content), pack_name=pack.name, unit=dose_unit, total_units=_num(counted),
        note=note + after,
    )  # fmt: skip


def _none(unit: str | None, total: Decimal | None, note: str) -> Dispense:
    return Dispense(packs=None, pack_size=None, pack_name=None, unit=unit, total_units=_num(total), note=note)


def _num(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _plural(word: str) -> str:
    return _PLURAL.get(word, word + "s")


def _count(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else _plural(word)}"


def _amount(value: Decimal, unit: str) -> str:
    text = format(value.normalize(), "f")
    if unit in ("mL", "g", "IU"):
        return f"{text} {unit}"
    return f"{text} {unit if value == 1 else _plural(unit)}"
