"""The model architecture, parsed once from a Hugging Face `config.json`.

Every planning number (parameter count, weight bytes, KV bytes per token, tensor-parallel
constraints) and every calibration decision (which router layers stay in BF16) depends on a
handful of config fields whose names differ between families: `num_experts` vs
`num_local_experts` vs `n_routed_experts`, `num_dense_layers` vs `first_k_dense_replace` vs
`decoder_sparse_step`, `layer_types` vs `sliding_window_pattern` ... This module is the one
place that knows those spellings. It takes a dict (the caller reads the file) and returns a
frozen `ModelArch`; anything missing or inconsistent is a `ConfigError` naming the field.

Known simplifications (documented so nobody mistakes them for facts):
- Chunked local attention (Llama-4 `attention_chunk_size`) is counted as full attention
  (conservative: over-estimates KV per sequence).
- Linear-attention layers (Qwen3-Next `linear_attention`) hold a fixed-size state, not a
  per-token KV cache; they are counted as zero KV bytes per token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from quantfleet.api.schemes import DEFAULT_ROUTER_IGNORE, ROUTER_IGNORE

LayerType = Literal["full_attention", "sliding_attention", "linear_attention"]

_LAYER_TYPE_ALIASES: dict[str, LayerType] = {
    "full_attention": "full_attention",
    "global_attention": "full_attention",
    "attention": "full_attention",
    "chunked_attention": "full_attention",  # conservative, see module docstring
    "sliding_attention": "sliding_attention",
    "sliding_window_attention": "sliding_attention",
    "local_attention": "sliding_attention",
    "linear_attention": "linear_attention",
}

# model_type -> family name shown to users and used for router patterns.
_FAMILIES: dict[str, str] = {
    "llama": "llama",
    "llama4": "llama4",
    "llama4_text": "llama4",
    "mistral": "mistral",
    "mixtral": "mixtral",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "qwen2_moe": "qwen2_moe",
    "qwen3_moe": "qwen3_moe",
    "qwen3_next": "qwen3_next",
    "qwen3_vl_moe": "qwen3_moe",
    "qwen3_vl_moe_text": "qwen3_moe",
    "afmoe": "afmoe",
    "deepseek_v2": "deepseek",
    "deepseek_v3": "deepseek",
    "glm4_moe": "glm4_moe",
    "gpt_oss": "gpt_oss",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3_text": "gemma",
}

# Families whose shared expert output is scaled by a learned sigmoid gate (h x 1 linear).
_SHARED_EXPERT_GATE_FAMILIES = frozenset({"qwen2_moe", "qwen3_next"})


class ConfigError(ValueError):
    """The config.json cannot be planned for; the message names the field and what is wrong."""


@dataclass(frozen=True)
class MlaDims:
    """Multi-head latent attention (DeepSeek-V2/V3): the KV cache holds one compressed latent per token."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class ModelArch:
    """What the planner needs to know about a decoder-only transformer."""

    model_type: str
    family: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    intermediate_size: int  # dense MLP layers
    max_position_embeddings: int
    torch_dtype: str
    layer_types: tuple[LayerType, ...]
    sliding_window: int | None = None
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0  # per routed expert
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0  # all shared experts together
    shared_expert_gate: bool = False
    moe_layer_mask: tuple[bool, ...] = ()  # per layer: True where the MLP is a MoE block
    mla: MlaDims | None = None
    quantization_method: str | None = None  # the config is already a quantized checkpoint

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0 and any(self.moe_layer_mask)

    @property
    def num_moe_layers(self) -> int:
        return sum(self.moe_layer_mask)

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def num_full_attention_layers(self) -> int:
        return sum(1 for t in self.layer_types if t == "full_attention")

    @property
    def num_sliding_layers(self) -> int:
        return sum(1 for t in self.layer_types if t == "sliding_attention")

    def describe(self) -> str:
        parts = [f"{self.model_type}: {self.num_layers} layers, hidden {self.hidden_size}"]
        parts.append(f"{self.num_attention_heads} heads / {self.num_kv_heads} KV heads x {self.head_dim}")
        if self.is_moe:
            moe = f"MoE {self.num_experts} experts top-{self.experts_per_token}"
            if self.num_shared_experts:
                moe += f" + {self.num_shared_experts} shared"
            if self.num_dense_layers:
                moe += f", {self.num_dense_layers} dense layers"
            parts.append(moe)
        if self.num_sliding_layers:
            parts.append(f"{self.num_sliding_layers} sliding-window layers (window {self.sliding_window})")
        return ", ".join(parts)


def parse_model_config(cfg: Mapping[str, Any]) -> ModelArch:
    """Parse a Hugging Face config.json dict (multimodal configs: the `text_config` part)."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"config.json must be a JSON object, got {type(cfg).__name__}")
    cfg = _text_part(cfg)
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ConfigError("config.json: field 'model_type' is missing or not a string")
    family = _FAMILIES.get(model_type, model_type)

    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _int(cfg, "num_attention_heads", "n_head")
    kv_heads = _opt_int(cfg, "num_key_value_heads") or heads
    if heads % kv_heads != 0:
        raise ConfigError(
            f"config.json: num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})"
        )
    head_dim = _opt_int(cfg, "head_dim")
    if head_dim is None:
        if hidden % heads != 0:
            raise ConfigError(
                f"config.json: no 'head_dim' and hidden_size ({hidden}) is not divisible by "
                f"num_attention_heads ({heads})"
            )
        head_dim = hidden // heads
    vocab = _int(cfg, "vocab_size")
    tie = cfg.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise ConfigError(f"config.json: 'tie_word_embeddings' must be true or false, got {tie!r}")
    max_pos = _int(cfg, "max_position_embeddings", "max_sequence_length", "seq_length", "n_positions")
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    if not isinstance(dtype, str):
        raise ConfigError(f"config.json: 'torch_dtype' must be a string, got {dtype!r}")

    num_experts = _opt_int(cfg, "num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts", zero_ok=True)
    num_experts = num_experts or 0
    dense_intermediate = _opt_int(cfg, "intermediate_size_mlp") or _opt_int(cfg, "intermediate_size", "n_inner")
    if dense_intermediate is None:
        if num_experts == 0:
            raise ConfigError("config.json: field 'intermediate_size' is missing")
        dense_intermediate = 0

    top_k = moe_i = n_shared = shared_i = 0
    shared_gate = False
    mask: tuple[bool, ...] = (False,) * layers
    if num_experts:
        top_k_opt = _opt_int(cfg, "num_experts_per_tok", "experts_per_token", "num_experts_per_token", "moe_topk")
        if top_k_opt is None:
            raise ConfigError(
                f"config.json: MoE model ({num_experts} experts) without 'num_experts_per_tok' (experts per token)"
            )
        top_k = top_k_opt
        if top_k > num_experts:
            raise ConfigError(
                f"config.json: num_experts_per_tok ({top_k}) exceeds the number of experts ({num_experts})"
            )
        moe_i_opt = _opt_int(cfg, "moe_intermediate_size")
        if moe_i_opt is None:  # Mixtral, gpt-oss, Llama-4: intermediate_size is the expert's size
            moe_i_opt = _opt_int(cfg, "intermediate_size")
        if moe_i_opt is None:
            raise ConfigError("config.json: MoE model without 'moe_intermediate_size' or 'intermediate_size'")
        moe_i = moe_i_opt
        n_shared, shared_i, shared_gate = _shared_experts(cfg, family, moe_i)
        mask = _moe_layer_mask(cfg, layers)
        if dense_intermediate == 0 and not all(mask):
            raise ConfigError("config.json: MoE model has dense layers but no 'intermediate_size' for them")

    layer_types, window = _layer_types(cfg, layers)
    if all(t == "linear_attention" for t in layer_types):
        raise ConfigError("config.json: no attention layer with a KV cache (all layers are linear attention)")
    quant = cfg.get("quantization_config")
    quant_method = quant.get("quant_method") if isinstance(quant, Mapping) else None

    return ModelArch(
        model_type=model_type,
        family=family,
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        intermediate_size=dense_intermediate,
        max_position_embeddings=max_pos,
        torch_dtype=dtype,
        layer_types=layer_types,
        sliding_window=window,
        num_experts=num_experts,
        experts_per_token=top_k,
        moe_intermediate_size=moe_i,
        num_shared_experts=n_shared,
        shared_expert_intermediate_size=shared_i,
        shared_expert_gate=shared_gate,
        moe_layer_mask=mask,
        mla=_mla(cfg),
        quantization_method=str(quant_method) if quant_method is not None else None,
    )


def router_ignore_patterns(arch: ModelArch) -> tuple[str, ...]:
    """Modules a calibration recipe must leave in BF16: always `lm_head`, plus the family's routers/gates.

    MoE families missing from the table get a generic, over-inclusive guess (it can only keep more
    modules in BF16); `router_patterns_known` tells callers to say so.
    """
    if not arch.is_moe:
        return ("lm_head",)
    return ("lm_head", *ROUTER_IGNORE.get(arch.model_type, DEFAULT_ROUTER_IGNORE))


def router_patterns_known(arch: ModelArch) -> bool:
    """True when the router patterns come from the family table rather than the generic guess."""
    return not arch.is_moe or arch.model_type in ROUTER_IGNORE


# --- helpers -----------------------------------------------------------------------------------


def _text_part(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    text = cfg.get("text_config")
    if isinstance(text, Mapping) and "hidden_size" not in cfg:
        merged = dict(cfg)
        merged.update(text)
        return merged
    return cfg


def _opt_int(cfg: Mapping[str, Any], *keys: str, zero_ok: bool = False) -> int | None:
    for key in keys:
        if key not in cfg or cfg[key] is None:
            continue
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config.json: '{key}' must be an integer, got {value!r}")
        if value < 0 or (value == 0 and not zero_ok):
            raise ConfigError(f"config.json: '{key}' must be positive, got {value}")
        return value
    return None


def _int(cfg: Mapping[str, Any], *keys: str) -> int:
    value = _opt_int(cfg, *keys)
    if value is None:
        alias = f" (or {', '.join(repr(k) for k in keys[1:])})" if len(keys) > 1 else ""
        raise ConfigError(f"config.json: field '{keys[0]}'{alias} is missing")
    return value


def _int_list(cfg: Mapping[str, Any], key: str, layers: int) -> tuple[int, ...]:
    raw = cfg.get(key) or ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ConfigError(f"config.json: '{key}' must be a list of layer indices, got {raw!r}")
    out: list[int] = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < layers:
            raise ConfigError(f"config.json: '{key}' holds {item!r}, not a layer index in [0, {layers})")
        out.append(item)
    return tuple(out)


def _shared_experts(cfg: Mapping[str, Any], family: str, moe_i: int) -> tuple[int, int, bool]:
    """(number of shared experts, their total intermediate size, has a shared-expert gate)."""
    shared_total = _opt_int(cfg, "shared_expert_intermediate_size", zero_ok=True)
    if shared_total:
        return 1, shared_total, family in _SHARED_EXPERT_GATE_FAMILIES
    n = _opt_int(cfg, "num_shared_experts", "n_shared_experts", zero_ok=True) or 0
    if n:
        return n, n * moe_i, False
    if family == "llama4":  # one shared expert of the expert size, always present
        return 1, moe_i, False
    return 0, 0, False


def _moe_layer_mask(cfg: Mapping[str, Any], layers: int) -> tuple[bool, ...]:
    explicit = cfg.get("moe_layers")
    if explicit is not None:
        idx = set(_int_list(cfg, "moe_layers", layers))
        return tuple(i in idx for i in range(layers))
    first_dense = _opt_int(cfg, "num_dense_layers", "first_k_dense_replace", zero_ok=True) or 0
    if first_dense > layers:
        raise ConfigError(f"config.json: {first_dense} dense layers but only {layers} layers")
    step = _opt_int(cfg, "decoder_sparse_step", "interleave_moe_layer_step") or 1
    freq = _opt_int(cfg, "moe_layer_freq") or 1
    mlp_only = set(_int_list(cfg, "mlp_only_layers", layers))
    mask = tuple(
        i >= first_dense and (i + 1) % step == 0 and i % freq == 0 and i not in mlp_only for i in range(layers)
    )
    if not any(mask):
        raise ConfigError("config.json: declares experts but no layer is a MoE layer (check decoder_sparse_step)")
    return mask


def _layer_types(cfg: Mapping[str, Any], layers: int) -> tuple[tuple[LayerType, ...], int | None]:
    window = _opt_int(cfg, "sliding_window")
    if cfg.get("use_sliding_window") is False:
        window = None
    raw = cfg.get("layer_types")
    if raw is not None:
        if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) != layers:
            raise ConfigError(f"config.json: 'layer_types' must list one type per layer ({layers})")
        types: list[LayerType] = []
        for t in raw:
            if not isinstance(t, str) or t not in _LAYER_TYPE_ALIASES:
                raise ConfigError(f"config.json: unknown layer type {t!r} in 'layer_types'")
            types.append(_LAYER_TYPE_ALIASES[t])
        if "sliding_attention" in types and window is None:
            raise ConfigError("config.json: 'layer_types' has sliding_attention layers but no 'sliding_window'")
        return tuple(types), window if "sliding_attention" in types else None
    if window is None:
        return tuple(_LAYER_TYPE_ALIASES["full_attention"] for _ in range(layers)), None

    def sliding(i: int) -> bool:
        if "max_window_layers" in cfg and cfg["max_window_layers"] is not None:
            return i >= (_opt_int(cfg, "max_window_layers", zero_ok=True) or 0)
        every = _opt_int(cfg, "sliding_window_pattern", "global_attn_every_n_layers")
        if every is not None:
            return (i + 1) % every != 0
        return True  # Mistral-style: every layer uses the window

    result: tuple[LayerType, ...] = tuple(
        "sliding_attention" if sliding(i) else "full_attention" for i in range(layers)
    )
    return result, window if "sliding_attention" in result else None


def _mla(cfg: Mapping[str, Any]) -> MlaDims | None:
    kv_lora = _opt_int(cfg, "kv_lora_rank")
    if kv_lora is None:
        return None
    return MlaDims(
        q_lora_rank=_opt_int(cfg, "q_lora_rank"),
        kv_lora_rank=kv_lora,
        qk_nope_head_dim=_int(cfg, "qk_nope_head_dim"),
        qk_rope_head_dim=_int(cfg, "qk_rope_head_dim"),
        v_head_dim=_int(cfg, "v_head_dim"),
    )
