"""Node labels → GpuFacts: what GPU a Kubernetes node carries and what vLLM can do with it.

Why this module exists: the operator never talks to a GPU. All it knows about a node's accelerators is what NVIDIA GPU
Feature Discovery (``nvidia.com/gpu.*``) and the AMD node labeller (``amd.com/gpu.*``) wrote on the Node (label names
and their sources: docs/gpu-formats.md).
This module turns that label set into one typed, explained ``GpuFacts`` — from the table when the product is known,
derived from compute capability / family / memory labels when it is not — or says clearly why it cannot
(``LabelError``). It never raises anything else, whatever the labels contain.

It also goes the other way (``node_labels_for``): the realistic label set a labeller would publish for a table GPU,
for test builders and the sandbox's simulated GPU pools. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from quantfleet.hardware.support import (
    ComputeCapability,
    Family,
    FormatSupport,
    Fp8Flavour,
    SupportAccessors,
    Vendor,
    amd_arch_known,
    amd_family,
    amd_fp8_flavour,
    amd_support,
    as_family,
    cc_floor_for_family,
    family_for_cc,
    nvidia_support,
)
from quantfleet.hardware.table import GPU_TABLE, GpuSpec, ProductName, by_key, find, lookup, split_product

# ------------------------------------------------------------------------------------------------ label keys

NV_PRODUCT: Final = "nvidia.com/gpu.product"
NV_FAMILY: Final = "nvidia.com/gpu.family"
NV_CC_MAJOR: Final = "nvidia.com/gpu.compute.major"
NV_CC_MINOR: Final = "nvidia.com/gpu.compute.minor"
NV_MEMORY: Final = "nvidia.com/gpu.memory"
NV_COUNT: Final = "nvidia.com/gpu.count"
NV_PRESENT: Final = "nvidia.com/gpu.present"
NV_REPLICAS: Final = "nvidia.com/gpu.replicas"
NV_SHARING: Final = "nvidia.com/gpu.sharing-strategy"
NV_MIG_STRATEGY: Final = "nvidia.com/mig.strategy"
NV_MIG_CAPABLE: Final = "nvidia.com/mig.capable"

AMD_DEVICE_ID: Final = "amd.com/gpu.device-id"
AMD_PRODUCT: Final = "amd.com/gpu.product-name"
AMD_VRAM: Final = "amd.com/gpu.vram"
AMD_FAMILY: Final = "amd.com/gpu.family"
AMD_CU_COUNT: Final = "amd.com/gpu.cu-count"

# Labels that carry facts about the GPU. A node with none of them (and no `gpu.present=true`) is not a GPU node:
# GPU Operator control labels such as nvidia.com/gpu.deploy.* say nothing about the hardware.
NVIDIA_FACT_KEYS: Final[tuple[str, ...]] = (NV_PRODUCT, NV_FAMILY, NV_CC_MAJOR, NV_CC_MINOR, NV_MEMORY, NV_COUNT)
AMD_FACT_KEYS: Final[tuple[str, ...]] = (AMD_DEVICE_ID, AMD_PRODUCT, AMD_VRAM, AMD_FAMILY, AMD_CU_COUNT)
AMD_PREFIXES: Final[tuple[str, ...]] = ("amd.com/gpu.", "beta.amd.com/gpu.")
AMD_ATTRIBUTES: Final[tuple[str, ...]] = ("device-id", "product-name", "vram", "family", "cu-count", "simd-count")

_MIG_GB: Final = re.compile(r"^\d+g\.(?P<gb>\d+)gb", re.IGNORECASE)
_AMD_ARCH_BY_NAME: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"MI3(00|08|25)", re.IGNORECASE), "gfx942"),
    (re.compile(r"MI35[05]", re.IGNORECASE), "gfx950"),
    (re.compile(r"MI2(10|50)", re.IGNORECASE), "gfx90a"),
)


class LabelError(ValueError):
    """The node's GPU labels are contradictory or too thin to plan with; the message says which labels and why."""


@dataclass(frozen=True)
class GpuFacts(SupportAccessors):
    """What quantfleet knows about the GPUs of one node (or of one ``--gpu`` name), and how it knows it.

    ``memory_mib`` is per GPU as the workload sees it (a MIG slice's memory under MIG). ``known`` is False when the
    facts were derived from capability labels instead of a table row; ``derivation`` says how in plain words.
    """

    vendor: Vendor
    key: str | None
    label_product: str | None
    family: Family
    compute_capability: ComputeCapability | None
    gfx_arch: str | None
    memory_mib: int
    count: int
    shared: bool
    mig_profile: str | None
    support: FormatSupport
    fp8_flavour: Fp8Flavour
    known: bool
    derivation: str

    @property
    def memory_gib(self) -> float:
        """Per-GPU memory in GiB."""
        return self.memory_mib / 1024

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (for ``quantfleet plan --output json`` and status): plain strings, ints, lists."""
        cc = self.compute_capability
        return {
            "name": short_name(self),
            "vendor": self.vendor,
            "key": self.key,
            "label_product": self.label_product,
            "family": self.family,
            "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
            "gfx_arch": self.gfx_arch,
            "memory_mib": self.memory_mib,
            "count": self.count,
            "shared": self.shared,
            "mig_profile": self.mig_profile,
            "support": {fmt: level.value for fmt, level in self.support.as_dict().items()},
            "fp8_flavour": self.fp8_flavour,
            "known": self.known,
            "derivation": self.derivation,
        }


def short_name(facts: GpuFacts) -> str:
    """Display name: the table key (``H100-SXM``), decorated with MIG profile / shared, or a derived description."""
    if facts.key is not None:
        base = facts.key
    elif facts.label_product:
        base = split_product(facts.label_product).base
    elif facts.compute_capability is not None:
        base = f"{facts.vendor}-{facts.family}-sm{facts.compute_capability[0]}{facts.compute_capability[1]}"
    else:
        base = f"{facts.vendor}-{facts.gfx_arch or facts.family}"
    if facts.mig_profile:
        base += f"-MIG-{facts.mig_profile}"
    if facts.shared:
        base += "-SHARED"
    return base


# ------------------------------------------------------------------------------------------------ parsing helpers


def _int_label(labels: Mapping[str, str], key: str, *, minimum: int, maximum: int) -> int | None:
    raw = labels.get(key)
    if raw is None:
        return None
    text = raw.strip() if isinstance(raw, str) else ""
    if not re.fullmatch(r"[0-9]{1,9}", text, flags=re.ASCII):
        raise LabelError(f"{key}={raw!r} is not a whole number")
    value = int(text)
    if not minimum <= value <= maximum:
        raise LabelError(f"{key}={raw!r} is outside {minimum}..{maximum}")
    return value


def _str_label(labels: Mapping[str, str], key: str) -> str | None:
    raw = labels.get(key)
    if not isinstance(raw, str) or not raw.strip():
        return None
    return raw.strip()


def mig_memory_mib(profile: str) -> int | None:
    """Nominal memory of a MIG profile (``1g.10gb`` → 10240 MiB); None if the profile names no size."""
    match = _MIG_GB.match(profile)
    return int(match.group("gb")) * 1024 if match and int(match.group("gb")) > 0 else None


def _memory(labels: Mapping[str, str], key: str, product: ProductName | None, table_mib: int | None) -> tuple[int, str]:
    """Per-GPU memory and where it came from: the label, the MIG profile, or the table."""
    label_mib = _int_label(labels, key, minimum=1, maximum=16 * 1024 * 1024)
    if label_mib is not None:
        return label_mib, f"{key}={label_mib}"
    if product is not None and product.mig_profile is not None:
        mig_mib = mig_memory_mib(product.mig_profile)
        if mig_mib is not None:
            return mig_mib, f"MIG profile {product.mig_profile}"
        raise LabelError(f"MIG profile {product.mig_profile!r} names no memory size and {key} is missing")
    if table_mib is not None:
        return table_mib, "the table"
    raise LabelError(f"{key} is missing, so the GPU memory is unknown")


def _count(labels: Mapping[str, str], key: str | None, override: int | None, default: int) -> tuple[int, str]:
    if override is not None:
        if override < 1:
            raise LabelError(f"GPU count {override} must be at least 1")
        return override, "the caller"
    if key is not None:
        value = _int_label(labels, key, minimum=1, maximum=4096)
        if value is not None:
            return value, key
    return default, "the table default" if default > 1 else "assumed 1"


def _has_any(labels: Mapping[str, str], keys: tuple[str, ...]) -> bool:
    return any(key in labels for key in keys)


# ------------------------------------------------------------------------------------------------ NVIDIA


def _nvidia_cc(labels: Mapping[str, str]) -> tuple[ComputeCapability | None, str]:
    major = _int_label(labels, NV_CC_MAJOR, minimum=1, maximum=99)
    minor = _int_label(labels, NV_CC_MINOR, minimum=0, maximum=99)
    if major is None:
        if minor is not None:
            raise LabelError(f"{NV_CC_MINOR} is set but {NV_CC_MAJOR} is missing")
        return None, ""
    if minor is None:
        return (major, 0), f"compute capability {major}.x (minor missing, assumed {major}.0: the weakest of that major)"
    return (major, minor), f"compute capability {major}.{minor}"


def _nvidia_family_label(labels: Mapping[str, str]) -> str | None:
    value = _str_label(labels, NV_FAMILY)
    return None if value is None or value.casefold() == "undefined" else value.casefold()


def _check_family(family_label: str | None, cc: ComputeCapability | None, source: str) -> None:
    if family_label is None or cc is None:
        return
    expected = family_for_cc(cc)
    if as_family(family_label) is not None and expected != "unknown" and family_label != expected:
        raise LabelError(
            f"{NV_FAMILY}={family_label} contradicts compute capability {cc[0]}.{cc[1]} ({expected}) from {source}"
        )


def _nvidia_known(
    labels: Mapping[str, str], spec: GpuSpec, raw: str, product: ProductName, count_override: int | None
) -> GpuFacts:
    label_cc, _ = _nvidia_cc(labels)
    if label_cc is not None and label_cc != spec.compute_capability:
        table_cc = spec.compute_capability
        raise LabelError(
            f"{NV_PRODUCT}={raw} is {spec.key} (compute capability {table_cc[0]}.{table_cc[1]} in the table) but the "
            f"labels say {label_cc[0]}.{label_cc[1]}"
            if table_cc
            else f"{NV_PRODUCT}={raw} is {spec.key}, which has no compute capability"
        )
    _check_family(_nvidia_family_label(labels), spec.compute_capability, f"{NV_PRODUCT}={raw} ({spec.key})")
    memory, memory_source = _memory(labels, NV_MEMORY, product, spec.memory_mib)
    count, count_source = _count(labels, NV_COUNT, count_override, spec.gpus_per_node)
    derivation = (
        f"matched table row {spec.key} from {NV_PRODUCT}={raw}; memory {memory} MiB from {memory_source}; "
        f"count {count} from {count_source}"
    )
    return _facts_from_spec(spec, raw, product, memory, count, derivation)


def _nvidia_derived(
    labels: Mapping[str, str], raw: str | None, product: ProductName | None, count_override: int | None
) -> GpuFacts:
    what = f"unknown product {raw}" if raw else f"no {NV_PRODUCT} label"
    cc, cc_text = _nvidia_cc(labels)
    family_label = _nvidia_family_label(labels)
    _check_family(family_label, cc, "the compute capability labels")
    if cc is not None:
        rules_cc = cc
        family = family_for_cc(cc)
        basis = f"{cc_text} ({family})"
    else:
        floor = cc_floor_for_family(family_label) if family_label else None
        if floor is None:
            reason = f"family {family_label!r} is not one we know" if family_label else "no family label"
            raise LabelError(
                f"{what}, no {NV_CC_MAJOR}/{NV_CC_MINOR} labels and {reason}: cannot tell what this GPU can run "
                "(is GPU Feature Discovery running on the node?)"
            )
        rules_cc = floor
        family = as_family(family_label or "") or "unknown"
        basis = f"family {family_label} (assumed its lowest compute capability {floor[0]}.{floor[1]})"
    memory, memory_source = _memory(labels, NV_MEMORY, product, None)
    count, count_source = _count(labels, NV_COUNT, count_override, 1)
    derivation = (
        f"{what}; derived from {basis} and memory {memory} MiB from {memory_source}; count {count} from {count_source}"
    )
    return GpuFacts(
        vendor="nvidia",
        key=None,
        label_product=raw,
        family=family,
        compute_capability=cc,
        gfx_arch=None,
        memory_mib=memory,
        count=count,
        shared=product.shared if product else False,
        mig_profile=product.mig_profile if product else None,
        support=nvidia_support(rules_cc),
        fp8_flavour="e4m3fn",
        known=False,
        derivation=derivation,
    )


def _nvidia_facts(labels: Mapping[str, str], count_override: int | None) -> GpuFacts:
    raw = _str_label(labels, NV_PRODUCT)
    if raw is None and not _has_any(labels, NVIDIA_FACT_KEYS):
        raise LabelError(
            f"{NV_PRESENT}=true but no {NV_PRODUCT}, compute capability, family or memory labels "
            "(is GPU Feature Discovery running on the node?)"
        )
    product = split_product(raw) if raw is not None else None
    spec = find(product.base) if product is not None else None
    if spec is not None and spec.vendor != "nvidia":
        raise LabelError(f"{NV_PRODUCT}={raw} names the AMD GPU {spec.key}")
    if spec is not None and product is not None and raw is not None:
        return _nvidia_known(labels, spec, raw, product, count_override)
    return _nvidia_derived(labels, raw, product, count_override)


# ------------------------------------------------------------------------------------------------ AMD
#
# The AMD node labeller publishes each attribute in up to four spellings: `amd.com/gpu.<attr>=<value>`, the legacy
# `beta.amd.com/gpu.<attr>=<value>`, and count-encoded `[beta.]amd.com/gpu.<attr>.<value>=<number of GPUs>` (the
# latter is how the older labeller reported them, and how a node with several GPU kinds shows up). All are read.


@dataclass(frozen=True)
class AmdAttribute:
    """Every value one AMD labeller attribute takes on a node, with the GPU count where the label encodes one."""

    name: str
    values: tuple[str, ...]
    count: int | None

    def one(self) -> str | None:
        """The single value, None if absent; LabelError if the node reports several."""
        if len(self.values) > 1:
            raise LabelError(f"AMD label {self.name} has several values {list(self.values)}: a node with mixed GPUs")
        return self.values[0] if self.values else None


def amd_attribute(labels: Mapping[str, str], attr: str) -> AmdAttribute:
    """Collect ``attr`` (e.g. ``device-id``) from every AMD labeller spelling on the node."""
    values: dict[str, int | None] = {}
    for prefix in AMD_PREFIXES:
        plain = f"{prefix}{attr}"
        raw = labels.get(plain)
        if isinstance(raw, str) and raw.strip():
            values.setdefault(raw.strip(), None)
        encoded = f"{plain}."
        for key in labels:
            if isinstance(key, str) and key.startswith(encoded) and len(key) > len(encoded):
                count = _int_label(labels, key, minimum=0, maximum=4096)
                value = key[len(encoded) :]
                previous = values.get(value)
                values[value] = max(count or 0, previous or 0)
    counts = [c for c in values.values() if c is not None]
    total = sum(counts) if counts else None
    return AmdAttribute(name=f"amd.com/gpu.{attr}", values=tuple(values), count=total or None)


def _is_amd_node(labels: Mapping[str, str]) -> bool:
    return any(
        isinstance(key, str) and key.startswith(f"{prefix}{attr}")
        for key in labels
        for prefix in AMD_PREFIXES
        for attr in AMD_ATTRIBUTES
    )


def _device_id(value: str) -> str:
    value = value.casefold()
    return value[2:] if value.startswith("0x") else value


def _amd_vram_mib(attr: AmdAttribute) -> int | None:
    raw = attr.one()
    if raw is None:
        return None
    match = re.fullmatch(r"([0-9]{1,6})\s*(G|GB|Gi|GiB|M|MB|Mi|MiB)?", raw, flags=re.ASCII | re.IGNORECASE)
    if not match or int(match.group(1)) == 0:
        raise LabelError(f"{AMD_VRAM}={raw!r} is not a memory size like 192G")
    unit = (match.group(2) or "G").upper()
    return int(match.group(1)) * (1 if unit.startswith("M") else 1024)


def _amd_specs(attr: AmdAttribute, *, device_ids: bool) -> tuple[GpuSpec | None, list[str]]:
    """The one table row all values of ``attr`` name (None if none do) and the values no row knows."""
    specs: dict[str, GpuSpec] = {}
    unknown: list[str] = []
    for value in attr.values:
        spec = find(_device_id(value) if device_ids else value)
        if spec is None:
            unknown.append(value)
        elif spec.vendor != "amd":
            raise LabelError(f"{attr.name}={value} names the NVIDIA GPU {spec.key}")
        else:
            specs[spec.key] = spec
    if len(specs) > 1 or (specs and unknown):
        kinds = [*specs, *unknown]
        raise LabelError(f"{attr.name} reports several GPU kinds {kinds}: a node with mixed GPUs cannot be planned")
    return next(iter(specs.values()), None), unknown


def _amd_arch_guess(family: AmdAttribute, product: AmdAttribute) -> tuple[str | None, str]:
    value = family.one()
    if value and re.fullmatch(r"gfx[0-9a-f]{3,4}", value, flags=re.IGNORECASE):
        return value.casefold(), f"{AMD_FAMILY}={value}"
    name = product.one()
    if name:
        for pattern, arch in _AMD_ARCH_BY_NAME:
            if pattern.search(name):
                return arch, f"{AMD_PRODUCT}={name}"
    return None, ""


def _amd_facts(labels: Mapping[str, str], count_override: int | None) -> GpuFacts:
    ids, names = amd_attribute(labels, "device-id"), amd_attribute(labels, "product-name")
    by_id, unknown_ids = _amd_specs(ids, device_ids=True)
    by_name, _ = _amd_specs(names, device_ids=False)
    if by_id is not None and by_name is not None and by_id.key != by_name.key:
        raise LabelError(f"{AMD_DEVICE_ID} says {by_id.key} but {AMD_PRODUCT}={names.one()} is {by_name.key}")
    spec = by_id or by_name
    source = f"{AMD_DEVICE_ID}={','.join(ids.values)}" if by_id else f"{AMD_PRODUCT}={names.one()}" if by_name else ""
    raw_product = names.one()
    vram = _amd_vram_mib(amd_attribute(labels, "vram"))
    label_count = ids.count or names.count
    if spec is not None:
        memory = vram if vram is not None else spec.memory_mib
        memory_source = f"{AMD_VRAM}" if vram is not None else "the table"
        count, count_source = _amd_count(label_count, count_override, spec.gpus_per_node)
        derivation = (
            f"matched table row {spec.key} from {source}; memory {memory} MiB from {memory_source}; "
            f"count {count} from {count_source}"
        )
        plain = ProductName(base=raw_product or spec.product, shared=False, mig_profile=None)
        return _facts_from_spec(spec, raw_product, plain, memory, count, derivation)
    what = f"unknown AMD device-id {','.join(unknown_ids)}" if unknown_ids else "no AMD device-id"
    arch, arch_source = _amd_arch_guess(amd_attribute(labels, "family"), names)
    if arch is None:
        raise LabelError(f"{what} and no product name or gfx arch we can map: cannot tell what this GPU can run")
    if vram is None:
        raise LabelError(f"{what} and {AMD_VRAM} is missing, so the GPU memory is unknown")
    count, count_source = _amd_count(label_count, count_override, 1)
    rules = "" if amd_arch_known(arch) else " (no quantization rules for this arch: only 16-bit serving)"
    derivation = (
        f"{what}; derived gfx arch {arch} from {arch_source}{rules} and memory {vram} MiB from {AMD_VRAM}; "
        f"count {count} from {count_source}"
    )
    return GpuFacts(
        vendor="amd",
        key=None,
        label_product=raw_product,
        family=amd_family(arch),
        compute_capability=None,
        gfx_arch=arch,
        memory_mib=vram,
        count=count,
        shared=False,
        mig_profile=None,
        support=amd_support(arch),
        fp8_flavour=amd_fp8_flavour(arch),
        known=False,
        derivation=derivation,
    )


def _amd_count(label_count: int | None, override: int | None, default: int) -> tuple[int, str]:
    if override is None and label_count is not None:
        return label_count, "the count-encoded AMD labels"
    return _count({}, None, override, default)


# ------------------------------------------------------------------------------------------------ public API


def _facts_from_spec(
    spec: GpuSpec, raw: str | None, product: ProductName, memory_mib: int, count: int, derivation: str
) -> GpuFacts:
    return GpuFacts(
        vendor=spec.vendor,
        key=spec.key,
        label_product=raw,
        family=spec.family,
        compute_capability=spec.compute_capability,
        gfx_arch=spec.gfx_arch,
        memory_mib=memory_mib,
        count=count,
        shared=product.shared,
        mig_profile=product.mig_profile,
        support=spec.support,
        fp8_flavour=spec.fp8_flavour,
        known=True,
        derivation=derivation,
    )


def _is_nvidia_node(labels: Mapping[str, str]) -> bool:
    present = labels.get(NV_PRESENT)
    return _has_any(labels, NVIDIA_FACT_KEYS) or (isinstance(present, str) and present.strip().casefold() == "true")


def gpu_facts_from_labels(labels: Mapping[str, str], *, count: int | None = None) -> GpuFacts | None:
    """GPU facts for a node from its labels; None when the node is not a GPU node.

    A node is an NVIDIA GPU node when it has any GFD fact label (product, family, compute capability, memory, count)
    or ``nvidia.com/gpu.present=true``; an AMD one when it has any ``amd.com/gpu.*`` fact label. ``count`` (e.g.
    from the node's allocatable ``nvidia.com/gpu`` / ``amd.com/gpu``) overrides the count label.

    Raises LabelError — and only LabelError — when the labels contradict each other or are too thin to plan with.
    """
    try:
        nvidia = _is_nvidia_node(labels)
        amd = _is_amd_node(labels)
        if nvidia and amd:
            raise LabelError("the node carries both NVIDIA (nvidia.com/gpu.*) and AMD (amd.com/gpu.*) GPU labels")
        if nvidia:
            return _nvidia_facts(labels, count)
        if amd:
            return _amd_facts(labels, count)
        return None
    except LabelError:
        raise
    except (TypeError, ValueError, AttributeError) as err:  # defensive: labels that are not str → str
        raise LabelError(f"unusable GPU labels: {err}") from err


def facts_for(name: str, count: int = 1) -> GpuFacts:
    """Facts for a GPU named by the user (``h100``, ``NVIDIA-H100-80GB-HBM3``, ``...-MIG-1g.10gb``, ``mi300x``).

    Raises UnknownGpu (a ValueError) for names not in the table.
    """
    spec = lookup(name)
    if count < 1:
        raise ValueError(f"GPU count {count} must be at least 1")
    product = split_product(name)
    if spec.vendor == "amd":
        product = ProductName(base=product.base, shared=False, mig_profile=None)
    memory = spec.memory_mib
    if product.mig_profile is not None:
        mig_mib = mig_memory_mib(product.mig_profile)
        if mig_mib is None:
            raise ValueError(f"MIG profile {product.mig_profile!r} names no memory size")
        memory = mig_mib
    derivation = f"table row {spec.key} from the name {name!r}; memory {memory} MiB; count {count} from the caller"
    return _facts_from_spec(spec, None, product, memory, count, derivation)


def _mig_capable(spec: GpuSpec) -> bool:
    # MIG exists on A100 and on every Hopper / Blackwell data-center part in the table; not on T4, A10G, L4, L40S.
    return spec.family in ("hopper", "blackwell") or spec.key.startswith("A100")


def node_labels_for(
    spec_key: str, count: int, *, shared: bool = False, mig_profile: str | None = None
) -> dict[str, str]:
    """The labels GFD (NVIDIA) or the AMD node labeller would put on a node with ``count`` GPUs of row ``spec_key``.

    ``shared`` renames the product ``-SHARED`` as GFD does with time-slicing; ``mig_profile`` (e.g. ``1g.10gb``)
    gives the MIG single-strategy view: product ``-MIG-<profile>`` and the slice's nominal memory. Raises UnknownGpu
    for an unknown key and ValueError for a count below 1 or MIG/sharing on AMD.
    """
    spec = by_key(spec_key)
    if count < 1:
        raise ValueError(f"GPU count {count} must be at least 1")
    if spec.vendor == "amd":
        if shared or mig_profile:
            raise ValueError("the AMD node labeller has no -SHARED or MIG product variants")
        return {
            AMD_DEVICE_ID: spec.device_ids[0],
            AMD_PRODUCT: spec.product,
            AMD_VRAM: spec.vram_label or f"{spec.memory_mib // 1024}G",
            AMD_FAMILY: "AI",
            AMD_CU_COUNT: str(spec.cu_count or 0),
        }
    assert spec.compute_capability is not None  # guaranteed for NVIDIA rows by the table loader
    product = spec.product
    memory = spec.memory_mib
    if mig_profile:
        mig_mib = mig_memory_mib(mig_profile)
        if mig_mib is None:
            raise ValueError(f"MIG profile {mig_profile!r} names no memory size")
        product += f"-MIG-{mig_profile}"
        memory = mig_mib
    if shared:
        product += "-SHARED"
    major, minor = spec.compute_capability
    return {
        NV_PRESENT: "true",
        NV_PRODUCT: product,
        NV_FAMILY: spec.family,
        NV_CC_MAJOR: str(major),
        NV_CC_MINOR: str(minor),
        NV_MEMORY: str(memory),
        NV_COUNT: str(count),
        NV_REPLICAS: "4" if shared else "1",
        NV_SHARING: "time-slicing" if shared else "none",
        NV_MIG_CAPABLE: "true" if _mig_capable(spec) else "false",
        NV_MIG_STRATEGY: "single" if mig_profile else "none",
    }


__all__ = [
    "GPU_TABLE",
    "GpuFacts",
    "LabelError",
    "facts_for",
    "gpu_facts_from_labels",
    "mig_memory_mib",
    "node_labels_for",
    "short_name",
]
