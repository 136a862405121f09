"""Run one task on many hosts in parallel and collect one `HostResult` per host.

A task that raises is turned into a `failed` result for its host; the other hosts carry
on. When every host has finished and at least one failed, `fan_out` raises one
`HostsFailed` that lists every failed host with its error and keeps all results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

from clusterbook.errors import ClusterbookError, HostsFailed
from clusterbook.inventory import Host
from clusterbook.results import HostResult, Results

log = logging.getLogger(__name__)

#: default number of hosts worked on at the same time
MAX_WORKERS = 20
#: a progress bar appears only for steps still running after this many seconds
PROGRESS_AFTER = 2.0

Task = Callable[[Host], HostResult]


# Worker threads live as long as the process, because starting a thread costs more than a
# command on a warm connection. A fan-out started from inside a worker (a task that fans out
# again) gets its own short-lived executor, so it cannot wait on its own pool.
_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()
_worker = threading.local()


def _shared_executor(max_workers: int) -> ThreadPoolExecutor:
    with _executors_lock:
        executor = _executors.get(max_workers)
        if executor is None:
            executor = ThreadPoolExecutor(
                max_workers=max_workers, thread_name_prefix=f"clusterbook-{max_workers}"
            )
            _executors[max_workers] = executor
        return executor


def _run_in_worker(task: Task, host: Host) -> HostResult:
    _worker.active = True
    try:
        return _run_task(task, host)
    finally:
        _worker.active = False


def _run_task(task: Task, host: Host) -> HostResult:
    started = time.monotonic()
    try:
        result = task(host)
    except ClusterbookError as exc:
        log.info("[%s] failed: %s", host.name, exc.message)
        text = getattr(exc, "detail", exc.message)
        if exc.hint:
            text += f"\nhint: {exc.hint}"
        return HostResult(
            host.name,
            status="failed",
            message=text,
            error=exc,
            duration=time.monotonic() - started,
        )
    except Exception as exc:  # a bug or an unexpected library error: keep the other hosts going
        log.exception("[%s] unexpected error", host.name)
        return HostResult(
            host.name,
            status="failed",
            message=f"{type(exc).__name__}: {exc}",
            error=exc,
            duration=time.monotonic() - started,
        )
    if not result.duration:
        result.duration = time.monotonic() - started
    return result


def fan_out(
    hosts: Sequence[Host],
    task: Task,
    *,
    title: str = "",
    max_workers: int = MAX_WORKERS,
    raise_on_failure: bool = True,
    progress: bool = True,
) -> Results:
    """Run `task(host)` for every host, at most `max_workers` at a time.

    Results come back in the order of `hosts`. A progress bar (tqdm) appears when the
    step is still running after 2 seconds.
    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    by_host: dict[str, HostResult] = {}
    if len(hosts) == 1:
        by_host[hosts[0].name] = _run_task(task, hosts[0])
    elif hosts:
        nested = getattr(_worker, "active", False)
        executor = (
            ThreadPoolExecutor(max_workers=min(max_workers, len(hosts)))
            if nested
            else _shared_executor(max_workers)
        )
        try:
            futures: dict[Future[HostResult], Host] = {
                executor.submit(_run_in_worker, task, host): host for host in hosts
            }
            done, pending = wait(futures, timeout=PROGRESS_AFTER if progress else None)
            if pending:
                _wait_with_progress(futures, done, pending, title)
            for future, host in futures.items():
                by_host[host.name] = future.result()
        finally:
            if nested:
                executor.shutdown(wait=False)
    results = Results((by_host[h.name] for h in hosts), title=title)
    if raise_on_failure and results.failed:
        raise hosts_failed(results)
    return results


def _wait_with_progress(futures, done, pending, title: str) -> None:
    # Plain-text tqdm rather than tqdm.auto: a widget progress bar would be saved into an
    # executed notebook as a widget reference, which the published book cannot show.
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is pinned in requirements.txt, but progress is optional
        wait(pending)
        return
    label = title if len(title) <= 40 else title[:37] + "..."
    with tqdm(
        total=len(futures), initial=len(done), desc=label or "hosts", unit="host", leave=False
    ) as bar:
        while pending:
            newly_done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            if newly_done:
                bar.update(len(newly_done))


def hosts_failed(results: Results) -> HostsFailed:
    """Build the error that lists every failed host of `results`."""
    failed = {
        r.host: (r.message or r.stderr.strip() or f"exit code {r.exit_code}")
        for r in results.failed
    }
    where = f" in {results.title!r}" if results.title else ""
    lines = [f"{len(failed)} of {len(results)} hosts failed{where}:"]
    for host, error in failed.items():
        first, *rest = error.splitlines() or [""]
        lines.append(f"  {host}: {first}")
        lines.extend(f"    {line}" for line in rest[:20])
    return HostsFailed("\n".join(lines), results=results, failed=failed)
