"""The batch runner: book order, run records, failure summaries, resume, parameters, secrets.

These tests execute tiny throwaway chapters with papermill and the local python3
kernel; they need no lab.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import nbformat
import pytest
from chapter_factory import COMMON_PARAMETERS, RECORD_RESULTS, write_chapter
from clusterbook import chapters, leaks, parameters, runner, runrecord

SECRET_VALUE = "canary-Secret-4f9d"
INVENTORY = """\
all:
  children:
    load_balancer:
      hosts:
        allyrion: {ansible_host: 10.251.0.10}
    control_plane:
      hosts:
        bettley: {ansible_host: 10.251.0.11}
        fenn: {ansible_host: 10.251.0.15}
"""


def make_book(root: Path) -> Path:
    """Write three chapters (out of order on disk) and an inventory; return notebooks/."""
    notebooks = root / "notebooks"
    flag = root / "fixed.flag"
    write_chapter(
        notebooks / "001_first.ipynb",
        COMMON_PARAMETERS
        + 'k8s_version = "1.29"\nreplicas = 2\n'
        + 'stats_password = "env:CLUSTERBOOK_TEST_UNSET"  # secret\n',
        RECORD_RESULTS,
        "print('version', repr(k8s_version), 'replicas', repr(replicas))",
        "import os\n"
        "value = os.environ[stats_password.removeprefix('env:')]\n"
        f"print('secret matches:', value == {SECRET_VALUE!r})",
        "print('inventory parameter:', inventory)",
    )
    write_chapter(
        notebooks / "010_third.ipynb",
        COMMON_PARAMETERS,
        "print('third chapter ran')",
    )
    write_chapter(
        notebooks / "002_second.ipynb",
        COMMON_PARAMETERS,
        "x = 1",
        "from pathlib import Path\n"
        f"if not Path({str(flag)!r}).exists():\n"
        "    raise RuntimeError('allyrion: systemctl is-active haproxy returned inactive, "
        "expected active')",
        "print('second chapter finished')",
    )
    (root / "lab.yml").write_text(INVENTORY, encoding="utf-8")
    return notebooks


def settings_for(root: Path, **overrides) -> runner.RunSettings:
    values = dict(
        notebooks_dir=root / "notebooks",
        runs_dir=root / "runs",
        inventory=str(root / "lab.yml"),
        progress_bar=False,
        execution_timeout=120,
        out=io.StringIO(),
    )
    values.update(overrides)
    return runner.RunSettings(**values)


def outputs_text(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") or output.get("evalue", ""))
    return "".join(texts)


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """A run of every chapter that fails in chapter 002."""
    root = tmp_path_factory.mktemp("book")
    make_book(root)
    settings = settings_for(
        root,
        parameters=[
            ("k8s_version", "1.30"),
            ("replicas", "3"),
            ("stats_password", SECRET_VALUE),
        ],
    )
    with pytest.raises(runner.ChapterFailed) as failure:
        runner.start([], settings)
    return root, failure.value, settings.out.getvalue()


@pytest.fixture(scope="module")
def resumed_run(failed_run):
    root, failure, _ = failed_run
    first_notebook = failure.run_dir / "001_first.ipynb"
    before = first_notebook.stat().st_mtime_ns
    (root / "fixed.flag").write_text("fixed", encoding="utf-8")
    out = io.StringIO()
    settings = settings_for(root, out=out, parameters=[("stats_password", SECRET_VALUE)])
    run_dir = runner.resume(failure.run_dir.name, settings)
    return root, run_dir, before, first_notebook.stat().st_mtime_ns, out.getvalue()


# Failure ---------------------------------------------------------------------------------


def test_failure_names_chapter_cell_host_error(failed_run):
    _, failure, _ = failed_run
    assert failure.chapter == "002_second"
    assert failure.error["cell_index"] == 3
    assert failure.error["cell_first_line"] == "from pathlib import Path"
    assert failure.error["hosts"] == ["allyrion"]
    assert failure.error["ename"] == "RuntimeError"
    assert "haproxy returned inactive" in failure.error["evalue"]


def test_failure_summary_text(failed_run):
    _, failure, _ = failed_run
    summary = str(failure)
    assert "chapter 002_second failed" in summary
    assert "index 3" in summary
    assert "allyrion" in summary
    assert "RuntimeError: allyrion: systemctl is-active haproxy" in summary
    assert f"clusterbook run --resume {failure.run_dir.name}" in summary


def test_failed_notebook_kept_with_failing_cell(failed_run):
    _, failure, _ = failed_run
    notebook = nbformat.read(failure.run_dir / "002_second.ipynb", as_version=4)
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert len(errors) == 1
    assert errors[0].ename == "RuntimeError"


def test_run_stops_at_failed_chapter(failed_run):
    _, failure, output = failed_run
    record = runner.load_record(failure.run_dir)
    statuses = [(entry["name"], entry["status"]) for entry in record["chapters"]]
    assert statuses == [
        ("001_first", "succeeded"),
        ("002_second", "failed"),
        ("010_third", "pending"),
    ]
    assert record["status"] == "failed"
    assert not (failure.run_dir / "010_third.ipynb").exists()
    assert "[1/3] 001_first" in output
    assert "FAILED" in output


def test_run_record_counts_and_durations(failed_run):
    _, failure, _ = failed_run
    first = runner.load_record(failure.run_dir)["chapters"][0]
    assert first["changes"] == {"ok": 2, "changed": 1, "would_change": 0, "failed": 0, "skipped": 0}
    assert first["duration"] > 0
    assert first["notebook"] == "001_first.ipynb"


# Parameters and secrets ------------------------------------------------------------------


def test_string_parameter_keeps_text(failed_run):
    _, failure, _ = failed_run
    text = outputs_text(failure.run_dir / "001_first.ipynb")
    assert "version '1.30' replicas 3" in text
    record = runner.load_record(failure.run_dir)
    assert record["chapters"][0]["parameters"]["k8s_version"] == "1.30"
    assert record["chapters"][0]["parameters"]["replicas"] == 3


def test_inventory_option_injected_absolute(failed_run):
    root, failure, _ = failed_run
    text = outputs_text(failure.run_dir / "001_first.ipynb")
    assert f"inventory parameter: {root / 'lab.yml'}" in text


def test_secret_reaches_kernel_only(failed_run):
    _, failure, _ = failed_run
    text = outputs_text(failure.run_dir / "001_first.ipynb")
    assert "secret matches: True" in text
    injected = runner.load_record(failure.run_dir)["chapters"][0]["parameters"]
    assert injected["stats_password"] == "env:CLUSTERBOOK_SECRET_STATS_PASSWORD"


def test_secret_absent_from_run_folder(failed_run):
    _, failure, _ = failed_run
    for path in failure.run_dir.rglob("*"):
        if path.is_file():
            assert SECRET_VALUE not in path.read_text(encoding="utf-8"), path


def test_secret_sources_recorded(failed_run):
    _, failure, _ = failed_run
    sources = runner.load_record(failure.run_dir)["secret_sources"]
    assert "env:CLUSTERBOOK_TEST_UNSET" in sources
    assert "env:CLUSTERBOOK_SECRET_STATS_PASSWORD" in sources
    assert "file:/nonexistent/recorded-secret" in sources


def test_unknown_parameter_rejected(tmp_path):
    make_book(tmp_path)
    settings = settings_for(tmp_path, parameters=[("k8s_versoin", "1.30")])
    with pytest.raises(runner.RunError, match="k8s_versoin"):
        runner.start(["001"], settings)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_resume_needs_secret_again(failed_run, tmp_path):
    _, failure, _ = failed_run
    copy = tmp_path / "runs" / failure.run_dir.name
    copy.parent.mkdir()
    record = runner.load_record(failure.run_dir)
    record["chapters"][1]["status"] = "failed"
    record["chapters"][1]["secret_parameters"] = ["stats_password"]
    record["chapters"][1]["parameters"]["stats_password"] = "env:CLUSTERBOOK_SECRET_STATS_PASSWORD"
    copy.mkdir()
    runner.save_record(copy, record)
    with pytest.raises(runner.RunError, match="stats_password"):
        runner.resume(
            copy.name, settings_for(tmp_path, notebooks_dir=Path(record["notebooks_dir"]))
        )


# Resume ----------------------------------------------------------------------------------


def test_resume_continues_at_failed_chapter(resumed_run):
    _, run_dir, before, after, output = resumed_run
    record = runner.load_record(run_dir)
    assert record["status"] == "complete"
    assert [entry["status"] for entry in record["chapters"]] == ["succeeded"] * 3
    assert before == after, "the chapter that had succeeded ran again"
    assert "resuming run" in output
    assert "at 002_second" in output
    assert "third chapter ran" in outputs_text(run_dir / "010_third.ipynb")


def test_resume_archives_failed_attempt(resumed_run):
    _, run_dir, *_ = resumed_run
    second = runner.load_record(run_dir)["chapters"][1]
    assert len(second["attempts"]) == 1
    assert second["attempts"][0]["error"]["hosts"] == ["allyrion"]
    assert (run_dir / second["attempts"][0]["notebook"]).is_file()
    assert "second chapter finished" in outputs_text(run_dir / "002_second.ipynb")


def test_latest_complete_run(resumed_run):
    root, run_dir, *_ = resumed_run
    assert runner.latest_complete_run(root / "runs") == run_dir


def test_resume_of_complete_run_rejected(resumed_run):
    root, run_dir, *_ = resumed_run
    with pytest.raises(runner.RunError, match="complete"):
        runner.resume(run_dir.name, settings_for(root))


# Chapter selection and parameter typing (no kernel) -------------------------------------


@pytest.fixture
def chapter_list(tmp_path):
    return chapters.discover(make_book(tmp_path))


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([], ["001_first", "002_second", "010_third"]),
        (["010", "1"], ["001_first", "010_third"]),
        (["001-002"], ["001_first", "002_second"]),
        (["third", "002_second.ipynb"], ["002_second", "010_third"]),
    ],
)
def test_select_in_book_order(chapter_list, specs, expected):
    assert [chapter.name for chapter in chapters.select(chapter_list, specs)] == expected


def test_select_unknown_chapter(chapter_list):
    with pytest.raises(chapters.ChapterNotFound, match="'007'"):
        chapters.select(chapter_list, ["007"])


def test_toc_parts_follow_numbers(chapter_list):
    toc = chapters.toc(chapter_list)
    assert [part["caption"] for part in toc["parts"]] == ["Foundations", "Kubernetes"]
    assert toc["parts"][1]["chapters"] == [{"file": "notebooks/010_third"}]


def _parameter(default_source: str, annotation: str = "None") -> parameters.Parameter:
    return parameters.Parameter("name", default_source, annotation, secret=False)


@pytest.mark.parametrize(
    ("default", "raw", "expected"),
    [
        ('"1.29"', "1.30", "1.30"),
        ('"x"', "007", "007"),
        ("2", "03", 3),
        ("0.5", "1.30", 1.3),
        ("False", "true", True),
        ("True", "no", False),
        ("None", "allyrion", "allyrion"),
        ("None", "None", None),
        ('["a"]', "[b, c]", ["b", "c"]),
        ('["a"]', "admin", ["admin"]),
        ('["a"]', "admin, root", ["admin", "root"]),
        ("[]", "10.0.0.0/8", ["10.0.0.0/8"]),
        ("[1]", "2,3", [2, 3]),
        ("[", "[x]", ["x"]),
        ("None", "null", None),
        ("None", "3", 3),
        ("None", "[admin]", ["admin"]),
        ('{"a": 1}', "{b: 2}", {"b": 2}),
    ],
)
def test_coerce_follows_default_type(default, raw, expected):
    assert parameters.coerce(_parameter(default), raw) == expected


@pytest.mark.parametrize(
    ("annotation", "comment"),
    [("list", ""), ("list[str] | None", ""), ("None", "list of user names")],
)
def test_coerce_none_default_as_list(annotation, comment):
    parameter = parameters.Parameter("users", "None", annotation, secret=False, comment=comment)
    assert parameters.coerce(parameter, "admin") == ["admin"]
    assert parameters.coerce(parameter, "admin,ops") == ["admin", "ops"]


@pytest.mark.parametrize(
    ("default", "raw", "message"),
    [
        ('["a"]', "{b: 2}", "parameter name expects a list, got '{b: 2}'"),
        ('{"a": 1}', "admin", "parameter name expects a mapping, got 'admin'"),
        ("False", "maybe", "parameter name expects true or false, got 'maybe'"),
        ("0.5", "fast", "parameter name expects a number, got 'fast'"),
    ],
)
def test_coerce_rejects_type_mismatch(default, raw, message):
    with pytest.raises(parameters.ParameterError, match=re.escape(message)):
        parameters.coerce(_parameter(default), raw)


def test_coerce_follows_annotation():
    assert parameters.coerce(_parameter("None", "str"), "1.30") == "1.30"


def test_coerce_rejects_bad_integer():
    with pytest.raises(parameters.ParameterError, match="expects an integer, got 'three'"):
        parameters.coerce(_parameter("2"), "three")


def test_secret_comment_marks_parameter():
    source = 'token = "env:A"  # secret\nname = "b"  # not a secret here\npw: str = "x" # secret\n'
    assert parameters.secret_names(source) == {"token", "pw"}


def test_secret_reference_injected_unchanged():
    secret = parameters.Parameter("token", '"env:A"', "None", secret=True)
    assert parameters.secret_injection(secret, "file:/etc/token") == ("file:/etc/token", {})
    reference, env = parameters.secret_injection(secret, "s3cr3t")
    assert reference == "env:CLUSTERBOOK_SECRET_TOKEN"
    assert env == {"CLUSTERBOOK_SECRET_TOKEN": "s3cr3t"}


def test_chapter_record_counts(tmp_path):
    record = tmp_path / "r.jsonl"
    lines = [
        {"kind": "result", "status": "changed"},
        {"kind": "result", "status": "skipped"},
        {"kind": "secret", "source": "env:X"},
    ]
    record.write_text(
        "\n".join(json.dumps(line) for line in lines) + "\nnot json\n", encoding="utf-8"
    )
    counts, sources = runner.read_chapter_record(record)
    assert counts == {"ok": 0, "changed": 1, "would_change": 0, "failed": 0, "skipped": 1}
    assert sources == ["env:X"]


def test_check_mode_counts_would_change(tmp_path):
    write_chapter(
        tmp_path / "notebooks" / "001_check.ipynb",
        COMMON_PARAMETERS,
        "from clusterbook import runrecord\n"
        "runrecord.result('apt.present', 'allyrion', 'would_change')\n"
        "runrecord.result('apt.present', 'bettley', 'would_change')\n"
        "runrecord.result('command', 'fenn', 'ok')",
    )
    out = io.StringIO()
    run_dir = runner.start([], settings_for(tmp_path, check=True, out=out))
    changes = runner.load_record(run_dir)["chapters"][0]["changes"]
    assert changes["would_change"] == 2
    assert changes["changed"] == 0
    assert changes["skipped"] == 0
    assert "ok in" in out.getvalue()
    assert "1 ok, 2 would change" in out.getvalue()
    assert "0 change(s), 2 would change" in out.getvalue()


def test_kernel_sockets_in_private_folder(tmp_path):
    manager_class = runner.kernel_manager_class(tmp_path / "sockets", tmp_path / "kernel.log")
    manager = manager_class(kernel_name="python3")
    assert manager.transport == "ipc"
    assert manager.ip == str(tmp_path / "sockets" / "kernel")


def test_run_leaves_no_kernel_sockets(tmp_path):
    write_chapter(tmp_path / "notebooks" / "001_quick.ipynb", COMMON_PARAMETERS, "x = 1")
    runner.start([], settings_for(tmp_path))
    leftovers = [path.name for path in (tmp_path / "notebooks").iterdir()]
    assert leftovers == ["001_quick.ipynb"]


def test_default_cell_timeout():
    settings = runner.RunSettings(notebooks_dir=Path("n"), runs_dir=Path("r"))
    assert settings.execution_timeout == runner.DEFAULT_CELL_TIMEOUT


def test_secret_fingerprint_stored_not_value(failed_run):
    _, failure, _ = failed_run
    record = runner.load_record(failure.run_dir)
    stored = record["secret_fingerprints"]["env:CLUSTERBOOK_SECRET_STATS_PASSWORD"]
    assert len(stored) == 1
    assert stored[0]["length"] == len(SECRET_VALUE)
    assert leaks.matches_fingerprint(SECRET_VALUE, stored[0])
    assert stored[0]["salt"] not in SECRET_VALUE
    assert record["secret_fingerprints"]["file:/nonexistent/recorded-secret"] is None


def test_hosts_in_error_whole_names():
    names = ["allyrion", "bettley", "fenn", "fen"]
    text = "bettley: command failed\nfenn.lab: timed out; allyrion-2 unknown"
    assert runner.hosts_in_error(text, names) == ["bettley", "fenn"]


# Kernel failures -------------------------------------------------------------------------


def test_dead_kernel_names_cell(tmp_path):
    write_chapter(
        tmp_path / "notebooks" / "001_dies.ipynb",
        COMMON_PARAMETERS,
        "print('before')",
        "import os\nos._exit(3)",
        "print('after')",
    )
    with pytest.raises(runner.ChapterFailed) as failure:
        runner.start([], settings_for(tmp_path))
    assert failure.value.error["ename"] == "DeadKernelError"
    assert failure.value.error["cell_index"] == 3
    assert failure.value.error["cell_first_line"] == "import os"
    assert runner.load_record(failure.value.run_dir)["status"] == "failed"


def test_cell_timeout_names_cell(tmp_path):
    write_chapter(
        tmp_path / "notebooks" / "001_slow.ipynb",
        COMMON_PARAMETERS,
        "import time\ntime.sleep(60)",
    )
    with pytest.raises(runner.ChapterFailed) as failure:
        runner.start([], settings_for(tmp_path, execution_timeout=2))
    assert failure.value.error["ename"] == "CellTimeoutError"
    assert failure.value.error["cell_index"] == 2
    assert failure.value.error["evalue"] == (
        "the cell ran longer than 2 s and was stopped (raise it with --timeout)"
    )
    assert "time.sleep" not in str(failure.value)


def test_runrecord_silent_outside_runs(tmp_path, monkeypatch):
    monkeypatch.delenv(runrecord.RUN_RECORD_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    runrecord.result("apt.present", "allyrion", "changed")
    assert list(tmp_path.iterdir()) == []


def test_runrecord_lines_hold_no_values(tmp_path, monkeypatch):
    record = tmp_path / "006.jsonl"
    monkeypatch.setenv(runrecord.RUN_RECORD_ENV, str(record))
    monkeypatch.setenv(runrecord.CHAPTER_ENV, "006_load_balancer")
    runrecord.result("file.content", "allyrion", "changed", step="Configure HAProxy")
    runrecord.secret_source("env:CLUSTERBOOK_HAPROXY_STATS_PASSWORD")
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert lines[0] == {
        "chapter": "006_load_balancer",
        "kind": "result",
        "operation": "file.content",
        "host": "allyrion",
        "status": "changed",
        "step": "Configure HAProxy",
    }
    assert lines[1] == {
        "chapter": "006_load_balancer",
        "kind": "secret",
        "source": "env:CLUSTERBOOK_HAPROXY_STATS_PASSWORD",
    }


def test_run_record_counts_like_summary(tmp_path, monkeypatch):
    from clusterbook.cluster import Cluster, HostGroup
    from clusterbook.inventory import Inventory
    from clusterbook.results import HostResult

    (tmp_path / "lab.yml").write_text(INVENTORY, encoding="utf-8")
    record = tmp_path / "006.jsonl"
    monkeypatch.setenv(runrecord.RUN_RECORD_ENV, str(record))
    cluster = Cluster(Inventory.load(tmp_path / "lab.yml"), check=True)
    group = HostGroup(cluster, cluster.hosts, name="all")
    statuses = {"allyrion": ("ok", False), "bettley": ("changed", True), "fenn": ("skipped", False)}

    def task(host):
        status, check_mode = statuses[host.name]
        return HostResult(host.name, status=status, operation="read", check_mode=check_mode)

    group._fan_out(task, title="read-only command")
    counts, _ = runner.read_chapter_record(record)
    summary = cluster.summary()
    for status in runner.STATUS_COUNTS:
        column = status.replace("_", " ")
        assert counts[status] == sum(row[column] for row in summary.counts.values()), status
    assert counts["would_change"] == 1
    assert counts["ok"] == 1


def test_interrupt_marks_run_interrupted(tmp_path, monkeypatch):
    write_chapter(tmp_path / "notebooks" / "001_first.ipynb", COMMON_PARAMETERS, "x = 1")
    write_chapter(tmp_path / "notebooks" / "002_second.ipynb", COMMON_PARAMETERS, "x = 2")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.papermill, "execute_notebook", interrupted)
    with pytest.raises(runner.RunInterrupted) as failure:
        runner.start([], settings_for(tmp_path))
    record = runner.load_record(failure.value.run_dir)
    assert failure.value.chapter == "001_first"
    assert record["status"] == "interrupted"
    assert [entry["status"] for entry in record["chapters"]] == ["interrupted", "pending"]


def test_interrupt_between_chapters_recorded(tmp_path, monkeypatch):
    write_chapter(tmp_path / "notebooks" / "001_first.ipynb", COMMON_PARAMETERS, "x = 1")
    calls = []

    def interrupted_after_chapter(record, secret_env):
        calls.append(record["id"])
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_fingerprint_sources", interrupted_after_chapter)
    with pytest.raises(runner.RunInterrupted) as failure:
        runner.start([], settings_for(tmp_path))
    record = runner.load_record(failure.value.run_dir)
    assert record["status"] == "interrupted"
    assert record["chapters"][0]["status"] == "interrupted"


def test_kernel_log_scrubbed(tmp_path):
    write_chapter(
        tmp_path / "notebooks" / "001_stderr.ipynb",
        COMMON_PARAMETERS + 'token = "env:CLUSTERBOOK_TEST_UNSET"  # secret\n',
        "import os\nos.write(2, os.environ[token.removeprefix('env:')].encode())",
    )
    run_dir = runner.start([], settings_for(tmp_path, parameters=[("token", SECRET_VALUE)]))
    log_text = (run_dir / "records" / "001_stderr.kernel.log").read_text(encoding="utf-8")
    assert SECRET_VALUE not in log_text
    assert leaks.MASK in log_text


def test_sigterm_becomes_keyboard_interrupt():
    from clusterbook import runner_cli

    with pytest.raises(KeyboardInterrupt):
        runner_cli._interrupt_on_sigterm(15, None)
