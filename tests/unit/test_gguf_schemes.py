"""The GGUF schemes (tool llama-cpp): one table each, no GPU Format, a manifest format of their own."""

from __future__ import annotations

from typing import get_args

import pytest

from quantfleet import versions
from quantfleet.api.gguf import GGUF_BITS_PER_WEIGHT, IMATRIX_TYPES, SCHEME_GGUF_TYPE, weight_bytes
from quantfleet.api.manifest import CheckpointFormat, ResultManifest
from quantfleet.api.recipe import GGUF_SCHEMES, SCHEMES, CalibrationRecipe, Scheme
from quantfleet.api.schemes import (
    LLAMA_CPP,
    SCHEME_FORMATS,
    TOOL_CHECKPOINT_FORMAT,
    UnsupportedRecipe,
    scheme_format,
    support,
    supported_pairs,
)


def test_every_scheme_is_either_a_vllm_or_a_gguf_scheme() -> None:
    assert set(SCHEMES) | set(GGUF_SCHEMES) == set(get_args(Scheme))
    assert not set(SCHEMES) & set(GGUF_SCHEMES)


def test_gguf_schemes_have_no_gpu_format_and_the_others_do() -> None:
    assert all(scheme_format(s) is None for s in GGUF_SCHEMES)
    assert all(scheme_format(s) == SCHEME_FORMATS[s] for s in SCHEMES)


@pytest.mark.parametrize("scheme", GGUF_SCHEMES)
def test_llama_cpp_makes_each_gguf_scheme_and_nothing_else_does(scheme: Scheme) -> None:
    assert support("llama-cpp", scheme, None).preset == SCHEME_GGUF_TYPE[scheme]
    for tool in ("llm-compressor", "modelopt"):
        with pytest.raises(UnsupportedRecipe, match="not offered"):
            support(tool, scheme, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_llama_cpp_makes_no_vllm_scheme(scheme: Scheme) -> None:
    with pytest.raises(UnsupportedRecipe):
        support("llama-cpp", scheme, None)


def test_tables_agree() -> None:
    assert {s: t.preset for (s, _), t in LLAMA_CPP.items()} == SCHEME_GGUF_TYPE
    assert [(t, s) for t, s, _ in supported_pairs() if t == "llama-cpp"] == [("llama-cpp", s) for s in GGUF_SCHEMES]
    assert TOOL_CHECKPOINT_FORMAT["llama-cpp"] == "gguf" and "gguf" in get_args(CheckpointFormat)
    assert {"Q4_K_M", "Q5_K_M"} == IMATRIX_TYPES  # Q8_0 gets none (calibrate.gguf says why)
    assert GGUF_BITS_PER_WEIGHT["Q4_K_M"] < GGUF_BITS_PER_WEIGHT["Q5_K_M"] < GGUF_BITS_PER_WEIGHT["Q8_0"] < 16
    assert weight_bytes(1_000_000_000, "Q8_0") == 1_062_500_000


def test_gguf_manifest_and_recipe_round_trip() -> None:
    recipe = CalibrationRecipe(
        source_uri="pvc://models/llama",
        scheme="gguf-q4_k_m",
        tool="llama-cpp",
        tool_version=versions.llama_cpp_tool_version(),
        output_uri="/models/llama-q4",
    )
    assert CalibrationRecipe.from_json(recipe.to_args()[1]) == recipe
    manifest = ResultManifest(
        recipe_hash=recipe.content_hash(),
        checkpoint_uri=recipe.output_uri,
        format="gguf",
        scheme=recipe.scheme,
        tool=recipe.tool,
        tool_version=recipe.tool_version,
        bytes=1,
        sha256="0" * 64,
        seconds=1.0,
    )
    assert ResultManifest.model_validate_json(manifest.to_json()) == manifest


def test_pinned_images_and_tool_version() -> None:
    assert (
        versions.llama_cpp_image(cuda=False) == f"ghcr.io/ggml-org/llama.cpp:server-b{versions.get('llama-cpp.build')}"
    )
    assert versions.llama_cpp_image(cuda=True).endswith(f":server-cuda-b{versions.get('llama-cpp.build')}")
    assert versions.llama_cpp_tool_version() == versions.get("llama-cpp.commit")


@pytest.mark.parametrize("scheme", GGUF_SCHEMES)
def test_calibration_placement_names_no_gpu_pool_for_gguf(scheme: Scheme) -> None:
    from quantfleet.hardware.pools import ClusterGpus
    from quantfleet.planning.placement import choose_calibration_pool

    placement = choose_calibration_pool(ClusterGpus(pools=()), scheme, None, False, None)
    assert placement.pool is None and "llama.cpp on CPU" in placement.reason
