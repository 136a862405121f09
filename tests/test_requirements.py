"""Capability requirements: unknown names rejected, lacking hosts run in check mode."""

from __future__ import annotations

import pytest
from clusterbook import Cluster
from clusterbook.errors import InventoryError, RequirementError
from clusterbook.inventory import Inventory
from clusterbook.results import HostResult

INVENTORY = {
    "all": {
        "vars": {"clusterbook_capabilities": ["systemd", "debian_mirror"]},
        "children": {
            "pi": {
                "vars": {"clusterbook_capabilities": ["systemd", "internet", "own_kernel"]},
                "hosts": {"p1": None, "p2": None},
            },
            "vm": {"hosts": {"v1": None}},
        },
    }
}


@pytest.fixture
def cluster() -> Cluster:
    return Cluster(Inventory.from_dict(INVENTORY))


def test_has(cluster: Cluster):
    assert cluster.has("systemd") is True
    assert cluster.has("internet") is False
    assert Cluster(cluster.inventory, limit="pi").has("internet") is True


def test_unknown_capability(cluster: Cluster):
    with pytest.raises(RequirementError, match="unknown capability 'internets'"):
        cluster.has("internets")
    with pytest.raises(RequirementError, match="unknown capability"), cluster.requires("gpu"):
        pass


def test_requires_names_lacking_hosts(cluster: Cluster, capsys):
    with cluster.requires("internet", why="downloads from pkgs.k8s.io") as lacking:
        assert lacking == {"v1": ["internet"]}
        assert cluster.missing_capabilities(cluster.inventory.hosts["v1"]) == ["internet"]
        assert cluster.missing_capabilities(cluster.inventory.hosts["p1"]) == []
    output = capsys.readouterr().out
    assert "Requires internet (downloads from pkgs.k8s.io): v1 lacks it" in output
    assert "check mode" in output
    assert cluster.missing_capabilities(cluster.inventory.hosts["v1"]) == []


def test_requires_forces_check_mode_in_operations(cluster: Cluster, monkeypatch):
    seen = {}

    def fake_apply_operation(ctx):
        seen[ctx.name] = (ctx.check, ctx.check_reason)
        return HostResult(ctx.name)

    monkeypatch.setattr("clusterbook.cluster.get_connection", lambda host: None)
    with cluster.requires("internet"):
        cluster.all.apply("probe", fake_apply_operation)
    assert seen == {"p1": (False, ""), "p2": (False, ""), "v1": (True, "lacks internet")}


def test_changing_command_skipped_when_lacking(cluster: Cluster, monkeypatch):
    monkeypatch.setattr("clusterbook.cluster.get_connection", lambda host: None)
    with cluster.requires("own_kernel"):
        results = cluster.group("vm").run("modprobe overlay", changes=True)
    assert results["v1"].status == "skipped"
    assert "lacks own_kernel" in results["v1"].message


def test_group_and_select(cluster: Cluster):
    assert cluster.group("pi").names == ["p1", "p2"]
    assert cluster.select("all:!p2").names == ["p1", "v1"]
    assert Cluster(cluster.inventory, limit="vm").group("pi").names == []
    with pytest.raises(InventoryError, match="group 'nope' not found"):
        cluster.group("nope")


def test_inventory_table(cluster: Cluster):
    table = cluster.inventory_table()
    assert set(table) == {"p1", "p2", "v1"}
    assert "pi" in table["p1"]["groups"]
