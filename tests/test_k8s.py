"""clusterbook.k8s against a local fake API server: discovery, server-side apply, waits."""

from __future__ import annotations

import pytest
from clusterbook import k8s
from clusterbook.errors import KubernetesError
from clusterbook.secrets import mask
from k8s_double import FakeApiServer

MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
"""


def kubeconfig_data(token: str = "test-token") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.4.0.11:6443"}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "admin@c", "context": {"cluster": "c", "user": "admin"}}],
        "current-context": "admin@c",
    }


def kubeconfig(server: str | None, token: str = "test-token") -> k8s.Kubeconfig:
    return k8s.Kubeconfig(k8s.rewrite_server(kubeconfig_data(token), server), source="test")


@pytest.fixture
def fake():
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def api(fake: FakeApiServer):
    return k8s.client(kubeconfig(fake.url))


def test_rewrite_server():
    config = kubeconfig(None)
    assert config.server == "https://10.4.0.11:6443"
    rewritten = k8s.rewrite_server(config.data, "https://10.4.0.10:6443")
    assert rewritten["clusters"][0]["cluster"]["server"] == "https://10.4.0.10:6443"
    assert config.server == "https://10.4.0.11:6443"


def test_kubeconfig_credentials_masked():
    config = kubeconfig(None, token="kubeconfig-token-4242")
    assert "kubeconfig-token-4242" not in repr(config)
    assert config.masked()["users"][0]["user"]["token"] == "********"
    assert mask("Bearer kubeconfig-token-4242") == "Bearer ********"


def test_kubeconfig_written_private(tmp_path):
    path = kubeconfig(None).write(tmp_path / "admin.conf")
    assert path.stat().st_mode & 0o777 == 0o600


def test_load_documents_errors():
    assert [d["kind"] for d in k8s.load_documents(MANIFESTS)] == [
        "Namespace",
        "ConfigMap",
        "Deployment",
    ]
    with pytest.raises(KubernetesError, match="document 1 has no kind"):
        k8s.load_documents("apiVersion: v1\nmetadata: {name: x}\n")
    with pytest.raises(KubernetesError, match="has no metadata.name"):
        k8s.load_documents("apiVersion: v1\nkind: ConfigMap\n")
    with pytest.raises(KubernetesError, match="invalid manifest YAML"):
        k8s.load_documents("a: [")


def test_apply_multi_document(fake: FakeApiServer, api):
    applied = k8s.apply(api, MANIFESTS, field_manager="clusterbook")
    assert [a["object"] for a in applied] == [
        "Namespace/demo",
        "ConfigMap/demo/settings",
        "Deployment/demo/web",
    ]
    patches = [r for r in fake.requests if r[0] == "PATCH"]
    assert [p[1] for p in patches] == [
        "/api/v1/namespaces/demo",
        "/api/v1/namespaces/demo/configmaps/settings",
        "/apis/apps/v1/namespaces/demo/deployments/web",
    ]
    for _, _, query, content_type in patches:
        assert content_type == "application/apply-patch+yaml"
        assert query["fieldManager"] == ["clusterbook"]
    assert fake.objects["/api/v1/namespaces/demo/configmaps/settings"]["data"] == {"mode": "fast"}


def test_apply_conflict_and_force(fake: FakeApiServer, api):
    k8s.apply(api, MANIFESTS, field_manager="someone-else")
    changed = MANIFESTS.replace("mode: fast", "mode: slow")
    with pytest.raises(KubernetesError) as info:
        k8s.apply(api, changed, field_manager="clusterbook")
    assert "ConfigMap/demo/settings" in str(info.value)
    assert "HTTP 409" in str(info.value)
    assert "force_conflicts=True" in info.value.hint
    k8s.apply(api, changed, field_manager="clusterbook", force_conflicts=True)
    assert fake.objects["/api/v1/namespaces/demo/configmaps/settings"]["data"] == {"mode": "slow"}
    forced = [r for r in fake.requests if r[0] == "PATCH" and r[2].get("force") == ["true"]]
    assert forced


def test_apply_dry_run_stores_nothing(fake: FakeApiServer, api):
    applied = k8s.apply(api, MANIFESTS, dry_run=True)
    assert all(a["dry_run"] for a in applied)
    assert fake.objects == {}


def test_apply_unknown_kind(api):
    with pytest.raises(KubernetesError, match="no resource Widget in example.com/v1"):
        k8s.apply(api, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")


def test_wait_for_rollout(fake: FakeApiServer, api):
    k8s.apply(api, MANIFESTS)
    obj = k8s.wait_for_rollout(api, "deployment", "web", "demo", timeout=30, interval=0.01)
    assert obj["status"]["availableReplicas"] == 2
    gets = [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/deployments/web")]
    assert len(gets) >= 3


def test_wait_for_rollout_timeout(fake: FakeApiServer, api):
    with pytest.raises(KubernetesError, match="did not finish its rollout within 0.05 s"):
        k8s.wait_for_rollout(api, "deployment", "missing", "demo", timeout=0.05, interval=0.01)


def test_wrong_token_rejected(fake: FakeApiServer):
    api = k8s.client(kubeconfig(fake.url, token="wrong-token-value"))
    with pytest.raises(Exception, match="401"):
        k8s.apply(api, MANIFESTS)


def test_rollout_complete_kinds():
    done, text = k8s.rollout_complete(
        "daemonset",
        {
            "metadata": {"generation": 1},
            "status": {
                "observedGeneration": 1,
                "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 3,
                "numberAvailable": 2,
            },
        },
    )
    assert done is False
    assert text == "3/3 updated, 2/3 available"
    with pytest.raises(KubernetesError, match="kind 'job'"):
        k8s.rollout_complete("job", {})
