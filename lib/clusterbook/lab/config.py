"""Lab settings, read from an Ansible-style inventory.

The inventory's `all.vars.clusterbook_lab` mapping sets the network and the
state folder; every host with an `ansible_host` inside the lab subnet becomes a
node. A host may carry `clusterbook_lab_node` with per-node boot options.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clusterbook.errors import LabError

DEFAULT_STATE_DIR = "/var/lib/clusterbook/lab"
DEFAULT_BRIDGE = "cblab0"
DEFAULT_SUBNET = "10.251.0.0/24"

#: Linux limits interface names to 15 bytes; the host-side veth is "cb-" + node name.
MAX_NODE_NAME = 12
NODE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")

CGROUP_MODES = ("hybrid", "unified")


@dataclass(frozen=True)
class NodeSpec:
    """One lab node: its name, address and boot options."""

    name: str
    address: str
    #: "hybrid" suits Slurm (slurmd refuses unified mode on a hybrid host);
    #: "unified" lets containerd run containers inside the node.
    cgroup: str = "hybrid"
    #: extra host folders bind-mounted into the node, as (host path, node path)
    binds: tuple[tuple[str, str], ...] = ()
    ssh_timeout: float = 30.0

    @property
    def veth(self) -> str:
        return f"cb-{self.name}"

    @property
    def netns(self) -> str:
        return f"cblab-{self.name}"


@dataclass(frozen=True)
class LabConfig:
    """Lab settings: the state folder, the network, and the nodes to boot."""

    inventory: Path
    state_dir: Path
    base_dir: Path
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    user: str
    nodes: tuple[NodeSpec, ...] = field(default_factory=tuple)
    #: not 3142 and 5000: a host's own apt-cacher-ng service listens on 3142 on
    #: every address, and the lab's proxy could not bind beside it
    apt_proxy_port: int = 3150
    pypi_proxy_port: int = 3151

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    @property
    def private_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def nodes_dir(self) -> Path:
        return self.state_dir / "nodes"

    @property
    def proxy_dir(self) -> Path:
        return self.state_dir / "proxy"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def apt_proxy_url(self) -> str:
        return f"http://{self.gateway}:{self.apt_proxy_port}"

    @property
    def pypi_index_url(self) -> str:
        return f"http://{self.gateway}:{self.pypi_proxy_port}/index/"

    def node(self, name: str) -> NodeSpec:
        """Return the node called `name`, or raise naming the nodes there are."""
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise LabError(f"no lab node named {name!r} in {self.inventory}", hint=f"nodes: {known}")


def load_config(inventory: str | Path) -> LabConfig:
    """Read the lab settings and nodes from `inventory`."""
    path = Path(inventory)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LabError(f"inventory not found: {path}") from None
    except yaml.YAMLError as exc:
        raise LabError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise LabError(f"{path}: expected a top-level 'all' group")

    all_vars = data["all"].get("vars") or {}
    lab_vars = all_vars.get("clusterbook_lab")
    if not isinstance(lab_vars, dict):
        raise LabError(
            f"{path}: all.vars.clusterbook_lab is missing, so this is not a lab inventory",
            hint="use inventory/lab.yml or add clusterbook_lab: {subnet: ..., bridge: ...}",
        )

    subnet = _parse_subnet(path, lab_vars.get("subnet", DEFAULT_SUBNET))
    gateway = ipaddress.IPv4Address(lab_vars.get("gateway") or next(subnet.hosts()))
    if gateway not in subnet:
        raise LabError(f"{path}: clusterbook_lab.gateway {gateway} is outside subnet {subnet}")
    bridge = str(lab_vars.get("bridge", DEFAULT_BRIDGE))
    if len(bridge) > 15 or not re.fullmatch(r"[A-Za-z0-9_.-]+", bridge):
        raise LabError(f"{path}: clusterbook_lab.bridge {bridge!r} is not a valid interface name")
    # A lab on another bridge gets a state folder of its own unless the
    # inventory names one, so it never takes over the default lab's nodes.
    default_state = (
        DEFAULT_STATE_DIR if bridge == DEFAULT_BRIDGE else f"{DEFAULT_STATE_DIR}-{bridge}"
    )
    state_dir = Path(lab_vars.get("state_dir", default_state))
    base_dir = Path(lab_vars.get("base_dir", state_dir / "base"))

    hosts: dict[str, dict[str, Any]] = {}
    _collect_hosts(path, data["all"], {}, hosts)
    nodes = []
    for name, host_vars in hosts.items():
        merged = {**all_vars, **host_vars}
        address = merged.get("ansible_host")
        if address is None:
            continue
        nodes.append(_node_spec(path, name, str(address), merged, subnet, gateway))
    if not nodes:
        raise LabError(f"{path}: no host has an ansible_host inside the lab subnet {subnet}")
    _check_unique(path, nodes)

    return LabConfig(
        inventory=path,
        state_dir=state_dir,
        base_dir=base_dir,
        bridge=bridge,
        subnet=subnet,
        gateway=gateway,
        user=str(all_vars.get("ansible_user", "root")),
        nodes=tuple(nodes),
        apt_proxy_port=int(lab_vars.get("apt_proxy_port", 3150)),
        pypi_proxy_port=int(lab_vars.get("pypi_proxy_port", 3151)),
    )


def _parse_subnet(path: Path, value: Any) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(str(value))
    except ValueError as exc:
        raise LabError(f"{path}: clusterbook_lab.subnet {value!r} is invalid: {exc}") from None
    if subnet.prefixlen > 28:
        raise LabError(f"{path}: clusterbook_lab.subnet {subnet} is too small; use a /24")
    return subnet


def _collect_hosts(
    path: Path, group: dict[str, Any], inherited: dict[str, Any], out: dict[str, dict[str, Any]]
) -> None:
    """Walk a group tree and collect each host's vars, children overriding parents."""
    group_vars = {**inherited, **(group.get("vars") or {})}
    for name, host_vars in (group.get("hosts") or {}).items():
        merged = {**out.get(name, {}), **group_vars, **(host_vars or {})}
        out[name] = merged
    for child in (group.get("children") or {}).values():
        _collect_hosts(path, child or {}, group_vars, out)


def _node_spec(
    path: Path,
    name: str,
    address: str,
    host_vars: dict[str, Any],
    subnet: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address,
) -> NodeSpec:
    if not NODE_NAME.match(name) or len(name) > MAX_NODE_NAME:
        raise LabError(
            f"{path}: host name {name!r} cannot be a lab node",
            hint=f"use lower-case letters, digits and '-', at most {MAX_NODE_NAME} characters",
        )
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise LabError(
            f"{path}: host {name}: ansible_host {address!r} is not an IPv4 address"
        ) from None
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address, gateway):
        raise LabError(
            f"{path}: host {name}: ansible_host {ip} is not a usable node address in {subnet}",
            hint=f"pick an address in {subnet} other than the gateway {gateway}",
        )
    options = host_vars.get("clusterbook_lab_node") or {}
    cgroup = options.get("cgroup", "hybrid")
    if cgroup not in CGROUP_MODES:
        raise LabError(
            f"{path}: host {name}: clusterbook_lab_node.cgroup {cgroup!r} is invalid",
            hint="use 'hybrid' or 'unified'",
        )
    binds = tuple((str(b["host"]), str(b["node"])) for b in options.get("binds", []))
    return NodeSpec(
        name=name,
        address=str(ip),
        cgroup=cgroup,
        binds=binds,
        ssh_timeout=float(options.get("ssh_timeout", 30)),
    )


def _check_unique(path: Path, nodes: list[NodeSpec]) -> None:
    seen: dict[str, str] = {}
    for node in nodes:
        if node.address in seen:
            raise LabError(
                f"{path}: hosts {seen[node.address]} and {node.name} share address {node.address}"
            )
        seen[node.address] = node.name
