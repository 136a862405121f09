"""Shared machinery of the idempotent operations: the per-host context, file state and diffs.

An operation is a function `op(ctx, ...) -> HostResult` for one host. It inspects first,
changes only what differs and, when `ctx.check` is true, changes nothing and reports what
it would change. Reading a file is one SSH round trip and writing it is one more, so an
operation that finds nothing to change costs a single round trip.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterbook.errors import OperationFailed
from clusterbook.inventory import Host
from clusterbook.results import HostResult
from clusterbook.secrets import mask
from clusterbook.ssh import CommandResult, Connection

if TYPE_CHECKING:
    from clusterbook.cluster import Cluster

#: files larger than this are compared by hash only, without a diff
DIFF_LIMIT = 512 * 1024


@dataclass
class OpContext:
    """Per-host context of an operation: host, connection, check mode and the cluster."""

    host: Host
    connection: Connection
    check: bool
    cluster: Cluster | None = None
    #: why this host runs in check mode although the cluster does not (missing capabilities)
    check_reason: str = ""
    become: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.host.name

    def run(
        self,
        command: str,
        *,
        stdin: str | bytes | None = None,
        timeout: float | None = 600.0,
        become: bool | None = None,
    ) -> CommandResult:
        return self.connection.run(
            command, become=self.become if become is None else become, stdin=stdin, timeout=timeout
        )

    def run_checked(self, command: str, what: str, **kwargs: Any) -> CommandResult:
        """Run a command and raise `OperationFailed` (with its output) when it exits non-zero."""
        result = self.run(command, **kwargs)
        if result.exit_code != 0:
            raise OperationFailed(
                f"{what} failed (exit code {result.exit_code}): "
                f"{(result.stderr.strip() or result.stdout.strip())[-2000:]}",
                host=self.name,
            )
        return result

    def has(self, capability: str) -> bool:
        return capability in self.host.capabilities

    def notify(self, service: str | list[str] | None) -> None:
        """Queue a restart of `service` on this host for the end of the step."""
        if not service or self.cluster is None:
            return
        for name in [service] if isinstance(service, str) else service:
            if self.check:
                self.notes.append(f"would restart {name}")
            else:
                self.cluster._queue_restart(self.name, name)

    def result(self, status: str, message: str = "", **kwargs: Any) -> HostResult:
        """Build this host's result from a present-tense message ("create /etc/x; start y").

        In check mode the message marks it as a prediction ("would create ..."); otherwise
        each part is put in the past tense ("created ...").
        """
        if status == "changed" and message and not self.check:
            message = "; ".join(past_tense(part) for part in message.split("; "))
        if self.check and status == "changed" and message:
            message = f"(check mode) would {message}"
            if self.check_reason:
                message += f" [{self.check_reason}]"
        elif self.check and self.check_reason and status in ("ok", "skipped"):
            message = f"{message} [{self.check_reason}]".strip()
        if self.notes:
            message = "; ".join([message, *self.notes]) if message else "; ".join(self.notes)
        check_mode = self.check and status == "changed"
        return HostResult(
            self.name, status=status, message=message, check_mode=check_mode, **kwargs
        )


_PAST = {
    "add": "added",
    "append": "appended",
    "apply": "applied",
    "change": "changed",
    "create": "created",
    "delete": "deleted",
    "disable": "disabled",
    "enable": "enabled",
    "hold": "held",
    "install": "installed",
    "load": "loaded",
    "persist": "persisted",
    "reload": "reloaded",
    "remove": "removed",
    "replace": "replaced",
    "restart": "restarted",
    "run": "ran",
    "set": "set",
    "start": "started",
    "stop": "stopped",
    "turn": "turned",
    "unhold": "unheld",
    "update": "updated",
    "write": "wrote",
    "rename": "renamed",
}


def past_tense(message: str) -> str:
    """Put the leading verb of an action message in the past tense."""
    verb, sep, rest = message.partition(" ")
    return _PAST.get(verb, verb) + sep + rest


# --- File state --------------------------------------------------------------------------------


@dataclass
class FileState:
    """A remote path as found: kind, owner, group, mode and (for small files) content."""

    path: str
    kind: str  # "missing", "file", "directory", "other"
    owner: str = ""
    group: str = ""
    mode: int = 0
    size: int = 0
    sha256: str = ""
    content: bytes | None = None

    @property
    def exists(self) -> bool:
        return self.kind != "missing"


def read_file(ctx: OpContext, path: str) -> FileState:
    """Stat a remote path and fetch its content when it is a file up to 512 KiB."""
    quoted = shlex.quote(path)
    script = f"""
p={quoted}
if [ -L "$p" ] && [ ! -e "$p" ]; then echo "other"; exit 0; fi
if [ -d "$p" ]; then printf 'directory %s\\n' "$(stat -L -c '%U %G %a %s' "$p")"; exit 0; fi
if [ ! -e "$p" ]; then echo missing; exit 0; fi
if [ ! -f "$p" ]; then echo other; exit 0; fi
printf 'file %s %s\\n' "$(stat -L -c '%U %G %a %s' "$p")" "$(sha256sum < "$p" | cut -d' ' -f1)"
if [ "$(stat -L -c %s "$p")" -le {DIFF_LIMIT} ]; then base64 -w0 < "$p"; fi
"""
    result = ctx.run_checked(script, f"reading {path}")
    header, _, body = result.stdout.partition("\n")
    fields = header.split()
    if not fields:
        raise OperationFailed(f"reading {path} returned no state", host=ctx.name)
    kind = fields[0]
    if kind in ("missing", "other"):
        return FileState(path, kind)
    state = FileState(
        path, kind, owner=fields[1], group=fields[2], mode=int(fields[3], 8), size=int(fields[4])
    )
    if kind == "file":
        state.sha256 = fields[5]
        if body.strip() or state.size == 0:
            state.content = base64.b64decode(body.strip())
    return state


def parse_mode(mode: str | int | None) -> int | None:
    """Turn "0644", "644" or 0o644 into an int; None stays None."""
    if mode is None:
        return None
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise ValueError(f"invalid file mode {mode!r}, expected octal such as '0644'") from None


def attribute_changes(
    state: FileState, owner: str | None, group: str | None, mode: int | None
) -> list[str]:
    """Describe owner/group/mode differences between `state` and what is expected."""
    changes = []
    if owner is not None and state.owner != owner:
        changes.append(f"owner {state.owner} -> {owner}")
    if group is not None and state.group != group:
        changes.append(f"group {state.group} -> {group}")
    if mode is not None and state.mode != mode:
        changes.append(f"mode {state.mode:04o} -> {mode:04o}")
    return changes


def make_diff(
    path: str,
    old: bytes | None,
    new: bytes | None,
    redact: Callable[[str], str] | None = None,
) -> str:
    """Build a unified diff between two versions of a file (masked, text files only).

    `redact` rewrites both versions before they are compared. Masking alone only hides
    secrets known to this process; `redact` also hides a secret the old file held.
    """
    if old is not None and new is not None and old == new:
        return ""
    try:
        old_text = "" if old is None else old.decode("utf-8")
        new_text = "" if new is None else new.decode("utf-8")
    except UnicodeDecodeError:
        return f"Binary file {path} differs\n"
    if redact is not None:
        old_text, new_text = redact(old_text), redact(new_text)
        if old is not None and old_text == new_text:
            return (
                f"--- {path} (before)\n+++ {path} (after)\n"
                "(only lines holding a secret changed; their values are not shown)\n"
            )
    diff = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"{path} (before)" if old is not None else "/dev/null",
        tofile=f"{path} (after)" if new is not None else "/dev/null",
    )
    lines = []
    for line in diff:
        lines.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return mask("".join(lines)) or ""


def write_file(
    ctx: OpContext,
    path: str,
    content: bytes,
    *,
    owner: str | None,
    group: str | None,
    mode: int | None,
    validate: str | None = None,
    expected_sha256: str | None = None,
) -> None:
    """Write `content` atomically: a temp file in the same folder, validate, chown, rename.

    `expected_sha256` guards against a concurrent change: the write fails when the file no
    longer has the content that was read (use "" for "did not exist").
    """
    quoted = shlex.quote(path)
    guard = ""
    if expected_sha256 is not None:
        guard = f"""
now=""
[ -f "$p" ] && now=$(sha256sum < "$p" | cut -d' ' -f1)
if [ "$now" != {shlex.quote(expected_sha256)} ]; then
  echo "changed while being edited" >&2; exit 93
fi
"""
    check = ""
    if validate:
        if "%s" not in validate:
            raise OperationFailed(
                f"validate command {validate!r} for {path} has no %s for the temp file",
                host=ctx.name,
            )
        command = validate.replace("%s", '"$tmp"')
        check = f"""
if ! out=$({command} 2>&1); then
  printf 'validation failed: %s\\n' "$out" >&2; exit 92
fi
"""
    chown = ""
    if owner is not None or group is not None:
        spec = (
            f"{owner or ''}:{group or ''}".rstrip(":")
            if group is None
            else f"{owner or ''}:{group}"
        )
        chown = f'chown {shlex.quote(spec)} "$tmp"'
    chmod = f'chmod {mode:o} "$tmp"' if mode is not None else ""
    keep_attrs = ""
    if mode is None or owner is None:
        # Keep the existing file's mode/owner for what the caller did not set.
        keep_attrs = '[ -f "$p" ] && chmod --reference="$p" "$tmp" && chown --reference="$p" "$tmp"'
    script = f"""
set -e
p={quoted}
{guard}
tmp=$(mktemp "$(dirname "$p")/.$(basename "$p").clusterbook.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
{keep_attrs}
{chown}
{chmod}
{check}
mv -f "$tmp" "$p"
trap - EXIT
"""
    ctx.run_checked(script, f"writing {path}", stdin=content)


def set_attributes(
    ctx: OpContext, path: str, owner: str | None, group: str | None, mode: int | None
) -> None:
    quoted = shlex.quote(path)
    commands = []
    if owner is not None or group is not None:
        spec = f"{owner or ''}:{group or ''}" if group is not None else f"{owner}"
        commands.append(f"chown {shlex.quote(spec)} {quoted}")
    if mode is not None:
        commands.append(f"chmod {mode:o} {quoted}")
    if commands:
        ctx.run_checked(" && ".join(commands), f"setting owner/mode of {path}")


def ensure_content(
    ctx: OpContext,
    path: str,
    content: bytes,
    *,
    owner: str | None = "root",
    group: str | None = "root",
    mode: int | None = 0o644,
    validate: str | None = None,
    notify: str | list[str] | None = None,
    state: FileState | None = None,
    what: str | None = None,
    redact: Callable[[str], str] | None = None,
) -> HostResult:
    """Make `path` a file with exactly `content` and the given attributes.

    `redact` rewrites the old and new text before the diff is built (see `make_diff`).
    """
    if state is None:
        state = read_file(ctx, path)
    if state.kind not in ("missing", "file"):
        raise OperationFailed(
            f"{path} is a {state.kind}, expected a regular file",
            host=ctx.name,
            hint="remove it first with file.absent",
        )
    new_sha = hashlib.sha256(content).hexdigest()
    content_changed = state.sha256 != new_sha
    attrs = attribute_changes(state, owner, group, mode) if state.exists else []
    if not content_changed and not attrs:
        return ctx.result("ok", what or "")
    if content_changed:
        if state.exists and state.content is None:
            diff = f"--- {path}\n+++ {path}\n(file larger than {DIFF_LIMIT} bytes: no diff)\n"
        else:
            diff = make_diff(path, state.content if state.exists else None, content, redact)
        action = f"create {path}" if not state.exists else f"update {path}"
    else:
        diff = ""
        action = f"change {path}: {', '.join(attrs)}"
    if content_changed and attrs:
        action += f" ({', '.join(attrs)})"
    if not ctx.check:
        if content_changed:
            write_file(
                ctx,
                path,
                content,
                owner=owner,
                group=group,
                mode=mode,
                validate=validate,
                expected_sha256=state.sha256 if state.exists else "",
            )
        else:
            set_attributes(ctx, path, owner, group, mode)
    ctx.notify(notify)
    return ctx.result("changed", action, diff=diff)
