"""The one package that talks to the API server.

A thin, typed wrapper over the official client's REST transport: objects are plain dicts (what
the pure renderers produce), writes are server-side apply with a fixed field manager, and
`apply` refuses to take over an object another controller owns. Nothing else in quantfleet
opens a connection.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "quantfleet"
log = logging.getLogger("quantfleet.kube")

Obj = dict[str, Any]


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
        Kind("quantfleet.io/v1alpha1", "QuantizedModel", "quantizedmodels"),
        Kind("quantfleet.io/v1alpha1", "InferenceService", "inferenceservices"),
    )
}


class NotOwned(RuntimeError):
    """apply() refused: the live object exists and is not controlled by the expected owner."""


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
    """Synchronous API access for reconcilers (Kopf runs sync handlers in worker threads)."""

    def __init__(self, configuration: client.Configuration | None = None) -> None:
        self.api = client.ApiClient(configuration or load_client_config())

    # -- transport -------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Obj | None:
        cfg = self.api.configuration
        url = cfg.host + path + (("?" + urlencode(query)) if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        token = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        try:
            resp = self.api.call_api(method, url, header_params=headers, body=body)  # the client JSON-encodes it
            data = resp.read()  # type: ignore[no-untyped-call]
        except ApiException as exc:
            if exc.status == 404 and method in ("GET", "DELETE"):
                return None
            raise
        if resp.status == 404 and method in ("GET", "DELETE"):
            return None
        if resp.status >= 400:
            raise ApiException(status=resp.status, reason=resp.reason, http_resp=resp.response)
        return json.loads(data) if data else None

    # -- reads -----------------------------------------------------------------------------
    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return self._call("GET", KINDS[kind].path(namespace, name))

    def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        query = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        result = self._call("GET", KINDS[kind].path(namespace), query=query) or {}
        items: list[Obj] = result.get("items", [])
        for item in items:  # list responses omit per-item apiVersion/kind
            item.setdefault("apiVersion", KINDS[kind].api_version)
            item.setdefault("kind", kind)
        return items

    # -- writes ----------------------------------------------------------------------------
    def apply(self, obj: Obj, owner_uid: str | None = None, force: bool = True) -> Obj:
        """Server-side apply `obj`. When `owner_uid` is given, refuse objects controlled by someone else."""
        kind = KINDS[obj["kind"]]
        meta = obj["metadata"]
        if owner_uid is not None:
            live = self.get(obj["kind"], meta["name"], meta.get("namespace"))
            if live is not None and not _controlled_by(live, owner_uid):
                raise NotOwned(
                    f"{obj['kind']} {meta.get('namespace')}/{meta['name']} exists and is not owned by this resource;"
                    " refusing to take it over"
                )
        query = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
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

    def delete(self, kind: str, name: str, namespace: str | None = None, propagation: str = "Background") -> bool:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        return self._call("DELETE", KINDS[kind].path(namespace, name), body) is not None

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


def _controlled_by(obj: Obj, owner_uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("controller") for r in refs)


def post_event(kube: Kube, obj: Obj, etype: str, reason: str, message: str, now: str) -> None:
    """A core/v1 Event about `obj` (best effort: an Event that cannot be written never fails a reconcile)."""
    meta = obj.get("metadata", {})
    ns = meta.get("namespace") or "default"
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'obj')}.", "namespace": ns},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": ns,
            "uid": meta.get("uid"),
        },
        "type": etype,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "quantfleet"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": "quantfleet",
    }
    try:
        kube._call("POST", KINDS["Event"].path(ns), event)
    except Exception as exc:
        log.warning("event not recorded object=%s/%s reason=%s error=%s", ns, meta.get("name"), reason, exc)
