"""Fixtures for library tests against the embedded lab's real nodes over real SSH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from clusterbook import Cluster, ssh
from clusterbook.inventory import Inventory

REPO = Path(__file__).resolve().parents[2]
#: the only node tests may stop and start
STOPPABLE_NODE = "dalt"
TEST_DIR = "/etc/clusterbook-test"


@pytest.fixture
def lab(lab_inventory: Inventory) -> Cluster:
    return Cluster(lab_inventory)


@pytest.fixture
def lab_check(lab_inventory: Inventory) -> Cluster:
    return Cluster(lab_inventory, check=True)


def clusterbook_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "clusterbook"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def wait_for_ssh(cluster: Cluster, name: str, attempts: int = 60) -> None:
    """Wait until a node accepts commands again (after `lab start`)."""
    import time

    host = cluster.inventory.hosts[name]
    last_error: Exception | None = None
    for _ in range(attempts):
        try:
            ssh.get_connection(host).close()
            if ssh.get_connection(host).run("true", timeout=10).exit_code == 0:
                return
        except Exception as exc:  # the node is still booting
            last_error = exc
        time.sleep(1)
    raise AssertionError(f"{name} did not answer over SSH after lab start: {last_error}")
