"""Stage timer for the wearable-reading push: µs a reading in each function of the product path.

    PYTHONPATH=$PWD .venv/bin/python bench/wearables_stages.py [--n 30000] [--gc api|default]

Same fixture and readings as `bench/wearables.py` (embedded PostgreSQL in a temporary folder, 200
patients, batches of 1000 through `sync_server.services.sync.push`); each named function below is wrapped
in a `perf_counter` timer (nested ones count in both), then the raw COPY of the same rows is timed for
comparison. ``--gc default`` keeps Python's collector thresholds, ``--gc api`` (the default) applies the API
process's (`sync_server.asgi.tune_gc`). The wrappers add a little time of their own: compare stages, not
totals, with `bench/wearables.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import server_patients as sp
import wearables as bench

from shared.clock import HLC
from sync_server.asgi import tune_gc
from sync_server.db import audit, embedded, migrate
from sync_server.db import sync as sync_db
from sync_server.db import wearables as wearables_db
from sync_server.services import readings

TIMES: collections.Counter[str] = collections.Counter()
STAGES = (
    (readings, ("_push_new", "_push_each", "bulk_rows", "reading_columns", "_audit")),
    (wearables_db, ("lock_patients", "prepare", "copy_new", "queue_daily", "matching", "_copy_started")),
    (sync_db, ("lock_batch", "store_batch", "insert_feed", "add_to_feed", "bump_feed")),
    (audit, ("append_many",)),
)


def _wrap(module: Any, name: str) -> None:
    original = getattr(module, name)
    label = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"
    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                TIMES[label] += time.perf_counter() - t0

        setattr(module, name, timed_async)
    else:

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                TIMES[label] += time.perf_counter() - t0

        setattr(module, name, timed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--gc", choices=("api", "default"), default="api")
    args = parser.parse_args(argv)
    for module, names in STAGES:
        for name in names:
            _wrap(module, name)
    with tempfile.TemporaryDirectory() as folder:
        cluster = embedded.start(Path(folder))
        try:
            asyncio.run(sp._create_database(cluster.dsn, "bench"))
            dsn = cluster.dsn_for("bench")
            migrate.upgrade(dsn)
            fx = asyncio.run(bench.setup(dsn, 200))
            clock = HLC(fx["device_id"].hex)
            if args.gc == "api":
                tune_gc()

            def requests() -> Any:
                made = bench.readings_for(random.Random(1), fx["patients"], args.n, tuple(range(len(bench.KINDS))))
                return bench.batches(made, 1000, fx["device_id"], clock)

            product = asyncio.run(bench.product_ingest(dsn, fx, requests()))
            rate = product["readings_per_s"]
            print(
                f"product path: {rate:,.0f} readings/s, {1e6 / rate:.1f} µs a reading"
                f" ({product['api_cpu_us_per_reading']:.1f} µs of this process's CPU)"
            )
            for label, seconds in TIMES.most_common():
                print(f"  {label:28s} {seconds / args.n * 1e6:6.1f} µs a reading")
            raw = asyncio.run(bench.raw_copy(dsn, fx, requests()))
            rate = raw["readings_per_s"]
            print(
                f"raw COPY: {rate:,.0f} readings/s, {1e6 / rate:.1f} µs a reading"
                f" ({raw['api_cpu_us_per_reading']:.1f} µs of this process's CPU)"
            )
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
