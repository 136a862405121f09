"""The lab network: one host bridge, and one network namespace per node.

Nodes get an address on the bridge's /24 and no default route, so they can
reach each other and the proxies on the bridge address, and nothing else.
Forwarding is switched off on the bridge, so even a node that adds its own
default route is not routed onward by this host.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from clusterbook.lab.config import LabConfig, NodeSpec
from clusterbook.lab.system import run

log = logging.getLogger(__name__)


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def ensure_bridge(config: LabConfig) -> None:
    """Create the bridge with the gateway address, or repair a leftover one."""
    bridge = config.bridge
    if not link_exists(bridge):
        run(["ip", "link", "add", bridge, "type", "bridge"])
        log.info("created bridge %s", bridge)
    _write_sysctl(f"net/ipv6/conf/{bridge}/disable_ipv6", "1")
    _write_sysctl(f"net/ipv4/conf/{bridge}/forwarding", "0")
    address = f"{config.gateway}/{config.subnet.prefixlen}"
    current = run(["ip", "-4", "-o", "addr", "show", "dev", bridge]).stdout
    if address not in current:
        run(["ip", "addr", "flush", "dev", bridge])
        run(["ip", "addr", "add", address, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def remove_bridge(config: LabConfig) -> None:
    if link_exists(config.bridge):
        run(["ip", "link", "del", config.bridge], check=False)
        log.info("removed bridge %s", config.bridge)


def create_node_network(config: LabConfig, node: NodeSpec) -> None:
    """Give `node` a fresh namespace wired to the bridge, replacing any leftover."""
    remove_node_network(node)
    run(["ip", "netns", "add", node.netns])
    veth = ["ip", "link", "add", node.veth, "type", "veth"]
    peer = ["peer", "name", "eth0", "address", node_mac(config, node), "netns", node.netns]
    run(veth + peer)
    _write_sysctl(f"net/ipv6/conf/{node.veth}/disable_ipv6", "1")
    run(["ip", "link", "set", node.veth, "master", config.bridge, "up"])
    ns = ["ip", "-n", node.netns]
    run([*ns, "link", "set", "lo", "up"])
    run([*ns, "addr", "add", f"{node.address}/{config.subnet.prefixlen}", "dev", "eth0"])
    run([*ns, "link", "set", "eth0", "up"])
    forget_neighbour(config, node)


def forget_neighbour(config: LabConfig, node: NodeSpec) -> None:
    """Drop the ARP entries for the node on this host and on the other nodes.
    A node that was probed while powered off leaves a FAILED entry, which the
    host may not retry for many seconds after the node is back."""
    run(["ip", "neigh", "flush", "to", node.address, "dev", config.bridge], check=False)
    for other in config.nodes:
        if other.name != node.name and netns_exists(other.netns):
            run(["ip", "-n", other.netns, "neigh", "flush", "to", node.address], check=False)


def node_mac(config: LabConfig, node: NodeSpec) -> str:
    """Return a stable, locally administered MAC address for the node's eth0, so
    a node that is powered off and on keeps it and no neighbour cache goes stale."""
    digest = hashlib.sha256(f"{config.bridge}/{node.name}".encode()).digest()
    return "02:cb:" + ":".join(f"{b:02x}" for b in digest[:4])


def remove_node_network(node: NodeSpec) -> None:
    if netns_exists(node.netns):
        run(["ip", "netns", "del", node.netns], check=False)
    if link_exists(node.veth):
        run(["ip", "link", "del", node.veth], check=False)


def lab_netns_names() -> list[str]:
    """Return every lab namespace on this host, including ones from other inventories."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    return sorted(p.name for p in netns_dir.iterdir() if p.name.startswith("cblab-"))


def _write_sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    try:
        path.write_text(value)
    except OSError as exc:
        log.debug("could not set %s=%s: %s", key, value, exc)
