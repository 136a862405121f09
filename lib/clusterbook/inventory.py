"""Ansible-compatible YAML inventories: groups, host variables, host patterns and limits.

The file format is Ansible's YAML inventory: a mapping of group names (normally just
`all`), where each group may have `hosts`, `children` and `vars`. `group_vars/` and
`host_vars/` folders beside the inventory file add variables, as files
(`group_vars/web.yml`) or folders of files (`group_vars/web/*.yml`).

Variable precedence follows Ansible's default (`hash_behaviour = replace`), from low to high:
inline group vars (`all` first, then parents before children, ties by name), then
`group_vars/all`, then the other `group_vars/*` in the same group order, then inline host vars,
then `host_vars/<host>`. Jinja2 expressions inside variable values are not evaluated.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clusterbook.errors import InventoryError

log = logging.getLogger(__name__)

GROUP_KEYS = ("hosts", "children", "vars")
VARS_SUFFIXES = (".yml", ".yaml", ".json", "")
HOST_KEY_POLICIES = ("reject", "trust_on_first_use")
_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::([0-9]+))?\]")
_SUBSCRIPT = re.compile(r"^(.+)\[(-?[0-9]+)(?::(-?[0-9]*))?\]$")
_TRUE = {"yes", "true", "on", "1", "y"}
_FALSE = {"no", "false", "off", "0", "n", ""}


# --- YAML loading with line numbers -----------------------------------------------------------


class _LineDict(dict):
    """A mapping from YAML that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class _Loader(yaml.SafeLoader):
    """A safe loader that records line numbers and rejects duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise InventoryError(
                f"duplicate key {key!r} (first at line {result.key_lines[key]})",
                file=loader.name,
                line=key_node.start_mark.line + 1,
                key=str(key),
                hint="merge the two entries into one",
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(
            "inventory file not found", file=str(path), hint="check the path"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read file: {exc}", file=str(path)) from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise InventoryError(
            f"invalid YAML: {problem}", file=str(path), line=line, hint="fix the YAML syntax"
        ) from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"invalid YAML: {exc}", file=str(path)) from None
    finally:
        loader.dispose()


def _line_of(mapping: Any, key: Any = None) -> int | None:
    if isinstance(mapping, _LineDict):
        if key is not None and key in mapping.key_lines:
            return mapping.key_lines[key]
        return mapping.line
    return None


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


# --- Model -------------------------------------------------------------------------------------


def to_bool(value: Any, *, name: str = "value", host: str | None = None) -> bool:
    """Convert an Ansible-style boolean (`true`, `yes`, `1`, ...) to `bool`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    where = f"host {host}: " if host else ""
    raise InventoryError(
        f"{where}{name} must be a boolean (true/false, yes/no), got {_type_name(value)}", key=name
    )


@dataclass
class Host:
    """One inventory host with its merged variables."""

    name: str
    #: merged variables, after group and host precedence
    vars: dict[str, Any] = field(default_factory=dict)
    #: names of the groups the host belongs to, directly or through a child group,
    #: sorted, without `all` (like Ansible's `group_names`)
    groups: list[str] = field(default_factory=list)
    #: inventory file the host came from, for error messages
    source: str | None = None

    def __repr__(self) -> str:
        return f"Host({self.name!r}, address={self.address!r})"

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host) and other.name == self.name

    # Connection settings, read from the standard Ansible variables.

    @property
    def address(self) -> str:
        """Address to connect to: `ansible_host`, or the inventory name."""
        return str(self.vars.get("ansible_host") or self.vars.get("ansible_ssh_host") or self.name)

    @property
    def user(self) -> str | None:
        """SSH user (`ansible_user`), or None to let ~/.ssh/config and the local user decide."""
        value = self.vars.get("ansible_user", self.vars.get("ansible_ssh_user"))
        return str(value) if value is not None else None

    @property
    def port(self) -> int | None:
        """SSH port (`ansible_port`), or None for ~/.ssh/config or 22."""
        value = self.vars.get("ansible_port", self.vars.get("ansible_ssh_port"))
        if value is None:
            return None
        try:
            port = int(value)
        except (TypeError, ValueError):
            port = -1
        if not 0 < port < 65536:
            raise InventoryError(
                f"host {self.name}: ansible_port must be a port number 1-65535, "
                f"got {_type_name(value)}",
                file=self.source,
                key="ansible_port",
            )
        return port

    @property
    def private_key_file(self) -> str | None:
        """Private key (`ansible_ssh_private_key_file`), with `~` expanded."""
        value = self.vars.get(
            "ansible_ssh_private_key_file", self.vars.get("ansible_private_key_file")
        )
        return str(Path(str(value)).expanduser()) if value else None

    @property
    def become(self) -> bool:
        """Whether commands run as another user by default (`ansible_become`)."""
        return to_bool(
            self.vars.get("ansible_become", False), name="ansible_become", host=self.name
        )

    @property
    def become_user(self) -> str:
        """User that `become` switches to (`ansible_become_user`, default root)."""
        return str(self.vars.get("ansible_become_user") or "root")

    @property
    def become_method(self) -> str:
        """Privilege escalation method; only `sudo` is supported."""
        return str(self.vars.get("ansible_become_method") or "sudo")

    @property
    def become_password(self) -> Any:
        """Password for sudo (`ansible_become_password`), a `Secret` or string, or None."""
        return self.vars.get("ansible_become_password", self.vars.get("ansible_become_pass"))

    @property
    def ssh_options(self) -> dict[str, str]:
        """`-o Key=Value` options from `ansible_ssh_common_args` and `ansible_ssh_extra_args`.

        Keys are lower case, as ssh treats them case-insensitively; `-J host` is stored
        as `proxyjump`.
        """
        options: dict[str, str] = {}
        for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
            value = self.vars.get(var)
            if value:
                options.update(parse_ssh_args(str(value), host=self.name, var=var))
        return options

    @property
    def known_hosts_files(self) -> list[str]:
        """known_hosts files named by `-o UserKnownHostsFile=...` (empty: ~/.ssh/known_hosts)."""
        value = self.ssh_options.get("userknownhostsfile")
        if not value:
            return []
        return [str(Path(p).expanduser()) for p in value.split() if p]

    @property
    def host_key_policy(self) -> str:
        """`reject` (default) or `trust_on_first_use`.

        Set explicitly with the host var `clusterbook_host_key_policy`; the ssh options
        `StrictHostKeyChecking=accept-new` (or `no`) also select trust on first use. A key
        that differs from a recorded one is rejected under either policy.
        """
        value = self.vars.get("clusterbook_host_key_policy")
        if value is not None:
            text = str(value).strip().lower()
            if text not in HOST_KEY_POLICIES:
                raise InventoryError(
                    f"host {self.name}: clusterbook_host_key_policy must be one of "
                    f"{', '.join(HOST_KEY_POLICIES)}, got {value!r}",
                    file=self.source,
                    key="clusterbook_host_key_policy",
                )
            return text
        strict = self.ssh_options.get("stricthostkeychecking", "").lower()
        if strict in ("accept-new", "no", "off"):
            return "trust_on_first_use"
        return "reject"

    @property
    def capabilities(self) -> list[str]:
        """What this target can do (`clusterbook_capabilities`), see `clusterbook.requirements`."""
        value = self.vars.get("clusterbook_capabilities") or []
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return [str(v) for v in value]


def parse_ssh_args(text: str, *, host: str = "", var: str = "ansible_ssh_common_args") -> dict:
    """Parse the `-o Key=Value` and `-J jump` options of an ssh argument string."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InventoryError(
            f"host {host}: {var} is not a valid shell word list ({exc}): {text!r}", key=var
        ) from None
    options: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("-o", "-J"):
            if index + 1 >= len(words):
                raise InventoryError(
                    f"host {host}: {var} ends with {word} but no value follows", key=var
                )
            value = words[index + 1]
            index += 2
        elif word.startswith(("-o", "-J")):
            value = word[2:]
            word = word[:2]
            index += 1
        else:
            log.debug("host %s: ignoring ssh argument %r in %s", host, word, var)
            index += 1
            continue
        if word == "-J":
            options["proxyjump"] = value
            continue
        key, sep, val = value.partition("=")
        if not sep:
            key, _, val = value.partition(" ")
        if not key or not val:
            raise InventoryError(
                f"host {host}: {var} has '-o {value}', expected -o Key=Value", key=var
            )
        options[key.strip().lower()] = val.strip()
    return options


@dataclass
class Group:
    """One inventory group: its own hosts, child groups and inline vars."""

    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    #: vars from group_vars/<name>
    file_vars: dict[str, Any] = field(default_factory=dict)
    depth: int = 0


class Inventory:
    """A parsed inventory. `hosts` maps name to `Host` in file order."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}
        self.groups["all"].children.append("ungrouped")
        self.groups["ungrouped"].parents.append("all")
        self.hosts: dict[str, Host] = {}
        self._host_inline_vars: dict[str, dict[str, Any]] = {}
        self._host_file_vars: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"Inventory({str(self.path)!r}, {len(self.hosts)} hosts, {len(self.groups)} groups)"

    # Loading

    @classmethod
    def load(cls, path: str | Path) -> Inventory:
        """Parse an inventory file plus its `group_vars/` and `host_vars/` folders."""
        path = Path(path)
        inventory = cls(path)
        if path.is_dir():
            raise InventoryError(
                "is a folder, expected an inventory YAML file",
                file=str(path),
                hint="pass the .yml file inside it",
            )
        data = _load_yaml(path)
        if data is None:
            raise InventoryError(
                "inventory file is empty",
                file=str(path),
                hint="start the file with 'all:' and list hosts under it",
            )
        if not isinstance(data, dict):
            raise InventoryError(
                f"expected a mapping of group names at the top level, got {_type_name(data)}",
                file=str(path),
                line=1,
                hint="start the file with 'all:' (Ansible YAML inventory format)",
            )
        for name, body in data.items():
            inventory._parse_group(str(name), body, data, parent=None)
        inventory._finish()
        return inventory

    @classmethod
    def from_dict(cls, data: dict, *, path: str | None = None) -> Inventory:
        """Build an inventory from an already parsed mapping (no group_vars/host_vars)."""
        inventory = cls(path)
        for name, body in data.items():
            inventory._parse_group(str(name), body, data, parent=None)
        inventory._finish(read_var_files=False)
        return inventory

    @property
    def _file(self) -> str | None:
        return str(self.path) if self.path else None

    def _error(self, message: str, container: Any, key: Any = None, hint: str | None = None):
        return InventoryError(
            message,
            file=self._file,
            line=_line_of(container, key),
            key=str(key) if key is not None else None,
            hint=hint,
        )

    def _group(self, name: str) -> Group:
        if name not in self.groups:
            self.groups[name] = Group(name)
        return self.groups[name]

    def _parse_group(self, name: str, body: Any, container: Any, parent: str | None) -> None:
        if not name or any(c in name for c in " :,!&[]"):
            raise self._error(
                f"invalid group name {name!r}",
                container,
                name,
                hint="use letters, digits, '_' and '-' only",
            )
        group = self._group(name)
        if parent is not None and parent not in group.parents:
            if name == "all":
                raise self._error("group 'all' cannot be a child group", container, name)
            group.parents.append(parent)
            self.groups[parent].children.append(name)
        if body is None:
            return
        if not isinstance(body, dict):
            raise self._error(
                f"group {name!r} must be a mapping with the keys hosts, children or vars, "
                f"got {_type_name(body)}",
                container,
                name,
                hint=f"write '{name}:' followed by an indented 'hosts:' mapping",
            )
        for key in body:
            if key not in GROUP_KEYS:
                raise self._error(
                    f"unknown key {key!r} in group {name!r}, expected hosts, children or vars",
                    body,
                    key,
                    hint="host variables go under 'hosts: NAME:', group variables under 'vars:'",
                )
        vars_ = body.get("vars")
        if vars_ is not None:
            if not isinstance(vars_, dict):
                raise self._error(
                    f"'vars' of group {name!r} must be a mapping of variable names to values, "
                    f"got {_type_name(vars_)}",
                    body,
                    "vars",
                )
            group.vars.update(vars_)
        hosts = body.get("hosts")
        if hosts is not None:
            if not isinstance(hosts, dict):
                raise self._error(
                    f"'hosts' of group {name!r} must be a mapping of host names "
                    f"(each followed by ':'), got {_type_name(hosts)}",
                    body,
                    "hosts",
                    hint="write each host as 'NAME:' on its own line, not as a '- NAME' list",
                )
            for host_name, host_vars in hosts.items():
                self._parse_host(str(host_name), host_vars, hosts, name)
        children = body.get("children")
        if children is not None:
            if not isinstance(children, dict):
                raise self._error(
                    f"'children' of group {name!r} must be a mapping of group names, "
                    f"got {_type_name(children)}",
                    body,
                    "children",
                    hint="write each child group as 'NAME:' on its own line",
                )
            for child, child_body in children.items():
                self._parse_group(str(child), child_body, children, parent=name)

    def _parse_host(self, pattern: str, host_vars: Any, container: Any, group: str) -> None:
        if host_vars is not None and not isinstance(host_vars, dict):
            raise self._error(
                f"host {pattern!r} in group {group!r} must be followed by a mapping of "
                f"variables or nothing, got {_type_name(host_vars)}",
                container,
                pattern,
                hint="write 'NAME:' alone, or 'NAME: {ansible_host: 10.0.0.1}'",
            )
        try:
            names = list(expand_host_range(pattern))
        except ValueError as exc:
            raise self._error(str(exc), container, pattern) from None
        for host_name in names:
            if host_name in self.groups and host_name not in self.hosts:
                raise self._error(
                    f"{host_name!r} is used as both a group and a host name",
                    container,
                    pattern,
                    hint="rename the host or the group",
                )
            if host_name not in self.hosts:
                self.hosts[host_name] = Host(host_name, source=self._file)
                self._host_inline_vars[host_name] = {}
            self._host_inline_vars[host_name].update(host_vars or {})
            members = self.groups[group].hosts
            if host_name not in members:
                members.append(host_name)

    def _finish(self, read_var_files: bool = True) -> None:
        for name in self.groups:
            if name in self.hosts:
                raise InventoryError(
                    f"{name!r} is used as both a group and a host name",
                    file=self._file,
                    key=name,
                    hint="rename the host or the group",
                )
        # Hosts in no group other than `all` are in `ungrouped`, as in Ansible.
        for name in self.hosts:
            if not any(name in g.hosts for g in self.groups.values() if g.name != "all"):
                self.groups["ungrouped"].hosts.append(name)
        for name in self.groups:
            if name != "all" and not self.groups[name].parents:
                self.groups[name].parents.append("all")
                self.groups["all"].children.append(name)
        self._compute_depths()
        if read_var_files and self.path:
            self._read_var_files()
        for host in self.hosts.values():
            host.groups = sorted(g for g in self._groups_of(host.name) if g != "all")
            host.vars = self._merge_vars(host.name)

    def _compute_depths(self) -> None:
        def visit(name: str, depth: int, trail: tuple[str, ...]) -> None:
            if name in trail:
                cycle = " -> ".join((*trail[trail.index(name) :], name))
                raise InventoryError(
                    f"group cycle: {cycle}",
                    file=self._file,
                    key=name,
                    hint="a group cannot be its own child, directly or through other groups",
                )
            group = self.groups[name]
            group.depth = max(group.depth, depth)
            for child in group.children:
                visit(child, depth + 1, (*trail, name))

        visit("all", 0, ())

    def _read_var_files(self) -> None:
        assert self.path is not None
        base = self.path.parent
        for name, group in self.groups.items():
            group.file_vars = self._vars_from(base / "group_vars", name)
        for name in self.hosts:
            self._host_file_vars[name] = self._vars_from(base / "host_vars", name)
        for kind, known in (("group_vars", self.groups), ("host_vars", self.hosts)):
            folder = base / kind
            if folder.is_dir():
                for entry in sorted(folder.iterdir()):
                    stem = entry.name if entry.is_dir() else entry.stem
                    if entry.suffix in VARS_SUFFIXES and stem not in known:
                        log.warning(
                            "%s: %s/%s matches no %s in the inventory",
                            self.path,
                            kind,
                            entry.name,
                            kind.split("_")[0],
                        )

    def _vars_from(self, folder: Path, name: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        files: list[Path] = []
        for suffix in VARS_SUFFIXES:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                files.append(candidate)
        directory = folder / name
        if directory.is_dir():
            files.extend(
                sorted(
                    p
                    for p in directory.rglob("*")
                    if p.is_file() and p.suffix in (".yml", ".yaml", ".json")
                )
            )
        for file in files:
            data = _load_yaml(file)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise InventoryError(
                    f"expected a mapping of variable names to values, got {_type_name(data)}",
                    file=str(file),
                    line=1,
                )
            merged.update(data)
        return merged

    # Queries

    def _groups_of(self, host: str) -> set[str]:
        found: set[str] = set()
        stack = [g.name for g in self.groups.values() if host in g.hosts]
        while stack:
            name = stack.pop()
            if name in found:
                continue
            found.add(name)
            stack.extend(self.groups[name].parents)
        found.add("all")
        return found

    def _merge_vars(self, host: str) -> dict[str, Any]:
        groups = sorted(
            (self.groups[g] for g in self._groups_of(host)), key=lambda g: (g.depth, g.name)
        )
        merged: dict[str, Any] = {}
        for group in groups:
            merged.update(group.vars)
        for group in groups:
            merged.update(group.file_vars)
        merged.update(self._host_inline_vars.get(host, {}))
        merged.update(self._host_file_vars.get(host, {}))
        return merged

    def group_hosts(self, name: str) -> list[Host]:
        """Hosts of a group and of all its descendants, in inventory order."""
        if name not in self.groups:
            raise InventoryError(
                f"group {name!r} not found; groups are: {', '.join(sorted(self.groups))}",
                file=self._file,
                key=name,
                hint="check the spelling, or add the group to the inventory",
            )
        members: set[str] = set()
        stack = [name]
        seen: set[str] = set()
        while stack:
            group = self.groups[stack.pop()]
            if group.name in seen:
                continue
            seen.add(group.name)
            members.update(group.hosts)
            stack.extend(group.children)
        return [h for n, h in self.hosts.items() if n in members]

    def group_names(self) -> dict[str, list[str]]:
        """Every group name to the names of its hosts (Ansible's `groups` variable)."""
        return {name: [h.name for h in self.group_hosts(name)] for name in self.groups}

    def select(self, pattern: str | Iterable[str] | None) -> list[Host]:
        """Hosts matching an Ansible host pattern, in inventory order.

        A pattern is terms joined by `:` or `,`: a group or host name, `all` or `*`, a
        glob (`web*`), a regular expression after `~`, or a group with a subscript
        (`worker[0]`, `worker[0:2]`). A term prefixed with `&` intersects, `!` excludes;
        as in Ansible, unions apply first, then intersections, then exclusions. A term that
        matches nothing raises `InventoryError`.
        """
        if pattern is None:
            return list(self.hosts.values())
        terms = split_pattern(pattern) if isinstance(pattern, str) else list(pattern)
        if not terms:
            raise InventoryError(f"empty host pattern {pattern!r}", file=self._file)
        unions = [t for t in terms if not t.startswith(("&", "!"))]
        intersections = [t[1:] for t in terms if t.startswith("&")]
        exclusions = [t[1:] for t in terms if t.startswith("!")]
        selected: set[str] = set()
        if not unions:
            selected = set(self.hosts)
        for term in unions:
            selected.update(h.name for h in self._match(term))
        for term in intersections:
            selected &= {h.name for h in self._match(term)}
        for term in exclusions:
            selected -= {h.name for h in self._match(term)}
        return [h for n, h in self.hosts.items() if n in selected]

    def _match(self, term: str) -> list[Host]:
        term = term.strip()
        if term in ("all", "*"):
            return list(self.hosts.values())
        if term in self.groups:
            return self.group_hosts(term)
        if term in self.hosts:
            return [self.hosts[term]]
        subscript = _SUBSCRIPT.match(term)
        if subscript and subscript.group(1) in self.groups:
            members = self.group_hosts(subscript.group(1))
            start = int(subscript.group(2))
            if subscript.group(3) is None:
                return members[start : start + 1] if start != -1 else members[-1:]
            end = subscript.group(3)
            return members[start : int(end) + 1 if end else None]
        if term.startswith("~"):
            try:
                regex = re.compile(term[1:])
            except re.error as exc:
                raise InventoryError(
                    f"invalid regular expression in host pattern {term!r}: {exc}",
                    file=self._file,
                ) from None
            matched = [h for n, h in self.hosts.items() if regex.search(n)]
        elif any(c in term for c in "*?["):
            names = {n for n in self.groups if fnmatch.fnmatchcase(n, term)}
            matched = [
                h
                for n, h in self.hosts.items()
                if fnmatch.fnmatchcase(n, term)
                or fnmatch.fnmatchcase(h.address, term)
                or names.intersection(h.groups)
            ]
        else:
            matched = [h for h in self.hosts.values() if h.address == term]
        if not matched:
            raise InventoryError(
                f"host pattern {term!r} matches no group or host; groups are: "
                f"{', '.join(sorted(self.groups))}",
                file=self._file,
                key=term,
                hint="check the spelling of the group or host name",
            )
        return matched

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())

    def __len__(self) -> int:
        return len(self.hosts)


def split_pattern(pattern: str) -> list[str]:
    """Split a host pattern on `,` (when present) or `:`, keeping IPv6 addresses whole."""
    pattern = pattern.strip()
    if "," in pattern:
        return [p.strip() for p in pattern.split(",") if p.strip()]
    if pattern.count(":") > 1 and re.fullmatch(r"[!&]?[0-9a-fA-F:]+", pattern):
        return [pattern]  # a single IPv6 address
    terms = []
    for part in re.split(r":(?![^\[]*\])", pattern):
        if part.strip():
            terms.append(part.strip())
    return terms


def expand_host_range(pattern: str) -> Iterator[str]:
    """Expand Ansible host ranges: `node[01:03]` gives node01, node02, node03."""
    match = _RANGE.search(pattern)
    if not match:
        yield pattern
        return
    start, end, step = match.group(1), match.group(2), int(match.group(3) or 1)
    prefix, suffix = pattern[: match.start()], pattern[match.end() :]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        if int(start) > int(end) or step < 1:
            raise ValueError(f"host range {match.group(0)} in {pattern!r} is empty")
        values = [str(i).zfill(width) for i in range(int(start), int(end) + 1, step)]
    elif len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        if start > end or step < 1:
            raise ValueError(f"host range {match.group(0)} in {pattern!r} is empty")
        values = [chr(i) for i in range(ord(start), ord(end) + 1, step)]
    else:
        raise ValueError(
            f"invalid host range {match.group(0)} in {pattern!r}, expected [01:09] or [a:f]"
        )
    for value in values:
        yield from expand_host_range(prefix + value + suffix)
