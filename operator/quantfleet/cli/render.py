"""`quantfleet render`: print the children an InferenceService would get, without a cluster.

For review in GitOps pipelines: takes an InferenceService YAML (model by `uri`), the model's config.json and the
cluster's Nodes (`kubectl get nodes -o yaml`, or `quantfleet-dev sandbox nodes` for the sandbox's simulated
fleet), and prints the Deployments, Service and PodDisruptionBudget — through the controller's own pure core
(`quantfleet.inferenceservice.decide.outcome`), so what is printed is what the operator would apply.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import yaml


def load_nodes(path: str) -> list[dict[str, Any]]:
    """Node objects from a Node, a NodeList/List, or a YAML stream of Nodes."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    nodes: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        items = doc.get("items") if doc.get("kind") in ("NodeList", "List") else [doc]
        nodes += [n for n in items or [] if n.get("kind", "Node") == "Node"]
    if not nodes:
        raise ValueError(f"{path}: no Node objects")
    return nodes


def run(args: argparse.Namespace) -> int:
    from quantfleet import versions
    from quantfleet.api.checkpoint import HF_QUANT_CONFIG
    from quantfleet.hardware.pools import group_pools
    from quantfleet.inferenceservice.decide import ServiceFacts, conditions_of, outcome

    try:
        doc: dict[str, Any] = yaml.safe_load(Path(args.file).read_text())
        if doc.get("kind") != "InferenceService":
            raise ValueError(f"{args.file}: expected kind InferenceService, got {doc.get('kind')}")
        model = (doc.get("spec") or {}).get("model") or {}
        if not model.get("uri"):
            raise ValueError(
                "quantfleet render plans models given by spec.model.uri (no cluster to read a QuantizedModel)"
            )
        config_path = Path(args.model_config)
        config = config_path.read_text()
        json.loads(config)
        # ModelOpt checkpoints may keep their quantization in hf_quant_config.json beside config.json
        hf_quant_path = Path(args.hf_quant_config) if args.hf_quant_config else config_path.parent / HF_QUANT_CONFIG
        hf_quant = hf_quant_path.read_text() if args.hf_quant_config or hf_quant_path.is_file() else None
        if hf_quant is not None:
            json.loads(hf_quant)
        nodes = load_nodes(args.nodes)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"quantfleet render: {exc}", file=sys.stderr)
        return 2
    meta = doc.setdefault("metadata", {})
    meta.setdefault("namespace", "default")
    meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    meta.setdefault("generation", 1)
    cm_name = (model.get("configRef") or {}).get("name", "model-config")
    cm_key = (model.get("configRef") or {}).get("key", "config.json")
    model["configRef"] = {"name": cm_name, "key": cm_key}
    facts = ServiceFacts(
        pools=group_pools(nodes),
        configmaps={cm_name: {"data": {cm_key: config, **({HF_QUANT_CONFIG: hf_quant} if hf_quant else {})}}},
        quantized_model=None,
        deployments={},
        vllm_image=versions.vllm_image(),
        vllm_cpu_image=versions.vllm_cpu_image(),
        runtime_images=versions.runtime_images(),
        now=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    )
    out = outcome(doc, facts)
    planned = conditions_of(out).get("Planned")
    if not out.apply:
        reason = planned.reason if planned else "NotPlanned"
        print(f"quantfleet render: {reason}: {planned.message if planned else ''}", file=sys.stderr)
        return 1
    for d in (out.status or {}).get("decisions") or []:
        print(
            f"# pool {d['pool']}: {d['precision']} / KV {d['kvCacheDtype']} / TP {d['tensorParallelSize']}"
            f" / checkpoint {d.get('checkpointFormat', 'bf16')} / compute {d.get('compute', '')}: {d['reason']}",
            file=sys.stderr,
        )
    print(yaml.safe_dump_all(list(out.apply), sort_keys=False))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("render", help="print the vLLM manifests an InferenceService would get (no cluster)")
    p.add_argument("-f", "--file", required=True, help="InferenceService YAML (spec.model.uri)")
    p.add_argument("--model-config", required=True, help="the model's config.json")
    p.add_argument(
        "--hf-quant-config",
        help="ModelOpt hf_quant_config.json (default: the one beside config.json, if any)",
    )
    p.add_argument(
        "--nodes",
        required=True,
        help="Nodes to plan against: `kubectl get nodes -o yaml` output, a Node YAML stream, or - for stdin"
        " (`quantfleet-dev sandbox nodes` prints the sandbox's simulated fleet)",
    )
    p.set_defaults(func=run)
