"""GGUF quantization types quantfleet produces (QuantizedModel schemes gguf-*) and their sizes.

Pure and import-light: the CRD, the planner and the calibration program read it.

Bits per weight are llama.cpp's own averages over a whole model (k-quant "mixes" keep some tensors at a higher type:
Q4_K_M stores attn_v and ffn_down of half the layers as Q6_K). They come from llama.cpp's quantize tool table
(tools/quantize/quantize.cpp QUANT_OPTIONS, Llama-3-8B: F16 14.96 GiB, Q8_0 7.96 GiB, Q5_K_M 5.33 GiB, Q4_K_M 4.58 GiB)
as size / F16 size x 16 bits; docs/llama-cpp.md keeps the table.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

GgufScheme = Literal["gguf-q8_0", "gguf-q4_k_m", "gguf-q5_k_m"]
GGUF_SCHEMES: Final[tuple[GgufScheme, ...]] = get_args(GgufScheme)

# scheme -> llama-quantize's type name (its argv spelling)
GGUF_TYPE: Final[dict[GgufScheme, str]] = {"gguf-q8_0": "Q8_0", "gguf-q4_k_m": "Q4_K_M", "gguf-q5_k_m": "Q5_K_M"}

# average bits per weight over the whole model, from llama.cpp's quantize table (see the module docstring)
GGUF_BITS_PER_WEIGHT: Final[dict[GgufScheme, float]] = {"gguf-q8_0": 8.51, "gguf-q4_k_m": 4.90, "gguf-q5_k_m": 5.70}

# the one file a GGUF checkpoint directory holds (written by the calibration program, served by llama-server)
GGUF_FILE: Final = "model.gguf"


def as_gguf(scheme: object) -> GgufScheme | None:
    """The GGUF scheme `scheme` names, or None when it is not one."""
    return next((s for s in GGUF_SCHEMES if s == scheme), None)
