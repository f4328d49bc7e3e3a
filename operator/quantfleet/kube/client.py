"""The transport to the API server: plain-dict reads, list/watch streams and writes, nothing else.

A thin, typed wrapper over the official client's REST transport (so kubeconfig, in-cluster tokens and their
rotation, TLS and proxies behave exactly as in the official client). Objects are plain dicts, what the pure
renderers produce and what the watch caches hold. Every request is counted by verb and resource
(`quantfleet_api_requests_total`), which is how the fleet benchmark proves "no reads, no writes at idle".

Who calls what: the watch caches (quantfleet.facts) call `list_page` and `watch`; the one writer
(quantfleet.kube.writer) calls the write verbs; leader election (quantfleet.kube.lease) reads and writes its Lease.
A reconcile never calls this module directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "quantfleet"
log = logging.getLogger("quantfleet.kube")

Obj = dict[str, Any]
# (verb, resource, status code) -> called once per request; the manager wires it to a Prometheus counter.
RequestHook = Callable[[str, str, int], None]


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        Kind("v1", "Pod", "pods"),
        Kind("v1", "Service", "services"),
        Kind("v1", "ConfigMap", "configmaps"),
        Kind("v1", "Secret", "secrets"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("v1", "Event", "events"),
        Kind("v1", "Namespace", "namespaces", namespaced=False),
        Kind("v1", "Node", "nodes", namespaced=False),
        Kind("batch/v1", "Job", "jobs"),
        Kind("apps/v1", "Deployment", "deployments"),
        Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False),
        # optional: served only where KEDA / prometheus-operator installed their CRDs (quantfleet.facts.cache)
        Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
        Kind("monitoring.coreos.com/v1", "PodMonitor", "podmonitors"),
        Kind("coordination.k8s.io/v1", "Lease", "leases"),
        Kind("quantfleet.io/v1alpha1", "QuantizedModel", "quantizedmodels"),
        Kind("quantfleet.io/v1alpha1", "InferenceService", "inferenceservices"),
    )
}


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (HTTP 410 Gone, or an ERROR event with code 410): relist."""


def load_client_config(kubeconfig: str | None = None) -> client.Configuration:
    cfg = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


class Kube:
    """Synchronous API access, safe to share between threads.

    `pool_size` bounds the keep-alive connections: the watch caches get a client of their own sized to their
    number of watches (a watch holds its connection for minutes), so watches never starve the writers and the
    pool never overflows ("Connection pool is full, discarding connection").
    """

    def __init__(
        self,
        configuration: client.Configuration | None = None,
        pool_size: int = 8,
        on_request: RequestHook | None = None,
    ) -> None:
        cfg = configuration or load_client_config()
        copy = client.Configuration()
        copy.__dict__.update(cfg.__dict__)
        copy.connection_pool_maxsize = pool_size
        self.api = client.ApiClient(copy)
        self.on_request = on_request

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    # -- transport -------------------------------------------------------------------------
    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        cfg = self.api.configuration
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        return headers

    def _count(self, verb: str, path: str, status: int) -> None:
        if self.on_request is not None:
            self.on_request(verb, _resource_of(path), status)

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        timeout: float | tuple[float, float] | None = 30,
    ) -> Obj | None:
        url = self.api.configuration.host + path + (("?" + urlencode(query)) if query else "")
        verb = _verb(method, query)
        try:
            resp = self.api.call_api(
                method, url, header_params=self._headers(content_type), body=body, _request_timeout=timeout
            )
            data = resp.read()  # type: ignore[no-untyped-call]
        except ApiException as exc:
            self._count(verb, path, exc.status or 0)
            if exc.status == 404 and method in ("GET", "DELETE"):
                return None
            raise
        self._count(verb, path, resp.status)
        if resp.status == 404 and method in ("GET", "DELETE"):
            return None
        if resp.status >= 400:
            raise ApiException(status=resp.status, reason=resp.reason, http_resp=resp.response)
        return json.loads(data) if data else None

    # -- reads (watch caches and leader election only) --------------------------------------------------
    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return self._call("GET", KINDS[kind].path(namespace, name))

    def list_page(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int = 500,
        continue_token: str | None = None,
    ) -> Obj:
        """One page of a LIST (items get apiVersion/kind filled in: list responses omit them)."""
        query = {"limit": str(limit)}
        if label_selector:
            query["labelSelector"] = label_selector
        if continue_token:
            query["continue"] = continue_token
        result = self._call("GET", KINDS[kind].path(namespace), query=query, timeout=120) or {}
        for item in result.get("items") or []:
            item.setdefault("apiVersion", KINDS[kind].api_version)
            item.setdefault("kind", kind)
        return result

    def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> Iterator[Obj]:
        """Stream watch events ({"type", "object"}) from `resource_version`, bookmarks included.

        Ends when the server closes the stream (after `timeout_seconds`); raises WatchExpired on 410 Gone.
        """
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            query["labelSelector"] = label_selector
        path = KINDS[kind].path(namespace)
        url = self.api.configuration.host + path + "?" + urlencode(query)
        try:
            resp = self.api.call_api(
                "GET", url, header_params=self._headers(), _request_timeout=(10, timeout_seconds + 30)
            )
        except ApiException as exc:
            self._count("watch", path, exc.status or 0)
            if exc.status == 410:
                raise WatchExpired(str(exc.reason)) from exc
            raise
        self._count("watch", path, resp.status)
        raw = resp.response
        try:
            if resp.status == 410:
                raise WatchExpired(resp.reason or "Gone")
            if resp.status >= 400:
                raise ApiException(status=resp.status, reason=resp.reason)
            buffer = b""
            for chunk in raw.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        if status.get("code") == 410:
                            raise WatchExpired(status.get("message", "Gone"))
                        raise ApiException(status=status.get("code") or 500, reason=status.get("message"))
                    yield event
        finally:
            raw.release_conn()

    # -- writes (quantfleet.kube.writer and leader election only) --------------------------------------
    def apply(self, obj: Obj, force: bool = True, field_manager: str = FIELD_MANAGER) -> Obj:
        """Server-side apply `obj` with the operator's field manager (or another of its own)."""
        kind = KINDS[obj["kind"]]
        meta = obj["metadata"]
        query = {"fieldManager": field_manager, "force": "true" if force else "false"}
        out = self._call(
            "PATCH", kind.path(meta.get("namespace"), meta["name"]), obj, "application/apply-patch+yaml", query
        )
        assert out is not None
        return out

    def create(self, obj: Obj) -> Obj | None:
        """Create; returns None when it already exists (idempotent for immutable children)."""
        kind = KINDS[obj["kind"]]
        try:
            return self._call(
                "POST", kind.path(obj["metadata"].get("namespace")), obj, query={"fieldManager": FIELD_MANAGER}
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def replace(self, obj: Obj) -> Obj | None:
        """PUT (optimistic concurrency through metadata.resourceVersion); None on a conflict."""
        kind = KINDS[obj["kind"]]
        meta = obj["metadata"]
        try:
            return self._call("PUT", kind.path(meta.get("namespace"), meta["name"]), obj)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> bool:
        """Delete; with `uid`, only that incarnation of the object (a precondition the server checks)."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            return self._call("DELETE", KINDS[kind].path(namespace, name), body) is not None
        except ApiException as exc:
            if exc.status == 409:  # the uid precondition failed: a different object has that name now
                return False
            raise

    def patch_status(self, kind: str, name: str, namespace: str, status: Obj) -> Obj | None:
        """Replace the status stanza (merge patch on /status, explicit nulls clear stale fields)."""
        try:
            return self._call(
                "PATCH", KINDS[kind].path(namespace, name, "status"), {"status": status}, "application/merge-patch+json"
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_metadata(self, kind: str, name: str, namespace: str | None, metadata: Obj) -> Obj | None:
        return self._call(
            "PATCH", KINDS[kind].path(namespace, name), {"metadata": metadata}, "application/merge-patch+json"
        )

    def post_event(self, event: Obj) -> None:
        self._call("POST", KINDS["Event"].path(event["metadata"]["namespace"]), event)


def _verb(method: str, query: dict[str, str] | None) -> str:
    if method == "GET":
        return "list" if query is not None and "limit" in query else "get"
    return {"PATCH": "patch", "POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, method.lower())


def _resource_of(path: str) -> str:
    """`/apis/apps/v1/namespaces/x/deployments/y/status` -> `deployments/status`."""
    parts = [p for p in path.split("/") if p]
    parts = parts[2:] if parts[0] == "api" else parts[3:]  # drop /api/v1 or /apis/<group>/<version>
    if parts[:1] == ["namespaces"] and len(parts) >= 3:
        parts = parts[2:]
    resource = parts[0] if parts else "namespaces"
    return f"{resource}/{parts[2]}" if len(parts) >= 3 else resource
