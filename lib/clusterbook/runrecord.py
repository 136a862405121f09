"""Append operation results and secret sources to the run record of a batch run.

`clusterbook run` sets `CLUSTERBOOK_RUN_RECORD` to a JSON-lines file per chapter
before it starts the chapter's kernel. The library calls `result()` for each host
result and `secret_source()` for each secret it reads. The runner then counts
results per status for `run.json`, and the book build re-reads the named secret
sources to search the HTML for their values. Outside a batch run (Jupyter, nbmake)
the variable is unset and both calls do nothing. The functions take only names and
statuses, so a line contains no value, command output or diff.
"""

from __future__ import annotations

import json
import logging
import os
import threading

#: environment variable naming the JSON-lines file of the chapter that runs
RUN_RECORD_ENV = "CLUSTERBOOK_RUN_RECORD"
#: environment variable naming that chapter, e.g. `006_load_balancer`
CHAPTER_ENV = "CLUSTERBOOK_CHAPTER"

log = logging.getLogger(__name__)
_lock = threading.Lock()


def _append(entry: dict[str, object]) -> None:
    path = os.environ.get(RUN_RECORD_ENV)
    if not path:
        return
    entry = {"chapter": os.environ.get(CHAPTER_ENV), **entry}
    line = json.dumps(entry, sort_keys=True) + "\n"
    try:
        with _lock, open(path, "a", encoding="utf-8") as record:
            record.write(line)
    except OSError as exc:
        # The run goes on without counts; the runner then reports no operations.
        log.warning("failed to append to the run record %s: %s", path, exc)


def result(operation: str, host: str, status: str, step: str | None = None) -> None:
    """Record one host result of a command or operation.

    `status` is `ok`, `changed`, `would_change` (a check-mode operation that would
    have changed the host), `failed` or `skipped`.
    """
    _append(
        {"kind": "result", "operation": operation, "host": host, "status": status, "step": step}
    )


def secret_source(source: str) -> None:
    """Record where a secret was read from (`env:NAME` or `file:/path`), never its value."""
    _append({"kind": "secret", "source": source})
