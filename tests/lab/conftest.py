"""Fixtures for tests of the embedded lab itself.

These tests talk to the nodes with the OpenSSH client and strict host-key
checking, independent of the clusterbook SSH library, so a lab fault and a
library fault never hide each other.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest
from clusterbook.lab.config import LabConfig, load_config
from clusterbook.lab.node import ssh_answers
from clusterbook.paths import repo_root

LAB_INVENTORY = repo_root() / "inventory" / "lab.yml"


@dataclass
class NodeShell:
    config: LabConfig
    name: str

    @property
    def address(self) -> str:
        return self.config.node(self.name).address

    def run(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.config.private_key),
                "-o",
                f"UserKnownHostsFile={self.config.known_hosts}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                f"{self.config.user}@{self.address}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def check(self, command: str, timeout: float = 300) -> str:
        """Run `command` and return its stdout; fail showing the command and output."""
        proc = self.run(command, timeout=timeout)
        assert proc.returncode == 0, (
            f"{self.name}: `{command}` exited {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return proc.stdout


@pytest.fixture(scope="session")
def lab_config() -> LabConfig:
    config = load_config(LAB_INVENTORY)
    down = [n.name for n in config.nodes if not ssh_answers(n.address, timeout=1)]
    if down:
        pytest.skip(f"lab nodes do not answer SSH ({', '.join(down)}); run: clusterbook lab up")
    return config


@pytest.fixture(scope="session")
def nodes(lab_config: LabConfig) -> dict[str, NodeShell]:
    return {n.name: NodeShell(lab_config, n.name) for n in lab_config.nodes}
