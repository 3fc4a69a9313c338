"""P3 benchmark: expand + check a 10-drug + 5-AYUSH prescription, as the Rx pad does on every edit.

One *round* is what the desktop runs when the doctor changes a line of a full pad: expand all 15 shorthand
lines with the shipped formulary, decide the qualification verdict of each resolved medicine for the
signed-in doctor, and run the interaction engine over all lines plus the patient's conditions. Knowledge
files are loaded once before timing (the app loads them at start-up); the load time is reported separately.

The process is pinned to one core (``os.sched_setaffinity``) because the goal is stated per core.

    .venv/bin/python bench/rx_check.py               # 2,000 rounds after 200 warm-up rounds
    .venv/bin/python bench/rx_check.py --rounds 500  # quicker

Goal (P3): p50 and p99 under 5 ms.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time

from shared.rx.formulary import Formulary
from shared.rx.interactions import (
    AyushLine,
    CheckRequest,
    InteractionKB,
    MedicationLine,
    check,
    default_resolver,
)
from shared.rx.qualification import (
    Prescriber,
    PrescribingPolicy,
    item_from_resolved,
    may_prescribe,
)
from shared.rx.shorthand import expand

MODERN = [
    "Metf 1000 bd 30d",
    "amlo 5 0-0-1 x 1m",
    "atorva 20 hs x 30d",
    "telmi 40 od 30d",
    "warfarin 5 od x 30d",
    "aspirin 75 od x 30d",
    "pantoprazole 40 od ac x 2/52",
    "paracetamol 650 sos max 4/d x 5d",
    "cetirizine 10 hs x 5/7",
    "glimepiride 1 od ac x 30d",
]
AYUSH = [
    "triphala churna 5g hs with warm water x 30d",
    "ashwagandha churna 3g bd x 30d",
    "giloy 500 mg bd x 15d",
    "haridra 1g bd x 15d",
    "guggulu 500mg bd x 30d",
]
CONDITIONS = ("type_2_diabetes", "hypertension", "chronic_kidney_disease")


def one_round(formulary: Formulary, kb: InteractionKB, resolver: object, policy: PrescribingPolicy) -> int:
    """Expand, qualify and check the whole pad; returns the number of findings (so nothing is optimised away)."""
    doctor = Prescriber(system_of_medicine="modern", qualification="MBBS", state="MH")
    meds: list[MedicationLine] = []
    herbs: list[AyushLine] = []
    refusals = 0
    for text, is_ayush in [(t, False) for t in MODERN] + [(t, True) for t in AYUSH]:
        line = expand(text, formulary)
        if line.generic_name is None:
            raise SystemExit(f"benchmark pad line does not expand: {text!r}: {line.unresolved}")
        resolved = formulary.resolve(line.generic_name)
        if resolved is not None and not may_prescribe(doctor, item_from_resolved(resolved, formulary), policy).allowed:
            refusals += 1
        if is_ayush:
            herbs.append(AyushLine(name=line.generic_name, dose=line.strength, frequency=line.frequency))
        else:
            meds.append(MedicationLine(generic_name=line.generic_name, strength=line.strength))
    request = CheckRequest(medications=tuple(meds), ayush_medications=tuple(herbs), patient_conditions=CONDITIONS)
    result = check(request, kb, resolver)  # type: ignore[arg-type]
    return len(result.interactions) + len(result.contraindications) + refusals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    t0 = time.perf_counter()
    formulary = Formulary.load_default()
    kb = InteractionKB.load_default()
    resolver = default_resolver(kb)
    policy = PrescribingPolicy.load_default()
    load_ms = (time.perf_counter() - t0) * 1000

    findings = one_round(formulary, kb, resolver, policy)
    for _ in range(args.warmup):
        one_round(formulary, kb, resolver, policy)
    samples = []
    gc.collect()
    for _ in range(args.rounds):
        start = time.perf_counter_ns()
        one_round(formulary, kb, resolver, policy)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"knowledge load (formulary + KB + resolver + policy): {load_ms:.0f} ms, once at start-up")
    print(f"pad: {len(MODERN)} modern + {len(AYUSH)} AYUSH lines, {len(CONDITIONS)} conditions -> {findings} findings")
    print(f"expand + qualify + check, {args.rounds} rounds on one core: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print("goal: < 5 ms:", "met" if p99 < 5 else "NOT met")


if __name__ == "__main__":
    main()
