"""A second run of a host-configuring chapter reports zero changes."""

from __future__ import annotations

import pytest

from .conftest import run_chapter, summary_of

pytestmark = pytest.mark.lab


@pytest.mark.parametrize(
    "chapter",
    [
        "003_meet_the_nodes",
        "004_node_configuration",
        "006_load_balancer",
        "007_container_runtime",
        "008_networking",
        "009_configuring_packages",
    ],
)
def test_second_run_changes_nothing(tmp_path, chapter, stats_canary, lab_inventory):
    env = {"CLUSTERBOOK_HAPROXY_STATS_PASSWORD": stats_canary}
    run_chapter(chapter, tmp_path / "first.ipynb", env=env)
    _proc, notebook = run_chapter(chapter, tmp_path / "second.ipynb", env=env, probe_summary=True)
    assert summary_of(notebook)["changed"] == 0
