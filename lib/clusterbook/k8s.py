"""Kubernetes from a notebook: kubeconfig over SSH, server-side apply, rollout waits.

`fetch_kubeconfig` reads kubeadm's /etc/kubernetes/admin.conf from a control-plane node
and points it at the load-balanced API endpoint. `client` builds an `ApiClient` of the
official `kubernetes` package from it. `apply` sends every document of a multi-document
manifest as a server-side apply through the dynamic client. `wait_for_rollout` polls a
Deployment, StatefulSet or DaemonSet until its rollout is complete.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from clusterbook.errors import KubernetesError
from clusterbook.secrets import MASK, Secret, register

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from clusterbook.cluster import HostGroup

log = logging.getLogger(__name__)

ADMIN_CONF = "/etc/kubernetes/admin.conf"
_SECRET_USER_FIELDS = ("client-key-data", "token", "password", "client-certificate-data")


@dataclass
class Kubeconfig:
    """A kubeconfig as a dict; its credentials are registered for masking, and repr hides them."""

    data: dict[str, Any]
    source: str = ""

    def __post_init__(self) -> None:
        for user in self.data.get("users") or []:
            for field_name in _SECRET_USER_FIELDS:
                value = (user.get("user") or {}).get(field_name)
                if isinstance(value, str):
                    register(value)

    def __repr__(self) -> str:
        return f"<Kubeconfig from {self.source or 'memory'}: server {self.server}>"

    @property
    def server(self) -> str:
        clusters = self.data.get("clusters") or []
        return clusters[0]["cluster"]["server"] if clusters else ""

    def masked(self) -> dict[str, Any]:
        """Return a copy with every credential replaced by ********, safe to display."""
        data = copy.deepcopy(self.data)
        for user in data.get("users") or []:
            for field_name in _SECRET_USER_FIELDS:
                if field_name in (user.get("user") or {}):
                    user["user"][field_name] = MASK
        return data

    def write(self, path: str | os.PathLike) -> Path:
        """Write the kubeconfig to `path`, readable only by the owner (0600)."""
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yaml.safe_dump(self.data, handle, sort_keys=False)
        return target


def rewrite_server(data: dict[str, Any], server: str | None) -> dict[str, Any]:
    """Point every cluster entry at `server` (kubeadm writes the first node's address)."""
    result = copy.deepcopy(data)
    if server:
        for cluster in result.get("clusters") or []:
            cluster.setdefault("cluster", {})["server"] = server
    return result


def fetch_kubeconfig(
    group: HostGroup, server: str | None = None, *, path: str = ADMIN_CONF
) -> Kubeconfig:
    """Read a kubeconfig from the first host of `group` (as root) and rewrite its server."""
    from clusterbook.ssh import get_connection

    if not group.hosts:
        raise KubernetesError(
            "no host to read the kubeconfig from: the group is empty",
            hint="pass the control_plane group of an inventory that has it",
        )
    host = group.hosts[0]
    connection = get_connection(host)
    try:
        raw = connection.get(path, become=True)
    except Exception as exc:  # HostUnreachable, or an SFTP error for a missing file
        raise KubernetesError(
            f"{host.name}: cannot read {path}: {exc}",
            hint="run kubeadm init on that node first",
        ) from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise KubernetesError(f"{host.name}: {path} is not a valid kubeconfig: {exc}") from None
    if not isinstance(data, dict) or not data.get("clusters"):
        raise KubernetesError(f"{host.name}: {path} has no clusters section")
    config = Kubeconfig(rewrite_server(data, server), source=f"{host.name}:{path}")
    log.info("[%s] fetched kubeconfig %s, server %s", host.name, path, config.server)
    return config


def client(kubeconfig: Kubeconfig | dict | str | os.PathLike) -> ApiClient:
    """Build an `ApiClient` from a `Kubeconfig`, a kubeconfig dict or a kubeconfig file."""
    from kubernetes import config as kube_config

    if isinstance(kubeconfig, Kubeconfig):
        data = kubeconfig.data
    elif isinstance(kubeconfig, dict):
        data = kubeconfig
    else:
        data = yaml.safe_load(Path(kubeconfig).expanduser().read_text())
    return kube_config.new_client_from_config_dict(data)


def load_documents(manifests: str | list | dict) -> list[dict[str, Any]]:
    """Split a multi-document YAML string (or take a list/dict) into object dicts."""
    if isinstance(manifests, dict):
        documents = [manifests]
    elif isinstance(manifests, list):
        documents = manifests
    else:
        try:
            documents = list(yaml.safe_load_all(manifests))
        except yaml.YAMLError as exc:
            raise KubernetesError(f"invalid manifest YAML: {exc}") from None
    objects = []
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise KubernetesError(f"manifest document {index} is not a mapping")
        if document.get("kind", "").endswith("List") and "items" in document:
            objects.extend(document["items"])
            continue
        for key in ("apiVersion", "kind"):
            if not document.get(key):
                raise KubernetesError(f"manifest document {index} has no {key}")
        if not (document.get("metadata") or {}).get("name"):
            raise KubernetesError(
                f"manifest document {index} ({document['kind']}) has no metadata.name"
            )
        objects.append(document)
    return objects


def apply(
    api: ApiClient,
    manifests: str | list | dict,
    *,
    field_manager: str = "clusterbook",
    force_conflicts: bool = False,
    namespace: str | None = None,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Server-side apply every object; returns one summary dict per object, in order.

    `force_conflicts=True` takes over fields another manager owns; without it, a conflict
    raises `KubernetesError` naming the object and the server's message. `dry_run=True`
    makes the server to validate and compute the result without storing it (check mode).
    """
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

    dynamic = DynamicClient(api)
    summaries = []
    for document in load_documents(manifests):
        kind, api_version = document["kind"], document["apiVersion"]
        name = document["metadata"]["name"]
        label = f"{kind}/{name}"
        try:
            resource = dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise KubernetesError(
                f"{label}: the server has no resource {kind} in {api_version}",
                hint="install its CustomResourceDefinition first, or check apiVersion",
            ) from None
        target_namespace = None
        if resource.namespaced:
            target_namespace = document["metadata"].get("namespace") or namespace or "default"
            label = f"{kind}/{target_namespace}/{name}"
        try:
            response = dynamic.server_side_apply(
                resource,
                body=document,
                name=name,
                namespace=target_namespace,
                field_manager=field_manager,
                force_conflicts=force_conflicts,
                dry_run="All" if dry_run else None,
            )
        except DynamicApiError as exc:
            status = getattr(exc, "status", None)
            hint = "pass force_conflicts=True to take over the fields" if status == 409 else None
            raise KubernetesError(
                f"applying {label} failed (HTTP {status}): {exc.summary()}", hint=hint
            ) from None
        result = response.to_dict() if hasattr(response, "to_dict") else dict(response)
        metadata = result.get("metadata") or {}
        summaries.append(
            {
                "object": label,
                "resourceVersion": metadata.get("resourceVersion"),
                "generation": metadata.get("generation"),
                "dry_run": dry_run,
            }
        )
        log.info(
            "applied %s (field manager %s%s)", label, field_manager, ", dry run" if dry_run else ""
        )
    return summaries


def rollout_complete(kind: str, obj: dict[str, Any]) -> tuple[bool, str]:
    """Return whether a workload's rollout finished, and a short description of its status."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = metadata.get("generation", 0)
    observed = status.get("observedGeneration", 0)
    if observed < generation:
        return False, f"waiting for the controller to observe generation {generation}"
    kind = kind.lower()
    if kind in ("deployment", "statefulset"):
        wanted = spec.get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        ready_key = "availableReplicas" if kind == "deployment" else "readyReplicas"
        ready = status.get(ready_key, 0)
        total = status.get("replicas", 0)
        text = f"{updated}/{wanted} updated, {ready}/{wanted} {ready_key[:-8]}, {total} total"
        return updated >= wanted and ready >= wanted and total <= wanted, text
    if kind == "daemonset":
        wanted = status.get("desiredNumberScheduled", 0)
        updated = status.get("updatedNumberScheduled", 0)
        available = status.get("numberAvailable", 0)
        text = f"{updated}/{wanted} updated, {available}/{wanted} available"
        return updated >= wanted and available >= wanted, text
    raise KubernetesError(
        f"cannot wait for a rollout of kind {kind!r}",
        hint="use deployment, statefulset or daemonset",
    )


def wait_for_rollout(
    api: ApiClient,
    kind: str,
    name: str,
    namespace: str = "default",
    *,
    timeout: float = 300,
    interval: float = 2.0,
) -> dict[str, Any]:
    """Poll a workload until its rollout is complete; raise `KubernetesError` on timeout."""
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import DynamicApiError

    kinds = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}
    if kind.lower() not in kinds:
        raise KubernetesError(
            f"cannot wait for a rollout of kind {kind!r}",
            hint="use deployment, statefulset or daemonset",
        )
    dynamic = DynamicClient(api)
    resource = dynamic.resources.get(api_version="apps/v1", kind=kinds[kind.lower()])
    deadline = time.monotonic() + timeout
    description = "no status yet"
    while True:
        try:
            obj = dynamic.get(resource, name=name, namespace=namespace).to_dict()
        except DynamicApiError as exc:
            if getattr(exc, "status", None) != 404:
                raise KubernetesError(
                    f"reading {kind} {namespace}/{name} failed: {exc.summary()}"
                ) from None
            description = "not found yet"
        else:
            done, description = rollout_complete(kind, obj)
            if done:
                log.info("%s %s/%s rolled out: %s", kind, namespace, name, description)
                return obj
        if time.monotonic() >= deadline:
            raise KubernetesError(
                f"{kind} {namespace}/{name} did not finish its rollout within {timeout:g} s: "
                f"{description}",
                hint=f"kubectl -n {namespace} describe {kind.lower()} {name}",
            )
        time.sleep(interval)


__all__ = [
    "Kubeconfig",
    "Secret",
    "apply",
    "client",
    "fetch_kubeconfig",
    "load_documents",
    "rewrite_server",
    "rollout_complete",
    "wait_for_rollout",
]
