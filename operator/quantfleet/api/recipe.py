"""The calibration recipe: everything the operator decides that changes a checkpoint.

The QuantizedModel controller builds a `CalibrationRecipe`, hashes it to name the
immutable Job, and passes it to `quantfleet calibrate` as argv (`to_args`), never as a
shell string. The calibration program parses it back with `from_args`. Two recipes
with the same `content_hash()` produce interchangeable checkpoints (reuse).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Scheme = Literal[
    "fp8-dynamic",
    "fp8-block",
    "fp8-static",
    "w4a16",
    "nvfp4",
    "nvfp4a16",
    "mxfp4",
    "gguf-q8_0",
    "gguf-q4_k_m",
    "gguf-q5_k_m",
]
Tool = Literal["llm-compressor", "modelopt", "quark", "llama-cpp"]
W4A16Algorithm = Literal["gptq", "awq"]

# The schemes served by vLLM (safetensors checkpoints with a GPU Format, api.schemes.SCHEME_FORMATS).
SCHEMES: tuple[Scheme, ...] = ("fp8-dynamic", "fp8-block", "fp8-static", "w4a16", "nvfp4", "nvfp4a16", "mxfp4")
# The schemes made by llama.cpp (tool llama-cpp) and served by llama-server: one GGUF file, no GPU Format.
GgufScheme = Literal["gguf-q8_0", "gguf-q4_k_m", "gguf-q5_k_m"]
GGUF_SCHEMES: tuple[GgufScheme, ...] = get_args(GgufScheme)


class CalibrationRecipe(BaseModel):
    """What `quantfleet calibrate` must do. Frozen: a recipe is a value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_uri: str = Field(
        description="hf://<org>/<name>@<revision>, pvc://<claim>/<path>, s3://<bucket>/<key>, or a local path"
    )
    scheme: Scheme
    algorithm: W4A16Algorithm | None = Field(default=None, description="w4a16 only: gptq or awq")
    tool: Tool
    tool_version: str = Field(description="version of the tool the image pins; part of the hash")
    ignore: tuple[str, ...] = Field(default=(), description="module patterns left in BF16 (lm_head, routers, ...)")
    calibrate_all_experts: bool = True
    min_tokens_per_expert: int = Field(default=0, ge=0)
    kv_cache_fp8: bool = Field(default=False, description="calibrate FP8 KV-cache scales")
    dataset: str = Field(
        default="builtin:python-stdlib", description="HF dataset name, local .txt/.jsonl path, or builtin:python-stdlib"
    )
    num_samples: int = Field(default=512, ge=1)
    max_seq_length: int = Field(default=2048, ge=16)
    seed: int = 0
    output_uri: str = Field(description="where the checkpoint is published: a directory path (PVC mount) or s3://")
    max_perplexity_delta: float | None = Field(
        default=None, description="quality gate: max allowed ppl increase (ratio-1)"
    )

    def content_hash(self) -> str:
        """Hash of everything that affects the produced weights (not where they are written)."""
        payload = self.model_dump(mode="json", exclude={"output_uri", "max_perplexity_delta"})
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def to_args(self) -> list[str]:
        """argv for `quantfleet calibrate`: one --recipe-json argument, no shell involved."""
        return ["--recipe-json", self.model_dump_json()]

    @classmethod
    def from_json(cls, text: str) -> CalibrationRecipe:
        return cls.model_validate_json(text)
