"""Small MoE language models built locally, for tests and the GPU bench.

There is no model hub in CI or on the bench machine, and a calibration test must not
depend on one. `build_tiny_moe` creates a Qwen3-MoE-style (or Mixtral-style) causal LM
with random weights and a byte-level BPE tokenizer trained on Python's stdlib sources,
and saves both with `save_pretrained`, so the result is an ordinary Hugging Face model
directory that `quantfleet calibrate` can load like any other `source_uri`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from quantfleet.calibrate.stdlib_text import stdlib_documents

Family = Literal["qwen3_moe", "mixtral"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


@dataclass(frozen=True)
class TinyMoESpec:
    """Shape of the model. Defaults give ~1.5 M parameters (~3 MB in BF16).

    Dimensions are multiples of 128 so every scheme's block/group size (FP8 128x128
    blocks, INT4 group 128, MXFP4 32, NVFP4 16) divides them.
    """

    family: Family = "qwen3_moe"
    vocab_size: int = 1024
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    num_experts: int = 8
    top_k: int = 2
    moe_intermediate_size: int = 128
    max_position_embeddings: int = 2048
    seed: int = 0
    tokenizer_chars: int = 2_000_000
    chat_template: bool = True


def train_tokenizer(vocab_size: int, max_chars: int, chat_template: bool) -> Any:
    """A byte-level BPE trained on stdlib sources, wrapped as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(stdlib_documents(max_chars=max_chars), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|pad|>",
        model_max_length=1 << 20,
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(spec: TinyMoESpec, tokenizer: Any) -> Any:
    """Random-init causal LM of the requested family (float32 weights, saved as BF16)."""
    import torch
    from transformers import AutoModelForCausalLM, MixtralConfig, Qwen3MoeConfig

    torch.manual_seed(spec.seed)
    common: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        num_experts_per_tok=spec.top_k,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config: Any
    if spec.family == "qwen3_moe":
        config = Qwen3MoeConfig(
            **common,
            intermediate_size=spec.moe_intermediate_size,
            moe_intermediate_size=spec.moe_intermediate_size,
            num_experts=spec.num_experts,
            norm_topk_prob=True,
        )
    elif spec.family == "mixtral":
        config = MixtralConfig(
            **common, intermediate_size=spec.moe_intermediate_size, num_local_experts=spec.num_experts
        )
    else:  # pragma: no cover - Literal guards it
        raise ValueError(f"unknown family {spec.family}")
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def build_tiny_moe(
    out_dir: str | Path, spec: TinyMoESpec | None = None, model: Any | None = None, tokenizer: Any | None = None
) -> Path:
    """Create (or, given `model` and its `tokenizer`, save a trained) MoE model + tokenizer in `out_dir`."""
    import torch

    spec = spec or TinyMoESpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:
        tokenizer = train_tokenizer(spec.vocab_size, spec.tokenizer_chars, spec.chat_template)
    if model is None:
        model = build_model(spec, tokenizer)
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "quantfleet-tiny.json").write_text(json.dumps(asdict(spec), indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="build a tiny random-init MoE model directory")
    p.add_argument("out_dir")
    p.add_argument("--family", choices=["qwen3_moe", "mixtral"], default="qwen3_moe")
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--layers", type=int, default=2)
    a = p.parse_args(argv)
    path = build_tiny_moe(
        a.out_dir, TinyMoESpec(family=a.family, num_experts=a.experts, top_k=a.top_k, num_layers=a.layers)
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
