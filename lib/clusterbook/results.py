"""Per-host results of a command or operation, and their rendering as tables.

`Results` maps host name to `HostResult` and renders one row per host: HTML in Jupyter
(`_repr_html_`), plain text in a terminal (`__str__`). All text that reaches a result is
masked (see `clusterbook.secrets`), so a table never shows a secret value.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from clusterbook.secrets import mask

STATUSES = ("ok", "changed", "failed", "skipped")
_STATUS_COLORS = {
    "ok": "#2e7d32",
    "changed": "#b26a00",
    "failed": "#c62828",
    "skipped": "#546e7a",
}
#: characters of stdout a table cell shows before cutting
CELL_LIMIT = 300


@dataclass
class HostResult:
    """Outcome on one host: status, command output, diff and a short message."""

    host: str
    status: str = "ok"
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    diff: str = ""
    message: str = ""
    command: str = ""
    #: the exception behind a `failed` status, if any
    error: BaseException | None = field(default=None, repr=False)
    #: operation-specific data (facts, parsed state)
    data: Any = field(default=None, repr=False)
    #: the step or command this result belongs to, shown when a table mixes several
    operation: str = ""
    #: True when `changed` is only a prediction: the operation ran in check mode
    check_mode: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"invalid status {self.status!r}, expected one of {STATUSES}")

    @classmethod
    def from_command(
        cls,
        host: str,
        result: Any,
        *,
        status: str,
        command: str,
        message: str = "",
        data: Any = None,
    ) -> HostResult:
        """Build the result of one command run: its exit code, output and duration."""
        return cls(
            host,
            status=status,
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            duration=result.duration,
            command=command,
            message=message,
            data=data,
        )

    def __setattr__(self, name: str, value: Any) -> None:
        # The dataclass __init__ also goes through here, so every text field is masked.
        if name in ("stdout", "stderr", "diff", "message", "command") and isinstance(value, str):
            value = mask(value)
        object.__setattr__(self, name, value)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def changed(self) -> bool:
        return self.status == "changed"

    def summary(self) -> str:
        """Return the text of a table cell: the message, else the start of the output."""
        if self.message:
            return self.message
        text = self.stdout.strip() or self.stderr.strip()
        if len(text) > CELL_LIMIT:
            text = text[:CELL_LIMIT] + " ..."
        return text


_RANK = {"failed": 3, "changed": 2, "ok": 1, "skipped": 0}


class Results(Mapping[str, HostResult]):
    """Results of one step on many hosts, in host order; renders as a table.

    As a mapping it gives one result per host. A step's combined results keep every row
    (one per operation and host) for the table, and map each host to its worst result.
    """

    def __init__(self, results: Iterable[HostResult] = (), *, title: str = "") -> None:
        self._by_host: dict[str, HostResult] = {}
        self._rows: list[HostResult] = []
        self.title = mask(title) or ""
        for result in results:
            self.add(result)

    def __getitem__(self, host: str) -> HostResult:
        try:
            return self._by_host[host]
        except KeyError:
            raise KeyError(
                f"no result for host {host!r}; hosts in these results: "
                f"{', '.join(self._by_host) or 'none'}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_host)

    def __len__(self) -> int:
        return len(self._by_host)

    def add(self, result: HostResult) -> None:
        """Add a row; the host's mapping entry becomes the worse of the old and new result."""
        if not result.operation:
            result.operation = self.title
        self._rows.append(result)
        current = self._by_host.get(result.host)
        if current is None or _RANK[result.status] >= _RANK[current.status]:
            self._by_host[result.host] = result

    def extend(self, other: Results) -> None:
        """Append every row of another step's results."""
        for result in other.rows:
            self.add(result)

    @property
    def rows(self) -> list[HostResult]:
        """Every result row, in the order added."""
        return list(self._rows)

    @property
    def failed(self) -> list[HostResult]:
        return [r for r in self._by_host.values() if r.status == "failed"]

    @property
    def changed(self) -> list[HostResult]:
        return [r for r in self._by_host.values() if r.status == "changed"]

    @property
    def skipped(self) -> list[HostResult]:
        return [r for r in self._by_host.values() if r.status == "skipped"]

    @property
    def ok(self) -> bool:
        """True when no host failed."""
        return not self.failed

    def stdout(self) -> dict[str, str]:
        """Host name to stripped stdout."""
        return {name: r.stdout.strip() for name, r in self._by_host.items()}

    def counts(self) -> dict[str, int]:
        """Number of rows per status."""
        counts = dict.fromkeys(STATUSES, 0)
        for result in self._rows:
            counts[result.status] += 1
        return counts

    def _mixed(self) -> bool:
        return len({r.operation for r in self._rows}) > 1

    # Rendering

    def _counts_line(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in self.counts().items() if n)

    def __repr__(self) -> str:
        return f"<Results {self.title!r}: {self._counts_line() or 'no hosts'}>"

    def __str__(self) -> str:
        lines = []
        if self.title:
            lines.append(self.title)
        mixed = self._mixed()
        header = ("operation",) if mixed else ()
        rows = [(*header, "host", "status", "exit", "time", "output")]
        for r in self._rows:
            summary = r.summary().replace("\n", " | ")
            exit_code = "" if r.exit_code is None else str(r.exit_code)
            operation = (r.operation,) if mixed else ()
            rows.append((*operation, r.host, r.status, exit_code, f"{r.duration:.2f}s", summary))
        columns = len(rows[0]) - 1
        widths = [max(len(row[i]) for row in rows) for i in range(columns)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(columns)]
            lines.append("  ".join(cells) + "  " + row[columns])
        for r in self._rows:
            if r.diff:
                lines.append(f"--- diff on {r.host} ---")
                lines.append(r.diff.rstrip("\n"))
        lines.append(f"({self._counts_line() or 'no hosts'})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        mixed = self._mixed()
        parts = ['<div class="clusterbook-results">']
        if self.title:
            parts.append(f"<strong>{html.escape(self.title)}</strong>")
        operation_header = "<th style='text-align:left'>operation</th>" if mixed else ""
        parts.append(
            '<table style="border-collapse:collapse;font-family:monospace">'
            f"<thead><tr>{operation_header}<th style='text-align:left'>host</th>"
            "<th>status</th><th>exit</th><th>time</th>"
            "<th style='text-align:left'>output</th></tr></thead><tbody>"
        )
        for r in self._rows:
            color = _STATUS_COLORS[r.status]
            exit_code = "" if r.exit_code is None else str(r.exit_code)
            summary = html.escape(r.summary()).replace("\n", "<br>")
            operation = (
                f"<td style='text-align:left'>{html.escape(r.operation)}</td>" if mixed else ""
            )
            parts.append(
                f"<tr>{operation}<td style='text-align:left'>{html.escape(r.host)}</td>"
                f"<td style='color:{color};font-weight:bold'>{r.status}</td>"
                f"<td>{exit_code}</td><td>{r.duration:.2f}s</td>"
                f"<td style='text-align:left'>{summary}</td></tr>"
            )
        parts.append("</tbody></table>")
        for r in self._rows:
            if r.diff:
                label = f"{r.operation} on {r.host}" if mixed else r.host
                parts.append(
                    f"<details><summary>diff: {html.escape(label)}</summary>"
                    f"<pre>{html.escape(r.diff)}</pre></details>"
                )
        parts.append(f"<small>{html.escape(self._counts_line() or 'no hosts')}</small></div>")
        return "".join(parts)


class HostValues(dict):
    """A dict host -> value (facts, HTTP responses) that renders as a two-column table."""

    def __init__(self, values: Mapping[str, Any], *, title: str = "") -> None:
        super().__init__(values)
        self.title = title

    def _rows(self) -> list[tuple[str, str]]:
        return [(str(k), mask(_format_value(v)) or "") for k, v in self.items()]

    def __str__(self) -> str:
        rows = self._rows()
        width = max((len(k) for k, _ in rows), default=4)
        lines = [self.title] if self.title else []
        lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td style='text-align:left'>{html.escape(k)}</td>"
            f"<td style='text-align:left'><pre style='margin:0'>{html.escape(v)}</pre></td></tr>"
            for k, v in self._rows()
        )
        title = f"<strong>{html.escape(self.title)}</strong>" if self.title else ""
        return f"{title}<table style='font-family:monospace'><tbody>{body}</tbody></table>"


def _format_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_format_value(v) for v in value)
    return str(value)
