"""Checksum, atomic publication and the result manifest.

A checkpoint is never half-visible: it is written to a hidden temporary directory
beside the destination (same filesystem) and renamed into place in one step; on s3://
the manifest object is uploaded last, after every weight file. The checksum is a
sha256 over the sorted list of (relative file name, file sha256), the manifest itself
excluded. The manifest goes beside the checkpoint (full) and to the container's
termination-message path (compact: at most 4096 bytes, per-layer coverage trimmed to
the worst layers when needed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from quantfleet.api.manifest import TERMINATION_MESSAGE_LIMIT, ResultManifest
from quantfleet.calibrate.source import boto3_client, pvc_path, split_s3

MANIFEST_NAME = "quantfleet-manifest.json"
TERMINATION_LOG_ENV = "QUANTFLEET_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_files(root: Path) -> list[Path]:
    return sorted(
        (p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME),
        key=lambda p: p.relative_to(root).as_posix(),
    )


def checksum(root: Path) -> tuple[str, int]:
    """(sha256 over sorted (relative name, file sha256), total bytes) of a checkpoint directory."""
    h = hashlib.sha256()
    total = 0
    for p in checkpoint_files(root):
        h.update(f"{p.relative_to(root).as_posix()}\0{file_sha256(p)}\n".encode())
        total += p.stat().st_size
    return h.hexdigest(), total


def local_destination(output_uri: str) -> Path | None:
    if output_uri.startswith("s3://"):
        return None
    if output_uri.startswith("pvc://"):
        return pvc_path(output_uri)
    return Path(output_uri)


def check_destination(output_uri: str) -> None:
    """Fail before hours of calibration, not after, when the checkpoint could not be published."""
    if output_uri.startswith("s3://"):
        boto3_client()
        split_s3(output_uri)


def staging_dir(output_uri: str) -> Path:
    """Temporary directory on the destination's filesystem (so the final rename is atomic)."""
    dest = local_destination(output_uri)
    if dest is None:
        return Path(tempfile.mkdtemp(prefix="quantfleet-ckpt-"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))


def publish(staged: Path, output_uri: str) -> None:
    """Move a complete staged checkpoint (manifest included) to `output_uri` atomically."""
    dest = local_destination(output_uri)
    if dest is None:
        _upload_s3(staged, output_uri)
        shutil.rmtree(staged, ignore_errors=True)
        return
    old: Path | None = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.replaced-{int(time.time())}-{os.getpid()}")
        os.rename(dest, old)
    os.rename(staged, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _upload_s3(staged: Path, output_uri: str) -> None:
    client = boto3_client()
    bucket, prefix = split_s3(output_uri)
    files = checkpoint_files(staged)
    for p in files:  # weights first, manifest last: a reader that sees the manifest sees a whole checkpoint
        client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(staged).as_posix()}")  # type: ignore[attr-defined]
    client.upload_file(str(staged / MANIFEST_NAME), bucket, f"{prefix}/{MANIFEST_NAME}")  # type: ignore[attr-defined]


def compact_json(manifest: ResultManifest, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """The manifest as JSON within `limit` bytes: per-layer coverage trimmed to the worst layers if needed."""
    text = manifest.to_json()
    if len(text.encode()) <= limit or manifest.expert_coverage is None:
        return text
    layers = sorted(manifest.expert_coverage.layers, key=lambda lc: (lc.min, lc.layer))
    for keep in range(len(layers), -1, -1):
        cov = manifest.expert_coverage.model_copy(update={"layers": sorted(layers[:keep], key=lambda lc: lc.layer)})
        text = manifest.model_copy(update={"expert_coverage": cov}).to_json()
        if len(text.encode()) <= limit:
            return text
    raise ValueError("result manifest does not fit the termination message even without per-layer coverage")


def termination_log_path() -> Path:
    return Path(os.environ.get(TERMINATION_LOG_ENV, DEFAULT_TERMINATION_LOG))


def write_termination_message(text: str) -> None:
    """Best effort: the path exists in a pod; elsewhere (a laptop) a missing directory is not an error."""
    path = termination_log_path()
    data = text.encode()[:TERMINATION_MESSAGE_LIMIT]
    try:
        path.write_bytes(data)
    except OSError:
        if path.parent.is_dir():
            raise
