"""Each resource's pure core, pinned by golden cases: {the object, cluster facts} -> the whole Outcome.

Cases live in tests/golden/reconcile-*/input.yaml (the object and the facts its reconcile would read from the
caches) with the expected Outcome beside them (children to apply/create/delete, status, Events, finalizers).
Regenerate with `UPDATE_GOLDEN=1 make test-unit` and review the diff.

Besides the goldens: a converged service or model reconciled again with the world it produced makes no change —
the pure half of "write only on drift" (the writer's half is tested in test_facts.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantfleet import versions
from quantfleet.hardware.pools import group_pools
from quantfleet.inferenceservice import decide as isvc_decide
from quantfleet.kube.writer import APPLIED_HASH, applied_hash, drifted
from quantfleet.quantizedmodel import decide as qm_decide
from quantfleet.render.outcome import Outcome
from quantfleet_dev.testing import cpu_node, gpu_node

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
MODELS = ROOT / "tests" / "fixtures" / "models"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.name.startswith("reconcile-"))
NOW = "2026-12-02T12:00:00Z"


def nodes_from(spec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for pool in spec:
        for i in range(pool.get("count", 1)):
            if "cpu" in pool:  # a GPU-less node: {cpu: amx|avx512|avx2|unknown, memory, cpus, instanceType}
                out.append(
                    cpu_node(
                        f"{pool['name']}-{i}",
                        pool["cpu"],
                        memory=pool.get("memory", "64Gi"),
                        cpu=str(pool.get("cpus", 16)),
                        instance_type=pool.get("instanceType"),
                        ready=i not in pool.get("notReady", []),
                        cordoned=i in pool.get("cordoned", []),
                        labels={**pool["labels"]} if "labels" in pool else None,
                    )
                )
                continue
            out.append(
                gpu_node(
                    f"{pool['name']}-{i}",
                    pool.get("gpu"),
                    pool.get("gpus", 8),
                    ready=i not in pool.get("notReady", []),
                    cordoned=i in pool.get("cordoned", []),
                )
            )
    return out


def configmaps_from(spec: dict[str, str]) -> dict[str, Any]:
    """{ConfigMap name: fixture model dir} -> ConfigMaps holding that config.json (and hf_quant_config.json when the
    published checkpoint has one: ModelOpt keeps its quantization there)."""
    out: dict[str, Any] = {}
    for name, model in spec.items():
        data = {"config.json": (MODELS / model / "config.json").read_text()}
        hf_quant = MODELS / model / "hf_quant_config.json"
        if hf_quant.is_file():
            data["hf_quant_config.json"] = hf_quant.read_text()
        out[name] = {"data": data}
    return out


def seconds(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def children_by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for obj in objs:
        out.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    return out


def run_case(case: dict[str, Any]) -> Outcome:
    facts = case.get("facts") or {}
    now = facts.get("now", NOW)
    nodes = nodes_from(facts.get("nodes") or [])
    obj = case["object"]
    if obj["kind"] == "InferenceService":
        return isvc_decide.outcome(
            obj,
            isvc_decide.ServiceFacts(
                pools=group_pools(nodes),
                configmaps=configmaps_from(facts.get("configmaps") or {}),
                quantized_model=facts.get("quantizedModel"),
                deployments={d["metadata"]["name"]: d for d in facts.get("deployments") or []},
                vllm_image="vllm/vllm-openai:v0.33.0",
                vllm_cpu_image="vllm/vllm-openai-cpu:v0.33.0-x86_64",
                now=now,
                children=children_by_kind(facts.get("children") or []),
                pods=tuple(facts.get("pods") or ()),
                optional=frozenset(facts.get("optional") or ()),
                gpus_claimed=facts.get("gpusClaimed") or {},
                runtime_images=versions.runtime_images(),
            ),
        )
    pods: dict[str, list[Any]] = {}
    for pod in facts.get("pods") or []:
        pods.setdefault(pod["metadata"]["labels"]["job-name"], []).append(pod)
    donors = facts.get("donors") or []
    deletion = obj["metadata"].get("deletionTimestamp")
    return qm_decide.outcome(
        obj,
        qm_decide.ModelFacts(
            configmap=next(iter(configmaps_from(facts.get("configmaps") or {}).values()), None),
            jobs=facts.get("jobs") or [],
            pods=pods,
            claim=facts.get("claim"),
            donors=lambda recipe: [d for d in donors if d["status"]["checkpoint"]["recipeHash"] == recipe],
            pools=group_pools(nodes),
            calibrate_image="ghcr.io/quantfleet/calibrate:0.1.0",
            now=now,
            now_seconds=seconds(now),
            deletion_seconds=seconds(deletion) if deletion else None,
        ),
    )


def as_data(out: Outcome) -> dict[str, Any]:
    return {
        "apply": list(out.apply),
        "create": list(out.create),
        "delete": [f"{o['kind']}/{o['metadata']['name']}" for o in out.delete],
        "status": out.status,
        "events": [{"type": e.type, "reason": e.reason, "message": e.message} for e in out.events],
        "finalizers": list(out.finalizers) if out.finalizers is not None else None,
        "requeueAfter": out.requeue_after,
        **({"handOver": list(out.hand_over)} if out.hand_over else {}),
    }


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    spec = yaml.safe_load((GOLDEN / case / "input.yaml").read_text())
    got = yaml.safe_dump(as_data(run_case(spec)), sort_keys=True, width=120)
    path = GOLDEN / case / "expected.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert path.exists(), f"{case}: no expected.yaml; run with UPDATE_GOLDEN=1 and review it"
    assert got == path.read_text(), f"{case}: outcome changed; UPDATE_GOLDEN=1 to accept"


def served(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back after applying `obj` and the cluster running it: defaults and status added."""
    live = json.loads(json.dumps(obj))
    live["metadata"].update({"uid": "child-uid", "resourceVersion": "7", "generation": 1, "creationTimestamp": NOW})
    live["metadata"].setdefault("annotations", {})[APPLIED_HASH] = applied_hash(obj)
    if obj["kind"] == "Deployment":
        live["spec"].setdefault("progressDeadlineSeconds", 600)  # server defaults where the operator set none
        n = live["spec"].setdefault("replicas", 1)
        live["status"] = {
            "observedGeneration": 1,
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
        }
    return live


@pytest.mark.parametrize("case", [c for c in CASES if "first-pass" in c])
def test_second_pass_over_the_produced_world_changes_nothing(case: str) -> None:
    spec = yaml.safe_load((GOLDEN / case / "input.yaml").read_text())
    first = run_case(spec)
    spec["object"]["status"] = first.status
    facts = spec.setdefault("facts", {})
    children = [served(o) for o in (*first.apply, *first.create)]
    facts["deployments"] = [c for c in children if c["kind"] == "Deployment"]
    facts["jobs"] = [c for c in children if c["kind"] == "Job"]
    facts["claim"] = next((c for c in children if c["kind"] == "PersistentVolumeClaim"), None)
    second = run_case(spec)
    third_spec = {**spec, "object": {**spec["object"], "status": second.status}}
    third = run_case(third_spec)
    # the cluster has caught up: the status settles after one more pass, then nothing changes at all
    assert third.status == second.status
    assert not third.events and not third.delete
    live = {(c["kind"], c["metadata"]["name"]): c for c in children}
    for obj in (*third.apply, *third.create):
        assert not drifted(obj, live.get((obj["kind"], obj["metadata"]["name"]))), obj["metadata"]["name"]
