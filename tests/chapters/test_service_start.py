"""Chapters verify a service they have just started once it responds, not before.

fail2ban, HAProxy and containerd report active to systemd a moment before their control
socket or listener exists. Each test stops the service first, so the chapter starts it and
verifies it right away, as on fresh nodes.
"""

from __future__ import annotations

import pytest

from .conftest import run_chapter

pytestmark = pytest.mark.lab


@pytest.mark.parametrize(
    ("chapter", "service", "hosts"),
    [
        ("004_node_configuration", "fail2ban", None),
        ("006_load_balancer", "haproxy", ["allyrion"]),
        ("007_container_runtime", "containerd", ["bettley", "fenn", "gardener", "cargyll", "dalt"]),
    ],
)
def test_chapter_verifies_started_service(tmp_path, nodes, stats_canary, chapter, service, hosts):
    targets = {name: node for name, node in nodes.items() if hosts is None or name in hosts}
    for node in targets.values():
        # Not installed yet is fine too: then the chapter installs and starts it.
        node.run(f"sudo systemctl stop {service}")
    env = {"CLUSTERBOOK_HAPROXY_STATS_PASSWORD": stats_canary}
    run_chapter(chapter, tmp_path / f"{chapter}.ipynb", env=env)
    for name, node in targets.items():
        state = node.run(f"systemctl is-active {service}").stdout.strip()
        assert state == "active", f"{name}: {service} is {state} after {chapter}"
