"""GPU pools from Node objects, and calibration placement over them."""

from __future__ import annotations

import pytest

from quantfleet.hardware import LabelError
from quantfleet.hardware.pools import group_pools, pool_for_selector
from quantfleet.planning.placement import choose_calibration_pool, gpus_needed
from quantfleet_dev.testing import gpu_node

node = gpu_node


FLEET = [
    node("h100-0", "H100-SXM"),
    node("h100-1", "H100-SXM"),
    node("b200-0", "B200"),
    node("l40s-0", "L40S", 4),
    node("a10g-0", "A10G", 1),
    node("mi300x-0", "MI300X"),
    node("mi355x-0", "MI355X"),
    node("cpu-0", None),
]


def test_nodes_group_into_one_pool_per_product() -> None:
    cluster = group_pools(FLEET)
    names = sorted(p.name for p in cluster.pools)
    assert names == ["a10g", "b200", "h100-sxm", "l40s", "mi300x", "mi355x"]
    h100 = cluster.by_name("h100-sxm")
    assert h100 is not None and h100.nodes == ("h100-0", "h100-1") and h100.gpus_per_node == 8
    assert h100.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert h100.gpu_resource == "nvidia.com/gpu"
    mi = cluster.by_name("mi300x")
    assert mi is not None and mi.gpu_resource == "amd.com/gpu" and "amd.com/gpu.product-name" in mi.node_selector
    assert cluster.problems == ()


def test_cordoned_and_notready_nodes_make_a_pool_unusable() -> None:
    cluster = group_pools([node("b-0", "B200", cordoned=True), node("b-1", "B200", ready=False)])
    pool = cluster.pools[0]
    assert pool.nodes == ("b-0", "b-1") and pool.usable_nodes == () and not pool.usable


def test_bad_labels_are_reported_not_raised() -> None:
    bad = node("weird", None, labels={"nvidia.com/gpu.product": "NVIDIA-X9000", "nvidia.com/gpu.count": "8"})
    cluster = group_pools([*FLEET, bad])
    assert len(cluster.pools) == 6
    assert len(cluster.problems) == 1 and "weird" in cluster.problems[0]


def test_explicit_selector_must_match_one_product() -> None:
    cluster = group_pools(FLEET)
    pool = pool_for_selector(cluster, {"nvidia.com/gpu.product": "NVIDIA-B200"})
    assert pool.name == "b200" and pool.nodes == ("b200-0",)
    with pytest.raises(LabelError, match="different GPUs"):
        pool_for_selector(cluster, {"nvidia.com/gpu.present": "true"})
    with pytest.raises(LabelError, match="no GPU or CPU node"):
        pool_for_selector(cluster, {"nvidia.com/gpu.product": "NVIDIA-GB300"})


@pytest.mark.parametrize(
    ("scheme", "expected", "native"),
    [
        ("nvfp4", "b200", True),  # FP4 math wants Blackwell
        ("mxfp4", "b200", True),
        ("fp8-dynamic", "h100-sxm", True),  # FP8 on Hopper; Blackwell is not taken when Hopper will do
        ("fp8-block", "h100-sxm", True),
        ("fp8-static", "h100-sxm", True),
        ("w4a16", "h100-sxm", True),  # weight-only: any family runs it; the least over-qualified with most memory
    ],
)
def test_calibration_pool_per_scheme(scheme: str, expected: str, native: bool) -> None:
    placement = choose_calibration_pool(group_pools(FLEET), scheme, None, False, None)  # type: ignore[arg-type]
    assert placement.pool is not None and placement.pool.name == expected, placement.reason
    assert placement.native is native and placement.gpu_count == 1


def test_nvfp4_without_blackwell_waits_or_falls_back_with_reason() -> None:
    no_blackwell = [n for n in FLEET if not n["metadata"]["name"].startswith("b200")]
    waiting = choose_calibration_pool(group_pools(no_blackwell), "nvfp4", None, False, None)
    assert waiting.pool is None and "Blackwell" in waiting.reason and "allowFallback" in waiting.reason
    fallback = choose_calibration_pool(group_pools(no_blackwell), "nvfp4", None, True, None)
    assert fallback.pool is not None and fallback.pool.name == "h100-sxm" and not fallback.native
    assert "falling back" in fallback.reason


def test_amd_pools_never_run_calibration() -> None:
    amd_only = [n for n in FLEET if n["metadata"]["name"].startswith("mi")]
    placement = choose_calibration_pool(group_pools(amd_only), "mxfp4", None, True, None)
    assert placement.pool is None and "CUDA" in placement.reason


def test_gpu_count_from_model_size() -> None:
    # 70B BF16 = 141 GB; x1.25 headroom = 176 GB; on 80 GB GPUs (81559 MiB) -> 3 -> rounded to 4
    assert gpus_needed(141_000_000_000, 81559) == 4
    assert gpus_needed(16_000_000_000, 81559) == 1
    assert gpus_needed(None, 81559) == 1
    placement = choose_calibration_pool(group_pools(FLEET), "fp8-dynamic", 141_000_000_000, False, None)
    assert placement.pool is not None and placement.pool.name == "h100-sxm" and placement.gpu_count == 4
    # 1 TB model does not fit on any node: 8 GPUs of 80 or 180 GB are not enough
    too_big = choose_calibration_pool(group_pools(FLEET), "fp8-dynamic", 1_400_000_000_000, True, None)
    assert too_big.pool is None


def test_pool_metrics_are_read_at_scrape_time() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from quantfleet.manager.metrics import PoolCollector

    nodes = list(FLEET)
    registry = CollectorRegistry()
    registry.register(PoolCollector(lambda: group_pools(nodes)))
    text = generate_latest(registry).decode()
    assert 'quantfleet_gpu_pool_nodes{gpu="H100-SXM",pool="h100-sxm"} 2.0' in text
    nodes.append(node("h100-2", "H100-SXM", cordoned=True))
    text = generate_latest(registry).decode()
    assert 'quantfleet_gpu_pool_nodes{gpu="H100-SXM",pool="h100-sxm"} 3.0' in text
    assert 'quantfleet_gpu_pool_usable_nodes{gpu="H100-SXM",pool="h100-sxm"} 2.0' in text
