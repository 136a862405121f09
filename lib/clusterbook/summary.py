"""Per-host counts of what a chapter did: the closing table of every notebook.

`Cluster.summary()` counts the results of every command and operation the cluster ran
since it was loaded. A `changed` result from an operation in check mode is counted as
"would change", never as "changed". So a chapter run twice shows zero changes the second
time, even where part of it can only run in check mode on that target.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from clusterbook.results import HostResult

COLUMNS = ("ok", "changed", "would change", "failed", "skipped")


def _column(result: HostResult) -> str:
    if result.status == "changed" and result.check_mode:
        return "would change"
    return result.status


class Summary:
    """Per-host counts of results, and the list of results that changed or would change."""

    def __init__(
        self, history: Iterable[tuple[str, HostResult]], hosts: list[str], *, check: bool
    ) -> None:
        self.check = check
        #: host -> column -> number of results
        self.counts: dict[str, dict[str, int]] = {h: dict.fromkeys(COLUMNS, 0) for h in hosts}
        #: (host, step, operation, column, message) for every result that is not `ok`
        self.items: list[tuple[str, str, str, str, str]] = []
        for step, result in history:
            column = _column(result)
            self.counts.setdefault(result.host, dict.fromkeys(COLUMNS, 0))[column] += 1
            if column != "ok":
                self.items.append((result.host, step, result.operation, column, result.message))

    def _total(self, column: str) -> int:
        return sum(counts[column] for counts in self.counts.values())

    @property
    def changed(self) -> int:
        """Results that really changed a host."""
        return self._total("changed")

    @property
    def would_change(self) -> int:
        """Results that would have changed a host, from operations run in check mode."""
        return self._total("would change")

    @property
    def failed(self) -> int:
        return self._total("failed")

    def by_host(self) -> dict[str, list[str]]:
        """Host -> the operations that changed it."""
        changed: dict[str, list[str]] = {host: [] for host in self.counts}
        for host, _step, operation, column, _message in self.items:
            if column == "changed":
                changed.setdefault(host, []).append(operation)
        return changed

    def _headline(self) -> str:
        mode = " (check mode: nothing was changed)" if self.check else ""
        return (
            f"{self.changed} changed, {self.would_change} would change, "
            f"{self.failed} failed on {len(self.counts)} "
            f"{'host' if len(self.counts) == 1 else 'hosts'}{mode}"
        )

    def __repr__(self) -> str:
        return f"<Summary {self._headline()}>"

    def __str__(self) -> str:
        rows = [("host", *COLUMNS)]
        rows += [(host, *(str(c[k]) for k in COLUMNS)) for host, c in self.counts.items()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [self._headline()]
        for row in rows:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        for host, step, operation, column, message in self.items:
            where = f"{step}: {operation}" if step and step != operation else operation
            lines.append(f"{column:12}  {host}  {where}  {message}".rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ("host", *COLUMNS))
        body = "".join(
            "<tr><td style='text-align:left'>"
            + html.escape(host)
            + "</td>"
            + "".join(f"<td>{counts[c] or ''}</td>" for c in COLUMNS)
            + "</tr>"
            for host, counts in self.counts.items()
        )
        parts = [
            '<div class="clusterbook-summary">',
            f"<strong>{html.escape(self._headline())}</strong>",
            '<table style="border-collapse:collapse;font-family:monospace">',
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        ]
        if self.items:
            parts.append('<table style="border-collapse:collapse;font-family:monospace">')
            parts.append(
                "<thead><tr><th>result</th><th style='text-align:left'>host</th>"
                "<th style='text-align:left'>step / operation</th>"
                "<th style='text-align:left'>message</th></tr></thead><tbody>"
            )
            for host, step, operation, column, message in self.items:
                where = f"{step}: {operation}" if step and step != operation else operation
                parts.append(
                    f"<tr><td>{html.escape(column)}</td><td style='text-align:left'>"
                    f"{html.escape(host)}</td><td style='text-align:left'>{html.escape(where)}"
                    f"</td><td style='text-align:left'>{html.escape(message)}</td></tr>"
                )
            parts.append("</tbody></table>")
        parts.append("</div>")
        return "".join(parts)
