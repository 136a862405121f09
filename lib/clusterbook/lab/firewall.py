"""Host firewall rules that keep lab nodes away from this host's own services.

Nodes have no default route, so they cannot reach other networks. They could
still reach any service on this host that listens on all addresses; an
nftables table (one per bridge, named after it) lets packets from the bridge
reach only the two proxy ports, plus replies to connections this host opened.
"""

from __future__ import annotations

import logging

from clusterbook.lab.config import LabConfig
from clusterbook.lab.system import run, which

log = logging.getLogger(__name__)


def table_name(config: LabConfig) -> str:
    return f"clusterbook_{config.bridge.replace('-', '_').replace('.', '_')}"


def ruleset(config: LabConfig) -> str:
    bridge = config.bridge
    ports = f"{config.apt_proxy_port}, {config.pypi_proxy_port}"
    return f"""table inet {table_name(config)} {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{bridge}" ct state established,related accept
        iifname "{bridge}" ip daddr {config.gateway} tcp dport {{ {ports} }} accept
        iifname "{bridge}" reject
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{bridge}" oifname != "{bridge}" reject
        oifname "{bridge}" iifname != "{bridge}" reject
    }}
}}
"""


def apply(config: LabConfig) -> bool:
    """Install (or replace) the lab's table; return False when nftables is unusable."""
    if which("nft") is None:
        log.warning("nft is missing; nodes can reach services on all addresses of this host")
        return False
    remove(config)
    proc = run(["nft", "-f", "-"], input=ruleset(config), check=False)
    if proc.returncode != 0:
        log.warning(
            "nftables rules failed (%s); nodes can reach this host's services", proc.stderr.strip()
        )
        return False
    return True


def remove(config: LabConfig) -> None:
    if which("nft") is None:
        return
    run(["nft", "delete", "table", "inet", table_name(config)], check=False)


def is_applied(config: LabConfig) -> bool:
    if which("nft") is None:
        return False
    return run(["nft", "list", "table", "inet", table_name(config)], check=False).returncode == 0
