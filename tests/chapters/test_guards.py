"""Chapters stop, naming the fix, before a bad parameter can harm the nodes."""

from __future__ import annotations

import pytest

from .conftest import run_chapter

pytestmark = pytest.mark.lab

SSHD_DROP_IN = "/etc/ssh/sshd_config.d/10-clusterbook.conf"


def test_ssh_user_missing_from_allow_list(tmp_path, nodes):
    before = {
        name: node.run(f"sudo sha256sum {SSHD_DROP_IN}").stdout for name, node in nodes.items()
    }
    proc, _notebook = run_chapter(
        "004_node_configuration",
        tmp_path / "004.ipynb",
        yaml_parameters="ssh_allowed_users: [root]",
        expect_success=False,
    )
    assert proc.returncode != 0
    assert "would lock them out" in proc.stderr
    assert "admin" in proc.stderr
    after = {
        name: node.run(f"sudo sha256sum {SSHD_DROP_IN}").stdout for name, node in nodes.items()
    }
    assert after == before, "the sshd drop-in changed although the chapter stopped"


def test_version_given_as_number(tmp_path, lab_inventory):
    proc, _notebook = run_chapter(
        "009_configuring_packages",
        tmp_path / "009.ipynb",
        parameters={"kubernetes_version": "1.30"},
        expect_success=False,
    )
    assert proc.returncode != 0
    assert "kubernetes_version 1.3 is not a MAJOR.MINOR string" in proc.stderr
    assert "-r kubernetes_version" in proc.stderr


def test_version_given_as_string(tmp_path, lab_inventory):
    proc, notebook = run_chapter(
        "009_configuring_packages",
        tmp_path / "009.ipynb",
        parameters={"check": "True"},
        yaml_parameters="kubernetes_version: '1.30'",
    )
    assert "https://pkgs.k8s.io/core:/stable:/v1.30/deb/" in (tmp_path / "009.ipynb").read_text()


HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"


def haproxy_cfg_hash(nodes) -> str:
    return nodes["allyrion"].run(f"sudo sha256sum {HAPROXY_CFG} 2>&1").stdout


@pytest.mark.parametrize(
    ("parameters", "env", "expected"),
    [
        (
            {"stats_password": "env:NOPE_UNSET"},
            {},
            "stats_password: environment variable NOPE_UNSET is not set",
        ),
        (
            {"stats_password": "env:CLUSTERBOOK_SECRET_STATS_PASSWORD"},
            {"CLUSTERBOOK_SECRET_STATS_PASSWORD": ""},
            "stats_password: environment variable CLUSTERBOOK_SECRET_STATS_PASSWORD is empty",
        ),
        ({"stats_password": ""}, {}, "stats_password is not a secret reference"),
        (
            {"stats_user": "ad min"},
            {},
            "stats_user is 'ad min' (str), expected a non-empty string of letters",
        ),
    ],
    ids=["unset-variable", "empty-variable", "empty-reference", "user-with-space"],
)
def test_load_balancer_bad_parameter(tmp_path, nodes, monkeypatch, parameters, env, expected):
    # The lab's password file must never replace a password the caller named.
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    before = haproxy_cfg_hash(nodes)
    proc, _notebook = run_chapter(
        "006_load_balancer",
        tmp_path / "006.ipynb",
        parameters=parameters,
        env=env,
        expect_success=False,
    )
    assert proc.returncode != 0
    assert "ParameterError" in proc.stderr
    assert expected in proc.stderr
    assert "using the lab's password file" not in proc.stderr
    assert haproxy_cfg_hash(nodes) == before, "haproxy.cfg changed although the chapter stopped"


@pytest.mark.parametrize(
    ("chapter", "yaml_parameters", "expected"),
    [
        (
            "004_node_configuration",
            "fail2ban_ignoreip: [10.0.2.0/33]",
            "fail2ban_ignoreip contains '10.0.2.0/33', which is not an IP address or network",
        ),
        (
            "004_node_configuration",
            "ssh_allowed_users: admin",
            "ssh_allowed_users must be a list of strings, got 'admin' (str)",
        ),
        (
            "007_container_runtime",
            "containerd_package: docker",
            "containerd_package is 'docker', expected one of",
        ),
        (
            "008_networking",
            "pod_cidr: 192.168.0.1/16",
            "pod_cidr is '192.168.0.1/16' (str), not a network in CIDR notation",
        ),
        ("006_load_balancer", "stats_port: 6443", "api_port and stats_port are both 6443"),
    ],
    ids=["ignoreip", "allowed-users-string", "containerd-package", "pod-cidr", "same-ports"],
)
def test_chapter_bad_parameter(tmp_path, lab_inventory, chapter, yaml_parameters, expected):
    proc, notebook = run_chapter(
        chapter,
        tmp_path / f"{chapter}.ipynb",
        yaml_parameters=yaml_parameters,
        expect_success=False,
    )
    assert proc.returncode != 0
    assert "ParameterError" in proc.stderr
    assert expected in proc.stderr
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    executed = [i for i, cell in enumerate(code_cells) if cell.get("execution_count") is not None]
    # The parameters cell, the injected parameters and the set-up cell ran, nothing after.
    assert max(executed) <= 2, f"cells after the set-up cell ran: {executed}"
