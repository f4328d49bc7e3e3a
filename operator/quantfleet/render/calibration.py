"""Expected manifests for a QuantizedModel: the immutable calibration Job and the checkpoint PVC.

Pure. The Job's name carries a hash of everything that affects its output (the recipe hash and
the retry token), so a restarted operator can never create a duplicate, and a spec change
produces a new Job while the old one is deleted as obsolete. The calibration program gets the
recipe as argv (`quantfleet calibrate --recipe-json ...`), never a shell string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quantfleet.api.common import parse_pvc_uri
from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.render.common import (
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_QM,
    LABEL_RECIPE,
    MANAGED_BY,
    dns_name,
    merge_labels,
    not_on_gpu_nodes,
    owner_reference,
    resource_block,
    restricted_container_security,
    restricted_pod_security,
    short_hash,
    tolerations_for,
)

Obj = dict[str, Any]
# Every claim is mounted at <PVC_ROOT>/<claim>; `quantfleet calibrate` maps pvc://claim/path there.
PVC_ROOT = "/mnt/pvc"
TERMINATION_LOG = "/dev/termination-log"
DEFAULT_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class StorageTarget:
    """Where the checkpoint goes: a PVC + sub-path (mounted at /mnt/pvc/<claim>) or an s3:// prefix."""

    uri: str  # pvc://claim/sub/path or s3://bucket/prefix
    claim: str | None = None
    sub_path: str = ""
    credentials_secret: str | None = None

    @property
    def in_pod_path(self) -> str:
        """The checkpoint directory inside a pod that mounts the claim at PVC_ROOT/<claim>."""
        if self.claim is None:
            return self.uri
        return f"{PVC_ROOT}/{self.claim}/{self.sub_path}".rstrip("/")


def storage_target(qm_name: str, destination: str | None, recipe_hash: str, credentials: str | None) -> StorageTarget:
    """The checkpoint location for a recipe; each recipe gets its own sub-directory."""
    leaf = f"{qm_name}-{recipe_hash[:8]}"
    if destination is None:
        claim = default_claim_name(qm_name)
        return StorageTarget(f"pvc://{claim}/{leaf}", claim, leaf)
    if destination.startswith("pvc://"):
        claim, base = parse_pvc_uri(destination)
        sub = f"{base}/{leaf}".strip("/")
        return StorageTarget(f"pvc://{claim}/{sub}", claim, sub)
    return StorageTarget(f"{destination.rstrip('/')}/{leaf}", None, "", credentials)


def default_claim_name(qm_name: str) -> str:
    return dns_name(qm_name, "checkpoints", limit=253)


def job_name(qm_name: str, recipe_hash: str, retry_token: str | None) -> str:
    return dns_name(qm_name, short_hash(f"{recipe_hash}/{retry_token or ''}"), limit=63)


def selector_labels(qm_name: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_QM: qm_name}


@dataclass(frozen=True)
class CalibrationJobInput:
    name: str
    namespace: str
    uid: str
    recipe: CalibrationRecipe
    recipe_hash: str
    checkpoint_format: str
    storage: StorageTarget
    image: str
    node_selector: Mapping[str, str]
    gpu_resource: str | None
    gpu_count: int
    tolerations: tuple[Obj, ...] = ()
    resources: Obj | None = None
    cpu_only: bool = False  # llama.cpp (GGUF): no GPU, kept off GPU nodes
    source_claim: str | None = None
    source_credentials_secret: str | None = None
    active_deadline_seconds: int = 21600
    retry_token: str | None = None
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)


def expected_job(inp: CalibrationJobInput) -> Obj:
    name = job_name(inp.name, inp.recipe_hash, inp.retry_token)
    labels = {
        **selector_labels(inp.name),
        LABEL_NAME: "quantfleet",
        LABEL_INSTANCE: inp.name,
        LABEL_COMPONENT: "calibration",
        LABEL_RECIPE: inp.recipe_hash[:16],
    }
    annotations = {
        "quantfleet.io/recipe-hash": inp.recipe_hash,
        "quantfleet.io/checkpoint-uri": inp.storage.uri,
        "quantfleet.io/scheme": inp.recipe.scheme,
        "quantfleet.io/tool": inp.recipe.tool,
        "quantfleet.io/tool-version": inp.recipe.tool_version,
        "quantfleet.io/format": inp.checkpoint_format,
    }
    env: list[Obj] = [
        {"name": "QUANTFLEET_TERMINATION_LOG", "value": TERMINATION_LOG},
        {"name": "QUANTFLEET_PVC_ROOT", "value": PVC_ROOT},
        {"name": "QUANTFLEET_CHECKPOINT_URI", "value": inp.storage.uri},
        {"name": "HF_HOME", "value": "/scratch/hf"},
        {"name": "HOME", "value": "/scratch"},
    ]
    env_from: list[Obj] = []
    for secret in (inp.source_credentials_secret, inp.storage.credentials_secret):
        if secret and {"secretRef": {"name": secret}} not in env_from:
            env_from.append({"secretRef": {"name": secret}})
    mounts: list[Obj] = [{"name": "scratch", "mountPath": "/scratch"}]
    volumes: list[Obj] = [{"name": "scratch", "emptyDir": {}}]
    if inp.storage.claim is not None:
        mounts.append({"name": "checkpoints", "mountPath": f"{PVC_ROOT}/{inp.storage.claim}"})
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {"claimName": inp.storage.claim}})
    if inp.source_claim is not None and inp.source_claim != inp.storage.claim:
        mounts.append({"name": "source", "mountPath": f"{PVC_ROOT}/{inp.source_claim}", "readOnly": True})
        volumes.append({"name": "source", "persistentVolumeClaim": {"claimName": inp.source_claim, "readOnly": True}})
    container: Obj = {
        "name": "calibrate",
        "image": inp.image,
        "command": ["quantfleet", "calibrate"],
        "args": inp.recipe.to_args(),
        "env": env,
        "resources": resource_block(inp.resources, inp.gpu_resource, inp.gpu_count),
        "volumeMounts": mounts,
        "securityContext": restricted_container_security(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    if env_from:
        container["envFrom"] = env_from
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": restricted_pod_security(),
        "nodeSelector": dict(inp.node_selector),
        "tolerations": tolerations_for(inp.gpu_resource, list(inp.tolerations))
        if inp.gpu_resource
        else list(inp.tolerations),
        "containers": [container],
        "volumes": volumes,
    }
    if inp.cpu_only:
        pod_spec["affinity"] = not_on_gpu_nodes()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": inp.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference("QuantizedModel", inp.name, inp.uid)],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": inp.active_deadline_seconds,
            "ttlSecondsAfterFinished": DEFAULT_TTL_SECONDS,
            "template": {
                "metadata": {
                    "labels": merge_labels(labels, dict(inp.pod_labels)),
                    "annotations": {**dict(inp.pod_annotations), **annotations},
                },
                "spec": pod_spec,
            },
        },
    }


def expected_pvc(qm_name: str, namespace: str, size: str, storage_class: str | None) -> Obj:
    """The default checkpoint PVC. No owner reference: retention is decided by the finalizer, not GC."""
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": default_claim_name(qm_name),
            "namespace": namespace,
            "labels": {**selector_labels(qm_name), LABEL_COMPONENT: "checkpoint-storage"},
        },
        "spec": spec,
    }


def expected_cleanup_job(qm_name: str, namespace: str, uid: str, target: StorageTarget, image: str) -> Obj:
    """Deletes one checkpoint directory from a user-provided PVC (retention: Delete). No shell involved."""
    assert target.claim is not None
    labels = {**selector_labels(qm_name), LABEL_COMPONENT: "checkpoint-cleanup"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": dns_name(qm_name, "cleanup", short_hash(target.uri)),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference("QuantizedModel", qm_name, uid)],
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod_security(),
                    "containers": [
                        {
                            "name": "cleanup",
                            "image": image,
                            "command": ["rm", "-rf", "--", target.in_pod_path],
                            "volumeMounts": [{"name": "checkpoints", "mountPath": f"{PVC_ROOT}/{target.claim}"}],
                            "securityContext": restricted_container_security(),
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        }
                    ],
                    "volumes": [{"name": "checkpoints", "persistentVolumeClaim": {"claimName": target.claim}}],
                },
            },
        },
    }
