"""The ``difflab science`` command group, added through the ``difflab.commands`` entry point."""

from __future__ import annotations

import argparse

HELP = "molecules, materials and graphs (GDSS, ADiT, GeoTDM, DRAKES, SVDD, MFM)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab science ...`` to the top-level parser."""
    parser = subparsers.add_parser("science", help=HELP, description=f"difflab science: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    sub = parser.add_subparsers(title="commands", dest="science_command", metavar="COMMAND")
    from .gdss import cli as gdss_cli

    gdss_cli.register(sub)
