"""pytest settings for the whole repository, including `pytest --nbmake notebooks/`.

nbmake executes each chapter with its `parameters` cell defaults (the lab
inventory) and the notebook's folder as the current directory. Its default
timeout of 300 s per cell is shorter than a cell that installs packages on six
lab nodes can take, so chapters get NBMAKE_CELL_TIMEOUT unless the command line
sets --nbmake-timeout.
"""

from __future__ import annotations

import os

import pytest

#: seconds one notebook cell may run under nbmake
NBMAKE_CELL_TIMEOUT = 900


def _timeout_given(config: pytest.Config) -> bool:
    words = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    return any(str(word).startswith("--nbmake-timeout") for word in words)


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "nbmake", False) and not _timeout_given(config):
        config.option.nbmake_timeout = NBMAKE_CELL_TIMEOUT
