"""clusterbook: the library behind the executable runbook book."""

__version__ = "0.1.0"
