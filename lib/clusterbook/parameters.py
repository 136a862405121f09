"""Chapter parameters: what a notebook declares, typed values and secret references.

A chapter's `parameters` cell declares its parameters with defaults. Values from
the command line arrive as strings, and `coerce` converts each one to the type of
the parameter's default. So `-p k8s_version 1.30` stays the string "1.30" when
the default is a string, where papermill's own `-p` would turn it into 1.3.

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
        )
        for name, info in found.items()
    }


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_ANNOTATED_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list}


def _expected_type(parameter: Parameter) -> type | None:
    annotated = _ANNOTATED_TYPES.get(parameter.annotation)
    if annotated is not None:
        return annotated
    default = parameter.default
    if default is _NO_DEFAULT or default is None:
        return None
    if isinstance(default, tuple):
        return list
    return type(default)


def coerce(parameter: Parameter, raw: str) -> Any:
    """Convert the command-line string `raw` to the type of `parameter`'s default.

    A string default keeps `raw` as it is. A default of `None` (or one that is not
    a literal) takes `raw` as a string, except that `None` and `null` give None.
    """
    expected = _expected_type(parameter)
    if expected is None:
        return None if raw in ("None", "null") else raw
    if expected is str:
        return raw
    if expected is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ParameterError(
            f"parameter {parameter.name} expects true or false, got {raw!r}",
            hint=f"pass -p {parameter.name} true (or false)",
        )
    if expected in (int, float):
        try:
            return expected(raw)
        except ValueError:
            kind = "an integer" if expected is int else "a number"
            raise ParameterError(
                f"parameter {parameter.name} expects {kind}, got {raw!r}",
                hint=f"the chapter's default is {parameter.default_source}",
            ) from None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ParameterError(
            f"parameter {parameter.name} expects YAML for a {expected.__name__}, "
            f"got {raw!r}: {exc}",
            hint=f"the chapter's default is {parameter.default_source}",
        ) from None
    if not isinstance(value, expected):
        raise ParameterError(
            f"parameter {parameter.name} expects a {expected.__name__}, got {raw!r}",
            hint=f"the chapter's default is {parameter.default_source}",
        )
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
