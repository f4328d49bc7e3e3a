"""quantfleet_dev.chart renders like `helm template`: values, --set, release, capabilities, order, hooks, schema.

A throw-away chart in tmp_path exercises what the quantfleet chart does not (yet): a Capabilities-gated template,
a hook, NOTES.txt, a values schema, crds/. Needs charttemplate (`make binaries`); see tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from quantfleet import versions
from quantfleet_dev import chart
from quantfleet_dev.sandbox import build

FILES = {
    "Chart.yaml": "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
    "values.yaml": "greeting: hello\nreplicas: 1\nextraArgs: []\n",
    "values.schema.json": '{"type": "object", "properties": {"replicas": {"type": "integer"}}}\n',
    "crds/thing.yaml": "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
    "metadata: {name: things.x.io}\n",
    "templates/_helpers.tpl": '{{- define "probe.name" -}}{{ .Release.Name }}-probe{{- end -}}\n',
    "templates/NOTES.txt": "installed {{ .Release.Name }}\n",
    # file names sort against helm's install order: ServiceAccount < ConfigMap < Service < unknown kinds
    "templates/a-service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n",
    "templates/m-config.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "probe.name" . }}
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  replicas: {{ .Values.replicas | quote }}
  args: {{ .Values.extraArgs | join "," | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  revision: {{ .Release.Revision | quote }}
""",
    "templates/s-scaledobject.yaml": """{{- if .Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject" }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: {{ .Release.Name }}}
{{- end }}
""",
    "templates/x-hook.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: hook\n"
    "  annotations: {helm.sh/hook: post-install}\n",
    "templates/z-serviceaccount.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n",
}


@pytest.fixture
def probe_chart(tmp_path: Path, charttemplate: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def by_kind(docs: list[dict[str, object]], kind: str) -> dict:  # type: ignore[type-arg]
    return next(d for d in docs if d["kind"] == kind)


def test_defaults_install_order_and_hooks_last(probe_chart: Path) -> None:
    text = chart.template("rel", "team-a", chart=probe_chart)
    assert text.startswith("---\n# Source: probe/templates/z-serviceaccount.yaml\n")
    assert "installed rel" not in text  # NOTES.txt is not a manifest
    docs = chart.render("rel", "team-a", chart=probe_chart)
    assert [d["kind"] for d in docs] == ["ServiceAccount", "ConfigMap", "Service", "Job"]
    config = by_kind(docs, "ConfigMap")
    assert config["metadata"] == {"name": "rel-probe", "namespace": "team-a"}
    _, minor = build.kube_minor(versions.get("kubernetes.version"))
    assert config["data"] == {
        "greeting": "hello",
        "replicas": "1",
        "args": "",
        "kube": f"v1.{minor}.0",
        "revision": "1",
    }


def test_set_values_override_defaults(probe_chart: Path) -> None:
    values = {"greeting": "hi there", "replicas": 3, "extraArgs[0]": "a", "extraArgs[1]": "b"}
    config = by_kind(chart.render("rel", "ns", values, chart=probe_chart), "ConfigMap")
    assert config["data"]["greeting"] == "hi there"
    assert config["data"]["replicas"] == "3"
    assert config["data"]["args"] == "a,b"


def test_capabilities_gate_follows_api_versions(probe_chart: Path) -> None:
    without = chart.render("rel", "ns", chart=probe_chart)
    assert "ScaledObject" not in [d["kind"] for d in without]
    with_keda = chart.render("rel", "ns", api_versions=["keda.sh/v1alpha1/ScaledObject"], chart=probe_chart)
    assert by_kind(with_keda, "ScaledObject")["metadata"] == {"name": "rel"}


def test_values_schema_is_enforced(probe_chart: Path) -> None:
    with pytest.raises(RuntimeError, match="replicas"):
        chart.render("rel", "ns", {"replicas": "many"}, chart=probe_chart)


def test_crds_only_with_include_crds(probe_chart: Path) -> None:
    assert "CustomResourceDefinition" not in [d["kind"] for d in chart.render("rel", "ns", chart=probe_chart)]
    docs = chart.render("rel", "ns", chart=probe_chart, include_crds=True)
    assert docs[0]["metadata"] == {"name": "things.x.io"}


def test_invalid_release_name_is_refused(probe_chart: Path) -> None:
    with pytest.raises(RuntimeError, match="invalid release name"):
        chart.render("Not_Valid", "ns", chart=probe_chart)


def test_quantfleet_chart_watch_namespaces_and_release_namespace(charttemplate: Path) -> None:
    docs = chart.render("qf", "ops", {"watchNamespaces[0]": "team-a", "watchNamespaces[1]": "team-b"})
    deployment = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace=")] == ["--namespace=team-a", "--namespace=team-b"]
    namespaced = [d for d in docs if d["kind"] not in ("ClusterRole", "ClusterRoleBinding")]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"ops"}


def test_set_args_follow_helm_syntax() -> None:
    assert chart.set_args({"a.b[0]": "x", "on": True, "n": 2}) == [
        "--set",
        "a.b[0]=x",
        "--set",
        "on=true",
        "--set",
        "n=2",
    ]
