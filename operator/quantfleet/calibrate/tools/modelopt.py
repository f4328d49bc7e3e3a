"""NVIDIA ModelOpt: `mtq.quantize` with a forward loop, then `export_hf_checkpoint`.

The config comes from `schemes.MODELOPT` (NVFP4 uses the MLP-only config on MoE models),
FP8_KV_CFG is appended when FP8 KV-cache scales are asked for, the recipe's ignore
patterns become disabled quantizers, and all-expert calibration is ModelOpt 0.47's
`moe_calib_experts_ratio=1.0` on the algorithm, plus quantfleet's own widened-routing
pass on fused (transformers 5) experts, which that option does not reach. The export writes `hf_quant_config.json`
and `quantization_config` with `quant_method: modelopt`, experts split per expert.
"""

from __future__ import annotations

import copy
import logging
from importlib.metadata import version as dist_version
from typing import Any

from quantfleet.api.recipe import CalibrationRecipe, Tool
from quantfleet.api.schemes import ignore_pattern_matches, ignore_patterns, support
from quantfleet.calibrate.progress import Progress
from quantfleet.calibrate.tools.routing import all_expert_hooks

log = logging.getLogger("quantfleet.calibrate")


def build_config(recipe: CalibrationRecipe, model: Any, is_moe: bool) -> dict[str, Any]:
    import modelopt.torch.quantization as mtq

    plan = support("modelopt", recipe.scheme, recipe.algorithm)
    name = plan.moe_preset if (is_moe and plan.moe_preset) else plan.preset
    cfg: dict[str, Any] = copy.deepcopy(getattr(mtq, name))
    quant_cfg = list(cfg["quant_cfg"])
    if recipe.kv_cache_fp8:
        quant_cfg.extend(copy.deepcopy(mtq.FP8_KV_CFG["quant_cfg"]))
    patterns = ignore_patterns(model.config.model_type, recipe.ignore)
    for mod_name, _ in model.named_modules():
        if mod_name and any(ignore_pattern_matches(p, mod_name) for p in patterns):
            quant_cfg.append({"quantizer_name": f"{mod_name}.*", "enable": False})
    cfg["quant_cfg"] = quant_cfg
    algorithm = cfg.get("algorithm", "max")
    algorithm = {"method": algorithm} if isinstance(algorithm, str) or algorithm is None else dict(algorithm)
    if is_moe and recipe.calibrate_all_experts:
        algorithm["moe_calib_experts_ratio"] = 1.0
    cfg["algorithm"] = algorithm
    return cfg


class ModelOptAdapter:
    name: Tool = "modelopt"

    def __init__(self) -> None:
        self._in_loop = False
        self._loops = 0

    def version(self) -> str:
        return dist_version("nvidia-modelopt")

    def prepare(self, model: Any) -> None:
        return None

    def counting_allowed(self) -> bool:
        return self._in_loop

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
        import modelopt.torch.quantization as mtq
        import torch

        def forward_loop(m: Any) -> None:
            # Some algorithms (AWQ) call the loop more than once; count distinct tokens: the first pass.
            self._in_loop = self._loops == 0
            self._loops += 1
            handles = all_expert_hooks(m, "modelopt") if (is_moe and recipe.calibrate_all_experts) else []
            try:
                with torch.no_grad():
                    for block in calib:
                        m(input_ids=torch.tensor([block], dtype=torch.long, device=device))
            finally:
                self._in_loop = False
                for h in handles:
                    h.remove()

        mtq.quantize(model, build_config(recipe, model, is_moe), forward_loop)

    def save(self, model: Any, tokenizer: Any, out_dir: str) -> None:
        from modelopt.torch.export import export_hf_checkpoint

        export_hf_checkpoint(model, export_dir=out_dir)
        tokenizer.save_pretrained(out_dir)
