"""Which calibration tool makes a QuantizedModel's checkpoint, with what ignore list, and where it should run.

Why it exists: llm-compressor 0.14 and ModelOpt 0.47 (docs/calibration.md) overlap but are not interchangeable: each
supports a different set of schemes, names them differently, excludes different modules by default and
treats MoE experts differently. The QuantizedModel controller asks `choose_tool` once per spec and records
the reason in status; `placement_for` tells it which GPU pools run the result natively.

Defaults (tool `auto`):
- llm-compressor for every scheme it has a preset for (FP8_DYNAMIC, FP8_BLOCK, FP8, W4A16 with GPTQ/AWQ,
  NVFP4, NVFP4A16, MXFP4): one tool, compressed-tensors output, all-expert MoE calibration on by default.
- nvfp4 on a MoE model -> ModelOpt `NVFP4_MLP_ONLY_CFG`: MLP-only NVFP4 is the practical MoE recipe
  (docs/calibration.md) (attention stays BF16), ModelOpt ships it as a tested config and excludes routers/gates by
  default, and vLLM runs its NVFP4 MoE export through the native `modelopt_fp4` path. Its all-expert
  calibration is opt-in in 0.47, so the choice turns it on (`moe_calib_experts_ratio=1.0`).
- mxfp4 on a MoE model stays with llm-compressor but ignores attention (`re:.*self_attn.*`), matching the
  MLP-only assumption of the capacity planner and of gpt-oss-style MXFP4 checkpoints.
- AMD Quark 0.13 only where it is the better producer: the QuantizedModel's placement targets AMD GPUs
  (spec.placement.nodeSelector names an `amd.com/gpu.*` label) and Quark has the scheme (fp8-dynamic, fp8-static,
  mxfp4). Its `quant_method: quark` checkpoint is what vLLM's ROCm build and AMD's own published checkpoints use;
  FP8 is exported OCP e4m3fn and converted to e4m3fnuz at load on MI300X (docs/quark.md); FP8 KV-cache scales go
  with the fp8 schemes only. Without an AMD
  placement, or for a scheme Quark does not make, the choice is the one above (the reason says why Quark was not
  used where the placement is AMD).
An explicit tool that cannot make the scheme is a `PlanError`, never a silent switch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from quantfleet.api.gguf import IMATRIX_TYPES
from quantfleet.api.recipe import GGUF_SCHEMES, SCHEMES, Scheme, Tool, W4A16Algorithm
from quantfleet.api.schemes import LLAMA_CPP, LLMC, MODELOPT, QUARK, SCHEME_FORMATS, UNSUPPORTED_WHY, Format
from quantfleet.hardware import GPU_TABLE, FormatSupport, GpuFacts, Support
from quantfleet.hardware.labels import AMD_PREFIXES
from quantfleet.planning.decision import PlanError
from quantfleet.planning.model import ModelArch, router_ignore_patterns, router_patterns_known

RequestedTool = Literal["auto", "llm-compressor", "modelopt", "quark", "llama-cpp"]
Algorithm = W4A16Algorithm
REQUESTED_TOOLS: tuple[RequestedTool, ...] = get_args(RequestedTool)

ATTENTION_PATTERN = "re:.*self_attn.*"


def _llmc_recipe(preset: str, algorithm: str | None) -> str:
    if algorithm == "gptq":
        return f"GPTQModifier(scheme={preset})"
    if algorithm == "awq":
        return f"AWQModifier + QuantizationModifier(scheme={preset})"
    return f"QuantizationModifier(scheme={preset})"


# (scheme, algorithm or None) -> what the tool runs, from the shared (tool, scheme) table. Absent = it cannot.
_LLM_COMPRESSOR: dict[tuple[str, str | None], str] = {
    key: _llmc_recipe(entry.preset, entry.algorithm) for key, entry in LLMC.items()
}
_MODELOPT: dict[tuple[str, str | None], str] = {key: entry.preset for key, entry in MODELOPT.items()}
_QUARK: dict[tuple[str, str | None], str] = {
    key: f"QConfig(global_quant_config={entry.preset})" for key, entry in QUARK.items()
}
_TABLES: dict[Tool, dict[tuple[str, str | None], str]] = {
    "llm-compressor": _LLM_COMPRESSOR,
    "modelopt": _MODELOPT,
    "quark": _QUARK,
}
_NO_DATA = frozenset({"fp8-dynamic", "fp8-block", "nvfp4a16"})  # weight-only or dynamic: no calibration data needed
# Quark's mxfp4 has dynamic MX activations and MX weight scales from the weights: it runs no calibration pass.
_QUARK_NO_DATA = frozenset({"fp8-dynamic", "mxfp4"})


_QUARK_NO_KV = (
    "quantfleet calibrates FP8 KV-cache scales with Quark only for the fp8 schemes (its KV recipe adds an FP8 output"
    " quantizer to the FP8 k/v projections)"
)


def amd_placement(node_selector: Mapping[str, str] | None) -> str | None:
    """The AMD GPU label (`key=value`) a placement's nodeSelector names, or None when it targets no AMD pool."""
    for key, value in sorted((node_selector or {}).items()):
        if key.startswith(AMD_PREFIXES):
            return f"{key}={value}"
    return None


def scheme_rank(scheme: Scheme, support: FormatSupport) -> int | None:
    """0: a GPU with `support` runs `scheme`'s checkpoint as designed, 1: only through a fallback kernel,
    None: not at all. Weight-only schemes run as designed wherever their format loads."""
    entry = SCHEME_FORMATS[scheme]
    level = support.level(entry.format)
    if level == Support.NO:
        return None
    return 0 if level == Support.NATIVE or entry.weight_only else 1


@dataclass(frozen=True)
class ToolChoice:
    """The tool and recipe shape for one QuantizedModel, and why."""

    tool: Tool
    preset: str
    reason: str
    ignore: tuple[str, ...]
    calibrate_all_experts: bool
    needs_calibration_data: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlacementPreference:
    """Where a scheme's checkpoint runs natively (preferred for calibration + quality checks) or at all."""

    scheme: Scheme
    format: Format
    native_families: tuple[str, ...]
    fallback_families: tuple[str, ...]
    min_compute_capability: tuple[int, int] | None
    amd_gfx_arches: tuple[str, ...]
    reason: str

    def rank(self, gpu: GpuFacts) -> int | None:
        """0: runs this scheme natively, 1: only through a fallback kernel, None: cannot run it."""
        return scheme_rank(self.scheme, gpu.support)


def choose_tool(
    scheme: str,
    requested_tool: str,
    arch: ModelArch,
    *,
    algorithm: str | None = None,
    amd_target: str | None = None,
    kv_cache_scales: bool = False,
) -> ToolChoice:
    """Pick llm-compressor, ModelOpt or Quark for `scheme` on `arch`; PlanError for impossible combinations.

    `amd_target` is the AMD GPU label the placement names (`amd_placement`), or None."""
    if scheme in GGUF_SCHEMES:
        return _gguf_choice(scheme, requested_tool, algorithm, kv_cache_scales)
    if requested_tool == "llama-cpp":
        raise PlanError(f"llama-cpp makes GGUF checkpoints only ({', '.join(GGUF_SCHEMES)}), not {scheme}")
    if scheme not in SCHEMES:
        raise PlanError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    if requested_tool not in REQUESTED_TOOLS:
        raise PlanError(f"unknown tool {requested_tool!r}; expected one of {', '.join(REQUESTED_TOOLS)}")
    if scheme == "w4a16":
        algorithm = algorithm or "gptq"
        if algorithm not in get_args(Algorithm):
            raise PlanError(f"unknown w4a16 algorithm {algorithm!r}; expected gptq or awq")
    elif algorithm is not None:
        raise PlanError(f"algorithm {algorithm!r} only applies to w4a16, not {scheme}")
    key = (scheme, algorithm)
    label = f"{scheme}{f' ({algorithm})' if algorithm else ''}"
    moe = arch.is_moe

    if requested_tool == "auto":
        tool: Tool
        quark_kv_ok = not kv_cache_scales or scheme.startswith("fp8")
        if amd_target and key in _QUARK and quark_kv_ok:
            tool = "quark"
            why = (
                f"auto: the placement targets AMD GPUs ({amd_target}) and AMD Quark makes {label}: its "
                "quant_method quark checkpoint is the one vLLM's ROCm build serves"
                + (
                    " (FP8 exported OCP e4m3fn; vLLM converts it to e4m3fnuz at load on MI300X, docs/quark.md)"
                    if scheme.startswith("fp8")
                    else " (OCP MXFP4, native on MI355X/gfx950 only, docs/quark.md)"
                )
            )
        elif scheme == "nvfp4" and moe:
            tool = "modelopt"
            why = (
                f"auto: nvfp4 on a MoE model ({arch.model_type}, {arch.num_experts} experts) uses ModelOpt "
                "NVFP4_MLP_ONLY_CFG, the MLP-only recipe for MoE models (attention stays BF16; docs/calibration.md)"
            )
        else:
            tool = "llm-compressor"
            why = f"auto: llm-compressor has a {label} preset and calibrates every MoE expert by default"
        if amd_target and tool != "quark":
            quark_can = ", ".join(sorted(s for s, _ in _QUARK))
            why += f"; not Quark although the placement targets AMD GPUs ({amd_target}): " + (
                _QUARK_NO_KV if key in _QUARK else f"it makes only {quark_can}"
            )
    else:
        tool = _requested(requested_tool)
        table = _TABLES[tool]
        if key not in table:
            can = sorted(f"{s}{f' ({a})' if a else ''}" for s, a in table)
            why_not = UNSUPPORTED_WHY.get((tool, _as_scheme(scheme)))
            raise PlanError(
                f"{tool} cannot make {label}; it supports: {', '.join(can)}" + (f" ({why_not})" if why_not else "")
            )
        if tool == "quark" and kv_cache_scales and not scheme.startswith("fp8"):
            raise PlanError(f"quark cannot make {label} with kvCacheScales: {_QUARK_NO_KV}")
        why = f"requested tool {tool} supports {label}"

    if tool == "modelopt" and scheme == "w4a16" and moe:
        raise PlanError(
            "modelopt cannot make w4a16 (awq) for MoE models: ModelOpt 0.47 INT4_AWQ_CFG fails on transformers-5"
            " fused experts (measured on an H200, docs/calibration.md); use llm-compressor"
        )
    mlp_only = moe and scheme in ("nvfp4", "mxfp4")
    if tool == "modelopt":
        preset = "NVFP4_MLP_ONLY_CFG" if scheme == "nvfp4" and moe else _MODELOPT[key]
    else:
        preset = _TABLES[tool][key]
    ignore = router_ignore_patterns(arch)
    if mlp_only and tool != "modelopt":
        ignore = (*ignore, ATTENTION_PATTERN)
        why += "; MLP-only on MoE: attention is ignored (stays BF16)"

    notes: list[str] = []
    if moe and not router_patterns_known(arch):
        notes.append(
            f"no router pattern known for model_type {arch.model_type!r}: using the generic "
            f"{', '.join(ignore[1:])}; check the module names and add spec.moe.ignore patterns"
        )
    if moe and tool == "llm-compressor":
        notes.append(
            f"llm-compressor's MoE support list changes per release: the calibration program checks that "
            f"{arch.model_type} is in the installed version's list before it starts"
        )
    if moe and tool == "modelopt":
        notes.append("ModelOpt 0.47 calibrates all experts only when asked: moe_calib_experts_ratio=1.0 is set")
    if moe and tool == "quark":
        notes.append(
            "Quark 0.13 has no all-expert calibration option: quantfleet widens the routing of every MoE block during"
            " calibration (docs/quark.md)"
        )
    # Quark's KV-cache recipe adds static output quantizers: they calibrate on data whatever the scheme
    no_data = (_QUARK_NO_DATA if not kv_cache_scales else frozenset()) if tool == "quark" else _NO_DATA
    if scheme in no_data:
        notes.append(f"{scheme} needs no calibration data (dynamic or weight-only scales)")
    if scheme in ("nvfp4", "nvfp4a16", "mxfp4", "w4a16"):
        notes.append("4-bit: the quality gate (perplexity delta, non-finite = failure) decides Ready")
    return ToolChoice(
        tool=tool,
        preset=preset,
        reason=why,
        ignore=ignore,
        calibrate_all_experts=moe,
        needs_calibration_data=scheme not in no_data,
        notes=tuple(notes),
    )


def _gguf_choice(scheme: str, requested_tool: str, algorithm: str | None, kv_cache_scales: bool) -> ToolChoice:
    """GGUF schemes: llama.cpp's own converter, importance matrix and quantizer, and nothing else makes them."""
    if requested_tool not in ("auto", "llama-cpp"):
        raise PlanError(
            f"{requested_tool} cannot make {scheme}: GGUF checkpoints are made by llama.cpp (tool llama-cpp)"
        )
    if algorithm is not None:
        raise PlanError(f"algorithm {algorithm!r} only applies to w4a16, not {scheme}")
    if kv_cache_scales:
        raise PlanError(f"{scheme}: kvCacheScales does not apply to GGUF (llama.cpp keeps a 16-bit KV cache)")
    preset = next(entry.preset for (s, _), entry in LLAMA_CPP.items() if s == scheme)
    imatrix = preset in IMATRIX_TYPES
    why = (
        f"{'auto' if requested_tool == 'auto' else 'requested tool'}: llama.cpp makes {scheme} (convert_hf_to_gguf.py,"
        f" then llama-quantize {preset}"
        + (", with an importance matrix from the calibration text)" if imatrix else "; Q8_0 takes no imatrix)")
    )
    notes = ["GGUF: served by llama.cpp's server only (InferenceService runtime llama-cpp)"]
    if not imatrix:
        notes.append(f"{scheme} needs no calibration data (round-to-nearest per block of 32)")
    return ToolChoice(
        tool="llama-cpp",
        preset=preset,
        reason=why,
        ignore=(),
        calibrate_all_experts=False,
        needs_calibration_data=imatrix,
        notes=tuple(notes),
    )


def _requested(requested_tool: str) -> Tool:
    for tool in _TABLES:
        if tool == requested_tool:
            return tool
    raise PlanError(f"unknown tool {requested_tool!r}; expected one of {', '.join(REQUESTED_TOOLS)}")


def placement_for(scheme: str) -> PlacementPreference:
    """GPU families that run `scheme` natively / through a fallback, read from the GPU table."""
    known = _as_scheme(scheme)
    fmt = SCHEME_FORMATS[known].format
    native: list[str] = []
    fallback: list[str] = []
    ccs: list[tuple[int, int]] = []
    arches: list[str] = []
    for spec in GPU_TABLE:
        rank = scheme_rank(known, spec.support)
        if rank == 0:
            _add(native, spec.family)
            if spec.compute_capability is not None:
                ccs.append(spec.compute_capability)
            if spec.gfx_arch:
                _add(arches, spec.gfx_arch)
        elif rank == 1:
            _add(fallback, spec.family)
    fallback = [f for f in fallback if f not in native]
    min_cc = min(ccs) if ccs else None
    where = ", ".join(native) or "no GPU in the table"
    reason = f"{scheme} ({fmt}) runs natively on {where}"
    if min_cc:
        reason += f" (NVIDIA compute capability >= {min_cc[0]}.{min_cc[1]})"
    if fallback:
        reason += f"; weight-only/fallback on {', '.join(fallback)}"
    return PlacementPreference(
        scheme=known,
        format=fmt,
        native_families=tuple(native),
        fallback_families=tuple(fallback),
        min_compute_capability=min_cc,
        amd_gfx_arches=tuple(arches),
        reason=reason,
    )


def _as_scheme(scheme: str) -> Scheme:
    for known in SCHEMES:
        if known == scheme:
            return known
    raise PlanError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)
