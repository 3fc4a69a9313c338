"""`integmed`: the desktop app and its scripted commands."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="integmed", description="IntegMed clinic desktop")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--server", default=None)
    parser.parse_args(argv)
    print(
        "The IntegMed desktop app arrives with issue P2; use integmed-server dev for the server.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
