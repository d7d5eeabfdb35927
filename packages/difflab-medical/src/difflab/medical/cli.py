"""The ``difflab medical`` command group, added through the ``difflab.commands`` entry point."""

from __future__ import annotations

import argparse

HELP = "CT/MRI and hyperspectral restoration (DiffusionMBIR, DDS2M)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab medical ...`` to the top-level parser."""
    parser = subparsers.add_parser("medical", help=HELP, description=f"difflab medical: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    parser.add_subparsers(title="commands", dest="medical_command", metavar="COMMAND")
