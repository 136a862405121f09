"""One lab node: its overlay, its identity files, and its systemd-nspawn process."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from clusterbook.errors import LabError
from clusterbook.lab import cgroups, network
from clusterbook.lab.config import LabConfig, NodeSpec
from clusterbook.lab.image import NODE_USER, base_rootfs, write_proxy_settings
from clusterbook.lab.system import is_mountpoint, read_pid, run, terminate, unmount_tree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodePaths:
    root: Path

    @property
    def upper(self) -> Path:
        return self.root / "upper"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def pid_file(self) -> Path:
        return self.root / "nspawn.pid"

    @property
    def console_log(self) -> Path:
        return self.root / "console.log"

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"


def paths(config: LabConfig, node: NodeSpec) -> NodePaths:
    return NodePaths(config.nodes_dir / node.name)


def nspawn_pid(config: LabConfig, node: NodeSpec) -> int | None:
    """Return the PID of the node's nspawn process when it runs."""
    return read_pid(paths(config, node).pid_file, f"--machine={node.name}")


def mount_overlay(config: LabConfig, node: NodeSpec) -> None:
    p = paths(config, node)
    for folder in (p.upper, p.work, p.merged):
        folder.mkdir(parents=True, exist_ok=True)
    if is_mountpoint(p.merged):
        return
    lower = base_rootfs(config)
    options = f"lowerdir={lower},upperdir={p.upper},workdir={p.work}"
    run(["mount", "-t", "overlay", "overlay", "-o", options, str(p.merged)])


def write_identity(config: LabConfig, node: NodeSpec, public_key: str) -> str:
    """Write hostname, hosts, machine id, authorized keys and the host key; return
    the node's public host key line.

    Hostname and hosts are written on the node's first boot only: later they
    belong to the chapters (chapter 004 manages both), like on a real host.
    """
    p = paths(config, node)
    root = p.merged
    etc = root / "etc"
    first_boot = not (p.upper / "etc" / "hostname").exists()
    if first_boot:
        (etc / "hostname").write_text(f"{node.name}\n")
        lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{node.name}", "::1\tlocalhost ip6-localhost"]
        lines.append("# lab nodes")
        lines += [f"{other.address}\t{other.name}" for other in config.nodes]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
    write_proxy_settings(config, root)
    machine_id = etc / "machine-id"
    if not machine_id.read_text().strip():
        machine_id.write_text(uuid.uuid4().hex + "\n")

    for home, owner in (("root", "root"), (f"home/{NODE_USER}", NODE_USER)):
        ssh_dir = root / home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        existing = keys.read_text() if keys.exists() else ""
        if public_key.strip() not in existing:
            keys.write_text(existing + public_key.strip() + "\n")
        keys.chmod(0o600)
        uid, gid = _owner_ids(root, owner)
        for path in (ssh_dir, keys):
            os.chown(path, uid, gid)

    host_key = etc / "ssh" / "ssh_host_ed25519_key"
    if not host_key.exists():
        comment = f"root@{node.name}"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(host_key)])
    key_type, key = (etc / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"{key_type} {key}"


def launch(config: LabConfig, node: NodeSpec) -> int:
    """Start systemd-nspawn for `node` in the background and return its PID."""
    p = paths(config, node)
    args = [
        "systemd-nspawn",
        "--boot",
        f"--directory={p.merged}",
        f"--machine={node.name}",
        f"--network-namespace-path=/run/netns/{node.netns}",
        "--register=no",
        # Without --keep-unit nspawn requests a scope unit from systemd over D-Bus.
        "--keep-unit",
        "--console=read-only",
        "--capability=all",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
    ]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1" if node.cgroup == "unified" else "0",
    }
    if node.cgroup == "unified":
        # containerd's runc needs the keyring and bpf system calls, and an upper
        # directory that is not itself on overlayfs.
        p.containerd.mkdir(exist_ok=True)
        args += [
            "--system-call-filter=@keyring",
            "--system-call-filter=bpf",
            f"--bind={p.containerd}:/var/lib/containerd",
        ]
    for host_path, node_path in node.binds:
        args.append(f"--bind={host_path}:{node_path}")

    wrapper, join_cgroup = cgroups.placement(node.name)
    with open(p.console_log, "ab") as console:
        console.write(f"\n==== clusterbook lab: starting {node.name} ====\n".encode())
        console.flush()
        process = subprocess.Popen(
            [*wrapper, *args],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=join_cgroup,
        )
    p.pid_file.write_text(f"{process.pid}\n")
    return process.pid


def wait_for_ssh(config: LabConfig, node: NodeSpec, pid: int) -> float:
    """Wait until the node's sshd sends its banner; return the seconds it took."""
    started = time.monotonic()
    deadline = started + node.ssh_timeout
    next_flush = started + 2.0
    while time.monotonic() < deadline:
        if ssh_answers(node.address):
            return time.monotonic() - started
        if time.monotonic() > next_flush:
            network.forget_neighbour(config, node)
            next_flush = time.monotonic() + 2.0
        if read_pid(paths(config, node).pid_file, f"--machine={node.name}") is None:
            raise LabError(
                f"node {node.name} stopped while booting\n{console_tail(config, node)}",
                hint=f"full console log: {paths(config, node).console_log}",
            )
        time.sleep(0.05)
    raise LabError(
        f"node {node.name} ({node.address}) did not answer SSH within {node.ssh_timeout:.0f} s\n"
        f"{console_tail(config, node)}",
        hint=f"full console log: {paths(config, node).console_log}; "
        "raise clusterbook_lab_node.ssh_timeout for slow machines",
    )


def ssh_answers(address: str, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def stop(config: LabConfig, node: NodeSpec, timeout: float = 15.0) -> bool:
    """Power the node off and release its namespace, mount and cgroup; keep its disk.
    Return whether it was running."""
    pid = nspawn_pid(config, node)
    if pid is not None:
        # nspawn turns SIGTERM into a clean poweroff of the node's systemd.
        terminate(pid, timeout=timeout)
    p = paths(config, node)
    p.pid_file.unlink(missing_ok=True)
    network.remove_node_network(node)
    if p.merged.exists():
        unmount_tree(p.merged)
    cgroups.remove(node.name)
    return pid is not None


def destroy(config: LabConfig, node: NodeSpec) -> None:
    stop(config, node)
    p = paths(config, node)
    if p.root.exists():
        unmount_tree(p.root)
        shutil.rmtree(p.root, ignore_errors=True)


def console_tail(config: LabConfig, node: NodeSpec, lines: int = 20) -> str:
    try:
        text = paths(config, node).console_log.read_text(errors="replace")
    except OSError:
        return "(no console log)"
    tail = text.splitlines()[-lines:]
    return "--- last console lines ---\n" + "\n".join(tail)


def _owner_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LabError(f"user {user} is missing from the lab base image", hint="rebuild: lab down")
