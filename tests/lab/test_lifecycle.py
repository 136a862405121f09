"""Powering nodes off and on, idempotent `up`, leftovers, and a clean `down`.

The leftover and `down` tests boot a second, two-node lab on its own bridge,
subnet and state folder, sharing the main lab's cached base, so they never
disturb the main lab that other tests use.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from clusterbook.lab import cgroups, firewall
from clusterbook.lab.config import load_config
from clusterbook.lab.node import ssh_answers
from clusterbook.lab.system import mounts_under

pytestmark = pytest.mark.lab

CLI = [sys.executable, "-m", "clusterbook.cli"]


def clusterbook(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"clusterbook {' '.join(args)} failed:\n{proc.stderr}"
    return proc


def test_stop_and_start_one_node(nodes: dict, lab_config) -> None:
    node, other = nodes["cargyll"], nodes["bettley"]
    inventory = str(lab_config.inventory)
    node.check("echo kept-across-power-off | sudo tee /var/tmp/cb-power-test")
    try:
        clusterbook("lab", "stop", "cargyll", "-i", inventory)
        assert not ssh_answers(node.address, timeout=1)
        status = clusterbook("lab", "status", "-i", inventory, check=False)
        assert status.returncode == 3
        assert "stopped" in status.stdout
        assert other.check("hostname").strip() == "bettley"
    finally:
        clusterbook("lab", "start", "cargyll", "-i", inventory)
    assert node.check("cat /var/tmp/cb-power-test").strip() == "kept-across-power-off"
    assert node.run("systemctl is-system-running --wait").stdout.strip() == "running"
    node.run("sudo rm -f /var/tmp/cb-power-test")


def test_up_leaves_running_nodes_alone(lab_config) -> None:
    from clusterbook.lab.manager import Lab

    before = {s.name: s.pid for s in Lab(lab_config.inventory).status()}
    proc = clusterbook("lab", "up", "-i", str(lab_config.inventory))
    after = {s.name: s.pid for s in Lab(lab_config.inventory).status()}
    assert after == before
    assert "0 started" in proc.stderr


def second_lab(tmp_path: Path, lab_config, node_options: str = "") -> Path:
    inventory = tmp_path / "second-lab.yml"
    inventory.write_text(
        textwrap.dedent(
            f"""\
            all:
              vars:
                ansible_user: admin
                clusterbook_lab:
                  state_dir: {tmp_path / "state"}
                  base_dir: {lab_config.base_dir}
                  bridge: cbtest0
                  subnet: 10.252.0.0/24
              hosts:
                tlab-a:
                  ansible_host: 10.252.0.10
                tlab-b:
                  ansible_host: 10.252.0.11
            """
        )
        + node_options
    )
    return inventory


def lab_processes(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(proc.name))
    return found


def assert_nothing_left(inventory: Path) -> None:
    config = load_config(inventory)
    netns = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    names = {entry["name"] for entry in json.loads(netns or "[]")}
    assert not {f"cblab-{n.name}" for n in config.nodes} & names
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    link_names = {link["ifname"] for link in links}
    assert "cbtest0" not in link_names
    assert not {n.veth for n in config.nodes} & link_names
    assert mounts_under(config.state_dir) == []
    assert lab_processes("--machine=tlab-") == []
    assert lab_processes(str(config.proxy_dir)) == []
    assert not firewall.is_applied(config)
    assert not set(cgroups.leftover_nodes()) & {n.name for n in config.nodes}
    assert not config.state_dir.exists() or not any(config.state_dir.iterdir())
    assert config.base_dir.exists(), "a base folder outside the state folder must stay"


def test_second_lab_survives_killed_processes_and_leaves_nothing(tmp_path, lab_config) -> None:
    inventory = second_lab(tmp_path, lab_config)
    try:
        clusterbook("lab", "up", "-i", str(inventory))
        config = load_config(inventory)
        assert all(ssh_answers(n.address) for n in config.nodes)

        # What a CI machine looks like after the session's processes were ended:
        # namespaces, bridge, mounts and firewall stay, processes are gone.
        for pid in lab_processes("--machine=tlab-") + lab_processes(str(config.proxy_dir)):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        assert mounts_under(config.nodes_dir)

        clusterbook("lab", "up", "-i", str(inventory))
        assert all(ssh_answers(n.address) for n in config.nodes)
    finally:
        clusterbook("lab", "down", "-i", str(inventory), check=False)
    assert_nothing_left(inventory)


def test_node_that_never_answers_ssh_shows_console(tmp_path, lab_config) -> None:
    empty = tmp_path / "empty-ssh"
    empty.mkdir()
    options = textwrap.indent(
        textwrap.dedent(
            f"""\
            clusterbook_lab_node:
              ssh_timeout: 8
              binds:
                - host: {empty}
                  node: /etc/ssh
            """
        ),
        "      ",
    )
    inventory = second_lab(tmp_path, lab_config)
    text = inventory.read_text().replace(
        "tlab-b:\n      ansible_host: 10.252.0.11\n",
        "tlab-b:\n      ansible_host: 10.252.0.11\n" + options,
    )
    inventory.write_text(text)
    try:
        proc = clusterbook("lab", "up", "-i", str(inventory), check=False)
        assert proc.returncode == 1
        assert "tlab-b (10.252.0.11) did not answer SSH within 8 s" in proc.stderr
        assert "last console lines" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        clusterbook("lab", "down", "-i", str(inventory), check=False)
    assert_nothing_left(inventory)


def test_up_rejects_a_subnet_routed_elsewhere(tmp_path, lab_config) -> None:
    routes = json.loads(
        subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True).stdout
    )
    taken = next(
        (
            r
            for r in routes
            if r.get("dst", "default") != "default"
            and "/" in r["dst"]
            and r.get("dev") != lab_config.bridge
        ),
        None,
    )
    if taken is None:
        pytest.skip("this host has no routed subnet to collide with")
    inventory = second_lab(tmp_path, lab_config)
    inventory.write_text(inventory.read_text().replace("10.252.0.0/24", taken["dst"]))
    proc = clusterbook("lab", "up", "-i", str(inventory), check=False)
    # The node addresses are outside the taken subnet, so either check may fire first;
    # both must be one message without a traceback.
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert taken["dst"] in proc.stderr


def test_other_lab_cannot_take_a_running_node_name(tmp_path, lab_config) -> None:
    inventory = second_lab(tmp_path, lab_config)
    inventory.write_text(inventory.read_text().replace("tlab-b:", "dalt:"))
    proc = clusterbook("lab", "up", "-i", str(inventory), check=False)
    assert proc.returncode == 1
    assert "node name dalt is already used by another lab" in proc.stderr
    assert "Traceback" not in proc.stderr
    config = load_config(inventory)
    assert not config.state_dir.exists(), "a refused lab up must not create its state folder"
    assert ssh_answers(lab_config.node("dalt").address)


def test_other_bridge_gets_its_own_state(tmp_path, lab_config) -> None:
    """An inventory on another bridge that names no state folder never reaches the main lab."""
    inventory = tmp_path / "no-state-dir.yml"
    inventory.write_text(
        textwrap.dedent(
            """\
            all:
              vars:
                clusterbook_lab: {bridge: cbtest2, subnet: 10.252.2.0/24}
              hosts:
                tlab-c: {ansible_host: 10.252.2.10}
            """
        )
    )
    config = load_config(inventory)
    assert config.state_dir != lab_config.state_dir
    proc = clusterbook("lab", "down", "-i", str(inventory))
    assert proc.returncode == 0
    assert all(ssh_answers(n.address) for n in lab_config.nodes)


def test_state_folder_of_another_lab_is_refused(tmp_path, lab_config) -> None:
    inventory = tmp_path / "borrowed-state.yml"
    inventory.write_text(
        textwrap.dedent(
            f"""\
            all:
              vars:
                clusterbook_lab:
                  bridge: cbtest3
                  subnet: 10.252.3.0/24
                  state_dir: {lab_config.state_dir}
              hosts:
                tlab-d: {{ansible_host: 10.252.3.10}}
            """
        )
    )
    proc = clusterbook("lab", "down", "-i", str(inventory), check=False)
    assert proc.returncode == 1
    assert f"state folder {lab_config.state_dir} belongs to the lab on bridge cblab0" in proc.stderr
    assert all(ssh_answers(n.address) for n in lab_config.nodes)


def test_ssh_stopped_node_hint(lab_config) -> None:
    from clusterbook.lab.manager import Lab

    lab = Lab(lab_config.inventory)
    lab.stop("cargyll")
    try:
        proc = clusterbook("lab", "ssh", "cargyll", "--", "true", check=False)
        assert proc.returncode == 1
        assert "lab node cargyll is stopped" in proc.stderr
        assert "clusterbook lab start cargyll" in proc.stderr
    finally:
        lab.start("cargyll")
