"""SSH settings resolution (inventory, ~/.ssh/config) and the sudo wrapper, without a network."""

from __future__ import annotations

from pathlib import Path

import pytest
from clusterbook.inventory import Host
from clusterbook.ssh import Connection, _LinePrinter, resolve_target


@pytest.fixture
def ssh_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config"
    config.write_text(
        "Host 10.9.0.*\n  User cfguser\n  Port 2222\n  IdentityFile ~/.ssh/cfgkey\n"
        "  ProxyJump jump@bastion\n  UserKnownHostsFile /tmp/cfg_known_hosts\n"
        "Host pi1\n  HostName 10.9.0.5\n  StrictHostKeyChecking accept-new\n"
    )
    monkeypatch.setenv("CLUSTERBOOK_SSH_CONFIG", str(config))
    return config


def test_inventory_wins_over_ssh_config(ssh_config: Path):
    host = Host(
        "n1",
        vars={
            "ansible_host": "10.9.0.1",
            "ansible_user": "admin",
            "ansible_port": 22,
            "ansible_ssh_private_key_file": "/keys/id",
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/inv/known_hosts",
        },
    )
    target = resolve_target(host)
    assert target.user == "admin"
    assert target.port == 22
    assert target.key_files == ("/keys/id",)
    assert target.known_hosts == ("/inv/known_hosts",)
    assert target.proxy_jump == "jump@bastion"
    assert target.policy == "reject"
    assert target.key == "admin@10.9.0.1:22"


def test_ssh_config_fills_gaps(ssh_config: Path):
    target = resolve_target(Host("n2", vars={"ansible_host": "10.9.0.2"}))
    assert target.user == "cfguser"
    assert target.port == 2222
    assert target.key_files == (str(Path("~/.ssh/cfgkey").expanduser()),)
    assert target.known_hosts == ("/tmp/cfg_known_hosts",)


def test_ssh_config_hostname_and_accept_new(ssh_config: Path):
    target = resolve_target(Host("pi1"))
    assert target.hostname == "10.9.0.5"
    assert target.policy == "trust_on_first_use"


def test_become_wrapping():
    host = Host("n1", vars={"ansible_user": "admin", "ansible_become": True})
    connection = Connection(host, resolve_target(host))
    assert connection.wrap("id -u") == "sudo -n -H -u root -- sh -c 'id -u'"
    assert connection.wrap("id -u", become=False) == "id -u"
    assert connection.wrap("id", user="postgres").startswith("sudo -n -H -u postgres")


def test_no_sudo_when_already_root():
    host = Host("n1", vars={"ansible_user": "root", "ansible_become": True})
    connection = Connection(host, resolve_target(host))
    assert connection.wrap("id -u") == "id -u"


def test_sudo_password_uses_stdin():
    host = Host(
        "n1",
        vars={"ansible_user": "a", "ansible_become": True, "ansible_become_password": "pw123"},
    )
    connection = Connection(host, resolve_target(host))
    assert connection.wrap("true").startswith("sudo -S -p '' -H")


def test_line_printer_prefixes_host(capsys: pytest.CaptureFixture):
    printer = _LinePrinter("n1", True)
    printer.feed(b"one\ntw", "out")
    printer.feed(b"o\n", "out")
    printer.feed(b"oops", "err")
    printer.flush()
    assert capsys.readouterr().out == "n1 | one\nn1 | two\nn1 ! oops\n"


def test_jump_host_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from clusterbook.ssh import _jump_host

    monkeypatch.setenv("CLUSTERBOOK_SSH_CONFIG", str(tmp_path / "none"))
    host = Host(
        "n1",
        vars={
            "ansible_ssh_private_key_file": "/keys/id",
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/kh -J a@first,b@second:2222",
        },
    )
    jump = _jump_host(resolve_target(host).proxy_jump, resolve_target(host))
    assert jump.name == "second"
    assert jump.user == "b"
    assert jump.port == 2222
    assert jump.private_key_file == "/keys/id"
    assert jump.known_hosts_files == ["/kh"]
    assert jump.ssh_options["proxyjump"] == "a@first"
