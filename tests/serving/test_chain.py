"""calibrate -> checkpoint -> render -> a real vLLM answers: the chain the operator automates, run for real on CPU.

For each case: a tiny Llama is built here (head_dim 64: vLLM's CPU attention needs a multiple of 32), the project's
own `quantfleet calibrate` (real llm-compressor, in a subprocess of the main venv) writes the checkpoint,
`quantfleet render` plans an InferenceService for a CPU pool and prints its Deployment, and the vLLM container's
command, args and env are started exactly as rendered with the CPU build of vLLM (quantfleet_dev.vllm_cpu, its own
venv). Then: /v1/models names the served model, one completion and one chat completion answer, and /metrics has
the names the operator's docs rely on (quantfleet.api.vllm_flags.METRIC_NAMES) and every vLLM series the chart's
alerts and Grafana dashboard read (quantfleet_dev.monitoring).

What is mapped from the pod to this machine, and nothing else (quantfleet_dev.vllm_cpu.local_container):
- the model positional /models/<path> (the checkpoint on its PVC mount) -> the local checkpoint directory;
- env values under /cache (the pod's emptyDir: HOME, HF_HOME) -> a temporary directory;
- --host 0.0.0.0 --port 8000 -> 127.0.0.1:<free port> (start_server), so nothing listens beyond this machine;
- `vllm` -> the vllm-cpu venv's console script (start_server).
The environment start_server adds under the rendered one (VLLM_TARGET_DEVICE=cpu, offline hub, no usage stats) is
what the vLLM CPU image carries or what an offline machine needs; every variable the Deployment sets wins.

The Node the service is planned for is this machine as Node Feature Discovery would label it (its /proc/cpuinfo
flags as feature.node.kubernetes.io/cpu-cpuid.* labels) with 6Gi allocatable memory, so the rendered KV cache space
stays small on a shared machine. The InferenceService adds `--enforce-eager` through spec.vllm.extraArgs (it is part
of the rendered args): without it vLLM's CPU backend runs torch.compile and starts in ~104 s instead of ~40 s here.

Cases: BF16 base model; FP8_DYNAMIC checkpoint; FP8_DYNAMIC with calibrated FP8 KV-cache scales (served with an FP8
KV cache, which vLLM's CPU backend takes only with AVX-512 or AMX: skipped otherwise, with the flags read from
/proc/cpuinfo). One vLLM server at a time. Timings are printed at the end of the run ("serving chain").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantfleet import versions
from quantfleet.api import vllm_flags
from quantfleet.api.recipe import CalibrationRecipe
from quantfleet_dev import monitoring, vllm_cpu
from quantfleet_dev.testing import free_port, run_calibrate_cli

pytestmark = [pytest.mark.calibration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "operator"
NODE_NAME = "this-machine"
SECTION = "serving chain (calibrate -> quantfleet render -> vLLM CPU build)"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(OPERATOR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, vllm_env: Path) -> Path:
    pytest.importorskip("llmcompressor")
    out = tmp_path_factory.mktemp("models") / "tiny-llama-bf16"
    return vllm_cpu.build_tiny_llama(out, python=sys.executable, log=lambda m: None)


@pytest.fixture(scope="module")
def nodes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nodes") / "nodes.yaml"
    path.write_text(yaml.safe_dump(vllm_cpu.local_node(NODE_NAME, memory="6Gi")))
    return path


def calibrate(source: Path, out: Path, *, kv_cache_fp8: bool) -> float:
    """`quantfleet calibrate` (the program the calibration Job runs) on the CPU; returns its wall time."""
    recipe = CalibrationRecipe(
        source_uri=str(source),
        scheme="fp8-dynamic",
        tool="llm-compressor",
        tool_version=version("llmcompressor"),
        ignore=("lm_head",),
        kv_cache_fp8=kv_cache_fp8,
        num_samples=16,
        max_seq_length=128,
        output_uri=str(out),
    )
    env = {**_env(), "QUANTFLEET_DEVICE": "cpu", "QUANTFLEET_TERMINATION_LOG": str(out.parent / f"{out.name}.term")}
    proc, seconds = run_calibrate_cli(recipe, env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return seconds


def render(tmp: Path, name: str, claim_path: str, model_dir: Path, nodes: Path) -> tuple[dict[str, Any], str]:
    """`quantfleet render` for a CPU pool that selects this machine; returns (the Deployment, the decision lines)."""
    isvc = {
        "apiVersion": "quantfleet.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "serving"},
        "spec": {
            "model": {"uri": f"pvc://models/{claim_path}", "configRef": {"name": f"{name}-config"}},
            "maxModelLen": 512,
            "pools": [{"name": "cpu", "nodeSelector": {"node.kubernetes.io/instance-type": NODE_NAME}}],
            "vllm": {"extraArgs": ["--enforce-eager"]},
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(isvc))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "quantfleet.cli",
            "render",
            "-f",
            str(path),
            "--model-config",
            str(model_dir / "config.json"),
            "--nodes",
            str(nodes),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    deployments = [d for d in yaml.safe_load_all(proc.stdout) if d and d.get("kind") == "Deployment"]
    assert len(deployments) == 1, proc.stdout
    return deployments[0], proc.stderr.strip()


def _kernel_lines(log: Path) -> list[str]:
    """What vLLM's log says about the linear kernel and the KV cache it chose (for the report)."""
    text = log.read_text(errors="replace")
    found = re.findall(r"Selected \w+ for \w+", text) + re.findall(r"CPU KV cache size: [\d,]+ tokens", text)
    return list(dict.fromkeys(found))


def serve_and_ask(dep: dict[str, Any], claim_path: str, model_dir: Path, cache: Path) -> dict[str, Any]:
    container = dep["spec"]["template"]["spec"]["containers"][0]
    command, args, env = vllm_cpu.local_container(container, {f"/models/{claim_path}": model_dir}, cache)
    served = args[args.index("--served-model-name") + 1]
    out: dict[str, Any] = {}
    with vllm_cpu.start_server(command, args, env, free_port(), startup_timeout=420, log=lambda m: None) as s:
        out["start_s"] = s.startup_seconds
        out["first_4_tokens_s"] = s.first_completion_seconds
        status, models = s.get("/v1/models")
        assert status == 200 and [m["id"] for m in json.loads(models)["data"]] == [served], models
        t0 = time.monotonic()
        status, completion = s.post(
            "/v1/completions",
            {"model": served, "prompt": "def main(", "max_tokens": 16, "temperature": 0, "ignore_eos": True},
        )
        out["completion_16_tokens_s"] = round(time.monotonic() - t0, 3)
        assert status == 200, completion
        assert completion["usage"]["completion_tokens"] == 16 and isinstance(completion["choices"][0]["text"], str)
        t0 = time.monotonic()
        status, chat = s.post(
            "/v1/chat/completions",
            {"model": served, "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]},
        )
        out["chat_8_tokens_s"] = round(time.monotonic() - t0, 3)
        assert status == 200, chat
        assert chat["choices"][0]["message"]["role"] == "assistant", chat
        names = s.metric_names()
        missing = sorted(vllm_flags.METRIC_NAMES - names)
        assert missing == [], f"/metrics lacks {missing}"
        # every vLLM series the chart's alerts and dashboard read (counters as _total, histograms as _bucket/...)
        unserved = sorted(monitoring.vllm_sample_names(monitoring.shipped_queries()) - names)
        assert unserved == [], f"/metrics lacks what the alerts or the dashboard read: {unserved}"
        out["kernels"] = _kernel_lines(s.log_path)
        out["log"] = str(s.log_path)
    return out


def _cpu_feature_skip(needs: str) -> None:
    flags = vllm_cpu.cpu_flags()
    isa = vllm_cpu.cpu_isa(flags)
    if needs == "avx512" and isa not in ("avx512", "amx"):
        shown = " ".join(sorted(f for f in flags if f.startswith(("avx", "amx")))) or "(none)"
        pytest.skip(f"an FP8 KV cache on vLLM's CPU backend needs AVX-512 or AMX; /proc/cpuinfo has {isa}: {shown}")


CASES = {
    # case: (checkpoint scheme or None for the base model, calibrated FP8 KV scales, KV dtype the render must choose,
    #        CPU feature the case needs)
    "bf16": (None, False, "auto", None),
    "fp8-dynamic": ("fp8-dynamic", False, "auto", None),
    "fp8-dynamic-fp8-kv": ("fp8-dynamic", True, "fp8_e4m3", "avx512"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_chain_serves(
    case: str,
    tiny_llama: Path,
    nodes_file: Path,
    tmp_path: Path,
    report: Callable[[str, str], None],
) -> None:
    scheme, kv_scales, kv_dtype, needs = CASES[case]
    if needs:
        _cpu_feature_skip(needs)
    timings: dict[str, Any] = {}
    claim_path = f"tiny-{case}"
    if scheme is None:
        model_dir = tiny_llama
    else:
        model_dir = tmp_path / claim_path
        timings["calibrate_s"] = round(calibrate(tiny_llama, model_dir, kv_cache_fp8=kv_scales), 1)
        qc = json.loads((model_dir / "config.json").read_text())["quantization_config"]
        assert qc["quant_method"] == "compressed-tensors"
        assert bool(qc.get("kv_cache_scheme")) == kv_scales

    t0 = time.monotonic()
    dep, decision = render(tmp_path, f"tiny-{case}", claim_path, model_dir, nodes_file)
    timings["render_s"] = round(time.monotonic() - t0, 1)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # the render is a CPU pod: the vLLM CPU image, the KV cache in VLLM_CPU_KVCACHE_SPACE, no GPUs, no --quantization
    assert container["image"] == versions.vllm_cpu_image()
    assert container["command"] == list(vllm_flags.VLLM_COMMAND)
    assert args[0] == f"/models/{claim_path}" and "--quantization" not in args
    assert args[args.index("--kv-cache-dtype") + 1] == kv_dtype, decision
    assert int(env["VLLM_CPU_KVCACHE_SPACE"]) >= 1
    assert not [k for k in container["resources"]["limits"] if k.endswith("/gpu")]

    result = serve_and_ask(dep, claim_path, model_dir, tmp_path / "cache")
    timings.update({k: v for k, v in result.items() if k.endswith("_s")})
    kv_space = env["VLLM_CPU_KVCACHE_SPACE"]
    report(
        SECTION,
        f"{case}: KV {kv_dtype}, VLLM_CPU_KVCACHE_SPACE={kv_space}; "
        + ", ".join(f"{k} {v}" for k, v in timings.items())
        + (f"; vLLM: {' | '.join(result['kernels'])}" if result["kernels"] else ""),
    )
