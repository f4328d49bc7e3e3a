"""quantfleet.planning: the pure decision core — model config -> capacity -> precision, KV dtype, TP, tool.

Why this package exists: every controller and the `quantfleet plan` CLI must reach the same answer for
(model, GPU, request, checkpoints), with the same reason. Pure: no kopf, no Kubernetes client, no I/O
(config parsing takes a dict; reading files is the CLI's job).
"""

from quantfleet.planning.capacity import (
    CapacityEstimate,
    ParamCount,
    count_parameters,
    estimate_capacity,
    fit_tensor_parallel,
    kv_bytes_per_token,
    weight_bytes,
)
from quantfleet.planning.decision import (
    Checkpoint,
    Decision,
    PlanError,
    PlanRequest,
    PlanRow,
    decide,
    decide_for_node,
    plan_all,
    support_level,
)
from quantfleet.planning.model import ConfigError, ModelArch, parse_model_config, router_ignore_patterns
from quantfleet.planning.tools import PlacementPreference, ToolChoice, choose_tool, placement_for

__all__ = [
    "CapacityEstimate",
    "Checkpoint",
    "ConfigError",
    "Decision",
    "ModelArch",
    "ParamCount",
    "PlacementPreference",
    "PlanError",
    "PlanRequest",
    "PlanRow",
    "ToolChoice",
    "choose_tool",
    "count_parameters",
    "decide",
    "decide_for_node",
    "estimate_capacity",
    "fit_tensor_parallel",
    "kv_bytes_per_token",
    "parse_model_config",
    "placement_for",
    "plan_all",
    "router_ignore_patterns",
    "support_level",
    "weight_bytes",
]
