"""The checkpoint-quantization parser (quantfleet.api.checkpoint) on every published fixture, on the variants the
vLLM 0.33.0 source accepts, and on every refusal it names; plus the calibration path (`from_calibration`).

The expectations are written by hand from the fixtures' config.json / hf_quant_config.json and the rules in
docs/checkpoint-formats.md, not derived from the parser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.api.checkpoint import (
    CheckpointQuant,
    UnsupportedCheckpoint,
    from_calibration,
    parse_checkpoint_quant,
)
from quantfleet.api.recipe import SCHEMES
from quantfleet.api.schemes import SCHEME_FORMATS
from quantfleet.api.vllm_flags import DETECTED_QUANTIZATION_METHODS
from quantfleet.planning.capacity import checkpoint_weight_bytes, weight_bytes
from quantfleet.planning.model import parse_model_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def load(model: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    cfg = json.loads((FIXTURES / model / "config.json").read_text())
    hq = FIXTURES / model / "hf_quant_config.json"
    return cfg, (json.loads(hq.read_text()) if hq.is_file() else None)


def parse(model: str) -> CheckpointQuant | None:
    return parse_checkpoint_quant(*load(model))


_QUARK_MXFP4 = {"dtype": "fp4", "qscheme": "per_group", "group_size": 32, "scale_format": "e8m0", "is_dynamic": True}

# fixture: (method, vllm method, scheme, weights, activations (None = 16-bit), ignore match, #ignored, KV, source)
EXPECTED: dict[str, tuple[str, str, str, str, str | None, str, int, tuple[str, bool] | None, str]] = {
    "nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing": (
        "compressed-tensors", "compressed-tensors", "fp8-w8a8", "fp8 per-tensor", "dynamic fp8 per-token",
        "regex", 1, None, "config.json",
    ),
    "florianjc--meta-llama-3.1-8b-instruct-vllm-fp8": (
        "fp8", "fp8", "fp8-w8a8", "fp8 per-tensor", "static fp8 per-tensor", "exact", 1, None, "config.json",
    ),
    # kv_cache_scheme "static": calibrated scales, but vLLM's Fp8Config does not turn FP8 KV on by itself
    "amd--llama-3.1-8b-instruct-fp8-kv": (
        "fp8", "fp8", "fp8-w8a8", "fp8 per-tensor", "static fp8 per-tensor", "exact", 1, ("fp8_e4m3", False),
        "config.json",
    ),
    "qwen--qwen3-30b-a3b-fp8": (
        "fp8", "fp8", "fp8-block", "fp8 128x128 blocks", "dynamic fp8 groups of 128", "exact", 145, None,
        "config.json",
    ),
    "nvidia--llama-3.1-70b-instruct-fp8": (
        "modelopt", "modelopt", "fp8-w8a8", "fp8 per-tensor", "static fp8 per-tensor", "modelopt", 1,
        ("fp8_e4m3", True), "hf_quant_config.json",
    ),
    "nvidia--qwen3-30b-a3b-nvfp4": (
        "modelopt", "modelopt_fp4", "nvfp4", "nvfp4 groups of 16", "dynamic nvfp4 groups of 16", "modelopt", 49,
        ("fp8_e4m3", True), "hf_quant_config.json",
    ),
    "moma1820--meta-llama-3.1-8b-instruct-gptq-4bit": (
        "gptq", "auto_gptq", "int4-w4a16", "int4 groups of 128", None, "regex", 0, None, "config.json",
    ),
    "patronusai--llama-3.1-70b-instruct-awq-int4": (
        "awq", "auto_awq", "int4-w4a16", "int4 groups of 128, asymmetric", None, "substring", 0, None, "config.json",
    ),
    "openai--gpt-oss-20b": (
        "mxfp4", "gpt_oss_mxfp4", "mxfp4-experts", "mxfp4 groups of 32", None, "fixed", 4, None, "config.json",
    ),
    # AMD Quark 0.13 exports of quantfleet's tiny MoE (tests/calibration/test_quark.py): exact names in `exclude`
    "quantfleet--tiny-qwen3-moe-quark-fp8-static": (
        "quark", "quark", "fp8-w8a8", "fp8 per-tensor", "static fp8 per-tensor", "regex", 3, None, "config.json",
    ),
    "quantfleet--tiny-qwen3-moe-quark-mxfp4": (
        "quark", "quark", "mxfp4", "mxfp4 groups of 32", "dynamic mxfp4 groups of 32", "regex", 11, None,
        "config.json",
    ),
}  # fmt: skip


def test_every_published_fixture_is_covered() -> None:
    published = sorted(p.name for p in FIXTURES.iterdir() if (p / "SOURCE.md").is_file())
    assert sorted([*EXPECTED, "aiplanet--luxllama"]) == published


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_published_fixture(model: str) -> None:
    method, vllm_method, scheme, weights, acts, match, n_ignore, kv, source = EXPECTED[model]
    q = parse(model)
    assert q is not None
    assert (q.method, q.vllm_method, q.scheme, q.weights.describe()) == (method, vllm_method, scheme, weights)
    got_acts = None if q.activations is None else f"{'dynamic' if q.activations.dynamic else 'static'} "
    got_acts = got_acts + q.activations.describe() if got_acts and q.activations else None
    assert got_acts == acts
    assert (q.ignore_match, len(q.ignore), q.source) == (match, n_ignore, source)
    assert (None if q.kv_cache is None else (q.kv_cache.dtype, q.kv_cache.vllm_default)) == kv
    assert q.label == f"{scheme}/{method}" and q.label in q.describe()
    # the contract test checks every detected method against vLLM's own list
    assert q.vllm_method in DETECTED_QUANTIZATION_METHODS


@pytest.mark.parametrize("model", ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen3-30b-a3b", "trinity-mini"])
def test_base_models_have_no_quantization(model: str) -> None:
    assert parse(model) is None


def test_bitsandbytes_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedCheckpoint) as info:
        parse("aiplanet--luxllama")
    assert info.value.method == "bitsandbytes"
    assert "Unknown quantization method: bitsandbytes" in str(info.value)


# --- which modules each method leaves unquantized, matched the way vLLM matches them -----------------------------


@pytest.mark.parametrize(
    ("model", "module", "quantized"),
    [
        # compressed-tensors: `ignore` entries compared exactly (or re: regexes); lm_head is never a quantized linear
        ("nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing", "lm_head", False),
        ("nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing",
         "model.layers.3.self_attn.q_proj", True),
        # Fp8Config: exact names; Qwen lists the 48 routers (and norms) by name
        ("qwen--qwen3-30b-a3b-fp8", "model.layers.7.mlp.gate", False),
        ("qwen--qwen3-30b-a3b-fp8", "model.layers.7.mlp.experts.0.gate_proj", True),
        ("qwen--qwen3-30b-a3b-fp8", "model.layers.7.self_attn.o_proj", True),
        # ModelOpt: exact, substring, then fnmatch wildcards
        ("nvidia--qwen3-30b-a3b-nvfp4", "model.layers.12.mlp.gate", False),
        ("nvidia--qwen3-30b-a3b-nvfp4", "model.layers.12.self_attn.k_proj", True),
        # gpt-oss MXFP4: the list is not read; only routed experts are MXFP4
        ("openai--gpt-oss-20b", "model.layers.0.mlp.experts.gate_up_proj", True),
        ("openai--gpt-oss-20b", "model.layers.0.self_attn.q_proj", False),
        ("openai--gpt-oss-20b", "model.layers.0.mlp.router", False),
        # GPTQ without lm_head: true
        ("moma1820--meta-llama-3.1-8b-instruct-gptq-4bit", "lm_head", False),
        ("moma1820--meta-llama-3.1-8b-instruct-gptq-4bit", "model.layers.0.mlp.down_proj", True),
    ],
)  # fmt: skip
def test_quantizes(model: str, module: str, quantized: bool) -> None:
    q = parse(model)
    assert q is not None and q.quantizes(module) is quantized


def test_ignore_matching_rules() -> None:
    ct = _ct({"weights": _w(8, "float", "channel"), "input_activations": _w(8, "float", "token", dynamic=True)})
    ct["ignore"] = ["lm_head", "re:.*self_attn.*"]
    q = parse_checkpoint_quant({"quantization_config": ct})
    assert q is not None
    assert not q.quantizes("model.layers.0.self_attn.q_proj") and q.quantizes("model.layers.0.mlp.up_proj")
    mo = {"quant_method": "modelopt", "quant_algo": "FP8", "ignore": ["model.layers.*.mlp.gate", "lm_head"]}
    q = parse_checkpoint_quant({"quantization_config": mo})
    assert q is not None and q.ignore_match == "modelopt"
    assert not q.quantizes("model.layers.5.mlp.gate") and q.quantizes("model.layers.5.mlp.gate_proj")
    awq = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "modules_to_not_convert": ["gate"]}
    q = parse_checkpoint_quant({"quantization_config": awq})
    assert q is not None and not q.quantizes("model.layers.5.mlp.gate_proj")  # AWQ matches substrings


# --- variants the vLLM source accepts -----------------------------------------------------------------------------


def _w(bits: int, typ: str, strategy: str, **extra: Any) -> dict[str, Any]:
    return {"num_bits": bits, "type": typ, "strategy": strategy, "symmetric": True, "dynamic": False, **extra}


def _ct(group: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "quant_method": "compressed-tensors",
        "format": top.pop("format", "float-quantized"),
        "config_groups": {"group_0": {"targets": ["Linear"], **group}},
        "ignore": ["lm_head"],
        **top,
    }


@pytest.mark.parametrize(
    ("config", "scheme", "precision"),
    [
        ({"quantization_config": _ct({"weights": _w(4, "int", "group", group_size=128), "input_activations": None},
                                     format="pack-quantized")}, "int4-w4a16", "w4a16"),
        ({"quantization_config": _ct({"weights": _w(4, "float", "tensor_group", group_size=16),
                                      "input_activations": _w(4, "float", "tensor_group", group_size=16,
                                                              dynamic="local")},
                                     format="nvfp4-pack-quantized")}, "nvfp4", "nvfp4"),
        ({"quantization_config": _ct({"weights": _w(4, "float", "tensor_group", group_size=16),
                                      "input_activations": None}, format="nvfp4-pack-quantized")},
         "nvfp4-w4a16", "w4a16"),
        ({"quantization_config": _ct({"weights": _w(4, "float", "group", group_size=32),
                                      "input_activations": _w(4, "float", "group", group_size=32, dynamic=True)})},
         "mxfp4", "mxfp4"),
        ({"quantization_config": _ct({"weights": _w(8, "float", "channel"), "input_activations": None})},
         "fp8-w8a16", "fp8"),
        ({"quantization_config": _ct({"weights": _w(8, "float", "block", block_structure=[128, 128]),
                                      "input_activations": _w(8, "float", "group", group_size=128, dynamic=True)})},
         "fp8-block", "fp8-block"),
        # legacy key and spelling: `compression_config`, `compressed_tensors`
        ({"compression_config": {**_ct({"weights": _w(8, "float", "tensor"),
                                        "input_activations": _w(8, "float", "tensor")}),
                                 "quant_method": "compressed_tensors"}}, "fp8-w8a8", "fp8"),
        # multimodal configs keep it under text_config
        ({"text_config": {"quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic"}}},
         "fp8-w8a8", "fp8"),
        ({"quantization_config": {"quant_method": "modelopt", "quant_algo": "FP8_PB_WO"}}, "fp8-block", "fp8-block"),
        ({"quantization_config": {"quant_method": "modelopt", "quant_algo": "W4A16_NVFP4", "group_size": 16}},
         "nvfp4-w4a16", "w4a16"),
        ({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": True,
                                  "sym": True}}, "int4-w4a16", "w4a16"),
        ({"quantization_config": {"quant_method": "quark", "export": {"kv_cache_group": []},
                                  "global_quant_config": {"weight": {"dtype": "fp8_e4m3", "qscheme": "per_tensor"},
                                                          "input_tensors": {"dtype": "fp8_e4m3",
                                                                            "qscheme": "per_tensor"}},
                                  "exclude": ["lm_head"]}}, "fp8-w8a8", "fp8"),
    ],
)  # fmt: skip
def test_accepted_variants(config: dict[str, Any], scheme: str, precision: str) -> None:
    q = parse_checkpoint_quant(config)
    assert q is not None and q.scheme == scheme and q.precision == precision
    assert q.vllm_method in DETECTED_QUANTIZATION_METHODS


def test_compressed_tensors_kv_cache_scheme_turns_fp8_kv_on() -> None:
    kv = {"num_bits": 8, "type": "float", "strategy": "tensor", "symmetric": True, "dynamic": False}
    ct = _ct({"weights": _w(8, "float", "tensor"), "input_activations": _w(8, "float", "tensor")}, kv_cache_scheme=kv)
    q = parse_checkpoint_quant({"quantization_config": ct})
    assert q is not None and q.kv_cache is not None
    assert (q.kv_cache.dtype, q.kv_cache.calibrated, q.kv_cache.vllm_default) == ("fp8_e4m3", True, True)


def test_hf_quant_config_only_when_config_json_has_none() -> None:
    cfg, hq = load("nvidia--llama-3.1-70b-instruct-fp8")
    assert parse_checkpoint_quant(cfg) is None  # config.json alone: a base model
    with_own = {**cfg, "quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic"}}
    q = parse_checkpoint_quant(with_own, hq)
    assert q is not None and q.method == "fp8" and q.source == "config.json"  # vLLM ignores hf_quant_config.json


def test_gptq_dynamic_exclusions_become_ignore_patterns() -> None:
    cfg = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True,
           "dynamic": {"-:.*mlp.down_proj": {}}}  # fmt: skip
    q = parse_checkpoint_quant({"quantization_config": cfg})
    assert (
        q is not None and not q.quantizes("model.layers.2.mlp.down_proj") and q.quantizes("model.layers.2.mlp.up_proj")
    )


# --- refusals, each naming the method and vLLM's reason ----------------------------------------------------------


@pytest.mark.parametrize(
    ("qc", "method", "message"),
    [
        ({"quant_method": "int3-magic"}, "int3-magic", "does not know this quantization method"),
        ({"quant_method": "fbgemm_fp8"}, "fbgemm_fp8", "does not plan fbgemm_fp8"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True, "sym": True}, "gptq",
         "desc_act=True) is no longer supported"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": False}, "gptq",
         "bits=4, sym=False"),
        ({"quant_method": "gptq", "bits": 3, "group_size": 128, "desc_act": False, "sym": True}, "gptq", "bits=3"),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128, "desc_act": False, "sym": True}, "gptq",
         "8-bit weight-only GPTQ"),
        ({"quant_method": "gptq", "bits": 4}, "gptq", "group_size must be an integer"),
        ({"quant_method": "awq", "bits": 8, "group_size": 128, "zero_point": True}, "awq", "only 4-bit"),
        (_ct({"weights": _w(4, "int", "group", group_size=128, actorder="group"), "input_activations": None},
             format="pack-quantized"), "compressed-tensors", "actorder='group'"),
        ({**_ct({"weights": _w(8, "float", "tensor"), "input_activations": _w(8, "float", "tensor")}),
          "sparsity_config": {"targets": ["Linear"], "format": "sparse-24-bitmask"}}, "compressed-tensors",
         "Sparsity support has been removed"),
        ({"quant_method": "compressed-tensors", "format": "mixed-precision", "config_groups": {
            "a": {"targets": ["re:.*mlp.*"], "weights": _w(4, "int", "group", group_size=128),
                  "input_activations": None},
            "b": {"targets": ["re:.*self_attn.*"], "weights": _w(8, "float", "channel"),
                  "input_activations": _w(8, "float", "token", dynamic=True)}}}, "compressed-tensors",
         "mixed precision"),
        (_ct({"weights": _w(4, "float", "tensor_group", group_size=16), "input_activations": _w(8, "float", "token")}),
         "compressed-tensors", "input quantization must also be NVFP4"),
        ({**_ct({"weights": _w(8, "float", "tensor"), "input_activations": _w(8, "float", "tensor")}),
          "kv_cache_scheme": {"num_bits": 4, "type": "int"}}, "compressed-tensors", "kv_cache_scheme"),
        ({"quant_method": "fp8", "activation_scheme": "static", "weight_block_size": [128, 128]}, "fp8",
         "needs activation_scheme dynamic"),
        ({"quant_method": "fp8"}, "fp8", "activation_scheme must be static or dynamic"),
        ({"quant_method": "modelopt", "quant_algo": "MXFP4"}, "modelopt", "covers only"),
        ({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION"}, "modelopt", "not planned by quantfleet"),
        ({**_ct({"weights": _w(8, "float", "tensor"), "input_activations": _w(8, "float", "tensor")}),
          "ignore": ["re:model.(layers"]}, "compressed-tensors", "not a valid regular expression"),
        ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": "eight"}}}},
         "compressed-tensors", "num_bits must be an integer"),
        ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"block_structure": [1]}}}},
         "compressed-tensors", "block_structure must be two positive integers"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 0, "desc_act": False, "sym": True}, "gptq",
         "group_size must be a positive integer or -1"),
        ({"quant_method": "quark", "export": {}, "global_quant_config": {"weight": {"dtype": "int8"},
                                                                         "input_tensors": {"dtype": "int8"}}},
         "quark", "Quark int8 weights"),
        ({"quant_method": "quark", "export": {}, "global_quant_config": {
            "weight": _QUARK_MXFP4, "input_tensors": None}},
         "quark", "MXFP4 weights with 16-bit inputs"),
        ({"quant_method": "quark", "export": {}, "global_quant_config": {
            "weight": _QUARK_MXFP4, "input_tensors": {**_QUARK_MXFP4, "is_dynamic": False}}},
         "quark", "static MXFP4 inputs"),
        ({"quant_method": "quark", "export": {}, "global_quant_config": {
            "weight": {**_QUARK_MXFP4, "group_size": 16}, "input_tensors": _QUARK_MXFP4}},
         "quark", "not OCP MX"),
    ],
)  # fmt: skip
def test_refusals_name_the_method(qc: dict[str, Any], method: str, message: str) -> None:
    with pytest.raises(UnsupportedCheckpoint) as info:
        parse_checkpoint_quant({"model_type": "llama", "quantization_config": qc})
    assert info.value.method == method
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("hf_quant", "message"),
    [
        ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "W4A16_NVFP4"}},
         "Unknown ModelOpt quant algo: W4A16_NVFP4"),
        ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4", "group_size": 16}},
         "NVFP4 quantization requires the following fields"),
    ],
)  # fmt: skip
def test_legacy_hf_quant_config_refusals(hf_quant: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedCheckpoint) as info:
        parse_checkpoint_quant({"model_type": "llama"}, hf_quant)
    assert message in str(info.value)


# --- the calibration path meets the same type ---------------------------------------------------------------------

_SERVING_FORMAT = {
    "fp8-w8a8": "fp8_w8a8",
    "fp8-block": "fp8_block",
    "int4-w4a16": "int4_w4a16",
    "nvfp4": "nvfp4",
    "nvfp4-w4a16": "nvfp4",
    "mxfp4": "mxfp4",
}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("fmt", ["compressed-tensors", "modelopt"])
def test_from_calibration(scheme: Any, fmt: Any) -> None:
    if fmt == "modelopt" and scheme in ("w4a16", "mxfp4"):
        with pytest.raises(UnsupportedCheckpoint, match="no INT4-AWQ or MXFP4 algo"):
            from_calibration(scheme, fmt)
        return
    q = from_calibration(scheme, fmt, kv_cache_scales=True, ignore=("lm_head", "re:.*mlp.gate$"))
    assert q.source == "calibration" and q.method == fmt
    # the scheme table (api.schemes) and the checkpoint description agree on the format and on weight-only
    assert _SERVING_FORMAT[q.scheme] == SCHEME_FORMATS[scheme].format
    assert q.weight_only is SCHEME_FORMATS[scheme].weight_only
    assert q.kv_cache is not None and q.kv_cache.vllm_default
    assert not q.quantizes("model.layers.0.mlp.gate") and q.quantizes("model.layers.0.mlp.experts.3.up_proj")


# --- any quantization_config: a description, None, or UnsupportedCheckpoint; never another exception --------------

_KEYS = [
    *("quant_method", "config_groups", "weights", "input_activations", "num_bits", "type", "strategy"),
    *("group_size", "block_structure", "ignore", "activation_scheme", "weight_block_size", "quant_algo", "bits"),
    *("desc_act", "sym", "zero_point", "kv_cache_scheme", "quantization", "producer", "exclude_modules", "targets"),
    "dynamic",
]
_WORDS = [
    *("compressed-tensors", "fp8", "modelopt", "gptq", "awq", "mxfp4", "quark", "float", "int", "group", "block"),
    *("tensor", "FP8", "NVFP4", "dynamic", "static", "re:(", "lm_head"),
]
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2, 256), st.sampled_from(_WORDS))
_JSON = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5)),
    max_leaves=20,
)
_OBJ = st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=6)


@settings(max_examples=300, deadline=None)
@given(qc=_OBJ, hq=st.one_of(st.none(), _OBJ))
def test_any_config_parses_or_is_refused_by_name(qc: dict[str, Any], hq: dict[str, Any] | None) -> None:
    try:
        q = parse_checkpoint_quant({"model_type": "llama", "quantization_config": qc}, hq)
    except UnsupportedCheckpoint as exc:
        assert exc.method and exc.reason
        return
    assert q is not None and q.label and q.describe()
    q.quantizes("model.layers.0.self_attn.q_proj")
    arch = parse_model_config(json.loads((FIXTURES / "llama-3.1-8b" / "config.json").read_text()))
    assert 0 < checkpoint_weight_bytes(arch, q).total <= weight_bytes(arch, "bf16").total


def test_calibrated_quark_checkpoints() -> None:
    from quantfleet.planning.decision import Checkpoint

    fp8 = from_calibration("fp8-static", "quark", ignore=("lm_head", "re:.*mlp.gate$"))
    assert (fp8.label, fp8.vllm_method, fp8.source) == ("fp8-w8a8/quark", "quark", "calibration")
    assert not fp8.quantizes("model.layers.3.mlp.gate") and fp8.quantizes("model.layers.3.mlp.experts.0.up_proj")
    kv = from_calibration("fp8-dynamic", "quark", kv_cache_scales=True).kv_cache
    assert kv is not None and (kv.source, kv.vllm_default) == ("export.kv_cache_group", False)
    assert from_calibration("mxfp4", "quark").label == "mxfp4/quark"
    with pytest.raises(UnsupportedCheckpoint, match="only for fp8-dynamic, fp8-static, mxfp4"):
        from_calibration("nvfp4", "quark")
    assert Checkpoint.calibrated("fp8-dynamic", "quark", "pvc://ckpt/x").quant.method == "quark"


def test_quark_kv_cache_from_layer_quant_config() -> None:
    """Quark's FP8-KV export: k/v entries in layer_quant_config = global + a static FP8 output quantizer."""
    fp8 = {"dtype": "fp8_e4m3", "qscheme": "per_tensor", "is_dynamic": False}
    glob = {"weight": fp8, "input_tensors": fp8, "output_tensors": None}
    kv = {**glob, "output_tensors": fp8}

    def qc(layers: dict[str, Any], group: list[str]) -> dict[str, Any]:
        return {
            "model_type": "llama",
            "quantization_config": {
                "quant_method": "quark",
                "export": {"kv_cache_group": group},
                "global_quant_config": glob,
                "layer_quant_config": layers,
            },
        }

    q = parse_checkpoint_quant(qc({"*k_proj": kv, "*v_proj": kv}, ["*k_proj", "*v_proj"]))
    assert q is not None and q.kv_cache is not None and q.kv_cache.source == "export.kv_cache_group"
    with pytest.raises(UnsupportedCheckpoint, match="per-layer Quark schemes"):
        parse_checkpoint_quant(qc({"*k_proj": {**kv, "weight": {**fp8, "qscheme": "per_channel"}}}, ["*k_proj"]))
    with pytest.raises(UnsupportedCheckpoint, match="only fp8_e4m3 per_tensor"):
        parse_checkpoint_quant(qc({"*k_proj": {**kv, "output_tensors": {**fp8, "dtype": "int8"}}}, ["*k_proj"]))
    with pytest.raises(UnsupportedCheckpoint, match="kv_cache_group without matching"):
        parse_checkpoint_quant(qc({}, ["*k_proj"]))
