"""The ``difflab physics`` command group, added through the ``difflab.commands`` entry point."""

from __future__ import annotations

import argparse

HELP = "PDE surrogates (PDE-Refiner, Text2PDE, LPINNs)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab physics ...`` to the top-level parser."""
    parser = subparsers.add_parser("physics", help=HELP, description=f"difflab physics: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    parser.add_subparsers(title="commands", dest="physics_command", metavar="COMMAND")
