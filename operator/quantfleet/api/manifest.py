"""The calibration result manifest: the contract between `quantfleet calibrate` and the operator.

The calibration program writes it (JSON) to the container's termination-message path
(/dev/termination-log, at most 4096 bytes, so it stays compact) and beside the
checkpoint as `quantfleet-manifest.json`. The operator reads it from the pod status
(`state.terminated.message`) and validates it with `parse_manifest`; a checkpoint is
never reported Ready unless it validates.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quantfleet.api.common import first_error
from quantfleet.api.recipe import Scheme, Tool

MANIFEST_SCHEMA = "quantfleet.io/calibration-result/v1"
TERMINATION_MESSAGE_LIMIT = 4096

CheckpointFormat = Literal["compressed-tensors", "modelopt", "quark", "gguf"]


class ExpertLayerCoverage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: int
    min: int
    median: float
    max: int
    starved: list[int] = Field(default_factory=list, description="expert indices below the minimum")
    routed_min: int | None = Field(
        default=None, description="min tokens any expert of this layer got from the router alone"
    )


class ExpertCoverage(BaseModel):
    """Calibration tokens seen per expert, with all-expert mode off (routing only) and as calibrated."""

    model_config = ConfigDict(extra="forbid")
    num_experts: int
    routed_min: int = Field(description="min tokens any expert received from the router alone")
    calibrated_min: int = Field(description="min tokens any expert was calibrated on (all-expert mode applied)")
    all_experts: bool
    layers: list[ExpertLayerCoverage] = Field(default_factory=list)


class Quality(BaseModel):
    model_config = ConfigDict(extra="forbid")
    perplexity_base: float
    perplexity_quantized: float
    delta: float = Field(description="perplexity_quantized / perplexity_base - 1")
    eval_tokens: int

    @field_validator("perplexity_base", "perplexity_quantized", "delta")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("non-finite perplexity: the quantized model is broken")
        return v


class ResultManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: Literal["quantfleet.io/calibration-result/v1"] = Field(
        alias="schema", default="quantfleet.io/calibration-result/v1"
    )
    simulated: bool = Field(default=False, description="true when written by the sandbox's KWOK stage, not a real run")
    recipe_hash: str
    checkpoint_uri: str
    format: CheckpointFormat
    scheme: Scheme
    tool: Tool
    tool_version: str
    bytes: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 over the sorted (name, file sha256) list")
    seconds: float = Field(ge=0)
    expert_coverage: ExpertCoverage | None = None
    quality: Quality | None = None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class ManifestError(ValueError):
    """The termination message is not a valid result manifest."""


def parse_manifest(text: str) -> ResultManifest:
    try:
        return ResultManifest.model_validate_json(text)
    except ValidationError as exc:
        raise ManifestError(f"invalid result manifest at {first_error(exc)}") from exc
