"""The `clusterbook run` and `clusterbook book` command lines (no kernel, no lab)."""

from __future__ import annotations

import re

from chapter_factory import COMMON_PARAMETERS, write_chapter
from clusterbook import chapters, cli, parameters, paths, runner_cli


def test_resume_rejects_new_selection(tmp_path, capsys):
    status = cli.main(["run", "--runs", str(tmp_path), "--resume", "20261204T000000Z", "006"])
    assert status == 1
    assert "--resume continues a run with its own chapters" in capsys.readouterr().err


def test_run_unknown_chapter(tmp_path, capsys):
    write_chapter(tmp_path / "001_only.ipynb", COMMON_PARAMETERS)
    status = cli.main(["run", "--notebooks", str(tmp_path), "--runs", str(tmp_path / "r"), "042"])
    err = capsys.readouterr().err
    assert status == 1
    assert "no chapter matches '042'" in err
    assert "001_only" in err


def test_resume_unknown_run(tmp_path, capsys):
    status = cli.main(["run", "--runs", str(tmp_path), "--resume", "nope"])
    assert status == 1
    assert "run 'nope' not found" in capsys.readouterr().err


def test_book_toc_prints_chapters(capsys):
    assert cli.main(["book", "toc"]) == 0
    printed = capsys.readouterr().out
    expected = chapters.toc_yaml(chapters.discover(paths.repo_root() / "notebooks"))
    assert printed == expected


def test_book_build_rejects_run_and_no_run(capsys):
    assert cli.main(["book", "build", "--run", "x", "--no-run"]) == 1
    assert "--run and --no-run contradict" in capsys.readouterr().err


def test_run_rejects_empty_limit(tmp_path, capsys):
    write_chapter(tmp_path / "001_only.ipynb", COMMON_PARAMETERS)
    arguments = ["run", "--notebooks", str(tmp_path), "--runs", str(tmp_path / "r")]
    status = cli.main([*arguments, "--limit", ""])
    err = capsys.readouterr().err
    assert status == 1
    assert "--limit is empty" in err
    assert not (tmp_path / "r").exists()


def _parameter_examples(text: str) -> list[tuple[str, str]]:
    pattern = r"clusterbook run (\d{3}) -p (\w+) "
    return re.findall(pattern, text)


def test_parameter_examples_name_declared_parameters():
    root = paths.repo_root()
    texts = [runner_cli.EPILOG, (root / "README.md").read_text(encoding="utf-8")]
    examples = [example for text in texts for example in _parameter_examples(text)]
    assert len(examples) >= 2
    available = chapters.discover(root / "notebooks")
    for number, name in examples:
        (chapter,) = chapters.select(available, [number])
        assert name in parameters.declared_parameters(chapter.path), (number, name)
