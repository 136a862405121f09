"""Time one command on every lab node: clusterbook warm and cold, Ansible, pyinfra, parallel-ssh.

Run against a running lab (`clusterbook lab up`), with the comparison tools installed in a
separate venv (they are not project dependencies):

    python3 -m venv benchmarks/.venv
    benchmarks/.venv/bin/pip install ansible-core pyinfra parallel-ssh
    .venv/bin/python benchmarks/bench_fanout.py --repeat 20 --write docs/benchmarks.md

Every tool runs `hostname` on the same six nodes with the same key and known_hosts file.
Ansible and clusterbook use sudo because the lab inventory sets `ansible_become: true`; the
other rows state whether they do. The 12-host rows open a second SSH connection to every
node (the lab has six nodes), so they measure twelve parallel sessions, not twelve
machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clusterbook import Cluster, ssh
from clusterbook.fanout import fan_out
from clusterbook.inventory import Host
from clusterbook.results import HostResult

REPO = Path(__file__).resolve().parents[1]
INVENTORY = REPO / "inventory" / "lab.yml"
TOOLS_VENV = REPO / "benchmarks" / ".venv"
COMMAND = "hostname"


def measure(function: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of each of `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def check_hostnames(results: dict[str, str], expected: list[str]) -> None:
    names = sorted(value.strip() for value in results.values())
    if names != sorted(expected):
        raise SystemExit(f"unexpected output {names}, expected {sorted(expected)}")


def clusterbook_cases(cluster: Cluster, repeat: int) -> dict[str, list[float]]:
    group = cluster.all
    names = group.names

    def warm(become: bool) -> Callable[[], None]:
        def run() -> None:
            results = group.run(COMMAND, become=become)
            check_hostnames(results.stdout(), names)

        return run

    def cold() -> None:
        ssh.close_all()
        check_hostnames(group.run(COMMAND).stdout(), names)

    # Twelve sessions: every node twice, the second over its own extra pooled connection.
    doubled = [(h, slot) for slot in (0, 1) for h in cluster.hosts]
    pseudo = [Host(f"{h.name}#{slot}", vars=h.vars) for h, slot in doubled]
    lookup = {p.name: pair for p, pair in zip(pseudo, doubled, strict=True)}

    def twelve_sessions(become: bool) -> Callable[[], None]:
        def task(pseudo_host: Host) -> HostResult:
            host, slot = lookup[pseudo_host.name]
            result = ssh.get_connection(host, slot=slot).run(COMMAND, become=become)
            return HostResult(pseudo_host.name, exit_code=result.exit_code, stdout=result.stdout)

        def run() -> None:
            results = fan_out(pseudo, task, title="bench 12", progress=False)
            check_hostnames(results.stdout(), names * 2)

        return run

    warm(True)()  # open the connections once, as the first notebook cell does
    twelve_sessions(True)()
    cases = {
        "clusterbook warm, 6 hosts, no sudo": measure(warm(False), repeat),
        "clusterbook warm, 6 hosts, sudo": measure(warm(True), repeat),
        "clusterbook warm, 12 sessions (2 per node), no sudo": measure(
            twelve_sessions(False), repeat
        ),
        "clusterbook warm, 12 sessions (2 per node), sudo": measure(twelve_sessions(True), repeat),
        "clusterbook cold (new connections), 6 hosts, sudo": measure(cold, max(3, repeat // 4)),
    }
    ssh.close_all()
    return cases


def ansible_case(repeat: int) -> dict[str, list[float]]:
    ansible = TOOLS_VENV / "bin" / "ansible"
    if not ansible.exists():
        print(f"skipping Ansible: {ansible} not found", file=sys.stderr)
        return {}
    command = [str(ansible), "all", "-i", str(INVENTORY), "-m", "command", "-a", COMMAND]
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER="auto_silent", ANSIBLE_FORKS="20")
    env["ANSIBLE_LOCAL_TEMP"] = tempfile.mkdtemp(prefix="cb-ansible-")

    def run() -> None:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"ansible failed:\n{proc.stdout}\n{proc.stderr}")

    run()  # the first run starts the ControlPersist masters that later runs reuse
    return {"Ansible ad-hoc (ControlPersist warm), sudo": measure(run, max(3, repeat // 4))}


def pyinfra_case(cluster: Cluster, repeat: int) -> dict[str, list[float]]:
    pyinfra = TOOLS_VENV / "bin" / "pyinfra"
    if not pyinfra.exists():
        print(f"skipping pyinfra: {pyinfra} not found", file=sys.stderr)
        return {}
    host = cluster.hosts[0]
    lines = ["hosts = ["]
    for h in cluster.hosts:
        lines.append(f"    ({h.address!r}, {{}}),")
    lines.append("]")
    folder = Path(tempfile.mkdtemp(prefix="cb-pyinfra-"))
    inventory = folder / "inventory.py"
    inventory.write_text("\n".join(lines) + "\n")
    command = [
        str(pyinfra),
        "-y",
        "--ssh-user",
        str(host.user),
        "--ssh-key",
        str(host.private_key_file),
        "--data",
        f"ssh_known_hosts_file={host.known_hosts_files[0]}",
        "--data",
        "ssh_strict_host_key_checking=yes",
        "--sudo",
        str(inventory),
        "exec",
        "--",
        COMMAND,
    ]

    def run() -> None:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=folder)
        if proc.returncode != 0:
            raise SystemExit(f"pyinfra failed:\n{proc.stdout}\n{proc.stderr}")

    run()
    return {"pyinfra exec (CLI, connects each run), sudo": measure(run, max(3, repeat // 4))}


def parallel_ssh_cases(cluster: Cluster, repeat: int) -> dict[str, list[float]]:
    python = TOOLS_VENV / "bin" / "python"
    if not python.exists():
        return {}
    hosts = [h.address for h in cluster.hosts]
    key = cluster.hosts[0].private_key_file
    user = cluster.hosts[0].user
    script = f"""
import time, statistics, json
from pssh.clients import ParallelSSHClient
hosts = {hosts!r}
def once(client):
    output = client.run_command({COMMAND!r}, sudo=True)
    client.join(output)
    names = [line for o in output for line in o.stdout]
    assert len(names) == len(hosts), names
def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return out
client = ParallelSSHClient(hosts, user={user!r}, pkey={key!r}, pool_size=20)
once(client)
warm = timed(lambda: once(client), {repeat})
def cold():
    once(ParallelSSHClient(hosts, user={user!r}, pkey={key!r}, pool_size=20))
cold_times = timed(cold, {max(3, repeat // 4)})
print(json.dumps({{"warm": warm, "cold": cold_times}}))
"""
    proc = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(f"skipping parallel-ssh: {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return {}
    import json

    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "parallel-ssh warm (client reused), sudo, no host key check": data["warm"],
        "parallel-ssh cold (new client), sudo, no host key check": data["cold"],
    }


def tool_versions() -> dict[str, str]:
    import paramiko

    versions = {"clusterbook": "this repository", "paramiko": paramiko.__version__}
    pip = TOOLS_VENV / "bin" / "pip"
    if pip.exists():
        proc = subprocess.run(
            [str(pip), "list", "--format=freeze"], capture_output=True, text=True, check=False
        )
        for line in proc.stdout.splitlines():
            name, _, version = line.partition("==")
            if name.lower() in ("ansible-core", "pyinfra", "parallel-ssh"):
                versions[name] = version
    return versions


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    return (
        f"{os.cpu_count()} vCPU {cpu}, {memory_kb / 1024 / 1024:.0f} GiB RAM, kernel "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def render(cases: dict[str, list[float]], repeat: int, argv: list[str]) -> str:
    rows = ["| case | median | min | max | runs |", "| --- | --- | --- | --- | --- |"]
    for name, times in cases.items():
        ms = [t * 1000 for t in times]
        rows.append(
            f"| {name} | {statistics.median(ms):.1f} ms | {min(ms):.1f} ms | "
            f"{max(ms):.1f} ms | {len(ms)} |"
        )
    medians = {name: statistics.median(times) for name, times in cases.items()}
    warm = medians.get("clusterbook warm, 6 hosts, sudo")
    ratios = []
    if warm:
        for name, value in medians.items():
            if not name.startswith("clusterbook"):
                ratios.append(f"- {name}: {value / warm:.0f}x the clusterbook warm median")
    twelve = medians.get("clusterbook warm, 12 sessions (2 per node), sudo")
    if twelve:
        verdict = "met" if twelve < 0.030 else "missed"
        ratios.append(
            f"- 12 sessions, sudo: {twelve * 1000:.1f} ms (target under 30 ms: {verdict})"
        )
    versions = ", ".join(f"{k} {v}" for k, v in tool_versions().items())
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", *argv])
    return "\n".join(
        [
            "## Fan-out",
            "",
            f"`{COMMAND}` on every node of the embedded lab (six Debian 12 nodes as",
            "systemd-nspawn containers on this machine, reached over a local bridge), measured",
            f"{time.strftime('%Y-%m-%d')} on {machine()}.",
            f"Tools: {versions}.",
            "",
            "```bash",
            command,
            "```",
            "",
            *rows,
            "",
            "Warm means the SSH connections stay open between steps, as they do between",
            "notebook cells; clusterbook then writes each command to a shell that already",
            "runs on every connection (for sudo, a root shell started once by `sudo -n sh`).",
            "Cold opens new connections (TCP, key exchange, authentication) for every step.",
            "The 12-session rows run the command over two connections per node, because the",
            "lab has six nodes. Ansible's row is its best case: OpenSSH ControlPersist",
            "masters stay open from the first run, but every run still starts the `ansible`",
            "process and a Python module on each node. pyinfra's CLI starts Python and",
            "connects on every run. parallel-ssh does not check host keys by default. The",
            "client and all six nodes share the same two vCPUs, so the numbers include",
            "contention between them.",
            "",
            "Targets: a warm step at least 20x faster than Ansible ad-hoc and 5x faster than",
            "pyinfra, and under 30 ms for 12 hosts. Ratios of medians:",
            "",
            *ratios,
            "",
        ]
    )


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the `## Fan-out` section, leaving other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Fan-out"), None)
    if start is None:
        new_text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        new_text = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.write_text(new_text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="runs per warm case")
    parser.add_argument("--write", type=Path, help="update the '## Fan-out' section of this file")
    parser.add_argument("--skip-others", action="store_true", help="only measure clusterbook")
    args = parser.parse_args()
    cluster = Cluster.load(INVENTORY)
    cases = clusterbook_cases(cluster, args.repeat)
    if not args.skip_others:
        cases.update(ansible_case(args.repeat))
        cases.update(pyinfra_case(cluster, args.repeat))
        cases.update(parallel_ssh_cases(cluster, args.repeat))
    section = render(cases, args.repeat, sys.argv)
    print(section)
    if args.write:
        write_section(args.write, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
