"""parse_model_config on real published HF configs (tests/fixtures/models) and on synthetic configs for every
family spelling; ConfigError paths; router ignore patterns per family."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from quantfleet.planning import ConfigError, parse_model_config, router_ignore_patterns
from quantfleet.planning.model import router_patterns_known

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
MODELS = ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen3-30b-a3b", "trinity-mini")


def load(name: str) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads((FIXTURES / name / "config.json").read_text())
    return cfg


# name, hidden, layers, heads, kv heads, head_dim, vocab, experts, top-k, expert intermediate, shared intermediate,
# MoE layers, full-attention layers, sliding layers, window
EXPECTED = [
    ("llama-3.1-8b", 4096, 32, 32, 8, 4096 // 32, 128256, 0, 0, 0, 0, 0, 32, 0, None),
    ("llama-3.1-70b", 8192, 80, 64, 8, 8192 // 64, 128256, 0, 0, 0, 0, 0, 80, 0, None),
    # Mixtral: no moe_intermediate_size -> the expert size is intermediate_size
    ("mixtral-8x7b", 4096, 32, 32, 8, 128, 32000, 8, 2, 14336, 0, 32, 32, 0, None),
    # Qwen3: explicit head_dim 128 wins over hidden/heads = 2048/32 = 64; decoder_sparse_step 1 -> every layer MoE
    ("qwen3-30b-a3b", 2048, 48, 32, 4, 128, 151936, 128, 8, 768, 0, 48, 48, 0, None),
    # Trinity (afmoe): 2 dense layers -> 32 - 2 = 30 MoE layers; 1 shared expert of 1024; every 4th layer full
    ("trinity-mini", 2048, 32, 32, 4, 128, 200192, 128, 8, 1024, 1 * 1024, 32 - 2, 32 // 4, 32 - 32 // 4, 2048),
]


@pytest.mark.parametrize(
    (
        "name",
        "hidden",
        "layers",
        "heads",
        "kv",
        "hd",
        "vocab",
        "experts",
        "top_k",
        "moe_i",
        "shared_i",
        "moe_layers",
        "full",
        "sliding",
        "window",
    ),
    EXPECTED,
)
def test_shared_configs(
    name: str, hidden: int, layers: int, heads: int, kv: int, hd: int, vocab: int, experts: int, top_k: int,
    moe_i: int, shared_i: int, moe_layers: int, full: int, sliding: int, window: int | None,
) -> None:  # fmt: skip
    arch = parse_model_config(load(name))
    assert (arch.hidden_size, arch.num_layers, arch.num_attention_heads) == (hidden, layers, heads)
    assert (arch.num_kv_heads, arch.head_dim, arch.vocab_size) == (kv, hd, vocab)
    assert (arch.num_experts, arch.experts_per_token, arch.moe_intermediate_size) == (experts, top_k, moe_i)
    assert arch.shared_expert_intermediate_size == shared_i
    assert arch.num_moe_layers == moe_layers
    assert arch.num_dense_layers == layers - moe_layers
    assert arch.is_moe == (experts > 0)
    assert (arch.num_full_attention_layers, arch.num_sliding_layers, arch.sliding_window) == (full, sliding, window)
    assert arch.tie_word_embeddings is False


def test_trinity_dense_layers_are_the_first_two() -> None:
    arch = parse_model_config(load("trinity-mini"))
    assert arch.moe_layer_mask[:3] == (False, False, True)
    assert arch.layer_types[3] == "full_attention" and arch.layer_types[0] == "sliding_attention"


LLAMA = load("llama-3.1-8b")


def variant(base: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    cfg = dict(base or LLAMA)
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def test_mha_defaults_kv_heads_to_heads_and_tied_embeddings() -> None:
    arch = parse_model_config(variant(num_key_value_heads=None, tie_word_embeddings=True))
    assert arch.num_kv_heads == 32
    assert arch.tie_word_embeddings is True


def test_decoder_sparse_step_and_mlp_only_layers() -> None:
    qwen = load("qwen3-30b-a3b")
    # step 2: layers 1, 3, 5, ... are MoE ((i + 1) % 2 == 0); then layer 1 forced dense by mlp_only_layers
    arch = parse_model_config(variant(qwen, decoder_sparse_step=2, mlp_only_layers=[1]))
    assert arch.moe_layer_mask[:4] == (False, False, False, True)
    assert arch.num_moe_layers == 48 // 2 - 1


def test_first_k_dense_replace_and_shared_expert_intermediate_size() -> None:
    cfg = variant(load("qwen3-30b-a3b"), model_type="qwen2_moe", first_k_dense_replace=3,
                  shared_expert_intermediate_size=5632)  # fmt: skip
    arch = parse_model_config(cfg)
    assert arch.num_dense_layers == 3
    assert arch.shared_expert_intermediate_size == 5632
    assert arch.shared_expert_gate is True  # qwen2_moe gates its shared expert


@pytest.mark.parametrize(
    ("changes", "sliding_layers"),
    [
        ({"sliding_window": 4096}, 32),  # Mistral-style: every layer
        ({"sliding_window": 4096, "use_sliding_window": False}, 0),  # Qwen2-style switch off
        ({"sliding_window": 4096, "max_window_layers": 28}, 32 - 28),  # layers >= 28 slide
        ({"sliding_window": 1024, "sliding_window_pattern": 6}, 32 - 32 // 6),  # Gemma-3: every 6th is global
        ({"sliding_window": 2048, "global_attn_every_n_layers": 4}, 32 - 32 // 4),
        ({"sliding_window": None}, 0),
    ],
)
def test_sliding_window_spellings(changes: dict[str, Any], sliding_layers: int) -> None:
    arch = parse_model_config(variant(**changes))
    assert arch.num_sliding_layers == sliding_layers
    assert arch.num_full_attention_layers == 32 - sliding_layers


def test_text_config_is_used_for_multimodal_configs() -> None:
    outer = {"model_type": "llava", "text_config": LLAMA, "vision_config": {"hidden_size": 1024}}
    assert parse_model_config(outer).hidden_size == 4096


DEEPSEEK_V3 = {
    "model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "n_routed_experts": 256,
    "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1,
    "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "vocab_size": 129280, "max_position_embeddings": 163840, "tie_word_embeddings": False,
}  # fmt: skip


def test_mla_and_deepseek_spellings() -> None:
    arch = parse_model_config(DEEPSEEK_V3)
    assert arch.mla is not None and arch.mla.kv_lora_rank == 512
    assert (arch.num_experts, arch.num_dense_layers, arch.num_shared_experts) == (256, 3, 1)
    assert arch.shared_expert_intermediate_size == 1 * 2048


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (variant(hidden_size=None), "'hidden_size'"),
        (variant(num_hidden_layers="32"), "'num_hidden_layers' must be an integer"),
        (variant(num_attention_heads=True), "'num_attention_heads' must be an integer"),
        (variant(vocab_size=0), "'vocab_size' must be positive"),
        (variant(num_key_value_heads=5), "not a multiple of num_key_value_heads"),
        (variant(hidden_size=4100), "not divisible"),
        (variant(model_type=None), "'model_type'"),
        (variant(max_position_embeddings=None), "'max_position_embeddings'"),
        (variant(intermediate_size=None), "'intermediate_size'"),
        (variant(tie_word_embeddings="no"), "tie_word_embeddings"),
        (variant(num_local_experts=8), "num_experts_per_tok"),
        (variant(num_local_experts=8, num_experts_per_tok=9), "exceeds"),
        (variant(layer_types=["full_attention"] * 31), "one type per layer"),
        (variant(layer_types=["mamba"] * 32), "unknown layer type"),
        (variant(layer_types=["sliding_attention"] * 32), "no 'sliding_window'"),
        (variant(layer_types=["linear_attention"] * 32), "no attention layer with a KV cache"),
        (variant(load("qwen3-30b-a3b"), mlp_only_layers=list(range(48))), "no layer is a MoE layer"),
        (variant(load("qwen3-30b-a3b"), mlp_only_layers=[99]), "not a layer index"),
        (variant(load("trinity-mini"), num_dense_layers=40), "dense layers but only"),
    ],
)
def test_config_errors_name_the_field(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_model_config(cfg)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="JSON object"):
        parse_model_config([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cfg", "patterns"),
    [
        (load("llama-3.1-8b"), ("lm_head",)),
        (load("qwen3-30b-a3b"), ("lm_head", "re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$")),
        (load("mixtral-8x7b"), ("lm_head", "re:.*block_sparse_moe.gate$", "re:.*mlp.gate$")),
        (load("trinity-mini"), ("lm_head", "re:.*mlp.router.*")),
        (DEEPSEEK_V3, ("lm_head", "re:.*mlp.gate$")),
        (variant(DEEPSEEK_V3, model_type="glm4_moe"), ("lm_head", "re:.*mlp.gate$")),
        (variant(load("mixtral-8x7b"), model_type="gpt_oss"), ("lm_head", "re:.*router")),
        (variant(load("mixtral-8x7b"), model_type="llama4_text"), ("lm_head", "re:.*router")),
    ],
)
def test_router_ignore_patterns_per_family(cfg: dict[str, Any], patterns: tuple[str, ...]) -> None:
    arch = parse_model_config(cfg)
    assert router_ignore_patterns(arch) == patterns
    assert router_patterns_known(arch)


def test_unknown_moe_family_gets_an_over_inclusive_guess_and_says_so() -> None:
    arch = parse_model_config(variant(load("mixtral-8x7b"), model_type="brand_new_moe"))
    assert router_ignore_patterns(arch)[0] == "lm_head"
    assert len(router_ignore_patterns(arch)) > 1
    assert not router_patterns_known(arch)
