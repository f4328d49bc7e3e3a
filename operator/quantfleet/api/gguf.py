"""GGUF checkpoints (llama.cpp): the quantization types quantfleet makes and what they cost in bytes.

Pure data for capacity planning of llama-server pools: bytes of weights = parameters x bits / 8 (plus the tensors
llama.cpp keeps in F32: norms, a few KiB). Sources, both in the pinned llama.cpp (versions.toml [llama-cpp]):

- GGML_TYPE_BITS: one tensor type, exact, from the block structs and their static_asserts in
  ggml/src/ggml-common.h (bits = 8 x sizeof(block) / weights per block). Q8_0: 32 weights in one fp16 scale + 32
  int8 = 34 B -> 8.5. Q4_K: 256 weights in 2 fp16 + 12 B of 6-bit scales + 128 B of nibbles = 144 B -> 4.5.
  Q5_K: Q4_K + 32 B of high bits = 176 B -> 5.5. Q6_K: 128 + 64 + 16 + 2 = 210 B -> 6.5625.
- GGUF_BITS_PER_WEIGHT: a whole file of one llama-quantize preset. The _M mixes keep some tensors in a wider type
  (Q4_K_M: half of attn_v / ffn_down and the output matrix in Q6_K), so their average is above their base type's.
  Taken from llama-quantize's own table (tools/quantize/quantize.cpp QUANT_OPTIONS: "4.58G ... @ Llama-3-8B",
  GiB for Llama-3-8B's 8.03e9 parameters): bits = GiB x 2^30 x 8 / 8.03e9, rounded to 2 places. Q8_0 comes out
  at 8.52, its exact type bits plus the F32 norms, which checks the reading. F16/BF16 are their type bits.
"""

from __future__ import annotations

from typing import Final, Literal

from quantfleet.api.recipe import GGUF_SCHEMES, GgufScheme

GgufType = Literal["F16", "BF16", "Q8_0", "Q4_K_M", "Q5_K_M"]

GGML_TYPE_BITS: Final[dict[str, float]] = {
    "F32": 32.0,
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.5625,
    "Q5_K": 5.5,
    "Q4_K": 4.5,
}

GGUF_BITS_PER_WEIGHT: Final[dict[GgufType, float]] = {
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,  # 7.96 GiB @ Llama-3-8B
    "Q5_K_M": 5.70,  # 5.33 GiB @ Llama-3-8B (Q5_K + Q6_K)
    "Q4_K_M": 4.90,  # 4.58 GiB @ Llama-3-8B (Q4_K + Q6_K)
}

# scheme -> the llama-quantize type it is made with (api.schemes.LLAMA_CPP makes its tool presets from it)
SCHEME_GGUF_TYPE: Final[dict[GgufScheme, GgufType]] = {
    "gguf-q8_0": "Q8_0",
    "gguf-q4_k_m": "Q4_K_M",
    "gguf-q5_k_m": "Q5_K_M",
}

# k-quant mixes: llama-quantize spends the bits per tensor better with an importance matrix (llama-imatrix over
# calibration text). Q8_0 is round-to-nearest per block of 32 with one scale and nothing to choose: llama-quantize
# ignores an imatrix for it, so calibrate.gguf does not compute one.
IMATRIX_TYPES: Final[frozenset[GgufType]] = frozenset({"Q4_K_M", "Q5_K_M"})

# The checkpoint file inside a GGUF checkpoint directory (one file; llama-server --model points at it).
GGUF_FILE: Final = "model.gguf"


def weight_bytes(parameters: int, gguf_type: GgufType) -> int:
    """Bytes of a GGUF file of `parameters` weights in `gguf_type` (the file-level average; headers not counted)."""
    return int(parameters * GGUF_BITS_PER_WEIGHT[gguf_type] / 8)


def as_gguf(scheme: object) -> GgufScheme | None:
    """The GGUF scheme `scheme` names, or None when it is not one."""
    return next((s for s in GGUF_SCHEMES if s == scheme), None)
