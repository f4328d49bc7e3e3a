"""Everything one InferenceService's pure core reads, from the watch caches (no API request)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from quantfleet import versions
from quantfleet.facts.cache import Cache
from quantfleet.facts.mapping import ns_key
from quantfleet.inferenceservice import handlers
from quantfleet.inferenceservice.decide import ServiceFacts
from quantfleet.inferenceservice.rollout import gpus_claimed, match_labels, rollout_stuck
from quantfleet.render.common import LABEL_COMPONENT

Obj = dict[str, Any]


def gather(cache: Cache, isvc: Obj, now: dt.datetime) -> ServiceFacts:
    meta = isvc["metadata"]
    ns, name = meta["namespace"], meta["name"]
    model = (isvc.get("spec") or {}).get("model") or {}
    qm_name = (model.get("quantizedModelRef") or {}).get("name")
    qm = cache.get("QuantizedModel", ns, qm_name) if qm_name else None
    names = {(model.get("configRef") or {}).get("name")}
    names.add(((((qm or {}).get("spec") or {}).get("source") or {}).get("modelConfigRef") or {}).get("name"))
    configmaps = {n: cm for n in names if n and (cm := cache.get("ConfigMap", ns, n)) is not None}
    key = ns_key(ns, name)
    deployments = {
        d["metadata"]["name"]: d
        for d in cache.by_index("Deployment", handlers.BY_LABEL, key)
        if (d["metadata"].get("labels") or {}).get(LABEL_COMPONENT) == "vllm"
    }
    children = {
        kind: {o["metadata"]["name"]: o for o in cache.by_index(kind, handlers.BY_LABEL, key)}
        for kind in ("HorizontalPodAutoscaler", "ScaledObject", "PodMonitor")
    }
    # a stuck rollout's pods (the only uncached read: pods of Deployments the Deployment controller gave up on)
    pods = tuple(
        pod
        for dep in deployments.values()
        if rollout_stuck(dep)
        for pod in cache.list_uncached("Pod", ns, match_labels(dep))
    )
    # GPUs the operator's vLLM Deployments claim on the pools this service is pinned to (rollout surge sizing)
    claimed = {
        selector: gpus_claimed(cache.by_index("Deployment", handlers.BY_POOL_SELECTOR, selector))
        for selector in handlers.selectors(isvc)
    }
    return ServiceFacts(
        pools=cache.pools(),
        configmaps=configmaps,
        quantized_model=qm,
        deployments=deployments,
        children=children,
        pods=pods,
        optional=cache.available_optional(),
        gpus_claimed=claimed,
        vllm_image=versions.vllm_image(),
        vllm_cpu_image=versions.vllm_cpu_image(),
        runtime_images=versions.runtime_images(),
        now=now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    )
