"""SSH against real lab nodes: host keys, pooled reconnects, a stopped node, secrets, streaming."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from clusterbook import Cluster, Secret, ssh
from clusterbook.errors import CommandTimeout, HostKeyRejected, HostsFailed, HostUnreachable
from clusterbook.inventory import Host, Inventory

from .conftest import STOPPABLE_NODE, clusterbook_cli, wait_for_ssh

pytestmark = pytest.mark.lab


def host_with_known_hosts(inventory: Inventory, name: str, known_hosts: Path, **extra) -> Host:
    host = inventory.hosts[name]
    variables = dict(host.vars)
    variables["ansible_ssh_common_args"] = f"-o UserKnownHostsFile={known_hosts}"
    variables.update(extra)
    return Host(name, vars=variables)


def test_changed_host_key_rejected(lab_inventory: Inventory, tmp_path: Path):
    wrong_key = tmp_path / "wrong"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True
    )
    known_hosts = tmp_path / "known_hosts"
    public = wrong_key.with_suffix(".pub").read_text().split()
    known_hosts.write_text(f"# lab nodes\n\n10.251.0.13 {public[0]} {public[1]}\n")
    host = host_with_known_hosts(lab_inventory, "dalt", known_hosts)
    connection = ssh.Connection(host, ssh.resolve_target(host))
    with pytest.raises(HostKeyRejected) as info:
        connection.run("true")
    message = str(info.value)
    assert "host key for 10.251.0.13 changed" in message
    assert info.value.host == "dalt"
    assert f"ssh-keygen -R 10.251.0.13 -f {known_hosts}" in info.value.hint
    assert f"{known_hosts}, line 3" in message
    assert fingerprint_of(wrong_key.with_suffix(".pub")) in message
    lab_known_hosts = lab_inventory.hosts["dalt"].known_hosts_files[0]
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-F", "10.251.0.13", "-f", str(lab_known_hosts)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    offered = next(line.split()[2] for line in listed.splitlines() if "ED25519" in line)
    assert offered in message


def fingerprint_of(public_key_file: Path) -> str:
    """The SHA256 fingerprint `ssh-keygen -l` prints for a public key file."""
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public_key_file)], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()[1]


def test_malformed_known_hosts_line_named(lab_inventory: Inventory, tmp_path: Path):
    known_hosts = tmp_path / "known_hosts"
    lab_lines = Path(lab_inventory.hosts["dalt"].known_hosts_files[0]).read_text()
    known_hosts.write_text("10.251.0.99 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBroken\n" + lab_lines)
    host = host_with_known_hosts(lab_inventory, "dalt", known_hosts)
    connection = ssh.Connection(host, ssh.resolve_target(host))
    with pytest.raises(HostKeyRejected) as info:
        connection.run("true")
    assert f"known_hosts file {known_hosts}, line 1 has invalid key data" in str(info.value)
    assert f"sed -i '1d' {known_hosts}" in info.value.hint


def test_unknown_host_key_rejected(lab_inventory: Inventory, tmp_path: Path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    host = host_with_known_hosts(lab_inventory, "dalt", known_hosts)
    connection = ssh.Connection(host, ssh.resolve_target(host))
    with pytest.raises(HostKeyRejected, match="host key of 10.251.0.13 is unknown"):
        connection.run("true")
    assert known_hosts.read_text() == ""


def test_trust_on_first_use_records_key(lab_inventory: Inventory, tmp_path: Path):
    known_hosts = tmp_path / "known_hosts"
    host = host_with_known_hosts(
        lab_inventory, "dalt", known_hosts, clusterbook_host_key_policy="trust_on_first_use"
    )
    connection = ssh.Connection(host, ssh.resolve_target(host))
    assert connection.run("hostname").stdout.strip() == "dalt"
    connection.close()
    recorded = known_hosts.read_text()
    assert recorded.startswith("10.251.0.13 ")
    strict = host_with_known_hosts(lab_inventory, "dalt", known_hosts)
    again = ssh.Connection(strict, ssh.resolve_target(strict))
    assert again.run("hostname").stdout.strip() == "dalt"
    again.close()


def test_pool_reuses_and_reconnects(lab: Cluster):
    host = lab.inventory.hosts["cargyll"]
    first = ssh.get_connection(host)
    first.run("true")
    assert ssh.get_connection(host) is first
    transport = first.transport()
    transport.close()  # simulate a connection that died between notebook cells
    assert first.run("hostname").stdout.strip() == "cargyll"
    assert first.transport() is not transport


def test_become_and_plain_user(lab: Cluster):
    node = lab.select("cargyll")
    assert node.run("id -un").stdout()["cargyll"] == "root"
    assert node.run("id -un", become=False).stdout()["cargyll"] == "admin"


def test_command_timeout(lab: Cluster):
    node = lab.select("cargyll")
    with pytest.raises(HostsFailed) as info:
        node.run("sleep 5", timeout=0.5)
    assert isinstance(info.value.results["cargyll"].error, CommandTimeout)
    assert "timed out after 0.5 s" in str(info.value)


def test_stream_prints_lines_with_host(lab: Cluster, capsys: pytest.CaptureFixture):
    results = lab.group("worker").run("echo one; echo two >&2; echo three", stream=True)
    printed = capsys.readouterr().out
    assert "cargyll | one\n" in printed
    assert "dalt | three\n" in printed
    assert "dalt ! two\n" in printed
    assert results["dalt"].stdout == "one\nthree\n"


def test_sftp_put_get(lab: Cluster):
    connection = ssh.get_connection(lab.inventory.hosts["cargyll"])
    path = "/etc/clusterbook-test-sftp"
    try:
        connection.put(b"payload\n", path, mode=0o600, become=True)
        assert connection.get(path, become=True) == b"payload\n"
        mode = connection.run(f"stat -c %a {path}").stdout.strip()
        assert mode == "600"
        connection.put(b"plain\n", "/tmp/clusterbook-test-sftp", become=False)
        assert connection.get("/tmp/clusterbook-test-sftp", become=False) == b"plain\n"
    finally:
        connection.run(f"rm -f {path} /tmp/clusterbook-test-sftp")


def test_failed_command_names_host(lab: Cluster):
    with pytest.raises(HostsFailed) as info:
        lab.group("worker").run("test $(hostname) != dalt")
    error = info.value
    assert list(error.failed) == ["dalt"]
    assert "1 of 2 hosts failed" in str(error)
    assert error.results["cargyll"].status == "ok"


def test_secret_never_in_output(
    lab: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    value = "lab-secret-0f9a8b7c"
    monkeypatch.setenv("CLUSTERBOOK_TEST_LAB_SECRET", value)
    secret = Secret.from_env("CLUSTERBOOK_TEST_LAB_SECRET")
    workers = lab.group("worker")
    with caplog.at_level(logging.DEBUG, logger="clusterbook"):
        results = workers.run(f"echo {secret.reveal()}; echo {secret.reveal()} >&2")
        piped = workers.run("cat", stdin=f"{secret.reveal()}\n")
        with pytest.raises(HostsFailed) as info:
            workers.run(f"echo {secret.reveal()}; exit 3")
    texts = [
        str(results),
        repr(results),
        results._repr_html_(),
        str(piped),
        piped._repr_html_(),
        str(info.value),
        repr(info.value),
        caplog.text,
    ]
    for host in ("cargyll", "dalt"):
        texts += [results[host].stdout, results[host].stderr, results[host].command]
        texts += [info.value.results[host].message, info.value.results[host].stdout]
    for text in texts:
        assert value not in text
    assert results["dalt"].stdout == "********\n"
    assert "********" in caplog.text


def test_shell_session_isolates_commands(lab: Cluster):
    connection = ssh.get_connection(lab.inventory.hosts["cargyll"])
    first = connection.run("cd /tmp; X=1; export Y=2; exit 3", become=False)
    assert first.exit_code == 3
    second = connection.run('pwd; echo "x=$X y=$Y"', become=False)
    assert second.stdout == "/home/admin\nx= y=\n"


def test_shell_session_output_framing(lab: Cluster):
    connection = ssh.get_connection(lab.inventory.hosts["cargyll"])
    no_newline = connection.run("printf 'a\\nb'; printf 'e' >&2", become=False)
    assert no_newline.stdout == "a\nb"
    assert no_newline.stderr == "e"
    broken = connection.run("echo 'unbalanced", become=False)
    assert broken.exit_code == 2
    assert connection.run("echo still-alive", become=False).stdout == "still-alive\n"
    reads_stdin = connection.run("cat; echo done", become=False)
    assert reads_stdin.stdout == "done\n"


def test_shell_session_recovers_after_timeout(lab: Cluster):
    connection = ssh.get_connection(lab.inventory.hosts["cargyll"])
    with pytest.raises(CommandTimeout):
        connection.run("sleep 5", timeout=0.3)
    assert connection.run("id -un").stdout == "root\n"


def test_parallel_commands_on_one_connection(lab: Cluster):
    from concurrent.futures import ThreadPoolExecutor

    connection = ssh.get_connection(lab.inventory.hosts["cargyll"])
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(lambda i: connection.run(f"echo {i}").stdout, range(8)))
    assert outputs == [f"{i}\n" for i in range(8)]


def test_proxy_jump_through_another_node(lab_inventory: Inventory):
    host = lab_inventory.hosts["dalt"]
    variables = dict(host.vars)
    variables["ansible_ssh_common_args"] = (
        host.vars["ansible_ssh_common_args"] + " -J admin@10.251.0.10"
    )
    jumped = Host("dalt", vars=variables)
    target = ssh.resolve_target(jumped)
    assert target.proxy_jump == "admin@10.251.0.10"
    connection = ssh.Connection(jumped, target)
    try:
        result = connection.run("echo $SSH_CLIENT | cut -d' ' -f1", become=False)
        assert result.stdout.strip() == "10.251.0.10"
    finally:
        connection.close()


def test_reconnect_after_server_side_close(lab: Cluster):
    """Kill the sshd process behind a pooled connection; the next command reconnects."""
    host = lab.inventory.hosts["cargyll"]
    connection = ssh.get_connection(host)
    assert connection.run("true").exit_code == 0
    local_port = connection.transport().sock.getsockname()[1]
    helper = ssh.get_connection(host, slot=1)
    # The sshd processes that serve our TCP connection (pre-auth parent and session child).
    pids = helper.run(
        f"ss -tnpH state established '( sport = :22 and dport = :{local_port} )' "
        "| grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u"
    ).stdout.split()
    assert pids, "no sshd process found for the pooled connection"
    helper.run(f"kill -9 {' '.join(pids)}")
    assert connection.run("hostname").stdout == "cargyll\n"
    helper.close()


def test_proxy_command_through_another_node(lab_inventory: Inventory):
    host = lab_inventory.hosts["dalt"]
    proxy = (
        f"ssh -i {host.private_key_file} -o UserKnownHostsFile={host.known_hosts_files[0]} "
        "-o StrictHostKeyChecking=yes -o BatchMode=yes -W %h:%p admin@10.251.0.10"
    )
    variables = dict(host.vars)
    variables["ansible_ssh_common_args"] = (
        host.vars["ansible_ssh_common_args"] + f" -o 'ProxyCommand={proxy}'"
    )
    proxied = Host("dalt", vars=variables)
    target = ssh.resolve_target(proxied)
    assert target.proxy_command.endswith("-W 10.251.0.13:22 admin@10.251.0.10")
    connection = ssh.Connection(proxied, target)
    try:
        result = connection.run("echo $SSH_CLIENT | cut -d' ' -f1", become=False)
        assert result.stdout.strip() == "10.251.0.10"
    finally:
        connection.close()


# Runs last in this file because it restarts a node.
def test_stopped_node_named_others_kept(lab: Cluster):
    """Stop `dalt` (the only node tests may stop), run on all nodes, start it again."""
    stopped = clusterbook_cli("lab", "stop", STOPPABLE_NODE)
    assert stopped.returncode == 0, f"lab stop failed: {stopped.stdout}\n{stopped.stderr}"
    try:
        ssh.get_connection(lab.inventory.hosts[STOPPABLE_NODE]).close()
        with pytest.raises(HostsFailed) as info:
            lab.all.run("hostname")
        error = info.value
        assert list(error.failed) == [STOPPABLE_NODE]
        assert isinstance(error.results[STOPPABLE_NODE].error, HostUnreachable)
        # "No route to host" or a connect timeout, depending on the ARP cache state.
        assert f"{STOPPABLE_NODE}: c" in str(error)
        assert "10.251.0.13:22" in str(error)
        others = [h.name for h in lab.hosts if h.name != STOPPABLE_NODE]
        for name in others:
            assert error.results[name].stdout.strip() == name
    finally:
        # `lab start` may give up waiting for sshd before a slow boot finishes, so the
        # node counts as back once it answers over SSH.
        started = clusterbook_cli("lab", "start", STOPPABLE_NODE)
        try:
            wait_for_ssh(lab, STOPPABLE_NODE, attempts=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlab start output: {started.stderr}") from None
        # The node comes back with a new MAC address, so the other nodes forget the old one
        # instead of waiting for their neighbour entries to fail.
        lab.select(f"all:!{STOPPABLE_NODE}").run(
            f"ip neigh del {lab.inventory.hosts[STOPPABLE_NODE].address} dev eth0 || true",
            become=True,
        )
