"""Fetch a kubeconfig from a lab node over SSH and use it against a local fake API server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from clusterbook import Cluster, k8s

from .conftest import TEST_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from k8s_double import FakeApiServer  # noqa: E402

pytestmark = pytest.mark.lab


def test_fetch_kubeconfig_rewrites_server(lab: Cluster):
    node = lab.select("dalt")
    token = "lab-kubeconfig-token-31337"
    admin_conf = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "k", "cluster": {"server": "https://10.251.0.13:6443"}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "admin@k", "context": {"cluster": "k", "user": "admin"}}],
        "current-context": "admin@k",
    }
    path = f"{TEST_DIR}-k8s/admin.conf"
    node.file.directory(f"{TEST_DIR}-k8s", mode="0700")
    node.file.content(path, yaml.safe_dump(admin_conf), mode="0600")
    try:
        with FakeApiServer(token=token) as fake:
            config = k8s.fetch_kubeconfig(node, server=fake.url, path=path)
            assert config.server == fake.url
            assert token not in repr(config)
            applied = k8s.apply(
                k8s.client(config),
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n",
            )
            assert applied[0]["object"] == "ConfigMap/default/x"
    finally:
        node.file.absent(f"{TEST_DIR}-k8s")


def test_fetch_kubeconfig_missing_file(lab: Cluster):
    with pytest.raises(k8s.KubernetesError, match="cannot read /etc/kubernetes/admin.conf"):
        k8s.fetch_kubeconfig(lab.select("dalt"))
