"""Expected manifests for an InferenceService: one vLLM Deployment per pool, one Service, one PDB.

Pure. The vLLM command line is built only from the names declared in
`quantfleet.api.vllm_flags` (checked against the pinned vLLM source by the contract test),
and every rendered pod is restricted-profile compliant, probed on /health and scraped on /metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quantfleet.api import vllm_flags as vf
from quantfleet.api.common import parse_pvc_uri
from quantfleet.render.common import (
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_ISVC,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_POOL,
    MANAGED_BY,
    dns_name,
    merge_labels,
    owner_reference,
    resource_block,
    restricted_container_security,
    restricted_pod_security,
    short_hash,
    tolerations_for,
)

Obj = dict[str, Any]
PORT = vf.DEFAULT_PORT
MODEL_MOUNT = "/models"


@dataclass(frozen=True)
class ModelLocation:
    """Where vLLM reads weights: a mounted PVC path, a Hugging Face repo, or an s3:// URI."""

    uri: str

    @property
    def claim(self) -> str | None:
        return parse_pvc_uri(self.uri)[0] if self.uri.startswith("pvc://") else None

    @property
    def vllm_model(self) -> str:
        if self.uri.startswith("pvc://"):
            return f"{MODEL_MOUNT}/{parse_pvc_uri(self.uri)[1]}".rstrip("/")
        if self.uri.startswith("hf://"):
            return self.uri.removeprefix("hf://").partition("@")[0]
        return self.uri

    @property
    def revision(self) -> str | None:
        if self.uri.startswith("hf://") and "@" in self.uri:
            return self.uri.partition("@")[2]
        return None


@dataclass(frozen=True)
class PoolRollout:
    """Everything one pool's Deployment depends on (the decision, pinned)."""

    pool: str
    node_selector: Mapping[str, str]
    gpu_resource: str
    tensor_parallel_size: int
    kv_cache_dtype: str
    quantization: str | None
    model: ModelLocation
    replicas: int
    tolerations: tuple[Obj, ...] = ()
    # The weights are a quantized checkpoint whose config names its method: vLLM detects it, and a --quantization flag
    # could only be a no-op, be overridden, or stop vLLM at start-up (a method mismatch), so none is ever rendered.
    quantized_checkpoint: bool = False


@dataclass(frozen=True)
class ServiceInput:
    name: str
    namespace: str
    uid: str
    served_model_name: str
    max_model_len: int
    gpu_memory_utilization: float
    image: str
    extra_args: tuple[str, ...] = ()
    resources: Obj | None = None
    credentials_secret: str | None = None
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)


def deployment_name(isvc: str, pool: str) -> str:
    return dns_name(isvc, pool, limit=63)


def service_selector(isvc: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ISVC: isvc, LABEL_COMPONENT: "vllm"}


def vllm_args(svc: ServiceInput, roll: PoolRollout) -> list[str]:
    """`vllm serve` arguments: the model positional first, then only declared flags."""
    args = [roll.model.vllm_model]
    if roll.model.revision:
        args += [vf.FLAG_REVISION, roll.model.revision]
    args += [
        vf.FLAG_SERVED_MODEL_NAME,
        svc.served_model_name,
        vf.FLAG_HOST,
        "0.0.0.0",
        vf.FLAG_PORT,
        str(PORT),
        vf.FLAG_TENSOR_PARALLEL_SIZE,
        str(roll.tensor_parallel_size),
        vf.FLAG_MAX_MODEL_LEN,
        str(svc.max_model_len),
        vf.FLAG_GPU_MEMORY_UTILIZATION,
        f"{svc.gpu_memory_utilization:g}",
        vf.FLAG_KV_CACHE_DTYPE,
        roll.kv_cache_dtype,
    ]
    if roll.quantization and not roll.quantized_checkpoint:
        args += [vf.FLAG_QUANTIZATION, roll.quantization]
    if roll.model.claim is None:
        args += [vf.FLAG_DOWNLOAD_DIR, "/cache/models"]
    return args + list(svc.extra_args)


def expected_deployment(svc: ServiceInput, roll: PoolRollout) -> Obj:
    name = deployment_name(svc.name, roll.pool)
    selector = {**service_selector(svc.name), LABEL_POOL: roll.pool}
    labels = {**selector, LABEL_NAME: "vllm", LABEL_INSTANCE: svc.name}
    args = vllm_args(svc, roll)
    env: list[Obj] = [
        {"name": "HOME", "value": "/cache"},
        {"name": "HF_HOME", "value": "/cache/hf"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
    ]
    container: Obj = {
        "name": "vllm",
        "image": svc.image,
        "command": list(vf.VLLM_COMMAND),
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": resource_block(svc.resources, roll.gpu_resource, roll.tensor_parallel_size),
        "startupProbe": {
            "httpGet": {"path": vf.HEALTH_PATH, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 360,
        },
        "readinessProbe": {
            "httpGet": {"path": vf.HEALTH_PATH, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": vf.HEALTH_PATH, "port": "http"},
            "periodSeconds": 20,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "dshm", "mountPath": "/dev/shm"}],
        "securityContext": restricted_container_security(),
    }
    volumes: list[Obj] = [
        {"name": "cache", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
    ]
    if roll.model.claim is not None:
        container["volumeMounts"].append({"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True})
        volumes.append({"name": "model", "persistentVolumeClaim": {"claimName": roll.model.claim, "readOnly": True}})
    if svc.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": svc.credentials_secret}}]
    template_annotations = {
        **dict(svc.pod_annotations),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": vf.METRICS_PATH,
        "quantfleet.io/decision": short_hash(args),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": svc.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference("InferenceService", svc.name, svc.uid)],
        },
        "spec": {
            "replicas": roll.replicas,
            "selector": {"matchLabels": selector},
            # GPUs are scarce: replace pods one at a time instead of surging onto GPUs that may not exist.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": merge_labels(labels, dict(svc.pod_labels)), "annotations": template_annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod_security(),
                    "nodeSelector": dict(roll.node_selector),
                    "tolerations": tolerations_for(roll.gpu_resource, list(roll.tolerations)),
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def expected_service(svc: ServiceInput) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": svc.name,
            "namespace": svc.namespace,
            "labels": service_selector(svc.name),
            "ownerReferences": [owner_reference("InferenceService", svc.name, svc.uid)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": service_selector(svc.name),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def expected_pdb(svc: ServiceInput) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": svc.name,
            "namespace": svc.namespace,
            "labels": service_selector(svc.name),
            "ownerReferences": [owner_reference("InferenceService", svc.name, svc.uid)],
        },
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": service_selector(svc.name)}},
    }


def endpoint(svc_name: str, namespace: str) -> str:
    return f"http://{svc_name}.{namespace}.svc:{PORT}/v1"
