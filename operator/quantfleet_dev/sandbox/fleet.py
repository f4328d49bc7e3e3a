"""Simulated GPU node pools: the fleet file, and the Node objects it turns into.

The labels are the ones NVIDIA GPU Feature Discovery / the GPU Operator and the AMD node
labeller put on real nodes (docs/gpu-formats.md), so the operator's label parsing is exercised against the
same keys and value shapes it will meet in production. Tests build nodes with the same code
(`make_gpu_node(product=...)`), never with copy-pasted YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from quantfleet.hardware.cpu import nfd_labels_for
from quantfleet_dev.sandbox import paths

POOL_LABEL = "quantfleet.io/pool"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"  # KWOK manages nodes annotated kwok.x-k8s.io/node=fake
KWOK_SELECTOR = f"{KWOK_ANNOTATION}=fake"
SIMULATED_ANNOTATION = "sandbox.quantfleet.io/simulated"


@dataclass(frozen=True)
class GPUModel:
    key: str
    vendor: str  # nvidia | amd
    product: str  # nvidia.com/gpu.product or amd.com/gpu.product-name value
    family: str
    memory_mib: int = 0  # nvidia
    compute: str = ""  # nvidia "major.minor"
    mig_capable: bool = False
    device_id: str = ""  # amd
    vram: str = ""  # amd, e.g. 192G
    cu_count: int = 0  # amd

    @property
    def resource(self) -> str:
        return "nvidia.com/gpu" if self.vendor == "nvidia" else "amd.com/gpu"


@dataclass(frozen=True)
class NodePool:
    name: str
    nodes: int
    gpu: GPUModel | None
    gpus_per_node: int
    machine: str
    cpu: str
    memory: str
    pods: int = 110
    driver_version: str = ""
    cuda_runtime_version: str = ""
    cpu_isa: str = ""  # a CPU pool's NFD level: amx | avx512 | avx2 ("" = no NFD labels)

    def node_name(self, index: int) -> str:
        return f"{self.name}-{index}"


@dataclass(frozen=True)
class Fleet:
    gpus: dict[str, GPUModel]
    pools: list[NodePool]
    simulated: bool


def _gpu(key: str, raw: dict[str, Any]) -> GPUModel:
    vendor = raw["vendor"]
    if vendor not in ("nvidia", "amd"):
        raise ValueError(f"gpu {key}: vendor must be nvidia or amd, not {vendor!r}")
    return GPUModel(
        key=key,
        vendor=vendor,
        product=str(raw["product"]),
        family=str(raw["family"]),
        memory_mib=int(raw.get("memoryMiB", 0)),
        compute=str(raw.get("compute", "")),
        mig_capable=bool(raw.get("migCapable", False)),
        device_id=str(raw.get("deviceId", "")),
        vram=str(raw.get("vram", "")),
        cu_count=int(raw.get("cuCount", 0)),
    )


def parse_fleet(doc: dict[str, Any]) -> Fleet:
    if doc.get("kind") != "Fleet" or doc.get("simulated") is not True:
        raise ValueError("a fleet file must have kind: Fleet and say `simulated: true`")
    gpus = {key: _gpu(key, raw) for key, raw in (doc.get("gpus") or {}).items()}
    nvidia = doc.get("nvidia") or {}
    pools: list[NodePool] = []
    for raw in doc.get("pools") or []:
        gpu_key = raw.get("gpu")
        if gpu_key is not None and gpu_key not in gpus:
            raise ValueError(f"pool {raw['name']}: unknown gpu {gpu_key!r} (known: {', '.join(gpus)})")
        gpu = gpus[gpu_key] if gpu_key is not None else None
        cpu_isa = str(raw.get("cpuIsa", ""))
        if cpu_isa and cpu_isa not in ("amx", "avx512", "avx2"):
            raise ValueError(f"pool {raw['name']}: cpuIsa must be amx, avx512 or avx2, not {cpu_isa!r}")
        pools.append(
            NodePool(
                name=str(raw["name"]),
                nodes=int(raw["nodes"]),
                gpu=gpu,
                gpus_per_node=int(raw.get("gpusPerNode", 0 if gpu is None else 1)),
                machine=str(raw.get("machine", "")),
                cpu=str(raw.get("cpu", "16")),
                memory=str(raw.get("memory", "64Gi")),
                pods=int(raw.get("pods", 110)),
                driver_version=str(nvidia.get("driverVersion", "")),
                cuda_runtime_version=str(nvidia.get("cudaRuntimeVersion", "")),
                cpu_isa=cpu_isa,
            )
        )
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise ValueError(f"pool names must be unique: {names}")
    return Fleet(gpus=gpus, pools=pools, simulated=True)


def load(path: Path | str | None = None) -> Fleet:
    with Path(path or paths.DEFAULT_FLEET).open() as fh:
        return parse_fleet(yaml.safe_load(fh))


def load_fleet(path: Path | str | None = None) -> list[NodePool]:
    """The node pools of a fleet file (default: the sandbox's fleet.yaml)."""
    return load(path).pools


def gpu_labels(gpu: GPUModel, count: int, machine: str, driver: str = "", cuda: str = "") -> dict[str, str]:
    """The labels GFD (NVIDIA) or the node labeller (AMD) would put on a node with `count` of `gpu`."""
    if gpu.vendor == "nvidia":
        major, _, minor = gpu.compute.partition(".")
        labels = {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": gpu.product,
            "nvidia.com/gpu.family": gpu.family,
            "nvidia.com/gpu.compute.major": major,
            "nvidia.com/gpu.compute.minor": minor or "0",
            "nvidia.com/gpu.memory": str(gpu.memory_mib),
            "nvidia.com/gpu.count": str(count),
            "nvidia.com/gpu.replicas": "1",
            "nvidia.com/gpu.sharing-strategy": "none",
            "nvidia.com/gpu.mode": "compute",
            "nvidia.com/mig.capable": "true" if gpu.mig_capable else "false",
            "nvidia.com/gpu.deploy.device-plugin": "true",
        }
        if machine:
            labels["nvidia.com/gpu.machine"] = machine
        if driver:
            d = [*driver.split("."), "0", "0"][:3]
            labels |= {
                "nvidia.com/cuda.driver-version.full": driver,
                "nvidia.com/cuda.driver-version.major": d[0],
                "nvidia.com/cuda.driver-version.minor": d[1],
                "nvidia.com/cuda.driver-version.revision": d[2],
            }
        if cuda:
            c = [*cuda.split("."), "0"][:2]
            labels |= {
                "nvidia.com/cuda.runtime-version.full": cuda,
                "nvidia.com/cuda.runtime-version.major": c[0],
                "nvidia.com/cuda.runtime-version.minor": c[1],
            }
        return labels
    return {
        "amd.com/gpu.family": gpu.family,
        "amd.com/gpu.device-id": gpu.device_id,
        "amd.com/gpu.product-name": gpu.product,
        "amd.com/gpu.vram": gpu.vram,
        "amd.com/gpu.cu-count": str(gpu.cu_count),
        "amd.com/gpu.count": str(count),
    }


def node_manifest(pool: NodePool, index: int) -> dict[str, Any]:
    """The Node object for node `index` of `pool`: labels, KWOK annotation, capacity = allocatable."""
    name = pool.node_name(index)
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        POOL_LABEL: pool.name,
    }
    if pool.machine:
        labels["node.kubernetes.io/instance-type"] = pool.machine
    resources: dict[str, str] = {
        "cpu": pool.cpu,
        "memory": pool.memory,
        "pods": str(pool.pods),
        "ephemeral-storage": "1Ti",
    }
    if pool.gpu is not None and pool.gpus_per_node > 0:
        labels |= gpu_labels(pool.gpu, pool.gpus_per_node, pool.machine, pool.driver_version, pool.cuda_runtime_version)
        resources[pool.gpu.resource] = str(pool.gpus_per_node)
    elif pool.cpu_isa:
        labels |= nfd_labels_for(pool.cpu_isa)  # type: ignore[arg-type]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                KWOK_ANNOTATION: "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                SIMULATED_ANNOTATION: "true",
            },
        },
        # No kwok.x-k8s.io/node=fake:NoSchedule taint: every node here is fake, and the operator's
        # rendered pods must schedule exactly as they would on a real cluster (no sandbox tolerations).
        "spec": {},
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }


def fleet_nodes(pools: list[NodePool]) -> list[dict[str, Any]]:
    return [node_manifest(pool, i) for pool in pools for i in range(pool.nodes)]


def make_gpu_node(
    product: str | None = "NVIDIA-H100-80GB-HBM3",
    *,
    gpus: int = 8,
    name: str | None = None,
    pool: str | None = None,
    machine: str = "",
    fleet_file: Path | str | None = None,
) -> dict[str, Any]:
    """A Node dict for tests: `product` is a catalog key (H100) or a label value (NVIDIA-H100-80GB-HBM3,
    AMD_Instinct_MI300X_OAM); None gives a CPU-only node."""
    fleet = load(fleet_file)
    gpu: GPUModel | None = None
    if product is not None:
        matches = [g for g in fleet.gpus.values() if product in (g.key, g.product)]
        if not matches:
            known = ", ".join(sorted(g.product for g in fleet.gpus.values()))
            raise KeyError(f"unknown GPU product {product!r}; known: {known}")
        gpu = matches[0]
    pool_name = pool or (gpu.key.lower() if gpu else "cpu")
    nvidia_pool = next((p for p in fleet.pools if p.driver_version), None)
    node_pool = NodePool(
        name=pool_name,
        nodes=1,
        gpu=gpu,
        gpus_per_node=gpus if gpu else 0,
        machine=machine,
        cpu="96",
        memory="1024Gi",
        driver_version=nvidia_pool.driver_version if nvidia_pool else "",
        cuda_runtime_version=nvidia_pool.cuda_runtime_version if nvidia_pool else "",
    )
    node = node_manifest(node_pool, 0)
    if name:
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
    return node
