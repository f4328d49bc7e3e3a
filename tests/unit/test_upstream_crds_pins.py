"""Upstream CRDs come from pinned, hash-verified module zips (quantfleet_dev.sandbox.upstream_crds)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from quantfleet import versions
from quantfleet_dev.sandbox import paths, upstream_crds

KEDA = upstream_crds.UPSTREAMS["keda"]
# what Go's x/mod/sumdb/dirhash.HashZip(zip, Hash1) returns for module_zip(m@v1.0.0/{b,a}.txt) below (x/mod v0.30.0)
H1_AB = "h1:o78mkBC8IDuwnDb/NRJMxq45LGnmCypu9z+BxNq1wT4="


def module_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def test_h1_hash_matches_go() -> None:
    data = module_zip({"m@v1.0.0/b.txt": b"b\n", "m@v1.0.0/a.txt": b"a\n"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert upstream_crds.h1_hash(archive) == H1_AB


def test_every_upstream_is_pinned_with_a_hash() -> None:
    for name in upstream_crds.UPSTREAMS:
        assert versions.get(f"{name}.version").startswith("v")
        assert versions.get(f"{name}.sum").startswith("h1:") and versions.get(f"{name}.sum").endswith("=")


def test_module_path_escaping() -> None:
    assert upstream_crds.escape_module_path("github.com/Azure/go-autorest") == "github.com/!azure/go-autorest"


def test_select_takes_matching_files_of_the_directory_only() -> None:
    prefix = f"{KEDA.module}@{KEDA.version}/config/crd/bases/"
    names = [
        prefix + "keda.sh_scaledobjects.yaml",
        prefix + "eventing.keda.sh_cloudeventsources.yaml",
        prefix + "sub/keda.sh_nested.yaml",
        f"{KEDA.module}@{KEDA.version}/keda.sh_elsewhere.yaml",
    ]
    assert upstream_crds.select(KEDA, names) == [prefix + "keda.sh_scaledobjects.yaml"]


def test_a_zip_that_does_not_match_the_pin_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_CACHE", str(tmp_path))
    prefix = f"{KEDA.module}@{KEDA.version}/config/crd/bases/"
    with pytest.raises(RuntimeError, match="zip hash"):
        upstream_crds.extract(KEDA, module_zip({prefix + "keda.sh_scaledobjects.yaml": b"tampered"}))
    assert not KEDA.cache_dir.exists()
    assert paths.cache_dir() == tmp_path


def test_extract_once_and_again_when_the_selection_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_CACHE", str(tmp_path))
    prefix = f"{KEDA.module}@{KEDA.version}/config/crd/bases/"
    data = module_zip({prefix + "keda.sh_scaledobjects.yaml": b"kind: CustomResourceDefinition\n"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        digest = upstream_crds.h1_hash(archive)
    monkeypatch.setattr(upstream_crds.Upstream, "sum", property(lambda _self: digest))  # as if versions.toml pinned it
    pinned = upstream_crds.Upstream(KEDA.name, KEDA.module, KEDA.directory, KEDA.patterns)
    assert [f.name for f in upstream_crds.extract(pinned, data)] == ["keda.sh_scaledobjects.yaml"]
    assert upstream_crds.files(pinned) == [pinned.cache_dir / "keda.sh_scaledobjects.yaml"]
    other = upstream_crds.Upstream(KEDA.name, KEDA.module, KEDA.directory, ("keda.sh_scaledjobs.yaml",))
    assert upstream_crds.files(other) == []  # same pin, another file list: not taken from the cache
