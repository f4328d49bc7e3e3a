"""Everything one QuantizedModel's pure core reads, from the watch caches (no API request)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from quantfleet import versions
from quantfleet.facts.cache import Cache
from quantfleet.facts.mapping import ns_key
from quantfleet.quantizedmodel import handlers
from quantfleet.quantizedmodel.decide import ModelFacts
from quantfleet.render.calibration import default_claim_name

Obj = dict[str, Any]


def _seconds(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def gather(cache: Cache, qm: Obj, now: dt.datetime) -> ModelFacts:
    meta = qm["metadata"]
    ns, name = meta["namespace"], meta["name"]
    ref = (((qm.get("spec") or {}).get("source") or {}).get("modelConfigRef")) or {}
    key = ns_key(ns, name)
    pods: dict[str, list[Obj]] = defaultdict(list)
    for pod in cache.by_index("Pod", handlers.BY_LABEL, key):
        job = (pod["metadata"].get("labels") or {}).get("job-name")
        if job:
            pods[job].append(pod)
    return ModelFacts(
        configmap=cache.get("ConfigMap", ns, ref["name"]) if ref.get("name") else None,
        jobs=cache.by_index("Job", handlers.BY_LABEL, key),
        pods=pods,
        claim=cache.get("PersistentVolumeClaim", ns, default_claim_name(name)),
        donors=lambda recipe: cache.by_index(handlers.KIND, handlers.BY_RECIPE, ns_key(ns, recipe)),
        pools=cache.pools(),
        calibrate_image=versions.get("images.calibrate"),
        now=now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        now_seconds=now.timestamp(),
        deletion_seconds=_seconds(meta.get("deletionTimestamp")),
    )
