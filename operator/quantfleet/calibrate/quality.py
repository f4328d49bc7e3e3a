"""Perplexity on held-out text: the quality gate between calibration and publication.

A broken calibration does not fail loudly: the tools happily write a checkpoint whose
outputs are NaN or garbage. So a non-finite perplexity is a hard failure, and the
recipe's `max_perplexity_delta` bounds how much worse the quantized model may be.
Both tools leave the model in memory in a simulated-quantization state (compressed-
tensors QDQ forward, ModelOpt fake-quant), which is what is measured here, before the
checkpoint is written.
"""

from __future__ import annotations

import math
from typing import Any

from quantfleet.calibrate.progress import Progress


class QualityGateFailed(RuntimeError):
    pass


def perplexity(model: Any, blocks: list[list[int]], device: Any, phase: str = "eval") -> tuple[float, int]:
    """exp(mean next-token NLL) over `blocks`; returns (perplexity, tokens scored)."""
    import torch

    total_nll = 0.0
    total_tokens = 0
    progress = Progress(phase, len(blocks), "samples", every_s=15.0)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for block in blocks:
            ids = torch.tensor([block], dtype=torch.long, device=device)
            logits = model(input_ids=ids).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
            total_nll += float(nll)
            total_tokens += ids.shape[1] - 1
            progress.step()
    model.train(was_training)
    mean = total_nll / max(1, total_tokens)
    if math.isnan(mean):
        return float("nan"), total_tokens
    return (math.exp(mean) if mean < 700 else float("inf")), total_tokens


def check(base: float, quantized: float, max_delta: float | None) -> float:
    """Return delta = quantized/base - 1; raise QualityGateFailed on non-finite values or a breached gate."""
    if not math.isfinite(base):
        raise QualityGateFailed(f"base model perplexity is not finite ({base}): the source model or data is broken")
    if not math.isfinite(quantized):
        raise QualityGateFailed(f"quantized model perplexity is not finite ({quantized}): the calibration is broken")
    delta = quantized / base - 1.0
    if max_delta is not None and delta > max_delta:
        raise QualityGateFailed(
            f"perplexity rose {delta:+.2%} (base {base:.4g} -> quantized {quantized:.4g}), "
            f"above max_perplexity_delta {max_delta:.2%}"
        )
    return delta
