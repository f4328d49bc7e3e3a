"""Runtimes other than vLLM end to end: SGLang on GPU pools, llama.cpp serving a GGUF QuantizedModel on CPU pools and
small GPUs, and the GGUF calibration Job placed on CPU nodes (real API server, scheduler and Job controller; KWOK
plays the pods, calibration results are simulated - the real llama.cpp chain is tests/serving/test_llama_cpp.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from qf import apply, cond, get, isvc, jobs, model_config, node_labels, qm, running_operator, wait_cond

from quantfleet_dev.testing import Sandbox, wait_for

PLURAL = "inferenceservices"
LLAMA = "hf://meta-llama/Llama-3.1-8B-Instruct@main"
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
A10G = {"nvidia.com/gpu.product": "NVIDIA-A10G"}
CPU_POOL = {"quantfleet.io/pool": "cpu"}


@pytest.fixture
def op(sandbox: Sandbox, namespace: str) -> Any:
    for model in ("llama-3.1-8b", "llama-3.1-70b"):
        model_config(sandbox, namespace, model)
    with running_operator(sandbox, namespace) as proc:
        yield proc


def container(sb: Sandbox, ns: str, deployment: str) -> Any:
    return sb.apps.read_namespaced_deployment(deployment, ns).spec.template.spec.containers[0]


def running_on(sb: Sandbox, ns: str, deployment: str) -> list[str]:
    dep = sb.apps.read_namespaced_deployment(deployment, ns)
    sel = ",".join(f"{k}={v}" for k, v in dep.spec.selector.match_labels.items())

    def nodes() -> list[str] | None:
        pods = sb.core.list_namespaced_pod(ns, label_selector=sel).items
        found = [p.spec.node_name for p in pods if p.status.phase == "Running" and p.spec.node_name]
        return found or None

    return wait_for(nodes, 60, f"pods of {deployment} running")


def test_sglang_serves_the_same_decision_on_gpu_pools(sandbox: Sandbox, namespace: str, op: Any) -> None:
    model = {"uri": LLAMA, "configRef": {"name": "llama-3.1-8b-config"}}
    pools = [{"name": "h100", "nodeSelector": H100}, {"name": "a10g", "nodeSelector": A10G, "runtime": "vllm"}]
    apply(sandbox, namespace, isvc("sg", model=model, runtime="sglang", pools=pools, maxModelLen=8192))
    obj = wait_cond(sandbox, namespace, PLURAL, "sg", "Ready", "True", timeout=120)
    by_pool = {d["pool"]: d for d in obj["status"]["decisions"]}
    assert by_pool["h100"]["runtime"] == "sglang" and by_pool["a10g"]["runtime"] == "vllm"
    assert obj["status"]["runtime"] == "sglang,vllm"
    h100 = by_pool["h100"]
    assert (h100["precision"], h100["quantization"]) == ("fp8", "fp8"), h100  # on-the-fly FP8, as with vLLM
    c = container(sandbox, namespace, h100["deployment"])
    assert c.command[:3] == ["python3", "-m", "sglang.launch_server"], c.command
    args = c.args
    assert args[args.index("--model-path") + 1] == "meta-llama/Llama-3.1-8B-Instruct"
    assert args[args.index("--quantization") + 1] == "fp8" and args[args.index("--tp-size") + 1] == "1"
    assert args[args.index("--context-length") + 1] == "8192" and "--enable-metrics" in args
    assert c.readiness_probe.http_get.path == "/health"
    assert container(sandbox, namespace, by_pool["a10g"]["deployment"]).command[:2] == ["vllm", "serve"]
    assert all(
        node_labels(sandbox, n)["nvidia.com/gpu.product"] == H100["nvidia.com/gpu.product"]
        for n in running_on(sandbox, namespace, h100["deployment"])
    )


def test_sglang_is_refused_on_cpu_pools(sandbox: Sandbox, namespace: str, op: Any) -> None:
    model = {"uri": LLAMA, "configRef": {"name": "llama-3.1-8b-config"}}
    spec = {"runtime": "sglang", "pools": [{"name": "cpu", "nodeSelector": CPU_POOL}], "maxModelLen": 8192}
    apply(sandbox, namespace, isvc("sg-cpu", model=model, **spec))
    obj = wait_cond(sandbox, namespace, PLURAL, "sg-cpu", "Ready", "False", "CannotHonour")
    assert "GPU pools only" in cond(obj, "Ready")["message"]
    time.sleep(2)
    assert sandbox.apps.list_namespaced_deployment(namespace).items == []


def test_gguf_quantized_model_calibrates_on_cpus_and_llama_cpp_serves_it(
    sandbox: Sandbox, namespace: str, op: Any
) -> None:
    apply(sandbox, namespace, qm("llama-q4", "gguf-q4_k_m", "llama-3.1-8b"))
    model = wait_cond(sandbox, namespace, "quantizedmodels", "llama-q4", "Ready", "True", timeout=120)
    st = model["status"]
    assert st["tool"] == "llama-cpp" and st["checkpoint"]["format"] == "gguf", st
    assert st["pool"] == "cpu-m7i-4xlarge" and "run on CPUs" in st["placementReason"], st
    (job,) = jobs(sandbox, namespace, "llama-q4")
    pod = job.spec.template.spec
    assert "nvidia.com/gpu" not in (pod.containers[0].resources.limits or {})
    assert pod.affinity.node_affinity is not None and pod.node_selector == {
        "node.kubernetes.io/instance-type": "m7i.4xlarge"
    }

    ref = {"quantizedModelRef": {"name": "llama-q4"}}
    pools = [{"name": "cpu", "nodeSelector": CPU_POOL}, {"name": "a10g", "nodeSelector": A10G}]
    apply(sandbox, namespace, isvc("gg", model=ref, pools=pools, maxModelLen=8192, expectedConcurrency=2))
    obj = wait_cond(sandbox, namespace, PLURAL, "gg", "Ready", "True", timeout=120)
    by_pool = {d["pool"]: d for d in obj["status"]["decisions"]}
    cpu, a10g = by_pool["cpu"], by_pool["a10g"]
    assert obj["status"]["runtime"] == "llama-cpp" and obj["status"]["precision"] == "gguf-q4_k_m"
    assert (cpu["device"], cpu["checkpointFormat"], cpu["kvCacheDtype"]) == ("cpu", "Q4_K_M/gguf", "f16"), cpu
    assert a10g["gpuLayers"] == 33 and "every layer on the GPU" in a10g["compute"], a10g
    c = container(sandbox, namespace, cpu["deployment"])
    assert c.image.startswith("ghcr.io/ggml-org/llama.cpp:server"), c.image
    args = c.args
    assert args[args.index("--model") + 1].endswith("/model.gguf")
    assert args[args.index("--ctx-size") + 1] == str(8192 * 2) and args[args.index("--parallel") + 1] == "2"
    assert args[args.index("--n-gpu-layers") + 1] == "0" and "--threads" in args
    assert "--no-repack" in args  # the sandbox's CPU nodes are AMX: ggml's AMX matmul crashes on quantized GGUF
    g = container(sandbox, namespace, a10g["deployment"])
    assert g.args[g.args.index("--n-gpu-layers") + 1] == "33" and g.resources.limits["nvidia.com/gpu"] == "1"
    assert all(
        node_labels(sandbox, n).get("quantfleet.io/pool") == "cpu"
        for n in running_on(sandbox, namespace, cpu["deployment"])
    )


def test_llama_cpp_needs_a_gguf_model_and_gguf_needs_llama_cpp(sandbox: Sandbox, namespace: str, op: Any) -> None:
    model = {"uri": LLAMA, "configRef": {"name": "llama-3.1-8b-config"}}
    apply(sandbox, namespace, isvc("lc", model=model, runtime="llama-cpp", maxModelLen=8192))
    obj = wait_cond(sandbox, namespace, PLURAL, "lc", "Ready", "False", "CannotHonour")
    assert "GGUF" in cond(obj, "Ready")["message"]
    apply(sandbox, namespace, qm("l-q8", "gguf-q8_0", "llama-3.1-8b"))
    wait_cond(sandbox, namespace, "quantizedmodels", "l-q8", "Ready", "True", timeout=120)
    ref = {"quantizedModelRef": {"name": "l-q8"}}
    apply(sandbox, namespace, isvc("gv", model=ref, runtime="vllm", maxModelLen=8192))
    obj = wait_cond(sandbox, namespace, PLURAL, "gv", "Ready", "False", "CannotHonour")
    assert "only runtime llama-cpp serves it" in cond(obj, "Ready")["message"]
    assert get(sandbox, namespace, PLURAL, "gv")["status"].get("decisions") is None


MI300X = {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}


def test_quark_fp8_for_mi300x_is_calibrated_there_and_served_there(sandbox: Sandbox, namespace: str, op: Any) -> None:
    apply(sandbox, namespace, qm("llama-quark", "fp8-static", "llama-3.1-8b", placement={"nodeSelector": MI300X}))
    model = wait_cond(sandbox, namespace, "quantizedmodels", "llama-quark", "Ready", "True", timeout=120)
    st = model["status"]
    assert st["tool"] == "quark" and st["checkpoint"]["format"] == "quark", st
    assert "AMD" in st["toolReason"] and "e4m3fnuz" in st["toolReason"], st["toolReason"]
    (job,) = jobs(sandbox, namespace, "llama-quark")
    assert job.spec.template.spec.containers[0].resources.limits["amd.com/gpu"] == "1"
    ref = {"quantizedModelRef": {"name": "llama-quark"}}
    apply(
        sandbox, namespace, isvc("lq", model=ref, pools=[{"name": "mi300x", "nodeSelector": MI300X}], maxModelLen=8192)
    )
    obj = wait_cond(sandbox, namespace, PLURAL, "lq", "Ready", "True", timeout=120)
    (d,) = obj["status"]["decisions"]
    assert (d["runtime"], d["precision"]) == ("vllm", "fp8") and "quantization" not in d, d
    assert d["checkpointFormat"].endswith("/quark"), d
    args = container(sandbox, namespace, d["deployment"]).args
    assert not any(a.startswith("--quantization") for a in args), args  # vLLM detects quant_method quark itself
