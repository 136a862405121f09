"""Up-front checks of chapter parameters, called in a chapter's set-up cell.

Each function takes the parameter's name and value and raises `ParameterError` naming both
and the fix, so a bad value stops the chapter before it changes any node. A check that
passes returns the value, so a set-up cell can read `port = checks.port("api_port", api_port)`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from typing import Any

from clusterbook.errors import ParameterError

#: Debian package names: lower-case letters, digits, + - . and at least two characters,
#: starting with a letter or digit
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
#: conservative login names: a lower-case letter or _, then lower-case letters, digits, _ or -,
#: and an optional trailing $ (machine accounts)
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]*\$?")
#: tz database names as the zoneinfo directory spells them, e.g. America/New_York
TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def integer(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Check that `value` is an int (not a bool) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(
            f"{name} must be a whole number, got {_describe(value)}",
            name=name,
            hint=f"pass it as a number, e.g. -p {name} {minimum if minimum is not None else 1}",
        )
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f"{minimum}"
        high = "" if maximum is None else f"{maximum}"
        raise ParameterError(
            f"{name} is {value}, outside the allowed range {low}..{high}",
            name=name,
            hint=f"choose {name} from {low or '-inf'} to {high or 'inf'}",
        )
    return value


def port(name: str, value: Any) -> int:
    """Check that `value` is a TCP/UDP port number, 1 to 65535."""
    return integer(name, value, minimum=1, maximum=65535)


def positive_number(name: str, value: Any) -> float:
    """Check that `value` is an int or float greater than zero."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ParameterError(
            f"{name} must be a number greater than 0, got {_describe(value)}",
            name=name,
        )
    return value


def choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Check that `value` is one of `allowed`."""
    if value not in allowed:
        listed = ", ".join(repr(item) for item in allowed)
        raise ParameterError(
            f"{name} is {value!r}, expected one of {listed}",
            name=name,
        )
    return value


def string(name: str, value: Any, *, pattern: str = r"[A-Za-z0-9._@-]+", what: str = "") -> str:
    """Check that `value` is a non-empty string that fully matches `pattern`.

    The default pattern (letters, digits and `. _ @ -`) fits any value that goes into a
    configuration file without quoting, such as an HAProxy `stats auth` user name.
    """
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        allowed = what or f"characters matching {pattern}"
        raise ParameterError(
            f"{name} is {_describe(value)}, expected a non-empty string of {allowed}",
            name=name,
            hint=f"choose a {name} of {allowed} only",
        )
    return value


def string_list(
    name: str, value: Any, *, pattern: str = r"\S+", what: str = "", allow_empty: bool = True
) -> list[str]:
    """Check that `value` is a list (or tuple) of strings that each fully match `pattern`."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ParameterError(
            f"{name} must be a list of strings, got {_describe(value)}",
            name=name,
            hint=f"pass a list with -y, e.g. -y '{name}: [first, second]'",
        )
    if not value and not allow_empty:
        raise ParameterError(f"{name} is an empty list, expected at least one item", name=name)
    bad = [item for item in value if not isinstance(item, str) or not re.fullmatch(pattern, item)]
    if bad:
        allowed = what or f"strings matching {pattern}"
        raise ParameterError(
            f"{name} contains invalid items {bad!r}, expected {allowed}",
            name=name,
        )
    return list(value)


def package_names(name: str, value: Any) -> list[str]:
    """Check that `value` is a list of Debian package names."""
    return string_list(
        name, value, pattern=PACKAGE_NAME.pattern, what="Debian package names", allow_empty=False
    )


def user_names(name: str, value: Any) -> list[str]:
    """Check that `value` is a non-empty list of login names."""
    return string_list(
        name, value, pattern=USER_NAME.pattern, what="login names", allow_empty=False
    )


def timezone(name: str, value: Any) -> str:
    """Check that `value` looks like a tz database name (the hosts check that it exists)."""
    return string(name, value, pattern=TIMEZONE.pattern, what="a zone name such as Europe/Berlin")


def networks(name: str, value: Any) -> list[str]:
    """Check that `value` is a list of IP addresses or networks (CIDR), IPv4 or IPv6."""
    items = string_list(name, value, what="IP addresses or networks such as 10.0.2.0/24")
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ParameterError(
                f"{name} contains {item!r}, which is not an IP address or network",
                name=name,
                hint="write addresses as 10.0.2.5 and networks as 10.0.2.0/24",
            ) from None
    return items


def network(name: str, value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Check that `value` is a network in CIDR notation with no host bits set."""
    try:
        return ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"{name} is {_describe(value)}, not a network in CIDR notation ({exc})",
            name=name,
            hint=f"write it as a network address and prefix, e.g. -p {name} 10.4.0.0/20",
        ) from None


def optional_names(name: str, value: Any) -> list[str] | None:
    """Check that `value` is None or a list of non-empty strings without whitespace."""
    if value is None:
        return None
    return string_list(name, value)


def secret_reference(
    name: str,
    value: Any,
    *,
    environ: dict[str, str] | os._Environ[str] | None = None,
) -> str:
    """Check that `value` is an `env:NAME` or `file:/path` reference whose source has a value.

    An unset or empty environment variable fails here, naming the parameter and the
    variable, so no caller can mistake a missing secret for permission to use another one.
    The reference is not read (the `Secret` class does that); only its shape and, for
    `env:`, whether the variable is set and non-empty are checked.
    """
    environ = os.environ if environ is None else environ
    kind, _, rest = value.partition(":") if isinstance(value, str) else ("", "", "")
    if kind not in ("env", "file") or not rest:
        raise ParameterError(
            f"{name} is not a secret reference (the value is not shown): "
            "expected env:NAME or file:/path",
            name=name,
            hint=f"pass -p {name} env:VARIABLE or -p {name} file:/path/to/secret; "
            "`clusterbook run -p NAME VALUE` turns a plain non-empty value into such a reference",
        )
    if kind == "env" and not environ.get(rest):
        state = "empty" if rest in environ else "not set"
        raise ParameterError(
            f"{name}: environment variable {rest} is {state}",
            name=name,
            hint=f"give {rest} a non-empty value (`clusterbook run -p {name} VALUE` sets one "
            f"for you), or pass another reference: -p {name} env:NAME or file:/path",
        )
    return value
