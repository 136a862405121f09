"""Capabilities a target may lack, and `requires` blocks that fall back to check mode.

A host lists what it can do in the host var `clusterbook_capabilities`. Inside
`with cluster.requires("internet", why=...)`, every operation on a host that lacks one of
the named capabilities runs in check mode, and the block starts by saying which hosts
that concerns and why.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clusterbook.errors import RequirementError

if TYPE_CHECKING:
    from clusterbook.cluster import Cluster

log = logging.getLogger(__name__)

#: every capability name in use, with what it means
CAPABILITIES = {
    "debian_mirror": "installs Debian packages from a mirror",
    "pypi": "installs Python packages from PyPI",
    "systemd": "runs systemd as PID 1",
    "internet": "downloads from the internet (vendor repositories, release binaries)",
    "own_kernel": "has its own kernel: loads modules, turns swap off, sets all sysctls",
    "pi_firmware": "is a Raspberry Pi with its boot firmware and config.txt",
    "kubernetes_api": "runs a Kubernetes API server the controller can reach",
    "spare_disks": "has unused disks for ZFS, Ceph or NFS exports",
}


@dataclass(frozen=True)
class Requirement:
    capabilities: tuple[str, ...]
    why: str


def validate_names(capabilities: Iterable[str]) -> None:
    """Raise `RequirementError` for a capability name that is not in `CAPABILITIES`."""
    for name in capabilities:
        if name not in CAPABILITIES:
            raise RequirementError(
                f"unknown capability {name!r}; known capabilities: {', '.join(CAPABILITIES)}",
                hint="check the spelling in requires()/has() and in clusterbook_capabilities",
            )


def lacking_hosts(cluster: Cluster, capabilities: Iterable[str]) -> dict[str, list[str]]:
    """Host name -> capabilities it lacks, for the cluster's selected hosts."""
    lacking = {}
    for host in cluster.hosts:
        missing = [c for c in capabilities if c not in host.capabilities]
        if missing:
            lacking[host.name] = missing
    return lacking


@contextlib.contextmanager
def requires(cluster: Cluster, capabilities: Iterable[str], *, why: str = "") -> Iterator[dict]:
    """Context manager behind `Cluster.requires`; yields host name -> lacked capabilities."""
    names = tuple(capabilities)
    if not names:
        raise RequirementError("requires() needs at least one capability name")
    validate_names(names)
    lacking = lacking_hosts(cluster, names)
    reason = f" ({why})" if why else ""
    if lacking:
        hosts = ", ".join(lacking)
        message = (
            f"Requires {', '.join(names)}{reason}: {hosts} "
            f"{'lacks' if len(lacking) == 1 else 'lack'} it, so this part runs in check mode "
            f"there and changes nothing."
        )
        print(message)
        log.info(message)
    cluster._requirements.append(Requirement(names, why))
    try:
        yield lacking
    finally:
        cluster._requirements.pop()
