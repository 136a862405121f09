"""Cluster.summary(): counts per host, with check-mode predictions kept apart."""

from __future__ import annotations

from clusterbook.results import HostResult
from clusterbook.summary import Summary


def make_summary(*results: tuple[str, HostResult], check: bool = False) -> Summary:
    return Summary(list(results), ["allyrion", "bettley"], check=check)


def test_summary_counts_per_host():
    summary = make_summary(
        ("step", HostResult("allyrion", status="ok", operation="apt present haproxy")),
        ("step", HostResult("allyrion", status="changed", operation="file /etc/x")),
        ("step", HostResult("bettley", status="skipped", operation="run")),
    )
    assert summary.counts["allyrion"]["ok"] == 1
    assert summary.counts["allyrion"]["changed"] == 1
    assert summary.counts["bettley"]["skipped"] == 1
    assert summary.changed == 1
    assert summary.would_change == 0


def test_check_mode_change_is_not_a_change():
    predicted = HostResult("bettley", status="changed", operation="file /etc/x", check_mode=True)
    summary = make_summary(("step", predicted))
    assert summary.changed == 0
    assert summary.would_change == 1
    assert summary.counts["bettley"]["would change"] == 1


def test_hosts_without_results_are_listed():
    summary = make_summary()
    assert set(summary.counts) == {"allyrion", "bettley"}
    assert summary.changed == 0
    assert "0 changed" in str(summary)


def test_changed_items_named_by_host():
    summary = make_summary(
        ("Write haproxy.cfg", HostResult("allyrion", status="changed", operation="template cfg")),
    )
    assert summary.by_host()["allyrion"] == ["template cfg"]
    assert summary.by_host()["bettley"] == []
    assert "template cfg" in summary._repr_html_()
    assert "allyrion" in str(summary)
