"""Pure parts of the operations: line and block edits, diffs, deb822 text, facts parsing."""

from __future__ import annotations

import pytest
from clusterbook.facts import parse_basic, parse_os_release
from clusterbook.ops.apt import sources_text
from clusterbook.ops.base import FileState, attribute_changes, make_diff, parse_mode, past_tense
from clusterbook.ops.files import edit_lines, load_template, replace_block
from clusterbook.ops.server import hosts_block
from clusterbook.ops.sysctl import sysctl_file_text


@pytest.mark.parametrize(
    ("text", "line", "regexp", "state", "expected"),
    [
        ("a\nb\n", "c", None, "present", "a\nb\nc\n"),
        ("a\nc\n", "c", None, "present", "a\nc\n"),
        ("", "c", None, "present", "c\n"),
        ("x=1\ny=2\n", "x=9", r"^x=", "present", "x=9\ny=2\n"),
        ("x=1\nx=2\n", "x=9", r"^x=", "present", "x=1\nx=9\n"),
        ("a\nb\n", "x=9", r"^x=", "present", "a\nb\nx=9\n"),
        ("a\nb\na\n", "a", None, "absent", "b\n"),
        ("a\nb\n", "z", None, "absent", "a\nb\n"),
        ("#swap\nswap on\n", "", r"^swap", "absent", "#swap\n"),
    ],
)
def test_edit_lines(text, line, regexp, state, expected):
    assert edit_lines(text, line, regexp, state) == expected


def test_replace_block_append_replace_remove():
    marker = "# {mark} managed"
    first = replace_block("keep\n", "one\ntwo\n", marker)
    assert first == "keep\n# BEGIN managed\none\ntwo\n# END managed\n"
    second = replace_block(first, "three", marker)
    assert second == "keep\n# BEGIN managed\nthree\n# END managed\n"
    assert replace_block(second, "three", marker) == second
    assert replace_block(second, "", marker, state="absent") == "keep\n"


def test_make_diff_create_update_binary():
    created = make_diff("/etc/x", None, b"a\n")
    assert created.startswith("--- /dev/null\n+++ /etc/x (after)")
    updated = make_diff("/etc/x", b"a\n", b"b\n")
    assert "-a\n+b\n" in updated
    assert make_diff("/etc/x", b"same", b"same") == ""
    assert make_diff("/bin/x", b"\xff\xfe", b"\x00") == "Binary file /bin/x differs\n"


def test_make_diff_no_newline_marker():
    assert "\\ No newline at end of file" in make_diff("/x", b"a", b"b")


def test_parse_mode():
    assert parse_mode("0644") == 0o644
    assert parse_mode("755") == 0o755
    assert parse_mode(0o600) == 0o600
    assert parse_mode(None) is None
    with pytest.raises(ValueError, match="invalid file mode"):
        parse_mode("rw-r--r--")


def test_attribute_changes():
    state = FileState("/x", "file", owner="root", group="root", mode=0o644)
    assert attribute_changes(state, "root", "root", 0o644) == []
    assert attribute_changes(state, "admin", None, 0o600) == [
        "owner root -> admin",
        "mode 0644 -> 0600",
    ]


def test_past_tense():
    assert past_tense("create /etc/x") == "created /etc/x"
    assert past_tense("install tree") == "installed tree"
    assert past_tense("frobnicate x") == "frobnicate x"


def test_sources_text():
    text = sources_text(
        "https://pkgs.k8s.io/core:/stable:/v1.32/deb/",
        "/",
        None,
        "/etc/apt/keyrings/kubernetes.asc",
        ["arm64"],
    )
    assert text == (
        "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.32/deb/\nSuites: /\n"
        "Architectures: arm64\nSigned-By: /etc/apt/keyrings/kubernetes.asc\n"
    )


def test_sysctl_and_hosts_text():
    assert sysctl_file_text({"net.ipv4.ip_forward": 1}).endswith("net.ipv4.ip_forward = 1\n")
    assert hosts_block({"10.4.0.10": ["lb", "lb.local"], "10.4.0.11": "a b"}) == (
        "10.4.0.10 lb lb.local\n10.4.0.11 a b"
    )


def test_load_template_source_and_path(tmp_path):
    template, label = load_template("x={{ value }}\n")
    assert label == "inline template"
    assert template.render(value=1) == "x=1\n"
    path = tmp_path / "t.conf.j2"
    path.write_text("{% include 'part.j2' %}!\n")
    (tmp_path / "part.j2").write_text("part")
    template, label = load_template(str(path))
    assert label == str(path)
    assert template.render() == "part!\n"
    with pytest.raises(FileNotFoundError, match="missing.j2"):
        load_template(str(tmp_path / "missing.j2"))


def test_parse_os_release():
    values = parse_os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    assert values == {"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian"}


def test_parse_basic_facts():
    stdout = (
        "=====clusterbook:os_release\nID=debian\n"
        "=====clusterbook:architecture\naarch64\n"
        "=====clusterbook:cpus\n4\n"
        "=====clusterbook:meminfo\nMemTotal:        8000000 kB\nSwapTotal: 0 kB\n"
        "=====clusterbook:addresses\n"
        '[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8,"scope":"host"}]},'
        '{"ifname":"eth0","addr_info":[{"local":"10.4.0.10","prefixlen":20,"scope":"global"},'
        '{"local":"fe80::1","prefixlen":64,"scope":"link"}]}]\n'
        '=====clusterbook:disks\n{"blockdevices":[{"name":"mmcblk0","size":64000000000}]}\n'
        "=====clusterbook:mounts\nnot json\n"
    )
    facts = parse_basic(stdout)
    assert facts["architecture"] == "aarch64"
    assert facts["cpus"] == 4
    assert facts["memory_mb"] == 7812
    assert facts["addresses"] == {"eth0": ["10.4.0.10/20"]}
    assert facts["disks"][0]["name"] == "mmcblk0"
    assert facts["mounts"] == []
