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


def sglang_image(gpu_vendor: str = "nvidia", gfx_arch: str | None = None) -> str:
    """The SGLang image for a GPU pool: CUDA 12.9 for NVIDIA; the ROCm 7.2 build for the pool's gfx arch on AMD
    (gfx950: MI350X/MI355X, otherwise the MI300X/MI325X gfx942 build)."""
    if gpu_vendor == "amd":
        return get("sglang.rocm_image_mi35x" if gfx_arch == "gfx950" else "sglang.rocm_image_mi30x")
    return get("sglang.image")


def runtime_images() -> dict[str, str]:
    """Images of the runtimes other than vLLM, by key (`render.vllm.runtime_container` picks one per pool)."""
    return {
        "sglang": sglang_image("nvidia"),
        "sglang-gfx942": sglang_image("amd", "gfx942"),
        "sglang-gfx950": sglang_image("amd", "gfx950"),
        "llama-cpp": llama_cpp_image(cuda=True),
        "llama-cpp-cpu": llama_cpp_image(cuda=False),
    }


if __name__ == "__main__":
    print(get(sys.argv[1]))
