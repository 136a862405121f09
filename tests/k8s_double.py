"""A tiny fake Kubernetes API server on 127.0.0.1 for unit tests of clusterbook.k8s.

It answers discovery (/version, /api/v1, /apis, /apis/apps/v1), server-side apply
(PATCH with application/apply-patch+yaml, field managers, conflicts, dryRun) and GET of
stored objects. A Deployment's status advances one step per GET, so rollout waits see
progress. Every request is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CORE = [
    {"name": "namespaces", "namespaced": False, "kind": "Namespace"},
    {"name": "configmaps", "namespaced": True, "kind": "ConfigMap"},
    {"name": "services", "namespaced": True, "kind": "Service"},
]
APPS = [
    {"name": "deployments", "namespaced": True, "kind": "Deployment"},
    {"name": "daemonsets", "namespaced": True, "kind": "DaemonSet"},
]
VERBS = ["get", "list", "patch", "create", "update", "delete"]


class FakeApiServer:
    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.objects: dict[str, dict] = {}
        self.managers: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict, str]] = []
        self.rollout_steps: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._send(401, {"kind": "Status", "code": 401, "message": "Unauthorized"})
                    return False
                return True

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                server.requests.append(("GET", url.path, parse_qs(url.query), ""))
                if not self._authorized():
                    return
                status, body = server.get(url.path)
                self._send(status, body)

            def do_PATCH(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length", 0))
                payload = self.rfile.read(length).decode()
                query = parse_qs(url.query)
                content_type = self.headers.get("Content-Type", "")
                server.requests.append(("PATCH", url.path, query, content_type))
                if not self._authorized():
                    return
                status, body = server.apply(url.path, query, content_type, payload)
                self._send(status, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def get(self, path: str) -> tuple[int, dict]:
        if path == "/version":
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            version = {"groupVersion": "apps/v1", "version": "v1"}
            group = {"name": "apps", "versions": [version], "preferredVersion": version}
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
        if path == "/api/v1":
            return 200, self._resource_list("v1", CORE)
        if path == "/apis/apps/v1":
            return 200, self._resource_list("apps/v1", APPS)
        if path in self.objects:
            obj = self.objects[path]
            if obj["kind"] == "Deployment":
                self._advance_rollout(path, obj)
            return 200, obj
        return 404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"}

    @staticmethod
    def _resource_list(group_version: str, resources: list[dict]) -> dict:
        return {
            "kind": "APIResourceList",
            "groupVersion": group_version,
            "resources": [dict(r, singularName="", verbs=VERBS) for r in resources],
        }

    def apply(self, path: str, query: dict, content_type: str, payload: str) -> tuple[int, dict]:
        if content_type != "application/apply-patch+yaml":
            return 415, {"kind": "Status", "code": 415, "message": f"bad type {content_type}"}
        manager = (query.get("fieldManager") or [""])[0]
        if not manager:
            return 400, {"kind": "Status", "code": 400, "message": "fieldManager is required"}
        force = (query.get("force") or ["false"])[0].lower() == "true"
        body = json.loads(payload)
        owner = self.managers.get(path)
        current = self.objects.get(path)
        differs = current is not None and (
            current.get("data") != body.get("data") or current.get("spec") != body.get("spec")
        )
        if owner and owner != manager and not force and differs:
            return 409, {
                "kind": "Status",
                "code": 409,
                "reason": "Conflict",
                "message": f'Apply failed with 1 conflict: conflict with "{owner}"',
            }
        stored = dict(body)
        metadata = dict(stored.get("metadata") or {})
        old_generation = (current or {}).get("metadata", {}).get("generation", 0)
        changed = current is None or current.get("spec") != body.get("spec")
        metadata["generation"] = old_generation + (1 if changed else 0)
        metadata["resourceVersion"] = str(len(self.requests))
        stored["metadata"] = metadata
        if stored["kind"] == "Deployment":
            stored["status"] = {"observedGeneration": old_generation, "replicas": 0}
            self.rollout_steps[path] = 0
        if "dryRun" not in query:
            self.objects[path] = stored
            self.managers[path] = manager
        return 200, stored

    def _advance_rollout(self, path: str, obj: dict) -> None:
        step = self.rollout_steps.get(path, 0)
        wanted = obj["spec"].get("replicas", 1)
        if step >= 1:
            obj["status"]["observedGeneration"] = obj["metadata"]["generation"]
            obj["status"]["replicas"] = wanted
            obj["status"]["updatedReplicas"] = min(wanted, step)
            obj["status"]["availableReplicas"] = min(wanted, step - 1)
        self.rollout_steps[path] = step + 1
