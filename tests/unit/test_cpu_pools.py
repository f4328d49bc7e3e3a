"""CPU pools: NFD labels -> CPU facts, the vLLM CPU kernel table, CPU pools in the pool view, the CPU decision and
pod sizing, and how the InferenceService core uses them (only when selected explicitly or opted into)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quantfleet.api.checkpoint import parse_checkpoint_quant
from quantfleet.hardware import LabelError
from quantfleet.hardware.cpu import (
    NFD_CPUID,
    cpu_checkpoint_kernel,
    cpu_facts_from_labels,
    cpu_quantity_millis,
    memory_quantity_bytes,
    nfd_labels_for,
    weakest,
)
from quantfleet.hardware.pools import CpuPool, GpuPool, group_pools, pool_for_selector
from quantfleet.hardware.support import Support
from quantfleet.inferenceservice import decide as isvc
from quantfleet.inferenceservice.decide import conditions_of
from quantfleet.planning import Checkpoint, PlanError, PlanRequest, parse_model_config
from quantfleet.planning.cpu import CPU_RUNTIME_BYTES, CpuNodeSize, decide_cpu
from quantfleet_dev.testing import cpu_node, gpu_node

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
GIB = 2**30
LLAMA = parse_model_config(json.loads((MODELS / "llama-3.1-8b" / "config.json").read_text()))
FP8_PUBLISHED = MODELS / "nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing"


def facts(isa: str) -> Any:
    return cpu_facts_from_labels(nfd_labels_for(isa))  # type: ignore[arg-type]


# --- labels -> facts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ["amx", "avx512", "avx2", "unknown"])
def test_nfd_labels_round_trip(isa: str) -> None:
    f = facts(isa)
    assert f.isa == isa and f.arch == "amd64" and f.labelled == (isa != "unknown")
    assert f.fp8_kv_cache == (isa in ("amx", "avx512"))


def test_avx512_needs_the_subsets_torch_checks() -> None:
    labels = {f"{NFD_CPUID}AVX2": "true", f"{NFD_CPUID}AVX512F": "true"}  # F alone (no BW/VL/DQ): not enough
    f = cpu_facts_from_labels(labels)
    assert f.isa == "avx2"
    assert "cpu-cpuid.AVX512BW" in f.missing("avx512")
    assert cpu_facts_from_labels({f"{NFD_CPUID}AVX2": "false"}).isa == "unknown"


def test_weakest_member_decides_and_architectures_do_not_mix() -> None:
    assert weakest([facts("amx"), facts("avx2")]).isa == "avx2"
    arm = cpu_facts_from_labels({**nfd_labels_for("avx2"), "kubernetes.io/arch": "arm64"})
    with pytest.raises(ValueError, match="mix CPU architectures"):
        weakest([facts("avx2"), arm])


def test_quantities() -> None:
    assert memory_quantity_bytes("64Gi") == 64 * GIB and memory_quantity_bytes("1000M") == 10**9
    assert memory_quantity_bytes(12345) == 12345 and memory_quantity_bytes("lots") == 0
    assert cpu_quantity_millis("16") == 16000 and cpu_quantity_millis("1500m") == 1500
    assert cpu_quantity_millis("0.5") == 500 and cpu_quantity_millis(None) == 0


# --- the CPU kernel table -----------------------------------------------------------------------------------------


def _ct(scheme: str, **kw: Any) -> Any:
    return Checkpoint.calibrated(scheme, **kw).quant


@pytest.mark.parametrize(
    ("scheme", "isa", "level", "kernel"),
    [
        ("fp8-dynamic", "amx", Support.FALLBACK, "CPUFp8ChannelWiseScaledMMLinearKernel"),
        ("fp8-dynamic", "avx512", Support.FALLBACK, "ChannelWiseTorchFP8ScaledMMLinearKernel"),
        ("fp8-dynamic", "avx2", Support.FALLBACK, "ChannelWiseTorchFP8ScaledMMLinearKernel"),
        ("fp8-static", "amx", Support.FALLBACK, "CPUFp8PerTensorScaledMMLinearKernel"),
        ("fp8-block", "amx", Support.FALLBACK, "CPUFp8BlockScaledMMKernel"),
        ("fp8-block", "avx512", Support.NO, None),
        ("w4a16", "avx512", Support.NATIVE, "CPUWNA16LinearKernel"),
        ("w4a16", "avx2", Support.NO, None),
        ("nvfp4", "amx", Support.NO, None),
        ("mxfp4", "amx", Support.NO, None),
    ],
)
def test_cpu_kernel_table(scheme: str, isa: str, level: Support, kernel: str | None) -> None:
    choice = cpu_checkpoint_kernel(facts(isa), _ct(scheme))
    assert (choice.level, choice.kernel) == (level, kernel), choice.reason
    assert choice.reason and choice.source


def test_only_compressed_tensors_checkpoints_on_cpu() -> None:
    gptq = json.loads((MODELS / "moma1820--meta-llama-3.1-8b-instruct-gptq-4bit" / "config.json").read_text())
    quant = parse_checkpoint_quant(gptq)
    assert quant is not None
    choice = cpu_checkpoint_kernel(facts("amx"), quant)
    assert choice.level is Support.NO and "compressed-tensors" in choice.reason


# --- the pool view ------------------------------------------------------------------------------------------------


FLEET = [
    gpu_node("h100-0", "H100-SXM"),
    cpu_node("m7i-0", "amx", instance_type="m7i.4xlarge", memory="64Gi"),
    cpu_node("m7i-1", "amx", instance_type="m7i.4xlarge", memory="60Gi", cpu="12"),
    cpu_node("spr-0", "amx"),
    cpu_node("rome-0", "avx2", memory="32Gi", cpu="8"),
    cpu_node("bare-0", "unknown"),
    cpu_node("cp-0", "amx", labels={**nfd_labels_for("amx"), "node-role.kubernetes.io/control-plane": ""}),
]


def test_cpu_pools_by_instance_type_else_isa_label() -> None:
    cluster = group_pools(FLEET)
    assert [p.name for p in cluster.pools] == ["h100-sxm"]
    pools = {p.name: p for p in cluster.cpu_pools}
    assert sorted(pools) == ["cpu-amx", "cpu-avx2", "cpu-m7i-4xlarge"]
    m7i = pools["cpu-m7i-4xlarge"]
    # the weakest member sizes the pool: a pod must fit on either node
    assert m7i.nodes == ("m7i-0", "m7i-1") and m7i.memory_bytes == 60 * GIB and m7i.cpus == 12
    assert m7i.node_selector == {"node.kubernetes.io/instance-type": "m7i.4xlarge"}
    # an ISA-label pool takes every GPU-less node with the label (m7i nodes too), never the control plane
    amx = pools["cpu-amx"]
    assert amx.node_selector == {f"{NFD_CPUID}AMXTILE": "true"} and amx.nodes == ("m7i-0", "m7i-1", "spr-0")
    # nodes without NFD labels or instance type join no automatic pool, but can be selected explicitly
    assert "bare-0" in {n.name for n in cluster.cpu_nodes} and "cp-0" not in {n.name for n in cluster.cpu_nodes}
    assert cluster.problems == ()


def test_explicit_selectors_on_cpu_nodes() -> None:
    bare = cpu_node("bare-1", "unknown", labels={"kubernetes.io/arch": "amd64", "team": "b"})
    cluster = group_pools([*FLEET, bare])
    pool = pool_for_selector(cluster, {"team": "b"})
    assert isinstance(pool, CpuPool) and pool.nodes == ("bare-1",) and pool.facts.isa == "unknown"
    # a selector spanning ISA levels gets the weakest: its pods may land on any of those nodes
    mixed = pool_for_selector(cluster, {"kubernetes.io/arch": "amd64", f"{NFD_CPUID}AVX2": "true"})
    assert isinstance(mixed, CpuPool) and mixed.facts.isa == "avx2" and "rome-0" in mixed.nodes
    with pytest.raises(LabelError, match="no GPU or CPU node"):
        pool_for_selector(cluster, {"team": "nobody"})


def test_selector_matching_gpu_and_cpu_nodes_is_refused() -> None:
    gpu = gpu_node("g-0", "H100-SXM")
    gpu["metadata"]["labels"]["team"] = "a"
    cpu = cpu_node("c-0", "amx", labels={**nfd_labels_for("amx"), "team": "a"})
    with pytest.raises(LabelError, match="a pool is either one GPU product or CPUs only"):
        pool_for_selector(group_pools([gpu, cpu]), {"team": "a"})
    assert isinstance(pool_for_selector(group_pools([gpu, cpu]), {"nvidia.com/gpu.present": "true"}), GpuPool)


# --- the CPU decision ---------------------------------------------------------------------------------------------

NODE = CpuNodeSize(64 * GIB, 16)


def test_bf16_on_cpu_sizes_the_kv_cache_from_allocatable_memory() -> None:
    d = decide_cpu(LLAMA, facts("amx"), NODE, PlanRequest(max_model_len=8192))
    assert (d.precision, d.kv_cache_dtype, d.device, d.native) == ("bf16", "auto", "cpu", True)
    assert d.cpu is not None and d.cpu.cpus == "15"
    pod = int(64 * GIB * 0.92) // 2**20 * 2**20
    assert d.cpu.memory_bytes == pod and d.cpu.memory == f"{pod // 2**20}Mi"
    expected = (pod - d.capacity.weight_bytes - CPU_RUNTIME_BYTES - d.cpu.activation_bytes) // GIB
    assert d.cpu.kv_cache_space_gib == expected == 40
    assert d.capacity.kv_cache_tokens == 40 * GIB // d.capacity.kv_bytes_per_token
    assert "VLLM_CPU_KVCACHE_SPACE=40" in d.reason and "0.92 x the node's allocatable 64.0 GiB" in d.reason


def test_spec_resources_size_the_pod() -> None:
    d = decide_cpu(LLAMA, facts("amx"), CpuNodeSize(64 * GIB, 16, 24 * GIB, "8"), PlanRequest(max_model_len=8192))
    assert d.cpu is not None and (d.cpu.memory, d.cpu.cpus) == ("24576Mi", "8") and d.cpu.kv_cache_space_gib == 5
    with pytest.raises(PlanError, match="1 GiB minimum KV") as err:
        decide_cpu(LLAMA, facts("amx"), CpuNodeSize(64 * GIB, 16, 16 * GIB, None), PlanRequest(max_model_len=8192))
    assert err.value.kind == "does-not-fit"


def test_online_fp8_is_never_planned_on_cpu() -> None:
    with pytest.raises(PlanError, match="cannot quantize to FP8 on the fly") as err:
        decide_cpu(LLAMA, facts("amx"), NODE, PlanRequest(precision="fp8", max_model_len=8192))
    assert err.value.kind == "unsupported"
    fp8 = Checkpoint.calibrated("fp8-dynamic", uri="pvc://ckpt/llama-fp8")
    d = decide_cpu(LLAMA, facts("amx"), NODE, PlanRequest(precision="fp8", max_model_len=8192, checkpoints=(fp8,)))
    assert d.precision == "fp8" and d.quantization_flag is None and not d.native and "AMX BRGEMM" in d.compute


def test_auto_prefers_bf16_and_takes_a_checkpoint_only_when_memory_bound() -> None:
    w4 = Checkpoint.calibrated("w4a16", uri="pvc://ckpt/llama-w4a16", algorithm="gptq")
    fp8 = Checkpoint.calibrated("fp8-dynamic", uri="pvc://ckpt/llama-fp8")
    req = PlanRequest(max_model_len=8192, checkpoints=(fp8, w4))
    assert decide_cpu(LLAMA, facts("avx512"), NODE, req).precision == "bf16"
    small = CpuNodeSize(20 * GIB, 8)
    d = decide_cpu(LLAMA, facts("avx512"), small, req)
    assert d.precision == "fp8" and "Rejected first: bf16" in d.reason
    tiny = CpuNodeSize(13 * GIB, 8)
    assert decide_cpu(LLAMA, facts("avx512"), tiny, req).precision == "w4a16"
    # AVX2 cannot run the W4A16 kernel: with only that checkpoint and no room for BF16, nothing fits
    with pytest.raises(PlanError) as err:
        decide_cpu(LLAMA, facts("avx2"), tiny, PlanRequest(max_model_len=8192, checkpoints=(w4,), base_model=False))
    assert "AVX-512" in err.value.reason and err.value.kind == "unsupported"


def test_fp8_kv_cache_needs_avx512() -> None:
    scales = Checkpoint.calibrated("fp8-dynamic", uri="pvc://ckpt/x", kv_cache_scales=True)
    req = PlanRequest(max_model_len=8192, checkpoints=(scales,), base_model=False)
    assert decide_cpu(LLAMA, facts("amx"), NODE, req).kv_cache_dtype == "fp8_e4m3"
    kept = decide_cpu(LLAMA, facts("avx2"), NODE, req)
    assert kept.kv_cache_dtype == "auto" and any("AVX-512 or AMX" in w for w in kept.warnings)
    with pytest.raises(PlanError, match=r"cpu-cpuid\.AVX512F"):
        decide_cpu(LLAMA, facts("avx2"), NODE, PlanRequest(max_model_len=8192, kv_cache_dtype="fp8_e4m3"))
    # auto goes FP8 when 16-bit cannot hold the expected concurrency, where the CPU takes it
    busy = PlanRequest(max_model_len=8192, concurrency=64)
    assert decide_cpu(LLAMA, facts("amx"), NODE, busy).kv_cache_dtype == "fp8_e4m3"
    assert decide_cpu(LLAMA, facts("avx2"), NODE, busy).kv_cache_dtype == "auto"


def test_models_the_cpu_backend_cannot_load_are_refused() -> None:
    odd = parse_model_config({**json.loads((MODELS / "llama-3.1-8b" / "config.json").read_text()), "head_dim": 16})
    with pytest.raises(PlanError, match="head_dim 16"):
        decide_cpu(odd, facts("amx"), NODE, PlanRequest(max_model_len=8192))
    arm = cpu_facts_from_labels({**nfd_labels_for("avx2"), "kubernetes.io/arch": "arm64"})
    with pytest.raises(PlanError, match="x86_64"):
        decide_cpu(LLAMA, arm, NODE, PlanRequest(max_model_len=8192))
    nvfp4 = Checkpoint.calibrated("nvfp4", "modelopt", "pvc://ckpt/x")
    with pytest.raises(PlanError, match="no CPU kernel"):
        decide_cpu(LLAMA, facts("amx"), NODE, PlanRequest(precision="nvfp4", checkpoints=(nvfp4,)))


def test_published_checkpoint_on_cpu() -> None:
    cfg = json.loads((FP8_PUBLISHED / "config.json").read_text())
    quant = parse_checkpoint_quant(cfg)
    assert quant is not None
    ckpt = Checkpoint.published(quant, "hf://nm-testing/x")
    d = decide_cpu(LLAMA, facts("amx"), NODE, PlanRequest(max_model_len=8192, checkpoints=(ckpt,), base_model=False))
    # per-tensor weights with per-token activations: no AMX kernel, torch's FP8 path
    assert d.kernel == "PerTensorTorchFP8ScaledMMLinearKernel" and d.checkpoint_format == "fp8-w8a8/compressed-tensors"
    with pytest.raises(PlanError, match="never re-quantizes"):
        decide_cpu(LLAMA, facts("amx"), NODE, PlanRequest(precision="bf16", checkpoints=(ckpt,), base_model=False))


# --- the InferenceService core --------------------------------------------------------------------------------------


def service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "svc", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"model": {"uri": "hf://meta-llama/Llama-3.1-8B", "configRef": {"name": "cfg"}}, **spec},
    }


def outcome(obj: dict[str, Any], nodes: list[dict[str, Any]]) -> Any:
    return isvc.outcome(
        obj,
        isvc.ServiceFacts(
            pools=group_pools(nodes),
            configmaps={"cfg": {"data": {"config.json": (MODELS / "llama-3.1-8b" / "config.json").read_text()}}},
            quantized_model=None,
            deployments={},
            vllm_image="vllm/vllm-openai:v0.33.0",
            now="2026-12-02T12:00:00Z",
            vllm_cpu_image="vllm/vllm-openai-cpu:v0.33.0-x86_64",
        ),
    )


CLUSTER = [gpu_node("a10g-0", "A10G", 1), cpu_node("m7i-0", "amx", instance_type="m7i.4xlarge")]


def test_automatic_mode_never_uses_cpu_pools_unless_asked() -> None:
    out = outcome(service(maxModelLen=8192, maxPools=2), CLUSTER)
    assert [d["pool"] for d in out.status["decisions"]] == ["a10g"]
    allowed = outcome(service(maxModelLen=8192, maxPools=2, cpuPools="Allowed"), CLUSTER)
    # CPU pools rank after every GPU pool
    assert [(d["pool"], d.get("device")) for d in allowed.status["decisions"]] == [
        ("a10g", None),
        ("cpu-m7i-4xlarge", "cpu"),
    ]
    only = outcome(service(maxModelLen=8192, maxPools=2, cpuPools="Only"), CLUSTER)
    assert [d["pool"] for d in only.status["decisions"]] == ["cpu-m7i-4xlarge"]
    dep = next(o for o in only.apply if o["kind"] == "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai-cpu:v0.33.0-x86_64"


def test_cpu_pools_only_without_cpu_nodes_is_refused() -> None:
    out = outcome(service(maxModelLen=8192, cpuPools="Only"), [gpu_node("h100-0", "H100-SXM")])
    planned = conditions_of(out)["Planned"]
    assert planned.reason == "CannotHonour" and "no CPU pool" in planned.message and not out.apply


def test_default_cpu_pools_does_not_change_the_plan_hash() -> None:
    """An operator upgrade must not re-plan running services: cpuPools at its default stays out of the hash."""
    a = outcome(service(maxModelLen=8192), CLUSTER).status["planHash"]
    b = outcome(service(maxModelLen=8192, cpuPools="Never"), CLUSTER).status["planHash"]
    c = outcome(service(maxModelLen=8192, cpuPools="Allowed"), CLUSTER).status["planHash"]
    assert a == b != c


def test_pinned_cpu_pool_that_lost_memory_is_degraded() -> None:
    first = outcome(service(maxModelLen=8192, cpuPools="Only"), CLUSTER)
    obj = service(maxModelLen=8192, cpuPools="Only")
    obj["status"] = first.status
    shrunk = [CLUSTER[0], cpu_node("m7i-0", "amx", instance_type="m7i.4xlarge", memory="32Gi")]
    again = outcome(obj, shrunk)
    degraded = conditions_of(again)["Degraded"]
    assert degraded.status == "True" and "allocatable memory" in degraded.message
    # the decision is kept: no silent re-plan
    assert again.status["decisions"][0]["memory"] == first.status["decisions"][0]["memory"]


def test_overlapping_automatic_cpu_pools_never_share_nodes() -> None:
    # m7i-0 is in both cpu-m7i-4xlarge (instance type) and cpu-amx (NFD label); spr-0 only in cpu-amx
    nodes = [cpu_node("m7i-0", "amx", instance_type="m7i.4xlarge"), cpu_node("spr-0", "amx")]
    out = outcome(service(maxModelLen=8192, maxPools=4, cpuPools="Only"), nodes)
    pools = [d["pool"] for d in out.status["decisions"]]
    assert len(pools) == 1 and pools[0] in ("cpu-amx", "cpu-m7i-4xlarge"), pools
