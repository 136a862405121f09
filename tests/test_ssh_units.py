"""SSH settings resolution (inventory, ~/.ssh/config) and the sudo wrapper, without a network."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import paramiko
import pytest
from clusterbook import known_hosts as host_keys
from clusterbook.errors import HostKeyRejected
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


def _new_public_key(tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub")
    return public, public.read_text().split()


def _ssh_keygen_fingerprint(public: Path) -> str:
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public)], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()[1]


def test_fingerprint_matches_ssh_keygen(tmp_path: Path):
    public, fields = _new_public_key(tmp_path, "node")
    key = paramiko.Ed25519Key(data=base64.b64decode(fields[1]))
    assert host_keys.fingerprint(key) == _ssh_keygen_fingerprint(public)


def test_malformed_known_hosts_line(tmp_path: Path):
    _public, fields = _new_public_key(tmp_path, "node")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"# comment\nnode1 {fields[0]} {fields[1]}\nnode2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIx\n"
    )
    with pytest.raises(HostKeyRejected) as info:
        host_keys.load(paramiko.SSHClient(), str(known_hosts), host="allyrion")
    message = str(info.value)
    assert info.value.host == "allyrion"
    assert f"known_hosts file {known_hosts}, line 3 has invalid key data" in message
    assert "Incorrect padding" in message
    assert f"sed -i '3d' {known_hosts}" in info.value.hint


def test_mismatch_names_fingerprints_and_line(tmp_path: Path):
    recorded_public, recorded = _new_public_key(tmp_path, "recorded")
    offered_public, offered = _new_public_key(tmp_path, "offered")
    _other_public, other = _new_public_key(tmp_path, "other")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"other {other[0]} {other[1]}\n10.0.0.5 {recorded[0]} {recorded[1]}\n")
    error = host_keys.mismatch_error(
        paramiko.BadHostKeyException(
            "10.0.0.5",
            paramiko.Ed25519Key(data=base64.b64decode(offered[1])),
            paramiko.Ed25519Key(data=base64.b64decode(recorded[1])),
        ),
        host="dalt",
        hostname="10.0.0.5",
        port=22,
        paths=(str(known_hosts),),
    )
    message = str(error)
    assert f"offered ssh-ed25519 {_ssh_keygen_fingerprint(offered_public)}" in message
    assert f"{known_hosts}, line 2 records ssh-ed25519" in message
    assert _ssh_keygen_fingerprint(recorded_public) in message
    assert "AAAAC3NzaC1lZDI1NTE5" not in message
    assert f"ssh-keygen -R 10.0.0.5 -f {known_hosts}" in error.hint


def test_find_hashed_entry_and_port(tmp_path: Path):
    _public, fields = _new_public_key(tmp_path, "node")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"node.lab {fields[0]} {fields[1]}\n[node.lab]:2222 {fields[0]} {fields[1]}\n"
    )
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known_hosts)], check=True)
    assert known_hosts.read_text().startswith("|1|")
    plain = host_keys.find([str(known_hosts)], host_keys.lookup_name("node.lab", 22))
    assert [entry.line for entry in plain] == [1]
    on_port = host_keys.find([str(known_hosts)], host_keys.lookup_name("node.lab", 2222))
    assert [entry.line for entry in on_port] == [2]
    assert host_keys.find([str(known_hosts)], "other.lab") == []
