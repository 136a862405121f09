"""Bring the whole lab up and down, and power single nodes off and on."""

from __future__ import annotations

import fcntl
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from clusterbook.errors import LabError
from clusterbook.lab import cgroups, firewall, image, network, node, preflight, proxy
from clusterbook.lab.config import LabConfig, NodeSpec, load_config
from clusterbook.lab.system import run

log = logging.getLogger(__name__)


def _print_progress(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


@dataclass
class NodeStatus:
    name: str
    address: str
    state: str  # "running", "stopped" or "absent"
    ssh: bool
    pid: int | None


@dataclass
class UpReport:
    started: list[str]
    already_running: list[str]
    base_built: bool
    seconds: float


class Lab:
    """The lab described by one inventory."""

    def __init__(
        self, inventory: str | Path, progress: Callable[[str], None] = _print_progress
    ) -> None:
        self.config: LabConfig = load_config(inventory)
        self.progress = progress

    # -- whole lab ---------------------------------------------------------

    def up(self, install_missing: bool = False) -> UpReport:
        """Start every node that is not running; build what is missing first."""
        started_at = time.monotonic()
        preflight.check_host()
        preflight.check_commands(install_missing)
        preflight.check_overlay()
        cold = not image.base_is_built(self.config)
        preflight.check_disk(self.config, cold=cold)
        preflight.check_owner(self.config)
        if not network.link_exists(self.config.bridge):
            preflight.check_subnet(self.config)
        stopped = [n for n in self.config.nodes if node.nspawn_pid(self.config, n) is None]
        preflight.check_node_names(self.config, stopped)
        with self._lock():
            self._prepare_state()
            preflight.record_owner(self.config)
            network.ensure_bridge(self.config)
            firewall.apply(self.config)
            proxy.start_proxies(self.config)
            if cold:
                image.build_base(self.config, self.progress)
            to_start = [n for n in self.config.nodes if node.nspawn_pid(self.config, n) is None]
            running = [n.name for n in self.config.nodes if n not in to_start]
            self._boot(to_start)
            self._write_known_hosts()
        seconds = time.monotonic() - started_at
        self.progress(
            f"{len(self.config.nodes)} nodes up in {seconds:.1f} s "
            f"({len(to_start)} started, {len(running)} already running)"
        )
        return UpReport([n.name for n in to_start], running, cold, seconds)

    def down(self, keep_base: bool = False) -> None:
        """Stop every node and remove everything the lab created."""
        preflight.check_host()
        preflight.check_owner(self.config)
        with self._lock():
            names = {n.name for n in self.config.nodes}
            leftovers = []
            if self.config.nodes_dir.is_dir():
                leftovers = [
                    NodeSpec(name=p.name, address="0.0.0.0")
                    for p in self.config.nodes_dir.iterdir()
                    if p.is_dir() and p.name not in names
                ]
            every = list(self.config.nodes) + leftovers
            with ThreadPoolExecutor(max_workers=max(1, len(every))) as pool:
                list(pool.map(lambda n: node.destroy(self.config, n), every))
            proxy.stop_proxies(self.config)
            network.remove_bridge(self.config)
            firewall.remove(self.config)
            cgroups.remove_slice()
            for spec in every:
                shutil.rmtree(Path("/run/systemd/nspawn/propagate") / spec.name, ignore_errors=True)
            _release_run_netns()
            self._remove_state(keep_base)
        self.progress("lab is down" + (" (base kept)" if keep_base else ""))

    def status(self) -> list[NodeStatus]:
        result = []
        for spec in self.config.nodes:
            pid = node.nspawn_pid(self.config, spec)
            if pid is not None:
                state = "running"
            elif node.paths(self.config, spec).upper.exists():
                state = "stopped"
            else:
                state = "absent"
            ssh = node.ssh_answers(spec.address) if pid is not None else False
            result.append(NodeStatus(spec.name, spec.address, state, ssh, pid))
        return result

    # -- single nodes ------------------------------------------------------

    def start(self, name: str) -> None:
        spec = self.config.node(name)
        preflight.check_host()
        preflight.check_owner(self.config)
        preflight.check_node_names(self.config, [spec])
        if not image.base_is_built(self.config) or not network.link_exists(self.config.bridge):
            raise LabError(f"cannot start {name}: the lab is not up", hint="clusterbook lab up")
        with self._lock():
            if node.nspawn_pid(self.config, spec) is not None:
                self.progress(f"{name} is already running")
                return
            self._boot([spec])
            self._write_known_hosts()
        self.progress(f"{name} is running")

    def stop(self, name: str) -> None:
        spec = self.config.node(name)
        preflight.check_host()
        preflight.check_owner(self.config)
        with self._lock():
            was_running = node.stop(self.config, spec)
        self.progress(f"{name} is powered off" if was_running else f"{name} was not running")

    # -- internals ---------------------------------------------------------

    def _boot(self, specs: list[NodeSpec]) -> None:
        if not specs:
            return
        public_key = (self.config.ssh_dir / "id_ed25519.pub").read_text()
        base_key = image.base_key(self.config)
        pids = {}
        for spec in specs:
            paths = node.paths(self.config, spec)
            marker = paths.root / "base"
            if marker.exists() and marker.read_text().strip() != base_key:
                self.progress(f"{spec.name}: base image changed, recreating its disk")
                node.destroy(self.config, spec)
            node.stop(self.config, spec)  # clears leftovers of an earlier, killed run
            node.mount_overlay(self.config, spec)
            marker.write_text(base_key + "\n")
            node.write_identity(self.config, spec, public_key)
            network.create_node_network(self.config, spec)
            pids[spec.name] = node.launch(self.config, spec)
        self.progress("booting " + ", ".join(s.name for s in specs))
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            futures = {
                s.name: pool.submit(node.wait_for_ssh, self.config, s, pids[s.name]) for s in specs
            }
            errors = []
            for _name, future in futures.items():
                try:
                    future.result()
                except LabError as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]

    def _prepare_state(self) -> None:
        for folder in (self.config.state_dir, self.config.nodes_dir, self.config.proxy_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.config.state_dir.chmod(0o755)
        ssh_dir = self.config.ssh_dir
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        self.config.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        key = self.config.private_key
        if not key.exists():
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "clusterbook-lab",
                    "-f",
                    str(key),
                ]
            )

    def _write_known_hosts(self) -> None:
        lines = []
        for spec in self.config.nodes:
            pub = node.paths(self.config, spec).merged / "etc/ssh/ssh_host_ed25519_key.pub"
            upper_pub = node.paths(self.config, spec).upper / "etc/ssh/ssh_host_ed25519_key.pub"
            source = pub if pub.exists() else upper_pub
            if not source.exists():
                continue
            key_type, key = source.read_text().split()[:2]
            lines.append(f"{spec.name},{spec.address} {key_type} {key}")
        target = self.config.known_hosts
        tmp = target.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o644)
        tmp.replace(target)

    def _remove_state(self, keep_base: bool) -> None:
        state = self.config.state_dir
        if not state.exists():
            return
        keep = {self.config.base_dir.resolve()} if keep_base else set()
        if keep_base:
            # The package caches are caches too; keeping them makes the next cold
            # start independent of the network.
            keep |= {p.resolve() for p in self.config.proxy_dir.glob("*/cache")}
        _remove_except(state, keep)
        if not keep_base and self.config.base_dir.exists():
            image.remove_bases(self.config)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.config.state_dir / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabError(
                    f"another clusterbook lab command is running on {self.config.state_dir}",
                    hint="wait for it to finish",
                ) from None
            yield


def _remove_except(folder: Path, keep: set[Path]) -> None:
    """Remove `folder` and its content, except the paths in `keep` and their parents."""
    if folder.resolve() in keep:
        return
    if not any(k.is_relative_to(folder.resolve()) for k in keep):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.unlink(missing_ok=True)
        return
    for child in folder.iterdir():
        _remove_except(child, keep)


def _release_run_netns() -> None:
    """Undo the bind mount `ip netns add` made on /run/netns once no namespace is left."""
    netns = Path("/run/netns")
    if netns.is_dir() and not any(netns.iterdir()):
        run(["umount", str(netns)], check=False)
        with suppress(OSError):
            netns.rmdir()
