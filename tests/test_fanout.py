"""Fan-out: parallel tasks, per-host failures kept, one error listing every failed host."""

from __future__ import annotations

import threading

import pytest
from clusterbook.errors import HostsFailed, HostUnreachable
from clusterbook.fanout import fan_out
from clusterbook.inventory import Host
from clusterbook.results import HostResult

HOSTS = [Host(f"n{i}") for i in range(6)]


def test_results_in_host_order():
    results = fan_out(HOSTS, lambda h: HostResult(h.name, stdout=h.name), title="t")
    assert list(results) == [h.name for h in HOSTS]
    assert results["n3"].stdout == "n3"


def test_tasks_run_in_parallel():
    barrier = threading.Barrier(len(HOSTS), timeout=10)

    def task(host: Host) -> HostResult:
        barrier.wait()  # deadlocks (and times out) unless all tasks run at once
        return HostResult(host.name)

    results = fan_out(HOSTS, task)
    assert results.ok


def test_max_workers_bounds_concurrency():
    running = 0
    peak = 0
    lock = threading.Lock()

    def task(host: Host) -> HostResult:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.02)
        with lock:
            running -= 1
        return HostResult(host.name)

    fan_out(HOSTS, task, max_workers=2)
    assert peak <= 2


def test_failures_listed_after_all_hosts_finish():
    finished = []

    def task(host: Host) -> HostResult:
        finished.append(host.name)
        if host.name == "n1":
            raise HostUnreachable("cannot connect to 10.0.0.1:22: No route to host", host="n1")
        if host.name == "n4":
            raise RuntimeError("unexpected bug")
        return HostResult(host.name, stdout="ok")

    with pytest.raises(HostsFailed) as info:
        fan_out(HOSTS, task, title="demo")
    error = info.value
    assert sorted(finished) == sorted(h.name for h in HOSTS)
    assert set(error.failed) == {"n1", "n4"}
    assert "2 of 6 hosts failed in 'demo'" in str(error)
    assert "n1: cannot connect to 10.0.0.1:22: No route to host" in str(error)
    assert "n4: RuntimeError: unexpected bug" in str(error)
    assert error.results["n0"].stdout == "ok"
    assert error.results["n1"].status == "failed"
    assert isinstance(error.results["n1"].error, HostUnreachable)


def test_no_raise_option_keeps_failures():
    def task(host: Host) -> HostResult:
        raise HostUnreachable("down", host=host.name)

    results = fan_out(HOSTS[:2], task, raise_on_failure=False)
    assert [r.host for r in results.failed] == ["n0", "n1"]


def test_empty_host_list():
    assert len(fan_out([], lambda h: HostResult(h.name))) == 0
