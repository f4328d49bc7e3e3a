"""The llama-server contract: everything the operator can emit to llama.cpp's server is in the pinned source.

The pinned llama-cpp-python sdist (versions.toml [llama-cpp], sha256-checked) is downloaded once into
``${QUANTFLEET_CACHE:-~/.cache/quantfleet}/sdists/`` (77 MB) and read from the tarball: common/arg.cpp for the
options (with the examples each belongs to, whether it takes a value, whether it is kept only to fail as removed),
tools/server for the routes and metric names, .devops/cpu.Dockerfile for the image's entrypoint
(quantfleet_dev.llama_cpp_source). Nothing is built for this test.

The doctored-source tests prove the checker can fail: each edits one file of the real source the way an upgrade
could, and asserts the checker reports exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest

from quantfleet.api import llamacpp_flags as lf
from quantfleet.api.gguf import GGML_TYPE_BITS, GGUF_BITS_PER_WEIGHT, weight_bytes
from quantfleet.render.llamacpp import gguf_path, llamacpp_args, llamacpp_command
from quantfleet.render.vllm import CpuRollout, ModelLocation, PoolRollout, ServiceInput
from quantfleet_dev import llama_cpp
from quantfleet_dev.llama_cpp_source import (
    ARG_CPP,
    SERVER_CPP,
    SERVER_TASK_CPP,
    LlamaCppSource,
    SourceLayoutError,
    contract_problems,
    parse_source,
    read_sdist,
)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="session")
def files() -> dict[str, str]:
    return read_sdist(llama_cpp.fetch_sdist(log=lambda m: None))


@pytest.fixture(scope="session")
def source(files: dict[str, str]) -> LlamaCppSource:
    return parse_source(files)


def _svc() -> ServiceInput:
    return ServiceInput(
        name="chat",
        namespace="serving",
        uid="u-1",
        served_model_name="tiny",
        max_model_len=4096,
        gpu_memory_utilization=0.9,
        image="ghcr.io/ggml-org/llama.cpp:server-cuda",
    )


def _roll(cpu: bool) -> PoolRollout:
    return PoolRollout(
        pool="cpu" if cpu else "h100",
        node_selector={},
        gpu_resource="" if cpu else "nvidia.com/gpu",
        tensor_parallel_size=1,
        kv_cache_dtype="auto",
        quantization=None,
        model=ModelLocation("pvc://models/tiny-q4"),
        replicas=1,
        cpu=CpuRollout(kv_cache_space_gib=1, cpus="4", memory="8Gi") if cpu else None,
    )


def _rendered() -> list[list[str]]:
    """Every shape of argument list the renderer makes (CPU with threads and --no-repack, GPU with neither)."""
    path = gguf_path(ModelLocation("pvc://models/tiny-q4"))
    return [
        llamacpp_args(_svc(), _roll(True), gguf_path=path, parallel=2, n_gpu_layers=0, threads=4, no_repack=True),
        llamacpp_args(_svc(), _roll(False), gguf_path=path, parallel=8, n_gpu_layers=lf.ALL_LAYERS, threads=None),
    ]


def _flags(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith("--")]


# --- the contract, item by item -------------------------------------------------------------------------------------


def test_contract_has_no_problems(source: LlamaCppSource) -> None:
    assert contract_problems(source) == []


@pytest.mark.parametrize("flag", sorted(lf.EMITTED_FLAGS))
def test_emitted_flag_is_a_server_option(source: LlamaCppSource, flag: str) -> None:
    opt = source.server_option(flag)
    assert opt is not None, f"llama-server has no option {flag}"
    assert not opt.removed
    assert opt.takes_value is (flag not in lf.SWITCHES)


def test_every_rendered_flag_is_declared_and_in_the_source(source: LlamaCppSource) -> None:
    for args in _rendered():
        assert lf.problems_in_args(args) == [], args
        for flag in _flags(args):
            assert source.server_option(flag) is not None, flag


@pytest.mark.parametrize("path", sorted(lf.ENDPOINT_PATHS))
def test_endpoint_is_served(source: LlamaCppSource, path: str) -> None:
    assert path in source.routes


@pytest.mark.parametrize("metric", sorted(lf.METRIC_NAMES))
def test_metric_is_defined(source: LlamaCppSource, metric: str) -> None:
    assert metric in source.metrics


def test_image_entrypoint_is_the_rendered_command(source: LlamaCppSource) -> None:
    assert source.entrypoint == llamacpp_command()[0]
    assert source.default_port == lf.DEFAULT_PORT


def test_renderer_shape() -> None:
    cpu, gpu = _rendered()
    assert cpu[cpu.index(lf.FLAG_MODEL) + 1] == "/models/tiny-q4/model.gguf"
    assert cpu[cpu.index(lf.FLAG_CTX_SIZE) + 1] == str(4096 * 2)  # max_model_len per slot, 2 slots
    assert gpu[gpu.index(lf.FLAG_CTX_SIZE) + 1] == str(4096 * 8)
    assert cpu[cpu.index(lf.FLAG_THREADS) + 1] == "4" and lf.FLAG_THREADS not in gpu
    assert gpu[gpu.index(lf.FLAG_N_GPU_LAYERS) + 1] == str(lf.ALL_LAYERS)
    assert lf.FLAG_METRICS in cpu and lf.FLAG_METRICS in gpu
    assert lf.FLAG_NO_REPACK in cpu and lf.FLAG_NO_REPACK not in gpu


def test_problems_in_args_catches_undeclared_and_repeated_flags() -> None:
    args = _rendered()[0]
    assert lf.problems_in_args([*args, "--flash-attn", "on"]) == [
        "--flash-attn is not declared in quantfleet.api.llamacpp_flags.EMITTED_FLAGS"
    ]
    assert lf.problems_in_args([*args, lf.FLAG_PARALLEL, "4"]) == [f"{lf.FLAG_PARALLEL} is given more than once"]
    assert f"{lf.FLAG_MODEL} is missing" in lf.problems_in_args([lf.FLAG_METRICS])


# --- the checker can fail: doctored copies of the real source ---------------------------------------------------------


def _doctor(files: Mapping[str, str], path: str, old: str, new: str) -> dict[str, str]:
    assert old in files[path], f"the doctoring anchor {old!r} is not in {path}: update the test"
    doctored = dict(files)
    doctored[path] = files[path].replace(old, new)
    return doctored


@pytest.mark.parametrize(
    ("path", "old", "new", "problem"),
    [
        (ARG_CPP, '{"-a", "--alias"}', '{"-a", "--model-alias"}', "llama-server has no option --alias"),
        (
            ARG_CPP,
            "[](common_params & params) {\n            params.endpoint_metrics = true;",
            "[](common_params & params, int value) {\n            params.endpoint_metrics = value;",
            "--metrics: the operator passes no value, llama-server's option does the opposite",
        ),
        (SERVER_CPP, '"/health",', '"/healthz",', "llama-server does not serve /health"),
        (
            SERVER_TASK_CPP,
            '"requests_processing",',
            '"requests_running",',
            "llama-server's /metrics has no llamacpp:requests_processing",
        ),
    ],
    ids=["flag-renamed", "switch-takes-value", "route-gone", "metric-renamed"],
)
def test_doctored_source_is_caught(files: dict[str, str], path: str, old: str, new: str, problem: str) -> None:
    assert contract_problems(parse_source(_doctor(files, path, old, new))) == [problem]


def test_doctored_flag_only_for_another_program_is_caught(files: dict[str, str]) -> None:
    """--parallel is declared twice (server slots; parallel sequences of the other programs): excluding the server
    from the one and the other leaves llama-server without it."""
    server = 'set_env("LLAMA_ARG_N_PARALLEL").set_examples({LLAMA_EXAMPLE_SERVER})'
    others = 'set_env("LLAMA_ARG_N_PARALLEL"));'
    doctored = _doctor(files, ARG_CPP, server, 'set_env("LLAMA_ARG_N_PARALLEL").set_examples({LLAMA_EXAMPLE_PARALLEL})')
    assert parse_source(doctored).server_option(lf.FLAG_PARALLEL) is not None  # the other one still applies
    doctored = _doctor(
        doctored, ARG_CPP, others, 'set_env("LLAMA_ARG_N_PARALLEL").set_excludes({LLAMA_EXAMPLE_SERVER}));'
    )
    assert contract_problems(parse_source(doctored)) == ["llama-server has no option --parallel"]


def test_doctored_removed_flag_is_caught(files: dict[str, str]) -> None:
    old = "params.endpoint_metrics = true;"
    doctored = _doctor(files, ARG_CPP, old, 'arg_removed("use --prometheus");')
    assert contract_problems(parse_source(doctored)) == [
        "llama-server's option --metrics has been removed (it only fails with a hint)"
    ]


def test_unknown_layout_is_an_error(files: dict[str, str]) -> None:
    with pytest.raises(SourceLayoutError):
        parse_source(_doctor(files, ARG_CPP, "add_opt(common_arg(", "add_option(common_arg("))


# --- bits per weight (quantfleet.api.gguf) from the same source ----------------------------------------------------

GGML_COMMON_H = "ggml/src/ggml-common.h"
QUANTIZE_CPP = "tools/quantize/quantize.cpp"
# block struct -> (type, weights per block macro)
_BLOCKS = {
    "Q8_0": ("block_q8_0", "QK8_0"),
    "Q4_K": ("block_q4_K", "QK_K"),
    "Q5_K": ("block_q5_K", "QK_K"),
    "Q6_K": ("block_q6_K", "QK_K"),
}
_SIZEOF = {"ggml_half": 2, "uint32_t": 4, "float": 4, "int16_t": 2}


@pytest.fixture(scope="session")
def bits_files() -> dict[str, str]:
    return read_sdist(llama_cpp.fetch_sdist(log=lambda m: None), (GGML_COMMON_H, QUANTIZE_CPP))


def _block_bytes(header: str, block: str) -> int:
    """sizeof(block) from its static_assert, with the header's macros (QK_K, K_SCALE_SIZE, QK8_0) and 2-byte halves."""
    macros = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define (\w+) (\d+)\s*$", header, re.M)}
    expr = re.search(rf"static_assert\(sizeof\({block}\) == ([^,]+),", header)
    assert expr, f"no static_assert for {block}"
    text = re.sub(r"sizeof\((\w+)\)", lambda m: str(_SIZEOF[m.group(1)]), expr.group(1))
    text = re.sub(r"\b[A-Z][A-Z0-9_]*\b", lambda m: str(macros[m.group(0)]), text)
    assert re.fullmatch(r"[0-9+*/ ()]+", text), text
    return int(eval(text))  # arithmetic on integer literals only (checked above)


@pytest.mark.parametrize("ggml_type", sorted(_BLOCKS))
def test_type_bits_match_the_block_structs(bits_files: dict[str, str], ggml_type: str) -> None:
    header = bits_files[GGML_COMMON_H]
    block, per_block_macro = _BLOCKS[ggml_type]
    per_block = int(re.search(rf"#define {per_block_macro} (\d+)", header).group(1))  # type: ignore[union-attr]
    assert GGML_TYPE_BITS[ggml_type] == _block_bytes(header, block) * 8 / per_block


@pytest.mark.parametrize("preset", ["Q8_0", "Q4_K_M", "Q5_K_M"])
def test_file_bits_match_llama_quantize_table(bits_files: dict[str, str], preset: str) -> None:
    """llama-quantize's own size for Llama-3-8B (GiB; 8.03e9 parameters) -> bits per weight, to 2 places."""
    m = re.search(rf'\{{\s*"{preset}",\s*\w+,\s*"\s*([0-9.]+)G, [^"]*@ Llama-3-8B"', bits_files[QUANTIZE_CPP])
    assert m, f"{preset} is not in llama-quantize's table with a Llama-3-8B size"
    bits = float(m.group(1)) * 2**30 * 8 / 8.03e9
    assert GGUF_BITS_PER_WEIGHT[preset] == pytest.approx(bits, abs=0.03)
    assert weight_bytes(8_030_000_000, preset) == pytest.approx(float(m.group(1)) * 2**30, rel=0.01)
