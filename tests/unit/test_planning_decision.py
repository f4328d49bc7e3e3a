"""decide() and plan_all(): one row per decision branch (docs/gpu-formats.md), every GPU row of the table, and a
property test that any node label set yields a Decision or a clear error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantfleet.hardware import GPU_TABLE, LabelError, facts_for, node_labels_for
from quantfleet.planning import (
    Checkpoint,
    Decision,
    PlanError,
    PlanRequest,
    decide,
    decide_for_node,
    parse_model_config,
    plan_all,
    support_level,
)
from quantfleet.planning.model import ModelArch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def arch(name: str) -> ModelArch:
    cfg: dict[str, Any] = json.loads((FIXTURES / name / "config.json").read_text())
    return parse_model_config(cfg)


FP8_CKPT = Checkpoint.calibrated("fp8-dynamic", "compressed-tensors", "pvc://ckpt/llama-fp8")
KV_FP8_CKPT = Checkpoint.calibrated(
    "fp8-dynamic", "compressed-tensors", "pvc://ckpt/llama-fp8-kv", kv_cache_scales=True
)
NVFP4_CKPT = Checkpoint.calibrated("nvfp4", "modelopt", "pvc://ckpt/nvfp4")
MXFP4_CKPT = Checkpoint.calibrated("mxfp4", "compressed-tensors", "pvc://ckpt/mxfp4")
W4A16_CKPT = Checkpoint.calibrated("w4a16", "compressed-tensors", "pvc://ckpt/w4a16")
BLOCK_CKPT = Checkpoint.calibrated("fp8-block", "compressed-tensors", "pvc://ckpt/fp8-block")


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    gpu: str
    count: int = 1
    request: dict[str, Any] = field(default_factory=dict)
    checkpoints: tuple[Checkpoint, ...] = ()
    precision: str | None = None
    kv: str | None = None
    tp: int | None = None
    flag: str | None = "unchecked"
    checkpoint: Checkpoint | None = None
    native: bool | None = None
    reason_has: tuple[str, ...] = ()
    warning_has: tuple[str, ...] = ()
    error: str | None = None  # PlanError kind
    error_has: tuple[str, ...] = ()


CASES = [
    # --- Ada / Hopper / Blackwell: FP8 is the default -------------------------------------------------------------
    Case("h100-fp8-on-the-fly", "llama-3.1-8b", "h100", request={"max_model_len": 8192},
         precision="fp8", kv="bfloat16", tp=1, flag="fp8", native=True,
         reason_has=("H100-SXM", "hopper", "on the fly", "--quantization fp8", "KV cache bfloat16")),
    Case("h100-fp8-checkpoint", "llama-3.1-8b", "h100", request={"max_model_len": 8192}, checkpoints=(FP8_CKPT,),
         precision="fp8", tp=1, flag=None, checkpoint=FP8_CKPT, native=True, reason_has=("pvc://ckpt/llama-fp8",)),
    Case("h100-nvfp4-ckpt-ignored-fp8-fits", "llama-3.1-8b", "h100", request={"max_model_len": 8192},
         checkpoints=(NVFP4_CKPT,), precision="fp8", flag="fp8", checkpoint=None),
    Case("l40s-fp8", "qwen3-30b-a3b", "l40s", request={"max_model_len": 8192}, precision="fp8", tp=1, native=True),
    Case("b200-nvfp4-checkpoint", "llama-3.1-70b", "b200", request={"max_model_len": 8192},
         checkpoints=(FP8_CKPT, NVFP4_CKPT), precision="nvfp4", flag=None, checkpoint=NVFP4_CKPT, native=True,
         reason_has=("Blackwell", "NVFP4"), warning_has=("measure quality",)),
    Case("b200-mxfp4-checkpoint", "llama-3.1-70b", "b200", request={"max_model_len": 8192},
         checkpoints=(MXFP4_CKPT,), precision="mxfp4", checkpoint=MXFP4_CKPT, native=True),
    Case("b200-nvfp4-preferred-over-mxfp4", "llama-3.1-70b", "b200", request={"max_model_len": 8192},
         checkpoints=(MXFP4_CKPT, NVFP4_CKPT), precision="nvfp4", checkpoint=NVFP4_CKPT),
    Case("h100-mxfp4-checkpoint-only-when-fp8-does-not-fit", "llama-3.1-70b", "h100", count=1,
         request={"max_model_len": 8192}, checkpoints=(MXFP4_CKPT,), precision="mxfp4", native=False,
         checkpoint=MXFP4_CKPT, warning_has=("not native",)),
    Case("b200-no-checkpoint-fp8", "llama-3.1-70b", "b200", request={"max_model_len": 8192},
         precision="fp8", flag="fp8", tp=1),
    Case("b200-fp8-too-big-nvfp4", "llama-3.1-70b", "b200", count=1, checkpoints=(NVFP4_CKPT,),
         request={"max_model_len": 8192}, precision="nvfp4", checkpoint=NVFP4_CKPT),
    # --- AMD -------------------------------------------------------------------------------------------------------
    Case("mi300x-fp8", "llama-3.1-70b", "mi300x", request={"max_model_len": 8192},
         precision="fp8", flag="fp8", tp=1, native=True, reason_has=("MI300X", "cdna3")),
    Case("mi300x-mxfp4-ckpt-not-runnable", "llama-3.1-70b", "mi300x", request={"max_model_len": 8192},
         checkpoints=(MXFP4_CKPT,), precision="fp8", checkpoint=None),
    Case("mi355x-mxfp4-checkpoint", "llama-3.1-70b", "mi355x", request={"max_model_len": 8192},
         checkpoints=(MXFP4_CKPT,), precision="mxfp4", checkpoint=MXFP4_CKPT, flag=None, native=True,
         reason_has=("MXFP4", "gfx950")),
    Case("mi355x-no-checkpoint-fp8", "llama-3.1-70b", "mi355x", request={"max_model_len": 8192},
         precision="fp8", flag="fp8"),
    # --- Ampere / Turing: never W8A8 -------------------------------------------------------------------------------
    Case("a10g-bf16", "llama-3.1-8b", "a10g", request={"max_model_len": 8192},
         precision="bf16", kv="bfloat16", tp=1, flag=None, native=True, reason_has=("A10G", "no FP8 math")),
    Case("a10g-w8a16-when-bf16-too-big", "llama-3.1-8b", "a10g", request={"max_model_len": 32768},
         precision="fp8", flag="fp8", native=False, reason_has=("W8A16",), warning_has=("not native", "memory win")),
    # A10G (22.5 GiB): 98304 tokens x 131072 B = 12 GiB of KV; FP8 weight-only leaves ~10 GiB, W4A16 ~13 GiB
    Case("a10g-w4a16-checkpoint", "llama-3.1-8b", "a10g", request={"max_model_len": 98304},
         checkpoints=(W4A16_CKPT,), precision="w4a16", checkpoint=W4A16_CKPT, flag=None,
         reason_has=("W4A16", "weight-only")),
    Case("a10g-bf16-tp2-before-quantizing", "llama-3.1-8b", "a10g", count=2, request={"max_model_len": 32768},
         precision="bf16", tp=2, reason_has=("TP=2",)),
    Case("a10g-explicit-fp8-is-weight-only", "llama-3.1-8b", "a10g",
         request={"precision": "fp8", "max_model_len": 8192},
         precision="fp8", native=False, flag="fp8", warning_has=("weight-only",)),
    Case("a10g-explicit-nvfp4-without-checkpoint", "llama-3.1-8b", "a10g", request={"precision": "nvfp4"},
         error="needs-checkpoint", error_has=("calibrated checkpoint",)),
    Case("a10g-explicit-nvfp4-with-checkpoint-fallback", "llama-3.1-8b", "a10g",
         request={"precision": "nvfp4", "max_model_len": 8192}, checkpoints=(NVFP4_CKPT,),
         precision="nvfp4", checkpoint=NVFP4_CKPT, native=False, warning_has=("not native",)),
    Case("mi300x-explicit-nvfp4-unsupported", "llama-3.1-8b", "mi300x", request={"precision": "nvfp4"},
         checkpoints=(NVFP4_CKPT,), error="unsupported", error_has=("MI300X", "cannot run")),
    Case("t4-fp16-tp2", "llama-3.1-8b", "t4", count=2, request={"max_model_len": 4096},
         precision="bf16", kv="float16", tp=2, reason_has=("FP16",)),
    Case("t4-one-gpu-w8a16", "llama-3.1-8b", "t4", count=1, request={"max_model_len": 4096},
         precision="fp8", native=False, flag="fp8"),
    # vLLM 0.33 runs block-FP8 linears weight-only in Marlin below 8.9 (docs/checkpoint-formats.md)
    Case("a100-explicit-fp8-block-fallback", "llama-3.1-8b", "a100-80gb",
         request={"precision": "fp8-block", "max_model_len": 8192}, checkpoints=(BLOCK_CKPT,),
         precision="fp8-block", checkpoint=BLOCK_CKPT, native=False, warning_has=("not native", "Marlin")),
    Case("h100-explicit-fp8-block-needs-checkpoint", "llama-3.1-8b", "h100", request={"precision": "fp8-block"},
         error="needs-checkpoint"),
    Case("h100-explicit-fp8-block", "llama-3.1-8b", "h100",
         request={"precision": "fp8-block", "max_model_len": 8192}, checkpoints=(BLOCK_CKPT,),
         precision="fp8-block", checkpoint=BLOCK_CKPT, native=True),
    Case("l40s-explicit-fp8-block-fallback", "llama-3.1-8b", "l40s",
         request={"precision": "fp8-block", "max_model_len": 8192}, checkpoints=(BLOCK_CKPT,),
         precision="fp8-block", checkpoint=BLOCK_CKPT, native=False, warning_has=("not native",)),
    Case("explicit-bf16-on-h100", "llama-3.1-8b", "h100", request={"precision": "bf16", "max_model_len": 8192},
         precision="bf16", flag=None, native=True),
    Case("no-base-model-no-checkpoint", "llama-3.1-8b", "h100", request={"base_model": False},
         error="needs-checkpoint"),
    # --- KV cache dtype --------------------------------------------------------------------------------------------
    # 8B FP8 on one H100: ~61 GiB of KV. 6 x 131072 tokens x 131072 B = 96 GiB in BF16 > 61 -> FP8 (48 GiB) fits.
    Case("long-context-fp8-kv", "llama-3.1-8b", "h100", request={"max_model_len": 131072, "concurrency": 6},
         precision="fp8", kv="fp8_e4m3",
         reason_has=("6 x 131072 tokens need 96.00 GiB/GPU in bfloat16", "FP8 halves it"),
         warning_has=("KV scales",)),
    Case("fp8-kv-scales-from-checkpoint", "llama-3.1-8b", "h100", request={"max_model_len": 131072, "concurrency": 6},
         checkpoints=(KV_FP8_CKPT,), kv="fp8_e4m3", checkpoint=KV_FP8_CKPT),
    Case("long-context-still-short", "llama-3.1-8b", "h100", request={"max_model_len": 131072, "concurrency": 16},
         kv="fp8_e4m3", warning_has=("expected concurrency 16", "add replicas")),
    Case("explicit-kv-honoured", "llama-3.1-8b", "h100",
         request={"kv_cache_dtype": "bfloat16", "max_model_len": 131072, "concurrency": 6},
         kv="bfloat16", warning_has=("expected concurrency 6",)),
    Case("explicit-kv-e5m2", "llama-3.1-8b", "h100", request={"kv_cache_dtype": "fp8_e5m2", "max_model_len": 8192},
         kv="fp8_e5m2", warning_has=("FlashInfer/Triton",)),
    Case("ampere-auto-kv-stays-16-bit", "llama-3.1-8b", "a100-80gb",
         request={"max_model_len": 131072, "concurrency": 8}, precision="bf16", kv="bfloat16",
         warning_has=("expected concurrency 8",)),
    Case("ampere-explicit-fp8-kv-warns", "llama-3.1-8b", "a100-80gb",
         request={"kv_cache_dtype": "fp8_e4m3", "max_model_len": 8192}, kv="fp8_e4m3",
         warning_has=("storage only",)),
    # Trinity: 8 full + 24 sliding (window 2048) layers, 2048 B per token and layer in BF16; on H100 a sliding layer
    # holds window - 1 + 8192 in-flight tokens: 16 x 2048 x (8 x 131072 + 24 x 10239) B = 39.5 GiB fits the ~44.5 GiB
    # of KV; counting every layer as full attention would need 16 x 131072 x 65536 B = 128 GiB and force FP8.
    Case("sliding-window-concurrency", "trinity-mini", "h100", request={"max_model_len": 131072, "concurrency": 16},
         precision="fp8", kv="bfloat16", reason_has=("need 39.50 GiB/GPU in bfloat16, which fits",)),
    # --- tensor parallelism / does not fit -------------------------------------------------------------------------
    Case("70b-one-l40s-does-not-fit", "llama-3.1-70b", "l40s", count=1, request={"max_model_len": 8192},
         error="does-not-fit", error_has=("L40S", "GiB", "exceed")),
    Case("70b-l40s-node-tp2", "llama-3.1-70b", "l40s", count=8, request={"max_model_len": 8192},
         precision="fp8", tp=2, reason_has=("TP=2", "smaller TP does not fit")),
    Case("70b-l40s-node-long-context-tp4", "llama-3.1-70b", "l40s", count=8, request={"max_model_len": 131072},
         precision="fp8", tp=4),
    Case("70b-h100-explicit-bf16-tp4", "llama-3.1-70b", "h100", count=8, request={"precision": "bf16"},
         precision="bf16", tp=4),
    Case("70b-h100-explicit-bf16-two-gpus", "llama-3.1-70b", "h100", count=2, request={"precision": "bf16"},
         error="does-not-fit", error_has=("TP=1", "TP=2")),
    Case("mig-slice-tp1", "llama-3.1-8b", "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb", count=4,
         request={"max_model_len": 8192}, tp=1, warning_has=("MIG",)),
    Case("gpu-count-from-request", "llama-3.1-70b", "h100", count=1, request={"gpu_count": 4, "precision": "bf16"},
         tp=4),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decision_branches(case: Case) -> None:
    gpu = facts_for(case.gpu, case.count)
    request = PlanRequest(**case.request, checkpoints=case.checkpoints)
    if case.error:
        with pytest.raises(PlanError) as info:
            decide(arch(case.model), gpu, request)
        assert info.value.kind == case.error, info.value.reason
        for text in case.error_has:
            assert text in info.value.reason
        return
    d = decide(arch(case.model), gpu, request)
    expected = {
        "precision": case.precision,
        "kv_cache_dtype": case.kv,
        "tensor_parallel_size": case.tp,
        "native": case.native,
    }
    for attr, value in expected.items():
        if value is not None:
            assert getattr(d, attr) == value, f"{attr}: {d.reason}"
    if case.precision is not None or case.checkpoint is not None:
        assert d.checkpoint == case.checkpoint, d.reason
    if case.flag != "unchecked":
        assert d.quantization_flag == case.flag, d.reason
    for text in case.reason_has:
        assert text in d.reason, d.reason
    for text in case.warning_has:
        assert any(text in w for w in d.warnings), d.warnings
    assert d.capacity.fits
    assert d.kv_cache_dtype != "fp8_e4m3" or "KV scales" in " ".join(d.warnings) or d.checkpoint == KV_FP8_CKPT


def test_auto_explains_what_it_rejected() -> None:
    d = decide(arch("llama-3.1-8b"), facts_for("a10g", 1), PlanRequest(max_model_len=98304, checkpoints=(W4A16_CKPT,)))
    assert d.precision == "w4a16"
    assert "Rejected first: bf16" in d.reason and "fp8:" in d.reason


def test_does_not_fit_error_carries_the_closest_estimate() -> None:
    with pytest.raises(PlanError) as info:
        decide(arch("llama-3.1-70b"), facts_for("l40s", 1), PlanRequest(max_model_len=8192))
    assert info.value.capacity is not None and not info.value.capacity.fits


@pytest.mark.parametrize("spec", GPU_TABLE, ids=[s.key for s in GPU_TABLE])
def test_every_gpu_row_gets_a_decision_it_can_run(spec: Any) -> None:
    gpu = facts_for(spec.key, spec.gpus_per_node)
    d = decide(arch("llama-3.1-8b"), gpu, PlanRequest(max_model_len=4096))
    level, _ = support_level(gpu, d.precision)
    assert level != "no"
    assert d.native == (level == "native")
    fp8_native = gpu.fp8_w8a8 == "native"
    assert d.precision == ("fp8" if fp8_native else "bf16"), d.reason  # FP8 where it is native
    assert spec.key in d.reason


@pytest.mark.parametrize("spec", GPU_TABLE, ids=[s.key for s in GPU_TABLE])
def test_plan_all_lists_exactly_the_runnable_precisions(spec: Any) -> None:
    gpu = facts_for(spec.key, spec.gpus_per_node)
    rows = plan_all(arch("qwen3-30b-a3b"), gpu, PlanRequest(max_model_len=8192))
    runnable = [p for p in ("bf16", "fp8", "fp8-block", "w4a16", "nvfp4", "mxfp4") if support_level(gpu, p)[0] != "no"]
    assert [r.precision for r in rows] == runnable
    for r in rows:
        if r.needs_checkpoint:
            assert r.checkpoint is None and (not r.fits or "needs a calibrated" in r.warnings[0])
        assert r.fits == (r.decision is not None)
        assert r.reason


def test_plan_all_on_mi300x_has_no_fp4_rows() -> None:
    rows = plan_all(arch("llama-3.1-8b"), facts_for("mi300x", 8), PlanRequest(max_model_len=8192))
    assert {r.precision for r in rows}.isdisjoint({"nvfp4", "mxfp4"})


def test_request_validation() -> None:
    with pytest.raises(PlanError, match="unknown precision"):
        PlanRequest(precision="int8")  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="gpu_memory_utilization"):
        PlanRequest(gpu_memory_utilization=1.5)
    with pytest.raises(PlanError, match="concurrency"):
        PlanRequest(concurrency=0)
    with pytest.raises(PlanError, match="unknown scheme"):
        Checkpoint.calibrated("int3", "compressed-tensors", "x")


# --- property: any label set -> a Decision or a clear error -----------------------------------------------------

LABEL_KEYS = [
    "nvidia.com/gpu.product", "nvidia.com/gpu.family", "nvidia.com/gpu.compute.major", "nvidia.com/gpu.compute.minor",
    "nvidia.com/gpu.memory", "nvidia.com/gpu.count", "nvidia.com/gpu.present", "amd.com/gpu.device-id",
    "amd.com/gpu.product-name", "amd.com/gpu.vram", "amd.com/gpu.family", "amd.com/gpu.cu-count",
    "kubernetes.io/hostname",
]  # fmt: skip
LABEL_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-2, max_value=300000).map(str),
    st.sampled_from(
        [p for s in GPU_TABLE for p in s.products]
        + ["ampere", "hopper", "blackwell", "ada-lovelace", "turing", "true", "74a1", "75a3", "192G", "AI"]
    ),
)
SMALL = arch("llama-3.1-8b")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(labels=st.dictionaries(st.sampled_from(LABEL_KEYS), LABEL_VALUES, max_size=8))
def test_any_label_set_gives_a_decision_or_a_clear_error(labels: dict[str, str]) -> None:
    try:
        d = decide_for_node(SMALL, labels, PlanRequest(max_model_len=4096))
    except (PlanError, LabelError) as err:
        assert str(err)
        return
    assert isinstance(d, Decision)
    assert d.capacity.fits and d.reason


@settings(max_examples=100, deadline=None)
@given(
    key=st.sampled_from([s.key for s in GPU_TABLE]),
    count=st.integers(min_value=1, max_value=8),
    precision=st.sampled_from(["auto", "bf16", "fp8", "fp8-block", "w4a16", "nvfp4", "mxfp4"]),
    kv=st.sampled_from(["auto", "bfloat16", "fp8_e4m3", "fp8_e5m2"]),
    concurrency=st.integers(min_value=1, max_value=512),
    max_len=st.sampled_from([None, 2048, 32768]),
)
def test_table_nodes_always_decide_or_explain(
    key: str, count: int, precision: str, kv: str, concurrency: int, max_len: int | None
) -> None:
    labels = node_labels_for(key, count)
    request = PlanRequest(
        precision=precision,  # type: ignore[arg-type]
        kv_cache_dtype=kv,  # type: ignore[arg-type]
        concurrency=concurrency,
        max_model_len=max_len,
        checkpoints=(NVFP4_CKPT, MXFP4_CKPT, W4A16_CKPT, BLOCK_CKPT),
    )
    try:
        d = decide_for_node(arch("qwen3-30b-a3b"), labels, request)
    except PlanError as err:
        assert err.kind in ("unsupported", "does-not-fit", "needs-checkpoint") and err.reason
        return
    assert precision in ("auto", d.precision)
    assert kv in ("auto", d.kv_cache_dtype) or (kv, d.kv_cache_dtype) == ("bfloat16", "float16")  # T4: no BF16
    assert d.tensor_parallel_size <= count
    assert support_level(facts_for(key, count), d.precision)[0] != "no"


def test_auto_failure_says_whether_a_four_bit_checkpoint_would_fit() -> None:
    # 70B on one L40S (45 GiB): FP8 weights alone are 67.7 GiB; W4A16 weights are 36.8 GiB and leave room for KV.
    with pytest.raises(PlanError) as info:
        decide(arch("llama-3.1-70b"), facts_for("l40s", 1), PlanRequest(max_model_len=4096))
    assert "a w4a16 checkpoint would fit at TP=1 (36.79 GiB of weights)" in info.value.reason
    # On Blackwell the hint names the native format: RTX PRO 6000 (96 GiB) cannot hold FP8 weights (67.7 GiB) plus
    # one 131072-token sequence even in FP8 KV (131072 x 163840 B = 20 GiB).
    with pytest.raises(PlanError) as info:
        decide(arch("llama-3.1-70b"), facts_for("rtx-pro-6000", 1), PlanRequest())
    assert "a nvfp4 checkpoint would fit" in info.value.reason


def test_unsupported_reason_says_why_the_gpu_cannot() -> None:
    with pytest.raises(PlanError) as info:
        decide(arch("llama-3.1-8b"), facts_for("mi300x"), PlanRequest(precision="mxfp4"))
    assert info.value.kind == "unsupported" and "gfx942" in info.value.reason


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"max_model_len": 131072 + 1}, "exceeds the model's max_position_embeddings 131072"),
        ({"max_model_len": 4096, "context_len": 8192}, "context length 8192 exceeds max_model_len 4096"),
    ],
)
def test_lengths_beyond_the_model(request_kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        decide(arch("llama-3.1-8b"), facts_for("h100"), PlanRequest(**request_kwargs))


def test_informational_warnings() -> None:
    d = decide(arch("llama-3.1-8b"), facts_for("mi300x"), PlanRequest(max_model_len=4096))
    assert any("FNUZ" in w for w in d.warnings)
    cfg = json.loads((FIXTURES / "llama-3.1-8b" / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "compressed-tensors"}
    d = decide(parse_model_config(cfg), facts_for("h100"), PlanRequest(max_model_len=4096))
    assert any("already carries quantization_config (compressed-tensors)" in w for w in d.warnings)


def test_decision_as_dict_has_the_cli_keys() -> None:
    d = decide(arch("llama-3.1-8b"), facts_for("h100"), PlanRequest(max_model_len=4096))
    doc = d.as_dict()
    assert doc["precision"] == "fp8" and doc["fits"] is True and doc["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2
    assert doc["vllm_args"] == ["--tensor-parallel-size=1", "--kv-cache-dtype=bfloat16", "--quantization=fp8",
                                "--max-model-len=4096"]  # fmt: skip
    json.dumps(doc)


def test_shared_and_derived_gpus_are_flagged() -> None:
    small = PlanRequest(max_model_len=4096)
    d = decide(arch("llama-3.1-8b"), facts_for("NVIDIA-A10G-SHARED", 1), small)
    assert any("time-sliced" in w for w in d.warnings)
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-Future-GPU-200GB",
        "nvidia.com/gpu.family": "blackwell",
        "nvidia.com/gpu.compute.major": "10",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/gpu.memory": "200000",
        "nvidia.com/gpu.count": "8",
    }
    d = decide_for_node(arch("llama-3.1-8b"), labels, small)
    assert d.precision == "fp8"  # derived from cc 10.0: native FP8
    assert any("not in the table" in w for w in d.warnings)


def test_node_without_gpu_labels_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="no NVIDIA"):
        decide_for_node(arch("llama-3.1-8b"), {"kubernetes.io/hostname": "cpu-1"}, PlanRequest())
