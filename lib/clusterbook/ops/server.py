"""Host-wide settings: hostname, timezone, /etc/hosts entries, users, groups, swap."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from clusterbook.errors import OperationFailed
from clusterbook.ops.base import OpContext, ensure_content, read_file
from clusterbook.ops.files import replace_block
from clusterbook.results import HostResult, Results

if TYPE_CHECKING:
    from clusterbook.cluster import HostGroup

_HOSTNAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")
_NAME = re.compile(r"^[a-z_][a-z0-9_-]*\$?$")
HOSTS_MARKER = "# {mark} clusterbook hosts entries"


def hostname_op(ctx: OpContext, hostname: str | None) -> HostResult:
    name = hostname or ctx.host.name
    if not _HOSTNAME.match(name):
        raise OperationFailed(f"invalid hostname {name!r}", host=ctx.name)
    quoted = shlex.quote(name)
    check = "1" if ctx.check else ""
    script = f"""
want={quoted}
file=$(cat /etc/hostname 2>/dev/null | tr -d '[:space:]')
live=$(hostname)
[ "$file" = "$want" ] || echo "do write /etc/hostname ($file -> $want)"
[ "$live" = "$want" ] || echo "do set the running hostname ($live -> $want)"
[ -n "{check}" ] && exit 0
[ "$file" = "$want" ] || printf '%s\\n' "$want" > /etc/hostname || exit 1
[ "$live" = "$want" ] || hostname "$want" || exit 1
"""
    result = ctx.run(script)
    done = [line[3:] for line in result.stdout.splitlines() if line.startswith("do ")]
    if result.exit_code != 0:
        raise OperationFailed(
            f"setting hostname {name} failed: {result.stderr.strip()}", host=ctx.name
        )
    if not done:
        return ctx.result("ok", name)
    return ctx.result("changed", "; ".join(done))


def timezone_op(ctx: OpContext, zone: str) -> HostResult:
    if not re.fullmatch(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*", zone):
        raise OperationFailed(f"invalid timezone {zone!r}", host=ctx.name)
    quoted = shlex.quote(zone)
    check = "1" if ctx.check else ""
    script = f"""
z={quoted}
[ -f "/usr/share/zoneinfo/$z" ] || {{ echo "unknown timezone $z" >&2; exit 96; }}
link=$(readlink /etc/localtime)
file=$(cat /etc/timezone 2>/dev/null)
[ "$link" = "/usr/share/zoneinfo/$z" ] || echo "do link /etc/localtime to $z"
[ "$file" = "$z" ] || echo "do write /etc/timezone"
[ -n "{check}" ] && exit 0
[ "$link" = "/usr/share/zoneinfo/$z" ] || ln -sfn "/usr/share/zoneinfo/$z" /etc/localtime || exit 1
[ "$file" = "$z" ] || printf '%s\\n' "$z" > /etc/timezone || exit 1
"""
    result = ctx.run(script)
    if result.exit_code == 96:
        raise OperationFailed(
            f"timezone {zone!r} not found in /usr/share/zoneinfo",
            host=ctx.name,
            hint="use a name such as 'America/New_York' (install tzdata if the folder is empty)",
        )
    if result.exit_code != 0:
        raise OperationFailed(f"setting timezone failed: {result.stderr.strip()}", host=ctx.name)
    done = [line[3:] for line in result.stdout.splitlines() if line.startswith("do ")]
    return ctx.result("changed", "; ".join(done)) if done else ctx.result("ok", zone)


def hosts_block(entries: dict[str, list[str] | str]) -> str:
    lines = []
    for address, names in entries.items():
        listed = names.split() if isinstance(names, str) else list(names)
        lines.append(f"{address} {' '.join(listed)}")
    return "\n".join(lines)


def hosts_entries_op(ctx: OpContext, entries: dict[str, list[str] | str], path: str) -> HostResult:
    current = read_file(ctx, path)
    old = (current.content or b"").decode("utf-8", "replace")
    new = replace_block(old, hosts_block(entries), HOSTS_MARKER)
    return ensure_content(
        ctx,
        path,
        new.encode(),
        state=current,
        owner=None if current.exists else "root",
        group=None if current.exists else "root",
        mode=None if current.exists else 0o644,
    )


def group_op(ctx: OpContext, name: str, gid: int | None, system: bool) -> HostResult:
    if not _NAME.match(name):
        raise OperationFailed(f"invalid group name {name!r}", host=ctx.name)
    result = ctx.run(f"getent group {shlex.quote(name)}")
    if result.exit_code == 0:
        current_gid = int(result.stdout.split(":")[2])
        if gid is None or gid == current_gid:
            return ctx.result("ok")
        if not ctx.check:
            ctx.run_checked(f"groupmod -g {gid} {shlex.quote(name)}", f"groupmod {name}")
        return ctx.result("changed", f"change gid of group {name} {current_gid} -> {gid}")
    if not ctx.check:
        options = (f"-g {gid} " if gid is not None else "") + ("--system " if system else "")
        ctx.run_checked(f"groupadd {options}{shlex.quote(name)}", f"groupadd {name}")
    return ctx.result("changed", f"create group {name}")


def user_op(
    ctx: OpContext,
    name: str,
    groups: list[str],
    shell: str,
    authorized_keys: list[str] | None,
    system: bool,
    home: str | None,
) -> HostResult:
    if not _NAME.match(name):
        raise OperationFailed(f"invalid user name {name!r}", host=ctx.name)
    for group in groups:
        if not _NAME.match(group):
            raise OperationFailed(f"invalid group name {group!r}", host=ctx.name)
    quoted = shlex.quote(name)
    state = ctx.run(f"getent passwd {quoted} && id -nG {quoted}")
    messages: list[str] = []
    if state.exit_code != 0:
        messages.append(f"create user {name}")
        if not ctx.check:
            options = ["-m", "-s", shlex.quote(shell)]
            if groups:
                options += ["-G", shlex.quote(",".join(groups))]
            if system:
                options.append("--system")
            if home:
                options += ["-d", shlex.quote(home)]
            ctx.run_checked(f"useradd {' '.join(options)} {quoted}", f"useradd {name}")
        user_home = home or f"/home/{name}"
    else:
        passwd, _, group_line = state.stdout.partition("\n")
        fields = passwd.split(":")
        user_home = fields[5]
        if fields[6] != shell:
            messages.append(f"change shell of {name} to {shell}")
            if not ctx.check:
                ctx.run_checked(f"usermod -s {shlex.quote(shell)} {quoted}", f"usermod {name}")
        missing = [g for g in groups if g not in group_line.split()]
        if missing:
            messages.append(f"add {name} to {', '.join(missing)}")
            if not ctx.check:
                ctx.run_checked(
                    f"usermod -a -G {shlex.quote(','.join(missing))} {quoted}", f"usermod {name}"
                )
    diff = ""
    if authorized_keys is not None:
        ssh_dir = f"{user_home}/.ssh"
        keys_text = "".join(f"{k.strip()}\n" for k in authorized_keys)
        if ctx.check and state.exit_code != 0:
            messages.append(f"write {ssh_dir}/authorized_keys")
        else:
            if not ctx.check:
                ctx.run_checked(
                    f"install -d -m 0700 -o {quoted} -g $(id -gn {quoted}) {shlex.quote(ssh_dir)}",
                    f"creating {ssh_dir}",
                )
            group_name = ctx.run(f"id -gn {quoted}").stdout.strip() or name
            keys = ensure_content(
                ctx,
                f"{ssh_dir}/authorized_keys",
                keys_text.encode(),
                owner=name,
                group=group_name,
                mode=0o600,
            )
            if keys.status == "changed":
                messages.append(f"write {ssh_dir}/authorized_keys")
                diff = keys.diff
    if not messages:
        return ctx.result("ok")
    return ctx.result("changed", "; ".join(messages), diff=diff)


def swap_off_op(ctx: OpContext) -> HostResult:
    messages: list[str] = []
    notes: list[str] = []
    fstab = read_file(ctx, "/etc/fstab")
    diff = ""
    if fstab.exists and fstab.content is not None:
        old = fstab.content.decode("utf-8", "replace")
        new_lines = []
        for line in old.splitlines():
            fields = line.split()
            if len(fields) >= 3 and not line.lstrip().startswith("#") and fields[2] == "swap":
                new_lines.append(f"# {line}  # swap turned off by clusterbook")
            else:
                new_lines.append(line)
        new = "\n".join(new_lines) + ("\n" if new_lines else "")
        if new != old:
            result = ensure_content(
                ctx, "/etc/fstab", new.encode(), state=fstab, owner=None, group=None, mode=None
            )
            messages.append("comment out swap in /etc/fstab")
            diff = result.diff
    state = ctx.run(
        "systemctl is-enabled dphys-swapfile 2>/dev/null; echo; tail -n +2 /proc/swaps | wc -l"
    )
    parts = state.stdout.split()
    dphys_enabled = bool(parts) and parts[0] == "enabled"
    active_swaps = int(parts[-1]) if parts and parts[-1].isdigit() else 0
    if dphys_enabled:
        messages.append("disable dphys-swapfile")
        if not ctx.check:
            ctx.run_checked(
                "dphys-swapfile swapoff 2>/dev/null; systemctl disable --now dphys-swapfile",
                "disabling dphys-swapfile",
            )
    if active_swaps:
        if ctx.has("own_kernel"):
            messages.append("turn off active swap (swapoff -a)")
            if not ctx.check:
                ctx.run_checked("swapoff -a", "swapoff -a")
        else:
            notes.append(
                f"{active_swaps} swap areas stay active: this target lacks own_kernel "
                "(its swap belongs to the machine it runs on)"
            )
    status = "changed" if messages else "ok"
    return ctx.result(status, "; ".join(messages + notes), diff=diff)


class Server:
    """`group.server`: hostname, timezone, /etc/hosts, users and groups, swap."""

    def __init__(self, group: HostGroup) -> None:
        self._hosts = group

    def hostname(self, hostname: str | None = None) -> Results:
        """Set /etc/hostname and the running hostname (default: the inventory name)."""
        return self._hosts.apply("hostname", hostname_op, hostname)

    def timezone(self, zone: str) -> Results:
        """Point /etc/localtime at `zone` and write /etc/timezone."""
        return self._hosts.apply(f"timezone {zone}", timezone_op, zone)

    def hosts_entries(
        self, entries: dict[str, list[str] | str], *, path: str = "/etc/hosts"
    ) -> Results:
        """Keep address -> names lines in a managed block of /etc/hosts."""
        return self._hosts.apply("hosts entries", hosts_entries_op, dict(entries), path)

    def group(self, name: str, *, gid: int | None = None, system: bool = False) -> Results:
        """Create a group (or change its gid)."""
        return self._hosts.apply(f"group {name}", group_op, name, gid, system)

    def user(
        self,
        name: str,
        *,
        groups: list[str] | None = None,
        shell: str = "/bin/bash",
        authorized_keys: list[str] | None = None,
        system: bool = False,
        home: str | None = None,
    ) -> Results:
        """Create a user or fix its shell and supplementary groups (added, never removed).

        `authorized_keys`, when given, becomes the exact content of ~/.ssh/authorized_keys.
        """
        return self._hosts.apply(
            f"user {name}", user_op, name, list(groups or []), shell, authorized_keys, system, home
        )

    def swap_off(self) -> Results:
        """Turn swap off for good: fstab entries commented out, dphys-swapfile disabled,
        and `swapoff -a` where the target has its own kernel."""
        return self._hosts.apply("swap off", swap_off_op)
