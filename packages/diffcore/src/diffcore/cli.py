"""The ``difflab`` command line.

diffcore owns the entry point; each installed domain package adds a command group through the
``difflab.commands`` entry-point group. An entry point names a callable
``register(subparsers)`` that adds its parser to the top-level ``argparse`` sub-parsers, and sets
``func`` (taking the parsed namespace, returning an exit code) on its leaves.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version

ENTRY_POINT_GROUP = "difflab.commands"
_CORE_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def core_command(register: Callable[[argparse._SubParsersAction], None]):
    """Decorator: add a diffcore command (``info``, ``quickstart``) to the top-level parser."""
    _CORE_COMMANDS.append(register)
    return register


@core_command
def _register_info(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="print versions of difflab packages, torch and the available devices"
    )
    parser.set_defaults(func=_info)


def _distribution_versions() -> dict[str, str]:
    names = ["diffcore"] + [f"difflab-{ep.name}" for ep in _command_entry_points()]
    names.append("difflab")
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _info(args: argparse.Namespace) -> int:
    import platform

    import torch

    print(f"python            {platform.python_version()} ({sys.executable})")
    for name, ver in _distribution_versions().items():
        print(f"{name:<18}{ver}")
    print(f"torch             {torch.__version__}")
    print(f"numpy             {version('numpy')}")
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [
            f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
        ]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    print(f"devices           {', '.join(devices)}")
    print(f"threads           {torch.get_num_threads()}")
    return 0


def _command_entry_points():
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with diffcore's commands and every installed domain's group."""
    parser = argparse.ArgumentParser(
        prog="difflab",
        description="Diffusion and flow generative models for science. "
        "Command groups come from the installed difflab packages.",
    )
    parser.add_argument("--version", action="version", version=f"diffcore {version('diffcore')}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for register in _CORE_COMMANDS:
        register(subparsers)
    for ep in _command_entry_points():
        try:
            register = ep.load()
        except Exception as exc:  # a broken plug-in must not take the whole CLI down
            warnings.warn(
                f"difflab: could not load command group {ep.name!r} ({ep.value}): {exc}",
                stacklevel=2,
            )
            continue
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``difflab`` command line; returns the exit code."""
    # Import the modules that define core commands (they register themselves on import).
    from diffcore import quickstart as _quickstart  # noqa: F401

    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    return int(func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
