"""Building blocks shared by both custom resources: the camelCase base model, references, conditions.

Every field carries a description: the CRD schema (and so `kubectl explain`) is generated from
these models by `quantfleet generate`, so a missing description is a missing doc line.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

API_GROUP = "quantfleet.io"
API_VERSION = "v1alpha1"

Quantity = str | int

# URI grammar shared by both kinds: pvc://<claim>/<path> and s3://<bucket>/<prefix>, plus hf://<org>/<name>[@rev].
_PVC = r"pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\s]*)?"
_S3 = r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^\s]*)?"
_HF = r"hf://[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-]*(@[^\s]+)?"
STORAGE_URI_PATTERN = f"^({_PVC}|{_S3})$"
MODEL_URI_PATTERN = f"^({_HF}|{_PVC}|{_S3})$"


def parse_pvc_uri(uri: str) -> tuple[str, str]:
    """pvc://claim/a/b -> ("claim", "a/b"). Rejects '..' so a spec can never escape its volume."""
    rest = uri.removeprefix("pvc://")
    claim, _, path = rest.partition("/")
    if not claim or ".." in path.split("/"):
        raise ValueError(f"invalid pvc:// URI {uri!r}: expected pvc://<claim>/<path> without '..'")
    return claim, path.strip("/")


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """The first pydantic error as `<prefix>.<field path>: <message>` (what status conditions and logs show)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "") or "<root>"
    return f"{where}: {err['msg']}"


class KubeModel(BaseModel):
    """Base for spec/status models: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, protected_namespaces=()
    )
    # CEL rules for this object, emitted as x-kubernetes-validations: (rule, message) pairs.
    cel: ClassVar[tuple[tuple[str, str], ...]] = ()

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, unset fields omitted)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class SecretKeyRef(KubeModel):
    """A key inside a Secret in the same namespace. Secret values are never copied into manifests."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret in the object's namespace.")
    key: str | None = Field(
        default=None, description="Key inside the Secret; when unset every key is exposed as an environment variable."
    )


class ConfigMapKeyRef(KubeModel):
    """A key inside a ConfigMap in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the ConfigMap in the object's namespace.")
    key: str = Field(default="config.json", description="Key holding the model's Hugging Face config.json.")


class Toleration(KubeModel):
    """A Kubernetes toleration added to the pods the operator creates."""

    key: str | None = Field(default=None, description="Taint key the toleration applies to; empty matches all keys.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default Equal).")
    value: str | None = Field(default=None, description="Taint value to match when operator is Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, description="For NoExecute: how long the pod stays bound after the taint appears."
    )


class Resources(KubeModel):
    """CPU/memory requests and limits for the operator's pods. GPU limits are set by the operator, not here."""

    requests: dict[str, Quantity] | None = Field(default=None, description="Resource requests, e.g. cpu: 8.")
    limits: dict[str, Quantity] | None = Field(default=None, description="Resource limits, e.g. memory: 256Gi.")

    cel = (
        (
            "!has(self.limits) || self.limits.all(k, !k.endsWith('/gpu'))",
            "resources.limits must not set GPU resources: the operator sets nvidia.com/gpu or amd.com/gpu from its"
            " placement decision",
        ),
        (
            "!has(self.requests) || self.requests.all(k, !k.endsWith('/gpu'))",
            "resources.requests must not set GPU resources: the operator sets them from its placement decision",
        ),
    )


class PodMetadata(KubeModel):
    """Extra labels and annotations copied onto the pods the operator creates."""

    labels: dict[str, str] | None = Field(default=None, description="Labels added to the pods.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations added to the pods.")


class Condition(KubeModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str | None = Field(default=None, description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(default=None, description="Generation this condition was computed from.")
