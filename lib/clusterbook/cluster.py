"""`Cluster` and `HostGroup`: the objects a notebook works with.

`Cluster.load(inventory, limit=..., check=...)` reads the inventory; `cluster.group(name)`
and `cluster.select(pattern)` return a `HostGroup`, whose `run()` and operation namespaces
(`apt`, `file`, `systemd`, `sysctl`, `modules`, `server`, `facts`, `verify`) fan out over
its hosts. `cluster.step(title)` groups operations, shows one combined table and runs the
queued service restarts (handlers) when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from clusterbook import paths, requirements, runrecord
from clusterbook.errors import ClusterbookError, ParameterError
from clusterbook.fanout import MAX_WORKERS, fan_out
from clusterbook.inventory import Host, Inventory
from clusterbook.results import HostResult, HostValues, Results
from clusterbook.ssh import get_connection
from clusterbook.summary import Summary

log = logging.getLogger(__name__)


def _display(obj: Any) -> None:
    """Show an object as rich output in Jupyter, or print it in a terminal."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(obj)
            return
    except ImportError:
        pass
    print(obj)


def _display_header(title: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        if get_ipython() is not None and type(get_ipython()).__name__ != "TerminalInteractiveShell":
            import html

            display(HTML(f"<h4>&#9654; {html.escape(title)}</h4>"))
            return
    except ImportError:
        pass
    print(f"== {title} ==")


class _Step:
    def __init__(self, title: str) -> None:
        self.title = title
        self.results = Results(title=title)


class Cluster:
    """The hosts of one inventory after `limit`, with check mode, handlers and caches."""

    def __init__(self, inventory: Inventory, *, limit: str | None = None, check: bool = False):
        # A string such as "False" (papermill -r, or YAML 'no' quoted) would be truthy and
        # silently switch check mode on, so only real booleans (and 0/1) are accepted.
        if check not in (True, False):
            raise ParameterError(
                f"check is {check!r} ({type(check).__name__}), expected True or False",
                name="check",
                hint="pass it with -p (papermill parses -p check True as a boolean), not -r",
            )
        if limit is not None and not isinstance(limit, str):
            raise ParameterError(
                f"limit is {limit!r} ({type(limit).__name__}), expected a host pattern string "
                "or None",
                name="limit",
                hint='e.g. -p limit "control_plane:!fenn"',
            )
        if isinstance(limit, str) and not limit.strip():
            # An empty pattern (say, from an unset shell variable) would
            # otherwise select every host.
            raise ParameterError(
                "limit is empty; give a host pattern, or None for every host",
                name="limit",
                hint='e.g. -p limit allyrion or -p limit "control_plane:!fenn"',
            )
        self.inventory = inventory
        self.limit = limit
        self.check = bool(check)
        self.hosts: list[Host] = inventory.select(self.limit)
        self.max_workers = MAX_WORKERS
        self._handlers: dict[str, list[str]] = {}
        self._started_in_step: set[tuple[str, str]] = set()
        self._handlers_lock = threading.Lock()
        self._step: _Step | None = None
        self._facts_cache: dict[tuple[str, str], Any] = {}
        self._requirements: list[requirements.Requirement] = []
        #: (step title, result) of every command and operation run so far, for `summary()`
        self.history: list[tuple[str, HostResult]] = []

    @classmethod
    def load(
        cls, inventory: str | Path | Inventory, *, limit: str | None = None, check: bool = False
    ) -> Cluster:
        """Read an inventory file (or take a parsed `Inventory`) and apply `limit`."""
        if not isinstance(inventory, Inventory):
            # nbmake runs a chapter from notebooks/, where "inventory/lab.yml" is not found
            inventory = Inventory.load(paths.resolve(inventory))
        return cls(inventory, limit=limit, check=check)

    def __repr__(self) -> str:
        mode = ", check mode" if self.check else ""
        return f"<Cluster {self.inventory.path}: {len(self.hosts)} hosts{mode}>"

    # Selecting hosts

    @property
    def all(self) -> HostGroup:
        return HostGroup(self, self.hosts, name="all")

    def group(self, name: str) -> HostGroup:
        """Return the limited hosts of an inventory group (`InventoryError` for an unknown one)."""
        members = {h.name for h in self.inventory.group_hosts(name)}
        return HostGroup(self, [h for h in self.hosts if h.name in members], name=name)

    def select(self, pattern: str) -> HostGroup:
        """Return the limited hosts matching an Ansible host pattern."""
        members = {h.name for h in self.inventory.select(pattern)}
        return HostGroup(self, [h for h in self.hosts if h.name in members], name=pattern)

    def host(self, name: str) -> HostGroup:
        return self.select(name)

    def inventory_table(self) -> HostValues:
        """Hosts with address, user and groups, as a table."""
        return HostValues(
            {
                h.name: {"address": h.address, "user": h.user or "", "groups": " ".join(h.groups)}
                for h in self.hosts
            },
            title=f"{self.inventory.path} ({len(self.hosts)} hosts"
            + (f", limit {self.limit}" if self.limit else "")
            + ")",
        )

    # Steps and handlers

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Results]:
        """Group the operations of one step: a header, one combined table, then handlers."""
        if self._step is not None:
            raise ClusterbookError(
                f"step {title!r} started inside step {self._step.title!r}",
                hint="steps cannot be nested; end the outer `with cluster.step(...)` first",
            )
        _display_header(title + (" (check mode)" if self.check else ""))
        step = _Step(title)
        self._step = step
        failed = False
        try:
            yield step.results
        except BaseException:
            failed = True
            raise
        finally:
            self._step = None
            try:
                if not failed:
                    step.results.extend(self.flush_handlers(display=False))
            finally:
                self._started_in_step.clear()
                if len(step.results):
                    _display(step.results)

    def _record(self, results: Results) -> None:
        # The run record counts exactly the results that `summary()` counts, read-only
        # commands included, so run.json and the chapter's closing table agree.
        step_title = self._step.title if self._step is not None else ""
        self.history.extend((step_title, result) for result in results.rows)
        for result in results.rows:
            runrecord.result(
                result.operation, result.host, _run_record_status(result), step_title or None
            )
        if self._step is not None:
            self._step.results.extend(results)

    def _record_handlers(self, results: Results) -> None:
        self.history.extend(("handlers", result) for result in results.rows)
        for result in results.rows:
            runrecord.result(result.operation, result.host, _run_record_status(result), "handlers")

    def summary(self) -> Summary:
        """Count what every command and operation of this cluster did, per host."""
        return Summary(self.history, [h.name for h in self.hosts], check=self.check)

    def _queue_restart(self, host: str, service: str) -> None:
        with self._handlers_lock:
            queue = self._handlers.setdefault(host, [])
            if service not in queue:
                queue.append(service)

    def _note_started(self, host: str, service: str) -> None:
        """Drop the queued restart of a service that this step started from stopped."""
        with self._handlers_lock:
            self._started_in_step.add((host, service))

    def flush_handlers(self, *, display: bool = False) -> Results:
        """Restart every queued service once per host (in queue order) and clear the queue."""
        with self._handlers_lock:
            queued = {
                host: [s for s in services if (host, s) not in self._started_in_step]
                for host, services in self._handlers.items()
            }
            self._handlers = {}
        queued = {h: s for h, s in queued.items() if s}
        if not queued:
            return Results(title="handlers")
        hosts = [self.inventory.hosts[name] for name in queued]

        def restart(host: Host) -> HostResult:
            services = queued[host.name]
            command = "systemctl restart " + " ".join(services)
            result = get_connection(host).run(command, become=True)
            status = "changed" if result.exit_code == 0 else "failed"
            message = f"restarted {', '.join(services)} (handler)"
            if result.exit_code != 0:
                message = (
                    f"handler restart of {', '.join(services)} failed: {result.stderr.strip()}"
                )
            return HostResult.from_command(
                host.name, result, status=status, command=command, message=message
            )

        results = fan_out(hosts, restart, title="handlers", max_workers=self.max_workers)
        self._record_handlers(results)
        if display:
            _display(results)
        return results

    # Facts

    def refresh_facts(self) -> None:
        """Forget cached facts, so the next access gathers them again."""
        self._facts_cache.clear()

    # Requirements

    def requires(self, *capabilities: str, why: str = "") -> contextlib.AbstractContextManager:
        """Run the block in check mode on hosts that lack any of `capabilities`, saying so."""
        return requirements.requires(self, capabilities, why=why)

    def has(self, capability: str) -> bool:
        """True when every selected host has `capability`."""
        requirements.validate_names([capability])
        return all(capability in h.capabilities for h in self.hosts)

    def missing_capabilities(self, host: Host) -> list[str]:
        missing = []
        for requirement in self._requirements:
            missing += [c for c in requirement.capabilities if c not in host.capabilities]
        return list(dict.fromkeys(missing))


def _run_record_status(result: HostResult) -> str:
    """Return the run-record status of a result, counted like the `Summary` columns."""
    if result.status == "changed" and result.check_mode:
        return "would_change"
    return result.status


def _log_changes(results: Results) -> None:
    """Log every change (or predicted change) per host, for batch runs without a display."""
    for result in results.rows:
        if result.status == "changed":
            log.info("[%s] %s: %s", result.host, result.operation, result.message or "changed")


class HostGroup(Sequence[Host]):
    """Some hosts of a cluster; runs commands and operations on all of them in parallel."""

    def __init__(self, cluster: Cluster, hosts: list[Host], *, name: str = "") -> None:
        self.cluster = cluster
        self.hosts = list(hosts)
        self.name = name

    def __repr__(self) -> str:
        return f"<HostGroup {self.name}: {', '.join(self.names) or 'no hosts'}>"

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, str):
            for host in self.hosts:
                if host.name == index:
                    return HostGroup(self.cluster, [host], name=index)
            raise KeyError(
                f"host {index!r} is not in group {self.name!r} ({', '.join(self.names)})"
            )
        if isinstance(index, slice):
            return HostGroup(self.cluster, self.hosts[index], name=self.name)
        return self.hosts[index]

    def __len__(self) -> int:
        return len(self.hosts)

    def __bool__(self) -> bool:
        return bool(self.hosts)

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    @property
    def check(self) -> bool:
        return self.cluster.check

    # Commands

    def run(
        self,
        command: str,
        *,
        changes: bool = False,
        become: bool | None = None,
        timeout: float | None = 600.0,
        stream: bool = False,
        stdin: str | bytes | None = None,
        check_exit: bool = True,
    ) -> Results:
        """Run a shell command on every host.

        A command with `changes=True` is skipped in check mode (and on hosts that lack a
        capability the current `requires` block names); a read-only command always runs.
        Its status is `changed` when it changes things and succeeded, `ok` otherwise, and
        `failed` for a non-zero exit code (with `check_exit=False`, a non-zero exit code
        is reported as `ok` and does not raise).
        """

        def task(host: Host) -> HostResult:
            missing = self.cluster.missing_capabilities(host)
            if changes and (self.cluster.check or missing):
                reason = "check mode" if self.cluster.check else f"lacks {', '.join(missing)}"
                return HostResult(
                    host.name,
                    status="skipped",
                    command=command,
                    message=f"({reason}) would run: {command}",
                )
            result = get_connection(host).run(
                command, become=become, timeout=timeout, stream=stream, stdin=stdin
            )
            if result.exit_code != 0 and check_exit:
                status = "failed"
                message = (
                    f"exit code {result.exit_code}: "
                    + (result.stderr.strip() or result.stdout.strip())[-1000:]
                )
            else:
                status = "changed" if changes else "ok"
                message = ""
            return HostResult.from_command(
                host.name, result, status=status, command=command, message=message
            )

        return self._fan_out(task, title=command)

    def _fan_out(self, task, *, title: str) -> Results:
        try:
            results = fan_out(self.hosts, task, title=title, max_workers=self.cluster.max_workers)
        except ClusterbookError as exc:
            partial = getattr(exc, "results", None)
            if isinstance(partial, Results):
                self.cluster._record(partial)
                _log_changes(partial)
            raise
        self.cluster._record(results)
        _log_changes(results)
        return results

    def apply(self, title: str, operation, *args: Any, **kwargs: Any) -> Results:
        """Fan an operation `operation(ctx, *args, **kwargs) -> HostResult` out over the hosts."""
        from clusterbook.ops.base import OpContext

        def task(host: Host) -> HostResult:
            missing = self.cluster.missing_capabilities(host)
            ctx = OpContext(
                host=host,
                connection=get_connection(host),
                check=self.cluster.check or bool(missing),
                cluster=self.cluster,
                check_reason=f"lacks {', '.join(missing)}" if missing else "",
            )
            return operation(ctx, *args, **kwargs)

        return self._fan_out(task, title=title)

    # Operation namespaces

    @property
    def apt(self):
        from clusterbook.ops.apt import Apt

        return Apt(self)

    @property
    def file(self):
        from clusterbook.ops.files import Files

        return Files(self)

    @property
    def systemd(self):
        from clusterbook.ops.systemd import Systemd

        return Systemd(self)

    @property
    def sysctl(self):
        from clusterbook.ops.sysctl import Sysctl

        return Sysctl(self)

    @property
    def modules(self):
        from clusterbook.ops.modules import Modules

        return Modules(self)

    @property
    def server(self):
        from clusterbook.ops.server import Server

        return Server(self)

    @property
    def facts(self):
        from clusterbook.facts import Facts

        return Facts(self)

    @property
    def verify(self):
        from clusterbook.verify import Verify

        return Verify(self)

    def http_get(self, url: str, *, auth: tuple[str, Any] | None = None, timeout: float = 10.0):
        """GET `url` (with `{address}`/`{name}` filled per host) from this machine."""
        from clusterbook.verify import http_get

        return http_get(self, url, auth=auth, timeout=timeout)
