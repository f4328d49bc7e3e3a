"""The demo's samples (crds/samples, what `make demo` applies) all become Ready on the sandbox's fleet."""

from __future__ import annotations

from qf import ROOT, cond, get, running_operator

from quantfleet_dev.testing import Sandbox, wait_for

SAMPLES = sorted((ROOT / "crds" / "samples").glob("*.yaml"))


def test_every_sample_becomes_ready(sandbox: Sandbox, namespace: str) -> None:
    assert SAMPLES, "no samples"
    with running_operator(sandbox, namespace):
        sandbox.kubectl("apply", "--validate=strict", "-n", namespace, *(a for f in SAMPLES for a in ("-f", str(f))))
        names = {
            plural: [
                o["metadata"]["name"]
                for o in sandbox.custom.list_namespaced_custom_object("quantfleet.io", "v1alpha1", namespace, plural)[
                    "items"
                ]
            ]
            for plural in ("quantizedmodels", "inferenceservices")
        }
        assert names["quantizedmodels"] and names["inferenceservices"], names

        def not_ready() -> list[str]:
            return [
                f"{plural}/{name}: {cond(get(sandbox, namespace, plural, name), 'Ready')}"
                for plural, items in names.items()
                for name in items
                if cond(get(sandbox, namespace, plural, name), "Ready").get("status") != "True"
            ]

        wait_for(lambda: not not_ready(), 180, "every sample Ready")
