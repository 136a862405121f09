"""The embedded lab: Debian 12 nodes on this machine, booted with systemd-nspawn.

Each node gets a copy-on-write overlay of one cached base root filesystem, its
own network namespace on a host bridge, systemd as PID 1 and sshd. Nodes reach
Debian's mirror and PyPI only through caching proxies on the bridge address.
`clusterbook lab up|down|status|ssh|stop|start` drive it (see `lab.cli`).
"""

from clusterbook.lab.config import LabConfig, NodeSpec
from clusterbook.lab.manager import Lab

__all__ = ["Lab", "LabConfig", "NodeSpec"]
