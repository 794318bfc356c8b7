"""Time to render /metrics for 200 instances and 4 Redis layers (target <= 10 ms).

The baseline in the same run is an empty registry's render, so the figure shows what the
catalog's series cost on top of the exposition machinery itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from bench.common import median, quantile
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.exposition import TextRenderer
from tradeguard.metrics.vocabulary import LAYERS, REDIS_OPS


def populated(instances: int = 200) -> CollectorRegistry:
    registry = CollectorRegistry()
    m = Metrics(registry)
    rng = random.Random(1)
    m.init_accounts(f"acct-{i}" for i in range(20))
    for i in range(instances):
        name = f"mt5-{i}"
        m.init_instance(name)
        m.instances.update(
            name,
            state="running",
            cpu_ratio=rng.random(),
            memory_ratio=rng.random(),
            queue_length=rng.randint(0, 50),
            load_average=rng.random() * 2,
            socket_connections=2,
            network_latency_seconds=rng.random() / 10,
        )
    for layer in LAYERS:
        for op in REDIS_OPS:
            for _ in range(10):
                m.redis_op_duration.labels(layer, op).observe(rng.random() / 1000)
    return registry


def time_render(
    render: Callable[[CollectorRegistry], bytes], registry: CollectorRegistry, n: int
) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        render(registry)
        out.append(time.perf_counter() - t0)
    return out


def main() -> dict[str, float]:
    registry = populated()
    series = generate_latest(registry).count(b"\n")
    renderer = TextRenderer()
    baseline = time_render(generate_latest, registry, 100)
    ours = time_render(renderer.render, registry, 100)
    print(f"/metrics render, 200 instances x 4 layers ({series} lines):")
    print(
        f"  tradeguard renderer p50 {median(ours) * 1000:6.2f} ms  "
        f"p99 {quantile(ours, 0.99) * 1000:6.2f} ms (target <= 10 ms)"
    )
    print(
        f"  generate_latest    p50 {median(baseline) * 1000:6.2f} ms  "
        f"(baseline, same run); speed-up {median(baseline) / median(ours):.1f}x"
    )
    return {"render_p50_ms": median(ours) * 1000}


if __name__ == "__main__":
    main()
