"""Dosage timing: one parsed schedule segment → FHIR R4 Timing.repeat-shaped dict, wording, quantity.

The `timing` dict of an expanded line uses FHIR R4 `Timing.repeat` keys where FHIR has one and snake_case
keys for the Dosage-level facts FHIR keeps elsewhere:

    frequency, period, periodUnit ("h" | "d" | "wk" | "mo")   how often (Timing.repeat)
    when          list of EventTiming codes (MORN, NIGHT, HS, AC, PCM …)   (Timing.repeat.when)
    dayOfWeek     ["sun" …] for "every Sunday"                          (Timing.repeat.dayOfWeek)
    count         1 for "stat" (a single administration)                 (Timing.repeat.count)
    boundsDuration {"value", "unit", "system", "code"} in UCUM d/wk/mo   (Timing.repeat.boundsDuration)
    code          GTS abbreviation (QD, BID, TID, QID, QOD, WK, MO, Q6H …) (Timing.code)
    dose          {"value", "unit"}: one administration, unit = the form's dose unit (tablet, mL, g, IU …)
    slot_pattern  the per-slot pattern as typed and normalised ("1-0-1", "0.5-0-1"), morning first
    slot_doses    [{"when": [code], "dose": {"value", "unit"}}] when per-slot doses differ (½-0-1); FHIR needs
                  one Dosage per distinct dose
    as_needed     true for sos/prn; as_needed_for: the reason text after "for"
    max_per_day   most administrations in one day (sos max 4/d → 4)
    taper         list of segment dicts (each shaped as above) when the line has "then" segments; the
                  top level then carries only `taper` and the total `boundsDuration`

Numbers are JSON numbers (int when whole). A month counts as `days_per_month` days (clinic setting, 30 by
default) when a duration is turned into days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, TypeAlias

from pydantic import JsonValue

PeriodUnit: TypeAlias = Literal["h", "d", "wk", "mo"]
DurationUnit: TypeAlias = Literal["d", "wk", "mo"]
UCUM = "http://unitsofmeasure.org"

SLOT_WHEN: Mapping[int, tuple[str, ...]] = {3: ("MORN", "AFT", "NIGHT"), 4: ("MORN", "NOON", "EVE", "NIGHT")}
"""Time of day of each position of a 3- or 4-slot pattern (1-0-1 = morning and night), per clinical_rx.md §1.1."""

TIME_CODES = ("WAKE", "MORN", "NOON", "AFT", "EVE", "NIGHT", "HS")
MEAL_CODES = ("AC", "PC", "C")
SPECIFIC_MEAL = {
    ("AC", "M"): "ACM", ("AC", "D"): "ACD", ("AC", "V"): "ACV",
    ("PC", "M"): "PCM", ("PC", "D"): "PCD", ("PC", "V"): "PCV",
    ("C", "M"): "CM", ("C", "D"): "CD", ("C", "V"): "CV",
}  # fmt: skip
MEAL_OF_TIME = {"MORN": "M", "NOON": "D", "AFT": "D", "NIGHT": "V"}
"""Which meal a time of day sits next to, to turn 1-0-1 + pc into [PCM, PCV] (clinical_rx.md §1.3 examples)."""

WHEN_ORDER = (
    "WAKE", "ACM", "CM", "PCM", "MORN", "NOON", "ACD", "CD", "PCD", "AFT", "EVE",
    "ACV", "CV", "PCV", "NIGHT", "HS", "AC", "C", "PC",
)  # fmt: skip
WHEN_WORDS: Mapping[str, str] = {
    "AC": "before meals", "PC": "after meals", "C": "with meals",
    "ACM": "before breakfast", "PCM": "after breakfast", "CM": "with breakfast",
    "ACD": "before lunch", "PCD": "after lunch", "CD": "with lunch",
    "ACV": "before dinner", "PCV": "after dinner", "CV": "with dinner",
    "MORN": "in the morning", "NOON": "at noon", "AFT": "in the afternoon", "EVE": "in the evening",
    "NIGHT": "at night", "HS": "at bedtime", "WAKE": "on waking",
}  # fmt: skip
WHEN_SHORTHAND: Mapping[str, str] = {
    "AC": "ac", "PC": "pc", "C": "with food", "ACM": "bbf", "PCM": "after breakfast", "CM": "with breakfast",
    "ACD": "before lunch", "PCD": "after lunch", "CD": "with lunch", "ACV": "before dinner",
    "PCV": "after dinner", "CV": "with dinner", "MORN": "mane", "NOON": "at noon", "AFT": "afternoon",
    "EVE": "evening", "NIGHT": "nocte", "HS": "hs", "WAKE": "on waking",
}  # fmt: skip
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
             "sat": "Saturday", "sun": "Sunday"}  # fmt: skip
TIMES_WORDS = {1: "once", 2: "twice", 3: "three times", 4: "four times"}


@dataclass(frozen=True)
class Segment:
    """One schedule: how much, how often, for how long (a taper has several).

    Args:
        frequency: administrations per `period`.
        period: length of the period in `period_unit`.
        period_unit: h, d, wk or mo.
        when: EventTiming codes, already combined (1-0-1 + pc → PCM, PCV).
        day_of_week: three-letter day codes.
        count: total administrations (1 for stat).
        dose: one administration in the dose unit, when every administration is the same.
        slots: per-slot doses of a slot pattern in written order, zeros included.
        as_needed: sos/prn.
        as_needed_for: reason typed after "for".
        max_per_day: most administrations a day (sos max 4/d).
        duration: (value, unit) as typed.
    """

    frequency: int | None = None
    period: Decimal | None = None
    period_unit: PeriodUnit | None = None
    when: tuple[str, ...] = ()
    day_of_week: tuple[str, ...] = ()
    count: int | None = None
    dose: Decimal | None = None
    slots: tuple[Decimal, ...] | None = None
    as_needed: bool = False
    as_needed_for: str | None = None
    max_per_day: int | None = None
    duration: tuple[int, DurationUnit] | None = None
    extra_when_text: tuple[str, ...] = field(default=())

    def duration_days(self, days_per_month: int) -> int | None:
        """The duration in days (weeks × 7, months × `days_per_month`), or None when not given."""
        if self.duration is None:
            return None
        value, unit = self.duration
        return value * {"d": 1, "wk": 7, "mo": days_per_month}[unit]

    def slot_when_codes(self) -> tuple[str, ...]:
        """EventTiming code of each non-zero slot, in order (empty when there is no slot pattern)."""
        if self.slots is None:
            return ()
        return tuple(self.when[: sum(1 for s in self.slots if s)])

    def per_day(self) -> Decimal | None:
        """Administrations per day when the schedule is daily or hourly, else None."""
        if self.frequency is None or self.period is None:
            return None
        if self.period_unit == "d" and self.period == 1:
            return Decimal(self.frequency)
        if self.period_unit == "h":
            return Decimal(self.frequency) * 24 / self.period
        return None


def gts_code(seg: Segment) -> str | None:
    """The GTS abbreviation (Timing.code) of a plain schedule, or None when there is none."""
    f, p, u = seg.frequency, seg.period, seg.period_unit
    if f is None or p is None:
        return None
    if u == "d" and p == 1:
        return {1: "QD", 2: "BID", 3: "TID", 4: "QID"}.get(f)
    if f != 1:
        return None
    if u == "d" and p == 2:
        return "QOD"
    if u == "wk" and p == 1:
        return "WK"
    if u == "mo" and p == 1:
        return "MO"
    if u == "h" and p in (1, 2, 3, 4, 6, 8):
        return f"Q{p}H"
    return None


def _num(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _quantity(value: Decimal, unit: str) -> dict[str, JsonValue]:
    return {"value": _num(value), "unit": unit}


def sort_when(codes: Sequence[str]) -> tuple[str, ...]:
    """Codes in the fixed order used everywhere (so equal timings compare equal)."""
    unique = dict.fromkeys(codes)
    return tuple(sorted(unique, key=lambda c: WHEN_ORDER.index(c) if c in WHEN_ORDER else len(WHEN_ORDER)))


def segment_dict(seg: Segment, dose_unit: str) -> dict[str, JsonValue]:
    """FHIR Timing.repeat-shaped dict of one segment (see the module docstring for the keys)."""
    out: dict[str, JsonValue] = {}
    if seg.frequency is not None and seg.period is not None and seg.period_unit is not None:
        out.update(frequency=seg.frequency, period=_num(seg.period), periodUnit=seg.period_unit)
    if seg.when:
        out["when"] = list(seg.when)
    if seg.day_of_week:
        out["dayOfWeek"] = list(seg.day_of_week)
    if seg.count is not None:
        out["count"] = seg.count
    if seg.duration is not None:
        value, unit = seg.duration
        out["boundsDuration"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    code = gts_code(seg)
    if code is not None:
        out["code"] = code
    out.update(_dose_keys(seg, dose_unit))
    if seg.as_needed:
        out["as_needed"] = True
        if seg.as_needed_for:
            out["as_needed_for"] = seg.as_needed_for
    if seg.max_per_day is not None:
        out["max_per_day"] = seg.max_per_day
    return out


def _dose_keys(seg: Segment, dose_unit: str) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    if seg.slots is not None:
        out["slot_pattern"] = "-".join(_plain(v) for v in seg.slots)
    if seg.dose is not None:
        out["dose"] = _quantity(seg.dose, dose_unit)
    elif seg.slots is not None:
        codes = seg.slot_when_codes()
        doses = [s for s in seg.slots if s]
        out["slot_doses"] = [{"when": [c], "dose": _quantity(d, dose_unit)} for c, d in zip(codes, doses, strict=True)]
    return out


def timing_dict(segments: Sequence[Segment], dose_unit: str, days_per_month: int) -> dict[str, JsonValue]:
    """The `timing` of a line: one segment's dict, or `taper` + total `boundsDuration` for several."""
    if not segments:
        return {}
    if len(segments) == 1:
        return segment_dict(segments[0], dose_unit)
    out: dict[str, JsonValue] = {"taper": [segment_dict(s, dose_unit) for s in segments]}
    days = [s.duration_days(days_per_month) for s in segments]
    if all(d is not None for d in days):
        total = sum(d for d in days if d is not None)
        out["boundsDuration"] = {"value": total, "unit": "d", "system": UCUM, "code": "d"}
    return out


# -- wording --------------------------------------------------------------------------------------------
def frequency_text(seg: Segment) -> str | None:
    """How often, in words ("Twice daily (morning and night)", "Every 6 hours", "When needed …")."""
    base = _how_often(seg)
    if seg.as_needed:
        cap = None
        if seg.max_per_day is not None:
            cap = f"at most {seg.max_per_day} times a day" if seg.max_per_day != 1 else "at most once a day"
        elif base is not None:
            cap = f"up to {base[0].lower()}{base[1:]}"
        return "When needed" + (f", {cap}" if cap else "")
    if base is None:
        return None
    if seg.slots is not None:
        positions = SLOT_WHEN[len(seg.slots)]
        names = [_SLOT_NAMES[positions[k]] for k, v in enumerate(seg.slots) if v]
        base += " (" + _and_list(names) + ")"
    elif seg.day_of_week:
        base += " on " + _and_list([DAY_NAMES[d] for d in seg.day_of_week])
    return base


_SLOT_NAMES = {"MORN": "morning", "AFT": "afternoon", "NOON": "noon", "EVE": "evening", "NIGHT": "night"}


def _how_often(seg: Segment) -> str | None:
    if seg.count == 1:
        return "Once, immediately"
    f, p, u = seg.frequency, seg.period, seg.period_unit
    if f is None or p is None or u is None:
        return None
    times = TIMES_WORDS.get(f, f"{f} times")
    if u == "h":
        return (
            f"Every {_plain(p)} hours"
            if f == 1 and p != 1
            else ("Every hour" if f == 1 else f"{times} every {_plain(p)} hours".capitalize())
        )
    if u == "d":
        if p == 1:
            return {1: "Once daily", 2: "Twice daily"}.get(f, f"{times.capitalize()} daily")
        if f == 1:
            return "Every other day" if p == 2 else f"Every {_plain(p)} days"
        return f"{times.capitalize()} every {_plain(p)} days"
    name = {"wk": "week", "mo": "month"}[u]
    adverb = {"wk": "weekly", "mo": "monthly"}[u]
    if p == 1:
        return f"{times.capitalize()} {adverb}"
    return f"{times.capitalize()} every {_plain(p)} {name}s"


def dose_text(value: Decimal, unit: str) -> str:
    """A dose in words without Latin or trailing zeros: 0.5 tablet → "½ tablet", 10 IU → "10 units"."""
    if unit == "g" and value < 1:
        return f"{_plain(value * 1000)} mg"
    whole = int(value)
    frac = {Decimal("0.25"): "¼", Decimal("0.5"): "½", Decimal("0.75"): "¾"}.get(value - whole)
    number = (str(whole) if whole else "") + frac if frac else _plain(value)
    words = {"IU": ("unit", "units"), "tablet": ("tablet", "tablets"), "capsule": ("capsule", "capsules"),
             "puff": ("puff", "puffs"), "drop": ("drop", "drops"), "spray": ("spray", "sprays"),
             "sachet": ("sachet", "sachets"), "suppository": ("suppository", "suppositories"),
             "application": ("application", "applications")}  # fmt: skip
    singular, plural = words.get(unit, (unit, unit))
    return f"{number} {singular if value <= 1 else plural}"


def instructions_text(
    segments: Sequence[Segment], dose_unit: str, route: str | None, extras: Sequence[str], days_per_month: int
) -> str | None:
    """Patient-facing directions in plain English (no Latin abbreviations), one sentence per line."""
    parts = [_segment_instruction(s, dose_unit, with_duration=len(segments) > 1, days_per_month=days_per_month)
             for s in segments]  # fmt: skip
    parts = [p for p in parts if p]
    if not parts and not extras:
        return None
    verb = _VERBS.get(route or "oral", "Take")
    text = f"{verb} " + ", then ".join(parts) if parts else ""
    tail = [e for e in extras if e]
    if tail:
        text = (text + ", " if text else "") + ", ".join(tail)
    text = text.strip()
    return (text[0].upper() + text[1:] + ".") if text else None


_VERBS = {
    "oral": "Take", "sublingual": "Place under the tongue", "subcutaneous": "Inject", "intramuscular": "Inject",
    "intravenous": "Inject", "topical": "Apply", "inhalation": "Inhale", "ophthalmic": "Instil", "otic": "Instil",
    "nasal": "Spray", "rectal": "Insert", "vaginal": "Insert",
}  # fmt: skip


def _segment_instruction(seg: Segment, dose_unit: str, *, with_duration: bool, days_per_month: int) -> str:
    words: list[str] = []
    meal = [c for c in seg.when if c in MEAL_CODES]
    if seg.slots is not None:
        codes = seg.slot_when_codes()
        doses = [s for s in seg.slots if s]
        if seg.dose is not None:
            words.append(f"{dose_text(seg.dose, dose_unit)} " + _and_list([WHEN_WORDS.get(c, c) for c in codes]))
        else:
            words.append(" and ".join(f"{dose_text(d, dose_unit)} {WHEN_WORDS.get(c, c)}"
                                      for c, d in zip(codes, doses, strict=True)))  # fmt: skip
    else:
        if seg.dose is not None:
            words.append(dose_text(seg.dose, dose_unit))
        often = frequency_text(seg)
        if often and not seg.as_needed:
            words.append(often[0].lower() + often[1:])
        elif seg.as_needed:
            words.append("when needed" + (f" for {seg.as_needed_for}" if seg.as_needed_for else ""))
            if seg.max_per_day is not None:
                words[-1] += ","
                words.append(f"at most {seg.max_per_day} times a day" if seg.max_per_day != 1 else "at most once a day")
            elif seg.frequency is not None:
                words[-1] += ","
                words.append(f"up to {(_how_often(seg) or '').lower()}")
        timed = [WHEN_WORDS[c] for c in seg.when if c not in MEAL_CODES and c in WHEN_WORDS and seg.slots is None]
        if timed:
            words.append(_and_list(timed))
    if meal and seg.slots is None:
        words.append(_and_list([WHEN_WORDS[c] for c in meal]))
    words.extend(seg.extra_when_text)
    if with_duration:
        days = seg.duration_days(days_per_month)
        if days is not None:
            words.append(f"for {days} day{'s' if days != 1 else ''}")
    return " ".join(w for w in words if w)


def _and_list(items: Sequence[str]) -> str:
    items = list(dict.fromkeys(items))
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros ("60000", "0.5")."""
    return format(value.normalize(), "f")


_plain = plain


# -- quantity -------------------------------------------------------------------------------------------
def administrations(seg: Segment, days: int | None, days_per_month: int) -> Decimal | None:
    """Number of administrations a segment asks for over `days` (None when it cannot be counted).

    qod → ceil(days/2), weekly → ceil(days/7), every N h → ceil(days × 24 / N) (clinical_rx.md §1.3).
    """
    if seg.count is not None:
        return Decimal(seg.count)
    if days is None:
        return None
    if seg.as_needed:
        per_day = Decimal(seg.max_per_day) if seg.max_per_day is not None else seg.per_day()
        return None if per_day is None else Decimal(math.ceil(per_day * days))
    f, p, u = seg.frequency, seg.period, seg.period_unit
    if f is None or p is None or u is None:
        return None
    if u == "h":
        return Decimal(math.ceil(Decimal(days) * 24 * f / p))
    span = {"d": Decimal(1), "wk": Decimal(7), "mo": Decimal(days_per_month)}[u] * p
    return Decimal(f) * math.ceil(Decimal(days) / span)


def units_needed(seg: Segment, days: int | None, days_per_month: int) -> Decimal | None:
    """Total dose units a segment needs (tablets, g, mL, IU …), or None when it cannot be counted."""
    if seg.slots is not None and seg.dose is None:
        if days is None or seg.as_needed:
            return None
        return sum(seg.slots, Decimal(0)) * days
    if seg.dose is None:
        return None
    count = administrations(seg, days, days_per_month)
    return None if count is None else count * seg.dose


# -- canonical shorthand --------------------------------------------------------------------------------
def render_shorthand(timing: Mapping[str, JsonValue]) -> str:
    """Canonical shorthand for a timing dict; parsing it again (after the drug) gives an equal timing.

    Args:
        timing: the `timing` of an expanded line.

    Returns:
        e.g. "1 tablet 1-0-1 pc x 30d" or "1 tablet sos max 4/d x 3d"; segments of a taper joined by " then ".
    """
    taper = timing.get("taper")
    if isinstance(taper, list):
        return " then ".join(render_shorthand(s) for s in taper if isinstance(s, dict))
    words: list[str] = []
    when = _strs(timing.get("when"))
    pattern = timing.get("slot_pattern")
    dose = timing.get("dose")
    if isinstance(pattern, str):
        words.append(pattern)
        meal = {c[:-1] if c[:2] in ("AC", "PC") else "C" for c in when if c in SPECIFIC_MEAL.values()}
        when = [m for m in ("AC", "PC", "C") if m in meal] + [c for c in when if c == "HS"]
    else:
        if isinstance(dose, dict):
            words.append(f"{_fmt(dose.get('value'))} {_unit_word(dose.get('unit'))}")
        words.extend(_frequency_words(timing))
    words.extend(WHEN_SHORTHAND[c] for c in when if c in WHEN_SHORTHAND)
    for day in _strs(timing.get("dayOfWeek")):
        words.append(f"every {DAY_NAMES.get(day, day).lower()}")
    if timing.get("as_needed") is True:
        words.append("sos")
        reason = timing.get("as_needed_for")
        if isinstance(reason, str):
            words.append(f'for "{reason}"')
    if isinstance(timing.get("max_per_day"), int):
        words.append(f"max {timing['max_per_day']}/d")
    bounds = timing.get("boundsDuration")
    if isinstance(bounds, dict):
        words.append(f"x {bounds.get('value')}{bounds.get('unit')}")
    return " ".join(words)


def _frequency_words(timing: Mapping[str, JsonValue]) -> list[str]:
    if timing.get("count") == 1:
        return ["stat"]
    f, p, u = timing.get("frequency"), timing.get("period"), timing.get("periodUnit")
    if not isinstance(f, int) or not isinstance(p, int | float) or not isinstance(u, str):
        return []
    ps = _fmt(p)
    if u == "h":
        return [f"{f}x/{ps}h"] if f != 1 else [f"q{ps}h"]
    if u == "d" and p == 1:
        return [{1: "od", 2: "bd", 3: "tds", 4: "qid"}.get(f, f"{f}x/d")]
    if u == "d":
        return [f"{f}x/{ps}d"] if f != 1 else [f"q{ps}d"]
    if u == "wk" and p == 1 and f == 1:
        return ["weekly"]
    if u == "mo" and p == 1 and f == 1:
        return ["monthly"]
    return [f"{f}x/{ps}{u}"]


def _unit_word(unit: object) -> str:
    return {"tablet": "tab", "capsule": "cap", "IU": "u", "mL": "ml"}.get(str(unit), str(unit))


def _fmt(value: object) -> str:
    if isinstance(value, int | float):
        return _plain(Decimal(str(value)))
    return str(value)


def _strs(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
