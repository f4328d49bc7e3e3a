"""Pinned versions, read from versions.toml at the repository root (the one visible place).

`python -m quantfleet.versions kubernetes.version` prints one value for shell scripts.
"""

from __future__ import annotations

import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "versions.toml",  # source checkout
    Path(__file__).resolve().parent / "versions.toml",  # installed copy (images)
)


@cache
def pins() -> dict[str, Any]:
    for path in _CANDIDATES:
        if path.is_file():
            with path.open("rb") as fh:
                return tomllib.load(fh)
    raise FileNotFoundError("versions.toml not found next to the quantfleet package or the repository root")


def get(dotted: str) -> str:
    node: Any = pins()
    for part in dotted.split("."):
        node = node[part]
    return str(node)


def vllm_image() -> str:
    return get("vllm.image")


def vllm_cpu_image() -> str:
    """The vLLM project's CPU image CPU pools run."""
    return get("vllm.cpu_image")


def llama_cpp_image(cuda: bool) -> str:
    """ggml-org's llama-server image of the pinned llama.cpp (CUDA build for GPU pools, CPU build otherwise)."""
    return get("llama-cpp.cuda_image" if cuda else "llama-cpp.image")


def llama_cpp_tool_version() -> str:
    """The tool_version of a llama-cpp CalibrationRecipe: the llama.cpp commit the calibration image is built from."""
    return get("llama-cpp.commit")


if __name__ == "__main__":
    print(get(sys.argv[1]))
