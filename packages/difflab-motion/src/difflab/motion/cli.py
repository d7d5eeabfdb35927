"""The ``difflab motion`` command group, added through the ``difflab.commands`` entry point."""

from __future__ import annotations

import argparse

HELP = "human motion (BioMoDiffuse)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab motion ...`` to the top-level parser."""
    parser = subparsers.add_parser("motion", help=HELP, description=f"difflab motion: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    parser.add_subparsers(title="commands", dest="motion_command", metavar="COMMAND")
