"""The container images pin the same versions as versions.toml and pyproject.toml.

Each Dockerfile's `ARG <PACKAGE>_VERSION=<v>` defaults are the image's pins; this test
fails when any of them drifts from versions.toml [python] or from the `==` pins in
pyproject.toml, and checks the operator image stays slim (no calibrate extra).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
ARG_RE = re.compile(r"^ARG\s+([A-Z0-9_]+)_VERSION=(\S+)\s*$", re.M)
PIN_RE = re.compile(r"^([A-Za-z0-9_.-]+)==([^;,\s]+)")


def dockerfile_pins(path: Path) -> dict[str, str]:
    """{python distribution name: version} from `ARG FOO_BAR_VERSION=x` lines (FOO_BAR -> foo-bar)."""
    return {m.group(1).lower().replace("_", "-"): m.group(2) for m in ARG_RE.finditer(path.read_text())}


def pyproject_pins() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def pins(reqs: list[str]) -> dict[str, str]:
        return {m.group(1).lower(): m.group(2) for r in reqs if (m := PIN_RE.match(r.strip()))}

    return pins(project["dependencies"]), pins(project["optional-dependencies"]["calibrate"])


def versions_toml() -> dict[str, str]:
    return {k: str(v) for k, v in tomllib.loads((ROOT / "versions.toml").read_text())["python"].items()}


@pytest.mark.parametrize("image", ["operator", "calibrate"])
def test_dockerfile_pins_match_versions_toml_and_pyproject(image: str) -> None:
    args = dockerfile_pins(IMAGES / image / "Dockerfile")
    assert args, "no *_VERSION ARGs found"
    toml = versions_toml()
    base, calibrate = pyproject_pins()
    expected = dict(base) if image == "operator" else {**base, **calibrate}
    assert set(expected) <= set(args), f"{image} image lacks ARGs for {sorted(set(expected) - set(args))}"
    for name, pinned in args.items():
        assert name in toml, f"{image}: ARG for {name} has no versions.toml [python] entry"
        assert pinned == toml[name], f"{image}: {name} ARG {pinned} != versions.toml {toml[name]}"
        if name in expected:
            assert pinned == expected[name], f"{image}: {name} ARG {pinned} != pyproject {expected[name]}"


def test_every_arg_is_used_in_an_install() -> None:
    for image in ("operator", "calibrate"):
        text = (IMAGES / image / "Dockerfile").read_text()
        for name in dockerfile_pins(IMAGES / image / "Dockerfile"):
            arg = name.upper().replace("-", "_") + "_VERSION"
            assert f'"{name}==${{{arg}}}"' in text, f"{image}: ARG {arg} is declared but not installed"


def test_operator_image_is_slim_and_calibrate_image_has_the_extra() -> None:
    operator = (IMAGES / "operator" / "Dockerfile").read_text()
    calibrate = (IMAGES / "calibrate" / "Dockerfile").read_text()
    instructions = "\n".join(line for line in operator.splitlines() if not line.lstrip().startswith("#"))
    for heavy in ("torch", "llmcompressor", "modelopt", "[calibrate]"):
        assert heavy not in instructions, f"operator image installs {heavy}"
    assert '"/src[calibrate]"' in calibrate
    assert "USER 65532" in operator and "USER 65532" in calibrate


def test_no_vllm_dockerfile_the_serving_image_is_upstream() -> None:
    assert not list(IMAGES.glob("*vllm*")), "the vLLM serving image is versions.toml [vllm].image, not built here"
    image = tomllib.loads((ROOT / "versions.toml").read_text())["vllm"]["image"]
    assert image.startswith("vllm/vllm-openai:v")
