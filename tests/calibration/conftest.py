"""Fixtures for the calibration tests: a tiny MoE model built here, and a way to run `quantfleet calibrate`.

Everything is real: the model is created locally (no hub), and the CLI runs llm-compressor,
ModelOpt or AMD Quark in-process on the CPU. Sizes are small enough that the whole suite stays
within a few minutes on two cores.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("llmcompressor")
pytest.importorskip("modelopt")

from quantfleet.api.recipe import CalibrationRecipe
from quantfleet.calibrate.tiny import TinyMoESpec, build_tiny_moe


def _installed(dist: str) -> str:
    """The version of an optional tool's distribution ("" when absent: its tests skip themselves)."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


TOOL_VERSIONS = {
    "llm-compressor": version("llmcompressor"),
    "modelopt": version("nvidia-modelopt"),
    "quark": _installed("amd-quark"),
}
NUM_SAMPLES = 8
SEQ_LEN = 64


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_moe(tmp_path_factory.mktemp("tiny-moe"), TinyMoESpec(tokenizer_chars=300_000))


@pytest.fixture(scope="session")
def mixtral_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_moe(
        tmp_path_factory.mktemp("tiny-mixtral"), TinyMoESpec(family="mixtral", tokenizer_chars=300_000)
    )


@pytest.fixture(scope="session")
def starved_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with layer 1's router rewired so experts 4..7 can never be in the top 2.

    Every router row is a multiple of one direction u: logits = alpha_e * (u . h). Whatever
    the sign of u . h, the top-2 are experts {0, 1} (largest alphas) or {2, 3} (most negative);
    experts 4..7 (alphas near zero) lose to one of those pairs on every token.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    gate = model.model.layers[1].mlp.gate
    u = torch.randn(gate.weight.shape[1], generator=torch.Generator().manual_seed(1))
    alphas = torch.tensor([3.0, 2.5, -2.5, -3.0, 0.2, 0.1, -0.1, -0.2])
    with torch.no_grad():
        gate.weight.copy_(alphas[:, None] * u[None, :])
    out = tmp_path_factory.mktemp("starved-moe")
    model.to(torch.bfloat16).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@dataclass
class CliRun:
    code: int
    termination: str
    output: Path
    recipe: CalibrationRecipe


@pytest.fixture
def run_calibrate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliRun]:
    """Run `quantfleet calibrate --recipe-json ...` in-process; return exit code + termination message."""
    from quantfleet.cli import main

    term = tmp_path / "termination-log"
    monkeypatch.setenv("QUANTFLEET_TERMINATION_LOG", str(term))
    monkeypatch.setenv("QUANTFLEET_DEVICE", "cpu")

    def run(source: Path, **fields: Any) -> CliRun:
        out = tmp_path / "published" / f"{fields['tool']}-{fields['scheme']}"
        recipe = CalibrationRecipe(
            source_uri=str(source),
            tool_version=TOOL_VERSIONS[fields["tool"]],
            num_samples=NUM_SAMPLES,
            max_seq_length=SEQ_LEN,
            output_uri=str(out),
            **fields,
        )
        code = main(["calibrate", *recipe.to_args()])
        return CliRun(code, term.read_text() if term.exists() else "", out, recipe)

    return run


def read_config(path: Path) -> dict[str, Any]:
    return json.loads((path / "config.json").read_text())


def tensor_dtypes(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    out: dict[str, str] = {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                out[k] = st.get_slice(k).get_dtype()
    return out
