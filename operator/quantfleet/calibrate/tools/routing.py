"""All-expert calibration where a tool cannot do it itself: widen each MoE block's routing for one extra pass.

ModelOpt and Quark both calibrate an expert only on the tokens the router sends it, so a rarely chosen expert
gets scales from a handful of tokens (or none). The hooks here run every calibration token through every expert
once more before the block's normal forward; the output of that pass is discarded, so the model's output is
unchanged while every expert's observers see every token. The router hook of `coverage.ExpertCounter` counts the
widened routing as "forced".
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("quantfleet.calibrate")


def all_expert_hooks(model: Any, tool: str) -> list[Any]:
    """Route every calibration token through every expert where the tool's own option cannot.

    ModelOpt 0.47 applies `moe_calib_experts_ratio` only to MoE blocks it wraps as
    `_QuantSparseSequentialMoe`, which requires iterable experts; transformers 5 stores
    experts fused (3-D tensors), so on Qwen3-MoE / Mixtral the option is silently a no-op
    (the coverage hooks show calibrated == routed). For such blocks a pre-hook runs the
    experts once more with the router widened to all experts, output discarded, before
    the block's normal forward; the router's real choice still produces the output. Quark 0.13 has no
    all-expert option at all; its per-expert modules (`preprocess_for_quantization`) keep the
    `experts(hidden, index, weights)` call, so the same pass covers them.
    """
    from quantfleet.calibrate.coverage import find_moe_layers

    handles = []
    for layer in find_moe_layers(model):
        block = model.get_submodule(layer.name)
        if hasattr(block, "_moe_calib_experts_ratio"):
            continue  # ModelOpt handles this block itself
        router = layer.router
        if not (hasattr(router, "top_k") and hasattr(router, "num_experts")):
            log.warning("%s all-expert calibration unavailable for %s (router has no top_k)", tool, layer.name)
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
        log.info("%s all-expert calibration: quantfleet widens routing on %d MoE block(s)", tool, len(handles))
    return handles
