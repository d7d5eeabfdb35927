"""The ``difflab vision`` command group, added through the ``difflab.commands`` entry point."""

from __future__ import annotations

import argparse

HELP = "image diffusion (pixel and latent)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab vision ...`` to the top-level parser."""
    parser = subparsers.add_parser("vision", help=HELP, description=f"difflab vision: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    parser.add_subparsers(title="commands", dest="vision_command", metavar="COMMAND")
