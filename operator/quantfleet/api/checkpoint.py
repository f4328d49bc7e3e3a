"""What a checkpoint's quantization is: one normalized, typed description, whoever made the checkpoint.

Why this module exists: a checkpoint says how it was quantized in a different dialect per tool — compressed-tensors
`config_groups`, Fp8Config `activation_scheme` / `weight_block_size`, ModelOpt `quant_algo` (in config.json or in a
separate hf_quant_config.json), GPTQ `bits` / `desc_act`, AWQ `zero_point`, gpt-oss `mxfp4`, AMD Quark
`global_quant_config`. Capacity (how many bytes each module holds), the per-GPU kernel decision and the status all need
the same few facts, so they are parsed once, here, into a `CheckpointQuant`:

- the method as vLLM 0.33.0 names it after normalising the config (and the config class it resolves to);
- the serving scheme (the family of vLLM kernels that runs it: FP8 W8A8, FP8 block, INT4 weight-only, NVFP4, ...);
- weight and activation formats: type, bits, strategy, group/block size, symmetric, dynamic vs static;
- the modules left unquantized (`ignore` / `ignored_layers` / `modules_to_not_convert` / `exclude_modules` /
  `exclude`) with the matching rule vLLM applies to that method;
- the KV-cache scheme, and whether vLLM turns an FP8 KV cache on by itself for it.

The checkpoints quantfleet's own calibration Job writes are described by the same type (`from_calibration`), so a
QuantizedModel's checkpoint and a published one meet in one place.

A checkpoint vLLM 0.33.0 cannot load at all (bitsandbytes, an unknown method, GPTQ `desc_act` with groups, ...) or
that quantfleet cannot plan raises `UnsupportedCheckpoint` naming the method and the reason: never a silent BF16
plan. Where each rule comes from (vLLM 0.33.0 source, file:line): docs/checkpoint-formats.md.

Pure: takes dicts (the caller reads config.json and hf_quant_config.json), imports nothing else of quantfleet but the
api scheme table.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final, Literal, get_args

from quantfleet.api.manifest import CheckpointFormat
from quantfleet.api.recipe import Scheme
from quantfleet.api.schemes import QUARK

# The family of vLLM kernels that serves a checkpoint (the key of the per-GPU decision table, quantfleet.hardware).
ServingScheme = Literal[
    "fp8-w8a8",  # FP8 weights (per-tensor / per-channel scales) and FP8 activations: W8A8
    "fp8-w8a16",  # FP8 weights, 16-bit activations: W8A16
    "fp8-block",  # FP8 weights with 128x128 block scales, activations FP8 per 1x128 group (dynamic)
    "int4-w4a16",  # INT4 weights with 16-bit group scales, 16-bit activations: W4A16 (GPTQ, AWQ, pack-quantized)
    "nvfp4",  # NVFP4 weights and activations: W4A4
    "nvfp4-w4a16",  # NVFP4 weights, 16-bit activations: W4A16 (NVFP4A16)
    "mxfp4",  # MXFP4 dense linears (compressed-tensors / Quark OCP MX): W4A4 where MX math exists
    "mxfp4-experts",  # gpt-oss style: MXFP4 routed experts only, BF16 activations, everything else BF16
]
SERVING_SCHEMES: Final[tuple[ServingScheme, ...]] = get_args(ServingScheme)

# The serving precision (InferenceService `precision`) each scheme is.
SCHEME_PRECISION: Final[dict[ServingScheme, str]] = {
    "fp8-w8a8": "fp8",
    "fp8-w8a16": "fp8",
    "fp8-block": "fp8-block",
    "int4-w4a16": "w4a16",
    "nvfp4": "nvfp4",
    "nvfp4-w4a16": "w4a16",
    "mxfp4": "mxfp4",
    "mxfp4-experts": "mxfp4",
}

# How a method's ignore list is matched against module names, as vLLM 0.33.0 does it:
#   regex      `re:<pattern>` entries are re.match()ed, the others compared exactly (compressed-tensors, Quark)
#   exact      exact module names (Fp8Config: ignored_layers_match_mode "exact")
#   modelopt   exact, then substring, then fnmatch wildcards (ModelOptQuantConfigBase.is_layer_excluded)
#   substring  an entry contained in the module name (AWQ modules_to_not_convert)
#   fixed      the list is not read; the method's own layout decides (gpt-oss MXFP4: routed experts only)
IgnoreMatch = Literal["regex", "exact", "modelopt", "substring", "fixed"]
Source = Literal["config.json", "hf_quant_config.json", "calibration"]
TensorType = Literal["float", "int"]
Strategy = Literal["tensor", "channel", "token", "group", "block", "tensor_group"]
KvDtype = Literal["fp8_e4m3", "nvfp4"]

HF_QUANT_CONFIG = "hf_quant_config.json"


class UnsupportedCheckpoint(ValueError):
    """vLLM 0.33.0 cannot serve this checkpoint, or quantfleet cannot plan it; the message names the method."""

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(f"checkpoint quantization {method!r}: {reason}")
        self.method = method
        self.reason = reason


@dataclass(frozen=True)
class TensorQuant:
    """How one kind of tensor (weights or input activations) is quantized."""

    type: TensorType
    bits: int
    strategy: Strategy
    group_size: int | None = None
    block: tuple[int, int] | None = None
    symmetric: bool = True
    dynamic: bool = False

    @property
    def format(self) -> str:
        """Element format in words: fp8, int4, nvfp4, mxfp4, int8, ..."""
        if self.type == "float" and self.bits == 8:
            return "fp8"
        if self.type == "float" and self.bits == 4:
            return "mxfp4" if self.group_size == 32 and self.strategy == "group" else "nvfp4"
        return f"{self.type}{self.bits}"

    def describe(self) -> str:
        scales = {
            "tensor": "per-tensor",
            "channel": "per-channel",
            "token": "per-token",
            "tensor_group": f"groups of {self.group_size}",
            "group": f"groups of {self.group_size}",
            "block": f"{self.block[0]}x{self.block[1]} blocks" if self.block else "blocks",
        }[self.strategy]
        sym = "" if self.symmetric else ", asymmetric"
        return f"{self.format} {scales}{sym}"


@dataclass(frozen=True)
class KvCacheQuant:
    """A KV-cache scheme the checkpoint carries."""

    dtype: KvDtype
    calibrated: bool  # the checkpoint holds k/v scales
    vllm_default: bool  # vLLM 0.33 turns this KV cache on by itself when --kv-cache-dtype is auto
    source: str  # the key it was read from, in words


@dataclass(frozen=True)
class CheckpointQuant:
    """A checkpoint's quantization, normalized. See the module docstring."""

    method: str  # quant_method after vLLM's normalisation (compressed-tensors, fp8, modelopt, gptq, awq, mxfp4, quark)
    vllm_method: str  # ModelConfig.quantization it resolves to (auto_gptq, modelopt_fp4, gpt_oss_mxfp4, ...)
    scheme: ServingScheme
    weights: TensorQuant
    activations: TensorQuant | None  # None: weight-only (activations stay 16-bit)
    ignore: tuple[str, ...] = ()
    ignore_match: IgnoreMatch = "exact"
    targets: tuple[str, ...] = ("Linear",)  # compressed-tensors config-group targets; "Linear" = every linear layer
    kv_cache: KvCacheQuant | None = None
    source: Source = "config.json"
    algo: str | None = None  # ModelOpt quant_algo, for the words
    quantized_lm_head: bool = False  # GPTQ/AWQ `lm_head: true`
    notes: tuple[str, ...] = ()  # what the parser noticed but vLLM ignores (shown as warnings)

    @property
    def precision(self) -> str:
        """The InferenceService precision this checkpoint is (fp8, fp8-block, w4a16, nvfp4, mxfp4)."""
        return SCHEME_PRECISION[self.scheme]

    @property
    def weight_only(self) -> bool:
        return self.activations is None

    @property
    def experts_only(self) -> bool:
        return self.scheme == "mxfp4-experts"

    @property
    def label(self) -> str:
        """Short form for status and `kubectl get`: "<scheme>/<method>", e.g. "fp8-w8a8/compressed-tensors"."""
        return f"{self.scheme}/{self.method}"

    def describe(self) -> str:
        """One line: method, weights, activations, ignored modules, KV cache."""
        acts = (
            "16-bit activations"
            if self.activations is None
            else f"{'dynamic' if self.activations.dynamic else 'static'} {self.activations.describe()} activations"
        )
        algo = f" ({self.algo})" if self.algo else ""
        parts = [f"{self.label}{algo}: {self.weights.describe()} weights, {acts}"]
        if self.experts_only:
            parts.append("routed experts only")
        if self.ignore and self.ignore_match != "fixed":
            shown = ", ".join(self.ignore[:3]) + (f", ... ({len(self.ignore)} entries)" if len(self.ignore) > 3 else "")
            parts.append(f"unquantized: {shown}")
        if self.kv_cache is not None:
            parts.append(
                f"{self.kv_cache.dtype} KV cache{' with calibrated scales' if self.kv_cache.calibrated else ''}"
            )
        return "; ".join(parts)

    def quantizes(self, module: str) -> bool:
        """Whether the linear layer `module` (an HF module path, e.g. model.layers.0.self_attn.q_proj) holds quantized
        weights in vLLM. lm_head is quantized only where the method says so explicitly (GPTQ/AWQ `lm_head: true`);
        embeddings, norms and routers are the caller's business (never quantized)."""
        if module == "lm_head":
            return self.quantized_lm_head
        if self.experts_only:
            return ".experts." in module or module.endswith(".experts")
        if "Linear" not in self.targets and not any(_ct_match(t, module) for t in self.targets):
            return False
        return not _ignored(self.ignore, self.ignore_match, module)


@lru_cache(maxsize=4096)
def _ignored(ignore: tuple[str, ...], how: IgnoreMatch, module: str) -> bool:
    if how == "fixed":
        return False
    if how == "regex":
        return any(_ct_match(p, module) for p in ignore)
    if how == "exact":
        return module in ignore
    if how == "substring":
        return any(p in module for p in ignore)
    return module in ignore or any(p in module for p in ignore) or any(fnmatch.fnmatch(module, p) for p in ignore)


def _ct_match(pattern: str, module: str) -> bool:
    """compressed-tensors / Quark: `re:<regex>` is re.match()ed, anything else compared exactly."""
    if pattern.startswith("re:"):
        return re.match(pattern[3:], module) is not None
    return pattern == module


# ----------------------------------------------------------------------------------------------- parsing


def parse_checkpoint_quant(
    config: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None = None
) -> CheckpointQuant | None:
    """The quantization of the checkpoint whose config.json is `config` (and hf_quant_config.json, when the checkpoint
    has one), or None for an unquantized (BF16/FP16) checkpoint.

    Like vLLM 0.33.0 (transformers_utils/config.py): config.json's `quantization_config` (else `text_config`'s, else
    the legacy `compression_config`) wins; hf_quant_config.json is read only when config.json has none.
    """
    raw, source = _quant_block(config, hf_quant_config)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise UnsupportedCheckpoint("?", f"quantization_config must be a JSON object, got {type(raw).__name__}")
    method = _method(raw)
    parser = _PARSERS.get(method)
    if parser is None:
        raise UnsupportedCheckpoint(method, _unknown_method_reason(method))
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else ""
    try:
        quant = parser(raw, str(model_type))
    except UnsupportedCheckpoint:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # user data: a condition, never a traceback loop
        raise UnsupportedCheckpoint(method, f"malformed quantization_config ({type(exc).__name__}: {exc})") from exc
    for pattern in (*quant.ignore, *quant.targets):
        if pattern.startswith("re:") and quant.ignore_match == "regex":
            try:
                re.compile(pattern[3:])
            except re.error as exc:
                raise UnsupportedCheckpoint(method, f"{pattern!r} is not a valid regular expression: {exc}") from exc
    if source == "hf_quant_config.json":
        quant = replace(quant, source=source)
    return quant


def _quant_block(config: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None) -> tuple[Any, Source | None]:
    for holder in (config, config.get("text_config") if isinstance(config.get("text_config"), Mapping) else None):
        if holder is not None and holder.get("quantization_config") is not None:
            return holder["quantization_config"], "config.json"
    if config.get("compression_config") is not None:
        return config["compression_config"], "config.json"
    if hf_quant_config is not None:
        return hf_quant_config, "hf_quant_config.json"
    return None, None


def _method(raw: Mapping[str, Any]) -> str:
    """quant_method as vLLM normalises it (model_arch_config_convertor._normalize_quantization_config)."""
    producer = raw.get("producer")
    body = raw.get("quantization")
    if (isinstance(producer, Mapping) and producer.get("name") == "modelopt") or (
        isinstance(body, Mapping) and "modelopt_quant_config" in body
    ):
        return "modelopt"
    method = raw.get("quant_method")
    if not isinstance(method, str) or not method:
        if "config_groups" in raw:  # old compressed-tensors configs carry no quant_method
            return "compressed-tensors"
        raise UnsupportedCheckpoint("?", "quantization_config has no quant_method")
    method = method.lower()
    if method == "compressed_tensors":
        return "compressed-tensors"
    if method == "modelopt_fp4":
        return "modelopt"
    return method


# Methods vLLM 0.33.0 knows (QuantizationMethods in model_executor/layers/quantization/__init__.py) that quantfleet does
# not size or place yet: refused by name rather than planned as something they are not.
_KNOWN_NOT_PLANNED: Final[frozenset[str]] = frozenset(
    {
        "fbgemm_fp8",
        "fp_quant",
        "modelopt_mxfp8",
        "modelopt_mixed",
        "gptq_marlin",
        "awq_marlin",
        "humming",
        "experts_int8",
        "moe_wna16",
        "torchao",
        "inc",
        "auto-round",
        "deepseek_v4_fp8",
        "online",
    }
)


def _unknown_method_reason(method: str) -> str:
    if method == "bitsandbytes":
        return (
            "vLLM 0.33.0 cannot load bitsandbytes checkpoints: 'bitsandbytes' is not one of its quantization methods "
            "and no loader implements it, so it stops at start-up with 'Unknown quantization method: bitsandbytes'. "
            "Serve the BF16 base model (precision auto) or a GPTQ/AWQ/compressed-tensors W4A16 checkpoint instead"
        )
    if method in _KNOWN_NOT_PLANNED:
        return (
            f"vLLM 0.33.0 knows the method, but quantfleet does not plan {method} checkpoints (it cannot size or "
            "place them); serve a compressed-tensors, fp8, ModelOpt, GPTQ, AWQ or MXFP4 checkpoint"
        )
    return f"vLLM 0.33.0 does not know this quantization method ('Unknown quantization method: {method}')"


def _names(raw: Any, key: str, method: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not all(isinstance(x, str) for x in raw):
        raise UnsupportedCheckpoint(method, f"{key} must be a list of module names, got {raw!r}")
    return tuple(raw)


def _int(raw: Mapping[str, Any], key: str, method: str, *, default: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsupportedCheckpoint(method, f"{key} must be an integer, got {value!r}")
    return value


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _group(value: Any, where: str, method: str) -> int | None:
    """A group size: a positive integer, or None / -1 (no groups: per channel)."""
    if value is None or value == -1:
        return None
    if not _positive(value):
        raise UnsupportedCheckpoint(method, f"{where} must be a positive integer or -1, got {value!r}")
    return int(value)


def _bool(raw: Mapping[str, Any], key: str, method: str, *, default: bool | None = None) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise UnsupportedCheckpoint(method, f"{key} must be true or false, got {value!r}")
    return value


# --- compressed-tensors --------------------------------------------------------------------------


_CT_STRATEGIES: Final[dict[str, Strategy]] = {
    "tensor": "tensor",
    "channel": "channel",
    "token": "token",
    "group": "group",
    "block": "block",
    "tensor_group": "tensor_group",
}


def _ct_args(raw: Any, where: str) -> TensorQuant | None:
    if raw is None:
        return None
    m = "compressed-tensors"
    if not isinstance(raw, Mapping):
        raise UnsupportedCheckpoint(m, f"{where} must be an object or null")
    typ = raw.get("type", "int")
    if typ not in ("float", "int"):
        raise UnsupportedCheckpoint(m, f"{where}.type {typ!r} is not float or int")
    strategy = _CT_STRATEGIES.get(str(raw.get("strategy") or "tensor"))
    if strategy is None:
        raise UnsupportedCheckpoint(m, f"{where}.strategy {raw.get('strategy')!r} is not one vLLM 0.33.0 knows")
    block = raw.get("block_structure")
    block_t = None
    if block is not None:
        if not (isinstance(block, Sequence) and len(block) == 2 and all(_positive(b) for b in block)):
            raise UnsupportedCheckpoint(m, f"{where}.block_structure must be two positive integers, got {block!r}")
        block_t = (int(block[0]), int(block[1]))
    group = _group(raw.get("group_size"), f"{where}.group_size", m)
    dynamic = raw.get("dynamic", False)
    return TensorQuant(
        type="float" if typ == "float" else "int",
        bits=_int(raw, "num_bits", m, default=8),
        strategy=strategy,
        group_size=group,
        block=block_t,
        symmetric=bool(raw.get("symmetric", True)),
        dynamic=dynamic is not False,  # NVFP4 activations say "local": dynamic per group
    )


def _parse_compressed_tensors(raw: Mapping[str, Any], model_type: str) -> CheckpointQuant:
    m = "compressed-tensors"
    sparsity = raw.get("sparsity_config")
    if isinstance(sparsity, Mapping) and sparsity.get("targets"):
        raise UnsupportedCheckpoint(
            m,
            "sparse compressed-tensors checkpoints are refused by vLLM 0.33.0 ('Sparsity support has been removed')",
        )
    groups = raw.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise UnsupportedCheckpoint(m, "config_groups is missing or empty")
    schemes: dict[tuple[TensorQuant, TensorQuant | None], list[str]] = {}
    top_format = raw.get("format")
    formats: set[str] = set()
    for name, group in groups.items():
        if not isinstance(group, Mapping):
            raise UnsupportedCheckpoint(m, f"config_groups.{name} must be an object")
        targets = _names(group.get("targets"), f"config_groups.{name}.targets", m)
        if targets and all(t.endswith("Attention") for t in targets):
            continue  # attention (KV/query) quantization groups: vLLM drops them from the linear scheme map
        w_raw = group.get("weights")
        if isinstance(w_raw, Mapping):
            actorder = w_raw.get("actorder")
            if actorder is True or actorder in ("group", "dynamic"):
                raise UnsupportedCheckpoint(
                    m,
                    f"config_groups.{name}.weights.actorder={actorder!r}: vLLM 0.33.0 refuses group/dynamic "
                    "activation ordering ('Compressed-tensors group/dynamic activation ordering ... is no longer "
                    "supported'); use a checkpoint made with actorder static, weight or null",
                )
        weights = _ct_args(w_raw, f"config_groups.{name}.weights")
        if weights is None:
            raise UnsupportedCheckpoint(m, f"config_groups.{name} quantizes no weights")
        acts = _ct_args(group.get("input_activations"), f"config_groups.{name}.input_activations")
        schemes.setdefault((weights, acts), []).extend(targets or ["Linear"])
        if isinstance(group.get("format"), str):
            formats.add(group["format"])
    if len(schemes) != 1:
        raise UnsupportedCheckpoint(
            m,
            f"{len(schemes)} config groups with different schemes (mixed precision): quantfleet plans one scheme per "
            "checkpoint",
        )
    (weights, acts), group_targets = next(iter(schemes.items()))
    fmt = next(iter(formats)) if len(formats) == 1 else top_format
    scheme = _ct_scheme(weights, acts, fmt if isinstance(fmt, str) else None)
    return CheckpointQuant(
        method=m,
        vllm_method=m,
        scheme=scheme,
        weights=weights,
        activations=acts,
        ignore=_names(raw.get("ignore"), "ignore", m),
        ignore_match="regex",
        targets=tuple(dict.fromkeys(group_targets)),
        kv_cache=_ct_kv(raw.get("kv_cache_scheme"), m),
    )


def _ct_scheme(w: TensorQuant, a: TensorQuant | None, fmt: str | None) -> ServingScheme:
    """compressed_tensors._get_scheme_from_parts, reduced to the schemes quantfleet plans."""
    m = "compressed-tensors"
    if w.type == "float" and w.bits == 4:
        if w.strategy == "group" and w.group_size == 32:
            if a is not None and a.bits == 8:
                raise UnsupportedCheckpoint(
                    m, "MXFP4 weights with FP8 activations (W4A8) are not planned by quantfleet"
                )
            return "mxfp4"
        if a is None:
            return "nvfp4-w4a16"
        if a.type != "float" or a.bits != 4:
            raise UnsupportedCheckpoint(
                m,
                "NVFP4 weights need NVFP4 activations or none (vLLM: 'For NVFP4 weights, input quantization must "
                "also be NVFP4 format, None for NVFP4A16')",
            )
        return "nvfp4"
    if w.type == "float" and w.bits == 8:
        if not w.symmetric or w.dynamic:
            raise UnsupportedCheckpoint(m, "FP8 weights must be symmetric and static for vLLM 0.33.0")
        if w.strategy == "block":
            return "fp8-block"
        if w.strategy not in ("tensor", "channel"):
            raise UnsupportedCheckpoint(m, f"FP8 weights with {w.strategy} scales are not planned by quantfleet")
        if a is None:
            return "fp8-w8a16"
        if a.type == "float" and a.bits == 8 and (a.dynamic or (a.strategy == "tensor" and a.symmetric)):
            return "fp8-w8a8"
        raise UnsupportedCheckpoint(m, "FP8 weights with non-FP8 or asymmetric static activations")
    if w.type == "int" and w.bits == 4 and a is None and w.strategy in ("group", "channel"):
        if fmt is not None and fmt != "pack-quantized":
            raise UnsupportedCheckpoint(m, f"INT4 weight-only in format {fmt!r}: vLLM serves W4A16 as pack-quantized")
        return "int4-w4a16"
    act = "16-bit" if a is None else f"{a.type}{a.bits}"
    raise UnsupportedCheckpoint(
        m,
        f"{w.type}{w.bits} weights with {act} activations are not planned by quantfleet (it plans FP8, FP8 block, "
        "INT4 weight-only, NVFP4 and MXFP4)",
    )


def _ct_kv(raw: Any, method: str) -> KvCacheQuant | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise UnsupportedCheckpoint(method, f"kv_cache_scheme must be an object or null, got {raw!r}")
    ok = (
        raw.get("num_bits") == 8
        and raw.get("type") == "float"
        and raw.get("strategy", "tensor") in ("tensor", "attn_head")
        and raw.get("symmetric", True) is True
    )
    if not ok:
        raise UnsupportedCheckpoint(
            method,
            f"kv_cache_scheme {dict(raw)} is not the 8-bit float, tensor/attn_head, symmetric scheme vLLM accepts",
        )
    return KvCacheQuant("fp8_e4m3", calibrated=True, vllm_default=True, source="kv_cache_scheme")


# --- fp8 (Fp8Config) -----------------------------------------------------------------------------


def _parse_fp8(raw: Mapping[str, Any], model_type: str) -> CheckpointQuant:
    m = "fp8"
    scheme_raw = raw.get("activation_scheme")
    if scheme_raw not in ("static", "dynamic"):
        raise UnsupportedCheckpoint(m, f"activation_scheme must be static or dynamic, got {scheme_raw!r}")
    dynamic = scheme_raw == "dynamic"
    ignore = _names(raw.get("ignored_layers"), "ignored_layers", m) or _names(
        raw.get("modules_to_not_convert"), "modules_to_not_convert", m
    )
    block = raw.get("weight_block_size")
    kv: KvCacheQuant | None = None
    if raw.get("kv_cache_scheme") is not None:
        kv = KvCacheQuant(
            "fp8_e4m3",
            calibrated=True,
            vllm_default=False,
            source=f"kv_cache_scheme: {raw['kv_cache_scheme']!r} (vLLM's Fp8Config does not read it; the checkpoint's "
            "k/v scales are loaded when --kv-cache-dtype is FP8)",
        )
    if block is not None:
        if not (isinstance(block, Sequence) and len(block) == 2 and all(_positive(b) for b in block)):
            raise UnsupportedCheckpoint(m, f"weight_block_size must be two positive integers, got {block!r}")
        if not dynamic:
            raise UnsupportedCheckpoint(
                m, "block-wise FP8 needs activation_scheme dynamic (vLLM 0.33.0 refuses static with weight_block_size)"
            )
        b = (int(block[0]), int(block[1]))
        return CheckpointQuant(
            method=m,
            vllm_method=m,
            scheme="fp8-block",
            weights=TensorQuant("float", 8, "block", block=b),
            activations=TensorQuant("float", 8, "group", group_size=b[1], dynamic=True),
            ignore=ignore,
            ignore_match="exact",
            kv_cache=kv,
        )
    return CheckpointQuant(
        method=m,
        vllm_method=m,
        scheme="fp8-w8a8",
        weights=TensorQuant("float", 8, "tensor"),
        activations=TensorQuant("float", 8, "token" if dynamic else "tensor", dynamic=dynamic),
        ignore=ignore,
        ignore_match="exact",
        kv_cache=kv,
    )


# --- ModelOpt ------------------------------------------------------------------------------------


_MODELOPT_PLANNED: Final = ("FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_PB_WO", "NVFP4", "W4A16_NVFP4")
# quant_algo values vLLM 0.33.0 accepts at all (modelopt.py QUANT_ALGOS).
_MODELOPT_KNOWN: Final = (*_MODELOPT_PLANNED, "MXFP8", "MIXED_PRECISION")


def _parse_modelopt(raw: Mapping[str, Any], model_type: str) -> CheckpointQuant:
    m = "modelopt"
    legacy = isinstance(raw.get("quantization"), Mapping)
    body: Mapping[str, Any] = raw["quantization"] if legacy else raw
    algo_raw = body.get("quant_algo")
    if not algo_raw:
        raise UnsupportedCheckpoint(m, "missing 'quant_algo' (vLLM: 'Missing quant_algo in quantization config')")
    algo = str(algo_raw).upper()
    if legacy:
        kv_algo = body.get("kv_cache_quant_algo")
        ignore = _names(body.get("exclude_modules"), "exclude_modules", m)
        if algo not in ("FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_PB_WO", "NVFP4", "MIXED_PRECISION"):
            raise UnsupportedCheckpoint(
                m,
                f"quant_algo {algo} in hf_quant_config.json: vLLM 0.33.0 maps only FP8, FP8_PER_CHANNEL_PER_TOKEN, "
                f"FP8_PB_WO, NVFP4 and MIXED_PRECISION from that file ('Unknown ModelOpt quant algo: {algo}')",
            )
        if algo == "NVFP4":
            missing = [k for k in ("group_size", "kv_cache_quant_algo", "exclude_modules") if k not in body]
            if missing:
                raise UnsupportedCheckpoint(
                    m,
                    f"NVFP4 hf_quant_config.json lacks {missing} (vLLM: 'NVFP4 quantization requires the following "
                    "fields in hf_quant_config.json')",
                )
    else:
        kv_scheme = body.get("kv_cache_scheme")
        kv_algo = (
            "FP8"
            if isinstance(kv_scheme, Mapping) and kv_scheme.get("type") == "float" and kv_scheme.get("num_bits") == 8
            else None
        )
        ignore = _names(body.get("ignore", body.get("exclude_modules")), "ignore", m)
    if algo not in _MODELOPT_KNOWN:
        raise UnsupportedCheckpoint(
            m, f"quant_algo {algo}: vLLM 0.33.0's ModelOpt support covers only {', '.join(_MODELOPT_KNOWN)}"
        )
    if algo not in _MODELOPT_PLANNED:
        raise UnsupportedCheckpoint(m, f"quant_algo {algo} is not planned by quantfleet")
    group = body.get("group_size")
    group_size = int(group) if isinstance(group, int | str) and str(group).isdigit() and int(group) > 0 else None
    vllm_method = "modelopt_fp4" if "FP4" in algo else "modelopt"
    weights: TensorQuant
    acts: TensorQuant | None
    scheme: ServingScheme
    if algo == "FP8":
        scheme, weights, acts = "fp8-w8a8", TensorQuant("float", 8, "tensor"), TensorQuant("float", 8, "tensor")
    elif algo == "FP8_PER_CHANNEL_PER_TOKEN":
        scheme = "fp8-w8a8"
        weights, acts = TensorQuant("float", 8, "channel"), TensorQuant("float", 8, "token", dynamic=True)
    elif algo == "FP8_PB_WO":
        scheme = "fp8-block"
        weights = TensorQuant("float", 8, "block", block=(128, 128))
        acts = TensorQuant("float", 8, "group", group_size=128, dynamic=True)
    else:
        g = group_size or 16
        weights = TensorQuant("float", 4, "tensor_group", group_size=g)
        weight_only = algo == "W4A16_NVFP4" or _modelopt_groups_weight_only(body)
        scheme = "nvfp4-w4a16" if weight_only else "nvfp4"
        acts = None if weight_only else TensorQuant("float", 4, "tensor_group", group_size=g, dynamic=True)
    kv: KvCacheQuant | None = None
    if kv_algo is not None:
        kv_name = str(kv_algo).upper()
        if kv_name not in ("FP8", "NVFP4"):
            raise UnsupportedCheckpoint(m, f"kv_cache_quant_algo {kv_algo!r} is not FP8 or NVFP4")
        kv = KvCacheQuant(
            "fp8_e4m3" if kv_name == "FP8" else "nvfp4",
            calibrated=True,
            vllm_default=True,
            source="kv_cache_quant_algo" if legacy else "kv_cache_scheme",
        )
    return CheckpointQuant(
        method=m,
        vllm_method=vllm_method,
        scheme=scheme,
        weights=weights,
        activations=acts,
        ignore=ignore,
        ignore_match="modelopt",
        kv_cache=kv,
        algo=algo,
    )


def _modelopt_groups_weight_only(body: Mapping[str, Any]) -> bool:
    """vLLM treats a quant_algo NVFP4 config whose groups all have input_activations null as W4A16_NVFP4."""
    groups = body.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        return False
    return all(isinstance(g, Mapping) and g.get("input_activations") is None for g in groups.values())


# --- GPTQ / AWQ ----------------------------------------------------------------------------------


def _parse_gptq(raw: Mapping[str, Any], model_type: str) -> CheckpointQuant:
    m = "gptq"
    bits = _int(raw, "bits", m)
    group = _int(raw, "group_size", m)
    _group(group, "group_size", m)
    desc_act = _bool(raw, "desc_act", m)
    sym = _bool(raw, "sym", m)
    if (bits, sym) not in ((4, True), (8, True)):
        raise UnsupportedCheckpoint(
            m, f"vLLM 0.33.0 refuses it: 'Unsupported quantization config: bits={bits}, sym={sym}'"
        )
    if desc_act and group != -1:
        raise UnsupportedCheckpoint(
            m,
            "desc_act=true with group_size "
            f"{group}: vLLM 0.33.0 refuses it ('GPTQ group activation ordering (desc_act=True) is no longer supported. "
            "Use a checkpoint with static activation ordering or desc_act=False.')",
        )
    if bits == 8:
        raise UnsupportedCheckpoint(m, "8-bit weight-only GPTQ is not planned by quantfleet (it plans INT4 W4A16)")
    ignore: list[str] = []
    dynamic = raw.get("dynamic")
    if isinstance(dynamic, Mapping):
        for key in dynamic:
            if isinstance(key, str) and key.startswith("-:"):
                ignore.append("re:" + key[2:])
            else:
                raise UnsupportedCheckpoint(
                    m, "per-module GPTQModel overrides ('dynamic') are not planned by quantfleet"
                )
    return CheckpointQuant(
        method=m,
        vllm_method="auto_gptq",
        scheme="int4-w4a16",
        weights=TensorQuant("int", 4, "channel" if group == -1 else "group", group_size=None if group == -1 else group),
        activations=None,
        ignore=tuple(ignore),
        ignore_match="regex",
        quantized_lm_head=bool(raw.get("lm_head", False)),
        notes=("desc_act=true (per-channel, accepted)",) if desc_act else (),
    )


def _parse_awq(raw: Mapping[str, Any], model_type: str) -> CheckpointQuant:
    m = "awq"
    bits = _int(raw, "w_bit" if "w_bit" in raw else "bits", m)
    if bits != 4:
        raise UnsupportedCheckpoint(
            m,
            "vLLM 0.33.0 refuses it: 'Currently, only 4-bit weight quantization is supported for AWQ, but got "
            f"{bits} bits.'",
        )
    group = _int(raw, "q_group_size" if "q_group_size" in raw else "group_size", m)
    _group(group, "group_size", m)
    zero_point = _bool(raw, "zero_point", m)
    return CheckpointQuant(
        method=m,
        vllm_method="auto_awq",
        scheme="int4-w4a16",
        weights=TensorQuant(
            "int",
            4,
            "channel" if group == -1 else "group",
            group_size=None if group == -1 else group,
            symmetric=not zero_point,
        ),
        activations=None,
        ignore=_names(raw.get("modules_to_not_convert"), "modules_to_not_convert", m),
        ignore_match="substring",
        quantized_lm_head=bool(raw.get("lm_head", False)),
    )


# --- MXFP4 (gpt-oss) -----------------------------------------------------------------------------


def _parse_mxfp4(raw: Mapping[str, Any], model_type: str) -> CheckpointQuant:
    listed = _names(raw.get("modules_to_not_convert"), "modules_to_not_convert", "mxfp4")
    return CheckpointQuant(
        method="mxfp4",
        vllm_method="gpt_oss_mxfp4" if model_type == "gpt_oss" else "mxfp4",
        scheme="mxfp4-experts",
        weights=TensorQuant("float", 4, "group", group_size=32),
        activations=None,
        ignore=listed,
        ignore_match="fixed",
        notes=(
            ("modules_to_not_convert is not read by vLLM's Mxfp4Config: only routed experts are MXFP4",)
            if listed
            else ()
        ),
    )


# --- AMD Quark -----------------------------------------------------------------------------------


def _parse_quark(raw: Mapping[str, Any], model_type: str) -> CheckpointQuant:
    """AMD Quark (`quant_method: quark`), as vLLM 0.33.0's QuarkConfig reads it (quark/quark.py): FP8 W8A8 (per-tensor
    or per-channel weights; static per-tensor or dynamic per-tensor/per-token inputs), FP8 128x128 blocks, and OCP
    MXFP4 W4A4. Quark writes dynamic per-token inputs as `qscheme: per_channel` (ch_axis 1), which vLLM maps to its
    per-token key (`_is_fp8_w8a8`). FP8 tensors are OCP e4m3fn; on gfx942 vLLM converts them to e4m3fnuz at load
    (docs/quark.md)."""
    m = "quark"
    if not isinstance(raw.get("export"), Mapping):
        raise UnsupportedCheckpoint(m, "missing 'export' (QuarkConfig requires it)")
    glob = raw.get("global_quant_config")
    export = raw["export"]
    kv_group = export.get("kv_cache_group") or []
    layers = raw.get("layer_quant_config") or {}
    type_layers = raw.get("layer_type_quant_config") or {}
    if not isinstance(glob, Mapping) or not isinstance(layers, Mapping) or not isinstance(type_layers, Mapping):
        raise UnsupportedCheckpoint(m, "global_quant_config / layer_quant_config must be JSON objects")
    kv_layers = {k: v for k, v in layers.items() if any(fnmatch.fnmatchcase(str(k), str(p)) for p in kv_group)}
    if any(v != glob for k, v in layers.items() if k not in kv_layers) or any(v != glob for v in type_layers.values()):
        raise UnsupportedCheckpoint(m, "per-layer Quark schemes (layer_quant_config) are not planned by quantfleet")
    for name, cfg in kv_layers.items():
        # vLLM takes the KV-cache scheme from these entries' output_tensors and drops it (quark.py:307-338); the
        # rest must be the global scheme, or the k/v projections would be quantized differently from the others.
        out = cfg.get("output_tensors") if isinstance(cfg, Mapping) else None
        if not isinstance(out, Mapping) or {**cfg, "output_tensors": None} != {**glob, "output_tensors": None}:
            raise UnsupportedCheckpoint(m, f"layer_quant_config {name!r}: per-layer Quark schemes are not planned")
        if out.get("dtype") != "fp8_e4m3" or out.get("qscheme") != "per_tensor":
            raise UnsupportedCheckpoint(
                m, f"KV cache {out.get('dtype')} {out.get('qscheme')}: vLLM 0.33.0 takes only fp8_e4m3 per_tensor"
            )
    if kv_group and not kv_layers:
        raise UnsupportedCheckpoint(
            m, "kv_cache_group without matching layer_quant_config entries (vLLM refuses it at start-up)"
        )
    w, a = glob.get("weight"), glob.get("input_tensors")
    dtype = w.get("dtype") if isinstance(w, Mapping) else None
    kv = (
        KvCacheQuant("fp8_e4m3", calibrated=True, vllm_default=False, source="export.kv_cache_group")
        if kv_group
        else None
    )
    ignore = _names(raw.get("exclude"), "exclude", m)
    if isinstance(w, Mapping) and dtype == "fp4":
        return _parse_quark_mxfp4(w, a, ignore, kv)
    if not isinstance(w, Mapping) or dtype != "fp8_e4m3":
        raise UnsupportedCheckpoint(
            m, f"Quark {dtype} weights are not planned by quantfleet (it plans Quark FP8 and OCP MXFP4)"
        )
    if not isinstance(a, Mapping) or a.get("dtype") != "fp8_e4m3":
        raise UnsupportedCheckpoint(m, "Quark FP8 weights without FP8 inputs are not planned by quantfleet")
    qscheme = w.get("qscheme")
    block = qscheme == "per_block"
    weights = (
        TensorQuant("float", 8, "block", block=(128, 128))
        if block
        else TensorQuant("float", 8, "channel" if qscheme == "per_channel" else "tensor")
    )
    dynamic = bool(a.get("is_dynamic", False))
    per_token = dynamic and a.get("qscheme") in ("per_channel", "per_token")
    return CheckpointQuant(
        method=m,
        vllm_method=m,
        scheme="fp8-block" if block else "fp8-w8a8",
        weights=weights,
        activations=TensorQuant("float", 8, "token" if per_token else "tensor", dynamic=dynamic),
        ignore=ignore,
        ignore_match="regex",
        kv_cache=kv,
    )


def _parse_quark_mxfp4(
    w: Mapping[str, Any], a: Any, ignore: tuple[str, ...], kv: KvCacheQuant | None
) -> CheckpointQuant:
    """OCP MXFP4 W4A4 (Quark's `mxfp4` scheme): vLLM 0.33.0 `_is_w_ocp_mx_a_x` / `ocp_mx_weight_dtype_and_rows`."""
    m = "quark"
    if w.get("qscheme") != "per_group" or w.get("group_size") != 32 or w.get("scale_format") != "e8m0":
        raise UnsupportedCheckpoint(
            m, "Quark fp4 weights that are not OCP MX (per_group, group_size 32, e8m0 scales) are not planned"
        )
    if not isinstance(a, Mapping) or a.get("dtype") != "fp4":
        got = a.get("dtype") if isinstance(a, Mapping) else None
        raise UnsupportedCheckpoint(
            m, f"Quark MXFP4 weights with {got or '16-bit'} inputs are not planned by quantfleet (it plans MXFP4 W4A4)"
        )
    if not a.get("is_dynamic"):
        raise UnsupportedCheckpoint(m, "static MXFP4 inputs: vLLM 0.33.0 refuses OCP MX with static input scales")
    return CheckpointQuant(
        method=m,
        vllm_method=m,
        scheme="mxfp4",
        weights=TensorQuant("float", 4, "group", group_size=32),
        activations=TensorQuant("float", 4, "group", group_size=32, dynamic=True),
        ignore=ignore,
        ignore_match="regex",
        kv_cache=kv,
    )


_PARSERS: Final[dict[str, Callable[[Mapping[str, Any], str], CheckpointQuant]]] = {
    "compressed-tensors": _parse_compressed_tensors,
    "fp8": _parse_fp8,
    "modelopt": _parse_modelopt,
    "gptq": _parse_gptq,
    "auto_gptq": _parse_gptq,
    "awq": _parse_awq,
    "auto_awq": _parse_awq,
    "mxfp4": _parse_mxfp4,
    "quark": _parse_quark,
}


# ----------------------------------------------------------------------------------------------- calibration

# The schemes quantfleet's Quark adapter writes.
_QUARK_CALIBRATED: Final[tuple[Scheme, ...]] = tuple(scheme for scheme, _ in QUARK)


def from_calibration(
    scheme: Scheme,
    checkpoint_format: CheckpointFormat,
    *,
    kv_cache_scales: bool = False,
    ignore: Sequence[str] = ("lm_head",),
    algorithm: str | None = None,
) -> CheckpointQuant:
    """What the calibration Job's checkpoint holds: `scheme` written by llm-compressor (compressed-tensors), ModelOpt
    (modelopt) or AMD Quark (quark), with the recipe's `ignore` patterns (llm-compressor `re:` syntax) left
    unquantized (Quark's export lists the matching module names, which the same rule matches)."""
    ignore_t = tuple(ignore)
    kv_source = {
        "compressed-tensors": "kv_cache_scheme",
        "modelopt": "kv_cache_quant_algo",
        "quark": "export.kv_cache_group",
    }[checkpoint_format]
    kv = (
        KvCacheQuant("fp8_e4m3", calibrated=True, vllm_default=checkpoint_format != "quark", source=kv_source)
        if kv_cache_scales
        else None
    )
    fp8_group = TensorQuant("float", 8, "group", group_size=128, dynamic=True)
    shapes: dict[Scheme, tuple[ServingScheme, TensorQuant, TensorQuant | None, str]] = {
        "fp8-dynamic": (
            "fp8-w8a8",
            TensorQuant("float", 8, "channel"),
            TensorQuant("float", 8, "token", dynamic=True),
            "FP8_PER_CHANNEL_PER_TOKEN",
        ),
        "fp8-static": ("fp8-w8a8", TensorQuant("float", 8, "tensor"), TensorQuant("float", 8, "tensor"), "FP8"),
        "fp8-block": ("fp8-block", TensorQuant("float", 8, "block", block=(128, 128)), fp8_group, "FP8_PB_WO"),
        "w4a16": (
            "int4-w4a16",
            TensorQuant("int", 4, "group", group_size=128, symmetric=algorithm != "awq"),
            None,
            "W4A16_AWQ",
        ),
        "nvfp4": (
            "nvfp4",
            TensorQuant("float", 4, "tensor_group", group_size=16),
            TensorQuant("float", 4, "tensor_group", group_size=16, dynamic=True),
            "NVFP4",
        ),
        "nvfp4a16": ("nvfp4-w4a16", TensorQuant("float", 4, "tensor_group", group_size=16), None, "W4A16_NVFP4"),
        "mxfp4": (
            "mxfp4",
            TensorQuant("float", 4, "group", group_size=32),
            TensorQuant("float", 4, "group", group_size=32, dynamic=True),
            "MXFP4",
        ),
    }
    serving, weights, acts, algo = shapes[scheme]
    method, vllm_method, modelopt_algo = "compressed-tensors", "compressed-tensors", None
    if checkpoint_format == "quark":
        if scheme not in _QUARK_CALIBRATED:
            raise UnsupportedCheckpoint(
                "quark",
                f"a Quark {scheme} checkpoint: quantfleet makes Quark checkpoints only for "
                f"{', '.join(_QUARK_CALIBRATED)} (AMD targets)",
            )
        method = vllm_method = "quark"
    elif checkpoint_format == "modelopt":
        if algo not in _MODELOPT_KNOWN:
            raise UnsupportedCheckpoint(
                "modelopt",
                f"a ModelOpt {scheme} checkpoint: vLLM 0.33.0's ModelOpt support covers only "
                f"{', '.join(_MODELOPT_KNOWN)} (no INT4-AWQ or MXFP4 algo), so it cannot serve it; calibrate it with "
                "llm-compressor",
            )
        method, vllm_method, modelopt_algo = "modelopt", "modelopt_fp4" if "FP4" in algo else "modelopt", algo
    return CheckpointQuant(
        method=method,
        vllm_method=vllm_method,
        scheme=serving,
        weights=weights,
        activations=acts,
        ignore=ignore_t,
        ignore_match="regex",
        kv_cache=kv,
        source="calibration",
        algo=modelopt_algo,
    )
