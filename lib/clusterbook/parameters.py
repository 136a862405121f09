"""Chapter parameters: what a notebook declares, typed values and secret references.

A chapter's `parameters` cell declares its parameters with defaults. Values from
the command line arrive as strings, and `coerce` converts each one to the type of
the parameter's default. So `-p kubernetes_version 1.30` stays the string "1.30"
when the default is a string, where papermill's own `-p` would turn it into 1.3.

A line of the parameters cell that ends with the comment `# secret` marks a
secret parameter. Its value never enters the notebook: `secret_injection` puts
the value into an environment variable for the kernel and injects a reference
`env:NAME`, which the notebook turns into a `Secret` with `Secret.resolve`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml

from clusterbook.errors import ClusterbookError

#: prefix of the environment variables that carry secret parameter values to the kernel
SECRET_ENV_PREFIX = "CLUSTERBOOK_SECRET_"
#: value prefixes that mark a reference to a secret rather than the secret itself
REFERENCE_PREFIXES = ("env:", "file:")

_SECRET_LINE = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?::[^=]*)?=.*#\s*secret\b")
_NO_DEFAULT = object()


class ParameterError(ClusterbookError):
    """A parameter value does not fit the parameter the chapter declares."""


@dataclass(frozen=True)
class Parameter:
    """One parameter declared in a chapter's parameters cell."""

    name: str
    #: the default as written in the cell, e.g. `"inventory/lab.yml"`
    default_source: str
    #: annotation name papermill found, or "None" when the line has none
    annotation: str
    secret: bool
    #: the comment at the end of the parameter's line, e.g. "list of user names"
    comment: str = ""

    @property
    def default(self) -> Any:
        """The default as a Python literal, or `_NO_DEFAULT` when it is not a literal."""
        try:
            return ast.literal_eval(self.default_source)
        except (ValueError, SyntaxError):
            return _NO_DEFAULT


def parameters_cell_source(notebook: nbformat.NotebookNode) -> str:
    """Return the source of the first cell tagged `parameters`, or "" when there is none."""
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    return ""


def secret_names(source: str) -> set[str]:
    """Return the names of the parameters whose line carries the comment `# secret`."""
    names = set()
    for line in source.splitlines():
        match = _SECRET_LINE.match(line)
        if match:
            names.add(match["name"])
    return names


def declared_parameters(path: Path) -> dict[str, Parameter]:
    """Return the parameters the notebook at `path` declares, by name."""
    notebook = nbformat.read(path, as_version=4)
    secrets = secret_names(parameters_cell_source(notebook))
    found = papermill.inspect_notebook(str(path))
    return {
        name: Parameter(
            name=name,
            default_source=str(info.get("default", "")),
            annotation=str(info.get("inferred_type_name", "None")),
            secret=name in secrets,
            comment=str(info.get("help") or ""),
        )
        for name, info in found.items()
    }


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_ANNOTATED_TYPES = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
}
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}
_LIST_HINT = re.compile(r"\blist\b|comma-separated", re.IGNORECASE)


def _expected_type(parameter: Parameter) -> type | None:
    """Return the type a value must have, or None when any YAML value fits."""
    annotation = parameter.annotation.replace("typing.", "").strip()
    base = re.split(r"[\[|]", annotation, maxsplit=1)[0].strip().lower()
    annotated = _ANNOTATED_TYPES.get(base)
    if annotated is not None:
        return annotated
    if annotation.startswith("Optional[") and "list" in annotation.lower():
        return list
    default = parameter.default
    if default is _NO_DEFAULT:
        # A default over several lines reaches papermill as its first line only, e.g. "[".
        first = parameter.default_source.lstrip()[:1]
        return {"[": list, "{": dict}.get(first)
    if default is None:
        return list if _LIST_HINT.search(parameter.comment) else None
    if isinstance(default, tuple):
        return list
    return type(default)


def _mismatch(parameter: Parameter, raw: str, expected: type) -> ParameterError:
    return ParameterError(
        f"parameter {parameter.name} expects {_TYPE_NAMES[expected]}, got {raw!r}",
        hint=f"the chapter's default is {parameter.default_source}",
    )


def _load_yaml(parameter: Parameter, raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ParameterError(
            f"parameter {parameter.name} expects a YAML value, got {raw!r}: {exc}",
            hint=f"the chapter's default is {parameter.default_source}",
        ) from None


def _as_list(parameter: Parameter, raw: str) -> list[Any]:
    value = _load_yaml(parameter, raw)
    if isinstance(value, list):
        return value
    if isinstance(value, dict) or value is None:
        raise _mismatch(parameter, raw, list)
    # A scalar is a comma-separated list: `admin` -> ["admin"], `a, b` -> ["a", "b"].
    items = [item.strip() for item in raw.split(",") if item.strip()]
    default = parameter.default
    if (
        isinstance(default, list | tuple)
        and default
        and not any(isinstance(item, str) for item in default)
    ):
        return [yaml.safe_load(item) for item in items]
    return items


def coerce(parameter: Parameter, raw: str) -> Any:
    """Convert the command-line string `raw` to the type of `parameter`'s default.

    A string default keeps `raw` as it is, so `1.30` stays "1.30". A list default
    takes a YAML list (`[a, b]`) or comma-separated items (`a,b`, or `a` for one
    item). A dict default takes a YAML mapping, bool, int and float defaults take
    those types. A default of `None` takes any YAML value, or a list when the
    annotation or the comment of its line says list. A value of the wrong type
    raises `ParameterError`.
    """
    expected = _expected_type(parameter)
    if expected is str:
        return raw
    if expected is None:
        if parameter.default is _NO_DEFAULT:
            return raw
        if raw == "None":
            return None
        return _load_yaml(parameter, raw)
    if expected is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _mismatch(parameter, raw, bool)
    if expected in (int, float):
        try:
            return expected(raw)
        except ValueError:
            raise _mismatch(parameter, raw, expected) from None
    if expected is list:
        return _as_list(parameter, raw)
    value = _load_yaml(parameter, raw)
    if not isinstance(value, expected):
        raise _mismatch(parameter, raw, expected)
    return value


def is_reference(value: object) -> bool:
    """Return True when `value` names where a secret is (`env:NAME`, `file:/path`)."""
    return isinstance(value, str) and value.startswith(REFERENCE_PREFIXES)


def secret_env_name(parameter_name: str) -> str:
    """Return the environment variable that carries a secret parameter to the kernel."""
    return SECRET_ENV_PREFIX + parameter_name.upper()


def secret_injection(parameter: Parameter, raw: str) -> tuple[str, dict[str, str]]:
    """Return the reference to inject for a secret parameter and the environment it needs.

    A value that is already a reference is injected unchanged and needs no
    environment. Any other value goes into `CLUSTERBOOK_SECRET_<NAME>`.
    """
    if is_reference(raw):
        return raw, {}
    variable = secret_env_name(parameter.name)
    return f"env:{variable}", {variable: raw}
