"""Checks that run before the lab touches anything, each with one clear message."""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import shutil
from pathlib import Path

from clusterbook.errors import LabError
from clusterbook.lab.config import LabConfig, NodeSpec
from clusterbook.lab.system import run, which

#: host command -> Debian package that provides it
REQUIRED_COMMANDS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "apt-cacher-ng": "apt-cacher-ng",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
    "nft": "nftables",
}

#: free space needed in the state folder: a cold start builds a ~320 MB base
COLD_FREE_BYTES = 1024**3
WARM_FREE_BYTES = 200 * 1024**2


def check_host() -> None:
    """Fail unless this is Linux and we are root."""
    if platform.system() != "Linux":
        raise LabError(
            f"the lab needs Linux; this machine runs {platform.system()}",
            hint="run the notebooks against real hosts with -p inventory inventory/goldentooth.yml",
        )
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root: it mounts overlays and creates network namespaces",
            hint="run it with sudo, e.g. sudo .venv/bin/clusterbook lab up",
        )


def missing_packages() -> list[str]:
    """Return the Debian packages whose commands are missing, in install order."""
    packages: list[str] = []
    for command, package in REQUIRED_COMMANDS.items():
        if which(command) is None and package not in packages:
            packages.append(package)
    return packages


def check_commands(install: bool) -> None:
    """Fail naming the Debian packages to install, or install them when asked."""
    packages = missing_packages()
    if not packages:
        return
    if not install:
        raise LabError(
            "missing host packages: " + " ".join(packages),
            hint="apt-get install " + " ".join(packages) + "  (or: clusterbook lab up --install)",
        )
    if which("apt-get") is None:
        raise LabError(
            "missing host packages and no apt-get to install them: " + " ".join(packages)
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    # The package scripts would start a system-wide apt-cacher-ng; the lab runs its own.
    run(["apt-get", "install", "-y", "-qq", *packages], env=env)
    still = missing_packages()
    if still:
        raise LabError("installing did not provide: " + " ".join(still))


def check_subnet(config: LabConfig) -> None:
    """Fail when the lab subnet is already routed on this host by something else."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst")
        if not dst or dst == "default" or route.get("dev") == config.bridge:
            continue
        try:
            net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        if net.version == 4 and net.overlaps(config.subnet):
            raise LabError(
                f"lab subnet {config.subnet} is already routed on this host "
                f"({dst} via {route.get('dev', '?')})",
                hint="set all.vars.clusterbook_lab.subnet in the inventory to a free /24",
            )


def check_disk(config: LabConfig, cold: bool) -> None:
    """Fail when the state folder's file system has too little free space."""
    probe = config.state_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = COLD_FREE_BYTES if cold else WARM_FREE_BYTES
    if free < need:
        raise LabError(
            f"not enough disk space in {probe}: {free // 2**20} MiB free, "
            f"{need // 2**20} MiB needed",
            hint="free some space or set all.vars.clusterbook_lab.state_dir elsewhere",
        )


def check_overlay() -> None:
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise LabError(
            "the kernel has no overlay file system, which the lab nodes need",
            hint="modprobe overlay",
        )


OWNER_FILE = "lab.json"


def check_owner(config: LabConfig) -> None:
    """Fail when the state folder belongs to a lab on another bridge or subnet."""
    owner_file = config.state_dir / OWNER_FILE
    try:
        owner = json.loads(owner_file.read_text())
    except (OSError, ValueError):
        return
    mine = {"bridge": config.bridge, "subnet": str(config.subnet)}
    theirs = {"bridge": owner.get("bridge"), "subnet": owner.get("subnet")}
    if mine != theirs:
        raise LabError(
            f"state folder {config.state_dir} belongs to the lab on bridge {theirs['bridge']}, "
            f"subnet {theirs['subnet']} ({owner.get('inventory', 'unknown inventory')}); "
            f"{config.inventory} uses bridge {config.bridge}, subnet {config.subnet}",
            hint="set all.vars.clusterbook_lab.state_dir to a folder of its own",
        )


def record_owner(config: LabConfig) -> None:
    owner = {
        "bridge": config.bridge,
        "subnet": str(config.subnet),
        "inventory": str(config.inventory.resolve()),
    }
    (config.state_dir / OWNER_FILE).write_text(json.dumps(owner, indent=2) + "\n")


def check_node_names(config: LabConfig, nodes: list[NodeSpec]) -> None:
    """Fail when another lab already runs a node of the same name: network
    namespaces, veths and cgroups are named after the node, host-wide."""
    for node in nodes:
        ours = (config.nodes_dir / node.name).is_dir()
        if Path(f"/run/netns/{node.netns}").exists() and not ours:
            raise LabError(
                f"node name {node.name} is already used by another lab on this host "
                f"(network namespace {node.netns} exists)",
                hint=f"rename the host in {config.inventory}, or bring the other lab down; "
                f"if no other lab runs, remove the leftover with: ip netns del {node.netns}",
            )
