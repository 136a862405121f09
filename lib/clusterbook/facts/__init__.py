"""Facts about hosts, gathered on demand in one SSH round trip and cached per `Cluster`.

`group.facts.os_release` (and the other properties) returns a `HostValues` mapping host
name to value, which renders as a table. The basic facts come from one shell script per
host; `cluster.refresh_facts()` clears the cache.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from clusterbook.errors import OperationFailed
from clusterbook.ops.base import OpContext
from clusterbook.results import HostResult, HostValues

if TYPE_CHECKING:
    from clusterbook.cluster import HostGroup

_SECTION = "=====clusterbook:"
BASIC_SCRIPT = f"""
echo '{_SECTION}os_release'; cat /etc/os-release 2>/dev/null
echo '{_SECTION}architecture'; uname -m
echo '{_SECTION}kernel'; uname -r
echo '{_SECTION}cpus'; nproc
echo '{_SECTION}meminfo'; grep -E '^(MemTotal|SwapTotal):' /proc/meminfo
echo '{_SECTION}addresses'; ip -j addr show 2>/dev/null || echo '[]'
echo '{_SECTION}disks'; lsblk -J -b -o NAME,SIZE,TYPE,MOUNTPOINT,MODEL 2>/dev/null || echo '{{}}'
echo '{_SECTION}mounts'; findmnt -J -l -o TARGET,SOURCE,FSTYPE,OPTIONS 2>/dev/null || echo '{{}}'
echo '{_SECTION}hostname'; hostname
echo '{_SECTION}virtualization'; systemd-detect-virt 2>/dev/null || true
"""


def parse_os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            try:
                values[key.strip()] = shlex.split(value)[0] if value.strip() else ""
            except ValueError:
                values[key.strip()] = value.strip().strip('"')
    return values


def parse_basic(stdout: str) -> dict[str, Any]:
    """Turn the basic facts script's output into a dict."""
    sections: dict[str, str] = {}
    current = None
    for line in stdout.splitlines(keepends=True):
        if line.startswith(_SECTION):
            current = line[len(_SECTION) :].strip()
            sections[current] = ""
        elif current:
            sections[current] += line
    facts: dict[str, Any] = {}
    facts["os_release"] = parse_os_release(sections.get("os_release", ""))
    facts["architecture"] = sections.get("architecture", "").strip()
    facts["kernel"] = sections.get("kernel", "").strip()
    cpus = sections.get("cpus", "").strip()
    facts["cpus"] = int(cpus) if cpus.isdigit() else None
    meminfo = {}
    for line in sections.get("meminfo", "").splitlines():
        key, _, value = line.partition(":")
        number = value.split()[0] if value.split() else "0"
        meminfo[key] = int(number) // 1024 if number.isdigit() else None
    facts["memory_mb"] = meminfo.get("MemTotal")
    facts["swap_mb"] = meminfo.get("SwapTotal")
    facts["addresses"] = _addresses(sections.get("addresses", "[]"))
    facts["disks"] = _json(sections.get("disks", "{}")).get("blockdevices", [])
    facts["mounts"] = _json(sections.get("mounts", "{}")).get("filesystems", [])
    facts["hostname"] = sections.get("hostname", "").strip()
    facts["virtualization"] = sections.get("virtualization", "").strip() or "none"
    return facts


def _json(text: str) -> Any:
    try:
        return json.loads(text) or {}
    except json.JSONDecodeError:
        return {}


def _addresses(text: str) -> dict[str, list[str]]:
    """Interface -> addresses (with prefix length), loopback left out."""
    result: dict[str, list[str]] = {}
    data = _json(text)
    if not isinstance(data, list):
        return result
    for interface in data:
        name = interface.get("ifname", "")
        if name == "lo":
            continue
        addresses = [
            f"{a['local']}/{a['prefixlen']}"
            for a in interface.get("addr_info", [])
            if "local" in a and a.get("scope") != "link"
        ]
        if addresses:
            result[name] = addresses
    return result


class Facts:
    """`group.facts`: host facts as host -> value tables."""

    def __init__(self, group: HostGroup) -> None:
        self.group = group

    def _basic(self) -> dict[str, dict[str, Any]]:
        cache = self.group.cluster._facts_cache
        missing = [h for h in self.group.hosts if ("basic", h.name) not in cache]
        if missing:
            subgroup = type(self.group)(self.group.cluster, missing, name="facts")

            def gather(ctx: OpContext) -> HostResult:
                result = ctx.run(BASIC_SCRIPT, become=False)
                if result.exit_code != 0:
                    raise OperationFailed(
                        f"gathering facts failed: {result.stderr.strip()}", host=ctx.name
                    )
                return HostResult(ctx.name, status="ok", data=parse_basic(result.stdout))

            results = _apply_without_recording(subgroup, "gather facts", gather)
            for name, result in results.items():
                cache[("basic", name)] = result.data
        return {h.name: cache[("basic", h.name)] for h in self.group.hosts}

    def _values(self, key: str, title: str) -> HostValues:
        return HostValues({n: f[key] for n, f in self._basic().items()}, title=title)

    @property
    def all(self) -> HostValues:
        """Every basic fact per host."""
        return HostValues(self._basic(), title="facts")

    @property
    def os_release(self) -> HostValues:
        return HostValues(
            {n: f["os_release"].get("PRETTY_NAME", "") for n, f in self._basic().items()},
            title="OS release",
        )

    @property
    def os_release_fields(self) -> HostValues:
        return self._values("os_release", "/etc/os-release")

    @property
    def architecture(self) -> HostValues:
        return self._values("architecture", "architecture")

    @property
    def kernel(self) -> HostValues:
        return self._values("kernel", "kernel")

    @property
    def cpus(self) -> HostValues:
        return self._values("cpus", "CPUs")

    @property
    def memory_mb(self) -> HostValues:
        return self._values("memory_mb", "memory (MiB)")

    @property
    def addresses(self) -> HostValues:
        return self._values("addresses", "addresses")

    @property
    def disks(self) -> HostValues:
        return self._values("disks", "disks")

    @property
    def mounts(self) -> HostValues:
        return self._values("mounts", "mounts")

    @property
    def virtualization(self) -> HostValues:
        return self._values("virtualization", "virtualization")

    def service(self, name: str) -> HostValues:
        """Host -> {"active": ..., "enabled": ...} for a systemd unit (not cached)."""
        unit = shlex.quote(name)

        def probe(ctx: OpContext) -> HostResult:
            result = ctx.run(
                f"systemctl is-active {unit} 2>/dev/null; echo; "
                f"systemctl is-enabled {unit} 2>/dev/null; echo",
                become=False,
            )
            parts = [p for p in result.stdout.split("\n") if p.strip()]
            active = parts[0] if parts else "unknown"
            enabled = parts[1] if len(parts) > 1 else "not-found"
            return HostResult(ctx.name, data={"active": active, "enabled": enabled})

        results = _apply_without_recording(self.group, f"service {name}", probe)
        return HostValues({n: r.data for n, r in results.items()}, title=f"service {name}")

    def package_versions(self, *names: str) -> HostValues:
        """Host -> {package: version} for installed packages (missing ones left out)."""
        words = " ".join(shlex.quote(n) for n in names)

        def probe(ctx: OpContext) -> HostResult:
            result = ctx.run(
                "dpkg-query -W -f='${Package} ${db:Status-Status} ${Version}\\n' "
                + words
                + " 2>/dev/null",
                become=False,
            )
            versions = {}
            for line in result.stdout.splitlines():
                fields = line.split()
                if len(fields) == 3 and fields[1] == "installed":
                    versions[fields[0]] = fields[2]
            return HostResult(ctx.name, data=versions)

        results = _apply_without_recording(self.group, "package versions", probe)
        return HostValues({n: r.data for n, r in results.items()}, title="package versions")


def _apply_without_recording(group: HostGroup, title: str, operation) -> Any:
    """Fan a read-only probe out; it runs in check mode too, and is not shown in step tables."""
    from clusterbook.fanout import fan_out
    from clusterbook.ssh import get_connection

    def task(host):
        ctx = OpContext(
            host=host, connection=get_connection(host), check=False, cluster=group.cluster
        )
        return operation(ctx)

    return fan_out(group.hosts, task, title=title, max_workers=group.cluster.max_workers)
