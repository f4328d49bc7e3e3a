"""InferenceService reconcile: model -> per-pool decision (pinned) -> Deployments/Service/PDB -> status.

Level-triggered; the same function runs for create/update/resume/timer/child events. Decisions
are pinned in status under a hash of their inputs (spec, model checkpoint, re-plan annotation):
a cluster change never silently flips a running fleet's precision, it shows up as `Degraded`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from quantfleet import versions
from quantfleet.api.common import first_error
from quantfleet.api.conditions import Cond, is_true
from quantfleet.api.inferenceservice import InferenceServiceSpec
from quantfleet.controllers import context
from quantfleet.controllers.context import Context
from quantfleet.hardware import LabelError
from quantfleet.hardware.labels import short_name
from quantfleet.hardware.pools import ClusterGpus, GpuPool, group_pools, pool_for_selector
from quantfleet.kube.api import NotOwned
from quantfleet.planning import Checkpoint, ConfigError, ModelArch, PlanError, PlanRequest, decide, parse_model_config
from quantfleet.planning.decision import Decision
from quantfleet.render.common import LABEL_COMPONENT, LABEL_ISVC, LABEL_MANAGED_BY, MANAGED_BY, short_hash
from quantfleet.render.vllm import (
    ModelLocation,
    PoolRollout,
    ServiceInput,
    deployment_name,
    endpoint,
    expected_deployment,
    expected_pdb,
    expected_service,
)

log = logging.getLogger("quantfleet.inferenceservice")
REPLAN_ANNOTATION = "quantfleet.io/replan"
Obj = dict[str, Any]


class Blocked(Exception):
    """The service cannot be (re)planned now; `reason` becomes the Ready condition's reason."""

    def __init__(self, reason: str, message: str, *, invalid: bool = False, waiting: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.invalid = invalid
        self.waiting = waiting


@dataclass(frozen=True)
class ResolvedModel:
    arch: ModelArch
    base_uri: str | None
    checkpoint: Checkpoint | None
    served_name: str
    credentials: str | None


def _config(ctx: Context, ns: str, name: str, key: str) -> ModelArch:
    cm = ctx.kube.get("ConfigMap", name, ns)
    if cm is None or key not in (cm.get("data") or {}):
        raise Blocked("ModelConfigMissing", f"ConfigMap {name} with key {key!r} not found", waiting=True)
    try:
        return parse_model_config(json.loads(cm["data"][key]))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise Blocked(
            "SpecInvalid", f"ConfigMap {name}/{key} is not a usable config.json: {exc}", invalid=True
        ) from exc


def resolve_model(ctx: Context, ns: str, name: str, spec: InferenceServiceSpec) -> ResolvedModel:
    model = spec.model
    served = model.served_model_name or name
    if model.quantized_model_ref is not None:
        qm_name = model.quantized_model_ref.name
        qm = ctx.kube.get("QuantizedModel", qm_name, ns)
        if qm is None:
            raise Blocked("QuantizedModelNotFound", f"QuantizedModel {qm_name} not found", waiting=True)
        st = qm.get("status") or {}
        ckpt = st.get("checkpoint") or {}
        if not is_true(st.get("conditions"), "Ready") or not ckpt.get("uri"):
            phase = st.get("phase") or "Pending"
            raise Blocked(
                "WaitingForQuantizedModel", f"QuantizedModel {qm_name} is not Ready yet (phase {phase})", waiting=True
            )
        qspec = qm.get("spec") or {}
        source = qspec.get("source") or {}
        hf = source.get("huggingFace")
        base = f"hf://{hf['repo']}@{hf.get('revision', 'main')}" if hf else source.get("uri")
        cref = model.config_ref.wire() if model.config_ref else source.get("modelConfigRef")
        if not cref:
            raise Blocked(
                "ModelConfigMissing",
                f"neither spec.model.configRef nor QuantizedModel {qm_name}"
                " .spec.source.modelConfigRef names a config.json to plan capacity with",
                invalid=True,
            )
        arch = _config(ctx, ns, cref["name"], cref.get("key", "config.json"))
        try:
            checkpoint = Checkpoint(
                scheme=qspec["scheme"],
                format=ckpt["format"],
                uri=ckpt["uri"],
                kv_cache_scales=bool(qspec.get("kvCacheScales")),
            )
        except PlanError as exc:
            raise Blocked("SpecInvalid", str(exc), invalid=True) from exc
        creds = model.credentials_secret.name if model.credentials_secret else None
        return ResolvedModel(arch, base, checkpoint, served, creds)
    assert model.uri is not None and model.config_ref is not None  # CEL guarantees both
    arch = _config(ctx, ns, model.config_ref.name, model.config_ref.key)
    creds = model.credentials_secret.name if model.credentials_secret else None
    return ResolvedModel(arch, model.uri, None, served, creds)


# ------------------------------------------------------------------------------------------------ decide (pure)


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


def _pool_decision(name: str, pool: GpuPool, d: Decision, model: ResolvedModel, replicas: int, isvc: str) -> Obj:
    cap = d.capacity
    uri = d.checkpoint.uri if d.checkpoint else model.base_uri
    assert uri is not None
    return {
        "pool": name,
        "gpu": short_name(pool.facts),
        "nodeSelector": dict(pool.node_selector),
        "gpuResource": pool.gpu_resource,
        "modelUri": uri,
        "precision": d.precision,
        "kvCacheDtype": d.kv_cache_dtype,
        "tensorParallelSize": d.tensor_parallel_size,
        **({"quantization": d.quantization_flag} if d.quantization_flag else {}),
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
    name: str, spec: InferenceServiceSpec, model: ResolvedModel, cluster: ClusterGpus, nodes: list[Obj]
) -> list[Obj]:
    """Per-pool decisions. Raises Blocked when the request cannot be honoured (nothing is half-applied)."""
    if spec.pools:
        out = []
        for p in spec.pools:
            try:
                pool = pool_for_selector(cluster, p.node_selector, nodes)
            except LabelError as exc:
                raise Blocked("PoolNotFound", f"pool {p.name}: {exc}") from exc
            if not pool.usable:
                raise Blocked("PoolUnavailable", f"pool {p.name}: no Ready, schedulable node with free GPUs")
            try:
                d = decide(model.arch, pool.facts, _request(spec, model, pool.gpus_per_node))
            except PlanError as exc:
                raise Blocked("CannotHonour", f"pool {p.name} ({short_name(pool.facts)}): {exc}") from exc
            pool = GpuPool(
                p.name,
                pool.facts,
                pool.node_selector,
                pool.gpu_resource,
                pool.nodes,
                pool.usable_nodes,
                pool.gpus_per_node,
            )
            out.append(
                _pool_decision(p.name, pool, d, model, p.replicas if p.replicas is not None else spec.replicas, name)
            )
        return out
    ranked: list[tuple[tuple[int, float, str], Obj]] = []
    refusals: list[str] = []
    for pool in cluster.pools:
        if not pool.usable:
            continue
        try:
            d = decide(model.arch, pool.facts, _request(spec, model, pool.gpus_per_node))
        except PlanError as exc:
            refusals.append(f"{pool.name}: {exc}")
            continue
        key = (0 if d.native else 1, -d.capacity.max_concurrency, pool.name)
        ranked.append((key, _pool_decision(pool.name, pool, d, model, spec.replicas, name)))
    if not ranked:
        detail = "; ".join(refusals) or "the cluster has no usable GPU pool"
        raise Blocked("CannotHonour", f"no GPU pool can serve this request: {detail}")
    ranked.sort(key=lambda kv: kv[0])
    chosen = [d for _, d in ranked[: spec.max_pools]]
    return chosen


def service_input(name: str, ns: str, uid: str, spec: InferenceServiceSpec, model: ResolvedModel) -> ServiceInput:
    """What every pool's Deployment shares, from the spec and the resolved model."""
    vllm = spec.vllm
    pod = spec.pod_metadata
    return ServiceInput(
        name=name,
        namespace=ns,
        uid=uid,
        served_model_name=model.served_name,
        max_model_len=spec.max_model_len,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        image=vllm.image if vllm and vllm.image else versions.vllm_image(),
        extra_args=tuple(vllm.extra_args or []) if vllm else (),
        resources=spec.resources.wire() if spec.resources else None,
        credentials_secret=model.credentials,
        pod_labels=(pod.labels or {}) if pod else {},
        pod_annotations=(pod.annotations or {}) if pod else {},
    )


def rollouts(spec: InferenceServiceSpec, decisions: list[Obj]) -> list[PoolRollout]:
    """One PoolRollout per pinned decision (plus the explicit pool's tolerations)."""
    tolerations = {p.name: tuple(t.wire() for t in p.tolerations or []) for p in spec.pools or []}
    return [
        PoolRollout(
            pool=d["pool"],
            node_selector=d["nodeSelector"],
            gpu_resource=d["gpuResource"],
            tensor_parallel_size=d["tensorParallelSize"],
            kv_cache_dtype=d["kvCacheDtype"],
            quantization=d.get("quantization"),
            model=ModelLocation(d["modelUri"]),
            replicas=d["replicas"],
            tolerations=tolerations.get(d["pool"], ()),
        )
        for d in decisions
    ]


def plan_hash(spec: InferenceServiceSpec, model: ResolvedModel, replan: str | None) -> str:
    return short_hash(
        {
            "spec": spec.wire(),
            "checkpoint": model.checkpoint.uri if model.checkpoint else None,
            "base": model.base_uri,
            "replan": replan or "",
        },
        16,
    )


# ------------------------------------------------------------------------------------------------ reconcile


def reconcile(ctx: Context, body: Obj) -> None:
    context.reconcile_live(ctx, "InferenceService", body, _reconcile)


def _reconcile(ctx: Context, body: Obj) -> None:
    meta = body["metadata"]
    name, ns = meta["name"], meta["namespace"]
    prev: Obj = body.get("status") or {}
    try:
        spec = InferenceServiceSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        msg = first_error(exc, "spec")
        _write(
            ctx,
            body,
            {},
            [
                Cond("Ready", "False", "SpecInvalid", msg),
                Cond("Progressing", "False", "SpecInvalid"),
                Cond("Degraded", "False", "SpecInvalid"),
            ],
        )
        return
    nodes = ctx.nodes()
    cluster = group_pools(nodes)
    keep = {k: prev[k] for k in ("decisions", "planHash", "planGeneration") if prev.get(k)}
    try:
        model = resolve_model(ctx, ns, name, spec)
        want_hash = plan_hash(spec, model, (meta.get("annotations") or {}).get(REPLAN_ANNOTATION))
        if prev.get("planHash") == want_hash and prev.get("decisions"):
            decisions: list[Obj] = prev["decisions"]
            fresh = False
        else:
            decisions = plan_pools(name, spec, model, cluster, nodes)
            fresh = True
    except Blocked as exc:
        log.info("inferenceservice not planned object=%s/%s reason=%s message=%s", ns, name, exc.reason, exc)
        cond_model = Cond(
            "ModelReady",
            "False" if exc.waiting else "True",
            exc.reason if exc.waiting else "Resolved",
            str(exc) if exc.waiting else "",
        )
        # Existing Deployments keep serving (nothing torn down); status says why nothing new is rolled out.
        observed = _observe(ctx, ns, name, keep.get("decisions") or [])
        _write(
            ctx,
            body,
            {**keep, **observed},
            [
                Cond("Ready", "False", exc.reason, str(exc)),
                Cond("Progressing", "False", exc.reason, str(exc)),
                Cond("Degraded", "False", "AsPlanned"),
                cond_model,
            ],
        )
        return

    svc = service_input(name, ns, meta["uid"], spec, model)
    desired = [expected_deployment(svc, roll) for roll in rollouts(spec, decisions)]
    try:
        for dep in desired:
            ctx.kube.apply(dep, owner_uid=meta["uid"])
        ctx.kube.apply(expected_service(svc), owner_uid=meta["uid"])
        ctx.kube.apply(expected_pdb(svc), owner_uid=meta["uid"])
    except NotOwned as exc:
        _write(
            ctx,
            body,
            keep,
            [
                Cond("Ready", "False", "ResourceConflict", str(exc)),
                Cond("Progressing", "False", "ResourceConflict", str(exc)),
                Cond("Degraded", "True", "ResourceConflict", str(exc)),
            ],
        )
        return
    wanted_names = {dep["metadata"]["name"] for dep in desired}
    for dep in ctx.kube.list(
        "Deployment", ns, {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ISVC: name, LABEL_COMPONENT: "vllm"}
    ):
        if dep["metadata"]["name"] not in wanted_names:
            ctx.kube.delete("Deployment", dep["metadata"]["name"], ns)
            ctx.event(
                body,
                "Normal",
                "DeploymentRemoved",
                f"deleted Deployment {dep['metadata']['name']}: pool no longer selected",
            )
    if fresh:
        for d in decisions:
            ctx.event(
                body,
                "Normal",
                "DecisionMade",
                f"pool {d['pool']}: {d['precision']} weights, {d['kvCacheDtype']} KV cache, TP"
                f" {d['tensorParallelSize']}: {d['reason']}"[:1000],
            )
    observed = _observe(ctx, ns, name, decisions)
    degraded = _degraded(cluster, observed["decisions"])
    total = sum(d["replicas"] for d in observed["decisions"])
    ready = sum(d.get("readyReplicas", 0) for d in observed["decisions"])
    progressing = any(d.get("readyReplicas", 0) < d["replicas"] or d.get("updating") for d in observed["decisions"])
    for d in observed["decisions"]:
        d.pop("updating", None)
    conds = [
        Cond("ModelReady", "True", "Resolved", f"serving {', '.join(sorted({d['modelUri'] for d in decisions}))}"),
        Cond(
            "Progressing",
            "True" if progressing else "False",
            "RollingOut" if progressing else "Complete",
            f"{ready}/{total} replicas ready",
        ),
        Cond(
            "Degraded",
            "True" if degraded else "False",
            "PoolUnavailable" if degraded else "AsPlanned",
            degraded or "every pinned pool is available",
        ),
        Cond(
            "Ready",
            "True" if ready >= total and not progressing else "False",
            "Serving" if ready >= total and not progressing else "RollingOut",
            f"{ready}/{total} replicas ready",
        ),
    ]
    fields = {
        **observed,
        "planHash": want_hash,
        "planGeneration": meta.get("generation") if fresh else prev.get("planGeneration", meta.get("generation")),
        "precision": ",".join(dict.fromkeys(d["precision"] for d in decisions)),
        "kvCacheDtype": ",".join(dict.fromkeys(d["kvCacheDtype"] for d in decisions)),
        "pools": ",".join(d["pool"] for d in decisions),
        "replicas": total,
        "readyReplicas": ready,
        "endpoint": endpoint(name, ns),
    }
    _write(ctx, body, fields, conds)


def _observe(ctx: Context, ns: str, name: str, decisions: list[Obj]) -> Obj:
    out = []
    for d in decisions:
        dep = ctx.kube.get("Deployment", d["deployment"], ns)
        st = (dep or {}).get("status") or {}
        entry = {**d, "readyReplicas": int(st.get("readyReplicas") or 0)}
        if dep is not None:
            gen_ok = st.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
            entry["updating"] = not gen_ok or int(st.get("updatedReplicas") or 0) < d["replicas"]
        out.append(entry)
    return {"decisions": out}


def _degraded(cluster: ClusterGpus, decisions: list[Obj]) -> str:
    problems = []
    for d in decisions:
        pool = next((p for p in cluster.pools if dict(p.node_selector).items() <= d["nodeSelector"].items()), None)
        if pool is None:
            problems.append(f"pool {d['pool']} has no GPU nodes any more")
        elif not pool.usable:
            problems.append(f"pool {d['pool']}: no Ready, schedulable node (cordoned or NotReady)")
        elif pool.gpus_per_node < d["tensorParallelSize"]:
            problems.append(
                f"pool {d['pool']}: {pool.gpus_per_node} allocatable GPUs per node < TP {d['tensorParallelSize']}"
            )
    if problems:
        return "; ".join(problems) + f". The pinned decision is kept; set annotation {REPLAN_ANNOTATION} to re-plan"
    return ""


def _write(ctx: Context, body: Obj, fields: Obj, conds: list[Cond]) -> None:
    for cond in context.write_status(ctx, "InferenceService", body, fields, conds):
        failing = cond["type"] == "Ready" and cond["status"] == "False" and cond["reason"] != "RollingOut"
        if failing or (cond["type"] == "Degraded" and cond["status"] == "True"):
            ctx.event(body, "Warning", cond["reason"], cond.get("message") or cond["reason"])
        elif cond["type"] == "Ready" and cond["status"] == "True":
            ctx.event(body, "Normal", "Serving", cond.get("message") or "")
