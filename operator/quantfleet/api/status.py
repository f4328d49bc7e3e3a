"""Status is written from the typed models, the same way for both kinds.

`build_status` takes the fields a pass computed and its named conditions, derives `Ready` from the kind's declared
conjunction, keeps `lastTransitionTime` where a condition did not change, stamps `observedGeneration`, and
validates the result against the kind's pydantic status model (the same model the CRD schema is generated from),
so a status the API server would prune or reject fails in the unit tests, not in a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from quantfleet.api.common import KubeModel
from quantfleet.api.conditions import Cond, Requirement, merge_conditions, ready_from, transitions

Obj = dict[str, Any]


def build_status(
    model: type[KubeModel],
    prev: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    conds: Iterable[Cond],
    requires: Iterable[Requirement],
    now: str,
    generation: int | None,
    ready: tuple[str, str] = ("Ready", ""),
) -> tuple[Obj, list[Mapping[str, Any]]]:
    """(status in wire form, the conditions whose status or reason changed). `ready` is Ready's reason and
    message when the conjunction holds."""
    listed = list(conds)
    ready_cond = ready_from(listed, requires, *ready)
    merged = merge_conditions((prev or {}).get("conditions"), [ready_cond, *listed], now, generation)
    wire = model.model_validate(
        {**{k: v for k, v in fields.items() if v is not None}, "conditions": merged, "observedGeneration": generation}
    ).wire()
    return wire, transitions((prev or {}).get("conditions"), wire["conditions"])
