"""The ``difflab brain3d`` command group, added through the ``difflab.commands`` entry point."""

from __future__ import annotations

import argparse

HELP = "3-D shapes and brain decoding (MinD-3D, 3DiffTection)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab brain3d ...`` to the top-level parser."""
    parser = subparsers.add_parser("brain3d", help=HELP, description=f"difflab brain3d: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    parser.add_subparsers(title="commands", dest="brain3d_command", metavar="COMMAND")
