"""llm-compressor: `oneshot` with QuantizationModifier / GPTQModifier / AWQModifier.

MoE experts are linearized (one Linear per projection per expert) before `oneshot`,
exactly as `oneshot` would do itself, so the coverage hooks can sit on each expert's
input; `moe_calibrate_all_experts` follows the recipe. Routers and lm_head are ignored.
The checkpoint is compressed-tensors (`quant_method: compressed-tensors`), experts split.
"""

from __future__ import annotations

from importlib.metadata import version as dist_version
from typing import Any

from quantfleet.api.recipe import CalibrationRecipe, Tool
from quantfleet.api.schemes import ignore_patterns, support
from quantfleet.calibrate.progress import Progress


def kv_cache_args() -> Any:
    from compressed_tensors.quantization import QuantizationArgs

    return QuantizationArgs(num_bits=8, type="float", strategy="tensor", dynamic=False, symmetric=True)


def build_modifiers(recipe: CalibrationRecipe, model_type: str) -> list[Any]:
    """The llm-compressor recipe (list of modifiers) for a CalibrationRecipe."""
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    plan = support("llm-compressor", recipe.scheme, recipe.algorithm)
    ignore = ignore_patterns(model_type, recipe.ignore)
    kv = {"kv_cache_scheme": kv_cache_args()} if recipe.kv_cache_fp8 else {}
    if plan.algorithm == "gptq":
        return [GPTQModifier(targets="Linear", scheme=plan.preset, ignore=ignore, **kv)]
    if plan.algorithm == "awq":
        from llmcompressor.modifiers.transform.awq import AWQModifier

        return [AWQModifier(), QuantizationModifier(targets="Linear", scheme=plan.preset, ignore=ignore, **kv)]
    return [QuantizationModifier(targets="Linear", scheme=plan.preset, ignore=ignore, **kv)]


def calibration_dataset(calib: list[list[int]]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": calib, "attention_mask": [[1] * len(b) for b in calib]})


class LLMCompressorAdapter:
    name: Tool = "llm-compressor"

    def version(self) -> str:
        return dist_version("llmcompressor")

    def prepare(self, model: Any) -> None:
        from llmcompressor.modeling.moe.linearize import get_non_linearized_moes, linearize_moe

        if get_non_linearized_moes(model):
            linearize_moe(model)

    def __init__(self) -> None:
        from llmcompressor.modifiers.utils.hooks import HooksMixin

        self._hooks_mixin = HooksMixin

    def counting_allowed(self) -> bool:
        return not self._hooks_mixin._HOOKS_DISABLED  # propagation passes run with modifier hooks disabled

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
        from llmcompressor.entrypoints.oneshot import oneshot

        oneshot(
            model=model,
            tokenizer=tokenizer,
            recipe=build_modifiers(recipe, model.config.model_type),
            dataset=calibration_dataset(calib),
            num_calibration_samples=len(calib),
            max_seq_length=recipe.max_seq_length,
            shuffle_calibration_samples=False,
            moe_calibrate_all_experts=recipe.calibrate_all_experts,
        )

    def save(self, model: Any, tokenizer: Any, out_dir: str) -> None:
        model.save_pretrained(out_dir, save_compressed=True)
        tokenizer.save_pretrained(out_dir)
