"""Lab nodes reach each other and the package proxies, and nothing else."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest

pytestmark = pytest.mark.lab

CONNECT = """python3 - <<'PY'
import socket
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("{address}", {port}))
    print("connected")
except OSError as exc:
    print("failed", exc.errno, exc)
PY"""


def connect_from(node, address: str, port: int) -> str:
    return node.check(CONNECT.format(address=address, port=port)).strip()


def test_nodes_reach_each_other(nodes: dict) -> None:
    assert connect_from(nodes["dalt"], nodes["bettley"].address, 22) == "connected"


def test_node_has_no_route_out(nodes: dict) -> None:
    routes = nodes["dalt"].check("ip -4 route show").strip().splitlines()
    assert routes == [route for route in routes if not route.startswith("default")]
    # 192.0.2.1 is TEST-NET-1, reserved for documentation: with no route the
    # kernel fails the connect locally and no packet leaves the node.
    result = connect_from(nodes["dalt"], "192.0.2.1", 80)
    assert result.startswith("failed 101"), result


def test_node_cannot_reach_host_services(nodes: dict, lab_config) -> None:
    """A service on this host listening on every address stays closed to nodes."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted = []

    def accept() -> None:
        server.settimeout(6)
        try:
            conn, peer = server.accept()
            accepted.append(peer)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        result = connect_from(nodes["dalt"], str(lab_config.gateway), port)
    finally:
        thread.join()
        server.close()
    assert result.startswith("failed"), result
    assert accepted == []


def test_node_reaches_both_proxies(nodes: dict, lab_config) -> None:
    gateway = str(lab_config.gateway)
    assert connect_from(nodes["dalt"], gateway, lab_config.apt_proxy_port) == "connected"
    assert connect_from(nodes["dalt"], gateway, lab_config.pypi_proxy_port) == "connected"


def test_apt_proxy_refuses_other_hosts(nodes: dict, lab_config) -> None:
    # The .invalid top-level domain is reserved and never resolves; the proxy
    # must refuse the request before it tries.
    url = "http://clusterbook.invalid/debian/pool/main/x/x.deb"
    proxy = lab_config.apt_proxy_url
    out = nodes["dalt"].check(
        f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 -x {proxy} {url}"
    )
    assert out.strip() == "403"


def test_installed_service_is_reachable_from_another_node(nodes: dict) -> None:
    server, client = nodes["cargyll"], nodes["gardener"]
    marker = uuid.uuid4().hex
    try:
        server.check(
            "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light", timeout=600
        )
        server.check(f"echo {marker} | sudo tee /var/www/html/index.html")
        assert server.check("systemctl is-active nginx").strip() == "active"
        page = client.check(f"curl -s --max-time 10 http://{server.address}/")
        assert page.strip() == marker
    finally:
        server.run(
            "sudo DEBIAN_FRONTEND=noninteractive apt-get purge -y -q nginx-light nginx-common"
            " && sudo apt-get autoremove -y -q && sudo rm -rf /var/www/html",
            timeout=600,
        )


def _apt_log_lines(lab_config, package: str, kind: str) -> int:
    """Count acng transfer-log lines of `kind` ('I' fetched upstream, 'O' sent to a node)."""
    log = lab_config.proxy_dir / "apt" / "log" / "apt-cacher.log"
    if not log.exists():
        return 0
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        fields = line.split("|")
        if len(fields) >= 5 and fields[1] == kind and f"/{package}_" in fields[-1]:
            count += 1
    return count


def test_second_apt_install_comes_from_cache(nodes: dict, lab_config) -> None:
    package = "sl"  # a tiny package nothing else in the book installs
    first, second = nodes["fenn"], nodes["gardener"]
    install = f"sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q {package}"
    remove = f"sudo apt-get purge -y -q {package} && sudo apt-get clean"
    try:
        first.check(install, timeout=600)
        fetched = _apt_log_lines(lab_config, package, "I")
        served = _apt_log_lines(lab_config, package, "O")
        second.check(install, timeout=600)
        assert _apt_log_lines(lab_config, package, "I") == fetched
        assert _apt_log_lines(lab_config, package, "O") > served
    finally:
        first.run(remove)
        second.run(remove)


def test_pip_installs_through_the_proxy(nodes: dict, lab_config) -> None:
    cache = lab_config.proxy_dir / "pypi" / "cache"
    script = (
        "rm -rf /tmp/cb-venv && python3 -m venv /tmp/cb-venv"
        " && /tmp/cb-venv/bin/pip install --no-cache-dir -q six==1.16.0"
        " && /tmp/cb-venv/bin/python -c 'import six; print(six.__version__)'"
        "; rc=$?; rm -rf /tmp/cb-venv; exit $rc"
    )
    try:
        assert nodes["fenn"].check(script, timeout=600).strip() == "1.16.0"
        cached = [p for p in cache.rglob("six-1.16.0*")]
        assert cached, f"six was not cached under {cache}"
        assert nodes["gardener"].check(script, timeout=600).strip() == "1.16.0"
    finally:
        for name in ("fenn", "gardener"):
            nodes[name].run("rm -rf /tmp/cb-venv")
