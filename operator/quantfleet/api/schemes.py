"""Which scheme each tool can produce, and how: one table, no heavy imports.

The one source for (tool, scheme) support: the CRD's CEL rule (api.quantizedmodel), the planner's
tool choice (planning.tools) and the calibration program's tool adapters (calibrate.tools) all read
it, so the API never accepts a pair the program cannot run. A scheme/tool pair missing from the
table is unsupported, and `support()` says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

from quantfleet.api.gguf import SCHEME_GGUF_TYPE
from quantfleet.api.manifest import CheckpointFormat
from quantfleet.api.recipe import Scheme, Tool, W4A16Algorithm

# What a GPU must support to run a checkpoint: one name per family of vLLM kernels. The GPU capability table
# (quantfleet.hardware) says, per GPU, whether each runs natively, only through a fallback kernel, or not at all.
Format = Literal["fp8_w8a8", "fp8_weight_only", "fp8_block", "nvfp4", "mxfp4", "int4_w4a16"]
FORMATS: Final[tuple[Format, ...]] = get_args(Format)


@dataclass(frozen=True)
class SchemeFormat:
    """The format a calibration scheme's checkpoint is served in."""

    format: Format
    # Weight-only schemes dequantize to 16 bits before the matmul (Marlin): wherever the format loads at all,
    # they run as designed, so "native" for them means "supported".
    weight_only: bool = False


# The one scheme -> format table: the planner's tool choice and the calibration placement both read it.
# vLLM schemes only: the GGUF schemes (LLAMA_CPP below) have no GPU Format, so look them up with scheme_format().
SCHEME_FORMATS: Final[dict[Scheme, SchemeFormat]] = {
    "fp8-dynamic": SchemeFormat("fp8_w8a8"),
    "fp8-static": SchemeFormat("fp8_w8a8"),
    "fp8-block": SchemeFormat("fp8_block"),
    "w4a16": SchemeFormat("int4_w4a16", weight_only=True),
    "nvfp4": SchemeFormat("nvfp4"),
    "nvfp4a16": SchemeFormat("nvfp4", weight_only=True),
    "mxfp4": SchemeFormat("mxfp4"),
}


def scheme_format(scheme: Scheme) -> SchemeFormat | None:
    """The GPU Format `scheme`'s checkpoint is served in; None for GGUF schemes (llama-server, any device)."""
    return SCHEME_FORMATS.get(scheme)


@dataclass(frozen=True)
class ToolScheme:
    """How one tool produces one scheme."""

    preset: str  # llm-compressor preset scheme name, ModelOpt config attribute name, or Quark scheme name
    moe_preset: str | None = None  # ModelOpt: config used instead when the model is MoE
    algorithm: W4A16Algorithm | None = None


LLMC: dict[tuple[Scheme, W4A16Algorithm | None], ToolScheme] = {
    ("fp8-dynamic", None): ToolScheme("FP8_DYNAMIC"),
    ("fp8-block", None): ToolScheme("FP8_BLOCK"),
    ("fp8-static", None): ToolScheme("FP8"),
    ("w4a16", "gptq"): ToolScheme("W4A16", algorithm="gptq"),
    ("w4a16", "awq"): ToolScheme("W4A16", algorithm="awq"),
    ("nvfp4", None): ToolScheme("NVFP4"),
    ("nvfp4a16", None): ToolScheme("NVFP4A16"),
    ("mxfp4", None): ToolScheme("MXFP4"),
}

MODELOPT: dict[tuple[Scheme, W4A16Algorithm | None], ToolScheme] = {
    # per-channel FP8 weights + dynamic per-token FP8 activations = llm-compressor's FP8_DYNAMIC
    ("fp8-dynamic", None): ToolScheme("FP8_PER_CHANNEL_PER_TOKEN_CFG"),
    ("fp8-static", None): ToolScheme("FP8_DEFAULT_CFG"),
    ("w4a16", "awq"): ToolScheme("INT4_AWQ_CFG", algorithm="awq"),
    # MLP-only NVFP4 keeps attention in BF16: the practical recipe for MoE models
    ("nvfp4", None): ToolScheme("NVFP4_DEFAULT_CFG", moe_preset="NVFP4_MLP_ONLY_CFG"),
    ("nvfp4a16", None): ToolScheme("W4A16_NVFP4_CFG"),
    ("mxfp4", None): ToolScheme("MXFP4_DEFAULT_CFG"),
}

# llama.cpp: convert_hf_to_gguf.py (F16 GGUF) -> llama-imatrix (k-quants only) -> llama-quantize <preset>.
# The preset is llama-quantize's type name (tools/quantize/quantize.cpp QUANT_OPTIONS); calibrate.gguf runs it.
LLAMA_CPP: dict[tuple[Scheme, W4A16Algorithm | None], ToolScheme] = {
    (scheme, None): ToolScheme(gguf_type) for scheme, gguf_type in SCHEME_GGUF_TYPE.items()
}

# AMD Quark 0.13 (quark.torch.quantization.config.template scheme names): the schemes vLLM 0.33.0's ROCm build serves
# from a `quant_method: quark` checkpoint on the AMD GPUs quantfleet plans (docs/quark.md). FP8 is exported as OCP
# e4m3fn; vLLM converts it to e4m3fnuz at load on gfx942 (MI300X). MXFP4 is OCP MX, native on gfx950 (MI355X).
QUARK: dict[tuple[Scheme, W4A16Algorithm | None], ToolScheme] = {
    # per-channel FP8 weights + dynamic per-token FP8 activations ("PTPC"), = llm-compressor's FP8_DYNAMIC
    ("fp8-dynamic", None): ToolScheme("ptpc_fp8"),
    ("fp8-static", None): ToolScheme("fp8"),
    ("mxfp4", None): ToolScheme("mxfp4"),
}

_QUARK_SCOPE = "quantfleet uses Quark for AMD targets only: fp8-dynamic, fp8-static (MI300X/MI355X) and mxfp4 (MI355X)"
UNSUPPORTED_WHY: dict[tuple[Tool, Scheme], str] = {
    ("modelopt", "fp8-block"): "ModelOpt 0.47 has only a weight-only 2D-block FP8 config; use llm-compressor FP8_BLOCK",
    ("quark", "fp8-block"): f"{_QUARK_SCOPE}; use llm-compressor FP8_BLOCK",
    ("quark", "w4a16"): f"{_QUARK_SCOPE}; use llm-compressor (GPTQ/AWQ)",
    ("quark", "nvfp4"): f"{_QUARK_SCOPE}; NVFP4 has no ROCm serving path in vLLM 0.33.0",
    ("quark", "nvfp4a16"): f"{_QUARK_SCOPE}; NVFP4 has no ROCm serving path in vLLM 0.33.0",
}

TOOL_TABLES: dict[Tool, dict[tuple[Scheme, W4A16Algorithm | None], ToolScheme]] = {
    "llm-compressor": LLMC,
    "modelopt": MODELOPT,
    "quark": QUARK,
    "llama-cpp": LLAMA_CPP,
}

TOOL_CHECKPOINT_FORMAT: dict[Tool, CheckpointFormat] = {
    "llm-compressor": "compressed-tensors",
    "modelopt": "modelopt",
    "quark": "quark",
    "llama-cpp": "gguf",
}


class UnsupportedRecipe(ValueError):
    """The recipe asks a tool for a scheme it cannot produce."""


def support(tool: Tool, scheme: Scheme, algorithm: W4A16Algorithm | None) -> ToolScheme:
    """The preset for (tool, scheme, algorithm); raises UnsupportedRecipe with the reason."""
    if scheme == "w4a16" and algorithm is None:
        algorithm = "gptq" if tool == "llm-compressor" else "awq"
    if scheme != "w4a16" and algorithm is not None:
        raise UnsupportedRecipe(f"algorithm={algorithm} applies to w4a16 only, not {scheme}")
    table = TOOL_TABLES[tool]
    found = table.get((scheme, algorithm))
    if found is None:
        why = UNSUPPORTED_WHY.get((tool, scheme), "not offered by this tool")
        alg = f" ({algorithm})" if algorithm else ""
        raise UnsupportedRecipe(f"{tool} cannot produce {scheme}{alg}: {why}")
    return found


def supported_pairs() -> list[tuple[Tool, Scheme, W4A16Algorithm | None]]:
    pairs: list[tuple[Tool, Scheme, W4A16Algorithm | None]] = []
    for tool, table in TOOL_TABLES.items():
        for scheme, alg in table:
            pairs.append((tool, scheme, alg))
    return pairs


# Router / gate layers stay in full precision: quantization noise flips hard routing decisions.
# Keyed by transformers `model_type`; patterns use llm-compressor's `re:` syntax. The one table: the planner's
# recipe (planning.model.router_ignore_patterns) and the calibration program both read it.
ROUTER_IGNORE: dict[str, tuple[str, ...]] = {
    "qwen3_moe": ("re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$"),
    "qwen2_moe": ("re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$"),
    "qwen3_next": ("re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$"),
    "qwen3_vl_moe": ("re:.*mlp.gate$",),
    "qwen3_vl_moe_text": ("re:.*mlp.gate$",),
    # Mixtral checkpoints name the router block_sparse_moe.gate; transformers 5 calls the MoE block `mlp`, so both.
    "mixtral": ("re:.*block_sparse_moe.gate$", "re:.*mlp.gate$"),
    "llama4": ("re:.*router",),
    "llama4_text": ("re:.*router",),
    "afmoe": ("re:.*mlp.router.*",),
    "deepseek_v2": ("re:.*mlp.gate$",),
    "deepseek_v3": ("re:.*mlp.gate$",),
    "glm4_moe": ("re:.*mlp.gate$",),
    "gpt_oss": ("re:.*router",),
}
# MoE families not in the table: an over-inclusive guess (it can only keep more modules in BF16).
DEFAULT_ROUTER_IGNORE: tuple[str, ...] = ("re:.*mlp.gate$", "re:.*router", "re:.*block_sparse_moe.gate$")


def ignore_patterns(model_type: str, extra: tuple[str, ...]) -> list[str]:
    """lm_head + the family's router patterns + the recipe's own, de-duplicated, in order."""
    out: list[str] = []
    for p in ("lm_head", *ROUTER_IGNORE.get(model_type, DEFAULT_ROUTER_IGNORE), *extra):
        if p not in out:
            out.append(p)
    return out


def ignore_pattern_matches(pattern: str, module_name: str) -> bool:
    """Whether an ignore pattern names a module: ``re:<regex>`` is re.match()ed, anything else is the full name or
    its dotted suffix (``lm_head`` names ``model.lm_head``). The ModelOpt and Quark adapters apply it.
    """
    if pattern.startswith("re:"):
        return re.match(pattern[3:], module_name) is not None
    return module_name == pattern or module_name.endswith("." + pattern)
