"""The ``difflab audio`` command group, added through the ``difflab.commands`` entry point."""

from __future__ import annotations

import argparse

HELP = "music, speech and voice"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``difflab audio ...`` to the top-level parser."""
    parser = subparsers.add_parser("audio", help=HELP, description=f"difflab audio: {HELP}.")

    def _print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=_print_help)
    parser.add_subparsers(title="commands", dest="audio_command", metavar="COMMAND")
