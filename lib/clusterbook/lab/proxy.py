"""The nodes' only way out: caching proxies bound to the bridge address.

apt-cacher-ng serves Debian's archive and security archive (nothing else: it
runs with ForceManaged, so it rejects every other host), and proxpi serves
PyPI's simple index and files. Both keep their caches in the lab state folder,
so a second install of the same package comes from the cache.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from clusterbook.errors import LabError
from clusterbook.lab.config import LabConfig
from clusterbook.lab.system import read_pid, terminate, which

log = logging.getLogger(__name__)

DEBIAN_MIRROR = "http://deb.debian.org/debian/"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security/"
PYPI_INDEX = "https://pypi.org/simple/"


@dataclass(frozen=True)
class ProxyProcess:
    name: str
    pid_file: Path
    log_file: Path
    port: int
    #: a string the process's command line contains, to recognise it by PID
    marker: str


def apt_proxy(config: LabConfig) -> ProxyProcess:
    base = config.proxy_dir / "apt"
    return ProxyProcess(
        "apt-cacher-ng", base / "pid", base / "apt-cacher-ng.log", config.apt_proxy_port, str(base)
    )


def pypi_proxy(config: LabConfig) -> ProxyProcess:
    base = config.proxy_dir / "pypi"
    return ProxyProcess(
        "proxpi", base / "pid", base / "proxpi.log", config.pypi_proxy_port, "proxpi.server"
    )


def start_proxies(config: LabConfig) -> None:
    """Start both proxies unless they already run, and wait until they accept connections."""
    apt = apt_proxy(config)
    if read_pid(apt.pid_file, apt.marker) is None:
        _check_port_free(config, apt)
        _start_apt(config, apt)
    pypi = pypi_proxy(config)
    if read_pid(pypi.pid_file, pypi.marker) is None:
        _check_port_free(config, pypi)
        _start_pypi(config, pypi)
    for proxy in (apt, pypi):
        _wait_for_port(config, proxy)


def stop_proxies(config: LabConfig) -> None:
    for proxy in (apt_proxy(config), pypi_proxy(config)):
        pid = read_pid(proxy.pid_file, proxy.marker)
        if pid is not None:
            terminate(pid)
            log.info("stopped %s (pid %d)", proxy.name, pid)
        proxy.pid_file.unlink(missing_ok=True)


def proxies_running(config: LabConfig) -> dict[str, bool]:
    return {
        proxy.name: read_pid(proxy.pid_file, proxy.marker) is not None
        for proxy in (apt_proxy(config), pypi_proxy(config))
    }


def _start_apt(config: LabConfig, proxy: ProxyProcess) -> None:
    base = proxy.pid_file.parent
    conf = base / "conf"
    for sub in ("cache", "log", "run", "conf"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    # acng maps known Debian mirror names to the backends listed here; without
    # this file it falls back to ftp.debian.org, and apt hangs on 503 responses.
    (conf / "backends_debian").write_text(DEBIAN_MIRROR + "\n")
    (conf / "backends_debian_security").write_text(DEBIAN_SECURITY + "\n")
    (conf / "acng.conf").write_text(
        "\n".join(
            [
                f"CacheDir: {base / 'cache'}",
                f"LogDir: {base / 'log'}",
                "SupportDir: /usr/lib/apt-cacher-ng",
                f"BindAddress: {config.gateway}",
                f"Port: {config.apt_proxy_port}",
                f"PidFile: {base / 'run' / 'acng.pid'}",
                f"SocketPath: {base / 'run' / 'socket'}",
                "Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian",
                "Remap-secdeb: security.debian.org security.debian.org/debian-security "
                "deb.debian.org/debian-security /debian-security ; file:backends_debian_security",
                # Serve only the remapped Debian archives; refuse any other host.
                "ForceManaged: 1",
                "ExThreshold: 4",
                "ReportPage: acng-report.html",
                "",
            ]
        )
    )
    binary = which("apt-cacher-ng") or "/usr/sbin/apt-cacher-ng"
    _spawn(proxy, [binary, "-c", str(conf), "ForeGround=1"], env=None)


def _start_pypi(config: LabConfig, proxy: ProxyProcess) -> None:
    base = proxy.pid_file.parent
    (base / "cache").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PROXPI_INDEX_URL": PYPI_INDEX,
        "PROXPI_CACHE_DIR": str(base / "cache"),
        # proxpi redirects a client to the upstream file when its own download
        # takes longer than this; nodes cannot follow such a redirect.
        "PROXPI_DOWNLOAD_TIMEOUT": "600",
    }
    args = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "proxpi.server",
        "run",
        "--host",
        str(config.gateway),
        "--port",
        str(config.pypi_proxy_port),
        "--no-debugger",
        "--no-reload",
    ]
    _spawn(proxy, args, env=env)


def _spawn(proxy: ProxyProcess, args: list[str], env: dict[str, str] | None) -> None:
    proxy.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(proxy.log_file, "ab") as log_file:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=proxy.pid_file.parent,
            start_new_session=True,
        )
    proxy.pid_file.write_text(f"{process.pid}\n")
    log.info("started %s (pid %d)", proxy.name, process.pid)


def _check_port_free(config: LabConfig, proxy: ProxyProcess) -> None:
    """Fail when another program already listens on the proxy's address and port."""
    try:
        with socket.create_connection((str(config.gateway), proxy.port), timeout=1):
            pass
    except OSError:
        return
    raise LabError(
        f"port {proxy.port} on {config.gateway} is already in use by another program, "
        f"so the lab's {proxy.name} cannot start",
        hint=f"stop that program (ss -ltnp 'sport = :{proxy.port}') or set "
        "clusterbook_lab.apt_proxy_port / pypi_proxy_port in the inventory",
    )


def _wait_for_port(config: LabConfig, proxy: ProxyProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((str(config.gateway), proxy.port), timeout=1):
                if read_pid(proxy.pid_file, proxy.marker) is not None:
                    return
        except OSError:
            if read_pid(proxy.pid_file, proxy.marker) is None:
                break
            time.sleep(0.1)
    tail = _tail(proxy.log_file)
    raise LabError(
        f"{proxy.name} did not start listening on {config.gateway}:{proxy.port}\n{tail}",
        hint=f"see {proxy.log_file}",
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
