"""`quantfleet-dev sandbox build | crds | up | down | status | demo`: the local control plane from the command line.

`demo` is README command 1: it builds what is missing, starts the sandbox, runs the operator
against it, applies `crds/samples/` and prints what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from quantfleet_dev.sandbox import build, cluster, paths, upstream_crds


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("sandbox", help="local Kubernetes control plane with simulated GPU node pools")
    sub = parser.add_subparsers(dest="sandbox_command", required=True)

    p = sub.add_parser(
        "build", help="build etcd, Kubernetes, KWOK, charttemplate and promtool from the Go module proxy (idempotent)"
    )
    p.add_argument(
        "--update", action="store_true", help="regenerate hack/gomod/*/go.mod from versions.toml, refresh go.sum"
    )
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("crds", help="install or uninstall the pinned upstream CRDs (KEDA, prometheus-operator)")
    p.add_argument("action", choices=("install", "uninstall"))
    p.add_argument("which", nargs="+", choices=sorted(upstream_crds.UPSTREAMS))
    p.set_defaults(func=cmd_crds)

    p = sub.add_parser("up", help="start (or reuse) the sandbox, install CRDs, register the fleet's nodes")
    p.add_argument("--fleet", type=Path, default=None, help=f"fleet file (default {paths.DEFAULT_FLEET})")
    p.add_argument("--no-build", action="store_true", help="fail instead of building missing binaries")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop every sandbox process (state is kept; --purge removes it)")
    p.add_argument("--purge", action="store_true", help="also delete the state directory (etcd data, PKI, logs)")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="processes, ports and kubeconfig of the sandbox")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("nodes", help="print the fleet's Nodes as Ready YAML (input for `quantfleet render --nodes`)")
    p.add_argument("--fleet", type=Path, default=None, help=f"fleet file (default {paths.DEFAULT_FLEET})")
    p.set_defaults(func=cmd_nodes)

    p = sub.add_parser("demo", help="build, up, run the operator, apply crds/samples and print their status")
    p.add_argument("--fleet", type=Path, default=None)
    p.add_argument("--wait", type=float, default=20.0, help="seconds to let the operator work before printing")
    p.set_defaults(func=cmd_demo)


def cmd_nodes(args: argparse.Namespace) -> int:
    import yaml

    from quantfleet_dev.sandbox.fleet import fleet_nodes, load_fleet

    nodes = fleet_nodes(load_fleet(args.fleet))
    for node in nodes:  # as the cluster shows them once KWOK has started them
        node["status"]["conditions"] = [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
    print(yaml.safe_dump({"apiVersion": "v1", "kind": "NodeList", "items": nodes}, sort_keys=False))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    build.build(update=args.update)
    upstream_crds.ensure()  # fetched here so that tests never download mid-run
    return 0


def cmd_crds(args: argparse.Namespace) -> int:
    layout = cluster.Layout.load()
    for which in args.which:
        if args.action == "install":
            print(f"{which}: established {', '.join(upstream_crds.install(layout, which))}")
        else:
            print(f"{which}: deleted {', '.join(upstream_crds.uninstall(layout, which))}")
    return 0


def _ensure_built(no_build: bool = False) -> None:
    if build.missing_binaries():
        if no_build:
            missing = ", ".join(map(str, build.missing_binaries()))
            raise SystemExit(f"missing {missing}: run `quantfleet-dev sandbox build`")
        print("sandbox: binaries missing, building them first (cold: tens of minutes on 2 cores)")
        build.build()


def cmd_up(args: argparse.Namespace) -> int:
    _ensure_built(args.no_build)
    layout = cluster.up(args.fleet)
    print(_hint(layout))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster.down()
    if args.purge:
        import shutil

        layout = cluster.Layout.load()
        shutil.rmtree(layout.root, ignore_errors=True)
        print(f"removed {layout.root}")
    return 0


def _hint(layout: cluster.Layout) -> str:
    kubectl_dir = ""
    with contextlib.suppress(FileNotFoundError):
        kubectl_dir = str(build.kubectl_path().parent)
    path = f' PATH="{kubectl_dir}:$PATH"' if kubectl_dir and kubectl_dir != "/usr/bin" else ""
    return f"export KUBECONFIG={layout.kubeconfig}{path}"


def cmd_status(args: argparse.Namespace) -> int:
    s = cluster.status()
    if args.json:
        print(json.dumps(s, indent=2))
        return 0 if s["running"] else 1
    print(f"state dir:  {s['state_dir']}")
    print(f"kubeconfig: {s['kubeconfig']}")
    print(f"server:     {s['server']}")
    for name, pid in s["processes"].items():
        print(f"  {name:<24} {'pid ' + str(pid) if pid else 'not running'}")
    print(f"healthy:    {s['healthy']}")
    if s["running"]:
        print(_hint(cluster.Layout.load()))
    return 0 if s["running"] and s["healthy"] else 1


def start_operator(layout: cluster.Layout, namespace: str | None = None) -> subprocess.Popen[bytes] | None:
    """`python -m quantfleet.cli run` against the sandbox, logging to the state dir; None if it does not exist yet."""
    import importlib.util

    if importlib.util.find_spec("quantfleet.cli.run") is None:
        print("sandbox demo: the operator (quantfleet.cli.run) does not exist yet; continuing without it")
        return None
    argv = [sys.executable, "-m", "quantfleet.cli", "run"] + (["--namespace", namespace] if namespace else [])
    log = layout.logfile("operator").open("ab")
    env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig)}
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    log.close()
    (layout.root / "run").mkdir(exist_ok=True)
    (layout.root / "run" / "operator.pid").write_text(
        json.dumps({"pid": proc.pid, "pgid": proc.pid, "binary": sys.executable, "argv": argv}) + "\n"
    )
    print(f"operator: started pid {proc.pid}, log {layout.logfile('operator')}")
    return proc


def cmd_demo(args: argparse.Namespace) -> int:
    _ensure_built()
    layout = cluster.up(args.fleet)
    cluster.stop(layout, "operator")  # a previous demo's operator, if any
    operator = start_operator(layout)
    samples = paths.CRDS_DIR / "samples"
    sample_files = sorted(samples.glob("*.yaml")) if samples.is_dir() else []
    if sample_files:
        out = cluster.kubectl(layout, "apply", *(a for f in sample_files for a in ("-f", str(f))), check=False)
        print(out.stdout + out.stderr, end="")
    else:
        print(f"sandbox demo: no samples in {samples} yet")
    if operator is not None or sample_files:
        time.sleep(args.wait)
    if operator is not None and operator.poll() is not None:
        print(f"operator exited with {operator.returncode}; see {layout.logfile('operator')}")
    for title, cmd in (
        ("nodes", ["get", "nodes", "-L", "quantfleet.io/pool,nvidia.com/gpu.product,amd.com/gpu.product-name"]),
        ("quantized models / inference services", ["get", "qm,qisvc", "-A", "-o", "wide"]),
        (
            "jobs / deployments / pods",
            ["get", "jobs,deployments,pods", "-A", "-l", "app.kubernetes.io/managed-by=quantfleet"],
        ),
        ("events", ["get", "events", "-A", "--field-selector", "type!=Normal", "--sort-by=.lastTimestamp"]),
    ):
        out = cluster.kubectl(layout, *cmd, check=False)
        print(f"\n### {title}: kubectl {' '.join(cmd)}\n{out.stdout}{out.stderr}", end="")
    print(f"\nthe sandbox stays up ({_hint(layout)}); operator log: {layout.logfile('operator')}")
    print("stop everything with: quantfleet-dev sandbox down")
    return 0
