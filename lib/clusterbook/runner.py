"""Batch runs: execute chapters in book order with papermill, record and resume them.

A run lives in `runs/<UTC timestamp>/`: one executed notebook per chapter, a
`records/` folder with the operation results the library appended while each
chapter ran, and `run.json`, the run record. The record stores each chapter's
status, duration, change counts and injected parameters (secret parameters only
as `env:`/`file:` references). It names where secrets came from, with a salted
fingerprint of each value, so the book build can search its output for them. A
run stops at the first failing chapter, and `resume` continues with that chapter.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import nbformat
import papermill
import yaml
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError
from papermill.exceptions import PapermillExecutionError
from traitlets import default

from clusterbook import chapters as chapter_index
from clusterbook import leaks, parameters, runrecord
from clusterbook.errors import ClusterbookError
from clusterbook.paths import resolve as resolve_path

RUN_FILE = "run.json"
RUN_RECORD_ENV = runrecord.RUN_RECORD_ENV
CHAPTER_ENV = runrecord.CHAPTER_ENV
#: environment variable naming the run, e.g. `20261204T210512Z`
RUN_ID_ENV = "CLUSTERBOOK_RUN_ID"

#: the parameters every chapter declares, set by --inventory, --limit and --check
COMMON_PARAMETERS = ("inventory", "limit", "check")
#: the result counts of a chapter in run.json; `would_change` counts the results of
#: check-mode operations that would have changed a host
STATUS_COUNTS = ("ok", "changed", "would_change", "failed", "skipped")
#: seconds one cell may run when --timeout is not given
DEFAULT_CELL_TIMEOUT = 1800
#: cells papermill adds to an executed notebook that the chapter's source does not have
_ADDED_CELL_TAGS = {"papermill-error-cell-tag", "injected-parameters"}
_ERROR_TEXT_LINES = 12


class IPCKernelManager(AsyncKernelManager):
    """A kernel manager that talks to the kernel over Unix sockets instead of loopback TCP.

    Unix sockets keep other users away from the kernel, and ipykernel 7 does not
    warn about unencrypted TCP on every start. Without a connection file,
    jupyter_client would put the sockets at the relative path `kernel-ipc-N`, which
    two runs at once share, so `kernel_manager_class` gives each chapter a class
    whose sockets live in a private temporary folder.
    """

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"


def kernel_manager_class(socket_dir: Path, kernel_log: Path) -> type[IPCKernelManager]:
    """Return an `IPCKernelManager` subclass whose sockets are `socket_dir/kernel-N` and
    whose kernel writes its own stderr to `kernel_log`.

    The kernel's stderr goes to a file because ipykernel prints a ZMQError traceback
    there when a cell timeout or Ctrl-C stops it mid-reply. The notebook keeps
    everything a cell prints, so the terminal loses nothing a reader needs.
    """

    class PrivateIPCKernelManager(IPCKernelManager):
        @default("ip")
        def _default_ip(self) -> str:
            return str(socket_dir / "kernel")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            with kernel_log.open("ab") as log_file:
                kw.setdefault("stderr", log_file)
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return PrivateIPCKernelManager


class RunError(ClusterbookError):
    """A run cannot start or resume as requested."""


class RunInterrupted(ClusterbookError):
    """A run stopped by Ctrl-C or SIGTERM. Its status is `interrupted`, and it can resume."""

    def __init__(self, run_dir: Path, chapter: str) -> None:
        self.run_dir = run_dir
        self.chapter = chapter
        super().__init__(
            f"run {run_dir.name} interrupted in chapter {chapter}",
            hint=f"continue with: clusterbook run --resume {run_dir.name}",
        )


class ChapterFailed(ClusterbookError):
    """A chapter raised an error; the run stopped there and can resume from it."""

    def __init__(self, run_dir: Path, chapter: str, error: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.chapter = chapter
        self.error = error
        super().__init__(
            failure_summary(run_dir, chapter, error),
            hint=f"fix the cause, then continue with: clusterbook run --resume {run_dir.name}",
        )


@dataclass
class RunSettings:
    """Locations of chapters and runs, and the parameters and execution options of a run."""

    notebooks_dir: Path
    runs_dir: Path
    inventory: str | None = None
    limit: str | None = None
    check: bool = False
    #: (name, value) pairs from `-p NAME VALUE`, values as typed on the command line
    parameters: Sequence[tuple[str, str]] = ()
    kernel_name: str = "python3"
    #: papermill's per-cell progress bar; None shows it only when stderr is a terminal
    progress_bar: bool | None = None
    #: seconds a single cell may run; None waits for ever
    execution_timeout: int | None = DEFAULT_CELL_TIMEOUT
    out: TextIO = field(default_factory=lambda: sys.stdout)


# Run records -----------------------------------------------------------------------------


def new_run_id(runs_dir: Path) -> str:
    """Return a run id from the current UTC time that no folder in `runs_dir` uses yet."""
    base = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate, suffix = base, 1
    while (runs_dir / candidate).exists():
        suffix += 1
        candidate = f"{base}-{suffix}"
    return candidate


def load_record(run_dir: Path) -> dict[str, Any]:
    """Return the run record of `run_dir`."""
    path = run_dir / RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(
            f"{run_dir} is not a run: {RUN_FILE} is missing",
            hint="give a folder under runs/ that `clusterbook run` created",
        ) from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON: {exc}") from None


def save_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Write the run record atomically, so an interrupted run keeps a readable record."""
    path = run_dir / RUN_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def find_run(runs_dir: Path, reference: str) -> Path:
    """Return the run folder named by `reference`: a run id under `runs_dir`, or a path."""
    candidates = [Path(reference), runs_dir / reference]
    for candidate in candidates:
        if (candidate / RUN_FILE).is_file():
            return candidate.resolve()
    raise RunError(
        f"run {reference!r} not found in {runs_dir}",
        hint="give a run id (a folder name under runs/) or the path of a run folder",
    )


def latest_complete_run(runs_dir: Path) -> Path | None:
    """Return the newest run whose chapters all succeeded, or None when there is none."""
    if not runs_dir.is_dir():
        return None
    for run_dir in sorted(runs_dir.iterdir(), reverse=True):
        record_path = run_dir / RUN_FILE
        if not record_path.is_file():
            continue
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        if record.get("status") == "complete":
            return run_dir
    return None


def read_chapter_record(path: Path) -> tuple[dict[str, int], list[str]]:
    """Return the per-status result counts and the secret sources the library appended
    to a chapter's JSON-lines record; lines that are not valid JSON are skipped."""
    counts: Counter[str] = Counter()
    sources: list[str] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(entry, dict):
                continue
            if entry.get("kind") == "secret" and isinstance(entry.get("source"), str):
                sources.append(entry["source"])
            elif entry.get("status") in STATUS_COUNTS:
                counts[entry["status"]] += 1
    return {status: counts[status] for status in STATUS_COUNTS}, sources


# Parameters ------------------------------------------------------------------------------


@dataclass
class _Plan:
    #: chapter name -> parameters to inject
    parameters: dict[str, dict[str, Any]]
    #: chapter name -> names of its secret parameters
    secret_parameters: dict[str, list[str]]
    #: environment variables that carry secret values to the kernel (never stored)
    secret_env: dict[str, str]
    #: where secrets come from (`env:NAME`, `file:/path`), stored in the run record
    secret_sources: list[str]


def _common_values(settings: RunSettings) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if settings.inventory is not None:
        inventory = Path(settings.inventory).expanduser()
        values["inventory"] = str(inventory.resolve() if inventory.exists() else inventory)
    if settings.limit is not None:
        values["limit"] = settings.limit
    if settings.check:
        values["check"] = True
    return values


def plan_parameters(
    selected: Sequence[chapter_index.Chapter],
    settings: RunSettings,
) -> _Plan:
    """Work out the parameters of each chapter from the settings.

    A `-p` name that no selected chapter declares raises `RunError`.
    """
    plan = _Plan({}, {}, {}, [])
    unused = {name for name, _ in settings.parameters}
    common = _common_values(settings)
    for chapter in selected:
        declared = parameters.declared_parameters(chapter.path)
        values = {name: value for name, value in common.items() if name in declared}
        secret_names = sorted(name for name, item in declared.items() if item.secret)
        for name in secret_names:
            default = declared[name].default
            if parameters.is_reference(default):
                plan.secret_sources.append(default)
        for name, raw in settings.parameters:
            if name not in declared:
                continue
            unused.discard(name)
            if declared[name].secret:
                reference, env = parameters.secret_injection(declared[name], raw)
                values[name] = reference
                plan.secret_env.update(env)
                plan.secret_sources.append(reference)
            else:
                values[name] = parameters.coerce(declared[name], raw)
        plan.parameters[chapter.name] = values
        plan.secret_parameters[chapter.name] = secret_names
    if unused:
        names = ", ".join(sorted(unused))
        raise RunError(
            f"no selected chapter declares the parameter(s) {names}",
            hint="check the spelling against the chapter's parameters cell "
            "(papermill --help-notebook NOTEBOOK lists them)",
        )
    plan.secret_sources = list(dict.fromkeys(plan.secret_sources))
    return plan


# Failures --------------------------------------------------------------------------------


def inventory_host_names(path: Path) -> list[str]:
    """Return every host name in an Ansible-style YAML inventory, or [] when unreadable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    names: dict[str, None] = {}

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key == "hosts" and isinstance(value, dict):
                names.update(dict.fromkeys(str(host) for host in value))
            walk(value)

    walk(data)
    return list(names)


def hosts_in_error(text: str, host_names: Sequence[str]) -> list[str]:
    """Return the inventory hosts that an error message names, in inventory order."""
    return [
        name for name in host_names if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text)
    ]


def _failing_cell(notebook_path: Path) -> tuple[int | None, dict[str, Any] | None]:
    """Return the failing cell of an executed notebook and its index in the chapter's
    source (the cells papermill added are not counted), or (None, None)."""
    try:
        notebook = nbformat.read(notebook_path, as_version=4)
    except (OSError, ValueError):
        return None, None
    source_index = 0
    # When the kernel dies, papermill marks every cell completed, so the failing cell
    # is the last one that started.
    last_started: tuple[int | None, dict[str, Any] | None] = (None, None)
    for cell in notebook.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        added = bool(tags & _ADDED_CELL_TAGS)
        papermill_meta = cell.get("metadata", {}).get("papermill", {})
        errored = any(out.get("output_type") == "error" for out in cell.get("outputs", []))
        if errored or papermill_meta.get("exception") or papermill_meta.get("status") == "failed":
            return (None if added else source_index), cell
        if papermill_meta.get("start_time") and cell.get("cell_type") == "code":
            last_started = (None if added else source_index), cell
        if not added:
            source_index += 1
    return last_started


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return ""


def describe_failure(
    exc: BaseException,
    notebook_path: Path,
    inventory: Path | None,
    secrets: Sequence[leaks.KnownSecret],
    timeout: int | None = None,
) -> dict[str, Any]:
    """Return the structured description of a chapter failure for the run record.

    `timeout` is the cell timeout in seconds, named in the message of a cell timeout.
    """
    index, cell = _failing_cell(notebook_path)
    if isinstance(exc, PapermillExecutionError):
        ename, evalue = exc.ename, exc.evalue
        execution_count = exc.exec_count
        source = exc.source
    else:
        ename, evalue = type(exc).__name__, str(exc)
        execution_count = cell.get("execution_count") if cell else None
        source = cell.source if cell else ""
    if isinstance(exc, CellTimeoutError):
        # nbclient's message repeats the cell source; the summary names the cell already.
        limit = f"{timeout} s" if timeout else "its timeout"
        evalue = f"the cell ran longer than {limit} and was stopped (raise it with --timeout)"
    evalue, _ = leaks.scrub(evalue, secrets)
    source, _ = leaks.scrub(source, secrets)
    hosts = hosts_in_error(evalue, inventory_host_names(inventory)) if inventory else []
    return {
        "cell_index": index,
        "execution_count": execution_count,
        "cell_first_line": _first_line(source),
        "ename": ename,
        "evalue": evalue,
        "hosts": hosts,
    }


def failure_summary(run_dir: Path, chapter: str, error: dict[str, Any]) -> str:
    """Return the multi-line summary the command prints when a chapter fails."""
    if error.get("cell_index") is None:
        cell = "the injected parameters or no cell (the kernel failed)"
    else:
        cell = f"index {error['cell_index']}"
        if error.get("execution_count") is not None:
            cell += f" (In [{error['execution_count']}])"
    lines = (error.get("evalue") or "").strip().splitlines()
    text = "\n".join("           " + line for line in lines[:_ERROR_TEXT_LINES]).strip()
    if len(lines) > _ERROR_TEXT_LINES:
        text += f"\n           ... ({len(lines) - _ERROR_TEXT_LINES} more lines in the notebook)"
    hosts = ", ".join(error.get("hosts") or []) or "none named in the error"
    notebook = run_dir / f"{chapter}.ipynb"
    return (
        f"chapter {chapter} failed\n"
        f"  cell:    {cell}: {error.get('cell_first_line', '')}\n"
        f"  hosts:   {hosts}\n"
        f"  error:   {error.get('ename')}: {text}\n"
        f"  notebook: {notebook} (keeps the failing cell and its traceback)"
    )


# Execution -------------------------------------------------------------------------------


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the kernels started inside the block."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in previous.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _chapter_inventory(values: dict[str, Any], chapter: chapter_index.Chapter) -> Path | None:
    inventory = values.get("inventory")
    if inventory is None:
        declared = parameters.declared_parameters(chapter.path)
        if "inventory" in declared:
            inventory = declared["inventory"].default
    if not isinstance(inventory, str) or parameters.is_reference(inventory):
        return None
    with contextlib.chdir(chapter.path.parent):
        return resolve_path(inventory)


def _scrub_notebook_file(path: Path, secrets: Sequence[leaks.KnownSecret]) -> int:
    if not secrets or not path.is_file():
        return 0
    data = json.loads(path.read_text(encoding="utf-8"))
    data, changed = leaks.scrub(data, secrets)
    if changed:
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def _scrub_text_file(path: Path, secrets: Sequence[leaks.KnownSecret]) -> None:
    if not secrets or not path.is_file():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    cleaned, changed = leaks.scrub(text, secrets)
    if changed:
        path.write_text(cleaned, encoding="utf-8")


def _fingerprint_sources(record: dict[str, Any], secret_env: dict[str, str]) -> None:
    """Store a salted fingerprint of each secret source's current value in the record.

    The book build searches for a fingerprint when the source can no longer be read
    (a `-p` value, an unset variable, a regenerated file). A source this process
    cannot read either maps to None: the chapter's kernel, which has the same
    environment and user, could not have read a value from it.
    """
    stored: dict[str, list[dict[str, Any]] | None] = record.setdefault("secret_fingerprints", {})
    for source in record["secret_sources"]:
        variable = source.removeprefix("env:") if source.startswith("env:") else None
        value = secret_env.get(variable) if variable else None
        if value is None:
            value = leaks.read_source(source)
        if not value:
            stored.setdefault(source, None)
            continue
        known = stored.get(source) or []
        if not any(leaks.matches_fingerprint(value, item) for item in known):
            known.append(leaks.fingerprint(value))
        stored[source] = known


def _format_counts(counts: dict[str, int]) -> str:
    shown = [
        f"{counts[status]} {status.replace('_', ' ')}"
        for status in STATUS_COUNTS
        if counts.get(status)
    ]
    return ", ".join(shown) if shown else "no operations recorded"


def _execute_chapters(
    run_dir: Path,
    record: dict[str, Any],
    settings: RunSettings,
    secret_env: dict[str, str],
) -> None:
    """Execute the chapters of `record` that did not succeed yet, saving the record as
    each one starts and ends. Ctrl-C or SIGTERM leaves the record `interrupted`."""
    try:
        _execute_pending(run_dir, record, settings, secret_env)
    except KeyboardInterrupt:
        # Ctrl-C outside a chapter's kernel: between chapters or while saving the record.
        unfinished = [e for e in record["chapters"] if e["status"] in ("running", "pending")]
        for entry in unfinished:
            if entry["status"] == "running":
                entry["status"] = "interrupted"
        record.update(status="interrupted", finished=datetime.now(UTC).isoformat())
        save_record(run_dir, record)
        chapter = unfinished[0]["name"] if unfinished else "none"
        raise RunInterrupted(run_dir, chapter) from None


def _execute_pending(
    run_dir: Path,
    record: dict[str, Any],
    settings: RunSettings,
    secret_env: dict[str, str],
) -> None:
    out = settings.out
    progress_bar = sys.stderr.isatty() if settings.progress_bar is None else settings.progress_bar
    secrets = [leaks.KnownSecret(f"env:{name}", value) for name, value in secret_env.items()]
    entries = record["chapters"]
    records_dir = run_dir / "records"
    records_dir.mkdir(exist_ok=True)
    total = len(entries)
    _fingerprint_sources(record, secret_env)

    for position, entry in enumerate(entries, start=1):
        if entry["status"] == "succeeded":
            continue
        chapter = chapter_index.Chapter(entry["number"], entry["slug"], Path(entry["source"]))
        if not chapter.path.is_file():
            raise RunError(
                f"chapter notebook {chapter.path} not found",
                hint="restore the notebook or start a new run without this chapter",
            )
        output = run_dir / entry["notebook"]
        record_path = records_dir / f"{chapter.name}.jsonl"
        record_path.write_text("", encoding="utf-8")
        env = {
            RUN_RECORD_ENV: str(record_path),
            CHAPTER_ENV: chapter.name,
            RUN_ID_ENV: record["id"],
            **secret_env,
        }

        entry.update(status="running", started=datetime.now(UTC).isoformat(), error=None)
        save_record(run_dir, record)
        print(f"[{position:>{len(str(total))}}/{total}] {chapter.name} ...", file=out, flush=True)

        failure: BaseException | None = None
        started = time.monotonic()
        socket_dir = Path(tempfile.mkdtemp(prefix="clusterbook-kernel-"))
        kernel_log = (records_dir / f"{chapter.name}.kernel.log").resolve()
        try:
            with _environment(env):
                papermill.execute_notebook(
                    str(chapter.path),
                    str(output),
                    parameters=entry["parameters"],
                    kernel_name=settings.kernel_name,
                    progress_bar=progress_bar,
                    log_output=False,
                    cwd=str(chapter.path.parent),
                    execution_timeout=settings.execution_timeout,
                    kernel_manager_class=kernel_manager_class(socket_dir, kernel_log),
                )
        except KeyboardInterrupt:
            entry.update(status="interrupted", duration=round(time.monotonic() - started, 3))
            record.update(status="interrupted", finished=datetime.now(UTC).isoformat())
            save_record(run_dir, record)
            raise RunInterrupted(run_dir, chapter.name) from None
        except Exception as exc:  # any failure stops the run; it is recorded below
            failure = exc
        finally:
            shutil.rmtree(socket_dir, ignore_errors=True)
        duration = round(time.monotonic() - started, 3)

        counts, sources = read_chapter_record(record_path)
        record["secret_sources"] = list(dict.fromkeys([*record["secret_sources"], *sources]))
        _fingerprint_sources(record, secret_env)
        scrubbed = _scrub_notebook_file(output, secrets)
        _scrub_text_file(kernel_log, secrets)
        entry.update(duration=duration, changes=counts)
        if scrubbed:
            entry["scrubbed_strings"] = scrubbed

        if failure is None:
            entry["status"] = "succeeded"
            save_record(run_dir, record)
            print(f"    ok in {duration:.1f} s: {_format_counts(counts)}", file=out, flush=True)
            continue

        inventory = _chapter_inventory(entry["parameters"], chapter)
        error = describe_failure(failure, output, inventory, secrets, settings.execution_timeout)
        entry.update(status="failed", error=error)
        record.update(status="failed", finished=datetime.now(UTC).isoformat())
        save_record(run_dir, record)
        print(f"    FAILED after {duration:.1f} s: {_format_counts(counts)}", file=out, flush=True)
        raise ChapterFailed(run_dir, chapter.name, error) from failure

    record.update(status="complete", finished=datetime.now(UTC).isoformat())
    save_record(run_dir, record)
    changed = sum((entry.get("changes") or {}).get("changed", 0) for entry in entries)
    would_change = sum((entry.get("changes") or {}).get("would_change", 0) for entry in entries)
    predicted = f", {would_change} would change" if record.get("check") or would_change else ""
    print(
        f"run {record['id']} complete: {total} chapter(s), {changed} change(s){predicted}; "
        f"executed notebooks in {run_dir}",
        file=out,
        flush=True,
    )


def start(specs: Sequence[str], settings: RunSettings) -> Path:
    """Run the chapters named by `specs` (all chapters when empty) in book order.

    Returns the run folder. Raises `ChapterFailed` when a chapter fails; the run
    record and the executed notebook stay in the run folder.
    """
    available = chapter_index.discover(settings.notebooks_dir)
    if not available:
        raise RunError(
            f"no chapter notebooks (NNN_slug.ipynb) in {settings.notebooks_dir}",
            hint="run from the repository root or pass the notebooks folder",
        )
    if settings.limit is not None and not settings.limit.strip():
        raise RunError(
            "--limit is empty, so it names no host",
            hint="give a host pattern such as --limit allyrion, or leave out --limit "
            "to run on every host",
        )
    selected = chapter_index.select(available, specs)
    plan = plan_parameters(selected, settings)

    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        # Another run started in the same second may take the id between the two calls.
        run_id = new_run_id(settings.runs_dir)
        run_dir = settings.runs_dir / run_id
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        break
    record: dict[str, Any] = {
        "id": run_id,
        "status": "running",
        "created": datetime.now(UTC).isoformat(),
        "finished": None,
        "notebooks_dir": str(settings.notebooks_dir.resolve()),
        "inventory": settings.inventory,
        "limit": settings.limit,
        "check": settings.check,
        "kernel": settings.kernel_name,
        "secret_sources": plan.secret_sources,
        "chapters": [
            {
                "name": chapter.name,
                "number": chapter.number,
                "slug": chapter.slug,
                "source": str(chapter.path.resolve()),
                "notebook": chapter.path.name,
                "parameters": plan.parameters[chapter.name],
                "secret_parameters": plan.secret_parameters[chapter.name],
                "status": "pending",
                "duration": None,
                "changes": None,
                "error": None,
                "attempts": [],
            }
            for chapter in selected
        ],
    }
    save_record(run_dir, record)
    print(f"run {run_id}: {len(selected)} chapter(s) into {run_dir}", file=settings.out)
    _execute_chapters(run_dir, record, settings, plan.secret_env)
    return run_dir


def resume(reference: str, settings: RunSettings) -> Path:
    """Continue the run named by `reference` from its first chapter that did not succeed.

    The run keeps its parameters. `settings.parameters` may add or override `-p`
    values for the remaining chapters. It must repeat any secret value that was
    given with `-p` before, because secret values are never stored.
    """
    run_dir = find_run(settings.runs_dir, reference)
    record = load_record(run_dir)
    if record.get("status") == "complete":
        raise RunError(
            f"run {record['id']} is complete: every chapter succeeded",
            hint="start a new run with `clusterbook run`",
        )
    remaining = [entry for entry in record["chapters"] if entry["status"] != "succeeded"]
    remaining_chapters = [
        chapter_index.Chapter(entry["number"], entry["slug"], Path(entry["source"]))
        for entry in remaining
    ]
    for chapter in remaining_chapters:
        if not chapter.path.is_file():
            raise RunError(
                f"chapter notebook {chapter.path} not found",
                hint="restore the notebook or start a new run",
            )

    # A -p value for a chapter that already succeeded is accepted and unused, so the
    # original command line can be repeated with --resume.
    remaining_names = set()
    for chapter in remaining_chapters:
        remaining_names.update(parameters.declared_parameters(chapter.path))
    run_names = {name for entry in record["chapters"] for name in entry["parameters"]}
    unknown = {name for name, _ in settings.parameters} - remaining_names - run_names
    if unknown:
        raise RunError(
            f"no chapter of run {record['id']} declares the parameter(s) "
            f"{', '.join(sorted(unknown))}",
            hint="check the spelling against the chapter's parameters cell",
        )
    resume_settings = RunSettings(
        notebooks_dir=settings.notebooks_dir,
        runs_dir=settings.runs_dir,
        parameters=[(name, raw) for name, raw in settings.parameters if name in remaining_names],
    )
    plan = plan_parameters(remaining_chapters, resume_settings)
    for entry in remaining:
        entry["parameters"].update(plan.parameters[entry["name"]])
    _require_secret_env(remaining, plan.secret_env)

    for entry in remaining:
        if entry["status"] in ("failed", "interrupted", "running"):
            _archive_attempt(run_dir, entry)
        entry["status"] = "pending"
    record["secret_sources"] = list(
        dict.fromkeys([*record.get("secret_sources", []), *plan.secret_sources])
    )
    record.update(status="running", finished=None)
    save_record(run_dir, record)
    print(
        f"resuming run {record['id']} at {remaining[0]['name']} ({len(remaining)} chapter(s) left)",
        file=settings.out,
    )
    _execute_chapters(run_dir, record, settings, plan.secret_env)
    return run_dir


def _require_secret_env(entries: Sequence[dict[str, Any]], supplied: dict[str, str]) -> None:
    missing = []
    for entry in entries:
        for name in entry.get("secret_parameters", []):
            value = entry["parameters"].get(name)
            if not isinstance(value, str) or not value.startswith("env:"):
                continue
            variable = value.removeprefix("env:")
            if variable.startswith(parameters.SECRET_ENV_PREFIX) and not (
                variable in supplied or variable in os.environ
            ):
                missing.append(name)
    if missing:
        names = sorted(set(missing))
        raise RunError(
            f"the secret parameter(s) {', '.join(names)} were given with -p and are not "
            "stored in the run",
            hint="give them again: " + " ".join(f"-p {name} VALUE" for name in names),
        )


def _archive_attempt(run_dir: Path, entry: dict[str, Any]) -> None:
    """Keep the notebook of a failed attempt as `<chapter>.attempt-N.ipynb`."""
    attempt = len(entry.get("attempts", [])) + 1
    notebook = run_dir / entry["notebook"]
    kept = None
    if notebook.is_file():
        kept = notebook.with_name(f"{entry['name']}.attempt-{attempt}.ipynb")
        notebook.replace(kept)
    entry.setdefault("attempts", []).append(
        {
            "status": entry["status"],
            "duration": entry.get("duration"),
            "error": entry.get("error"),
            "notebook": kept.name if kept else None,
        }
    )
    entry.update(duration=None, changes=None, error=None)
