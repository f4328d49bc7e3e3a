"""Capacity planner: parameters, weight bytes per format, KV bytes per token, and vLLM's memory budget.

Why it exists: the precision decision is mostly a memory decision (FP8 halves the
weights, so roughly doubles the KV cache). This module turns a `ModelArch` plus a GPU's memory into
the numbers vLLM prints at startup (`Available KV cache memory`, `GPU KV cache size: N tokens`,
`Maximum concurrency for L tokens per request`), close enough to choose a precision, a KV dtype and
a tensor-parallel size before anything is scheduled. All arithmetic is integer bytes; GiB = 2**30.

Parameters (per layer unless noted; h = hidden, i = dense intermediate, m = expert intermediate):
  embeddings vocab*h (once); lm_head vocab*h unless tied; attention q/k/v/o =
  h*heads*hd + 2*h*kv*hd + heads*hd*h (MLA: the low-rank q_a/q_b/kv_a/kv_b/o set); dense MLP
  3*h*i; MoE layer E*3*h*m + shared experts 3*h*m_shared + router h*E (+ h*1 shared-expert gate);
  norms 2*h per layer + h (+ q/k norms for Qwen3). Active-per-token counts only top-k experts and
  includes embeddings and lm_head, the way model cards count it (Qwen3-30B-A3B: 3.3B active).

Weight bytes. Embeddings, lm_head, routers/gates and norms always stay BF16 (routers: quantization noise flips
routing decisions, docs/calibration.md). The
native 4-bit formats (nvfp4, mxfp4) on MoE models are MLP-only by default: attention stays BF16,
as ModelOpt's NVFP4_MLP_ONLY_CFG and gpt-oss MXFP4 checkpoints do. Scales:
  fp8        1 byte/element + one FP32 scale per output channel (per-tensor is smaller still)
  fp8-block  1 byte/element + one FP32 scale per 128x128 block
  w4a16      0.5 byte/element + one FP16 scale per 128-element group (+0.5 byte zero point if asym)
  nvfp4      0.5 byte/element + one E4M3 byte per 16 elements + 2 FP32 per-tensor scales
  mxfp4      0.5 byte/element + one E8M0 byte per 32 elements

KV cache. Per token and layer: 2 (K,V) * kv_heads * head_dim * dtype bytes (MLA: one latent of
kv_lora_rank + rope dims, no factor 2). Tensor parallelism splits KV heads across GPUs; when
kv_heads < TP each GPU keeps a replica of one head, so per-GPU bytes stop shrinking (MLA latents
are replicated on every GPU). A sliding-window layer holds at most window - 1 + T tokens per
sequence (T = max_num_batched_tokens in flight; vLLM 0.33 `SlidingWindowSpec`), so a sequence of
c tokens costs per_layer * (full_layers * c + sliding_layers * min(c, window - 1 + T)).
`kv_bytes_per_token` is the full-attention figure 2 x layers x kv_heads x head_dim x bytes (every KV layer, TP=1);
`sliding_cap_bytes` is the most the sliding layers hold for one sequence (TP=1).

vLLM memory accounting (0.33, v1 engine), per GPU:
  budget     = total memory * gpu_memory_utilization (default 0.92)
  non-KV     = weights / TP + activation peak + CUDA graphs + runtime
  KV cache   = budget - non-KV
  activation peak (vLLM profiles a dummy batch of max_num_batched_tokens tokens):
             = T * (4*h + 3*I/TP) * 2 bytes + S * vocab * 4 bytes * 2
    T = max_num_batched_tokens, S = max_num_seqs (sampled rows; FP32 logits + one FP32 copy
    for sampling), I = the widest MLP a token passes through (dense i, or top_k*m + shared for
    MoE). vLLM's server defaults: T=8192, S=1024 on GPUs with >= 70 GiB that are not A100;
    T=2048, S=256 otherwise (EngineArgs.get_batch_defaults).
  CUDA graphs: a fixed 0.75 GiB per GPU (measured captures range 0.5-1 GiB; vLLM includes the
    estimate in its profile).
  runtime: a fixed 1 GiB per GPU for the CUDA context, cuBLAS/NCCL workspaces and allocator slack.
It fits when the KV cache holds at least one `max_model_len` sequence (vLLM refuses to start
otherwise). Capacity is reported the way vLLM 0.33 logs it (`get_kv_cache_capacity`):
  kv_cache_tokens = int(concurrency at max_model_len * max_model_len)
which equals KV bytes / bytes-per-token for full-attention models; `max_concurrency` is given at
the requested context length (default max_model_len). Block rounding (16-token pages) is ignored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal, get_args

from quantfleet.api.checkpoint import CheckpointQuant, TensorQuant
from quantfleet.planning.model import ModelArch

GIB = 1024**3
MIB = 1024**2

WeightFormat = Literal["bf16", "fp8", "fp8-block", "w4a16", "w4a16-asym", "nvfp4", "nvfp4a16", "mxfp4"]
KvCacheDtype = Literal["bfloat16", "float16", "fp8_e4m3", "fp8_e5m2"]
Role = Literal["embedding", "lm_head", "norm", "attention", "mlp", "expert", "shared_expert", "router"]

WEIGHT_FORMATS: tuple[WeightFormat, ...] = get_args(WeightFormat)
KV_DTYPE_BYTES: dict[str, int] = {"bfloat16": 2, "float16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1}

DEFAULT_GPU_MEMORY_UTILIZATION = 0.92
CUDA_GRAPH_BYTES = 3 * GIB // 4
RUNTIME_BYTES = 1 * GIB
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)

_ALWAYS_BF16: frozenset[Role] = frozenset({"embedding", "lm_head", "norm", "router"})
_MLP_ONLY_BY_DEFAULT: frozenset[WeightFormat] = frozenset({"nvfp4", "mxfp4"})
# Format -> elements per scale group along the input dimension (the sharded dim for row-parallel layers).
_GROUP: dict[WeightFormat, int] = {
    "fp8-block": 128,
    "w4a16": 128,
    "w4a16-asym": 128,
    "nvfp4": 16,
    "nvfp4a16": 16,
    "mxfp4": 32,
}


@dataclass(frozen=True)
class TensorGroup:
    """`count` matrices of shape rows x cols (rows = output features) with one role; `active` of them per token."""

    role: Role
    name: str
    rows: int
    cols: int
    count: int
    active: int

    @property
    def params(self) -> int:
        return self.rows * self.cols * self.count

    @property
    def active_params(self) -> int:
        return self.rows * self.cols * self.active


@dataclass(frozen=True)
class ParamCount:
    total: int
    active: int
    by_role: dict[str, int]


@dataclass(frozen=True)
class WeightBytes:
    format: WeightFormat
    total: int
    by_role: dict[str, int]
    bf16_roles: tuple[str, ...]
    quantized_roles: tuple[str, ...]


@dataclass(frozen=True)
class CapacityEstimate:
    """What one vLLM replica (TP GPUs) of this model gets on this GPU, and whether it starts at all."""

    weight_format: str
    kv_cache_dtype: str
    tensor_parallel_size: int
    params_total: int
    params_active: int
    weight_bytes: int
    weights_gib: float
    weights_gib_per_gpu: float
    bf16_roles: tuple[str, ...]
    gpu_memory_gib: float
    gpu_memory_utilization: float
    budget_gib_per_gpu: float
    activation_gib: float
    cuda_graph_gib: float
    runtime_gib: float
    non_kv_gib_per_gpu: float
    kv_cache_gib_per_gpu: float
    kv_cache_bytes_per_gpu: int
    kv_cache_gib: float
    kv_bytes_per_token: int
    kv_bytes_per_token_per_gpu: int
    sliding_window: int | None
    sliding_cap_bytes: int
    context_len: int
    seq_kv_bytes: int
    seq_kv_bytes_per_gpu: int
    kv_cache_tokens: int
    max_concurrency: float
    max_model_len: int
    fits: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- parameters --------------------------------------------------------------------------------


def tensor_inventory(arch: ModelArch) -> tuple[TensorGroup, ...]:
    """Every weight matrix of the model, grouped by role and shape."""
    h, n_layers = arch.hidden_size, arch.num_layers
    groups: list[TensorGroup] = [TensorGroup("embedding", "embed_tokens", arch.vocab_size, h, 1, 1)]
    if not arch.tie_word_embeddings:
        groups.append(TensorGroup("lm_head", "lm_head", arch.vocab_size, h, 1, 1))
    norms = 2 * n_layers + 1
    groups.append(TensorGroup("norm", "layernorms", 1, h, norms, norms))
    if arch.family in ("qwen3", "qwen3_moe", "qwen3_next"):
        groups.append(TensorGroup("norm", "q_norm/k_norm", 1, arch.head_dim, 2 * n_layers, 2 * n_layers))
    groups.extend(_attention(arch))
    dense, moe = arch.num_dense_layers, arch.num_moe_layers
    if dense:
        i = arch.intermediate_size
        groups += [
            TensorGroup("mlp", "gate_proj", i, h, dense, dense),
            TensorGroup("mlp", "up_proj", i, h, dense, dense),
            TensorGroup("mlp", "down_proj", h, i, dense, dense),
        ]
    if moe:
        m, e, k = arch.moe_intermediate_size, arch.num_experts, arch.experts_per_token
        groups += [
            TensorGroup("expert", "experts.gate_proj", m, h, e * moe, k * moe),
            TensorGroup("expert", "experts.up_proj", m, h, e * moe, k * moe),
            TensorGroup("expert", "experts.down_proj", h, m, e * moe, k * moe),
            TensorGroup("router", "router", e, h, moe, moe),
        ]
        s = arch.shared_expert_intermediate_size
        if s:
            groups += [
                TensorGroup("shared_expert", "shared_expert.gate_proj", s, h, moe, moe),
                TensorGroup("shared_expert", "shared_expert.up_proj", s, h, moe, moe),
                TensorGroup("shared_expert", "shared_expert.down_proj", h, s, moe, moe),
            ]
        if arch.shared_expert_gate:
            groups.append(TensorGroup("router", "shared_expert_gate", 1, h, moe, moe))
    return tuple(groups)


def _attention(arch: ModelArch) -> list[TensorGroup]:
    h, n, heads = arch.hidden_size, arch.num_layers, arch.num_attention_heads
    mla = arch.mla
    if mla is None:
        q, kv = heads * arch.head_dim, arch.num_kv_heads * arch.head_dim
        return [
            TensorGroup("attention", "q_proj", q, h, n, n),
            TensorGroup("attention", "k_proj", kv, h, n, n),
            TensorGroup("attention", "v_proj", kv, h, n, n),
            TensorGroup("attention", "o_proj", h, q, n, n),
        ]
    qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    out: list[TensorGroup] = []
    if mla.q_lora_rank:
        out += [
            TensorGroup("attention", "q_a_proj", mla.q_lora_rank, h, n, n),
            TensorGroup("attention", "q_b_proj", heads * qk, mla.q_lora_rank, n, n),
            TensorGroup("norm", "q_a_layernorm", 1, mla.q_lora_rank, n, n),
        ]
    else:
        out.append(TensorGroup("attention", "q_proj", heads * qk, h, n, n))
    out += [
        TensorGroup("attention", "kv_a_proj_with_mqa", mla.kv_lora_rank + mla.qk_rope_head_dim, h, n, n),
        TensorGroup("norm", "kv_a_layernorm", 1, mla.kv_lora_rank, n, n),
        TensorGroup("attention", "kv_b_proj", heads * (mla.qk_nope_head_dim + mla.v_head_dim), mla.kv_lora_rank, n, n),
        TensorGroup("attention", "o_proj", h, heads * mla.v_head_dim, n, n),
    ]
    return out


def count_parameters(arch: ModelArch) -> ParamCount:
    """Total and active-per-token parameter counts, with a breakdown by role."""
    by_role: dict[str, int] = {}
    total = active = 0
    for g in tensor_inventory(arch):
        by_role[g.role] = by_role.get(g.role, 0) + g.params
        total += g.params
        active += g.active_params
    return ParamCount(total=total, active=active, by_role=by_role)


# --- weight bytes ------------------------------------------------------------------------------


def default_quantize_attention(arch: ModelArch, fmt: WeightFormat) -> bool:
    """MLP-only for native 4-bit formats on MoE models (the MoE recipe planning.tools picks); every other case
    quantizes attention."""
    return not (arch.is_moe and fmt in _MLP_ONLY_BY_DEFAULT)


def weight_bytes(arch: ModelArch, fmt: WeightFormat, *, quantize_attention: bool | None = None) -> WeightBytes:
    """Bytes of the checkpoint as vLLM holds it in GPU memory, scales included."""
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}; expected one of {', '.join(WEIGHT_FORMATS)}")
    if quantize_attention is None:
        quantize_attention = default_quantize_attention(arch, fmt)
    keep: set[str] = set(_ALWAYS_BF16)
    if fmt == "bf16":
        keep |= {"attention", "mlp", "expert", "shared_expert"}
    elif not quantize_attention:
        keep.add("attention")
    by_role: dict[str, int] = {}
    for g in tensor_inventory(arch):
        size = g.params * 2 if g.role in keep else _quantized_bytes(g, fmt)
        by_role[g.role] = by_role.get(g.role, 0) + size
    present = tuple(by_role)
    return WeightBytes(
        format=fmt,
        total=sum(by_role.values()),
        by_role=by_role,
        bf16_roles=tuple(r for r in present if r in keep),
        quantized_roles=tuple(r for r in present if r not in keep),
    )


def _quantized_bytes(g: TensorGroup, fmt: WeightFormat) -> int:
    rows, cols, n = g.rows, g.cols, g.count
    elems = rows * cols * n
    if fmt == "fp8":
        return elems + rows * n * 4
    if fmt == "fp8-block":
        return elems + math.ceil(rows / 128) * math.ceil(cols / 128) * n * 4
    half = (elems + 1) // 2
    if fmt in ("w4a16", "w4a16-asym"):
        groups = rows * math.ceil(cols / 128) * n
        return half + groups * 2 + (groups + 1) // 2 * (fmt == "w4a16-asym")
    if fmt in ("nvfp4", "nvfp4a16"):
        return half + rows * math.ceil(cols / 16) * n + 8 * n
    if fmt == "mxfp4":
        return half + rows * math.ceil(cols / 32) * n
    raise ValueError(f"no quantized layout for {fmt!r}")


# --- weight bytes of a real checkpoint -----------------------------------------------------------

# How each family names its MoE block, router, shared experts and expert projections in the checkpoint (the module
# paths vLLM matches a checkpoint's ignore list against). Families not listed use the Llama/Qwen spelling.
_MOE_BLOCK: dict[str, str] = {"mixtral": "block_sparse_moe", "llama4": "feed_forward"}
_DENSE_BLOCK: dict[str, str] = {"llama4": "feed_forward"}
_ROUTER_NAME: dict[str, str] = {"gpt_oss": "router", "llama4": "router", "afmoe": "router.gate"}
_SHARED_NAME: dict[str, str] = {"deepseek": "shared_experts", "glm4_moe": "shared_experts", "afmoe": "shared_experts"}
_EXPERT_PROJ: dict[str, dict[str, str]] = {
    "mixtral": {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"},
    "gpt_oss": {"gate_proj": "gate_up_proj", "up_proj": "gate_up_proj", "down_proj": "down_proj"},
}
_FUSED_EXPERTS = frozenset({"gpt_oss"})  # experts stored as one tensor per projection, no per-expert index


def module_path(arch: ModelArch, group: TensorGroup, layer: int) -> str:
    """The Hugging Face module path of `group`'s matrix in `layer` (expert 0 for expert groups)."""
    if group.role == "embedding":
        return "model.embed_tokens"
    if group.role == "lm_head":
        return "lm_head"
    base = f"model.layers.{layer}"
    fam = arch.family
    if group.role == "attention":
        return f"{base}.self_attn.{group.name}"
    if group.role == "mlp":
        return f"{base}.{_DENSE_BLOCK.get(fam, 'mlp')}.{group.name}"
    block = f"{base}.{_MOE_BLOCK.get(fam, 'mlp')}"
    if group.role == "router":
        leaf = "shared_expert_gate" if group.name == "shared_expert_gate" else _ROUTER_NAME.get(fam, "gate")
        return f"{block}.{leaf}"
    proj = group.name.rpartition(".")[2]
    if group.role == "shared_expert":
        return f"{block}.{_SHARED_NAME.get(fam, 'shared_expert')}.{proj}"
    proj = _EXPERT_PROJ.get(fam, {}).get(proj, proj)
    return f"{block}.experts.{proj}" if fam in _FUSED_EXPERTS else f"{block}.experts.0.{proj}"


def _layers_of(arch: ModelArch, group: TensorGroup) -> list[int]:
    if group.role in ("embedding", "lm_head"):
        return [0]
    mask = arch.moe_layer_mask or (False,) * arch.num_layers
    if group.role == "mlp":
        return [i for i in range(arch.num_layers) if not mask[i]]
    if group.role in ("expert", "shared_expert", "router"):
        return [i for i in range(arch.num_layers) if mask[i]]
    return list(range(arch.num_layers))


def checkpoint_weight_bytes(arch: ModelArch, quant: CheckpointQuant) -> WeightBytes:
    """Bytes of a quantized checkpoint as vLLM holds it in GPU memory, from its real layout.

    Each linear layer of each decoder layer is quantized or kept 16-bit as the checkpoint's own ignore list, targets
    and method say (`CheckpointQuant.quantizes`); embeddings, norms and routers always stay 16-bit. Scales follow
    the weights' strategy: FP32 per tensor / per channel / per 128x128 block for FP8, FP16 per group (+ packed zero
    points when asymmetric) for INT4, one E4M3 byte per 16 elements + two FP32 per tensor for NVFP4, one E8M0 byte
    per 32 elements for MXFP4. A checkpoint quantfleet calibrates itself in NVFP4/MXFP4 on a MoE model is MLP-only
    (attention 16-bit), the recipe planning.tools picks for MoE.
    """
    return _checkpoint_weight_bytes(arch, quant)


@lru_cache(maxsize=512)
def _checkpoint_weight_bytes(arch: ModelArch, quant: CheckpointQuant) -> WeightBytes:
    keep_attention = quant.source == "calibration" and arch.is_moe and quant.scheme in ("nvfp4", "mxfp4")
    by_role: dict[str, int] = {}
    bf16: list[str] = []
    quantized: list[str] = []
    for g in tensor_inventory(arch):
        q_count = 0
        if g.role not in ("embedding", "norm", "router") and not (keep_attention and g.role == "attention"):
            layers = _layers_of(arch, g)
            per_layer = g.count // max(1, len(layers))
            q_count = per_layer * sum(1 for i in layers if quant.quantizes(module_path(arch, g, i)))
        size = (g.count - q_count) * g.rows * g.cols * 2
        if q_count:
            size += _tensor_bytes(g.rows, g.cols, q_count, quant.weights)
            quantized.append(g.role)
        if q_count < g.count:
            bf16.append(g.role)
        by_role[g.role] = by_role.get(g.role, 0) + size
    return WeightBytes(
        format=checkpoint_weight_format(quant),
        total=sum(by_role.values()),
        by_role=by_role,
        bf16_roles=tuple(dict.fromkeys(bf16)),
        quantized_roles=tuple(dict.fromkeys(quantized)),
    )


def checkpoint_weight_format(quant: CheckpointQuant) -> WeightFormat:
    """The closest legacy weight-format label (for CapacityEstimate.weight_format and TP checks)."""
    return {
        "fp8-w8a8": "fp8",
        "fp8-w8a16": "fp8",
        "fp8-block": "fp8-block",
        "int4-w4a16": "w4a16" if quant.weights.symmetric else "w4a16-asym",
        "nvfp4": "nvfp4",
        "nvfp4-w4a16": "nvfp4a16",
        "mxfp4": "mxfp4",
        "mxfp4-experts": "mxfp4",
    }[quant.scheme]


def _tensor_bytes(rows: int, cols: int, n: int, w: TensorQuant) -> int:
    """`n` rows x cols matrices quantized as `w`, scales included."""
    data = (rows * cols * n * w.bits + 7) // 8
    if w.strategy == "tensor":
        return data + 4 * n
    if w.strategy == "channel":
        return data + rows * n * 4
    if w.strategy == "block":
        br, bc = w.block or (128, 128)
        return data + math.ceil(rows / br) * math.ceil(cols / bc) * n * 4
    group = w.group_size or cols
    groups = rows * math.ceil(cols / group) * n
    if w.type == "int":
        return data + groups * 2 + ((groups + 1) // 2 if not w.symmetric else 0)
    if w.strategy == "tensor_group":  # NVFP4: E4M3 per group + two FP32 per tensor
        return data + groups + 8 * n
    return data + groups  # MXFP4: E8M0 per group


def checkpoint_group(quant: CheckpointQuant) -> int | None:
    """Elements per scale group along the input dimension (what a TP split must keep whole), or None."""
    w = quant.weights
    if w.strategy == "block":
        return (w.block or (128, 128))[1]
    if w.strategy in ("group", "tensor_group"):
        return w.group_size
    return None


# --- KV cache ----------------------------------------------------------------------------------


def kv_layers(arch: ModelArch) -> tuple[int, int]:
    """(full-attention layers, sliding-window layers); linear-attention layers hold no per-token KV."""
    return arch.num_full_attention_layers, arch.num_sliding_layers


def kv_bytes_per_token_per_layer(arch: ModelArch, kv_dtype: str, tensor_parallel_size: int = 1) -> int:
    """Per-GPU bytes one token costs in one attention layer."""
    b = _kv_bytes(kv_dtype)
    if arch.mla is not None:
        return (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim) * b
    heads_per_gpu = max(1, arch.num_kv_heads // tensor_parallel_size)
    return 2 * heads_per_gpu * arch.head_dim * b


def kv_bytes_per_token(arch: ModelArch, kv_dtype: str) -> int:
    """2 (K, V) x layers x kv_heads x head_dim x bytes, every attention layer as if full (TP=1)."""
    full, sliding = kv_layers(arch)
    return (full + sliding) * kv_bytes_per_token_per_layer(arch, kv_dtype)


def sequence_kv_bytes(
    arch: ModelArch, kv_dtype: str, context_len: int, tensor_parallel_size: int = 1, in_flight_tokens: int = 0
) -> int:
    """Per-GPU bytes of one sequence of `context_len` tokens; sliding layers keep window - 1 + in-flight tokens."""
    full, sliding = kv_layers(arch)
    window = min(context_len, (arch.sliding_window - 1 + in_flight_tokens) if arch.sliding_window else context_len)
    per_layer = kv_bytes_per_token_per_layer(arch, kv_dtype, tensor_parallel_size)
    return per_layer * (full * context_len + sliding * window)


def _kv_bytes(kv_dtype: str) -> int:
    try:
        return KV_DTYPE_BYTES[kv_dtype]
    except KeyError:
        raise ValueError(f"unknown KV cache dtype {kv_dtype!r}; expected one of {', '.join(KV_DTYPE_BYTES)}") from None


# --- vLLM memory budget ------------------------------------------------------------------------


def batch_defaults(gpu_memory_mib: int, gpu_name: str = "") -> tuple[int, int]:
    """vLLM server defaults (max_num_batched_tokens, max_num_seqs): larger on >= 70 GiB GPUs except A100."""
    if gpu_memory_mib * MIB >= 70 * GIB and "a100" not in gpu_name.lower():
        return 8192, 1024
    return 2048, 256


def activation_bytes(arch: ModelArch, tensor_parallel_size: int, max_num_batched_tokens: int, max_num_seqs: int) -> int:
    """Activation peak of vLLM's profiling run, per GPU (see the module docstring for the model)."""
    widest = arch.intermediate_size if arch.num_dense_layers else 0
    if arch.is_moe:
        widest = max(widest, arch.experts_per_token * arch.moe_intermediate_size + arch.shared_expert_intermediate_size)
    hidden = max_num_batched_tokens * (4 * arch.hidden_size + 3 * math.ceil(widest / tensor_parallel_size)) * 2
    sampled = min(max_num_seqs, max_num_batched_tokens)
    logits = sampled * arch.vocab_size * 4 * 2
    return hidden + logits


def estimate_capacity(
    arch: ModelArch,
    *,
    weight_format: WeightFormat,
    kv_cache_dtype: str,
    gpu_memory_mib: int,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    max_model_len: int | None = None,
    context_len: int | None = None,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
    quantize_attention: bool | None = None,
    checkpoint: CheckpointQuant | None = None,
) -> CapacityEstimate:
    """Capacity of one replica at a given TP; `fits` says whether vLLM would start with `max_model_len`.

    With `checkpoint`, the weight bytes come from that checkpoint's real layout (`checkpoint_weight_bytes`) and
    `weight_format` is only a label."""
    tp = tensor_parallel_size
    if tp < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {tp}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if gpu_memory_mib < 1:
        raise ValueError(f"gpu memory must be positive, got {gpu_memory_mib} MiB")
    max_len = max_model_len or arch.max_position_embeddings
    ctx = context_len or max_len
    default_t, default_s = batch_defaults(gpu_memory_mib)
    t = max_num_batched_tokens or default_t
    s = max_num_seqs or default_s

    params = count_parameters(arch)
    wb = (
        checkpoint_weight_bytes(arch, checkpoint)
        if checkpoint is not None
        else weight_bytes(arch, weight_format, quantize_attention=quantize_attention)
    )
    weights_gpu = math.ceil(wb.total / tp)
    total_mem = gpu_memory_mib * MIB
    budget = math.ceil(total_mem * gpu_memory_utilization)  # vLLM request_memory()
    act = activation_bytes(arch, tp, t, s)
    non_kv = weights_gpu + act + CUDA_GRAPH_BYTES + RUNTIME_BYTES
    kv_gpu = max(0, budget - non_kv)
    per_layer_gpu = kv_bytes_per_token_per_layer(arch, kv_cache_dtype, tp)
    full, sliding = kv_layers(arch)
    per_token_gpu = per_layer_gpu * (full + sliding)
    seq_gpu = sequence_kv_bytes(arch, kv_cache_dtype, ctx, tp, t)
    seq_max_len_gpu = sequence_kv_bytes(arch, kv_cache_dtype, max_len, tp, t)
    concurrency = math.floor(kv_gpu / seq_gpu * 100) / 100  # seq_gpu > 0: parse_model_config demands a KV layer
    tokens = kv_gpu * max_len // seq_max_len_gpu

    if non_kv >= budget:
        fits = False
        reason = (
            f"does not fit at TP={tp}: weights {_gib(weights_gpu)} GiB/GPU + activations {_gib(act)} GiB + "
            f"CUDA graphs {_gib(CUDA_GRAPH_BYTES)} GiB + runtime {_gib(RUNTIME_BYTES)} GiB = {_gib(non_kv)} GiB "
            f"exceed {_gib(budget)} GiB ({_gib(total_mem)} GiB x {gpu_memory_utilization})"
        )
    elif kv_gpu < seq_max_len_gpu:
        fits = False
        reason = (
            f"does not fit at TP={tp}: KV cache {_gib(kv_gpu)} GiB/GPU < {_gib(seq_max_len_gpu)} GiB for one "
            f"max_model_len={max_len} sequence"
        )
    else:
        fits = True
        reason = (
            f"fits at TP={tp}: weights {_gib(weights_gpu)} GiB/GPU, KV cache {_gib(kv_gpu)} GiB/GPU "
            f"({kv_cache_dtype}) = {tokens} tokens, {concurrency}x concurrency at {ctx} tokens"
        )

    return CapacityEstimate(
        weight_format=weight_format,
        kv_cache_dtype=kv_cache_dtype,
        tensor_parallel_size=tp,
        params_total=params.total,
        params_active=params.active,
        weight_bytes=wb.total,
        weights_gib=_gib(wb.total),
        weights_gib_per_gpu=_gib(weights_gpu),
        bf16_roles=wb.bf16_roles,
        gpu_memory_gib=_gib(total_mem),
        gpu_memory_utilization=gpu_memory_utilization,
        budget_gib_per_gpu=_gib(budget),
        activation_gib=_gib(act),
        cuda_graph_gib=_gib(CUDA_GRAPH_BYTES),
        runtime_gib=_gib(RUNTIME_BYTES),
        non_kv_gib_per_gpu=_gib(non_kv),
        kv_cache_gib_per_gpu=_gib(kv_gpu),
        kv_cache_bytes_per_gpu=kv_gpu,
        kv_cache_gib=_gib(kv_gpu * tp),
        kv_bytes_per_token=kv_bytes_per_token(arch, kv_cache_dtype),
        kv_bytes_per_token_per_gpu=per_token_gpu,
        sliding_window=arch.sliding_window,
        sliding_cap_bytes=sequence_kv_bytes(arch, kv_cache_dtype, max_len, 1, t)
        - full * kv_bytes_per_token_per_layer(arch, kv_cache_dtype) * max_len,
        context_len=ctx,
        seq_kv_bytes=sequence_kv_bytes(arch, kv_cache_dtype, ctx, 1, t),
        seq_kv_bytes_per_gpu=seq_gpu,
        kv_cache_tokens=tokens,
        max_concurrency=concurrency,
        max_model_len=max_len,
        fits=fits,
        reason=reason,
    )


def tensor_parallel_constraint(
    arch: ModelArch, weight_format: WeightFormat, tp: int, checkpoint: CheckpointQuant | None = None
) -> str | None:
    """Why vLLM cannot shard this model `tp` ways in this format, or None when it can.

    Read from vLLM 0.33: attention heads must split evenly and KV heads must divide or be divided by TP;
    block/group-scaled formats need every TP-split width to stay a multiple of the block/group
    (fp8_utils.validate_fp8_block_shape[_moe], marlin verify_group_size_divides_partition, compressed-tensors
    WNA16 MoE). Expert parallelism, which lifts the MoE constraint, is not modelled.
    """
    heads = arch.num_attention_heads
    if heads % tp:
        return f"TP={tp} does not divide {heads} attention heads"
    kv = arch.num_kv_heads
    if arch.mla is None and kv % tp and tp % kv:
        return f"TP={tp} and {kv} KV heads: neither divides the other"
    group = checkpoint_group(checkpoint) if checkpoint is not None else _GROUP.get(weight_format)
    if group is None:
        return None
    widths: list[tuple[str, int]] = []
    if checkpoint is None or not checkpoint.experts_only:
        widths.append(("o_proj input", heads * arch.head_dim if arch.mla is None else heads * arch.mla.v_head_dim))
        if arch.num_dense_layers:
            widths.append(("MLP intermediate", arch.intermediate_size))
    if arch.is_moe:
        widths.append(("expert intermediate", arch.moe_intermediate_size))
    for what, width in widths:
        if width % tp or (width // tp) % group:
            return (
                f"TP={tp} splits the {what} ({width}) into {width / tp:g}, "
                f"not a multiple of the {checkpoint.scheme if checkpoint else weight_format} group {group}"
            )
    return None


def fit_tensor_parallel(
    arch: ModelArch,
    *,
    gpus_per_node: int,
    weight_format: WeightFormat,
    kv_cache_dtype: str,
    gpu_memory_mib: int,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    max_model_len: int | None = None,
    context_len: int | None = None,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
    quantize_attention: bool | None = None,
    checkpoint: CheckpointQuant | None = None,
) -> tuple[CapacityEstimate | None, str]:
    """Smallest TP in {1,2,4,8} (<= GPUs per node, valid for the model) that fits; else (largest tried, reasons).

    Returns (estimate, reason). The estimate is None only when no TP size is valid at all.
    """
    tried: list[str] = []
    last: CapacityEstimate | None = None
    for tp in TENSOR_PARALLEL_SIZES:
        if tp > gpus_per_node:
            break
        constraint = tensor_parallel_constraint(arch, weight_format, tp, checkpoint)
        if constraint:
            tried.append(constraint)
            continue
        est = estimate_capacity(
            arch,
            weight_format=weight_format,
            kv_cache_dtype=kv_cache_dtype,
            gpu_memory_mib=gpu_memory_mib,
            tensor_parallel_size=tp,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            context_len=context_len,
            max_num_batched_tokens=max_num_batched_tokens,
            max_num_seqs=max_num_seqs,
            quantize_attention=quantize_attention,
            checkpoint=checkpoint,
        )
        if est.fits:
            return est, est.reason
        tried.append(est.reason)
        last = est
    if not tried:
        return None, f"no tensor-parallel size available with {gpus_per_node} GPU(s) per node"
    return last, "; ".join(tried)


def _gib(n: int | float) -> float:
    return round(n / GIB, 2)
