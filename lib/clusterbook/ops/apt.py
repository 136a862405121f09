"""Debian packages: present, absent, held, and apt repositories with their signing key.

Each package operation is one shell script. It queries dpkg for the packages that differ
from the request, prints them, and (outside check mode) installs or removes exactly those.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from clusterbook.errors import OperationFailed
from clusterbook.ops.base import OpContext, ensure_content, read_file
from clusterbook.results import HostResult, Results

if TYPE_CHECKING:
    from clusterbook.cluster import HostGroup

_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9]+)?(=[A-Za-z0-9.+~:-]+)?$")
_APT_ENV = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a"
# Wait up to 10 minutes for a dpkg lock held by another apt run instead of failing at once.
_LOCK = "-o DPkg::Lock::Timeout=600"
_APT_OPTS = f"-y -q {_LOCK} -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
# Update the package lists first when they are empty (a fresh image) or a package is unknown.
_LISTS_EMPTY = "! ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'"


def _validate(ctx: OpContext, names: tuple[str, ...]) -> None:
    if not names:
        raise OperationFailed("no package names given", host=ctx.name)
    for name in names:
        if not _NAME.match(name):
            raise OperationFailed(
                f"invalid package name {name!r}, expected a Debian name such as 'haproxy' "
                "or 'haproxy=2.6.12-1'",
                host=ctx.name,
            )


def present_op(
    ctx: OpContext, names: tuple[str, ...], update_cache: bool, install_recommends: bool
) -> HostResult:
    _validate(ctx, names)
    words = " ".join(shlex.quote(n) for n in names)
    check = "1" if ctx.check else ""
    recommends = "" if install_recommends else "--no-install-recommends"
    script = f"""
missing=""
for spec in {words}; do
  name=${{spec%%=*}}; want=${{spec#*=}}; [ "$want" = "$spec" ] && want=""
  line=$(dpkg-query -W -f='${{db:Status-Status}} ${{Version}}' "$name" 2>/dev/null)
  status=${{line%% *}}; version=${{line#* }}
  if [ "$status" != installed ] || {{ [ -n "$want" ] && [ "$version" != "$want" ]; }}; then
    missing="$missing $spec"
  fi
done
echo "missing:$missing"
[ -z "$missing" ] && exit 0
[ -n "{check}" ] && exit 0
export {_APT_ENV}
if [ -n "{"1" if update_cache else ""}" ] || {_LISTS_EMPTY}; then
  apt-get update -q {_LOCK} >&2 || exit 1
fi
apt-get install {_APT_OPTS} {recommends} $missing >&2 || exit 1
"""
    result = ctx.run(script, timeout=1800)
    missing = _field(result.stdout, "missing")
    if result.exit_code != 0:
        raise OperationFailed(
            f"apt-get install {' '.join(missing)} failed: {result.stderr.strip()[-1500:]}",
            host=ctx.name,
            hint="check the package names and that the host reaches its apt mirror",
        )
    if not missing:
        return ctx.result("ok")
    return ctx.result("changed", f"install {' '.join(missing)}", stderr=result.stderr)


def absent_op(ctx: OpContext, names: tuple[str, ...], purge: bool) -> HostResult:
    _validate(ctx, names)
    words = " ".join(shlex.quote(n) for n in names)
    check = "1" if ctx.check else ""
    action = "purge" if purge else "remove"
    # A removed package keeps its config files in state "config-files"; purge removes those too.
    keep = "installed half-installed unpacked half-configured triggers-awaited triggers-pending"
    if purge:
        keep += " config-files"
    script = f"""
present=""
for name in {words}; do
  status=$(dpkg-query -W -f='${{db:Status-Status}}' "$name" 2>/dev/null)
  case " {keep} " in *" $status "*) [ -n "$status" ] && present="$present $name" ;; esac
done
echo "present:$present"
[ -z "$present" ] && exit 0
[ -n "{check}" ] && exit 0
export {_APT_ENV}
apt-get {action} {_APT_OPTS} $present >&2 || exit 1
"""
    result = ctx.run(script, timeout=1800)
    present = _field(result.stdout, "present")
    if result.exit_code != 0:
        raise OperationFailed(
            f"apt-get {action} {' '.join(present)} failed: {result.stderr.strip()[-1500:]}",
            host=ctx.name,
        )
    if not present:
        return ctx.result("ok")
    return ctx.result("changed", f"remove {' '.join(present)}", stderr=result.stderr)


def hold_op(ctx: OpContext, names: tuple[str, ...], hold: bool) -> HostResult:
    _validate(ctx, names)
    words = " ".join(shlex.quote(n) for n in names)
    check = "1" if ctx.check else ""
    mark = "hold" if hold else "unhold"
    test = '[ -z "$held" ]' if hold else '[ -n "$held" ]'
    script = f"""
held_all=$(apt-mark showhold)
todo=""
for name in {words}; do
  dpkg-query -W "$name" >/dev/null 2>&1 || {{ echo "not installed: $name" >&2; exit 95; }}
  held=$(printf '%s\\n' "$held_all" | grep -x -- "$name")
  if {test}; then todo="$todo $name"; fi
done
echo "todo:$todo"
[ -z "$todo" ] && exit 0
[ -n "{check}" ] && exit 0
apt-mark {mark} $todo >/dev/null || exit 1
"""
    result = ctx.run(script)
    if result.exit_code == 95 and not ctx.check:
        raise OperationFailed(
            f"cannot {mark} a package that is {result.stderr.strip()}",
            host=ctx.name,
            hint="install it first with apt.present",
        )
    if result.exit_code not in (0, 95):
        raise OperationFailed(f"apt-mark {mark} failed: {result.stderr.strip()}", host=ctx.name)
    todo = _field(result.stdout, "todo")
    if result.exit_code == 95:
        return ctx.result("changed", f"{mark} {' '.join(names)} (after it is installed)")
    if not todo:
        return ctx.result("ok")
    return ctx.result("changed", f"{mark} {' '.join(todo)}")


def _field(stdout: str, name: str) -> list[str]:
    for line in stdout.splitlines():
        if line.startswith(f"{name}:"):
            return line[len(name) + 1 :].split()
    return []


def update_op(ctx: OpContext) -> HostResult:
    if ctx.check:
        return ctx.result("skipped", "check mode: apt-get update not run")
    result = ctx.run(f"{_APT_ENV} apt-get update -q {_LOCK}", timeout=900)
    if result.exit_code != 0:
        raise OperationFailed(
            f"apt-get update failed: {result.stderr.strip()[-1500:]}", host=ctx.name
        )
    return ctx.result("ok", "package lists updated")


def sources_text(
    uris: str | list[str],
    suites: str | list[str],
    components: str | list[str] | None,
    key_path: str,
    architectures: str | list[str] | None,
) -> str:
    """Build a deb822 `.sources` stanza."""

    def join(value: str | list[str]) -> str:
        return value if isinstance(value, str) else " ".join(value)

    lines = ["Types: deb", f"URIs: {join(uris)}", f"Suites: {join(suites)}"]
    if components:
        lines.append(f"Components: {join(components)}")
    if architectures:
        lines.append(f"Architectures: {join(architectures)}")
    lines.append(f"Signed-By: {key_path}")
    return "\n".join(lines) + "\n"


def repository_op(
    ctx: OpContext,
    name: str,
    uris: str | list[str],
    suites: str | list[str],
    components: str | list[str] | None,
    key_url: str | None,
    key_content: str | None,
    architectures: str | list[str] | None,
    update: bool,
) -> HostResult:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise OperationFailed(f"invalid repository name {name!r}", host=ctx.name)
    if (key_url is None) == (key_content is None):
        raise OperationFailed("pass exactly one of key_url and key_content", host=ctx.name)
    suffix = ".gpg" if key_url and key_url.endswith(".gpg") else ".asc"
    key_path = f"/etc/apt/keyrings/{name}{suffix}"
    messages: list[str] = []
    diffs: list[str] = []
    changed = False
    key_bytes = key_content.encode() if key_content is not None else _download(ctx, key_url or "")
    if ctx.check or key_bytes is not None:
        current = read_file(ctx, "/etc/apt/keyrings")
        if not current.exists and not ctx.check:
            ctx.run_checked("install -d -m 0755 /etc/apt/keyrings", "creating /etc/apt/keyrings")
    if key_bytes is None:
        changed = True
        messages.append(f"download {key_url} to {key_path}")
    else:
        key_result = ensure_content(ctx, key_path, key_bytes, mode=0o644)
        if key_result.status == "changed":
            changed = True
            messages.append(f"write {key_path}")
    source = sources_text(uris, suites, components, key_path, architectures)
    source_path = f"/etc/apt/sources.list.d/{name}.sources"
    source_result = ensure_content(ctx, source_path, source.encode(), mode=0o644)
    if source_result.status == "changed":
        changed = True
        messages.append(f"write {source_path}")
        diffs.append(source_result.diff)
    if not changed:
        return ctx.result("ok")
    if update and not ctx.check:
        result = ctx.run(f"{_APT_ENV} apt-get update -q {_LOCK}", timeout=900)
        if result.exit_code != 0:
            raise OperationFailed(
                f"apt-get update after adding repository {name} failed: "
                f"{result.stderr.strip()[-1500:]}",
                host=ctx.name,
            )
        messages.append("update package lists")
    return ctx.result("changed", "; ".join(messages), diff="".join(diffs))


def _download(ctx: OpContext, url: str) -> bytes | None:
    """Download on the host; None in check mode (nothing is fetched then)."""
    if ctx.check:
        return None
    quoted = shlex.quote(url)
    result = ctx.run(
        f"if command -v curl >/dev/null; then curl -fsSL --max-time 60 {quoted}; "
        f"else wget -q -T 60 -O - {quoted}; fi | base64 -w0",
        timeout=120,
    )
    import base64

    data = base64.b64decode(result.stdout.strip() or b"")
    if result.exit_code != 0 or not data:
        raise OperationFailed(
            f"downloading {url} failed: {result.stderr.strip() or 'empty response'}",
            host=ctx.name,
            hint="the host needs the capability 'internet'; wrap the step in "
            "cluster.requires('internet')",
        )
    return data


class Apt:
    """`group.apt`: packages and repositories."""

    def __init__(self, group: HostGroup) -> None:
        self.group = group

    def present(
        self, *names: str, update_cache: bool = False, install_recommends: bool = False
    ) -> Results:
        """Install the packages that are not installed (`name=version` pins a version)."""
        return self.group.apply(
            f"apt present {' '.join(names)}", present_op, names, update_cache, install_recommends
        )

    def absent(self, *names: str, purge: bool = False) -> Results:
        """Remove the packages that are installed (`purge=True` also removes config files)."""
        return self.group.apply(f"apt absent {' '.join(names)}", absent_op, names, purge)

    def held(self, *names: str) -> Results:
        """Hold installed packages at their version (`apt-mark hold`)."""
        return self.group.apply(f"apt held {' '.join(names)}", hold_op, names, True)

    def unheld(self, *names: str) -> Results:
        """Release held packages (`apt-mark unhold`)."""
        return self.group.apply(f"apt unheld {' '.join(names)}", hold_op, names, False)

    def update(self) -> Results:
        """Run `apt-get update` (not in check mode; reported as ok, not as a change)."""
        return self.group.apply("apt update", update_op)

    def repository(
        self,
        name: str,
        *,
        uris: str | list[str],
        suites: str | list[str] = "/",
        components: str | list[str] | None = None,
        key_url: str | None = None,
        key_content: str | None = None,
        architectures: str | list[str] | None = None,
        update: bool = True,
    ) -> Results:
        """Add a deb822 repository `/etc/apt/sources.list.d/<name>.sources` and its key.

        The key goes to `/etc/apt/keyrings/<name>.asc` (`.gpg` when `key_url` ends in
        `.gpg`); `key_url` is downloaded on the host. `update` runs `apt-get update` when
        anything changed.
        """
        return self.group.apply(
            f"apt repository {name}",
            repository_op,
            name,
            uris,
            suites,
            components,
            key_url,
            key_content,
            architectures,
            update,
        )
