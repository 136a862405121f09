"""Chapter 6 on the lab: HAProxy's health checks follow each API server's /readyz.

Kubernetes does not run on the lab, so each control-plane node gets a stand-in for its
API server. The stand-in is a small HTTPS server on port 6443 that returns, for GET
/readyz, the status code written in a file. It runs as a transient systemd unit and is
removed after the tests.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .conftest import REPO, NodeShell, fetch_backend_states, run_chapter

pytestmark = pytest.mark.lab

CHAPTER = "006_load_balancer"
STATS_USER = "admin"
STAND_IN_DIR = "/run/cb-test-readyz"
STAND_IN_UNIT = "cb-test-readyz"
#: long enough for fall 3 / rise 2 checks every 2 s, with room for a loaded machine
STATE_WAIT_SECONDS = 60

STAND_IN = """\
import http.server
import ssl
import sys

address, port, status_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class ReadyzHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(status_file) as handle:
            code = int(handle.read().strip() or "200")
        body = b"ok" if code == 200 else b"not ready"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer((address, port), ReadyzHandler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("cert.pem", "key.pem")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def start_stand_in(node: NodeShell) -> None:
    node.check(
        f"sudo mkdir -p {STAND_IN_DIR} && cd {STAND_IN_DIR} && "
        "sudo openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
        "-days 1 -subj /CN=readyz-stand-in 2>/dev/null && "
        f"echo 200 | sudo tee {STAND_IN_DIR}/status >/dev/null"
    )
    node.check(f"sudo tee {STAND_IN_DIR}/server.py >/dev/null", stdin=STAND_IN)
    node.check(
        f"sudo systemd-run --unit {STAND_IN_UNIT} --working-directory={STAND_IN_DIR} "
        f"python3 {STAND_IN_DIR}/server.py {node.address} 6443 {STAND_IN_DIR}/status"
    )
    node.check(
        "for i in $(seq 50); do ss -ltn | grep -q ':6443 ' && exit 0; sleep 0.2; done; exit 1"
    )


def stop_stand_in(node: NodeShell) -> None:
    node.run(f"sudo systemctl stop {STAND_IN_UNIT}; sudo systemctl reset-failed {STAND_IN_UNIT}")


def set_readyz_status(node: NodeShell, code: int) -> None:
    node.check(f"echo {code} | sudo tee {STAND_IN_DIR}/status >/dev/null")


def wait_for_states(address: str, password: str, expected: dict[str, str]) -> dict[str, str]:
    """Poll the statistics until every named server has its expected status."""
    deadline = time.monotonic() + STATE_WAIT_SECONDS
    while True:
        states = fetch_backend_states(address, STATS_USER, password)
        if all(states.get(server) == status for server, status in expected.items()):
            return states
        if time.monotonic() > deadline:
            return states
        time.sleep(1)


@pytest.fixture(scope="module")
def control_plane(nodes, lab_inventory) -> list[NodeShell]:
    names = [h.name for h in lab_inventory.group_hosts("control_plane")]
    return [nodes[name] for name in names]


@pytest.fixture(scope="module")
def balancer(nodes, lab_inventory) -> NodeShell:
    return nodes[lab_inventory.group_hosts("load_balancer")[0].name]


@pytest.fixture(scope="module")
def stand_ins(control_plane):
    for node in control_plane:
        stop_stand_in(node)
        start_stand_in(node)
    yield control_plane
    for node in control_plane:
        stop_stand_in(node)
        node.run(f"sudo rm -rf {STAND_IN_DIR}")


@pytest.fixture(scope="module")
def chapter_up(tmp_path_factory, stand_ins, stats_canary):
    """Chapter 6 executed once with every stand-in ready, expecting every backend UP."""
    output = tmp_path_factory.mktemp("ch006") / f"{CHAPTER}.ipynb"
    proc, notebook = run_chapter(
        CHAPTER,
        output,
        parameters={"expect_backends": "UP"},
        env={"CLUSTERBOOK_HAPROXY_STATS_PASSWORD": stats_canary},
    )
    return output, proc, notebook


def test_backends_up_when_readyz_answers(chapter_up, balancer, control_plane, stats_canary):
    states = wait_for_states(
        balancer.address, stats_canary, {node.name: "UP" for node in control_plane}
    )
    assert states == {node.name: "UP" for node in control_plane}


def test_backend_down_when_readyz_fails(chapter_up, balancer, control_plane, stats_canary):
    failing, *healthy = control_plane
    set_readyz_status(failing, 500)
    try:
        expected = {failing.name: "DOWN", **{node.name: "UP" for node in healthy}}
        states = wait_for_states(balancer.address, stats_canary, expected)
        assert states == expected, f"{failing.name} answers 500 on /readyz"
    finally:
        set_readyz_status(failing, 200)
    states = wait_for_states(balancer.address, stats_canary, {failing.name: "UP"})
    assert states[failing.name] == "UP", f"{failing.name} answers 200 again"


def test_backend_down_when_stand_in_stops(chapter_up, balancer, control_plane, stats_canary):
    stopped = control_plane[-1]
    stop_stand_in(stopped)
    try:
        states = wait_for_states(balancer.address, stats_canary, {stopped.name: "DOWN"})
        assert states[stopped.name] == "DOWN", f"nothing listens on {stopped.name}:6443"
        assert all(states[node.name] == "UP" for node in control_plane[:-1])
    finally:
        start_stand_in(stopped)
    states = wait_for_states(balancer.address, stats_canary, {stopped.name: "UP"})
    assert states[stopped.name] == "UP"


def test_notebook_fails_when_backends_not_up(tmp_path, stand_ins, stats_canary):
    for node in stand_ins:
        set_readyz_status(node, 503)
    try:
        proc, notebook = run_chapter(
            CHAPTER,
            tmp_path / f"{CHAPTER}.ipynb",
            parameters={"expect_backends": "UP", "wait_seconds": "15"},
            env={"CLUSTERBOOK_HAPROXY_STATS_PASSWORD": stats_canary},
            expect_success=False,
        )
    finally:
        for node in stand_ins:
            set_readyz_status(node, 200)
    assert proc.returncode != 0
    assert "VerificationFailed" in proc.stderr
    assert "backends not UP" in proc.stderr


def test_canary_password_never_in_notebook(chapter_up, balancer, stats_canary):
    output, proc, _notebook = chapter_up
    written = balancer.check("sudo grep -c 'stats auth' /etc/haproxy/haproxy.cfg")
    assert written.strip() == "1"
    uses_canary = balancer.run(f"sudo grep -q -- '{stats_canary}' /etc/haproxy/haproxy.cfg")
    assert uses_canary.returncode == 0, "haproxy.cfg does not carry the canary password"
    assert stats_canary not in Path(output).read_text()
    assert stats_canary not in proc.stdout
    assert stats_canary not in proc.stderr


def test_papermill_with_limit_from_repo_root(tmp_path, stand_ins, stats_canary, control_plane):
    output = tmp_path / "out.ipynb"
    proc, notebook = run_chapter(
        CHAPTER,
        output,
        parameters={"limit": "allyrion"},
        env={"CLUSTERBOOK_HAPROXY_STATS_PASSWORD": stats_canary},
    )
    assert proc.returncode == 0
    text = output.read_text()
    for node in control_plane:
        assert f"| allyrion | {node.name} |" in text, f"backend table lacks {node.name}"
    assert stats_canary not in text


def test_clusterbook_run_keeps_secret_out_of_runs(tmp_path, stand_ins, stats_canary, balancer):
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "clusterbook"),
            "run",
            "006",
            "--runs",
            str(runs),
            "-p",
            "stats_password",
            stats_canary,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"clusterbook run 006 exited {proc.returncode}\n{proc.stderr}"
    uses_canary = balancer.run(f"sudo grep -q -- '{stats_canary}' /etc/haproxy/haproxy.cfg")
    assert uses_canary.returncode == 0, "the -p stats_password value did not reach haproxy.cfg"
    files = [path for path in runs.rglob("*") if path.is_file()]
    assert files, "clusterbook run wrote no run record"
    for path in files:
        assert stats_canary not in path.read_text(errors="replace"), f"canary in {path}"
    assert stats_canary not in proc.stdout + proc.stderr


def test_replaced_password_not_in_diff(tmp_path, stand_ins, stats_canary, balancer):
    other = stats_canary + "-replaced"
    env_other = {"CLUSTERBOOK_HAPROXY_STATS_PASSWORD": other}
    env_canary = {"CLUSTERBOOK_HAPROXY_STATS_PASSWORD": stats_canary}
    run_chapter(CHAPTER, tmp_path / "other.ipynb", env=env_other)
    _proc, _notebook = run_chapter(CHAPTER, tmp_path / "back.ipynb", env=env_canary)
    text = (tmp_path / "back.ipynb").read_text()
    assert "only lines holding a secret changed" in text
    assert other not in text, "the replaced password shows in the haproxy.cfg diff"
    assert stats_canary not in text
