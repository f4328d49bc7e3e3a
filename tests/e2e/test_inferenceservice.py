"""InferenceService end to end: decisions per GPU pool, real scheduler placement, rollouts, pinning."""

from __future__ import annotations

import time
from typing import Any

import pytest
from qf import (
    MODELS,
    apply,
    cond,
    events,
    get,
    isvc,
    merge_patch,
    model_config,
    node_labels,
    qm,
    running_operator,
    wait_cond,
)

from quantfleet_dev.testing import Sandbox, wait_for

PLURAL = "inferenceservices"
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
B200 = {"nvidia.com/gpu.product": "NVIDIA-B200"}
A10G = {"nvidia.com/gpu.product": "NVIDIA-A10G"}
MI300X = {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}
MI355X = {"amd.com/gpu.product-name": "AMD_Instinct_MI355X_OAM"}
LLAMA = "hf://meta-llama/Llama-3.1-8B-Instruct@main"


@pytest.fixture
def op(sandbox: Sandbox, namespace: str) -> Any:
    for model in ("llama-3.1-8b", "qwen3-30b-a3b", "llama-3.1-70b"):
        model_config(sandbox, namespace, model)
    with running_operator(sandbox, namespace) as proc:
        yield proc


def llama(name: str, pool: dict[str, str], **spec: Any) -> dict[str, Any]:
    return isvc(
        name,
        model={"uri": LLAMA, "configRef": {"name": "llama-3.1-8b-config"}},
        pools=[{"name": "p", "nodeSelector": pool}],
        **spec,
    )


def decision(obj: dict[str, Any], pool: str = "p") -> dict[str, Any]:
    return next(d for d in obj["status"]["decisions"] if d["pool"] == pool)


def deployment_args(sb: Sandbox, ns: str, name: str) -> list[str]:
    return sb.apps.read_namespaced_deployment(name, ns).spec.template.spec.containers[0].args


def ready_pods_on(sb: Sandbox, ns: str, dep: str, label: str, value: str) -> bool:
    d = sb.apps.read_namespaced_deployment(dep, ns)
    sel = ",".join(f"{k}={v}" for k, v in d.spec.selector.match_labels.items())
    pods = sb.core.list_namespaced_pod(ns, label_selector=sel).items
    ok = [
        p
        for p in pods
        if p.status.phase == "Running" and p.spec.node_name and node_labels(sb, p.spec.node_name).get(label) == value
    ]
    return len(ok) == d.spec.replicas and d.spec.replicas > 0


def ready_qm(sb: Sandbox, ns: str, name: str, scheme: str, model: str = "qwen3-30b-a3b") -> None:
    apply(sb, ns, qm(name, scheme, model))
    wait_cond(sb, ns, "quantizedmodels", name, "Ready", "True")


def test_h100_serves_fp8_on_the_fly_and_pods_land_on_h100(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, llama("l-h100", H100, replicas=2))
    obj = wait_cond(sandbox, namespace, PLURAL, "l-h100", "Ready", "True", timeout=120)
    d = decision(obj)
    assert d["precision"] == "fp8" and d["quantization"] == "fp8" and d["native"] is True and "H100" in d["reason"]
    args = deployment_args(sandbox, namespace, d["deployment"])
    assert args[0] == "meta-llama/Llama-3.1-8B-Instruct" and "--quantization" in args
    assert args[args.index("--quantization") + 1] == "fp8"
    assert ready_pods_on(sandbox, namespace, d["deployment"], "nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3")
    assert obj["status"]["readyReplicas"] == 2 and obj["status"]["endpoint"].endswith(":8000/v1")
    out = sandbox.kubectl("get", "qisvc", "-n", namespace).stdout
    assert out.splitlines()[0].split()[:6] == ["NAME", "READY", "PRECISION", "CHECKPOINT", "KV", "POOLS"], out
    assert "fp8" in out and "True" in out
    svc = sandbox.core.read_namespaced_service("l-h100", namespace)
    assert svc.spec.ports[0].port == 8000
    assert any(e.reason == "DecisionMade" for e in events(sandbox, namespace, "l-h100"))


def test_b200_with_nvfp4_checkpoint_serves_nvfp4(sandbox: Sandbox, namespace: str, op: Any) -> None:
    ready_qm(sandbox, namespace, "qwen-nvfp4", "nvfp4")
    apply(
        sandbox,
        namespace,
        isvc(
            "q-b200",
            model={"quantizedModelRef": {"name": "qwen-nvfp4"}},
            pools=[{"name": "p", "nodeSelector": B200}],
            maxModelLen=32768,
        ),
    )
    obj = wait_cond(sandbox, namespace, PLURAL, "q-b200", "Ready", "True", timeout=120)
    d = decision(obj)
    assert d["precision"] == "nvfp4" and d["native"] is True and "quantization" not in d
    args = deployment_args(sandbox, namespace, d["deployment"])
    assert args[0].startswith("/models/") and "--quantization" not in args
    assert ready_pods_on(sandbox, namespace, d["deployment"], "nvidia.com/gpu.product", "NVIDIA-B200")


def test_a10g_never_gets_w8a8(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, llama("l-a10g", A10G, maxModelLen=4096))
    obj = wait_cond(sandbox, namespace, PLURAL, "l-a10g", "Ready", "True", timeout=120)
    d = decision(obj)
    assert d["precision"] in ("bf16", "w4a16") and d.get("quantization") is None, d
    assert "A10G" in d["reason"]
    assert "--quantization" not in deployment_args(sandbox, namespace, d["deployment"])


def test_mi300x_serves_fp8(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, llama("l-mi300x", MI300X))
    obj = wait_cond(sandbox, namespace, PLURAL, "l-mi300x", "Ready", "True", timeout=120)
    d = decision(obj)
    assert d["precision"] == "fp8" and d["gpuResource"] == "amd.com/gpu"
    dep = sandbox.apps.read_namespaced_deployment(d["deployment"], namespace)
    assert dep.spec.template.spec.containers[0].resources.limits["amd.com/gpu"] == str(d["tensorParallelSize"])
    assert ready_pods_on(
        sandbox, namespace, d["deployment"], "amd.com/gpu.product-name", MI300X["amd.com/gpu.product-name"]
    )


def test_mi355x_with_mxfp4_checkpoint_serves_mxfp4(sandbox: Sandbox, namespace: str, op: Any) -> None:
    ready_qm(sandbox, namespace, "qwen-mxfp4", "mxfp4")
    apply(
        sandbox,
        namespace,
        isvc(
            "q-mi355x",
            model={"quantizedModelRef": {"name": "qwen-mxfp4"}},
            pools=[{"name": "p", "nodeSelector": MI355X}],
        ),
    )
    obj = wait_cond(sandbox, namespace, PLURAL, "q-mi355x", "Ready", "True", timeout=120)
    assert decision(obj)["precision"] == "mxfp4" and decision(obj)["native"] is True


def test_long_context_high_concurrency_gets_fp8_kv(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, llama("l-long", H100, maxModelLen=131072, expectedConcurrency=64))
    obj = wait_cond(sandbox, namespace, PLURAL, "l-long", "Ready", "True", timeout=120)
    d = decision(obj)
    assert d["kvCacheDtype"] == "fp8_e4m3", d
    assert "KV" in d["reason"] or "kv" in d["reason"]
    args = deployment_args(sandbox, namespace, d["deployment"])
    assert args[args.index("--kv-cache-dtype") + 1] == "fp8_e4m3"


def test_request_the_gpu_cannot_honour_is_a_condition_not_a_deployment(
    sandbox: Sandbox, namespace: str, op: Any
) -> None:
    ready_qm(sandbox, namespace, "qwen-nvfp4", "nvfp4")
    apply(
        sandbox,
        namespace,
        isvc(
            "q-amd",
            model={"quantizedModelRef": {"name": "qwen-nvfp4"}},
            precision="nvfp4",
            pools=[{"name": "p", "nodeSelector": MI300X}],
        ),
    )
    obj = wait_cond(sandbox, namespace, PLURAL, "q-amd", "Ready", "False", "CannotHonour")
    assert "nvfp4" in cond(obj, "Ready")["message"].lower()
    time.sleep(3)
    assert sandbox.apps.list_namespaced_deployment(namespace).items == []
    assert any(e.reason == "CannotHonour" and e.type == "Warning" for e in events(sandbox, namespace, "q-amd"))


def test_spanning_pools_update_restart_and_delete(sandbox: Sandbox, namespace: str) -> None:
    for model in ("llama-3.1-8b", "qwen3-30b-a3b"):
        model_config(sandbox, namespace, model)
    spec = {
        "model": {"quantizedModelRef": {"name": "qwen-nvfp4"}},
        "maxModelLen": 32768,
        "pools": [{"name": "blackwell", "nodeSelector": B200}, {"name": "hopper", "nodeSelector": H100}],
    }
    with running_operator(sandbox, namespace):
        ready_qm(sandbox, namespace, "qwen-nvfp4", "nvfp4")
        apply(sandbox, namespace, isvc("span", **spec))
        obj = wait_cond(sandbox, namespace, PLURAL, "span", "Ready", "True", timeout=120)
        bw, hop = decision(obj, "blackwell"), decision(obj, "hopper")
        assert bw["precision"] == "nvfp4" and hop["precision"] == "fp8" and bw["precision"] != hop["precision"]
        assert hop["modelUri"].startswith("hf://") and bw["modelUri"].startswith("pvc://")
        deps = {d.metadata.name: d for d in sandbox.apps.list_namespaced_deployment(namespace).items}
        assert set(deps) == {"span-blackwell", "span-hopper"}
        gens = {n: d.metadata.generation for n, d in deps.items()}
        assert ready_pods_on(sandbox, namespace, "span-blackwell", "nvidia.com/gpu.product", "NVIDIA-B200")
        assert ready_pods_on(sandbox, namespace, "span-hopper", "nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3")

        # update one pool: only its Deployment rolls
        spec["pools"][1]["replicas"] = 2
        apply(sandbox, namespace, isvc("span", **spec))
        wait_for(
            lambda: sandbox.apps.read_namespaced_deployment("span-hopper", namespace).spec.replicas == 2,
            60,
            "hopper scaled",
        )
        assert (
            sandbox.apps.read_namespaced_deployment("span-blackwell", namespace).metadata.generation
            == gens["span-blackwell"]
        )
        obj = wait_for(
            lambda: (
                (o := get(sandbox, namespace, PLURAL, "span"))["status"].get("readyReplicas") == 3
                and cond(o, "Ready")["status"] == "True"
                and o
            ),
            120,
            "3 replicas ready",
        )
        plan = obj["status"]["planHash"]

        # operator stopped right after a spec change (mid-rollout) ...
        merge_patch(sandbox, namespace, PLURAL, "span", {"spec": {"maxModelLen": 16384}})
    # ... and a new one finishes it: no duplicates, status not lost
    with running_operator(sandbox, namespace):
        obj = wait_for(
            lambda: (
                (o := get(sandbox, namespace, PLURAL, "span"))["status"].get("planHash") != plan
                and cond(o, "Ready")["status"] == "True"
                and o
            ),
            120,
            "re-planned and Ready",
        )
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        names = sorted(d.metadata.name for d in sandbox.apps.list_namespaced_deployment(namespace).items)
        assert names == ["span-blackwell", "span-hopper"]
        args = deployment_args(sandbox, namespace, "span-hopper")
        assert args[args.index("--max-model-len") + 1] == "16384"

        # delete: children garbage-collected
        sandbox.kubectl("delete", "qisvc", "span", "-n", namespace, "--wait=true", "--timeout=60s")
        wait_for(lambda: sandbox.apps.list_namespaced_deployment(namespace).items == [], 60, "Deployments GC'd")


def test_cluster_change_degrades_but_keeps_the_pinned_decision(sandbox: Sandbox, namespace: str, op: Any) -> None:
    l40s = [n.metadata.name for n in sandbox.core.list_node(label_selector="nvidia.com/gpu.product=NVIDIA-L40S").items]
    apply(sandbox, namespace, llama("pinned", {"nvidia.com/gpu.product": "NVIDIA-L40S"}))
    obj = wait_cond(sandbox, namespace, PLURAL, "pinned", "Ready", "True", timeout=120)
    before = decision(obj)
    try:
        for n in l40s:
            sandbox.kubectl("cordon", n)
        obj = wait_cond(sandbox, namespace, PLURAL, "pinned", "Degraded", "True", "PoolUnavailable", timeout=60)
        assert decision(obj)["precision"] == before["precision"]
        assert obj["status"]["planHash"] == get(sandbox, namespace, PLURAL, "pinned")["status"]["planHash"]
        assert any(e.reason == "PoolUnavailable" for e in events(sandbox, namespace, "pinned"))
    finally:
        for n in l40s:
            sandbox.kubectl("uncordon", n)
    wait_cond(sandbox, namespace, PLURAL, "pinned", "Degraded", "False", timeout=60)


def test_waits_for_its_quantized_model(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, isvc("early", model={"quantizedModelRef": {"name": "later"}}))
    obj = wait_cond(sandbox, namespace, PLURAL, "early", "Ready", "False", "QuantizedModelNotFound")
    assert cond(obj, "ModelReady")["status"] == "False"
    apply(sandbox, namespace, qm("later", "fp8-dynamic", "llama-3.1-8b"))
    obj = wait_cond(sandbox, namespace, PLURAL, "early", "Ready", "True", timeout=150)
    assert cond(obj, "ModelReady")["status"] == "True"


# --- pre-quantized checkpoints (docs/checkpoint-formats.md) -------------------------------------------------------

CT_FP8 = "nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing"
MODELOPT_NVFP4 = "nvidia--qwen3-30b-a3b-nvfp4"


def checkpoint_config(sb: Sandbox, ns: str, model: str) -> str:
    """A ConfigMap with a published checkpoint's config.json, plus hf_quant_config.json when it has one (ModelOpt)."""
    name = f"{model.split('--')[-1][:40]}-config"
    data = {"config.json": (MODELS / model / "config.json").read_text()}
    hf_quant = MODELS / model / "hf_quant_config.json"
    if hf_quant.is_file():
        data["hf_quant_config.json"] = hf_quant.read_text()
    sb.core.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": data})
    return name


def assert_no_quantization_flag(sb: Sandbox, ns: str, obj: dict[str, Any]) -> None:
    for d in obj["status"]["decisions"]:
        assert "quantization" not in d, d
        assert not any(a.startswith("--quantization") for a in deployment_args(sb, ns, d["deployment"])), d


def test_prequantized_fp8_checkpoint_across_h100_a10g_b200_mi300x(sandbox: Sandbox, namespace: str, op: Any) -> None:
    """A compressed-tensors FP8 checkpoint served as it is on four GPU families, each pool with its own kernel."""
    config = checkpoint_config(sandbox, namespace, CT_FP8)
    pools = {"h100": H100, "a10g": A10G, "b200": B200, "mi300x": MI300X}
    apply(
        sandbox,
        namespace,
        isvc(
            "ct-fp8",
            model={"uri": "hf://nm-testing/Meta-Llama-3-8B-Instruct-FP8-Dynamic-IA", "configRef": {"name": config}},
            maxModelLen=8192,
            pools=[{"name": n, "nodeSelector": sel} for n, sel in pools.items()],
        ),
    )
    obj = wait_cond(sandbox, namespace, PLURAL, "ct-fp8", "Ready", "True", timeout=180)
    by_pool = {p: decision(obj, p) for p in pools}
    for d in by_pool.values():
        assert d["checkpointFormat"] == "fp8-w8a8/compressed-tensors" and d["precision"] == "fp8", d
        assert d["weightsGib"] == "8.5", d  # FP8 weights, not the 15 GiB of a BF16 plan
    assert by_pool["h100"]["native"] is True and by_pool["h100"]["compute"] == "fp8 W8A8 via CUTLASS"
    assert by_pool["a10g"]["native"] is False and "Marlin" in by_pool["a10g"]["compute"]
    assert "not native" in by_pool["a10g"]["reason"]
    assert by_pool["b200"]["native"] is True and "FlashInfer" in by_pool["b200"]["compute"]
    assert by_pool["mi300x"]["native"] is True and "FNUZ" in by_pool["mi300x"]["compute"]
    assert by_pool["mi300x"]["gpuResource"] == "amd.com/gpu"
    assert_no_quantization_flag(sandbox, namespace, obj)
    for pool, (label, value) in {
        "h100": ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
        "a10g": ("nvidia.com/gpu.product", "NVIDIA-A10G"),
        "b200": ("nvidia.com/gpu.product", "NVIDIA-B200"),
        "mi300x": ("amd.com/gpu.product-name", MI300X["amd.com/gpu.product-name"]),
    }.items():
        assert ready_pods_on(sandbox, namespace, by_pool[pool]["deployment"], label, value), pool
    out = sandbox.kubectl("get", "qisvc", "ct-fp8", "-n", namespace).stdout
    assert "fp8-w8a8/compressed-tensors" in out, out
    wide = sandbox.kubectl("get", "qisvc", "ct-fp8", "-n", namespace, "-o", "wide").stdout
    assert "COMPUTE" in wide and "Marlin" in wide, wide


def test_prequantized_nvfp4_checkpoint_decides_per_pool(sandbox: Sandbox, namespace: str, op: Any) -> None:
    """ModelOpt NVFP4 (hf_quant_config.json in the ConfigMap): native on B200, weight-only fallbacks on H100/L40S/A10G,
    skipped on the AMD pools in automatic mode, and an explicit MI300X pool is refused with vLLM's reason."""
    config = checkpoint_config(sandbox, namespace, MODELOPT_NVFP4)
    model = {"uri": "hf://nvidia/Qwen3-30B-A3B-NVFP4", "configRef": {"name": config}}
    apply(sandbox, namespace, isvc("nvfp4-auto", model=model, maxModelLen=8192, maxPools=6))
    obj = wait_cond(sandbox, namespace, PLURAL, "nvfp4-auto", "Ready", "True", timeout=180)
    decisions = obj["status"]["decisions"]
    assert decisions[0]["gpu"] == "B200" and decisions[0]["native"] is True, decisions[0]  # native ranks first
    assert decisions[0]["compute"].startswith("nvfp4 W4A4") and decisions[0]["kvCacheDtype"] == "fp8_e4m3"
    assert {d["gpu"] for d in decisions} == {"B200", "H100-SXM", "L40S", "A10G"}
    for d in decisions[1:]:
        assert d["native"] is False and "nvfp4 weights" in d["compute"], d
    assert obj["status"]["checkpointFormat"] == "nvfp4/modelopt"
    assert_no_quantization_flag(sandbox, namespace, obj)
    skipped = [e.message for e in events(sandbox, namespace, "nvfp4-auto") if e.reason == "PoolSkipped"]
    assert any("MI300X" in m and "EmulationNvFp4LinearKernel" in m for m in skipped), skipped
    assert any("MI355X" in m for m in skipped), skipped

    apply(
        sandbox,
        namespace,
        isvc(
            "nvfp4-amd",
            model=model,
            maxModelLen=8192,
            pools=[{"name": "b200", "nodeSelector": B200}, {"name": "mi300x", "nodeSelector": MI300X}],
        ),
    )
    obj = wait_cond(sandbox, namespace, PLURAL, "nvfp4-amd", "Ready", "False", "CannotHonour")
    assert "MI300X cannot serve the nvfp4/modelopt checkpoint" in cond(obj, "Planned")["message"]
    time.sleep(3)
    assert [
        d.metadata.name for d in sandbox.apps.list_namespaced_deployment(namespace).items if "amd" in d.metadata.name
    ] == []


def test_prequantized_checkpoint_refusals(sandbox: Sandbox, namespace: str, op: Any) -> None:
    """bitsandbytes (vLLM 0.33 cannot load it), a precision that contradicts the checkpoint, and a 4-bit precision on a
    BF16 base model: each a CannotHonour with the reason, never a silent BF16 plan or a re-quantization."""
    bnb = checkpoint_config(sandbox, namespace, "aiplanet--luxllama")
    gpt_oss = checkpoint_config(sandbox, namespace, "openai--gpt-oss-20b")
    pool = [{"name": "p", "nodeSelector": H100}]
    apply(
        sandbox, namespace, isvc("bnb", model={"uri": "hf://aiplanet/LuxLlama", "configRef": {"name": bnb}}, pools=pool)
    )
    apply(
        sandbox,
        namespace,
        isvc(
            "oss", model={"uri": "hf://openai/gpt-oss-20b", "configRef": {"name": gpt_oss}}, precision="fp8", pools=pool
        ),
    )
    apply(sandbox, namespace, llama("base-nvfp4", H100, precision="nvfp4"))  # accepted by the API server now
    obj = wait_cond(sandbox, namespace, PLURAL, "bnb", "Ready", "False", "CannotHonour")
    assert "Unknown quantization method: bitsandbytes" in cond(obj, "Ready")["message"]
    obj = wait_cond(sandbox, namespace, PLURAL, "oss", "Ready", "False", "CannotHonour")
    assert "precision is checked against a pre-quantized checkpoint" in cond(obj, "Ready")["message"]
    obj = wait_cond(sandbox, namespace, PLURAL, "base-nvfp4", "Ready", "False", "CannotHonour")
    assert "checkpoint" in cond(obj, "Ready")["message"]
    time.sleep(3)
    assert sandbox.apps.list_namespaced_deployment(namespace).items == []


def _model() -> dict[str, Any]:
    return {"uri": LLAMA, "configRef": {"name": "c"}}


SCHEMA_REJECTED = [
    ({"model": {}}, "exactly one of quantizedModelRef or uri"),
    ({"model": {"uri": LLAMA, "quantizedModelRef": {"name": "q"}, "configRef": {"name": "c"}}}, "exactly one of"),
    ({"model": {"uri": LLAMA}}, "configRef is required"),
    ({"model": {"uri": "ftp://x/y", "configRef": {"name": "c"}}}, "should match"),
    ({"model": _model(), "precision": "int2"}, "Unsupported value"),
    ({"model": _model(), "kvCacheDtype": "fp4"}, "Unsupported value"),
    ({"model": _model(), "maxModelLen": 8}, "greater than or equal"),
    ({"model": _model(), "gpuMemoryUtilization": 1.5}, "less than or equal"),
    ({"model": _model(), "gpuMemoryUtilization": 0.01}, "greater than or equal"),
    ({"model": _model(), "replicas": -1}, "greater than or equal"),
    ({"model": _model(), "expectedConcurrency": 0}, "greater than or equal"),
    ({"model": _model(), "vllm": {"extraArgs": ["--kv-cache-dtype=fp8"]}}, "must not set flags"),
    ({"model": _model(), "vllm": {"extraArgs": ["--quantization", "awq"]}}, "must not set flags"),
    ({"model": _model(), "pools": [{"name": "a", "nodeSelector": {}}]}, "should have at least 1"),
    (
        {"model": _model(), "pools": [{"name": "a", "nodeSelector": H100}, {"name": "a", "nodeSelector": B200}]},
        "pool names must be unique",
    ),
    ({"model": _model(), "pools": [{"name": "Bad_Name", "nodeSelector": H100}]}, "should match"),
    ({"model": _model(), "resources": {"limits": {"nvidia.com/gpu": 2}}}, "must not set GPU resources"),
    ({"model": _model(), "tensorParallelSize": 2}, "unknown field"),
]


@pytest.mark.parametrize(("spec", "message"), SCHEMA_REJECTED, ids=[f"schema-{i}" for i in range(len(SCHEMA_REJECTED))])
def test_invalid_spec_rejected_by_the_api_server(sandbox: Sandbox, namespace: str, spec: dict, message: str) -> None:
    proc = apply(sandbox, namespace, isvc("bad", **spec), check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_services_carry_no_finalizer(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, llama("plain", H100))
    obj = wait_cond(sandbox, namespace, PLURAL, "plain", "Ready", "True", timeout=120)
    assert not obj["metadata"].get("finalizers")


CPU_POOL = {"quantfleet.io/pool": "cpu"}  # the sandbox's GPU-less m7i nodes, NFD-labelled AMX


def test_cpu_pool_is_served_by_the_vllm_cpu_backend(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, llama("l-cpu", CPU_POOL, maxModelLen=8192, expectedConcurrency=4))
    obj = wait_cond(sandbox, namespace, PLURAL, "l-cpu", "Ready", "True", timeout=120)
    d = decision(obj)
    assert (d["device"], d["gpu"], d["precision"], d["kvCacheDtype"]) == ("cpu", "cpu-amx", "bf16", "auto"), d
    assert "gpuResource" not in d and d["cpuKvCacheSpaceGib"] >= 1 and "VLLM_CPU_KVCACHE_SPACE" in d["reason"]
    dep = sandbox.apps.read_namespaced_deployment(d["deployment"], namespace)
    pod = dep.spec.template.spec
    c = pod.containers[0]
    assert c.image.startswith("vllm/vllm-openai-cpu:") and "--gpu-memory-utilization" not in c.args
    assert {e.name: e.value for e in c.env}["VLLM_CPU_KVCACHE_SPACE"] == str(d["cpuKvCacheSpaceGib"])
    assert c.resources.limits == c.resources.requests == {"cpu": d["cpu"], "memory": d["memory"]}
    assert not pod.tolerations and pod.affinity.node_affinity is not None
    assert ready_pods_on(sandbox, namespace, d["deployment"], "quantfleet.io/pool", "cpu")


def test_automatic_mode_uses_cpu_pools_only_when_asked(sandbox: Sandbox, namespace: str, op: Any) -> None:
    model = {"uri": LLAMA, "configRef": {"name": "llama-3.1-8b-config"}}
    apply(sandbox, namespace, isvc("auto-gpu", model=model, maxModelLen=8192, maxPools=16))
    apply(sandbox, namespace, isvc("auto-cpu", model=model, maxModelLen=8192, cpuPools="Only"))
    gpu = wait_cond(sandbox, namespace, PLURAL, "auto-gpu", "Ready", "True", timeout=180)
    assert all(x.get("device") != "cpu" for x in gpu["status"]["decisions"]), gpu["status"]["pools"]
    cpu = wait_cond(sandbox, namespace, PLURAL, "auto-cpu", "Ready", "True", timeout=180)
    assert [(x["pool"], x["device"]) for x in cpu["status"]["decisions"]] == [("cpu-m7i-4xlarge", "cpu")]
    assert ready_pods_on(sandbox, namespace, "auto-cpu-cpu-m7i-4xlarge", "quantfleet.io/pool", "cpu")


def test_cpu_pool_refuses_online_fp8_with_the_reason(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, llama("l-cpu-fp8", CPU_POOL, maxModelLen=8192, precision="fp8"))
    obj = wait_cond(sandbox, namespace, PLURAL, "l-cpu-fp8", "Ready", "False", "CannotHonour")
    assert "on the fly" in cond(obj, "Ready")["message"]
    time.sleep(3)
    assert sandbox.apps.list_namespaced_deployment(namespace).items == []
