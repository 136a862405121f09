"""systemd units: running/enabled, stopped/disabled, restarted, reloaded.

Each operation is one shell script (one SSH round trip) that reads the unit's state,
runs `systemctl daemon-reload` when systemd reports the unit file changed on disk, and
then starts, enables, stops or disables only what differs.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from clusterbook.errors import OperationFailed
from clusterbook.ops.base import OpContext
from clusterbook.results import HostResult, Results

if TYPE_CHECKING:
    from clusterbook.cluster import HostGroup

_STATE_SCRIPT = """
u={unit}
load=$(systemctl show -p LoadState --value "$u" 2>/dev/null)
reload=$(systemctl show -p NeedDaemonReload --value "$u" 2>/dev/null)
active=$(systemctl is-active "$u" 2>/dev/null)
enabled=$(systemctl is-enabled "$u" 2>/dev/null)
echo "load=$load reload=$reload active=$active enabled=$enabled"
"""


_VERBS = {"started": "start", "stopped": "stop", "restarted": "restart", "reloaded": "reload"}


def _parse_state(text: str) -> dict[str, str]:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return dict(part.split("=", 1) for part in first.split() if "=" in part)


def _unit(name: str) -> str:
    return name if "." in name else f"{name}.service"


def service_op(ctx: OpContext, name: str, active: str, enabled: bool | None) -> HostResult:
    """Bring a unit to `active` ("started", "stopped", "restarted", "reloaded") and `enabled`."""
    unit = _unit(name)
    quoted = shlex.quote(unit)
    check = "1" if ctx.check else ""
    want_enabled = "" if enabled is None else ("yes" if enabled else "no")
    script = (
        _STATE_SCRIPT.format(unit=quoted)
        + f"""
check={check!r}
want_active={active}
want_enabled={want_enabled!r}
[ "$load" = not-found ] && {{ echo "unit not found" >&2; exit 94; }}
act() {{ echo "do $1"; [ -n "$check" ] || systemctl "$@" "$u" || exit 1; }}
if [ "$reload" = yes ]; then
  echo "do daemon-reload"; [ -n "$check" ] || systemctl daemon-reload || exit 1
fi
case "$want_enabled" in
  yes) case "$enabled" in
         enabled|enabled-runtime|static|alias|indirect|generated) ;;
         *) act enable --quiet ;;
       esac ;;
  no) case "$enabled" in enabled|enabled-runtime) act disable --quiet ;; esac ;;
esac
case "$want_active" in
  started) [ "$active" = active ] || act start ;;
  stopped) case "$active" in active|activating|reloading) act stop ;; esac ;;
  restarted) act restart ;;
  reloaded) if [ "$active" = active ]; then act reload; else act start; fi ;;
esac
exit 0
"""
    )
    result = ctx.run(script)
    if result.exit_code == 94 and ctx.check:
        # An earlier operation of the same check-mode run would have installed the unit.
        return ctx.result("changed", f"{_VERBS[active]} {unit} (not installed yet)")
    if result.exit_code == 94:
        raise OperationFailed(
            f"unit {unit} not found",
            host=ctx.name,
            hint="install the package that ships it, or write the unit file first",
        )
    done = [line[3:] for line in result.stdout.splitlines() if line.startswith("do ")]
    if result.exit_code != 0:
        journal = ctx.run(f"journalctl -u {quoted} -n 15 --no-pager 2>&1 || true")
        raise OperationFailed(
            f"{' and '.join(done[-1:]) or 'systemctl'} of {unit} failed: "
            f"{result.stderr.strip()}\n{journal.stdout.strip()}",
            host=ctx.name,
            hint=f"see `journalctl -u {unit}` on the host",
        )
    if not done:
        return ctx.result("ok", _parse_state(result.stdout).get("active", ""))
    if "start" in done and ctx.cluster is not None and not ctx.check:
        ctx.cluster._note_started(ctx.name, name)
    return ctx.result("changed", "; ".join(f"{action} {unit}" for action in done))


class Systemd:
    """`group.systemd`: start, stop, enable, disable, restart and reload units."""

    def __init__(self, group: HostGroup) -> None:
        self.group = group

    def running(self, name: str, *, enabled: bool | None = True) -> Results:
        """Start `name` (and enable it unless `enabled` is False/None) where it is not."""
        return self.group.apply(f"running {name}", service_op, name, "started", enabled)

    def stopped(self, name: str, *, enabled: bool | None = False) -> Results:
        """Stop `name` (and disable it unless `enabled` is True/None) where it runs."""
        return self.group.apply(f"stopped {name}", service_op, name, "stopped", enabled)

    def restarted(self, name: str) -> Results:
        """Restart `name` now (always a change)."""
        return self.group.apply(f"restart {name}", service_op, name, "restarted", None)

    def reloaded(self, name: str) -> Results:
        """Reload `name` when active, else start it (always a change)."""
        return self.group.apply(f"reload {name}", service_op, name, "reloaded", None)

    def daemon_reload(self) -> Results:
        """Run `systemctl daemon-reload` (skipped in check mode)."""
        return self.group.run("systemctl daemon-reload", changes=True, become=True)
