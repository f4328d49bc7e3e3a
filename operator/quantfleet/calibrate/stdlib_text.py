"""Offline calibration text: the source files of Python's own standard library.

The calibration Job, the CPU tests and the GPU bench must work without a model hub or
a dataset hub. Python's stdlib sources are present wherever Python is, are real text
with structure a language model can learn (code, comments, docstrings), and are
deterministic for a given interpreter version. `builtin:python-stdlib` in a recipe
resolves here.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[Path]:
    """Every .py file of the stdlib, sorted by relative path (tests and site-packages excluded)."""
    root = stdlib_root()
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__", "lib2to3"}
    files = [p for p in root.rglob("*.py") if not (set(p.relative_to(root).parts) & skip)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def stdlib_documents(max_chars: int | None = None, min_chars: int = 200) -> Iterator[str]:
    """Yield stdlib source files as documents, in a stable order, until `max_chars` were yielded."""
    total = 0
    for path in stdlib_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if len(text) < min_chars:
            continue
        yield text
        total += len(text)
        if max_chars is not None and total >= max_chars:
            return
