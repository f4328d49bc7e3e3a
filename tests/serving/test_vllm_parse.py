"""Every Deployment the operator renders parses in a real vLLM: the golden cases' vLLM args through vLLM's own
`vllm serve` parser and `AsyncEngineArgs.from_cli_args`, in the vllm-cpu environment (no server, no GPU, no model).

This complements tests/unit/test_vllm_contract.py, which reads the *pinned* release's source (vLLM 0.33.0) with ast:
here the *running* parser of the CPU build (vllm-cpu 0.32.0, one release older) takes the rendered lists as they are.
All cases go through one process (vLLM is imported once, ~15 s). The flags one release has and the other lacks are
printed at the end of the run (section "vLLM flags: ...") and listed in docs/vllm-cpu.md; the operator's own flags
(quantfleet.api.vllm_flags.EMITTED_FLAGS) must be in both.

For the Deployments an e2e run produces: `quantfleet_dev.vllm_cpu.parse_deployments(deployments)`
(tests/e2e/test_vllm_parses_deployments.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantfleet.api import llamacpp_flags, sglang_flags, vllm_flags
from quantfleet_dev import vllm_cpu
from quantfleet_dev.testing import deployment_runtime
from quantfleet_dev.vllm_source import VllmSource, fetch_wheel, parse_source, read_wheel

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
pytestmark = pytest.mark.timeout(1800)


def golden_deployments(runtime: str = "vllm") -> list[tuple[str, dict[str, Any]]]:
    """(case, Deployment) for every Deployment of `runtime` pinned in tests/golden: render cases (a YAML stream of
    objects) and reconcile cases (an Outcome whose `apply` holds the children)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for case in sorted(GOLDEN.iterdir()):
        expected = case / "expected.yaml"
        if not expected.is_file():
            continue
        docs = list(yaml.safe_load_all(expected.read_text()))
        objs = docs[0].get("apply") or [] if case.name.startswith("reconcile-") else docs
        out += [(case.name, o) for o in objs if isinstance(o, dict) and o.get("kind") == "Deployment"]
    return [(case, d) for case, d in out if deployment_runtime(d) == runtime]


@pytest.fixture(scope="module")
def parsed(vllm_env: Path) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]], dict[str, Any]]:
    deps = golden_deployments()
    requests = [vllm_cpu.parse_request(vllm_cpu.rendered_vllm_args(d)) for _, d in deps]
    results = vllm_cpu.run_batch([*requests, {"list_flags": True}])
    return deps, results[:-1], results[-1]


@pytest.fixture(scope="module")
def source() -> VllmSource:
    wheel = fetch_wheel()
    return parse_source(read_wheel(wheel), origin=str(wheel))


def test_golden_cases_have_gpu_and_cpu_deployments() -> None:
    deps = golden_deployments()
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for _, d in deps}
    assert any("vllm-openai-cpu" in i for i in images) and any(i.startswith("vllm/vllm-openai:") for i in images)
    assert len(deps) >= 15


def test_every_golden_deployment_parses_in_vllm(parsed: Any, report: Callable[[str, str], None]) -> None:
    deps, results, _ = parsed
    failures = vllm_cpu.parse_failures([d for _, d in deps], results)
    version = results[0].get("vllm") if results else "?"
    report("vLLM parser on rendered Deployments", f"{len(deps)} golden Deployments through vLLM {version}'s parser")
    assert failures == [], "\n".join(failures)
    for (case, dep), r in zip(deps, results, strict=True):
        args = vllm_cpu.rendered_vllm_args(dep)
        ea = r["engine_args"]
        # what the operator said is what vLLM understood
        assert ea["served_model_name"] == [args[args.index("--served-model-name") + 1]], case
        assert ea["max_model_len"] == int(args[args.index("--max-model-len") + 1]), case
        assert ea["kv_cache_dtype"] == args[args.index("--kv-cache-dtype") + 1], case
        assert ea["tensor_parallel_size"] == int(args[args.index("--tensor-parallel-size") + 1]), case
        if "--quantization" in args:
            assert ea["quantization"] == args[args.index("--quantization") + 1], case
        else:
            assert ea["quantization"] is None, case


@pytest.mark.parametrize("runtime", ["sglang", "llama-cpp"])
def test_golden_deployments_of_the_other_runtimes_keep_their_flag_contract(runtime: str) -> None:
    """SGLang and llama-server have no parser here: their golden command lines go through the declared-flag checks
    (each declaration is checked against the pinned release's source by its contract test)."""
    check = sglang_flags.problems_in_args if runtime == "sglang" else llamacpp_flags.problems_in_args
    deps = golden_deployments(runtime)
    assert len(deps) >= 2, f"no golden {runtime} Deployments"
    failures = [
        f"{case}/{d['metadata']['name']}: {p}"
        for case, d in deps
        for p in check(d["spec"]["template"]["spec"]["containers"][0]["args"])
    ]
    assert failures == [], "\n".join(failures)


def test_a_wrong_flag_is_refused_by_the_same_path(vllm_env: Path) -> None:
    """The harness can fail: a rendered list with a typo'd value and an unknown flag is refused by vLLM."""
    bad = vllm_cpu.run_batch(
        [
            vllm_cpu.parse_request(["/models/x", "--kv-cache-dtype", "fp9"]),
            vllm_cpu.parse_request(["/models/x", "--no-such-flag", "1"]),
        ]
    )
    assert [r["ok"] for r in bad] == [False, False]
    assert "invalid choice: 'fp9'" in bad[0]["errors"][0] and "--no-such-flag" in bad[1]["errors"][0]


def test_flags_of_the_cpu_build_and_the_pinned_release(
    parsed: Any, source: VllmSource, report: Callable[[str, str], None]
) -> None:
    _, _, flags = parsed
    assert flags["ok"], flags
    only_cpu, only_pinned = vllm_cpu.flag_differences(flags["flags"], source.flags)
    section = f"vLLM flags: {flags['vllm']} (CPU build) vs {source.version} (pinned release source)"
    report(section, f"only in {flags['vllm']}: {', '.join(only_cpu) or 'none'}")
    report(section, f"only in {source.version}: {', '.join(only_pinned) or 'none'}")
    # the operator's own flags exist in both: what the CPU build parses is what the GPU image will parse
    assert not (vllm_flags.EMITTED_FLAGS & set(only_cpu + only_pinned))
    assert set(flags["flags"]) >= vllm_flags.EMITTED_FLAGS
