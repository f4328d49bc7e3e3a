"""`quantfleet run`: start the controller manager (watch caches, work queue, both controllers, leader election).

Run two replicas for availability: both keep warm caches, the one holding the Lease reconciles. /healthz answers
while the process runs, /readyz once the caches have synced; metrics on --metrics-port.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _health_server(port: int, ready: Any) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path.startswith("/healthz") or (self.path.startswith("/readyz") and ready())
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"not ready")

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from quantfleet.inferenceservice.reconcile import InferenceServiceController
    from quantfleet.kube.lease import LeaseConfig
    from quantfleet.manager import metrics
    from quantfleet.manager.manager import Manager, Options
    from quantfleet.quantizedmodel.reconcile import QuantizedModelController

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if not args.verbose:
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    namespaces = args.namespace or None
    lease_ns = args.leader_election_namespace or os.environ.get("POD_NAMESPACE") or (namespaces or ["default"])[0]
    options = Options(
        namespaces=namespaces,
        workers=args.workers,
        resync_seconds=args.resync,
        leader_election=args.leader_elect,
        lease=LeaseConfig(namespace=lease_ns, name=args.leader_election_id),
    )
    manager = Manager(
        options,
        lambda cache, writer: [QuantizedModelController(cache, writer), InferenceServiceController(cache, writer)],
        kubeconfig=args.kubeconfig or os.environ.get("KUBECONFIG"),
    )
    if args.metrics_port:
        metrics.register(manager)
        start_http_server(args.metrics_port)
    if args.health_port:
        _health_server(args.health_port, lambda: manager.cache.synced)

    def stop(signum: int, _frame: Any) -> None:
        logging.getLogger("quantfleet.manager").info("signal %s: shutting down", signal.Signals(signum).name)
        manager.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return manager.run()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the operator")
    p.add_argument("--namespace", action="append", help="watch only this namespace (repeatable); default: all")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    p.add_argument(
        "--resync", type=float, default=600.0, help="seconds between safety-net resyncs of every cached object"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=8,
        help="objects reconciled at once (one worker per object; reconciles wait on"
        " the API server far more than they compute)",
    )
    p.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port")
    p.add_argument("--health-port", type=int, default=0, help="serve /healthz and /readyz on this port")
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold a coordination.k8s.io Lease before reconciling (run 2 replicas for availability)",
    )
    p.add_argument(
        "--leader-election-namespace",
        help="namespace of the Lease (default: $POD_NAMESPACE, else the first --namespace, else default)",
    )
    p.add_argument("--leader-election-id", default="quantfleet-operator", help="name of the Lease")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=run)
