"""A Redis password changed under a running replica: the persister and the HA lease say so and
count it as an auth error (not a silent outage), and recover once the password is right again.

Driven as a user meets it: ``tradeguard coordinator`` as a process, the Redis password changed
with CONFIG SET and every client disconnected, the replica's own /metrics and log read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tradeguard.bus.connection import make_client
from tradeguard.process import wait_until
from tradeguard.process.ports import free_port
from tradeguard.process.services import RedisServer

CHANGED = "rotated-by-someone-else"


def auth_errors(port: int) -> dict[str, float]:
    """``tradeguard_redis_auth_errors_total`` by layer, from the replica's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tradeguard_redis_auth_errors_total":
                out[sample.labels["layer"]] = sample.value
    return out


def test_a_password_changed_under_a_running_replica_is_reported_and_recovered(
    locked_redis: RedisServer, tmp_path: Path
) -> None:
    metrics_port = free_port()
    log_path = tmp_path / "replica.log"
    env = {
        **os.environ,
        "TRADEGUARD_REDIS_URL": locked_redis.url,  # the password by environment, not argv
        "TRADEGUARD_DUCKDB_PATH": str(tmp_path / "store.duckdb"),
    }
    argv = [
        sys.executable,
        "-m",
        "tradeguard.cli",
        "coordinator",
        "--replica-id",
        "r1",
        "--ledger-url",
        f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        "--metrics-port",
        str(metrics_port),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    admin = make_client(locked_redis.url)
    password = locked_redis.password
    assert password is not None
    try:
        wait_until(
            lambda: "leader with epoch 1" in log_path.read_text(), 30, "r1 to lead", interval=0.1
        )
        assert not any(auth_errors(metrics_port).values())

        # Someone rotates the password and drops every connection: each client reconnects
        # with the old one.
        admin.config_set("requirepass", CHANGED)
        admin = make_client(locked_redis.url.replace(password, CHANGED))
        admin.client_kill_filter(_type="normal", skipme=True)

        def refused_by_both() -> bool:
            counts = auth_errors(metrics_port)
            return counts.get("result_stream", 0) >= 1 and counts.get("instance_state", 0) >= 1

        wait_until(refused_by_both, 20, "the persister and the lease to count auth errors")
        log_text = log_path.read_text()
        assert "refused the persister's credentials" in log_text, log_text
        assert "Redis refused our credentials" in log_text, log_text
        assert CHANGED not in log_text and password not in log_text

        # The password is put back: both carry on by themselves, and say so.
        admin.config_set("requirepass", password)
        wait_until(
            lambda: (
                "accepts the persister's credentials again" in log_path.read_text()
                and "r1: Redis accepts our credentials again" in log_path.read_text()
            ),
            20,
            "the persister and the lease to recover",
            interval=0.1,
        )
        assert proc.poll() is None, log_path.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
