"""Checksum, atomic publication and the compact termination message (pure Python, no torch)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from quantfleet.api.manifest import (
    TERMINATION_MESSAGE_LIMIT,
    ExpertCoverage,
    ExpertLayerCoverage,
    ResultManifest,
    parse_manifest,
)
from quantfleet.calibrate.publish import (
    MANIFEST_NAME,
    checksum,
    compact_json,
    publish,
    staging_dir,
    write_termination_message,
)


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_checksum_is_sha256_over_sorted_name_and_file_digest(tmp_path: Path) -> None:
    files = {"b.safetensors": b"weights", "a/config.json": b"{}", "tokenizer.json": b"tok"}
    root = _tree(tmp_path / "ckpt", files)
    (root / MANIFEST_NAME).write_text("ignored: the manifest cannot hash itself")
    expected = hashlib.sha256()
    for rel in sorted(files):
        expected.update(f"{rel}\0{hashlib.sha256(files[rel]).hexdigest()}\n".encode())
    assert checksum(root) == (expected.hexdigest(), sum(len(v) for v in files.values()))


def test_checksum_changes_with_a_renamed_or_edited_file(tmp_path: Path) -> None:
    root = _tree(tmp_path / "c", {"x.bin": b"1", "y.bin": b"2"})
    before = checksum(root)
    (root / "y.bin").rename(root / "z.bin")
    renamed = checksum(root)
    (root / "z.bin").write_bytes(b"3")
    assert len({before[0], renamed[0], checksum(root)[0]}) == 3


def test_publish_replaces_atomically_and_leaves_no_staging(tmp_path: Path) -> None:
    dest = tmp_path / "models" / "m-fp8"
    _tree(dest, {"old.bin": b"old"})
    staged = staging_dir(str(dest))
    assert staged.parent == dest.parent and staged.name.startswith(".m-fp8.partial-")
    _tree(staged, {"new.bin": b"new", MANIFEST_NAME: b"{}"})
    publish(staged, str(dest))
    assert sorted(p.name for p in dest.iterdir()) == sorted([MANIFEST_NAME, "new.bin"])
    assert [p.name for p in dest.parent.iterdir()] == ["m-fp8"]


def test_pvc_uri_maps_under_the_pvc_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_PVC_ROOT", str(tmp_path))
    staged = staging_dir("pvc://models/qwen/fp8")
    _tree(staged, {"w.bin": b"w", MANIFEST_NAME: b"{}"})
    publish(staged, "pvc://models/qwen/fp8")
    assert (tmp_path / "models" / "qwen" / "fp8" / "w.bin").read_bytes() == b"w"


def _manifest(layers: int) -> ResultManifest:
    cov = ExpertCoverage(
        num_experts=128,
        routed_min=0,
        calibrated_min=4096,
        all_experts=True,
        layers=[
            ExpertLayerCoverage(layer=i, min=4096 - (i % 7), median=4096.0, max=4096, routed_min=i % 5)
            for i in range(layers)
        ],
    )
    return ResultManifest(
        recipe_hash="ab" * 32,
        checkpoint_uri="pvc://models/x",
        format="compressed-tensors",
        scheme="nvfp4",
        tool="llm-compressor",
        tool_version="0.14.0.1",
        bytes=10,
        sha256="0" * 64,
        seconds=1.0,
        expert_coverage=cov,
    )


def test_compact_json_fits_the_termination_message_and_keeps_the_worst_layers() -> None:
    big = _manifest(94)
    assert len(big.to_json()) > TERMINATION_MESSAGE_LIMIT
    text = compact_json(big)
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = parse_manifest(text)
    assert parsed.expert_coverage is not None
    kept = parsed.expert_coverage.layers
    assert 0 < len(kept) < 94
    dropped_min = min(lc.min for lc in big.expert_coverage.layers if lc.layer not in {k.layer for k in kept})  # type: ignore[union-attr]
    assert max(lc.min for lc in kept) <= dropped_min  # the layers kept are the least-covered ones
    assert parsed.sha256 == big.sha256 and parsed.expert_coverage.calibrated_min == 4096


def test_small_manifest_is_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = _manifest(2)
    monkeypatch.setenv("QUANTFLEET_TERMINATION_LOG", str(tmp_path / "term"))
    write_termination_message(compact_json(small))
    assert json.loads((tmp_path / "term").read_text()) == json.loads(small.to_json())


def test_s3_destination_without_boto3_fails_before_calibrating() -> None:
    import importlib.util

    from quantfleet.calibrate.publish import check_destination
    from quantfleet.calibrate.source import SourceError

    if importlib.util.find_spec("boto3") is not None:
        pytest.skip("boto3 is installed here; the missing-boto3 path cannot be exercised")
    with pytest.raises(SourceError, match="s3:// needs boto3"):
        check_destination("s3://bucket/models/x")
    check_destination("/tmp/anywhere")  # local paths need nothing
