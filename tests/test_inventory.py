"""Inventory parsing, variable precedence, host patterns and error messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from clusterbook.errors import InventoryError
from clusterbook.inventory import Inventory, expand_host_range, parse_ssh_args, split_pattern

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_lab_inventory_loads():
    inv = Inventory.load(REPO / "inventory" / "lab.yml")
    assert list(inv.hosts) == ["allyrion", "bettley", "fenn", "gardener", "cargyll", "dalt"]
    bettley = inv.hosts["bettley"]
    assert bettley.address == "10.251.0.11"
    assert bettley.user == "admin"
    assert bettley.become is True
    assert bettley.private_key_file == "/var/lib/clusterbook/lab/ssh/id_ed25519"
    assert bettley.known_hosts_files == ["/var/lib/clusterbook/lab/ssh/known_hosts"]
    assert bettley.ssh_options["stricthostkeychecking"] == "yes"
    assert bettley.host_key_policy == "reject"
    assert "control_plane" in bettley.groups
    assert "k8s_cluster" in bettley.groups
    assert "all" not in bettley.groups
    assert bettley.vars["host_index"] == 1
    assert bettley.vars["timezone"] == "America/New_York"
    assert [h.name for h in inv.select("k8s_cluster")] == [
        "bettley",
        "fenn",
        "gardener",
        "cargyll",
        "dalt",
    ]


def test_goldentooth_inventory_loads():
    inv = Inventory.load(REPO / "inventory" / "goldentooth.yml")
    assert len(inv.hosts) == 10
    assert inv.hosts["jast"].address == "10.4.0.19"
    assert inv.hosts["jast"].user == "nathan"
    assert "own_kernel" in inv.hosts["jast"].capabilities
    assert [h.name for h in inv.select("control_plane")] == ["bettley", "fenn", "gardener"]


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    path = write(
        tmp_path / "hosts.yml",
        """
        all:
          vars:
            level: all
            only_all: 1
          hosts:
            solo:
          children:
            web:
              vars: {level: web, web_var: w}
              hosts:
                web1: {ansible_host: 10.0.0.1}
                web2:
                  level: host
            db:
              hosts:
                db[1:3]:
            prod:
              vars: {level: prod}
              children:
                web:
                db:
            canary:
              vars: {level: canary}
              hosts:
                web2:
        """,
    )
    write(tmp_path / "group_vars" / "all.yml", "from_group_vars_all: yes\n")
    write(tmp_path / "group_vars" / "db" / "main.yml", "level: db-file\n")
    write(tmp_path / "host_vars" / "db2.yaml", "level: db2-file\n")
    return Inventory.load(path)


def test_host_order_and_ranges(inv: Inventory):
    assert list(inv.hosts) == ["solo", "web1", "web2", "db1", "db2", "db3"]


def test_ungrouped_and_groups(inv: Inventory):
    assert inv.hosts["solo"].groups == ["ungrouped"]
    assert inv.hosts["web2"].groups == ["canary", "prod", "web"]


def test_child_group_overrides_parent(inv: Inventory):
    assert inv.hosts["web1"].vars["level"] == "web"
    assert inv.hosts["web1"].vars["web_var"] == "w"
    assert inv.hosts["solo"].vars["level"] == "all"


def test_host_var_overrides_groups(inv: Inventory):
    assert inv.hosts["web2"].vars["level"] == "host"


def test_group_vars_folder_overrides_inline(inv: Inventory):
    assert inv.hosts["db1"].vars["level"] == "db-file"
    assert inv.hosts["db1"].vars["from_group_vars_all"] is True


def test_host_vars_file_overrides_all(inv: Inventory):
    assert inv.hosts["db2"].vars["level"] == "db2-file"


def test_address_defaults_to_name(inv: Inventory):
    assert inv.hosts["web1"].address == "10.0.0.1"
    assert inv.hosts["db1"].address == "db1"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", ["solo", "web1", "web2", "db1", "db2", "db3"]),
        ("*", ["solo", "web1", "web2", "db1", "db2", "db3"]),
        ("web", ["web1", "web2"]),
        ("web:db", ["web1", "web2", "db1", "db2", "db3"]),
        ("web,db1", ["web1", "web2", "db1"]),
        ("prod:!db", ["web1", "web2"]),
        ("prod:&canary", ["web2"]),
        ("!web:prod", ["db1", "db2", "db3"]),
        ("db*", ["db1", "db2", "db3"]),
        ("w*", ["web1", "web2"]),
        ("~db[12]", ["db1", "db2"]),
        ("db[0]", ["db1"]),
        ("db[1:2]", ["db2", "db3"]),
        ("db[-1]", ["db3"]),
        ("10.0.0.1", ["web1"]),
        ("all:!prod", ["solo"]),
    ],
)
def test_select_patterns(inv: Inventory, pattern: str, expected: list[str]):
    assert [h.name for h in inv.select(pattern)] == expected


def test_select_unknown_group_names_it(inv: Inventory):
    with pytest.raises(InventoryError) as info:
        inv.select("web:nosuchgroup")
    assert "nosuchgroup" in str(info.value)
    assert "hosts.yml" in str(info.value)


def test_group_hosts_unknown_group(inv: Inventory):
    with pytest.raises(InventoryError, match="group 'nope' not found"):
        inv.group_hosts("nope")


def test_group_names_variable(inv: Inventory):
    names = inv.group_names()
    assert names["web"] == ["web1", "web2"]
    assert names["ungrouped"] == ["solo"]


def test_ssh_args_parsing():
    options = parse_ssh_args(
        "-o UserKnownHostsFile=/tmp/kh -oStrictHostKeyChecking=accept-new "
        "-o 'ConnectTimeout 5' -J jump@bastion -v"
    )
    assert options == {
        "userknownhostsfile": "/tmp/kh",
        "stricthostkeychecking": "accept-new",
        "connecttimeout": "5",
        "proxyjump": "jump@bastion",
    }


def test_host_key_policy_from_var(tmp_path: Path):
    path = write(
        tmp_path / "i.yml",
        """
        all:
          hosts:
            a: {clusterbook_host_key_policy: trust_on_first_use}
            b: {ansible_ssh_common_args: "-o StrictHostKeyChecking=accept-new"}
            c:
        """,
    )
    inv = Inventory.load(path)
    assert inv.hosts["a"].host_key_policy == "trust_on_first_use"
    assert inv.hosts["b"].host_key_policy == "trust_on_first_use"
    assert inv.hosts["c"].host_key_policy == "reject"


def test_split_pattern():
    assert split_pattern("a:b:!c:&d") == ["a", "b", "!c", "&d"]
    assert split_pattern("fe80::1") == ["fe80::1"]
    assert split_pattern("db[1:2]:web") == ["db[1:2]", "web"]


def test_expand_host_range():
    assert list(expand_host_range("n[08:10]")) == ["n08", "n09", "n10"]
    assert list(expand_host_range("n[a:c]x")) == ["nax", "nbx", "ncx"]
    assert list(expand_host_range("n[1:5:2]")) == ["n1", "n3", "n5"]


MALFORMED = [
    # (name, inventory text, extra files, expected message fragment, expected line)
    ("top level list", "- a\n- b\n", {}, "expected a mapping of group names", 1),
    ("empty file", "", {}, "inventory file is empty", None),
    ("yaml syntax", "all:\n  hosts:\n    a: {x: 1\n", {}, "invalid YAML", 4),
    ("tab indentation", "all:\n\thosts:\n", {}, "invalid YAML", 2),
    (
        "hosts as list",
        "all:\n  hosts:\n    - a\n    - b\n",
        {},
        "'hosts' of group 'all' must be a mapping",
        2,
    ),
    ("unknown group key", "all:\n  host:\n    a:\n", {}, "unknown key 'host' in group 'all'", 2),
    (
        "group is a string",
        "all:\n  children:\n    web: oops\n",
        {},
        "group 'web' must be a mapping",
        3,
    ),
    (
        "vars is a list",
        "all:\n  vars:\n    - a: 1\n",
        {},
        "'vars' of group 'all' must be a mapping",
        2,
    ),
    (
        "host vars a string",
        "all:\n  hosts:\n    a: 10.0.0.1\n",
        {},
        "host 'a' in group 'all' must be followed by a mapping",
        3,
    ),
    (
        "children a list",
        "all:\n  children:\n    - web\n",
        {},
        "'children' of group 'all' must be a mapping",
        2,
    ),
    (
        "duplicate host",
        "all:\n  hosts:\n    a:\n    a:\n",
        {},
        "duplicate key 'a' (first at line 3)",
        4,
    ),
    (
        "host and group same name",
        "all:\n  hosts:\n    web:\n  children:\n    web:\n",
        {},
        "used as both a group and a host",
        None,
    ),
    (
        "group cycle",
        "all:\n  children:\n    a:\n      children:\n        b:\n"
        "          children:\n            a:\n",
        {},
        "group cycle: a -> b -> a",
        None,
    ),
    (
        "all as child",
        "all:\n  children:\n    web:\n      children:\n        all:\n",
        {},
        "group 'all' cannot be a child",
        5,
    ),
    ("bad range", "all:\n  hosts:\n    n[5:1]:\n", {}, "host range [5:1]", 3),
    (
        "bad group name",
        "all:\n  children:\n    'web servers':\n",
        {},
        "invalid group name 'web servers'",
        3,
    ),
    (
        "group_vars not mapping",
        "all:\n  hosts:\n    a:\n",
        {"group_vars/all.yml": "- 1\n"},
        "expected a mapping of variable names",
        1,
    ),
    (
        "group_vars bad yaml",
        "all:\n  hosts:\n    a:\n",
        {"host_vars/a.yml": "x: [1\n"},
        "invalid YAML",
        2,
    ),
]


@pytest.mark.parametrize(
    ("text", "files", "fragment", "line"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_inventory_error(tmp_path: Path, text, files, fragment, line):
    path = tmp_path / "inv.yml"
    path.write_text(text)
    for name, content in files.items():
        write(tmp_path / name, content)
    with pytest.raises(InventoryError) as info:
        Inventory.load(path)
    error = info.value
    assert fragment in str(error)
    assert str(tmp_path) in str(error)
    if line is not None:
        assert error.line == line
        assert f"line {line}" in str(error)


def test_missing_inventory_file(tmp_path: Path):
    with pytest.raises(InventoryError, match="inventory file not found"):
        Inventory.load(tmp_path / "missing.yml")


def test_bad_port_named(tmp_path: Path):
    inv = Inventory.load(write(tmp_path / "i.yml", "all:\n  hosts:\n    a: {ansible_port: ssh}\n"))
    with pytest.raises(InventoryError, match="host a: ansible_port must be a port number"):
        _ = inv.hosts["a"].port


def test_bad_become_named(tmp_path: Path):
    inv = Inventory.load(
        write(tmp_path / "i.yml", "all:\n  hosts:\n    a: {ansible_become: maybe}\n")
    )
    with pytest.raises(InventoryError, match="host a: ansible_become must be a boolean"):
        _ = inv.hosts["a"].become
