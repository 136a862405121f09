"""Write tiny chapter notebooks for tests of the runner and the book build."""

from __future__ import annotations

from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_chapter(path: Path, parameters: str, *cells: str, title: str | None = None) -> Path:
    """Write a notebook with a title, a `parameters` cell and one code cell per source."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.cells.append(nbformat.v4.new_markdown_cell(f"# {title or path.stem}"))
    parameters_cell = nbformat.v4.new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    notebook.cells.append(parameters_cell)
    for source in cells:
        notebook.cells.append(nbformat.v4.new_code_cell(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


#: lines every test chapter declares, like the real chapters do
COMMON_PARAMETERS = 'inventory = "inventory/lab.yml"\nlimit = None\ncheck = False\n'

#: a cell that records operation results and a secret source as the library does
RECORD_RESULTS = """\
from clusterbook import runrecord
for host, status in [("allyrion", "changed"), ("bettley", "ok"), ("fenn", "ok")]:
    runrecord.result("apt.present", host, status, step="Install")
runrecord.secret_source("file:/nonexistent/recorded-secret")
"""
