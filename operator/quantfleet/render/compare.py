"""Compare a desired object with a live one the way the API server stores it (pure).

`is_subset(desired, live)`: every value the operator sets still holds in the live object. Keys the server or another
manager added are ignored, lists must match element-wise, and quantities compare by value ("1Gi" == "1024Mi",
8 == "8"), as the API server normalises them. The writer uses it to apply only on drift; the InferenceService core
uses it to tell a pod-template change (a rollout) from a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any


def is_subset(want: Any, have: Any) -> bool:
    """Every value in `want` is present and equal in `have` (dict keys `have` adds are ignored)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(k in have and is_subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(is_subset, want, have))
    return want == have or _same_quantity(want, have)


_SUFFIX: dict[str, int | Decimal] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value)
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        suffix, number = "", text
    try:
        return Decimal(number) * Decimal(_SUFFIX[suffix])
    except InvalidOperation:
        return None


def _same_quantity(a: Any, b: Any) -> bool:
    qa, qb = _quantity(a), _quantity(b)
    return qa is not None and qa == qb
