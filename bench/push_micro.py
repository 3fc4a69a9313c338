"""Micro-benchmark: patient or encounter push batches through `sync_server.services.sync.push` in-process.

    PYTHONPATH=$PWD .venv/bin/python bench/push_micro.py [--kind patient|encounter] [--batches 6] [--batch 1000]
        [--profile FILE]

Starts an embedded PostgreSQL in a temporary folder, migrates it, makes a clinic with a doctor and an enrolled
device, then pushes ``--batches`` batches of ``--batch`` new patients (`bench/indian_patients.py` fields), then
as many batches editing the mobile of those patients. With ``--kind encounter`` it first pushes (untimed) one
patient for every two encounters, then ``--batches`` batches of ``--batch`` new encounters of those patients as
the desktop starts them (every header field, draft status, a SOAP note with subjective, objective with vitals,
an assessment and often a plan: `encounter_fields`), then as many batches editing one SOAP section (the plan)
of each of those encounters, then as many batches of a PC back from a week offline (``offline``: each visit four
changes of one batch, started, two sections saved, completed: `offline_batches`; rates count changes). For each
batch it times: parsing the request body (`PushRequest.model_validate_json` of the JSON the desktop sends; the
route's FastAPI parse, ``json.loads`` then validation, costs a few ms more), `sync.push` inside its own
transaction including the commit, and writing the answer as JSON (as the route does); ``cpu`` is this process's
CPU time for all three (PostgreSQL's work is not in it). The first batch of each kind warms caches and is left
out of the medians; ``cpu_us`` is ``cpu`` per record. ``--profile`` writes a cProfile of the creates.
The collector runs with the API process's settings (`sync_server.asgi.tune_gc`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import indian_patients as gen  # sibling module: bench/ is sys.path[0] when this file is run as a script
import server_patients as sp

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import HLC, encode
from shared.ids import uuid7
from shared.records.patient import PatientFields
from shared.sync.protocol import PushRequest, PushResponse
from sync_server.asgi import tune_gc
from sync_server.db import embedded, migrate
from sync_server.services import sync as sync_service
from sync_server.services.context import Actor, RequestMeta


def body(changes: list[dict[str, Any]], device_id: str) -> bytes:
    return json.dumps(
        {
            "batch_id": str(uuid7()),
            "device_id": device_id,
            "schema_version": RECORD_SCHEMA_VERSION,
            "protocol_version": PROTOCOL_VERSION,
            "changes": changes,
        }
    ).encode()


def patient_batches(
    generator: gen.PatientGenerator, pc_clock: HLC, device_id: Any, batches: int, size: int
) -> tuple[list[bytes], list[str]]:
    """``batches`` push bodies of ``size`` new patients each, and the patients' ids in order."""
    ids: list[str] = []
    bodies: list[bytes] = []
    for _ in range(batches):
        changes = []
        for _ in range(size):
            fields = PatientFields.model_validate(generator.fields()).model_dump(mode="json")
            stamp = encode(pc_clock.now())
            pid = str(uuid7())
            ids.append(pid)
            changes.append(
                {"kind": "patient", "id": pid, "op": "upsert", "hlc": stamp, "fields": fields,
                 "field_hlcs": dict.fromkeys(fields, stamp)}
            )  # fmt: skip
        bodies.append(body(changes, str(device_id)))
    return bodies, ids


_COMPLAINTS = (
    "Fever for 3 days with body ache",
    "Cough and cold for a week",
    "Burning micturition since 2 days",
    "Follow-up of type 2 diabetes",
    "Headache and giddiness, known hypertensive",
    "Joint pain in both knees, worse in the morning",
    "Loose stools 4-5 times a day since yesterday",
    "Skin rash on the forearms, itchy",
)
_SUBJECTIVE = (
    "Fever up to 101 F, evening rise, with chills. No rash, no bleeding. Taking paracetamol 500 mg SOS.",
    "Dry cough, worse at night; no breathlessness, no haemoptysis. Non-smoker. Similar episode last winter.",
    "Dysuria and frequency for 2 days, no flank pain, no fever. LMP 2 weeks ago.",
    "On metformin 500 mg BD for 3 years. Occasional missed doses. No hypoglycaemic episodes.",
    "Occipital headache in the mornings for 10 days. Irregular with amlodipine. Salt intake high.",
)
_DIAGNOSES = (
    {"condition": "Viral fever"},
    {"condition": "Acute upper respiratory infection"},
    {"condition": "Type 2 diabetes mellitus", "code": "E11", "system": "icd10"},
    {"condition": "Essential hypertension", "code": "I10", "system": "icd10"},
    {"condition": "Osteoarthritis of knee"},
)
_PLANS = (
    {"medications": ["Tab Paracetamol 650 mg TDS x 3 days"], "investigations": ["CBC", "Dengue NS1"],
     "followup": "Review after 3 days or earlier if warning signs"},
    {"medications": ["Tab Metformin 500 mg BD", "Tab Glimepiride 1 mg OD before breakfast"],
     "investigations": ["HbA1c", "Fasting lipid profile"], "followup": "Review in 4 weeks with reports"},
    {"medications": ["Tab Amlodipine 5 mg OD"], "investigations": ["Serum creatinine", "ECG"],
     "followup": "BP check in 2 weeks"},
)  # fmt: skip


def encounter_fields(rng: random.Random, patient_id: str, doctor_id: str | None, start: str) -> dict[str, Any]:
    """A draft encounter as the desktop starts it (`desktop.store.encounters.synced_fields`): every header field,
    draft status, a SOAP note with subjective, objective (vitals and examination), assessment, and mostly a plan."""
    systolic = rng.randint(104, 168)
    fields: dict[str, Any] = {
        "patient_id": patient_id,
        "encounter_type": rng.choice(("opd", "opd", "opd", "tele_video", "home_visit")),
        "start_time": start,
        "chief_complaint": rng.choice(_COMPLAINTS),
        "status": "draft",
        "completed_at": None,
        "subjective": rng.choice(_SUBJECTIVE),
        "objective": {
            "vitals": {
                "bp": f"{systolic}/{systolic - rng.randint(30, 50)}",
                "pulse": rng.randint(62, 108),
                "temperature": round(rng.uniform(97.0, 101.5), 1),
                "temperature_unit": "F",
                "spo2": rng.randint(94, 99),
                "weight_kg": round(rng.uniform(42, 92), 1),
                "height_cm": float(rng.randint(148, 182)),
            },
            "examination": "Conscious, oriented. Chest clear, no pallor, no icterus. Abdomen soft, non-tender.",
        },
        "assessment": {"primary_diagnosis": rng.choice(_DIAGNOSES), "notes": "Counselled on diet and hydration"},
    }
    if doctor_id is not None:
        fields["doctor_id"] = doctor_id
    if rng.random() < 0.7:
        fields["plan"] = rng.choice(_PLANS)
    return fields


def encounter_batches(
    rng: random.Random, pc_clock: HLC, device_id: Any, doctor_id: str, pids: list[str], batches: int, size: int
) -> tuple[list[bytes], list[bytes]]:
    """Push bodies: ``batches`` batches of ``size`` new encounters (two per patient), then as many editing the
    plan of each of them (one section: what the desktop sends for one save of the note)."""
    eids: list[str] = []
    creates: list[bytes] = []
    for b in range(batches):
        changes = []
        for i in range(size):
            n = b * size + i
            stamp = encode(pc_clock.now())
            eid = str(uuid7())
            eids.append(eid)
            start = f"2026-11-{1 + n % 25:02d}T{3 + n % 9:02d}:{n % 60:02d}:00Z"
            fields = encounter_fields(rng, pids[n // 2], doctor_id, start)
            changes.append(
                {"kind": "encounter", "id": eid, "op": "upsert", "hlc": stamp, "fields": fields,
                 "field_hlcs": dict.fromkeys(fields, stamp)}
            )  # fmt: skip
        creates.append(body(changes, str(device_id)))
    edits: list[bytes] = []
    for b in range(batches):
        changes = []
        for eid in eids[b * size : (b + 1) * size]:
            stamp = encode(pc_clock.now())
            plan = dict(rng.choice(_PLANS)) | {"followup": f"Review in {rng.randint(1, 6)} weeks"}
            changes.append(
                {"kind": "encounter", "id": eid, "op": "upsert", "hlc": stamp, "fields": {"plan": plan},
                 "field_hlcs": {"plan": stamp}}
            )  # fmt: skip
        edits.append(body(changes, str(device_id)))
    return creates, edits


def offline_batches(
    rng: random.Random, pc_clock: HLC, device_id: Any, doctor_id: str, pids: list[str], batches: int, size: int
) -> list[bytes]:
    """Push bodies of a PC back from a week offline: its outbox holds every save, so each visit is four changes
    in a row of one batch (the encounter started with its note, the assessment saved, the plan saved, the
    encounter completed); ``size`` changes a batch, visits of the given patients in turn."""
    bodies: list[bytes] = []
    n = 0
    for _ in range(batches):
        changes: list[dict[str, Any]] = []
        while len(changes) + 4 <= size:
            eid = str(uuid7())
            start = f"2026-11-{1 + n % 25:02d}T{3 + n % 9:02d}:{n % 60:02d}:00Z"
            fields = encounter_fields(rng, pids[n % len(pids)], doctor_id, start)
            saves = [
                fields,
                {"assessment": {"primary_diagnosis": rng.choice(_DIAGNOSES), "notes": "Reviewed with reports"}},
                {"plan": dict(rng.choice(_PLANS))},
                {"status": "completed", "completed_at": start.replace("T0", "T1", 1)},
            ]
            for saved in saves:
                stamp = encode(pc_clock.now())
                changes.append(
                    {"kind": "encounter", "id": eid, "op": "upsert", "hlc": stamp, "fields": saved,
                     "field_hlcs": dict.fromkeys(saved, stamp)}
                )  # fmt: skip
            n += 1
        bodies.append(body(changes, str(device_id)))
    return bodies


async def setup(dsn: str) -> tuple[Any, Any, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        clinic_id, user_id, _ = await sp._insert_clinic_and_doctor(conn, 1)
        device_id = uuid7()
        await conn.execute(
            "INSERT INTO devices (id, clinic_id, name, enrolled_by, token_hash) VALUES ($1, $2, 'Bench PC', $3, $4)",
            device_id,
            clinic_id,
            user_id,
            b"x" * 32,
        )
    finally:
        await conn.close()
    return clinic_id, device_id, user_id


async def run(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    clinic_id, device_id, doctor_id = await setup(dsn)
    actor = Actor(
        user_id=device_id,
        session_id=uuid7(),
        clinic_id=clinic_id,
        role="device",
        hpr_id=None,
        meta=RequestMeta("127.0.0.1", "bench"),
    )
    server_clock, pc_clock = HLC("srv-bench"), HLC(device_id.hex)
    generator = gen.PatientGenerator(random.Random(7), set())
    phases: list[tuple[str, list[bytes]]] = []  # after the creates and edits
    if args.kind == "encounter":
        patients = (args.batches * args.batch + 1) // 2
        patient_bodies, pids = patient_batches(generator, pc_clock, device_id, -(-patients // args.batch), args.batch)
        conn = await asyncpg.connect(dsn)
        try:
            for raw in patient_bodies:
                async with conn.transaction():
                    await sync_service.push(conn, actor, PushRequest.model_validate_json(raw), server_clock)
        finally:
            await conn.close()
        creates, edits = encounter_batches(
            random.Random(11), pc_clock, device_id, str(doctor_id), pids[:patients], args.batches, args.batch
        )
        phases.append(
            (
                "offline",
                offline_batches(random.Random(13), pc_clock, device_id, str(doctor_id), pids, args.batches, args.batch),
            )
        )
    else:
        creates, ids = patient_batches(generator, pc_clock, device_id, args.batches, args.batch)
        edits = []
        for b in range(args.batches):
            changes = []
            for pid in ids[b * args.batch : (b + 1) * args.batch]:
                stamp = encode(pc_clock.now())
                mobile = {"mobile": gen.mobile(generator.rng)}
                changes.append(
                    {"kind": "patient", "id": pid, "op": "upsert", "hlc": stamp, "fields": mobile,
                     "field_hlcs": {"mobile": stamp}}
                )  # fmt: skip
            edits.append(body(changes, str(device_id)))
    conn = await asyncpg.connect(dsn)
    out: dict[str, Any] = {}
    profiler = cProfile.Profile() if args.profile else None
    try:
        for label, bodies in [("create", creates), ("edit", edits), *phases]:
            stages: dict[str, list[float]] = {"parse": [], "push": [], "answer": [], "total": [], "cpu": []}
            for i, raw in enumerate(bodies):
                if profiler is not None and label == "create" and i > 0:
                    profiler.enable()
                c0, t0 = time.process_time(), time.perf_counter()
                req = PushRequest.model_validate_json(raw)
                t1 = time.perf_counter()
                async with conn.transaction():
                    response = await sync_service.push(conn, actor, req, server_clock)
                t2 = time.perf_counter()
                answer = PushResponse.model_dump_json(response)
                t3, c3 = time.perf_counter(), time.process_time()
                if profiler is not None:
                    profiler.disable()
                assert all(r.status != "rejected" for r in response.results), response.results[:3]
                assert len(answer) > 0
                if i == 0:
                    continue
                for key, value in (
                    ("parse", t1 - t0),
                    ("push", t2 - t1),
                    ("answer", t3 - t2),
                    ("total", t3 - t0),
                    ("cpu", c3 - c0),
                ):
                    stages[key].append(value * 1000)
            out[label] = {k: statistics.median(v) for k, v in stages.items()}
            out[label]["rec_s"] = args.batch / (out[label]["total"] / 1000)
            out[label]["cpu_us"] = out[label]["cpu"] * 1000 / args.batch
    finally:
        await conn.close()
    if profiler is not None:
        profiler.dump_stats(args.profile)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kind", choices=("patient", "encounter"), default="patient")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--profile", type=str, default=None)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="integmed-pushmicro-"))
    cluster = None
    try:
        cluster = embedded.start(workdir)
        asyncio.run(sp._create_database(cluster.dsn, "bench"))
        dsn = cluster.dsn_for("bench")
        migrate.upgrade(dsn)
        tune_gc()  # the collector settings of an API process (sync_server.asgi)
        results = asyncio.run(run(dsn, args))
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for label, stages in results.items():
        cells = ", ".join(f"{k} {v:.1f} ms" for k, v in stages.items() if k not in ("rec_s", "cpu_us"))
        print(
            f"{args.kind} {label}: {cells}  ->  {stages['rec_s']:,.0f} rec/s, API CPU {stages['cpu_us']:.0f} µs"
            f" a record (median of {args.batches - 1} batches)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
