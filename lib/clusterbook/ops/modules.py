"""Kernel modules persisted in /etc/modules-load.d and loaded where the target owns its kernel."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from clusterbook.errors import OperationFailed
from clusterbook.ops.base import OpContext, ensure_content
from clusterbook.results import HostResult, Results

if TYPE_CHECKING:
    from clusterbook.cluster import HostGroup

_MODULE = re.compile(r"^[A-Za-z0-9_-]+$")


def modules_op(ctx: OpContext, names: list[str], file: str) -> HostResult:
    if not names:
        raise OperationFailed("no module names given", host=ctx.name)
    for name in names:
        if not _MODULE.match(name):
            raise OperationFailed(f"invalid kernel module name {name!r}", host=ctx.name)
    text = "# Managed by clusterbook.\n" + "".join(f"{n}\n" for n in names)
    persisted = ensure_content(ctx, file, text.encode(), mode=0o644)
    messages = [persisted.message] if persisted.status == "changed" else []
    # /sys/module/NAME exists for loaded and for built-in modules (with '-' spelled '_').
    listing = " ".join(shlex.quote(n) for n in names)
    state = ctx.run(
        f'for m in {listing}; do d=$(echo "$m" | tr - _); '
        '[ -d "/sys/module/$d" ] || echo "$m"; done'
    )
    not_loaded = state.stdout.split()
    notes = []
    if not_loaded and ctx.has("own_kernel"):
        if not ctx.check:
            ctx.run_checked(
                " && ".join(f"modprobe {shlex.quote(n)}" for n in not_loaded),
                f"modprobe {' '.join(not_loaded)}",
            )
        messages.append(f"load {' '.join(not_loaded)}")
    elif not_loaded:
        notes.append(
            f"not loaded: {' '.join(not_loaded)} (this target lacks capability own_kernel, "
            "so modules load on its next boot on real hardware only)"
        )
    status = "changed" if messages else "ok"
    return ctx.result(status, "; ".join(messages + notes), diff=persisted.diff)


class Modules:
    """`group.modules`: kernel modules loaded at boot."""

    def __init__(self, group: HostGroup) -> None:
        self.group = group

    def present(
        self, names: list[str], *, file: str = "/etc/modules-load.d/clusterbook.conf"
    ) -> Results:
        """Persist `names` in `file` (whole file managed); modprobe them with own_kernel."""
        return self.group.apply(f"modules {file}", modules_op, list(names), file)
