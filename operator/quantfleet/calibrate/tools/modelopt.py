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
import re
from importlib.metadata import version as dist_version
from typing import Any

from quantfleet.api.recipe import CalibrationRecipe, Tool
from quantfleet.api.schemes import ignore_patterns, support
from quantfleet.calibrate.progress import Progress

log = logging.getLogger("quantfleet.calibrate")


def _matches(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name) is not None
    return name == pattern or name.endswith("." + pattern)


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
        if mod_name and any(_matches(p, mod_name) for p in patterns):
            quant_cfg.append({"quantizer_name": f"{mod_name}.*", "enable": False})
    cfg["quant_cfg"] = quant_cfg
    algorithm = cfg.get("algorithm", "max")
    algorithm = {"method": algorithm} if isinstance(algorithm, str) or algorithm is None else dict(algorithm)
    if is_moe and recipe.calibrate_all_experts:
        algorithm["moe_calib_experts_ratio"] = 1.0
    cfg["algorithm"] = algorithm
    return cfg


def all_expert_hooks(model: Any) -> list[Any]:
    """Route every calibration token through every expert where ModelOpt's own option cannot.

    ModelOpt 0.47 applies `moe_calib_experts_ratio` only to MoE blocks it wraps as
    `_QuantSparseSequentialMoe`, which requires iterable experts; transformers 5 stores
    experts fused (3-D tensors), so on Qwen3-MoE / Mixtral the option is silently a no-op
    (the coverage hooks show calibrated == routed). For such blocks a pre-hook runs the
    experts once more with the router widened to all experts, output discarded, before
    the block's normal forward; the router's real choice still produces the output.
    """
    from quantfleet.calibrate.coverage import find_moe_layers

    handles = []
    for layer in find_moe_layers(model):
        block = model.get_submodule(layer.name)
        if hasattr(block, "_moe_calib_experts_ratio"):
            continue  # ModelOpt handles this block itself
        router = layer.router
        if not (hasattr(router, "top_k") and hasattr(router, "num_experts")):
            log.warning("modelopt all-expert calibration unavailable for %s (router has no top_k)", layer.name)
            continue

        def pre_hook(mod: Any, args: tuple[Any, ...], router: Any = router) -> None:
            hidden = args[0].reshape(-1, args[0].shape[-1])
            top_k = router.top_k
            router.top_k = router.num_experts
            try:
                _, weights, index = router(hidden)
                mod.experts(hidden, index, weights)
            finally:
                router.top_k = top_k

        handles.append(block.register_forward_pre_hook(pre_hook))
    if handles:
        log.info(
            "modelopt all-expert calibration: quantfleet widens routing on %d fused-expert MoE block(s)", len(handles)
        )
    return handles


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
            handles = all_expert_hooks(m) if (is_moe and recipe.calibrate_all_experts) else []
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
