"""Micro-benchmark of the desktop side of a pull: parse one page's JSON and apply it into a real local store.

    PYTHONPATH=$PWD .venv/bin/python bench/pull_apply_bench.py --pages 10 --page-size 1000 [--edits] [--profile F]
        [--shape sync-bench]

Pages of new patients (then, with ``--edits``, pages that edit the mobile of patients already stored), built as
the server sends them (`PullResponse` JSON), timed per phase: JSON parse and validation, apply (one transaction
per page, as `SyncClient` does). Prints rates and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from desktop.store import open_local_store
from desktop.sync.apply import apply_page
from shared.clock import HLC, Stamp, encode
from shared.ids import luhn_check_digit, uuid7
from shared.sync.protocol import PullResponse

FIRST = ["Aarav", "Priya", "Rahul", "Sunita", "Vikram", "Lakshmi", "Arjun", "Meera", "Ravi", "Kavita"]
LAST = ["Sharma", "Patel", "Kumar", "Singh", "Reddy", "Nair", "Iyer", "Gupta", "Das", "Verma"]


def _patient(n: int) -> dict[str, Any]:
    payload = f"{9_100_000_000_000 + n:013d}"
    return {
        "name": f"{FIRST[n % 10]} {LAST[(n // 10) % 10]}",
        "gender": "MF"[n % 2],
        "year_of_birth": 1950 + n % 60,
        "mobile": f"+9198{n:08d}",
        "abha_number": payload + str(luhn_check_digit(payload)),
        "abha_address": f"p{n}@abdm",
        "address": f"{n} Main Road, Ward {n % 40}, Pune",
    }


def _bench_patient(n: int) -> dict[str, Any]:
    """A patient shaped like those of ``bench/sync_bench.py`` as the server sends them (gen.js documents through
    `sync_bench.to_patient_fields` and `PatientService.register`): every record field, ``date_of_birth`` null,
    an address object of four parts."""
    payload = f"{9_100_000_000_000 + n:013d}"
    return {
        "abha_address": f"{FIRST[n % 10].lower()}.{LAST[(n // 10) % 10].lower()}{n % 9000 + 10}@abdm",
        "abha_number": payload + str(luhn_check_digit(payload)),
        "address": {
            "district": DISTRICTS[n % 4],
            "line": f"{n % 400 + 1}, Bazaar Road, Ward {n % 40}, near water tank, {TOWNS[n % 4]}",
            "pincode": f"{683000 + n % 900}",
            "state": "Kerala",
        },
        "date_of_birth": None,
        "gender": "MF"[n % 2],
        "mobile": f"+9198{n:08d}",
        "name": f"{FIRST[n % 10]} {LAST[(n // 10) % 10]}",
        "year_of_birth": 1950 + n % 60,
    }


DISTRICTS = ["Ernakulam", "Thrissur", "Kozhikode", "Kannur"]
TOWNS = ["Perumbavoor", "Chalakudy", "Vadakara", "Thalassery"]


def _page(changes: list[dict[str, Any]], seq0: int, wall: int) -> bytes:
    for i, change in enumerate(changes):
        change["seq"] = seq0 + i
    return json.dumps(
        {
            "changes": changes,
            "next_cursor": str(seq0 + len(changes) - 1),
            "has_more": True,
            "server_hlc": encode(Stamp(wall, 0, "server")),
        },
        separators=(",", ":"),
    ).encode()


def _apply(profiler: cProfile.Profile | None, uows: Any, page: PullResponse, clock: HLC) -> float:
    """Apply on the writer thread; returns that thread's CPU seconds (steadier than wall time on a shared box)."""
    start = time.thread_time()
    if profiler is None:
        apply_page(uows, page, clock)
        return time.thread_time() - start
    profiler.enable()
    try:
        apply_page(uows, page, clock)
    finally:
        profiler.disable()
    return time.thread_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--edits", action="store_true", help="then as many pages editing the stored patients")
    parser.add_argument("--profile", type=Path)
    parser.add_argument(
        "--shape",
        choices=("small", "sync-bench"),
        default="small",
        help="small: 7 short fields stamped by node 'pc-a' (the figures of the fourth round); sync-bench: the"
        " records of bench/sync_bench.py (8 fields with an address object, stamps with a device-id node)",
    )
    parser.add_argument("--cache-mib", type=int, default=0, help="PRAGMA cache_size on the writer's connection")
    args = parser.parse_args()
    wall = int(time.time() * 1000) - 60_000
    ids = [uuid7() for _ in range(args.pages * args.page_size)]
    make, node = (_patient, "pc-a") if args.shape == "small" else (_bench_patient, str(uuid7()))
    bodies: list[bytes] = []
    seq = 1
    for p in range(args.pages):
        changes = []
        for i in range(p * args.page_size, (p + 1) * args.page_size):
            stamp = encode(Stamp(wall + i, 0, node))
            fields = make(i)
            changes.append(
                {
                    "kind": "patient",
                    "id": str(ids[i]),
                    "op": "upsert",
                    "hlc": stamp,
                    "fields": fields,
                    "field_hlcs": dict.fromkeys(fields, stamp),
                    "server_version": 1,
                    "batch_id": str(uuid.uuid4()),
                }
            )
        bodies.append(_page(changes, seq, wall))
        seq += len(changes)
    edit_bodies: list[bytes] = []
    if args.edits:
        for p in range(args.pages):
            changes = []
            for i in range(p * args.page_size, (p + 1) * args.page_size):
                stamp = encode(Stamp(wall + 50_000 + i, 0, "pc-c"))
                changes.append(
                    {
                        "kind": "patient",
                        "id": str(ids[i]),
                        "op": "upsert",
                        "hlc": stamp,
                        "fields": {"mobile": f"+9197{i:08d}"},
                        "field_hlcs": {"mobile": stamp},
                        "server_version": 2,
                    }
                )
            edit_bodies.append(_page(changes, seq, wall + 50_000))
            seq += len(changes)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_local_store(Path(tmp) / "pc.sqlite", backups_dir=Path(tmp) / "backups")
        clock = HLC("pc-b")
        if args.cache_mib:

            def pragma() -> None:
                with store.uow.write() as uow:
                    uow.connection.exec_driver_sql(f"PRAGMA cache_size=-{args.cache_mib * 1024}")

            store.writer.run(pragma)
        profiler = cProfile.Profile() if args.profile else None
        try:
            for label, pages in (("new", bodies), ("edits", edit_bodies)):
                if not pages:
                    continue
                parse_s = apply_s = parse_cpu = apply_cpu = 0.0
                for body in pages:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    page = PullResponse.model_validate_json(body)
                    t1 = time.perf_counter()
                    parse_cpu += time.thread_time() - c0
                    apply_cpu += store.writer.run(_apply, profiler, store.uow, page, clock)
                    t2 = time.perf_counter()
                    parse_s, apply_s = parse_s + t1 - t0, apply_s + t2 - t1
                n = len(pages) * args.page_size
                print(
                    f"{label:5s} {n} records: parse {parse_s * 1000:.0f} ms ({n / parse_s:,.0f}/s), "
                    f"apply {apply_s * 1000:.0f} ms ({n / apply_s:,.0f}/s), together {n / (parse_s + apply_s):,.0f}/s; "
                    f"CPU parse {parse_cpu * 1e6 / n:.1f} us/rec, apply {apply_cpu * 1e6 / n:.1f} us/rec"
                )
        finally:
            store.close()
        if profiler and args.profile:
            profiler.dump_stats(str(args.profile))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
