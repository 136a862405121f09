"""Fixtures for running chapter notebooks against the embedded lab with papermill.

The chapters run the way a reader runs them from the repository root:
`papermill notebooks/NNN_slug.ipynb OUT -p name value`. The helpers here talk to the
nodes with the OpenSSH client, independent of the clusterbook library, so a fault in
the library cannot hide a fault in a chapter's own verification.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import urllib.request
from pathlib import Path

import nbformat
import pytest
from clusterbook.inventory import Inventory

REPO = Path(__file__).resolve().parents[2]
PAPERMILL = REPO / ".venv" / "bin" / "papermill"
#: seconds one chapter may take under papermill (package installs on six nodes)
CHAPTER_TIMEOUT = 1800
#: printed by the probe cell appended to a chapter, followed by JSON
SUMMARY_MARKER = "CLUSTERBOOK_TEST_SUMMARY "


class NodeShell:
    """Run commands on one lab node with the OpenSSH client and strict host keys."""

    def __init__(self, inventory: Inventory, name: str) -> None:
        host = inventory.hosts[name]
        self.name = name
        self.address = host.address
        self.user = host.user
        self.key = host.private_key_file
        self.known_hosts = host.known_hosts_files[0]

    def run(self, command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                f"{self.user}@{self.address}",
                command,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def check(self, command: str, stdin: str | None = None) -> str:
        """Run `command`; fail showing the node, command, exit code and output."""
        proc = self.run(command, stdin=stdin)
        assert proc.returncode == 0, (
            f"{self.name}: `{command}` exited {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return proc.stdout


@pytest.fixture(scope="session")
def nodes(lab_inventory: Inventory) -> dict[str, NodeShell]:
    return {name: NodeShell(lab_inventory, name) for name in lab_inventory.hosts}


@pytest.fixture(scope="session")
def stats_canary() -> str:
    """A random HAProxy statistics password that must never show up in any output."""
    return "cb-canary-" + secrets.token_hex(12)


def run_chapter(
    name: str,
    output: Path,
    *,
    parameters: dict[str, str] | None = None,
    yaml_parameters: str | None = None,
    env: dict[str, str] | None = None,
    probe_summary: bool = False,
    expect_success: bool = True,
) -> tuple[subprocess.CompletedProcess[str], nbformat.NotebookNode]:
    """Execute notebooks/NAME.ipynb with the papermill command from the repository root.

    With `probe_summary`, a copy of the chapter gets one extra cell that prints the
    counts of `cluster.summary()` as JSON, read back by `summary_of`.
    """
    source = REPO / "notebooks" / f"{name}.ipynb"
    if probe_summary:
        notebook = nbformat.read(source, as_version=4)
        notebook.cells.append(
            nbformat.v4.new_code_cell(
                "import json as _json\n"
                "_summary = cluster.summary()\n"
                f"print({SUMMARY_MARKER!r} + _json.dumps("
                '{"changed": _summary.changed, "would_change": _summary.would_change}))'
            )
        )
        source = output.with_name(f"{name}.probe.ipynb")
        nbformat.write(notebook, source)
    command = [str(PAPERMILL), str(source), str(output), "-k", "python3", "--no-progress-bar"]
    for key, value in (parameters or {}).items():
        command += ["-p", key, value]
    if yaml_parameters:
        command += ["-y", yaml_parameters]
    proc = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=CHAPTER_TIMEOUT,
    )
    if expect_success:
        assert proc.returncode == 0, (
            f"papermill {name} {parameters or ''} exited {proc.returncode}\n{proc.stderr[-4000:]}"
        )
    return proc, nbformat.read(output, as_version=4)


def summary_of(notebook: nbformat.NotebookNode) -> dict[str, int]:
    """The JSON the probe cell printed."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            if output.get("output_type") == "stream" and SUMMARY_MARKER in text:
                line = text.split(SUMMARY_MARKER, 1)[1].splitlines()[0]
                return json.loads(line)
    raise AssertionError("the executed notebook has no summary probe output")


def fetch_backend_states(address: str, user: str, password: str) -> dict[str, str]:
    """Server name -> status of the k8s-api-server backend, from HAProxy's CSV statistics."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{address}:8404/stats;csv", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    header, *rows = body.lstrip("# ").splitlines()
    columns = header.split(",")
    states = {}
    for row in rows:
        values = dict(zip(columns, row.split(","), strict=False))
        if values.get("pxname") == "k8s-api-server" and values.get("svname") not in (
            "FRONTEND",
            "BACKEND",
        ):
            states[values["svname"]] = values["status"]
    return states
