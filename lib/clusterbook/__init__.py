"""clusterbook: the library behind the executable runbook book."""

from clusterbook.cluster import Cluster, HostGroup
from clusterbook.secrets import Secret

__version__ = "0.1.0"
__all__ = ["Cluster", "HostGroup", "Secret"]
