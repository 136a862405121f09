"""Checks that read like sentences: `group.verify.service_running("haproxy")`.

Each check runs on every host (also in check mode, since it only reads) and raises one
`VerificationFailed` after all hosts returned, naming each failing host with the command,
the expected and the actual value. A passing check returns the `Results`.
"""

from __future__ import annotations

import base64
import ipaddress
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from clusterbook.errors import ClusterbookError, VerificationFailed
from clusterbook.fanout import fan_out
from clusterbook.inventory import Host
from clusterbook.results import HostResult, HostValues, Results
from clusterbook.secrets import mask, reveal
from clusterbook.ssh import get_connection

if TYPE_CHECKING:
    from clusterbook.cluster import HostGroup


def _compare(
    stdout: str,
    exit_code: int,
    *,
    expected_stdout: str | None,
    expected_exit: int | None,
    contains: str | None,
) -> tuple[str, str] | None:
    """Return (expected, actual) when the output does not match, else None."""
    actual = stdout.strip()
    if expected_exit is not None and exit_code != expected_exit:
        return f"exit code {expected_exit}", f"exit code {exit_code}: {actual[-500:]}"
    if expected_stdout is not None and actual != expected_stdout.strip():
        return repr(expected_stdout.strip()), repr(actual[-500:])
    if contains is not None and contains not in stdout:
        return f"output containing {contains!r}", repr(actual[-500:])
    return None


#: seconds between two attempts of a check given `retry_seconds`
RETRY_INTERVAL = 1.0


class Verify:
    """`group.verify`: checks of observable state."""

    def __init__(self, group: HostGroup) -> None:
        self.group = group

    def command(
        self,
        command: str,
        *,
        stdout: str | None = None,
        exit_code: int | None = 0,
        contains: str | None = None,
        become: bool | None = None,
        description: str | None = None,
        retry_seconds: float = 0,
    ) -> Results:
        """Run `command` and expect its exit code, exact stripped stdout and/or a substring.

        `retry_seconds` is for a service that has just (re)started and may not answer yet:
        a host whose output does not match runs the command again once a second until it
        matches or `retry_seconds` have passed, and only then counts as failed.
        """
        if retry_seconds < 0:
            raise ValueError(f"retry_seconds must be 0 or more, got {retry_seconds}")
        label = description or command

        def task(host: Host) -> HostResult:
            deadline = time.monotonic() + retry_seconds
            while True:
                result = get_connection(host).run(command, become=become)
                mismatch = _compare(
                    result.stdout,
                    result.exit_code,
                    expected_stdout=stdout,
                    expected_exit=exit_code,
                    contains=contains,
                )
                if mismatch is None or time.monotonic() >= deadline:
                    break
                time.sleep(RETRY_INTERVAL)
            status, message = "ok", label
            if mismatch:
                status = "failed"
                message = f"{label}: expected {mismatch[0]}, got {mismatch[1]}"
                if retry_seconds:
                    message += f" (still after {retry_seconds:g} s of retries)"
                if result.stderr.strip():
                    message += f" (stderr: {result.stderr.strip()[-300:]})"
            return HostResult.from_command(
                host.name, result, status=status, command=command, message=message, data=mismatch
            )

        results = fan_out(
            self.group.hosts,
            task,
            title=f"verify {label}",
            raise_on_failure=False,
            max_workers=self.group.cluster.max_workers,
        )
        failed = results.failed
        if failed:
            first = failed[0]
            lines = [f"verification failed on {len(failed)} of {len(results)} hosts: {label}"]
            lines += [f"  {r.host}: {r.message}" for r in failed]
            expected, actual = first.data if first.data else (None, None)
            error = VerificationFailed(
                "\n".join(lines),
                host=first.host,
                command=command,
                expected=expected,
                actual=actual,
            )
            error.results = results  # type: ignore[attr-defined]
            raise error
        return results

    def service_running(self, name: str, *, retry_seconds: float = 0) -> Results:
        """Check that the systemd unit is active."""
        return self.command(
            f"systemctl is-active {shlex.quote(name)}",
            stdout="active",
            exit_code=None,
            description=f"{name} is running",
            retry_seconds=retry_seconds,
        )

    def service_enabled(self, name: str) -> Results:
        """Check that the systemd unit is enabled."""
        return self.command(
            f"systemctl is-enabled {shlex.quote(name)}",
            stdout="enabled",
            exit_code=None,
            description=f"{name} is enabled",
        )

    def port_listening(
        self, port: int, *, protocol: str = "tcp", retry_seconds: float = 0
    ) -> Results:
        """Something listens on `port` (any address), according to `ss`."""
        flag = "-ltnH" if protocol == "tcp" else "-lunH"
        return self.command(
            f"ss {flag} 'sport = :{int(port)}' | grep -q . && echo listening || echo closed",
            stdout="listening",
            description=f"{protocol} port {port} is listening",
            retry_seconds=retry_seconds,
        )

    def file_contains(self, path: str, text: str) -> Results:
        """Check that the file exists and contains `text`."""
        return self.command(
            f"grep -qF -- {shlex.quote(text)} {shlex.quote(path)} && echo found || echo missing",
            stdout="found",
            become=True,
            description=f"{path} contains {text!r}",
        )

    def file_exists(self, path: str) -> Results:
        return self.command(
            f"test -e {shlex.quote(path)} && echo exists || echo missing",
            stdout="exists",
            become=True,
            description=f"{path} exists",
        )

    def package_installed(self, name: str) -> Results:
        """Check that the Debian package is installed."""
        return self.command(
            f"dpkg-query -W -f='${{db:Status-Status}}' {shlex.quote(name)} 2>/dev/null "
            "|| echo not-installed",
            stdout="installed",
            exit_code=None,
            description=f"package {name} is installed",
        )


def _check_lab_address(url: str) -> None:
    """Only loopback and lab/private cluster addresses may be contacted from the controller."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: resolved by the system resolver, as the inventory intends
    if not (address.is_private or address.is_loopback):
        raise ClusterbookError(
            f"refusing to send a request to public address {host}",
            hint="http_get is meant for cluster addresses from the inventory",
        )


def http_get(
    group: HostGroup, url: str, *, auth: tuple[str, Any] | None = None, timeout: float = 10.0
) -> HostValues:
    """GET `url` once per host from this machine; returns host -> (status, body)."""
    answers: dict[str, tuple[int, str]] = {}

    def task(host: Host) -> HostResult:
        target = url.format(address=host.address, host=host.address, name=host.name)
        _check_lab_address(target)
        request = urllib.request.Request(target)
        if auth is not None:
            user, password = auth
            token = base64.b64encode(f"{user}:{reveal(password)}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return HostResult(host.name, status="failed", message=f"GET {target} failed: {reason}")
        answers[host.name] = (status, mask(body) or "")
        return HostResult(host.name, status="ok", message=f"HTTP {status}")

    fan_out(group.hosts, task, title=f"GET {url}", max_workers=group.cluster.max_workers)
    return HostValues({h.name: answers[h.name] for h in group.hosts}, title=f"GET {url}")


__all__ = ["Verify", "http_get", "Results"]
