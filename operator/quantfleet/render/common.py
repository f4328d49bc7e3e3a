"""Shared pieces of every manifest the operator renders: names, labels, owner references, pod hardening.

Pure: takes plain values, returns plain dicts. Every pod the operator creates goes through
`restricted_pod_security()` and `restricted_container_security()` so it passes the Pod
Security "restricted" profile.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from quantfleet.api.common import API_GROUP, API_VERSION
from quantfleet.hardware.labels import AMD_DEVICE_ID, AMD_PRODUCT, NV_PRODUCT

MANAGED_BY = "quantfleet"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_QM = f"{API_GROUP}/quantizedmodel"
LABEL_ISVC = f"{API_GROUP}/inferenceservice"
LABEL_POOL = f"{API_GROUP}/pool"
LABEL_RECIPE = f"{API_GROUP}/recipe-hash"

Obj = dict[str, Any]


def short_hash(value: Any, length: int = 8) -> str:
    blob = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def dns_name(*parts: str, limit: int = 63) -> str:
    """Join parts into a DNS-1123 label; long names keep a hash suffix so they stay unique."""
    raw = "-".join(p for p in parts if p)
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if len(name) <= limit:
        return name
    suffix = short_hash(raw, 6)
    return f"{name[: limit - 7].rstrip('-')}-{suffix}"


def owner_reference(kind: str, name: str, uid: str) -> Obj:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controlled_by(obj: Any, owner_uid: str) -> bool:
    """`obj`'s controller owner reference names `owner_uid` (what is the operator's to change or delete)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("controller") for r in refs)


def selector_key(selector: Any) -> str:
    """A node selector as an index key: the same labels give the same key whatever their order."""
    return json.dumps(dict(selector), sort_keys=True, separators=(",", ":"))


def restricted_pod_security() -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def tolerations_for(gpu_resource: str, extra: list[Obj] | None) -> list[Obj]:
    """GPU nodes are commonly tainted with their resource name; tolerate that plus the user's list."""
    base = [{"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"}]
    return base + [t for t in (extra or []) if t not in base]


def resource_block(resources: Obj | None, gpu_resource: str | None, gpus: int) -> Obj:
    requests = dict((resources or {}).get("requests") or {})
    limits = dict((resources or {}).get("limits") or {})
    if gpu_resource and gpus > 0:
        limits[gpu_resource] = gpus
        requests[gpu_resource] = gpus
    out: Obj = {}
    if requests:
        out["requests"] = {k: str(v) for k, v in sorted(requests.items())}
    if limits:
        out["limits"] = {k: str(v) for k, v in sorted(limits.items())}
    return out


def merge_labels(base: dict[str, str], extra: dict[str, str] | None) -> dict[str, str]:
    """User labels never override the operator's selector labels."""
    return {**(extra or {}), **base}


GPU_NODE_LABELS = (NV_PRODUCT, AMD_PRODUCT, AMD_DEVICE_ID)


def not_on_gpu_nodes() -> Obj:
    """Node affinity that keeps CPU-only pods off GPU nodes (a CPU pool's selector may match them too)."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": k, "operator": "DoesNotExist"} for k in GPU_NODE_LABELS]}
                ]
            }
        }
    }
