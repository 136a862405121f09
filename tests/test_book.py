"""The book build: staging from runs, the generated toc, secret masking and scanning.

One small book is built once per module with the real Jupyter Book. Its chapters
are throwaway notebooks that the runner executes on the local python3 kernel.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml
from chapter_factory import COMMON_PARAMETERS, write_chapter
from clusterbook import book, chapters, leaks, paths, runner

CANARY = "canary-Book-7c21e"
SECRET_ENV = "CLUSTERBOOK_TEST_BOOK_PASSWORD"
REPO = paths.repo_root()


def make_root(root: Path) -> Path:
    for name in book.BOOK_FILES:
        shutil.copy2(REPO / name, root / name)
    notebooks = root / "notebooks"
    write_chapter(
        notebooks / "001_hello.ipynb",
        COMMON_PARAMETERS,
        "print('EXECUTED-' + 'OUTPUT-001')",
    )
    write_chapter(
        notebooks / "006_secret.ipynb",
        COMMON_PARAMETERS + f'stats_password = "env:{SECRET_ENV}"  # secret\n',
        "print('password is a reference:', stats_password.startswith(('env:', 'file:')))",
    )
    write_chapter(
        notebooks / "007_not_run.ipynb",
        COMMON_PARAMETERS,
        "print('NOT-' + 'EXECUTED')",
    )
    return notebooks


def run_chapters(root: Path, specs: list[str]) -> Path:
    settings = runner.RunSettings(
        notebooks_dir=root / "notebooks",
        runs_dir=root / "runs",
        progress_bar=False,
        execution_timeout=120,
        out=io.StringIO(),
    )
    return runner.start(specs, settings)


def html_text(html_dir: Path) -> str:
    return "".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(html_dir.rglob("*"))
        if path.is_file() and path.suffix in (".html", ".js", ".txt", ".ipynb", ".json")
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A book built from a complete run of 001 and 006, where 006 was then re-executed by
    hand with papermill and a plain secret value (the mistake the build must mask)."""
    root = tmp_path_factory.mktemp("bookroot")
    notebooks = make_root(root)
    run_dir = run_chapters(root, ["001", "006"])
    papermill.execute_notebook(
        str(notebooks / "006_secret.ipynb"),
        str(run_dir / "006_secret.ipynb"),
        parameters={"stats_password": CANARY},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(notebooks),
    )
    assert CANARY in (run_dir / "006_secret.ipynb").read_text(encoding="utf-8")
    patch = pytest.MonkeyPatch()
    patch.setenv(SECRET_ENV, CANARY)
    try:
        result = book.build(root=root, output=root / "site")
    finally:
        patch.undo()
    return root, run_dir, result


def test_build_uses_latest_complete_run(built):
    _, run_dir, result = built
    assert result.run_dir == run_dir
    assert result.executed == ["001_hello", "006_secret"]
    assert result.unexecuted == ["007_not_run"]
    assert result.index.is_file()


def test_build_shows_run_outputs(built):
    _, _, result = built
    page = (result.html_dir / "notebooks" / "001_hello.html").read_text(encoding="utf-8")
    assert "EXECUTED-OUTPUT-001" in page


def test_build_never_executes(built):
    _, _, result = built
    page = (result.html_dir / "notebooks" / "007_not_run.html").read_text(encoding="utf-8")
    assert "NOT-EXECUTED" not in page


def test_build_publishes_no_sources(built):
    _, _, result = built
    assert not (result.html_dir / "_sources").exists()
    assert not list(result.html_dir.rglob("*.ipynb"))


def test_secret_parameter_masked(built):
    _, _, result = built
    assert result.masked_parameters == 2
    assert CANARY not in html_text(result.html_dir)
    page = (result.html_dir / "notebooks" / "006_secret.html").read_text(encoding="utf-8")
    assert "********" in page


def test_staged_toc_lists_staged_chapters(built):
    root, _, _ = built
    toc = yaml.safe_load((root / "_build" / "book-work" / "src" / "_toc.yml").read_text())
    files = [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    assert files == ["notebooks/001_hello", "notebooks/006_secret", "notebooks/007_not_run"]
    assert [part["caption"] for part in toc["parts"]] == ["Foundations", "Kubernetes"]


def test_build_leaves_notebooks_untouched(built):
    root, _, _ = built
    source = nbformat.read(root / "notebooks" / "001_hello.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in source.cells if cell.cell_type == "code")


def test_secret_in_output_fails_build(tmp_path, monkeypatch):
    make_root(tmp_path)
    write_chapter(
        tmp_path / "notebooks" / "002_leaky.ipynb",
        COMMON_PARAMETERS + f'token = "env:{SECRET_ENV}"  # secret\n',
        "import os\nprint('token', os.environ[token.removeprefix('env:')])",
    )
    monkeypatch.setenv(SECRET_ENV, CANARY)
    run_chapters(tmp_path, ["002"])
    with pytest.raises(book.SecretInBook) as failure:
        book.build(root=tmp_path, output=tmp_path / "site")
    assert "002_leaky.ipynb" in str(failure.value)
    assert f"env:{SECRET_ENV}" in str(failure.value)
    assert CANARY not in str(failure.value)
    assert not (tmp_path / "site").exists()


def test_secret_in_built_files_fails_build(tmp_path):
    make_root(tmp_path)
    # The theme writes this placeholder into every page; no staged source contains it.
    generated = leaks.KnownSecret("test:theme-text", "Search this book")
    with pytest.raises(book.SecretInBook, match="built book") as failure:
        book.build(root=tmp_path, output=tmp_path / "site", extra_secrets=[generated])
    assert "test:theme-text" in str(failure.value)
    assert not (tmp_path / "site").exists()
    assert not (tmp_path / "_build" / "book-work").exists()


def test_mask_keeps_references():
    notebook = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('a = "env:X"  # secret\nb = "x"  # secret\nc = 1\n')
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell('# Parameters\na = "env:Y"\nb = "hunter22"\nc = 2\n')
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells = [params, injected]
    notebook.metadata["papermill"] = {"parameters": {"a": "env:Y", "b": "hunter22", "c": 2}}
    assert book.mask_secret_parameters(notebook) == 2
    assert injected.source == '# Parameters\na = "env:Y"\nb = "********"\nc = 2'
    assert notebook.metadata["papermill"]["parameters"] == {"a": "env:Y", "b": "********", "c": 2}


def test_scan_finds_escaped_values(tmp_path):
    secret = leaks.KnownSecret("env:S", 'pa"ss<word>')
    (tmp_path / "page.html").write_text("<pre>pa&quot;ss&lt;word&gt;</pre>", encoding="utf-8")
    (tmp_path / "nb.ipynb").write_text('{"text": "pa\\"ss<word>"}', encoding="utf-8")
    (tmp_path / "clean.html").write_text("<pre>nothing here</pre>", encoding="utf-8")
    found = leaks.scan_files([tmp_path], [secret])
    assert sorted(leak.path.name for leak in found) == ["nb.ipynb", "page.html"]


def test_repository_toc_matches_notebooks():
    expected = chapters.toc_yaml(chapters.discover(REPO / "notebooks"))
    assert (REPO / "_toc.yml").read_text(encoding="utf-8") == expected, (
        "_toc.yml is out of date: run `clusterbook book toc --write`"
    )


def test_repository_config_never_executes_or_copies_sources():
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert config["sphinx"]["config"]["html_copy_source"] is False
    assert config["sphinx"]["config"]["html_show_sourcelink"] is False


def test_mask_registry_values_searched(monkeypatch):
    from clusterbook import secrets

    monkeypatch.setattr(secrets, "registered_values", lambda: ["registry-value-51c"], raising=False)
    found = book.known_secrets(None, [])
    assert leaks.KnownSecret("the clusterbook.secrets mask registry", "registry-value-51c") in found


# Output folder ---------------------------------------------------------------------------


def test_build_writes_output_marker(built):
    _, _, result = built
    assert (result.html_dir / book.OUTPUT_MARKER).is_file()


def test_output_with_other_files_rejected(tmp_path):
    make_root(tmp_path)
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(book.BookError, match="is not empty and no earlier clusterbook build"):
        book.build(root=tmp_path, output=keep)
    assert (keep / "notes.txt").read_text(encoding="utf-8") == "keep me"


@pytest.mark.parametrize("target", [".", "notebooks", ".."])
def test_output_protected_folders_rejected(tmp_path, target):
    root = tmp_path / "repo"
    root.mkdir()
    make_root(root)
    with pytest.raises(book.BookError, match="the build would delete its contents"):
        book.build(root=root, output=root / target)
    assert (root / "notebooks" / "001_hello.ipynb").is_file()


def test_output_home_rejected(tmp_path, monkeypatch):
    make_root(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(book.BookError, match="is your home folder"):
        book.build(root=tmp_path, output=home)


def test_output_accepted_cases(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    default = root / "_build" / "html"
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "index.html").write_text("old", encoding="utf-8")
    (previous / book.OUTPUT_MARKER).write_text("", encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    for output in (default, previous, empty, tmp_path / "new"):
        book.check_output(output, root, default)


# Incomplete runs and unreadable secrets --------------------------------------------------


def test_incomplete_run_rejected(tmp_path):
    make_root(tmp_path)
    write_chapter(tmp_path / "notebooks" / "002_fails.ipynb", COMMON_PARAMETERS, "1 / 0")
    with pytest.raises(runner.ChapterFailed) as failure:
        run_chapters(tmp_path, ["001", "002", "006"])
    run_id = failure.value.run_dir.name
    with pytest.raises(book.BookError) as rejected:
        book.build(root=tmp_path, output=tmp_path / "site", run=run_id)
    message = str(rejected.value)
    assert f"run {run_id} is failed, not complete" in message
    assert "chapters from the run: 001_hello" in message
    assert "not executed or failed: 002_fails, 006_secret" in message
    assert "--allow-incomplete" in message
    assert not (tmp_path / "site").exists()
    result = book.build(root=tmp_path, output=tmp_path / "site", run=run_id, allow_incomplete=True)
    assert result.incomplete == ["002_fails", "006_secret"]
    assert result.executed == ["001_hello"]


def test_regenerated_secret_file_found_by_fingerprint(tmp_path):
    make_root(tmp_path)
    secret_file = tmp_path / "secret-outside" / "password"
    secret_file.parent.mkdir()
    secret_file.write_text(CANARY + "\n", encoding="utf-8")
    write_chapter(
        tmp_path / "notebooks" / "002_prints_file.ipynb",
        COMMON_PARAMETERS,
        "from clusterbook import runrecord\n"
        f"runrecord.secret_source('file:{secret_file}')\n"
        f"print('password', open({str(secret_file)!r}).read().strip())",
    )
    run_chapters(tmp_path, ["002"])
    secret_file.write_text("regenerated-value-9e1\n", encoding="utf-8")
    with pytest.raises(book.SecretInBook) as failure:
        book.build(root=tmp_path, output=tmp_path / "site")
    assert "002_prints_file.ipynb" in str(failure.value)
    assert f"file:{secret_file}" in str(failure.value)
    assert CANARY not in str(failure.value)


def test_unreadable_secret_without_fingerprint_rejected(tmp_path, monkeypatch):
    make_root(tmp_path)
    monkeypatch.setenv(SECRET_ENV, CANARY)
    run_dir = run_chapters(tmp_path, ["001", "006"])
    record = runner.load_record(run_dir)
    del record["secret_fingerprints"]
    runner.save_record(run_dir, record)
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(book.BookError, match=f"from env:{SECRET_ENV}: the build cannot read"):
        book.build(root=tmp_path, output=tmp_path / "site")
    result = book.build(root=tmp_path, output=tmp_path / "site", allow_unverified_secrets=True)
    assert result.unverified_sources == [f"env:{SECRET_ENV}"]


def test_fingerprint_search_finds_unescaped_value(tmp_path):
    stored = leaks.fingerprint('pa"ss<word>')
    (tmp_path / "page.html").write_text("<pre>pa&quot;ss&lt;word&gt;</pre>", encoding="utf-8")
    (tmp_path / "nb.ipynb").write_text('{"text": "pa\\"ss<word>"}', encoding="utf-8")
    (tmp_path / "clean.html").write_text("<pre>nothing here</pre>", encoding="utf-8")
    found = leaks.scan_files_by_fingerprint([tmp_path], [("env:S", stored)])
    assert sorted(leak.path.name for leak in found) == ["nb.ipynb", "page.html"]
    assert "pa" not in json.dumps(stored)
