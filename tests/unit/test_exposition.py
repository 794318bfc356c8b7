"""The cached renderer must print exactly what prometheus_client's generate_latest prints."""

from prometheus_client import CollectorRegistry, generate_latest

from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.exposition import TextRenderer


def populated() -> CollectorRegistry:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.init_accounts(["acct-1", 'we"ird\\acct'])
    for i in range(5):
        m.init_instance(f"mt5-{i}")
        m.instances.update(
            f"mt5-{i}",
            state="running",
            cpu_ratio=0.25 * i,
            queue_length=i,
            network_latency_seconds=1e-7 * i,
        )
    m.instances.increment_restarts("mt5-1")
    m.orders.labels("buy", "filled").inc(3)
    m.order_duration.observe(0.12)
    m.ha_leader_info.labels("a\nb", "x").set(1)
    return registry


def test_byte_identical_to_generate_latest() -> None:
    registry = populated()
    renderer = TextRenderer()
    first = renderer.render(registry)
    assert first == generate_latest(registry)
    assert renderer.render(registry) == generate_latest(registry)  # from the cache too


def test_instance_table_values_reach_the_page() -> None:
    body = TextRenderer().render(populated()).decode()
    assert 'tradeguard_instance_state{instance="mt5-2",state="running"} 1.0' in body
    assert 'tradeguard_instance_state{instance="mt5-2",state="failed"} 0.0' in body
    assert 'tradeguard_instance_restarts_total{instance="mt5-1"} 1.0' in body
    assert 'tradeguard_instance_queue_length{instance="mt5-4"} 4.0' in body
