"""The `clusterbook` command: one sub-command group per area of the library.

Each area module exposes `register(subparsers)`, which adds its parser and sets
`func` on it; `main` dispatches and turns a `ClusterbookError` into one message
on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from clusterbook.errors import ClusterbookError

#: modules that contribute sub-commands, in the order `--help` lists them
COMMAND_MODULES = (
    "clusterbook.lab.cli",
    "clusterbook.runner_cli",
    "clusterbook.book",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="clusterbook",
        description="Executable runbooks for a homelab cluster, and the local lab they run on.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `clusterbook` command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ClusterbookError as exc:
        print(f"clusterbook: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("clusterbook: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
