"""QuantizedModel spec -> tool: an AMD placement makes `auto` choose Quark; explicit quark is checked as well."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quantfleet import versions
from quantfleet.quantizedmodel.plan import Invalid, make_plan

QWEN = (Path(__file__).resolve().parents[1] / "fixtures" / "models" / "qwen3-30b-a3b" / "config.json").read_text()
MI300X = {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}


def body(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "qwen", "namespace": "ml"},
        "spec": {
            "source": {"huggingFace": {"repo": "Qwen/Qwen3-30B-A3B"}, "modelConfigRef": {"name": "qwen-config"}},
            **spec,
        },
    }


def configmap() -> dict[str, Any]:
    return {"data": {"config.json": QWEN}}


def test_amd_placement_calibrates_with_quark() -> None:
    p = make_plan(body(scheme="fp8-static", placement={"nodeSelector": MI300X}), configmap())
    assert (p.recipe.tool, p.recipe.tool_version, p.checkpoint_format) == (
        "quark",
        versions.get("python.amd-quark"),
        "quark",
    )
    assert p.tool_reason.startswith(
        "auto: the placement targets AMD GPUs (amd.com/gpu.product-name=AMD_Instinct_MI300X_OAM)"
    )
    assert "re:.*mlp.gate$" in p.recipe.ignore


def test_same_spec_without_amd_placement_keeps_llm_compressor() -> None:
    p = make_plan(body(scheme="fp8-static"), configmap())
    assert (p.recipe.tool, p.checkpoint_format) == ("llm-compressor", "compressed-tensors")


def test_amd_placement_with_kv_cache_scales() -> None:
    fp8 = make_plan(body(scheme="fp8-static", kvCacheScales=True, placement={"nodeSelector": MI300X}), configmap())
    assert (fp8.recipe.tool, fp8.recipe.kv_cache_fp8) == ("quark", True)
    mx = make_plan(body(scheme="mxfp4", kvCacheScales=True, placement={"nodeSelector": MI300X}), configmap())
    assert mx.recipe.tool == "llm-compressor"
    assert "not Quark although the placement targets AMD GPUs" in mx.tool_reason


@pytest.mark.parametrize(("scheme", "extra"), [("fp8-block", {}), ("w4a16", {"algorithm": "awq"})])
def test_explicit_quark_for_a_scheme_it_cannot_make_is_invalid(scheme: str, extra: dict[str, Any]) -> None:
    with pytest.raises(Invalid) as info:
        make_plan(body(scheme=scheme, tool="quark", **extra), configmap())
    assert info.value.reason == "SpecInvalid"
    assert f"quark cannot make {scheme}" in str(info.value)
