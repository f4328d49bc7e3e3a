"""Node labels → GpuFacts: round trips for every table row, sharing and MIG variants, unknown products derived from
capability labels with a reason, contradictions and thin label sets refused with LabelError, and a property test that
nothing else ever escapes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantfleet.hardware import (
    GPU_TABLE,
    GpuFacts,
    GpuSpec,
    LabelError,
    Support,
    UnknownGpu,
    facts_for,
    gpu_facts_from_labels,
    lookup,
    node_labels_for,
    short_name,
)
from quantfleet.hardware.labels import AMD_FACT_KEYS, NVIDIA_FACT_KEYS, mig_memory_mib
from quantfleet.hardware.support import FORMATS

N, F, X = Support.NATIVE, Support.FALLBACK, Support.NO
ROWS = [pytest.param(spec, id=spec.key) for spec in GPU_TABLE]
NVIDIA_ROWS = [pytest.param(spec, id=spec.key) for spec in GPU_TABLE if spec.vendor == "nvidia"]

P, FAM, MAJ, MIN, MEM, CNT = (
    "nvidia.com/gpu.product",
    "nvidia.com/gpu.family",
    "nvidia.com/gpu.compute.major",
    "nvidia.com/gpu.compute.minor",
    "nvidia.com/gpu.memory",
    "nvidia.com/gpu.count",
)
DEV, NAME, VRAM = "amd.com/gpu.device-id", "amd.com/gpu.product-name", "amd.com/gpu.vram"


def levels(facts: GpuFacts) -> tuple[Support, ...]:
    return tuple(facts.support.level(fmt) for fmt in FORMATS)


def parse(labels: dict[str, str]) -> GpuFacts:
    facts = gpu_facts_from_labels(labels)
    assert facts is not None
    return facts


# ------------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("spec", ROWS)
def test_round_trip_every_row(spec: GpuSpec) -> None:
    facts = parse(node_labels_for(spec.key, 8))
    assert facts.known and facts.key == spec.key and facts.vendor == spec.vendor
    assert facts.support == spec.support
    assert (facts.memory_mib, facts.count) == (spec.memory_mib, 8)
    assert (facts.compute_capability, facts.gfx_arch, facts.family) == (
        spec.compute_capability,
        spec.gfx_arch,
        spec.family,
    )
    assert facts.fp8_flavour == spec.fp8_flavour
    assert (facts.shared, facts.mig_profile) == (False, None)
    assert facts.label_product == spec.product
    assert f"matched table row {spec.key}" in facts.derivation
    assert short_name(facts) == spec.key


@pytest.mark.parametrize("spec", NVIDIA_ROWS)
def test_round_trip_every_nvidia_row_shared(spec: GpuSpec) -> None:
    labels = node_labels_for(spec.key, 2, shared=True)
    assert labels[P] == f"{spec.product}-SHARED"
    facts = parse(labels)
    assert (facts.key, facts.shared, facts.count, facts.support) == (spec.key, True, 2, spec.support)
    assert short_name(facts) == f"{spec.key}-SHARED"


@pytest.mark.parametrize("spec", ROWS)
def test_every_product_label_resolves(spec: GpuSpec) -> None:
    key = P if spec.vendor == "nvidia" else NAME
    for product in spec.products:
        facts = parse({key: product})
        assert facts.key == spec.key, product


@pytest.mark.parametrize("spec", ROWS)
def test_facts_for_every_row(spec: GpuSpec) -> None:
    facts = facts_for(spec.key, count=4)
    assert (facts.key, facts.count, facts.memory_mib, facts.support, facts.known) == (
        spec.key,
        4,
        spec.memory_mib,
        spec.support,
        True,
    )
    by_alias = facts_for(spec.aliases[0], count=4)
    assert replace(by_alias, derivation=facts.derivation) == facts  # same facts whatever name the user typed


# ------------------------------------------------------------------------------------------------ realistic nodes

GKE_T4 = {
    "cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
    "nvidia.com/cuda.driver-version.major": "580",
    "nvidia.com/gpu.compute.major": "7",
    "nvidia.com/gpu.compute.minor": "5",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.family": "turing",
    "nvidia.com/gpu.machine": "Google-Compute-Engine",
    "nvidia.com/gpu.memory": "15360",
    "nvidia.com/gpu.mode": "compute",
    "nvidia.com/gpu.product": "Tesla-T4",
    "nvidia.com/gpu.replicas": "1",
    "nvidia.com/gpu.sharing-strategy": "none",
    "nvidia.com/mig.capable": "false",
}

EKS_A10G_TIME_SLICED = {
    "node.kubernetes.io/instance-type": "g5.2xlarge",
    "nvidia.com/gpu.deploy.device-plugin": "true",
    "nvidia.com/gpu.family": "ampere",
    "nvidia.com/gpu.machine": "g5.2xlarge",
    "nvidia.com/gpu.memory": "23028",
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-A10G-SHARED",
    "nvidia.com/gpu.replicas": "2",
    "nvidia.com/gpu.sharing-strategy": "time-slicing",
}


def test_real_gke_t4_node() -> None:
    facts = parse(GKE_T4)
    assert (facts.key, facts.count, facts.memory_mib, facts.shared) == ("T4", 1, 15360, False)
    assert levels(facts) == (F, N, F, F, X, N)


def test_real_time_sliced_a10g_node() -> None:
    facts = parse(EKS_A10G_TIME_SLICED)
    assert (facts.key, facts.shared, facts.memory_mib) == ("A10G", True, 23028)
    assert facts.count == 8  # no count label: the table's typical count, and the derivation says so
    assert "count 8 from the table default" in facts.derivation


@pytest.mark.parametrize(
    ("labels", "key", "profile", "memory_mib", "shared"),
    [
        # MIG single strategy: GFD renames the product and reports the slice's memory
        (
            {P: "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", MEM: "9728", CNT: "7", MAJ: "8", MIN: "0", FAM: "ampere"},
            "A100-80GB",
            "1g.10gb",
            9728,
            False,
        ),
        # no memory label: nominal size parsed from the profile
        ({P: "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb"}, "A100-80GB", "1g.10gb", 10240, False),
        ({P: "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb+me"}, "A100-40GB", "1g.5gb+me", 5120, False),
        ({P: "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb-SHARED", MEM: "40448"}, "H100-SXM", "3g.40gb", 40448, True),
        ({P: "NVIDIA-A100-80GB-PCIe-MIG-1g.10gb"}, "A100-80GB", "1g.10gb", 10240, False),
    ],
)
def test_mig_variants(labels: dict[str, str], key: str, profile: str, memory_mib: int, shared: bool) -> None:
    facts = parse(labels)
    assert (facts.key, facts.mig_profile, facts.memory_mib, facts.shared) == (key, profile, memory_mib, shared)
    assert facts.support == lookup(key).support  # a slice runs the same kernels as the whole GPU
    assert short_name(facts).startswith(f"{key}-MIG-{profile}")


def test_mig_builder_round_trips() -> None:
    labels = node_labels_for("H100-SXM", 7, mig_profile="1g.10gb")
    assert labels[P] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb" and labels["nvidia.com/mig.strategy"] == "single"
    facts = parse(labels)
    assert (facts.key, facts.mig_profile, facts.memory_mib, facts.count) == ("H100-SXM", "1g.10gb", 10240, 7)


def test_mig_profile_without_size_and_no_memory_label() -> None:
    with pytest.raises(LabelError, match="names no memory size"):
        gpu_facts_from_labels({P: "NVIDIA-A100-SXM4-80GB-MIG-weird"})


@pytest.mark.parametrize(
    ("profile", "mib"),
    [("1g.10gb", 10240), ("3g.40gb", 40960), ("1g.5gb+me", 5120), ("7g.80gb", 81920), ("1g.0gb", None), ("abc", None)],
)
def test_mig_memory(profile: str, mib: int | None) -> None:
    assert mig_memory_mib(profile) == mib


def test_label_memory_wins_over_table() -> None:
    facts = parse({P: "NVIDIA-A100-SXM4-40GB", MEM: "39538"})  # older driver's number
    assert (facts.key, facts.memory_mib) == ("A100-40GB", 39538)
    assert "memory 39538 MiB from nvidia.com/gpu.memory=39538" in facts.derivation


def test_count_override_beats_label() -> None:
    facts = gpu_facts_from_labels(node_labels_for("L40S", 8), count=3)
    assert facts is not None and facts.count == 3 and "count 3 from the caller" in facts.derivation


# ------------------------------------------------------------------------------------------------ unknown NVIDIA


@pytest.mark.parametrize(
    ("major", "minor", "family", "expected"),
    [
        ("9", "0", "hopper", (N, N, N, F, F, N)),
        ("7", "5", "turing", (F, N, F, F, X, N)),
        ("8", "6", "ampere", (F, N, F, F, F, N)),
        ("8", "9", "ada-lovelace", (N, N, F, F, F, N)),
        ("10", "0", "blackwell", (N, N, N, N, N, N)),
        ("12", "1", "blackwell", (N, N, N, N, N, N)),
        ("7", "0", "volta", (X, X, X, X, X, X)),
    ],
)
def test_unknown_product_derived_from_compute_capability(
    major: str, minor: str, family: str, expected: tuple[Support, ...]
) -> None:
    facts = parse({P: "NVIDIA-X9000", MAJ: major, MIN: minor, MEM: "97871", CNT: "4"})
    assert (facts.known, facts.key, facts.label_product) == (False, None, "NVIDIA-X9000")
    assert facts.compute_capability == (int(major), int(minor)) and facts.family == family
    assert (facts.memory_mib, facts.count) == (97871, 4)
    assert levels(facts) == expected
    assert facts.derivation.startswith(
        f"unknown product NVIDIA-X9000; derived from compute capability {major}.{minor} ({family}) and memory 97871 MiB"
    )
    assert short_name(facts) == "NVIDIA-X9000"


def test_unknown_product_with_family_only_assumes_the_weakest_member() -> None:
    facts = parse({P: "NVIDIA-RTX-Z", FAM: "ada-lovelace", MEM: "49140"})
    assert facts.compute_capability is None and facts.family == "ada-lovelace"
    assert levels(facts) == (N, N, F, F, F, N)
    assert "family ada-lovelace (assumed its lowest compute capability 8.9)" in facts.derivation


def test_unknown_product_family_ampere_is_conservative() -> None:
    facts = parse({P: "NVIDIA-A40", FAM: "ampere", MEM: "46068"})
    assert levels(facts) == (F, N, F, F, F, N)


def test_major_without_minor_assumes_minor_zero() -> None:
    facts = parse({P: "NVIDIA-L20", MAJ: "8", MEM: "46068"})
    assert facts.compute_capability == (8, 0) and facts.fp8_w8a8 is Support.FALLBACK
    assert "minor missing, assumed 8.0" in facts.derivation


def test_no_product_but_capability_labels() -> None:
    facts = parse({MAJ: "9", MIN: "0", MEM: "81559", CNT: "8"})
    assert facts.label_product is None and not facts.known
    assert facts.derivation.startswith("no nvidia.com/gpu.product label; derived from compute capability 9.0")
    assert short_name(facts) == "nvidia-hopper-sm90"


def test_gfd_undefined_family_is_ignored_when_cc_present() -> None:
    facts = parse({P: "NVIDIA-NEW", FAM: "undefined", MAJ: "10", MIN: "0", MEM: "1000"})
    assert facts.family == "blackwell"


def test_unknown_future_family_with_cc_uses_cc() -> None:
    facts = parse({P: "NVIDIA-R100", FAM: "rubin", MAJ: "11", MIN: "0", MEM: "300000"})
    assert facts.family == "blackwell" and facts.nvfp4 is Support.NATIVE


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({P: "NVIDIA-X9000"}, "no nvidia.com/gpu.compute.major"),
        ({P: "NVIDIA-X9000", MEM: "81920"}, "cannot tell what this GPU can run"),
        ({P: "NVIDIA-X9000", MAJ: "9", MIN: "0"}, "memory is unknown"),
        ({P: "NVIDIA-X9000", FAM: "undefined", MEM: "81920"}, "no family label"),
        ({P: "NVIDIA-X9000", FAM: "rubin", MEM: "81920"}, "family 'rubin' is not one we know"),
        ({"nvidia.com/gpu.present": "true"}, "is GPU Feature Discovery running"),
        ({MIN: "0", MEM: "1"}, "compute.minor is set but"),
        # contradictions
        ({P: "NVIDIA-H100-80GB-HBM3", MAJ: "8", MIN: "0"}, "is H100-SXM .* labels say 8.0"),
        ({P: "NVIDIA-H100-80GB-HBM3", FAM: "ampere"}, "contradicts compute capability 9.0"),
        ({P: "NVIDIA-X9000", MAJ: "9", MIN: "0", FAM: "ampere", MEM: "1"}, "contradicts"),
        ({P: "NVIDIA-H100-80GB-HBM3", DEV: "74a1"}, "both NVIDIA .* and AMD"),
        ({P: "AMD_Instinct_MI300X_OAM"}, "names the AMD GPU MI300X"),
        ({DEV: "74a1", NAME: "AMD_Instinct_MI355_OAM"}, "device-id says MI300X but .* is MI355X"),
        ({NAME: "NVIDIA-H100-80GB-HBM3"}, "names the NVIDIA GPU H100-SXM"),
        # unusable values
        ({P: "NVIDIA-H100-80GB-HBM3", MEM: "abc"}, "not a whole number"),
        ({P: "NVIDIA-H100-80GB-HBM3", MEM: "0"}, "outside"),
        ({P: "NVIDIA-H100-80GB-HBM3", CNT: "0"}, "outside"),
        ({P: "NVIDIA-H100-80GB-HBM3", CNT: "-1"}, "not a whole number"),
        ({P: "NVIDIA-X9000", MAJ: "nine", MEM: "1"}, "not a whole number"),
        ({P: "NVIDIA-X9000", MAJ: "9", MIN: "0", MEM: "9" * 40}, "not a whole number"),
        # AMD without enough to go on
        ({DEV: "ffff"}, "unknown AMD device-id ffff and no product name or gfx arch"),
        ({DEV: "ffff", NAME: "AMD_Instinct_MI300A"}, "amd.com/gpu.vram is missing"),
        ({"amd.com/gpu.family": "AI"}, "no AMD device-id"),
        ({DEV: "74a1", VRAM: "lots"}, "not a memory size"),
        ({"amd.com/gpu.device-id.74a1": "4", "amd.com/gpu.device-id.75a3": "4"}, "mixed GPUs"),
        ({"beta.amd.com/gpu.device-id.74a1": "4", "beta.amd.com/gpu.device-id.ffff": "4"}, "mixed GPUs"),
        ({DEV: "74a1", "beta.amd.com/gpu.vram.192G": "4", "beta.amd.com/gpu.vram.256G": "4"}, "mixed GPUs"),
        ({"beta.amd.com/gpu.device-id.74a1": "eight"}, "not a whole number"),
    ],
)
def test_label_errors(labels: dict[str, str], message: str) -> None:
    with pytest.raises(LabelError, match=message):
        gpu_facts_from_labels(labels)


def test_label_error_is_a_value_error() -> None:
    assert issubclass(LabelError, ValueError)


# ------------------------------------------------------------------------------------------------ AMD


def test_amd_by_device_id_only() -> None:
    facts = parse({DEV: "74a1"})
    assert (facts.key, facts.vendor, facts.gfx_arch, facts.fp8_flavour) == ("MI300X", "amd", "gfx942", "e4m3fnuz")
    assert facts.memory_mib == 192 * 1024 and facts.count == 8
    assert facts.derivation.startswith("matched table row MI300X from amd.com/gpu.device-id=74a1")
    assert levels(facts) == (N, X, N, X, X, N)


def test_amd_device_id_with_0x_prefix_and_vram() -> None:
    facts = parse({DEV: "0x75A3", VRAM: "288G", "amd.com/gpu.family": "AI"})
    assert (facts.key, facts.memory_mib, facts.mxfp4) == ("MI355X", 288 * 1024, Support.NATIVE)


@pytest.mark.parametrize(
    ("labels", "key", "count", "memory_mib"),
    [
        # legacy labeller: every attribute count-encoded under beta.amd.com
        (
            {
                "beta.amd.com/gpu.device-id.74a1": "8",
                "beta.amd.com/gpu.vram.192G": "8",
                "beta.amd.com/gpu.family.AI": "8",
            },
            "MI300X",
            8,
            192 * 1024,
        ),
        # physical functions and SR-IOV virtual functions of the same GPU on one node
        ({"beta.amd.com/gpu.device-id.74a1": "4", "beta.amd.com/gpu.device-id.74b5": "4"}, "MI300X", 8, 192 * 1024),
        # the same attribute in both spellings counts once
        ({"amd.com/gpu.device-id.75a3": "8", "beta.amd.com/gpu.device-id.75a3": "8"}, "MI355X", 8, 288 * 1024),
        ({DEV: "74a5", "beta.amd.com/gpu.device-id": "74a5", VRAM: "256G"}, "MI325X", 8, 256 * 1024),
    ],
)
def test_amd_legacy_and_count_encoded_labels(labels: dict[str, str], key: str, count: int, memory_mib: int) -> None:
    facts = parse(labels)
    assert (facts.key, facts.count, facts.memory_mib) == (key, count, memory_mib)


def test_amd_count_encoded_count_is_reported() -> None:
    facts = parse({"beta.amd.com/gpu.device-id.74a1": "2"})
    assert facts.count == 2 and "count 2 from the count-encoded AMD labels" in facts.derivation
    overridden = gpu_facts_from_labels({"beta.amd.com/gpu.device-id.74a1": "2"}, count=1)
    assert overridden is not None and overridden.count == 1


def test_amd_by_product_name_only() -> None:
    facts = parse({NAME: "AMD_Instinct_MI325X"})
    assert facts.key == "MI325X" and "amd.com/gpu.product-name=AMD_Instinct_MI325X" in facts.derivation


@pytest.mark.parametrize(
    ("name", "arch", "family", "expected"),
    [
        ("AMD_Instinct_MI308X_OAM", "gfx942", "cdna3", (N, X, N, X, X, N)),
        ("AMD_Instinct_MI350_Something", "gfx950", "cdna4", (N, X, N, X, N, N)),
        ("AMD_Instinct_MI250X", "gfx90a", "cdna2", (X, X, X, X, X, X)),
    ],
)
def test_amd_unknown_device_derived_from_product_name(
    name: str, arch: str, family: str, expected: tuple[Support, ...]
) -> None:
    facts = parse({DEV: "74a2", NAME: name, VRAM: "192G"})
    assert (facts.known, facts.gfx_arch, facts.family, facts.memory_mib) == (False, arch, family, 192 * 1024)
    assert levels(facts) == expected
    assert facts.derivation.startswith(f"unknown AMD device-id 74a2; derived gfx arch {arch}")


def test_amd_unknown_device_with_gfx_family_label() -> None:
    facts = parse({DEV: "7777", "amd.com/gpu.family": "gfx950", VRAM: "288G"})
    assert facts.gfx_arch == "gfx950" and facts.mxfp4 is Support.NATIVE


# ------------------------------------------------------------------------------------------------ not GPU nodes


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"kubernetes.io/hostname": "cpu-1", "node.kubernetes.io/instance-type": "m7i.4xlarge"},
        {"nvidia.com/gpu.present": "false"},
        {"nvidia.com/gpu.deploy.driver": "false", "nvidia.com/gpu.deploy.device-plugin": "false"},
        {"feature.node.kubernetes.io/pci-10de.present": "true"},
    ],
)
def test_non_gpu_nodes(labels: dict[str, str]) -> None:
    assert gpu_facts_from_labels(labels) is None


# ------------------------------------------------------------------------------------------------ facts_for / builders


@pytest.mark.parametrize(
    ("name", "key", "profile", "memory_mib", "shared"),
    [
        ("h100", "H100-SXM", None, 81559, False),
        ("NVIDIA-H100-80GB-HBM3", "H100-SXM", None, 81559, False),
        ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "A100-80GB", "1g.10gb", 10240, False),
        ("NVIDIA-A10G-SHARED", "A10G", None, 23028, True),
        ("mi300x", "MI300X", None, 196608, False),
    ],
)
def test_facts_for(name: str, key: str, profile: str | None, memory_mib: int, shared: bool) -> None:
    facts = facts_for(name)
    assert (facts.key, facts.mig_profile, facts.memory_mib, facts.shared, facts.count) == (
        key,
        profile,
        memory_mib,
        shared,
        1,
    )
    assert facts.derivation.startswith(f"table row {key} from the name {name!r}")


@pytest.mark.parametrize(
    ("name", "error"), [("x9000", UnknownGpu), ("a100", UnknownGpu), ("NVIDIA-A100-SXM4-80GB-MIG-odd", ValueError)]
)
def test_facts_for_refuses(name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        facts_for(name)


def test_facts_for_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        facts_for("h100", count=0)


@pytest.mark.parametrize(
    ("key", "count", "kwargs", "error"),
    [
        ("h100", 8, {}, UnknownGpu),  # builders take exact keys, not user input
        ("H100-SXM", 0, {}, ValueError),
        ("MI300X", 8, {"shared": True}, ValueError),
        ("MI300X", 8, {"mig_profile": "1g.10gb"}, ValueError),
        ("H100-SXM", 8, {"mig_profile": "odd"}, ValueError),
    ],
)
def test_node_labels_for_refuses(key: str, count: int, kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        node_labels_for(key, count, **kwargs)  # type: ignore[arg-type]


def test_node_labels_for_nvidia_shape() -> None:
    assert node_labels_for("H100-SXM", 8) == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.family": "hopper",
        "nvidia.com/gpu.compute.major": "9",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/gpu.memory": "81559",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/mig.capable": "true",
        "nvidia.com/mig.strategy": "none",
    }
    assert node_labels_for("L4", 1)["nvidia.com/mig.capable"] == "false"


def test_node_labels_for_amd_shape() -> None:
    assert node_labels_for("MI300X", 8) == {
        "amd.com/gpu.device-id": "74a1",
        "amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM",
        "amd.com/gpu.vram": "192G",
        "amd.com/gpu.family": "AI",
        "amd.com/gpu.cu-count": "304",
    }


# ------------------------------------------------------------------------------------------------ property

REAL_KEYS = [
    *NVIDIA_FACT_KEYS,
    *AMD_FACT_KEYS,
    "beta.amd.com/gpu.device-id",
    "beta.amd.com/gpu.device-id.74a1",
    "amd.com/gpu.device-id.75a3",
    "beta.amd.com/gpu.vram.192G",
    "beta.amd.com/gpu.family.AI",
    "nvidia.com/gpu.present",
    "nvidia.com/gpu.replicas",
    "nvidia.com/gpu.deploy.driver",
    "kubernetes.io/hostname",
]
REAL_VALUES = [name for spec in GPU_TABLE for name in (*spec.products, *spec.device_ids)] + [
    "true",
    "false",
    "0",
    "8",
    "9",
    "10",
    "81559",
    "192G",
    "hopper",
    "ampere",
    "undefined",
    "gfx942",
    "-SHARED",
    "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
    "NVIDIA-H100-80GB-HBM3-MIG-",
    "0x",
    "",
    " ",
]
label_keys = st.one_of(st.sampled_from(REAL_KEYS), st.text(max_size=30))
label_values = st.one_of(
    st.sampled_from(REAL_VALUES),
    st.text(max_size=40),
    st.integers(min_value=-10, max_value=10**12).map(str),
    st.from_regex(r"[0-9]{1,4}g\.[0-9]{1,3}gb", fullmatch=True).map(lambda p: f"NVIDIA-A100-SXM4-40GB-MIG-{p}"),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(label_keys, label_values, max_size=10))
def test_any_label_set_gives_facts_none_or_label_error(labels: dict[str, str]) -> None:
    try:
        facts = gpu_facts_from_labels(labels)
    except LabelError as err:
        assert str(err)  # always a reason
        return
    if facts is None:
        return
    assert isinstance(facts, GpuFacts)
    assert facts.memory_mib > 0 and facts.count > 0 and facts.derivation
    assert facts.known == (facts.key is not None)
    assert short_name(facts)


def test_as_dict_is_json_ready() -> None:
    facts = parse({P: "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb-SHARED", MEM: "9728", CNT: "7"})
    data = json.loads(json.dumps(facts.as_dict()))
    assert data["name"] == "A100-80GB-MIG-1g.10gb-SHARED"
    assert data["compute_capability"] == "8.0" and data["memory_mib"] == 9728 and data["count"] == 7
    assert data["support"] == {
        "fp8_w8a8": "fallback",
        "fp8_weight_only": "native",
        "fp8_block": "fallback",
        "nvfp4": "fallback",
        "mxfp4": "fallback",
        "int4_w4a16": "native",
    }
    assert data["known"] is True and data["mig_profile"] == "1g.10gb" and data["shared"] is True


def test_derived_facts_explain_each_format() -> None:
    facts = parse({P: "NVIDIA-X9000", MAJ: "9", MIN: "0", MEM: "1024"})
    assert "hopper (compute capability 9.0)" in facts.support_reason("nvfp4")
