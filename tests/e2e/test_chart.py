"""The Helm chart installs an operator that works under its own least-privilege RBAC.

Renders charts/quantfleet with Helm's own engine (quantfleet_dev.chart: the charttemplate binary), applies its
ServiceAccount and ClusterRole(Binding), mints a token for that ServiceAccount, and runs the operator with nothing
but that token: a QuantizedModel and an InferenceService must still become Ready, and nothing may be Forbidden.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from qf import apply, isvc, model_config, qm, wait_cond

from quantfleet_dev import chart
from quantfleet_dev.testing import Sandbox, operator_process


def test_chart_rbac_is_enough_for_the_operator(
    sandbox: Sandbox, namespace: str, tmp_path: Path, charttemplate: Path
) -> None:
    docs = chart.render(namespace, namespace, {"watchNamespaces[0]": namespace})
    kinds = {d["kind"] for d in docs}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} <= kinds
    rbac = [d for d in docs if d["kind"] != "Deployment"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    try:
        # the operator Deployment is valid for this API server (and passes Pod Security `restricted`)
        sandbox.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(deployment))
        token = sandbox.kubectl("create", "token", namespace, "-n", namespace, "--duration=1h").stdout.strip()
        cfg = yaml.safe_load(sandbox.kubeconfig.read_text())
        cfg["users"] = [{"name": "operator", "user": {"token": token}}]
        for ctx in cfg["contexts"]:
            ctx["context"]["user"] = "operator"
        kubeconfig = tmp_path / "operator.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(cfg))
        log = tmp_path / "operator.log"

        model_config(sandbox, namespace, "llama-3.1-8b")
        with operator_process(kubeconfig, namespace, log_path=log):
            apply(sandbox, namespace, qm("rbac-fp8", "fp8-dynamic"))
            wait_cond(sandbox, namespace, "quantizedmodels", "rbac-fp8", "Ready", "True")
            apply(
                sandbox,
                namespace,
                isvc(
                    "rbac-svc",
                    model={"quantizedModelRef": {"name": "rbac-fp8"}},
                    pools=[{"name": "h100", "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}],
                ),
            )
            wait_cond(sandbox, namespace, "inferenceservices", "rbac-svc", "Ready", "True", timeout=120)
        text = log.read_text()
        assert "Forbidden" not in text and "forbidden" not in text, text[-3000:]
    finally:
        for d in rbac:
            if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                sandbox.kubectl("delete", d["kind"].lower(), d["metadata"]["name"], "--ignore-not-found", check=False)
