"""Placement of each node's nspawn process in the host's cgroup tree.

nspawn with --keep-unit puts the node in `<own cgroup>/payload`, so every node
needs a cgroup of its own before nspawn starts, or all nodes would collide in
one. On a host whose PID 1 is systemd, `systemd-run --scope` makes that cgroup
(with delegation); elsewhere the lab creates it under `clusterbook/<node>` in
the name=systemd and unified hierarchies (hybrid layout) or in the cgroup2 root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
LAB_SLICE = "clusterbook"


def host_runs_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def hierarchies() -> list[Path]:
    """Return the hierarchy roots the lab places nodes in on a host without systemd."""
    if (CGROUP_ROOT / "systemd" / "cgroup.procs").exists():
        roots = [CGROUP_ROOT / "systemd"]
        if (CGROUP_ROOT / "unified" / "cgroup.procs").exists():
            roots.append(CGROUP_ROOT / "unified")
        return roots
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return []


def placement(node: str) -> tuple[list[str], Callable[[], None] | None]:
    """Return a command prefix and a pre-exec hook that give `node` its own cgroup."""
    if host_runs_systemd():
        # NOTE: this branch is written from systemd-run's documentation; the lab
        # was measured on a host without systemd as PID 1.
        unit = f"clusterbook-lab-{node}"
        return ["systemd-run", "--scope", "--quiet", f"--unit={unit}", "-p", "Delegate=yes"], None

    folders = [root / LAB_SLICE / node for root in hierarchies()]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)

    def join() -> None:
        pid = str(os.getpid())
        for folder in folders:
            (folder / "cgroup.procs").write_text(pid)

    return [], join


def remove(node: str, timeout: float = 5.0) -> None:
    """Kill what is left in the node's cgroups, then remove them, deepest first.

    When nspawn itself was killed (as when a CI machine ends a session's
    processes), the node's systemd and its services keep running in the
    node's cgroup. They are killed here so the node can boot afresh.
    """
    deadline = time.monotonic() + timeout
    for root in hierarchies():
        folder = root / LAB_SLICE / node
        while folder.is_dir() and time.monotonic() < deadline:
            pids = _pids_under(folder)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        _remove_tree(folder)


def _pids_under(folder: Path) -> list[int]:
    pids = []
    for procs in folder.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(line) for line in procs.read_text().split()]
    return pids


def remove_slice() -> None:
    for root in hierarchies():
        slice_dir = root / LAB_SLICE
        if slice_dir.is_dir() and not any(p.is_dir() for p in slice_dir.iterdir()):
            with contextlib.suppress(OSError):
                slice_dir.rmdir()


def leftover_nodes() -> list[str]:
    found: set[str] = set()
    for root in hierarchies():
        slice_dir = root / LAB_SLICE
        if slice_dir.is_dir():
            found.update(p.name for p in slice_dir.iterdir() if p.is_dir())
    return sorted(found)


def _remove_tree(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir():
            _remove_tree(child)
    with contextlib.suppress(OSError):
        path.rmdir()
