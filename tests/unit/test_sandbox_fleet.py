"""The simulated fleet: the default pools the issue asks for, and node labels the operator's label parser reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quantfleet.hardware.labels import gpu_facts_from_labels
from quantfleet_dev.sandbox import fleet

EXPECTED_POOLS = {  # issue 3: H100 x4x8, B200 x2x8, L40S x2x4, A10G x2x1, MI300X x1x8, MI355X x1x8, plus CPU nodes
    "h100": ("NVIDIA-H100-80GB-HBM3", 4, 8),
    "b200": ("NVIDIA-B200", 2, 8),
    "l40s": ("NVIDIA-L40S", 2, 4),
    "a10g": ("NVIDIA-A10G", 2, 1),
    "mi300x": ("AMD_Instinct_MI300X_OAM", 1, 8),
    "mi355x": ("AMD_Instinct_MI355X_OAM", 1, 8),
}


def test_default_fleet_has_the_issue_pools() -> None:
    pools = {p.name: p for p in fleet.load_fleet()}
    for name, (product, nodes, gpus) in EXPECTED_POOLS.items():
        pool = pools[name]
        assert pool.gpu is not None
        assert (pool.gpu.product, pool.nodes, pool.gpus_per_node) == (product, nodes, gpus)
    cpu_pools = [p for p in pools.values() if p.gpu is None]
    assert cpu_pools and sum(p.nodes for p in cpu_pools) >= 1


def test_fleet_file_says_it_is_simulated(tmp_path: Path) -> None:
    doc = yaml.safe_load(fleet.paths.DEFAULT_FLEET.read_text())
    assert doc["simulated"] is True
    doc["simulated"] = False
    with pytest.raises(ValueError, match="simulated"):
        fleet.parse_fleet(doc)


def test_unknown_gpu_in_a_pool_is_an_error() -> None:
    doc = yaml.safe_load(fleet.paths.DEFAULT_FLEET.read_text())
    doc["pools"].append({"name": "x", "nodes": 1, "gpu": "NOPE"})
    with pytest.raises(ValueError, match="unknown gpu 'NOPE'"):
        fleet.parse_fleet(doc)


def test_node_names_are_unique_and_stable() -> None:
    nodes = fleet.fleet_nodes(fleet.load_fleet())
    names = [n["metadata"]["name"] for n in nodes]
    assert len(names) == len(set(names)) == sum(p.nodes for p in fleet.load_fleet())
    assert "h100-3" in names and "h100-4" not in names


@pytest.mark.parametrize("pool", [p for p in fleet.load_fleet() if p.gpu is not None], ids=lambda p: p.name)
def test_gpu_nodes_carry_labeller_labels_and_capacity(pool: fleet.NodePool) -> None:
    node = fleet.node_manifest(pool, 0)
    labels, status = node["metadata"]["labels"], node["status"]
    assert pool.gpu is not None
    assert labels[fleet.POOL_LABEL] == pool.name
    assert node["metadata"]["annotations"][fleet.KWOK_ANNOTATION] == "fake"
    assert status["capacity"] == status["allocatable"]
    assert status["allocatable"][pool.gpu.resource] == str(pool.gpus_per_node)
    if pool.gpu.vendor == "nvidia":
        assert labels["nvidia.com/gpu.present"] == "true"
        assert labels["nvidia.com/gpu.product"] == pool.gpu.product
        assert labels["nvidia.com/gpu.count"] == str(pool.gpus_per_node)
        assert int(labels["nvidia.com/gpu.memory"]) > 10_000  # MiB, as GFD reports it
        assert not any(k.startswith("amd.com/") for k in labels)
    else:
        assert labels["amd.com/gpu.product-name"] == pool.gpu.product
        assert labels["amd.com/gpu.device-id"] in {"74a1", "75a3"}
        assert labels["amd.com/gpu.vram"].endswith("G")
        assert not any(k.startswith("nvidia.com/") for k in labels)


@pytest.mark.parametrize("pool", [p for p in fleet.load_fleet() if p.gpu is not None], ids=lambda p: p.name)
def test_operator_label_parser_recognises_every_simulated_gpu(pool: fleet.NodePool) -> None:
    # the sandbox is only useful if quantfleet.hardware reads its nodes as the GPUs they pretend to be
    node = fleet.node_manifest(pool, 0)
    assert pool.gpu is not None
    facts = gpu_facts_from_labels(node["metadata"]["labels"], count=pool.gpus_per_node)
    assert facts is not None and facts.known, facts
    assert facts.vendor == pool.gpu.vendor
    assert facts.count == pool.gpus_per_node


def test_cpu_nodes_have_no_gpu_labels_or_resources() -> None:
    pool = next(p for p in fleet.load_fleet() if p.gpu is None)
    node = fleet.node_manifest(pool, 0)
    assert not any(k.startswith(("nvidia.com/", "amd.com/")) for k in node["metadata"]["labels"])
    assert not any(k.endswith("/gpu") for k in node["status"]["capacity"])
    assert gpu_facts_from_labels(node["metadata"]["labels"]) is None


def test_make_gpu_node_by_label_value_or_key() -> None:
    b200 = fleet.make_gpu_node("NVIDIA-B200", gpus=4, name="b-x")
    assert b200["metadata"]["name"] == "b-x"
    assert b200["metadata"]["labels"]["nvidia.com/gpu.compute.major"] == "10"
    assert b200["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    mi = fleet.make_gpu_node("MI355X")
    assert mi["metadata"]["labels"]["amd.com/gpu.device-id"] == "75a3"
    assert mi["status"]["allocatable"]["amd.com/gpu"] == "8"
    assert "nvidia.com/gpu" not in fleet.make_gpu_node(None)["status"]["allocatable"]
    with pytest.raises(KeyError, match="unknown GPU product"):
        fleet.make_gpu_node("NVIDIA-RTX-9999")


def test_cpu_pool_carries_nfd_labels_and_is_a_cpu_pool() -> None:
    from quantfleet.hardware.pools import group_pools

    nodes = fleet.fleet_nodes(fleet.load_fleet())
    cluster = group_pools(nodes)
    cpu = {p.name: p for p in cluster.cpu_pools}["cpu-m7i-4xlarge"]
    assert cpu.facts.isa == "amx" and cpu.facts.vendor == "Intel"  # usable once KWOK reports the nodes Ready
    assert cpu.nodes == ("cpu-0", "cpu-1")
    assert {(n.allocatable_memory_bytes, n.allocatable_millicpu) for n in cpu.members} == {(64 * 2**30, 16000)}
    labels = next(n for n in nodes if n["metadata"]["name"] == "cpu-0")["metadata"]["labels"]
    assert labels["feature.node.kubernetes.io/cpu-cpuid.AMXTILE"] == "true"
    assert labels["feature.node.kubernetes.io/cpu-cpuid.AVX512F"] == "true"
    # GPU nodes never join a CPU pool, whatever their CPUs
    assert all(n.startswith("cpu-") for p in cluster.cpu_pools for n in p.nodes)
