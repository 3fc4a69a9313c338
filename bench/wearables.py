"""Benchmark: wearable reading ingest through the product path vs raw COPY, and the health-graph timeline.

    .venv/bin/python bench/wearables.py [--n 1000000] [--batch 1000] [--patients 200] [--graph-requests 300]

Starts an embedded PostgreSQL in a temporary folder (no TimescaleDB: the native-partition path), migrates it,
makes a clinic, a doctor, an enrolled device and ``--patients`` patients, then:

1. **Product path.** ``--n`` readings (a mix: BP with systolic/diastolic/MAP/pulse, SpO2 with pulse,
   temperature, weight; about two years of 6 readings a day per patient) are pushed in batches of ``--batch``
   (the sync batch size, `MAX_PUSH_CHANGES`) through `sync_server.services.sync.push`, exactly as the
   push route calls it: one transaction per batch, the batch's `PushRequest` already parsed (HTTP and JSON
   parsing are not in the figure). That is: the batch lock and stored-answer check, validation of every
   reading (column-wise: `services.readings.bulk_rows`), plausibility, scope (patients locked), one COPY
   into ``wearable_data`` and the feed entries in a savepoint (the unique constraints catch a reading
   stored before: then the batch is decided reading by reading with lookups), the batch's days queued for
   the daily averages, audit, the answers and the stored answer, the commit. Building the requests is
   outside the timed region. Then the queued days are folded into the daily averages (what the API's
   background task does), timed on its own and reported next to the ingest.
2. **Raw COPY.** The table is emptied, and the same rows (the very row tuples the product path COPYs, same
   batches, one transaction per batch) are written with `copy_records_to_table` straight into
   ``wearable_data``: the floor.

Both run with the cyclic garbage collector set as in an API process (`sync_server.asgi.tune_gc`).
3. **Health graph.** One patient with two years of BP readings (6 a day × 4 metrics, pushed through the
   product path) is read with ``GET /api/v1/clinical/health-graph/{id}?include_wearables=true&include_ayush=true``
   over real HTTP (uvicorn on loopback, in this process): first pages and pages after a random ``from``.

Prints Markdown, writes JSON to ``bench/results/`` (git-ignored), stops PostgreSQL at the end. The machine
is shared (2 cores for everyone): figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import indian_patients as gen  # sibling module: bench/ is sys.path[0] when this file is run as a script
import server_patients as sp

from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import HLC, encode
from shared.ids import uuid7
from shared.records.reading import Reading, ReadingValue, TimeSource, reading_change_fields
from shared.sync.protocol import MAX_PUSH_CHANGES, Change, Op, PushRequest, RecordKind
from sync_server.asgi import tune_gc
from sync_server.db import embedded, migrate
from sync_server.db import wearables as wearables_db
from sync_server.security import tokens
from sync_server.services import readings as readings_service
from sync_server.services import sync as sync_service
from sync_server.services.context import Actor, RequestMeta
from sync_server.settings import Settings

GOAL_RATIO = 0.7
GOAL_P95_MS = 100.0
RESULTS_DIR = Path(__file__).resolve().parent / "results"
KINDS = (  # characteristic, metric -> (unit, ucum, low, high, decimals)
    ("2A35", {"bp_systolic": ("mmHg", "mm[Hg]", 100, 170, 0), "bp_diastolic": ("mmHg", "mm[Hg]", 60, 100, 0),
              "bp_mean_arterial": ("mmHg", "mm[Hg]", 75, 120, 0), "pulse_rate": ("beats/min", "/min", 55, 110, 0)}),
    ("2A5E", {"spo2": ("%", "%", 90, 100, 0), "pulse_rate": ("beats/min", "/min", 55, 110, 0)}),
    ("2A1C", {"temperature": ("°C", "Cel", 36, 39, 1)}),
    ("2A9D", {"weight": ("kg", "kg", 40, 110, 1)}),
)  # fmt: skip


def make_reading(rng: random.Random, patient: uuid.UUID, at: datetime, kind: int, device: str) -> Reading:
    characteristic, metrics = KINDS[kind]
    values = []
    for metric, (unit, ucum, low, high, places) in metrics.items():
        value = Decimal(rng.uniform(low, high)).quantize(Decimal(1).scaleb(-places))
        values.append(ReadingValue(metric=metric, value=value, unit=unit, ucum=ucum))
    return Reading(
        id=uuid7(),
        patient_id=patient,
        device_id=device,
        device_name="Bench device",
        characteristic=characteristic,
        measured_at=at,
        device_time=at.strftime("%Y-%m-%dT%H:%M:%S"),
        time_source=TimeSource.DEVICE_UTC,
        values=values,
        raw_hex="0102030405060708090a0b0c0d0e0f10",
        received_at=at + timedelta(seconds=30),
    )


def readings_for(rng: random.Random, patients: list[uuid.UUID], n: int, kinds: tuple[int, ...]) -> Iterator[Reading]:
    """``n`` readings spread over the patients, 6 a day each, in time order per patient, ending before today
    (the server refuses measurement times in the future)."""
    per = -(-n // len(patients))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=per // 6 + 2)
    made = 0
    for step in range(per):
        day, slot = divmod(step, 6)
        for i, patient in enumerate(patients):
            if made == n:
                return
            at = start + timedelta(days=day, hours=2 + 3 * slot, minutes=i % 60, seconds=rng.randrange(60))
            kind = kinds[(step + i) % len(kinds)]
            yield make_reading(rng, patient, at, kind, f"DEV-{i:05d}-{kind}")
            made += 1


def batches(readings: Iterator[Reading], size: int, device_id: uuid.UUID, clock: HLC) -> Iterator[PushRequest]:
    chunk: list[Change] = []
    for r in readings:
        stamp = encode(clock.now())
        fields = reading_change_fields(r)
        chunk.append(
            Change.model_construct(
                kind=RecordKind.READING,
                id=r.id,
                op=Op.UPSERT,
                hlc=stamp,
                fields=fields,
                field_hlcs=dict.fromkeys(fields, stamp),
            )
        )
        if len(chunk) == size:
            yield _request(chunk, device_id)
            chunk = []
    if chunk:
        yield _request(chunk, device_id)


def _request(changes: list[Change], device_id: uuid.UUID) -> PushRequest:
    body = {
        "batch_id": str(uuid7()),
        "device_id": str(device_id),
        "schema_version": RECORD_SCHEMA_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "changes": [c.model_dump(mode="json") for c in changes],
    }
    return PushRequest.model_validate(body)  # as the route has it: parsed and validated


async def setup(dsn: str, n_patients: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        clinic_id, user_id, hpr_id = await sp._insert_clinic_and_doctor(conn, 1)
        device_id = uuid7()
        await conn.execute(
            "INSERT INTO devices (id, clinic_id, name, enrolled_by, token_hash) VALUES ($1, $2, 'Bench PC', $3, $4)",
            device_id,
            clinic_id,
            user_id,
            b"x" * 32,
        )
        generator = gen.PatientGenerator(random.Random(7), set())
        rows = [generator.row(clinic_id, user_id, gen.utc_now()) for _ in range(n_patients + 1)]
        await conn.copy_records_to_table("patients", records=rows, columns=gen.ROW_COLUMNS)
        ids = [r[gen.ROW_COLUMNS.index("id")] for r in rows]
        session_id = uuid7()
        await conn.execute(
            "INSERT INTO auth_sessions (id, user_id, clinic_id, expires_at, client_ip, user_agent)"
            " VALUES ($1, $2, $3, now() + interval '1 day', '127.0.0.1', 'bench/wearables.py')",
            session_id,
            user_id,
            clinic_id,
        )
    finally:
        await conn.close()
    return {
        "clinic_id": clinic_id,
        "user_id": user_id,
        "hpr_id": hpr_id,
        "device_id": device_id,
        "patients": ids[:-1],
        "graph_patient": ids[-1],
        "session_id": session_id,
    }


async def product_ingest(dsn: str, fx: dict[str, Any], requests: Iterator[PushRequest]) -> dict[str, Any]:
    actor = Actor(
        user_id=fx["device_id"],
        session_id=uuid7(),
        clinic_id=fx["clinic_id"],
        role="device",
        hpr_id=None,
        meta=RequestMeta("127.0.0.1", "bench"),
    )
    clock = HLC("srv-bench")
    conn = await asyncpg.connect(dsn)
    timed = cpu = 0.0
    readings = applied = 0
    per_batch: list[float] = []
    try:
        for req in requests:
            t0, c0 = time.perf_counter(), time.process_time()
            async with conn.transaction():
                response = await sync_service.push(conn, actor, req, clock)
            elapsed = time.perf_counter() - t0
            cpu += time.process_time() - c0
            timed += elapsed
            per_batch.append(elapsed * 1000)
            readings += len(req.changes)
            applied += sum(1 for r in response.results if r.status == "applied")
    finally:
        await conn.close()
    return {
        "readings": readings,
        "applied": applied,
        "seconds": timed,
        "api_cpu_us_per_reading": cpu / readings * 1e6 if readings else None,
        "readings_per_s": readings / timed if timed else 0.0,
        "batch_p50_ms": statistics.median(per_batch) if per_batch else None,
        "batch_p95_ms": _pct(per_batch, 95),
    }


async def fold_all(dsn: str) -> dict[str, Any]:
    """What the API's background folder does, run now and timed: every queued day into the daily averages."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        t0 = time.perf_counter()
        batches_folded = await readings_service.fold_daily(pool)
        seconds = time.perf_counter() - t0
    finally:
        await pool.close()
    return {"batches": batches_folded, "seconds": seconds}


async def raw_copy(dsn: str, fx: dict[str, Any], requests: Iterator[PushRequest]) -> dict[str, Any]:
    """The same readings' rows, batch by batch, COPYed straight into wearable_data (one transaction each)."""
    conn = await asyncpg.connect(dsn)
    timed = cpu = 0.0
    readings = rows_n = 0
    try:
        await conn.execute("TRUNCATE wearable_data")
        for req in requests:
            # Exactly the rows the product path COPYs (its bulk path: same values, same Python types).
            bulk = readings_service.bulk_rows(req.changes, fx["clinic_id"], req.batch_id)
            assert bulk is not None, "every generated batch takes the bulk path"
            rows = bulk.rows
            t0, c0 = time.perf_counter(), time.process_time()
            async with conn.transaction():
                await conn.copy_records_to_table("wearable_data", records=rows, columns=wearables_db.COLUMNS)
            timed += time.perf_counter() - t0
            cpu += time.process_time() - c0
            readings += len(req.changes)
            rows_n += len(rows)
    finally:
        await conn.close()
    return {
        "readings": readings,
        "rows": rows_n,
        "seconds": timed,
        "api_cpu_us_per_reading": cpu / readings * 1e6,
        "readings_per_s": readings / timed,
    }


def _pct(samples: list[float], pct: int) -> float | None:
    if len(samples) < 2:
        return samples[0] if samples else None
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def graph_latency(base: str, token: str, patient: uuid.UUID, n: int, rng: random.Random) -> dict[str, Any]:
    url = f"/api/v1/clinical/health-graph/{patient}"
    params = {"include_wearables": "true", "include_ayush": "true"}
    samples: list[float] = []
    entries = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, trust_env=False, timeout=30) as c:
        for i in range(n + 20):
            first = datetime.now(UTC).date() - timedelta(days=730)
            extra = {} if i % 2 == 0 else {"from": (first + timedelta(days=rng.randrange(700))).isoformat()}
            t0 = time.perf_counter()
            r = c.get(url, params=params | extra)
            elapsed = (time.perf_counter() - t0) * 1000
            r.raise_for_status()
            if i >= 20:  # warm-up first
                samples.append(elapsed)
                entries.append(len(r.json()["entries"]))
    return {
        "requests": len(samples),
        "p50_ms": statistics.median(samples),
        "p95_ms": _pct(samples, 95),
        "p99_ms": _pct(samples, 99),
        "entries_per_page": statistics.mean(entries),
    }


def run(args: argparse.Namespace, cluster: embedded.EmbeddedPostgres) -> dict[str, Any]:
    asyncio.run(sp._create_database(cluster.dsn, "bench"))
    dsn = cluster.dsn_for("bench")
    migrate.upgrade(dsn)
    fx = asyncio.run(setup(dsn, args.patients))
    device_clock = HLC(fx["device_id"].hex)
    all_kinds = tuple(range(len(KINDS)))
    tune_gc()  # the collector settings of an API process (sync_server.asgi), for both timed paths
    _say(f"product path: {args.n:,} readings in batches of {args.batch}")
    product = asyncio.run(
        product_ingest(
            dsn,
            fx,
            batches(
                readings_for(random.Random(1), fx["patients"], args.n, all_kinds),
                args.batch,
                fx["device_id"],
                device_clock,
            ),
        )
    )
    _say(f"product path: {product['readings_per_s']:,.0f} readings/s")
    folded = asyncio.run(fold_all(dsn))
    folded["readings_per_s"] = product["readings"] / folded["seconds"] if folded["seconds"] else None
    _say(f"daily averages folded (background work, not in the product figure): {folded['seconds']:.1f} s")
    counts = asyncio.run(sp._scalar(dsn, "SELECT count(*) FROM wearable_data"))
    partitions = asyncio.run(
        sp._scalar(dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'wearable_data'::regclass")
    )
    _say(f"raw COPY of the same {counts:,} rows")
    raw = asyncio.run(
        raw_copy(
            dsn,
            fx,
            batches(
                readings_for(random.Random(1), fx["patients"], args.n, all_kinds),
                args.batch,
                fx["device_id"],
                device_clock,
            ),
        )
    )
    _say(f"raw COPY: {raw['readings_per_s']:,.0f} readings/s")
    graph_n = 2 * 365 * 6
    _say(f"health graph: {graph_n:,} BP readings (4 metrics) for one patient, then HTTP")
    asyncio.run(
        product_ingest(
            dsn,
            fx,
            batches(
                readings_for(random.Random(2), [fx["graph_patient"]], graph_n, (0,)),
                args.batch,
                fx["device_id"],
                device_clock,
            ),
        )
    )
    asyncio.run(fold_all(dsn))
    days = asyncio.run(
        sp._scalar(
            dsn, f"SELECT count(DISTINCT day) FROM wearable_daily_avg WHERE patient_id = '{fx['graph_patient']}'"
        )
    )
    settings = Settings(environment="test", database_url=dsn, jwt_secret=secrets.token_urlsafe(48))
    claims = tokens.AccessClaims(fx["user_id"], fx["session_id"], fx["clinic_id"], "doctor", fx["hpr_id"])
    token = tokens.issue_access(
        claims, secret=settings.jwt_secret.get_secret_value(), issuer=settings.jwt_issuer, ttl_s=4 * 3600
    )
    asyncio.run(sp._scalar(dsn, "VACUUM ANALYZE wearable_daily_avg"))
    with sp.serve_api(settings) as base:
        graph = graph_latency(base, token, fx["graph_patient"], args.graph_requests, random.Random(3))
    graph["days_with_averages"] = days
    return {
        "benchmark": "wearables",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "revision": sp.revision(),
        "machine": sp.machine(dsn),
        "params": {"n": args.n, "batch": args.batch, "patients": args.patients, "bulk_chunk": args.bulk_chunk},
        "rows_stored": counts,
        "partitions": partitions,
        "product": product,
        "raw_copy": raw,
        "fold": folded,
        "ratio": product["readings_per_s"] / raw["readings_per_s"],
        "ratio_with_fold": product["readings"] / (product["seconds"] + folded["seconds"]) / raw["readings_per_s"],
        "graph": graph,
    }


def markdown(r: dict[str, Any]) -> str:
    p, raw, g, fold = r["product"], r["raw_copy"], r["graph"], r["fold"]
    ratio_verdict = "met" if r["ratio"] >= GOAL_RATIO else "MISSED"
    graph_verdict = "met" if g["p95_ms"] < GOAL_P95_MS else "MISSED"
    return "\n".join(
        [
            f"Code {r['revision']}. {r['params']['n']:,} readings ({r['rows_stored']:,} metric rows, "
            f"{r['partitions']} monthly partitions), batches of {r['params']['batch']} "
            f"(bulk chunks of {r['params'].get('bulk_chunk')}), "
            f"{r['params']['patients']} patients",
            "",
            "| ingest | readings | seconds | readings/s | batch p50 ms | batch p95 ms |",
            "|---|--:|--:|--:|--:|--:|",
            f"| product path (sync push service) | {p['readings']:,} | {p['seconds']:.1f} | {p['readings_per_s']:,.0f} "
            f"| {sp._f(p['batch_p50_ms'])} | {sp._f(p['batch_p95_ms'])} |",
            f"| raw COPY, same rows and batches | {raw['readings']:,} | {raw['seconds']:.1f} "
            f"| {raw['readings_per_s']:,.0f} | | |",
            f"| daily averages folded afterwards (background task) | {p['readings']:,} | {fold['seconds']:.1f} "
            f"| {fold['readings_per_s'] or 0:,.0f} | | |",
            "",
            f"Ratio product / raw COPY: {r['ratio']:.2f} (goal ≥ {GOAL_RATIO}: {ratio_verdict}); "
            f"counting the background fold as well: {r['ratio_with_fold']:.2f}",
            "",
            f"CPU of this process (the API's share; PostgreSQL runs in its own processes): product path "
            f"{p['api_cpu_us_per_reading']:.1f} µs a reading, raw COPY {raw['api_cpu_us_per_reading']:.1f} µs.",
            "",
            "| health graph over HTTP | requests | p50 ms | p95 ms | p99 ms | entries/page | days |",
            "|---|--:|--:|--:|--:|--:|--:|",
            f"| 2 years × 6 readings/day × 4 metrics | {g['requests']} | {g['p50_ms']:.1f} | {g['p95_ms']:.1f} "
            f"| {g['p99_ms']:.1f} | {g['entries_per_page']:.0f} | {g['days_with_averages']} |",
            "",
            f"Goal health-graph p95 < {GOAL_P95_MS:.0f} ms: {graph_verdict}",
        ]
    )


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1_000_000, help="readings through the product path")
    parser.add_argument("--batch", type=int, default=MAX_PUSH_CHANGES, help="readings per push batch")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--graph-requests", type=int, default=300)
    parser.add_argument(
        "--bulk-chunk",
        type=int,
        default=readings_service.BULK_CHUNK,
        help="readings a chunk of the bulk path (one COPY each, the next chunk checked meanwhile); "
        "the batch size turns the pipelining off",
    )
    args = parser.parse_args(argv)
    readings_service.BULK_CHUNK = args.bulk_chunk
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="integmed-bench-"))
    cluster = None
    try:
        cluster = embedded.start(workdir)
        results = run(args, cluster)
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(markdown(results))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"wearables-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    _say(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
