"""QuantizedModel, pure: spec (+ its config.json) -> calibration recipe, recipe hash, tool and Job name.

The recipe is everything that changes the weights; its hash names the immutable calibration Job
(`<name>-<hash8>`), so a restarted operator can never create a duplicate and a spec change is a new Job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from quantfleet import versions
from quantfleet.api.common import first_error, parse_pvc_uri
from quantfleet.api.quantizedmodel import QuantizedModelSpec
from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.api.schemes import TOOL_CHECKPOINT_FORMAT
from quantfleet.planning import ConfigError, ModelArch, PlanError, parse_model_config
from quantfleet.planning.tools import amd_placement, choose_tool
from quantfleet.render.calibration import StorageTarget, job_name, storage_target

RETRY_ANNOTATION = "quantfleet.io/retry"
POOL_ANNOTATION = "quantfleet.io/pool"
PLACEMENT_ANNOTATION = "quantfleet.io/placement-reason"
TOOL_REASON_ANNOTATION = "quantfleet.io/tool-reason"
Obj = dict[str, Any]
# Stand-in architecture for tool choice when the spec gives no config.json (sizes are never used from it).
UNKNOWN_DENSE = parse_model_config(
    {
        "model_type": "unknown",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 32000,
        "max_position_embeddings": 8192,
    }
)


class Invalid(Exception):
    """The spec (or what it references) cannot be turned into a recipe; not retried until it changes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Plan:
    spec: QuantizedModelSpec
    arch: ModelArch | None
    recipe: CalibrationRecipe
    recipe_hash: str
    checkpoint_format: str
    storage: StorageTarget
    tool_reason: str
    job_name: str


TOOL_PACKAGES: dict[str, str] = {
    "llm-compressor": "llmcompressor",
    "modelopt": "nvidia-modelopt",
    "quark": "amd-quark",
}


def tool_version(tool: str) -> str:
    if tool == "llama-cpp":  # not a Python package: the llama.cpp commit the calibration image builds
        return versions.llama_cpp_tool_version()
    return versions.get(f"python.{TOOL_PACKAGES[tool]}")


def source_uri(spec: QuantizedModelSpec) -> str:
    src = spec.source
    if src.hugging_face is not None:
        return f"hf://{src.hugging_face.repo}@{src.hugging_face.revision}"
    assert src.uri is not None
    return src.uri


def load_arch(spec: QuantizedModelSpec, cm: Obj | None) -> ModelArch | None:
    """The model's architecture from its config.json ConfigMap (None when the spec names none)."""
    ref = spec.source.model_config_ref
    if ref is None:
        return None
    if cm is None:
        raise Invalid("ModelConfigMissing", f"ConfigMap {ref.name} (spec.source.modelConfigRef) not found")
    raw = (cm.get("data") or {}).get(ref.key)
    if raw is None:
        raise Invalid("ModelConfigMissing", f"ConfigMap {ref.name} has no key {ref.key!r}")
    try:
        return parse_model_config(json.loads(raw))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise Invalid("SpecInvalid", f"ConfigMap {ref.name}/{ref.key} is not a usable config.json: {exc}") from exc


def make_plan(body: Obj, configmap: Obj | None) -> Plan:
    """Spec (+ its config.json ConfigMap) -> the recipe, its hash and the Job name; Invalid when it cannot be."""
    meta = body["metadata"]
    try:
        spec = QuantizedModelSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise Invalid("SpecInvalid", first_error(exc, "spec")) from exc
    arch = load_arch(spec, configmap)
    try:
        choice = choose_tool(
            spec.scheme,
            spec.tool,
            arch or UNKNOWN_DENSE,
            algorithm=spec.algorithm,
            amd_target=amd_placement(spec.placement.node_selector if spec.placement else None),
            kv_cache_scales=spec.kv_cache_scales,
        )
    except PlanError as exc:
        raise Invalid("SpecInvalid", str(exc)) from exc
    if arch is None:
        choice = replace(
            choice,
            reason=choice.reason + "; model config unknown (no spec.source.modelConfigRef): treated"
            " as dense, MoE routers are guarded by the calibration program from the loaded config",
        )
    if spec.storage and spec.storage.destination and spec.storage.destination.startswith("pvc://"):
        try:
            parse_pvc_uri(spec.storage.destination)
        except ValueError as exc:
            raise Invalid("SpecInvalid", str(exc)) from exc
    moe = spec.moe
    cal = spec.calibration
    ignore = tuple(dict.fromkeys((*choice.ignore, *((moe.extra_ignore or []) if moe else []))))
    recipe = CalibrationRecipe(
        source_uri=source_uri(spec),
        scheme=spec.scheme,
        algorithm=spec.algorithm,
        tool=choice.tool,
        tool_version=tool_version(choice.tool),
        ignore=ignore,
        calibrate_all_experts=moe.calibrate_all_experts if moe else True,
        min_tokens_per_expert=moe.min_tokens_per_expert if moe else 0,
        kv_cache_fp8=spec.kv_cache_scales,
        dataset=cal.dataset if cal else "builtin:python-stdlib",
        num_samples=cal.samples if cal else 512,
        max_seq_length=cal.sequence_length if cal else 2048,
        seed=cal.seed if cal else 0,
        output_uri="",
        max_perplexity_delta=spec.quality_gate.max_perplexity_delta if spec.quality_gate else None,
    )
    recipe_hash = recipe.content_hash()
    storage = spec.storage
    target = storage_target(
        meta["name"],
        storage.destination if storage else None,
        recipe_hash,
        storage.credentials_secret.name if storage and storage.credentials_secret else None,
    )
    recipe = recipe.model_copy(update={"output_uri": target.uri})
    retry = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
    fmt = TOOL_CHECKPOINT_FORMAT[choice.tool]
    return Plan(spec, arch, recipe, recipe_hash, fmt, target, choice.reason, job_name(meta["name"], recipe_hash, retry))
