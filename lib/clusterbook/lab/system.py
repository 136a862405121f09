"""Small wrappers around the host commands the lab uses."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from clusterbook.errors import LabError

log = logging.getLogger(__name__)


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a host command and return it; raise `LabError` with its output on failure."""
    log.debug("running: %s", " ".join(args))
    try:
        proc = subprocess.run(
            list(args),
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise LabError(f"command not found: {args[0]}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"command timed out after {timeout} s: {' '.join(args)}") from None
    if check and proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        raise LabError(
            f"command failed with exit code {proc.returncode}: {' '.join(args)}\n{output}"
        )
    return proc


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # kill(0) succeeds for a zombie too, so treat a zombie as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_pid(path: Path, must_contain: str) -> int | None:
    """Return the PID stored in `path` if that process runs and its command line
    contains `must_contain`, so a recycled PID is never taken for ours."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return pid if must_contain in cmdline else None


def terminate(pid: int, timeout: float = 10.0) -> None:
    """Send SIGTERM, wait up to `timeout` seconds, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _reap(pid)
            return
        time.sleep(0.05)
    log.warning("process %d did not stop within %.0f s; killing it", pid, timeout)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while pid_alive(pid):
        time.sleep(0.05)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_mountpoint(path: Path) -> bool:
    target = str(path.resolve()) if path.exists() else str(path)
    try:
        with open("/proc/self/mountinfo") as mounts:
            return any(line.split()[4] == target for line in mounts)
    except OSError:
        return False


def mounts_under(path: Path) -> list[str]:
    """Return the mount points at or below `path`, deepest first."""
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_tree(path: Path) -> None:
    for point in mounts_under(path):
        run(["umount", point], check=False)
        if is_mountpoint(Path(point)):
            run(["umount", "-l", point], check=False)


def which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
