"""File operations: content, Jinja2 templates, absent, directory, line and block in a file."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from clusterbook.errors import OperationFailed
from clusterbook.ops.base import (
    OpContext,
    attribute_changes,
    ensure_content,
    make_diff,
    parse_mode,
    read_file,
    write_file,
)
from clusterbook.results import HostResult, Results
from clusterbook.secrets import Secret

if TYPE_CHECKING:
    from clusterbook.cluster import HostGroup


def _bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


#: stands for a secret when a template is rendered to find the lines that hold one
_SECRET_TOKEN = "\x00clusterbook-secret\x00"
#: how many words before a secret identify its line ("stats auth" in "stats auth u:pw")
_KEY_WORDS = 2


def _reveal_all(value: Any, placeholder: str | None = None) -> Any:
    """Replace every `Secret` in a (nested) value by its real value, for rendering.

    With `placeholder`, each secret becomes that text instead of its value.
    """
    if isinstance(value, Secret):
        return value.reveal() if placeholder is None else placeholder
    if isinstance(value, dict):
        return {k: _reveal_all(v, placeholder) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_reveal_all(v, placeholder) for v in value)
    return value


def _holds_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_secret(v) for v in value)
    return False


def secret_line_redactor(shape: str) -> Callable[[str], str] | None:
    """Build a function that hides the secret part of every line shaped like a secret line.

    `shape` is the template rendered with `_SECRET_TOKEN` for each secret. A secret line
    is known by the words before the secret ("stats auth"). In any text, a line starting
    with those words keeps them and loses the rest. This hides the value an old version
    of the file held, which masking cannot know. Returns None when no line holds a secret.
    """
    keys = []
    for line in shape.splitlines():
        if _SECRET_TOKEN not in line:
            continue
        words = line.split(_SECRET_TOKEN, 1)[0].split()
        if len(words) > _KEY_WORDS:
            words = words[:_KEY_WORDS]
        keys.append(tuple(words))
    if not keys:
        return None

    def redact(text: str) -> str:
        lines = []
        for line in text.splitlines(keepends=True):
            words = line.split()
            for key in keys:
                if tuple(words[: len(key)]) == key:
                    indent = line[: len(line) - len(line.lstrip())]
                    line = indent + " ".join([*key, "********"]) + "\n"
                    break
            lines.append(line)
        return "".join(lines)

    return redact


def load_template(template: str | Path) -> tuple[jinja2.Template, str]:
    """Compile a template given as Jinja2 source or as a path to a `.j2` (or other) file.

    A single-line string that names an existing file, or that ends in `.j2`, is a path;
    anything else is template source. Returns the template and a label for messages.
    """
    text = str(template)
    is_path = isinstance(template, Path) or (
        "\n" not in text
        and "{{" not in text
        and "{%" not in text
        and (text.endswith(".j2") or Path(text).expanduser().is_file())
    )
    if is_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"template file {path} not found")
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(path.parent)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        return environment.get_template(path.name), str(path)
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.from_string(text), "inline template"


def render_for_host(
    template: jinja2.Template,
    label: str,
    ctx: OpContext,
    variables: dict[str, Any],
    placeholder: str | None = None,
) -> str:
    """Render a template for one host: host vars, inventory_hostname, groups, hostvars, extras.

    With `placeholder`, every secret renders as that text instead of its value.
    """
    context: dict[str, Any] = {}
    inventory_hostname = ctx.host.name
    if ctx.cluster is not None:
        inventory = ctx.cluster.inventory
        context["groups"] = inventory.group_names()
        context["hostvars"] = {
            name: _reveal_all(dict(h.vars, inventory_hostname=name), placeholder)
            for name, h in inventory.hosts.items()
        }
    context.update(_reveal_all(ctx.host.vars, placeholder))
    context["inventory_hostname"] = inventory_hostname
    context["group_names"] = ctx.host.groups
    context.update(_reveal_all(variables, placeholder))
    try:
        return template.render(context)
    except jinja2.UndefinedError as exc:
        raise OperationFailed(
            f"rendering {label} failed: {exc.message}",
            host=ctx.name,
            hint="define the variable in the inventory or pass it as a keyword argument",
        ) from None
    except jinja2.TemplateError as exc:
        raise OperationFailed(f"rendering {label} failed: {exc}", host=ctx.name) from None


def content_op(
    ctx: OpContext,
    path: str,
    content: str | bytes,
    owner: str | None,
    group: str | None,
    mode: str | int | None,
    notify: str | list[str] | None,
    validate: str | None,
) -> HostResult:
    return ensure_content(
        ctx,
        path,
        _bytes(content),
        owner=owner,
        group=group,
        mode=parse_mode(mode),
        validate=validate,
        notify=notify,
    )


def absent_op(ctx: OpContext, path: str) -> HostResult:
    quoted = shlex.quote(path)
    check = "1" if ctx.check else ""
    script = f"""
p={quoted}
if [ -e "$p" ] || [ -L "$p" ]; then
  if [ -d "$p" ] && [ ! -L "$p" ]; then echo directory; else echo file; fi
  [ -n "{check}" ] || rm -rf -- "$p"
else
  echo missing
fi
"""
    result = ctx.run_checked(script, f"removing {path}")
    kind = result.stdout.strip()
    if kind == "missing":
        return ctx.result("ok")
    return ctx.result("changed", f"remove {kind} {path}")


def directory_op(
    ctx: OpContext, path: str, owner: str | None, group: str | None, mode: str | int | None
) -> HostResult:
    wanted_mode = parse_mode(mode)
    state = read_file(ctx, path)
    if state.kind not in ("missing", "directory"):
        raise OperationFailed(
            f"{path} is a {state.kind}, expected a directory",
            host=ctx.name,
            hint="remove it first with file.absent",
        )
    if state.exists:
        changes = attribute_changes(state, owner, group, wanted_mode)
        if not changes:
            return ctx.result("ok")
        message = f"change {path}: {', '.join(changes)}"
    else:
        message = f"create directory {path}"
    if not ctx.check:
        commands = [f"mkdir -p {shlex.quote(path)}"]
        if owner is not None or group is not None:
            spec = f"{owner or ''}:{group}" if group is not None else str(owner)
            commands.append(f"chown {shlex.quote(spec)} {shlex.quote(path)}")
        if wanted_mode is not None:
            commands.append(f"chmod {wanted_mode:o} {shlex.quote(path)}")
        ctx.run_checked(" && ".join(commands), f"creating directory {path}")
    return ctx.result("changed", message)


def edit_lines(text: str, line: str, regexp: str | None, state: str) -> str:
    """Apply Ansible lineinfile semantics to `text` and return the new text."""
    lines = text.splitlines()
    pattern = re.compile(regexp) if regexp else None

    def matches(candidate: str) -> bool:
        return bool(pattern.search(candidate)) if pattern else candidate == line

    if state == "absent":
        kept = [candidate for candidate in lines if not matches(candidate)]
        if len(kept) == len(lines):
            return text
        return "\n".join(kept) + ("\n" if kept else "")
    indexes = [i for i, candidate in enumerate(lines) if matches(candidate)]
    if indexes:
        last = indexes[-1]
        if lines[last] == line:
            return text
        lines[last] = line
    elif line in lines:
        return text
    else:
        lines.append(line)
    return "\n".join(lines) + "\n"


def line_op(
    ctx: OpContext,
    path: str,
    line: str,
    regexp: str | None,
    state: str,
    create: bool,
    notify: str | list[str] | None,
    owner: str | None,
    group: str | None,
    mode: str | int | None,
) -> HostResult:
    if state not in ("present", "absent"):
        raise OperationFailed(f"state must be 'present' or 'absent', got {state!r}", host=ctx.name)
    current = read_file(ctx, path)
    if not current.exists:
        if state == "absent":
            return ctx.result("ok")
        if not create:
            raise OperationFailed(
                f"{path} does not exist", host=ctx.name, hint="pass create=True to create it"
            )
    if current.exists and current.content is None:
        raise OperationFailed(f"{path} is too large or not a regular file to edit", host=ctx.name)
    old = (current.content or b"").decode("utf-8", "replace")
    new = edit_lines(old, line, regexp, state)
    return ensure_content(
        ctx,
        path,
        new.encode("utf-8"),
        state=current,
        notify=notify,
        owner=owner if not current.exists else None,
        group=group if not current.exists else None,
        mode=parse_mode(mode) if not current.exists else None,
    )


def replace_block(text: str, block: str, marker: str, state: str = "present") -> str:
    """Insert or replace (or remove) the text between BEGIN and END marker lines."""
    begin = marker.replace("{mark}", "BEGIN")
    end = marker.replace("{mark}", "END")
    lines = text.splitlines()
    body = block.rstrip("\n").splitlines()
    try:
        start = lines.index(begin)
        stop = lines.index(end, start)
    except ValueError:
        start = stop = -1
    if state == "absent":
        if start < 0:
            return text
        new_lines = lines[:start] + lines[stop + 1 :]
    elif start >= 0:
        new_lines = lines[:start] + [begin, *body, end] + lines[stop + 1 :]
    else:
        new_lines = [*lines, begin, *body, end]
    return "\n".join(new_lines) + ("\n" if new_lines else "")


def block_op(
    ctx: OpContext,
    path: str,
    block: str,
    marker: str,
    state: str,
    create: bool,
    notify: str | list[str] | None,
) -> HostResult:
    if "{mark}" not in marker:
        raise OperationFailed(f"marker {marker!r} must contain {{mark}}", host=ctx.name)
    current = read_file(ctx, path)
    if not current.exists and not create:
        if state == "absent":
            return ctx.result("ok")
        raise OperationFailed(
            f"{path} does not exist", host=ctx.name, hint="pass create=True to create it"
        )
    old = (current.content or b"").decode("utf-8", "replace")
    new = replace_block(old, block, marker, state)
    return ensure_content(
        ctx,
        path,
        new.encode("utf-8"),
        state=current,
        notify=notify,
        owner=None if current.exists else "root",
        group=None if current.exists else "root",
        mode=None if current.exists else 0o644,
    )


class Files:
    """`group.file`: files with given content or from a template, lines, blocks, folders."""

    def __init__(self, group: HostGroup) -> None:
        self.group = group

    def content(
        self,
        path: str,
        content: str | bytes,
        *,
        owner: str | None = "root",
        group: str | None = "root",
        mode: str | int | None = "0644",
        notify: str | list[str] | None = None,
        validate: str | None = None,
    ) -> Results:
        """Make `path` a file with exactly `content` (str or bytes).

        `validate` is a command with `%s` for a temp copy (e.g. `"haproxy -c -f %s"`); when it
        fails the file is left as it was. `notify` queues a restart of that service when the
        file changes.
        """
        return self.group.apply(
            f"file {path}", content_op, path, content, owner, group, mode, notify, validate
        )

    def template(
        self,
        path: str,
        template: str | Path,
        *,
        owner: str | None = "root",
        group: str | None = "root",
        mode: str | int | None = "0644",
        notify: str | list[str] | None = None,
        validate: str | None = None,
        **variables: Any,
    ) -> Results:
        """Render a Jinja2 template per host and make `path` contain the result.

        The context is the host's vars, `inventory_hostname`, `group_names`, `groups`
        (group -> host names), `hostvars` and `variables`. Secrets render as their real
        value in the file but show as ******** in the diff.
        """
        compiled, label = load_template(template)

        def op(ctx: OpContext) -> HostResult:
            rendered = render_for_host(compiled, label, ctx, variables)
            redact = None
            if _holds_secret(variables) or _holds_secret(ctx.host.vars):
                shape = render_for_host(compiled, label, ctx, variables, _SECRET_TOKEN)
                redact = secret_line_redactor(shape)
            return ensure_content(
                ctx,
                path,
                rendered.encode("utf-8"),
                owner=owner,
                group=group,
                mode=parse_mode(mode),
                validate=validate,
                notify=notify,
                redact=redact,
            )

        return self.group.apply(f"template {path}", op)

    def absent(self, path: str) -> Results:
        """Remove a file, link or directory (recursively) when present."""
        return self.group.apply(f"absent {path}", absent_op, path)

    def directory(
        self,
        path: str,
        *,
        owner: str | None = "root",
        group: str | None = "root",
        mode: str | int | None = "0755",
    ) -> Results:
        """Make `path` a directory (with parents) with the given owner, group and mode."""
        return self.group.apply(f"directory {path}", directory_op, path, owner, group, mode)

    def line(
        self,
        path: str,
        line: str,
        *,
        regexp: str | None = None,
        state: str = "present",
        create: bool = False,
        notify: str | list[str] | None = None,
        owner: str | None = "root",
        group: str | None = "root",
        mode: str | int | None = "0644",
    ) -> Results:
        """Make `line` present in (or absent from) a file.

        With `regexp`, the last matching line is replaced by `line` (or, for
        `state="absent"`, every matching line is removed); without a match, `line` is
        appended. owner/group/mode apply only when `create=True` creates the file.
        """
        return self.group.apply(
            f"line in {path}",
            line_op,
            path,
            line,
            regexp,
            state,
            create,
            notify,
            owner,
            group,
            mode,
        )

    def block(
        self,
        path: str,
        block: str,
        *,
        marker: str = "# {mark} clusterbook managed block",
        state: str = "present",
        create: bool = True,
        notify: str | list[str] | None = None,
    ) -> Results:
        """Keep `block` between BEGIN/END marker lines in a file (appended when missing)."""
        return self.group.apply(
            f"block in {path}", block_op, path, block, marker, state, create, notify
        )


__all__ = ["Files", "edit_lines", "replace_block", "make_diff", "write_file", "load_template"]
