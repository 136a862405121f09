"""Lab checks that run before anything changes: one clear message each."""

from __future__ import annotations

import textwrap
from collections import namedtuple

import pytest
from clusterbook import cli
from clusterbook.errors import LabError
from clusterbook.lab import preflight
from clusterbook.lab.config import load_config


def write_inventory(tmp_path, body: str):
    path = tmp_path / "lab.yml"
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """\
all:
  vars:
    clusterbook_lab:
      state_dir: /tmp/cb-preflight-state
      subnet: 10.253.0.0/24
  hosts:
    node-a:
      ansible_host: 10.253.0.10
"""


def test_not_root_gives_one_message(monkeypatch, capsys) -> None:
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    status = cli.main(["lab", "up"])
    err = capsys.readouterr().err
    assert status == 1
    assert "the lab needs root" in err
    assert "sudo" in err
    assert "Traceback" not in err


def test_not_linux_is_rejected(monkeypatch) -> None:
    monkeypatch.setattr(preflight.platform, "system", lambda: "Darwin")
    with pytest.raises(LabError, match="the lab needs Linux; this machine runs Darwin"):
        preflight.check_host()


def test_missing_commands_name_debian_packages(monkeypatch) -> None:
    present = {"ip", "ssh", "ssh-keygen", "nft"}
    monkeypatch.setattr(preflight, "which", lambda name: name if name in present else None)
    with pytest.raises(LabError) as error:
        preflight.check_commands(install=False)
    assert error.value.message == (
        "missing host packages: debootstrap systemd-container apt-cacher-ng"
    )
    assert "apt-get install debootstrap systemd-container apt-cacher-ng" in error.value.hint
    assert "--install" in error.value.hint


def test_too_little_disk_is_rejected(monkeypatch, tmp_path) -> None:
    config = load_config(write_inventory(tmp_path, GOOD))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda _: usage(10, 10, 50 * 2**20))
    with pytest.raises(LabError, match="not enough disk space .*50 MiB free, 1024 MiB needed"):
        preflight.check_disk(config, cold=True)


def test_routed_subnet_is_rejected(monkeypatch, tmp_path) -> None:
    config = load_config(write_inventory(tmp_path, GOOD))

    class Routes:
        stdout = '[{"dst": "10.253.0.0/16", "dev": "wg0"}]'

    monkeypatch.setattr(preflight, "run", lambda *a, **k: Routes())
    with pytest.raises(LabError, match=r"10.253.0.0/24 is already routed .*10.253.0.0/16 via wg0"):
        preflight.check_subnet(config)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("all:\n  hosts: {}\n", "clusterbook_lab is missing"),
        (
            "all:\n  vars:\n    clusterbook_lab: {subnet: 10.9.0.0/33}\n",
            "clusterbook_lab.subnet '10.9.0.0/33' is invalid",
        ),
        (
            "all:\n  vars:\n    clusterbook_lab: {subnet: 10.9.0.0/24}\n"
            "  hosts:\n    Bad_Name: {ansible_host: 10.9.0.5}\n",
            "host name 'Bad_Name' cannot be a lab node",
        ),
        (
            "all:\n  vars:\n    clusterbook_lab: {subnet: 10.9.0.0/24}\n"
            "  hosts:\n    a: {ansible_host: 10.8.0.5}\n",
            "ansible_host 10.8.0.5 is not a usable node address in 10.9.0.0/24",
        ),
        (
            "all:\n  vars:\n    clusterbook_lab: {subnet: 10.9.0.0/24}\n"
            "  hosts:\n    a: {ansible_host: 10.9.0.5}\n    b: {ansible_host: 10.9.0.5}\n",
            "hosts a and b share address 10.9.0.5",
        ),
        (
            "all:\n  vars:\n    clusterbook_lab: {subnet: 10.9.0.0/24}\n"
            "  hosts:\n    a: {ansible_host: 10.9.0.5, clusterbook_lab_node: {cgroup: v3}}\n",
            "clusterbook_lab_node.cgroup 'v3' is invalid",
        ),
        ("all: [\n", "invalid YAML"),
    ],
)
def test_bad_lab_inventory_is_named(tmp_path, body: str, message: str) -> None:
    with pytest.raises(LabError) as error:
        load_config(write_inventory(tmp_path, body))
    assert message in str(error.value)
    assert "lab.yml" in str(error.value)


def test_lab_inventory_loads_six_nodes() -> None:
    from clusterbook.paths import repo_root

    config = load_config(repo_root() / "inventory" / "lab.yml")
    assert [n.name for n in config.nodes] == [
        "allyrion",
        "bettley",
        "fenn",
        "gardener",
        "cargyll",
        "dalt",
    ]
    assert config.node("allyrion").address == "10.251.0.10"
    assert str(config.gateway) == "10.251.0.1"


def test_unknown_node_lists_the_known_ones() -> None:
    from clusterbook.paths import repo_root

    config = load_config(repo_root() / "inventory" / "lab.yml")
    with pytest.raises(LabError) as error:
        config.node("jast")
    assert "no lab node named 'jast'" in error.value.message
    assert "allyrion" in error.value.hint
