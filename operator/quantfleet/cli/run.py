"""`quantfleet run`: start the operator (Kopf) with the quantfleet handlers.

Standalone (no peering objects): run one replica. Liveness at :8080/healthz, metrics at :9090.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os


def run(args: argparse.Namespace) -> int:
    import kopf
    from prometheus_client import start_http_server

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if not args.verbose:  # one INFO line per handler run is noise; failures still log
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    if args.resync:
        os.environ["QUANTFLEET_RESYNC_SECONDS"] = str(args.resync)
    import quantfleet.controllers.handlers  # noqa: F401  (registers the handlers; reads the env above)

    if args.metrics_port:
        from quantfleet.controllers.handlers import known_nodes
        from quantfleet.manager.metrics import register_pool_collector

        register_pool_collector(known_nodes)
        start_http_server(args.metrics_port)
    namespaces = args.namespace or []
    os.environ["QUANTFLEET_NAMESPACES"] = ",".join(namespaces)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
        )
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the operator")
    p.add_argument("--namespace", action="append", help="watch only this namespace (repeatable); default: all")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    p.add_argument("--resync", type=float, help="seconds between level-triggered resyncs (default 10)")
    p.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port")
    p.add_argument("--health-port", type=int, default=0, help="serve /healthz on this port")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=run)
