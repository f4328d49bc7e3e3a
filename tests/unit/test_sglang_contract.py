"""The SGLang contract: everything the operator can emit to SGLang is accepted by the pinned release's own source.

The pinned wheel (versions.toml ``sglang.version``) is downloaded once with ``pip download --no-deps`` into
``${QUANTFLEET_CACHE:-~/.cache/quantfleet}/wheels/`` (39 MB for 0.5.23; set ``QUANTFLEET_SGLANG_WHEEL`` to a wheel
file when PyPI is out of reach) and read from the zip with ``ast``; SGLang is never installed or imported. The
download happens in a session fixture, so collection stays fast. An SGLang bump that drops a flag, a
``--quantization`` or ``--kv-cache-dtype`` choice, a registered method, an endpoint or a metric the operator relies
on, or that moves a capability floor quantfleet.hardware.sglang states, fails here, naming what changed.

The doctored-source tests prove the checker can fail: each edits one file of the real release the way an upgrade
could, and asserts the checker reports exactly that.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from quantfleet import versions
from quantfleet.api import sglang_flags as sf
from quantfleet.hardware import sglang as hw
from quantfleet_dev.sglang_source import (
    SglangSource,
    SourceLayoutError,
    contract_problems,
    fetch_wheel,
    parse_source,
    read_sources,
)

# The first run downloads the wheel (seconds on a fast link, minutes on a slow one).
pytestmark = pytest.mark.timeout(1800)

FIELDS_MODEL = "sglang/srt/arg_groups/fields/model.py"
FIELDS_OBSERVABILITY = "sglang/srt/arg_groups/fields/observability.py"
FIELDS_PARALLEL = "sglang/srt/arg_groups/fields/parallel.py"
FIELDS_SERVING = "sglang/srt/arg_groups/fields/serving.py"
CHOICES_PY = "sglang/srt/arg_groups/choices.py"
QUANT_INIT = "sglang/srt/layers/quantization/__init__.py"
MODELOPT = "sglang/srt/layers/quantization/modelopt_quant.py"
MODEL_CONFIG = "sglang/srt/configs/model_config.py"
HTTP_SERVER = "sglang/srt/entrypoints/http_server.py"
METRICS_COLLECTOR = "sglang/srt/observability/metrics_collector.py"
LAUNCH_SERVER = "sglang/launch_server.py"
SERVER_ARGS = "sglang/srt/server_args.py"


@pytest.fixture(scope="session")
def sglang_wheel() -> Path:
    return fetch_wheel()


@pytest.fixture(scope="session")
def wheel_files(sglang_wheel: Path) -> dict[str, str]:
    return read_sources(sglang_wheel)


@pytest.fixture(scope="session")
def source(sglang_wheel: Path, wheel_files: dict[str, str]) -> SglangSource:
    return parse_source(wheel_files, origin=str(sglang_wheel))


# --- the contract, item by item (the test id names what broke) --------------------------------------------------------


def test_source_is_the_pinned_release(source: SglangSource) -> None:
    assert source.version == versions.get("sglang.version")


def test_contract_has_no_problems(source: SglangSource) -> None:
    assert contract_problems(source) == []


def test_launch_module_parses_the_command_line(source: SglangSource) -> None:
    assert sf.SGLANG_COMMAND[-1] == sf.LAUNCH_MODULE
    assert source.launch_module_parses_argv
    assert source.launch_module_deprecations == ()
    assert "sglang" in source.console_scripts  # `sglang serve`, the alternative entry point


@pytest.mark.parametrize("flag", sorted(sf.EMITTED_FLAGS))
def test_emitted_flag_is_accepted(source: SglangSource, flag: str) -> None:
    assert flag in source.flags, f"sglang.launch_server does not accept {flag}"
    assert flag not in source.deprecated_flags
    assert (flag in source.boolean_flags) == (flag in sf.BOOLEAN_FLAGS)


@pytest.mark.parametrize("dtype", sf.KV_CACHE_DTYPES)
def test_kv_cache_dtype_is_a_choice(source: SglangSource, dtype: str) -> None:
    assert dtype in source.choices[sf.FLAG_KV_CACHE_DTYPE]


@pytest.mark.parametrize("value", sorted(sf.EMITTED_QUANTIZATION_VALUES))
def test_quantization_value_is_a_choice(source: SglangSource, value: str) -> None:
    assert value in source.choices[sf.FLAG_QUANTIZATION]


@pytest.mark.parametrize("method", sorted(sf.DETECTED_QUANTIZATION_METHODS))
def test_detected_method_is_registered(source: SglangSource, method: str) -> None:
    assert method in source.quantization_methods


@pytest.mark.parametrize("method", sorted(sf.ROCM_QUANTIZATION_METHODS))
def test_rocm_method_is_allowed_on_rocm(source: SglangSource, method: str) -> None:
    assert method in source.rocm_quantization_methods


@pytest.mark.parametrize("path", sorted(sf.ENDPOINT_PATHS))
def test_endpoint_is_served(source: SglangSource, path: str) -> None:
    assert path in source.routes


def test_health_reports_not_ready(source: SglangSource) -> None:
    assert sf.HEALTH_NOT_READY_STATUS in source.routes[sf.HEALTH_PATH]


@pytest.mark.parametrize("metric", sorted(sf.METRIC_NAMES))
def test_metric_is_defined(source: SglangSource, metric: str) -> None:
    assert metric in source.metric_names


@pytest.mark.parametrize(("method", "entry"), sorted(hw.MIN_CAPABILITY.items()))
def test_capability_floor_matches_the_source(source: SglangSource, method: str, entry: tuple[int, str, str]) -> None:
    floor, _, cls = entry
    assert source.min_capabilities[cls] == floor


# --- the parser reads what is really there (guards against a checker that finds nothing and so flags nothing) ---------


def test_parser_sees_the_whole_launch_command_line(source: SglangSource) -> None:
    # Options from field annotations (plain help strings and Arg(...), aliases, Literal and named choice lists) and
    # from the explicit add_argument calls in ServerArgs.add_cli_args.
    assert len(source.flags) > 400
    assert source.flags["--tensor-parallel-size"] == "tp_size"
    assert source.flags["--model"] == "model_path"
    assert source.flags["--reasoning-parser"] == "reasoning_parser"
    assert "--disable-cuda-graph" in source.deprecated_flags
    assert {"awq", "gptq_marlin", "modelopt_fp4"} <= source.choices[sf.FLAG_QUANTIZATION]
    assert {"bf16", "nvfp4"} <= source.choices[sf.FLAG_KV_CACHE_DTYPE]
    assert source.defaults["port"] == sf.DEFAULT_PORT
    assert source.defaults["mem_fraction_static"] is None


def test_mxfp4_is_registered_only_for_cuda_and_gfx950(source: SglangSource) -> None:
    condition = source.quantization_methods[sf.QUANT_METHOD_MXFP4]
    assert "is_cuda()" in condition and "_is_gfx95_supported" in condition


def test_gptq_has_no_rocm_path(source: SglangSource) -> None:
    # Plain `gptq` is registered only under is_npu()/is_cpu()/is_xpu(); `gptq_marlin` is not on the ROCm list.
    assert source.quantization_methods.get("gptq", "") != ""
    assert "gptq_marlin" not in source.rocm_quantization_methods
    assert "modelopt_fp8" not in source.rocm_quantization_methods


# --- the checker can fail: doctored copies of the real release --------------------------------------------------------


def _doctor(files: Mapping[str, str], path: str, old: str, new: str, *, count: int = 1) -> dict[str, str]:
    """A copy of the release with one edit; the edit must apply ``count`` times, or the test would prove nothing."""
    assert files[path].count(old) == count, f"{path}: {old!r} occurs {files[path].count(old)} times"
    doctored = dict(files)
    doctored[path] = files[path].replace(old, new)
    return doctored


def test_doctored_wheel_is_caught(wheel_files: dict[str, str], tmp_path: Path) -> None:
    """End to end through a zip on disk, as a real upgraded wheel would arrive: a --kv-cache-dtype choice dropped."""
    doctored = _doctor(
        wheel_files,
        FIELDS_MODEL,
        '                "fp8_e5m2",\n                "fp8_e4m3",\n                "mxfp8",',
        '                "fp8_e5m2",\n                "mxfp8",',
    )
    wheel = tmp_path / "sglang-doctored.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, text in doctored.items():
            zf.writestr(name, text)
    try:
        problems = contract_problems(parse_source(read_sources(wheel), origin=str(wheel)))
    finally:
        wheel.unlink()
    assert problems == ["--kv-cache-dtype value 'fp8_e4m3' is not in its choices"]


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (
            FIELDS_OBSERVABILITY,
            '    enable_metrics: A[bool, "Enable log prometheus metrics."] = False',
            '    enable_prometheus: A[bool, "Enable log prometheus metrics."] = False',
            "flag --enable-metrics is not accepted by sglang.launch_server",
        ),
        (
            FIELDS_OBSERVABILITY,
            '    enable_metrics: A[bool, "Enable log prometheus metrics."] = False',
            '    enable_metrics: A[Optional[str], "Enable log prometheus metrics."] = None',
            "flag --enable-metrics takes a value upstream",
        ),
        (
            CHOICES_PY,
            '    "fp8",  # MOE + linear online quantization.\n',
            "",
            "--quantization value 'fp8' is not in its choices",
        ),
        (
            FIELDS_PARALLEL,
            '            help="The tensor parallelism size.",',
            '            help="The tensor parallelism size.", cli_name="--tp",',
            "flag --tp-size is not accepted by sglang.launch_server",
        ),
        (
            FIELDS_MODEL,
            "            help=\"The model's maximum context length.",
            "            help=\"Deprecated. The model's maximum context length.",
            "flag --context-length is deprecated",
        ),
        (
            QUANT_INIT,
            '    "modelopt_fp4": ModelOptFp4Config,\n',
            "",
            "quantization method 'modelopt_fp4' is not registered in QUANTIZATION_METHODS",
        ),
        (
            MODEL_CONFIG,
            '            "quark",\n            "mxfp4",',
            '            "mxfp4",',
            "quantization method 'quark' is not in rocm_supported_quantization",
        ),
        (
            FIELDS_SERVING,
            '    port: A[int, "The port of the HTTP server."] = 30000',
            '    port: A[int, "The port of the HTTP server."] = 8000',
            "default port is 8000, declared 30000",
        ),
        (
            METRICS_COLLECTOR,
            'name="sglang:num_running_reqs"',
            'name="sglang:running_reqs"',
            "metric sglang:num_running_reqs is not defined",
        ),
        (
            LAUNCH_SERVER,
            "\"'python -m sglang.launch_server' is still supported, but \"",
            "\"'python -m sglang.launch_server' is deprecated and will be removed; \"",
            "`python -m sglang.launch_server` is deprecated: 'python -m sglang.launch_server' is deprecated and "
            "will be removed; 'sglang serve' is the recommended entrypoint.",
        ),
        (
            MODELOPT,
            "return 89  # Minimum hardware capability (e.g., Hopper GPUs).",
            "return 90  # Minimum hardware capability (e.g., Hopper GPUs).",
            "ModelOptFp8Config.get_min_capability is 90, quantfleet.hardware.sglang says 89",
        ),
        (
            QUANT_INIT,
            "if is_cpu() or is_cuda() or _is_gfx95_supported or is_xpu():",
            "if is_cpu() or is_cuda() or is_hip() or is_xpu():",
            "mxfp4 is registered under 'is_cpu() or is_cuda() or is_hip() or is_xpu()', not (CUDA or gfx950): "
            "update quantfleet.hardware.sglang.MXFP4_GFX_ARCHES",
        ),
    ],
    ids=[
        "flag-removed",
        "flag-takes-a-value",
        "quantization-choice-dropped",
        "flag-renamed",
        "flag-deprecated",
        "method-unregistered",
        "rocm-method-dropped",
        "default-changed",
        "metric-renamed",
        "launcher-deprecated",
        "capability-floor-moved",
        "mxfp4-on-every-rocm",
    ],
)
def test_doctored_source_is_caught(wheel_files: dict[str, str], path: str, old: str, new: str, expected: str) -> None:
    problems = contract_problems(parse_source(_doctor(wheel_files, path, old, new), origin="doctored"))
    assert problems == [expected]


def test_health_that_never_answers_503_is_caught(wheel_files: dict[str, str]) -> None:
    doctored = _doctor(wheel_files, HTTP_SERVER, "Response(status_code=503)", "Response(status_code=500)", count=3)
    assert contract_problems(parse_source(doctored, origin="doctored")) == ["/health never answers 503"]


@pytest.mark.parametrize(
    ("path", "old", "new", "match"),
    [
        (SERVER_ARGS, "_INPUT_NAMESPACES = [", "_NAMESPACES_IN = [", "_INPUT_NAMESPACES"),
        (SERVER_ARGS, "    ExecFeatures,\n    Mm,", "    ExecFeatures,\n    Multimodal,", "Multimodal"),
        (
            SERVER_ARGS,
            "        add_cli_args_from_dataclass(parser, ServerArgs)\n",
            "",
            "no longer derives options from the fields",
        ),
    ],
    ids=["namespace-list-renamed", "namespace-class-missing", "fields-not-derived"],
)
def test_reshaped_source_fails_loudly(wheel_files: dict[str, str], path: str, old: str, new: str, match: str) -> None:
    # A definition the parser cannot read is an error, never an empty set that would check nothing.
    with pytest.raises(SourceLayoutError, match=match):
        parse_source(_doctor(wheel_files, path, old, new), origin="doctored")


# --- rendered argument lists stay inside the declaration (pure; no wheel needed) --------------------------------------


def test_problems_in_args_accepts_a_declared_command_line() -> None:
    args = [
        sf.FLAG_MODEL_PATH,
        "/models/qwen3",
        sf.FLAG_SERVED_MODEL_NAME,
        "qwen3",
        sf.FLAG_QUANTIZATION,
        sf.QUANTIZATION_FP8_ON_THE_FLY,
        f"{sf.FLAG_KV_CACHE_DTYPE}=fp8_e4m3",
        sf.FLAG_ENABLE_METRICS,
        sf.FLAG_PORT,
        "8000",
    ]
    assert sf.problems_in_args(args) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["/m"], "unexpected positional argument '/m'"),
        (["--port", "1"], "--model-path is missing"),
        (["--model-path", "/m", "--gpu-memory-utilization", "0.9"], "--gpu-memory-utilization is not declared"),
        (["--model-path", "/m", "--quantization", "awq"], "--quantization 'awq' is not one of ['fp8']"),
        (["--model-path", "/m", "--kv-cache-dtype", "fp8"], "--kv-cache-dtype 'fp8' is not one of"),
        (["--model-path", "/m", "--port"], "--port has no value"),
        (["--model-path", "/m", "--enable-metrics=true"], "--enable-metrics takes no value"),
        (["--model-path", "/m", "--port", "1", "--port", "2"], "--port is given more than once"),
    ],
)
def test_problems_in_args_reports(args: list[str], expected: str) -> None:
    problems = sf.problems_in_args(args)
    assert any(p.startswith(expected) for p in problems), problems
