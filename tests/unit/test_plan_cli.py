"""`quantfleet plan` in-process through quantfleet.cli.main: every shared config on every GPU of the table gives valid
JSON with the required keys (the issue's must-show), plus tables, node labels and error exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantfleet.cli import main
from quantfleet.cli.plan import JSON_KEYS
from quantfleet.hardware import GPU_TABLE, node_labels_for
from quantfleet_dev.testing import cpu_node

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
ALL_MODELS = sorted(p.name for p in FIXTURES.iterdir() if (p / "config.json").is_file())
# Published checkpoints carry SOURCE.md (provenance); the base-model configs do not.
PREQUANTIZED = sorted(m for m in ALL_MODELS if (FIXTURES / m / "SOURCE.md").is_file())
MODELS = sorted(m for m in ALL_MODELS if m not in PREQUANTIZED)


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["plan", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_fixtures_present() -> None:
    assert MODELS == ["llama-3.1-70b", "llama-3.1-8b", "mixtral-8x7b", "qwen3-30b-a3b", "trinity-mini"]
    assert PREQUANTIZED == [
        "aiplanet--luxllama",
        "amd--llama-3.1-8b-instruct-fp8-kv",
        "florianjc--meta-llama-3.1-8b-instruct-vllm-fp8",
        "moma1820--meta-llama-3.1-8b-instruct-gptq-4bit",
        "nm-testing--meta-llama-3-8b-instruct-fp8-dynamic-ia-per-tensor-weight-testing",
        "nvidia--llama-3.1-70b-instruct-fp8",
        "nvidia--qwen3-30b-a3b-nvfp4",
        "openai--gpt-oss-20b",
        "patronusai--llama-3.1-70b-instruct-awq-int4",
        "quantfleet--tiny-qwen3-moe-quark-fp8-static",
        "quantfleet--tiny-qwen3-moe-quark-mxfp4",
        "qwen--qwen3-30b-a3b-fp8",
    ]


@pytest.mark.parametrize("gpu", [s.key for s in GPU_TABLE])
@pytest.mark.parametrize("model", PREQUANTIZED)
def test_every_prequantized_checkpoint_on_every_gpu(capsys: pytest.CaptureFixture[str], model: str, gpu: str) -> None:
    """A published checkpoint is planned in its own format (never with --quantization), or refused with a reason."""
    rc, out, err = plan(capsys, "--model-config", str(FIXTURES / model), "--gpu", gpu, "--output", "json")
    if model == "aiplanet--luxllama":
        assert rc == 2 and "bitsandbytes" in err and "Unknown quantization method" in err
        return
    if rc == 2:
        assert "cannot serve the" in err and "vLLM 0.33.0" in err, err
        return
    doc = json.loads(out)
    assert doc["checkpoint_quantization"], doc
    assert doc["quantization_flag"] is None
    assert not any(a.startswith("--quantization") for a in doc["vllm_args"])
    if doc["fits"]:
        assert doc["checkpoint_format"] != "bf16" and doc["compute"] and doc["kernel"]
        assert doc["native"] in (True, False)


def test_prequantized_table_and_precision_constraint(capsys: pytest.CaptureFixture[str]) -> None:
    gpt_oss = str(FIXTURES / "openai--gpt-oss-20b")
    rc, out, _ = plan(capsys, "--model-config", gpt_oss, "--gpu", "h100", "--max-model-len", "8192")
    assert rc == 0
    assert "checkpoint: mxfp4-experts/mxfp4" in out
    assert "compute: mxfp4 weights, bf16 math via OAI Triton MoE kernels" in out
    assert "--quantization=" not in out
    rc, out, err = plan(capsys, "--model-config", gpt_oss, "--gpu", "h100", "--precision", "fp8")
    assert rc == 2 and "precision is checked against a pre-quantized checkpoint" in err
    rc, out, err = plan(capsys, "--model-config", gpt_oss, "--gpu", "t4")
    assert rc == 2 and "Minimum capability: 80" in err
    rc, out, _ = plan(capsys, "--model-config", gpt_oss, "--gpu", "b200", "--precision", "mxfp4", "--output", "json")
    doc = json.loads(out)
    assert rc == 0 and doc["native"] is True and doc["kernel"] == "FLASHINFER_TRTLLM_MXFP4_BF16"


@pytest.mark.parametrize("gpu", [s.key for s in GPU_TABLE])
@pytest.mark.parametrize("model", MODELS)
def test_every_config_on_every_gpu(capsys: pytest.CaptureFixture[str], model: str, gpu: str) -> None:
    rc, out, err = plan(
        capsys, "--model-config", str(FIXTURES / model / "config.json"), "--gpu", gpu, "--output", "json"
    )
    assert rc in (0, 1), err
    doc = json.loads(out)
    assert set(JSON_KEYS) <= set(doc)
    assert doc["fits"] is (rc == 0)
    assert isinstance(doc["reason"], str) and doc["reason"]
    if doc["fits"]:
        assert doc["precision"] in ("bf16", "fp8", "fp8-block", "w4a16", "nvfp4", "mxfp4")
        assert doc["kv_cache_dtype"] in ("bfloat16", "float16", "fp8_e4m3")
        assert doc["tensor_parallel_size"] in (1, 2, 4, 8)
        assert doc["kv_cache_tokens"] > 0 and doc["max_concurrency"] >= 1
        assert doc["kv_bytes_per_token"] > 0 and doc["weights_gib"] > 0
    else:
        assert "does not fit" in doc["reason"]


@pytest.mark.parametrize("model", MODELS)
def test_table_output_on_every_config(capsys: pytest.CaptureFixture[str], model: str) -> None:
    rc, out, _ = plan(capsys, "--model-config", str(FIXTURES / model), "--gpu", "NVIDIA-H100-80GB-HBM3")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("model: ")
    assert any(line.startswith("fp8 ") and "native" in line for line in lines)
    assert any(line.startswith("chosen (auto): fp8") for line in lines)


def test_explicit_precision_is_the_requested_plan(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(FIXTURES / "qwen3-30b-a3b" / "config.json")
    rc, out, _ = plan(capsys, "--model-config", cfg, "--gpu", "b200", "--precision", "nvfp4", "--output", "json")
    doc = json.loads(out)
    assert rc == 0 and doc["precision"] == "nvfp4" and doc["requested_precision"] == "nvfp4"
    assert any("assumes a calibrated nvfp4 checkpoint" in w for w in doc["warnings"])
    rc, out, _ = plan(capsys, "--model-config", cfg, "--gpu", "b200", "--precision", "bf16", "--output", "json")
    assert json.loads(out)["precision"] == "bf16"


def test_checkpoint_flag_feeds_auto(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(FIXTURES / "llama-3.1-70b" / "config.json")
    args = ["--model-config", cfg, "--gpu", "b200", "--max-model-len", "8192", "--output", "json"]
    rc, out, _ = plan(capsys, *args, "--checkpoint", "nvfp4=s3://bucket/llama-nvfp4")
    doc = json.loads(out)
    assert rc == 0 and doc["precision"] == "nvfp4" and doc["checkpoint"] == "s3://bucket/llama-nvfp4"
    assert doc["quantization_flag"] is None


def test_kv_concurrency_and_utilization_flags(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(FIXTURES / "llama-3.1-8b" / "config.json")
    base = ["--model-config", cfg, "--gpu", "h100", "--gpu-count", "1", "--output", "json"]
    _, out, _ = plan(capsys, *base, "--max-model-len", "131072", "--concurrency", "6")
    assert json.loads(out)["kv_cache_dtype"] == "fp8_e4m3"
    _, out, _ = plan(capsys, *base, "--max-model-len", "131072", "--context", "8192", "--concurrency", "6")
    assert json.loads(out)["kv_cache_dtype"] == "bfloat16"  # 6 x 8192 tokens fit easily in BF16
    _, out, _ = plan(capsys, *base, "--kv-cache-dtype", "fp8_e5m2", "--max-model-len", "8192")
    assert json.loads(out)["kv_cache_dtype"] == "fp8_e5m2"
    _, hi, _ = plan(capsys, *base, "--max-model-len", "8192")
    _, lo, _ = plan(capsys, *base, "--max-model-len", "8192", "--gpu-memory-utilization", "0.5")
    assert json.loads(lo)["kv_cache_gib"] < json.loads(hi)["kv_cache_gib"]


def test_node_labels_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(node_labels_for("MI355X", 8)))
    node = tmp_path / "node.json"
    node.write_text(json.dumps({"kind": "Node", "metadata": {"labels": node_labels_for("A10G", 4)}}))
    cfg = str(FIXTURES / "llama-3.1-8b" / "config.json")
    rc, out, _ = plan(capsys, "--model-config", cfg, "--node-labels", str(labels), "--output", "json")
    doc = json.loads(out)
    assert rc == 0 and doc["gpu"]["name"] == "MI355X" and doc["gpu"]["count"] == 8
    rc, out, _ = plan(
        capsys, "--model-config", cfg, "--node-labels", str(node), "--max-model-len", "8192", "--output", "json"
    )
    assert rc == 0 and json.loads(out)["precision"] == "bf16"


def test_cpu_pool_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = str(FIXTURES / "llama-3.1-8b" / "config.json")
    rc, out, _ = plan(capsys, "--model-config", cfg, "--cpu", "amx", "--max-model-len", "8192")
    assert rc == 0 and "vLLM CPU backend" in out and "VLLM_CPU_KVCACHE_SPACE=40" in out
    assert "bf16        native" in out and "<- chosen" in out
    rc, out, _ = plan(capsys, "--model-config", cfg, "--cpu", "avx2", "--max-model-len", "8192")
    assert rc == 0 and "w4a16 cannot run on this CPU" in out and "AVX-512" in out
    # a GPU-less Node object: its NFD labels and allocatable memory/CPU size the pod
    node = tmp_path / "node.json"
    node.write_text(json.dumps(cpu_node("m7i-0", "avx512", memory="32Gi", cpu="8")))
    rc, out, _ = plan(
        capsys, "--model-config", cfg, "--node-labels", str(node), "--max-model-len", "8192", "--output", "json"
    )
    doc = json.loads(out)
    assert rc == 0 and doc["device"] == "cpu" and doc["cpu_pool"]["name"] == "cpu-avx512"
    assert doc["cpu"] == {"kv_cache_space_gib": 11, "memory": "30146Mi", "cpus": "7", "node_memory_gib": 32.0}
    # a label map without GPU or NFD labels: an unknown CPU, BF16 only, and a warning saying why
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"kubernetes.io/hostname": "cpu-node"}))
    rc, out, _ = plan(capsys, "--model-config", cfg, "--node-labels", str(labels), "--max-model-len", "8192")
    assert rc == 0 and "cpu-unknown" in out and "Node Feature Discovery" in out
    rc, out, _ = plan(capsys, "--model-config", cfg, "--cpu", "amx", "--memory", "16Gi", "--output", "json")
    assert rc == 1 and json.loads(out)["fits"] is False


def test_does_not_fit_is_exit_1_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(FIXTURES / "llama-3.1-70b" / "config.json")
    rc, out, _ = plan(capsys, "--model-config", cfg, "--gpu", "l40s", "--gpu-count", "1", "--output", "json")
    doc = json.loads(out)
    assert rc == 1 and doc["fits"] is False and "GiB" in doc["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "h100", "--model-config", "/nonexistent/config.json"], "cannot read model config"),
        (["--gpu", "v100-banana", "--model-config", "{llama}"], "unknown GPU"),
        (["--gpu", "mi300x", "--model-config", "{llama}", "--precision", "nvfp4"], "cannot run"),
        (["--gpu", "t4", "--model-config", "{llama}", "--precision", "mxfp4"], "cannot run"),
        (["--gpu", "h100", "--model-config", "{bnb}"], "Unknown quantization method: bitsandbytes"),
        (["--gpu", "mi300x", "--model-config", "{nvfp4}"], "cannot serve the nvfp4/modelopt checkpoint"),
        (["--gpu", "h100", "--model-config", "{gptq}", "--checkpoint", "fp8"], "already a pre-quantized checkpoint"),
        (["--gpu", "h100", "--model-config", "{broken}"], "config.json: field 'hidden_size'"),
        (["--gpu", "h100", "--model-config", "{notjson}"], "not valid JSON"),
        (["--gpu", "h100", "--gpu-count", "0", "--model-config", "{llama}"], "--gpu-count"),
        (["--cpu", "avx2", "--model-config", "{llama}", "--kv-cache-dtype", "fp8_e4m3"], "AVX-512 or AMX"),
        (["--cpu", "amx", "--model-config", "{llama}", "--precision", "fp8"], "cannot quantize to FP8 on the fly"),
        (["--cpu", "amx", "--model-config", "{gptq}"], "only compressed-tensors"),
        (["--cpu", "amx", "--model-config", "{llama}", "--memory", "lots"], "--memory"),
        (["--node-labels", "{badlabels}", "--model-config", "{llama}"], "nvidia.com/gpu.compute.major"),
        (["--gpu", "h100", "--model-config", "{llama}", "--concurrency", "0"], "concurrency"),
        (["--gpu", "h100", "--model-config", "{llama}", "--checkpoint", "int3"], "unknown scheme"),
    ],
)
def test_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"model_type": "llama"}))
    notjson = tmp_path / "notjson.json"
    notjson.write_text("{nope")
    nolabels = tmp_path / "nolabels.json"
    nolabels.write_text(json.dumps({"kubernetes.io/hostname": "cpu-node"}))
    badlabels = tmp_path / "badlabels.json"
    badlabels.write_text(json.dumps({"nvidia.com/gpu.compute.major": "nine", "nvidia.com/gpu.memory": "81559"}))
    paths = {
        "{llama}": str(FIXTURES / "llama-3.1-8b" / "config.json"),
        "{bnb}": str(FIXTURES / "aiplanet--luxllama"),
        "{nvfp4}": str(FIXTURES / "nvidia--qwen3-30b-a3b-nvfp4"),
        "{gptq}": str(FIXTURES / "moma1820--meta-llama-3.1-8b-instruct-gptq-4bit" / "config.json"),
        "{broken}": str(broken),
        "{notjson}": str(notjson),
        "{nolabels}": str(nolabels),
        "{badlabels}": str(badlabels),
    }
    rc, out, err = plan(capsys, *[paths.get(a, a) for a in args])
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("quantfleet plan: error: ")
    assert message in err
    assert "Traceback" not in err
