"""Expert coverage: how many calibration tokens every MoE expert actually saw.

The router sends each token to its top-k experts, so during calibration some experts
see hundreds of tokens and some none, and an expert calibrated on nothing gets garbage
scales. Both tools have an all-expert mode that pushes every calibration token through
every expert. This module measures, with forward hooks and per MoE layer:

* routed  - tokens the router assigned to each expert (what the expert would see with
            the all-expert mode off), from the router's own top-k output;
* calibrated - tokens each expert was calibrated on:
    - llm-compressor (experts linearized into one Linear per projection): counted at the
      input of each expert's first projection, so it is exactly what its observers saw;
    - ModelOpt (fused experts): ModelOpt widens the router's top-k during calibration
      when `moe_calib_experts_ratio` is set; the widened router outputs are counted
      separately ("forced"). Top-k with a larger k contains the smaller k's choice, so
      the widened counts are the tokens the expert saw; without widening, the routed ones.
    - Quark (per-expert modules held by one container module, not a ModuleList): counted
      like ModelOpt, from the router, widened by quantfleet's pass (`tools/routing.py`).

Counting happens only while `active` is set and the tool says the pass is a calibration
pass (llm-compressor's propagation passes run with its hooks disabled and are skipped).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantfleet.api.manifest import ExpertCoverage, ExpertLayerCoverage

ROUTER_CHILD_NAMES = ("gate", "router")
_LAYER_RE = re.compile(r"layers\.(\d+)\.")


@dataclass
class MoELayer:
    index: int
    name: str  # module path of the MoE block
    num_experts: int
    top_k: int
    router: Any
    experts: Any
    routed: Any = None  # torch.LongTensor[num_experts]
    forced: Any = None
    per_expert: Any = None
    per_expert_hooked: bool = False


def _num_experts(block: Any, router: Any, config: Any) -> int:
    for obj in (router, block, getattr(block, "experts", None), config):
        for attr in ("num_experts", "n_routed_experts", "num_local_experts"):
            v = getattr(obj, attr, None)
            if isinstance(v, int) and v > 0:
                return v
    experts = getattr(block, "experts", None)
    if experts is not None and hasattr(experts, "__len__"):
        return len(experts)
    raise ValueError(f"cannot tell how many experts {type(block).__name__} has")


def _top_k(block: Any, router: Any, config: Any) -> int:
    for obj in (router, block, config):
        for attr in ("top_k", "num_experts_per_tok"):
            v = getattr(obj, attr, None)
            if isinstance(v, int) and v > 0:
                return v
    raise ValueError(f"cannot tell the top-k of {type(block).__name__}")


def find_moe_layers(model: Any) -> list[MoELayer]:
    """Every module with an `experts` child and a router child (`gate` / `router`)."""
    config = getattr(model, "config", None)
    layers: list[MoELayer] = []
    for name, module in model.named_modules():
        experts = getattr(module, "experts", None)
        if experts is None or not hasattr(experts, "parameters"):
            continue
        router = next((getattr(module, c) for c in ROUTER_CHILD_NAMES if hasattr(module, c)), None)
        if router is None or not hasattr(router, "register_forward_hook"):
            continue
        m = _LAYER_RE.search(name + ".")
        index = int(m.group(1)) if m else len(layers)
        layers.append(
            MoELayer(index, name, _num_experts(module, router, config), _top_k(module, router, config), router, experts)
        )
    return layers


def _router_indices(output: Any, top_k: int) -> Any:
    import torch

    if (
        isinstance(output, tuple)
        and len(output) >= 3
        and isinstance(output[2], torch.Tensor)
        and not output[2].is_floating_point()
    ):
        return output[2]  # transformers 5 TopKRouter: (logits, scores, indices)
    logits = output[0] if isinstance(output, tuple) else output
    return torch.topk(logits.float(), top_k, dim=-1).indices


@dataclass
class ExpertCounter:
    """Installs the hooks, accumulates counts, summarizes them into the manifest's shape."""

    model: Any
    should_count: Callable[[], bool] = lambda: True
    layers: list[MoELayer] = field(default_factory=list)
    active: bool = False
    _handles: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.layers = find_moe_layers(self.model)

    @property
    def is_moe(self) -> bool:
        return bool(self.layers)

    def _counting(self) -> bool:
        return self.active and self.should_count()

    def install(self) -> None:
        import torch

        for layer in self.layers:
            layer.routed = torch.zeros(layer.num_experts, dtype=torch.long)
            layer.forced = torch.zeros(layer.num_experts, dtype=torch.long)
            layer.per_expert = [0] * layer.num_experts
            self._handles.append(layer.router.register_forward_hook(self._router_hook(layer)))
            # Linearized experts (llm-compressor): one module per expert with its own Linear layers.
            experts = layer.experts
            if isinstance(experts, torch.nn.ModuleList) and len(experts) >= layer.num_experts:
                for e in range(layer.num_experts):
                    expert = experts[e]
                    first = (
                        getattr(expert, "gate_proj", None)
                        or getattr(expert, "up_proj", None)
                        or getattr(expert, "w1", None)
                    )
                    if isinstance(first, torch.nn.Module):
                        self._handles.append(first.register_forward_pre_hook(self._expert_hook(layer, e)))
                        layer.per_expert_hooked = True

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _router_hook(self, layer: MoELayer) -> Callable[..., None]:
        import torch

        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            if not self._counting():
                return
            with torch.no_grad():
                picked = _router_indices(output, layer.top_k)  # (tokens, k); k > top_k when widened for calibration
                idx = picked.reshape(-1)
                # index_add_ on the router's device: unlike bincount (which reads the max back), no host sync
                if layer.routed.device != idx.device:
                    layer.routed = layer.routed.to(idx.device)
                    layer.forced = layer.forced.to(idx.device)
                target = layer.forced if picked.shape[-1] > layer.top_k else layer.routed
                target.index_add_(0, idx.long(), torch.ones_like(idx, dtype=torch.long))

        return hook

    def _expert_hook(self, layer: MoELayer, expert: int) -> Callable[..., None]:
        def hook(_module: Any, inputs: Any) -> None:
            if not self._counting() or not inputs:
                return
            x = inputs[0]
            layer.per_expert[expert] += int(x.numel() // x.shape[-1]) if x.dim() > 0 else 0  # shapes only, no sync

        return hook

    def calibration_passes_seen(self) -> bool:
        return any(int(layer.routed.sum()) > 0 or int(layer.forced.sum()) > 0 for layer in self.layers)

    def calibrated_counts(self, layer: MoELayer) -> list[int]:
        if layer.per_expert_hooked:
            return [int(v) for v in layer.per_expert]
        if int(layer.forced.sum()) > 0:
            return [int(v) for v in layer.forced]
        return [int(v) for v in layer.routed]

    def summary(self, all_experts: bool, min_tokens: int) -> ExpertCoverage:
        per_layer: list[ExpertLayerCoverage] = []
        routed_min: int | None = None
        calibrated_min: int | None = None
        for layer in self.layers:
            cal = self.calibrated_counts(layer)
            routed = [int(v) for v in layer.routed]
            per_layer.append(
                ExpertLayerCoverage(
                    layer=layer.index,
                    min=min(cal),
                    median=float(statistics.median(cal)),
                    max=max(cal),
                    starved=[e for e, c in enumerate(cal) if c < min_tokens],
                    routed_min=min(routed),
                )
            )
            routed_min = min(routed) if routed_min is None else min(routed_min, min(routed))
            calibrated_min = min(cal) if calibrated_min is None else min(calibrated_min, min(cal))
        return ExpertCoverage(
            num_experts=max((layer.num_experts for layer in self.layers), default=0),
            routed_min=routed_min or 0,
            calibrated_min=calibrated_min or 0,
            all_experts=all_experts,
            layers=per_layer,
        )


def starved_message(coverage: ExpertCoverage, min_tokens: int) -> str | None:
    """A message naming every starved expert (layer, expert ids, their counts), or None."""
    bad = [lc for lc in coverage.layers if lc.starved]
    if not bad:
        return None
    parts = [f"layer {lc.layer} experts {lc.starved}" for lc in bad]
    n = sum(len(lc.starved) for lc in bad)
    return (
        f"expert coverage below min_tokens_per_expert={min_tokens}: {n} starved expert(s): "
        + "; ".join(parts)
        + f" (calibrated_min={coverage.calibrated_min}, routed_min={coverage.routed_min}, "
        f"all_experts={str(coverage.all_experts).lower()}); "
        "enable calibrate_all_experts or raise num_samples"
    )
