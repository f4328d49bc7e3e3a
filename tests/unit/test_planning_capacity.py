"""Capacity planner on the shared configs, with every expected number written out as its formula.

h = hidden, L = layers, H = heads, kv = KV heads, d = head_dim, i = dense intermediate, m = expert intermediate,
E = experts, k = experts per token, V = vocab.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from quantfleet.planning import count_parameters, estimate_capacity, kv_bytes_per_token, parse_model_config
from quantfleet.planning.capacity import (
    CUDA_GRAPH_BYTES,
    GIB,
    MIB,
    RUNTIME_BYTES,
    activation_bytes,
    batch_defaults,
    fit_tensor_parallel,
    kv_bytes_per_token_per_layer,
    sequence_kv_bytes,
    tensor_parallel_constraint,
    weight_bytes,
)
from quantfleet.planning.model import ModelArch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
H100_MIB = 81559  # GFD nvidia.com/gpu.memory for H100 80GB HBM3


def arch(name: str) -> ModelArch:
    cfg: dict[str, Any] = json.loads((FIXTURES / name / "config.json").read_text())
    return parse_model_config(cfg)


def attention(h: int, H: int, kv: int, d: int) -> int:
    return h * H * d + 2 * h * kv * d + H * d * h  # q, k, v, o


# --- parameter counts ------------------------------------------------------------------------------------------

# Llama-3.1-8B: h=4096 L=32 H=32 kv=8 d=128 i=14336 V=128256, untied
LLAMA_8B = 2 * 128256 * 4096 + 32 * (attention(4096, 32, 8, 128) + 3 * 4096 * 14336 + 2 * 4096) + 4096
# Llama-3.1-70B: h=8192 L=80 H=64 kv=8 d=128 i=28672
LLAMA_70B = 2 * 128256 * 8192 + 80 * (attention(8192, 64, 8, 128) + 3 * 8192 * 28672 + 2 * 8192) + 8192
# Mixtral-8x7B: h=4096 L=32 E=8 k=2 m=14336 V=32000; router h*E per layer
MIXTRAL = 2 * 32000 * 4096 + 32 * (attention(4096, 32, 8, 128) + 8 * 3 * 4096 * 14336 + 4096 * 8 + 2 * 4096) + 4096
MIXTRAL_ACTIVE = MIXTRAL - 32 * (8 - 2) * 3 * 4096 * 14336
# Qwen3-30B-A3B: h=2048 L=48 H=32 kv=4 d=128 E=128 k=8 m=768 V=151936; q_norm + k_norm (d each) per layer
QWEN3 = (
    2 * 151936 * 2048
    + 48 * (attention(2048, 32, 4, 128) + 128 * 3 * 2048 * 768 + 2048 * 128 + 2 * 2048 + 2 * 128)
    + 2048
)
QWEN3_ACTIVE = QWEN3 - 48 * (128 - 8) * 3 * 2048 * 768
# Trinity-mini (afmoe): h=2048 L=32 H=32 kv=4 d=128; 2 dense layers i=6144; 30 MoE layers E=128 k=8 m=1024
# + 1 shared expert (m=1024); V=200192
TRINITY = (
    2 * 200192 * 2048
    + 32 * (attention(2048, 32, 4, 128) + 2 * 2048)
    + 2 * 3 * 2048 * 6144
    + 30 * (128 * 3 * 2048 * 1024 + 1 * 3 * 2048 * 1024 + 2048 * 128)
    + 2048
)
TRINITY_ACTIVE = TRINITY - 30 * (128 - 8) * 3 * 2048 * 1024


@pytest.mark.parametrize(
    ("name", "total", "active", "total_b"),
    [
        ("llama-3.1-8b", LLAMA_8B, LLAMA_8B, 8.03),
        ("llama-3.1-70b", LLAMA_70B, LLAMA_70B, 70.55),
        ("mixtral-8x7b", MIXTRAL, MIXTRAL_ACTIVE, 46.70),
        ("qwen3-30b-a3b", QWEN3, QWEN3_ACTIVE, 30.53),
        ("trinity-mini", TRINITY, TRINITY_ACTIVE, 25.86),
    ],
)
def test_parameter_counts(name: str, total: int, active: int, total_b: float) -> None:
    params = count_parameters(arch(name))
    assert params.total == total
    assert params.active == active
    assert round(total / 1e9, 2) == total_b  # the model cards: 8.03B, 70.6B, 46.7B, 30.5B, ~26B


def test_model_card_active_parameters() -> None:
    assert round(MIXTRAL_ACTIVE / 1e9, 1) == 12.9  # Mixtral: "12.9B active"
    assert round(QWEN3_ACTIVE / 1e9, 1) == 3.4  # Qwen3-30B-A3B: 3.3B activated (embeddings + lm_head included)
    assert 3.0e9 < TRINITY_ACTIVE < 3.3e9  # Trinity-mini: ~3B active


def test_tied_embeddings_drop_lm_head() -> None:
    cfg = json.loads((FIXTURES / "llama-3.1-8b" / "config.json").read_text())
    cfg["tie_word_embeddings"] = True
    assert count_parameters(parse_model_config(cfg)).total == LLAMA_8B - 128256 * 4096


DEEPSEEK_V3 = {
    "model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "n_routed_experts": 256,
    "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1,
    "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "vocab_size": 129280, "max_position_embeddings": 163840, "tie_word_embeddings": False,
}  # fmt: skip


def test_mla_parameters_deepseek_v3() -> None:
    a = parse_model_config(DEEPSEEK_V3)
    h, heads, L = 7168, 128, 61
    mla = (h * 1536 + 1536 * heads * (128 + 64) + 1536) + (h * (512 + 64) + 512) + 512 * heads * (128 + 128)
    mla += heads * 128 * h
    dense = 3 * 3 * h * 18432
    moe = 58 * (256 * 3 * h * 2048 + 3 * h * 2048 + h * 256)
    total = 2 * 129280 * h + L * (mla + 2 * h) + dense + moe + h
    assert count_parameters(a).total == total
    assert round(total / 1e9) == 671  # DeepSeek-V3: 671B without the MTP module
    # KV: one latent (kv_lora_rank + rope dims) per token and layer, no factor 2
    assert kv_bytes_per_token(a, "bfloat16") == 61 * (512 + 64) * 2


# --- KV cache --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "per_token"),
    [
        ("llama-3.1-8b", 2 * 32 * 8 * 128 * 2),  # = 131072
        ("llama-3.1-70b", 2 * 80 * 8 * 128 * 2),  # = 327680
        ("mixtral-8x7b", 2 * 32 * 8 * 128 * 2),
        ("qwen3-30b-a3b", 2 * 48 * 4 * 128 * 2),  # = 98304
        ("trinity-mini", 2 * 32 * 4 * 128 * 2),  # = 65536, every layer as if full attention
    ],
)
def test_kv_bytes_per_token(name: str, per_token: int) -> None:
    a = arch(name)
    assert kv_bytes_per_token(a, "bfloat16") == per_token
    assert kv_bytes_per_token(a, "fp8_e4m3") == per_token // 2


def test_known_values() -> None:
    assert kv_bytes_per_token(arch("llama-3.1-8b"), "bfloat16") == 131072
    assert kv_bytes_per_token(arch("llama-3.1-70b"), "bfloat16") == 327680


def test_sliding_window_layers_cost_only_the_window() -> None:
    a = arch("trinity-mini")
    per_layer = 2 * 4 * 128 * 2
    # 8 full layers pay every token; 24 sliding layers hold window - 1 + in-flight tokens (vLLM SlidingWindowSpec)
    assert sequence_kv_bytes(a, "bfloat16", 131072) == per_layer * (8 * 131072 + 24 * (2048 - 1))
    assert sequence_kv_bytes(a, "bfloat16", 131072, 1, 8192) == per_layer * (8 * 131072 + 24 * (2048 - 1 + 8192))
    assert sequence_kv_bytes(a, "bfloat16", 1000, 1, 8192) == per_layer * 32 * 1000  # shorter: every layer
    est = estimate_capacity(a, weight_format="bf16", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB)
    assert est.sliding_cap_bytes == 24 * per_layer * (2048 - 1 + 8192)  # H100: 8192 batched tokens in flight
    assert est.kv_bytes_per_token == 32 * per_layer
    seq = per_layer * (8 * 131072 + 24 * (2048 - 1 + 8192))
    assert est.kv_cache_tokens == est.kv_cache_bytes_per_gpu * 131072 // seq  # vLLM: concurrency x max_model_len
    assert est.kv_cache_tokens > est.kv_cache_bytes_per_gpu // (32 * per_layer)  # more than all-full-attention


@pytest.mark.parametrize(
    ("tp", "per_gpu"),
    [
        (1, 2 * 4 * 128 * 2),
        (2, 2 * 2 * 128 * 2),
        (4, 2 * 1 * 128 * 2),
        (8, 2 * 1 * 128 * 2),  # kv_heads 4 < TP 8: each GPU keeps a replica of one head
    ],
)
def test_tensor_parallel_shards_then_replicates_kv_heads(tp: int, per_gpu: int) -> None:
    assert kv_bytes_per_token_per_layer(arch("qwen3-30b-a3b"), "bfloat16", tp) == per_gpu


# --- weights ---------------------------------------------------------------------------------------------------


def test_llama_8b_weight_bytes_per_format() -> None:
    a = arch("llama-3.1-8b")
    bf16_part = 2 * (2 * 128256 * 4096 + 32 * 2 * 4096 + 4096)  # embeddings, lm_head, norms stay BF16
    linear = 32 * (attention(4096, 32, 8, 128) + 3 * 4096 * 14336)
    out_channels = 32 * (4096 + 1024 + 1024 + 4096 + 14336 + 14336 + 4096)  # q k v o gate up down rows
    assert weight_bytes(a, "bf16").total == 2 * LLAMA_8B
    # FP8: 1 byte per element + an FP32 scale per output channel
    assert weight_bytes(a, "fp8").total == bf16_part + linear + 4 * out_channels
    # W4A16: half a byte per element + an FP16 scale per 128-element group of every row
    groups = 32 * (32 * (4096 + 1024 + 1024 + 4096 + 14336 + 14336) + 4096 * (14336 // 128))
    assert weight_bytes(a, "w4a16").total == bf16_part + linear // 2 + 2 * groups
    # FP8 block: FP32 per 128x128 block
    blocks = 32 * (32 * 32 + 8 * 32 + 8 * 32 + 32 * 32 + 112 * 32 * 2 + 32 * 112)
    assert weight_bytes(a, "fp8-block").total == bf16_part + linear + 4 * blocks
    # NVFP4 on a dense model: attention quantized too; 1 E4M3 byte per 16 elements + 2 FP32 per tensor
    assert weight_bytes(a, "nvfp4").total == bf16_part + linear // 2 + linear // 16 + 8 * 32 * 7
    # MXFP4: 1 E8M0 byte per 32 elements
    assert weight_bytes(a, "mxfp4").total == bf16_part + linear // 2 + linear // 32


def test_four_bit_moe_is_mlp_only_by_default() -> None:
    a = arch("qwen3-30b-a3b")
    nvfp4 = weight_bytes(a, "nvfp4")
    assert "attention" in nvfp4.bf16_roles and "router" in nvfp4.bf16_roles
    assert nvfp4.quantized_roles == ("expert",)
    assert nvfp4.by_role["attention"] == 2 * 48 * attention(2048, 32, 4, 128)
    assert "attention" in weight_bytes(a, "nvfp4", quantize_attention=True).quantized_roles
    assert "attention" in weight_bytes(a, "w4a16").quantized_roles  # weight-only INT4 keeps the usual recipe
    assert "attention" in weight_bytes(arch("llama-3.1-8b"), "nvfp4").quantized_roles  # dense: all linears


def test_fp8_roughly_halves_the_weights() -> None:
    for name in ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen3-30b-a3b", "trinity-mini"):
        a = arch(name)
        ratio = weight_bytes(a, "fp8").total / weight_bytes(a, "bf16").total
        assert 0.5 < ratio < 0.6, name


# --- vLLM memory model -----------------------------------------------------------------------------------------


def test_vllm_batch_defaults() -> None:
    assert batch_defaults(H100_MIB, "H100-SXM") == (8192, 1024)  # >= 70 GiB and not A100
    assert batch_defaults(81920, "A100-80GB") == (2048, 256)
    assert batch_defaults(46068, "L40S") == (2048, 256)


def test_llama_8b_on_one_h100_bf16_arithmetic() -> None:
    a = arch("llama-3.1-8b")
    est = estimate_capacity(a, weight_format="bf16", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB)
    budget = math.ceil(H100_MIB * MIB * 0.92)
    act = 8192 * (4 * 4096 + 3 * 14336) * 2 + 1024 * 128256 * 4 * 2  # batched tokens + FP32 logits of 1024 seqs
    assert activation_bytes(a, 1, 8192, 1024) == act
    kv = budget - 2 * LLAMA_8B - act - CUDA_GRAPH_BYTES - RUNTIME_BYTES
    assert est.kv_cache_gib == round(kv / GIB, 2)
    assert est.kv_cache_tokens == kv // 131072  # full attention: KV bytes / bytes per token
    assert est.max_concurrency == math.floor(kv / (131072 * 131072) * 100) / 100  # at max_model_len 131072
    assert est.fits and est.tensor_parallel_size == 1
    assert est.weights_gib == round(2 * LLAMA_8B / GIB, 2) == 14.96


def test_fp8_kv_doubles_token_capacity() -> None:
    a = arch("llama-3.1-8b")
    bf16 = estimate_capacity(a, weight_format="fp8", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB)
    fp8 = estimate_capacity(a, weight_format="fp8", kv_cache_dtype="fp8_e4m3", gpu_memory_mib=H100_MIB)
    assert fp8.kv_cache_gib == bf16.kv_cache_gib
    assert fp8.kv_cache_tokens in (2 * bf16.kv_cache_tokens, 2 * bf16.kv_cache_tokens + 1)


def test_utilization_scales_the_budget() -> None:
    a = arch("llama-3.1-8b")
    hi = estimate_capacity(a, weight_format="bf16", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB)
    lo = estimate_capacity(
        a, weight_format="bf16", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB, gpu_memory_utilization=0.5
    )
    assert round(hi.kv_cache_gib - lo.kv_cache_gib, 1) == round(H100_MIB / 1024 * (0.92 - 0.5), 1)


def test_does_not_fit_reasons_carry_numbers() -> None:
    a = arch("llama-3.1-70b")
    est = estimate_capacity(a, weight_format="bf16", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB)
    assert not est.fits and "131.42 GiB/GPU" in est.reason and "exceed" in est.reason
    short = estimate_capacity(
        a, weight_format="fp8", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB, max_model_len=131072
    )
    assert not short.fits and "max_model_len=131072" in short.reason


# --- tensor parallelism ----------------------------------------------------------------------------------------


def test_smallest_tensor_parallel_that_fits() -> None:
    a = arch("llama-3.1-70b")
    # BF16 weights 131.4 GiB: TP=2 leaves 73.3 - 65.7 - non-KV < one 131072-token sequence (20 GiB/GPU) -> TP=4
    est, reason = fit_tensor_parallel(
        a, gpus_per_node=8, weight_format="bf16", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB
    )
    assert est is not None and est.fits and est.tensor_parallel_size == 4, reason
    none, why = fit_tensor_parallel(
        a, gpus_per_node=2, weight_format="bf16", kv_cache_dtype="bfloat16", gpu_memory_mib=H100_MIB
    )
    assert none is not None and not none.fits
    assert "TP=1" in why and "TP=2" in why


def test_tensor_parallel_constraints() -> None:
    qwen = arch("qwen3-30b-a3b")
    # FP8 block 128: expert intermediate 768 / 8 = 96 is not a multiple of 128
    assert tensor_parallel_constraint(qwen, "fp8-block", 8) is not None
    assert tensor_parallel_constraint(qwen, "fp8-block", 4) is not None  # 768 / 4 = 192, 192 % 128 = 64
    assert tensor_parallel_constraint(qwen, "fp8-block", 2) is None  # 768 / 2 = 384 = 3 x 128
    assert tensor_parallel_constraint(qwen, "fp8", 8) is None
    cfg = json.loads((FIXTURES / "llama-3.1-8b" / "config.json").read_text())
    cfg.update(num_attention_heads=28, num_key_value_heads=4, hidden_size=3584)  # Qwen2.5-7B shape
    odd = parse_model_config(cfg)
    assert "does not divide 28 attention heads" in (tensor_parallel_constraint(odd, "bf16", 8) or "")


SCOUT_TEXT = {
    "model_type": "llama4_text", "hidden_size": 5120, "num_hidden_layers": 48, "num_attention_heads": 40,
    "num_key_value_heads": 8, "head_dim": 128, "num_local_experts": 16, "num_experts_per_tok": 1,
    "intermediate_size": 8192, "intermediate_size_mlp": 16384, "interleave_moe_layer_step": 1, "vocab_size": 202048,
    "max_position_embeddings": 10485760, "tie_word_embeddings": False,
}  # fmt: skip


@pytest.mark.parametrize(
    ("experts", "step", "total_b", "active_b"),
    [(16, 1, 108, 17.2), (128, 2, 401, 17.2)],  # model cards: Scout 109B (with vision) / Maverick 400B, 17B active
)
def test_llama4_text_configs(experts: int, step: int, total_b: int, active_b: float) -> None:
    cfg = {"model_type": "llama4", "text_config": {**SCOUT_TEXT, "num_local_experts": experts,
                                                   "interleave_moe_layer_step": step}}  # fmt: skip
    h, moe_layers = 5120, 48 // step
    per_moe = experts * 3 * h * 8192 + 3 * h * 8192 + h * experts  # routed experts + 1 shared expert + router
    total = (
        2 * 202048 * h
        + 48 * (attention(h, 40, 8, 128) + 2 * h)
        + moe_layers * per_moe
        + (48 - moe_layers) * 3 * h * 16384  # dense layers use intermediate_size_mlp
        + h
    )
    active = total - moe_layers * (experts - 1) * 3 * h * 8192
    params = count_parameters(parse_model_config(cfg))
    assert (params.total, params.active) == (total, active)
    assert round(total / 1e9) == total_b and round(active / 1e9, 1) == active_b


def test_gpt_oss_120b() -> None:
    cfg = {
        "model_type": "gpt_oss", "hidden_size": 2880, "num_hidden_layers": 36, "num_attention_heads": 64,
        "num_key_value_heads": 8, "head_dim": 64, "num_local_experts": 128, "experts_per_token": 4,
        "intermediate_size": 2880, "vocab_size": 201088, "max_position_embeddings": 131072, "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"] * 18, "tie_word_embeddings": False,
    }  # fmt: skip
    a = parse_model_config(cfg)
    h = 2880
    total = 2 * 201088 * h + 36 * (attention(h, 64, 8, 64) + 128 * 3 * h * 2880 + h * 128 + 2 * h) + h
    assert count_parameters(a).total == total
    assert round(total / 1e9) == 117  # model card: 117B (biases and attention sinks, ~0.04B, are not counted)
    # 18 full + 18 sliding layers; a sliding layer keeps at most 128 - 1 + in-flight tokens
    per_layer = 2 * 8 * 64 * 2
    assert sequence_kv_bytes(a, "bfloat16", 131072, 1, 2048) == per_layer * (18 * 131072 + 18 * (127 + 2048))
    # MXFP4 MoE is MLP-only: attention stays BF16, experts at 0.5 + 1/32 bytes per element
    mx = weight_bytes(a, "mxfp4")
    experts = 36 * 128 * 3 * h * 2880
    assert mx.by_role["expert"] == experts // 2 + experts // 32
    assert mx.by_role["attention"] == 2 * 36 * attention(h, 64, 8, 64)
