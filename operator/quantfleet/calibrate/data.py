"""Calibration and held-out evaluation data, tokenized and packed into fixed-length blocks.

The recipe names a source: a Hugging Face dataset (`org/name`, optionally `:config` and
`@split`), a local `.txt` / `.jsonl` file, or `builtin:python-stdlib` (offline). Records
are either plain text or chat conversations (`messages`); when the tokenizer has a chat
template it is applied, to conversations and to plain text wrapped as one user turn, so
the model is calibrated on the input shape it will serve.

Documents are shuffled with the recipe's seed, tokenized and packed into blocks of
`max_seq_length` tokens. The first `num_samples` blocks calibrate; the held-out blocks
come from later documents only (no document contributes to both), so the perplexity
gate measures text the calibration never saw.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantfleet.calibrate.stdlib_text import stdlib_files

log = logging.getLogger("quantfleet.calibrate")

BUILTIN_STDLIB = "builtin:python-stdlib"
Record = str | list[dict[str, str]]


@dataclass(frozen=True)
class CalibrationData:
    calib: list[list[int]]
    heldout: list[list[int]]
    source: str
    documents: int

    @property
    def calib_tokens(self) -> int:
        return sum(len(b) for b in self.calib)

    @property
    def heldout_tokens(self) -> int:
        return sum(len(b) for b in self.heldout)


def heldout_blocks_for(num_samples: int) -> int:
    """How many held-out blocks to evaluate perplexity on: 1/8 of the calibration set, 4..64."""
    return max(4, min(64, num_samples // 8))


def _stdlib_records(seed: int) -> Iterator[Record]:
    files = stdlib_files()
    random.Random(seed).shuffle(files)
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if len(text) >= 200:
            yield text


def _record_from_obj(obj: Any) -> Record | None:
    if isinstance(obj, dict):
        if isinstance(obj.get("messages"), list):
            return [{"role": str(m["role"]), "content": str(m["content"])} for m in obj["messages"]]
        for key in ("text", "content", "prompt"):
            if isinstance(obj.get(key), str):
                return str(obj[key])
    if isinstance(obj, str):
        return obj
    return None


def _local_records(path: Path, seed: int) -> Iterator[Record]:
    if path.suffix == ".jsonl":
        records = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            rec = _record_from_obj(json.loads(line))
            if rec is None:
                raise ValueError(f"{path}:{n}: expected an object with 'text' or 'messages'")
            records.append(rec)
    else:
        text = path.read_text(encoding="utf-8")
        records = [p for p in text.split("\n\n") if p.strip()]
    random.Random(seed).shuffle(records)
    yield from records


def _hf_records(spec: str, seed: int) -> Iterator[Record]:
    import os

    from datasets import load_dataset

    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    ds = load_dataset(name, config or None, split=split or "train", streaming=True, token=os.environ.get("HF_TOKEN"))
    ds = ds.shuffle(seed=seed, buffer_size=10_000)
    for row in ds:
        rec = _record_from_obj(row)
        if rec is not None:
            yield rec


def iter_records(dataset: str, seed: int) -> Iterator[Record]:
    if dataset == BUILTIN_STDLIB:
        return _stdlib_records(seed)
    path = Path(dataset)
    if path.suffix in (".txt", ".jsonl") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"calibration dataset {dataset} not found")
        return _local_records(path, seed)
    return _hf_records(dataset, seed)


def render(record: Record, tokenizer: Any) -> str:
    """Text for one record: chat template when the tokenizer has one, plain text otherwise."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if isinstance(record, list):
        if has_template:
            return str(tokenizer.apply_chat_template(record, tokenize=False))
        return "\n".join(m["content"] for m in record)
    if has_template:
        return str(tokenizer.apply_chat_template([{"role": "user", "content": record}], tokenize=False))
    return record


def build_calibration_data(
    tokenizer: Any, dataset: str, num_samples: int, max_seq_length: int, seed: int, heldout_blocks: int | None = None
) -> CalibrationData:
    """Pack documents into `num_samples` calibration blocks, then held-out blocks from later documents."""
    n_eval = heldout_blocks if heldout_blocks is not None else heldout_blocks_for(num_samples)
    eos = tokenizer.eos_token_id
    calib: list[list[int]] = []
    heldout: list[list[int]] = []
    buf: list[int] = []
    docs = 0
    for record in iter_records(dataset, seed):
        ids = list(tokenizer(render(record, tokenizer), add_special_tokens=False)["input_ids"])
        if eos is not None:
            ids.append(int(eos))
        docs += 1
        buf.extend(ids)
        target = calib if len(calib) < num_samples else heldout
        while len(buf) >= max_seq_length and len(target) < (num_samples if target is calib else n_eval):
            target.append(buf[:max_seq_length])
            buf = buf[max_seq_length:]
        if target is calib and len(calib) >= num_samples:
            buf = []  # the document that filled the calibration set does not leak into held-out blocks
        if len(calib) >= num_samples and len(heldout) >= n_eval:
            break
    if not calib:
        raise ValueError(f"calibration dataset {dataset} produced no block of {max_seq_length} tokens")
    if len(calib) < num_samples:
        log.warning("dataset=%s gave %d of %d calibration samples", dataset, len(calib), num_samples)
    if not heldout:
        raise ValueError(f"calibration dataset {dataset} left no held-out text for the perplexity check")
    log.info(
        "calibration data dataset=%s documents=%d calib_samples=%d heldout_samples=%d seq_len=%d",
        dataset,
        docs,
        len(calib),
        len(heldout),
        max_seq_length,
    )
    return CalibrationData(calib=calib, heldout=heldout, source=dataset, documents=docs)
