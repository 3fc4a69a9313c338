"""Benchmark: clinic-PC sync (SQLite ↔ FastAPI + PostgreSQL) on PouchDB's generated records, next to PouchDB.

    .venv/bin/python bench/sync_bench.py [--records 50000] [--search-patients 100000] \\
        [--peer-results PEER/results/leveldb-50000.json]

Records. The peer's generator (``gen.js`` of ../shared/peer/pouchdb) writes clinic-like documents as NDJSON,
one patient followed by two of its encounters. ``--records-mix peer`` (the default) takes its first N
documents as they come, the peer's own set: at 50k, 16,667 patients + 33,333 encounters, each mapped to a
record of ours (`peer_records`: `to_patient_fields`, `to_encounter`), in gen.js order; rates count records
(patients + encounters), as the peer counts docs. ``--records-mix patients`` (the figures before encounters
synced) asks gen.js for 3 × N documents and keeps N patient documents. A patient's ``_id``, ``given_name``,
``family_name``, ``registration_no``, timestamps and ``created_by_device`` have no field of ours.

Server. An embedded PostgreSQL in a temporary folder; the national-services sandbox and the real API each in
their own process, started with the production launcher (``python -m sync_server.cli serve|sandbox``, i.e.
``integmed-server``), so the API's peak RSS (``VmHWM``) is its own. PostgreSQL's memory is sampled as the sum of
its processes' PSS. Each push batch size gets a fresh database, demo clinic (seeded as ``integmed-server
dev`` does) and API process.

Clinic PCs. Real SQLite stores in temporary folders, enrolled through HPR OTP sign-in against the sandbox
(as ``tests/e2e`` does), driven by the production services: each phase runs in a child process
(``bench/sync_client_phases.py``) so its peak RSS is its own. Phases:

1. local write of the N records on PC A, in gen.js order: `PatientService.register` one by one, each encounter
   `EncounterService.start` then `complete` (PC A1); on PC A2 the patients by one CSV import, the encounters
   one by one;
2. push: one `SyncClient.run_once` on A1 (batch 500) and A2 (batch 1000); push time = until the first pull
   request; the same round then pulls back its own N echoes (timed separately);
3. initial pull of the N records on fresh PCs (pages of 1000 and 5000);
4. no-op `run_once` rounds on A1: p50/p95 and HTTP requests per round (httpx event hook);
5. 100 patient edits on A1 (one `update` each), then A1 syncs and B syncs: time until B has them (5 rounds);
6. local search (`PatientService.search`, the UI's limit of 200) over a query mix on a PC with the search set;
7. cold start: a fresh process opening the search-set store (`open_local_store`) and running its first search.

It prints Markdown tables, writes the JSON to ``bench/results/`` (git-ignored), and removes its folders and
stops every process it started at the end, also on Ctrl-C or SIGTERM. Results go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import server_patients  # sibling module (bench/ is sys.path[0]): machine() and the run helpers
from peer_records import stored_note, to_encounter, to_patient_fields
from sync_client_phases import CLIENT_GC_ENV, DEMO_DOCTOR_MOBILE, PULL_PROFILE_ENV, cpu_seconds, proc_memory_kib

from sync_server.db import embedded, migrate

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_GEN_JS = REPO.parent / "shared" / "peer" / "pouchdb" / "gen.js"
CLIENT = BENCH_DIR / "sync_client_phases.py"
MEASURED_CODE = ("sync_server", "shared", "desktop/store", "desktop/sync", "desktop/services", "migrations")
SEED = 42  # the peer's seed: its documents are byte-identical for the same (n, seed)
DOCS_PER_PATIENT = 3  # gen.js: each patient is followed by two encounters
CSV_COLUMNS = (
    "id",
    "name",
    "mobile",
    "gender",
    "year_of_birth",
    "abha_number",
    "abha_address",
    "address_line",
    "address_district",
    "address_state",
    "address_pincode",
)
# Share of each query kind in the search mix (the peer's data has Latin names only: no Devanagari kind).
MIX = {
    "prefix": 25,
    "full_name": 15,
    "given_name": 10,
    "surname": 10,
    "mobile": 15,
    "mobile_part": 5,
    "abha": 10,
    "abha_address": 10,
}
SEARCH_LIMIT = 200  # what the patient search screen asks for (desktop/ui/screens/patient_search.py)
GOALS = {
    "throughput_ratio": 3.0,
    "throughput_rec_s": 10_000,
    "noop_p50_ms": 5.0,
    "noop_requests": 1,
    "visible_ms": 60.0,
    "rss_mib": 150.0,
    "search_p95_ms": 20.0,
    "coldstart_s": 2.0,
}


# --------------------------------------------------------------------------------------------- data


@dataclass
class DataSet:
    ndjson: Path
    jsonl: Path  # our patient fields, one JSON object per line, in gen.js order
    patients: int  # lines of `jsonl` (the records' patients, then more for the search set)
    source_docs: int
    peer_patient_bytes: float  # mean JSON size of gen.js patient documents
    our_fields_bytes: float  # mean JSON size of the same records as our fields (with the id)
    abha_addresses_cleared: int  # later patients whose ABHA address an earlier one already had
    mix: str = "patients"
    # The synced records, in gen.js order: {"kind": "patient", "fields": ...} / {"kind": "encounter", "create":
    # ..., "complete": ...}; None for the patients mix (the first `records` lines of `jsonl` are the records).
    records_jsonl: Path | None = None
    record_patients: int = 0  # patients among the synced records
    record_encounters: int = 0  # encounters among the synced records
    peer_encounter_bytes: float = 0.0  # mean JSON size of gen.js encounter documents (of the records)
    our_encounter_bytes: float = 0.0  # mean JSON size of the same encounters as the fields our sync carries
    peer_doc_bytes: float = 0.0  # mean over all synced records, gen.js side
    our_record_bytes: float = 0.0  # mean over all synced records, ours
    csv: dict[int, Path] = field(default_factory=dict)


def _our_encounter_bytes(create: dict[str, Any], complete: bool) -> int:
    """JSON size of an encounter as our sync carries it: id and the synced fields (`desktop.store.encounters.
    synced_fields`: header, status, completed_at, one field per SOAP section as stored, derived vitals included);
    the doctor id (the PC's signed-in doctor) counted as a UUID. Field stamps are not counted (as ``_rev`` is
    not on the peer's side); the wire figures of the push and pull include them."""
    note = stored_note(create["soap_note"])
    fields: dict[str, Any] = {
        "id": create["id"],
        "patient_id": create["patient_id"],
        "doctor_id": str(uuid.UUID(int=0)),
        "encounter_type": create["encounter_type"],
        "start_time": create["start_time"],
        "chief_complaint": create["chief_complaint"],
        "status": "completed" if complete else "draft",
        "completed_at": create["start_time"] if complete else None,
    } | note
    return len(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode())


def _unique_identifiers(record: dict[str, Any], addresses: set[str | None], numbers: set[str | None]) -> bool:
    """ABHA numbers and addresses are unique within a clinic (registration refuses a second one). gen.js draws
    addresses as first.last<10-9999>@abdm: a few repeat; the later patient gets none. True when cleared."""
    cleared = False
    if record["abha_address"] in addresses:
        record["abha_address"] = None
        cleared = True
    if record["abha_number"] in numbers:
        record["abha_number"] = None
    addresses.add(record["abha_address"])
    numbers.add(record["abha_number"])
    return cleared


def prepare_data(gen_js: Path, patients: int, workdir: Path) -> DataSet:
    """Run gen.js for enough documents, keep the patients, map them to our fields (JSONL)."""
    docs = patients * DOCS_PER_PATIENT
    ndjson = workdir / f"docs-{docs}.ndjson"
    subprocess.run(["node", str(gen_js), "--n", str(docs), "--seed", str(SEED), "--out", str(ndjson)], check=True)
    jsonl = workdir / "patients.jsonl"
    addresses: set[str | None] = set()
    numbers: set[str | None] = set()
    cleared = count = 0
    peer_bytes = our_bytes = 0
    with ndjson.open(encoding="utf-8") as src, jsonl.open("w", encoding="utf-8") as out:
        for line in src:
            doc = json.loads(line)
            if doc["type"] != "patient":
                continue
            record = to_patient_fields(doc)
            cleared += _unique_identifiers(record, addresses, numbers)
            peer_bytes += len(line.rstrip("\n").encode())
            text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            our_bytes += len(text.encode())
            out.write(text + "\n")
            count += 1
            if count == patients:
                break
    return DataSet(ndjson, jsonl, count, docs, peer_bytes / count, our_bytes / count, cleared)


def prepare_peer_data(gen_js: Path, records: int, search_patients: int, workdir: Path, *, complete: bool) -> DataSet:
    """The peer's own set: gen.js's first ``records`` documents, patients and encounters, mapped to our records
    (`peer_records`), in gen.js order; the stream goes on for the search set's patients when it needs more."""
    docs = max(records, search_patients * DOCS_PER_PATIENT)
    ndjson = workdir / f"docs-{docs}.ndjson"
    subprocess.run(["node", str(gen_js), "--n", str(docs), "--seed", str(SEED), "--out", str(ndjson)], check=True)
    jsonl, records_jsonl = workdir / "patients.jsonl", workdir / "records.jsonl"
    addresses: set[str | None] = set()
    numbers: set[str | None] = set()
    ours: dict[str, str] = {}  # gen.js patient _id -> our id
    cleared = patients = record_patients = record_encounters = 0
    peer_p = our_p = peer_e = our_e = 0
    with (
        ndjson.open(encoding="utf-8") as src,
        jsonl.open("w", encoding="utf-8") as out,
        records_jsonl.open("w", encoding="utf-8") as rec,
    ):
        for i, line in enumerate(src):
            doc = json.loads(line)
            in_set = i < records
            size = len(line.rstrip("\n").encode())
            if doc["type"] == "patient":
                if not in_set and patients >= search_patients:
                    break
                record = to_patient_fields(doc)
                cleared += _unique_identifiers(record, addresses, numbers)
                ours[doc["_id"]] = record["id"]
                text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
                out.write(text + "\n")
                patients += 1
                if in_set:
                    record_patients += 1
                    peer_p += size
                    our_p += len(text.encode())
                    rec.write(json.dumps({"kind": "patient", "fields": record}, ensure_ascii=False) + "\n")
            elif in_set:
                create = to_encounter(doc, ours[doc["patient_id"]])
                record_encounters += 1
                peer_e += size
                our_e += _our_encounter_bytes(create, complete)
                line_out = {"kind": "encounter", "create": create, "complete": complete}
                rec.write(json.dumps(line_out, ensure_ascii=False) + "\n")
    n = record_patients + record_encounters
    return DataSet(
        ndjson,
        jsonl,
        patients,
        docs,
        peer_p / max(1, record_patients),
        our_p / max(1, record_patients),
        cleared,
        mix="peer",
        records_jsonl=records_jsonl,
        record_patients=record_patients,
        record_encounters=record_encounters,
        peer_encounter_bytes=peer_e / max(1, record_encounters),
        our_encounter_bytes=our_e / max(1, record_encounters),
        peer_doc_bytes=(peer_p + peer_e) / max(1, n),
        our_record_bytes=(our_p + our_e) / max(1, n),
    )


def write_csv(data: DataSet, n: int, workdir: Path) -> Path:
    """The first ``n`` records as a patient CSV (the columns of `desktop.services.patient_csv`), with ids."""
    path = workdir / f"patients-{n}.csv"
    with data.jsonl.open(encoding="utf-8") as src, path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for i, line in enumerate(src):
            if i == n:
                break
            r = json.loads(line)
            a = r["address"]
            writer.writerow(
                [
                    *(r["id"], r["name"], r["mobile"], r["gender"], r["year_of_birth"]),
                    *(r["abha_number"] or "", r["abha_address"] or ""),
                    *(a["line"], a["district"], a["state"], a["pincode"]),
                ]
            )
    data.csv[n] = path
    return path


def read_records(data: DataSet, n: int) -> list[dict[str, Any]]:
    out = []
    with data.jsonl.open(encoding="utf-8") as src:
        for i, line in enumerate(src):
            if i == n:
                break
            out.append(json.loads(line))
    return out


# --------------------------------------------------------------------------------------------- queries


def make_queries(records: list[dict[str, Any]], n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` searches in the proportions of `MIX`, drawn from the records on the PC."""
    total = sum(MIX.values())
    kinds = [k for k, w in MIX.items() for _ in range(max(1, round(n * w / total)))]
    rng.shuffle(kinds)
    queries = []
    for kind in kinds:
        r = rng.choice(records)
        first, _, last = r["name"].partition(" ")
        if kind == "prefix":
            word = rng.choice([first, last])
            text = word[: rng.randint(3, min(6, len(word)))]
            queries.append({"kind": kind, "q": text.lower() if rng.random() < 0.5 else text})
        elif kind == "full_name":
            queries.append({"kind": kind, "q": r["name"], "expect_name": r["name"]})
        elif kind == "given_name":
            queries.append({"kind": kind, "q": first})
        elif kind == "surname":
            queries.append({"kind": kind, "q": last})
        elif kind == "mobile":
            d = r["mobile"][3:]
            text = rng.choice([d, f"{d[:5]} {d[5:]}", f"+91 {d[:5]} {d[5:]}"])
            queries.append({"kind": kind, "q": text, "expect_id": r["id"]})
        elif kind == "mobile_part":
            queries.append({"kind": kind, "q": r["mobile"][-rng.randint(4, 6) :], "expect_id": r["id"]})
        elif kind == "abha":
            d = r["abha_number"] or records[0]["abha_number"]
            text = rng.choice([d, f"{d[:2]}-{d[2:6]}-{d[6:10]}-{d[10:]}"])
            queries.append({"kind": kind, "q": text, "expect_id": r["id"] if r["abha_number"] else None})
        else:
            address = r["abha_address"] or records[0]["abha_address"]
            queries.append({"kind": kind, "q": address, "expect_id": r["id"] if r["abha_address"] else None})
    return queries


# --------------------------------------------------------------------------------------------- processes


class Proc:
    """A server process we started (by its own pid), with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(argv, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=REPO)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, url: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, trust_env=False, timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def memory_mib(self) -> dict[str, float]:
        mem = proc_memory_kib(self.pid)
        return {"peak_rss_mib": round(mem["VmHWM"] / 1024, 1), "rss_mib": round(mem["VmRSS"] / 1024, 1)}

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log_file.close()


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def start_sandbox(workdir: Path) -> tuple[Proc, str]:
    port = embedded.free_port()
    argv = _python("-m", "sync_server.cli", "--log-level", "warning", "sandbox", "--port", str(port))
    proc = Proc("sandbox", argv, dict(os.environ), workdir / "sandbox.log")
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(f"{url}/health")
    return proc, url


# uvicorn re-raises SIGTERM after its graceful shutdown with the handler it found at start, so the handler
# installed here is the one that runs last: it writes the profile (``python -m cProfile`` never gets to).
_PROFILED = """
import cProfile, os, runpy, signal, sys
profile = cProfile.Profile()
def _dump(signum, frame):
    profile.disable()
    profile.dump_stats({out!r})
    os._exit(0)
signal.signal(signal.SIGTERM, _dump)
sys.argv = sys.argv[1:]
profile.enable()
runpy.run_module("sync_server.cli", run_name="__main__", alter_sys=True)
"""


def start_api(workdir: Path, dsn: str, sandbox: str, tag: str, profile: Path | None = None) -> tuple[Proc, str]:
    """``integmed-server serve`` with production settings, in its own process (under cProfile with ``profile``:
    the statistics are written to ``profile/api-<tag>.prof`` when the process stops)."""
    port = embedded.free_port()
    env = dict(os.environ) | {
        "INTEGMED_ENVIRONMENT": "production",
        "INTEGMED_DATABASE_URL": dsn,
        "INTEGMED_JWT_SECRET": secrets.token_urlsafe(48),
        "INTEGMED_HPR_URL": f"{sandbox}/v4/int",
        "INTEGMED_ABDM_GATEWAY_URL": f"{sandbox}/api/hiecm",
    }
    # Production settings need the prescription-signing issuer (P4); the sandbox-rooted one of `dev` serves.
    from sync_server.signing.issuer import ensure_dev_signing

    key, cert, kek = ensure_dev_signing(workdir)
    env |= {
        "INTEGMED_SIGNING_ISSUER_KEY": str(key),
        "INTEGMED_SIGNING_ISSUER_CERT": str(cert),
        "INTEGMED_SIGNING_KEK": kek,
    }
    argv = _python("-m", "sync_server.cli", "--log-level", "warning", "serve", "--port", str(port))
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        argv[1:3] = ["-c", _PROFILED.format(out=str(profile / f"api-{tag}.prof")), "sync_server.cli"]
    proc = Proc(f"api-{tag}", argv, env, workdir / f"api-{tag}.log")
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(f"{url}/ready")
    return proc, url


def prepare_database(cluster: embedded.EmbeddedPostgres, name: str, sandbox: str) -> str:
    """A fresh database, migrated, with the demo clinics seeded (their staff looked up in the sandbox HPR)."""
    from sync_server.hpr.client import HprClient
    from sync_server.services.clinics import seed_demo_in_own_transactions

    async def go() -> None:
        conn = await asyncpg.connect(cluster.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(go())
    dsn = cluster.dsn_for(name)
    migrate.upgrade(dsn)

    async def seed() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            hpr = HprClient(
                http,
                hpr_url=f"{sandbox}/v4/int",
                gateway_url=f"{sandbox}/api/hiecm",
                client_id="integmed-dev",
                client_secret="integmed-dev-secret",
            )
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
            try:
                await seed_demo_in_own_transactions(pool, hpr)
            finally:
                await pool.close()

    asyncio.run(seed())
    return dsn


class PgMemory:
    """Samples the summed PSS of the PostgreSQL processes (postmaster and its children) every 200 ms."""

    def __init__(self, pgdata: Path) -> None:
        self.postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-memory", daemon=True)

    def _pids(self) -> list[int]:
        pids = [self.postmaster]
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = Path(entry.path, "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.postmaster:
                        pids.append(int(entry.name))
        return pids

    def sample(self) -> int:
        total = 0
        for pid in self._pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_kib = max(self.peak_kib, self.sample())

    def __enter__(self) -> PgMemory:
        self.peak_kib = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def client_phase(
    phase: str, spec: dict[str, Any], *, timeout_s: float = 3600, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one PC phase in a child process (its own peak RSS); returns what it printed as JSON."""
    spawned_at = time.monotonic()
    env = dict(os.environ) | {"PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"} | (extra_env or {})
    proc = subprocess.Popen(
        _python(str(CLIENT), phase), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, cwd=REPO
    )
    try:
        out, _ = proc.communicate(json.dumps(spec | {"spawned_at": spawned_at}), timeout=timeout_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"client phase {phase} failed with exit code {proc.returncode}")
    return dict(json.loads(out.strip().splitlines()[-1]))


# --------------------------------------------------------------------------------------------- statistics


def pct(values: list[float], p: float) -> float:
    """The p-th percentile, nearest rank (as the peer's bench.js computes it)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-p * len(ordered) // 100)))
    return ordered[int(rank) - 1]


def search_stats(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def one(group: list[dict[str, Any]]) -> dict[str, Any]:
        ms = [s["ms"] for s in group]
        judged = [s["found"] for s in group if s["found"] is not None]
        return {
            "n": len(ms),
            "p50_ms": pct(ms, 50),
            "p95_ms": pct(ms, 95),
            "p99_ms": pct(ms, 99),
            "max_ms": max(ms),
            "mean_results": statistics.fmean(s["results"] for s in group),
            "found_pct": 100 * sum(judged) / len(judged) if judged else None,
        }

    out = {k: one([s for s in samples if s["kind"] == k]) for k in MIX if any(s["kind"] == k for s in samples)}
    out["all"] = one(samples)
    return out


# --------------------------------------------------------------------------------------------- run


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class Session:
    args: argparse.Namespace
    workdir: Path
    data: DataSet
    cluster: embedded.EmbeddedPostgres
    sandbox: str
    procs: list[Proc] = field(default_factory=list)


def run_server_round(s: Session, batch_size: int, *, first: bool) -> dict[str, Any]:
    """One fresh database + API process: write on A, push with ``batch_size``; on the first round also the
    initial pulls, the no-op rounds and the edit rounds."""
    n, tag, data = s.args.records, f"bs{batch_size}", s.data
    patients, encounters = data.record_patients, data.record_encounters
    completed = data.mix == "peer" and s.args.encounter_status == "completed"
    dsn = prepare_database(s.cluster, f"sync_{tag}", s.sandbox)
    api, url = start_api(s.workdir, dsn, s.sandbox, tag, s.args.profile_api)
    s.procs.append(api)
    out: dict[str, Any] = {"batch_size": batch_size}
    try:
        with PgMemory(s.cluster.pgdata) as pg:
            common = {"server": url, "sandbox": s.sandbox, "server_pid": api.pid, "n": n}
            # What the PC holds and what its outbox queues: a completed encounter is two entries (start, complete),
            # which go to the server as one change (`desktop.sync.coalesce`: adjacent edits of one record).
            common |= {"patients": patients, "encounters": encounters}
            common |= {"changes": patients + encounters * (2 if completed else 1)}
            common |= {"records_jsonl": str(data.records_jsonl) if data.records_jsonl else None}
            a_dir = str(s.workdir / f"pc-a-{tag}")
            mode = "register" if first else "import"
            what = f"{patients:,} patients + {encounters:,} encounters" if encounters else f"{n:,} patients"
            _say(f"[{tag}] PC A: enrol, then write {what} ({mode})")
            spec = common | {"data_dir": a_dir, "name": f"PC A {tag}", "mode": mode}
            spec |= {"jsonl": str(data.jsonl), "csv": str(data.csv.get(patients, ""))}
            out["write"] = client_phase("write", spec)
            _say(f"[{tag}] write: {out['write']['seconds']:.1f} s, {out['write']['rec_per_s']:,.0f} rec/s")
            api_cpu0 = cpu_seconds(api.pid)
            out["push"] = client_phase("push", common | {"data_dir": a_dir, "batch_size": batch_size})
            p = out["push"]
            _say(
                f"[{tag}] push: {p['push_s']:.1f} s, {p['push_rec_per_s']:,.0f} rec/s;"
                f" echo pull {p['echo_pull_s']:.1f} s"
            )
            out["api_after_push"] = api.memory_mib() | {"cpu_s": round(cpu_seconds(api.pid) - api_cpu0, 2)}
            if first:
                out["pull"] = []
                for page in s.args.page_sizes:
                    b_dir = str(s.workdir / f"pc-b-{tag}-p{page}")
                    spec = common | {"data_dir": b_dir, "name": f"PC B p{page}", "page_size": page}
                    env = {CLIENT_GC_ENV: s.args.client_gc}
                    env |= {PULL_PROFILE_ENV: str(s.args.profile_pull)} if s.args.profile_pull else {}
                    out["pull"].append(client_phase("pull", spec, extra_env=env))
                    r = out["pull"][-1]
                    _say(f"[{tag}] pull (pages of {page}): {r['seconds']:.1f} s, {r['rec_per_s']:,.0f} rec/s")
                spec = common | {"data_dir": a_dir, "rounds": s.args.noop_rounds, "warmup": 3}
                out["noop"] = client_phase("noop", spec)
                _say(f"[{tag}] no-op: p50 {pct(out['noop']['ms'], 50):.1f} ms")
                b_dir = str(s.workdir / f"pc-b-{tag}-p{s.args.page_sizes[0]}")
                spec = common | {"a_dir": a_dir, "b_dir": b_dir, "jsonl": str(data.jsonl)}
                out["edits"] = client_phase("edits", spec | {"edits": s.args.edits, "rounds": s.args.edit_rounds})
                visible = [r["visible_ms"] for r in out["edits"]["rounds"]]
                _say(f"[{tag}] {s.args.edits} edits visible on B: p50 {pct(visible, 50):.0f} ms")
                live = [r["visible_ms"] for r in out["edits"]["live_rounds"]]
                single = [r["visible_ms"] for r in out["edits"]["live_single"]]
                _say(
                    f"[{tag}] with B's waiting pull: {s.args.edits} edits p50 {pct(live, 50):.0f} ms,"
                    f" 1 edit p50 {pct(single, 50):.0f} ms"
                )
        out["api"] = api.memory_mib() | {"cpu_s_total": round(cpu_seconds(api.pid), 2)}
        out["postgres_peak_pss_mib"] = round(pg.peak_kib / 1024, 1)
        out["server_db_bytes"] = asyncio.run(_database_size(dsn))
    finally:
        api.stop()
    return out


async def _database_size(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


def run_local(s: Session) -> dict[str, Any]:
    """Search and cold start on one PC holding the search set (no server involved)."""
    n = s.args.search_patients
    out: dict[str, Any] = {}
    data_dir = str(s.workdir / "pc-search")
    _say(f"search PC: CSV import of {n:,} patients")
    out["build"] = client_phase("build_search_store", {"data_dir": data_dir, "csv": str(s.data.csv[n]), "n": n})
    _say(f"search PC built in {out['build']['seconds']:.1f} s")
    records = read_records(s.data, n)
    rng = random.Random(s.args.seed)
    warmup, queries = make_queries(records, s.args.warmup, rng), make_queries(records, s.args.queries, rng)
    del records
    spec = {"data_dir": data_dir, "warmup": warmup, "queries": queries, "limit": SEARCH_LIMIT}
    out["search"] = client_phase("search", spec)
    out["search_stats"] = search_stats(out["search"].pop("samples"))
    _say(f"search p95 {out['search_stats']['all']['p95_ms']:.1f} ms over {len(queries)} queries")
    runs = []
    for i in range(s.args.coldstarts):
        query = ["Priya", "kumar", "98", "Sharma", "anil"][i % 5]
        runs.append(client_phase("coldstart", {"data_dir": data_dir, "query": query, "limit": SEARCH_LIMIT}))
    out["coldstart"] = runs
    _say(f"cold start (spawn → first search done): median {statistics.median(r['total_ms'] for r in runs):.0f} ms")
    if (REPO / "desktop" / "app.py").exists():
        out["coldstart_window"] = [
            client_phase("coldstart_window", {"data_dir": data_dir}) for _ in range(s.args.coldstarts)
        ]
        main = statistics.median(r["main_window_ms"] for r in out["coldstart_window"])
        _say(f"cold start of the app (spawn → main window shown): median {main:.0f} ms")
    return out


def desktop_app_status() -> str:
    if (REPO / "desktop" / "app.py").exists():
        return (
            "App start-up measured with desktop/app.py (DesktopApp, offscreen Qt); the main window is built as after"
            " an unlock, without typing a PIN."
        )
    return "desktop/app.py does not exist yet: time to the main window not measured"


# --------------------------------------------------------------------------------------------- peer


def peer_summary(path: Path | None) -> dict[str, Any] | None:
    """Medians over the peer's runs (results/<label>.json of bench.js) of what we compare with."""
    if path is None:
        return None
    raw = json.loads(path.read_text())
    runs = [r for by_n in raw["runs"].values() for r in by_n]
    n = runs[0]["n"]

    def med(f: Any) -> float:
        return float(statistics.median(f(r) for r in runs))

    def rate(phase: str) -> float:
        return med(lambda r: n / (r["phases"][phase]["ms"] / 1000))

    incr = [i["device1"]["ms"] + i["device2"]["ms"] for r in runs for i in r["phases"]["incr"]]
    return {
        "file": str(path),
        "started": raw.get("started"),
        "runs": len(runs),
        "n_docs": n,
        "patients": runs[0]["doc_sizes"]["patient"]["count"],
        "encounters": runs[0]["doc_sizes"]["encounter"]["count"],
        "mean_doc_bytes": runs[0]["doc_sizes"]["all"]["mean"],
        "local_write_rec_s": rate("local_bulk_write"),
        "push_bs100_rec_s": rate("push_bs100_default"),
        "push_bs500_rec_s": rate("push_bs500"),
        "push_bs500_mib_up": med(lambda r: r["phases"]["push_bs500"]["server"]["bytes_in"] / 2**20),
        "pull_bs100_rec_s": rate("pull_bs100_default"),
        "pull_bs500_rec_s": rate("pull_bs500"),
        "pull_bs500_mib_down": med(lambda r: r["phases"]["pull_bs500"]["server"]["bytes_out"] / 2**20),
        "first_round_device1_ms": med(lambda r: r["phases"]["warmup_sync_local"]["ms"]),
        "noop_sync_p50_ms": med(lambda r: r["phases"]["noop_PouchDB_sync"]["p50_ms"]),
        "noop_sync_p95_ms": med(lambda r: r["phases"]["noop_PouchDB_sync"]["p95_ms"]),
        "noop_seq_p50_ms": med(lambda r: r["phases"]["noop_seq_to_then_from"]["p50_ms"]),
        "noop_requests": med(lambda r: r["phases"]["noop_PouchDB_sync"]["requests_per_iter"]),
        "incr_visible_p50_ms": float(statistics.median(incr)),
        "incr_samples": len(incr),
        "server_peak_rss_mib": med(lambda r: r["server_max_rss_mb"]),
        "client_peak_rss_mib": med(lambda r: r["client_max_rss_mb"]),
    }


# --------------------------------------------------------------------------------------------- report


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Our headline figures, the peer's, ratios and goal verdicts."""
    first, rounds = results["rounds"][0], results["rounds"]
    peer = results["peer"] or {}
    push = {r["batch_size"]: r["push"]["push_rec_per_s"] for r in rounds}
    pull = {p["page_size"]: p["rec_per_s"] for p in first["pull"]}
    noop_ms, noop_req = first["noop"]["ms"], first["noop"]["requests"]
    visible = [r["visible_ms"] for r in first["edits"]["rounds"]]
    live = [r["visible_ms"] for r in first["edits"]["live_rounds"]]
    single = [r["visible_ms"] for r in first["edits"]["live_single"]]
    client_rss = max(  # the sync phases; the local bulk writes are reported apart
        [r["push"]["client_peak_rss_mib"] for r in rounds]
        + [p["client_peak_rss_mib"] for p in first["pull"]]
        + [first["noop"]["client_peak_rss_mib"], first["edits"]["client_peak_rss_mib"]]
    )
    local = results["local"]
    api_rss = max(r["api"]["peak_rss_mib"] for r in rounds)
    pg_pss = max(r["postgres_peak_pss_mib"] for r in rounds)
    s = {
        "push_rec_s": push,
        "pull_rec_s": pull,
        "best_push": max(push.values()),
        "best_pull": max(pull.values()),
        "noop_p50_ms": pct(noop_ms, 50),
        "noop_p95_ms": pct(noop_ms, 95),
        "noop_requests": max(noop_req),
        "visible_p50_ms": pct(visible, 50),
        "live_p50_ms": pct(live, 50),
        "live_single_p50_ms": pct(single, 50),
        "client_peak_rss_mib": client_rss,
        "search_client_peak_rss_mib": max(
            local["build"]["client_peak_rss_mib"], local["search"]["client_peak_rss_mib"]
        ),
        "api_peak_rss_mib": api_rss,
        "postgres_peak_pss_mib": pg_pss,
        "search_p95_ms": local["search_stats"]["all"]["p95_ms"],
        "coldstart_ms": statistics.median(r["total_ms"] for r in local["coldstart"]),
        "coldstart_window_ms": (
            statistics.median(r["main_window_ms"] for r in local["coldstart_window"])
            if local.get("coldstart_window")
            else None
        ),
    }
    peer_push = max(peer.get("push_bs500_rec_s", 0), peer.get("push_bs100_rec_s", 0)) or None
    peer_pull = max(peer.get("pull_bs500_rec_s", 0), peer.get("pull_bs100_rec_s", 0)) or None
    s["ratios"] = {
        "push": s["best_push"] / peer_push if peer_push else None,
        "pull": s["best_pull"] / peer_pull if peer_pull else None,
        "noop_p50_faster": peer["noop_sync_p50_ms"] / s["noop_p50_ms"] if peer else None,
        "visible_faster": peer["incr_visible_p50_ms"] / s["visible_p50_ms"] if peer else None,
        "client_rss": s["client_peak_rss_mib"] / peer["client_peak_rss_mib"] if peer else None,
        "server_rss": (api_rss + pg_pss) / peer["server_peak_rss_mib"] if peer else None,
    }
    g, r = GOALS, s["ratios"]

    def throughput_met(ours: float, ratio: float | None) -> bool:
        return ours >= g["throughput_rec_s"] and (ratio is None or ratio >= g["throughput_ratio"])

    s["goals"] = {
        "push": throughput_met(s["best_push"], r["push"]),
        "pull": throughput_met(s["best_pull"], r["pull"]),
        "noop": s["noop_p50_ms"] <= g["noop_p50_ms"] and s["noop_requests"] <= g["noop_requests"],
        "visible": s["live_p50_ms"] <= g["visible_ms"],  # the desktop keeps a waiting pull open when idle
        "client_rss": s["client_peak_rss_mib"] < g["rss_mib"],
        "server_rss_api": api_rss < g["rss_mib"],
        "server_rss_api_plus_postgres": api_rss + pg_pss < g["rss_mib"],
        "search": s["search_p95_ms"] < g["search_p95_ms"],
        "coldstart": (s["coldstart_window_ms"] or s["coldstart_ms"]) < g["coldstart_s"] * 1000,
    }
    return s


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _ratio(x: float | None, suffix: str = "×") -> str:
    return "–" if x is None else f"{x:.2f}{suffix}"


def _ok(flag: bool) -> str:
    return "met" if flag else "**missed**"


def markdown(results: dict[str, Any]) -> str:
    s, peer = results["summary"], results["peer"] or {}
    rounds, first, local = results["rounds"], results["rounds"][0], results["local"]
    n, data = results["params"]["records"], results["data"]
    if data.get("mix") == "peer":
        lines = [
            f"Code {results['revision']}. {n:,} records synced: gen.js's first {n:,} documents as they come,"
            f" {data['record_patients']:,} patients + {data['record_encounters']:,} encounters"
            f" ({results['params']['encounter_status']}). JSON bytes per record, ours / gen.js: patient"
            f" {data['our_fields_bytes']:.0f} / {data['peer_patient_bytes']:.0f} B, encounter"
            f" {data['our_encounter_bytes']:.0f} / {data['peer_encounter_bytes']:.0f} B, all"
            f" {data['our_record_bytes']:.0f} / {data['peer_doc_bytes']:.0f} B;"
            f" {data['abha_addresses_cleared']} repeated ABHA addresses cleared.",
        ]
    else:
        lines = [
            f"Code {results['revision']}. {n:,} patient records synced (gen.js patient documents, mapped to our"
            f" fields: {data['our_fields_bytes']:.0f} B of JSON each, vs {data['peer_patient_bytes']:.0f} B as"
            f" gen.js writes them; {data['abha_addresses_cleared']} repeated ABHA addresses cleared).",
        ]
    if peer:
        lines.append(
            f"Peer: PouchDB, {peer['runs']} run(s) of {peer['n_docs']:,} docs ({peer['patients']:,} patients +"
            f" {peer['encounters']:,} encounters, {peer['mean_doc_bytes']:.0f} B/doc), started {peer['started']}."
        )
    lines += ["", _row("phase", "ours", "PouchDB (same session)", "ratio", "goal", "verdict"), _row(*["---"] * 6)]
    g = s["goals"]
    for r in rounds:
        w = r["write"]
        if data.get("record_encounters"):
            steps = "start() + complete()" if results["params"].get("encounter_status") == "completed" else "start()"
            label = (
                f"register() / {steps} one by one"
                if w["mode"] == "register"
                else f"patients by one CSV import, encounters {steps} one by one"
            )
        else:
            label = "register() one by one" if w["mode"] == "register" else "one CSV import"
        pw = peer.get("local_write_rec_s")
        lines.append(
            _row(
                f"local write of {n:,} on PC A ({label})",
                f"{w['rec_per_s']:,.0f} rec/s",
                f"{pw:,.0f} docs/s (bulkDocs ×1000)" if pw else "–",
                _ratio(w["rec_per_s"] / pw if pw else None),
                "–",
                "–",
            )
        )
    for r in rounds:
        p = r["push"]
        peer_push = peer.get("push_bs500_rec_s")
        lines.append(
            _row(
                f"push {n:,}, batches of {r['batch_size']}",
                f"{p['push_rec_per_s']:,.0f} rec/s ({p['push_s']:.1f} s)",
                f"{peer_push:,.0f} docs/s (batch 500)" if peer_push else "–",
                _ratio(p["push_rec_per_s"] / peer_push if peer_push else None),
                "≥ 3× and ≥ 10,000/s",
                _ok(g["push"]) if p["push_rec_per_s"] == s["best_push"] else "",
            )
        )
    for p in first["pull"]:
        peer_pull = peer.get("pull_bs500_rec_s")
        lines.append(
            _row(
                f"initial pull of {n:,} on a fresh PC, pages of {p['page_size']}",
                f"{p['rec_per_s']:,.0f} rec/s ({p['seconds']:.1f} s)",
                f"{peer_pull:,.0f} docs/s (batch 500)" if peer_pull else "–",
                _ratio(p["rec_per_s"] / peer_pull if peer_pull else None),
                "≥ 3× and ≥ 10,000/s",
                _ok(g["pull"]) if p["rec_per_s"] == s["best_pull"] else "",
            )
        )
    lines.append(
        _row(
            f"no-op sync p50 / p95 ({len(first['noop']['ms'])} rounds), requests per round",
            f"{s['noop_p50_ms']:.1f} / {s['noop_p95_ms']:.1f} ms, {s['noop_requests']} req",
            f"{peer['noop_sync_p50_ms']:.1f} / {peer['noop_sync_p95_ms']:.1f} ms, {peer['noop_requests']:.0f} req"
            if peer
            else "–",
            _ratio(s["ratios"]["noop_p50_faster"], "× faster"),
            "p50 ≤ 5 ms in 1 request",
            _ok(g["noop"]),
        )
    )
    lines.append(
        _row(
            f"{results['params']['edits']} edits on A visible on B (A syncs, then B), p50 of"
            f" {len(first['edits']['rounds'])}",
            f"{s['visible_p50_ms']:.0f} ms",
            f"{peer['incr_visible_p50_ms']:.0f} ms (p50 of {peer['incr_samples']})" if peer else "–",
            _ratio(s["ratios"]["visible_faster"], "× faster"),
            "–",
            "–",
        )
    )
    lines.append(
        _row(
            f"{results['params']['edits']} edits on A visible on B (B's waiting pull open, A syncs), p50 of"
            f" {len(first['edits']['live_rounds'])}; 1 edit",
            f"{s['live_p50_ms']:.0f} ms; {s['live_single_p50_ms']:.0f} ms",
            "–",
            "–",
            "≤ 60 ms",
            _ok(g["visible"]),
        )
    )
    lines.append(
        _row(
            "client peak RSS (largest sync phase process: push, pull, no-op, edits)",
            f"{s['client_peak_rss_mib']:.0f} MiB",
            f"{peer['client_peak_rss_mib']:.0f} MiB" if peer else "–",
            _ratio(s["ratios"]["client_rss"]),
            "< 150 MiB",
            _ok(g["client_rss"]),
        )
    )
    lines.append(
        _row(
            "server peak: API process RSS + PostgreSQL PSS",
            f"{s['api_peak_rss_mib']:.0f} + {s['postgres_peak_pss_mib']:.0f} MiB",
            f"{peer['server_peak_rss_mib']:.0f} MiB (Node + leveldb)" if peer else "–",
            _ratio(s["ratios"]["server_rss"]),
            "< 150 MiB",
            f"API {_ok(g['server_rss_api'])}; API + PostgreSQL {_ok(g['server_rss_api_plus_postgres'])}",
        )
    )
    lines.append(
        _row(
            f"local search p95 at {results['params']['search_patients']:,} patients",
            f"{s['search_p95_ms']:.1f} ms",
            "not measured by the peer",
            "–",
            "< 20 ms",
            _ok(g["search"]),
        )
    )
    window = s["coldstart_window_ms"]
    lines.append(
        _row(
            "cold start on the search PC: spawn → main window shown (median); store + first search alone",
            (f"{window:.0f} ms; " if window is not None else "window not measured; ") + f"{s['coldstart_ms']:.0f} ms",
            "–",
            "–",
            "< 2 s to a usable window",
            _ok(g["coldstart"]),
        )
    )
    lines += [
        "",
        _row(
            "push detail",
            "batch",
            "requests",
            "MiB up",
            "MiB down",
            "server CPU s",
            "client CPU s (push / round)",
            "echo pull of own records",
        ),
    ]
    lines.append(_row(*["---"] * 8))
    for r in rounds:
        p = r["push"]
        h, e = p["push_http"], p["echo_http"]
        lines.append(
            _row(
                f"push ({p.get('changes', n):,} outbox entries)",
                r["batch_size"],
                h["requests"],
                f"{h['sent_bytes'] / 2**20:.1f}",
                f"{h['received_bytes'] / 2**20:.1f}",
                p["push_server_cpu_s"],
                f"{p.get('push_client_cpu_s', '–')} / {p['round_client_cpu_s']}",
                f"{p['echo_pulled']:,} in {p['echo_pull_s']:.1f} s, {e['requests']} req",
            )
        )
    for p in first["pull"]:
        h = p["http"]
        lines.append(
            _row(
                "pull",
                p["page_size"],
                h["requests"],
                f"{h['sent_bytes'] / 2**20:.2f}",
                f"{h['received_bytes'] / 2**20:.1f}",
                p["server_cpu_s"],
                f"{p['round_client_cpu_s']} ({1000 * p['round_client_cpu_s'] / p['n']:.2f} ms/rec)",
                "–",
            )
        )
    lines += ["", "Peak RSS of each PC process (MiB): " + _rss_list(results)]
    st = local["search_stats"]
    lines += [
        "",
        f"Search at {local['search']['patients']:,} patients, limit {local['search']['limit']}"
        f" (PatientService.search; ms):",
        "",
        _row("kind", "n", "p50", "p95", "p99", "max", "results", "found"),
        _row("---", *["--:"] * 7),
    ]
    for kind, v in st.items():
        found = "–" if v["found_pct"] is None else f"{v['found_pct']:.0f}%"
        cells = [f"{v[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
        lines.append(_row(kind, v["n"], *cells, f"{v['mean_results']:.0f}", found))
    cs = local["coldstart"]
    lines += [
        "",
        "Cold start runs (ms: start-up + imports / open_local_store / first search / total): "
        + "; ".join(
            f"{r['startup_and_imports_ms']:.0f} / {r['open_store_ms']:.0f} / {r['first_search_ms']:.0f} /"
            f" {r['total_ms']:.0f}"
            for r in cs
        ),
        "App start-up runs (ms: start-up + imports / open store / first window shown / main window shown): "
        + "; ".join(
            f"{r['startup_and_imports_ms']:.0f} / {r['open_store_ms']:.0f} / {r['first_window_ms']:.0f}"
            f" ({r['first_window']}) / {r['main_window_ms']:.0f}"
            for r in local.get("coldstart_window", [])
        ),
        f"Search PC built by one CSV import: {local['build']['seconds']:.1f} s"
        f" ({local['build']['rec_per_s']:,.0f} rec/s), file {local['build']['db_bytes'] / 2**20:.0f} MiB.",
        results["desktop_app"],
    ]
    return "\n".join(lines)


def _rss_list(results: dict[str, Any]) -> str:
    parts = []
    for r in results["rounds"]:
        parts.append(f"write/{r['write']['mode']} {r['write']['client_peak_rss_mib']:.0f}")
        parts.append(f"push bs{r['batch_size']} {r['push']['client_peak_rss_mib']:.0f}")
        for p in r.get("pull", []):
            parts.append(f"pull p{p['page_size']} {p['client_peak_rss_mib']:.0f}")
        if "noop" in r:
            parts.append(f"no-op {r['noop']['client_peak_rss_mib']:.0f}")
            parts.append(f"edits (2 PCs) {r['edits']['client_peak_rss_mib']:.0f}")
    local = results["local"]
    parts.append(f"search build {local['build']['client_peak_rss_mib']:.0f}")
    parts.append(f"search {local['search']['client_peak_rss_mib']:.0f}")
    parts.append(f"cold start {max(r['client_peak_rss_mib'] for r in local['coldstart']):.0f}")
    if local.get("coldstart_window"):
        parts.append(f"app start-up {max(r['client_peak_rss_mib'] for r in local['coldstart_window']):.0f}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------- main


def revision() -> str:
    """The git commit, ``+dirty`` when code the benchmark measures has local changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", *MEASURED_CODE],
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def run(args: argparse.Namespace, workdir: Path, procs: list[Proc]) -> dict[str, Any]:
    if args.records_mix == "peer":
        _say(f"gen.js: its first {args.records:,} documents (seed {SEED}), patients and encounters, as our records")
        data = prepare_peer_data(
            args.gen_js, args.records, args.search_patients, workdir, complete=args.encounter_status == "completed"
        )
        _say(f"{data.record_patients:,} patients + {data.record_encounters:,} encounters")
    else:
        wanted = max(args.records, args.search_patients)
        _say(f"gen.js: {wanted * DOCS_PER_PATIENT:,} documents (seed {SEED}) → {wanted:,} patient records")
        data = prepare_data(args.gen_js, wanted, workdir)
        data.record_patients = args.records
        data.peer_doc_bytes, data.our_record_bytes = data.peer_patient_bytes, data.our_fields_bytes
    write_csv(data, data.record_patients, workdir)
    write_csv(data, args.search_patients, workdir)
    data.ndjson.unlink()  # hundreds of MB; no longer needed
    cluster = embedded.start(workdir / "pg")
    try:
        sandbox, sandbox_url = start_sandbox(workdir)
        procs.append(sandbox)
        session = Session(args, workdir, data, cluster, sandbox_url, procs)
        rounds = [run_server_round(session, bs, first=i == 0) for i, bs in enumerate(args.batch_sizes)]
        machine = server_patients.machine(cluster.dsn)
    finally:
        for proc in procs:
            proc.stop()
        cluster.stop()
    local = run_local(session)
    results: dict[str, Any] = {
        "benchmark": "sync_bench",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "revision": revision(),
        "machine": machine | {"node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout},
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": {k: v for k, v in vars(data).items() if k not in ("ndjson", "jsonl", "csv", "records_jsonl")},
        "rounds": rounds,
        "local": local,
        "desktop_app": desktop_app_status(),
        "peer": peer_summary(args.peer_results),
        "demo_doctor": DEMO_DOCTOR_MOBILE,
    }
    results["summary"] = summarise(results)
    return results


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=50_000, help="records written, pushed and pulled")
    parser.add_argument(
        "--records-mix",
        choices=("peer", "patients"),
        default="peer",
        help="peer = gen.js's first N documents as they come, patients and encounters (the peer's own set);"
        " patients = N patient documents of gen.js's stream (encounters left out)",
    )
    parser.add_argument(
        "--encounter-status",
        choices=("completed", "draft"),
        default="completed",
        help="peer mix: complete each encounter after starting it (gen.js's are finished visits; two outbox"
        " entries each, sent as one change) or leave it a draft (one entry)",
    )
    parser.add_argument("--search-patients", type=int, default=100_000, help="patients on the search PC")
    parser.add_argument("--batch-sizes", type=_sizes, default=[500, 1000], help="push batch sizes (one DB each)")
    parser.add_argument("--page-sizes", type=_sizes, default=[1000, 5000], help="pull page sizes")
    parser.add_argument("--noop-rounds", type=int, default=50)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--edit-rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--coldstarts", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261125, help="seed of the search query mix")
    parser.add_argument("--gen-js", type=Path, default=DEFAULT_GEN_JS, help="the peer's gen.js")
    parser.add_argument("--peer-results", type=Path, default=None, help="results/<label>.json of the peer's bench.js")
    parser.add_argument(
        "--profile-api", type=Path, default=None, help="run the API under cProfile, writing DIR/api-<tag>.prof"
    )
    parser.add_argument(
        "--profile-pull",
        default=None,
        help="'threads': report the pull rounds' client CPU by thread; a path prefix: also py-spy them"
        " into PREFIX-p<page size>.txt",
    )
    parser.add_argument(
        "--client-gc",
        choices=("python", "app"),
        default="python",
        help="the pull phases' cycle collector: python = automatic (a plain process, the `integmed sync` CLI);"
        " app = the desktop app's regime (desktop.ui.gc_guard: collections due, every 500 ms, off the workers)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (PC stores, logs)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="integmed-syncbench-"))
    procs: list[Proc] = []
    try:
        results = run(args, workdir, procs)
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        for proc in procs:
            proc.stop()
        if args.keep:
            _say(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(markdown(results))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"sync_bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    _say(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
