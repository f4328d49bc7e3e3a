"""The GPU capability table: loads gpus.yaml into frozen GpuSpec rows and resolves any name a user or a node gives.

Why this module exists: every decision quantfleet makes about precision starts from "which GPU is this and what can
it do". The facts are data (gpus.yaml, one row per GPU); this module turns them into typed, validated rows once, at
import, and answers ``lookup(name)`` for table keys, short names, GFD product labels (including their ``-SHARED`` and
``-MIG-<profile>`` suffixes), NVML names with spaces and AMD product names / device ids.

Pure: the only I/O is reading the packaged gpus.yaml.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import yaml

from quantfleet.hardware.support import (
    FORMATS,
    ComputeCapability,
    Family,
    FormatSupport,
    Fp8Flavour,
    Support,
    SupportAccessors,
    Vendor,
    as_family,
)


class UnknownGpu(ValueError):
    """A GPU name that matches no row of the table (or matches several)."""


class TableError(RuntimeError):
    """gpus.yaml is malformed: a packaging bug, never a user error."""


@dataclass(frozen=True)
class GpuSpec(SupportAccessors):
    """One row of the GPU table.

    ``products`` are the strings the node labellers publish (GFD ``nvidia.com/gpu.product`` / AMD
    ``amd.com/gpu.product-name``); the first is canonical. ``memory_mib`` is per GPU, as the labeller reports it.
    """

    key: str
    vendor: Vendor
    name: str
    aliases: tuple[str, ...]
    products: tuple[str, ...]
    device_ids: tuple[str, ...]
    memory_mib: int
    compute_capability: ComputeCapability | None
    gfx_arch: str | None
    family: Family
    support: FormatSupport
    fp8_flavour: Fp8Flavour
    interconnect: str
    gpus_per_node: int
    vram_label: str | None
    cu_count: int | None
    inferred: tuple[str, ...]
    notes: str

    @property
    def memory_gib(self) -> float:
        """Per-GPU memory in GiB (from memory_mib)."""
        return self.memory_mib / 1024

    @property
    def product(self) -> str:
        """Canonical product label."""
        return self.products[0]


# --------------------------------------------------------------------------------------------------- loading


def _req(row: Mapping[str, Any], field: str, kind: type, where: str) -> Any:
    value = row.get(field)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TableError(f"{where}: field {field!r} must be {kind.__name__}, got {value!r}")
    return value


def _opt(row: Mapping[str, Any], field: str, kind: type, where: str) -> Any:
    return None if row.get(field) is None else _req(row, field, kind, where)


def _strs(row: Mapping[str, Any], field: str, where: str, *, required: bool) -> tuple[str, ...]:
    value = row.get(field, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or (required and not value):
        raise TableError(f"{where}: field {field!r} must be a {'non-empty ' if required else ''}list of strings")
    return tuple(value)


def _parse_cc(text: str, where: str) -> ComputeCapability:
    match = re.fullmatch(r"(\d+)\.(\d+)", text)
    if not match:
        raise TableError(f"{where}: compute_capability {text!r} is not 'major.minor'")
    return int(match.group(1)), int(match.group(2))


def _parse_support(raw: Any, where: str) -> FormatSupport:
    if not isinstance(raw, dict) or set(raw) != set(FORMATS):
        raise TableError(f"{where}: support must map exactly {list(FORMATS)}")
    try:
        return FormatSupport.from_levels({fmt: Support(raw[fmt]) for fmt in FORMATS})
    except ValueError as err:
        raise TableError(f"{where}: {err}") from err


_ROW_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "key",
        "vendor",
        "name",
        "aliases",
        "products",
        "device_ids",
        "memory_mib",
        "compute_capability",
        "gfx_arch",
        "family",
        "support",
        "fp8_flavour",
        "interconnect",
        "gpus_per_node",
        "vram_label",
        "cu_count",
        "inferred",
        "notes",
    }
)


def spec_from_row(row: Mapping[str, Any]) -> GpuSpec:
    """Validate one gpus.yaml row into a GpuSpec (TableError with the row key on anything malformed)."""
    where = f"gpus.yaml row {row.get('key')!r}"
    unknown = set(row) - _ROW_FIELDS
    if unknown:
        raise TableError(f"{where}: unknown fields {sorted(unknown)}")
    vendor = _req(row, "vendor", str, where)
    if vendor not in ("nvidia", "amd"):
        raise TableError(f"{where}: vendor must be nvidia or amd")
    family = as_family(_req(row, "family", str, where))
    if family is None or family == "unknown":
        raise TableError(f"{where}: unknown family {row.get('family')!r}")
    flavour = _req(row, "fp8_flavour", str, where)
    if flavour not in ("e4m3fn", "e4m3fnuz"):
        raise TableError(f"{where}: fp8_flavour must be e4m3fn or e4m3fnuz")
    cc_text = _opt(row, "compute_capability", str, where)
    gfx_arch = _opt(row, "gfx_arch", str, where)
    device_ids = _strs(row, "device_ids", where, required=False)
    if vendor == "nvidia" and (cc_text is None or gfx_arch is not None or device_ids):
        raise TableError(f"{where}: NVIDIA rows need compute_capability and no gfx_arch/device_ids")
    if vendor == "amd" and (cc_text is not None or gfx_arch is None or not device_ids):
        raise TableError(f"{where}: AMD rows need gfx_arch and device_ids and no compute_capability")
    inferred = _strs(row, "inferred", where, required=False)
    if not set(inferred) <= _ROW_FIELDS:
        raise TableError(f"{where}: inferred names unknown fields {sorted(set(inferred) - _ROW_FIELDS)}")
    memory_mib = _req(row, "memory_mib", int, where)
    gpus_per_node = _req(row, "gpus_per_node", int, where)
    if memory_mib <= 0 or gpus_per_node <= 0:
        raise TableError(f"{where}: memory_mib and gpus_per_node must be positive")
    return GpuSpec(
        key=_req(row, "key", str, where),
        vendor="nvidia" if vendor == "nvidia" else "amd",
        name=_req(row, "name", str, where),
        aliases=_strs(row, "aliases", where, required=True),
        products=_strs(row, "products", where, required=True),
        device_ids=tuple(d.lower() for d in device_ids),
        memory_mib=memory_mib,
        compute_capability=None if cc_text is None else _parse_cc(cc_text, where),
        gfx_arch=gfx_arch,
        family=family,
        support=_parse_support(row.get("support"), where),
        fp8_flavour="e4m3fn" if flavour == "e4m3fn" else "e4m3fnuz",
        interconnect=_req(row, "interconnect", str, where),
        gpus_per_node=gpus_per_node,
        vram_label=_opt(row, "vram_label", str, where),
        cu_count=_opt(row, "cu_count", int, where),
        inferred=inferred,
        notes=_req(row, "notes", str, where),
    )


def load_table(text: str) -> tuple[GpuSpec, ...]:
    """Parse gpus.yaml text into rows, checking that keys are unique."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("gpus"), list):
        raise TableError("gpus.yaml must be a mapping with a 'gpus' list")
    rows = tuple(spec_from_row(row) if isinstance(row, dict) else _bad_row(row) for row in doc["gpus"])
    keys = [spec.key for spec in rows]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise TableError(f"gpus.yaml: duplicate keys {duplicates}")
    return rows


def _bad_row(row: object) -> GpuSpec:
    raise TableError(f"gpus.yaml: every row must be a mapping, got {row!r}")


def _packaged_table_text() -> str:
    return resources.files("quantfleet.hardware").joinpath("gpus.yaml").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------- names

_MIG_SUFFIX: Final = re.compile(r"-MIG-(?P<profile>[0-9A-Za-z.+]+)$", re.IGNORECASE)
_SHARED_SUFFIX: Final = re.compile(r"-SHARED$", re.IGNORECASE)


@dataclass(frozen=True)
class ProductName:
    """A GFD product label split into the base product and its sharing / MIG decorations."""

    base: str
    shared: bool
    mig_profile: str | None


def split_product(label: str) -> ProductName:
    """Split ``NVIDIA-A100-SXM4-80GB-MIG-1g.10gb-SHARED`` into base, shared and MIG profile.

    GFD appends ``-MIG-<profile>`` under the MIG single strategy and ``-SHARED`` when time-slicing / MPS renames the
    resource; both may appear, ``-SHARED`` last.
    """
    text = label.strip()
    shared = bool(_SHARED_SUFFIX.search(text))
    text = _SHARED_SUFFIX.sub("", text)
    mig = _MIG_SUFFIX.search(text)
    profile = mig.group("profile") if mig else None
    if mig:
        text = text[: mig.start()]
    return ProductName(base=text, shared=shared, mig_profile=profile)


def normalize(name: str) -> str:
    """Case-, space- and underscore-insensitive form used for matching names."""
    return re.sub(r"[\s_]+", "-", name.strip()).casefold()


def _names_of(spec: GpuSpec) -> tuple[str, ...]:
    ids = tuple(f"0x{d}" for d in spec.device_ids)
    return (spec.key, *spec.aliases, *spec.products, *spec.device_ids, *ids)


def build_index(table: tuple[GpuSpec, ...]) -> dict[str, GpuSpec]:
    """Normalized name → row. A name claimed by two rows is a table bug (TableError)."""
    index: dict[str, GpuSpec] = {}
    for spec in table:
        for name in _names_of(spec):
            norm = normalize(name)
            other = index.get(norm)
            if other is not None and other.key != spec.key:
                raise TableError(f"gpus.yaml: name {name!r} is claimed by both {other.key} and {spec.key}")
            index[norm] = spec
    return index


GPU_TABLE: Final[tuple[GpuSpec, ...]] = load_table(_packaged_table_text())
_INDEX: Final[dict[str, GpuSpec]] = build_index(GPU_TABLE)
_BY_KEY: Final[dict[str, GpuSpec]] = {spec.key: spec for spec in GPU_TABLE}


def _close_keys(norm: str) -> list[str]:
    """Keys of the rows whose names start with, or look like, ``norm`` (best first)."""
    key_of: dict[str, str] = {}
    for spec in GPU_TABLE:
        for name in (spec.key, *spec.aliases, *spec.products):
            key_of.setdefault(normalize(name), spec.key)
    prefixed = [key_of[n] for n in key_of if len(norm) >= 2 and n.startswith(norm)]
    if prefixed:  # "a100" → the A100 rows only, not every name that merely looks similar
        return list(dict.fromkeys(prefixed))[:6]
    close = [key_of[n] for n in difflib.get_close_matches(norm, list(key_of), n=8, cutoff=0.6)]
    return list(dict.fromkeys(close))[:6]


def find(name: str) -> GpuSpec | None:
    """The row a name resolves to, or None. Accepts everything ``lookup`` accepts."""
    norm = normalize(split_product(name).base) if name.strip() else ""
    return _INDEX.get(norm) or _INDEX.get(normalize(name))


def lookup(name: str) -> GpuSpec:
    """Resolve a table key, short name (case-insensitive), GFD product label (``-SHARED`` / ``-MIG-<profile>``
    stripped), NVML name with spaces, AMD product name or AMD device id to its table row.

    Raises UnknownGpu, listing the closest names, when nothing (or more than one row, as for a bare "a100") matches.
    """
    spec = find(name)
    if spec is not None:
        return spec
    norm = normalize(split_product(name).base)
    close = _close_keys(norm)
    if close:
        hint = f"did you mean {' or '.join(close)}?"
    else:
        hint = f"known GPUs: {', '.join(spec.key for spec in GPU_TABLE)}"
    raise UnknownGpu(f"unknown GPU {name!r}; {hint}")


def by_key(key: str) -> GpuSpec:
    """The row with exactly this key (UnknownGpu otherwise). Use ``lookup`` for user input."""
    spec = _BY_KEY.get(key)
    if spec is None:
        raise UnknownGpu(f"no GPU table row with key {key!r}; keys: {', '.join(sorted(_BY_KEY))}")
    return spec
