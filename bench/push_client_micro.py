"""The desktop side of a push, alone: one `SyncClient.run_once` of N queued creates against an in-process answer.

    PYTHONPATH=$PWD .venv/bin/python bench/push_client_micro.py --records 20000 --batch-size 1000 [--profile F]

The PC is a real SQLite store with N patients registered through `PatientService` (made once and copied for
each run, so every run starts from the same queued outbox). The server is an ``httpx.MockTransport`` handler in
this process: it unzips the body, reads the JSON and answers every change ``applied`` (as the real server does
for creates). The CPU that handler spends (its thread's own clock) is subtracted, so the figure is the client's:
reading the outbox, building and encoding each body, gzip, parsing the answer and recording it. Reported: client
CPU per 1000 records (median over ``--runs``), request bytes per batch, and the gzip level the transport used.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.indian_patients import PatientGenerator
from desktop.services.patients import PatientService
from desktop.store import open_local_store
from desktop.sync.client import SyncClient
from desktop.sync.transport import RetryPolicy, Transport

SERVER_HLC = "019ab4c27e00-0000-server"


class FakeServer:
    """Answers token, push and pull requests; keeps the CPU it spent and the bytes it received."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.request_bytes: list[int] = []
        self.raw_bytes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        t0 = time.thread_time()
        try:
            return self._answer(request)
        finally:
            with self.lock:
                self.cpu_s += time.thread_time() - t0

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/auth/device/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        if path.endswith("/sync/pull"):
            page = {"changes": [], "next_cursor": "0", "has_more": False, "server_hlc": SERVER_HLC}
            return httpx.Response(200, json=page)
        if path.endswith("/sync/push"):
            raw = request.content
            self.request_bytes.append(len(raw))
            if request.headers.get("content-encoding") == "gzip":
                raw = gzip.decompress(raw)
            self.raw_bytes.append(len(raw))
            body = json.loads(raw)
            results = [
                {"kind": c["kind"], "id": c["id"], "status": "applied", "server_version": 1} for c in body["changes"]
            ]
            answer = {"batch_id": body["batch_id"], "results": results, "server_hlc": SERVER_HLC}
            return httpx.Response(
                200, content=json.dumps(answer).encode(), headers={"content-type": "application/json"}
            )
        return httpx.Response(404, json={"detail": path})


def make_template(folder: Path, n: int) -> None:
    """A data folder whose SQLite file holds N registered patients, all queued in the outbox."""
    folder.mkdir(parents=True, exist_ok=True)
    store = open_local_store(folder / "integmed.sqlite3", backups_dir=folder / "backups")
    try:
        patients = PatientService(writer=store.writer, uow=store.uow, clock=store.clock)
        gen = PatientGenerator(rng=random.Random(20261126), abha_taken=set())
        for _ in range(n):
            patients.register(gen.fields(), "bench")
    finally:
        store.close()


def one_run(template: Path, batch_size: int, profile: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="push-client-micro-") as tmp:
        folder = Path(tmp) / "pc"
        shutil.copytree(template, folder)
        store = open_local_store(folder / "integmed.sqlite3", backups_dir=folder / "backups")
        server = FakeServer()
        try:
            http = httpx.Client(transport=httpx.MockTransport(server), trust_env=False)
            transport = Transport("http://bench.invalid", http=http, retry=RetryPolicy(attempts=1))
            device_id = uuid.uuid4()
            transport.use_device(device_id, "token")
            client = SyncClient(store.uow, transport, store.clock, device_id=device_id, batch_size=batch_size)
            prof = cProfile.Profile() if profile else None
            c0, t0 = time.process_time(), time.perf_counter()
            if prof:
                prof.enable()
            report = client.run_once()
            if prof:
                prof.disable()
                prof.dump_stats(profile)
            c1, t1 = time.process_time(), time.perf_counter()
        finally:
            store.close()
    assert not report.rejected and report.pending == 0, report
    n = report.applied
    client_cpu = c1 - c0 - server.cpu_s
    return {
        "records": n,
        "client_cpu_s": round(client_cpu, 3),
        "client_cpu_ms_per_1000": round(client_cpu / n * 1000 * 1000, 1),
        "server_stub_cpu_s": round(server.cpu_s, 3),
        "wall_s": round(t1 - t0, 3),
        "batches": len(server.request_bytes),
        "request_bytes_per_batch": round(statistics.mean(server.request_bytes)),
        "json_bytes_per_batch": round(statistics.mean(server.raw_bytes)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--template", type=Path, default=None, help="cached data folder (made when missing)")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile output of the last run")
    args = parser.parse_args(argv)
    template = args.template or Path(tempfile.gettempdir()) / f"push-client-micro-template-{args.records}"
    if not (template / "integmed.sqlite3").exists():
        t0 = time.perf_counter()
        make_template(template, args.records)
        print(f"template: {args.records} patients registered in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    runs = []
    for i in range(args.runs):
        result = one_run(template, args.batch_size, args.profile if i == args.runs - 1 else None)
        print(json.dumps(result), file=sys.stderr)
        runs.append(result)
    summary = {
        "median_client_cpu_ms_per_1000": statistics.median(r["client_cpu_ms_per_1000"] for r in runs),
        "runs": runs,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
