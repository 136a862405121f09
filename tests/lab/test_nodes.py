"""Every lab node behaves like a small Debian host reachable over SSH."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab


def test_every_node_answers_with_strict_host_keys(nodes: dict) -> None:
    for name, node in nodes.items():
        assert node.check("hostname").strip() == name


def test_every_node_has_its_inventory_address(nodes: dict) -> None:
    for node in nodes.values():
        addresses = node.check("ip -4 -o addr show dev eth0")
        assert f"inet {node.address}/24" in addresses


def test_systemd_is_running_on_every_node(nodes: dict) -> None:
    for name, node in nodes.items():
        state = node.run("systemctl is-system-running --wait").stdout.strip()
        failed = node.run("systemctl --failed --no-legend --plain").stdout
        assert state == "running", f"{name}: {state}; failed units:\n{failed}"


def test_node_user_has_passwordless_sudo(nodes: dict) -> None:
    node = nodes["cargyll"]
    assert node.check("sudo -n id -u").strip() == "0"


def test_each_node_has_its_own_host_key(nodes: dict) -> None:
    keys = {
        name: n.check("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
        for name, n in nodes.items()
    }
    assert len(set(keys.values())) == len(keys)


def test_unknown_host_key_is_rejected(nodes: dict, tmp_path) -> None:
    import subprocess

    node = nodes["dalt"]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    proc = subprocess.run(
        [
            "ssh",
            "-i",
            str(node.config.private_key),
            "-o",
            f"UserKnownHostsFile={empty}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"{node.config.user}@{node.address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr
