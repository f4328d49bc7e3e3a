"""Adapters that drive one quantization tool each, behind one small interface.

`run.py` does not know llm-compressor, ModelOpt or Quark; it asks `adapter_for(tool)` for an
object that can prepare a model (so coverage hooks see the modules the tool calibrates),
quantize it in memory, tell whether a forward pass is a calibration pass, and save the
result in the tool's own checkpoint format.
"""

from __future__ import annotations

from typing import Any, Protocol

from quantfleet.api.recipe import CalibrationRecipe, Tool
from quantfleet.calibrate.progress import Progress


class ToolAdapter(Protocol):
    name: Tool

    def version(self) -> str: ...

    def prepare(self, model: Any) -> None: ...

    def counting_allowed(self) -> bool: ...

    def quantize(
        self,
        model: Any,
        tokenizer: Any,
        calib: list[list[int]],
        recipe: CalibrationRecipe,
        is_moe: bool,
        device: Any,
        progress: Progress,
    ) -> None: ...

    def save(self, model: Any, tokenizer: Any, out_dir: str) -> None: ...


def adapter_for(tool: Tool) -> ToolAdapter:
    if tool == "llm-compressor":
        from quantfleet.calibrate.tools.llmc import LLMCompressorAdapter

        return LLMCompressorAdapter()
    if tool == "quark":
        from quantfleet.calibrate.tools.quark import QuarkAdapter

        return QuarkAdapter()
    if tool == "llama-cpp":
        raise ValueError("llama-cpp has no in-memory adapter: calibrate.gguf runs llama.cpp's programs on files")
    from quantfleet.calibrate.tools.modelopt import ModelOptAdapter

    return ModelOptAdapter()
