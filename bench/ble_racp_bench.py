"""Glucometer download over the bumble virtual radio: records/s stored through the real reader and store.

Runs the app's bleak code (bumble backend) against a virtual glucometer holding N stored records with
context, on a `LocalLink`, into a fresh migrated SQLite store; each record is decoded, inserted (natural-key
dedupe) and queued in the outbox before the next notification is handled.

    PYTHONPATH=$PWD .venv/bin/python bench/ble_racp_bench.py --records 500

The figure is dominated by the one-commit-per-value rule (a value must be on disk before the next one is
handled), not by Bluetooth: a real meter sends ~10–50 records/s over the air.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from bumble.link import LocalLink

from desktop.devices import sim as vp
from desktop.devices.backend import BleBackend
from desktop.devices.bumble_backend import BumbleCentral
from desktop.devices.session import HealthDeviceReader, RetryPolicy
from desktop.services.readings import ReadingService
from desktop.store import open_local_store
from tests.desktop.devices.conftest import RecordedEvents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "integmed.sqlite3"
        with open_local_store(database, backups_dir=Path(folder) / "backups") as store:
            service = ReadingService(store.uow, store.clock, actor="bench")
            service.set_current_patient(uuid.uuid4())
            records = [
                vp.GlucoseRecord(
                    n, vp.date_time(2026, 1 + n % 12, 1 + n % 28, n % 24, n % 60, 0), 80 + n % 100, meal=1 + n % 5
                )
                for n in range(1, args.records + 1)
            ]

            async def run() -> float:
                link = LocalLink()  # type: ignore[no-untyped-call]
                backend = BleBackend.bumble(BumbleCentral.on_link(link))
                peripheral, _meter = vp.glucometer(link, records)
                await peripheral.start()
                reader = HealthDeviceReader(backend, service, RecordedEvents(), RetryPolicy(racp_timeout_s=600))
                started = time.perf_counter()
                report = await reader.read(peripheral.address, listen_s=0)
                elapsed = time.perf_counter() - started
                assert report.records_received == args.records, report
                assert backend.central is not None
                await backend.central.close()
                return elapsed

            elapsed = asyncio.run(run())
    print(
        f"{args.records} glucose records (+{args.records} context) downloaded and stored in {elapsed:.2f} s "
        f"= {args.records / elapsed:.0f} records/s ({2 * args.records / elapsed:.0f} values/s)"
    )


if __name__ == "__main__":
    main()
