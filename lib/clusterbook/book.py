"""The `clusterbook book` commands: build the HTML book without executing anything.

`build` stages the book into a fresh folder under `_build/`, never in place over
notebooks/. The stage holds `_config.yml`, `intro.md`, a `_toc.yml` generated
from the staged chapters, and one notebook per chapter. A chapter comes from the
latest complete run (or `--run`) when that run executed it, else from notebooks/.
Before and after Jupyter Book runs, the build searches everything it staged and
produced for the values of known secrets and fails when it finds one, deleting
that output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from clusterbook import chapters as chapter_index
from clusterbook import leaks, parameters, paths, runner
from clusterbook.errors import ClusterbookError

log = logging.getLogger(__name__)

#: files at the repository root that every staged book needs
BOOK_FILES = ("_config.yml", "intro.md")
SECRET_MASK = leaks.MASK
#: file the build writes into every output folder, so a later build may replace that folder
OUTPUT_MARKER = ".clusterbook-book"
_OUTPUT_HINT = "give a new or empty folder, or one an earlier `clusterbook book build` wrote"
_LOG_TAIL_LINES = 30


class BookError(ClusterbookError):
    """The book could not be staged or built."""


class SecretInBook(BookError):
    """A known secret value was found in a staged notebook or in the built book."""

    def __init__(self, found: Sequence[leaks.Leak], stage: str) -> None:
        self.leaks = list(found)
        listed = "\n".join(f"  {leak}" for leak in self.leaks[:20])
        super().__init__(
            f"the {stage} contains secret values; nothing was published:\n{listed}",
            hint="find where the chapter prints or stores the secret and pass it as a "
            "Secret (masked) instead; the secret values themselves are not shown here",
        )


@dataclass
class BuildResult:
    """The output folder of a build and the sources it used."""

    html_dir: Path
    run_dir: Path | None
    executed: list[str] = field(default_factory=list)
    unexecuted: list[str] = field(default_factory=list)
    masked_parameters: int = 0
    seconds: float = 0.0
    #: chapters of an incomplete run that did not succeed
    incomplete: list[str] = field(default_factory=list)
    #: secret sources of the run that the build could not search for
    unverified_sources: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        """The book's start page."""
        return self.html_dir / "index.html"


# Sources and secrets ---------------------------------------------------------------------


def choose_run(runs_dir: Path, reference: str | None) -> Path | None:
    """Return the run to build from: `reference`, else the latest complete run, else None."""
    if reference:
        return runner.find_run(runs_dir, reference)
    return runner.latest_complete_run(runs_dir)


def executed_notebooks(run_dir: Path) -> dict[str, Path]:
    """Return chapter name -> executed notebook for the chapters that succeeded in a run."""
    record = runner.load_record(run_dir)
    found = {}
    for entry in record.get("chapters", []):
        notebook = run_dir / entry["notebook"]
        if entry.get("status") == "succeeded" and notebook.is_file():
            found[entry["name"]] = notebook
    return found


def _registered_secret_values() -> list[str]:
    """Return the values registered with the mask registry of this process."""
    from clusterbook import secrets

    return secrets.registered_values()


def known_secrets(
    run_dir: Path | None,
    chapter_paths: Iterable[Path],
    extra: Sequence[leaks.KnownSecret] = (),
) -> list[leaks.KnownSecret]:
    """Collect the secret values to search for, without storing or printing them.

    Sources: the `env:`/`file:` sources a run record names, the references that
    secret parameters have as defaults, `CLUSTERBOOK_SECRET_*` variables set now,
    and values registered with `clusterbook.secrets` in this process.
    """
    sources: list[str] = []
    if run_dir is not None:
        sources.extend(runner.load_record(run_dir).get("secret_sources", []))
    for path in chapter_paths:
        for parameter in parameters.declared_parameters(path).values():
            if parameter.secret and parameters.is_reference(parameter.default):
                sources.append(parameter.default)
    sources.extend(
        f"env:{name}" for name in os.environ if name.startswith(parameters.SECRET_ENV_PREFIX)
    )
    found = leaks.from_sources(sources)
    found.extend(
        leaks.KnownSecret("the clusterbook.secrets mask registry", value)
        for value in _registered_secret_values()
    )
    found.extend(extra)
    return found


@dataclass
class RunSecretChecks:
    """How the build searches for the secrets of a run whose sources it cannot read now."""

    #: (source, stored fingerprint) pairs to search for by salted hash
    fingerprints: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: sources the run read that the build can neither read nor search for by fingerprint
    unverified: list[str] = field(default_factory=list)


def run_secret_checks(run_dir: Path | None) -> RunSecretChecks:
    """Work out which secrets of a run the build must search for by fingerprint.

    A source whose current value differs from the value the run fingerprinted (a
    regenerated file, a `-p` value, an unset variable) is searched for by its
    fingerprints. A source that the run could not read either is skipped. A run
    recorded before fingerprints existed leaves its unreadable sources unverified.
    """
    checks = RunSecretChecks()
    if run_dir is None:
        return checks
    record = runner.load_record(run_dir)
    fingerprints = record.get("secret_fingerprints")
    for source in dict.fromkeys(record.get("secret_sources", [])):
        value = leaks.read_source(source)
        if fingerprints is None or source not in fingerprints:
            if not value:
                checks.unverified.append(source)
            continue
        for stored in fingerprints[source] or []:
            if not value or not leaks.matches_fingerprint(value, stored):
                checks.fingerprints.append((source, stored))
    return checks


def _scan(
    paths_to_scan: Sequence[Path],
    secrets: Sequence[leaks.KnownSecret],
    checks: RunSecretChecks,
) -> list[leaks.Leak]:
    found = leaks.scan_files(paths_to_scan, secrets)
    found.extend(leaks.scan_files_by_fingerprint(paths_to_scan, checks.fingerprints))
    return found


def check_run_complete(run_dir: Path, allow_incomplete: bool) -> list[str]:
    """Raise `BookError` when the run did not complete, unless `allow_incomplete`.

    Returns the chapters of the run that did not succeed (empty for a complete run).
    """
    record = runner.load_record(run_dir)
    status = record.get("status")
    entries = record.get("chapters", [])
    missing = [entry["name"] for entry in entries if entry.get("status") != "succeeded"]
    if status == "complete" and not missing:
        return []
    included = [entry["name"] for entry in entries if entry.get("status") == "succeeded"]
    if not allow_incomplete:
        raise BookError(
            f"run {run_dir.name} is {status}, not complete: chapters from the run: "
            f"{', '.join(included) or 'none'}; not executed or failed: {', '.join(missing)}",
            hint=f"resume it (clusterbook run --resume {run_dir.name}), choose a complete "
            "run, or pass --allow-incomplete to build with those chapters unexecuted",
        )
    return missing


def mask_secret_parameters(notebook: nbformat.NotebookNode) -> int:
    """Replace the injected values of the notebook's secret parameters by the mask.

    Secret parameters are those whose line in the `parameters` cell carries
    `# secret`. References (`env:NAME`, `file:/path`) are kept, because they name a
    place, not a value. Returns the number of values masked.
    """
    secret_names = parameters.secret_names(parameters.parameters_cell_source(notebook))
    if not secret_names:
        return 0
    masked = 0
    stored = notebook.metadata.get("papermill", {}).get("parameters", {})
    for name in secret_names:
        if name in stored and not parameters.is_reference(stored[name]):
            stored[name] = SECRET_MASK
            masked += 1
    for cell in notebook.cells:
        if "injected-parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        lines = []
        for line in cell.source.splitlines():
            name, sep, value = line.partition(" = ")
            if sep and name.strip() in secret_names:
                try:
                    literal = json.loads(value) if value.startswith('"') else None
                except json.JSONDecodeError:
                    literal = None
                if not parameters.is_reference(literal):
                    line = f'{name} = "{SECRET_MASK}"'
                    masked += 1
            lines.append(line)
        cell.source = "\n".join(lines)
    return masked


# Output folder ---------------------------------------------------------------------------


def check_output(output: Path, root: Path, default: Path) -> None:
    """Raise `BookError` unless the build may replace the folder `output`.

    The build deletes the output folder before it moves the new HTML there. So it
    takes only a missing or empty folder, the default `_build/html`, or a folder
    that carries the marker file of an earlier build. It never takes the
    repository root, a folder that contains it, the notebooks folder, or $HOME.
    """
    home = Path.home().resolve()
    protected = {
        root: "the repository root",
        root / "notebooks": "the notebooks folder",
        home: "your home folder",
    }
    for folder, what in protected.items():
        if output == folder:
            raise BookError(
                f"--output {output} is {what}; the build would delete its contents",
                hint=_OUTPUT_HINT,
            )
    if root.is_relative_to(output) or home.is_relative_to(output):
        raise BookError(
            f"--output {output} contains the repository or your home folder; "
            "the build would delete its contents",
            hint=_OUTPUT_HINT,
        )
    if output == default or not output.exists():
        return
    if not output.is_dir():
        raise BookError(f"--output {output} exists and is not a folder", hint=_OUTPUT_HINT)
    if any(output.iterdir()) and not (output / OUTPUT_MARKER).is_file():
        raise BookError(
            f"--output {output} is not empty and no earlier clusterbook build wrote it "
            f"(it has no {OUTPUT_MARKER} file); the build would delete its contents",
            hint=_OUTPUT_HINT,
        )


# Staging and building --------------------------------------------------------------------


def stage(
    root: Path,
    stage_dir: Path,
    notebooks_dir: Path,
    run_dir: Path | None,
) -> tuple[list[str], list[str], int]:
    """Copy the book sources into `stage_dir` and write its `_toc.yml`.

    Returns the chapter names taken from the run, those taken unexecuted from
    `notebooks_dir`, and the number of secret parameter values masked.
    """
    available = chapter_index.discover(notebooks_dir)
    if not available:
        raise BookError(
            f"no chapter notebooks (NNN_slug.ipynb) in {notebooks_dir}",
            hint="run from the repository root",
        )
    for name in BOOK_FILES:
        if not (root / name).is_file():
            raise BookError(f"{root / name} is missing", hint="restore it from git")
        shutil.copy2(root / name, stage_dir / name)

    from_run = executed_notebooks(run_dir) if run_dir else {}
    (stage_dir / "notebooks").mkdir()
    executed, unexecuted, masked = [], [], 0
    staged = []
    for chapter in available:
        source = from_run.get(chapter.name, chapter.path)
        (executed if chapter.name in from_run else unexecuted).append(chapter.name)
        notebook = nbformat.read(source, as_version=4)
        masked += mask_secret_parameters(notebook)
        target = stage_dir / "notebooks" / chapter.path.name
        nbformat.write(notebook, target)
        staged.append(chapter_index.Chapter(chapter.number, chapter.slug, target))
    (stage_dir / "_toc.yml").write_text(chapter_index.toc_yaml(staged), encoding="utf-8")
    return executed, unexecuted, masked


def jupyter_book_command() -> list[str]:
    """Return the command that runs Jupyter Book 1.x from the current environment."""
    script = Path(sys.executable).parent / "jupyter-book"
    if script.is_file():
        return [str(script)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise BookError(
        "the jupyter-book command was not found next to this Python or on PATH",
        hint="install the pinned requirements: .venv/bin/pip install -r requirements.txt",
    )


def run_jupyter_book(stage_dir: Path, work_dir: Path) -> Path:
    """Build the staged book into `work_dir/_build/html` and return that folder."""
    log_path = work_dir / "jupyter-book.log"
    command = [*jupyter_book_command(), "build", str(stage_dir), "--path-output", str(work_dir)]
    with log_path.open("w", encoding="utf-8") as log_file:
        completed = subprocess.run(
            command, stdout=log_file, stderr=subprocess.STDOUT, cwd=stage_dir, check=False
        )
    if completed.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        shown = "\n".join(tail[-_LOG_TAIL_LINES:])
        raise BookError(
            f"jupyter-book build failed with exit status {completed.returncode}:\n{shown}",
            hint=f"the full log is {log_path}",
        )
    html_dir = work_dir / "_build" / "html"
    if not (html_dir / "index.html").is_file():
        raise BookError(f"jupyter-book finished but {html_dir / 'index.html'} is missing")
    return html_dir


def build(
    root: Path | None = None,
    output: Path | None = None,
    run: str | None = None,
    use_runs: bool = True,
    extra_secrets: Sequence[leaks.KnownSecret] = (),
    allow_incomplete: bool = False,
    allow_unverified_secrets: bool = False,
) -> BuildResult:
    """Build the HTML book and return where it landed.

    `run` names the run to take executed notebooks from (default: the latest
    complete run; `use_runs=False` builds from notebooks/ only). A run that did not
    complete raises `BookError` unless `allow_incomplete`. `output` is the folder
    that receives the HTML (default `_build/html`, see `check_output`). Raises
    `SecretInBook` when a known secret value is found in a staged notebook or a
    built file, and `BookError` when a secret source of the run can be neither read
    nor searched for by fingerprint, unless `allow_unverified_secrets`.
    """
    started = time.monotonic()
    root = (root or paths.repo_root()).resolve()
    default_output = root / "_build" / "html"
    output = (output or default_output).resolve()
    check_output(output, root, default_output)
    notebooks_dir = root / "notebooks"
    run_dir = choose_run(root / "runs", run) if (use_runs or run) else None
    missing = check_run_complete(run_dir, allow_incomplete) if run_dir else []
    checks = run_secret_checks(run_dir)
    if checks.unverified and not allow_unverified_secrets:
        raise BookError(
            f"cannot search the book for the secrets of run {run_dir.name} from "
            f"{', '.join(checks.unverified)}: the build cannot read them now and the run "
            "stored no fingerprint of their values",
            hint="set the variables or restore the files the run read, or pass "
            "--allow-unverified-secrets to build without searching for them",
        )
    if checks.unverified:
        log.warning("not searching for the secrets from %s", ", ".join(checks.unverified))

    work_dir = root / "_build" / "book-work"
    if work_dir.exists():
        shutil.rmtree(work_dir)
    stage_dir = work_dir / "src"
    stage_dir.mkdir(parents=True)

    executed, unexecuted, masked = stage(root, stage_dir, notebooks_dir, run_dir)
    secrets = known_secrets(run_dir, sorted(stage_dir.glob("notebooks/*.ipynb")), extra_secrets)

    found = _scan([stage_dir], secrets, checks)
    if found:
        shutil.rmtree(work_dir)
        raise SecretInBook(found, "staged book sources")

    html_dir = run_jupyter_book(stage_dir, work_dir)
    found = _scan([work_dir / "_build"], secrets, checks)
    if found:
        shutil.rmtree(work_dir)
        raise SecretInBook(found, "built book")
    if (html_dir / "_sources").exists():
        shutil.rmtree(work_dir)
        raise BookError(
            "the built book contains _sources/ copies of the notebooks",
            hint="keep `html_copy_source: false` under sphinx: config: in _config.yml",
        )

    (html_dir / OUTPUT_MARKER).write_text(
        "Written by clusterbook book build, which replaces this folder on the next build.\n",
        encoding="utf-8",
    )
    check_output(output, root, default_output)
    if output.exists():
        shutil.rmtree(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(html_dir), str(output))
    return BuildResult(
        html_dir=output,
        run_dir=run_dir,
        executed=executed,
        unexecuted=unexecuted,
        masked_parameters=masked,
        seconds=round(time.monotonic() - started, 1),
        incomplete=missing,
        unverified_sources=checks.unverified,
    )


# Command line ----------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `book` sub-command with `build` and `toc`."""
    parser = subparsers.add_parser("book", help="build the HTML book (never executes notebooks)")
    actions = parser.add_subparsers(dest="book_command", metavar="ACTION", required=True)

    build_parser = actions.add_parser(
        "build",
        help="build HTML from the latest complete run, or from the unexecuted notebooks",
        description="Build the HTML book from the executed notebooks of the latest complete "
        "run under runs/ (or RUN); chapters the run did not execute come from notebooks/.",
    )
    build_parser.add_argument(
        "--run", metavar="RUN", help="run id or folder to take executed notebooks from"
    )
    build_parser.add_argument(
        "--no-run", action="store_true", help="build from notebooks/ only, ignoring runs/"
    )
    build_parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="folder for the HTML (default: _build/html); it must be new, empty or "
        "written by an earlier build, because the build replaces it",
    )
    build_parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="build from a failed or interrupted --run; its missing chapters have no outputs",
    )
    build_parser.add_argument(
        "--allow-unverified-secrets",
        action="store_true",
        help="build even when secrets the run read can be neither read again nor "
        "searched for by fingerprint",
    )
    build_parser.set_defaults(func=build_command)

    toc_parser = actions.add_parser(
        "toc", help="print the _toc.yml that lists the chapters in notebooks/"
    )
    toc_parser.add_argument(
        "--write", action="store_true", help="write it to _toc.yml instead of printing it"
    )
    toc_parser.set_defaults(func=toc_command)


def build_command(args: argparse.Namespace) -> int:
    """Build the book and print where the HTML landed."""
    if not getattr(args, "verbose", False):
        logging.getLogger("papermill").setLevel(logging.WARNING)
    if args.run and args.no_run:
        raise BookError("--run and --no-run contradict each other", hint="give one of them")
    print("building the book (this does not execute any notebook) ...", flush=True)
    result = build(
        output=args.output,
        run=args.run,
        use_runs=not args.no_run,
        allow_incomplete=args.allow_incomplete,
        allow_unverified_secrets=args.allow_unverified_secrets,
    )
    if result.incomplete:
        print(
            f"WARNING: run {result.run_dir.name} is not complete; chapters that failed or "
            f"did not run: {', '.join(result.incomplete)}"
        )
    if result.unverified_sources:
        print(
            "WARNING: the book was not searched for the secrets from "
            + ", ".join(result.unverified_sources)
        )
    if result.run_dir:
        print(
            f"executed chapters from run {result.run_dir.name}: {len(result.executed)} "
            f"({', '.join(result.executed) or 'none'})"
        )
    else:
        print("no complete run under runs/: the book shows the chapters without outputs")
    if result.unexecuted and result.run_dir:
        print(f"chapters without outputs: {', '.join(result.unexecuted)}")
    if result.masked_parameters:
        print(f"masked {result.masked_parameters} secret parameter value(s)")
    print(f"built in {result.seconds:.1f} s: {result.index}")
    return 0


def toc_command(args: argparse.Namespace) -> int:
    """Print or write `_toc.yml` for the chapters in notebooks/."""
    root = paths.repo_root()
    text = chapter_index.toc_yaml(chapter_index.discover(root / "notebooks"))
    if args.write:
        (root / "_toc.yml").write_text(text, encoding="utf-8")
        print(f"wrote {root / '_toc.yml'}")
    else:
        print(text, end="")
    return 0
