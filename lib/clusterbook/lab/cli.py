"""`clusterbook lab ...`: the embedded lab's sub-commands."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from clusterbook.errors import LabError
from clusterbook.lab.manager import Lab
from clusterbook.paths import repo_root

DEFAULT_INVENTORY = "inventory/lab.yml"


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser("lab", help="run the local lab cluster", description=__doc__)
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = lab_sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "-i",
            "--inventory",
            default=None,
            help=f"lab inventory (default: {DEFAULT_INVENTORY} in the repository)",
        )
        return parser

    up = add("up", "build the base once, then start every node that is not running")
    up.add_argument(
        "--install",
        action="store_true",
        help="apt-get install missing host packages instead of failing",
    )
    up.set_defaults(func=_up)

    down = add("down", "stop every node and remove everything the lab created")
    down.add_argument(
        "--keep-base",
        action="store_true",
        help="keep the cached Debian base and package caches for a fast next start",
    )
    down.set_defaults(func=_down)

    status = add("status", "show each node's state, address and whether SSH answers")
    status.set_defaults(func=_status)

    ssh = add("ssh", "open a shell on a node, or run a command there")
    ssh.add_argument("node", help="node name, e.g. allyrion")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER, help="command to run (after --)")
    ssh.set_defaults(func=_ssh)

    stop = add("stop", "power one node off, keeping its disk")
    stop.add_argument("node")
    stop.set_defaults(func=_stop)

    start = add("start", "power one node back on")
    start.add_argument("node")
    start.set_defaults(func=_start)


def _lab(args: argparse.Namespace) -> Lab:
    inventory = args.inventory or str(repo_root() / DEFAULT_INVENTORY)
    return Lab(inventory)


def _up(args: argparse.Namespace) -> int:
    _lab(args).up(install_missing=args.install)
    return 0


def _down(args: argparse.Namespace) -> int:
    _lab(args).down(keep_base=args.keep_base)
    return 0


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    lab = _lab(args)
    table = Table(title=f"lab nodes ({lab.config.inventory})")
    for column in ("node", "state", "address", "ssh", "pid"):
        table.add_column(column)
    rows = lab.status()
    for row in rows:
        ssh = "answers" if row.ssh else "-"
        table.add_row(row.name, row.state, row.address, ssh, str(row.pid or "-"))
    Console().print(table)
    return 0 if all(r.state == "running" and r.ssh for r in rows) else 3


def _ssh(args: argparse.Namespace) -> int:
    command = list(args.cmd)
    if "--" in command:
        # Options typed after NODE land in the remainder; accept -i/--inventory there.
        split = command.index("--")
        before, command = command[:split], command[split + 1 :]
        extra = argparse.ArgumentParser(prog="clusterbook lab ssh", add_help=False)
        extra.add_argument("-i", "--inventory")
        parsed, unknown = extra.parse_known_args(before)
        if unknown:
            raise LabError(
                f"unexpected arguments before '--': {' '.join(unknown)}",
                hint="usage: clusterbook lab ssh [-i INVENTORY] NODE [-- COMMAND...]",
            )
        if parsed.inventory:
            args.inventory = parsed.inventory
    lab = _lab(args)
    spec = lab.config.node(args.node)
    key = lab.config.private_key
    if not key.exists():
        raise LabError("the lab has no SSH key yet", hint="clusterbook lab up")
    state = next(s for s in lab.status() if s.name == spec.name)
    if state.state != "running":
        raise LabError(
            f"lab node {spec.name} is {state.state}",
            hint=f"clusterbook lab start {spec.name}"
            if state.state == "stopped"
            else "clusterbook lab up",
        )
    argv = [
        "ssh",
        "-i",
        str(key),
        "-o",
        f"UserKnownHostsFile={lab.config.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=5",
        f"{lab.config.user}@{spec.address}",
    ]
    if not command:
        argv.insert(1, "-t")
    elif len(command) > 1:
        # ssh joins its arguments with spaces; quote each one so that
        # `-- grep -c 'stats auth' file` reaches the node as three words.
        command = [shlex.join(command)]
    sys.stdout.flush()
    os.execvp("ssh", argv + command)
    return 0  # not reached


def _stop(args: argparse.Namespace) -> int:
    _lab(args).stop(args.node)
    return 0


def _start(args: argparse.Namespace) -> int:
    _lab(args).start(args.node)
    return 0


__all__ = ["register"]
