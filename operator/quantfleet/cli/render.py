"""`quantfleet render`: print the manifests the operator would create, without a cluster.

For review in GitOps pipelines: takes an InferenceService YAML (model by `uri`) and the model's
config.json, plans against the nodes of a fleet file (default: the sandbox's fleet), and prints
the Deployments, Service and PDB — the same pure code path the controller uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from quantfleet.api.inferenceservice import InferenceServiceSpec
    from quantfleet.controllers.inferenceservice import Blocked, ResolvedModel, plan_pools, rollouts, service_input
    from quantfleet.hardware.pools import group_pools
    from quantfleet.planning import ConfigError, parse_model_config
    from quantfleet.render.vllm import expected_deployment, expected_service
    from quantfleet_dev.sandbox.fleet import load_fleet, node_manifest

    try:
        doc: dict[str, Any] = yaml.safe_load(Path(args.file).read_text())
        if doc.get("kind") != "InferenceService":
            raise ValueError(f"{args.file}: expected kind InferenceService, got {doc.get('kind')}")
        spec = InferenceServiceSpec.model_validate(doc.get("spec") or {})
        if spec.model.uri is None:
            raise ValueError(
                "quantfleet render plans models given by spec.model.uri (no cluster to read a QuantizedModel)"
            )
        arch = parse_model_config(json.loads(Path(args.model_config).read_text()))
    except (OSError, ValueError, ValidationError, ConfigError) as exc:
        print(f"quantfleet render: {exc}", file=sys.stderr)
        return 2
    nodes = [node_manifest(p, i) for p in load_fleet(args.fleet) for i in range(p.nodes)]
    for n in nodes:  # a fleet file describes Ready nodes
        n.setdefault("status", {})["conditions"] = [{"type": "Ready", "status": "True"}]
        n["status"]["allocatable"] = n["status"].get("allocatable") or n["status"].get("capacity", {})
    name = doc["metadata"]["name"]
    ns = doc["metadata"].get("namespace", "default")
    model = ResolvedModel(arch, spec.model.uri, None, spec.model.served_model_name or name, None)
    try:
        decisions = plan_pools(name, spec, model, group_pools(nodes), nodes)
    except Blocked as exc:
        print(f"quantfleet render: {exc.reason}: {exc}", file=sys.stderr)
        return 1
    svc = service_input(name, ns, "00000000-0000-0000-0000-000000000000", spec, model)
    for d in decisions:
        print(
            f"# pool {d['pool']}: {d['precision']} / KV {d['kvCacheDtype']} / TP {d['tensorParallelSize']}: "
            f"{d['reason']}",
            file=sys.stderr,
        )
    out: list[Any] = [expected_deployment(svc, roll) for roll in rollouts(spec, decisions)]
    out.append(expected_service(svc))
    print(yaml.safe_dump_all(out, sort_keys=False))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("render", help="print the vLLM manifests an InferenceService would get (no cluster)")
    p.add_argument("-f", "--file", required=True, help="InferenceService YAML (spec.model.uri)")
    p.add_argument("--model-config", required=True, help="the model's config.json")
    p.add_argument("--fleet", help="fleet file describing the GPU nodes (default: the sandbox fleet)")
    p.set_defaults(func=run)
