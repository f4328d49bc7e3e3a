"""quantfleet.hardware: the GPU capability table (data) and node-label parsing (pure).

Why this package exists: every precision decision starts from "which GPU is this, and what can vLLM do with each
quantized format on it". gpus.yaml holds those facts once; ``lookup`` resolves any name to a row;
``gpu_facts_from_labels`` turns a node's GPU Feature Discovery / AMD labeller labels into explained ``GpuFacts``.
No kopf, no Kubernetes client, no I/O beyond reading the packaged gpus.yaml.
"""

from quantfleet.hardware.labels import (
    GpuFacts,
    LabelError,
    facts_for,
    gpu_facts_from_labels,
    node_labels_for,
    short_name,
)
from quantfleet.hardware.support import (
    FORMATS,
    Family,
    Format,
    FormatSupport,
    Fp8Flavour,
    Support,
    Vendor,
    support_reason,
)
from quantfleet.hardware.table import GPU_TABLE, GpuSpec, UnknownGpu, by_key, lookup

__all__ = [
    "FORMATS",
    "GPU_TABLE",
    "Family",
    "Format",
    "FormatSupport",
    "Fp8Flavour",
    "GpuFacts",
    "GpuSpec",
    "LabelError",
    "Support",
    "UnknownGpu",
    "Vendor",
    "by_key",
    "facts_for",
    "gpu_facts_from_labels",
    "lookup",
    "node_labels_for",
    "short_name",
    "support_reason",
]
