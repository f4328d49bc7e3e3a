"""The per-GPU decision table for quantized checkpoints (quantfleet.hardware.kernels): checkpoint format x GPU ->
native / fallback kernel / refused, as vLLM 0.33.0 implements it.

EXPECTED is written by hand from the vLLM 0.33.0 source (docs/checkpoint-formats.md has the file:line references),
NOT derived from the code. The same table, rendered from the code with the kernel names and the sources, is the
block between the decision-table markers in docs/checkpoint-formats.md: `UPDATE_GOLDEN=1` rewrites it; review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from quantfleet.api.checkpoint import CheckpointQuant, from_calibration, parse_checkpoint_quant
from quantfleet.hardware import GPU_TABLE, by_key
from quantfleet.hardware.kernels import checkpoint_kernel
from quantfleet.hardware.support import Support

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
DOC = ROOT / "docs" / "checkpoint-formats.md"
BEGIN, END = (
    "<!-- decision-table:begin (generated: UPDATE_GOLDEN=1 pytest tests/unit/test_hardware_kernels.py) -->",
    ("<!-- decision-table:end -->"),
)


def fixture(model: str) -> Callable[[], CheckpointQuant]:
    def load() -> CheckpointQuant:
        cfg = json.loads((FIXTURES / model / "config.json").read_text())
        hq = FIXTURES / model / "hf_quant_config.json"
        q = parse_checkpoint_quant(cfg, json.loads(hq.read_text()) if hq.is_file() else None)
        assert q is not None
        return q

    return load


def config(qc: dict[str, object]) -> Callable[[], CheckpointQuant]:
    def load() -> CheckpointQuant:
        q = parse_checkpoint_quant({"model_type": "llama", "quantization_config": qc})
        assert q is not None
        return q

    return load


_FP8 = {"dtype": "fp8_e4m3", "qscheme": "per_tensor"}


def _fp8_w8a16() -> CheckpointQuant:
    w = {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False}
    qc = {
        "quant_method": "compressed-tensors",
        "format": "float-quantized",
        "config_groups": {"g": {"targets": ["Linear"], "weights": w, "input_activations": None}},
    }
    return config(qc)()


# row: (how the row's checkpoint is made, example)
ROWS: dict[str, tuple[Callable[[], CheckpointQuant], str]] = {
    "FP8 W8A8, compressed-tensors": (
        fixture("nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing"),
        "llm-compressor FP8 / FP8_DYNAMIC, RedHatAI *-FP8-dynamic",
    ),
    "FP8 W8A8, `fp8` (Fp8Config)": (fixture("amd--llama-3.1-8b-instruct-fp8-kv"), "AutoFP8, amd/*-FP8-KV"),
    "FP8 W8A8, ModelOpt": (fixture("nvidia--llama-3.1-70b-instruct-fp8"), "nvidia/*-FP8 (quant_algo FP8)"),
    "FP8 W8A8, Quark": (
        config({"quant_method": "quark", "export": {}, "global_quant_config": {"weight": _FP8, "input_tensors": _FP8}}),
        "AMD Quark FP8 export",
    ),
    "FP8 W8A16, compressed-tensors": (_fp8_w8a16, "FP8 weights, 16-bit activations"),
    "FP8 block 128x128, `fp8` / compressed-tensors": (fixture("qwen--qwen3-30b-a3b-fp8"), "Qwen/*-FP8, FP8_BLOCK"),
    "FP8 block, ModelOpt FP8_PB_WO": (
        config({"quant_method": "modelopt", "quant_algo": "FP8_PB_WO"}),
        "ModelOpt 2D-block FP8",
    ),
    "INT4 W4A16, GPTQ / compressed-tensors": (
        fixture("moma1820--meta-llama-3.1-8b-instruct-gptq-4bit"),
        "GPTQ g128 desc_act false, llm-compressor W4A16",
    ),
    "INT4 W4A16, AWQ": (fixture("patronusai--llama-3.1-70b-instruct-awq-int4"), "AutoAWQ GEMM g128"),
    "NVFP4 W4A4 (ModelOpt / compressed-tensors)": (fixture("nvidia--qwen3-30b-a3b-nvfp4"), "nvidia/*-NVFP4"),
    "NVFP4A16 (FP4 weights only)": (
        lambda: from_calibration("nvfp4a16", "compressed-tensors"),
        "llm-compressor NVFP4A16, ModelOpt W4A16_NVFP4",
    ),
    "MXFP4 W4A4, compressed-tensors": (lambda: from_calibration("mxfp4", "compressed-tensors"), "llm-compressor MXFP4"),
    "MXFP4 experts, `mxfp4` (gpt-oss)": (fixture("openai--gpt-oss-20b"), "openai/gpt-oss-20b, -120b"),
}


# One GPU per row of vLLM's rules: Turing, Ampere, Ada, Hopper, Blackwell 10.x, Blackwell 12.0, CDNA3, CDNA4.
COLUMNS = ("T4", "A10G", "L40S", "H100-SXM", "B200", "RTX-PRO-6000", "MI300X", "MI355X")

# N native, F fallback (weight-only / dequantizing kernel), R refused. Order: COLUMNS.
EXPECTED: dict[str, str] = {
    "FP8 W8A8, compressed-tensors": "F F N N N N N N",
    "FP8 W8A8, `fp8` (Fp8Config)": "F F N N N N N N",
    "FP8 W8A8, ModelOpt": "R F N N N N N N",  # ModelOptFp8Config minimum capability 80
    "FP8 W8A8, Quark": "R R N N N N N N",  # QuarkW8A8Fp8 minimum capability 89
    "FP8 W8A16, compressed-tensors": "N N N N N N R R",  # no W8A16 FP8 kernel on ROCm
    "FP8 block 128x128, `fp8` / compressed-tensors": "F F F N N N N N",  # Marlin before Triton below Hopper
    "FP8 block, ModelOpt FP8_PB_WO": "R F F N N N N N",
    "INT4 W4A16, GPTQ / compressed-tensors": "N N N N N N N N",
    "INT4 W4A16, AWQ": "N N N N N N N N",
    "NVFP4 W4A4 (ModelOpt / compressed-tensors)": "F F F F N N R R",  # ROCm: emulation only
    "NVFP4A16 (FP4 weights only)": "N N N N N N R R",  # forced Marlin is CUDA-only
    "MXFP4 W4A4, compressed-tensors": "R F F F N N R N",  # min 80; gfx942 emulation only
    "MXFP4 experts, `mxfp4` (gpt-oss)": "R F F F N F F N",  # min 80; sm120 demotes Triton below Marlin
}

_LETTER = {Support.NATIVE: "N", Support.FALLBACK: "F", Support.NO: "R"}


def test_columns_are_table_rows() -> None:
    assert set(COLUMNS) <= {s.key for s in GPU_TABLE}
    assert set(ROWS) == set(EXPECTED)


@pytest.mark.parametrize("row", list(ROWS))
def test_decision_table(row: str) -> None:
    quant = ROWS[row][0]()
    got = " ".join(_LETTER[checkpoint_kernel(by_key(g), quant).level] for g in COLUMNS)
    assert got == EXPECTED[row], f"{row}: {dict(zip(COLUMNS, got.split(), strict=True))}"


@pytest.mark.parametrize("gpu", [s.key for s in GPU_TABLE])
@pytest.mark.parametrize("row", list(ROWS))
def test_every_choice_explains_itself(row: str, gpu: str) -> None:
    k = checkpoint_kernel(by_key(gpu), ROWS[row][0]())
    assert k.reason and k.source
    if k.level is Support.NO:
        assert k.kernel is None and k.compute == ""
    else:
        assert k.kernel and " via " in k.compute


def test_below_turing_and_unknown_amd_refuse() -> None:
    quant = ROWS["INT4 W4A16, AWQ"][0]()
    assert checkpoint_kernel(replace(by_key("T4"), compute_capability=(7, 0)), quant).level is Support.NO
    assert checkpoint_kernel(replace(by_key("MI300X"), gfx_arch="gfx90a"), quant).level is Support.NO


def render_table() -> str:
    head = "| checkpoint (example) | " + " | ".join(_column_title(g) for g in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    sources: dict[str, None] = {}
    for row, (make, example) in ROWS.items():
        quant = make()
        cells = []
        for g in COLUMNS:
            k = checkpoint_kernel(by_key(g), quant)
            sources.setdefault(k.source, None)
            letter = _LETTER[k.level]
            cells.append(f"**{letter}** {k.kernel}" if k.kernel else f"**R** {k.reason}")
        lines.append(f"| {row} ({example}) | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines.append("")
    lines.append("Sources (vLLM 0.33.0 wheel, paths relative to `vllm/`):")
    lines.append("")
    for src in sources:
        for part in src.split("; "):
            lines.append(f"- `{part}`")
    return "\n".join(_dedupe(lines))


def _dedupe(lines: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for line in lines:
        if line.startswith("- `"):
            if line in seen:
                continue
            seen.add(line)
        out.append(line)
    return out


def _column_title(key: str) -> str:
    spec = by_key(key)
    cc = spec.compute_capability
    return f"{key} ({f'{cc[0]}.{cc[1]}' if cc else spec.gfx_arch})"


def test_docs_table_is_fresh() -> None:
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC.name} lacks the decision-table markers"
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    fresh = f"{before}{BEGIN}\n{render_table()}\n{END}{after}"
    if os.environ.get("UPDATE_GOLDEN"):
        DOC.write_text(fresh)
        text = fresh
    assert text == fresh, "docs/checkpoint-formats.md decision table is stale: UPDATE_GOLDEN=1 and review the diff"
