"""Result tables: text and HTML rendering, counts, worst status per host."""

from __future__ import annotations

import pytest
from clusterbook.results import HostResult, HostValues, Results


def sample() -> Results:
    return Results(
        [
            HostResult("alpha", status="ok", exit_code=0, stdout="fine\n", duration=0.01),
            HostResult("beta", status="changed", message="created /etc/x", diff="+x\n"),
            HostResult("gamma", status="failed", message="exit code 2: boom"),
            HostResult("delta", status="skipped", message="(check mode) would run: x"),
        ],
        title="demo",
    )


def test_results_mapping_order():
    results = sample()
    assert list(results) == ["alpha", "beta", "gamma", "delta"]
    assert results["alpha"].stdout == "fine\n"


def test_results_lists_and_ok():
    results = sample()
    assert [r.host for r in results.failed] == ["gamma"]
    assert [r.host for r in results.changed] == ["beta"]
    assert [r.host for r in results.skipped] == ["delta"]
    assert results.ok is False
    assert results.counts() == {"ok": 1, "changed": 1, "failed": 1, "skipped": 1}


def test_missing_host_key_error_names_hosts():
    with pytest.raises(KeyError, match="alpha, beta"):
        sample()["nope"]


def test_text_table():
    text = str(sample())
    assert text.splitlines()[0] == "demo"
    assert "host" in text.splitlines()[1]
    assert "gamma" in text
    assert "exit code 2: boom" in text
    assert "--- diff on beta ---" in text
    assert "(1 ok, 1 changed, 1 failed, 1 skipped)" in text


def test_html_table_escapes():
    results = Results([HostResult("h<1>", status="ok", stdout="<script>")])
    page = results._repr_html_()
    assert "<table" in page
    assert "&lt;script&gt;" in page
    assert "<script>" not in page


def test_step_rows_keep_every_operation():
    step = Results(title="step")
    step.extend(Results([HostResult("a", status="changed")], title="op one"))
    step.extend(Results([HostResult("a", status="ok")], title="op two"))
    assert len(step.rows) == 2
    assert step["a"].status == "changed"
    assert "operation" in str(step)
    assert "op two" in step._repr_html_()


def test_invalid_status_rejected():
    with pytest.raises(ValueError, match="invalid status"):
        HostResult("a", status="done")


def test_host_values_table():
    values = HostValues({"a": {"active": "active", "enabled": "enabled"}}, title="svc")
    assert values["a"]["active"] == "active"
    assert "active=active" in str(values)
    assert "<table" in values._repr_html_()
