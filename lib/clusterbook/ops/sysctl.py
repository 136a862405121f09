"""Kernel parameters persisted in /etc/sysctl.d and applied live where the kernel allows."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from clusterbook.errors import OperationFailed
from clusterbook.ops.base import OpContext, ensure_content
from clusterbook.results import HostResult, Results

if TYPE_CHECKING:
    from clusterbook.cluster import HostGroup

_KEY = re.compile(r"^[a-zA-Z0-9_.\-/*]+$")


def sysctl_file_text(settings: dict[str, object]) -> str:
    lines = ["# Managed by clusterbook; local changes are overwritten."]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def sysctl_op(ctx: OpContext, settings: dict[str, object], file: str) -> HostResult:
    if not settings:
        raise OperationFailed("no sysctl settings given", host=ctx.name)
    for key in settings:
        if not _KEY.match(key):
            raise OperationFailed(f"invalid sysctl key {key!r}", host=ctx.name)
    persisted = ensure_content(ctx, file, sysctl_file_text(settings).encode(), mode=0o644)
    messages = [persisted.message] if persisted.status == "changed" else []
    # Read every live value in one round trip, then set those that differ in a second one.
    keys = list(settings)
    read = ctx.run(
        "for k in " + " ".join(shlex.quote(k) for k in keys) + "; do "
        'v=$(sysctl -n "$k" 2>/dev/null) || v="<unavailable>"; '
        'printf "%s\\t%s\\n" "$k" "$(echo $v)"; done'
    )
    live = dict(line.split("\t", 1) for line in read.stdout.splitlines() if "\t" in line)
    differing = {}
    unavailable = []
    for key, value in settings.items():
        current = live.get(key, "<unavailable>")
        wanted = " ".join(str(value).split())
        if current == "<unavailable>":
            unavailable.append(key)
        elif current != wanted:
            differing[key] = wanted
    not_applied = []
    if differing and not ctx.check:
        commands = " ; ".join(
            f"sysctl -q -w {shlex.quote(f'{k}={v}')} 2>&1 || echo FAILED:{shlex.quote(k)}"
            for k, v in differing.items()
        )
        result = ctx.run(commands)
        not_applied = [
            line[7:] for line in result.stdout.splitlines() if line.startswith("FAILED:")
        ]
    applied = [k for k in differing if k not in not_applied]
    if applied:
        messages.append(f"apply {', '.join(f'{k}={differing[k]}' for k in applied)} live")
    notes = []
    if unavailable:
        notes.append(
            f"not in this kernel (needs a module, e.g. br_netfilter): {', '.join(unavailable)}"
        )
    if not_applied:
        notes.append(f"could not apply live on this target: {', '.join(not_applied)}")
    message = "; ".join(messages + notes)
    status = "changed" if messages else "ok"
    return ctx.result(status, message, diff=persisted.diff)


class Sysctl:
    """`group.sysctl`: persisted kernel parameters."""

    def __init__(self, group: HostGroup) -> None:
        self.group = group

    def present(
        self, settings: dict[str, object], *, file: str = "/etc/sysctl.d/99-clusterbook.conf"
    ) -> Results:
        """Write `settings` to `file` (whole file managed) and apply differing values live.

        A value the kernel does not offer or does not let this target set (a container
        sharing the host kernel) is persisted and named in the result, not an error.
        """
        return self.group.apply(f"sysctl {file}", sysctl_op, dict(settings), file)
