"""Expected manifests for an InferenceService: one vLLM Deployment per pool, one Service, one PDB.

Pure. The vLLM command line is built only from the names declared in
`quantfleet.api.vllm_flags` (checked against the pinned vLLM source by the contract test),
and every rendered pod is restricted-profile compliant, probed on /health and scraped on /metrics.

Probes: /health answers 200 only once the engine is up (and 503 when it died), so readiness and liveness
use it, and a startup probe holds them off while vLLM starts. Its budget is sized to the model: a fixed
start (imports, engine init, CUDA graphs or torch.compile) plus the time to fetch and load the weights
(`startup_budget_seconds`), never an hour for every model.

A CPU pool's Deployment (`PoolRollout.cpu`) runs the vLLM CPU image with the same `vllm serve` command: no
GPU resources or GPU tolerations; CPU and memory requests equal to limits (a Guaranteed pod); the KV cache
sized by `VLLM_CPU_KVCACHE_SPACE` (whole GiB: without it vLLM's CPU backend reads
--gpu-memory-utilization as a share of the node's RAM, so that flag is not rendered there); a 16-bit KV
cache as `--kv-cache-dtype auto`; and a node affinity that keeps the pods off GPU nodes, whatever the
pool's selector matches.

Rollouts: GPUs are scarce, so a pool's strategy is sized to its free GPUs when a rollout starts (`PoolRollout.
max_surge`: surge as many new pods as free GPUs hold, else replace one at a time with `maxSurge: 0, maxUnavailable:
1`), and `progressDeadlineSeconds` is the startup budget plus `PROGRESS_MARGIN_SECONDS`, so the Deployment controller
marks a rollout whose new pods never become Ready as stuck (ProgressDeadlineExceeded) instead of leaving it pending.
An autoscaled pool's Deployment carries no `spec.replicas` (`PoolRollout.replicas` None): its autoscaler owns them.
"""

from __future__ import annotations

import math
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
    not_on_gpu_nodes,
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
# The environment variable vLLM's CPU backend sizes its KV cache by (GiB, read with int()).
CPU_KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"

# Startup budget: a fixed start plus seconds per GiB of weights, by where they come from. The fixed part covers
# imports, engine init, CUDA graph capture or torch.compile (measured on CPU: 40 s eager, 104 s with torch.compile for
# a tiny model on 2 cores, docs/vllm-cpu.md); fetching from a hub or S3 is counted at 100 MiB/s, reading a mounted
# volume at 500 MiB/s.
STARTUP_BASE_SECONDS = 300
STARTUP_SECONDS_PER_GIB_FETCHED = 10
STARTUP_SECONDS_PER_GIB_MOUNTED = 2
PROBE_PERIOD_SECONDS = 10
PROGRESS_MARGIN_SECONDS = 120
# On an autoscaled pool's Deployment: the replica count belongs to the autoscaler (quantfleet.kube.writer hands the
# field over before the first apply without it, so it is never reset to the default of 1).
REPLICAS_OWNER_ANNOTATION = "quantfleet.io/replicas-owner"
# Labels that mark a GPU node (the ones the pool view reads a GPU product from): CPU pods never land there.


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
    replicas: int | None  # None: autoscaled (the autoscaler owns spec.replicas)
    tolerations: tuple[Obj, ...] = ()
    # The weights are a quantized checkpoint whose config names its method: vLLM detects it, and a --quantization flag
    # could only be a no-op, be overridden, or stop vLLM at start-up (a method mismatch), so none is ever rendered.
    quantized_checkpoint: bool = False
    weights_gib: float = 0.0  # the whole checkpoint, for the startup budget
    cpu: CpuRollout | None = None  # set for a CPU pool (vLLM's CPU backend)
    max_surge: int = 0  # new pods a rollout may add beyond the replica count (free GPUs); 0: one at a time
    progress_deadline_seconds: int | None = None  # None: the startup budget plus PROGRESS_MARGIN_SECONDS
    runtime: str = "vllm"  # vllm | sglang | llama-cpp
    gfx_arch: str | None = None  # AMD pools: the GPUs' gfx arch (SGLang ships one ROCm image per arch)
    cpu_amx: bool = False  # a CPU pool of AMX nodes (llama.cpp: --no-repack, its AMX matmul crashes on GGUF)
    gpu_layers: int = 0  # llama-cpp: layers offloaded to the GPU
    parallel: int = 1  # llama-cpp: request slots (--parallel)


@dataclass(frozen=True)
class CpuRollout:
    """A CPU pool's pinned sizing: the KV cache space and the pod's CPUs and memory (requests = limits)."""

    kv_cache_space_gib: int
    cpus: str
    memory: str


@dataclass(frozen=True)
class ServiceInput:
    name: str
    namespace: str
    uid: str
    served_model_name: str
    max_model_len: int
    gpu_memory_utilization: float
    image: str
    cpu_image: str = ""
    extra_args: tuple[str, ...] = ()  # vLLM only
    # images of the other runtimes: sglang, llama-cpp (GPU), llama-cpp-cpu
    runtime_images: Mapping[str, str] = field(default_factory=dict)
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
    ]
    if roll.cpu is None:  # on CPU the KV cache is VLLM_CPU_KVCACHE_SPACE; the flag would mean a share of RAM
        args += [vf.FLAG_GPU_MEMORY_UTILIZATION, f"{svc.gpu_memory_utilization:g}"]
    args += [vf.FLAG_KV_CACHE_DTYPE, roll.kv_cache_dtype]
    if roll.quantization and not roll.quantized_checkpoint and roll.cpu is None:
        args += [vf.FLAG_QUANTIZATION, roll.quantization]
    if roll.model.claim is None:
        args += [vf.FLAG_DOWNLOAD_DIR, "/cache/models"]
    return args + list(svc.extra_args)


def startup_budget_seconds(weights_gib: float, model: ModelLocation) -> int:
    """How long the startup probe lets vLLM start: a fixed start plus fetching/loading the weights."""
    per_gib = STARTUP_SECONDS_PER_GIB_MOUNTED if model.claim is not None else STARTUP_SECONDS_PER_GIB_FETCHED
    return STARTUP_BASE_SECONDS + math.ceil(max(weights_gib, 0.0) * per_gib)


def rolling_update(max_surge: int) -> Obj:
    """Surge onto free GPUs when there are some; otherwise take one old pod down before each new one starts."""
    if max_surge > 0:
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 0}}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def cpu_resources(resources: Obj | None, cpu: CpuRollout) -> Obj:
    """A CPU pod's resources: the pinned CPUs and memory as requests = limits (Guaranteed), plus the spec's others."""
    requests = {k: str(v) for k, v in ((resources or {}).get("requests") or {}).items()}
    limits = {k: str(v) for k, v in ((resources or {}).get("limits") or {}).items()}
    for block in (requests, limits):
        block.update({"cpu": cpu.cpus, "memory": cpu.memory})
    return {"requests": dict(sorted(requests.items())), "limits": dict(sorted(limits.items()))}


@dataclass(frozen=True)
class RuntimeContainer:
    """What differs between the runtimes' containers."""

    image: str
    command: list[str]
    args: list[str]
    env: list[Obj]
    health_path: str
    metrics_path: str


def runtime_container(svc: ServiceInput, roll: PoolRollout) -> RuntimeContainer:
    """The serving container's image, command line and endpoints for the pool's runtime."""
    base_env: list[Obj] = [{"name": "HOME", "value": "/cache"}, {"name": "HF_HOME", "value": "/cache/hf"}]
    if roll.runtime == "sglang":
        from quantfleet.api import sglang_flags as sf
        from quantfleet.render.sglang import sglang_args, sglang_command

        amd = roll.gpu_resource == "amd.com/gpu"
        key = ("sglang-gfx950" if roll.gfx_arch == "gfx950" else "sglang-gfx942") if amd else "sglang"
        return RuntimeContainer(
            svc.runtime_images[key],
            sglang_command(),
            sglang_args(svc, roll),
            base_env,
            sf.HEALTH_PATH,
            sf.METRICS_PATH,
        )
    if roll.runtime == "llama-cpp":
        from quantfleet.api import llamacpp_flags as lf
        from quantfleet.render.llamacpp import gguf_path, llamacpp_args, llamacpp_command

        threads = None if roll.cpu is None else max(1, math.floor(cpu_count(roll.cpu.cpus)))
        return RuntimeContainer(
            svc.runtime_images["llama-cpp-cpu" if roll.cpu is not None else "llama-cpp"],
            llamacpp_command(),
            llamacpp_args(
                svc,
                roll,
                gguf_path=gguf_path(roll.model),
                parallel=roll.parallel,
                n_gpu_layers=roll.gpu_layers,
                threads=threads,
                no_repack=roll.cpu is not None and roll.cpu_amx,
            ),
            base_env,
            lf.HEALTH_PATH,
            lf.METRICS_PATH,
        )
    env = [*base_env, {"name": "VLLM_NO_USAGE_STATS", "value": "1"}]
    if roll.cpu is not None:
        env.append({"name": CPU_KVCACHE_ENV, "value": str(roll.cpu.kv_cache_space_gib)})
    return RuntimeContainer(
        svc.cpu_image if roll.cpu is not None else svc.image,
        list(vf.VLLM_COMMAND),
        vllm_args(svc, roll),
        env,
        vf.HEALTH_PATH,
        vf.METRICS_PATH,
    )


def cpu_count(quantity: str) -> float:
    """CPUs of a Kubernetes CPU quantity ("4", "3500m")."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def expected_deployment(svc: ServiceInput, roll: PoolRollout) -> Obj:
    name = deployment_name(svc.name, roll.pool)
    selector = {**service_selector(svc.name), LABEL_POOL: roll.pool}
    labels = {**selector, LABEL_NAME: "vllm", LABEL_INSTANCE: svc.name}
    run = runtime_container(svc, roll)
    args = run.args
    budget = startup_budget_seconds(roll.weights_gib, roll.model)
    container: Obj = {
        "name": roll.runtime,  # vllm | sglang | llama-cpp
        "image": run.image,
        "command": run.command,
        "args": args,
        "env": run.env,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": (
            cpu_resources(svc.resources, roll.cpu)
            if roll.cpu is not None
            else resource_block(svc.resources, roll.gpu_resource, roll.tensor_parallel_size)
        ),
        "startupProbe": {
            "httpGet": {"path": run.health_path, "port": "http"},
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(budget / PROBE_PERIOD_SECONDS),
        },
        "readinessProbe": {
            "httpGet": {"path": run.health_path, "port": "http"},
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": run.health_path, "port": "http"},
            "periodSeconds": 20,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "dshm", "mountPath": "/dev/shm"}],
        "securityContext": restricted_container_security(),
    }
    volumes: list[Obj] = [
        {"name": "cache", "emptyDir": {}},
        # memory-backed: on a CPU pool it counts against the pod's memory limit, so it stays small there
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi" if roll.cpu is not None else "16Gi"}},
    ]
    if roll.model.claim is not None:
        container["volumeMounts"].append({"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True})
        volumes.append({"name": "model", "persistentVolumeClaim": {"claimName": roll.model.claim, "readOnly": True}})
    if svc.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": svc.credentials_secret}}]
    pod_spec: Obj = {
        "automountServiceAccountToken": False,
        "securityContext": restricted_pod_security(),
        "nodeSelector": dict(roll.node_selector),
        # GPU nodes are commonly tainted with their resource; a CPU pod tolerates only what the pool spec lists
        "tolerations": (
            list(roll.tolerations)
            if roll.cpu is not None
            else tolerations_for(roll.gpu_resource, list(roll.tolerations))
        ),
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": volumes,
    }
    if roll.cpu is not None:
        pod_spec["affinity"] = not_on_gpu_nodes()
    template_annotations = {
        **dict(svc.pod_annotations),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": run.metrics_path,
        "quantfleet.io/decision": short_hash(args),
    }
    metadata: Obj = {
        "name": name,
        "namespace": svc.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference("InferenceService", svc.name, svc.uid)],
    }
    spec: Obj = {}
    if roll.replicas is None:
        metadata["annotations"] = {REPLICAS_OWNER_ANNOTATION: "autoscaler"}
    else:
        spec["replicas"] = roll.replicas
    spec |= {
        "selector": {"matchLabels": selector},
        "strategy": rolling_update(roll.max_surge),
        "progressDeadlineSeconds": roll.progress_deadline_seconds or budget + PROGRESS_MARGIN_SECONDS,
        "template": {
            "metadata": {"labels": merge_labels(labels, dict(svc.pod_labels)), "annotations": template_annotations},
            "spec": pod_spec,
        },
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


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
