"""Where the base model comes from and where the checkpoint goes: URI -> local path.

`hf://org/name@rev` downloads through huggingface_hub with `HF_TOKEN` from the
environment; `pvc://claim/path` is the claim mounted under `QUANTFLEET_PVC_ROOT`
(default /mnt/pvc, the calibration Job mounts each claim at /mnt/pvc/<claim>);
`s3://bucket/key` needs boto3; anything else is a local path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from quantfleet.api.common import parse_pvc_uri

PVC_ROOT_ENV = "QUANTFLEET_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"


class SourceError(RuntimeError):
    pass


def pvc_path(uri: str) -> Path:
    try:
        claim, sub = parse_pvc_uri(uri)
    except ValueError as exc:
        raise SourceError(str(exc)) from exc
    return Path(os.environ.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT)) / claim / sub


def boto3_client() -> object:
    try:
        import boto3
    except ImportError as exc:
        raise SourceError("s3:// needs boto3, which this image does not have (pip install boto3)") from exc
    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise SourceError(f"{uri}: expected s3://<bucket>/<key>")
    return bucket, key.strip("/")


def resolve_source(uri: str) -> Path:
    """A local directory holding config.json, weights and tokenizer for `uri`."""
    if uri.startswith("hf://"):
        from huggingface_hub import snapshot_download

        repo, _, rev = uri.removeprefix("hf://").partition("@")
        return Path(
            snapshot_download(
                repo_id=repo,
                revision=rev or None,
                token=os.environ.get("HF_TOKEN"),
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py", "*.tiktoken"],
            )
        )
    if uri.startswith("pvc://"):
        path = pvc_path(uri)
    elif uri.startswith("s3://"):
        client = boto3_client()
        bucket, prefix = split_s3(uri)
        path = Path(tempfile.mkdtemp(prefix="quantfleet-src-"))
        paginator = client.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix + "/"):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) + 1 :]
                (path / rel).parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, obj["Key"], str(path / rel))  # type: ignore[attr-defined]
    else:
        path = Path(uri)
    if not (path / "config.json").is_file():
        raise SourceError(f"{uri}: no config.json at {path}")
    return path
