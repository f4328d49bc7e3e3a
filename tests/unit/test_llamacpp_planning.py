"""The llama.cpp planner (GGUF checkpoints on CPU pools and small GPUs) and the GGUF calibration placement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantfleet.api.gguf import GGUF_SCHEMES, as_gguf
from quantfleet.hardware import gpu_facts_from_labels, node_labels_for
from quantfleet.hardware.pools import group_pools
from quantfleet.planning import PlanError, PlanRequest, parse_model_config
from quantfleet.planning.capacity import GIB, count_parameters, kv_bytes_per_token
from quantfleet.planning.cpu import CpuNodeSize
from quantfleet.planning.llamacpp import decide_llamacpp, gguf_weight_bytes
from quantfleet.planning.placement import choose_gguf_pool
from quantfleet_dev.testing import cpu_node, gpu_node

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
LLAMA_8B = parse_model_config(json.loads((MODELS / "llama-3.1-8b" / "config.json").read_text()))
LLAMA_70B = parse_model_config(json.loads((MODELS / "llama-3.1-70b" / "config.json").read_text()))


def gpu(key: str):  # type: ignore[no-untyped-def]
    facts = gpu_facts_from_labels(node_labels_for(key, 1))
    assert facts is not None
    return facts


def test_gguf_sizes_follow_bits_per_weight() -> None:
    params = count_parameters(LLAMA_8B).total
    q4 = gguf_weight_bytes(LLAMA_8B, "gguf-q4_k_m")
    q8 = gguf_weight_bytes(LLAMA_8B, "gguf-q8_0")
    assert q4 < gguf_weight_bytes(LLAMA_8B, "gguf-q5_k_m") < q8 < params * 2
    # llama.cpp's own table: Llama-3-8B Q4_K_M 4.58 GiB, Q8_0 7.96 GiB (within 3%: 3.1 vs 3.0 parameter counts)
    assert q4 / GIB == pytest.approx(4.58, rel=0.03)
    assert q8 / GIB == pytest.approx(7.96, rel=0.03)
    assert [as_gguf(s) for s in GGUF_SCHEMES] == list(GGUF_SCHEMES)
    assert as_gguf("fp8-dynamic") is None


def test_every_layer_on_a_gpu_that_holds_the_model() -> None:
    d = decide_llamacpp(LLAMA_8B, "gguf-q4_k_m", PlanRequest(max_model_len=8192, concurrency=4), gpu=gpu("L4"))
    assert d.device == "gpu" and d.native and not d.warnings
    assert d.gpu_layers == LLAMA_8B.num_layers + 1
    assert d.kv_cache_dtype == "f16" and d.tensor_parallel_size == 1 and d.quantization_flag is None
    # llama-server allocates --ctx-size = slots x max_model_len up front, 16-bit
    assert d.capacity.kv_cache_tokens == 4 * 8192
    assert d.capacity.kv_cache_bytes_per_gpu == 4 * 8192 * kv_bytes_per_token(LLAMA_8B, "float16")
    assert d.checkpoint_format == "Q4_K_M/gguf" and "every layer on the GPU" in d.compute
    assert "L4" in d.reason and "Q4_K_M" in d.reason


def test_a_small_gpu_offloads_the_layers_that_fit_and_says_so() -> None:
    d = decide_llamacpp(LLAMA_70B, "gguf-q4_k_m", PlanRequest(max_model_len=4096), gpu=gpu("T4"))
    assert d.gpu_layers is not None and 1 <= d.gpu_layers < LLAMA_70B.num_layers
    assert not d.native
    assert any("layers fit on the GPU" in w and "CPUs" in w for w in d.warnings)
    # more memory, more layers
    more = decide_llamacpp(LLAMA_70B, "gguf-q4_k_m", PlanRequest(max_model_len=4096), gpu=gpu("A10G"))
    assert more.gpu_layers is not None and more.gpu_layers > d.gpu_layers


def test_not_one_layer_fits_is_refused() -> None:
    with pytest.raises(PlanError) as err:
        # 128 slots of 128k tokens: the KV cache alone is far larger than any GPU
        decide_llamacpp(LLAMA_70B, "gguf-q8_0", PlanRequest(max_model_len=131072, concurrency=128), gpu=gpu("T4"))
    assert err.value.kind == "does-not-fit" and "not one layer fits" in str(err.value)


def test_cpu_pool_sized_like_vllm_cpu_pods() -> None:
    node = CpuNodeSize(memory_bytes=64 * GIB, cpus=16)
    d = decide_llamacpp(LLAMA_8B, "gguf-q4_k_m", PlanRequest(max_model_len=8192), cpu=("m7i", node))
    assert d.device == "cpu" and d.gpu_layers == 0 and d.cpu is not None
    need = d.capacity.weight_bytes + d.capacity.kv_cache_bytes_per_gpu + d.cpu.activation_bytes + d.cpu.runtime_bytes
    assert d.cpu.cpus == "15" and need * 1.2 <= d.cpu.memory_bytes < need * 1.2 + 2**20  # what it needs, not the node
    sized = decide_llamacpp(
        LLAMA_8B, "gguf-q4_k_m", PlanRequest(max_model_len=8192), cpu=("m7i", CpuNodeSize(64 * GIB, 16, 12 * GIB, "8"))
    )
    assert sized.cpu is not None and (sized.cpu.memory_bytes, sized.cpu.cpus) == (12 * GIB, "8")  # the spec's
    assert "CPU kernels" in d.compute
    small = CpuNodeSize(memory_bytes=4 * GIB, cpus=4)
    with pytest.raises(PlanError) as err:
        decide_llamacpp(LLAMA_8B, "gguf-q8_0", PlanRequest(max_model_len=8192), cpu=("tiny", small))
    assert err.value.kind == "does-not-fit" and "tiny" in str(err.value)


def test_gguf_precision_and_kv_are_not_negotiable() -> None:
    with pytest.raises(PlanError, match="served in its own format"):
        decide_llamacpp(LLAMA_8B, "gguf-q8_0", PlanRequest(precision="fp8"), gpu=gpu("L4"))
    with pytest.raises(PlanError, match="16-bit"):
        decide_llamacpp(LLAMA_8B, "gguf-q8_0", PlanRequest(kv_cache_dtype="fp8_e4m3"), gpu=gpu("L4"))
    with pytest.raises(PlanError, match="max_position_embeddings"):
        decide_llamacpp(LLAMA_8B, "gguf-q8_0", PlanRequest(max_model_len=10**7), gpu=gpu("L4"))


def test_gguf_calibration_runs_on_the_largest_cpu_pool() -> None:
    cluster = group_pools(
        [
            gpu_node("h100-0", "H100-SXM", 8),
            cpu_node("small-0", "avx2", memory="16Gi", instance_type="c7i.2xlarge"),
            cpu_node("big-0", "amx", memory="256Gi", instance_type="m7i.16xlarge"),
        ]
    )
    bf16 = 16 * GIB
    placed = choose_gguf_pool(cluster, bf16)
    assert placed.pool is not None and placed.pool.name == "cpu-m7i-16xlarge"
    assert placed.memory_bytes == int(bf16 * 1.25) and "run on CPUs" in placed.reason
    too_big = choose_gguf_pool(cluster, 1024 * GIB)
    assert too_big.pool is None and "cpu-m7i-16xlarge" in too_big.reason
    gpu_only = choose_gguf_pool(group_pools([gpu_node("h100-0", "H100-SXM", 8)]), bf16)
    assert gpu_only.pool is None and "no usable CPU pool" in gpu_only.reason
