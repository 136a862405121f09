"""Chapters 001-010 in check mode leave every lab node as it was.

This module sorts first among the chapter tests, so on a freshly started lab it runs
against nodes that no chapter has touched yet.
"""

from __future__ import annotations

import pytest

from .conftest import run_chapter, summary_of

pytestmark = pytest.mark.lab

CHAPTERS = [
    "001_introduction",
    "002_cluster_hardware",
    "003_meet_the_nodes",
    "004_node_configuration",
    "005_cluster_roles",
    "006_load_balancer",
    "007_container_runtime",
    "008_networking",
    "009_configuring_packages",
    "010_installing_packages",
]

#: every file and state the chapters manage, hashed on one node
SNAPSHOT = r"""sudo sh -c '
cd /
for path in etc/hosts etc/hostname etc/motd etc/clusterbook etc/ssh/sshd_config.d etc/apt \
            etc/fail2ban etc/haproxy etc/containerd etc/sysctl.d etc/modules-load.d \
            etc/fstab etc/rsyslog.d root/.bashrc home/admin/.bashrc boot; do
    [ -e "$path" ] && find "$path" -xdev -type f -print0
done | sort -z | xargs -0 -r sha256sum
readlink /etc/localtime
hostname
dpkg-query -W -f="\${Package} \${Version} \${Status}\n"
apt-mark showhold
systemctl is-active haproxy rsyslog containerd fail2ban ssh || true
'"""


def snapshot(nodes) -> dict[str, str]:
    return {name: node.check(SNAPSHOT) for name, node in nodes.items()}


def test_check_mode_changes_nothing(tmp_path, nodes, stats_canary):
    before = snapshot(nodes)
    for chapter in CHAPTERS:
        _proc, notebook = run_chapter(
            chapter,
            tmp_path / f"{chapter}.ipynb",
            parameters={"check": "True"},
            env={"CLUSTERBOOK_HAPROXY_STATS_PASSWORD": stats_canary},
            probe_summary=True,
        )
        assert summary_of(notebook)["changed"] == 0, f"{chapter} changed something"
    after = snapshot(nodes)
    for name in nodes:
        assert after[name] == before[name], f"{name} differs after the check-mode run"


def test_check_mode_predicts_without_applying(tmp_path, nodes):
    before = snapshot(nodes)
    _proc, notebook = run_chapter(
        "004_node_configuration",
        tmp_path / "004.ipynb",
        parameters={"check": "True", "timezone": "Europe/Berlin"},
        probe_summary=True,
    )
    counts = summary_of(notebook)
    assert counts["changed"] == 0
    assert counts["would_change"] >= len(nodes), "every node would get the new time zone"
    assert "Europe/Berlin" in (tmp_path / "004.ipynb").read_text()
    after = snapshot(nodes)
    for name in nodes:
        assert after[name] == before[name], f"{name} differs after the check-mode run"
