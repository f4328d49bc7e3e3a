"""The vLLM contract: everything the operator can emit to vLLM is accepted by the pinned release's own source.

The pinned wheel (versions.toml ``vllm.version``) is downloaded once with ``pip download --no-deps`` into
``${QUANTFLEET_CACHE:-~/.cache/quantfleet}/wheels/`` (336 MB for 0.33.0; set ``QUANTFLEET_VLLM_WHEEL`` to a wheel file
when PyPI is out of reach) and read from the zip with ``ast``; vLLM is never installed or imported. The download
happens in a session fixture, so collection stays fast. A vLLM bump that drops a flag, a ``--quantization`` or
``--kv-cache-dtype`` value, an endpoint or a metric the operator relies on fails here, naming what went missing.

The doctored-source tests prove the checker can fail: each edits one file of the real release the way an upgrade
could, and asserts the checker reports exactly that.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from quantfleet import versions
from quantfleet.api import vllm_flags as vf
from quantfleet_dev.vllm_source import (
    SourceLayoutError,
    VllmSource,
    contract_problems,
    fetch_wheel,
    parse_source,
    read_wheel,
)

# The first run downloads the wheel (seconds on a fast link, minutes on a slow one).
pytestmark = pytest.mark.timeout(1800)

CACHE_PY = "vllm/config/cache.py"
ARG_UTILS = "vllm/engine/arg_utils.py"
CLI_ARGS = "vllm/entrypoints/common/cli_args.py"
QUANT_INIT = "vllm/model_executor/layers/quantization/__init__.py"
HEALTH_PY = "vllm/entrypoints/serve/instrumentator/health.py"
LOGGERS_PY = "vllm/v1/metrics/loggers.py"


@pytest.fixture(scope="session")
def vllm_wheel() -> Path:
    return fetch_wheel()


@pytest.fixture(scope="session")
def wheel_files(vllm_wheel: Path) -> dict[str, str]:
    return read_wheel(vllm_wheel)


@pytest.fixture(scope="session")
def source(vllm_wheel: Path, wheel_files: dict[str, str]) -> VllmSource:
    return parse_source(wheel_files, origin=str(vllm_wheel))


# --- the contract, item by item (the test id names what broke) --------------------------------------------------------


def test_source_is_the_pinned_release(source: VllmSource) -> None:
    assert source.version == versions.get("vllm.version")


def test_contract_has_no_problems(source: VllmSource) -> None:
    assert contract_problems(source) == []


def test_vllm_serve_takes_the_model_positionally(source: VllmSource) -> None:
    script, subcommand = vf.VLLM_COMMAND
    assert script in source.console_scripts
    assert subcommand in source.cli_subcommands
    assert vf.MODEL_POSITIONAL_DEST in source.positionals


@pytest.mark.parametrize("flag", sorted(vf.EMITTED_FLAGS))
def test_emitted_flag_is_accepted(source: VllmSource, flag: str) -> None:
    assert flag in source.flags, f"vllm serve does not accept {flag}"
    assert source.flags[flag] in source.arg_fields
    assert flag not in source.deprecated_flags


@pytest.mark.parametrize("value", sorted(vf.EMITTED_QUANTIZATION_VALUES | vf.DETECTED_QUANTIZATION_METHODS))
def test_quantization_method_is_registered(source: VllmSource, value: str) -> None:
    assert value in source.quantization_methods
    assert value in source.quantization_configs
    assert value not in source.deprecated_quantization_methods


@pytest.mark.parametrize("dtype", vf.KV_CACHE_DTYPES)
def test_kv_cache_dtype_is_accepted(source: VllmSource, dtype: str) -> None:
    assert dtype in source.kv_cache_dtypes


def test_default_gpu_memory_utilization_matches(source: VllmSource) -> None:
    assert source.default_gpu_memory_utilization == vf.DEFAULT_GPU_MEMORY_UTILIZATION


@pytest.mark.parametrize("path", sorted(vf.ENDPOINT_PATHS))
def test_endpoint_is_served(source: VllmSource, path: str) -> None:
    assert path in source.routes


def test_health_reports_a_dead_engine(source: VllmSource) -> None:
    assert vf.HEALTH_ENGINE_DEAD_STATUS in source.routes[vf.HEALTH_PATH]


@pytest.mark.parametrize("metric", sorted(vf.METRIC_NAMES))
def test_metric_is_defined(source: VllmSource, metric: str) -> None:
    assert metric in source.metric_names


# --- the parser reads what is really there (guards against a checker that finds nothing and so flags nothing) ---------


def test_parser_sees_the_whole_serve_command_line(source: VllmSource) -> None:
    # Flags from all three places the serve parser gets them: explicit add_argument calls (with aliases and dest=),
    # AsyncEngineArgs.add_cli_args, and FrontendArgs fields turned into --kebab-case flags.
    assert len(source.flags) > 200
    assert source.flags["-tp"] == "tensor_parallel_size"
    assert source.flags["--device-memory-utilization"] == "gpu_memory_utilization"
    assert source.flags["--enable-log-requests"] == "enable_log_requests"
    assert source.flags["--api-key"] == "api_key"
    assert {"fp8", "awq", "gptq_marlin"} <= source.quantization_methods
    assert {"fp8", "float16"} <= source.kv_cache_dtypes


def test_model_flag_is_deprecated_for_vllm_serve(source: VllmSource) -> None:
    # Why the operator passes the model positionally: 0.33.0's parser warns that `--model` "will be removed".
    assert "--model" in source.flags
    assert "--model" in source.deprecated_flags
    assert "--model" not in vf.EMITTED_FLAGS


def test_calculate_kv_scales_is_gone(source: VllmSource) -> None:
    # removed upstream (vLLM PR #49389), so FP8 KV scales must come from the checkpoint. Never emit it.
    assert "--calculate-kv-scales" not in source.flags


# --- the checker can fail: doctored copies of the real release --------------------------------------------------------


def _doctor(files: Mapping[str, str], path: str, old: str, new: str) -> dict[str, str]:
    """A copy of the release with one edit; the edit must apply exactly once, or the test would prove nothing."""
    assert files[path].count(old) == 1, f"{path}: {old!r} occurs {files[path].count(old)} times"
    doctored = dict(files)
    doctored[path] = files[path].replace(old, new)
    return doctored


def _write_wheel(files: Mapping[str, str], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (CACHE_PY, '    "fp8_e4m3",\n', "", "--kv-cache-dtype value 'fp8_e4m3' is not in CacheDType"),
        (ARG_UTILS, '"--kv-cache-dtype"', '"--kv-cache-type"', "flag --kv-cache-dtype is not accepted by `vllm serve`"),
    ],
    ids=["kv-dtype-dropped", "flag-renamed"],
)
def test_doctored_wheel_is_caught(
    wheel_files: dict[str, str], tmp_path: Path, path: str, old: str, new: str, expected: str
) -> None:
    """End to end through a zip on disk, as a real upgraded wheel would arrive."""
    wheel = _write_wheel(_doctor(wheel_files, path, old, new), tmp_path / "vllm-doctored.whl")
    try:
        problems = contract_problems(parse_source(read_wheel(wheel), origin=str(wheel)))
    finally:
        wheel.unlink()  # 50 MB; pytest keeps tmp dirs of past runs
    assert expected in problems


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (
            ARG_UTILS,
            "    served_model_name: str | list[str] | None = ModelConfig.served_model_name\n",
            "",
            "flag --served-model-name sets 'served_model_name', which is no EngineArgs/FrontendArgs field",
        ),
        (
            CLI_ARGS,
            "    host: str | None = None\n",
            "    bind_host: str | None = None\n",
            "flag --host is not accepted by `vllm serve`",
        ),
        (
            ARG_UTILS,
            '"--disable-cascade-attn is deprecated',
            '"--max-model-len is deprecated',
            "flag --max-model-len is deprecated",
        ),
        (
            QUANT_INIT,
            '    "modelopt_fp4",\n',
            "",
            "detected quantization method 'modelopt_fp4' is not in QuantizationMethods",
        ),
        (
            QUANT_INIT,
            '        "mxfp4": Mxfp4Config,\n',
            "",
            "detected quantization method 'mxfp4' has no config in get_quantization_config",
        ),
        (
            QUANT_INIT,
            'DEPRECATED_QUANTIZATION_METHODS = [\n    "fbgemm_fp8",',
            'DEPRECATED_QUANTIZATION_METHODS = [\n    "fp8",\n    "fbgemm_fp8",',
            "--quantization value 'fp8' is deprecated",
        ),
        (
            CACHE_PY,
            "gpu_memory_utilization: float = Field(default=0.92,",
            "gpu_memory_utilization: float = Field(default=0.9,",
            "default --gpu-memory-utilization is 0.9, declared 0.92",
        ),
        (HEALTH_PY, "Response(status_code=503)", "Response(status_code=500)", "/health never answers 503"),
        (
            LOGGERS_PY,
            'name="vllm:kv_cache_usage_perc"',
            'name="vllm:gpu_cache_usage_perc"',
            "metric vllm:kv_cache_usage_perc is not defined",
        ),
    ],
    ids=[
        "field-removed",
        "frontend-field-renamed",
        "flag-deprecated",
        "quant-method-dropped",
        "quant-config-dropped",
        "quant-method-deprecated",
        "default-changed",
        "health-never-503",
        "metric-renamed",
    ],
)
def test_doctored_source_is_caught(wheel_files: dict[str, str], path: str, old: str, new: str, expected: str) -> None:
    problems = contract_problems(parse_source(_doctor(wheel_files, path, old, new), origin="doctored"))
    assert expected in problems


def test_moved_definition_is_still_found(wheel_files: dict[str, str]) -> None:
    # vLLM moves modules between releases; the parser falls back to searching for the definition.
    doctored = dict(wheel_files)
    doctored["vllm/config/kv_cache_dtypes.py"] = doctored.pop(CACHE_PY)
    assert contract_problems(parse_source(doctored, origin="doctored")) == []


def test_reshaped_definition_fails_loudly(wheel_files: dict[str, str]) -> None:
    # A definition the parser cannot read is an error, never an empty set that would check nothing.
    doctored = _doctor(wheel_files, CACHE_PY, 'CacheDType = Literal[\n    "auto",', "CacheDType = Literal[\n    AUTO,")
    with pytest.raises(SourceLayoutError, match="CacheDType"):
        parse_source(doctored, origin="doctored")


# --- rendered argument lists stay inside the declaration (pure; no wheel needed) --------------------------------------


def test_problems_in_args_accepts_a_declared_command_line() -> None:
    args = [
        "/models/qwen3-fp8",
        vf.FLAG_SERVED_MODEL_NAME,
        "qwen3",
        vf.FLAG_QUANTIZATION,
        vf.QUANTIZATION_FP8_ON_THE_FLY,
        f"{vf.FLAG_KV_CACHE_DTYPE}=fp8_e4m3",
        vf.FLAG_GPU_MEMORY_UTILIZATION,
        "0.92",
        vf.FLAG_PORT,
        "8000",
    ]
    assert vf.problems_in_args(args) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "/m"], "the model must be the first (positional) argument of `vllm serve`"),
        (["/m", "--calculate-kv-scales", "true"], "--calculate-kv-scales is not declared"),
        (["/m", "--quantization", "gptq"], "--quantization 'gptq' is not one of ['fp8']"),
        (["/m", "--kv-cache-dtype", "fp8"], "--kv-cache-dtype 'fp8' is not one of"),
        (["/m", "--port"], "--port has no value"),
        (["/m", "--port", "1", "--port", "2"], "--port is given more than once"),
        (["/m", "extra"], "unexpected positional argument 'extra'"),
    ],
)
def test_problems_in_args_reports(args: list[str], expected: str) -> None:
    problems = vf.problems_in_args(args)
    assert any(p.startswith(expected) for p in problems), problems
