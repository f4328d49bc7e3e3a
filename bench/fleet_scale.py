"""Fleet benchmark: the operator at the size of a real platform team's fleet, against a floor in the same run.

What it does, on a sandbox of its own (state ~/.cache/quantfleet/sandbox-bench, ports 28000+):

1. N KWOK GPU nodes: the default fleet's six pools scaled to N (1,000: 400 H100, 200 B200, 150 L40S, 150 A10G,
   60 MI300X, 40 MI355X).
2. One operator (`quantfleet run --namespace scale`, its own client certificate so the API server's audit log can
   attribute its requests), then M InferenceServices and K QuantizedModels created at once by 16 threads
   (defaults 500 / 100; K of the services serve the K QuantizedModels and wait for them).
3. Time until every object is Ready; the operator's API requests by verb and resource meanwhile (audit log).
4. A quiet window (default 2 min): reads and writes per minute at rest (the leader Lease renewals apart).
5. Peak RSS of the operator.
6. A restart with everything existing: time until every object has been reconciled again (its own gauge).
7. Blockers clearing: a pool cordoned, S services created on it (PoolUnavailable), the pool uncordoned: how long
   each waits after the uncordon; and how long each QuantizedModel's service waited after the model became Ready.
8. The floor: with the operator stopped, its children are deleted (GPUs freed) and a bare 16-thread client
   creates the same children (its own certificate) and waits until the cluster has run them. Ratio
   converge/floor.

Prints one table and writes it (and the raw numbers as JSON) to --out.

    python bench/fleet_scale.py                      # 1,000 nodes, 500 services, 100 models (about 15-25 min)
    python bench/fleet_scale.py --nodes 100 --services 50 --models 10 --quiet 30   # smoke
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QUANTFLEET_SANDBOX_DIR", str(Path.home() / ".cache" / "quantfleet" / "sandbox-bench"))
os.environ.setdefault("QUANTFLEET_SANDBOX_PORT_BASE", "28000")
sys.path.insert(0, str(ROOT / "operator"))

import yaml  # noqa: E402

from quantfleet_dev.sandbox import cluster, paths  # noqa: E402

NS = "scale"
GROUP, VERSION = "quantfleet.io", "v1alpha1"
SHARES = {"h100": 0.40, "b200": 0.20, "l40s": 0.15, "a10g": 0.15, "mi300x": 0.06, "mi355x": 0.04}
SELECTORS = {
    "h100": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "b200": {"nvidia.com/gpu.product": "NVIDIA-B200"},
    "l40s": {"nvidia.com/gpu.product": "NVIDIA-L40S"},
    "a10g": {"nvidia.com/gpu.product": "NVIDIA-A10G"},
    "mi300x": {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"},
    "mi355x": {"amd.com/gpu.product-name": "AMD_Instinct_MI355X_OAM"},
}
MODELS = {"llama": "llama-3.1-8b", "qwen": "qwen3-30b-a3b", "mixtral": "mixtral-8x7b"}
HF = {"llama": "meta-llama/Llama-3.1-8B-Instruct", "qwen": "Qwen/Qwen3-30B-A3B", "mixtral": "mistralai/Mixtral-8x7B"}
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ the sandbox


def fleet_file(nodes: int, path: Path) -> Path:
    doc = yaml.safe_load(paths.DEFAULT_FLEET.read_text())
    pools = {p["name"]: p for p in doc["pools"]}
    counts = {name: max(1, round(nodes * share)) for name, share in SHARES.items()}
    counts["h100"] += nodes - sum(counts.values())
    doc["pools"] = [{**pools[name], "nodes": n} for name, n in counts.items()]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def api(layout: cluster.Layout, user: str = "admin") -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    kubeconfig = layout.kubeconfig if user == "admin" else layout.component_kubeconfig(user)
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = 32
    return client.ApiClient(cfg)


RUNNING: list[Any] = []  # operators this run started: stopped whatever happens


class Operator:
    """`quantfleet run` as a subprocess with the operator's own identity and a metrics port."""

    def __init__(self, layout: cluster.Layout, tag: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log_path = layout.logfile(f"bench-operator-{tag}")
        argv = [
            sys.executable,
            "-m",
            "quantfleet.cli",
            "run",
            "--namespace",
            NS,
            "--kubeconfig",
            str(layout.component_kubeconfig("operator")),
            "--metrics-port",
            str(self.port),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
        with self.log_path.open("wb") as fh:
            self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.started = time.time()
        RUNNING.append(self)

    def metrics(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        out: dict[str, float] = collections.defaultdict(float)
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name = line.split("{", 1)[0].split(" ", 1)[0]
                out[name] += float(line.rsplit(" ", 1)[1])
        return out

    def rss_mb(self) -> tuple[float, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = {k: v.split()[0] for k, _, v in (line.partition(":") for line in status.splitlines()) if v.split()}
        return int(fields["VmHWM"]) / 1024, int(fields["VmRSS"]) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------------ workload


def objects(n_services: int, n_models: int) -> list[dict[str, Any]]:
    """K QuantizedModels (distinct recipes) each served by one service; M-K services on base models over all pools."""
    out: list[dict[str, Any]] = []
    kinds = (
        [("llama", "fp8-dynamic", "h100")] * 7 + [("qwen", "nvfp4", "b200")] * 2 + [("mixtral", "fp8-dynamic", "h100")]
    )
    for i in range(n_models):
        model, scheme, pool = kinds[i % len(kinds)]
        name = f"qm-{i:04d}"
        out.append(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "QuantizedModel",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "source": {"huggingFace": {"repo": HF[model]}, "modelConfigRef": {"name": f"{model}-config"}},
                    "scheme": scheme,
                    "calibration": {"seed": i},
                },
            }
        )
        out.append(service(f"svc-qm-{i:04d}", {"quantizedModelRef": {"name": name}}, pool))
    pools = list(SHARES)
    for i in range(n_services - n_models):
        pool = pools[i % len(pools)]
        model = "llama" if pool == "a10g" else ("llama", "qwen", "mixtral")[(i // len(pools)) % 3]
        out.append(
            service(f"svc-{i:04d}", {"uri": f"hf://{HF[model]}", "configRef": {"name": f"{model}-config"}}, pool)
        )
    return out


def service(name: str, model: dict[str, Any], pool: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"model": model, "maxModelLen": 8192, "pools": [{"name": pool, "nodeSelector": SELECTORS[pool]}]},
    }


def create_all(client: Any, objs: list[dict[str, Any]]) -> None:
    from kubernetes import client as k

    custom = k.CustomObjectsApi(client)
    plurals = {"QuantizedModel": "quantizedmodels", "InferenceService": "inferenceservices"}

    def one(o: dict[str, Any]) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, plurals[o["kind"]], o)

    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, objs))


def ready_counts(client: Any, ctype: str = "Ready") -> tuple[int, int, dict[str, str]]:
    """(objects with `ctype` True, all objects, that condition's transition time per object)."""
    from kubernetes import client as k

    custom = k.CustomObjectsApi(client)
    items = [
        *custom.list_namespaced_custom_object(GROUP, VERSION, NS, "inferenceservices")["items"],
        *custom.list_namespaced_custom_object(GROUP, VERSION, NS, "quantizedmodels")["items"],
    ]
    since = {}
    for o in items:
        ready = next((c for c in (o.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})
        if ready.get("status") == "True":
            since[f"{o['kind']}/{o['metadata']['name']}"] = ready["lastTransitionTime"]
    return len(since), len(items), since


def wait_all_ready(client: Any, total: int, timeout: float) -> float:
    start = time.monotonic()
    last = -1
    while time.monotonic() - start < timeout:
        ready, count, _ = ready_counts(client)
        if ready != last:
            log(f"  {ready}/{total} Ready")
            last = ready
        if ready >= total and count >= total:
            return time.monotonic()
        time.sleep(2)
    raise TimeoutError(f"only {last}/{total} Ready after {timeout:.0f}s")


# ------------------------------------------------------------------------------------------------ the audit log


def audit(layout: cluster.Layout, user: str, since: float, until: float) -> collections.Counter[tuple[str, str]]:
    """Requests of `user` received in [since, until) (epoch seconds), by (verb, resource[/subresource])."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    seen: set[str] = set()
    files = [p for p in (layout.audit_log.with_name("audit.log"),) if p.exists()]
    files += sorted(layout.audit_log.parent.glob("audit-*.log"))
    for path in files:
        with path.open() as fh:
            for line in fh:
                if f'"username":"{user}"' not in line:
                    continue
                ev = json.loads(line)
                if ev["auditID"] in seen or ev.get("stage") not in ("ResponseComplete", "ResponseStarted", "Panic"):
                    continue
                ts = dt.datetime.fromisoformat(ev["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
                if not since <= ts < until:
                    continue
                seen.add(ev["auditID"])
                ref = ev.get("objectRef") or {}
                resource = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
                counts[(ev["verb"], resource)] += 1
    return counts


def per_minute(counts: collections.Counter[tuple[str, str]], seconds: float) -> dict[str, float]:
    lease = sum(v for (verb, res), v in counts.items() if res == "leases")
    reads = sum(v for (verb, res), v in counts.items() if verb not in WRITES and res != "leases")
    writes = sum(v for (verb, res), v in counts.items() if verb in WRITES and res != "leases")
    m = seconds / 60
    return {"reads": reads / m, "writes": writes / m, "lease": lease / m}


# ------------------------------------------------------------------------------------------------ the floor


def children(client: Any) -> list[dict[str, Any]]:
    """The operator's children in NS, as a user would write them (server fields stripped)."""
    out = []
    for kind, path in (
        ("PersistentVolumeClaim", f"/api/v1/namespaces/{NS}/persistentvolumeclaims"),
        ("Job", f"/apis/batch/v1/namespaces/{NS}/jobs"),
        ("Deployment", f"/apis/apps/v1/namespaces/{NS}/deployments"),
        ("Service", f"/api/v1/namespaces/{NS}/services"),
        ("PodDisruptionBudget", f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"),
    ):
        data = raw(client, "GET", path + "?labelSelector=app.kubernetes.io/managed-by%3Dquantfleet")
        for item in data["items"]:
            meta = item["metadata"]
            clean = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
            spec = item["spec"]
            if kind == "Job":
                spec = {k: v for k, v in spec.items() if k not in ("selector", "manualSelector")}
                for labels in (clean.get("labels") or {}, spec["template"]["metadata"].get("labels") or {}):
                    for key in (
                        "controller-uid",
                        "batch.kubernetes.io/controller-uid",
                        "job-name",
                        "batch.kubernetes.io/job-name",
                    ):
                        labels.pop(key, None)
            if kind == "Service":
                spec = {k: v for k, v in spec.items() if k not in ("clusterIP", "clusterIPs")}
            if kind == "PersistentVolumeClaim":
                spec = {k: v for k, v in spec.items() if k not in ("volumeName",)}
                clean.get("annotations", {}).clear()
            out.append(
                {
                    "apiVersion": item.get("apiVersion") or api_version(kind),
                    "kind": kind,
                    "metadata": clean,
                    "spec": spec,
                }
            )
    return out


def api_version(kind: str) -> str:
    return {"Job": "batch/v1", "Deployment": "apps/v1", "PodDisruptionBudget": "policy/v1"}.get(kind, "v1")


def raw(client: Any, method: str, path: str, body: Any = None) -> Any:
    resp = client.call_api(
        method,
        client.configuration.host + path,
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
    )
    data = resp.read()
    return json.loads(data) if data else None


PATHS = {
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Service": "/api/v1/namespaces/{ns}/services",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}


def delete_children(client: Any) -> None:
    for kind, path in PATHS.items():
        if kind == "PersistentVolumeClaim":
            continue  # the checkpoints stay; the floor's Jobs mount the same claims
        raw(
            client,
            "DELETE",
            path.format(ns=NS)
            + "?labelSelector=app.kubernetes.io/managed-by%3Dquantfleet&propagationPolicy=Background",
        )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        pods = raw(client, "GET", f"/api/v1/namespaces/{NS}/pods")["items"]
        deps = raw(client, "GET", PATHS["Deployment"].format(ns=NS))["items"]
        if not pods and not deps:
            return
        time.sleep(2)
    raise TimeoutError("the operator's children did not go away")


def floor(client: Any, objs: list[dict[str, Any]], timeout: float) -> float:
    """Create `objs` with 16 threads and wait until Deployments are available and Jobs complete."""
    todo = [o for o in objs if o["kind"] != "PersistentVolumeClaim"]
    start = time.monotonic()

    def one(o: dict[str, Any]) -> None:
        raw(client, "POST", PATHS[o["kind"]].format(ns=NS), o)

    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, todo))
    want_deps = {o["metadata"]["name"]: o["spec"]["replicas"] for o in todo if o["kind"] == "Deployment"}
    want_jobs = {o["metadata"]["name"] for o in todo if o["kind"] == "Job"}
    while time.monotonic() - start < timeout:
        deps = raw(client, "GET", PATHS["Deployment"].format(ns=NS))["items"]
        jobs = raw(client, "GET", PATHS["Job"].format(ns=NS))["items"]
        ready = {
            d["metadata"]["name"]
            for d in deps
            if (d.get("status") or {}).get("readyReplicas", 0) >= want_deps.get(d["metadata"]["name"], 1)
        }
        done = {j["metadata"]["name"] for j in jobs if (j.get("status") or {}).get("succeeded")}
        if set(want_deps) <= ready and want_jobs <= done:
            return time.monotonic() - start
        time.sleep(1)
    raise TimeoutError("the floor's children did not all run")


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--services", type=int, default=500)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--blocked", type=int, default=20, help="services created on a cordoned pool, then uncordoned")
    ap.add_argument("--quiet", type=float, default=120.0, help="seconds of rest measured after convergence")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    ap.add_argument("--keep", action="store_true", help="leave the bench sandbox running")
    args = ap.parse_args()

    started = time.time()
    layout = cluster.Layout.load()
    cluster.down(log=log)
    import shutil

    shutil.rmtree(layout.root, ignore_errors=True)  # a fresh sandbox: no leftover objects or audit entries
    work = Path(os.environ["QUANTFLEET_SANDBOX_DIR"]).parent / "bench-work"
    work.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    layout = cluster.up(fleet_file(args.nodes, work / "fleet.yaml"), log=log, timeout=900)
    sandbox_up = time.monotonic() - t
    admin = api(layout)
    from kubernetes import client as k

    core = k.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": NS}})
    for short, model in MODELS.items():
        data = (ROOT / "tests" / "fixtures" / "models" / model / "config.json").read_text()
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"{short}-config"}, "data": {"config.json": data}})
    while not core.list_namespaced_service_account(NS).items:
        time.sleep(0.5)
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "services": args.services,
        "models": args.models,
        "sandbox_up_s": sandbox_up,
        "machine": f"{platform.node()} {os.cpu_count()} cores {platform.processor() or platform.machine()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }

    # 1. converge
    op = Operator(layout, "1")
    while True:
        with contextlib.suppress(Exception):
            if op.metrics().get("quantfleet_leader", 0) == 1:
                break
        time.sleep(0.5)
    objs = objects(args.services, args.models)
    log(f"creating {len(objs)} objects")
    t0_wall, t0 = time.time(), time.monotonic()
    create_all(admin, objs)
    t_done = wait_all_ready(admin, len(objs), args.timeout)
    converge = t_done - t0
    converged_wall = t0_wall + converge
    result["converge_s"] = converge
    result["converge_requests"] = {
        f"{v} {r}": n for (v, r), n in sorted(audit(layout, "quantfleet-operator", t0_wall, converged_wall).items())
    }
    _, _, since = ready_counts(admin)
    _, _, planned = ready_counts(admin, "Planned")
    waits = []
    for i in range(args.models):
        qm_ready = since.get(f"QuantizedModel/qm-{i:04d}")
        svc_ready = planned.get(f"InferenceService/svc-qm-{i:04d}")
        if qm_ready and svc_ready:
            waits.append(
                dt.datetime.fromisoformat(svc_ready.replace("Z", "+00:00")).timestamp()
                - dt.datetime.fromisoformat(qm_ready.replace("Z", "+00:00")).timestamp()
            )
    result["model_to_service_wait_max_s"] = max(waits) if waits else None
    log(f"converged in {converge:.1f}s")

    # 2. at rest
    time.sleep(10)
    q0 = time.time()
    time.sleep(args.quiet)
    quiet = audit(layout, "quantfleet-operator", q0, time.time())
    result["quiet_per_minute"] = per_minute(quiet, args.quiet)
    result["quiet_requests"] = {f"{v} {r}": n for (v, r), n in sorted(quiet.items())}
    result["rss_peak_mb"], result["rss_mb"] = op.rss_mb()
    log(f"at rest: {result['quiet_per_minute']}; RSS peak {result['rss_peak_mb']:.0f} MB")

    # 3. blockers clearing: a cordoned pool, services waiting on it, the pool uncordoned
    pool = "mi355x"
    label, value = next(iter(SELECTORS[pool].items()))
    nodes = [n.metadata.name for n in core.list_node(label_selector=f"{label}={value}").items]
    for n in nodes:
        core.patch_node(n, {"spec": {"unschedulable": True}})
    blocked = [
        service(f"blocked-{i:03d}", {"uri": f"hf://{HF['llama']}", "configRef": {"name": "llama-config"}}, pool)
        for i in range(args.blocked)
    ]
    create_all(admin, blocked)
    time.sleep(15)
    uncordon = time.time()
    for n in nodes:
        core.patch_node(n, {"spec": {"unschedulable": False}})
    total = len(objs) + len(blocked)
    custom = k.CustomObjectsApi(admin)
    planned_at: dict[str, float] = {}
    while len(planned_at) < len(blocked) and time.time() - uncordon < 120:
        for o in custom.list_namespaced_custom_object(GROUP, VERSION, NS, "inferenceservices")["items"]:
            name = o["metadata"]["name"]
            if name.startswith("blocked-") and name not in planned_at and (o.get("status") or {}).get("decisions"):
                planned_at[name] = time.time()
        time.sleep(0.25)
    result["unblock_wait_max_s"] = max((t - uncordon for t in planned_at.values()), default=None)
    result["unblocked"] = f"{len(planned_at)}/{len(blocked)}"
    wait_all_ready(admin, total, args.timeout)

    # 4. restart with everything existing
    op.stop()
    op2 = Operator(layout, "2")
    r0 = time.monotonic()
    r0_wall = time.time()
    while time.monotonic() - r0 < 300:
        with contextlib.suppress(Exception):
            if op2.metrics().get("quantfleet_objects_reconciled", 0) >= total:
                break
        time.sleep(0.2)
    result["restart_all_reconciled_s"] = time.monotonic() - r0
    restart_req = audit(layout, "quantfleet-operator", r0_wall, time.time())
    result["restart_writes"] = sum(v for (verb, res), v in restart_req.items() if verb in WRITES and res != "leases")
    log(f"restart: every object reconciled after {result['restart_all_reconciled_s']:.1f}s")

    # 5. the floor
    op2.stop()
    made = children(admin)
    log(f"floor: deleting the operator's {len(made)} children")
    delete_children(admin)
    floor_client = api(layout, "floor")
    result["floor_s"] = floor(floor_client, made, args.timeout)
    result["ratio"] = converge / result["floor_s"]
    result["floor_requests"] = sum(audit(layout, "quantfleet-floor", 0, time.time()).values())
    result["wall_s"] = time.time() - started
    log(f"floor {result['floor_s']:.1f}s; ratio {result['ratio']:.2f}")

    table = render(result)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M")
    (args.out / f"fleet-scale-{stamp}-{args.nodes}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"fleet-scale-{stamp}-{args.nodes}.md").write_text(table + "\n")
    if not args.keep:
        cluster.down(log=log)
    return 0


def render(r: dict[str, Any]) -> str:
    q = r["quiet_per_minute"]
    rows = [
        ("nodes / InferenceServices / QuantizedModels", f"{r['nodes']} / {r['services']} / {r['models']}", ""),
        ("time to all Ready (operator)", f"{r['converge_s']:.1f} s", "target ≤ 1.5 x floor"),
        ("floor: bare 16-thread client, same children", f"{r['floor_s']:.1f} s", ""),
        ("**ratio converge / floor**", f"**{r['ratio']:.2f} x**", "target ≤ 1.5 (aim 1.3)"),
        ("writes / min at rest (Lease renewals apart)", f"{q['writes']:.1f}", "target 0"),
        ("reads / min at rest (watches only)", f"{q['reads']:.1f}", "target ≤ 5"),
        ("Lease renewals / min (leader election)", f"{q['lease']:.1f}", ""),
        ("operator peak RSS", f"{r['rss_peak_mb']:.0f} MB", "target ≤ 250 MB"),
        (
            "restart: every object reconciled",
            f"{r['restart_all_reconciled_s']:.1f} s ({r['restart_writes']} writes)",
            "target ≤ 30 s",
        ),
        (
            "longest wait after a pool is uncordoned",
            _s(r["unblock_wait_max_s"]) + f" ({r['unblocked']} services)",
            "target ≤ 10 s",
        ),
        (
            "longest wait of a service's plan after its QuantizedModel is Ready",
            _s(r["model_to_service_wait_max_s"]),
            "target ≤ 10 s (1 s resolution)",
        ),
    ]
    head = (
        f"Fleet benchmark, {r['date']}, {r['machine']}; sandbox with {r['nodes']} KWOK nodes"
        f" up in {r['sandbox_up_s']:.0f} s\n\n"
    )
    lines = ["| measure | value | |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    conv = sorted(r["converge_requests"].items(), key=lambda kv: -kv[1])
    lines += ["", "Operator requests during convergence (API server audit log, by verb and resource):", ""]
    lines += ["| verb resource | requests |", "|---|---|", *(f"| {k} | {v} |" for k, v in conv)]
    return head + "\n".join(lines)


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        for operator in RUNNING:
            operator.stop()
