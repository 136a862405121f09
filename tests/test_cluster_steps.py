"""Steps and handlers with a recording stand-in for SSH connections (no lab needed)."""

from __future__ import annotations

import pytest
from clusterbook import Cluster
from clusterbook.errors import HostsFailed, ParameterError
from clusterbook.inventory import Inventory
from clusterbook.ops.base import OpContext
from clusterbook.results import HostResult
from clusterbook.ssh import CommandResult

INVENTORY = {"all": {"children": {"web": {"hosts": {"w1": None, "w2": None}}}}}


class RecordingConnection:
    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self.log = log

    def run(self, command: str, **kwargs) -> CommandResult:
        self.log.append((self.name, command))
        return CommandResult(self.name, command, 0, "", "", 0.001)


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    log: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "clusterbook.cluster.get_connection", lambda host: RecordingConnection(host.name, log)
    )
    return log


def change_and_notify(ctx: OpContext, service: str, changed_hosts: set[str]) -> HostResult:
    if ctx.name in changed_hosts:
        ctx.notify(service)
        return ctx.result("changed", f"update /etc/{service}.conf")
    return ctx.result("ok")


def test_handler_runs_once_per_host_at_step_end(commands, capsys):
    cluster = Cluster(Inventory.from_dict(INVENTORY))
    web = cluster.group("web")
    with cluster.step("configure") as step:
        web.apply("first file", change_and_notify, "nginx", {"w1", "w2"})
        web.apply("second file", change_and_notify, "nginx", {"w1"})
        assert commands == []  # nothing restarts before the step ends
    assert sorted(commands) == [
        ("w1", "systemctl restart nginx"),
        ("w2", "systemctl restart nginx"),
    ]
    assert [r.operation for r in step.rows].count("handlers") == 2
    assert "configure" in capsys.readouterr().out


def test_handler_skipped_for_unchanged_hosts(commands):
    cluster = Cluster(Inventory.from_dict(INVENTORY))
    with cluster.step("configure"):
        cluster.group("web").apply("file", change_and_notify, "nginx", {"w2"})
    assert commands == [("w2", "systemctl restart nginx")]


def test_handlers_kept_when_step_fails(commands):
    cluster = Cluster(Inventory.from_dict(INVENTORY))

    def fail_on_w2(ctx: OpContext) -> HostResult:
        if ctx.name == "w2":
            raise RuntimeError("boom")
        return ctx.result("ok")

    with pytest.raises(HostsFailed), cluster.step("configure"):
        cluster.group("web").apply("file", change_and_notify, "nginx", {"w1"})
        cluster.group("web").apply("broken", fail_on_w2)
    assert commands == []
    assert cluster.flush_handlers()["w1"].status == "changed"
    assert commands == [("w1", "systemctl restart nginx")]


def test_check_mode_predicts_restart(commands):
    cluster = Cluster(Inventory.from_dict(INVENTORY), check=True)
    with cluster.step("configure") as step:
        results = cluster.group("web").apply("file", change_and_notify, "nginx", {"w1"})
    assert commands == []
    assert results["w1"].message == "(check mode) would update /etc/nginx.conf; would restart nginx"
    assert not any(r.operation == "handlers" for r in step.rows)


def test_nested_steps_rejected(commands):
    cluster = Cluster(Inventory.from_dict(INVENTORY))
    with (
        pytest.raises(Exception, match="steps cannot be nested"),
        cluster.step("outer"),
        cluster.step("inner"),
    ):
        pass


def test_changing_command_skipped_in_check_mode(commands):
    cluster = Cluster(Inventory.from_dict(INVENTORY), check=True)
    results = cluster.group("web").run("systemctl restart nginx", changes=True)
    read_only = cluster.group("web").run("cat /etc/hostname")
    assert [r.status for r in results.values()] == ["skipped", "skipped"]
    assert read_only["w1"].status == "ok"
    assert sorted(commands) == [("w1", "cat /etc/hostname"), ("w2", "cat /etc/hostname")]


@pytest.mark.parametrize("value", ["False", "no", None, 2])
def test_check_must_be_boolean(value):
    with pytest.raises(ParameterError) as caught:
        Cluster(Inventory.from_dict(INVENTORY), check=value)
    assert caught.value.name == "check"
    assert f"check is {value!r}" in str(caught.value)


def test_limit_must_be_string():
    with pytest.raises(ParameterError, match="limit is \\['a'\\]"):
        Cluster(Inventory.from_dict(INVENTORY), limit=["a"])


def test_empty_limit_is_rejected() -> None:
    from clusterbook import Cluster
    from clusterbook.errors import ParameterError
    from clusterbook.paths import repo_root

    with pytest.raises(ParameterError) as error:
        Cluster.load(str(repo_root() / "inventory" / "lab.yml"), limit="  ")
    assert error.value.name == "limit"
    assert "limit is empty" in error.value.message
