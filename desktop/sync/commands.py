"""`integmed enroll` and `integmed sync`: enrol this PC and run one sync round without the window.

``integmed --data-dir DIR enroll --server URL --mobile +91…`` asks the server to have HPR send an OTP, reads
the OTP from stdin (one line), signs in and enrols the PC for the doctor's clinic.

``integmed --data-dir DIR sync`` pushes what is waiting and pulls until caught up, printing what it did.
Exit 0 only when nothing is left unsent and the PC has caught up; 1 when changes were refused or are held
back; 3 when the environment stopped it (server unreachable, not enrolled, app outdated).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from desktop.config import DesktopSettings
from desktop.errors import NotEnrolled
from desktop.progress import ConsoleProgress
from desktop.security.doctor_keys import DoctorKeys
from desktop.security.secrets import SecretStore
from desktop.services.auth import AuthService
from desktop.store import LocalStore, open_local_store
from desktop.sync.client import SyncClient, SyncReport
from desktop.sync.transport import Transport

EXIT_OK, EXIT_INCOMPLETE, EXIT_ENVIRONMENT = 0, 1, 3


def device_secrets(settings: DesktopSettings) -> SecretStore:
    """Where this PC's device token lives (OS keyring; a file in the data folder when there is none)."""
    return SecretStore("device", settings.data_dir)


def doctor_keys(settings: DesktopSettings) -> DoctorKeys:
    """The doctors' signing keys of this data folder (private parts in the keyring, namespace "signing")."""
    return DoctorKeys(SecretStore("signing", settings.data_dir), settings.data_dir)


def auth_service(store: LocalStore, settings: DesktopSettings, transports: dict[str, Transport]) -> AuthService:
    def transport_for(url: str) -> Transport:
        if url not in transports:
            transports[url] = Transport(url)
        return transports[url]

    return AuthService(store.uow, device_secrets(settings), transport_for, doctor_keys=doctor_keys(settings))


def sync_client(
    store: LocalStore, settings: DesktopSettings, transport_factory: Callable[[str], Transport] = Transport
) -> tuple[SyncClient, Transport]:
    """A sync client for an enrolled PC; `NotEnrolled` otherwise."""
    auth = AuthService(store.uow, device_secrets(settings), transport_factory)
    enrolment = auth.enrolment()
    token = auth.device_token()
    if enrolment is None or token is None:
        raise NotEnrolled()
    transport = transport_factory(settings.server_url or enrolment.server_url)
    transport.use_device(enrolment.device_id, token)
    client = SyncClient(
        store.uow, transport, store.clock, device_id=enrolment.device_id, revocations_dir=settings.data_dir
    )
    return client, transport


def _enroll(args: argparse.Namespace, settings: DesktopSettings) -> int:
    server = args.server_url or settings.server_url
    if not server:
        print("integmed enroll: say which server with --server URL", file=sys.stderr)
        return 2
    transports: dict[str, Transport] = {}
    with open_local_store(settings.database_path, backups_dir=settings.backups_dir) as store:
        auth = auth_service(store, settings, transports)
        try:
            txn_id, message = auth.start_sign_in(server, args.mobile)
            print(message, file=sys.stderr)
            print("Enter the OTP: ", end="", file=sys.stderr, flush=True)
            otp = sys.stdin.readline().strip()
            user = auth.finish_sign_in(server, txn_id, otp, pc_name=args.name)
            enrolment = auth.enrolment()
        finally:
            for t in transports.values():
                t.close()
    assert enrolment is not None
    print(
        f"Enrolled this PC ({enrolment.device_id}) for {enrolment.clinic_name}; signed in as {user.name} ({user.role})."
    )
    return EXIT_OK


def print_report(report: SyncReport) -> None:
    print(
        f"pushed {report.pushed} change(s): {report.applied} applied, {report.merged} merged, "
        f"{len(report.rejected)} refused"
    )
    for r in report.rejected:
        print(f"  refused {r.kind} {r.record_id}: {r.reason}: {r.message}")
    print(
        f"pulled {report.pulled} record(s) in {report.pages} page(s): {report.inserted} new, "
        f"{report.updated} updated, {report.conflicts} older value(s) kept in history"
    )
    state = "caught up" if report.caught_up else "not caught up"
    print(f"{state}; {report.pending} change(s) still waiting to be sent")


def _sync(args: argparse.Namespace, settings: DesktopSettings) -> int:
    with open_local_store(settings.database_path, backups_dir=settings.backups_dir) as store:
        client, transport = sync_client(store, settings)
        try:
            report = client.run_once(ConsoleProgress())
        finally:
            transport.close()
    print_report(report)
    return EXIT_OK if report.complete else EXIT_INCOMPLETE


def add_commands(commands: Any) -> None:
    """Register ``enroll`` and ``sync`` on the ``integmed`` sub-parsers."""
    enroll = commands.add_parser("enroll", help="enrol this PC for a clinic (HPR OTP read from stdin)")
    enroll.add_argument("--server", dest="server_url", metavar="URL", help="the IntegMed server")
    enroll.add_argument("--mobile", required=True, help="the doctor's HPR-registered mobile, +91…")
    enroll.add_argument("--name", default=None, help="a name for this PC (default: the computer's name)")
    enroll.set_defaults(handler=_enroll)
    sync = commands.add_parser("sync", help="one sync round: push waiting changes, pull until caught up")
    sync.set_defaults(handler=_sync)
