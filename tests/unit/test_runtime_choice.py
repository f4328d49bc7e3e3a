"""Which runtime serves a pool, and what each refuses (InferenceService core, pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quantfleet import versions
from quantfleet.hardware.pools import group_pools
from quantfleet.inferenceservice import decide as isvc
from quantfleet.inferenceservice.decide import conditions_of
from quantfleet_dev.testing import cpu_node, gpu_node

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
CONFIG = (MODELS / "llama-3.1-8b" / "config.json").read_text()
CLUSTER = [
    gpu_node("h100-0", "H100-SXM", 8),
    gpu_node("a10g-0", "A10G", 1),
    cpu_node("m7i-0", "amx", memory="64Gi", instance_type="m7i.4xlarge"),
]
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
A10G = {"nvidia.com/gpu.product": "NVIDIA-A10G"}
CPU = {"node.kubernetes.io/instance-type": "m7i.4xlarge"}


def gguf_qm(scheme: str = "gguf-q4_k_m", uri: str = "pvc://ckpt/llama-q4/abc") -> dict[str, Any]:
    return {
        "metadata": {"name": "llama-q4", "namespace": "ns"},
        "spec": {
            "source": {"huggingFace": {"repo": "meta-llama/Llama-3.1-8B"}, "modelConfigRef": {"name": "cfg"}},
            "scheme": scheme,
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "CheckpointReady"}],
            "checkpoint": {"uri": uri, "format": "gguf"},
        },
    }


def service(model: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "svc", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {
            "model": model or {"uri": "hf://meta-llama/Llama-3.1-8B", "configRef": {"name": "cfg"}},
            "maxModelLen": 8192,
            **spec,
        },
    }


def outcome(obj: dict[str, Any], qm: dict[str, Any] | None = None, nodes: list[Any] = CLUSTER) -> Any:
    return isvc.outcome(
        obj,
        isvc.ServiceFacts(
            pools=group_pools(nodes),
            configmaps={"cfg": {"data": {"config.json": CONFIG}}},
            quantized_model=qm,
            deployments={},
            vllm_image="vllm/vllm-openai:v0.33.0",
            now="2026-12-03T12:00:00Z",
            vllm_cpu_image="vllm/vllm-openai-cpu:v0.33.0-x86_64",
            runtime_images=versions.runtime_images(),
        ),
    )


def refused(out: Any) -> str:
    ready = conditions_of(out)["Ready"]
    assert (ready.status, ready.reason) == ("False", "CannotHonour"), ready
    assert not out.apply
    return ready.message


def containers(out: Any) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]
        for o in out.apply
        if o["kind"] == "Deployment"
    }


def test_unset_runtime_is_vllm_and_stays_out_of_the_plan_hash() -> None:
    out = outcome(service(pools=[{"name": "h", "nodeSelector": H100}]))
    (d,) = out.status["decisions"]
    assert d["runtime"] == "vllm" and out.status["runtime"] == "vllm"
    explicit = outcome(service(pools=[{"name": "h", "nodeSelector": H100}], runtime="vllm"))
    assert explicit.status["planHash"] != out.status["planHash"]  # an explicit choice is a spec change
    assert containers(out)["svc-h"]["command"] == ["vllm", "serve"]


def test_pool_runtime_overrides_the_service() -> None:
    pools = [{"name": "h", "nodeSelector": H100, "runtime": "sglang"}, {"name": "a", "nodeSelector": A10G}]
    out = outcome(service(pools=pools))
    by = containers(out)
    assert by["svc-h"]["name"] == "sglang" and "sglang.launch_server" in by["svc-h"]["command"]
    assert by["svc-a"]["name"] == "vllm" and by["svc-a"]["command"] == ["vllm", "serve"]
    assert out.status["runtime"] == "sglang,vllm"


def test_sglang_refuses_cpu_pools() -> None:
    message = refused(outcome(service(runtime="sglang", pools=[{"name": "c", "nodeSelector": CPU}])))
    assert "GPU pools only" in message


def test_sglang_in_automatic_mode_skips_what_it_cannot_serve() -> None:
    out = outcome(service(runtime="sglang", cpuPools="Allowed", maxPools=3))
    pools = {d["pool"]: d["runtime"] for d in out.status["decisions"]}
    assert pools and set(pools.values()) == {"sglang"} and not any(p.startswith("cpu") for p in pools)


def test_autoscaling_is_refused_for_other_runtimes() -> None:
    spec = {"runtime": "sglang", "pools": [{"name": "h", "nodeSelector": H100}], "autoscaling": {"maxReplicas": 2}}
    assert "cannot autoscale yet" in refused(outcome(service(**spec)))


def test_llama_cpp_needs_a_gguf_model() -> None:
    message = refused(outcome(service(runtime="llama-cpp", pools=[{"name": "c", "nodeSelector": CPU}])))
    assert "GGUF" in message and "gguf-q4_k_m" in message


@pytest.mark.parametrize("runtime", ["vllm", "sglang"])
def test_a_gguf_model_is_served_by_llama_cpp_only(runtime: str) -> None:
    ref = {"quantizedModelRef": {"name": "llama-q4"}}
    message = refused(outcome(service(ref, runtime=runtime, pools=[{"name": "h", "nodeSelector": H100}]), gguf_qm()))
    assert f"only runtime llama-cpp serves it, not {runtime}" in message


def test_a_gguf_checkpoint_off_a_volume_is_refused() -> None:
    ref = {"quantizedModelRef": {"name": "llama-q4"}}
    message = refused(outcome(service(ref), gguf_qm(uri="s3://bucket/llama-q4")))
    assert "mounted volume" in message and "s3://bucket/llama-q4" in message


def test_gguf_on_cpu_and_gpu_pools_renders_llama_server() -> None:
    ref = {"quantizedModelRef": {"name": "llama-q4"}}
    pools = [{"name": "c", "nodeSelector": CPU}, {"name": "a", "nodeSelector": A10G}]
    out = outcome(service(ref, pools=pools, expectedConcurrency=2), gguf_qm())
    by = {d["pool"]: d for d in out.status["decisions"]}
    assert by["c"]["runtime"] == by["a"]["runtime"] == "llama-cpp"
    assert by["a"]["gpuLayers"] == 33 and "gpuLayers" not in by["c"]
    assert out.status["checkpointFormat"] == "Q4_K_M/gguf" and by["c"]["checkpointFormat"] == "Q4_K_M/gguf"
    cpu, gpu = containers(out)["svc-c"], containers(out)["svc-a"]
    assert cpu["name"] == gpu["name"] == "llama-cpp"
    assert cpu["image"] == versions.llama_cpp_image(cuda=False) and gpu["image"] == versions.llama_cpp_image(cuda=True)
    for c in (cpu, gpu):
        args = c["args"]
        assert args[args.index("--model") + 1] == "/models/llama-q4/abc/model.gguf"
        assert args[args.index("--ctx-size") + 1] == str(8192 * 2) and args[args.index("--parallel") + 1] == "2"
    assert cpu["args"][cpu["args"].index("--n-gpu-layers") + 1] == "0" and "--no-repack" in cpu["args"]  # AMX
    assert "--no-repack" not in gpu["args"]
    assert gpu["args"][gpu["args"].index("--n-gpu-layers") + 1] == "33"
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1" and "nvidia.com/gpu" not in cpu["resources"]["limits"]


def test_llama_cpp_refuses_amd_gpus() -> None:
    ref = {"quantizedModelRef": {"name": "llama-q4"}}
    pools = [{"name": "m", "nodeSelector": {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}}]
    nodes = [*CLUSTER, gpu_node("mi300x-0", "MI300X", 8)]
    assert "no ROCm image" in refused(outcome(service(ref, pools=pools), gguf_qm(), nodes))
