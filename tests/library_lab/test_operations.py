"""Every operation against real lab nodes: first run changes, second run changes nothing,
check mode leaves every node byte-identical, and handlers restart a service exactly once.

All paths, packages, users and units are test-owned (`clusterbook-test`, `cbtest*`, the
package `tree`) and removed again; hostname, timezone and fstab are restored on `dalt`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from clusterbook import Cluster
from clusterbook.errors import HostsFailed, VerificationFailed
from clusterbook.results import Results

from .conftest import TEST_DIR

pytestmark = pytest.mark.lab

UNIT = "clusterbook-test.service"
UNIT_TEXT = """[Unit]
Description=clusterbook library test service
[Service]
ExecStartPre=/bin/mkdir -p /run/clusterbook-test
ExecStartPre=/bin/sh -c 'date +%%s%%N >> /run/clusterbook-test/starts'
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""
TEST_KEY = (
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nclusterbook test key, never used by apt\n"
    "-----END PGP PUBLIC KEY BLOCK-----\n"
)
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClusterbookTestKeyOnly000000000000000 cbtest"

# Snapshot of what check mode must not touch: the content of every regular file under /etc,
# the type, link target, mode and owner of everything there, and the installed packages.
SNAPSHOT = (
    "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum; "
    "find /etc -xdev -printf '%p %y %l %m %u %g\\n' | sort; "
    "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n'; "
    "getent passwd cbtestuser; getent group cbtestgrp; hostname"
)


def cleanup(cluster: Cluster) -> None:
    cluster.all.run(
        f"systemctl disable --now {UNIT} 2>/dev/null; rm -rf {TEST_DIR} "
        f"/etc/systemd/system/{UNIT} /run/clusterbook-test "
        "/etc/sysctl.d/90-clusterbook-test.conf /etc/modules-load.d/clusterbook-test.conf "
        "/etc/apt/sources.list.d/clusterbook-test.sources /etc/apt/keyrings/clusterbook-test.asc; "
        "systemctl daemon-reload; "
        "id cbtestuser >/dev/null 2>&1 && userdel -r cbtestuser 2>/dev/null; "
        "getent group cbtestgrp >/dev/null && groupdel cbtestgrp; "
        "apt-mark unhold tree >/dev/null 2>&1; "
        "dpkg -s tree >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive "
        "apt-get purge -y -q -o DPkg::Lock::Timeout=600 tree; "
        "true",
        become=True,
    )


@pytest.fixture
def clean(lab: Cluster):
    cleanup(lab)
    yield lab
    cleanup(lab)


def operations(current_forward: dict[str, str]) -> list[tuple[str, Callable[[Cluster], Results]]]:
    """(name, call) pairs; each call changes a fresh node once and nothing the second time."""
    return [
        ("directory", lambda c: c.all.file.directory(TEST_DIR, mode="0750")),
        (
            "content",
            lambda c: c.all.file.content(f"{TEST_DIR}/content.conf", "a = 1\n", mode="0640"),
        ),
        (
            "template",
            lambda c: c.all.file.template(
                f"{TEST_DIR}/template.conf",
                "host={{ inventory_hostname }} index={{ host_index }} extra={{ extra }}\n",
                extra="x",
            ),
        ),
        (
            "line",
            lambda c: c.all.file.line(
                f"{TEST_DIR}/line.conf", "key=value", regexp="^key=", create=True
            ),
        ),
        ("block", lambda c: c.all.file.block(f"{TEST_DIR}/block.conf", "one\ntwo")),
        (
            "hosts entries",
            lambda c: c.all.server.hosts_entries(
                {"10.251.0.10": ["lb-apiserver.test"]}, path=f"{TEST_DIR}/hosts"
            ),
        ),
        ("unit file", lambda c: c.all.file.content(f"/etc/systemd/system/{UNIT}", UNIT_TEXT)),
        ("running", lambda c: c.all.systemd.running(UNIT)),
        ("stopped", lambda c: c.all.systemd.stopped(UNIT)),
        (
            "sysctl",
            lambda c: c.all.sysctl.present(
                {"net.ipv4.ip_forward": current_forward},
                file="/etc/sysctl.d/90-clusterbook-test.conf",
            ),
        ),
        (
            "modules",
            lambda c: c.all.modules.present(
                ["overlay"], file="/etc/modules-load.d/clusterbook-test.conf"
            ),
        ),
        ("apt present", lambda c: c.all.apt.present("tree")),
        ("apt held", lambda c: c.all.apt.held("tree")),
        ("apt unheld", lambda c: c.all.apt.unheld("tree")),
        ("apt absent", lambda c: c.all.apt.absent("tree", purge=True)),
        (
            "apt repository",
            lambda c: c.all.apt.repository(
                "clusterbook-test",
                uris="http://deb.debian.org/debian",
                suites="bookworm",
                components="main",
                key_content=TEST_KEY,
                update=False,
            ),
        ),
        ("group", lambda c: c.all.server.group("cbtestgrp")),
        (
            "user",
            lambda c: c.all.server.user(
                "cbtestuser", groups=["cbtestgrp"], authorized_keys=[PUBLIC_KEY]
            ),
        ),
        ("absent", lambda c: c.all.file.absent(f"{TEST_DIR}/block.conf")),
    ]


def forward_value(cluster: Cluster) -> str:
    values = set(cluster.all.run("sysctl -n net.ipv4.ip_forward").stdout().values())
    assert len(values) == 1, f"nodes disagree on net.ipv4.ip_forward: {values}"
    return values.pop()


def test_every_operation_changes_once(clean: Cluster):
    forward = forward_value(clean)
    for name, call in operations(forward):
        first = call(clean)
        assert [r.host for r in first.changed] == [h.name for h in clean.hosts], (
            f"{name}: first run should change every node\n{first}"
        )
        second = call(clean)
        assert second.changed == [], f"{name}: second run should change nothing\n{second}"
        assert second.ok


def test_check_mode_leaves_nodes_identical(clean: Cluster, lab_check: Cluster):
    before = clean.all.run(SNAPSHOT, become=True).stdout()
    forward = forward_value(clean)
    predicted = {}
    for name, call in operations(forward):
        results = call(lab_check)
        predicted[name] = results
        assert results.ok, f"{name} failed in check mode\n{results}"
    after = clean.all.run(SNAPSHOT, become=True).stdout()
    for host in before:
        if before[host] != after[host]:
            old = set(before[host].splitlines())
            new = set(after[host].splitlines())
            pytest.fail(
                f"check mode changed {host}:\n  gone: {sorted(old - new)[:10]}\n"
                f"  new: {sorted(new - old)[:10]}"
            )
    # Check mode predicts the change; it does not report "ok" for a fresh node.
    assert len(predicted["content"].changed) == len(clean.hosts)
    assert "(check mode) would create" in predicted["content"]["dalt"].message
    assert "+a = 1" in predicted["content"]["dalt"].diff
    assert "would install tree" in predicted["apt present"]["dalt"].message


def test_check_mode_skips_changing_commands(lab_check: Cluster):
    results = lab_check.all.run(f"touch {TEST_DIR}-never", changes=True)
    assert all(r.status == "skipped" for r in results.values())
    read_only = lab_check.all.run(f"test -e {TEST_DIR}-never && echo yes || echo no")
    assert set(read_only.stdout().values()) == {"no"}


def test_handler_restarts_exactly_once(clean: Cluster):
    cluster = clean
    node = cluster.select("dalt")
    with cluster.step("install the test service"):
        node.file.directory(TEST_DIR)
        node.file.content(f"/etc/systemd/system/{UNIT}", UNIT_TEXT)
        node.systemd.running(UNIT)
    starts = "cat /run/clusterbook-test/starts | wc -l"
    assert node.run(starts).stdout()["dalt"] == "1"

    with cluster.step("change two files that notify the service") as step:
        node.file.content(f"{TEST_DIR}/one.conf", "one\n", notify=UNIT)
        node.file.content(f"{TEST_DIR}/two.conf", "two\n", notify=UNIT)
        node.systemd.running(UNIT)
    assert node.run(starts).stdout()["dalt"] == "2"
    assert any("(handler)" in r.message for r in step.rows)

    with cluster.step("change nothing"):
        node.file.content(f"{TEST_DIR}/one.conf", "one\n", notify=UNIT)
        node.file.content(f"{TEST_DIR}/two.conf", "two\n", notify=UNIT)
    assert node.run(starts).stdout()["dalt"] == "2"


def test_handler_not_run_in_check_mode(clean: Cluster, lab_check: Cluster):
    node = lab_check.select("dalt")
    with lab_check.step("check only") as step:
        result = node.file.content(f"{TEST_DIR}/one.conf", "one\n", notify=UNIT)
    assert "would restart clusterbook-test.service" in result["dalt"].message
    assert not any("(handler)" in r.message for r in step.rows)


def test_validate_keeps_old_file(clean: Cluster):
    node = clean.select("dalt")
    node.file.directory(TEST_DIR)
    node.file.content(f"{TEST_DIR}/valid.conf", "good\n")
    with pytest.raises(HostsFailed, match="validation failed"):
        node.file.content(f"{TEST_DIR}/valid.conf", "bad\n", validate="grep -q good %s")
    assert node.run(f"cat {TEST_DIR}/valid.conf").stdout()["dalt"] == "good"
    assert node.run(f"ls -A {TEST_DIR}").stdout()["dalt"] == "valid.conf"


def test_template_with_secret(clean: Cluster, monkeypatch: pytest.MonkeyPatch):
    from clusterbook import Secret

    value = "template-secret-4711-value"
    monkeypatch.setenv("CLUSTERBOOK_TEST_TEMPLATE_SECRET", value)
    secret = Secret.from_env("CLUSTERBOOK_TEST_TEMPLATE_SECRET")
    node = clean.select("dalt")
    node.file.directory(TEST_DIR)
    result = node.file.template(f"{TEST_DIR}/secret.conf", "password={{ pw }}\n", pw=secret)
    assert value not in result["dalt"].diff
    assert "password=********" in result["dalt"].diff
    expected = hashlib.sha256(f"password={value}\n".encode()).hexdigest()
    remote = node.run(f"sha256sum < {TEST_DIR}/secret.conf | cut -d' ' -f1", become=True)
    assert remote.stdout()["dalt"] == expected


def test_hostname_timezone_swap_on_dalt(clean: Cluster):
    node = clean.select("dalt")
    original_zone = node.run("cat /etc/timezone").stdout()["dalt"]
    original_fstab = node.run("base64 -w0 /etc/fstab", become=True).stdout()["dalt"]
    try:
        assert node.server.hostname("dalt-cbtest")["dalt"].status == "changed"
        assert node.server.hostname("dalt-cbtest")["dalt"].status == "ok"
        assert node.server.hostname()["dalt"].status == "changed"
        assert node.server.hostname()["dalt"].status == "ok"

        other = "Europe/Berlin" if original_zone != "Europe/Berlin" else "Asia/Tokyo"
        assert node.server.timezone(other)["dalt"].status == "changed"
        assert node.server.timezone(other)["dalt"].status == "ok"

        node.run("echo '/swapfile none swap sw 0 0' >> /etc/fstab", changes=True, become=True)
        swap = node.server.swap_off()
        assert swap["dalt"].status == "changed"
        assert "# /swapfile none swap sw 0 0" in swap["dalt"].diff
        assert node.server.swap_off()["dalt"].status == "ok"
    finally:
        node.server.hostname()
        node.server.timezone(original_zone)
        node.run(f"echo {original_fstab} | base64 -d > /etc/fstab", changes=True, become=True)


def test_facts(lab: Cluster):
    workers = lab.group("worker")
    assert set(workers.facts.os_release.values()) == {"Debian GNU/Linux 12 (bookworm)"}
    assert all(isinstance(n, int) and n > 0 for n in workers.facts.cpus.values())
    assert all(m > 0 for m in workers.facts.memory_mb.values())
    assert workers.facts.addresses["dalt"] == {"eth0": ["10.251.0.13/24"]}
    assert workers.facts.service("ssh")["dalt"] == {"active": "active", "enabled": "enabled"}
    versions = workers.facts.package_versions("openssh-server", "no-such-package-cbtest")
    assert set(versions["dalt"]) == {"openssh-server"}
    assert ("basic", "dalt") in lab._facts_cache
    lab.refresh_facts()
    assert lab._facts_cache == {}


def test_verify_passes_and_names_failures(lab: Cluster):
    workers = lab.group("worker")
    workers.verify.service_running("ssh")
    workers.verify.port_listening(22)
    workers.verify.package_installed("openssh-server")
    workers.verify.command("hostname", contains="")
    with pytest.raises(VerificationFailed) as info:
        workers.verify.command("hostname", stdout="cargyll")
    error = info.value
    assert error.host == "dalt"
    assert error.command == "hostname"
    assert error.expected == "'cargyll'"
    assert error.actual == "'dalt'"
    assert "dalt: hostname: expected 'cargyll', got 'dalt'" in str(error)
    assert "cargyll:" not in str(error).split("\n", 1)[1]


def test_verify_retries_until_state_appears(lab: Cluster):
    """A service that answers a moment after its start passes when the check retries."""
    node = lab.select("dalt")
    marker = "/run/clusterbook-test-ready"
    node.run(f"rm -f {marker}")
    try:
        node.run(f"nohup sh -c 'sleep 2; touch {marker}' >/dev/null 2>&1 &")
        with pytest.raises(VerificationFailed):
            node.verify.command(f"test -e {marker}")
        node.verify.command(f"test -e {marker}", retry_seconds=30)
    finally:
        node.run(f"rm -f {marker}")


def test_verify_retry_gives_up_and_says_so(lab: Cluster):
    node = lab.select("dalt")
    with pytest.raises(VerificationFailed) as info:
        node.verify.command("test -e /run/clusterbook-test-never", retry_seconds=2)
    assert "(still after 2 s of retries)" in str(info.value)
