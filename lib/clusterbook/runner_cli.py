"""The `clusterbook run` command: execute chapters in book order into runs/<timestamp>/."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from clusterbook import paths, runner
from clusterbook.errors import ClusterbookError

EPILOG = """\
examples:
  clusterbook run 001-010                    every chapter from 001 to 010
  clusterbook run 006 --limit allyrion       one chapter on one host
  clusterbook run --check                    every chapter, changing nothing
  clusterbook run 009 -p kubernetes_version 1.30
                                             a string parameter stays "1.30"
  clusterbook run --resume 20261204T210512Z  continue a failed run at the failed chapter

A parameter marked `# secret` in a chapter's parameters cell never enters the
notebook: its value goes to the kernel in CLUSTERBOOK_SECRET_<NAME>, and the
notebook receives the reference env:CLUSTERBOOK_SECRET_<NAME>.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` sub-command."""
    parser = subparsers.add_parser(
        "run",
        help="execute chapters in book order with papermill",
        description="Execute chapters in book order with papermill, one executed notebook "
        "per chapter in runs/<timestamp>/, and stop at the first failing chapter.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "chapters",
        nargs="*",
        metavar="CHAPTER",
        help="chapter number (006), range (001-010) or name (006_load_balancer, "
        "load_balancer); default: every chapter",
    )
    parser.add_argument("--inventory", metavar="FILE", help="inventory file for every chapter")
    parser.add_argument(
        "--limit", metavar="PATTERN", help="run on the hosts matching this host pattern only"
    )
    parser.add_argument(
        "--check", action="store_true", help="check mode: report what would change, change nothing"
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a chapter parameter; VALUE takes the type of the parameter's default",
    )
    parser.add_argument(
        "--resume", metavar="RUN", help="continue run RUN (id or folder) at its failed chapter"
    )
    parser.add_argument(
        "--timeout",
        type=int,
        metavar="SECONDS",
        default=runner.DEFAULT_CELL_TIMEOUT,
        help=f"maximum time one cell may run (default: {runner.DEFAULT_CELL_TIMEOUT})",
    )
    parser.add_argument(
        "--kernel", default="python3", metavar="NAME", help="Jupyter kernel (default: python3)"
    )
    parser.add_argument(
        "--notebooks", type=Path, metavar="DIR", help="chapter folder (default: notebooks/)"
    )
    parser.add_argument(
        "--runs", type=Path, metavar="DIR", help="folder for run records (default: runs/)"
    )
    parser.set_defaults(func=run_command)


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    # The runner handles KeyboardInterrupt: it marks the run `interrupted` and stops.
    raise KeyboardInterrupt


def _drop_timeout_message(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Timeout waiting for execute reply")


def run_command(args: argparse.Namespace) -> int:
    """Start or resume a run and return the exit status."""
    if not getattr(args, "verbose", False):
        papermill_log = logging.getLogger("papermill")
        papermill_log.setLevel(logging.WARNING)
        # The failure summary reports a cell timeout once, with the cell and the limit.
        papermill_log.addFilter(_drop_timeout_message)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    settings = runner.RunSettings(
        notebooks_dir=args.notebooks or paths.repo_root() / "notebooks",
        runs_dir=args.runs or paths.repo_root() / "runs",
        inventory=args.inventory,
        limit=args.limit,
        check=args.check,
        parameters=[tuple(pair) for pair in args.parameter],
        kernel_name=args.kernel,
        execution_timeout=args.timeout,
    )
    if args.resume:
        if args.chapters or args.inventory or args.limit is not None or args.check:
            raise ClusterbookError(
                "--resume continues a run with its own chapters, inventory, limit and check mode",
                hint="drop CHAPTER, --inventory, --limit and --check, or start a new run",
            )
        runner.resume(args.resume, settings)
    else:
        runner.start(args.chapters, settings)
    return 0
