"""Micro-benchmark: patient push batches through `sync_server.services.sync.push` in-process, stage by stage.

    PYTHONPATH=$PWD .venv/bin/python bench/push_micro.py [--batches 6] [--batch 1000] [--profile FILE]

Starts an embedded PostgreSQL in a temporary folder, migrates it, makes a clinic with a doctor and an enrolled
device, then pushes ``--batches`` batches of ``--batch`` new patients (`bench/indian_patients.py` fields), then
as many batches editing the mobile of those patients. For each batch it times: parsing the request body
(`PushRequest.model_validate_json` of the JSON the desktop sends; the route's FastAPI parse, ``json.loads`` then
validation, costs a few ms more), `sync.push` inside its own transaction including the commit, and writing the
answer as JSON (as the route does); ``cpu`` is this
process's CPU time for all three (PostgreSQL's work is not in it). The first batch of each kind warms caches and
is left out of the medians. ``--profile`` writes a cProfile of the creates. The collector runs with the API
process's settings (`sync_server.asgi.tune_gc`).
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


async def setup(dsn: str) -> tuple[Any, Any]:
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
    return clinic_id, device_id


async def run(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    clinic_id, device_id = await setup(dsn)
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
    ids: list[str] = []
    creates: list[bytes] = []
    for _ in range(args.batches):
        changes = []
        for _ in range(args.batch):
            fields = PatientFields.model_validate(generator.fields()).model_dump(mode="json")
            stamp = encode(pc_clock.now())
            pid = str(uuid7())
            ids.append(pid)
            changes.append(
                {"kind": "patient", "id": pid, "op": "upsert", "hlc": stamp, "fields": fields,
                 "field_hlcs": dict.fromkeys(fields, stamp)}
            )  # fmt: skip
        creates.append(body(changes, str(device_id)))
    edits: list[bytes] = []
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
        for label, bodies in (("create", creates), ("edit", edits)):
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
    finally:
        await conn.close()
    if profiler is not None:
        profiler.dump_stats(args.profile)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
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
        cells = ", ".join(f"{k} {v:.1f} ms" for k, v in stages.items() if k != "rec_s")
        print(f"{label}: {cells}  ->  {stages['rec_s']:,.0f} rec/s (median of {args.batches - 1} batches)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
