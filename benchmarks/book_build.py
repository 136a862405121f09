"""Time `clusterbook book build` for the chapters in notebooks/, without the lab.

Two cases: the notebooks as stored (no outputs), and the same notebooks with
synthetic outputs on every code cell (a 20-line text result and a 6-row HTML
table, about what a fan-out over six hosts prints), staged as a complete run.

    .venv/bin/python benchmarks/book_build.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from clusterbook import book, chapters, paths

TEXT_LINES = 20
TABLE_ROWS = 6


def synthetic_outputs(cell_index: int) -> list[nbformat.NotebookNode]:
    text = "".join(f"host-{row}: line {row} of cell {cell_index}\n" for row in range(TEXT_LINES))
    rows = "".join(
        f"<tr><td>host-{row}</td><td>ok</td><td>{row * 0.1:.1f} s</td></tr>"
        for row in range(TABLE_ROWS)
    )
    return [
        nbformat.v4.new_output("stream", name="stdout", text=text),
        nbformat.v4.new_output(
            "display_data",
            data={"text/html": f"<table>{rows}</table>", "text/plain": text},
        ),
    ]


def make_root(target: Path, with_run: bool) -> int:
    repo = paths.repo_root()
    for name in book.BOOK_FILES:
        shutil.copy2(repo / name, target / name)
    shutil.copytree(repo / "notebooks", target / "notebooks")
    found = chapters.discover(target / "notebooks")
    if not with_run:
        return len(found)
    run_dir = target / "runs" / "20000101T000000Z"
    run_dir.mkdir(parents=True)
    entries = []
    for chapter in found:
        notebook = nbformat.read(chapter.path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                cell.outputs = synthetic_outputs(index)
                cell.execution_count = index
        nbformat.write(notebook, run_dir / chapter.path.name)
        entries.append({"name": chapter.name, "notebook": chapter.path.name, "status": "succeeded"})
    record = {"id": run_dir.name, "status": "complete", "secret_sources": [], "chapters": entries}
    (run_dir / "run.json").write_text(json.dumps(record), encoding="utf-8")
    return len(found)


def time_build(with_run: bool, repeat: int) -> tuple[int, list[float]]:
    seconds = []
    count = 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            count = make_root(root, with_run)
            started = time.perf_counter()
            book.build(root=root)
            seconds.append(time.perf_counter() - started)
    return count, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="builds per case (default 3)")
    args = parser.parse_args()
    for label, with_run in (("stored notebooks", False), ("with synthetic outputs", True)):
        count, seconds = time_build(with_run, args.repeat)
        print(
            f"{label}: {count} chapters, median {statistics.median(seconds):.1f} s, "
            f"min {min(seconds):.1f} s, max {max(seconds):.1f} s over {len(seconds)} builds"
        )


if __name__ == "__main__":
    main()
