"""AMD Quark 0.13: `ModelQuantizer.quantize_model` with a `QConfig`, then `export_safetensors`.

For AMD targets (docs/quark.md). The config is one global `QLayerConfig` taken from Quark's own scheme templates
(`schemes.QUARK`: `fp8` = FP8 per-tensor static weights and inputs, `ptpc_fp8` = FP8 per-channel weights + dynamic
per-token inputs, `mxfp4` = OCP MXFP4 weights + dynamic MXFP4 inputs). `prepare` runs Quark's
`preprocess_for_quantization`, which splits transformers-5 fused experts into one Linear per expert projection (and
turns Qwen3-MoE routers into Linears, which the ignore list keeps in BF16). The recipe's ignore patterns (`re:`
syntax) become the exact module names of Quark's `exclude`. FP8 KV-cache scales (fp8 schemes only) follow Quark's LLM
template: a static FP8 output quantizer on every k/v projection, exported as `output_scale` with
`export.kv_cache_group`. Quark has no all-expert calibration option, so
quantfleet's widened-routing pass (`tools.routing`) runs during calibration when the recipe asks for it.

The export writes `quantization_config` with `quant_method: quark` into config.json, experts split per expert,
FP8 tensors as OCP float8_e4m3fn: vLLM 0.33.0's ROCm build converts them to e4m3fnuz at load on gfx942 (MI300X) and
uses them as they are on gfx950 (MI355X).
"""

from __future__ import annotations

from importlib.metadata import version as dist_version
from typing import Any

from quantfleet.api.recipe import CalibrationRecipe, Tool
from quantfleet.api.schemes import ignore_pattern_matches, ignore_patterns, support
from quantfleet.calibrate.progress import Progress
from quantfleet.calibrate.tools.routing import all_expert_hooks


def excluded_modules(model: Any, patterns: list[str]) -> list[str]:
    """The Linear modules (full names) any of `patterns` matches: Quark's `exclude` list, in model order.

    Only Linear layers: Quark quantizes nothing else, and a router that is not a Linear in transformers 5 (Mixtral's
    `MixtralTopKRouter`) stays in full precision in vLLM too (`models/mixtral.py:109-116`: the gate gets no quant
    config)."""
    import torch

    return [
        name
        for name, module in model.named_modules()
        if name and isinstance(module, torch.nn.Linear) and any(ignore_pattern_matches(p, name) for p in patterns)
    ]


def build_config(recipe: CalibrationRecipe, model: Any) -> Any:
    """The Quark `QConfig` for a recipe (on a model already through `preprocess_for_quantization`)."""
    from quark.torch.quantization.config.config import QConfig
    from quark.torch.quantization.config.template import QuantizationSchemeCollection

    plan = support("quark", recipe.scheme, recipe.algorithm)
    layer = QuantizationSchemeCollection().get_scheme(plan.preset).config
    exclude = excluded_modules(model, ignore_patterns(model.config.model_type, recipe.ignore))
    if not recipe.kv_cache_fp8:
        return QConfig(global_quant_config=layer, exclude=exclude)
    if not recipe.scheme.startswith("fp8") or any(n.endswith((".k_proj", ".v_proj")) for n in exclude):
        raise ValueError(
            "Quark FP8 KV-cache scales need FP8-quantized k_proj/v_proj layers (the fp8 schemes, attention not ignored)"
        )
    return QConfig(
        global_quant_config=layer,
        exclude=exclude,
        layer_quant_config=kv_cache_layers(layer),
        kv_cache_quant_config=kv_cache_layers(layer),
        kv_cache_group=list(KV_CACHE_GROUP),
    )


# The k/v projections whose outputs are the KV cache: Quark's LLM template patterns, which vLLM's QuarkConfig reads
# back from `export.kv_cache_group` (quark/quark.py:269-345) and whose `output_scale` it loads as k_scale / v_scale.
KV_CACHE_GROUP = ("*k_proj", "*v_proj")


def kv_cache_layers(layer: Any) -> dict[str, Any]:
    """Quark's FP8 KV-cache recipe (`LLMTemplate._set_kv_cache_config`): each k/v projection keeps the global weight
    and input config and adds a static per-tensor FP8 output quantizer."""
    from quark.torch.quantization.config.config import FP8E4M3PerTensorSpec, QLayerConfig

    kv = FP8E4M3PerTensorSpec(observer_method="min_max", is_dynamic=False).to_quantization_spec()
    return {
        pattern: QLayerConfig(weight=layer.weight, input_tensors=layer.input_tensors, output_tensors=kv)
        for pattern in KV_CACHE_GROUP
    }


class QuarkAdapter:
    name: Tool = "quark"

    def __init__(self) -> None:
        self._in_quantize = False

    def version(self) -> str:
        return dist_version("amd-quark")

    def prepare(self, model: Any) -> None:
        from quark.torch.utils.llm import preprocess_for_quantization

        preprocess_for_quantization(model)

    def counting_allowed(self) -> bool:
        # quantize_model runs no forward pass but calibration ones (no GPTQ/AWQ-style algorithm is configured).
        return self._in_quantize

    def quantize(
        self,
        model: Any,
        tokenizer: Any,
        calib: list[list[int]],
        recipe: CalibrationRecipe,
        is_moe: bool,
        device: Any,
        progress: Progress,
    ) -> None:
        import torch
        from quark.torch import ModelQuantizer

        config = build_config(recipe, model)
        data = [torch.tensor([block], dtype=torch.long, device=device) for block in calib]
        handles = all_expert_hooks(model, "quark") if (is_moe and recipe.calibrate_all_experts) else []
        self._in_quantize = True
        try:
            with torch.no_grad():
                ModelQuantizer(config).quantize_model(model, data)
        finally:
            self._in_quantize = False
            for h in handles:
                h.remove()

    def save(self, model: Any, tokenizer: Any, out_dir: str) -> None:
        from quark.torch import export_safetensors

        export_safetensors(model, out_dir)
        tokenizer.save_pretrained(out_dir)
