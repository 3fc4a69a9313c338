"""Vitals plausibility (refused) versus critical (accepted, flagged): table-driven from the rules, Hypothesis
for the BP pair, and the data file's integrity (every entry sourced, bounds agree with metrics.yaml)."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from shared.records.encounter import CRITICAL, PLAUSIBLE, PULSE_PRESSURE, Vitals, parse_bp, vital_flags


def _knowledge(name: str) -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((resources.files("shared.knowledge") / name).read_text("utf-8"))
    return loaded


class TestPulsePressure:
    @pytest.mark.parametrize(
        ("text", "gap"),
        [
            ("300/20", 280),  # the reported case: each number inside its own bounds, the pair impossible
            ("250/40", 210),
            ("120/115", 5),
            ("90/82", 8),
        ],
    )
    def test_implausible_pair_is_refused_with_both_numbers_named(self, text: str, gap: int) -> None:
        with pytest.raises(PydanticCustomError) as exc:
            parse_bp(text)
        assert exc.value.type == "vitals.bp_pulse_pressure"
        message = str(exc.value)
        assert text in message and f"gap of {gap} mmHg" in message and "check both numbers" in message

    @pytest.mark.parametrize("text", ["200/70", "180/40", "300/100", "100/90", "120/80", "220/130"])
    def test_wide_or_narrow_but_real_pairs_pass(self, text: str) -> None:
        systolic, diastolic = parse_bp(text)
        assert PULSE_PRESSURE[0] <= systolic - diastolic <= PULSE_PRESSURE[1]

    @given(st.integers(0, 400), st.integers(0, 400))
    def test_any_pair_is_accepted_only_inside_every_rule(self, systolic: int, diastolic: int) -> None:
        text = f"{systolic}/{diastolic}"
        code = "ok"
        try:
            assert parse_bp(text) == (systolic, diastolic)
        except PydanticCustomError as exc:
            code = exc.type
        assert code == "ok" or code.startswith("vitals.bp_")
        accepted = code == "ok"
        s_ok = PLAUSIBLE["bp_systolic"][0] <= systolic <= PLAUSIBLE["bp_systolic"][1]
        d_ok = PLAUSIBLE["bp_diastolic"][0] <= diastolic <= PLAUSIBLE["bp_diastolic"][1]
        pp_ok = PULSE_PRESSURE[0] <= systolic - diastolic <= PULSE_PRESSURE[1]
        assert accepted == (s_ok and d_ok and diastolic < systolic and pp_ok)

    def test_the_model_refuses_it_at_the_field(self) -> None:
        with pytest.raises(ValidationError) as exc:
            Vitals.model_validate({"bp": "300/20"})
        (error,) = exc.value.errors()
        assert error["type"] == "vitals.bp_pulse_pressure"


class TestCriticalFlags:
    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"bp": "220/130"}, [("bp", "bp_systolic", "acc_aha_2017"), ("bp", "bp_diastolic", "acc_aha_2017")]),
            ({"bp": "181/100"}, [("bp", "bp_systolic", "acc_aha_2017")]),
            ({"bp": "180/120"}, []),  # "over 180 / over 120": the thresholds themselves are not flagged
            ({"bp": "90/60"}, [("bp", "bp_systolic", "news2")]),
            ({"bp": "91/60"}, []),
            ({"pulse": 40}, [("pulse", "pulse", "news2")]),
            ({"pulse": 41}, []),
            ({"pulse": 131}, [("pulse", "pulse", "news2")]),
            ({"pulse": 130}, []),
            ({"respiratory_rate": 8}, [("respiratory_rate", "respiratory_rate", "news2")]),
            ({"respiratory_rate": 25}, [("respiratory_rate", "respiratory_rate", "news2")]),
            ({"respiratory_rate": 24}, []),
            ({"spo2": 91}, [("spo2", "spo2", "news2")]),
            ({"spo2": 92}, []),
            ({"temperature": 95.0, "temperature_unit": "F"}, [("temperature", "temperature_c", "news2")]),  # 35.0 C
            ({"temperature": 35.1, "temperature_unit": "C"}, []),
            ({"weight_kg": 70, "height_cm": 175}, []),
        ],
    )
    def test_abnormal_but_real_values_are_accepted_and_flagged(
        self, fields: dict[str, object], expected: list[tuple[str, str, str]]
    ) -> None:
        vitals = Vitals.model_validate(fields)  # accepted: no exception
        flags = vital_flags(vitals)
        assert [(f.field, f.vital, f.source) for f in flags] == expected
        for flag in flags:
            assert flag.message.startswith("Critical: ") and f"{flag.value:g}" in flag.message

    def test_message_reads_for_a_doctor(self) -> None:
        (flag, _) = vital_flags(Vitals(bp="220/130"))
        assert flag.message == (
            "Critical: Systolic pressure 220 mmHg — severe hypertension (over 180 mmHg); "
            "a hypertensive crisis if there is new organ damage"
        )


class TestVitalsKnowledgeFile:
    def test_every_entry_names_a_listed_source(self) -> None:
        data = _knowledge("vitals.yaml")
        sources = data["sources"]
        assert isinstance(sources, dict)
        plausible = data["plausible"]
        assert isinstance(plausible, dict)
        for name, entry in plausible.items():
            assert entry["source"] in sources, name
            assert entry["min"] < entry["max"] and entry["note"], name
        assert data["pulse_pressure"]["source"] in sources  # type: ignore[index]
        for threshold in CRITICAL:
            assert threshold.source in sources and threshold.vital in PLAUSIBLE
            low, high, _ = PLAUSIBLE[threshold.vital]
            assert low <= threshold.value <= high  # a critical value is a plausible one

    def test_device_metrics_use_the_same_bounds_as_typed_vitals(self) -> None:
        metrics = _knowledge("metrics.yaml")["metrics"]
        assert isinstance(metrics, dict)
        pairs = {"bp_systolic": "bp_systolic", "bp_diastolic": "bp_diastolic", "pulse_rate": "pulse"}
        for metric, vital in pairs.items():
            bound = metrics[metric]["plausible"]
            assert (bound["min"], bound["max"]) == PLAUSIBLE[vital][:2], metric
