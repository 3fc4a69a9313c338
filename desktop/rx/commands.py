"""`integmed rx verify INPUT` and `integmed rx revocations import FILE`: offline prescription checks.

``rx verify`` reads the QR from the text given, or from an image (PNG/JPEG photo or scan) or a PDF, checks the
signature and the certificate chain up to a trusted IntegMed root, the revocation lists installed in the data
folder, and the dates. It prints ``VALID`` or ``INVALID (reason) ...`` on the first line, then the
prescription. Exit 0 only for a valid prescription; 1 invalid; 2 unreadable input. No network is used.

The QR cannot tell that its prescriber cancelled it after printing. When the data folder holds this PC's
records, the prescription's signed status events there count too (read-only, beside a running app): a
cancelled or superseded prescription is INVALID (cancelled / superseded), a dispensed one is VALID with a note
not to dispense it again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from desktop.config import DesktopSettings
from desktop.rx import revocations as revocation_cache
from desktop.rx.verify import UnreadableInput, format_json, format_report, read_payload, verify, with_local_status
from shared.signing.trust import default_trust

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _verify(args: argparse.Namespace, settings: DesktopSettings) -> int:
    argument = " ".join(args.input)
    try:
        text, source = read_payload(argument)
    except UnreadableInput as exc:
        sys.stderr.write(f"integmed: {exc}\n")
        return EXIT_UNREADABLE
    trust = default_trust()
    cached = revocation_cache.load_cached(settings.data_dir, trust)
    for problem in cached.problems:
        sys.stderr.write(f"integmed: {problem}\n")
    lists = list(cached.lists)
    result, problem = with_local_status(verify(text, trust, lists), settings.database_path)
    if problem is not None:
        sys.stderr.write(f"integmed: {problem}\n")
    if args.json:
        sys.stdout.write(format_json(result, source=source))
    else:
        sys.stdout.write(format_report(result, source=source, revocations=lists))
    sys.stdout.flush()
    return EXIT_VALID if result.valid else EXIT_INVALID


def _import_revocations(args: argparse.Namespace, settings: DesktopSettings) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        sys.stderr.write(f"integmed: {path}: {exc.strerror}\n")
        return EXIT_UNREADABLE
    try:
        installed = revocation_cache.import_list(settings.data_dir, data, default_trust())
    except revocation_cache.RevocationImportError as exc:
        sys.stderr.write(f"integmed: {exc}\n")
        return EXIT_INVALID
    except OSError as exc:
        sys.stderr.write(f"integmed: cannot write {revocation_cache.cache_path(settings.data_dir)}: {exc.strerror}\n")
        return 3
    sys.stdout.write(
        f"Installed revocation list number {installed.sequence} from {installed.signer_role.value} "
        f"{installed.signer_kid}: {len(installed.entries)} revoked key(s), issued "
        f"{installed.issued_at:%Y-%m-%d %H:%M} UTC.\n"
    )
    return EXIT_VALID


def add_commands(commands: Any) -> None:
    """Register ``rx verify`` and ``rx revocations import`` on the ``integmed`` sub-parsers."""
    rx = commands.add_parser("rx", help="prescriptions: verify a printed QR offline")
    actions = rx.add_subparsers(dest="rx_action", metavar="ACTION", required=True)
    verifying = actions.add_parser(
        "verify",
        help="verify a prescription QR (text, PNG/JPEG image or PDF); exit 0 only if VALID",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verifying.add_argument("input", metavar="FILE|PAYLOAD", nargs="+", help="an image, a PDF, or the QR text")
    verifying.add_argument("--json", action="store_true", help="print the structured result as JSON")
    verifying.set_defaults(handler=_verify)
    lists = actions.add_parser("revocations", help="revoked signing keys known to this computer")
    list_actions = lists.add_subparsers(dest="revocations_action", metavar="ACTION", required=True)
    importing = list_actions.add_parser(
        "import", help="install a signed revocation list (CBOR file) for offline checks"
    )
    importing.add_argument("file", metavar="FILE", help="a revocation list as published by the IntegMed server")
    importing.set_defaults(handler=_import_revocations)
