"""Micro-benchmark: writing a push batch's entries into the clinic feed (`change_feed`), per entry.

    PYTHONPATH=$PWD .venv/bin/python bench/feed_write.py [--entries 1000] [--rounds 150]

Starts an embedded PostgreSQL in a temporary folder, migrates it, makes a clinic, then for ``--rounds``
rounds writes ``--entries`` new record ids (one transaction each) with each way below in turn (interleaved,
so load swings hit them alike) and prints the median and mean µs per entry:

* `sync_server.db.sync.bump_feed` (``ON CONFLICT DO UPDATE``, a repeated id keeps its last position);
* `sync_server.db.sync.add_to_feed` (plain ``INSERT`` in a savepoint; what a readings batch uses);
* the bare statements without the counter: ``INSERT … ON CONFLICT`` and plain ``INSERT``;
* last, plain ``INSERT`` with the foreign-key trigger to ``clinics`` switched off for the session
  (``session_replication_role = replica``, this throwaway database only): what that FK costs per row.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import server_patients as sp  # sibling module: bench/ is sys.path[0] when this file is run as a script

from shared.ids import uuid7
from sync_server.db import embedded, migrate
from sync_server.db import sync as sync_db

Write = Callable[[list[uuid.UUID]], Awaitable[None]]


async def measure(dsn: str, entries: int, rounds: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        clinic_id, _, _ = await sp._insert_clinic_and_doctor(conn, 1)
        seq = [10**12]

        async def bump(ids: list[uuid.UUID]) -> None:
            await sync_db.bump_feed(conn, clinic_id, "reading", ids, None)

        async def add(ids: list[uuid.UUID]) -> None:
            await sync_db.add_to_feed(conn, clinic_id, "reading", ids, None)

        async def bare(ids: list[uuid.UUID], on_conflict: str = "") -> None:
            seq[0] += len(ids)
            await conn.execute(
                "INSERT INTO change_feed (clinic_id, seq, kind, record_id, batch_id) "
                "SELECT $1, $2 + u.pos, 'reading', u.id, NULL FROM unnest($3::uuid[]) WITH ORDINALITY AS u(id, pos)"
                + on_conflict,
                clinic_id,
                seq[0],
                ids,
            )

        async def bare_upsert(ids: list[uuid.UUID]) -> None:
            await bare(ids, " ON CONFLICT (kind, record_id) DO UPDATE SET seq = EXCLUDED.seq")

        async def run(ways: dict[str, Write]) -> None:
            samples: dict[str, list[float]] = {k: [] for k in ways}
            for _ in range(rounds):
                for name, write in ways.items():
                    ids = [uuid7() for _ in range(entries)]
                    async with conn.transaction():
                        t0 = time.perf_counter()
                        await write(ids)
                        samples[name].append((time.perf_counter() - t0) / entries * 1e6)
            for name, values in samples.items():
                print(f"| {name} | {statistics.median(values):.2f} | {statistics.mean(values):.2f} |")

        print(f"| feed write, {entries} entries a statement, {rounds} rounds | µs/entry median | mean |")
        print("|---|--:|--:|")
        await run(
            {
                "bump_feed": bump,
                "add_to_feed": add,
                "bare INSERT … ON CONFLICT": bare_upsert,
                "bare plain INSERT": bare,
            }
        )
        await conn.execute("SET session_replication_role = replica")
        await run({"bare plain INSERT, FK trigger off": bare})
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=150)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="integmed-bench-"))
    cluster = None
    try:
        cluster = embedded.start(workdir)
        asyncio.run(sp._create_database(cluster.dsn, "bench"))
        dsn = cluster.dsn_for("bench")
        migrate.upgrade(dsn)
        asyncio.run(measure(dsn, args.entries, args.rounds))
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
