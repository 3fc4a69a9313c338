"""`integmed`: the desktop app (no command) and its scripted commands; a composition root that never imports Qt.

Commands (DESIGN §8)::

    integmed [--data-dir DIR] [--server URL]                     the desktop app
    integmed [--data-dir DIR] patients import FILE.csv           all rows or none; bad rows by line
    integmed [--data-dir DIR] patients export --format json|csv  every patient with its id, to stdout
    integmed [--data-dir DIR] rx verify FILE|PAYLOAD [--json]    offline check of a prescription QR (0 = VALID)
    integmed [--data-dir DIR] rx revocations import FILE         install a signed revocation list

Exit codes: 0 done; 1 bad input (a bad CSV row, an unreadable file); 2 usage (unknown command or option);
3 the environment stopped it (disk full, data from a newer IntegMed, ...: the message says what to do).
Results go to stdout, problems to stderr. The commands work without a network.

Adding a command: write a function ``add_commands(commands)`` that adds sub-parsers to the
``argparse`` sub-parsers object and gives each a handler with ``set_defaults(handler=fn)``, where ``fn`` is a
`Handler`; then call it at the registration point in `build_parser`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from desktop.config import DesktopSettings, load_settings
from desktop.devices import commands as devices_commands
from desktop.errors import InputFileError, KnownError
from desktop.rx import commands as rx_commands
from desktop.services.patients import PatientService
from desktop.store import LocalStore, open_local_store
from desktop.sync import commands as sync_commands
from shared.errors import DomainError

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3

Handler = Callable[[argparse.Namespace, DesktopSettings], int]
"""A command: gets the parsed arguments and the settings, prints its result, returns the exit code."""


def open_store(settings: DesktopSettings) -> LocalStore:
    """Open the local store in the settings' data folder (migrating it first); close it when done."""
    return open_local_store(settings.database_path, backups_dir=settings.backups_dir)


def patient_service(store: LocalStore) -> PatientService:
    """The patient service over an open store."""
    return PatientService(writer=store.writer, uow=store.uow, clock=store.clock)


# --- patients ------------------------------------------------------------------------------------------


def _patients_import(args: argparse.Namespace, settings: DesktopSettings) -> int:
    with open_store(settings) as store:
        report = patient_service(store).import_csv(Path(args.file), actor="cli")
    if report.ok:
        print(report.summary())
        return EXIT_OK
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    return EXIT_BAD_INPUT


def _patients_export(args: argparse.Namespace, settings: DesktopSettings) -> int:
    with open_store(settings) as store:
        text = patient_service(store).export(args.format)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


def add_patient_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``patients import FILE`` and ``patients export --format json|csv``."""
    patients = commands.add_parser("patients", help="import or export patients (CSV / JSON)")
    actions = patients.add_subparsers(dest="patients_action", metavar="ACTION", required=True)
    importing = actions.add_parser(
        "import",
        help="register patients from a CSV file: all rows or none",
        description=(
            "Columns: name, mobile, gender, year_of_birth, abha_number, abha_address; optionally id (a row "
            "with the id of a patient on this computer updates it), date_of_birth and address_line, "
            "address_district, address_state, address_pincode. Empty cells are absent values. Every bad "
            "row is reported by its line (the header is line 1) and then nothing is imported."
        ),
    )
    importing.add_argument("file", metavar="FILE.csv", help="UTF-8 CSV file, header on the first line")
    importing.set_defaults(handler=_patients_import)
    exporting = actions.add_parser("export", help="write every patient with its id to stdout")
    exporting.add_argument("--format", choices=("json", "csv"), required=True, help="json: a list of records")
    exporting.set_defaults(handler=_patients_export)


# --- parser and entry point ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``integmed`` argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="integmed",
        description="IntegMed clinic desktop. Without a command, starts the app.",
        epilog="Exit codes: 0 done, 1 bad input, 2 usage, 3 environment (disk, database, network).",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="data folder (default: the platform's user data folder)")
    parser.add_argument("--server", metavar="URL", help="IntegMed server, e.g. https://sync.example.org")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    add_patient_commands(commands)
    sync_commands.add_commands(commands)  # enroll, sync
    devices_commands.add_commands(commands)  # devices decode
    rx_commands.add_commands(commands)  # rx verify, rx revocations import
    return parser


def _utf8_output() -> None:
    # Names are in Devanagari and other scripts; a Windows console or a redirected stdout would otherwise
    # use the ANSI code page and fail on the first non-Latin letter.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError, io.UnsupportedOperation):
                stream.reconfigure(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run ``integmed`` with ``argv`` (default: the process's arguments) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _utf8_output()
    try:
        settings = load_settings(data_dir=args.data_dir, server_url=args.server)
    except ValidationError as exc:
        for error in exc.errors():
            print(f"integmed: {'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return EXIT_USAGE
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        # Imported here so that the commands above never load Qt.
        from desktop.app import main as run_app

        return int(run_app(settings))
    try:
        return handler(args, settings)
    except InputFileError as exc:
        print(f"integmed: {exc.user_text()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DomainError as exc:
        print(f"integmed: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KnownError as exc:
        print(f"integmed: {exc.user_text()}", file=sys.stderr)
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    sys.exit(main())
