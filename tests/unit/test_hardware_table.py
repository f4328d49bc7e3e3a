"""The GPU table: every row resolvable by every name, and every support level exactly as docs/gpu-formats.md states it.

The expected matrix below is written out by hand from docs/gpu-formats.md (the vLLM 0.33.0 source locations) and the
decisions documented in gpus.yaml, NOT derived from the table: a change to gpus.yaml that moves a support level must
also change this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import quantfleet
from quantfleet.hardware import GPU_TABLE, FormatSupport, GpuSpec, Support, UnknownGpu, lookup
from quantfleet.hardware.support import (
    FORMATS,
    Format,
    amd_support,
    cc_floor_for_family,
    family_for_cc,
    nvidia_support,
    support_reason,
)
from quantfleet.hardware.table import TableError, build_index, by_key, load_table, split_product

N, F, X = Support.NATIVE, Support.FALLBACK, Support.NO

# key: (fp8_w8a8, fp8_weight_only, fp8_block, nvfp4, mxfp4, int4_w4a16)
EXPECTED_SUPPORT: dict[str, tuple[Support, Support, Support, Support, Support, Support]] = {
    # Turing: FP8 and FP8 block load as W8A16 Marlin; NVFP4 Marlin; no MXFP4 (vLLM's MXFP4 needs cc >= 8.0)
    "T4": (F, N, F, F, X, N),
    # Ampere: no FP8 math: FP8 and FP8 block through Marlin W8A16; NVFP4 and MXFP4 through Marlin W4A16
    "A10G": (F, N, F, F, F, N),
    "A10": (F, N, F, F, F, N),
    "A40": (F, N, F, F, F, N),
    "A100-40GB": (F, N, F, F, F, N),
    "A100-80GB": (F, N, F, F, F, N),
    # Ada: FP8 W8A8 native (CUTLASS), FP8 block linears through Marlin, FP4 through Marlin
    "L4": (N, N, F, F, F, N),
    "L40S": (N, N, F, F, F, N),
    "L40": (N, N, F, F, F, N),
    # Hopper: FP8 and FP8 block native, FP4 weight-only Marlin
    "H100-SXM": (N, N, N, F, F, N),
    "H100-PCIe": (N, N, N, F, F, N),
    "H100-NVL": (N, N, N, F, F, N),
    "H200": (N, N, N, F, F, N),
    "H200-NVL": (N, N, N, F, F, N),
    "GH200": (N, N, N, F, F, N),
    "GH200-144GB": (N, N, N, F, F, N),
    # Blackwell (10.x and 12.0): everything native
    "B200": (N, N, N, N, N, N),
    "B300": (N, N, N, N, N, N),
    "GB200": (N, N, N, N, N, N),
    "RTX-PRO-6000": (N, N, N, N, N, N),
    # gfx942: FP8 (FNUZ) native, NVFP4 emulation only (= no), no native MX; Marlin W8A16 is CUDA-only
    "MI300X": (N, X, N, X, X, N),
    "MI325X": (N, X, N, X, X, N),
    # gfx950: OCP FP8 native, MXFP4 native, NVFP4 emulation only
    "MI350X": (N, X, N, X, N, N),
    "MI355X": (N, X, N, X, N, N),
}

# key: (vendor, canonical product, memory MiB, compute capability, gfx arch, family, fp8 flavour)
EXPECTED_FACTS: dict[str, tuple[str, str, int, tuple[int, int] | None, str | None, str, str]] = {
    "T4": ("nvidia", "Tesla-T4", 15360, (7, 5), None, "turing", "e4m3fn"),
    "A10G": ("nvidia", "NVIDIA-A10G", 23028, (8, 6), None, "ampere", "e4m3fn"),
    "A10": ("nvidia", "NVIDIA-A10", 23028, (8, 6), None, "ampere", "e4m3fn"),
    "A40": ("nvidia", "NVIDIA-A40", 46068, (8, 6), None, "ampere", "e4m3fn"),
    "A100-40GB": ("nvidia", "NVIDIA-A100-SXM4-40GB", 40960, (8, 0), None, "ampere", "e4m3fn"),
    "A100-80GB": ("nvidia", "NVIDIA-A100-SXM4-80GB", 81920, (8, 0), None, "ampere", "e4m3fn"),
    "L4": ("nvidia", "NVIDIA-L4", 23034, (8, 9), None, "ada-lovelace", "e4m3fn"),
    "L40S": ("nvidia", "NVIDIA-L40S", 46068, (8, 9), None, "ada-lovelace", "e4m3fn"),
    "L40": ("nvidia", "NVIDIA-L40", 46068, (8, 9), None, "ada-lovelace", "e4m3fn"),
    "H100-SXM": ("nvidia", "NVIDIA-H100-80GB-HBM3", 81559, (9, 0), None, "hopper", "e4m3fn"),
    "H100-PCIe": ("nvidia", "NVIDIA-H100-PCIe", 81559, (9, 0), None, "hopper", "e4m3fn"),
    "H100-NVL": ("nvidia", "NVIDIA-H100-NVL", 95830, (9, 0), None, "hopper", "e4m3fn"),
    "H200": ("nvidia", "NVIDIA-H200", 143771, (9, 0), None, "hopper", "e4m3fn"),
    "H200-NVL": ("nvidia", "NVIDIA-H200-NVL", 143771, (9, 0), None, "hopper", "e4m3fn"),
    "GH200": ("nvidia", "NVIDIA-GH200-480GB", 97871, (9, 0), None, "hopper", "e4m3fn"),
    "GH200-144GB": ("nvidia", "NVIDIA-GH200-144G-HBM3e", 146831, (9, 0), None, "hopper", "e4m3fn"),
    "B200": ("nvidia", "NVIDIA-B200", 183359, (10, 0), None, "blackwell", "e4m3fn"),
    "B300": ("nvidia", "NVIDIA-B300-SXM6-AC", 275040, (10, 3), None, "blackwell", "e4m3fn"),
    "GB200": ("nvidia", "NVIDIA-GB200", 189471, (10, 0), None, "blackwell", "e4m3fn"),
    "RTX-PRO-6000": (
        "nvidia",
        "NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition",
        97887,
        (12, 0),
        None,
        "blackwell",
        "e4m3fn",
    ),
    "MI300X": ("amd", "AMD_Instinct_MI300X_OAM", 192 * 1024, None, "gfx942", "cdna3", "e4m3fnuz"),
    "MI325X": ("amd", "AMD_Instinct_MI325_OAM", 256 * 1024, None, "gfx942", "cdna3", "e4m3fnuz"),
    "MI350X": ("amd", "AMD_Instinct_MI350_OAM", 288 * 1024, None, "gfx950", "cdna4", "e4m3fn"),
    "MI355X": ("amd", "AMD_Instinct_MI355_OAM", 288 * 1024, None, "gfx950", "cdna4", "e4m3fn"),
}

EXPECTED_DEVICE_IDS = {"MI300X": "74a1", "MI325X": "74a5", "MI350X": "75a0", "MI355X": "75a3"}

ROWS = [pytest.param(spec, id=spec.key) for spec in GPU_TABLE]


def test_table_has_exactly_the_expected_rows() -> None:
    assert [spec.key for spec in GPU_TABLE] == list(EXPECTED_SUPPORT)
    assert set(EXPECTED_FACTS) == set(EXPECTED_SUPPORT)


@pytest.mark.parametrize("spec", ROWS)
def test_support_matrix_matches_brief(spec: GpuSpec) -> None:
    assert tuple(spec.support.level(fmt) for fmt in FORMATS) == EXPECTED_SUPPORT[spec.key]
    # the shortcut properties read the same levels
    assert (spec.fp8_w8a8, spec.fp8_weight_only, spec.fp8_block, spec.nvfp4, spec.mxfp4, spec.int4_w4a16) == (
        EXPECTED_SUPPORT[spec.key]
    )


@pytest.mark.parametrize("spec", ROWS)
def test_row_facts(spec: GpuSpec) -> None:
    vendor, product, memory, cc, gfx, family, flavour = EXPECTED_FACTS[spec.key]
    assert (spec.vendor, spec.product, spec.memory_mib, spec.compute_capability, spec.gfx_arch) == (
        vendor,
        product,
        memory,
        cc,
        gfx,
    )
    assert (spec.family, spec.fp8_flavour) == (family, flavour)
    if vendor == "amd":
        assert spec.device_ids[0] == EXPECTED_DEVICE_IDS[spec.key]


@pytest.mark.parametrize("spec", ROWS)
def test_table_rows_agree_with_the_derivation_rules(spec: GpuSpec) -> None:
    """An unknown GPU with the same capability as a table row must be planned exactly like that row."""
    if spec.compute_capability is not None:
        assert nvidia_support(spec.compute_capability) == spec.support
        assert family_for_cc(spec.compute_capability) == spec.family
    else:
        assert spec.gfx_arch is not None
        assert amd_support(spec.gfx_arch) == spec.support


@pytest.mark.parametrize("spec", ROWS)
def test_lookup_by_every_name(spec: GpuSpec) -> None:
    names = [spec.key, spec.key.lower(), spec.key.upper(), *spec.aliases, *(a.upper() for a in spec.aliases)]
    names += list(spec.products)
    names += [p.replace("-", " ").replace("_", " ") for p in spec.products]  # NVML / amd-smi spelling with spaces
    names += [f"{p}-SHARED" for p in spec.products]
    names += list(spec.device_ids) + [f"0x{d.upper()}" for d in spec.device_ids]
    if spec.vendor == "nvidia":
        names += [f"{p}-MIG-1g.10gb" for p in spec.products] + [f"{p}-MIG-1g.10gb-SHARED" for p in spec.products]
    for name in names:
        assert lookup(name).key == spec.key, name
    assert by_key(spec.key) is spec


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("h100", "H100-SXM"),
        ("H100", "H100-SXM"),
        ("b200", "B200"),
        ("mi300x", "MI300X"),
        ("MI300X", "MI300X"),
        ("a10g", "A10G"),
        ("l40s", "L40S"),
        ("rtx-pro-6000", "RTX-PRO-6000"),
        ("h200", "H200"),
        ("gh200", "GH200"),
        ("  h100-nvl ", "H100-NVL"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),  # NVML name as nvidia-smi prints it
        ("NVIDIA-A100-80GB-PCIe", "A100-80GB"),
        ("NVIDIA-A100-PCIE-40GB", "A100-40GB"),
        ("A100-SXM4-40GB", "A100-40GB"),  # older drivers' NVML name
        ("NVIDIA-H200-141GB-HBM3e", "H200"),
        ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "A100-80GB"),
        ("NVIDIA-A10G-SHARED", "A10G"),
        ("AMD_Instinct_MI300X_OAM", "MI300X"),
        ("74a5", "MI325X"),
        ("0x75a3", "MI355X"),
    ],
)
def test_lookup_short_names_and_labels(name: str, key: str) -> None:
    assert lookup(name).key == key


@pytest.mark.parametrize(
    ("name", "must_mention"),
    [
        ("a100", ["A100-40GB", "A100-80GB"]),  # ambiguous: refuse rather than guess the memory size
        ("h10", ["H100-SXM"]),
        ("NVIDIA-H100-80GB-HBM4", ["H100-SXM"]),
        ("x9000", ["T4", "MI355X"]),  # nothing close: list every key
        ("", ["T4"]),
        ("NVIDIA-X9000-MIG-1g.10gb", []),
    ],
)
def test_lookup_unknown_names(name: str, must_mention: list[str]) -> None:
    with pytest.raises(UnknownGpu) as info:
        lookup(name)
    assert isinstance(info.value, ValueError)
    assert repr(name) in str(info.value)
    for key in must_mention:
        assert key in str(info.value)


def test_ambiguous_prefix_suggests_only_its_rows() -> None:
    with pytest.raises(UnknownGpu) as info:
        lookup("a100")
    assert str(info.value) == "unknown GPU 'a100'; did you mean A100-40GB or A100-80GB?"


def test_by_key_is_exact() -> None:
    with pytest.raises(UnknownGpu):
        by_key("h100")


@pytest.mark.parametrize(
    ("label", "base", "shared", "mig"),
    [
        ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-80GB-HBM3", False, None),
        ("NVIDIA-A10G-SHARED", "NVIDIA-A10G", True, None),
        ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "NVIDIA-A100-SXM4-80GB", False, "1g.10gb"),
        ("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb+me", "NVIDIA-A100-SXM4-40GB", False, "1g.5gb+me"),
        ("NVIDIA-H100-80GB-HBM3-MIG-3g.40gb-SHARED", "NVIDIA-H100-80GB-HBM3", True, "3g.40gb"),
        ("nvidia-a10g-shared", "nvidia-a10g", True, None),
    ],
)
def test_split_product(label: str, base: str, shared: bool, mig: str | None) -> None:
    parsed = split_product(label)
    assert (parsed.base, parsed.shared, parsed.mig_profile) == (base, shared, mig)


@pytest.mark.parametrize(
    ("cc", "expected"),
    [
        ((6, 1), (X, X, X, X, X, X)),  # below Turing: nothing quantized
        ((7, 0), (X, X, X, X, X, X)),
        ((7, 5), (F, N, F, F, X, N)),
        ((8, 0), (F, N, F, F, F, N)),
        ((8, 6), (F, N, F, F, F, N)),
        ((8, 7), (F, N, F, F, F, N)),  # Orin: still Ampere
        ((8, 9), (N, N, F, F, F, N)),  # the FP8 W8A8 threshold
        ((9, 0), (N, N, N, F, F, N)),
        ((10, 0), (N, N, N, N, N, N)),  # FP4 tensor cores
        ((10, 3), (N, N, N, N, N, N)),
        ((12, 0), (N, N, N, N, N, N)),
        ((12, 1), (N, N, N, N, N, N)),
    ],
)
def test_nvidia_support_rules(cc: tuple[int, int], expected: tuple[Support, ...]) -> None:
    assert tuple(nvidia_support(cc).level(fmt) for fmt in FORMATS) == expected


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("gfx942", (N, X, N, X, X, N)),
        ("gfx950", (N, X, N, X, N, N)),
        ("gfx90a", (X, X, X, X, X, X)),  # MI250: no rules, nothing quantized
        ("gfx1100", (X, X, X, X, X, X)),
    ],
)
def test_amd_support_rules(arch: str, expected: tuple[Support, ...]) -> None:
    assert tuple(amd_support(arch).level(fmt) for fmt in FORMATS) == expected


@pytest.mark.parametrize(
    ("cc", "family"),
    [
        ((6, 0), "pascal"),
        ((7, 0), "volta"),
        ((7, 5), "turing"),
        ((8, 0), "ampere"),
        ((8, 6), "ampere"),
        ((8, 9), "ada-lovelace"),
        ((9, 0), "hopper"),
        ((10, 0), "blackwell"),
        ((12, 0), "blackwell"),
        ((5, 2), "unknown"),
        ((13, 0), "unknown"),
    ],
)
def test_family_for_cc(cc: tuple[int, int], family: str) -> None:
    assert family_for_cc(cc) == family


@pytest.mark.parametrize(
    ("family", "floor"),
    [
        ("turing", (7, 5)),
        ("ampere", (8, 0)),
        ("ada-lovelace", (8, 9)),
        ("hopper", (9, 0)),
        ("blackwell", (10, 0)),
        ("rubin", None),
        ("cdna3", None),
    ],
)
def test_cc_floor_for_family(family: str, floor: tuple[int, int] | None) -> None:
    assert cc_floor_for_family(family) == floor


def test_format_support_round_trips_through_dict() -> None:
    for spec in GPU_TABLE:
        assert FormatSupport.from_levels(spec.support.as_dict()) == spec.support
        assert list(spec.support.as_dict()) == list(FORMATS)


# ------------------------------------------------------------------------------------------ loader validation

GOOD_ROW = """
  - key: TEST
    vendor: nvidia
    name: Test GPU
    aliases: [test]
    products: [NVIDIA-TEST]
    memory_mib: 1024
    compute_capability: "9.0"
    family: hopper
    support: {fp8_w8a8: native, fp8_weight_only: native, fp8_block: native, nvfp4: fallback, mxfp4: fallback,
              int4_w4a16: native}
    fp8_flavour: e4m3fn
    interconnect: pcie
    gpus_per_node: 1
    notes: ""
"""


def _doc(*rows: str) -> str:
    return "gpus:" + "".join(rows)


def test_loader_accepts_a_good_row() -> None:
    (spec,) = load_table(_doc(GOOD_ROW))
    assert (spec.key, spec.compute_capability, spec.support.nvfp4) == ("TEST", (9, 0), Support.FALLBACK)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "'gpus' list"),
        ("gpus: [1]", "must be a mapping"),
        (_doc(GOOD_ROW, GOOD_ROW), "duplicate keys"),
        (_doc(GOOD_ROW.replace("nvfp4: fallback", "nvfp4: sometimes")), "sometimes"),
        (_doc(GOOD_ROW.replace("nvfp4: fallback, ", "")), "support must map exactly"),
        (_doc(GOOD_ROW.replace("vendor: nvidia", "vendor: intel")), "vendor"),
        (_doc(GOOD_ROW.replace("family: hopper", "family: rubin")), "unknown family"),
        (_doc(GOOD_ROW.replace('"9.0"', '"9"')), "major.minor"),
        (_doc(GOOD_ROW.replace("memory_mib: 1024", "memory_mib: 0")), "positive"),
        (_doc(GOOD_ROW.replace("memory_mib: 1024", "memory_mib: lots")), "memory_mib"),
        (_doc(GOOD_ROW.replace("products: [NVIDIA-TEST]", "products: []")), "products"),
        (_doc(GOOD_ROW + "    colour: green\n"), "unknown fields"),
        (_doc(GOOD_ROW + "    gfx_arch: gfx942\n"), "NVIDIA rows"),
        (_doc(GOOD_ROW.replace("vendor: nvidia", "vendor: amd")), "AMD rows"),
        (_doc(GOOD_ROW.replace("fp8_flavour: e4m3fn", "fp8_flavour: e5m2")), "fp8_flavour"),
        (_doc(GOOD_ROW + "    inferred: [colour]\n"), "inferred names unknown fields"),
    ],
)
def test_loader_rejects_malformed_rows(text: str, message: str) -> None:
    with pytest.raises(TableError, match=message):
        load_table(text)


def test_index_rejects_a_name_claimed_by_two_rows() -> None:
    (first,) = load_table(_doc(GOOD_ROW))
    (second,) = load_table(_doc(GOOD_ROW.replace("key: TEST", "key: OTHER")))
    with pytest.raises(TableError, match="claimed by both"):
        build_index((first, second))


def test_packaged_index_builds_without_collisions() -> None:
    index = build_index(GPU_TABLE)
    assert {spec.key for spec in index.values()} == {spec.key for spec in GPU_TABLE}


def test_hardware_imports_neither_kopf_nor_kubernetes() -> None:
    code = textwrap.dedent(
        """
        import sys
        import quantfleet.hardware
        bad = sorted(m for m in sys.modules if m.split('.')[0] in {'kopf', 'kubernetes', 'torch'}
                     or m.startswith('quantfleet.kube') or m.startswith('quantfleet.controllers'))
        print(','.join(bad))
        """
    )
    package_root = str(Path(quantfleet.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------------------------------ reasons

LEVEL_WORDS = {N: "runs natively", F: "runs only as a fallback", X: "is not available"}


@pytest.mark.parametrize("spec", ROWS)
def test_every_level_has_a_specific_reason(spec: GpuSpec) -> None:
    for fmt in FORMATS:
        reason = spec.support_reason(fmt)
        assert LEVEL_WORDS[spec.support.level(fmt)] in reason, reason
        assert spec.family in reason
        # every level a table row has is explained specifically, never by the generic fall-through sentences
        assert "vLLM has no path for it here" not in reason and "serve it in 16-bit" not in reason, reason


@pytest.mark.parametrize(
    ("key", "fmt", "fragment"),
    [
        ("A10G", "fp8_w8a8", "load as W8A16"),
        ("A10G", "fp8_w8a8", "not a speed win"),
        ("T4", "mxfp4", "BF16 activations"),
        ("L40S", "fp8_block", "Marlin"),
        ("H100-SXM", "nvfp4", "W4A16"),
        ("B200", "nvfp4", "FP4 tensor cores"),
        ("MI300X", "fp8_w8a8", "E4M3 FNUZ"),
        ("MI355X", "fp8_w8a8", "OCP E4M3"),
        ("MI300X", "nvfp4", "emulation-only"),
        ("MI325X", "fp8_weight_only", "CUDA-only"),
        ("MI350X", "mxfp4", "gfx950"),
    ],
)
def test_reason_content(key: str, fmt: Format, fragment: str) -> None:
    assert fragment in lookup(key).support_reason(fmt)


def test_reason_for_gpus_without_rules() -> None:
    assert "serve it in 16-bit" in support_reason("fp8_w8a8", X, "nvidia", "volta", (7, 0), None)
    assert "serve it in 16-bit" in support_reason("int4_w4a16", X, "amd", "cdna2", None, "gfx90a")
