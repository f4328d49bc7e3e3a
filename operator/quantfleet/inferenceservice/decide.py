"""InferenceService, pure core: {the service, cluster facts} -> per-pool decisions -> desired children + status.

Level-triggered and pure: `outcome()` is the whole reconcile minus I/O, so golden cases can pin it. Decisions are
pinned in status under a hash of their inputs (spec, model checkpoint, re-plan annotation): a cluster change never
silently flips a running fleet's precision, it shows up as `Degraded`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from quantfleet.api.checkpoint import HF_QUANT_CONFIG, CheckpointQuant, UnsupportedCheckpoint, parse_checkpoint_quant
from quantfleet.api.common import first_error
from quantfleet.api.conditions import Cond, is_true
from quantfleet.api.gguf import as_gguf
from quantfleet.api.inferenceservice import DEFAULT_PROMETHEUS, InferenceServiceSpec, Runtime
from quantfleet.api.recipe import GgufScheme
from quantfleet.hardware import GPU_TABLE, GpuFacts, LabelError
from quantfleet.hardware.cpu import cpu_quantity_millis, memory_quantity_bytes
from quantfleet.hardware.labels import short_name
from quantfleet.hardware.pools import ClusterGpus, CpuPool, GpuPool, pool_for_selector
from quantfleet.hardware.sglang import sglang_refusal
from quantfleet.inferenceservice import rollout as ro
from quantfleet.inferenceservice import status as st
from quantfleet.planning import (
    Checkpoint,
    ConfigError,
    ModelArch,
    PlanError,
    PlanRequest,
    decide,
    parse_model_config,
    router_ignore_patterns,
)
from quantfleet.planning.cpu import CpuNodeSize, decide_cpu
from quantfleet.planning.decision import Decision
from quantfleet.planning.llamacpp import decide_llamacpp
from quantfleet.render.autoscaling import (
    DEFAULT_TARGET,
    HPA_KIND,
    KEDA_KIND,
    PODMONITOR_KIND,
    PoolScaling,
    expected_hpa,
    expected_pod_monitor,
    expected_scaled_object,
)
from quantfleet.render.common import (
    LABEL_ISVC,
    LABEL_MANAGED_BY,
    LABEL_POOL,
    MANAGED_BY,
    controlled_by,
    selector_key,
    short_hash,
)
from quantfleet.render.outcome import Event, Outcome
from quantfleet.render.vllm import (
    REPLICAS_OWNER_ANNOTATION,
    CpuRollout,
    ModelLocation,
    PoolRollout,
    ServiceInput,
    deployment_name,
    expected_deployment,
    expected_pdb,
    expected_service,
    rolling_update,
    service_selector,
)

REPLAN_ANNOTATION = "quantfleet.io/replan"
# checkpointFormat values of an unquantized base model (anything else is a checkpoint that names its method).
BASE_FORMATS = frozenset({"bf16", "fp16", "fp32"})
Obj = dict[str, Any]


@dataclass(frozen=True)
class ServiceFacts:
    """Everything one InferenceService's reconcile reads, gathered from the watch caches."""

    pools: ClusterGpus
    configmaps: Mapping[str, Obj]  # referenced ConfigMaps by name (absent: missing)
    quantized_model: Obj | None  # the referenced QuantizedModel, if any
    deployments: Mapping[str, Obj]  # owned vLLM Deployments by name
    vllm_image: str
    now: str
    vllm_cpu_image: str  # the image CPU pools run (versions.toml vllm.cpu_image)
    # autoscalers and monitors labelled with the service, by kind and name (KEDA's own HPAs too: filtered by owner)
    children: Mapping[str, Mapping[str, Obj]] = field(default_factory=dict)
    pods: tuple[Obj, ...] = ()  # the service's vLLM pods (why a stuck rollout is stuck)
    optional: frozenset[str] = frozenset()  # optional kinds served here (ScaledObject, PodMonitor)
    gpus_claimed: Mapping[str, int] = field(default_factory=dict)  # node selector key -> GPUs our Deployments claim
    runtime_images: Mapping[str, str] = field(default_factory=dict)  # versions.runtime_images(): sglang, llama-cpp


class Blocked(Exception):
    """The service cannot be (re)planned now; `reason` becomes the failing condition's reason."""

    def __init__(self, reason: str, message: str, *, waiting: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.waiting = waiting  # waiting on the model (ModelReady=False) rather than on planning


@dataclass(frozen=True)
class ResolvedModel:
    arch: ModelArch
    base_uri: str | None
    checkpoint: Checkpoint | None
    served_name: str
    credentials: str | None
    gguf: tuple[GgufScheme, str] | None = None  # a GGUF checkpoint (scheme, uri): llama.cpp serves it

    @property
    def uri(self) -> str:
        """What a pool serves when its decision names no checkpoint."""
        uri = self.gguf[1] if self.gguf else self.base_uri
        assert uri is not None
        return uri


def _config(facts: ServiceFacts, name: str, key: str) -> tuple[ModelArch, CheckpointQuant | None]:
    """The architecture from the ConfigMap's config.json, and the checkpoint's quantization (None for a base model):
    config.json's quantization_config, else ModelOpt's hf_quant_config.json when the ConfigMap carries that key."""
    cm = facts.configmaps.get(name)
    data = (cm or {}).get("data") or {}
    if cm is None or key not in data:
        raise Blocked("ModelConfigMissing", f"ConfigMap {name} with key {key!r} not found", waiting=True)
    try:
        cfg = json.loads(data[key])
        arch = parse_model_config(cfg)
        hf_quant = json.loads(data[HF_QUANT_CONFIG]) if HF_QUANT_CONFIG in data else None
    except (json.JSONDecodeError, ConfigError) as exc:
        raise Blocked("SpecInvalid", f"ConfigMap {name}/{key} is not a usable config.json: {exc}") from exc
    if hf_quant is not None and not isinstance(hf_quant, dict):
        raise Blocked("SpecInvalid", f"ConfigMap {name}/{HF_QUANT_CONFIG} is not a JSON object")
    return arch, parse_checkpoint_quant(cfg, hf_quant)  # UnsupportedCheckpoint: the caller names the model


def config_ref(spec: InferenceServiceSpec, qm: Obj | None) -> tuple[str, str] | None:
    """(ConfigMap name, key) the service plans with: its own configRef, else its QuantizedModel's."""
    if spec.model.config_ref is not None:
        return spec.model.config_ref.name, spec.model.config_ref.key
    ref = (((qm or {}).get("spec") or {}).get("source") or {}).get("modelConfigRef")
    return (ref["name"], ref.get("key", "config.json")) if ref else None


def resolve_model(name: str, spec: InferenceServiceSpec, facts: ServiceFacts) -> ResolvedModel:
    model = spec.model
    served = model.served_model_name or name
    creds = model.credentials_secret.name if model.credentials_secret else None
    if model.quantized_model_ref is None:
        assert model.uri is not None and model.config_ref is not None  # CEL guarantees both
        try:
            arch, quant = _config(facts, model.config_ref.name, model.config_ref.key)
        except UnsupportedCheckpoint as exc:
            raise Blocked("CannotHonour", f"model {model.uri}: {exc}") from exc
        if quant is None:  # a base model: precision is decided per pool
            return ResolvedModel(arch, model.uri, None, served, creds)
        # a pre-quantized checkpoint: served in its own format, never re-quantized
        return ResolvedModel(arch, None, Checkpoint.published(quant, model.uri), served, creds)
    qm_name = model.quantized_model_ref.name
    qm = facts.quantized_model
    if qm is None:
        raise Blocked("QuantizedModelNotFound", f"QuantizedModel {qm_name} not found", waiting=True)
    qstatus = qm.get("status") or {}
    ckpt = qstatus.get("checkpoint") or {}
    if not is_true(qstatus.get("conditions"), "Ready") or not ckpt.get("uri"):
        phase = qstatus.get("phase") or "Pending"
        raise Blocked(
            "WaitingForQuantizedModel", f"QuantizedModel {qm_name} is not Ready yet (phase {phase})", waiting=True
        )
    qspec = qm.get("spec") or {}
    source = qspec.get("source") or {}
    hf = source.get("huggingFace")
    base = f"hf://{hf['repo']}@{hf.get('revision', 'main')}" if hf else source.get("uri")
    ref = config_ref(spec, qm)
    if ref is None:
        raise Blocked(
            "ModelConfigMissing",
            f"neither spec.model.configRef nor QuantizedModel {qm_name}"
            " .spec.source.modelConfigRef names a config.json to plan capacity with",
        )
    try:
        arch, _ = _config(facts, *ref)
    except UnsupportedCheckpoint as exc:  # the base model's own config names a method vLLM cannot load
        raise Blocked("CannotHonour", f"QuantizedModel {qm_name} source config: {exc}") from exc
    gguf = as_gguf(qspec.get("scheme"))
    if gguf is not None:
        if not ckpt["uri"].startswith("pvc://"):
            raise Blocked(
                "CannotHonour",
                f"QuantizedModel {qm_name}: llama.cpp's server reads a GGUF checkpoint from a mounted volume; its"
                f" checkpoint is at {ckpt['uri']} (store it on a PVC: spec.storage)",
            )
        return ResolvedModel(arch, None, None, served, creds, gguf=(gguf, ckpt["uri"]))
    extra = tuple(((qspec.get("moe") or {}).get("extraIgnore")) or ())
    try:
        checkpoint = Checkpoint.calibrated(
            qspec["scheme"],
            ckpt["format"],
            ckpt["uri"],
            kv_cache_scales=bool(qspec.get("kvCacheScales")),
            ignore=tuple(dict.fromkeys((*router_ignore_patterns(arch), *extra))),
            algorithm=qspec.get("algorithm"),
        )
    except PlanError as exc:
        raise Blocked("CannotHonour" if exc.kind == "unsupported" else "SpecInvalid", str(exc)) from exc
    return ResolvedModel(arch, base, checkpoint, served, creds)


# ------------------------------------------------------------------------------------------------ planning


def _request(spec: InferenceServiceSpec, model: ResolvedModel, gpus: int) -> PlanRequest:
    return PlanRequest(
        precision=spec.precision,
        kv_cache_dtype=spec.kv_cache_dtype,
        max_model_len=spec.max_model_len,
        concurrency=spec.expected_concurrency,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        gpu_count=gpus,
        checkpoints=(model.checkpoint,) if model.checkpoint else (),
        base_model=model.base_uri is not None,
    )


def _cpu_node_size(spec: InferenceServiceSpec, pool: CpuPool) -> CpuNodeSize:
    """The smallest node's memory and CPUs, and what spec.resources asks for (limits win over requests)."""
    wire = spec.resources.wire() if spec.resources else {}
    given = {**(wire.get("requests") or {}), **(wire.get("limits") or {})}
    memory = memory_quantity_bytes(given["memory"]) if "memory" in given else None
    cpus = str(given["cpu"]) if "cpu" in given and cpu_quantity_millis(given["cpu"]) > 0 else None
    return CpuNodeSize(pool.memory_bytes, pool.cpus, memory or None, cpus)


def runtime_for(spec: InferenceServiceSpec, model: ResolvedModel, pool: str | None) -> Runtime:
    """The pool's own runtime, else the service's, else llama-cpp for a GGUF model and vllm for the others."""
    own = next((p.runtime for p in spec.pools or [] if p.name == pool), None)
    return own or spec.runtime or ("llama-cpp" if model.gguf else "vllm")


def check_sglang(d: Decision, gpu: GpuFacts) -> None:
    """PlanError where SGLang cannot serve what the pool's decision chose (hardware.sglang, read from its source)."""
    why = sglang_refusal(
        d.precision,
        d.checkpoint.quant.vllm_method if d.checkpoint else None,
        d.kv_cache_dtype,
        d.device,
        gpu.vendor,
        compute_capability=gpu.compute_capability,
        gfx_arch=gpu.gfx_arch,
    )
    if why is not None:
        raise PlanError(f"runtime sglang cannot serve {d.precision} here: {why}", kind="unsupported")


def _decide(spec: InferenceServiceSpec, model: ResolvedModel, pool: GpuPool | CpuPool, runtime: Runtime) -> Decision:
    if model.gguf is not None or runtime == "llama-cpp":
        return _decide_gguf(spec, model, pool, runtime)
    if isinstance(pool, CpuPool):
        if runtime == "sglang":
            raise PlanError("runtime sglang serves GPU pools only (SGLang has no CPU backend here)", kind="unsupported")
        return decide_cpu(model.arch, pool.facts, _cpu_node_size(spec, pool), _request(spec, model, 1))
    d = decide(model.arch, pool.facts, _request(spec, model, pool.gpus_per_node))
    if runtime == "sglang":
        check_sglang(d, pool.facts)
    return d


def _decide_gguf(
    spec: InferenceServiceSpec, model: ResolvedModel, pool: GpuPool | CpuPool, runtime: Runtime
) -> Decision:
    """llama.cpp serves GGUF checkpoints, and only those: CPU pools and NVIDIA GPUs (the pinned server images)."""
    if model.gguf is None:
        raise PlanError(
            "runtime llama-cpp serves GGUF checkpoints: reference a QuantizedModel with a gguf-* scheme"
            " (gguf-q8_0, gguf-q4_k_m, gguf-q5_k_m), or use runtime vllm or sglang",
            kind="unsupported",
        )
    if runtime != "llama-cpp":
        raise PlanError(
            f"the model is a GGUF checkpoint ({model.gguf[0]}): only runtime llama-cpp serves it, not {runtime}",
            kind="unsupported",
        )
    request = _request(spec, model, 1)
    if isinstance(pool, CpuPool):
        return decide_llamacpp(model.arch, model.gguf[0], request, cpu=(pool.name, _cpu_node_size(spec, pool)))
    if pool.facts.vendor != "nvidia":
        raise PlanError(
            "runtime llama-cpp serves CPU pools and NVIDIA GPUs: the pinned llama.cpp server images are the CPU and"
            " CUDA builds (no ROCm image is pinned)",
            kind="unsupported",
        )
    return decide_llamacpp(model.arch, model.gguf[0], request, gpu=pool.facts)


def _pool_label(pool: GpuPool | CpuPool) -> str:
    return pool.facts.name if isinstance(pool, CpuPool) else short_name(pool.facts)


def _pool_decision(
    name: str, pool: GpuPool | CpuPool, d: Decision, model: ResolvedModel, replicas: int, isvc: str, runtime: Runtime
) -> Obj:
    cap = d.capacity
    uri = d.checkpoint.uri if d.checkpoint else model.uri
    where: Obj
    if isinstance(pool, CpuPool):
        assert d.cpu is not None
        where = {
            "gpu": pool.facts.name,
            "device": "cpu",
            "nodeSelector": dict(pool.node_selector),
            "cpuKvCacheSpaceGib": d.cpu.kv_cache_space_gib,
            "cpu": d.cpu.cpus,
            "memory": d.cpu.memory,
        }
    else:
        where = {
            "gpu": short_name(pool.facts),
            "nodeSelector": dict(pool.node_selector),
            "gpuResource": pool.gpu_resource,
        }
    return {
        "pool": name,
        **where,
        "runtime": runtime,
        **({"gpuLayers": d.gpu_layers} if d.gpu_layers is not None and d.device == "gpu" else {}),
        "modelUri": uri,
        "precision": d.precision,
        "kvCacheDtype": d.kv_cache_dtype,
        "tensorParallelSize": d.tensor_parallel_size,
        **({"quantization": d.quantization_flag} if d.quantization_flag else {}),
        "checkpointFormat": d.checkpoint_format,
        "compute": d.compute,
        "native": d.native,
        "reason": d.reason + ("" if not d.warnings else " Warnings: " + " ".join(d.warnings)),
        "deployment": deployment_name(isvc, name),
        "replicas": replicas,
        "kvCacheTokens": cap.kv_cache_tokens,
        "maxConcurrency": f"{cap.max_concurrency:.1f}",
        "weightsGib": f"{cap.weights_gib_per_gpu:.1f}",
        "kvCacheGib": f"{cap.kv_cache_gib_per_gpu:.1f}",
    }


def plan_pools(
    name: str, spec: InferenceServiceSpec, model: ResolvedModel, cluster: ClusterGpus
) -> tuple[list[Obj], list[str]]:
    """(per-pool decisions, why the automatic mode left usable pools out). Raises Blocked when the request cannot be
    honoured (nothing is half-applied): an explicit pool that cannot serve it blocks the whole service."""
    if spec.pools:
        out = []
        for p in spec.pools:
            try:
                pool = pool_for_selector(cluster, p.node_selector)
            except LabelError as exc:
                raise Blocked("PoolNotFound", f"pool {p.name}: {exc}") from exc
            if not pool.usable:
                what = "with allocatable CPU and memory" if isinstance(pool, CpuPool) else "with free GPUs"
                raise Blocked("PoolUnavailable", f"pool {p.name}: no Ready, schedulable node {what}")
            runtime = runtime_for(spec, model, p.name)
            try:
                d = _decide(spec, model, pool, runtime)
            except PlanError as exc:
                raise Blocked("CannotHonour", f"pool {p.name} ({_pool_label(pool)}): {exc}") from exc
            replicas = p.replicas if p.replicas is not None else spec.replicas
            out.append(_pool_decision(p.name, pool, d, model, replicas, name, runtime))
        return out, []
    ranked: list[tuple[tuple[int, int, float, str], Obj, frozenset[str]]] = []
    refusals: list[str] = []
    candidates: list[GpuPool | CpuPool] = []
    if spec.cpu_pools != "Only":
        candidates += cluster.pools
    if spec.cpu_pools != "Never":
        candidates += cluster.cpu_pools  # ranked after every GPU pool (the first key)
    runtime = runtime_for(spec, model, None)
    for pool in candidates:
        if not pool.usable:
            continue
        try:
            d = _decide(spec, model, pool, runtime)
        except PlanError as exc:
            refusals.append(f"{pool.name}: {exc}")
            continue
        cpu = isinstance(pool, CpuPool)
        key = (int(cpu), 0 if d.native else 1, -d.capacity.max_concurrency, pool.name)
        nodes = frozenset(pool.nodes) if cpu else frozenset()
        ranked.append((key, _pool_decision(pool.name, pool, d, model, spec.replicas, name, runtime), nodes))
    if not ranked:
        what = {"Never": "GPU pool", "Allowed": "GPU or CPU pool", "Only": "CPU pool"}[spec.cpu_pools]
        detail = "; ".join(refusals) or f"the cluster has no usable {what}"
        usable_cpu = [p.name for p in cluster.cpu_pools if p.usable]
        hint = (
            f" (CPU pools {', '.join(usable_cpu)} are not considered: spec.cpuPools is Never; set it to Allowed or"
            " Only to serve on vLLM's CPU backend)"
            if spec.cpu_pools == "Never" and usable_cpu
            else ""
        )
        raise Blocked("CannotHonour", f"no {what} can serve this request: {detail}{hint}")
    ranked.sort(key=lambda kv: kv[0])
    # Automatic CPU pools may overlap (an instance-type pool and an ISA-label pool can share nodes): never two
    # Deployments of one service on the same CPU nodes.
    chosen: list[Obj] = []
    taken: set[str] = set()
    for _, decision, nodes in ranked:
        if len(chosen) == spec.max_pools:
            break
        if nodes & taken:
            continue
        chosen.append(decision)
        taken |= nodes
    return chosen, refusals


def service_input(
    name: str,
    ns: str,
    uid: str,
    spec: InferenceServiceSpec,
    model: ResolvedModel,
    image: str,
    cpu_image: str,
    runtime_images: Mapping[str, str],
) -> ServiceInput:
    """What every pool's Deployment shares, from the spec and the resolved model."""
    vllm = spec.vllm
    pod = spec.pod_metadata
    images = dict(runtime_images)
    if spec.sglang and spec.sglang.image:
        images["sglang"] = spec.sglang.image
    if spec.llama_cpp and spec.llama_cpp.image:
        images["llama-cpp"] = spec.llama_cpp.image
    if spec.llama_cpp and spec.llama_cpp.cpu_image:
        images["llama-cpp-cpu"] = spec.llama_cpp.cpu_image
    return ServiceInput(
        name=name,
        namespace=ns,
        uid=uid,
        served_model_name=model.served_name,
        max_model_len=spec.max_model_len,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        image=vllm.image if vllm and vllm.image else image,
        cpu_image=vllm.cpu_image if vllm and vllm.cpu_image else cpu_image,
        extra_args=tuple(vllm.extra_args or []) if vllm else (),
        runtime_images=images,
        resources=spec.resources.wire() if spec.resources else None,
        credentials_secret=model.credentials,
        pod_labels=(pod.labels or {}) if pod else {},
        pod_annotations=(pod.annotations or {}) if pod else {},
    )


def rollouts(spec: InferenceServiceSpec, decisions: list[Obj]) -> list[PoolRollout]:
    """One PoolRollout per pinned decision (plus the explicit pool's tolerations); an autoscaled pool's replicas
    belong to its autoscaler."""
    tolerations = {p.name: tuple(t.wire() for t in p.tolerations or []) for p in spec.pools or []}
    deadline = spec.rollout.progress_deadline_seconds if spec.rollout else None
    return [
        PoolRollout(
            pool=d["pool"],
            node_selector=d["nodeSelector"],
            gpu_resource=d.get("gpuResource") or "",
            tensor_parallel_size=d["tensorParallelSize"],
            kv_cache_dtype=d["kvCacheDtype"],
            quantization=d.get("quantization"),
            model=ModelLocation(d["modelUri"]),
            quantized_checkpoint=d.get("checkpointFormat", "bf16") not in BASE_FORMATS,
            replicas=None if spec.autoscaling is not None else d["replicas"],
            tolerations=tolerations.get(d["pool"], ()),
            weights_gib=float(d.get("weightsGib") or 0) * d["tensorParallelSize"],
            cpu=CpuRollout(d["cpuKvCacheSpaceGib"], d["cpu"], d["memory"]) if d.get("device") == "cpu" else None,
            progress_deadline_seconds=deadline,
            runtime=d.get("runtime") or "vllm",
            gfx_arch=gfx_arch_of(d["gpu"]) if d.get("gpuResource") == "amd.com/gpu" else None,
            # AMX nodes, or nodes without NFD labels that may have AMX
            cpu_amx=d.get("device") == "cpu" and d["gpu"] in ("cpu-amx", "cpu-unknown"),
            gpu_layers=d.get("gpuLayers") or 0,
            parallel=spec.expected_concurrency,
        )
        for d in decisions
    ]


def gfx_arch_of(gpu: str) -> str | None:
    """The gfx arch of a pinned AMD pool's GPU (its table key), None when the table does not know it."""
    return next((g.gfx_arch for g in GPU_TABLE if g.key == gpu), None)


def plan_hash(spec: InferenceServiceSpec, model: ResolvedModel, replan: str | None) -> str:
    wire = spec.wire()
    # Fields added with a default that keeps the old behaviour stay out of the hash at that default, so an operator
    # upgrade never re-plans (and possibly flips) a running fleet.
    if wire.get("cpuPools") == "Never":
        del wire["cpuPools"]
    # How many replicas and how they roll out never changes what a pool serves: never a re-plan.
    wire.pop("autoscaling", None)
    wire.pop("rollout", None)
    for pool in wire.get("pools") or []:
        pool.pop("autoscaling", None)
    return short_hash(
        {
            "spec": wire,
            "checkpoint": model.checkpoint.uri if model.checkpoint else None,
            "base": model.base_uri,
            "replan": replan or "",
        },
        16,
    )


# ------------------------------------------------------------------------------------------------ the pass


def outcome(isvc: Obj, facts: ServiceFacts) -> Outcome:
    """The whole reconcile of one InferenceService, as data."""
    meta = isvc["metadata"]
    name, ns = meta["name"], meta["namespace"]
    prev: Obj = isvc.get("status") or {}
    try:
        spec = InferenceServiceSpec.model_validate(isvc.get("spec") or {})
    except ValidationError as exc:
        return st.invalid(isvc, first_error(exc, "spec"), facts.now)
    pinned = [dict(d) for d in prev.get("decisions") or []]
    try:
        model = resolve_model(name, spec, facts)
        want_hash = plan_hash(spec, model, (meta.get("annotations") or {}).get(REPLAN_ANNOTATION))
        fresh = not (prev.get("planHash") == want_hash and pinned)
        decisions, skipped = plan_pools(name, spec, model, facts.pools) if fresh else (pinned, [])
        other = sorted({d.get("runtime") or "vllm" for d in decisions} - {"vllm"})
        if spec.autoscaling is not None and other:
            raise Blocked(
                "CannotHonour",
                f"spec.autoscaling scales on vLLM's metrics; pools served by {', '.join(other)} cannot autoscale yet:"
                " remove spec.autoscaling or serve them with vllm",
            )
    except Blocked as exc:
        # Existing Deployments keep serving (nothing torn down); status says why nothing new is rolled out.
        return st.blocked(isvc, exc.reason, str(exc), exc.waiting, pinned, facts.deployments, facts.now)

    svc = service_input(
        name, ns, meta["uid"], spec, model, facts.vllm_image, facts.vllm_cpu_image, facts.runtime_images
    )
    decisions, scaling = scale_pools(spec, decisions, facts.pools, facts.deployments)
    engine, engine_problem = choose_autoscaler(spec, facts.optional)
    states = {
        d["pool"]: ro.rollout_state(
            facts.deployments.get(d["deployment"]),
            d["replicas"],
            [p for p in facts.pods if (p["metadata"].get("labels") or {}).get(LABEL_POOL) == d["pool"]],
        )
        for d in decisions
    }
    plan = plan_rollouts(svc, spec, decisions, facts, states)
    wanted = {d["deployment"] for d in decisions}
    stale = tuple(dep for dep_name, dep in sorted(facts.deployments.items()) if dep_name not in wanted)
    events: list[Event] = [
        Event("Normal", "DeploymentRemoved", f"deleted Deployment {dep['metadata']['name']}: pool no longer selected")
        for dep in stale
    ]
    if fresh:
        events += [
            Event(
                "Normal",
                "DecisionMade",
                f"pool {d['pool']}: {d['precision']} weights, {d['kvCacheDtype']} KV cache, TP"
                f" {d['tensorParallelSize']}: {d['reason']}"[:1000],
            )
            for d in decisions
        ]
        events += [Event("Normal", "PoolSkipped", f"pool {why}"[:1000]) for why in skipped]
    extra, remove = side_objects(name, ns, meta["uid"], engine, scaling, facts)
    if scaling:
        decisions = [
            {**d, "autoscaler": f"{engine}/{d['deployment']}" if engine else "none"} if d["pool"] in scaling else d
            for d in decisions
        ]
    plan_generation = meta.get("generation") if fresh else prev.get("planGeneration", meta.get("generation"))
    status, transition_events = st.serving(
        isvc,
        decisions,
        st.Progress(want_hash, plan_generation, states, plan.waiting, engine_problem),
        facts.pools,
        facts.now,
    )
    return Outcome(
        apply=(*plan.apply, expected_service(svc), expected_pdb(svc), *extra),
        delete=(*stale, *remove),
        hand_over=plan.hand_over,
        status=status,
        events=(*events, *transition_events),
    )


# ------------------------------------------------------------------------------------------------ day 2


def choose_autoscaler(spec: InferenceServiceSpec, optional: frozenset[str]) -> tuple[str | None, str]:
    """(the autoscaler kind to render, or None; why none can be, when one was asked for)."""
    a = spec.autoscaling
    if a is None:
        return None, ""
    keda = KEDA_KIND in optional
    if a.autoscaler == "HPA" or (a.autoscaler == "Auto" and not keda):
        return HPA_KIND, ""
    if keda:
        return KEDA_KIND, ""
    return None, (
        "spec.autoscaling.autoscaler is KEDA but KEDA's CRD scaledobjects.keda.sh is not installed: no autoscaler"
        " is rendered and the replica counts stay as they are (install KEDA, or set autoscaler to HPA or Auto)"
    )


def scale_pools(
    spec: InferenceServiceSpec, decisions: list[Obj], cluster: ClusterGpus, deployments: Mapping[str, Obj]
) -> tuple[list[Obj], dict[str, PoolScaling]]:
    """Decisions with this pass's replica counts and autoscaling bounds (recomputed every pass, never pinned), and
    each autoscaled pool's scaling. An autoscaled pool's replicas are what its autoscaler set (the live Deployment's),
    minReplicas before it exists."""
    a = spec.autoscaling
    pools = {p.name: p for p in spec.pools or []}
    out: list[Obj] = []
    scaling: dict[str, PoolScaling] = {}
    for pinned in decisions:
        d = {k: v for k, v in pinned.items() if k not in st.PER_PASS_FIELDS}
        pool = pools.get(d["pool"])
        if a is None:
            d["replicas"] = pool.replicas if pool is not None and pool.replicas is not None else spec.replicas
            out.append(d)
            continue
        bounds = pool.autoscaling if pool is not None else None
        lo = bounds.min_replicas if bounds and bounds.min_replicas else a.min_replicas
        hi = max(lo, bounds.max_replicas if bounds and bounds.max_replicas else a.max_replicas)
        low, high, why = ro.bounded_max(lo, hi, ro.pool_capacity(cluster, d))
        current = ((deployments.get(d["deployment"]) or {}).get("spec") or {}).get("replicas")
        scaling[d["pool"]] = PoolScaling(
            d["pool"],
            d["deployment"],
            low,
            high,
            a.metric,
            a.target or DEFAULT_TARGET[a.metric],
            a.scale_down_stabilization_seconds,
            a.prometheus_address or DEFAULT_PROMETHEUS,
        )
        out.append(
            {**d, "replicas": int(current) if current is not None else low, "minReplicas": low, "maxReplicas": high}
            | {"scaling": why}
        )
    return out, scaling


@dataclass(frozen=True)
class RolloutPlan:
    apply: tuple[Obj, ...]  # Deployments to apply this pass
    waiting: Mapping[str, str]  # pool -> why its new template waits
    hand_over: tuple[Obj, ...]  # replica counts handed to the autoscaler before the first apply without them


def plan_rollouts(
    svc: ServiceInput,
    spec: InferenceServiceSpec,
    decisions: list[Obj],
    facts: ServiceFacts,
    states: Mapping[str, ro.RolloutState],
) -> RolloutPlan:
    """The pools' Deployments, their strategies sized to free GPUs, rolled out one pool at a time (`states`: each
    pool's rollout as its live Deployment stands)."""
    rendered: list[tuple[Obj, Obj, Obj | None, bool]] = []
    for roll, d in zip(rollouts(spec, decisions), decisions, strict=True):
        dep = expected_deployment(svc, roll)
        live = facts.deployments.get(dep["metadata"]["name"])
        changing = ro.template_changed(dep, live)
        if changing:
            cap = ro.pool_capacity(facts.pools, d)
            free = (cap.gpus if cap else 0) - facts.gpus_claimed.get(selector_key(d["nodeSelector"]), 0)
            surge = ro.max_surge(free, d["tensorParallelSize"], d["replicas"]) if d.get("device") != "cpu" else 0
            dep["spec"]["strategy"] = rolling_update(surge)
        elif (strategy := ro.live_strategy(live)) is not None:
            dep["spec"]["strategy"] = strategy  # not rolling out: the strategy stays as it was sized
        rendered.append((d, dep, live, changing))
    busy = [
        d["pool"]
        for d, _, live, changing in rendered
        if live is not None and not changing and not states[d["pool"]].complete
    ]
    changing_pools = [d["pool"] for d, _, _, changing in rendered if changing]
    hold = set(changing_pools if busy else changing_pools[1:])
    first = (busy or changing_pools or [""])[0]
    waiting = {pool: f"Waiting: pool {first} rolls out first (one pool at a time)" for pool in hold}
    hand_over = tuple(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": live["metadata"]["name"], "namespace": svc.namespace},
            "spec": {"replicas": int((live.get("spec") or {}).get("replicas") or 1)},
        }
        for d, dep, live, _ in rendered
        if live is not None
        and d["pool"] not in hold
        and "replicas" not in dep["spec"]
        and (live["metadata"].get("annotations") or {}).get(REPLICAS_OWNER_ANNOTATION) != "autoscaler"
    )
    return RolloutPlan(tuple(dep for d, dep, _, _ in rendered if d["pool"] not in hold), waiting, hand_over)


def side_objects(
    name: str, ns: str, uid: str, engine: str | None, scaling: Mapping[str, PoolScaling], facts: ServiceFacts
) -> tuple[list[Obj], list[Obj]]:
    """(autoscalers and PodMonitor to apply, owned ones to delete). Switching between an HPA and a ScaledObject
    deletes the old kind first and applies the new one on the next pass, so two autoscalers never drive one
    Deployment; KEDA's own HPAs (owned by their ScaledObject) are never touched."""
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ISVC: name}
    owned = {
        kind: [o for o in (facts.children.get(kind) or {}).values() if controlled_by(o, uid)]
        for kind in (HPA_KIND, KEDA_KIND, PODMONITOR_KIND)
    }
    render = {HPA_KIND: expected_hpa, KEDA_KIND: expected_scaled_object}
    want = [render[engine](name, ns, uid, labels, s) for s in scaling.values()] if engine else []
    names = {o["metadata"]["name"] for o in want}
    remove = [o for kind in render for o in owned[kind] if kind != engine or o["metadata"]["name"] not in names]
    if any(o["kind"] != engine for o in remove if o["kind"] in render):
        want = []  # the other kind goes first
    if PODMONITOR_KIND in facts.optional:
        want.append(expected_pod_monitor(name, ns, uid, labels, service_selector(name)))
    remove += [o for o in owned[PODMONITOR_KIND] if o["metadata"]["name"] != name]
    return want, remove


def conflict(isvc: Obj, message: str, facts: ServiceFacts) -> Outcome:
    """The outcome when a child the service needs exists and belongs to someone else (nothing was taken over)."""
    pinned = [dict(d) for d in (isvc.get("status") or {}).get("decisions") or []]
    return st.blocked(isvc, "ResourceConflict", message, False, pinned, facts.deployments, facts.now, degraded=True)


def conditions_of(out: Outcome) -> dict[str, Cond]:
    """Conditions of an outcome's status, by type (tests and callers that inspect them)."""
    conds = (out.status or {}).get("conditions") or []
    return {c["type"]: Cond(c["type"], c["status"], c["reason"], c.get("message", "")) for c in conds}
