"""Measure the embedded lab: cold and warm `lab up`, memory per idle node, `lab down`.

Runs a separate six-node lab (bridge cbbench0, subnet 10.254.0.0/24, its own
state folder) so it never touches the main lab. Needs root.

    sudo .venv/bin/python benchmarks/bench_lab.py [--rounds 3] [--skip-cold]

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from clusterbook.lab import cgroups
from clusterbook.lab.manager import Lab

NODES = ["bench-a", "bench-b", "bench-c", "bench-d", "bench-e", "bench-f"]


def write_inventory(folder: Path) -> Path:
    hosts = "\n".join(
        f"    {name}:\n      ansible_host: 10.254.0.{10 + i}" for i, name in enumerate(NODES)
    )
    inventory = folder / "bench-lab.yml"
    inventory.write_text(
        textwrap.dedent(
            f"""\
            all:
              vars:
                ansible_user: admin
                clusterbook_lab:
                  state_dir: {folder / "state"}
                  bridge: cbbench0
                  subnet: 10.254.0.0/24
              hosts:
            """
        )
        + hosts
        + "\n"
    )
    return inventory


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def node_pss_mib(name: str) -> float:
    """Sum the PSS of every process in the node's cgroup, nspawn included."""
    total_kib = 0
    for root in cgroups.hierarchies()[:1]:
        for procs in (root / cgroups.LAB_SLICE / name).rglob("cgroup.procs"):
            for pid in procs.read_text().split():
                try:
                    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except OSError:
                    continue
                for line in rollup.splitlines():
                    if line.startswith("Pss:"):
                        total_kib += int(line.split()[1])
    return total_kib / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()

    quiet = lambda message: None  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory(prefix="cb-bench-") as tmp:
        inventory = write_inventory(Path(tmp))
        lab = Lab(inventory, progress=quiet)
        try:
            if not args.skip_cold:
                rows.append(("cold `lab up`, 6 nodes (debootstrap + boot)", [timed(lab.up)]))
                lab.down(keep_base=True)
            else:
                lab.up()
                lab.down(keep_base=True)
            warm, down = [], []
            for _ in range(args.rounds):
                warm.append(timed(lab.up))
                time.sleep(5)  # let the nodes settle before measuring memory
                memory = [node_pss_mib(n) for n in NODES]
                down.append(timed(lambda: lab.down(keep_base=True)))
            rows.append(("warm `lab up`, 6 nodes (base cached, fresh overlays)", warm))
            rows.append(("`lab down --keep-base`, 6 nodes", down))
        finally:
            lab.down()

    cpu = subprocess.run(
        ["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"machine: {platform.node()}, {cpu}, {len(__import__('os').sched_getaffinity(0))} CPUs, "
        f"kernel {platform.release()}, Python {platform.python_version()}"
    )
    print(f"command: {' '.join(sys.argv)}\n")
    print("| measurement | median | min | max | rounds |")
    print("|---|---|---|---|---|")
    for label, values in rows:
        print(
            f"| {label} | {statistics.median(values):.2f} s | {min(values):.2f} s | "
            f"{max(values):.2f} s | {len(values)} |"
        )
    print(
        f"| idle node memory (PSS incl. nspawn, last round) | "
        f"{statistics.median(memory):.1f} MiB | {min(memory):.1f} MiB | "
        f"{max(memory):.1f} MiB | {len(memory)} nodes |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
